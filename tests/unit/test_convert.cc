// test_convert.cc — dtype conversion with Tensor.copy_'s rules. The edge
// values below were produced by Python torch 1.13 on this machine (the
// oracle), e.g. torch.tensor([...], dtype=torch.float64).to(torch.uint8).
#include <gtest/gtest.h>

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

uint32_t bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

} // namespace

TEST(Convert, DtypeNamesAndSizesArePyTorchs) {
  const char *names[] = {"float32", "float64", "float16", "bfloat16", "int8",
                         "int16",   "int32",   "int64",   "uint8",    "bool"};
  const size_t sizes[] = {4, 8, 2, 2, 1, 2, 4, 8, 1, 1};
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
  const double vals[] = {0, 1, 2, 5, 100, 127};
  for (int s = 0; s < TSD_DTYPE_COUNT; s++) {
    for (int d = 0; d < TSD_DTYPE_COUNT; d++) {
      tsd_dtype sd = static_cast<tsd_dtype>(s), dd = static_cast<tsd_dtype>(d);
      std::vector<uint8_t> src(6 * 8), mid(6 * 8);
      std::vector<double> back(6);
      std::vector<double> in(vals, vals + 6);
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
