// test_layout.cc — C-owned models built from a layout file
// (tsd_model_from_layout, tsd_layout_arena_bytes). tests/parity/run_layout.py
// checks layouts written by scripts/tsd_layout.py against PyTorch.
#include "test_helpers.h"

#include <fstream>

using namespace tsdtest;

namespace {

std::string write_layout(const std::string &name, const std::string &text) {
  std::string path = temp_dir() + "/layout_" + std::to_string(getpid()) + "_" +
                     name + ".json";
  std::ofstream(path) << text;
  return path;
}

const char *kGood = R"({
 "format": "tsd.layout", "format_version": 1, "class_name": "Net",
 "torch_version": "1.13.1", "future_field": [1, 2],
 "modules": [
  {"name": "", "type": "Net", "version": 1},
  {"name": "bn", "type": "BatchNorm2d", "version": 2},
  {"name": "act", "type": "ReLU", "version": null},
  {"name": "e", "type": "Scale", "version": 3, "extra_state": true}
 ],
 "tensors": [
  {"name": "w", "role": "parameter", "dtype": "float32", "shape": [2, 3]},
  {"name": "none", "role": "parameter_none"},
  {"name": "bn.weight", "role": "parameter", "dtype": "torch.float16", "shape": [2]},
  {"name": "bn.running_mean", "role": "buffer", "dtype": "float32", "shape": [2]},
  {"name": "bn.num_batches_tracked", "role": "buffer", "dtype": "int64", "shape": []},
  {"name": "cache", "role": "buffer_non_persistent", "dtype": "uint8", "shape": [0, 4]}
 ]
})";

tsd_status ignore_extra(void *, const char *, const tsd_checkpoint *, size_t) {
  return TSD_OK;
}

struct Mem {
  std::vector<std::vector<unsigned char>> bufs;
  std::vector<std::string> names;
  bool fail = false;
};

void *give(void *user, const tsd_tensor_info *info, size_t nbytes) {
  auto *m = static_cast<Mem *>(user);
  m->names.push_back(info->name);
  EXPECT_EQ(info->data, nullptr);
  EXPECT_EQ(nbytes, static_cast<size_t>(info->numel) *
                        tsd_dtype_size(info->dtype));
  if (m->fail) return nullptr;
  m->bufs.emplace_back(nbytes + 1);
  return m->bufs.back().data();
}

} // namespace

TEST(Layout, BuildsModulesTensorsRolesAndVersionsWithCallerMemory) {
  std::string p = write_layout("good", kGood);
  Mem mem;
  tsd_layout_options o = TSD_LAYOUT_OPTIONS_INIT;
  o.memory = give;
  o.memory_user = &mem;
  o.extra_state = ignore_extra;
  tsd_model *m = nullptr;
  ASSERT_EQ(tsd_model_from_layout(&m, p.c_str(), &o), TSD_OK)
      << tsd_last_error();
  EXPECT_STREQ(tsd_model_class_name(m), "Net");
  // not called for the None parameter; called for the empty tensor
  EXPECT_EQ(mem.names,
            (std::vector<std::string>{"w", "bn.weight", "bn.running_mean",
                                      "bn.num_batches_tracked", "cache"}));
  ASSERT_EQ(tsd_model_tensor_count(m), 6u);
  size_t i;
  ASSERT_EQ(tsd_model_find(&i, m, "bn.weight"), TSD_OK);
  tsd_tensor_info info;
  ASSERT_EQ(tsd_model_tensor(&info, m, i), TSD_OK);
  EXPECT_EQ(info.dtype, TSD_FLOAT16);
  EXPECT_EQ(info.role, TSD_PARAMETER);
  EXPECT_EQ(info.data, mem.bufs[1].data());
  ASSERT_EQ(tsd_model_find(&i, m, "none"), TSD_OK);
  ASSERT_EQ(tsd_model_tensor(&info, m, i), TSD_OK);
  EXPECT_EQ(info.role, TSD_PARAMETER_NONE);
  ASSERT_EQ(tsd_model_find(&i, m, "cache"), TSD_OK);
  ASSERT_EQ(tsd_model_tensor(&info, m, i), TSD_OK);
  EXPECT_EQ(info.role, TSD_BUFFER_NON_PERSISTENT);
  // the modules: types (norm rule), versions, extra state
  EXPECT_EQ(m->modules[1].norm, TSD__NORM_BATCH);
  EXPECT_EQ(m->modules[1].version, 2);
  EXPECT_EQ(m->modules[2].version, 1); // null: the type's default
  EXPECT_EQ(m->modules[3].version, 3);
  EXPECT_EQ(m->modules[3].extra_fn, ignore_extra);
  // a loaded checkpoint without num_batches_tracked, bn at version 1
  CkptBuilder b;
  b.f32("w", {2, 3}).f32("bn.weight", {2}).f32("bn.running_mean", {2});
  b.add("e._extra_state", b.integer(1));
  b.version("bn", 1);
  Load l(m, b.get());
  EXPECT_EQ(l.message(), "<All keys matched successfully>");
  tsd_model_free(m);
  remove(p.c_str());
}

TEST(Layout, ArenaPlacesTensorsAt64ByteMultiples) {
  std::string p = write_layout("arena", kGood);
  size_t need = 0;
  ASSERT_EQ(tsd_layout_arena_bytes(&need, p.c_str()), TSD_OK);
  EXPECT_EQ(need, 64u * 4); // w, bn.weight, running_mean, num_batches_tracked
  alignas(64) unsigned char arena[64 * 4];
  tsd_layout_options o = TSD_LAYOUT_OPTIONS_INIT;
  o.arena = arena;
  o.arena_bytes = sizeof arena - 1;
  o.extra_state = ignore_extra;
  tsd_model *m = nullptr;
  EXPECT_EQ(tsd_model_from_layout(&m, p.c_str(), &o), TSD_ERR_BUFFER);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(tsd_last_error()).find("256 bytes"), std::string::npos)
      << tsd_last_error();
  o.arena_bytes = sizeof arena;
  o.class_name = "Other";
  ASSERT_EQ(tsd_model_from_layout(&m, p.c_str(), &o), TSD_OK)
      << tsd_last_error();
  EXPECT_STREQ(tsd_model_class_name(m), "Other");
  size_t i;
  tsd_tensor_info info;
  ASSERT_EQ(tsd_model_find(&i, m, "bn.num_batches_tracked"), TSD_OK);
  ASSERT_EQ(tsd_model_tensor(&info, m, i), TSD_OK);
  EXPECT_EQ(info.data, arena + 192);
  tsd_model_free(m);
  remove(p.c_str());
}

TEST(Layout, RefusalsNameTheFieldAndLeaveNoModel) {
  struct Bad {
    const char *text;
    tsd_status status;
    const char *needle;
  } bad[] = {
      {R"({"weight_map": {}})", TSD_ERR_TYPE, "not a tsd layout"},
      {R"([1, 2])", TSD_ERR_TYPE, "not a tsd layout"},
      {R"({"format": "tsd.layout", )", TSD_ERR_FORMAT, "bad JSON"},
      {R"({"format": "tsd.layout", "format_version": 2, "class_name": "N",
           "tensors": []})",
       TSD_ERR_UNSUPPORTED, "format_version 2"},
      {R"({"format": "tsd.layout", "format_version": 1, "tensors": []})",
       TSD_ERR_FORMAT, "class_name"},
      {R"({"format": "tsd.layout", "format_version": 1, "class_name": "N"})",
       TSD_ERR_FORMAT, "\"tensors\""},
      {R"({"format": "tsd.layout", "format_version": 1, "class_name": "N",
           "tensors": [{"name": "w", "role": "weight", "dtype": "float32",
           "shape": [1]}]})",
       TSD_ERR_FORMAT, "tensor 0 (\"w\"): \"role\""},
      {R"({"format": "tsd.layout", "format_version": 1, "class_name": "N",
           "tensors": [{"name": "w", "role": "buffer", "dtype": "float99",
           "shape": [1]}]})",
       TSD_ERR_UNSUPPORTED, "float99"},
      {R"({"format": "tsd.layout", "format_version": 1, "class_name": "N",
           "tensors": [{"name": "w", "role": "buffer", "dtype": "int8",
           "shape": [-1]}]})",
       TSD_ERR_FORMAT, "integer >= 0"},
      {R"({"format": "tsd.layout", "format_version": 1, "class_name": "N",
           "tensors": [{"name": "w", "role": "buffer", "dtype": "int8",
           "shape": [4294967296, 4294967296, 4294967296]}]})",
       TSD_ERR_FORMAT, "overflows"},
      {R"({"format": "tsd.layout", "format_version": 1, "class_name": "N",
           "tensors": [{"name": "a..b", "role": "buffer", "dtype": "int8",
           "shape": [1]}]})",
       TSD_ERR_FORMAT, "tensor 0: tensor name \"a..b\""},
      {R"({"format": "tsd.layout", "format_version": 1, "class_name": "N",
           "tensors": [{"name": "w", "role": "buffer", "dtype": "int8",
           "shape": [1]}, {"name": "w", "role": "buffer", "dtype": "int8",
           "shape": [1]}]})",
       TSD_ERR_FORMAT, "tensor 1: duplicate tensor name \"w\""},
      {R"({"format": "tsd.layout", "format_version": 1, "class_name": "N",
           "modules": [{"name": "m", "version": "1"}], "tensors": []})",
       TSD_ERR_FORMAT, "module 0 (\"m\"): \"version\""},
      {R"({"format": "tsd.layout", "format_version": 1, "class_name": "N",
           "tensors": [{"name": "w", "role": "buffer", "dtype": "int8",
           "shape": [[[1]]]}]})",
       TSD_ERR_FORMAT, "bad JSON"}, // deeper than a layout nests
  };
  int k = 0;
  for (const Bad &b : bad) {
    std::string p = write_layout("bad" + std::to_string(k++), b.text);
    Mem mem;
    tsd_layout_options o = TSD_LAYOUT_OPTIONS_INIT;
    o.memory = give;
    o.memory_user = &mem;
    tsd_model *m = reinterpret_cast<tsd_model *>(1);
    EXPECT_EQ(tsd_model_from_layout(&m, p.c_str(), &o), b.status) << b.text;
    EXPECT_EQ(m, nullptr);
    EXPECT_NE(std::string(tsd_last_error()).find(b.needle), std::string::npos)
        << b.text << "\n -> " << tsd_last_error();
    remove(p.c_str());
  }
}

TEST(Layout, ExtraStateNeedsACallbackAndMemoryIsRequired) {
  std::string p = write_layout("extra", kGood);
  Mem mem;
  tsd_layout_options o = TSD_LAYOUT_OPTIONS_INIT;
  tsd_model *m = nullptr;
  EXPECT_EQ(tsd_model_from_layout(&m, p.c_str(), &o), TSD_ERR_INVALID_ARG);
  EXPECT_EQ(tsd_model_from_layout(&m, p.c_str(), nullptr),
            TSD_ERR_INVALID_ARG);
  o.memory = give;
  o.memory_user = &mem;
  EXPECT_EQ(tsd_model_from_layout(&m, p.c_str(), &o), TSD_ERR_INVALID_ARG);
  EXPECT_NE(std::string(tsd_last_error()).find("module \"e\" has extra state"),
            std::string::npos)
      << tsd_last_error();
  o.extra_state = ignore_extra;
  mem.fail = true;
  EXPECT_EQ(tsd_model_from_layout(&m, p.c_str(), &o), TSD_ERR_NOMEM);
  EXPECT_NE(std::string(tsd_last_error()).find("\"w\""), std::string::npos)
      << tsd_last_error();
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(tsd_model_from_layout(&m, "/nonexistent/x.json", &o), TSD_ERR_IO);
  remove(p.c_str());
}

// Findings of fuzz_layout (scripts/fuzz.sh copies them here) are replayed:
// each must build or fail with a message and no model, as the target checks.
TEST(Layout, FuzzRegressionsReplay) {
  std::string dir = std::string(TSD_FIXTURES) + "/../malformed/regressions_layout";
  std::string list = "ls " + dir + " 2>/dev/null";
  FILE *p = popen(list.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char name[512];
  while (fgets(name, sizeof name, p)) {
    name[strcspn(name, "\n")] = '\0';
    std::string path = dir + "/" + name;
    Mem mem;
    tsd_layout_options o = TSD_LAYOUT_OPTIONS_INIT;
    o.memory = give;
    o.memory_user = &mem;
    o.extra_state = ignore_extra;
    tsd_model *m = nullptr;
    if (tsd_model_from_layout(&m, path.c_str(), &o) == TSD_OK)
      tsd_model_free(m);
    else
      EXPECT_TRUE(m == nullptr && tsd_last_error()[0]) << path;
  }
  pclose(p);
}
