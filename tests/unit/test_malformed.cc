// test_malformed.cc — the malformed-input corpus (tests/malformed/) under a
// memory bound, POSIX-only: each case (malformed_helpers.h's run_case) runs
// again in a child process under RLIMIT_AS, must give the same outcome there
// as in-process, and its peak RSS growth must be in proportion to the file,
// not to what a header claims. Skipped in sanitizer builds (RLIMIT_AS and RSS
// mean nothing there). The documented status and message of every case, and
// the tsd_limits bounds, are checked in-process on every OS (Windows too) by
// test_malformed_portable.cc.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <malloc.h>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "malformed_helpers.h"
#include "test_sanitized.h"

namespace {

using namespace tsdtest_malformed;

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

void check_bounded(const Case &c) {
  SCOPED_TRACE(c.name + " (" + c.expect + ")");
  if (TSD_TEST_SANITIZED)
    GTEST_SKIP() << "RLIMIT_AS and RSS mean nothing under sanitizers";
  std::vector<uint8_t> bytes = slurp_bytes(c.path);
  std::ifstream probe(c.path, std::ios::binary);
  ASSERT_TRUE(probe.good()) << "missing corpus file " << c.path;
  Outcome o = run_case(bytes, c.path); // in-process, to compare with
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

class CorpusBounded : public ::testing::TestWithParam<Case> {};

TEST_P(CorpusBounded, GivesTheSameOutcomeUnderRlimitAsInBoundedRss) {
  check_bounded(GetParam());
}

std::string case_name(const ::testing::TestParamInfo<Case> &info) {
  std::string s = info.param.name;
  for (char &ch : s)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Malformed, CorpusBounded,
                         ::testing::ValuesIn(manifest()), case_name);

TEST(MalformedCorpusBounded, FuzzRegressionsStayInBoundedMemory) {
  for (const Case &c : regressions()) {
    check_bounded(c);
    if (IsSkipped()) return;
  }
}

} // namespace
