/* fuzz_load — a whole open-then-load: the fuzzed checkpoint is opened, read
 * and loaded (strict, non-strict, auto-pop) into a fixed small C-owned model
 * (Linear, a declared ReLU, a BatchNorm2d: fuzz_common.h). A failed load
 * that changed any byte of the model traps: tsd_load is atomic. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tsd_checkpoint *c = NULL;
  if (tsd_checkpoint_open_memory(&c, data, size, NULL) != TSD_OK) {
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
