// test_extra_state.cc — a module's `_extra_state` (tsd_model_set_extra_state),
// PyTorch 1.13's Module._load_from_state_dict rules. The texts are the ones
// Python prints for the same model (tests/parity/run_extra_state.py checks
// them against PyTorch itself, through the CLI and a layout file).
#include "test_helpers.h"

using namespace tsdtest;

namespace {

struct Calls {
  std::vector<std::string> keys;
  std::vector<int64_t> ints;
  std::vector<float> floats; // element 0 of a tensor value
  tsd_status ret = TSD_OK;
};

tsd_status record(void *user, const char *key, const tsd_checkpoint *c,
                  size_t index) {
  auto *calls = static_cast<Calls *>(user);
  calls->keys.push_back(key);
  tsd_entry e;
  EXPECT_EQ(tsd_checkpoint_entry(&e, c, index), TSD_OK);
  if (e.kind == TSD_KIND_INT) calls->ints.push_back(e.int_value);
  if (e.kind == TSD_KIND_TENSOR) {
    std::vector<float> v(static_cast<size_t>(e.numel));
    EXPECT_EQ(
        tsd_checkpoint_read(v.data(), v.size() * 4, c, index, TSD_FLOAT32),
        TSD_OK);
    calls->floats.push_back(v.empty() ? 0.f : v[0]);
  }
  return calls->ret;
}

// class Net(nn.Module): fc = Linear(2, 1) whose class overrides
// set_extra_state; out = Linear(1, 1) plain.
struct Net {
  Model m{"Net"};
  std::vector<unsigned char> *w;
  Calls calls;
  Net() {
    w = &m.add("fc.weight", {1, 2});
    m.add("fc.bias", {1});
    m.add("out.weight", {1, 1});
    m.add("out.bias", {1});
    EXPECT_EQ(tsd_model_set_extra_state(m.get(), "fc", record, &calls),
              TSD_OK)
        << tsd_last_error();
  }
};

void full(CkptBuilder &b) {
  b.f32("fc.weight", {1, 2}).f32("fc.bias", {1});
  b.f32("out.weight", {1, 1}).f32("out.bias", {1});
}

} // namespace

TEST(ExtraState, PresentValueIsMatchedAndHandedToTheCallback) {
  Net n;
  CkptBuilder b;
  b.add("fc._extra_state", b.integer(7));
  full(b);
  Load l(n.m.get(), b.get());
  ASSERT_EQ(l.status, TSD_OK) << tsd_last_error();
  EXPECT_EQ(l.message(), "<All keys matched successfully>");
  EXPECT_EQ(n.calls.keys, std::vector<std::string>{"fc._extra_state"});
  EXPECT_EQ(n.calls.ints, std::vector<int64_t>{7});
  EXPECT_EQ(as_f32(*n.w), 0.5f);
  // not a copied tensor: not in the matched list
  EXPECT_EQ(l.list(TSD_LIST_MATCHED).size(), 4u);
}

TEST(ExtraState, AbsentValueIsMissingAfterTheModulesOwnMissingKeys) {
  Net n;
  CkptBuilder b;
  b.f32("fc.weight", {1, 2}).f32("out.weight", {1, 1}).f32("out.bias", {1});
  Load l(n.m.get(), b.get());
  EXPECT_EQ(l.status, TSD_ERR_LOAD);
  EXPECT_EQ(l.message(),
            "Error(s) in loading state_dict for Net:\n\tMissing key(s) in "
            "state_dict: \"fc.bias\", \"fc._extra_state\". ");
  EXPECT_TRUE(n.calls.keys.empty());
  Load ln(n.m.get(), b.get(), 0);
  ASSERT_EQ(ln.status, TSD_OK);
  EXPECT_EQ(ln.message(), "_IncompatibleKeys(missing_keys=['fc.bias', "
                          "'fc._extra_state'], unexpected_keys=[])");
  EXPECT_TRUE(n.calls.keys.empty());
}

TEST(ExtraState, UndeclaredModuleReportsTheKeyUnexpected) {
  Net n;
  CkptBuilder b;
  full(b);
  b.add("fc._extra_state", b.integer(1));
  b.f32("out._extra_state", {1});
  Load l(n.m.get(), b.get(), 0);
  ASSERT_EQ(l.status, TSD_OK);
  EXPECT_EQ(l.message(), "_IncompatibleKeys(missing_keys=[], "
                         "unexpected_keys=['out._extra_state'])");
  EXPECT_EQ(n.calls.ints, std::vector<int64_t>{1});
  // set_fn NULL: a plain module again
  ASSERT_EQ(tsd_model_set_extra_state(n.m.get(), "fc", nullptr, nullptr),
            TSD_OK);
  Load l2(n.m.get(), b.get(), 0);
  EXPECT_EQ(l2.message(),
            "_IncompatibleKeys(missing_keys=[], unexpected_keys=['fc._extra_"
            "state', 'out._extra_state'])");
  EXPECT_EQ(n.calls.ints.size(), 1u);
}

TEST(ExtraState, FailedLoadAndDryRunNeverCallIt) {
  Net n;
  CkptBuilder b;
  b.add("fc._extra_state", b.integer(3));
  b.f32("fc.weight", {1, 3}).f32("fc.bias", {1});
  b.f32("out.weight", {1, 1}).f32("out.bias", {1});
  Load l(n.m.get(), b.get(), 0); // size mismatch raises even non-strict
  EXPECT_EQ(l.status, TSD_ERR_LOAD);
  EXPECT_TRUE(n.calls.keys.empty());
  CkptBuilder ok;
  ok.add("fc._extra_state", ok.integer(3));
  full(ok);
  tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
  o.dry_run = 1;
  tsd_report *r = nullptr;
  ASSERT_EQ(tsd_load(&r, n.m.get(), ok.get(), &o), TSD_OK);
  tsd_report_free(r);
  EXPECT_TRUE(n.calls.keys.empty());
}

TEST(ExtraState, CallbackErrorStopsTheLoadBeforeAnyTensorIsCopied) {
  Net n;
  n.calls.ret = TSD_ERR_UNSUPPORTED;
  CkptBuilder c;
  c.f32("fc.weight", {1, 2}, {9.f, 9.f}).f32("fc.bias", {1});
  c.f32("out.weight", {1, 1}).f32("out.bias", {1});
  c.add("fc._extra_state", c.integer(3));
  tsd_report *r = nullptr;
  EXPECT_EQ(tsd_load(&r, n.m.get(), c.get(), nullptr), TSD_ERR_UNSUPPORTED);
  EXPECT_EQ(r, nullptr);
  EXPECT_NE(std::string(tsd_last_error()).find("fc._extra_state"),
            std::string::npos)
      << tsd_last_error();
  EXPECT_EQ(as_f32(*n.w), 1.f); // untouched (Model fills 1.0)
}

TEST(ExtraState, RootModuleAndRemappedKeys) {
  Model m("Root");
  m.add("w", {1});
  Calls calls;
  ASSERT_EQ(tsd_model_set_extra_state(m.get(), "", record, &calls), TSD_OK);
  CkptBuilder b;
  b.f32("module.w", {1}).f32("module._extra_state", {2}, {4.f, 5.f});
  tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
  const char *strip[] = {"module."};
  o.strip_prefixes = strip;
  o.n_strip_prefixes = 1;
  tsd_report *r = nullptr;
  ASSERT_EQ(tsd_load(&r, m.get(), b.get(), &o), TSD_OK) << tsd_last_error();
  EXPECT_STREQ(tsd_report_message(r), "<All keys matched successfully>");
  tsd_report_free(r);
  // the key as the model names it; the entry is the checkpoint's
  EXPECT_EQ(calls.keys, std::vector<std::string>{"_extra_state"});
  EXPECT_EQ(calls.floats, std::vector<float>{4.f});
}

TEST(ExtraState, BadArguments) {
  Model m("M");
  m.add("fc.weight", {1});
  EXPECT_EQ(tsd_model_set_extra_state(nullptr, "", record, nullptr),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(tsd_model_set_extra_state(m.get(), nullptr, record, nullptr),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(tsd_model_set_extra_state(m.get(), "a..b", record, nullptr),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(tsd_model_set_extra_state(m.get(), "fc.weight", record, nullptr),
            TSD_ERR_INVALID_ARG);
}
