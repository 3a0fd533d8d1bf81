/* fuzz_zip — the zip container and everything behind it: arbitrary bytes to
 * tsd_checkpoint_open_memory, then every entry listed and every tensor read
 * (tensors over 16 MiB skipped). A crash, a sanitizer report, or a failure
 * without a message is a finding. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tsd_checkpoint *c = NULL;
  if (tsd_checkpoint_open_memory(&c, data, size, NULL) != TSD_OK) {
    if (c || !tsd_last_error()[0]) __builtin_trap();
    return 0;
  }
  if (tsdf_exercise(c, NULL)) __builtin_trap();
  tsd_checkpoint_free(c);
  return 0;
}
