// test_torch2x.cc — PyTorch 2.x checkpoints torch 1.13 cannot write:
// _rebuild_tensor_v3 over untyped storages (float8, uint16/32/64,
// complex32), torch.dtype / torch.device values, big-endian files (the
// `byteorder` record). Fixtures from tests/fixtures/make_torch2x_fixtures.py
// (hand-made pickles); expected bytes in its .expect files, float8 values
// computed here from the bit patterns.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "internal.h"
}

namespace {

std::string fixture(const std::string &name) {
  return std::string(TSD_FIXTURES) + "/" + name;
}

struct Ckpt {
  tsd_checkpoint *c = nullptr;
  tsd_status st;
  std::string err;
  explicit Ckpt(const std::string &path) {
    st = tsd_checkpoint_open(&c, path.c_str(), nullptr);
    if (st) err = tsd_last_error();
  }
  ~Ckpt() { tsd_checkpoint_free(c); }
  size_t find(const char *key) const {
    size_t i = SIZE_MAX;
    EXPECT_EQ(tsd_checkpoint_find(&i, c, key), TSD_OK) << key;
    return i;
  }
  tsd_entry entry(const char *key) const {
    tsd_entry e;
    EXPECT_EQ(tsd_checkpoint_entry(&e, c, find(key)), TSD_OK);
    return e;
  }
  std::vector<uint8_t> bytes(const char *key, tsd_dtype dt) const {
    tsd_entry e = entry(key);
    std::vector<uint8_t> out((size_t)e.numel * tsd_dtype_size(dt));
    EXPECT_EQ(tsd_checkpoint_read(out.data(), out.size(), c, find(key), dt),
              TSD_OK)
        << key << ": " << tsd_last_error();
    return out;
  }
};

struct Line {
  std::string key, dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

std::vector<Line> expect_file(const std::string &name) {
  std::ifstream f(fixture(name));
  EXPECT_TRUE(f.good()) << name;
  std::vector<Line> out;
  std::string l;
  while (std::getline(f, l)) {
    std::istringstream in(l);
    Line x;
    std::string shape, hex;
    std::getline(in, x.key, '\t');
    std::getline(in, x.dtype, '\t');
    std::getline(in, shape, '\t');
    std::getline(in, hex, '\t');
    std::istringstream sh(shape);
    std::string d;
    while (std::getline(sh, d, ','))
      x.shape.push_back(std::stoll(d));
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
      x.bytes.push_back((uint8_t)std::stoi(hex.substr(i, 2), nullptr, 16));
    out.push_back(x);
  }
  return out;
}

// The value of a float8 code, from the format's definition (bias, no-inf
// and NaN encodings), independent of convert.c.
double fp8_value(tsd_dtype t, unsigned code) {
  int eb, mb, bias;
  switch (t) {
  case TSD_FLOAT8_E4M3FN:
    eb = 4, mb = 3, bias = 7;
    if ((code & 0x7F) == 0x7F) return NAN;
    break;
  case TSD_FLOAT8_E5M2:
    eb = 5, mb = 2, bias = 15;
    if ((code & 0x7C) == 0x7C)
      return (code & 3) ? NAN : (code & 0x80 ? -INFINITY : INFINITY);
    break;
  case TSD_FLOAT8_E4M3FNUZ:
    eb = 4, mb = 3, bias = 8;
    if (code == 0x80) return NAN;
    break;
  case TSD_FLOAT8_E5M2FNUZ:
    eb = 5, mb = 2, bias = 16;
    if (code == 0x80) return NAN;
    break;
  default: // e8m0fnu
    return code == 0xFF ? NAN : std::ldexp(1.0, (int)code - 127);
  }
  unsigned e = (code >> mb) & ((1u << eb) - 1), m = code & ((1u << mb) - 1);
  double v = e ? std::ldexp(1.0 + std::ldexp(m, -mb), (int)e - bias)
               : std::ldexp((double)m, 1 - bias - mb);
  return (code & 0x80) ? -v : v;
}

void expect_all(const Ckpt &k, const std::vector<Line> &lines) {
  ASSERT_FALSE(lines.empty());
  for (const auto &x : lines) {
    tsd_entry e = k.entry(x.key.c_str());
    ASSERT_EQ(e.kind, TSD_KIND_TENSOR) << x.key;
    EXPECT_STREQ(tsd_dtype_name(e.dtype), x.dtype.c_str()) << x.key;
    EXPECT_EQ(std::vector<int64_t>(e.shape, e.shape + e.ndim), x.shape)
        << x.key;
    // .expect holds little-endian bytes; tsd reads into the machine's order
    auto want = x.bytes;
    if (TSD__BIG_ENDIAN && tsd__swap_unit(e.dtype, false))
      tsd__swap_elems(want.data(), tsd__swap_unit(e.dtype, false),
                      want.size() / tsd__swap_unit(e.dtype, false));
    EXPECT_EQ(k.bytes(x.key.c_str(), e.dtype), want) << x.key;
  }
}

} // namespace

TEST(Torch2x, RebuildTensorV3ReadsEveryNewDtypeByteForByte) {
  Ckpt k(fixture("torch2x_v3.pth"));
  ASSERT_EQ(k.st, TSD_OK) << k.err;
  auto lines = expect_file("torch2x_v3.expect");
  EXPECT_EQ(lines.size(), 12u);
  expect_all(k, lines);
}

TEST(Torch2x, Float8TensorsConvertToTheValuesOfTheirBitPatterns) {
  Ckpt k(fixture("torch2x_v3.pth"));
  ASSERT_EQ(k.st, TSD_OK) << k.err;
  for (int d = TSD_FLOAT8_E4M3FN; d <= TSD_FLOAT8_E8M0FNU; d++) {
    tsd_dtype t = (tsd_dtype)d;
    auto f = k.bytes(tsd_dtype_name(t), TSD_FLOAT64); // codes 0..255
    ASSERT_EQ(f.size(), 256u * 8);
    for (unsigned c = 0; c < 256; c++) {
      double got, want = fp8_value(t, c);
      memcpy(&got, &f[c * 8], 8);
      if (std::isnan(want))
        EXPECT_TRUE(std::isnan(got)) << tsd_dtype_name(t) << " " << c;
      else
        EXPECT_EQ(got, want) << tsd_dtype_name(t) << " " << c;
    }
  }
  // the transposed, offset view: elements 3 + i + 16 j
  auto v = k.bytes("f8_t", TSD_FLOAT32);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 2; j++) {
      float got;
      memcpy(&got, &v[(i * 2 + j) * 4], 4);
      EXPECT_EQ(got, (float)fp8_value(TSD_FLOAT8_E4M3FN, 3 + i + 16 * j));
    }
}

TEST(Torch2x, DtypeAndDeviceValuesAreShownNotRefused) {
  Ckpt k(fixture("torch2x_v3.pth"));
  ASSERT_EQ(k.st, TSD_OK) << k.err;
  struct {
    const char *key, *repr, *text;
  } want[] = {{"dtype", "<class 'torch.dtype'>", "torch.float8_e5m2"},
              {"qdtype", "<class 'torch.dtype'>", "torch.qint8"},
              {"device", "<class 'torch.device'>", "cuda:1"},
              {"cpu", "<class 'torch.device'>", "cpu"}};
  for (const auto &w : want) {
    tsd_entry e = k.entry(w.key);
    EXPECT_EQ(e.kind, TSD_KIND_OTHER) << w.key;
    EXPECT_STREQ(e.type_repr, w.repr) << w.key;
    EXPECT_STREQ(e.str_value, w.text) << w.key;
    // a load that wants it as a tensor says what it is, as PyTorch does
    int64_t one = 1;
    float x = 0;
    tsd_model *m = nullptr;
    ASSERT_EQ(tsd_model_new(&m, "M"), TSD_OK);
    ASSERT_EQ(tsd_model_add_tensor(m, w.key, TSD_PARAMETER, TSD_FLOAT32, 1,
                                   &one, &x),
              TSD_OK);
    tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
    o.strict = 0;
    tsd_report *r = nullptr;
    EXPECT_EQ(tsd_load(&r, m, k.c, &o), TSD_ERR_LOAD);
    ASSERT_NE(r, nullptr);
    EXPECT_NE(std::string(tsd_report_message(r))
                  .find(std::string("but received ") + w.repr),
              std::string::npos)
        << tsd_report_message(r);
    tsd_report_free(r);
    tsd_model_free(m);
  }
}

TEST(Torch2x, BigEndianFilesAreSwappedPerElementAsTorchLoadDoes) {
  Ckpt k(fixture("torch2x_big.pth"));
  ASSERT_EQ(k.st, TSD_OK) << k.err;
  auto lines = expect_file("torch2x_big.expect");
  EXPECT_EQ(lines.size(), 13u);
  expect_all(k, lines);
  // converting reads see the swapped values too (strided and contiguous)
  auto f32 = k.bytes("f32", TSD_FLOAT32), f64 = k.bytes("f32", TSD_FLOAT64);
  for (size_t i = 0; i < 6; i++) {
    float a;
    double b;
    memcpy(&a, &f32[i * 4], 4);
    memcpy(&b, &f64[i * 8], 8);
    EXPECT_EQ((double)a, b) << i;
  }
  auto c = k.bytes("c64", TSD_FLOAT64); // real parts: 1, -3.5
  double re[2];
  memcpy(re, c.data(), 16);
  EXPECT_EQ(re[0], 1.0);
  EXPECT_EQ(re[1], -3.5);
}

TEST(Torch2x, BigEndianLoadsIntoAModelWithTheSwappedValues) {
  Ckpt k(fixture("torch2x_big.pth"));
  ASSERT_EQ(k.st, TSD_OK) << k.err;
  std::vector<double> w(6);
  int64_t shape[2] = {2, 3};
  tsd_model *m = nullptr;
  ASSERT_EQ(tsd_model_new(&m, "M"), TSD_OK);
  ASSERT_EQ(tsd_model_add_tensor(m, "f32", TSD_PARAMETER, TSD_FLOAT64, 2,
                                 shape, w.data()),
            TSD_OK);
  tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
  o.strict = 0;
  tsd_report *r = nullptr;
  ASSERT_EQ(tsd_load(&r, m, k.c, &o), TSD_OK) << tsd_last_error();
  tsd_report_free(r);
  tsd_model_free(m);
  auto lines = expect_file("torch2x_big.expect");
  std::vector<float> want(6);
  memcpy(want.data(), lines[0].bytes.data(), 24);
  for (int i = 0; i < 6; i++)
    EXPECT_EQ(w[i], (double)want[i]) << i;
}

TEST(Torch2x, Float8CheckpointLoadsIntoAFloatModel) {
  Ckpt k(fixture("torch2x_v3.pth"));
  ASSERT_EQ(k.st, TSD_OK) << k.err;
  std::vector<float> w(256);
  std::vector<uint16_t> bf(256);
  int64_t shape[2] = {16, 16};
  tsd_model *m = nullptr;
  ASSERT_EQ(tsd_model_new(&m, "M"), TSD_OK);
  ASSERT_EQ(tsd_model_add_tensor(m, "float8_e5m2", TSD_PARAMETER, TSD_FLOAT32,
                                 2, shape, w.data()),
            TSD_OK);
  ASSERT_EQ(tsd_model_add_tensor(m, "float8_e4m3fn", TSD_PARAMETER,
                                 TSD_BFLOAT16, 2, shape, bf.data()),
            TSD_OK);
  tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
  o.strict = 0;
  tsd_report *r = nullptr;
  ASSERT_EQ(tsd_load(&r, m, k.c, &o), TSD_OK) << tsd_last_error();
  tsd_report_free(r);
  tsd_model_free(m);
  for (unsigned c = 0; c < 256; c++) {
    double v = fp8_value(TSD_FLOAT8_E5M2, c);
    if (std::isnan(v))
      EXPECT_TRUE(std::isnan(w[c]));
    else
      EXPECT_EQ(w[c], (float)v) << c;
    double u = fp8_value(TSD_FLOAT8_E4M3FN, c);
    float b = tsd__bf16_to_float(bf[c]);
    if (std::isnan(u))
      EXPECT_TRUE(std::isnan(b));
    else // every e4m3fn value is a bfloat16
      EXPECT_EQ(b, (float)u) << c;
  }
}

TEST(Torch2x, MalformedOrUnsupportedFormsAreRefusedWithTheReason) {
  struct {
    const char *file;
    tsd_status st;
    const char *msg;
  } cases[] = {
      {"torch2x_bad_byteorder.pth", TSD_ERR_FORMAT,
       "unknown byte order in the byteorder record"},
      {"torch2x_bad_qdtype.pth", TSD_ERR_UNSUPPORTED,
       "_rebuild_tensor_v3 of dtype torch.qint8, which tsd does not handle"},
      {"torch2x_bad_view.pth", TSD_ERR_UNSUPPORTED,
       "_rebuild_tensor_v3 views float32 storage '0' as uint8"},
      {"torch2x_bad_extent.pth", TSD_ERR_FORMAT,
       "tensor needs element 2 of storage '0', which has only 2 element(s)"},
  };
  for (const auto &c : cases) {
    Ckpt k(fixture(c.file));
    EXPECT_EQ(k.st, c.st) << c.file;
    EXPECT_NE(k.err.find(c.msg), std::string::npos) << c.file << ": " << k.err;
  }
}

// Quantized and sparse tensors (torch 1.13 writes them): read and shown,
// never loaded into a dense tensor, with the exact error PyTorch's
// load_state_dict gives (the .expect file is Python's own message).
TEST(Torch2x, QuantizedAndSparseTensorsAreShownAndRefusedAsPyTorchDoes) {
  Ckpt k(fixture("torch2x_qsparse.pth"));
  ASSERT_EQ(k.st, TSD_OK) << k.err;
  struct {
    const char *key, *desc;
    std::vector<int64_t> shape;
    tsd_dtype dtype;
  } want[] = {{"q", "torch.qint8 per_tensor_affine", {3}, TSD_INT8},
              {"qc", "torch.quint8 per_channel_affine", {2, 2}, TSD_UINT8},
              {"q32", "torch.qint32 per_tensor_affine", {2}, TSD_INT32},
              {"s", "torch.sparse_coo", {2, 2}, TSD_FLOAT32},
              {"s64", "torch.sparse_coo", {3}, TSD_FLOAT64},
              {"si", "torch.sparse_coo", {1, 2}, TSD_INT64}};
  for (const auto &w : want) {
    tsd_entry e = k.entry(w.key);
    EXPECT_EQ(e.kind, TSD_KIND_OTHER) << w.key;
    EXPECT_STREQ(e.type_repr, "<class 'torch.Tensor'>") << w.key;
    EXPECT_STREQ(e.str_value, w.desc) << w.key;
    EXPECT_EQ(std::vector<int64_t>(e.shape, e.shape + e.ndim), w.shape)
        << w.key;
    EXPECT_EQ(e.dtype, w.dtype) << w.key;
  }
  tsd_model *m = nullptr;
  ASSERT_EQ(tsd_model_new(&m, "M"), TSD_OK);
  std::vector<double> buf(64);
  auto add = [&](const char *name, tsd_tensor_role role, tsd_dtype dt,
                 std::vector<int64_t> shape) {
    ASSERT_EQ(tsd_model_add_tensor(m, name, role, dt, shape.size(),
                                   shape.data(), buf.data()),
              TSD_OK);
  };
  add("q", TSD_PARAMETER, TSD_FLOAT32, {3});
  add("qc", TSD_PARAMETER, TSD_FLOAT32, {2, 2});
  add("q32", TSD_PARAMETER, TSD_FLOAT32, {3});
  add("s", TSD_PARAMETER, TSD_FLOAT32, {2, 2});
  add("s64", TSD_PARAMETER, TSD_FLOAT64, {3});
  add("dense", TSD_PARAMETER, TSD_FLOAT32, {1});
  add("si", TSD_BUFFER, TSD_INT64, {1, 2});
  tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
  o.strict = 0;
  tsd_report *r = nullptr;
  EXPECT_EQ(tsd_load(&r, m, k.c, &o), TSD_ERR_LOAD);
  ASSERT_NE(r, nullptr);
  std::ifstream f(fixture("torch2x_qsparse.expect"));
  std::string py((std::istreambuf_iterator<char>(f)),
                 std::istreambuf_iterator<char>());
  EXPECT_EQ(std::string(tsd_report_message(r)), py);
  tsd_report_free(r);
  // a failed load leaves the model untouched
  for (double d : buf)
    EXPECT_EQ(d, 0.0);
  tsd_model_free(m);
}

// 2.x spellings: the layout as the global torch.sparse_coo / sparse_csr, COO
// data with is_coalesced, compressed (CSR) data, a quantized Parameter.
TEST(Torch2x, SparseLayoutsAndQuantizedParametersOfTorch2AreShown) {
  Ckpt k(fixture("torch2x_sparse2x.pth"));
  ASSERT_EQ(k.st, TSD_OK) << k.err;
  struct {
    const char *key, *desc, *repr;
    std::vector<int64_t> shape;
    tsd_dtype dtype;
  } want[] = {
      {"coo", "torch.sparse_coo", "<class 'torch.Tensor'>", {2, 2},
       TSD_FLOAT32},
      {"csr", "torch.sparse_csr", "<class 'torch.Tensor'>", {2, 3},
       TSD_FLOAT32},
      {"qp", "torch.qint8 per_tensor_affine",
       "<class 'torch.nn.parameter.Parameter'>", {3}, TSD_INT8}};
  for (const auto &w : want) {
    tsd_entry e = k.entry(w.key);
    EXPECT_EQ(e.kind, TSD_KIND_OTHER) << w.key;
    EXPECT_STREQ(e.type_repr, w.repr) << w.key;
    EXPECT_STREQ(e.str_value, w.desc) << w.key;
    EXPECT_EQ(std::vector<int64_t>(e.shape, e.shape + e.ndim), w.shape)
        << w.key;
    EXPECT_EQ(e.dtype, w.dtype) << w.key;
  }
}
