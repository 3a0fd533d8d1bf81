// test_convert.cc — dtype conversion with Tensor.copy_'s rules. The edge
// values below were produced by Python torch 1.13 on this machine (the
// oracle), e.g. torch.tensor([...], dtype=torch.float64).to(torch.uint8).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

extern "C" {
#include "internal.h"
}

namespace {

template <typename D, typename S>
std::vector<D> conv(const std::vector<S> &src, tsd_dtype sd, tsd_dtype dd) {
  std::vector<D> out(src.size());
  tsd__convert(out.data(), dd, src.data(), sd, src.size());
  return out;
}

// n elements of sd (given as a vector of its scalar parts) to dd, whose
// elements are `parts` D values each (2 for complex)
template <typename D, typename S>
std::vector<D> convn(const std::vector<S> &src, tsd_dtype sd, tsd_dtype dd,
                     size_t n, size_t parts) {
  std::vector<D> out(n * parts);
  tsd__convert(out.data(), dd, src.data(), sd, n);
  return out;
}

uint32_t bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

} // namespace

TEST(Convert, DtypeNamesAndSizesArePyTorchs) {
  const char *names[] = {"float32",         "float64",        "float16",
                         "bfloat16",        "int8",           "int16",
                         "int32",           "int64",          "uint8",
                         "bool",            "float8_e4m3fn",  "float8_e5m2",
                         "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
                         "uint16",          "uint32",         "uint64",
                         "complex32",       "complex64",      "complex128"};
  const size_t sizes[] = {4, 8, 2, 2, 1, 2, 4, 8, 1, 1, 1,
                          1, 1, 1, 1, 2, 4, 8, 4, 8, 16};
  static_assert(sizeof names / sizeof *names == TSD_DTYPE_COUNT, "names");
  for (int d = 0; d < TSD_DTYPE_COUNT; d++) {
    EXPECT_STREQ(tsd_dtype_name(static_cast<tsd_dtype>(d)), names[d]);
    EXPECT_EQ(tsd_dtype_size(static_cast<tsd_dtype>(d)), sizes[d]);
    EXPECT_TRUE(tsd__dtype_valid(d));
  }
  EXPECT_STREQ(tsd_dtype_name(static_cast<tsd_dtype>(99)), "?");
  EXPECT_EQ(tsd_dtype_size(static_cast<tsd_dtype>(-1)), 0u);
  EXPECT_FALSE(tsd__dtype_valid(TSD_DTYPE_COUNT));
  EXPECT_FALSE(tsd__dtype_valid(-1));
}

TEST(Convert, EveryHalfRoundTripsThroughFloat) {
  for (uint32_t h = 0; h < 65536; h++) {
    float f = tsd__half_to_float(static_cast<uint16_t>(h));
    bool nan = (h & 0x7C00) == 0x7C00 && (h & 0x03FF);
    EXPECT_EQ(std::isnan(f), nan) << h;
    if (!nan)
      EXPECT_EQ(tsd__float_to_half(f), h) << h;
    else
      EXPECT_TRUE(std::isnan(tsd__half_to_float(tsd__float_to_half(f))));
  }
}

TEST(Convert, FloatToHalfRoundsToNearestEven) {
  EXPECT_EQ(tsd__float_to_half(1.0f), 0x3C00);
  EXPECT_EQ(tsd__float_to_half(1.0f + 0x1p-11f), 0x3C00);     // tie -> even
  EXPECT_EQ(tsd__float_to_half(1.0f + 3 * 0x1p-11f), 0x3C02); // tie -> even
  EXPECT_EQ(tsd__float_to_half(1.0f + 0x1p-11f + 0x1p-20f), 0x3C01);
  EXPECT_EQ(tsd__float_to_half(65504.0f), 0x7BFF);
  EXPECT_EQ(tsd__float_to_half(65519.0f), 0x7BFF); // torch: 65504.
  EXPECT_EQ(tsd__float_to_half(65520.0f), 0x7C00); // torch: inf
  EXPECT_EQ(tsd__float_to_half(-INFINITY), 0xFC00);
  EXPECT_EQ(tsd__float_to_half(0x1p-24f), 0x0001); // smallest subnormal
  EXPECT_EQ(tsd__float_to_half(0x1p-25f), 0x0000); // tie -> even (0)
  EXPECT_EQ(tsd__float_to_half(3 * 0x1p-25f), 0x0002);
  EXPECT_EQ(tsd__float_to_half(1e-8f), 0x0000); // torch: 0.
  EXPECT_EQ(tsd__float_to_half(-0.0f), 0x8000);
  uint16_t n = tsd__float_to_half(NAN);
  EXPECT_EQ(n & 0x7C00, 0x7C00);
  EXPECT_NE(n & 0x03FF, 0);
}

TEST(Convert, Bfloat16RoundsToNearestEvenAndKeepsNaN) {
  EXPECT_EQ(tsd__float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(tsd__float_to_bf16(1.0f + 0x1p-8f), 0x3F80);     // tie -> even
  EXPECT_EQ(tsd__float_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82); // tie -> even
  EXPECT_EQ(tsd__float_to_bf16(NAN), 0x7FC0);
  EXPECT_EQ(tsd__float_to_bf16(INFINITY), 0x7F80);
  // torch: torch.tensor([65520.]).bfloat16() == 65536
  EXPECT_EQ(tsd__bf16_to_float(tsd__float_to_bf16(65520.0f)), 65536.0f);
  for (uint32_t h = 0; h < 65536; h++) {
    float f = tsd__bf16_to_float(static_cast<uint16_t>(h));
    EXPECT_EQ(bits(f), h << 16);
    if (!std::isnan(f)) EXPECT_EQ(tsd__float_to_bf16(f), h);
  }
}

TEST(Convert, FloatToIntTruncatesTowardZero) {
  std::vector<float> f = {-2.7f, -0.5f, 0.5f, 2.7f, 127.9f, -128.9f};
  auto i64 = conv<int64_t>(f, TSD_FLOAT32, TSD_INT64);
  EXPECT_EQ(i64, (std::vector<int64_t>{-2, 0, 0, 2, 127, -128}));
  auto i32 = conv<int32_t>(f, TSD_FLOAT32, TSD_INT32);
  EXPECT_EQ(i32, (std::vector<int32_t>{-2, 0, 0, 2, 127, -128}));
  auto i8 = conv<int8_t>(f, TSD_FLOAT32, TSD_INT8);
  EXPECT_EQ(i8, (std::vector<int8_t>{-2, 0, 0, 2, 127, -128}));
}

TEST(Convert, OutOfRangeFloatsGiveWhatPyTorchGivesOnX86) {
  // torch.tensor([300.5, -1.5, 1e10, nan, -300.7, 2.5e9]).to(...)
  std::vector<float> f = {300.5f, -1.5f, 1e10f, NAN, -300.7f, 2.5e9f};
  EXPECT_EQ(conv<uint8_t>(f, TSD_FLOAT32, TSD_UINT8),
            (std::vector<uint8_t>{44, 255, 0, 0, 212, 0}));
  EXPECT_EQ(conv<int8_t>(f, TSD_FLOAT32, TSD_INT8),
            (std::vector<int8_t>{44, -1, 0, 0, -44, 0}));
  EXPECT_EQ(conv<int16_t>(f, TSD_FLOAT32, TSD_INT16),
            (std::vector<int16_t>{300, -1, 0, 0, -300, 0}));
  const int32_t m = std::numeric_limits<int32_t>::min();
  EXPECT_EQ(conv<int32_t>(f, TSD_FLOAT32, TSD_INT32),
            (std::vector<int32_t>{300, -1, m, m, -300, m}));
  EXPECT_EQ(conv<int64_t>(f, TSD_FLOAT32, TSD_INT64),
            (std::vector<int64_t>{300, -1, 10000000000LL,
                                  std::numeric_limits<int64_t>::min(), -300,
                                  2500000000LL}));
  // float64 -> uint8 goes through int64 (c10's static_cast_with_inter_type)
  std::vector<double> d = {4294967301.0, 4294967296.0 + 300, -4294967297.0,
                           1e300, INFINITY};
  EXPECT_EQ(conv<uint8_t>(d, TSD_FLOAT64, TSD_UINT8),
            (std::vector<uint8_t>{5, 44, 255, 0, 0}));
  EXPECT_EQ(conv<int8_t>(d, TSD_FLOAT64, TSD_INT8),
            (std::vector<int8_t>{0, 0, 0, 0, 0}));
  EXPECT_EQ(conv<int32_t>(d, TSD_FLOAT64, TSD_INT32),
            (std::vector<int32_t>{m, m, m, m, m}));
}

TEST(Convert, ToBoolIsNonZero) {
  std::vector<float> f = {0.0f, -0.0f, 0.1f, NAN, -INFINITY};
  EXPECT_EQ(conv<uint8_t>(f, TSD_FLOAT32, TSD_BOOL),
            (std::vector<uint8_t>{0, 0, 1, 1, 1}));
  std::vector<int16_t> i = {0, 256, -1};
  EXPECT_EQ(conv<uint8_t>(i, TSD_INT16, TSD_BOOL),
            (std::vector<uint8_t>{0, 1, 1}));
  // a bool byte that is neither 0 nor 1 still reads as True
  std::vector<uint8_t> b = {0, 1, 7};
  EXPECT_EQ(conv<float>(b, TSD_BOOL, TSD_FLOAT32),
            (std::vector<float>{0.0f, 1.0f, 1.0f}));
  EXPECT_EQ(conv<int64_t>(b, TSD_BOOL, TSD_INT64),
            (std::vector<int64_t>{0, 1, 1}));
}

TEST(Convert, IntegerNarrowingWraps) {
  std::vector<int64_t> v = {300, -1, 65536 + 7, -129};
  EXPECT_EQ(conv<int8_t>(v, TSD_INT64, TSD_INT8),
            (std::vector<int8_t>{44, -1, 7, 127}));
  EXPECT_EQ(conv<uint8_t>(v, TSD_INT64, TSD_UINT8),
            (std::vector<uint8_t>{44, 255, 7, 127}));
  EXPECT_EQ(conv<int16_t>(v, TSD_INT64, TSD_INT16),
            (std::vector<int16_t>{300, -1, 7, -129}));
  std::vector<uint8_t> u = {0, 200, 255};
  EXPECT_EQ(conv<int32_t>(u, TSD_UINT8, TSD_INT32),
            (std::vector<int32_t>{0, 200, 255}));
}

TEST(Convert, IntegersToFloatsRoundOnceLikeACast) {
  std::vector<int64_t> v = {(1LL << 60) + (1LL << 36) + 1, -3, (1LL << 24) + 1};
  auto f = conv<float>(v, TSD_INT64, TSD_FLOAT32);
  for (size_t i = 0; i < v.size(); i++)
    EXPECT_EQ(f[i], static_cast<float>(v[i]));
  auto h = conv<uint16_t>(std::vector<int32_t>{2049, 70000, -5}, TSD_INT32,
                          TSD_FLOAT16);
  EXPECT_EQ(tsd__half_to_float(h[0]), 2048.0f); // torch: 2048.
  EXPECT_TRUE(std::isinf(tsd__half_to_float(h[1])));
  EXPECT_EQ(tsd__half_to_float(h[2]), -5.0f);
}

TEST(Convert, HalfAndBfloat16WidenExactlyInBulk) {
  std::vector<uint16_t> h(70000), b(70000);
  for (size_t i = 0; i < h.size(); i++) {
    h[i] = static_cast<uint16_t>(i * 7);
    b[i] = static_cast<uint16_t>(i * 13);
  }
  auto fh = conv<float>(h, TSD_FLOAT16, TSD_FLOAT32);
  auto fb = conv<float>(b, TSD_BFLOAT16, TSD_FLOAT32);
  auto dh = conv<double>(h, TSD_FLOAT16, TSD_FLOAT64);
  for (size_t i = 0; i < h.size(); i++) {
    float want = tsd__half_to_float(h[i]);
    EXPECT_EQ(bits(fh[i]), bits(want)) << i;
    EXPECT_EQ(bits(fb[i]), static_cast<uint32_t>(b[i]) << 16) << i;
    if (!std::isnan(want)) EXPECT_EQ(dh[i], static_cast<double>(want));
  }
  // float64 -> float16 goes through float32 (c10::Half(float(x)))
  std::vector<double> d = {1.0 + 0x1p-11 + 0x1p-40, 0.1};
  auto hd = conv<uint16_t>(d, TSD_FLOAT64, TSD_FLOAT16);
  EXPECT_EQ(hd[0], tsd__float_to_half(static_cast<float>(d[0])));
  EXPECT_EQ(hd[1], tsd__float_to_half(0.1f));
}

TEST(Convert, SameDtypeIsAByteCopy) {
  std::vector<uint16_t> src = {0x7E01, 0xFFFF, 0x0001}; // NaN payloads kept
  EXPECT_EQ(conv<uint16_t>(src, TSD_FLOAT16, TSD_FLOAT16), src);
  std::vector<float> f = {1.5f, -0.0f};
  tsd__convert(f.data(), TSD_FLOAT32, f.data(), TSD_FLOAT32, f.size());
  EXPECT_EQ(f[0], 1.5f);
  EXPECT_TRUE(std::signbit(f[1]));
  // Invalid dtypes write nothing.
  std::vector<float> dst = {9.0f};
  tsd__convert(dst.data(), static_cast<tsd_dtype>(77), f.data(), TSD_FLOAT32,
               1);
  EXPECT_EQ(dst[0], 9.0f);
}

TEST(Convert, EveryPairAgreesWithTheFloat32AndInt64Paths) {
  // For values every dtype holds exactly, any conversion is exact.
  // (float8 holds 0..16 in powers of two; float8_e8m0fnu has no 0)
  const double vals[] = {0, 1, 2, 5, 100, 127}, f8[] = {0, 1, 2, 4, 8, 16},
               e8m0[] = {1, 2, 4, 8, 16, 32};
  auto fp8 = [](tsd_dtype t) {
    return t >= TSD_FLOAT8_E4M3FN && t <= TSD_FLOAT8_E8M0FNU;
  };
  for (int s = 0; s < TSD_DTYPE_COUNT; s++) {
    for (int d = 0; d < TSD_DTYPE_COUNT; d++) {
      tsd_dtype sd = static_cast<tsd_dtype>(s), dd = static_cast<tsd_dtype>(d);
      std::vector<uint8_t> src(6 * 16), mid(6 * 16);
      std::vector<double> back(6);
      const double *v = sd == TSD_FLOAT8_E8M0FNU || dd == TSD_FLOAT8_E8M0FNU
                            ? e8m0
                        : fp8(sd) || fp8(dd) ? f8
                                             : vals;
      std::vector<double> in(v, v + 6);
      if (sd == TSD_BOOL || dd == TSD_BOOL)
        for (auto &x : in)
          x = x != 0;
      tsd__convert(src.data(), sd, in.data(), TSD_FLOAT64, 6);
      tsd__convert(mid.data(), dd, src.data(), sd, 6);
      tsd__convert(back.data(), TSD_FLOAT64, mid.data(), dd, 6);
      for (int i = 0; i < 6; i++)
        EXPECT_EQ(back[i], in[i])
            << tsd_dtype_name(sd) << " -> " << tsd_dtype_name(dd) << " #" << i;
    }
  }
}

// ---- PyTorch 2.x dtypes -------------------------------------------------
// torch 1.13 cannot make float8 or uint16/32/64, so the expected values are
// computed here from the bit patterns (the formats' definitions), and the
// rounding from a brute-force nearest-value search, independently of
// convert.c's bit tricks.

namespace {

struct Fp8Format {
  tsd_dtype t;
  int ebits, mbits, bias;
  enum { FN, IEEE, FNUZ, E8M0 } kind;
};
const Fp8Format kFp8[] = {
    {TSD_FLOAT8_E4M3FN, 4, 3, 7, Fp8Format::FN},
    {TSD_FLOAT8_E5M2, 5, 2, 15, Fp8Format::IEEE},
    {TSD_FLOAT8_E4M3FNUZ, 4, 3, 8, Fp8Format::FNUZ},
    {TSD_FLOAT8_E5M2FNUZ, 5, 2, 16, Fp8Format::FNUZ},
    {TSD_FLOAT8_E8M0FNU, 8, 0, 127, Fp8Format::E8M0},
};

// The value a code stands for, from the format's definition.
double fp8_value(const Fp8Format &f, unsigned code) {
  if (f.kind == Fp8Format::E8M0)
    return code == 0xFF ? NAN : std::ldexp(1.0, (int)code - 127);
  if (f.kind == Fp8Format::FNUZ && code == 0x80) return NAN;
  const unsigned sign = code >> 7, e = (code >> f.mbits) & ((1u << f.ebits) - 1),
                 m = code & ((1u << f.mbits) - 1);
  const unsigned emax = (1u << f.ebits) - 1;
  double v;
  if (f.kind == Fp8Format::FN && e == emax && m == (1u << f.mbits) - 1)
    return NAN;
  if (f.kind == Fp8Format::IEEE && e == emax)
    v = m ? NAN : INFINITY;
  else if (e == 0)
    v = std::ldexp((double)m, 1 - f.bias - f.mbits);
  else
    v = std::ldexp(1.0 + std::ldexp((double)m, -f.mbits), (int)e - f.bias);
  return sign ? -v : v;
}

float to_f32(uint8_t code, tsd_dtype t) {
  float f;
  tsd__convert(&f, TSD_FLOAT32, &code, t, 1);
  return f;
}
uint8_t from_f32(float f, tsd_dtype t) {
  uint8_t c;
  tsd__convert(&c, t, &f, TSD_FLOAT32, 1);
  return c;
}

// Brute force: the code nearest to |x| among the finite codes, ties to the
// even code. c10 rounds past the largest finite value as if the next code
// existed: that code (`over`, at value `top`) is e4m3fn's NaN 0x7F (480),
// e5m2's inf 0x7C (2^16) or the fnuz NaN 0x80 (256, 2^16); from `top` on
// everything is `over`. The sign is kept (fnuz: not on zero and NaN).
uint8_t nearest(const Fp8Format &f, float x, double top, uint8_t over) {
  const bool neg = std::signbit(x);
  const double ax = std::fabs((double)x);
  uint8_t r;
  if (ax >= top) {
    r = over;
  } else {
    int best = -1;
    double bd = 0;
    for (unsigned c = 0; c <= 0x80; c++) { // 0x80: stands for `over`
      double v = c == 0x80 ? top : fp8_value(f, c);
      if (std::isnan(v) || std::isinf(v)) continue;
      double d = std::fabs(v - ax);
      unsigned code = c == 0x80 ? over : c;
      if (best < 0 || d < bd || (d == bd && (code & 1) == 0)) {
        best = (int)code;
        bd = d;
      }
    }
    r = (uint8_t)best;
  }
  if (neg && !(f.kind == Fp8Format::FNUZ && (r == 0 || r == 0x80)))
    r |= 0x80;
  return r;
}

} // namespace

TEST(Convert, EveryFloat8CodeWidensToItsDefinedValue) {
  for (const auto &f : kFp8)
    for (unsigned c = 0; c < 256; c++) {
      const double want = fp8_value(f, c);
      const float got = to_f32((uint8_t)c, f.t);
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(got)) << tsd_dtype_name(f.t) << " " << c;
        continue;
      }
      EXPECT_EQ((double)got, want) << tsd_dtype_name(f.t) << " " << c;
      EXPECT_EQ(std::signbit(got), std::signbit(want)) << c;
      // every other floating type gets the same value
      double d;
      uint8_t code = (uint8_t)c;
      tsd__convert(&d, TSD_FLOAT64, &code, f.t, 1);
      EXPECT_EQ(d, want) << tsd_dtype_name(f.t) << " " << c;
    }
  // well-known values
  EXPECT_EQ(to_f32(0x7E, TSD_FLOAT8_E4M3FN), 448.0f);
  EXPECT_EQ(to_f32(0x01, TSD_FLOAT8_E4M3FN), 0x1p-9f);
  EXPECT_EQ(to_f32(0x7B, TSD_FLOAT8_E5M2), 57344.0f);
  EXPECT_EQ(to_f32(0x7C, TSD_FLOAT8_E5M2), INFINITY);
  EXPECT_EQ(to_f32(0x7F, TSD_FLOAT8_E4M3FNUZ), 240.0f);
  EXPECT_EQ(to_f32(0x7F, TSD_FLOAT8_E5M2FNUZ), 57344.0f);
  EXPECT_EQ(to_f32(0x01, TSD_FLOAT8_E5M2FNUZ), 0x1p-17f);
  EXPECT_EQ(to_f32(0x7F, TSD_FLOAT8_E8M0FNU), 1.0f);
  EXPECT_EQ(to_f32(0x00, TSD_FLOAT8_E8M0FNU), 0x1p-127f);
  EXPECT_EQ(to_f32(0xFE, TSD_FLOAT8_E8M0FNU), 0x1p127f);
  // c10's NaN bits reach a float32 as they are
  EXPECT_EQ(bits(to_f32(0x80, TSD_FLOAT8_E4M3FNUZ)), 0x7F800001u);
  EXPECT_EQ(bits(to_f32(0xFF, TSD_FLOAT8_E8M0FNU)), 0x7F800001u);
  EXPECT_EQ(bits(to_f32(0x00, TSD_FLOAT8_E4M3FNUZ)), 0u);
}

TEST(Convert, EveryFiniteFloat8CodeRoundTrips) {
  for (const auto &f : kFp8)
    for (unsigned c = 0; c < 256; c++) {
      const double v = fp8_value(f, c);
      if (std::isnan(v)) continue;
      EXPECT_EQ(from_f32((float)v, f.t), c) << tsd_dtype_name(f.t) << " " << c;
    }
}

TEST(Convert, FloatToFloat8RoundsToNearestEvenAsABruteForceSearch) {
  // Overflow as c10 has it: e4m3fn from 464 (halfway past 448) -> NaN, e5m2
  // from 2^16 -> inf (NaN stays NaN), fnuz past their max -> NaN 0x80.
  struct Edge {
    double top;
    uint8_t over;
  };
  const Edge edges[] = {
      {480, 0x7F}, {65536, 0x7C}, {256, 0x80}, {65536, 0x80}, {0, 0}};
  uint32_t rng = 12345;
  for (size_t k = 0; k < 5; k++) {
    const auto &f = kFp8[k];
    const auto &e = edges[k];
    // every midpoint between neighbouring codes, just below, on, just above
    // (e8m0fnu: from code 1; below 2^-126 see FloatToFloat8EdgesAreC10s)
    std::vector<float> xs;
    for (unsigned c = f.kind == Fp8Format::E8M0 ? 1 : 0;
         c + 1 < (f.kind == Fp8Format::E8M0 ? 0xFFu : 0x80u); c++) {
      double a = fp8_value(f, c), b = fp8_value(f, c + 1);
      if (c + 1 == (e.over & 0x7Fu)) b = e.top;
      if (std::isnan(b) || std::isinf(b) || std::isnan(a)) continue;
      float mid = (float)((a + b) / 2);
      xs.push_back(mid);
      xs.push_back(std::nextafter(mid, 0.0f));
      xs.push_back(std::nextafter(mid, INFINITY));
      xs.push_back(-mid);
    }
    for (int i = 0; i < 20000; i++) { // random floats over the whole range
      rng = rng * 1664525u + 1013904223u;
      float x = std::ldexp((float)(rng >> 8) / (1 << 24),
                           f.kind == Fp8Format::E8M0 ? (int)(rng % 200) - 100
                                                     : (int)(rng % 48) - 28);
      xs.push_back(rng & 1 ? -x : x);
    }
    for (float x : xs) {
      if (f.kind == Fp8Format::E8M0) {
        // the exponent of |x|, rounded on the mantissa (RNE; x normal)
        int ex;
        double m = std::frexp(std::fabs((double)x), &ex); // m in [0.5, 1)
        uint8_t want = (uint8_t)(ex - 1 + 127 + (m >= 0.75 ? 1 : 0));
        EXPECT_EQ(from_f32(x, f.t), want) << x;
        continue;
      }
      EXPECT_EQ(from_f32(x, f.t), nearest(f, x, e.top, e.over))
          << tsd_dtype_name(f.t) << " " << x;
    }
  }
}

TEST(Convert, FloatToFloat8EdgesAreC10s) {
  const float inf = INFINITY, nan = NAN;
  // e4m3fn: no inf; 448 max; up to 464 (a tie, to even) -> 448; past it the
  // rounding reaches the NaN code 0x7F; from 480 on, inf and NaN -> NaN
  EXPECT_EQ(from_f32(463.99f, TSD_FLOAT8_E4M3FN), 0x7E);
  EXPECT_EQ(from_f32(464.0f, TSD_FLOAT8_E4M3FN), 0x7E);
  EXPECT_EQ(from_f32(464.01f, TSD_FLOAT8_E4M3FN), 0x7F);
  EXPECT_EQ(from_f32(480.0f, TSD_FLOAT8_E4M3FN), 0x7F);
  EXPECT_EQ(from_f32(-1e30f, TSD_FLOAT8_E4M3FN), 0xFF);
  EXPECT_EQ(from_f32(inf, TSD_FLOAT8_E4M3FN), 0x7F);
  EXPECT_EQ(from_f32(nan, TSD_FLOAT8_E4M3FN), 0x7F);
  EXPECT_EQ(from_f32(-0.0f, TSD_FLOAT8_E4M3FN), 0x80);
  EXPECT_EQ(from_f32(0x1p-10f, TSD_FLOAT8_E4M3FN), 0x00); // tie -> 0
  EXPECT_EQ(from_f32(0x1.000002p-10f, TSD_FLOAT8_E4M3FN), 0x01);
  // e5m2: 57344 max; [61440, 65536) rounds up to inf; 65536+ -> inf; NaN 0x7F
  EXPECT_EQ(from_f32(61439.0f, TSD_FLOAT8_E5M2), 0x7B);
  EXPECT_EQ(from_f32(61440.0f, TSD_FLOAT8_E5M2), 0x7C);
  EXPECT_EQ(from_f32(-inf, TSD_FLOAT8_E5M2), 0xFC);
  EXPECT_EQ(from_f32(nan, TSD_FLOAT8_E5M2), 0x7F);
  EXPECT_EQ(from_f32(-nan, TSD_FLOAT8_E5M2), 0xFF);
  // fnuz: one NaN (0x80) for overflow, inf and NaN; no negative zero
  EXPECT_EQ(from_f32(240.0f, TSD_FLOAT8_E4M3FNUZ), 0x7F);
  EXPECT_EQ(from_f32(247.9f, TSD_FLOAT8_E4M3FNUZ), 0x7F);
  EXPECT_EQ(from_f32(248.0f, TSD_FLOAT8_E4M3FNUZ), 0x80);
  EXPECT_EQ(from_f32(-inf, TSD_FLOAT8_E4M3FNUZ), 0x80);
  EXPECT_EQ(from_f32(nan, TSD_FLOAT8_E5M2FNUZ), 0x80);
  EXPECT_EQ(from_f32(-0.0f, TSD_FLOAT8_E4M3FNUZ), 0x00);
  EXPECT_EQ(from_f32(-1e-30f, TSD_FLOAT8_E5M2FNUZ), 0x00);
  EXPECT_EQ(from_f32(-0x1p-17f, TSD_FLOAT8_E5M2FNUZ), 0x81);
  // e8m0: sign dropped, 0 -> 0 (2^-127), inf/NaN -> NaN, 2^127 * 1.5 -> NaN
  EXPECT_EQ(from_f32(-4.0f, TSD_FLOAT8_E8M0FNU), 0x81);
  EXPECT_EQ(from_f32(0.0f, TSD_FLOAT8_E8M0FNU), 0x00);
  EXPECT_EQ(from_f32(inf, TSD_FLOAT8_E8M0FNU), 0xFF);
  EXPECT_EQ(from_f32(0x1.8p127f, TSD_FLOAT8_E8M0FNU), 0xFF);
  EXPECT_EQ(from_f32(0x1.7FFFFEp0f, TSD_FLOAT8_E8M0FNU), 0x7F);
  EXPECT_EQ(from_f32(0x1.8p0f, TSD_FLOAT8_E8M0FNU), 0x80);
  // below 2^-126 (float subnormals) c10 rounds as if code 0 were 0: up to
  // 2^-127 -> 0, anything above -> code 1 (2^-126)
  EXPECT_EQ(from_f32(0x1p-128f, TSD_FLOAT8_E8M0FNU), 0x00);
  EXPECT_EQ(from_f32(0x1p-127f, TSD_FLOAT8_E8M0FNU), 0x00);
  EXPECT_EQ(from_f32(0x1.000004p-127f, TSD_FLOAT8_E8M0FNU), 0x01);
  EXPECT_EQ(from_f32(0x1.8p-127f, TSD_FLOAT8_E8M0FNU), 0x01);
  EXPECT_EQ(from_f32(0x1p-126f, TSD_FLOAT8_E8M0FNU), 0x01);
}

TEST(Convert, DoubleAndIntegersReachFloat8ThroughFloat) {
  // 1 + 2^-4 + 2^-30: a double rounds to e4m3fn 1.125, but c10 first makes
  // it the float 1.0625 (a tie) and then rounds to even: 1.0.
  const double d = 1.0 + 0x1p-4 + 0x1p-30;
  EXPECT_EQ(conv<uint8_t>(std::vector<double>{d}, TSD_FLOAT64,
                          TSD_FLOAT8_E4M3FN),
            std::vector<uint8_t>{0x38});
  // integers: 2^24 + 1 overflows e5m2 to inf, -500 rounds to -512
  EXPECT_EQ(conv<uint8_t>(std::vector<int64_t>{(1 << 24) + 1, 3, -500},
                          TSD_INT64, TSD_FLOAT8_E5M2),
            (std::vector<uint8_t>{0x7C, 0x42, 0xE0}));
  // float8 -> int truncates the value, as float -> int does
  EXPECT_EQ(conv<int32_t>(std::vector<uint8_t>{0x7E, 0xFE, 0x3C}, // 448 -448 1.5
                          TSD_FLOAT8_E4M3FN, TSD_INT32),
            (std::vector<int32_t>{448, -448, 1}));
  // float8 -> float8 goes through float: e5m2 57344 -> e4m3fn NaN
  EXPECT_EQ(conv<uint8_t>(std::vector<uint8_t>{0x7B, 0x3C}, TSD_FLOAT8_E5M2,
                          TSD_FLOAT8_E4M3FN),
            (std::vector<uint8_t>{0x7F, 0x38}));
}

TEST(Convert, UnsignedWideIntegersWrapAndConvertAsCpp) {
  const uint64_t big = 0xFFFFFFFFFFFFFFFFull;
  EXPECT_EQ(conv<float>(std::vector<uint64_t>{big, 1ull << 63}, TSD_UINT64,
                        TSD_FLOAT32),
            (std::vector<float>{0x1p64f, 0x1p63f}));
  EXPECT_EQ(conv<double>(std::vector<uint64_t>{big}, TSD_UINT64, TSD_FLOAT64),
            std::vector<double>{0x1p64});
  EXPECT_EQ(conv<int64_t>(std::vector<uint64_t>{big}, TSD_UINT64, TSD_INT64),
            std::vector<int64_t>{-1});
  EXPECT_EQ(conv<uint16_t>(std::vector<uint64_t>{70000}, TSD_UINT64, TSD_UINT16),
            std::vector<uint16_t>{4464});
  EXPECT_EQ(conv<uint32_t>(std::vector<int8_t>{-1}, TSD_INT8, TSD_UINT32),
            std::vector<uint32_t>{0xFFFFFFFFu});
  EXPECT_EQ(conv<int64_t>(std::vector<uint32_t>{0xFFFFFFFFu}, TSD_UINT32,
                          TSD_INT64),
            std::vector<int64_t>{4294967295});
  EXPECT_EQ(conv<uint8_t>(std::vector<uint16_t>{0, 2}, TSD_UINT16, TSD_BOOL),
            (std::vector<uint8_t>{0, 1}));
  // float -> unsigned: what x86-64 code compiled from PyTorch's static_cast
  // gives (uint16 through int32, uint32 through int64, uint64 GCC's split)
  EXPECT_EQ(conv<uint16_t>(std::vector<double>{70000.9, -1.0, 65535.0},
                           TSD_FLOAT64, TSD_UINT16),
            (std::vector<uint16_t>{4464, 65535, 65535}));
  EXPECT_EQ(conv<uint32_t>(std::vector<float>{5e9f, -1.0f, NAN}, TSD_FLOAT32,
                           TSD_UINT32),
            (std::vector<uint32_t>{705032704u, 0xFFFFFFFFu, 0u}));
  EXPECT_EQ(conv<uint64_t>(std::vector<double>{1e19, -1.0, NAN, 0x1p64},
                           TSD_FLOAT64, TSD_UINT64),
            (std::vector<uint64_t>{10000000000000000000ull, big,
                                   0x8000000000000000ull, 0}));
}

TEST(Convert, ComplexFollowsCopyUnderscore) {
  // values from torch 1.13: t = torch.empty(n, dtype=D); t.copy_(c)
  const std::vector<float> c = {1, 2, 0, 1, 0, 0, -3.7f, 1, NAN, 0, 0, NAN};
  EXPECT_EQ(convn<uint8_t>(c, TSD_COMPLEX64, TSD_BOOL, 6, 1),
            (std::vector<uint8_t>{1, 0, 0, 1, 1, 0}));
  EXPECT_EQ(convn<uint8_t>(c, TSD_COMPLEX64, TSD_UINT8, 6, 1),
            (std::vector<uint8_t>{1, 0, 0, 253, 0, 0}));
  EXPECT_EQ(convn<int32_t>(c, TSD_COMPLEX64, TSD_INT32, 6, 1),
            (std::vector<int32_t>{1, 0, 0, -3, INT32_MIN, 0}));
  auto f = convn<float>(c, TSD_COMPLEX64, TSD_FLOAT32, 6, 1);
  EXPECT_EQ(f[3], -3.7f);
  EXPECT_TRUE(std::isnan(f[4]));
  EXPECT_EQ(f[5], 0.0f);
  // real -> complex: imaginary part 0
  EXPECT_EQ(convn<double>(std::vector<int16_t>{-5, 7}, TSD_INT16, TSD_COMPLEX128,
                          2, 2),
            (std::vector<double>{-5, 0, 7, 0}));
  // complex32: halves; 70000 -> inf as float -> half does
  EXPECT_EQ(convn<uint16_t>(std::vector<float>{1, 70000, 1e-8f}, TSD_FLOAT32,
                            TSD_COMPLEX32, 3, 2),
            (std::vector<uint16_t>{0x3C00, 0, 0x7C00, 0, 0, 0}));
  EXPECT_EQ(convn<float>(std::vector<uint16_t>{0x3C00, 0x4000}, TSD_COMPLEX32,
                         TSD_COMPLEX64, 1, 2),
            (std::vector<float>{1, 2}));
  // complex128 -> complex32 through complex64 (two roundings, as c10)
  const double d = 1.0 + 0x1p-11 + 0x1p-40;
  EXPECT_EQ(convn<uint16_t>(std::vector<double>{d, -d}, TSD_COMPLEX128,
                            TSD_COMPLEX32, 1, 2),
            (std::vector<uint16_t>{0x3C00, 0xBC00}));
  EXPECT_EQ(convn<float>(std::vector<double>{0.1, -0.2}, TSD_COMPLEX128,
                         TSD_COMPLEX64, 1, 2),
            (std::vector<float>{0.1f, -0.2f}));
}

// Destinations need not be aligned: a caller's buffer or a device-copy
// staging part may start anywhere. The fast paths (half, bfloat16 — with its
// streamed stores from 64 Ki elements — and float8 into float32) and the
// general one give the same bytes at every offset; UBSan checks the stores.
TEST(Convert, MisalignedDestinationsGetTheSameBytes) {
  const size_t n = (size_t(1) << 16) + 37; // past the bf16 streaming size
  std::vector<uint8_t> src(n * 8);
  for (size_t i = 0; i < src.size(); i++)
    src[i] = static_cast<uint8_t>(i * 131 + 7);
  const tsd_dtype froms[] = {TSD_FLOAT16, TSD_BFLOAT16, TSD_FLOAT8_E4M3FN,
                             TSD_FLOAT64, TSD_INT32};
  for (tsd_dtype from : froms) {
    SCOPED_TRACE(tsd_dtype_name(from));
    std::vector<uint8_t> want(n * 4 + 64), got(n * 4 + 64);
    tsd__convert(want.data(), TSD_FLOAT32, src.data(), from, n);
    for (size_t shift : {1, 2, 3, 6}) {
      std::fill(got.begin(), got.end(), 0);
      tsd__convert(got.data() + shift, TSD_FLOAT32, src.data(), from, n);
      ASSERT_EQ(memcmp(got.data() + shift, want.data(), n * 4), 0)
          << "at offset " << shift;
    }
  }
}
