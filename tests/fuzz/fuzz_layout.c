/* fuzz_layout — layout files (tsd_model_from_layout, docs/layout.md).
 *
 * A layout is opened from a path: each input is written over one
 * per-process temporary file, then built into a model with caller memory
 * (a callback that refuses more than 64 MiB in all, as a host with a
 * budget would) and, separately, sized for an arena. A built model is
 * walked: every tensor found back by name at its own index. Failures must
 * set a message and leave no model. Seeds: make_seeds.py (layout/);
 * findings go to tests/malformed/regressions_layout/, which test_layout
 * replays. */
#define _POSIX_C_SOURCE 200809L /* mkstemp */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"

static char g_path[300];

static void cleanup(void) { unlink(g_path); }

static void setup(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(g_path, sizeof g_path, "%s/tsd_fuzz_layout.XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  int fd = mkstemp(g_path);
  if (fd < 0) __builtin_trap();
  close(fd);
  atexit(cleanup);
}

typedef struct budget {
  void *blocks[4096];
  size_t n, bytes;
} budget;

static void *give(void *user, const tsd_tensor_info *info, size_t nbytes) {
  budget *b = user;
  if (!info || !info->name) __builtin_trap();
  if (b->n == 4096 || nbytes > ((size_t)64 << 20) - b->bytes) return NULL;
  void *p = malloc(nbytes ? nbytes : 1);
  if (p) {
    b->blocks[b->n++] = p;
    b->bytes += nbytes;
  }
  return p;
}

static tsd_status extra(void *user, const char *key, const tsd_checkpoint *c,
                        size_t index) {
  (void)user, (void)key, (void)c, (void)index;
  return TSD_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_path[0]) setup();
  if (tsdf_write_file(g_path, data, size) != 0) __builtin_trap();
  size_t need = 0;
  tsd_status sized = tsd_layout_arena_bytes(&need, g_path);
  budget b = {{0}, 0, 0};
  tsd_layout_options o = TSD_LAYOUT_OPTIONS_INIT;
  o.memory = give;
  o.memory_user = &b;
  o.extra_state = extra;
  tsd_model *m = NULL;
  tsd_status st = tsd_model_from_layout(&m, g_path, &o);
  if (st != TSD_OK) {
    if (m || !tsd_last_error()[0]) __builtin_trap();
  } else {
    if (sized != TSD_OK) __builtin_trap(); /* sizing accepts what builds */
    size_t n = tsd_model_tensor_count(m);
    for (size_t i = 0; i < n; i++) {
      tsd_tensor_info info;
      size_t at = (size_t)-1;
      if (tsd_model_tensor(&info, m, i) != TSD_OK) __builtin_trap();
      if (tsd_model_find(&at, m, info.name) != TSD_OK || at != i)
        __builtin_trap();
    }
    tsd_model_free(m);
  }
  for (size_t i = 0; i < b.n; i++)
    free(b.blocks[i]);
  return 0;
}
