// test_engine.cc — tsd_load: PyTorch 1.13's load_state_dict rules, 2.x's
// behind TSD_RULES_TORCH_2, auto-pop, atomicity (the module tree itself:
// test_module_tree.cc).
// Expected texts were produced by Debian's Python torch 1.13 on the same
// models and state dicts (the scenario is given in a comment per test).
#include <chrono>
#include <fstream>
#include <functional>

#include "test_helpers.h"

using tsdtest::as_f32;
using tsdtest::as_i64;
using tsdtest::CkptBuilder;
using tsdtest::Load;
using tsdtest::Model;
using Strings = std::vector<std::string>;

namespace {

// class Net(nn.Module): fc1 = nn.Linear(4, 3); fc2 = nn.Linear(3, 2)
struct Net {
  Model m{"Net"};
  std::vector<unsigned char> &w1 = m.add("fc1.weight", {3, 4});
  std::vector<unsigned char> &b1 = m.add("fc1.bias", {3});
  std::vector<unsigned char> &w2 = m.add("fc2.weight", {2, 3});
  std::vector<unsigned char> &b2 = m.add("fc2.bias", {2});
};

// OrderedDict: fc1.weight [3,4], head.x [1], fc1.bias [3], fc2.weight [5,3],
// fc3.weight [1], zz [2]
void mixed_checkpoint(CkptBuilder &b) {
  b.f32("fc1.weight", {3, 4}).f32("head.x", {1}).f32("fc1.bias", {3});
  b.f32("fc2.weight", {5, 3}).f32("fc3.weight", {1}).f32("zz", {2});
}

} // namespace

// ---- loading --------------------------------------------------------------

TEST(Engine, AllKeysMatchLoadsEveryValue) {
  Net n;
  CkptBuilder b;
  b.f32("fc1.weight", {3, 4}, std::vector<float>(12, 3.0f));
  b.f32("fc1.bias", {3}, {1, 2, 3});
  b.f32("fc2.weight", {2, 3}, std::vector<float>(6, -1.0f));
  b.f32("fc2.bias", {2}, {7, 8});
  Load l(n.m.get(), b.get());
  ASSERT_EQ(l.status, TSD_OK) << tsd_last_error();
  EXPECT_TRUE(tsd_report_ok(l.report));
  EXPECT_EQ(l.message(), "<All keys matched successfully>");
  EXPECT_EQ(as_f32(n.w1, 11), 3.0f);
  EXPECT_EQ(as_f32(n.b1, 2), 3.0f);
  EXPECT_EQ(as_f32(n.w2, 0), -1.0f);
  EXPECT_EQ(as_f32(n.b2, 1), 8.0f);
  EXPECT_STREQ(tsd_report_class_name(l.report), "Net");
}

TEST(Engine, MissingUnexpectedAndMismatchTogetherInPyTorchOrder) {
  Net n;
  CkptBuilder b;
  mixed_checkpoint(b);
  Load l(n.m.get(), b.get());
  EXPECT_EQ(l.status, TSD_ERR_LOAD);
  ASSERT_NE(l.report, nullptr);
  EXPECT_FALSE(tsd_report_ok(l.report));
  EXPECT_EQ(l.message(),
            "Error(s) in loading state_dict for Net:\n\tMissing key(s) in "
            "state_dict: \"fc2.bias\". \n\tUnexpected key(s) in state_dict: "
            "\"head.x\", \"fc3.weight\", \"zz\". \n\tsize mismatch for "
            "fc2.weight: copying a param with shape torch.Size([5, 3]) from "
            "checkpoint, the shape in current model is torch.Size([2, 3]).");
  EXPECT_EQ(std::string(tsd_last_error()), l.message());
  EXPECT_EQ(l.list(TSD_LIST_MISSING), Strings{"fc2.bias"});
  EXPECT_EQ(l.list(TSD_LIST_UNEXPECTED),
            (Strings{"head.x", "fc3.weight", "zz"}));
  EXPECT_EQ(l.list(TSD_LIST_ERRORS).size(), 3u);
  EXPECT_EQ(l.list(TSD_LIST_MISMATCHED), Strings{"fc2.weight"});
  tsd_mismatch mm;
  ASSERT_EQ(tsd_report_mismatch(&mm, l.report, TSD_LIST_MISMATCHED, 0), TSD_OK);
  EXPECT_STREQ(mm.key, "fc2.weight");
  ASSERT_EQ(mm.checkpoint_ndim, 2u);
  EXPECT_EQ(mm.checkpoint_shape[0], 5);
  ASSERT_EQ(mm.model_ndim, 2u);
  EXPECT_EQ(mm.model_shape[0], 2);
}

TEST(Engine, SizeMismatchRaisesEvenWhenNotStrict) {
  Net n;
  CkptBuilder b;
  mixed_checkpoint(b);
  Load l(n.m.get(), b.get(), /*strict=*/0);
  EXPECT_EQ(l.status, TSD_ERR_LOAD);
  EXPECT_EQ(l.message(),
            "Error(s) in loading state_dict for Net:\n\tsize mismatch for "
            "fc2.weight: copying a param with shape torch.Size([5, 3]) from "
            "checkpoint, the shape in current model is torch.Size([2, 3]).");
  // still collected, not raised
  EXPECT_EQ(l.list(TSD_LIST_MISSING), Strings{"fc2.bias"});
  EXPECT_EQ(l.list(TSD_LIST_UNEXPECTED).size(), 3u);
}

TEST(Engine, NonStrictReturnsIncompatibleKeys) {
  Net n;
  CkptBuilder b;
  b.f32("fc1.weight", {3, 4}, std::vector<float>(12, 9.0f)).f32("extra", {1});
  Load l(n.m.get(), b.get(), 0);
  ASSERT_EQ(l.status, TSD_OK) << tsd_last_error();
  EXPECT_EQ(l.message(),
            "_IncompatibleKeys(missing_keys=['fc1.bias', 'fc2.weight', "
            "'fc2.bias'], unexpected_keys=['extra'])");
  EXPECT_EQ(as_f32(n.w1, 5), 9.0f);
}

TEST(Engine, AutoPopStrictStillFailsOnPoppedKeys) {
  Net n;
  CkptBuilder b;
  mixed_checkpoint(b);
  Load l(n.m.get(), b.get(), 1, /*auto_pop=*/1);
  EXPECT_EQ(l.status, TSD_ERR_LOAD);
  // == Python after sd.pop('fc2.weight'), strict=True
  EXPECT_EQ(l.message(),
            "Error(s) in loading state_dict for Net:\n\tMissing key(s) in "
            "state_dict: \"fc2.weight\", \"fc2.bias\". \n\tUnexpected key(s) "
            "in state_dict: \"head.x\", \"fc3.weight\", \"zz\". ");
  EXPECT_EQ(l.list(TSD_LIST_POPPED), Strings{"fc2.weight"});
  EXPECT_TRUE(l.list(TSD_LIST_MISMATCHED).empty());
  tsd_mismatch mm;
  ASSERT_EQ(tsd_report_mismatch(&mm, l.report, TSD_LIST_POPPED, 0), TSD_OK);
  EXPECT_EQ(mm.checkpoint_shape[0], 5);
  EXPECT_EQ(mm.model_shape[0], 2);
}

TEST(Engine, AutoPopNonStrictLoadsTheRest) {
  Net n;
  CkptBuilder b;
  mixed_checkpoint(b);
  size_t before = tsd__ckpt_count(b.get());
  Load l(n.m.get(), b.get(), 0, 1);
  ASSERT_EQ(l.status, TSD_OK) << tsd_last_error();
  EXPECT_EQ(l.message(),
            "_IncompatibleKeys(missing_keys=['fc2.weight', 'fc2.bias'], "
            "unexpected_keys=['head.x', 'fc3.weight', 'zz'])");
  EXPECT_EQ(as_f32(n.w1, 0), 0.5f);
  EXPECT_EQ(as_f32(n.w2, 0), 1.0f);            // popped: untouched
  EXPECT_EQ(tsd__ckpt_count(b.get()), before); // the checkpoint is unchanged
}

TEST(Engine, ZeroDimTensorTakesElementZeroOfOneDimTensor) {
  // class Z: register_buffer('s', torch.tensor(0.)); load {'s': [7., 8., 9.]}
  for (tsd_rules rules : {TSD_RULES_TORCH_1_13, TSD_RULES_TORCH_2}) {
    Model m("Z");
    auto &s = m.add("s", {}, TSD_BUFFER, TSD_FLOAT32, 0.0);
    CkptBuilder b;
    float one[1] = {7};
    b.f32("s", {3}, {7, 8, 9});
    Load l(m.get(), b.get(), 1, 0, rules);
    if (rules == TSD_RULES_TORCH_1_13) {
      ASSERT_EQ(l.status, TSD_OK) << tsd_last_error();
      EXPECT_EQ(l.message(), "<All keys matched successfully>");
      EXPECT_EQ(as_f32(s), 7.0f);
    } else {
      // 2.x: only a length-1 tensor is accepted
      EXPECT_EQ(l.status, TSD_ERR_LOAD);
      EXPECT_EQ(l.message(),
                "Error(s) in loading state_dict for Z:\n\tsize mismatch for s: "
                "copying a param with shape torch.Size([3]) from checkpoint, "
                "the shape in current model is torch.Size([]).");
      EXPECT_EQ(as_f32(s), 0.0f);
      CkptBuilder b1;
      b1.add("s", b1.tensor(TSD_FLOAT32, {1}, one));
      Load l1(m.get(), b1.get(), 1, 0, rules);
      ASSERT_EQ(l1.status, TSD_OK) << tsd_last_error();
      EXPECT_EQ(as_f32(s), 7.0f);
    }
  }
}

TEST(Engine, ZeroDimFromEmptyOneDimIsAnErrorNotACrash) {
  Model m("Z");
  auto &s = m.add("s", {}, TSD_BUFFER, TSD_FLOAT32, 4.0);
  CkptBuilder b;
  b.add("s", b.tensor(TSD_FLOAT32, {0}, nullptr));
  Load l(m.get(), b.get());
  EXPECT_EQ(l.status, TSD_ERR_LOAD);
  EXPECT_NE(l.message().find("IndexError: index 0 is out of bounds for "
                             "dimension 0 with size 0"),
            std::string::npos)
      << l.message();
  EXPECT_EQ(as_f32(s), 4.0f);
  // auto-pop drops it like any shape that does not fit
  Load lp(m.get(), b.get(), 0, 1);
  EXPECT_EQ(lp.status, TSD_OK);
  EXPECT_EQ(lp.list(TSD_LIST_POPPED), Strings{"s"});
  EXPECT_EQ(lp.list(TSD_LIST_MISSING), Strings{"s"});
}

TEST(Engine, ZeroDimFromTwoDimIsASizeMismatch) {
  Model m("Z");
  m.add("s", {}, TSD_BUFFER);
  CkptBuilder b;
  b.f32("s", {2, 1});
  Load l(m.get(), b.get());
  EXPECT_EQ(l.message(),
            "Error(s) in loading state_dict for Z:\n\tsize mismatch for s: "
            "copying a param with shape torch.Size([2, 1]) from checkpoint, "
            "the shape in current model is torch.Size([]).");
}

TEST(Engine, NonTensorValuesNameTheirPythonType) {
  Net n;
  CkptBuilder b;
  b.add("fc1.weight", b.integer(3));
  b.add("fc1.bias", b.str("x"));
  b.add("fc2.weight", b.value(TSD__V_NONE));
  b.add("fc2.bias", b.value(TSD__V_DICT));
  Load l(n.m.get(), b.get());
  EXPECT_EQ(l.status, TSD_ERR_LOAD);
  const char *pre = "While copying the parameter named \"";
  const char *mid =
      "\", expected torch.Tensor or Tensor-like object from checkpoint but "
      "received ";
  EXPECT_EQ(l.message(),
            std::string("Error(s) in loading state_dict for Net:\n\t") + pre +
                "fc1.weight" + mid + "<class 'int'>\n\t" + pre + "fc1.bias" +
                mid + "<class 'str'>\n\t" + pre + "fc2.weight" + mid +
                "<class 'NoneType'>\n\t" + pre + "fc2.bias" + mid +
                "<class 'dict'>");
  EXPECT_TRUE(l.list(TSD_LIST_MISSING).empty());
}

TEST(Engine, UnexpectedKeyUnderDeclaredParameterlessModule) {
  // nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)) +
  // "1.weight", "0.foo": with the ReLU known, "1.weight" is unexpected at
  // module 1 (after module 0) instead of at the root.
  for (bool declare : {true, false}) {
    Model m("Sequential");
    m.add("0.weight", {2, 2});
    m.add("0.bias", {2});
    if (declare) m.module("1", "ReLU");
    m.add("2.weight", {2, 2});
    m.add("2.bias", {2});
    CkptBuilder b;
    b.f32("0.weight", {2, 2}).f32("0.bias", {2});
    b.f32("2.weight", {2, 2}).f32("2.bias", {2});
    b.f32("1.weight", {1}).f32("0.foo", {1});
    Load l(m.get(), b.get());
    EXPECT_EQ(l.status, TSD_ERR_LOAD);
    if (declare)
      EXPECT_EQ(l.message(),
                "Error(s) in loading state_dict for Sequential:\n\tUnexpected "
                "key(s) in state_dict: \"0.foo\", \"1.weight\". ");
    else
      EXPECT_EQ(l.list(TSD_LIST_UNEXPECTED), (Strings{"1.weight", "0.foo"}));
  }
}

TEST(Engine, UnexpectedKeysUnderALeafDifferBetweenRuleSets) {
  // class L: fc = nn.Linear(2, 2); extra keys fc.foo, fc.weight.foo, fc
  Model m("L");
  m.add("fc.weight", {2, 2});
  m.add("fc.bias", {2});
  CkptBuilder b;
  b.f32("fc.weight", {2, 2}).f32("fc.bias", {2});
  b.f32("fc.foo", {1}).f32("fc.weight.foo", {1}).f32("fc", {1});
  Load l13(m.get(), b.get());
  EXPECT_EQ(l13.message(),
            "Error(s) in loading state_dict for L:\n\tUnexpected key(s) in "
            "state_dict: \"fc.foo\". ");
  Load l2(m.get(), b.get(), 1, 0, TSD_RULES_TORCH_2);
  // 2.x: a dotted rest must name a child module; a plain one a local tensor
  EXPECT_EQ(l2.list(TSD_LIST_UNEXPECTED),
            (Strings{"fc", "fc.foo", "fc.weight.foo"}));
}

TEST(Engine, NonPersistentBufferAndNoneParameterKeysAreUnexpected) {
  // w = Parameter(2); p = None; b = buffer(2, persistent=False); c = buffer(1)
  Model m("NP");
  auto &w = m.add("w", {2});
  m.add("p", {}, TSD_PARAMETER_NONE);
  auto &bb = m.add("b", {2}, TSD_BUFFER_NON_PERSISTENT, TSD_FLOAT32, 3.0);
  m.add("c", {1}, TSD_BUFFER);
  CkptBuilder b;
  b.f32("w", {2}).f32("p", {1}).f32("b", {2}).f32("c", {1});
  Load l(m.get(), b.get());
  EXPECT_EQ(l.message(),
            "Error(s) in loading state_dict for NP:\n\tUnexpected key(s) in "
            "state_dict: \"p\", \"b\". ");
  Load ln(m.get(), b.get(), 0);
  ASSERT_EQ(ln.status, TSD_OK);
  EXPECT_EQ(as_f32(w), 0.5f);
  EXPECT_EQ(as_f32(bb), 3.0f); // non-persistent: never loaded
}

TEST(Engine, ExtraStateKeysAreUnexpectedFirstInTheirModule) {
  Net n;
  CkptBuilder b;
  b.f32("fc1.weight", {3, 4}).f32("fc1.bias", {3}).f32("fc2.weight", {2, 3});
  b.f32("fc2.bias", {2}).f32("fc1._extra_state", {1});
  b.add("_extra_state", b.integer(5));
  Load l(n.m.get(), b.get());
  EXPECT_EQ(l.message(),
            "Error(s) in loading state_dict for Net:\n\tUnexpected key(s) in "
            "state_dict: \"_extra_state\", \"fc1._extra_state\". ");
}

// nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)), num_batches_tracked
// set to 5, checkpoint without 1.num_batches_tracked.
struct BnNet {
  Model m{"Sequential"};
  BnNet() {
    m.add("0.weight", {2, 1, 1, 1});
    m.add("0.bias", {2});
    m.module("1", "BatchNorm2d");
    m.add("1.weight", {2});
    m.add("1.bias", {2});
    m.add("1.running_mean", {2}, TSD_BUFFER);
    m.add("1.running_var", {2}, TSD_BUFFER);
    nbt_ = &m.add("1.num_batches_tracked", {}, TSD_BUFFER, TSD_INT64, 5.0);
  }
  std::vector<unsigned char> *nbt_;
  const std::vector<unsigned char> &nbt() const {
    return *nbt_;
  }
  static void fill(CkptBuilder &b) {
    b.f32("0.weight", {2, 1, 1, 1}).f32("0.bias", {2}).f32("1.weight", {2});
    b.f32("1.bias", {2}).f32("1.running_mean", {2}).f32("1.running_var", {2});
  }
};

TEST(Engine, BatchNormWithoutMetadataGetsNumBatchesTrackedZero) {
  BnNet n;
  CkptBuilder b;
  BnNet::fill(b);
  Load l(n.m.get(), b.get());
  ASSERT_EQ(l.status, TSD_OK) << tsd_last_error();
  EXPECT_EQ(l.message(), "<All keys matched successfully>");
  EXPECT_EQ(as_i64(n.nbt()), 0);
}

TEST(Engine, BatchNormMetadataVersionOneGetsZeroVersionTwoIsMissing) {
  {
    BnNet n;
    CkptBuilder b;
    BnNet::fill(b);
    b.version("", 1).version("0", 1).version("1", 1);
    Load l(n.m.get(), b.get());
    ASSERT_EQ(l.status, TSD_OK) << tsd_last_error();
    EXPECT_EQ(as_i64(n.nbt()), 0);
  }
  {
    BnNet n;
    CkptBuilder b;
    BnNet::fill(b);
    b.version("", 1).version("0", 1).version("1", 2);
    Load l(n.m.get(), b.get());
    EXPECT_EQ(l.status, TSD_ERR_LOAD);
    EXPECT_EQ(l.message(),
              "Error(s) in loading state_dict for Sequential:\n\tMissing "
              "key(s) in state_dict: \"1.num_batches_tracked\". ");
    EXPECT_EQ(as_i64(n.nbt()), 5);
  }
  { // metadata present, but without this module: version None
    BnNet n;
    CkptBuilder b;
    BnNet::fill(b);
    b.version("", 1);
    Load l(n.m.get(), b.get());
    ASSERT_EQ(l.status, TSD_OK) << tsd_last_error();
    EXPECT_EQ(as_i64(n.nbt()), 0);
  }
}

TEST(Engine, BatchNormTorch2RulesKeepTheModulesOwnValue) {
  BnNet n;
  CkptBuilder b;
  BnNet::fill(b);
  Load l(n.m.get(), b.get(), 1, 0, TSD_RULES_TORCH_2);
  ASSERT_EQ(l.status, TSD_OK) << tsd_last_error();
  EXPECT_EQ(as_i64(n.nbt()), 5);
}

TEST(Engine, UndeclaredNormLayerReportsNumBatchesTrackedMissing) {
  Model m("Sequential");
  m.add("1.weight", {2});
  m.add("1.num_batches_tracked", {}, TSD_BUFFER, TSD_INT64);
  CkptBuilder b;
  b.f32("1.weight", {2});
  Load l(m.get(), b.get());
  EXPECT_EQ(l.list(TSD_LIST_MISSING), Strings{"1.num_batches_tracked"});
}

TEST(Engine, InstanceNormRunningStatsWithoutVersionAreAnError) {
  // nn.Sequential(nn.InstanceNorm1d(3)), keys 0.running_mean, 0.running_var
  Model m("Sequential");
  m.module("0", "InstanceNorm1d");
  CkptBuilder b;
  b.f32("0.running_mean", {3}).f32("0.running_var", {3});
  Load l(m.get(), b.get());
  EXPECT_EQ(
      l.message(),
      "Error(s) in loading state_dict for Sequential:\n\tUnexpected running "
      "stats buffer(s) \"0.running_mean\" and \"0.running_var\" for "
      "InstanceNorm1d with track_running_stats=False. If state_dict is a "
      "checkpoint saved before 0.4.0, this may be expected because "
      "InstanceNorm1d does not track running stats by default since 0.4.0. "
      "Please remove these keys from state_dict. If the running stats are "
      "actually needed, instead set track_running_stats=True in "
      "InstanceNorm1d to enable them. See the documentation of "
      "InstanceNorm1d for details.");
  EXPECT_TRUE(l.list(TSD_LIST_UNEXPECTED).empty()); // popped, not unexpected
  CkptBuilder b1;
  b1.f32("0.running_mean", {3}).f32("0.running_var", {3}).version("0", 1);
  Load l1(m.get(), b1.get());
  EXPECT_EQ(l1.message(),
            "Error(s) in loading state_dict for Sequential:\n\tUnexpected "
            "key(s) in state_dict: \"0.running_mean\", \"0.running_var\". ");
}

TEST(Engine, CopyConvertsHalfBfloatAndDoubleToFloatExactly) {
  Model m("M");
  auto &a = m.add("a", {3});
  auto &bb = m.add("b", {3});
  auto &c = m.add("c", {3});
  CkptBuilder b;
  // float16: 1.0, -2.5, 65504;  bfloat16: 1.0, 3.140625, -0.5
  uint16_t h[3] = {0x3c00, 0xc100, 0x7bff};
  uint16_t bf[3] = {0x3f80, 0x4049, 0xbf00};
  double d[3] = {0.1, -1e30, 3.5};
  b.add("a", b.tensor(TSD_FLOAT16, {3}, h));
  b.add("b", b.tensor(TSD_BFLOAT16, {3}, bf));
  b.add("c", b.tensor(TSD_FLOAT64, {3}, d));
  Load l(m.get(), b.get());
  ASSERT_EQ(l.status, TSD_OK) << tsd_last_error();
  EXPECT_EQ(as_f32(a, 0), 1.0f);
  EXPECT_EQ(as_f32(a, 1), -2.5f);
  EXPECT_EQ(as_f32(a, 2), 65504.0f);
  EXPECT_EQ(as_f32(bb, 0), 1.0f);
  EXPECT_EQ(as_f32(bb, 1), 3.140625f);
  EXPECT_EQ(as_f32(bb, 2), -0.5f);
  EXPECT_EQ(as_f32(c, 0), 0.1f);
  EXPECT_EQ(as_f32(c, 1), -1e30f);
  EXPECT_EQ(as_f32(c, 2), 3.5f);
}

TEST(Engine, FailedLoadChangesNoByteOfTheModel) {
  // Each checkpoint matches most tensors (which PyTorch would already have
  // copied) and fails on one rule.
  auto good = [](CkptBuilder &b) {
    b.f32("fc1.weight", {3, 4}, std::vector<float>(12, 42.0f));
    b.f32("fc1.bias", {3}, {42, 42, 42});
    b.f32("fc2.bias", {2}, {42, 42});
  };
  std::vector<std::function<void(CkptBuilder &)>> cases = {
      [&](CkptBuilder &b) { good(b); }, // missing fc2.weight (strict)
      [&](CkptBuilder &b) {             // unexpected key (strict)
        good(b);
        b.f32("fc2.weight", {2, 3}).f32("nope", {1});
      },
      [&](CkptBuilder &b) { // size mismatch
        good(b);
        b.f32("fc2.weight", {9, 3});
      },
      [&](CkptBuilder &b) { // non-tensor
        good(b);
        b.add("fc2.weight", b.integer(1));
      },
  };
  for (size_t i = 0; i < cases.size(); i++) {
    Net n;
    auto before = n.m.snapshot();
    CkptBuilder b;
    cases[i](b);
    Load l(n.m.get(), b.get());
    EXPECT_EQ(l.status, TSD_ERR_LOAD) << i;
    auto after = n.m.snapshot();
    ASSERT_EQ(before.size(), after.size());
    EXPECT_EQ(memcmp(before.data(), after.data(), before.size()), 0)
        << "case " << i << " changed the model";
  }
}

TEST(Engine, EmptyCheckpointMakesEverythingMissing) {
  Net n;
  CkptBuilder b;
  Load l(n.m.get(), b.get());
  EXPECT_EQ(l.message(),
            "Error(s) in loading state_dict for Net:\n\tMissing key(s) in "
            "state_dict: \"fc1.weight\", \"fc1.bias\", \"fc2.weight\", "
            "\"fc2.bias\". ");
  CkptBuilder b2;
  Load ln(n.m.get(), b2.get(), 0);
  ASSERT_EQ(ln.status, TSD_OK);
  EXPECT_EQ(ln.message(),
            "_IncompatibleKeys(missing_keys=['fc1.weight', 'fc1.bias', "
            "'fc2.weight', 'fc2.bias'], unexpected_keys=[])");
}

TEST(Engine, EmptyModelAndEmptyCheckpointMatch) {
  Model m("Empty");
  CkptBuilder b;
  Load l(m.get(), b.get());
  ASSERT_EQ(l.status, TSD_OK);
  EXPECT_EQ(l.message(), "<All keys matched successfully>");
}

TEST(Engine, RootThatIsNotADictIsATypeError) {
  Net n;
  CkptBuilder b;
  b.root_list();
  tsd_report *r = reinterpret_cast<tsd_report *>(1);
  EXPECT_EQ(tsd_load(&r, n.m.get(), b.get(), nullptr), TSD_ERR_TYPE);
  EXPECT_EQ(r, nullptr);
  EXPECT_STREQ(tsd_last_error(),
               "Expected state_dict to be dict-like, got <class 'list'>.");
}

TEST(Engine, InvalidArgumentsAreRejected) {
  Net n;
  CkptBuilder b;
  tsd_report *r;
  EXPECT_EQ(tsd_load(nullptr, n.m.get(), b.get(), nullptr),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(tsd_load(&r, nullptr, b.get(), nullptr), TSD_ERR_INVALID_ARG);
  EXPECT_EQ(tsd_load(&r, n.m.get(), nullptr, nullptr), TSD_ERR_INVALID_ARG);
  tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
  o.rules = static_cast<tsd_rules>(7);
  EXPECT_EQ(tsd_load(&r, n.m.get(), b.get(), &o), TSD_ERR_INVALID_ARG);
  o = TSD_LOAD_OPTIONS_INIT;
  o.version = 0;
  EXPECT_EQ(tsd_load(&r, n.m.get(), b.get(), &o), TSD_ERR_INVALID_ARG);
}

// Seconds of the fastest of three loads of n keys (plus one unexpected).
static double load_seconds(int n) {
  double best = 1e9;
  for (int round = 0; round < 3; round++) {
    Model m("Big");
    CkptBuilder b;
    std::vector<std::string> names;
    for (int i = 0; i < n; i++)
      names.push_back("blocks." + std::to_string(i / 10) + ".layer." +
                      std::to_string(i % 10) + ".w");
    for (auto &s : names)
      m.add(s.c_str(), {1});
    for (auto &s : names)
      b.f32(s, {1}, {2.0f});
    b.f32("blocks.3.unexpected", {1});
    b.get();
    auto t0 = std::chrono::steady_clock::now();
    Load l(m.get(), b.get(), 0);
    double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
    EXPECT_EQ(l.status, TSD_OK);
    EXPECT_EQ(l.list(TSD_LIST_UNEXPECTED), Strings{"blocks.3.unexpected"});
    if (secs < best) best = secs;
  }
  return best;
}

TEST(Engine, AHundredThousandKeysLoadInLinearTime) {
  // The growth from 25,000 to 100,000 keys, not a wall-clock bound (which
  // says more about the machine than the code): 4x the keys take 4x the
  // time when the load is linear, 16x when quadratic. Both sizes are out of
  // the caches (a small load that fits in them grows faster than linearly
  // for that reason alone: 6,250 -> 50,000 keys measured 15x-43x). The
  // fastest of three runs of each size keeps a busy machine's noise out;
  // measured 5.0x-7.4x here with two test suites running beside it.
  double small = load_seconds(25000), big = load_seconds(100000);
  ASSERT_GT(small, 0.0);
  double growth = big / small;
  RecordProperty("growth_4x_keys", std::to_string(growth));
  EXPECT_LT(growth, 10.0) << "25000 keys: " << small << " s, 100000 keys: "
                          << big << " s";
}

// ---- through real files written by Python torch (the oracle) ---------------

TEST(Engine, PythonCheckpointGivesPythonsAnswer) {
  std::string why;
  ASSERT_TRUE(tsdtest::python_torch_available(&why)) << why;
  std::string dir =
      tsdtest::temp_dir() + "/engine_py_" + std::to_string(getpid());
  // A 1000-class head into a 10-class model, BatchNorm without
  // num_batches_tracked and _metadata version 1, a parameterless ReLU with
  // a stray key, a leaf with a sub-key, a bfloat16 tensor into float32.
  auto r = tsdtest::run_python(
      "import torch, torch.nn as nn, os, json, collections\n"
      "d = '" +
      dir +
      "'\nos.makedirs(d, exist_ok=True)\n"
      "torch.manual_seed(0)\n"
      "def net(n):\n"
      "    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.BatchNorm1d(3), "
      "nn.Linear(3, n))\n"
      "src = net(1000)\n"
      "sd = src.state_dict()\n"
      "del sd['2.num_batches_tracked']\n"
      "sd._metadata['2']['version'] = 1\n"
      "sd['1.bar'] = torch.ones(2)\n"
      "sd['0.weight.foo'] = torch.ones(1)\n"
      "sd['0.bias'] = sd['0.bias'].to(torch.bfloat16)\n"
      "torch.save(sd, d + '/ckpt.pth')\n"
      "out = {}\n"
      "for strict in (True, False):\n"
      "    m = net(10)\n"
      "    try:\n"
      "        out['strict' if strict else 'loose'] = "
      "str(m.load_state_dict(sd, strict=strict))\n"
      "    except RuntimeError as e:\n"
      "        out['strict' if strict else 'loose'] = str(e)\n"
      "m = net(10)\n"
      "sd2 = collections.OrderedDict(sd); sd2._metadata = sd._metadata\n"
      "sd2.pop('3.weight'); sd2.pop('3.bias')\n"
      "out['popped'] = str(m.load_state_dict(sd2, strict=False))\n"
      "torch.save(m.state_dict(), d + '/loaded.pth')\n"
      "json.dump(out, open(d + '/out.json', 'w'))\n"
      "print('PY_OK')\n");
  ASSERT_NE(r.second.find("PY_OK"), std::string::npos) << r.second;
  std::ifstream jf(dir + "/out.json");
  std::string json((std::istreambuf_iterator<char>(jf)),
                   std::istreambuf_iterator<char>());
  auto py = [&](const char *key) { // the JSON holds three plain strings
    std::string k = std::string("\"") + key + "\": \"";
    size_t at = json.find(k);
    EXPECT_NE(at, std::string::npos) << key;
    std::string v;
    for (size_t i = at + k.size(); i < json.size() && json[i] != '"'; i++) {
      if (json[i] == '\\') {
        char e = json[++i];
        v += e == 'n' ? '\n' : e == 't' ? '\t' : e;
      } else {
        v += json[i];
      }
    }
    return v;
  };
  auto build = [](Model &m) {
    m.add("0.weight", {3, 4});
    m.add("0.bias", {3});
    m.module("1", "ReLU");
    m.module("2", "BatchNorm1d");
    m.add("2.weight", {3});
    m.add("2.bias", {3});
    m.add("2.running_mean", {3}, TSD_BUFFER);
    m.add("2.running_var", {3}, TSD_BUFFER);
    m.add("2.num_batches_tracked", {}, TSD_BUFFER, TSD_INT64, 9);
    m.add("3.weight", {10, 3});
    m.add("3.bias", {10});
  };
  tsd_checkpoint *c = nullptr;
  ASSERT_EQ(tsd_checkpoint_open(&c, (dir + "/ckpt.pth").c_str(), nullptr),
            TSD_OK)
      << tsd_last_error();
  {
    Model m("Sequential");
    build(m);
    auto before = m.snapshot();
    Load l(m.get(), c, 1);
    EXPECT_EQ(l.status, TSD_ERR_LOAD);
    EXPECT_EQ(l.message(), py("strict"));
    EXPECT_EQ(m.snapshot(), before);
    Load ln(m.get(), c, 0);
    EXPECT_EQ(ln.message(), py("loose"));
  }
  Model m("Sequential");
  build(m);
  Load lp(m.get(), c, 0, 1);
  ASSERT_EQ(lp.status, TSD_OK) << tsd_last_error();
  EXPECT_EQ(lp.message(), py("popped"));
  EXPECT_EQ(lp.list(TSD_LIST_POPPED), (Strings{"3.weight", "3.bias"}));
  tsd_checkpoint_free(c);
  // every value equals what Python loaded (the head keeps its own values)
  ASSERT_EQ(tsd_checkpoint_open(&c, (dir + "/loaded.pth").c_str(), nullptr),
            TSD_OK);
  for (size_t i = 0; i < tsd_model_tensor_count(m.get()); i++) {
    tsd_tensor_info info;
    ASSERT_EQ(tsd_model_tensor(&info, m.get(), i), TSD_OK);
    if (std::string(info.name).rfind("3.", 0) == 0) continue;
    size_t idx;
    ASSERT_EQ(tsd_checkpoint_find(&idx, c, info.name), TSD_OK) << info.name;
    size_t nb = info.numel * tsd_dtype_size(info.dtype);
    std::vector<unsigned char> want(nb + 1);
    ASSERT_EQ(tsd_checkpoint_read(want.data(), nb, c, idx, info.dtype), TSD_OK);
    EXPECT_EQ(memcmp(want.data(), info.data, nb), 0) << info.name;
  }
  tsd_checkpoint_free(c);
}

// torchvision's FrozenBatchNorm2d deletes `num_batches_tracked` from the
// checkpoint before loading (ResNet backbones of detection models).
TEST(Engine, FrozenBatchNormIgnoresNumBatchesTracked) {
  Model m("Backbone");
  m.module("bn", "FrozenBatchNorm2d");
  for (const char *n : {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"})
    m.add(n, {3}, TSD_BUFFER);
  m.module("other", "BatchNorm2d");
  m.add("other.num_batches_tracked", {}, TSD_BUFFER, TSD_INT64, 5);
  CkptBuilder b;
  for (const char *n : {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"})
    b.f32(n, {3});
  b.add("bn.num_batches_tracked", b.integer(7));
  b.add("other.num_batches_tracked", b.integer(7));
  b.version("other", 2);
  Load l(m.get(), b.get());
  // bn.num_batches_tracked is dropped before anything looks at it (so its
  // non-tensor value is no error, and the key is not unexpected); the same
  // key under the BatchNorm2d is loaded, so the non-tensor error names only
  // that one.
  EXPECT_EQ(l.status, TSD_ERR_LOAD);
  EXPECT_EQ(l.message(),
            "Error(s) in loading state_dict for Backbone:\n\tWhile copying "
            "the parameter named \"other.num_batches_tracked\", expected "
            "torch.Tensor or Tensor-like object from checkpoint but received "
            "<class 'int'>");
}
