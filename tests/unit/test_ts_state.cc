// test_ts_state.cc — the command on TorchScript archives whose code would
// have side effects: tsd inspect and tsd diff run nothing (through sh and
// popen: POSIX). The reader itself (torchscript_state.c) is checked on every
// OS by test_ts_state_portable.cc.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "tsd.h"
#include "test_tmp.h"

namespace {

const std::string kFixtures = TSD_FIXTURES;
const char *const kMark = "/tmp/tsd-torchscript-setstate-ran";

std::string fixture(const std::string &name) {
  return kFixtures + "/" + name;
}

struct Out {
  int rc = -1;
  std::string out, err;
};

// Runs the tsd command; stdout and stderr apart.
Out tsd(const std::string &args) {
  static int n = 0;
  std::string errf = tsdtest::temp_dir() + "/ts_state_err_" +
                     std::to_string(getpid()) + "_" + std::to_string(n++);
  std::string cmd = std::string(TSD_CLI) + " " + args + " 2>'" + errf + "'";
  Out r;
  FILE *p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, p)) > 0)
    r.out.append(buf, k);
  int st = pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream f(errf);
  std::stringstream ss;
  ss << f.rdbuf();
  r.err = ss.str();
  remove(errf.c_str());
  return r;
}

bool exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

} // namespace

// The case: tsd inspect and tsd diff of an archive whose code
// creates a file when it runs create nothing; torch.jit.load (in the
// fixture script) and tsd load (LibTorch build) do create it.
TEST(TsState, InspectAndDiffRunNothing) {
  remove(kMark);
  Out r = tsd("inspect " + fixture("ts_evil_attr.pt"));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("fc.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fc.bias"), std::string::npos) << r.out;
  r = tsd("diff " + fixture("ts_evil_attr.pt") + " " + fixture("ts_evil.pth"));
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("2 matched, 0 missing, 0 unexpected"), std::string::npos)
      << r.out;
  r = tsd("diff --json " + fixture("ts_evil_attr.pt") + " " +
          fixture("ts_evil.pth"));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("\"message\": \"<All keys matched successfully>\""),
            std::string::npos)
      << r.out;
  for (const char *cmd : {"inspect ", "diff "}) {
    std::string args = cmd + fixture("ts_evil_module.pt");
    if (cmd[0] == 'd') args += " " + fixture("ts_evil.pth");
    r = tsd(args);
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.out;
    EXPECT_NE(r.err.find("__getstate__/__setstate__"), std::string::npos)
        << r.err;
  }
  EXPECT_FALSE(exists(kMark)) << "tsd ran the archive's code";
  if (tsd_has_torch()) {
    // The control: LibTorch runs the payload, so the check above can fail.
    r = tsd("load --non-strict " + fixture("ts_evil_attr.pt") + " " +
            fixture("ts_evil.pth"));
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_TRUE(exists(kMark));
    remove(kMark);
  }
}
