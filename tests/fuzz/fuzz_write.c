/* fuzz_write — the writers over a hostile checkpoint: the fuzzed bytes are
 * opened (any format), every tensor is read in windows at a fuzz-chosen
 * place and compared with a whole read (tsd__tensor_read_range: strided
 * sub-views of hostile geometries; a difference traps), then the dict is
 * written as .pth and as safetensors through tsd_model_from_checkpoint to
 * /dev/null (a descriptor that cannot seek: CRCs by a first pass), when the
 * output bound lets it and it is small enough to keep the fuzzer fast. */
#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define MAX_OUT ((uint64_t)4 << 20)

static void check_windows(const tsd_checkpoint *c, const uint8_t *data,
                          size_t size) {
  for (size_t i = 0; i < tsd_checkpoint_count(c); i++) {
    const tsd__value *v = tsd__ckpt_val(c, i);
    if (v->kind != TSD__V_TENSOR) continue;
    const tsd__tensor *t = v->u.tensor;
    uint64_t n = t->numel > 0 ? (uint64_t)t->numel : 0;
    size_t isz = tsd_dtype_size(t->dtype);
    if (n * isz > (1u << 20)) continue;
    uint8_t *whole = malloc(n * isz + 1), *part = malloc(n * isz + 1);
    if (!whole || !part) __builtin_trap();
    if (tsd__tensor_read(c, t, t->dtype, whole, NULL) == TSD_OK) {
      uint64_t first = size ? data[i % size] % (n + 1) : 0;
      uint64_t count = size ? data[(i + 1) % size] % (n - first + 1) : 0;
      if (tsd__tensor_read_range(c, t, t->dtype, first, count, part) !=
              TSD_OK ||
          memcmp(part, whole + first * isz, count * isz) != 0)
        __builtin_trap();
    }
    free(whole);
    free(part);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tsd_checkpoint *c = NULL;
  if (tsd_checkpoint_open_memory(&c, data, size, NULL) != TSD_OK) return 0;
  if (tsd_checkpoint_root_kind(c) == TSD_KIND_DICT) {
    check_windows(c, data, size);
    uint64_t bytes = 0;
    tsd_model *m = NULL;
    if (tsd_checkpoint_output_bytes(&bytes, c) == TSD_OK && bytes <= MAX_OUT &&
        tsd_model_from_checkpoint(&m, c, NULL) == TSD_OK) {
      int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
      if (fd < 0) __builtin_trap();
      tsd_save_options o = TSD_SAVE_OPTIONS_INIT;
      o.fd = fd;
      o.format = TSD_SAVE_NATIVE;
      (void)tsd_model_save(m, NULL, &o);
      o.format = TSD_SAVE_SAFETENSORS;
      (void)tsd_model_save(m, NULL, &o);
      close(fd);
      tsd_model_free(m);
    }
  }
  tsd_checkpoint_free(c);
  return 0;
}
