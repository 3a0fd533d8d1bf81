/* torchscript_stub.c — the pure-C build (-DTSD_WITH_TORCH=OFF): no LibTorch,
 * so no TorchScript models. Everything else works. */
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

tsd_status tsd_checkpoint_open_torchscript(tsd_checkpoint **out,
                                           const char *path) {
  if (out) *out = NULL;
  return tsd__err(TSD_ERR_UNSUPPORTED,
                  "%s: this build of tsd has no LibTorch (TSD_WITH_TORCH=OFF); "
                  "TorchScript archives cannot be opened as checkpoints",
                  path ? path : "(null)");
}
