// torch_forward.cpp — C++: a fine-tuned checkpoint loaded into a TorchScript
// model through tsd, then a forward pass on the module it loaded into.
//
//   torch_forward MODEL.pt CHECKPOINT INPUT [OUT] [--held]
//
// MODEL.pt    a TorchScript archive (Python: torch.jit.save(torch.jit.script(m)))
// CHECKPOINT  the fine-tuned weights: a state dict or a training checkpoint
//             ({'epoch': 5, 'state_dict': {...}}: the state dict is found
//             as tsd_checkpoint_select_auto finds it), .pth or safetensors
// INPUT       a .pth or safetensors file with a float tensor named "input"
//             (read by tsd into an at::Tensor: no Python pickle in C++)
// OUT         if given, the output logits, float32 in C order, raw
// --held      the program opens MODEL.pt itself (torch::jit::load) and tsd
//             loads the checkpoint into that module (tsd_torch::load);
//             otherwise tsd opens it (tsd_model_open_torchscript) and the
//             program takes the module from the model (tsd_torch::module).
//
// Prints the load report (PyTorch's text) and each input row's best class.
// The load is strict, as load_state_dict's default: a key the model lacks,
// a missing key or a shape that differs fails it, and then nothing of the
// module has changed. Build: link tsd::torch and LibTorch
// (samples/CMakeLists.txt). Exit 0 on success, 1 when the load raised, 2 on
// any other error.
#include <torch/script.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tsd.h"
#include "tsd_torch.hpp"

namespace {

int die(const char *what, tsd_status st) {
  std::fprintf(stderr, "torch_forward: %s: %s (%s)\n", what, tsd_last_error(),
               tsd_status_name(st));
  return 2;
}

// The tensor named "input" of a checkpoint file, as float32.
tsd_status read_input(const char *path, at::Tensor *out) {
  tsd_checkpoint *ck = nullptr;
  tsd_status st = tsd_checkpoint_open(&ck, path, nullptr);
  if (st != TSD_OK) return st;
  size_t index = 0;
  tsd_entry e;
  if ((st = tsd_checkpoint_find(&index, ck, "input")) == TSD_OK &&
      (st = tsd_checkpoint_entry(&e, ck, index)) == TSD_OK) {
    if (e.kind != TSD_KIND_TENSOR) {
      std::fprintf(stderr, "torch_forward: %s: \"input\" is %s, not a tensor\n",
                   path, e.type_repr);
      st = TSD_ERR_TYPE;
    } else {
      std::vector<int64_t> shape(e.shape, e.shape + e.ndim);
      *out = at::empty(shape, at::kFloat);
      st = tsd_checkpoint_read(out->data_ptr(), size_t(out->nbytes()), ck,
                               index, TSD_FLOAT32);
    }
  }
  tsd_checkpoint_free(ck);
  return st;
}

} // namespace

int main(int argc, char **argv) {
  bool held = false;
  std::vector<const char *> args;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--held"))
      held = true;
    else
      args.push_back(argv[i]);
  }
  if (args.size() < 3 || args.size() > 4) {
    std::fprintf(stderr,
                 "usage: torch_forward MODEL.pt CHECKPOINT INPUT [OUT] [--held]\n");
    return 2;
  }
  const char *model_path = args[0], *ckpt_path = args[1], *input_path = args[2];
  const char *out_path = args.size() > 3 ? args[3] : nullptr;

  tsd_checkpoint *ck = nullptr;
  tsd_status st = tsd_checkpoint_open(&ck, ckpt_path, nullptr);
  if (st != TSD_OK) return die("open checkpoint", st);
  const char *selected = nullptr;
  if ((st = tsd_checkpoint_select_auto(&selected, ck)) != TSD_OK) {
    tsd_checkpoint_free(ck);
    return die("find the state dict", st);
  }
  if (selected) std::printf("state dict: checkpoint['%s']\n", selected);

  tsd_load_options opts = TSD_LOAD_OPTIONS_INIT; // strict
  tsd_report *report = nullptr;
  torch::jit::Module module;
  tsd_model *model = nullptr;
  try {
    if (held) {
      // The program's own module; tsd writes into its tensors.
      module = torch::jit::load(model_path);
      st = tsd_torch::load(&report, module, ck, &opts);
    } else {
      st = tsd_model_open_torchscript(&model, model_path, NULL);
      if (st != TSD_OK) {
        tsd_checkpoint_free(ck);
        return die("open model", st);
      }
      st = tsd_load(&report, model, ck, &opts);
      if (st == TSD_OK) module = tsd_torch::module(model);
    }
  } catch (const std::exception &e) { // torch::jit::load, tsd_torch::module
    std::fprintf(stderr, "torch_forward: %s\n", e.what());
    tsd_model_free(model);
    tsd_checkpoint_free(ck);
    return 2;
  }
  tsd_checkpoint_free(ck); // the loaded tensors are the module's own
  if (st != TSD_OK && st != TSD_ERR_LOAD) {
    tsd_model_free(model);
    return die("load", st);
  }
  const bool ok = tsd_report_ok(report);
  std::printf("%s%s\n", ok ? "" : "RuntimeError: ", tsd_report_message(report));
  tsd_report_free(report);
  if (!ok) {
    tsd_model_free(model);
    return 1;
  }

  at::Tensor x;
  if ((st = read_input(input_path, &x)) != TSD_OK) {
    tsd_model_free(model);
    return die("read input", st);
  }
  at::Tensor logits;
  try {
    torch::NoGradGuard no_grad;
    module.eval();
    logits = module.forward({x}).toTensor().to(at::kFloat).contiguous();
  } catch (const std::exception &e) {
    std::fprintf(stderr, "torch_forward: forward: %s\n", e.what());
    tsd_model_free(model);
    return 2;
  }
  // The model (when tsd opened the module) may go now: `module` is a handle
  // of its own.
  tsd_model_free(model);

  at::Tensor best = logits.argmax(1);
  for (int64_t i = 0; i < best.size(0); i++)
    std::printf("input %lld: class %lld\n", (long long)i,
                (long long)best[i].item<int64_t>());
  if (out_path) {
    FILE *f = std::fopen(out_path, "wb");
    size_t n = size_t(logits.numel());
    bool written = f && std::fwrite(logits.data_ptr<float>(), sizeof(float), n,
                                    f) == n;
    if (f && std::fclose(f) != 0) written = false;
    if (!written) {
      std::fprintf(stderr, "torch_forward: cannot write %s\n", out_path);
      return 2;
    }
    std::printf("wrote %s: logits %s\n", out_path,
                c10::str(logits.sizes()).c_str());
  }
  return 0;
}
