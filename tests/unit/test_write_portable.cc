// test_write_portable.cc — the writers' guarantees that need neither a shell,
// fork/exec, signals, modes, symlinks nor mounts (moved from test_write.cc so
// that they are built for Windows too and run under Wine: afile_win32.c and
// the Win32 paths, not only afile.c): tensors streamed in windows
// (tsd__tensor_read_range against whole reads), the output bound
// (tsd_limits.max_output_ratio), the longest valid name, and failures that
// leave the old file and no temporary. test_write.cc keeps the POSIX ones.
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "internal.h"
#include "test_helpers.h"
#include "tsd.h"

namespace {

using tsdtest::Model;
using tsdtest::dir_names;
using tsdtest::slurp_file;
using tsdtest::spit_file;

std::string fresh_dir(const std::string &name) {
  return tsdtest::scratch_subdir("write_" + name);
}

// A small model with two tensors.
struct Small {
  Model m{"M"};
  Small() {
    m.add("a.w", {3, 4}, TSD_PARAMETER, TSD_FLOAT32, 1.5);
    m.add("b", {5}, TSD_BUFFER, TSD_INT64, 7);
  }
};

// ---- windows of a checkpoint tensor ------------------------------------

// A tensor over `storage` (float32 in memory) with the given geometry.
struct View {
  tsd__storage st{};
  tsd__tensor t{};
  std::vector<int64_t> shape, stride;
  View(const std::vector<float> &storage, std::vector<int64_t> sh,
       std::vector<int64_t> sd, int64_t offset, bool contiguous)
      : shape(std::move(sh)), stride(std::move(sd)) {
    st.dtype = TSD_FLOAT32;
    st.numel = storage.size();
    st.nbytes = storage.size() * 4;
    st.mem = reinterpret_cast<const uint8_t *>(storage.data());
    st.key = "s";
    t.storage = &st;
    t.dtype = TSD_FLOAT32;
    t.ndim = shape.size();
    t.shape = shape.data();
    t.stride = stride.data();
    t.offset = offset;
    t.numel = 1;
    for (int64_t d : shape)
      t.numel *= d;
    t.contiguous = contiguous;
  }
};

TEST(WriteWindows, EveryRangeOfEveryGeometryReadsAsTheWholeTensorDoes) {
  std::vector<float> s(64);
  for (size_t i = 0; i < s.size(); i++)
    s[i] = float(i) + 0.25f;
  std::vector<View *> views = {
      new View(s, {2, 3, 4}, {12, 4, 1}, 5, true),         // contiguous, offset
      new View(s, {4, 3}, {1, 4}, 0, false),               // transposed
      new View(s, {3, 2, 5}, {0, 5, 1}, 2, false),         // expanded dim 0
      new View(s, {7}, {0}, 9, false),                     // expand(7) of one
      new View(s, {2, 2, 2, 3}, {24, 3, 12, 1}, 1, false), // permuted
      new View(s, {3, 4}, {10, 2}, 3, false),              // strided slice
      new View(s, {}, {}, 17, true),                       // a scalar
      new View(s, {2, 0, 3}, {3, 3, 1}, 0, true),          // no elements
      new View(s, {1, 1, 6}, {6, 6, 1}, 30, true),         // size-1 dims
  };
  tsd_checkpoint c{}; // the storages are in memory: only its allocator
  for (size_t v = 0; v < views.size(); v++) {
    const tsd__tensor *t = &views[v]->t;
    const uint64_t n = uint64_t(t->numel);
    std::vector<double> whole(n + 1);
    ASSERT_EQ(tsd__tensor_read(&c, t, TSD_FLOAT64, whole.data(), nullptr),
              TSD_OK);
    for (uint64_t first = 0; first <= n; first++)
      for (uint64_t count = 0; first + count <= n; count++) {
        std::vector<double> part(count + 1, -1.0);
        ASSERT_EQ(tsd__tensor_read_range(&c, t, TSD_FLOAT64, first, count,
                                         part.data()),
                  TSD_OK)
            << tsd_last_error();
        for (uint64_t k = 0; k < count; k++)
          ASSERT_EQ(part[k], whole[first + k])
              << "view " << v << " range " << first << "+" << count << " at "
              << k;
        ASSERT_EQ(part[count], -1.0) << "wrote past the range, view " << v;
      }
  }
  for (View *v : views)
    delete v;
}

// ---- the output bound ---------------------------------------------------

// A checkpoint of six expand(2**22) float32 views of one element, 16 MiB
// each; no file, their storages in memory: 6 x 4 input bytes, the bound is
// 64 MiB + 384 bytes.
struct Expanded {
  tsdtest::CkptBuilder b;
  float one = 1.0f;
  Expanded() {
    for (int i = 0; i < 6; i++) {
      tsd__value *v = b.tensor(TSD_FLOAT32, {1}, &one);
      v->u.tensor->shape[0] = int64_t(1) << 22;
      v->u.tensor->stride[0] = 0;
      v->u.tensor->numel = int64_t(1) << 22;
      v->u.tensor->contiguous = false;
      b.add("e" + std::to_string(i), v);
    }
  }
};

TEST(WriteBound, TheKeyThatCrossesTheBoundIsNamed) {
  Expanded x;
  tsd_checkpoint *c = x.b.get();
  char name[] = "mem";
  c->src.name = name;
  uint64_t bytes = 1;
  EXPECT_EQ(tsd_checkpoint_output_bytes(&bytes, c), TSD_ERR_LIMIT);
  EXPECT_EQ(bytes, 0u);
  EXPECT_STREQ(tsd_last_error(),
               "mem: 'e4' brings the tensors to 83886080 bytes, more than "
               "max_output_ratio 16 x the input's 24 bytes + 64 MiB (views, "
               "shared storages and expanded tensors take their full size "
               "when written or held in memory); raise "
               "tsd_limits.max_output_ratio to allow it");
  tsd_model *m = nullptr;
  EXPECT_EQ(tsd_model_from_checkpoint(&m, c, nullptr), TSD_ERR_LIMIT);
  EXPECT_EQ(m, nullptr);
  c->max_output_ratio = UINT64_MAX;
  EXPECT_EQ(tsd_checkpoint_output_bytes(&bytes, c), TSD_OK);
  EXPECT_EQ(bytes, 6u << 24);
  ASSERT_EQ(tsd_model_from_checkpoint(&m, c, nullptr), TSD_OK);
  // read-only: nothing can be loaded into it
  tsd_report *r = nullptr;
  EXPECT_EQ(tsd_load(&r, m, c, nullptr), TSD_ERR_UNSUPPORTED);
  EXPECT_EQ(r, nullptr);
  tsd_model_free(m);
  c->src.name = nullptr;
}

TEST(WriteBound, OpenOptionsOfEveryVersionAreRead) {
  // a version-2 caller's struct (before max_output_ratio moved allocator)
  struct v2 {
    unsigned version;
    struct {
      uint32_t a;
      uint64_t b, c;
    } limits;
    const tsd_allocator *allocator;
  };
  struct counter {
    int n = 0;
  } cnt;
  tsd_allocator al = {[](void *u, size_t n) {
                        static_cast<counter *>(u)->n++;
                        return malloc(n);
                      },
                      [](void *, void *p, size_t n) { return realloc(p, n); },
                      [](void *, void *p) { free(p); }, &cnt};
  std::string path = std::string(TSD_FIXTURES) + "/metadata.pth";
  v2 old = {2, {0, 0, 0}, &al};
  tsd_checkpoint *c = nullptr;
  ASSERT_EQ(tsd_checkpoint_open(&c, path.c_str(),
                                reinterpret_cast<tsd_open_options *>(&old)),
            TSD_OK)
      << tsd_last_error();
  EXPECT_GT(cnt.n, 0) << "a version-2 struct's allocator was not used";
  EXPECT_EQ(c->max_output_ratio, 0u);
  tsd_checkpoint_free(c);
  tsd_open_options o = TSD_OPEN_OPTIONS_INIT;
  o.limits.max_output_ratio = 5;
  ASSERT_EQ(tsd_checkpoint_open(&c, path.c_str(), &o), TSD_OK);
  EXPECT_EQ(c->max_output_ratio, 5u);
  tsd_checkpoint_free(c);
}

// ---- the output rules, both writers ----------------------------------

const char *const kFormats[] = {"out.pth", "out.safetensors"};

// A directory at the output path is refused at once and kept (the FIFO and
// device cases: test_write.cc).
TEST(WriteRules, ADirectoryOutputIsRefusedAndKept) {
  std::string d = fresh_dir("dirout");
  Small s;
  for (const char *name : kFormats) {
    std::string p = d + "/" + name;
    ASSERT_TRUE(std::filesystem::create_directory(p)) << p;
    EXPECT_EQ(tsd_model_save(s.m.get(), p.c_str(), NULL), TSD_ERR_INVALID_ARG);
    EXPECT_EQ(std::string(tsd_last_error()),
              p + ": is a directory; tsd writes regular files only and does "
                  "not replace anything else");
    EXPECT_TRUE(std::filesystem::is_directory(p)) << p;
  }
  EXPECT_EQ(dir_names(d), (std::set<std::string>{"out.pth", "out.safetensors"}));
}

TEST(WriteRules, ALongestValidNameWorks) {
  std::string d = fresh_dir("long");
  Small s;
  for (std::string ext : {".pth", ".safetensors"}) {
    std::string name = std::string(255 - ext.size(), 'n') + ext; // NAME_MAX
    std::string p = d + "/" + name;
    ASSERT_EQ(tsd_model_save(s.m.get(), p.c_str(), NULL), TSD_OK)
        << tsd_last_error();
    ASSERT_EQ(tsd_model_save(s.m.get(), p.c_str(), NULL), TSD_OK)
        << tsd_last_error();
    tsd_checkpoint *c = nullptr;
    ASSERT_EQ(tsd_checkpoint_open(&c, p.c_str(), nullptr), TSD_OK)
        << tsd_last_error();
    EXPECT_EQ(tsd_checkpoint_count(c), 2u);
    tsd_checkpoint_free(c);
  }
  EXPECT_EQ(dir_names(d).size(), 2u);
}

// ---- failures leave the old file and nothing else ---------------------

struct TempLog {
  std::vector<std::string> calls; // "" for NULL
  static void cb(void *u, const char *p) {
    static_cast<TempLog *>(u)->calls.push_back(p ? p : "");
  }
};

tsd_status fail_read(const tsd_model *, const tsd__mtensor *, tsd_dtype,
                     void *) {
  return tsd__err(TSD_ERR_IO, "simulated read failure");
}
tsd_status fail_range(const tsd_model *, const tsd__mtensor *, tsd_dtype,
                      uint64_t first, uint64_t, void *dst) {
  if (first > 0) return tsd__err(TSD_ERR_IO, "simulated read failure");
  memset(dst, 0, TSD__WRITE_WINDOW);
  return TSD_OK;
}
void no_destroy(tsd_model *) {}
const tsd__model_ops kFailing = {nullptr, fail_read, tsd__save_pth, no_destroy,
                                 fail_range};

// A streamed 8 MiB tensor whose second window fails.
tsd_model *failing_model() {
  tsd_model *m = nullptr;
  EXPECT_EQ(tsd__model_create(&m, "Broken", &kFailing, nullptr, nullptr),
            TSD_OK);
  int64_t shape[1] = {int64_t(2) << 20};
  EXPECT_EQ(tsd__model_add(m, "a", TSD_PARAMETER, TSD_FLOAT32, 1, shape,
                           nullptr, nullptr, nullptr),
            TSD_OK);
  return m;
}

TEST(WriteFailure, AFailedWriteLeavesTheOldFileAndNoTemporary) {
  std::string d = fresh_dir("fail");
  tsd_model *m = failing_model();
  for (const char *name : kFormats) {
    std::string p = d + "/" + name;
    spit_file(p, "old contents");
    EXPECT_EQ(tsd_model_save(m, p.c_str(), NULL), TSD_ERR_IO);
    EXPECT_STREQ(tsd_last_error(), "simulated read failure");
    EXPECT_EQ(slurp_file(p), "old contents");
  }
  EXPECT_EQ(dir_names(d), (std::set<std::string>{"out.pth", "out.safetensors"}));
  tsd_model_free(m);
}

TEST(WriteFailure, TheNamedFallbackIsShortReportedAndRemoved) {
  std::string d = fresh_dir("named");
  Small s;
  TempLog log;
  tsd__afile f;
  std::string p = d + "/" + std::string(250, 'x') + ".pth";
  ASSERT_EQ(tsd__afile_open_ex(&f, nullptr, p.c_str(), TempLog::cb, &log, true),
            TSD_OK)
      << tsd_last_error();
  ASSERT_EQ(log.calls.size(), 1u);
  std::string tmp = log.calls[0];
  EXPECT_EQ(tmp.size(), d.size() + 1 + 11) << tmp;
  EXPECT_EQ(tmp.compare(0, d.size() + 6, d + "/.tsd-"), 0) << tmp;
  EXPECT_EQ(dir_names(d).count(tmp.substr(d.size() + 1)), 1u);
  ASSERT_EQ(tsd__save_pth(s.m.get(), &f), TSD_OK);
  ASSERT_EQ(tsd__afile_commit(&f), TSD_OK) << tsd_last_error();
  EXPECT_EQ(log.calls, (std::vector<std::string>{tmp, ""}));
  EXPECT_EQ(dir_names(d), (std::set<std::string>{std::string(250, 'x') + ".pth"}));
  // a failure removes it
  log.calls.clear();
  tsd_model *m = failing_model();
  ASSERT_EQ(tsd__afile_open_ex(&f, nullptr, p.c_str(), TempLog::cb, &log, true),
            TSD_OK);
  EXPECT_EQ(tsd__save_pth(m, &f), TSD_ERR_IO);
  tsd__afile_abort(&f);
  ASSERT_EQ(log.calls.size(), 2u);
  EXPECT_EQ(log.calls[1], "");
  EXPECT_EQ(dir_names(d), (std::set<std::string>{std::string(250, 'x') + ".pth"}));
  tsd_model_free(m);
}

} // namespace
