/* torchscript_stub.c — libtsd_torch's functions in the pure-C build
 * (-DTSD_WITH_TORCH=OFF): no LibTorch, so no TorchScript models through it
 * (tsd_model_open_torchscript_state and tsd_checkpoint_open still read a
 * TorchScript archive's state, in libtsd). Linked into the tests, samples,
 * benchmarks and the tsd command of that build; never installed. */
#include "internal.h"

int tsd_has_torch(void) { return 0; }

tsd_status tsd__torchscript_open(tsd_model **out, const char *path,
                                 const char *device) {
  (void)device;
  if (out) *out = NULL;
  return tsd__err(TSD_ERR_UNSUPPORTED,
                  "%s: this build of tsd has no LibTorch (TSD_WITH_TORCH=OFF); "
                  "TorchScript models are not available",
                  path ? path : "(null)");
}

tsd_status tsd_model_open_torchscript(tsd_model **out, const char *path,
                                      const char *device) {
  if (!out)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_model_open_torchscript: out is NULL");
  *out = NULL;
  if (!path)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_model_open_torchscript: path is NULL");
  return tsd__torchscript_open(out, path, device ? device : "cpu");
}

tsd_status tsd_checkpoint_open_torchscript(tsd_checkpoint **out,
                                           const char *path) {
  if (out) *out = NULL;
  return tsd__err(TSD_ERR_UNSUPPORTED,
                  "%s: this build of tsd has no LibTorch (TSD_WITH_TORCH=OFF); "
                  "TorchScript archives cannot be opened as checkpoints",
                  path ? path : "(null)");
}
