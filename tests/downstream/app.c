/* app.c -- a downstream program built against an installed tsd, the way a
 * user's project would: only <tsd.h> and the library, through the CMake
 * package (CMakeLists.txt) or pkg-config (Makefile). libtsd alone: no
 * TorchScript function (those are libtsd_torch's, see app_torch.c).
 *
 *   app CHECKPOINT.pth
 *
 * Prints "CHECKPOINT: N entries" then one key per line; exit 1 on error. */
#include <stdio.h>

#include <tsd.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: app CHECKPOINT.pth\n");
    return 2;
  }
  tsd_checkpoint *ck = NULL;
  tsd_status st = tsd_checkpoint_open(&ck, argv[1], NULL);
  if (st != TSD_OK) {
    fprintf(stderr, "app: %s (%s)\n", tsd_last_error(), tsd_status_name(st));
    return 1;
  }
  size_t n = tsd_checkpoint_count(ck);
  printf("%s: %zu entries (tsd %s)\n", argv[1], n, tsd_version());
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    tsd_entry e;
    st = tsd_checkpoint_entry(&e, ck, i);
    if (st != TSD_OK) {
      fprintf(stderr, "app: entry %zu: %s\n", i, tsd_last_error());
      rc = 1;
      break;
    }
    printf("%s\n", e.key);
  }
  tsd_checkpoint_free(ck);
  return rc;
}
