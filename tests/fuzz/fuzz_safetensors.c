/* fuzz_safetensors — the safetensors reader (header length, JSON header,
 * offsets, data) and everything behind it: the input is a safetensors file.
 * Byte 8 is forced to '{' so that tsd recognises every input of 9 bytes or
 * more as safetensors by content (as it does for a file named .bin), not as
 * a zip or legacy checkpoint. The file is opened from memory, read and
 * loaded (strict, non-strict, auto-pop) into the fixed model of
 * fuzz_common.h; a failed load that changed the model's bytes traps. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 9) return 0;
  uint8_t *buf = (uint8_t *)malloc(size);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[8] = '{';
  tsd_checkpoint *c = NULL;
  if (tsd_checkpoint_open_memory(&c, buf, size, NULL) != TSD_OK) {
    if (c || !tsd_last_error()[0]) __builtin_trap();
  } else {
    tsdf_net net;
    if (tsdf_net_init(&net) != TSD_OK) __builtin_trap();
    if (tsdf_exercise(c, &net)) __builtin_trap();
    tsdf_net_free(&net);
    tsd_checkpoint_free(c);
  }
  free(buf);
  return 0;
}
