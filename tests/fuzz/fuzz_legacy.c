/* fuzz_legacy — the legacy (pre-1.6) torch.save format: the input is a
 * legacy file. Its first byte is forced to 0x80 (a pickle PROTO opcode) so
 * that tsd dispatches every input to the legacy reader, not the zip one. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  uint8_t *buf = (uint8_t *)malloc(size);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[0] = 0x80;
  tsd_checkpoint *c = NULL;
  if (tsd_checkpoint_open_memory(&c, buf, size, NULL) != TSD_OK) {
    if (c || !tsd_last_error()[0]) __builtin_trap();
  } else {
    if (tsdf_exercise(c, NULL)) __builtin_trap();
    tsd_checkpoint_free(c);
  }
  free(buf);
  return 0;
}
