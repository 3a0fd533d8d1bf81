// test_parallel_portable.cc — converting reads of large tensors, which
// tsd__tensor_read (checkpoint.c) shares between two threads in 1 MiB
// pieces: every element against a scalar reference written here (not the
// library's converters), odd counts and counts around the threshold, and
// errors raised in either thread reported on the calling thread. Moved from
// test_parallel.cc so that they are built for Windows too (Win32 threads,
// platform_win32.c) and run under Wine; test_parallel.cc keeps the test that
// counts the threads started (it interposes pthread_create). Worth running
// under TSan the way scripts/sanitize.sh runs test_threads.
#include <gtest/gtest.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "parallel_helpers.h"

namespace {

using namespace tsdtest_parallel;

TEST(Parallel, Bf16ToFloat32IsExactWideningForEveryElement) {
  for (int64_t n : counts(2)) {
    std::string path = tmp_path("bf16");
    auto src = random_bytes(size_t(n) * 2, uint32_t(n));
    save_one(path, TSD_BFLOAT16, n, src);
    auto out = load_as(path, TSD_FLOAT32, n);
    size_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
      uint16_t h;
      memcpy(&h, &src[size_t(i) * 2], 2);
      uint32_t got;
      memcpy(&got, &out[size_t(i) * 4], 4);
      if (got != uint32_t(h) << 16 && bad++ < 5)
        ADD_FAILURE() << "n=" << n << " element " << i << ": bf16 0x"
                      << std::hex << h << " gave 0x" << got;
    }
    EXPECT_EQ(bad, 0u) << "n=" << n;
    std::remove(path.c_str());
  }
}

TEST(Parallel, Float16ToFloat32MatchesTheIeeeDefinition) {
  for (int64_t n : counts(2)) {
    std::string path = tmp_path("f16");
    auto src = random_bytes(size_t(n) * 2, uint32_t(n) + 1);
    save_one(path, TSD_FLOAT16, n, src);
    auto out = load_as(path, TSD_FLOAT32, n);
    size_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
      uint16_t h;
      memcpy(&h, &src[size_t(i) * 2], 2);
      float got, want = half_ref(h);
      memcpy(&got, &out[size_t(i) * 4], 4);
      bool ok = std::isnan(want) ? std::isnan(got)
                                 : f32_bits(got) == f32_bits(want);
      if (!ok && bad++ < 5)
        ADD_FAILURE() << "n=" << n << " element " << i << ": f16 0x"
                      << std::hex << h << " gave " << got << " want " << want;
    }
    EXPECT_EQ(bad, 0u) << "n=" << n;
    std::remove(path.c_str());
  }
}

TEST(Parallel, Float64ToFloat32RoundsEveryElementToNearest) {
  for (int64_t n : counts(8)) {
    std::string path = tmp_path("f64");
    std::mt19937_64 g{uint64_t(n)};
    std::normal_distribution<double> d(0.0, 1e3);
    std::vector<uint8_t> src(size_t(n) * 8);
    for (int64_t i = 0; i < n; i++) {
      double x = d(g);
      memcpy(&src[size_t(i) * 8], &x, 8);
    }
    save_one(path, TSD_FLOAT64, n, src);
    auto out = load_as(path, TSD_FLOAT32, n);
    size_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
      double x;
      float got;
      memcpy(&x, &src[size_t(i) * 8], 8);
      memcpy(&got, &out[size_t(i) * 4], 4);
      if (f32_bits(got) != f32_bits(float(x)) && bad++ < 5)
        ADD_FAILURE() << "n=" << n << " element " << i << ": " << x
                      << " gave " << got;
    }
    EXPECT_EQ(bad, 0u) << "n=" << n;
    std::remove(path.c_str());
  }
}

TEST(Parallel, Int32ToFloat64AndInt64ToInt32AreExactForEveryElement) {
  for (int64_t n : counts(4)) {
    std::string path = tmp_path("i32");
    auto src = random_bytes(size_t(n) * 4, uint32_t(n) + 2);
    save_one(path, TSD_INT32, n, src);
    auto out = load_as(path, TSD_FLOAT64, n);
    size_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
      int32_t x;
      double got;
      memcpy(&x, &src[size_t(i) * 4], 4);
      memcpy(&got, &out[size_t(i) * 8], 8);
      if (got != double(x) && bad++ < 5)
        ADD_FAILURE() << "n=" << n << " element " << i << ": " << x
                      << " gave " << got;
    }
    EXPECT_EQ(bad, 0u) << "n=" << n;
    std::remove(path.c_str());
  }
  // int64 -> int32 keeps the low 32 bits (Tensor.copy_ wraps).
  for (int64_t n : counts(8)) {
    std::string path = tmp_path("i64");
    auto src = random_bytes(size_t(n) * 8, uint32_t(n) + 3);
    save_one(path, TSD_INT64, n, src);
    auto out = load_as(path, TSD_INT32, n);
    size_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
      uint64_t x;
      uint32_t got;
      memcpy(&x, &src[size_t(i) * 8], 8);
      memcpy(&got, &out[size_t(i) * 4], 4);
      if (got != uint32_t(x) && bad++ < 5)
        ADD_FAILURE() << "n=" << n << " element " << i;
    }
    EXPECT_EQ(bad, 0u) << "n=" << n;
    std::remove(path.c_str());
  }
}

TEST(Parallel, Bf16WideningIntoAMisalignedDestinationIsExact) {
  // Large runs use 16-byte non-temporal stores after a scalar head that
  // aligns the destination; start 1..3 floats past a 16-byte boundary.
  const size_t n = (size_t(1) << 16) + 11;
  auto src = random_bytes(n * 2, 3);
  std::vector<uint32_t> out(n + 8);
  for (size_t shift = 0; shift < 4; shift++) {
    std::fill(out.begin(), out.end(), 0xDEADBEEFu);
    tsd__convert(out.data() + shift, TSD_FLOAT32, src.data(), TSD_BFLOAT16, n);
    for (size_t i = 0; i < shift; i++)
      ASSERT_EQ(out[i], 0xDEADBEEFu) << "shift " << shift;
    for (size_t i = 0; i < n; i++) {
      uint16_t h;
      memcpy(&h, &src[i * 2], 2);
      ASSERT_EQ(out[shift + i], uint32_t(h) << 16)
          << "shift " << shift << " element " << i;
    }
    for (size_t i = shift + n; i < out.size(); i++)
      ASSERT_EQ(out[i], 0xDEADBEEFu) << "shift " << shift;
  }
}

TEST(Parallel, CheckpointInMemoryConvertsTheSame) {
  const int64_t n = int64_t(3 * kSplit / 2) + 7;
  std::string path = tmp_path("mem");
  auto src = random_bytes(size_t(n) * 2, 99);
  save_one(path, TSD_BFLOAT16, n, src);
  FILE *f = fopen(path.c_str(), "rb");
  ASSERT_TRUE(f);
  std::vector<uint8_t> file;
  uint8_t buf[65536];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, f)) > 0)
    file.insert(file.end(), buf, buf + k);
  fclose(f);
  std::remove(path.c_str());
  tsd_checkpoint *c = nullptr;
  ASSERT_EQ(tsd_checkpoint_open_memory(&c, file.data(), file.size(), nullptr),
            TSD_OK)
      << tsd_last_error();
  std::vector<uint32_t> out{std::vector<uint32_t>(size_t(n))};
  ASSERT_EQ(tsd_checkpoint_read(out.data(), out.size() * 4, c, 0, TSD_FLOAT32),
            TSD_OK)
      << tsd_last_error();
  for (int64_t i = 0; i < n; i++) {
    uint16_t h;
    memcpy(&h, &src[size_t(i) * 2], 2);
    ASSERT_EQ(out[size_t(i)], uint32_t(h) << 16) << "element " << i;
  }
  tsd_checkpoint_free(c);
}

// The byte offset in "... offset N ..." of a message, or -1.
long long offset_in(const std::string &msg) {
  size_t p = msg.find("offset ");
  if (p == std::string::npos) return -1;
  return std::atoll(msg.c_str() + p + 7);
}

// A checkpoint opened, then truncated under it at `cut` bytes into the
// tensor's data: the read fails with TSD_ERR_IO whichever thread reads past
// the end, on the calling thread, naming the file and the offset.
// cut_fraction < 0: cut inside the last 1 MiB piece, 2 bytes before the end,
// the piece the worker thread (which works from the back) takes first.
void expect_truncation_error(const char *name, double cut_fraction) {
  const int64_t n = int64_t(4 * kSplit / 2) + 3; // 4 MiB + 6 bytes of bf16
  std::string path = tmp_path(name);
  auto src = random_bytes(size_t(n) * 2, 7);
  save_one(path, TSD_BFLOAT16, n, src);
  tsd_checkpoint *c = nullptr;
  ASSERT_EQ(tsd_checkpoint_open(&c, path.c_str(), nullptr), TSD_OK)
      << tsd_last_error();
  const tsd__value *v = tsd__ckpt_val(c, 0);
  ASSERT_TRUE(v && v->kind == TSD__V_TENSOR);
  const uint64_t data = v->u.tensor->storage->offset;
  const uint64_t cut =
      data + (cut_fraction < 0 ? uint64_t(n * 2 - 2)
                               : uint64_t(double(n * 2) * cut_fraction));
  std::error_code ec;
  std::filesystem::resize_file(path, cut, ec);
  ASSERT_FALSE(ec) << ec.message();

  std::vector<float> out(size_t(n), 1.5f);
  tsd__err_clear();
  EXPECT_EQ(tsd_checkpoint_read(out.data(), out.size() * 4, c, 0, TSD_FLOAT32),
            TSD_ERR_IO);
  std::string msg = tsd_last_error();
  EXPECT_NE(msg.find("file ended"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  // The failing chunk starts at or before the cut and less than one
  // staging chunk (1 MiB) before it.
  long long off = offset_in(msg);
  EXPECT_LE(off, (long long)cut) << msg;
  EXPECT_GT(off + (1 << 20), (long long)cut) << msg;

  // Through tsd_load: the same error, with the engine's context.
  tsd_model *m = nullptr;
  ASSERT_EQ(tsd_model_new(&m, "Dst"), TSD_OK);
  ASSERT_EQ(tsd_model_add_tensor(m, "w", TSD_PARAMETER, TSD_FLOAT32, 1, &n,
                                 out.data()),
            TSD_OK);
  tsd_report *r = nullptr;
  EXPECT_EQ(tsd_load(&r, m, c, nullptr), TSD_ERR_IO);
  EXPECT_EQ(r, nullptr);
  msg = tsd_last_error();
  EXPECT_NE(msg.find("copying \"w\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("file ended"), std::string::npos) << msg;
  tsd_model_free(m);
  tsd_checkpoint_free(c);
  std::remove(path.c_str());
}

TEST(Parallel, TruncationInTheWorkersPieceIsReportedOnTheCaller) {
  expect_truncation_error("cut_last", -1);
}

TEST(Parallel, TruncationInBothThreadsPiecesReportsTheLowerOffset) {
  // Cut early: the pieces of both threads fail, and the error of the lowest
  // offset is the one reported, as a one-thread read would.
  expect_truncation_error("cut_first", 0.3);
  expect_truncation_error("cut_start", 0.01);
}

TEST(Parallel, ManyCallerThreadsEachSplittingStayCorrect) {
  // tsd.h allows one checkpoint to be read from several threads at once;
  // each read then runs its own worker.
  const int64_t n = int64_t(3 * kSplit / 2) + 1;
  std::string path = tmp_path("many");
  auto src = random_bytes(size_t(n) * 2, 5);
  save_one(path, TSD_BFLOAT16, n, src);
  tsd_checkpoint *c = nullptr;
  ASSERT_EQ(tsd_checkpoint_open(&c, path.c_str(), nullptr), TSD_OK);
  constexpr int kThreads = 4;
  std::vector<std::vector<uint32_t>> outs(kThreads,
                                          std::vector<uint32_t>(size_t(n)));
  std::vector<int> st(kThreads, -100);
  std::vector<std::thread> ts;
  for (int k = 0; k < kThreads; k++)
    ts.emplace_back([&, k] {
      st[k] = tsd_checkpoint_read(outs[k].data(), outs[k].size() * 4, c, 0,
                                  TSD_FLOAT32);
    });
  for (auto &t : ts)
    t.join();
  for (int k = 0; k < kThreads; k++) {
    ASSERT_EQ(st[k], TSD_OK);
    for (int64_t i = 0; i < n; i++) {
      uint16_t h;
      memcpy(&h, &src[size_t(i) * 2], 2);
      ASSERT_EQ(outs[k][size_t(i)], uint32_t(h) << 16)
          << "thread " << k << " element " << i;
    }
  }
  tsd_checkpoint_free(c);
  std::remove(path.c_str());
}

TEST(Parallel, NegativeThreadsIsRejected) {
  tsd_checkpoint *c = nullptr;
  ASSERT_EQ(tsd_checkpoint_open(&c, TSD_FIXTURES "/small.pth", nullptr),
            TSD_OK);
  tsd_model *m = nullptr;
  ASSERT_EQ(tsd_model_new(&m, "Net"), TSD_OK);
  tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
  o.threads = -1;
  tsd_report *r = nullptr;
  EXPECT_EQ(tsd_load(&r, m, c, &o), TSD_ERR_INVALID_ARG);
  EXPECT_EQ(r, nullptr);
  EXPECT_NE(std::string(tsd_last_error()).find("threads"), std::string::npos);
  tsd_model_free(m);
  tsd_checkpoint_free(c);
}

} // namespace
