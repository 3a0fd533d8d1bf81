// reader_helpers.h — what the reader and unpickler tests share: fixtures
// and their .expect files, checkpoints opened from a path or bytes, zip
// archives and pickles built by hand, raw unpickling.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

extern "C" {
#include "internal.h"
}

namespace tsdtest_reader {

inline std::string fixture(const std::string &name) {
  return std::string(TSD_FIXTURES) + "/" + name;
}

inline std::vector<uint8_t> slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

struct Expect {
  std::string key;
  tsd_dtype dtype;
  bool is_param;
  std::vector<int64_t> shape;
  std::vector<double> values, as_f32;
  std::vector<int64_t> as_i64;
};

inline tsd_dtype dtype_from_name(const std::string &n) {
  for (int d = 0; d < TSD_DTYPE_COUNT; d++)
    if (n == tsd_dtype_name(static_cast<tsd_dtype>(d)))
      return static_cast<tsd_dtype>(d);
  ADD_FAILURE() << "unknown dtype " << n;
  return TSD_FLOAT32;
}

inline std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep))
    out.push_back(cur);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

inline std::vector<double> doubles(const std::string &s) {
  std::vector<double> out;
  for (const auto &w : split(s, ' '))
    if (!w.empty()) out.push_back(strtod(w.c_str(), nullptr));
  return out;
}

inline std::vector<Expect> load_expect(const std::string &name) {
  std::ifstream f(fixture(name));
  EXPECT_TRUE(f.good()) << name;
  std::vector<Expect> out;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    auto col = split(line, '\t');
    EXPECT_EQ(col.size(), 7u) << line;
    if (col.size() != 7) continue;
    Expect e;
    e.key = col[0];
    e.dtype = dtype_from_name(col[1]);
    e.is_param = col[2] == "1";
    for (const auto &d : split(col[3], ','))
      if (!d.empty()) e.shape.push_back(std::stoll(d));
    e.values = doubles(col[4]);
    e.as_f32 = doubles(col[5]);
    for (const auto &w : split(col[6], ' '))
      if (!w.empty()) e.as_i64.push_back(std::stoll(w));
    out.push_back(e);
  }
  return out;
}

// The element i of a buffer of `dtype`, as a double.
inline double element(const std::vector<uint8_t> &buf, tsd_dtype dtype, size_t i) {
  const uint8_t *p = buf.data() + i * tsd_dtype_size(dtype);
  switch (dtype) {
  case TSD_FLOAT32: {
    float v;
    memcpy(&v, p, 4);
    return v;
  }
  case TSD_FLOAT64: {
    double v;
    memcpy(&v, p, 8);
    return v;
  }
  case TSD_FLOAT16: {
    uint16_t v;
    memcpy(&v, p, 2);
    return tsd__half_to_float(v);
  }
  case TSD_BFLOAT16: {
    uint16_t v;
    memcpy(&v, p, 2);
    return tsd__bf16_to_float(v);
  }
  case TSD_INT8:
    return static_cast<int8_t>(*p);
  case TSD_INT16: {
    int16_t v;
    memcpy(&v, p, 2);
    return v;
  }
  case TSD_INT32: {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
  }
  case TSD_INT64: {
    int64_t v;
    memcpy(&v, p, 8);
    return static_cast<double>(v);
  }
  case TSD_UINT8:
    return *p;
  case TSD_BOOL:
    return *p;
  default:
    return NAN;
  }
}

inline bool same(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) ||
         (a == b && std::signbit(a) == std::signbit(b));
}

struct Ckpt {
  tsd_checkpoint *c = nullptr;
  tsd_status st;
  explicit Ckpt(const std::string &path, const tsd_open_options *o = nullptr) {
    st = tsd_checkpoint_open(&c, path.c_str(), o);
  }
  // The bytes are borrowed by the checkpoint: keep our own copy alive.
  std::vector<uint8_t> mem;
  Ckpt(const std::vector<uint8_t> &bytes, const tsd_open_options *o = nullptr)
      : mem(bytes) {
    st = tsd_checkpoint_open_memory(&c, mem.data(), mem.size(), o);
  }
  ~Ckpt() {
    tsd_checkpoint_free(c);
  }
  Ckpt(const Ckpt &) = delete;
  Ckpt &operator=(const Ckpt &) = delete;
};

// Every tensor of the .expect file: metadata, native values, and the
// float32 / int64 conversions Tensor.copy_ gives.
inline void check_against(tsd_checkpoint *c, const std::vector<Expect> &want) {
  ASSERT_FALSE(want.empty());
  for (const auto &e : want) {
    SCOPED_TRACE(e.key);
    size_t i;
    ASSERT_EQ(tsd_checkpoint_find(&i, c, e.key.c_str()), TSD_OK)
        << tsd_last_error();
    tsd_entry en;
    ASSERT_EQ(tsd_checkpoint_entry(&en, c, i), TSD_OK) << tsd_last_error();
    EXPECT_EQ(std::string(en.key), e.key);
    ASSERT_EQ(en.kind, TSD_KIND_TENSOR);
    EXPECT_EQ(en.dtype, e.dtype);
    EXPECT_EQ(en.is_parameter != 0, e.is_param);
    EXPECT_STREQ(en.type_repr, e.is_param
                                   ? "<class 'torch.nn.parameter.Parameter'>"
                                   : "<class 'torch.Tensor'>");
    ASSERT_EQ(en.ndim, e.shape.size());
    for (size_t d = 0; d < en.ndim; d++)
      EXPECT_EQ(en.shape[d], e.shape[d]);
    ASSERT_EQ(static_cast<size_t>(en.numel), e.values.size());
    size_t n = e.values.size();

    std::vector<uint8_t> native(n * tsd_dtype_size(e.dtype) + 1);
    ASSERT_EQ(tsd_checkpoint_read(native.data(), native.size(), c, i, e.dtype),
              TSD_OK)
        << tsd_last_error();
    for (size_t k = 0; k < n; k++)
      EXPECT_TRUE(same(element(native, e.dtype, k), e.values[k]))
          << "element " << k << ": " << element(native, e.dtype, k)
          << " != " << e.values[k];

    std::vector<uint8_t> f32(n * 4 + 1);
    ASSERT_EQ(tsd_checkpoint_read(f32.data(), f32.size(), c, i, TSD_FLOAT32),
              TSD_OK);
    for (size_t k = 0; k < n; k++)
      EXPECT_TRUE(same(element(f32, TSD_FLOAT32, k), e.as_f32[k]))
          << "float32 element " << k;

    std::vector<int64_t> i64(n + 1);
    ASSERT_EQ(tsd_checkpoint_read(i64.data(), i64.size() * 8, c, i, TSD_INT64),
              TSD_OK);
    for (size_t k = 0; k < n; k++)
      EXPECT_EQ(i64[k], e.as_i64[k]) << "int64 element " << k;
  }
}

inline void check_fixture(const std::string &file, const std::string &expect) {
  Ckpt k(fixture(file));
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  auto want = load_expect(expect);
  EXPECT_EQ(tsd_checkpoint_root_kind(k.c), TSD_KIND_DICT);
  EXPECT_EQ(tsd_checkpoint_count(k.c), want.size());
  check_against(k.c, want);
  // Order is the checkpoint's order.
  for (size_t i = 0; i < want.size() && i < tsd_checkpoint_count(k.c); i++) {
    tsd_entry en;
    ASSERT_EQ(tsd_checkpoint_entry(&en, k.c, i), TSD_OK);
    EXPECT_EQ(std::string(en.key), want[i].key);
  }
}

// ---- little-endian integers for crafted pickles and archives -------------

inline std::string le16(unsigned v) {
  return std::string{static_cast<char>(v & 0xFF),
                     static_cast<char>((v >> 8) & 0xFF)};
}
inline std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; i++)
    s[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}

// ---- a stored zip built in memory, for crafted pickles ------------------

inline void put16(std::vector<uint8_t> &b, uint32_t v) {
  b.push_back(v & 0xFF);
  b.push_back((v >> 8) & 0xFF);
}
inline void put32(std::vector<uint8_t> &b, uint32_t v) {
  put16(b, v & 0xFFFF);
  put16(b, v >> 16);
}

inline std::vector<uint8_t>
make_zip(const std::vector<std::pair<std::string, std::string>> &recs) {
  std::vector<uint8_t> out, cd;
  for (const auto &r : recs) {
    uint32_t off = static_cast<uint32_t>(out.size());
    put32(out, 0x04034b50);
    put16(out, 20);
    put16(out, 0);
    put16(out, 0); // stored
    put32(out, 0); // time, date
    put32(out, 0); // crc (not checked)
    put32(out, static_cast<uint32_t>(r.second.size()));
    put32(out, static_cast<uint32_t>(r.second.size()));
    put16(out, static_cast<uint32_t>(r.first.size()));
    put16(out, 0);
    out.insert(out.end(), r.first.begin(), r.first.end());
    out.insert(out.end(), r.second.begin(), r.second.end());
    put32(cd, 0x02014b50);
    put16(cd, 20);
    put16(cd, 20);
    put16(cd, 0);
    put16(cd, 0);
    put32(cd, 0);
    put32(cd, 0);
    put32(cd, static_cast<uint32_t>(r.second.size()));
    put32(cd, static_cast<uint32_t>(r.second.size()));
    put16(cd, static_cast<uint32_t>(r.first.size()));
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0);
    put32(cd, 0);
    put32(cd, off);
    cd.insert(cd.end(), r.first.begin(), r.first.end());
  }
  uint32_t cd_off = static_cast<uint32_t>(out.size());
  out.insert(out.end(), cd.begin(), cd.end());
  put32(out, 0x06054b50);
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<uint32_t>(recs.size()));
  put16(out, static_cast<uint32_t>(recs.size()));
  put32(out, static_cast<uint32_t>(cd.size()));
  put32(out, cd_off);
  put16(out, 0);
  return out;
}

// make_zip's bytes as a string.
inline std::string
make_zip_string(const std::vector<std::pair<std::string, std::string>> &recs) {
  std::vector<uint8_t> z = make_zip(recs);
  return std::string(z.begin(), z.end());
}

inline std::vector<uint8_t> pickle_zip(const std::string &pkl) {
  return make_zip({{"ck/data.pkl", pkl}, {"ck/version", "3\n"}});
}

// Runs tsd__unpickle on raw bytes with default limits.
struct Unpickled {
  tsd__arena arena;
  tsd__value *v = nullptr;
  tsd_status st;
  size_t used = 0;
  explicit Unpickled(const std::string &bytes,
                     const tsd__limits *lim = nullptr) {
    tsd__limits def;
    tsd__limits_resolve(&def, nullptr);
    tsd__arena_init(&arena, 0, nullptr);
    st = tsd__unpickle(reinterpret_cast<const uint8_t *>(bytes.data()),
                       bytes.size(), &used, &arena, lim ? lim : &def, nullptr,
                       nullptr, "test.pkl", &v);
  }
  ~Unpickled() {
    tsd__arena_free(&arena);
  }
};

#define EXPECT_FAILS_WITH(expr, status, text)                                  \
  do {                                                                         \
    tsd_status st_ = (expr);                                                   \
    EXPECT_EQ(st_, status) << tsd_status_name(st_) << ": "                     \
                           << tsd_last_error();                                \
    EXPECT_NE(std::string(tsd_last_error()).find(text), std::string::npos)     \
        << tsd_last_error();                                                   \
  } while (0)

inline std::string S(const char *p, size_t n) {
  return std::string(p, n);
}
// A string literal with its embedded NULs.
template <size_t N> std::string B(const char (&s)[N]) {
  return std::string(s, N - 1);
}

} // namespace tsdtest_reader
