// test_malformed.cc — the malformed-input corpus (tests/malformed/, written
// by make_corpus.py from real checkpoints) and the tsd_limits bounds.
//
// Every corpus case is opened from memory and from its path; if it opens,
// every entry is read and it is loaded (strict, non-strict, auto-pop) into a
// fixed small model (tests/fuzz/fuzz_common.h, the same as fuzz_load). Each
// case must give the status manifest.tsv documents, with a message, and leave
// the model's bytes unchanged. In a build without sanitizers each case is run
// again in a child process under RLIMIT_AS, and its peak RSS growth must be
// in proportion to the file, not to what a header claims.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <malloc.h>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "../fuzz/fuzz_common.h"
#include "tsd.h"

#include "test_sanitized.h"

namespace {

const std::string kDir = std::string(TSD_FIXTURES) + "/../malformed";

std::vector<uint8_t> slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

struct Case {
  std::string name, path, expect, substring;
};

void PrintTo(const Case &c, std::ostream *os) {
  *os << c.name;
}

std::vector<Case> manifest() {
  std::vector<Case> out;
  std::ifstream f(kDir + "/manifest.tsv");
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    Case c;
    std::istringstream in(line);
    std::getline(in, c.name, '\t');
    std::getline(in, c.expect, '\t');
    std::getline(in, c.substring);
    c.path = kDir + "/cases/" + c.name + ".bin";
    out.push_back(c);
  }
  return out;
}

// Crash files found by fuzzing (scripts/fuzz.sh copies them here): any
// outcome but a crash, as for the random bit flips.
std::vector<Case> regressions() {
  std::vector<Case> out;
  std::string dir = kDir + "/regressions";
  DIR *d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent *e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    Case c;
    c.name = e->d_name;
    c.path = dir + "/" + c.name;
    c.expect = "any";
    out.push_back(c);
  }
  closedir(d);
  return out;
}

// What one case did: statuses of each step, first message.
struct Outcome {
  int open_mem = 0, open_path = 0;
  int read = 0;       // first failing tsd_checkpoint_read, or 0
  int load[3] = {};   // strict, non-strict, auto-pop (0 if not opened)
  int empty_msgs = 0; // failing calls whose message was empty
  int changed = 0;    // failed loads that changed the model's bytes
  int model_init = 0;
  char msg[600] = {}; // message of the first failure
};

void note(Outcome &o, const char *m) {
  if (!m || !m[0]) {
    o.empty_msgs++;
    return;
  }
  if (!o.msg[0]) snprintf(o.msg, sizeof o.msg, "%s", m);
}

Outcome run_case(const std::vector<uint8_t> &bytes, const std::string &path) {
  Outcome o;
  tsd_checkpoint *c = nullptr, *cp = nullptr;
  o.open_mem =
      tsd_checkpoint_open_memory(&c, bytes.data(), bytes.size(), nullptr);
  if (o.open_mem != TSD_OK) note(o, tsd_last_error());
  o.open_path = tsd_checkpoint_open(&cp, path.c_str(), nullptr);
  if (o.open_path != TSD_OK && !tsd_last_error()[0]) o.empty_msgs++;
  tsd_checkpoint_free(cp);
  if (!c) return o;

  for (size_t i = 0; i < tsd_checkpoint_count(c); i++) {
    tsd_entry e;
    if (tsd_checkpoint_entry(&e, c, i) != TSD_OK || e.kind != TSD_KIND_TENSOR)
      continue;
    if (e.numel < 0 || e.numel > (16 << 20)) continue;
    std::vector<uint8_t> buf(static_cast<size_t>(e.numel) * 8 + 1);
    tsd_status st =
        tsd_checkpoint_read(buf.data(), buf.size(), c, i, TSD_FLOAT32);
    if (st != TSD_OK && !o.read) {
      o.read = st;
      note(o, tsd_last_error());
    }
  }

  tsdf_net net;
  o.model_init = tsdf_net_init(&net);
  if (o.model_init != TSD_OK) {
    tsd_checkpoint_free(c);
    return o;
  }
  static const int modes[3][2] = {{1, 0}, {0, 0}, {0, 1}};
  for (int k = 0; k < 3; k++) {
    tsdf_net_data before = net.data;
    tsd_load_options opt = TSD_LOAD_OPTIONS_INIT;
    opt.strict = modes[k][0];
    opt.auto_pop = modes[k][1];
    tsd_report *r = nullptr;
    tsd_status st = tsd_load(&r, net.model, c, &opt);
    o.load[k] = st;
    if (st == TSD_ERR_LOAD)
      note(o, r ? tsd_report_message(r) : "");
    else if (st != TSD_OK)
      note(o, tsd_last_error());
    if (st != TSD_OK && memcmp(&before, &net.data, sizeof before) != 0)
      o.changed++;
    tsd_report_free(r);
    net.data = before;
  }
  tsdf_net_free(&net);
  tsd_checkpoint_free(c);
  return o;
}

long status_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  size_t n = strlen(field);
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, field, n) && line[n] == ':') v = atol(line + n + 1);
  fclose(f);
  return v;
}

struct ChildResult {
  Outcome o;
  long hwm_growth_kb;
};

// Runs the case in a child process with RLIMIT_AS = current size + 256 MiB +
// 64 x file size, its peak RSS reset first (clear_refs 5). Returns false if
// the child did not report (crashed, or killed).
bool run_in_child(const std::vector<uint8_t> &bytes, const std::string &path,
                  ChildResult *res, std::string *why) {
  int fds[2];
  if (pipe(fds) != 0) {
    *why = "pipe failed";
    return false;
  }
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    ChildResult r;
    long vm = status_kb("VmSize");
    rlimit lim;
    lim.rlim_cur = lim.rlim_max =
        static_cast<rlim_t>(vm) * 1024 + (256ull << 20) + 64ull * bytes.size();
    setrlimit(RLIMIT_AS, &lim);
    malloc_trim(0); // freed heap pages would hide the case's growth
    FILE *cr = fopen("/proc/self/clear_refs", "w");
    if (cr) {
      fputs("5", cr);
      fclose(cr);
    }
    long base = status_kb("VmHWM");
    r.o = run_case(bytes, path);
    r.hwm_growth_kb = status_kb("VmHWM") - base;
    ssize_t w = write(fds[1], &r, sizeof r);
    _exit(w == static_cast<ssize_t>(sizeof r) ? 0 : 3);
  }
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    *why = "fork failed";
    return false;
  }
  size_t got = 0;
  while (got < sizeof *res) {
    ssize_t n =
        read(fds[0], reinterpret_cast<char *>(res) + got, sizeof *res - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fds[0]);
  int ws = 0;
  waitpid(pid, &ws, 0);
  if (got != sizeof *res || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
    *why = WIFSIGNALED(ws)
               ? "child killed by signal " + std::to_string(WTERMSIG(ws))
               : "child exited with " + std::to_string(WEXITSTATUS(ws));
    return false;
  }
  return true;
}

bool malformed_status(int st) {
  return st == TSD_ERR_FORMAT || st == TSD_ERR_REFUSED ||
         st == TSD_ERR_UNSUPPORTED || st == TSD_ERR_LIMIT || st == TSD_ERR_TYPE;
}

const char *name_of(int st) {
  return tsd_status_name(static_cast<tsd_status>(st));
}

void check_case(const Case &c) {
  SCOPED_TRACE(c.name + " (" + c.expect + ")");
  std::vector<uint8_t> bytes = slurp(c.path);
  std::ifstream probe(c.path, std::ios::binary);
  ASSERT_TRUE(probe.good()) << "missing corpus file " << c.path;
  Outcome o = run_case(bytes, c.path);
  ASSERT_EQ(o.model_init, TSD_OK) << "cannot build the model";

  EXPECT_EQ(o.open_mem, o.open_path)
      << "opening from memory and from the path disagree";
  EXPECT_EQ(o.empty_msgs, 0) << "a failing call left no message";
  EXPECT_EQ(o.changed, 0) << "a failed load changed the model's bytes";

  std::string got_open = name_of(o.open_mem), msg = o.msg;
  if (c.expect == "ok") {
    EXPECT_EQ(o.open_mem, TSD_OK) << msg;
    EXPECT_EQ(o.read, TSD_OK) << msg;
    EXPECT_EQ(o.load[0], TSD_OK) << msg;
  } else if (c.expect == "any") {
    if (o.open_mem != TSD_OK)
      EXPECT_TRUE(malformed_status(o.open_mem)) << got_open << ": " << msg;
    if (o.read != TSD_OK)
      EXPECT_TRUE(malformed_status(o.read) || o.read == TSD_ERR_IO)
          << name_of(o.read) << ": " << msg;
    for (int st : o.load)
      if (st != TSD_OK && st != TSD_ERR_LOAD)
        EXPECT_TRUE(malformed_status(st)) << name_of(st) << ": " << msg;
  } else if (c.expect.compare(0, 5, "open:") == 0) {
    std::string want = c.expect.substr(5);
    EXPECT_EQ(got_open, want) << "message: " << msg;
    if (o.open_mem != TSD_OK)
      EXPECT_NE(msg.find(c.substring), std::string::npos)
          << "message lacks \"" << c.substring << "\": " << msg;
  } else if (c.expect.compare(0, 5, "load:") == 0) {
    std::string want = c.expect.substr(5);
    ASSERT_EQ(o.open_mem, TSD_OK) << "expected to open: " << msg;
    EXPECT_EQ(std::string(name_of(o.load[0])), want) << "message: " << msg;
    if (o.load[0] != TSD_OK)
      EXPECT_NE(msg.find(c.substring), std::string::npos)
          << "message lacks \"" << c.substring << "\": " << msg;
  } else {
    ADD_FAILURE() << "bad expect field in manifest.tsv: " << c.expect;
  }

  if (TSD_TEST_SANITIZED) return; // RLIMIT_AS and RSS mean nothing there
  ChildResult r;
  std::string why;
  ASSERT_TRUE(run_in_child(bytes, c.path, &r, &why))
      << "under RLIMIT_AS (256 MiB + 64 x file size): " << why;
  EXPECT_EQ(r.o.open_mem, o.open_mem)
      << "under RLIMIT_AS the open gives " << name_of(r.o.open_mem) << ": "
      << r.o.msg;
  for (int k = 0; k < 3; k++)
    EXPECT_EQ(r.o.load[k], o.load[k]);
  // The bound tsd.h states for an open: 24 bytes per input byte + 2 MiB
  // (test_parse_memory measures it exactly); RSS adds the process's own
  // noise and the small tensors read and loaded: a fixed 16 MiB.
  ::testing::Test::RecordProperty("peak_rss_growth_kb",
                                  std::to_string(r.hwm_growth_kb));
  long budget_kb = 16 * 1024 + static_cast<long>(bytes.size() * 24 / 1024);
  EXPECT_LE(r.hwm_growth_kb, budget_kb)
      << "peak RSS grew by " << r.hwm_growth_kb << " KiB for a file of "
      << bytes.size() << " bytes";
}

class Corpus : public ::testing::TestWithParam<Case> {};

TEST_P(Corpus, GivesTheDocumentedStatusAndLeavesTheModelUnchanged) {
  check_case(GetParam());
}

std::string case_name(const ::testing::TestParamInfo<Case> &info) {
  std::string s = info.param.name;
  for (char &ch : s)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Malformed, Corpus, ::testing::ValuesIn(manifest()),
                         case_name);

TEST(MalformedCorpus, ManifestIsPresentAndCoversEveryFile) {
  auto cases = manifest();
  ASSERT_GE(cases.size(), 200u) << "tests/malformed/manifest.tsv missing? "
                                   "Run make_corpus.py";
  size_t files = 0;
  DIR *d = opendir((kDir + "/cases").c_str());
  ASSERT_NE(d, nullptr);
  while (dirent *e = readdir(d))
    if (strstr(e->d_name, ".bin")) files++;
  closedir(d);
  EXPECT_EQ(files, cases.size());
}

TEST(MalformedCorpus, FuzzRegressionsAreHandled) {
  for (const Case &c : regressions())
    check_case(c);
}

// ---- limits
// ------------------------------------------------------------------

std::vector<uint8_t> zip_of(const std::string &pickle) {
  size_t n = 0;
  uint8_t *z = tsdf_zip_pickle(reinterpret_cast<const uint8_t *>(pickle.data()),
                               pickle.size(), &n);
  std::vector<uint8_t> out(z, z + n);
  free(z);
  return out;
}

// {'a': [[[...]]]}: a valid pickle whose value nests `depth` lists.
std::string nested_dict(size_t depth) {
  std::string p = "\x80\x02}\x8c\x01"
                  "a";
  p += std::string(depth, ']');
  p += std::string(depth - 1, 'a');
  p += "s.";
  return p;
}

tsd_status open_with(const std::vector<uint8_t> &bytes, tsd_limits lim,
                     std::string *msg = nullptr) {
  tsd_open_options o = TSD_OPEN_OPTIONS_INIT;
  o.limits = lim;
  tsd_checkpoint *c = nullptr;
  tsd_status st =
      tsd_checkpoint_open_memory(&c, bytes.data(), bytes.size(), &o);
  if (msg) *msg = tsd_last_error();
  if (st == TSD_OK)
    EXPECT_NE(c, nullptr);
  else
    EXPECT_EQ(c, nullptr);
  tsd_checkpoint_free(c);
  return st;
}

TEST(Limits, SmallMaxDepthRefusesADeepButValidPickle) {
  auto z = zip_of(nested_dict(50));
  std::string msg;
  EXPECT_EQ(open_with(z, {0, 0, 0}), TSD_OK) << tsd_last_error();
  EXPECT_EQ(open_with(z, {60, 0, 0}), TSD_OK) << tsd_last_error();
  EXPECT_EQ(open_with(z, {10, 0, 0}, &msg), TSD_ERR_LIMIT);
  EXPECT_NE(msg.find("max_depth"), std::string::npos) << msg;
}

TEST(Limits, DefaultMaxDepthIsAThousand) {
  EXPECT_EQ(open_with(zip_of(nested_dict(990)), {0, 0, 0}), TSD_OK)
      << tsd_last_error();
  EXPECT_EQ(open_with(zip_of(nested_dict(1100)), {0, 0, 0}), TSD_ERR_LIMIT);
  EXPECT_EQ(open_with(zip_of(nested_dict(1100)), {2000, 0, 0}), TSD_OK)
      << tsd_last_error();
}

TEST(Limits, MillionLevelNestingIsRefusedWithoutRecursion) {
  const size_t n = 1000000;
  std::string msg;
  // FRAME opcodes of length 0, which build nothing, pad the nesting cases to
  // a size whose parse budget (16 bytes per byte) pays for a list per 2
  // bytes, so that what refuses them is the depth limit
  std::string pad;
  while (pad.size() < 4 * n)
    pad += std::string("\x95\0\0\0\0\0\0\0\0", 9);
  // EMPTY_LIST x n, APPEND x (n - 1)
  std::string p =
      "\x80\x02" + pad + std::string(n, ']') + std::string(n - 1, 'a');
  EXPECT_EQ(open_with(zip_of(p + "."), {0, 0, 0}, &msg), TSD_ERR_LIMIT);
  EXPECT_NE(msg.find("max_depth"), std::string::npos) << msg;
  // MARK x n, TUPLE x n
  p = "\x80\x02" + std::string(n, '(') + std::string(n, 't') + ".";
  EXPECT_EQ(open_with(zip_of(p), {0, 0, 0}), TSD_ERR_LIMIT);
  // MARK x n, then STOP with them open: malformed, not a crash
  p = "\x80\x02" + std::string(n, '(') + "N.";
  EXPECT_EQ(open_with(zip_of(p), {0, 0, 0}), TSD_ERR_FORMAT);
  // the same nesting, allowed deeper by the caller, must not recurse either
  p = "\x80\x02" + pad + std::string(n, ']') + std::string(n - 1, 'a') + ".";
  EXPECT_EQ(open_with(zip_of(p), {2000000, 0, 0}), TSD_OK) << tsd_last_error();
}

TEST(Limits, MaxObjectsRefusesACheckpointWithMoreValues) {
  auto z = slurp(kDir + "/cases/ok_zip_p2.bin");
  auto l = slurp(kDir + "/cases/ok_legacy.bin");
  ASSERT_FALSE(z.empty());
  std::string msg;
  EXPECT_EQ(open_with(z, {0, 0, 0}), TSD_OK) << tsd_last_error();
  EXPECT_EQ(open_with(z, {0, 10, 0}, &msg), TSD_ERR_LIMIT);
  EXPECT_NE(msg.find("max_objects"), std::string::npos) << msg;
  EXPECT_EQ(open_with(l, {0, 10, 0}), TSD_ERR_LIMIT);
  EXPECT_EQ(open_with(z, {0, 100000, 0}), TSD_OK) << tsd_last_error();
}

TEST(Limits, MaxPickleBytesRefusesALargerPickle) {
  auto z = slurp(kDir + "/cases/ok_zip_p2.bin");
  auto l = slurp(kDir + "/cases/ok_legacy.bin");
  std::string msg;
  EXPECT_EQ(open_with(z, {0, 0, 64}, &msg), TSD_ERR_LIMIT);
  EXPECT_NE(msg.find("max_pickle_bytes"), std::string::npos) << msg;
  EXPECT_EQ(open_with(l, {0, 0, 64}, &msg), TSD_ERR_LIMIT);
  EXPECT_NE(msg.find("max_pickle_bytes"), std::string::npos) << msg;
  EXPECT_EQ(open_with(z, {0, 0, 1 << 20}), TSD_OK) << tsd_last_error();
  EXPECT_EQ(open_with(l, {0, 0, 1 << 20}), TSD_OK) << tsd_last_error();
}

TEST(Limits, AWrongOptionsVersionIsRejected) {
  auto z = slurp(kDir + "/cases/ok_zip_p2.bin");
  tsd_open_options o = TSD_OPEN_OPTIONS_INIT;
  o.version = 99;
  tsd_checkpoint *c = nullptr;
  EXPECT_EQ(tsd_checkpoint_open_memory(&c, z.data(), z.size(), &o),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(c, nullptr);
}

TEST(Limits, AValidCheckpointLoadsIntoTheFixedModel) {
  // The harness itself: a real checkpoint of Net loads and sets every byte.
  auto z = slurp(kDir + "/cases/ok_zip_p2.bin");
  tsd_checkpoint *c = nullptr;
  ASSERT_EQ(tsd_checkpoint_open_memory(&c, z.data(), z.size(), nullptr), TSD_OK)
      << tsd_last_error();
  tsdf_net net;
  ASSERT_EQ(tsdf_net_init(&net), TSD_OK) << tsd_last_error();
  tsdf_net_data before = net.data;
  tsd_report *r = nullptr;
  EXPECT_EQ(tsd_load(&r, net.model, c, nullptr), TSD_OK) << tsd_last_error();
  EXPECT_STREQ(tsd_report_message(r), "<All keys matched successfully>");
  EXPECT_EQ(net.data.bn_num_batches_tracked, 7);
  EXPECT_NE(memcmp(&before, &net.data, sizeof before), 0);
  for (float v : net.data.bn_running_var)
    EXPECT_GE(v, 0.5f);
  tsd_report_free(r);
  tsdf_net_free(&net);
  tsd_checkpoint_free(c);
}

} // namespace
