// test_alloc.cc — caller-supplied allocators (tsd_allocator).
//
// A checkpoint opened with allocator A and a C-owned model created with
// allocator B must make every allocation of theirs through A and B: each
// block is tagged with its allocator, so a block freed through the wrong one,
// freed twice, or left behind fails the test. In the normal build the test
// binary also interposes libc's malloc family and checks that tsd calls none
// of it while a scenario runs (sanitizer builds have their own malloc, and
// the interposer needs glibc's __libc_malloc, so it is left out there and on
// Windows; the tagging and fault-injection checks run everywhere: this
// program is built for Windows too and runs under Wine).
//
// Fault injection: the same scenarios with the allocator failing its k-th
// call, for every k up to the number of calls a full run makes. Each must end
// in a status (TSD_ERR_NOMEM or the status of the load), never a crash, leak
// or foreign free, and a failed load must leave the model's bytes unchanged.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "internal.h"
}
#include "test_tmp.h"

#include "test_sanitized.h"

// ---- libc interposer (normal builds only) ---------------------------------

static thread_local bool g_watch = false;      // inside a tsd call
static thread_local size_t g_libc_calls = 0;   // libc allocations seen then

#if !TSD_TEST_SANITIZED && defined(__GLIBC__)
#define TSD_ALLOC_INTERPOSED 1
extern "C" {
void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void __libc_free(void *);
void *malloc(size_t n) {
  if (g_watch) g_libc_calls++;
  return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
  if (g_watch) g_libc_calls++;
  return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
  if (g_watch) g_libc_calls++;
  return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
}
#define RAW_MALLOC __libc_malloc
#define RAW_REALLOC __libc_realloc
#define RAW_FREE __libc_free
#else
#define TSD_ALLOC_INTERPOSED 0
#define RAW_MALLOC malloc
#define RAW_REALLOC realloc
#define RAW_FREE free
#endif

namespace {

const std::string kDir = TSD_FIXTURES;
const std::string kTmp = tsdtest::temp_dir();

// ---- a tagging, counting, failing allocator --------------------------------

constexpr uint64_t kLive = 0x7473645f6c697665ull; // "tsd_live"
constexpr uint64_t kDead = 0x7473645f64656164ull; // "tsd_dead"

struct Counting;
struct alignas(16) Header {
  uint64_t magic;
  Counting *owner;
};

struct Counting {
  size_t calls = 0;   // allocate + reallocate
  size_t live = 0;    // blocks not yet freed
  size_t max_live = 0;
  size_t foreign = 0; // frees/reallocs of blocks this allocator did not make
  size_t fail_at = 0; // 1-based call that fails; 0 = never
  bool failed = false;
  tsd_allocator hooks();
};

Header *header_of(void *p) { return static_cast<Header *>(p) - 1; }

bool owns(Counting *c, void *p) {
  Header *h = header_of(p);
  return h->magic == kLive && h->owner == c;
}

void *c_allocate(void *user, size_t n) {
  auto *c = static_cast<Counting *>(user);
  if (n == 0) c->foreign++; // the contract: never 0 bytes
  if (++c->calls == c->fail_at) {
    c->failed = true;
    return nullptr;
  }
  auto *h = static_cast<Header *>(RAW_MALLOC(sizeof(Header) + n));
  if (!h) return nullptr;
  h->magic = kLive;
  h->owner = c;
  c->live++;
  c->max_live = std::max(c->max_live, c->live);
  return h + 1;
}

void *c_reallocate(void *user, void *p, size_t n) {
  auto *c = static_cast<Counting *>(user);
  if (!p || !owns(c, p)) {
    c->foreign++;
    return nullptr;
  }
  if (++c->calls == c->fail_at) {
    c->failed = true;
    return nullptr;
  }
  auto *h = static_cast<Header *>(RAW_REALLOC(header_of(p), sizeof(Header) + n));
  return h ? h + 1 : nullptr;
}

void c_deallocate(void *user, void *p) {
  auto *c = static_cast<Counting *>(user);
  if (!p || !owns(c, p)) { // not ours, NULL, or freed twice: never free it
    c->foreign++;
    return;
  }
  header_of(p)->magic = kDead;
  c->live--;
  RAW_FREE(header_of(p));
}

tsd_allocator Counting::hooks() {
  return tsd_allocator{c_allocate, c_reallocate, c_deallocate, this};
}

// ---- the scenario ----------------------------------------------------------

struct Buffers {
  std::vector<std::vector<unsigned char>> data;
};

// Opens `file` with allocator A, builds a model of its tensors with
// allocator B (one shape changed, so there is a size mismatch to report),
// then: a strict load (fails), an auto-pop non-strict load with a rename,
// a converting read, a pop, the reports' texts, and saving the model both
// ways. Every tsd call runs with the libc watch on. Returns the first status
// that is not an expected one (TSD_OK when the whole scenario ran).
tsd_status scenario(Counting *ca, Counting *cb, const std::string &file,
                    std::vector<unsigned char> *model_bytes_before_failure,
                    bool *model_unchanged) {
  *model_unchanged = true;
  tsd_allocator a = ca->hooks(), b = cb->hooks();
  tsd_open_options oo = TSD_OPEN_OPTIONS_INIT;
  oo.allocator = &a;
  tsd_checkpoint *c = nullptr;
  const std::string path = kDir + "/" + file;
  const std::string out_pth = kTmp + "/alloc_" + file + ".pth";
  const std::string out_st = kTmp + "/alloc_" + file + ".safetensors";
  g_watch = true;
  tsd_status st = tsd_checkpoint_open(&c, path.c_str(), &oo);
  g_watch = false;
  if (st != TSD_OK) return st;

  // The model, from the checkpoint's tensors (shapes read before any
  // failure can happen: entry access does not allocate).
  Buffers bufs;
  bufs.data.reserve(tsd_checkpoint_count(c) + 1);
  tsd_model *m = nullptr;
  g_watch = true;
  st = tsd_model_new_ex(&m, "Net", &b);
  g_watch = false;
  bool changed_one = false;
  std::string first_key;
  for (size_t i = 0; st == TSD_OK && i < tsd_checkpoint_count(c); i++) {
    tsd_entry e;
    if (tsd_checkpoint_entry(&e, c, i) != TSD_OK) continue;
    if (e.kind != TSD_KIND_TENSOR) continue;
    std::vector<int64_t> shape(e.shape, e.shape + e.ndim);
    if (!changed_one && e.ndim > 0) {
      shape[0] += 1; // a new head: mismatch
      changed_one = true;
    } else if (first_key.empty()) {
      first_key = e.key;
    }
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    bufs.data.emplace_back(static_cast<size_t>(numel) * 4 + 1, 0x5a);
    g_watch = true;
    st = tsd_model_add_tensor(m, e.key, TSD_PARAMETER, TSD_FLOAT32,
                              shape.size(), shape.data(),
                              bufs.data.back().data());
    g_watch = false;
  }
  auto snapshot = [&]() {
    std::vector<unsigned char> all;
    for (auto &v : bufs.data) all.insert(all.end(), v.begin(), v.end());
    return all;
  };

  tsd_report *r = nullptr;
  if (st == TSD_OK) {
    std::vector<unsigned char> before = snapshot();
    g_watch = true;
    st = tsd_load(&r, m, c, nullptr); // strict: the mismatch fails it
    g_watch = false;
    if (st == TSD_ERR_LOAD) {
      g_watch = true;
      const char *msg = tsd_report_message(r);
      const char *json = tsd_report_json(r);
      g_watch = false;
      if (!msg || !json || !strstr(msg, "size mismatch")) st = TSD_ERR_TYPE;
      else st = TSD_OK;
    }
    if (snapshot() != before) *model_unchanged = false;
    if (model_bytes_before_failure) *model_bytes_before_failure = before;
    tsd_report_free(r);
    r = nullptr;
  }
  if (st == TSD_OK) {
    tsd_load_options lo = TSD_LOAD_OPTIONS_INIT;
    lo.strict = 0;
    lo.auto_pop = 1;
    tsd_rename ren = {"zz_not_a_prefix.", "renamed."};
    lo.renames = &ren;
    lo.n_renames = 1;
    std::vector<unsigned char> before = snapshot();
    g_watch = true;
    st = tsd_load(&r, m, c, &lo);
    g_watch = false;
    if (st == TSD_OK) {
      g_watch = true;
      bool ok = tsd_report_json(r) && tsd_report_count(r, TSD_LIST_POPPED) == 1;
      g_watch = false;
      if (!ok) st = TSD_ERR_TYPE;
    } else if (snapshot() != before && st != TSD_ERR_IO) {
      *model_unchanged = false;
    }
    tsd_report_free(r);
  }
  if (st == TSD_OK && !first_key.empty()) {
    size_t idx = 0;
    g_watch = true;
    st = tsd_checkpoint_find(&idx, c, first_key.c_str());
    g_watch = false;
    tsd_entry e;
    if (st == TSD_OK) st = tsd_checkpoint_entry(&e, c, idx);
    if (st == TSD_OK) {
      std::vector<double> out(static_cast<size_t>(e.numel) + 1);
      g_watch = true;
      st = tsd_checkpoint_read(out.data(), out.size() * sizeof(double), c, idx,
                               TSD_FLOAT64);
      if (st == TSD_OK) st = tsd_checkpoint_pop(c, first_key.c_str());
      g_watch = false;
    }
  }
  if (st == TSD_OK) {
    g_watch = true;
    st = tsd_model_save(m, out_pth.c_str(), NULL);
    if (st == TSD_OK) st = tsd_model_save(m, out_st.c_str(), NULL);
    g_watch = false;
  }
  g_watch = true;
  tsd_model_free(m);
  tsd_checkpoint_free(c);
  g_watch = false;
  return st;
}

const char *const kFiles[] = {
    "small.pth",          "small_legacy.pth",   "zip_p2.pth",
    "zip_p5.pth",         "metadata.pth",       "st_small.safetensors",
    "shard_pth.index.json", "shard_st.index.json", "zip64.pth",
};

class Files : public ::testing::TestWithParam<const char *> {};

TEST_P(Files, EveryAllocationGoesThroughTheObjectsAllocator) {
  Counting ca, cb;
  g_libc_calls = 0;
  bool unchanged;
  tsd_status st = scenario(&ca, &cb, GetParam(), nullptr, &unchanged);
  ASSERT_EQ(st, TSD_OK) << tsd_status_name(st) << ": " << tsd_last_error();
  EXPECT_GT(ca.calls, 0u) << "the checkpoint allocated nothing through A";
  EXPECT_GT(cb.calls, 0u) << "the model allocated nothing through B";
  EXPECT_EQ(ca.live, 0u) << "blocks of the checkpoint's allocator leaked";
  EXPECT_EQ(cb.live, 0u) << "blocks of the model's allocator leaked";
  EXPECT_EQ(ca.foreign, 0u) << "A was given blocks it did not make";
  EXPECT_EQ(cb.foreign, 0u) << "B was given blocks it did not make";
  EXPECT_TRUE(unchanged) << "the failed strict load wrote into the model";
  if (TSD_ALLOC_INTERPOSED)
    EXPECT_EQ(g_libc_calls, 0u) << "tsd called libc's malloc family";
}

TEST_P(Files, EveryFailingAllocationIsACleanError) {
  Counting probe_a, probe_b;
  bool unchanged;
  ASSERT_EQ(scenario(&probe_a, &probe_b, GetParam(), nullptr, &unchanged),
            TSD_OK);
  // Fail each call of A, then each call of B (the runs are cheap: small
  // fixtures). Bounded so that a large fixture stays quick.
  for (int which = 0; which < 2; which++) {
    size_t total = which == 0 ? probe_a.calls : probe_b.calls;
    size_t step = total > 400 ? total / 400 : 1;
    for (size_t k = 1; k <= total; k += step) {
      Counting ca, cb;
      (which == 0 ? ca : cb).fail_at = k;
      tsd_status st = scenario(&ca, &cb, GetParam(), nullptr, &unchanged);
      SCOPED_TRACE(std::string(which == 0 ? "checkpoint" : "model") +
                   " allocator fails call " + std::to_string(k) + " of " +
                   std::to_string(total) + ": " + tsd_status_name(st) + " " +
                   tsd_last_error());
      EXPECT_TRUE((which == 0 ? ca : cb).failed);
      EXPECT_EQ(st, TSD_ERR_NOMEM);
      EXPECT_NE(std::string(tsd_last_error()), "");
      EXPECT_EQ(ca.live, 0u);
      EXPECT_EQ(cb.live, 0u);
      EXPECT_EQ(ca.foreign, 0u);
      EXPECT_EQ(cb.foreign, 0u);
      EXPECT_TRUE(unchanged);
      if (::testing::Test::HasFailure()) return;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Alloc, Files, ::testing::ValuesIn(kFiles),
                         [](const ::testing::TestParamInfo<const char *> &i) {
                           std::string s = i.param;
                           for (char &ch : s)
                             if (!isalnum(static_cast<unsigned char>(ch)))
                               ch = '_';
                           return s;
                         });

TEST(Alloc, AnAllocatorMissingAFunctionIsRejected) {
  Counting c;
  tsd_allocator a = c.hooks();
  a.reallocate = nullptr;
  tsd_model *m = nullptr;
  EXPECT_EQ(tsd_model_new_ex(&m, "Net", &a), TSD_ERR_INVALID_ARG);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(tsd_last_error()).find("allocator"), std::string::npos);
  tsd_open_options oo = TSD_OPEN_OPTIONS_INIT;
  oo.allocator = &a;
  tsd_checkpoint *ck = nullptr;
  EXPECT_EQ(tsd_checkpoint_open(&ck, (kDir + "/small.pth").c_str(), &oo),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(ck, nullptr);
  EXPECT_EQ(c.calls, 0u);
}

TEST(Alloc, VersionOneOpenOptionsIgnoreTheAllocatorField) {
  // A version-1 caller's struct ends after `limits`: whatever follows is
  // not read. Pass garbage there and expect malloc to be used.
  struct {
    tsd_open_options o;
  } v1;
  memset(&v1, 0, sizeof v1);
  v1.o.version = 1;
  v1.o.allocator = reinterpret_cast<const tsd_allocator *>(uintptr_t{1});
  tsd_checkpoint *ck = nullptr;
  ASSERT_EQ(tsd_checkpoint_open(&ck, (kDir + "/small.pth").c_str(), &v1.o),
            TSD_OK)
      << tsd_last_error();
  tsd_checkpoint_free(ck);
}

TEST(Alloc, TheAllocatorStructIsCopied) {
  Counting c;
  tsd_allocator *a = new tsd_allocator(c.hooks());
  tsd_model *m = nullptr;
  ASSERT_EQ(tsd_model_new_ex(&m, "Net", a), TSD_OK);
  memset(a, 0, sizeof *a); // the caller's struct may go away
  delete a;
  float w[4] = {0};
  int64_t shape[1] = {4};
  ASSERT_EQ(tsd_model_add_tensor(m, "fc.weight", TSD_PARAMETER, TSD_FLOAT32, 1,
                                 shape, w),
            TSD_OK);
  tsd_model_free(m);
  EXPECT_GT(c.calls, 0u);
  EXPECT_EQ(c.live, 0u);
  EXPECT_EQ(c.foreign, 0u);
}

} // namespace
