// parallel_helpers.h — shared by test_parallel_portable.cc (the converting
// reads split between two threads, on every OS: pthreads and Win32 threads)
// and test_parallel.cc (POSIX: counts the threads tsd starts by interposing
// pthread_create): saving one random tensor, loading it back both ways, the
// scalar references and the element counts around the split.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include "internal.h"
}
#include "test_tmp.h"

namespace tsdtest_parallel {

// Source bytes from which checkpoint.c splits a converting read (its
// SPLIT_CONVERT); the sizes below straddle it and exceed it many times.
inline constexpr size_t kSplit = size_t(1) << 20;

inline std::string tmp_path(const char *name) {
  return tsdtest::temp_dir() + "/parallel_" + name + ".pth";
}

inline uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

// IEEE binary16 decoded by its definition, independent of convert.c.
inline float half_ref(uint16_t h) {
  int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0)
    v = std::ldexp(double(m), -24);
  else if (e == 31)
    v = m ? NAN : INFINITY;
  else
    v = std::ldexp(double(1024 + m), e - 25);
  return float(sign ? -v : v);
}

// Saves one tensor `name` of `dtype` (bytes in `data`) as a torch.save .pth.
inline void save_one(const std::string &path, tsd_dtype dtype, int64_t numel,
              std::vector<uint8_t> &data) {
  tsd_model *m = nullptr;
  ASSERT_EQ(tsd_model_new(&m, "Src"), TSD_OK);
  ASSERT_EQ(tsd_model_add_tensor(m, "w", TSD_PARAMETER, dtype, 1, &numel,
                                 data.data()),
            TSD_OK);
  ASSERT_EQ(tsd_model_save(m, path.c_str(), NULL), TSD_OK) << tsd_last_error();
  tsd_model_free(m);
}

inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<uint8_t> v(n);
  for (auto &b : v)
    b = uint8_t(g());
  return v;
}

// Loads the file's single tensor "w" into a fresh C-owned model of `to`,
// through tsd_load (the engine's copy path) and through
// tsd_checkpoint_read; both results must be the same bytes.
inline std::vector<uint8_t> load_as(const std::string &path, tsd_dtype to,
                             int64_t numel) {
  std::vector<uint8_t> out(size_t(numel) * tsd_dtype_size(to), 0xAB);
  std::vector<uint8_t> direct(out.size(), 0xCD);
  tsd_checkpoint *c = nullptr;
  EXPECT_EQ(tsd_checkpoint_open(&c, path.c_str(), nullptr), TSD_OK)
      << tsd_last_error();
  if (!c) return out;
  tsd_model *m = nullptr;
  EXPECT_EQ(tsd_model_new(&m, "Dst"), TSD_OK);
  EXPECT_EQ(
      tsd_model_add_tensor(m, "w", TSD_PARAMETER, to, 1, &numel, out.data()),
      TSD_OK);
  tsd_report *r = nullptr;
  EXPECT_EQ(tsd_load(&r, m, c, nullptr), TSD_OK) << tsd_last_error();
  EXPECT_TRUE(r && tsd_report_ok(r));
  tsd_report_free(r);
  EXPECT_EQ(tsd_checkpoint_read(direct.data(), direct.size(), c, 0, to), TSD_OK)
      << tsd_last_error();
  EXPECT_TRUE(out == direct);
  tsd_model_free(m);
  tsd_checkpoint_free(c);
  return out;
}

// The element counts of each dtype pair: one below the threshold (one
// thread), exactly at it, odd counts above it (a short last piece), and
// several MiB.
inline std::vector<int64_t> counts(size_t src_size) {
  int64_t at = int64_t(kSplit / src_size);
  return {at - 1, at, at + 1, 3 * at + 17, 5 * at + 12345};
}

} // namespace tsdtest_parallel
