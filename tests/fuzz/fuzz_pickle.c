/* fuzz_pickle — the restricted unpickler: the input is the data.pkl of an
 * otherwise valid archive that also holds storage records data/0 .. data/7
 * (64 bytes each), so that persistent ids naming them resolve and the tensor
 * rebuilding code is reached. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint8_t storage[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  static const char *const names[8] = {
      "archive/data/0", "archive/data/1", "archive/data/2", "archive/data/3",
      "archive/data/4", "archive/data/5", "archive/data/6", "archive/data/7"};
  tsdf_record recs[9];
  recs[0].name = "archive/data.pkl";
  recs[0].data = data;
  recs[0].size = size;
  for (int i = 0; i < 8; i++) {
    recs[i + 1].name = names[i];
    recs[i + 1].data = storage;
    recs[i + 1].size = sizeof storage;
  }
  size_t n = 0;
  uint8_t *z = tsdf_zip(recs, 9, &n);
  if (!z) return 0;
  tsd_checkpoint *c = NULL;
  if (tsd_checkpoint_open_memory(&c, z, n, NULL) != TSD_OK) {
    if (c || !tsd_last_error()[0]) __builtin_trap();
  } else {
    if (tsdf_exercise(c, NULL)) __builtin_trap();
    tsd_checkpoint_free(c);
  }
  free(z);
  return 0;
}
