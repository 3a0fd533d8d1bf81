// test_module_tree.cc — the module tree every model kind shares: state_dict
// order, names, modules in order of first appearance, persistence, reads.
#include "test_helpers.h"

using tsdtest::Model;
using Strings = std::vector<std::string>;

namespace {

std::vector<std::string> names_in_order(tsd_model *m) {
  std::vector<std::string> out;
  for (size_t i = 0; i < tsd_model_tensor_count(m); i++) {
    tsd_tensor_info info;
    EXPECT_EQ(tsd_model_tensor(&info, m, i), TSD_OK);
    out.push_back(info.name);
  }
  return out;
}

} // namespace

// ---- the module tree ------------------------------------------------------

TEST(Model, StateDictOrderIsParametersThenBuffersThenChildren) {
  Model m("M");
  m.add("a.sub.w", {1});
  m.add("a.buf", {1}, TSD_BUFFER);
  m.add("a.p", {1});
  m.add("a.nobias", {}, TSD_PARAMETER_NONE);
  m.add("b.x", {1});
  m.add("top", {1}, TSD_BUFFER);
  m.add("a.sub2.y", {1});
  EXPECT_EQ(names_in_order(m.get()), (Strings{"top", "a.p", "a.nobias", "a.buf",
                                              "a.sub.w", "a.sub2.y", "b.x"}));
}

TEST(Model, RejectsInvalidAndConflictingNames) {
  Model m("M");
  float x = 0;
  int64_t one = 1, neg = -1;
  for (const char *bad : {"", ".a", "a.", "a..b"})
    EXPECT_EQ(tsd_model_add_tensor(m.get(), bad, TSD_PARAMETER, TSD_FLOAT32, 1,
                                   &one, &x),
              TSD_ERR_INVALID_ARG)
        << bad;
  m.add("fc.weight", {1});
  EXPECT_EQ(tsd_model_add_tensor(m.get(), "fc.weight", TSD_BUFFER, TSD_FLOAT32,
                                 1, &one, &x),
            TSD_ERR_INVALID_ARG);
  EXPECT_NE(std::string(tsd_last_error()).find("duplicate"), std::string::npos);
  // a tensor and a module may not share a path
  EXPECT_EQ(tsd_model_add_tensor(m.get(), "fc", TSD_PARAMETER, TSD_FLOAT32, 1,
                                 &one, &x),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(tsd_model_add_tensor(m.get(), "fc.weight.x", TSD_PARAMETER,
                                 TSD_FLOAT32, 1, &one, &x),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(tsd_model_add_module(m.get(), "fc.weight", "Linear", -1),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(tsd_model_add_tensor(m.get(), "neg", TSD_PARAMETER, TSD_FLOAT32, 1,
                                 &neg, &x),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(tsd_model_add_tensor(m.get(), "nodata", TSD_PARAMETER, TSD_FLOAT32,
                                 1, &one, nullptr),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(tsd_model_tensor_count(m.get()), 1u);
}

TEST(Model, ModulesAreCreatedInOrderOfFirstAppearance) {
  Model m("M");
  m.module("features.2", "ReLU");
  m.add("features.0.weight", {1});
  m.add("classifier.weight", {1});
  tsd_model *mm = m.get();
  ASSERT_EQ(mm->n_modules, 5u);
  EXPECT_STREQ(mm->modules[1].prefix, "features");
  EXPECT_STREQ(mm->modules[2].prefix, "features.2");
  EXPECT_STREQ(mm->modules[3].prefix, "features.0");
  EXPECT_STREQ(mm->modules[4].prefix, "classifier");
  EXPECT_STREQ(mm->modules[2].type_name, "ReLU");
  EXPECT_EQ(mm->modules[2].version, 1);
  m.module("bn", "BatchNorm2d");
  EXPECT_EQ(mm->modules[5].norm, TSD__NORM_BATCH);
  EXPECT_EQ(mm->modules[5].version, 2);
  m.module("inorm", "InstanceNorm1d", 1);
  EXPECT_EQ(mm->modules[6].norm, TSD__NORM_INSTANCE);
  EXPECT_EQ(mm->modules[6].version, 1);
}

TEST(Model, SetPersistentAndReadConvert) {
  Model m("M");
  auto &buf = m.add("b", {2}, TSD_BUFFER, TSD_FLOAT32, 2.5);
  m.add("w", {1});
  EXPECT_EQ(tsd_model_set_persistent(m.get(), "b", 0), TSD_OK);
  EXPECT_EQ(tsd_model_set_persistent(m.get(), "w", 0), TSD_ERR_TYPE);
  EXPECT_EQ(tsd_model_set_persistent(m.get(), "nope", 0), TSD_ERR_NOT_FOUND);
  tsd_tensor_info info;
  ASSERT_EQ(tsd_model_tensor(&info, m.get(), 1), TSD_OK);
  EXPECT_STREQ(info.name, "b");
  EXPECT_EQ(info.role, TSD_BUFFER_NON_PERSISTENT);
  EXPECT_EQ(info.data, buf.data());
  double out[2];
  EXPECT_EQ(tsd_model_read(out, sizeof out, m.get(), 1, TSD_FLOAT64), TSD_OK);
  EXPECT_EQ(out[0], 2.5);
  EXPECT_EQ(tsd_model_read(out, 8, m.get(), 1, TSD_FLOAT64), TSD_ERR_BUFFER);
  EXPECT_EQ(tsd_model_tensor(&info, m.get(), 2), TSD_ERR_NOT_FOUND);
}

TEST(Model, TorchScriptOpenFailsCleanlyWithoutTheFile) {
  tsd_model *m = reinterpret_cast<tsd_model *>(1);
  tsd_status st = tsd_model_open_torchscript(&m, "/nonexistent/x.pt", NULL);
  // LibTorch builds cannot open it; the pure-C build has no TorchScript
  EXPECT_EQ(st, tsd_has_torch() ? TSD_ERR_IO : TSD_ERR_UNSUPPORTED);
  EXPECT_EQ(m, nullptr);
  EXPECT_STRNE(tsd_last_error(), "");
}
