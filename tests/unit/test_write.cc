// test_write.cc — what every writer guarantees (afile.c, write.c): outputs
// written whole or not at all (disk full on a small tmpfs, a failing model,
// signals), kept modes, short temporary names, non-regular outputs refused,
// symlink OUT replaced, the CLI's same-file guard by device and inode and
// `-o -`; tensors streamed in windows (tsd__tensor_read_range against whole
// reads; peak memory of `tsd convert`/`pop` in a child process) and the
// output bound (tsd_limits.max_output_ratio) with its CLI option.
// Checkpoints with views and expanded tensors come from Debian's torch
// (/usr/bin/python3), which also checks the written values.
// The tests that need only the library (windows of a tensor, the output
// bound, the longest name, failed writes, the named fallback) are in
// test_write_portable.cc, built for Windows too.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "internal.h"
#include "test_helpers.h"
#include "test_sanitized.h"
#include "tsd.h"

namespace {

using tsdtest::Model;

std::string fresh_dir(const std::string &name) {
  std::string d =
      tsdtest::temp_dir() + "/write_" + std::to_string(getpid()) + "_" + name;
  std::string cmd = "rm -rf '" + d + "'";
  EXPECT_EQ(system(cmd.c_str()), 0);
  EXPECT_EQ(mkdir(d.c_str(), 0777), 0) << d;
  return d;
}

std::set<std::string> ls(const std::string &dir) {
  std::set<std::string> out;
  if (DIR *d = opendir(dir.c_str())) {
    while (struct dirent *e = readdir(d))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
        out.insert(e->d_name);
    closedir(d);
  }
  return out;
}

std::string slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void spit(const std::string &path, const std::string &s) {
  std::ofstream f(path, std::ios::binary);
  f << s;
}

// A small model with two tensors.
struct Small {
  Model m{"M"};
  Small() {
    m.add("a.w", {3, 4}, TSD_PARAMETER, TSD_FLOAT32, 1.5);
    m.add("b", {5}, TSD_BUFFER, TSD_INT64, 7);
  }
};

// The CLI in a child: stdout to `out_path` (or /dev/null), stderr kept.
struct CliRun {
  int rc = -1, sig = 0;
  long maxrss_kb = 0;
  double seconds = 0;
  std::string err;
};

CliRun run_cli(const std::vector<std::string> &args,
               const std::string &out_path = "/dev/null",
               double kill_after = -1, int kill_sig = SIGINT) {
  CliRun r;
  std::string errf =
      tsdtest::temp_dir() + "/write_err_" + std::to_string(getpid());
  fflush(nullptr);
  timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    int e = open(errf.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (o < 0 || e < 0) _exit(126);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char *> av;
    av.push_back(const_cast<char *>(TSD_CLI));
    for (auto &a : args)
      av.push_back(const_cast<char *>(a.c_str()));
    av.push_back(nullptr);
    execv(TSD_CLI, av.data());
    _exit(127);
  }
  if (kill_after >= 0) {
    usleep(static_cast<useconds_t>(kill_after * 1e6));
    kill(pid, kill_sig);
  }
  int ws = 0;
  rusage ru;
  memset(&ru, 0, sizeof ru);
  wait4(pid, &ws, 0, &ru);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  r.seconds = double(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  r.rc = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
  r.sig = WIFSIGNALED(ws) ? WTERMSIG(ws) : 0;
  r.maxrss_kb = ru.ru_maxrss;
  r.err = slurp(errf);
  unlink(errf.c_str());
  return r;
}

// The CLI's own peak RSS on a tiny conversion (the LibTorch build's binary
// maps ~160 MB of LibTorch): peaks are compared above it.
long cli_baseline_kb() {
  static long kb = -1;
  if (kb < 0) {
    std::string out = tsdtest::temp_dir() + "/write_baseline_" +
                      std::to_string(getpid()) + ".pth";
    kb = run_cli({"convert", std::string(TSD_FIXTURES) + "/metadata.pth", out})
             .maxrss_kb;
    unlink(out.c_str());
  }
  return kb;
}

void need_python() {
  static std::string why;
  static int ok = -1; // importing torch takes seconds: once per process
  if (ok < 0) ok = tsdtest::python_torch_available(&why);
  ASSERT_TRUE(ok) << why;
}

void python(const std::string &script) {
  auto r = tsdtest::run_python(script);
  ASSERT_EQ(r.first, 0) << r.second;
}

// ---- streaming: values, peak memory, the bound from the CLI -------------

class WriteStream : public ::testing::Test {
protected:
  static std::string dir;
  static void SetUpTestSuite() {
    dir = fresh_dir("stream");
    auto r = tsdtest::run_python(
        "import torch\n"
        "d = '" +
        dir +
        "'\n"
        "g = torch.Generator().manual_seed(0)\n"
        "big = torch.randn(1500, 1100, generator=g)\n"
        "sd = {'t': big.t(), 'slice': big[3:1400:2, 5:900],\n"
        "      'exp': torch.randn(1, 700, generator=g).expand(3000, 700),\n"
        "      'half': big.half()[::3], 'bf': big.bfloat16().t()[7],\n"
        "      'i64': torch.arange(10**6).view(1000, 1000).t(),\n"
        "      'scalar': torch.tensor(3.5), 'empty': torch.zeros(0, 5),\n"
        "      'bool': big > 0, 'u8': torch.arange(256, dtype=torch.uint8)}\n"
        "torch.save(sd, d + '/views.pth')\n"
        // the cases, a quarter of their size: 256 MiB out
        "torch.save({'e%d' % i: torch.zeros(1).expand(2**23) for i in "
        "range(8)}, d + '/exp8.pth')\n"
        "s = torch.zeros(2**18)\n"
        "torch.save({'v%d' % i: s[:] for i in range(256)}, d + "
        "'/views256.pth')\n"
        "torch.save({'w': torch.zeros(1).expand(2**26)}, d + '/exp28.pth')\n");
    EXPECT_EQ(r.first, 0) << r.second;
  }
};
std::string WriteStream::dir;

TEST_F(WriteStream, ConvertedViewsHoldTorchsValues) {
  need_python();
  for (const char *out : {"o.pth", "o.safetensors"}) {
    CliRun r = run_cli({"convert", dir + "/views.pth", dir + "/" + out});
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  CliRun r = run_cli({"pop", dir + "/views.pth", "t", "-o", dir + "/p.pth"});
  ASSERT_EQ(r.rc, 0) << r.err;
  // every value as torch.load gives it (the .safetensors read back by tsd:
  // the Python safetensors package is not installed here)
  python("import torch\n"
         "d = '" +
         dir +
         "'\n"
         "a = torch.load(d + '/views.pth')\n"
         "for name, drop in (('o.pth', None), ('p.pth', 't')):\n"
         "  b = torch.load(d + '/' + name)\n"
         "  keys = [k for k in a if k != drop]\n"
         "  assert list(b) == keys, (name, list(b))\n"
         "  for k in keys:\n"
         "    assert b[k].dtype == a[k].dtype and torch.equal(b[k], a[k]), k\n"
         "    assert b[k].is_contiguous(), k\n");
  tsd_checkpoint *a = nullptr, *b = nullptr;
  ASSERT_EQ(tsd_checkpoint_open(&a, (dir + "/views.pth").c_str(), nullptr),
            TSD_OK);
  ASSERT_EQ(tsd_checkpoint_open(&b, (dir + "/o.safetensors").c_str(), nullptr),
            TSD_OK)
      << tsd_last_error();
  ASSERT_EQ(tsd_checkpoint_count(b), tsd_checkpoint_count(a));
  for (size_t i = 0; i < tsd_checkpoint_count(a); i++) {
    tsd_entry ea, eb;
    ASSERT_EQ(tsd_checkpoint_entry(&ea, a, i), TSD_OK);
    size_t j;
    ASSERT_EQ(tsd_checkpoint_find(&j, b, ea.key), TSD_OK) << ea.key;
    ASSERT_EQ(tsd_checkpoint_entry(&eb, b, j), TSD_OK);
    ASSERT_EQ(ea.dtype, eb.dtype);
    size_t n = size_t(ea.numel) * tsd_dtype_size(ea.dtype);
    std::vector<uint8_t> x(n + 1), y(n + 1);
    ASSERT_EQ(tsd_checkpoint_read(x.data(), n, a, i, ea.dtype), TSD_OK);
    ASSERT_EQ(tsd_checkpoint_read(y.data(), n, b, j, eb.dtype), TSD_OK);
    EXPECT_TRUE(x == y) << ea.key;
  }
  tsd_checkpoint_free(a);
  tsd_checkpoint_free(b);
}

TEST_F(WriteStream, AmplifiedFilesAreRefusedByDefaultAtOnce) {
  need_python();
  for (auto args : std::vector<std::vector<std::string>>{
           {"convert", dir + "/exp8.pth", dir + "/x.pth"},
           {"pop", dir + "/views256.pth", "v0", "-o", dir + "/x.pth"},
           {"load", "--model-spec", dir + "/exp28.pth", "--class-name", "M",
            dir + "/exp28.pth"}}) {
    CliRun r = run_cli(args);
    EXPECT_EQ(r.rc, 2) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find("more than max_output_ratio 16 x the input's"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("(TSD_ERR_LIMIT)\ntsd " + args[0] +
                         ": hint: --max-output-ratio N"),
              std::string::npos)
        << r.err;
    if (!TSD_TEST_SANITIZED) // RSS means something else there
      EXPECT_LT(r.maxrss_kb - cli_baseline_kb(), 16 << 10) << args[0];
    EXPECT_EQ(ls(dir).count("x.pth"), 0u);
  }
  // --model-spec names the key of a 2**28-byte model from a 741-byte file
  CliRun r = run_cli({"load", "--model-spec", dir + "/exp28.pth",
                      "--class-name", "M", dir + "/exp28.pth"});
  EXPECT_NE(r.err.find("tsd load: --model-spec: " + dir +
                       "/exp28.pth: 'w' brings the tensors to 268435456 "
                       "bytes"),
            std::string::npos)
      << r.err;
  r = run_cli({"convert", "--max-output-ratio", "0", dir + "/exp8.pth",
               dir + "/x.pth"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--max-output-ratio takes a positive integer or "
                       "'inf': 0"),
            std::string::npos)
      << r.err;
}

TEST_F(WriteStream, RaisedBoundWritesInBoundedMemory) {
  need_python();
  struct Case {
    std::vector<std::string> args;
    const char *out;
  };
  for (const Case &c : std::vector<Case>{
           {{"convert", "--max-output-ratio", "inf", dir + "/exp8.pth",
             dir + "/big.pth"},
            "big.pth"},
           {{"pop", "--max-output-ratio=100000", dir + "/exp8.pth", "e7", "-o",
             dir + "/big.safetensors"},
            "big.safetensors"},
           {{"convert", "--max-output-ratio", "inf", dir + "/views256.pth",
             dir + "/big.pth"},
            "big.pth"}}) {
    CliRun r = run_cli(c.args);
    ASSERT_EQ(r.rc, 0) << r.err;
    // 224-256 MiB written; the process never holds a tensor (32 MiB or
    // 1 MiB x 256) whole: a window of 4 MiB, the zip/pickle buffers
    long growth = r.maxrss_kb - cli_baseline_kb();
    if (!TSD_TEST_SANITIZED) // RSS means something else there
      EXPECT_LT(growth, 16 << 10) << c.args[0] << " " << c.args.back();
    ::testing::Test::RecordProperty("peak_rss_growth_kb_" + c.args[0],
                                    std::to_string(growth));
    tsd_checkpoint *ck = nullptr;
    ASSERT_EQ(tsd_checkpoint_open(&ck, (dir + "/" + c.out).c_str(), nullptr),
              TSD_OK)
        << tsd_last_error();
    uint64_t bytes = 0;
    ck->max_output_ratio = UINT64_MAX;
    ASSERT_EQ(tsd_checkpoint_output_bytes(&bytes, ck), TSD_OK);
    EXPECT_TRUE(bytes == 256u << 20 || bytes == 224u << 20) << bytes;
    tsd_checkpoint_free(ck);
    unlink((dir + "/" + c.out).c_str());
  }
}

// ---- the output rules, both writers ----------------------------------

const char *const kFormats[] = {"out.pth", "out.safetensors"};

TEST(WriteRules, AnExistingOutputKeepsItsModeANewOneGetsTheUmasks) {
  std::string d = fresh_dir("mode");
  Small s;
  mode_t old_umask = umask(022);
  for (const char *name : kFormats) {
    std::string p = d + "/" + name;
    ASSERT_EQ(tsd_model_save(s.m.get(), p.c_str(), NULL), TSD_OK)
        << tsd_last_error();
    struct stat st;
    ASSERT_EQ(stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0644u) << name;
    ASSERT_EQ(chmod(p.c_str(), 0600), 0);
    ASSERT_EQ(tsd_model_save(s.m.get(), p.c_str(), NULL), TSD_OK);
    ASSERT_EQ(stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u) << name;
    ASSERT_EQ(chmod(p.c_str(), 0640), 0);
    ASSERT_EQ(tsd_model_save(s.m.get(), p.c_str(), NULL), TSD_OK);
    ASSERT_EQ(stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u) << name;
  }
  umask(old_umask);
  EXPECT_EQ(ls(d), (std::set<std::string>{"out.pth", "out.safetensors"}));
}

TEST(WriteRules, NonRegularOutputsAreRefusedAndKept) {
  std::string d = fresh_dir("nonreg");
  Small s;
  // (a directory: WriteRules.ADirectoryOutputIsRefusedAndKept in
  // test_write_portable.cc, every OS)
  std::string fifo = d + "/fifo.pth", dev = d + "/null.pth";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0666), 0);
  bool root = geteuid() == 0;
  if (root) ASSERT_EQ(mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  struct Case {
    std::string path;
    const char *kind;
    mode_t type;
  };
  std::vector<Case> cases = {{fifo, "a FIFO", S_IFIFO}};
  if (root) cases.push_back({dev, "a character device", S_IFCHR});
  for (const Case &c : cases)
    for (const char *ext : {"", ".safetensors"}) {
      std::string p = c.path + ext;
      if (*ext) ASSERT_EQ(rename(c.path.c_str(), p.c_str()), 0);
      time_t t0 = time(nullptr);
      EXPECT_EQ(tsd_model_save(s.m.get(), p.c_str(), NULL),
                TSD_ERR_INVALID_ARG);
      EXPECT_EQ(std::string(tsd_last_error()),
                p + ": is " + c.kind +
                    "; tsd writes regular files only and does not replace "
                    "anything else");
      EXPECT_LE(time(nullptr) - t0, 2);
      struct stat st;
      ASSERT_EQ(lstat(p.c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & S_IFMT, c.type) << p;
      if (*ext) ASSERT_EQ(rename(p.c_str(), c.path.c_str()), 0);
    }
  // The same through the CLI, /dev/null included: never replaced.
  std::string in = std::string(TSD_FIXTURES) + "/metadata.pth";
  std::vector<std::string> outs = {fifo, "/dev/null"};
  for (const std::string &o : outs) {
    CliRun r = run_cli({"convert", in, o});
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_NE(r.err.find("does not replace anything else"), std::string::npos)
        << r.err;
  }
  struct stat st;
  ASSERT_EQ(lstat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  std::set<std::string> want = {"fifo.pth"};
  if (root) want.insert("null.pth");
  EXPECT_EQ(ls(d), want);
}

TEST(WriteRules, ASymlinkOutputIsReplacedItsTargetKept) {
  std::string d = fresh_dir("symlink");
  Small s;
  for (const char *name : kFormats) {
    std::string target = d + "/target", link = d + "/" + name;
    spit(target, "the target's own bytes");
    ASSERT_EQ(symlink("target", link.c_str()), 0);
    ASSERT_EQ(tsd_model_save(s.m.get(), link.c_str(), NULL), TSD_OK)
        << tsd_last_error();
    struct stat st;
    ASSERT_EQ(lstat(link.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode)) << name;
    EXPECT_EQ(slurp(target), "the target's own bytes");
    tsd_checkpoint *c = nullptr;
    ASSERT_EQ(tsd_checkpoint_open(&c, link.c_str(), nullptr), TSD_OK);
    tsd_checkpoint_free(c);
  }
  EXPECT_EQ(ls(d),
            (std::set<std::string>{"target", "out.pth", "out.safetensors"}));
}

TEST(WriteRules, TheCliNeverWritesOverItsInput) {
  std::string d = fresh_dir("same");
  std::string in = d + "/in.pth";
  spit(in, slurp(std::string(TSD_FIXTURES) + "/metadata.pth"));
  std::string before = slurp(in);
  ASSERT_EQ(link(in.c_str(), (d + "/hard.pth").c_str()), 0);
  ASSERT_EQ(symlink("in.pth", (d + "/soft.pth").c_str()), 0);
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof cwd), nullptr);
  ASSERT_EQ(chdir(d.c_str()), 0);
  std::vector<std::string> outs = {
      "./in.pth", d + "/in.pth", "hard.pth", "soft.pth",
      d + "/../" + d.substr(d.rfind('/') + 1) + "/in.pth"};
  for (const std::string &o : outs) {
    for (auto args : std::vector<std::vector<std::string>>{
             {"convert", "in.pth", o},
             {"pop", "in.pth", "0.bias", "-o", o},
             {"load", "--model-spec", "in.pth", "--class-name", "M", "in.pth",
              "-o", o}}) {
      CliRun r = run_cli(args);
      EXPECT_EQ(r.rc, 2) << args[0] << " " << o << ": " << r.err;
      EXPECT_NE(r.err.find("is the input"), std::string::npos) << r.err;
    }
  }
  ASSERT_EQ(chdir(cwd), 0);
  EXPECT_EQ(slurp(in), before);
  struct stat st;
  ASSERT_EQ(lstat((d + "/soft.pth").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(ls(d), (std::set<std::string>{"in.pth", "hard.pth", "soft.pth"}));
}

TEST(WriteRules, DashIsStdoutAndWritesTheSameBytes) {
  std::string d = fresh_dir("stdout");
  std::string in = std::string(TSD_FIXTURES) + "/metadata.pth";
  // torch.save to a file object names the archive "archive", as "-" does
  CliRun a = run_cli({"convert", in, d + "/archive.pth"});
  ASSERT_EQ(a.rc, 0) << a.err;
  // through a pipe (not seekable: CRCs from a first pass) and a file
  std::string cmd = std::string(TSD_CLI) + " convert '" + in + "' - 2>'" + d +
                    "/err' | cat > '" + d + "/piped.pth'";
  ASSERT_EQ(system(cmd.c_str()), 0) << slurp(d + "/err");
  EXPECT_EQ(slurp(d + "/err"),
            "tsd convert: wrote stdout (7 tensors, torch.save .pth)\n");
  CliRun b = run_cli({"convert", in, "-"}, d + "/redirected.pth");
  ASSERT_EQ(b.rc, 0) << b.err;
  EXPECT_EQ(slurp(d + "/piped.pth"), slurp(d + "/archive.pth"));
  EXPECT_EQ(slurp(d + "/redirected.pth"), slurp(d + "/archive.pth"));
  CliRun c = run_cli({"pop", in, "0.bias", "-o", "-"}, d + "/popped.pth");
  ASSERT_EQ(c.rc, 0) << c.err;
  tsd_checkpoint *ck = nullptr;
  ASSERT_EQ(tsd_checkpoint_open(&ck, (d + "/popped.pth").c_str(), nullptr),
            TSD_OK)
      << tsd_last_error();
  EXPECT_EQ(tsd_checkpoint_count(ck), 6u);
  tsd_checkpoint_free(ck);
}

// ---- failures leave the old file and nothing else ---------------------
// (a failing model's write and the named fallback: test_write_portable.cc)

tsd_status fail_read(const tsd_model *, const tsd__mtensor *, tsd_dtype,
                     void *) {
  return tsd__err(TSD_ERR_IO, "simulated read failure");
}
void no_destroy(tsd_model *) {}

// A host that removes the named temporary in its signal handler (the rule
// tsd.h states; the CLI does this): killed mid-write, nothing is left.
char g_temp[4096];
volatile sig_atomic_t g_temp_set;
void host_handler(int sig) {
  if (g_temp_set) unlink(g_temp);
  signal(sig, SIG_DFL);
  raise(sig);
}
void host_temp(void *, const char *p) {
  g_temp_set = 0;
  if (p) {
    snprintf(g_temp, sizeof g_temp, "%s", p);
    g_temp_set = 1;
  }
}
tsd_status signal_range(const tsd_model *, const tsd__mtensor *, tsd_dtype,
                        uint64_t first, uint64_t, void *dst) {
  memset(dst, 0, TSD__WRITE_WINDOW);
  if (first > 0) raise(SIGTERM); // mid-file
  return TSD_OK;
}
const tsd__model_ops kSignal = {nullptr, fail_read, tsd__save_pth, no_destroy,
                                signal_range};

TEST(WriteFailure, ASignalMidWriteLeavesNoTemporary) {
  std::string d = fresh_dir("signal");
  std::string p = d + "/out.pth";
  for (bool named : {true, false}) {
    spit(p, "old contents");
    fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      signal(SIGTERM, host_handler);
      tsd_model *m = nullptr;
      tsd__model_create(&m, "Sig", &kSignal, nullptr, nullptr);
      int64_t shape[1] = {int64_t(4) << 20};
      tsd__model_add(m, "a", TSD_PARAMETER, TSD_FLOAT32, 1, shape, nullptr,
                     nullptr, nullptr);
      tsd__afile f;
      if (tsd__afile_open_ex(&f, nullptr, p.c_str(), host_temp, nullptr, named))
        _exit(3);
      tsd__save_pth(m, &f);
      _exit(4); // not reached: SIGTERM
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    ASSERT_TRUE(WIFSIGNALED(ws)) << ws;
    EXPECT_EQ(WTERMSIG(ws), SIGTERM);
    EXPECT_EQ(ls(d), (std::set<std::string>{"out.pth"})) << named;
    EXPECT_EQ(slurp(p), "old contents");
  }
}

TEST_F(WriteStream, TheCliInterruptedMidWriteLeavesNothing) {
  need_python();
  std::string d = fresh_dir("cli_signal");
  std::string in = dir + "/exp8.pth";
  for (int sig : {SIGINT, SIGTERM}) {
    spit(d + "/out.pth", "old contents");
    CliRun r =
        run_cli({"convert", "--max-output-ratio", "inf", in, d + "/out.pth"},
                "/dev/null", 0.5, sig);
    EXPECT_EQ(r.sig, sig) << "finished before the signal? " << r.seconds
                          << " s, " << r.err;
    EXPECT_EQ(ls(d), (std::set<std::string>{"out.pth"}));
    EXPECT_EQ(slurp(d + "/out.pth"), "old contents");
  }
}

// ---- a full disk (a 2 MiB tmpfs; mounting needs root, as in CI) --------


TEST_F(WriteStream, AFullDiskIsAnIoErrorAndTheOldFileStays) {
  if (geteuid() != 0)
    GTEST_SKIP() << "mounting a tmpfs needs root (CI runs as root)";
  std::string d = fresh_dir("full");
  tsdtest::SmallTmpfs fs(d, "2m");
  ASSERT_TRUE(fs.mounted) << strerror(errno);
  Model big("Big");
  big.add("w", {int64_t(1) << 20}); // 4 MiB
  std::string old(100000, 'o');
  for (const char *name : kFormats) {
    std::string p = d + "/" + name;
    spit(p, old);
    EXPECT_EQ(tsd_model_save(big.get(), p.c_str(), NULL), TSD_ERR_IO);
    EXPECT_NE(std::string(tsd_last_error())
                  .find(p + ": write failed at "
                            "offset "),
              std::string::npos)
        << tsd_last_error();
    EXPECT_NE(std::string(tsd_last_error()).find("No space left on device"),
              std::string::npos)
        << tsd_last_error();
    EXPECT_EQ(slurp(p), old);
  }
  EXPECT_EQ(ls(d), (std::set<std::string>{"out.pth", "out.safetensors"}));
  // a streamed write from the CLI (tensors of 6.6 MB from a 2 MiB disk)
  need_python();
  for (const char *name : kFormats) {
    CliRun r = run_cli({"convert", dir + "/views.pth", d + "/" + name});
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_NE(r.err.find("No space left on device (TSD_ERR_IO)"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(slurp(d + "/" + name), old);
  }
  EXPECT_EQ(ls(d), (std::set<std::string>{"out.pth", "out.safetensors"}));
  // and the disk still works: a small model fits
  Small s;
  EXPECT_EQ(tsd_model_save(s.m.get(), (d + "/out.pth").c_str(), NULL), TSD_OK)
      << tsd_last_error();
  CliRun r = run_cli({"convert", std::string(TSD_FIXTURES) + "/metadata.pth",
                      d + "/out.safetensors"});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(ls(d), (std::set<std::string>{"out.pth", "out.safetensors"}));
}

} // namespace
