// test_shim.cc — TorchScript models through the LibTorch shim, tested through
// tsd.h and internal.h only (no LibTorch header here).
//
// Fixtures: tests/fixtures/make_shim_fixtures.py writes the TorchScript
// archives and, from Python's eager models, what tsd must find in them
// (NAME.tensors, NAME.modules) and what load_state_dict says (NAME.expect).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
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
const std::string kTmp = tsdtest::temp_dir();

std::string fixture(const std::string &name) {
  return kFixtures + "/" + name;
}

std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : s) {
    if (ch == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  out.push_back(cur);
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

// case name -> Python's text
std::map<std::string, std::string> read_expect(const std::string &name) {
  std::map<std::string, std::string> out;
  for (const auto &row : read_table(name)) {
    EXPECT_EQ(row.size(), 3u) << name;
    if (row.size() == 3) out[row[0]] = unescape(row[2]);
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

// The options of an open on `device`.
tsd_torchscript_options on_device(const char *device) {
  tsd_torchscript_options o = TSD_TORCHSCRIPT_OPTIONS_INIT;
  o.device = device;
  return o;
}

Model open_model(const std::string &path, const char *device = "cpu") {
  tsd_model *m = nullptr;
  const tsd_torchscript_options o = on_device(device);
  tsd_status st = tsd_model_open_torchscript(&m, path.c_str(), &o);
  EXPECT_EQ(st, TSD_OK) << path << ": " << tsd_last_error();
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

std::string shape_text(const tsd_tensor_info &t) {
  std::string s;
  for (size_t i = 0; i < t.ndim; i++)
    s += (i ? "," : "") + std::to_string(t.shape[i]);
  return s;
}

// The model's tensors, as NAME.tensors lists them.
void expect_tensors(const tsd_model *m, const std::string &listing) {
  auto rows = read_table(listing);
  ASSERT_FALSE(rows.empty());
  ASSERT_EQ(tsd_model_tensor_count(m), rows.size());
  for (size_t i = 0; i < rows.size(); i++) {
    ASSERT_EQ(rows[i].size(), 4u);
    tsd_tensor_info t;
    ASSERT_EQ(tsd_model_tensor(&t, m, i), TSD_OK);
    EXPECT_EQ(t.name, rows[i][0]) << "index " << i;
    EXPECT_STREQ(role_name(t.role), rows[i][1].c_str()) << t.name;
    EXPECT_EQ(t.data, nullptr) << t.name;
    if (t.role == TSD_PARAMETER_NONE) continue;
    EXPECT_STREQ(tsd_dtype_name(t.dtype), rows[i][2].c_str()) << t.name;
    EXPECT_EQ(shape_text(t), rows[i][3]) << t.name;
  }
}

const tsd__module *find_module(const tsd_model *m, const std::string &prefix) {
  for (size_t i = 0; i < m->n_modules; i++)
    if (prefix == m->modules[i].prefix) return &m->modules[i];
  return nullptr;
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

Report load(tsd_model *m, const tsd_checkpoint *c, int strict, int auto_pop,
            tsd_status want) {
  tsd_load_options opt = TSD_LOAD_OPTIONS_INIT;
  opt.strict = strict;
  opt.auto_pop = auto_pop;
  tsd_report *r = nullptr;
  EXPECT_EQ(tsd_load(&r, m, c, &opt), want) << tsd_last_error();
  EXPECT_NE(r, nullptr);
  return Report(r);
}

std::string write_tmp(const std::string &name, const std::string &bytes) {
  std::string path = kTmp + "/" + name;
  FILE *f = fopen(path.c_str(), "wb");
  EXPECT_NE(f, nullptr) << path;
  if (f) {
    fwrite(bytes.data(), 1, bytes.size(), f);
    fclose(f);
  }
  return path;
}

std::string slurp(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Opening `path` fails with `want`, a message naming `needle`, no model.
void expect_open_fails(const std::string &path, const char *device,
                       tsd_status want, const std::string &needle) {
  tsd_model *m = reinterpret_cast<tsd_model *>(0x1);
  const tsd_torchscript_options o = on_device(device);
  tsd_status st = tsd_model_open_torchscript(&m, path.c_str(), &o);
  EXPECT_EQ(st, want) << path << ": " << tsd_last_error();
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(tsd_last_error()).find(needle), std::string::npos)
      << "message: " << tsd_last_error() << "\nexpected to contain: " << needle;
  tsd_model_free(m);
}

} // namespace

TEST(Shim, HasTorch) {
  EXPECT_EQ(tsd_has_torch(), 1);
}

TEST(Shim, TensorOrderIsPythonStateDictOrder) {
  Model m = open_model(fixture("shim_tiny.pt"));
  ASSERT_TRUE(m);
  expect_tensors(m.get(), "shim_tiny.tensors");
}

TEST(Shim, ClassNameIsUnmangled) {
  // The archive's root type is __torch__.___torch_mangle_N.Tiny and head.0's
  // __torch__.torch.nn.modules.linear.___torch_mangle_M.Linear (the fixture
  // script asserts both are mangled).
  Model m = open_model(fixture("shim_tiny.pt"));
  ASSERT_TRUE(m);
  EXPECT_STREQ(tsd_model_class_name(m.get()), "Tiny");
  for (const auto &row : read_table("shim_tiny.modules")) {
    ASSERT_EQ(row.size(), 3u);
    const tsd__module *mod = find_module(m.get(), row[0]);
    ASSERT_NE(mod, nullptr) << row[0];
    ASSERT_NE(mod->type_name, nullptr) << row[0];
    EXPECT_EQ(mod->type_name, row[1]) << row[0];
  }
}

TEST(Shim, OpensTorchvisionBlocksWithTheirNormLayers) {
  Model m = open_model(fixture("shim_mini.pt"));
  ASSERT_TRUE(m);
  EXPECT_STREQ(tsd_model_class_name(m.get()), "MiniNet");
  expect_tensors(m.get(), "shim_mini.tensors");
  auto rows = read_table("shim_mini.modules");
  // named_modules() pre-order is the order the shim registers modules in.
  ASSERT_EQ(m->n_modules, rows.size());
  for (size_t i = 0; i < rows.size(); i++) {
    ASSERT_EQ(rows[i].size(), 3u);
    const tsd__module &mod = m->modules[i];
    EXPECT_EQ(mod.prefix, rows[i][0]);
    ASSERT_NE(mod.type_name, nullptr) << rows[i][0];
    EXPECT_EQ(mod.type_name, rows[i][1]) << rows[i][0];
    tsd__norm want = rows[i][2] == "batch"      ? TSD__NORM_BATCH
                     : rows[i][2] == "instance" ? TSD__NORM_INSTANCE
                                                : TSD__NORM_NONE;
    EXPECT_EQ(mod.norm, want) << rows[i][0] << " " << rows[i][1];
  }
}

TEST(Shim, OldCheckpointFillsNumBatchesTrackedAsPython) {
  // No num_batches_tracked keys and no _metadata: _NormBase's rule (version
  // None < 2) fills them with 0, so a strict load succeeds, as in Python.
  auto expect = read_expect("shim_mini.expect");
  Model m = open_model(fixture("shim_mini.pt"));
  Ckpt c = open_ckpt("shim_mini_old.pth");
  ASSERT_TRUE(m && c);
  Report r = load(m.get(), c.get(), 1, 0, TSD_OK);
  EXPECT_EQ(tsd_report_message(r.get()), expect["old_strict"]);

  const char *key = "stem.1.num_batches_tracked";
  size_t idx = SIZE_MAX;
  for (size_t i = 0; i < tsd_model_tensor_count(m.get()); i++) {
    tsd_tensor_info t;
    ASSERT_EQ(tsd_model_tensor(&t, m.get(), i), TSD_OK);
    if (strcmp(t.name, key) == 0) idx = i;
  }
  ASSERT_NE(idx, SIZE_MAX);
  int64_t v = -1;
  ASSERT_EQ(tsd_model_read(&v, sizeof v, m.get(), idx, TSD_INT64), TSD_OK);
  EXPECT_EQ(std::to_string(v), expect[key]);
}

TEST(Shim, NoneParameterIsRegisteredButHoldsNoData) {
  Model m = open_model(fixture("shim_tiny.pt"));
  ASSERT_TRUE(m);
  size_t n = tsd_model_tensor_count(m.get());
  ASSERT_GT(n, 0u);
  tsd_tensor_info t;
  ASSERT_EQ(tsd_model_tensor(&t, m.get(), n - 1), TSD_OK);
  EXPECT_STREQ(t.name, "head.0.bias");
  EXPECT_EQ(t.role, TSD_PARAMETER_NONE);
  float dummy;
  EXPECT_EQ(tsd_model_read(&dummy, sizeof dummy, m.get(), n - 1, TSD_FLOAT32),
            TSD_ERR_TYPE);
}

TEST(Shim, ReadConvertsAsTheCConverterDoes) {
  Model m = open_model(fixture("shim_tiny.pt"));
  ASSERT_TRUE(m);
  auto native = snapshot(m.get());
  for (size_t i = 0; i < native.size(); i++) {
    tsd_tensor_info t;
    ASSERT_EQ(tsd_model_tensor(&t, m.get(), i), TSD_OK);
    if (t.role == TSD_PARAMETER_NONE) continue;
    for (tsd_dtype d : {TSD_FLOAT32, TSD_FLOAT64, TSD_INT64}) {
      std::vector<uint8_t> got(size_t(t.numel) * tsd_dtype_size(d));
      std::vector<uint8_t> want(got.size());
      ASSERT_EQ(tsd_model_read(got.data(), got.size(), m.get(), i, d), TSD_OK);
      tsd__convert(want.data(), d, native[i].data(), t.dtype, size_t(t.numel));
      EXPECT_EQ(got, want) << t.name << " as " << tsd_dtype_name(d);
    }
  }
}

TEST(Shim, StrictLoadSeesNonPersistentBufferAsTorchScriptDoes) {
  // TorchScript reports `scale` (persistent=False in Python) as a buffer:
  // the answer is the eager model's with every buffer persistent.
  auto expect = read_expect("shim_tiny.expect");
  Model m = open_model(fixture("shim_tiny.pt"));
  Ckpt c = open_ckpt("shim_tiny_ckpt.pth");
  ASSERT_TRUE(m && c);
  auto before = snapshot(m.get());
  Report r = load(m.get(), c.get(), 1, 0, TSD_ERR_LOAD);
  EXPECT_EQ(tsd_report_message(r.get()), expect["ckpt_all_persistent"]);
  EXPECT_EQ(snapshot(m.get()), before) << "a failed load changed the model";
}

TEST(Shim, SetPersistentGivesTheEagerAnswerAndLoadsValues) {
  auto expect = read_expect("shim_tiny.expect");
  Model m = open_model(fixture("shim_tiny.pt"));
  Ckpt c = open_ckpt("shim_tiny_ckpt.pth");
  ASSERT_TRUE(m && c);
  ASSERT_EQ(tsd_model_set_persistent(m.get(), "scale", 0), TSD_OK)
      << tsd_last_error();
  auto before = snapshot(m.get());
  Report r = load(m.get(), c.get(), 1, 0, TSD_OK);
  EXPECT_EQ(tsd_report_message(r.get()), expect["ckpt_eager"]);
  auto after = snapshot(m.get());

  // Every loaded tensor equals the checkpoint's value converted to the
  // model's dtype (fc1.weight float64 -> float32, dbl float32 -> float64,
  // half_buf float32 -> float16: copy_ in LibTorch, tsd's converter here).
  size_t changed = 0, checked = 0;
  for (size_t i = 0; i < after.size(); i++) {
    tsd_tensor_info t;
    ASSERT_EQ(tsd_model_tensor(&t, m.get(), i), TSD_OK);
    size_t ci;
    if (tsd_checkpoint_find(&ci, c.get(), t.name) != TSD_OK) {
      EXPECT_TRUE(t.role == TSD_PARAMETER_NONE ||
                  t.role == TSD_BUFFER_NON_PERSISTENT)
          << t.name;
      EXPECT_EQ(after[i], before[i]) << t.name << " was not in the checkpoint";
      continue;
    }
    std::vector<uint8_t> want(after[i].size());
    ASSERT_EQ(
        tsd_checkpoint_read(want.data(), want.size(), c.get(), ci, t.dtype),
        TSD_OK);
    EXPECT_EQ(after[i], want) << t.name;
    checked++;
    changed += after[i] != before[i];
  }
  EXPECT_EQ(checked, tsd_checkpoint_count(c.get()));
  EXPECT_EQ(changed, checked) << "every checkpoint value differs from the "
                                 "model's initial one";
}

TEST(Shim, SetPersistentRefusesParametersAndUnknownNames) {
  Model m = open_model(fixture("shim_tiny.pt"));
  ASSERT_TRUE(m);
  EXPECT_EQ(tsd_model_set_persistent(m.get(), "fc1.weight", 0), TSD_ERR_TYPE);
  EXPECT_EQ(tsd_model_set_persistent(m.get(), "nope", 0), TSD_ERR_NOT_FOUND);
}

TEST(Shim, SizeMismatchRaisesEvenWhenNotStrict) {
  auto expect = read_expect("shim_tiny.expect");
  Model m = open_model(fixture("shim_tiny.pt"));
  Ckpt c = open_ckpt("shim_tiny_head5.pth");
  ASSERT_TRUE(m && c);
  ASSERT_EQ(tsd_model_set_persistent(m.get(), "scale", 0), TSD_OK);
  auto before = snapshot(m.get());
  Report r = load(m.get(), c.get(), 0, 0, TSD_ERR_LOAD);
  EXPECT_EQ(tsd_report_message(r.get()), expect["head5_nonstrict_eager"]);
  EXPECT_EQ(snapshot(m.get()), before);
}

TEST(Shim, AutoPopAnswersAsAManualPop) {
  auto expect = read_expect("shim_tiny.expect");
  Model m = open_model(fixture("shim_tiny.pt"));
  Ckpt c = open_ckpt("shim_tiny_head5.pth");
  ASSERT_TRUE(m && c);
  ASSERT_EQ(tsd_model_set_persistent(m.get(), "scale", 0), TSD_OK);
  Report r = load(m.get(), c.get(), 0, 1, TSD_OK);
  EXPECT_EQ(tsd_report_message(r.get()), expect["head5_popped_eager"]);
  ASSERT_EQ(tsd_report_count(r.get(), TSD_LIST_POPPED), 1u);
  EXPECT_STREQ(tsd_report_item(r.get(), TSD_LIST_POPPED, 0), "head.0.weight");
}

TEST(Shim, SaveRoundTrip) {
  Model m = open_model(fixture("shim_tiny.pt"));
  Ckpt c = open_ckpt("shim_tiny_ckpt.pth");
  ASSERT_TRUE(m && c);
  ASSERT_EQ(tsd_model_set_persistent(m.get(), "scale", 0), TSD_OK);
  Report r = load(m.get(), c.get(), 1, 0, TSD_OK);
  auto loaded = snapshot(m.get());

  std::string out = kTmp + "/shim_roundtrip.pt";
  ASSERT_EQ(tsd_model_save(m.get(), out.c_str(), NULL), TSD_OK)
      << tsd_last_error();
  Model back = open_model(out);
  ASSERT_TRUE(back);
  EXPECT_STREQ(tsd_model_class_name(back.get()), "Tiny");
  ASSERT_EQ(tsd_model_tensor_count(back.get()),
            tsd_model_tensor_count(m.get()));
  for (size_t i = 0; i < tsd_model_tensor_count(m.get()); i++) {
    tsd_tensor_info a, b;
    ASSERT_EQ(tsd_model_tensor(&a, m.get(), i), TSD_OK);
    ASSERT_EQ(tsd_model_tensor(&b, back.get(), i), TSD_OK);
    EXPECT_STREQ(a.name, b.name);
    EXPECT_EQ(a.dtype, b.dtype);
    // persistent=False was our own marking, not the archive's.
    EXPECT_EQ(b.role,
              a.role == TSD_BUFFER_NON_PERSISTENT ? TSD_BUFFER : a.role);
  }
  EXPECT_EQ(snapshot(back.get()), loaded);
  remove(out.c_str());
}

TEST(Shim, SaveToAnUnwritablePathIsAClearError) {
  Model m = open_model(fixture("shim_tiny.pt"));
  ASSERT_TRUE(m);
  std::string out = kTmp + "/no/such/dir/x.pt";
  EXPECT_EQ(tsd_model_save(m.get(), out.c_str(), NULL), TSD_ERR_IO);
  EXPECT_NE(std::string(tsd_last_error()).find(out), std::string::npos)
      << tsd_last_error();
}

TEST(Shim, MissingFileIsAClearError) {
  std::string path = kTmp + "/no_such_model.pt";
  remove(path.c_str());
  expect_open_fails(path, "cpu", TSD_ERR_IO, path);
}

TEST(Shim, NotTorchScriptIsAClearError) {
  // A torch.save checkpoint is a zip too, without constants.pkl.
  expect_open_fails(fixture("shim_tiny_ckpt.pth"), "cpu", TSD_ERR_FORMAT,
                    "is not a TorchScript archive");
  expect_open_fails(fixture("legacy.pth"), "cpu", TSD_ERR_FORMAT,
                    "is not a TorchScript archive");
  std::string noise;
  for (int i = 0; i < 4096; i++)
    noise += char((i * 7919 + 13) & 0xff);
  std::string p = write_tmp("shim_noise.pt", noise);
  expect_open_fails(p, "cpu", TSD_ERR_FORMAT, p);
  p = write_tmp("shim_empty.pt", "");
  expect_open_fails(p, "cpu", TSD_ERR_FORMAT, p);
  remove(p.c_str());
}

TEST(Shim, TruncatedArchiveIsAnErrorNotACrash) {
  std::string whole = slurp(fixture("shim_tiny.pt"));
  ASSERT_GT(whole.size(), 1000u);
  for (size_t keep : {whole.size() / 2, whole.size() - 30}) {
    std::string p = write_tmp("shim_truncated.pt", whole.substr(0, keep));
    tsd_model *m = nullptr;
    tsd_status st = tsd_model_open_torchscript(&m, p.c_str(), NULL);
    EXPECT_TRUE(st == TSD_ERR_FORMAT || st == TSD_ERR_TORCH)
        << keep << ": " << tsd_status_name(st) << " " << tsd_last_error();
    EXPECT_EQ(m, nullptr);
    EXPECT_NE(std::string(tsd_last_error()).find(p), std::string::npos)
        << tsd_last_error();
    tsd_model_free(m);
    remove(p.c_str());
  }
}

TEST(Shim, UnknownDeviceIsAClearError) {
  std::string p = fixture("shim_tiny.pt");
  // No CUDA on this machine (a CPU-only LibTorch): a well-formed device that
  // is not available.
  expect_open_fails(p, "cuda:0", TSD_ERR_INVALID_ARG,
                    "\"cuda:0\" is not available");
  expect_open_fails(p, "cuda", TSD_ERR_INVALID_ARG,
                    "\"cuda\" is not available");
  // Not a device name at all.
  expect_open_fails(p, "gpu", TSD_ERR_INVALID_ARG, "\"gpu\" is not a device");
  expect_open_fails(p, "cpu:zero", TSD_ERR_INVALID_ARG, "\"cpu:zero\"");
  expect_open_fails(p, "", TSD_ERR_INVALID_ARG, "device \"\"");
  // Known to LibTorch but unusable: no data (meta), no backend here (mps).
  expect_open_fails(p, "meta", TSD_ERR_INVALID_ARG, "hold no data");
  expect_open_fails(p, "mps", TSD_ERR_TORCH, "MPS");
}

TEST(Shim, CpuDeviceSpellingsAndNullOpen) {
  for (const char *dev : {"cpu", "cpu:0", static_cast<const char *>(nullptr)}) {
    tsd_model *m = nullptr;
    const tsd_torchscript_options o = on_device(dev);
    EXPECT_EQ(
        tsd_model_open_torchscript(&m, fixture("shim_tiny.pt").c_str(), &o),
        TSD_OK)
        << (dev ? dev : "NULL") << ": " << tsd_last_error();
    EXPECT_NE(m, nullptr);
    tsd_model_free(m);
  }
  EXPECT_EQ(tsd_model_open_torchscript(nullptr, "x.pt", NULL),
            TSD_ERR_INVALID_ARG);
  tsd_model *m = nullptr;
  EXPECT_EQ(tsd_model_open_torchscript(&m, nullptr, NULL), TSD_ERR_INVALID_ARG);
  EXPECT_EQ(m, nullptr);
}

TEST(Shim, ComplexTensorsOpenAndReadAsCopyUnderscore) {
  // complex64 is a tsd dtype (tsd.h): the buffer opens and reads, and as a
  // real dtype it keeps the real part, as Tensor.copy_
  Model m = open_model(fixture("shim_complex.pt"));
  ASSERT_TRUE(m);
  size_t found = SIZE_MAX;
  for (size_t i = 0; i < tsd_model_tensor_count(m.get()); i++) {
    tsd_tensor_info info;
    ASSERT_EQ(tsd_model_tensor(&info, m.get(), i), TSD_OK);
    if (strcmp(info.name, "phase") == 0) {
      found = i;
      EXPECT_EQ(info.dtype, TSD_COMPLEX64);
    }
  }
  ASSERT_NE(found, SIZE_MAX);
  float c[4], r[2];
  ASSERT_EQ(tsd_model_read(c, sizeof c, m.get(), found, TSD_COMPLEX64), TSD_OK);
  EXPECT_EQ(std::vector<float>(c, c + 4), (std::vector<float>{1, 0, 1, 0}));
  ASSERT_EQ(tsd_model_read(r, sizeof r, m.get(), found, TSD_FLOAT32), TSD_OK);
  EXPECT_EQ(std::vector<float>(r, r + 2), (std::vector<float>{1, 1}));
  // a dtype LibTorch 1.13 lacks: tsd converts (float8 of 1.0 is 0x38)
  uint8_t f8[2];
  ASSERT_EQ(tsd_model_read(f8, sizeof f8, m.get(), found, TSD_FLOAT8_E4M3FN),
            TSD_OK);
  EXPECT_EQ(f8[0], 0x38);
  EXPECT_EQ(f8[1], 0x38);
}

TEST(Shim, TensorsCannotBeAddedToATorchScriptModel) {
  Model m = open_model(fixture("shim_tiny.pt"));
  ASSERT_TRUE(m);
  float x = 0;
  int64_t shape[1] = {1};
  EXPECT_EQ(tsd_model_add_tensor(m.get(), "extra", TSD_BUFFER, TSD_FLOAT32, 1,
                                 shape, &x),
            TSD_ERR_INVALID_ARG);
}

// ---- a TorchScript archive as a checkpoint (issue 3, item 5) --------------

namespace {

Ckpt open_ts_ckpt(const std::string &name) {
  tsd_checkpoint *c = nullptr;
  tsd_status st =
      tsd_checkpoint_open_torchscript(&c, fixture(name).c_str(), NULL);
  EXPECT_EQ(st, TSD_OK) << name << ": " << tsd_last_error();
  return Ckpt(c);
}

std::string entry_shape(const tsd_entry &e) {
  std::string s;
  for (size_t i = 0; i < e.ndim; i++)
    s += (i ? "," : "") + std::to_string(e.shape[i]);
  return s;
}

} // namespace

TEST(Shim, TorchScriptCheckpointHoldsTheModuleStateDict) {
  Ckpt c = open_ts_ckpt("shim_tiny.pt");
  ASSERT_TRUE(c);
  std::vector<std::vector<std::string>> rows;
  for (auto &row : read_table("shim_tiny.tensors"))
    if (row[1] != "parameter_none") rows.push_back(row);
  ASSERT_EQ(tsd_checkpoint_count(c.get()), rows.size());
  for (size_t i = 0; i < rows.size(); i++) {
    tsd_entry e;
    ASSERT_EQ(tsd_checkpoint_entry(&e, c.get(), i), TSD_OK);
    EXPECT_EQ(e.key, rows[i][0]);
    ASSERT_EQ(e.kind, TSD_KIND_TENSOR) << e.key;
    EXPECT_EQ(e.is_parameter, rows[i][1] == "parameter") << e.key;
    EXPECT_STREQ(tsd_dtype_name(e.dtype), rows[i][2].c_str()) << e.key;
    EXPECT_EQ(entry_shape(e), rows[i][3]) << e.key;
  }
  // Python's torch.jit.load(p).state_dict()._metadata: version 1 for every
  // module, in named_modules() order.
  auto mods = read_table("shim_tiny.modules");
  ASSERT_EQ(tsd_checkpoint_metadata_count(c.get()), mods.size());
  for (size_t i = 0; i < mods.size(); i++) {
    EXPECT_EQ(tsd_checkpoint_metadata_prefix(c.get(), i), mods[i][0]);
    EXPECT_EQ(tsd_checkpoint_module_version(c.get(), mods[i][0].c_str()), 1);
  }
}

TEST(Shim, ScriptedWeightsLoadIntoAnotherScriptedModel) {
  auto expect = read_expect("shim_tiny.expect");
  Model m = open_model(fixture("shim_tiny.pt"));
  Ckpt c = open_ts_ckpt("shim_tiny_src.pt");
  ASSERT_TRUE(m && c);
  auto before = snapshot(m.get());
  Report r = load(m.get(), c.get(), 1, 0, TSD_OK);
  EXPECT_EQ(tsd_report_message(r.get()), expect["ts_src_all_persistent"]);
  auto after = snapshot(m.get());
  size_t checked = 0;
  for (size_t i = 0; i < after.size(); i++) {
    tsd_tensor_info t;
    ASSERT_EQ(tsd_model_tensor(&t, m.get(), i), TSD_OK);
    if (t.role == TSD_PARAMETER_NONE) continue;
    size_t ci;
    ASSERT_EQ(tsd_checkpoint_find(&ci, c.get(), t.name), TSD_OK) << t.name;
    std::vector<uint8_t> want(after[i].size());
    ASSERT_EQ(
        tsd_checkpoint_read(want.data(), want.size(), c.get(), ci, t.dtype),
        TSD_OK);
    EXPECT_EQ(after[i], want) << t.name;
    checked++;
  }
  EXPECT_EQ(checked, tsd_checkpoint_count(c.get()));
  EXPECT_NE(after, before);

  // With the eager model's persistent=False, `scale` is unexpected.
  Model eager = open_model(fixture("shim_tiny.pt"));
  ASSERT_TRUE(eager);
  ASSERT_EQ(tsd_model_set_persistent(eager.get(), "scale", 0), TSD_OK);
  Report r2 = load(eager.get(), c.get(), 1, 0, TSD_ERR_LOAD);
  EXPECT_EQ(tsd_report_message(r2.get()), expect["ts_src_eager"]);
}

TEST(Shim, CppTorchSaveArchiveIsACheckpoint) {
  // A C++ program's torch::save(Sequential(...), path), loaded into a
  // C-owned model shaped like the eager nn.Sequential.
  auto expect = read_expect("shim_tiny.expect");
  auto rows = read_table("shim_cpp_seq.values");
  ASSERT_EQ(rows.size(), 8u);
  Ckpt c = open_ts_ckpt("shim_cpp_seq.pt");
  ASSERT_TRUE(c);
  ASSERT_EQ(tsd_checkpoint_count(c.get()), rows.size());

  tsd_model *raw = nullptr;
  ASSERT_EQ(tsd_model_new(&raw, "Sequential"), TSD_OK);
  Model m(raw);
  ASSERT_EQ(tsd_model_add_module(m.get(), "0", "Linear", -1), TSD_OK);
  ASSERT_EQ(tsd_model_add_module(m.get(), "1", "BatchNorm1d", -1), TSD_OK);
  ASSERT_EQ(tsd_model_add_module(m.get(), "2", "Linear", -1), TSD_OK);
  std::vector<std::vector<double>> want(rows.size());
  std::vector<std::vector<uint8_t>> storage(rows.size());
  for (size_t i = 0; i < rows.size(); i++) {
    ASSERT_EQ(rows[i].size(), 4u);
    tsd_entry e;
    ASSERT_EQ(tsd_checkpoint_entry(&e, c.get(), i), TSD_OK);
    EXPECT_EQ(e.key, rows[i][0]);
    EXPECT_STREQ(tsd_dtype_name(e.dtype), rows[i][1].c_str());
    EXPECT_EQ(entry_shape(e), rows[i][2]);
    for (const auto &h : split(rows[i][3], ','))
      if (!h.empty()) want[i].push_back(std::strtod(h.c_str(), nullptr));
    ASSERT_EQ(want[i].size(), size_t(e.numel)) << e.key;
    std::vector<int64_t> shape(e.shape, e.shape + e.ndim);
    storage[i].assign(size_t(e.numel) * tsd_dtype_size(e.dtype), 0xAB);
    bool buffer = rows[i][0].find("running") != std::string::npos ||
                  rows[i][0].find("num_batches") != std::string::npos;
    ASSERT_EQ(tsd_model_add_tensor(m.get(), rows[i][0].c_str(),
                                   buffer ? TSD_BUFFER : TSD_PARAMETER, e.dtype,
                                   e.ndim, shape.data(), storage[i].data()),
              TSD_OK)
        << tsd_last_error();
  }
  Report r = load(m.get(), c.get(), 1, 0, TSD_OK);
  EXPECT_EQ(tsd_report_message(r.get()), expect["cpp_seq_into_eager"]);
  for (size_t i = 0; i < rows.size(); i++) {
    std::vector<double> got(want[i].size());
    ASSERT_EQ(tsd_model_read(got.data(), got.size() * sizeof(double), m.get(),
                             i, TSD_FLOAT64),
              TSD_OK);
    EXPECT_EQ(got, want[i]) << rows[i][0];
  }
}

TEST(Shim, TorchScriptCheckpointErrors) {
  tsd_checkpoint *c = reinterpret_cast<tsd_checkpoint *>(0x1);
  std::string missing = kTmp + "/no_such_ckpt.pt";
  remove(missing.c_str());
  EXPECT_EQ(tsd_checkpoint_open_torchscript(&c, missing.c_str(), NULL),
            TSD_ERR_IO);
  EXPECT_EQ(c, nullptr);
  EXPECT_EQ(tsd_checkpoint_open_torchscript(
                &c, fixture("shim_tiny_ckpt.pth").c_str(), NULL),
            TSD_ERR_FORMAT);
  EXPECT_NE(std::string(tsd_last_error()).find("tsd_checkpoint_open"),
            std::string::npos)
      << tsd_last_error();
  // complex64 is a tsd dtype: such an archive opens as a checkpoint too
  ASSERT_EQ(tsd_checkpoint_open_torchscript(
                &c, fixture("shim_complex.pt").c_str(), NULL),
            TSD_OK)
      << tsd_last_error();
  size_t i = SIZE_MAX;
  tsd_entry e;
  ASSERT_EQ(tsd_checkpoint_find(&i, c, "phase"), TSD_OK);
  ASSERT_EQ(tsd_checkpoint_entry(&e, c, i), TSD_OK);
  EXPECT_EQ(e.dtype, TSD_COMPLEX64);
  tsd_checkpoint_free(c);
  EXPECT_EQ(tsd_checkpoint_open_torchscript(nullptr, "x", NULL),
            TSD_ERR_INVALID_ARG);
}

// ---- corrupt archive geometry (tests/malformed/torchscript) ----------------

namespace {

struct CorruptCase {
  std::string name, expect, needle;
};

std::vector<CorruptCase> corrupt_corpus() {
  const std::string dir = kFixtures + "/../malformed/torchscript";
  std::ifstream in(dir + "/manifest.tsv");
  std::vector<CorruptCase> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto f = split(line, '\t');
    if (f.size() == 3)
      out.push_back({dir + "/cases/" + f[0] + ".pt", f[1], f[2]});
  }
  return out;
}

// The documented status and message text, naming the file.
void expect_refused(tsd_status st, const CorruptCase &c, const char *how) {
  const std::string msg = tsd_last_error();
  EXPECT_STREQ(tsd_status_name(st), c.expect.c_str())
      << how << " " << c.name << ": " << msg;
  EXPECT_NE(msg.find(c.needle), std::string::npos)
      << how << " " << c.name << ": " << msg << "\nexpected: " << c.needle;
  EXPECT_NE(msg.find(c.name), std::string::npos) << msg;
}

} // namespace

TEST(Shim, CorruptArchiveCorpusIsPresent) {
  auto cases = corrupt_corpus();
  EXPECT_GE(cases.size(), 20u) << "tests/malformed/torchscript/manifest.tsv";
  size_t ok = 0;
  for (const auto &c : cases) {
    EXPECT_TRUE(std::ifstream(c.name).good()) << c.name;
    ok += c.expect == "ok";
  }
  EXPECT_EQ(ok, 3u);
}

// Every corrupt geometry is refused before LibTorch copies a byte, as a
// model and as a checkpoint; the valid bases open, read and load.
TEST(Shim, CorruptArchiveGeometryIsRefusedAsModelAndAsCheckpoint) {
  for (const auto &c : corrupt_corpus()) {
    tsd_model *m = nullptr;
    tsd_status st = tsd_model_open_torchscript(&m, c.name.c_str(), NULL);
    tsd_checkpoint *k = nullptr;
    if (c.expect == "ok") {
      ASSERT_EQ(st, TSD_OK) << c.name << ": " << tsd_last_error();
      Model model(m);
      snapshot(model.get()); // every tensor reads
      ASSERT_EQ(tsd_checkpoint_open_torchscript(&k, c.name.c_str(), NULL),
                TSD_OK)
          << c.name << ": " << tsd_last_error();
      Ckpt ck(k);
      load(model.get(), ck.get(), 1, 0, TSD_OK);
      continue;
    }
    expect_refused(st, c, "model");
    EXPECT_EQ(m, nullptr);
    st = tsd_checkpoint_open_torchscript(&k, c.name.c_str(), NULL);
    expect_refused(st, c, "checkpoint");
    EXPECT_EQ(k, nullptr);
  }
}
