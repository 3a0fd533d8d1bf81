/* torchscript_stub.c — libtsd_torch's functions in the pure-C build
 * (-DTSD_WITH_TORCH=OFF): no LibTorch, so no TorchScript models through it
 * (tsd_model_open_torchscript_state and tsd_checkpoint_open still read a
 * TorchScript archive's state, in libtsd). Linked into the tests, samples,
 * benchmarks and the tsd command of that build; never installed. The
 * arguments are checked as shim/torchscript.cpp checks them, so a bad call
 * fails alike in both builds. */
#include "internal.h"

int tsd_has_torch(void) { return 0; }

tsd_status tsd__torchscript_open(tsd_model **out, const char *path,
                                 const char *device, const tsd_allocator *al) {
  (void)device, (void)al;
  if (out) *out = NULL;
  return tsd__err(TSD_ERR_UNSUPPORTED,
                  "%s: this build of tsd has no LibTorch (TSD_WITH_TORCH=OFF); "
                  "TorchScript models are not available",
                  path ? path : "(null)");
}

/* As shim/torchscript.cpp's. */
static tsd_status options_check(const tsd_torchscript_options *options,
                                const char *fn) {
  if (!options) return TSD_OK;
  if (options->version < 1 ||
      options->version > TSD_TORCHSCRIPT_OPTIONS_VERSION)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "%s: options->version is %u, expected 1 to %d "
                    "(TSD_TORCHSCRIPT_OPTIONS_INIT)",
                    fn, options->version, TSD_TORCHSCRIPT_OPTIONS_VERSION);
  return tsd__allocator_check(options->allocator, fn);
}

tsd_status tsd_model_open_torchscript(tsd_model **out, const char *path,
                                      const tsd_torchscript_options *options) {
  static const char fn[] = "tsd_model_open_torchscript";
  if (!out) return tsd__err(TSD_ERR_INVALID_ARG, "%s: out is NULL", fn);
  *out = NULL;
  if (!path) return tsd__err(TSD_ERR_INVALID_ARG, "%s: path is NULL", fn);
  tsd_status st = options_check(options, fn);
  if (st) return st;
  const char *device = options ? options->device : NULL;
  return tsd__torchscript_open(out, path, device ? device : "cpu",
                               options ? options->allocator : NULL);
}

tsd_status
tsd_checkpoint_open_torchscript(tsd_checkpoint **out, const char *path,
                                const tsd_torchscript_options *options) {
  if (out) *out = NULL;
  tsd_status st = options_check(options, "tsd_checkpoint_open_torchscript");
  if (st) return st;
  return tsd__err(TSD_ERR_UNSUPPORTED,
                  "%s: this build of tsd has no LibTorch (TSD_WITH_TORCH=OFF); "
                  "TorchScript archives cannot be opened as checkpoints",
                  path ? path : "(null)");
}
