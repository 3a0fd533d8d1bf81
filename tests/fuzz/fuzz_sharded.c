/* fuzz_sharded — sharded checkpoints: the input is the `*.index.json`.
 *
 * A sharded index is opened from a path (its shards are named relative to
 * its directory), so at the first call this target makes one per-process
 * directory (mkdtemp) and writes the shards of fuzz_common.h into it
 * (tsdf_write_shards: the fixed model as safetensors and .pth, halves of it,
 * a malformed and an empty shard). Each input is written over
 * in.index.json in that directory (no per-input mkdir), opened, read and
 * loaded into the fixed model (strict, non-strict, auto-pop); a failed load
 * that changed the model's bytes traps. The directory is removed at exit.
 * The seeds (make_seeds.py, sharded/) name these shards; test_sharded.cc
 * replays findings (tests/malformed/regressions_sharded/) the same way. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"

static char g_dir[256];
static char g_index[300];

static void cleanup(void) {
  char p[320];
  for (size_t i = 0; i < 6; i++) {
    snprintf(p, sizeof p, "%s/%s", g_dir, tsdf_shard_files[i]);
    unlink(p);
  }
  unlink(g_index);
  rmdir(g_dir);
}

static void setup(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(g_dir, sizeof g_dir, "%s/tsd_fuzz_sharded.XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(g_dir)) __builtin_trap();
  atexit(cleanup);
  snprintf(g_index, sizeof g_index, "%s/in.index.json", g_dir);
  if (tsdf_write_shards(g_dir) != TSD_OK) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_dir[0]) setup();
  if (tsdf_write_file(g_index, data, size) != 0) __builtin_trap();
  tsd_checkpoint *c = NULL;
  if (tsd_checkpoint_open(&c, g_index, NULL) != TSD_OK) {
    if (c || !tsd_last_error()[0]) __builtin_trap();
    return 0;
  }
  tsdf_net net;
  if (tsdf_net_init(&net) != TSD_OK) __builtin_trap();
  if (tsdf_exercise(c, &net)) __builtin_trap();
  tsdf_net_free(&net);
  tsd_checkpoint_free(c);
  return 0;
}
