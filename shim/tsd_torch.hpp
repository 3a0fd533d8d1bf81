// tsd_torch.hpp — tsd for C++ programs that hold TorchScript modules.
//
// Part of libtsd_torch (CMake target tsd::torch, pkg-config tsd-torch), the
// LibTorch half of tsd; include it after (or instead of) <tsd.h> in C++17
// code that links LibTorch. Two things a C program cannot express:
//
//  - the torch::jit::Module behind a model tsd opened
//    (tsd_model_open_torchscript), to run it after the load — without saving
//    the loaded model and loading it again;
//  - a tsd model over a module the program already holds (torch::jit::load,
//    or a module built in C++), so a checkpoint loads into it with tsd's
//    semantics and report: PyTorch 1.13's load_state_dict rules and texts,
//    auto-pop, remapping, and a failed load that changes nothing.
//
// A torch::jit::Module is a handle to a shared object: the module a model
// gives, the module it was made from and the model itself all see the same
// tensors, so a load through one is visible through the others. The model
// keeps its own handle, so the module stays alive while the model does (and
// the other way round). Nothing here crosses the C border as a C++
// exception: the C functions return a tsd_status and set tsd_last_error();
// the inline helpers below throw tsd_torch::error only where a C++ caller
// would expect it (module()).
//
//   tsd_model *model;
//   tsd_model_open_torchscript(&model, "resnet18_10classes.pt", nullptr);
//   tsd_report *r;
//   tsd_load(&r, model, ckpt, &options);        // as in C
//   torch::jit::Module m = tsd_torch::module(model);
//   at::Tensor logits = m.forward({x}).toTensor();
//
//   torch::jit::Module held = torch::jit::load("resnet18_10classes.pt");
//   tsd_torch::load(&r, held, ckpt, &options);  // loads into `held`
//
// libtsd_torch and LibTorch must be the ones the program is compiled with
// (the module crosses between them as a C++ object); tsd checks that
// libtsd_torch and libtsd come from one build.
#ifndef TSD_TORCH_HPP
#define TSD_TORCH_HPP

#include <torch/script.h>

#include <stdexcept>
#include <string>

#include "tsd.h"

extern "C" {

/// Sets *out to the module behind `model` (a handle to the same object).
/// TSD_ERR_INVALID_ARG if an argument is NULL or `model` is no TorchScript
/// model of libtsd_torch (a C-owned model, or the read-only tree of
/// tsd_model_open_torchscript_state); *out is then unchanged.
TSD_API tsd_status tsd_torch_model_module(torch::jit::Module *out,
                                          const tsd_model *model);

/// A new TorchScript model over `module` (the caller's object, not a copy:
/// tsd_load writes its tensors, whatever their device, with Tensor::copy_
/// under NoGradGuard). The model is what tsd_model_open_torchscript would
/// give for the same module: its module tree with class names (norm layers
/// get their rules), parameters then buffers in state_dict order. Free it
/// with tsd_model_free (the module lives on in the caller's handles).
/// tsd_model_save writes it as a TorchScript archive. On failure *out is
/// NULL: TSD_ERR_INVALID_ARG for a NULL argument, TSD_ERR_UNSUPPORTED for a
/// tensor tsd cannot hold (a dtype or layout tsd lacks), TSD_ERR_TORCH for
/// LibTorch's own failures.
TSD_API tsd_status tsd_torch_model_from_module(tsd_model **out,
                                               const torch::jit::Module *module);

} // extern "C"

namespace tsd_torch {

/// What the inline helpers throw: the status and tsd_last_error()'s text.
class error : public std::runtime_error {
public:
  error(tsd_status status, const char *what)
      : std::runtime_error(std::string(what) + " (" +
                           tsd_status_name(status) + ")"),
        status_(status) {}
  tsd_status status() const noexcept { return status_; }

private:
  tsd_status status_;
};

/// The module behind `model` (see tsd_torch_model_module); throws
/// tsd_torch::error if there is none.
inline torch::jit::Module module(const tsd_model *model) {
  torch::jit::Module m;
  tsd_status st = tsd_torch_model_module(&m, model);
  if (st != TSD_OK) throw error(st, tsd_last_error());
  return m;
}

/// tsd_load into a module the program holds: a model over `module`, the
/// load, the model freed; `module` keeps what was loaded. Returns tsd_load's
/// status and *out its report (TSD_OK and TSD_ERR_LOAD give one, to free
/// with tsd_report_free; it does not depend on the freed model). A failure
/// before the load (tsd_torch_model_from_module's, or tsd_load's own) leaves
/// *out NULL and the module unchanged.
inline tsd_status load(tsd_report **out, const torch::jit::Module &module,
                       const tsd_checkpoint *ckpt,
                       const tsd_load_options *options = nullptr) {
  if (out) *out = nullptr;
  tsd_model *m = nullptr;
  tsd_status st = tsd_torch_model_from_module(&m, &module);
  if (st != TSD_OK) return st;
  st = tsd_load(out, m, ckpt, options);
  tsd_model_free(m);
  return st;
}

} // namespace tsd_torch

#endif // TSD_TORCH_HPP
