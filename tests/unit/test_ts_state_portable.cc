// test_ts_state_portable.cc — TorchScript archives read without running them
// (torchscript_state.c: tsd_checkpoint_open on an archive,
// tsd_model_open_torchscript_state), in every build. Expected values come
// from Python: the shim fixtures' listings of the eager models
// (make_shim_fixtures.py: NAME.tensors, NAME.modules, NAME.expect,
// shim_cpp_seq.values) and the side-effect archives of
// make_ts_state_fixtures.py. In the LibTorch build the shim's own view of
// the same archives is compared too. Library only: built for Windows too and
// run under Wine (test_ts_state.cc keeps the command's check, through sh).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "internal.h"
}
#include "test_tmp.h"

namespace {

const std::string kFixtures = TSD_FIXTURES;

std::string fixture(const std::string &name) {
  return kFixtures + "/" + name;
}

std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out(1);
  for (char ch : s) {
    if (ch == sep)
      out.emplace_back();
    else
      out.back() += ch;
  }
  return out;
}

std::vector<std::vector<std::string>> read_table(const std::string &name) {
  std::ifstream in(fixture(name));
  EXPECT_TRUE(in.good()) << "missing fixture " << name;
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(split(line, '\t'));
  return rows;
}

std::string unescape(const std::string &s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      char n = s[++i];
      out += n == 'n' ? '\n' : n == 't' ? '\t' : n;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct ModelDel {
  void operator()(tsd_model *m) const {
    tsd_model_free(m);
  }
};
struct CkptDel {
  void operator()(tsd_checkpoint *c) const {
    tsd_checkpoint_free(c);
  }
};
struct ReportDel {
  void operator()(tsd_report *r) const {
    tsd_report_free(r);
  }
};
using Model = std::unique_ptr<tsd_model, ModelDel>;
using Ckpt = std::unique_ptr<tsd_checkpoint, CkptDel>;
using Report = std::unique_ptr<tsd_report, ReportDel>;

Model open_state(const std::string &name) {
  tsd_model *m = nullptr;
  tsd_status st =
      tsd_model_open_torchscript_state(&m, fixture(name).c_str(), NULL);
  EXPECT_EQ(st, TSD_OK) << name << ": " << tsd_last_error();
  return Model(m);
}

Ckpt open_ckpt(const std::string &name) {
  tsd_checkpoint *c = nullptr;
  tsd_status st = tsd_checkpoint_open(&c, fixture(name).c_str(), nullptr);
  EXPECT_EQ(st, TSD_OK) << name << ": " << tsd_last_error();
  return Ckpt(c);
}

const char *role_name(tsd_tensor_role r) {
  switch (r) {
  case TSD_PARAMETER:
    return "parameter";
  case TSD_BUFFER:
    return "buffer";
  case TSD_BUFFER_NON_PERSISTENT:
    return "buffer_non_persistent";
  case TSD_PARAMETER_NONE:
    return "parameter_none";
  }
  return "?";
}

std::string shape_text(size_t ndim, const int64_t *shape) {
  std::string s;
  for (size_t i = 0; i < ndim; i++)
    s += (i ? "," : "") + std::to_string(shape[i]);
  return s;
}

// Every tensor's bytes in its own dtype (None parameters: empty).
std::vector<std::vector<uint8_t>> snapshot(const tsd_model *m) {
  std::vector<std::vector<uint8_t>> out;
  for (size_t i = 0; i < tsd_model_tensor_count(m); i++) {
    tsd_tensor_info t;
    EXPECT_EQ(tsd_model_tensor(&t, m, i), TSD_OK);
    std::vector<uint8_t> bytes;
    if (t.role != TSD_PARAMETER_NONE) {
      bytes.resize(size_t(t.numel) * tsd_dtype_size(t.dtype));
      EXPECT_EQ(tsd_model_read(bytes.data(), bytes.size(), m, i, t.dtype),
                TSD_OK)
          << t.name << ": " << tsd_last_error();
    }
    out.push_back(std::move(bytes));
  }
  return out;
}

} // namespace

// tsd_checkpoint_open gives `torch.jit.load(p).state_dict()`: the listing's
// tensors (None parameters are not in a state dict), in order, with their
// dtypes and shapes, and `_metadata` version 1 for every module.
TEST(TsState, CheckpointIsTheArchivesStateDict) {
  for (const std::string name : {"shim_tiny", "shim_mini"}) {
    Ckpt c = open_ckpt(name + ".pt");
    ASSERT_TRUE(c);
    std::vector<std::vector<std::string>> want;
    for (const auto &row : read_table(name + ".tensors"))
      if (row.at(1) != "parameter_none") want.push_back(row);
    ASSERT_EQ(tsd_checkpoint_count(c.get()), want.size()) << name;
    for (size_t i = 0; i < want.size(); i++) {
      tsd_entry e;
      ASSERT_EQ(tsd_checkpoint_entry(&e, c.get(), i), TSD_OK);
      EXPECT_EQ(e.key, want[i][0]) << name << " " << i;
      EXPECT_EQ(e.kind, TSD_KIND_TENSOR) << e.key;
      EXPECT_STREQ(tsd_dtype_name(e.dtype), want[i][2].c_str()) << e.key;
      EXPECT_EQ(shape_text(e.ndim, e.shape), want[i][3]) << e.key;
    }
    auto modules = read_table(name + ".modules");
    ASSERT_EQ(tsd_checkpoint_metadata_count(c.get()), modules.size()) << name;
    for (size_t i = 0; i < modules.size(); i++) {
      EXPECT_EQ(tsd_checkpoint_metadata_prefix(c.get(), i), modules[i][0]);
      EXPECT_EQ(tsd_checkpoint_module_version(c.get(), modules[i][0].c_str()),
                1)
          << modules[i][0];
    }
  }
}

// The values: a C++ torch::save(Sequential) archive, whose state Python's
// torch.jit.load read (shim_cpp_seq.values: key, dtype, shape, values as
// float.hex).
TEST(TsState, ValuesAreWhatPythonReads) {
  Ckpt c = open_ckpt("shim_cpp_seq.pt");
  ASSERT_TRUE(c);
  auto rows = read_table("shim_cpp_seq.values");
  ASSERT_FALSE(rows.empty());
  ASSERT_EQ(tsd_checkpoint_count(c.get()), rows.size());
  for (size_t i = 0; i < rows.size(); i++) {
    ASSERT_EQ(rows[i].size(), 4u);
    tsd_entry e;
    ASSERT_EQ(tsd_checkpoint_entry(&e, c.get(), i), TSD_OK);
    EXPECT_EQ(e.key, rows[i][0]);
    EXPECT_STREQ(tsd_dtype_name(e.dtype), rows[i][1].c_str()) << e.key;
    EXPECT_EQ(shape_text(e.ndim, e.shape), rows[i][2]) << e.key;
    std::vector<double> got(size_t(e.numel));
    ASSERT_EQ(tsd_checkpoint_read(got.data(), got.size() * sizeof(double),
                                  c.get(), i, TSD_FLOAT64),
              TSD_OK)
        << tsd_last_error();
    auto want = split(rows[i][3], ',');
    ASSERT_EQ(want.size(), got.size()) << e.key;
    for (size_t k = 0; k < got.size(); k++)
      EXPECT_EQ(got[k], std::strtod(want[k].c_str(), nullptr))
          << e.key << "[" << k << "]";
  }
}

// The model: the listing's tensors with their roles (None parameters
// included), every module with its unmangled class name and norm kind.
TEST(TsState, ModelHasTheTreeRolesAndClassNames) {
  for (const std::string name : {"shim_tiny", "shim_mini"}) {
    Model m = open_state(name + ".pt");
    ASSERT_TRUE(m);
    EXPECT_STREQ(tsd_model_class_name(m.get()),
                 name == "shim_tiny" ? "Tiny" : "MiniNet");
    auto rows = read_table(name + ".tensors");
    ASSERT_EQ(tsd_model_tensor_count(m.get()), rows.size()) << name;
    for (size_t i = 0; i < rows.size(); i++) {
      tsd_tensor_info t;
      ASSERT_EQ(tsd_model_tensor(&t, m.get(), i), TSD_OK);
      EXPECT_EQ(t.name, rows[i][0]) << name << " " << i;
      EXPECT_STREQ(role_name(t.role), rows[i][1].c_str()) << t.name;
      EXPECT_EQ(t.data, nullptr) << t.name;
      if (t.role == TSD_PARAMETER_NONE) continue;
      EXPECT_STREQ(tsd_dtype_name(t.dtype), rows[i][2].c_str()) << t.name;
      EXPECT_EQ(shape_text(t.ndim, t.shape), rows[i][3]) << t.name;
    }
    auto modules = read_table(name + ".modules");
    ASSERT_EQ(m->n_modules, modules.size()) << name;
    for (size_t i = 0; i < modules.size(); i++) {
      const tsd__module &mod = m->modules[i];
      EXPECT_EQ(mod.prefix, modules[i][0]);
      ASSERT_NE(mod.type_name, nullptr) << modules[i][0];
      EXPECT_EQ(mod.type_name, modules[i][1]) << modules[i][0];
      tsd__norm want = modules[i][2] == "batch"      ? TSD__NORM_BATCH
                       : modules[i][2] == "instance" ? TSD__NORM_INSTANCE
                                                     : TSD__NORM_NONE;
      EXPECT_EQ(mod.norm, want) << modules[i][0];
    }
  }
}

// A dry run into the state model says what load_state_dict says (Python's
// text, shim_mini.expect: an old checkpoint without num_batches_tracked).
TEST(TsState, DryRunLoadGivesPythonsMessage) {
  std::map<std::string, std::string> expect;
  for (const auto &row : read_table("shim_mini.expect"))
    if (row.size() == 3) expect[row[0]] = unescape(row[2]);
  Model m = open_state("shim_mini.pt");
  Ckpt c = open_ckpt("shim_mini_old.pth");
  ASSERT_TRUE(m && c);
  tsd_load_options opt = TSD_LOAD_OPTIONS_INIT;
  opt.dry_run = 1;
  tsd_report *r = nullptr;
  ASSERT_EQ(tsd_load(&r, m.get(), c.get(), &opt), TSD_OK) << tsd_last_error();
  Report report(r);
  EXPECT_EQ(tsd_report_message(r), expect["old_strict"]);
}

TEST(TsState, ModelIsReadOnly) {
  Model m = open_state("shim_tiny.pt");
  Ckpt c = open_ckpt("shim_tiny_ckpt.pth");
  ASSERT_TRUE(m && c);
  auto before = snapshot(m.get());
  tsd_load_options opt = TSD_LOAD_OPTIONS_INIT;
  opt.strict = 0;
  tsd_report *r = nullptr;
  EXPECT_EQ(tsd_load(&r, m.get(), c.get(), &opt), TSD_ERR_UNSUPPORTED);
  tsd_report_free(r);
  EXPECT_NE(std::string(tsd_last_error()).find("is read-only"),
            std::string::npos)
      << tsd_last_error();
  EXPECT_EQ(snapshot(m.get()), before);
  std::string out = tsdtest::temp_dir() + "/ts_state_save.pt";
  EXPECT_EQ(tsd_model_save(m.get(), out.c_str(), NULL), TSD_ERR_UNSUPPORTED);
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(TsState, NotATorchScriptArchiveIsAClearError) {
  tsd_model *m = reinterpret_cast<tsd_model *>(0x1);
  EXPECT_EQ(tsd_model_open_torchscript_state(
                &m, fixture("shim_tiny_ckpt.pth").c_str(), NULL),
            TSD_ERR_FORMAT);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(tsd_last_error()).find("is not a TorchScript archive"),
            std::string::npos)
      << tsd_last_error();
  EXPECT_EQ(tsd_model_open_torchscript_state(nullptr, "x", NULL),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(tsd_model_open_torchscript_state(&m, nullptr, NULL),
            TSD_ERR_INVALID_ARG);
}

// A module keeping its state through __getstate__/__setstate__ cannot be
// read without running it: refused, naming the class.
TEST(TsState, ModuleWithItsOwnSetstateIsRefused) {
  tsd_checkpoint *c = nullptr;
  EXPECT_EQ(
      tsd_checkpoint_open(&c, fixture("ts_evil_module.pt").c_str(), nullptr),
      TSD_ERR_UNSUPPORTED);
  EXPECT_EQ(c, nullptr);
  EXPECT_NE(std::string(tsd_last_error())
                .find("module '(root)' (class __torch__.EvilModule) keeps its "
                      "state through its own __getstate__/__setstate__"),
            std::string::npos)
      << tsd_last_error();
}

// In the LibTorch build: the state reader and the shim see the same tree,
// roles, class names and values.
TEST(TsState, SameAsTheShim) {
  if (!tsd_has_torch()) { // the pure-C build: the reader stands alone
    tsd_model *m = nullptr;
    EXPECT_EQ(
        tsd_model_open_torchscript(&m, fixture("shim_tiny.pt").c_str(), NULL),
        TSD_ERR_UNSUPPORTED);
    return;
  }
  for (const std::string name : {"shim_tiny.pt", "shim_mini.pt"}) {
    Model a = open_state(name);
    tsd_model *raw = nullptr;
    ASSERT_EQ(tsd_model_open_torchscript(&raw, fixture(name).c_str(), NULL),
              TSD_OK)
        << tsd_last_error();
    Model b(raw);
    ASSERT_TRUE(a);
    ASSERT_EQ(tsd_model_tensor_count(a.get()), tsd_model_tensor_count(b.get()));
    for (size_t i = 0; i < tsd_model_tensor_count(a.get()); i++) {
      tsd_tensor_info x, y;
      ASSERT_EQ(tsd_model_tensor(&x, a.get(), i), TSD_OK);
      ASSERT_EQ(tsd_model_tensor(&y, b.get(), i), TSD_OK);
      EXPECT_STREQ(x.name, y.name);
      EXPECT_EQ(x.role, y.role) << x.name;
    }
    EXPECT_EQ(snapshot(a.get()), snapshot(b.get())) << name;
    ASSERT_EQ(a->n_modules, b->n_modules);
    for (size_t i = 0; i < a->n_modules; i++) {
      EXPECT_STREQ(a->modules[i].prefix, b->modules[i].prefix);
      EXPECT_STREQ(a->modules[i].type_name, b->modules[i].type_name);
    }
  }
}
