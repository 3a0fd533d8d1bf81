// test_parallel.cc — tsd_load_options.threads = 1 starts no worker thread
// (counted by interposing pthread_create: POSIX, a static glibc link). The
// converting reads split between two threads themselves are checked on
// every OS by test_parallel_portable.cc (parallel_helpers.h).
#include <gtest/gtest.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

extern "C" {
#include "internal.h"
}
#include "parallel_helpers.h"
#include "test_tmp.h"
#include "test_sanitized.h"

// Counts the threads tsd starts (normal builds: a sanitizer intercepts
// pthread_create itself). libtsd is linked statically, so its calls land
// here; the real function comes from the C library.
#if !TSD_TEST_SANITIZED
#include <dlfcn.h>
#include <pthread.h>
#include <atomic>
static std::atomic<int> g_threads_started{0};
extern "C" int pthread_create(pthread_t *t, const pthread_attr_t *a,
                              void *(*fn)(void *), void *arg) {
  using real_fn = int (*)(pthread_t *, const pthread_attr_t *,
                          void *(*)(void *), void *);
  static real_fn real =
      reinterpret_cast<real_fn>(dlsym(RTLD_NEXT, "pthread_create"));
  g_threads_started++;
  return real(t, a, fn, arg);
}
#endif

namespace {

using namespace tsdtest_parallel;

// tsd_load_options.threads = 1: the calling thread does every piece; the
// bytes are those of the two-thread load, and no thread is started.
TEST(Parallel, ThreadsOneStartsNoWorkerAndGivesTheSameBytes) {
  int64_t n = 3 * int64_t(kSplit / 2) + 17; // bf16: three pieces and more
  std::string path = tmp_path("threads1");
  auto src = random_bytes(size_t(n) * 2, 99);
  save_one(path, TSD_BFLOAT16, n, src);
  std::vector<uint8_t> two(size_t(n) * 4, 0xAB), one(size_t(n) * 4, 0xCD);
  for (int threads : {0, 1}) {
    tsd_checkpoint *c = nullptr;
    ASSERT_EQ(tsd_checkpoint_open(&c, path.c_str(), nullptr), TSD_OK);
    tsd_model *m = nullptr;
    ASSERT_EQ(tsd_model_new(&m, "Dst"), TSD_OK);
    std::vector<uint8_t> &out = threads == 1 ? one : two;
    ASSERT_EQ(tsd_model_add_tensor(m, "w", TSD_PARAMETER, TSD_FLOAT32, 1, &n,
                                   out.data()),
              TSD_OK);
    tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
    o.threads = threads;
#if !TSD_TEST_SANITIZED
    int before = g_threads_started.load();
#endif
    tsd_report *r = nullptr;
    EXPECT_EQ(tsd_load(&r, m, c, &o), TSD_OK) << tsd_last_error();
#if !TSD_TEST_SANITIZED
    int started = g_threads_started.load() - before;
    if (threads == 1)
      EXPECT_EQ(started, 0) << "threads = 1 started a worker";
    else
      EXPECT_EQ(started, 1) << "a 3 MiB bf16 read should share its pieces";
#endif
    tsd_report_free(r);
    tsd_model_free(m);
    tsd_checkpoint_free(c);
  }
  EXPECT_TRUE(one == two);
  for (int64_t i = 0; i < n; i += 997) {
    uint16_t h;
    memcpy(&h, &src[size_t(i) * 2], 2);
    uint32_t got;
    memcpy(&got, &one[size_t(i) * 4], 4);
    ASSERT_EQ(got, uint32_t(h) << 16) << "element " << i;
  }
  unlink(path.c_str());
}

} // namespace
