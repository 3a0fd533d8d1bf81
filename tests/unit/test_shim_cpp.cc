// test_shim_cpp.cc — shim/tsd_torch.hpp: the torch::jit::Module behind a
// model tsd opened, and tsd loads into a module the program holds. The
// fixtures: shim_tiny.pt (a scripted Tiny) and shim_tiny_src.pt (the same
// module with other values), from make_shim_fixtures.py. LibTorch builds
// only (test_shim*); the only test file that includes LibTorch headers.
#include <torch/script.h>

#include <map>
#include <string>

#include "test_helpers.h"
#include "tsd_torch.hpp"

namespace {

std::string fixture(const char *name) {
  return std::string(TSD_FIXTURES) + "/" + name;
}

// name -> tensor, as state_dict() names them (parameters and buffers).
std::map<std::string, at::Tensor> state_of(const torch::jit::Module &m) {
  std::map<std::string, at::Tensor> s;
  for (const auto &p : m.named_parameters(true)) s[p.name] = p.value;
  for (const auto &b : m.named_buffers(true)) s[b.name] = b.value;
  return s;
}

// How many of the checkpoint's tensors equal the module's (as float64), and
// how many there are; the module must have every one of them.
std::pair<int, int> equal_to_checkpoint(const torch::jit::Module &m,
                                        const tsd_checkpoint *ck) {
  auto s = state_of(m);
  int same = 0, all = 0;
  for (size_t i = 0; i < tsd_checkpoint_count(ck); i++) {
    tsd_entry e;
    EXPECT_EQ(tsd_checkpoint_entry(&e, ck, i), TSD_OK);
    if (e.kind != TSD_KIND_TENSOR) continue;
    all++;
    auto it = s.find(e.key);
    EXPECT_NE(it, s.end()) << e.key;
    if (it == s.end()) continue;
    at::Tensor v = at::empty(std::vector<int64_t>(e.shape, e.shape + e.ndim),
                             at::kDouble);
    EXPECT_EQ(tsd_checkpoint_read(v.data_ptr(), size_t(v.nbytes()), ck, i,
                                  TSD_FLOAT64),
              TSD_OK);
    if (torch::equal(it->second.to(at::kDouble), v)) same++;
  }
  return {same, all};
}

struct Ckpt {
  tsd_checkpoint *c = nullptr;
  explicit Ckpt(const std::string &path) {
    EXPECT_EQ(tsd_checkpoint_open(&c, path.c_str(), nullptr), TSD_OK)
        << tsd_last_error();
  }
  ~Ckpt() { tsd_checkpoint_free(c); }
};

} // namespace

TEST(TorchCpp, TheModuleOfAnOpenedModelSeesTheLoad) {
  Ckpt src(fixture("shim_tiny_src.pt"));
  ASSERT_NE(src.c, nullptr);
  tsd_model *model = nullptr;
  ASSERT_EQ(
      tsd_model_open_torchscript(&model, fixture("shim_tiny.pt").c_str(), NULL),
      TSD_OK)
      << tsd_last_error();
  torch::jit::Module m = tsd_torch::module(model);
  EXPECT_EQ(m.type()->name()->name(), "Tiny");
  auto before = equal_to_checkpoint(m, src.c);
  ASSERT_EQ(before.second, 13);
  ASSERT_LT(before.first, before.second); // the load has something to change

  tsd_report *r = nullptr;
  ASSERT_EQ(tsd_load(&r, model, src.c, nullptr), TSD_OK) << tsd_last_error();
  EXPECT_STREQ(tsd_report_message(r), "<All keys matched successfully>");
  tsd_report_free(r);
  auto after = equal_to_checkpoint(m, src.c); // through the handle taken first
  EXPECT_EQ(after.first, after.second);
  // Two handles, one object; the module outlives the model.
  EXPECT_EQ(tsd_torch::module(model)._ivalue().get(), m._ivalue().get());
  tsd_model_free(model);
  EXPECT_EQ(equal_to_checkpoint(m, src.c).first, 13);
}

TEST(TorchCpp, LoadsIntoAHeldModule) {
  Ckpt src(fixture("shim_tiny_src.pt"));
  ASSERT_NE(src.c, nullptr);
  torch::jit::Module held = torch::jit::load(fixture("shim_tiny.pt"));
  ASSERT_LT(equal_to_checkpoint(held, src.c).first, 13);
  tsd_report *r = nullptr;
  tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
  ASSERT_EQ(tsd_torch::load(&r, held, src.c, &o), TSD_OK) << tsd_last_error();
  ASSERT_NE(r, nullptr);
  EXPECT_STREQ(tsd_report_class_name(r), "Tiny");
  EXPECT_STREQ(tsd_report_message(r), "<All keys matched successfully>");
  tsd_report_free(r);
  EXPECT_EQ(equal_to_checkpoint(held, src.c).first, 13);
}

TEST(TorchCpp, AFailedLoadLeavesTheHeldModuleUnchanged) {
  Ckpt src(fixture("shim_tiny_src.pt"));
  ASSERT_NE(src.c, nullptr);
  ASSERT_EQ(tsd_checkpoint_pop(src.c, "bn.bias"), TSD_OK);
  torch::jit::Module held = torch::jit::load(fixture("shim_tiny.pt"));
  std::map<std::string, at::Tensor> before;
  for (const auto &kv : state_of(held)) before[kv.first] = kv.second.clone();

  tsd_report *r = nullptr;
  ASSERT_EQ(tsd_torch::load(&r, held, src.c), TSD_ERR_LOAD);
  ASSERT_NE(r, nullptr);
  EXPECT_STREQ(tsd_report_message(r),
               "Error(s) in loading state_dict for Tiny:\n"
               "\tMissing key(s) in state_dict: \"bn.bias\". ");
  tsd_report_free(r);
  auto now = state_of(held);
  ASSERT_EQ(now.size(), before.size());
  for (const auto &kv : before)
    EXPECT_TRUE(torch::equal(now[kv.first], kv.second)) << kv.first;
  // auto-pop and non-strict: the rest loads, "bn.bias" is reported missing.
  tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
  o.strict = 0;
  ASSERT_EQ(tsd_torch::load(&r, held, src.c, &o), TSD_OK);
  EXPECT_STREQ(tsd_report_message(r),
               "_IncompatibleKeys(missing_keys=['bn.bias'], "
               "unexpected_keys=[])");
  tsd_report_free(r);
  EXPECT_EQ(equal_to_checkpoint(held, src.c).first, 12);
  EXPECT_TRUE(torch::equal(state_of(held)["bn.bias"], before["bn.bias"]));
}

TEST(TorchCpp, OnlyLibTorchModelsHaveAModule) {
  torch::jit::Module untouched;
  tsd_model *c_owned = nullptr;
  ASSERT_EQ(tsd_model_new(&c_owned, "Net"), TSD_OK);
  EXPECT_EQ(tsd_torch_model_module(&untouched, c_owned), TSD_ERR_INVALID_ARG);
  EXPECT_NE(std::string(tsd_last_error()).find("is not a TorchScript model"),
            std::string::npos)
      << tsd_last_error();
  try {
    tsd_torch::module(c_owned);
    ADD_FAILURE() << "tsd_torch::module did not throw";
  } catch (const tsd_torch::error &e) {
    EXPECT_EQ(e.status(), TSD_ERR_INVALID_ARG);
    EXPECT_NE(std::string(e.what()).find("(TSD_ERR_INVALID_ARG)"),
              std::string::npos)
        << e.what();
  }
  tsd_model_free(c_owned);
  // The read-only tree of an archive (no LibTorch) holds no module either.
  tsd_model *state = nullptr;
  ASSERT_EQ(tsd_model_open_torchscript_state(
                &state, fixture("shim_tiny.pt").c_str(), NULL),
            TSD_OK);
  EXPECT_EQ(tsd_torch_model_module(&untouched, state), TSD_ERR_INVALID_ARG);
  tsd_model_free(state);
  EXPECT_EQ(tsd_torch_model_module(nullptr, nullptr), TSD_ERR_INVALID_ARG);
  tsd_model *m = reinterpret_cast<tsd_model *>(1);
  EXPECT_EQ(tsd_torch_model_from_module(&m, nullptr), TSD_ERR_INVALID_ARG);
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(tsd_torch_model_from_module(nullptr, &untouched),
            TSD_ERR_INVALID_ARG);
}

TEST(TorchCpp, AModelOverAHeldModuleIsWhatOpeningTheArchiveGives) {
  torch::jit::Module held = torch::jit::load(fixture("shim_tiny.pt"));
  tsd_model *a = nullptr, *b = nullptr;
  ASSERT_EQ(tsd_torch_model_from_module(&a, &held), TSD_OK) << tsd_last_error();
  ASSERT_EQ(
      tsd_model_open_torchscript(&b, fixture("shim_tiny.pt").c_str(), NULL),
      TSD_OK);
  EXPECT_STREQ(tsd_model_class_name(a), tsd_model_class_name(b));
  ASSERT_EQ(tsd_model_tensor_count(a), tsd_model_tensor_count(b));
  for (size_t i = 0; i < tsd_model_tensor_count(a); i++) {
    tsd_tensor_info ta, tb;
    ASSERT_EQ(tsd_model_tensor(&ta, a, i), TSD_OK);
    ASSERT_EQ(tsd_model_tensor(&tb, b, i), TSD_OK);
    EXPECT_STREQ(ta.name, tb.name);
    EXPECT_EQ(ta.role, tb.role) << ta.name;
    EXPECT_EQ(ta.dtype, tb.dtype) << ta.name;
    EXPECT_EQ(ta.ndim, tb.ndim) << ta.name;
  }
  tsd_model_free(a);
  tsd_model_free(b);
}
