// test_io.cc — hostile inputs at the file level (issue 11): non-regular files
// never hang, key sets built to collide cost what random ones cost, messages
// about files the user did not name do not quote their bytes, and JSON
// parsing stays within its memory bound.
//
// Whatever could hang or blow up runs in a child process under alarm() (and
// for memory, with its peak RSS measured), so a regression fails the test
// instead of stalling the suite.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <malloc.h>
#include <random>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

#include "../fuzz/fuzz_common.h"
#include "test_helpers.h"
#include "test_sanitized.h"

namespace {

std::string work_dir() {
  static std::string dir = [] {
    std::string d = tsdtest::temp_dir() + "/io_" + std::to_string(getpid());
    mkdir(d.c_str(), 0777);
    return d;
  }();
  return dir;
}

void write_bytes(const std::string &path, const std::string &bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

// What a child reports back: a status, a message, its peak RSS growth.
struct ChildOut {
  int status = -1;
  long hwm_growth_kb = 0;
  char msg[1024] = {};
};

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

// Runs fn in a child killed by SIGALRM after `seconds`; false (and *why) if
// the child did not report, e.g. because it hung.
bool in_child(unsigned seconds, const std::function<void(ChildOut *)> &fn,
              ChildOut *out, std::string *why) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    alarm(seconds);
    ChildOut r;
    malloc_trim(0);
    FILE *cr = fopen("/proc/self/clear_refs", "w");
    if (cr) {
      fputs("5", cr);
      fclose(cr);
    }
    long base = status_kb("VmHWM");
    fn(&r);
    r.hwm_growth_kb = status_kb("VmHWM") - base;
    ssize_t w = write(fds[1], &r, sizeof r);
    _exit(w == static_cast<ssize_t>(sizeof r) ? 0 : 3);
  }
  close(fds[1]);
  size_t got = 0;
  while (got < sizeof *out) {
    ssize_t n = read(fds[0], reinterpret_cast<char *>(out) + got,
                     sizeof *out - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fds[0]);
  int ws = 0;
  waitpid(pid, &ws, 0);
  if (got == sizeof *out && WIFEXITED(ws) && WEXITSTATUS(ws) == 0) return true;
  *why = WIFSIGNALED(ws) && WTERMSIG(ws) == SIGALRM
             ? "did not return within " + std::to_string(seconds) + " s"
         : WIFSIGNALED(ws) ? "killed by signal " + std::to_string(WTERMSIG(ws))
                           : "exited with " + std::to_string(WEXITSTATUS(ws));
  return false;
}

// Opens path in a child (bounded by 10 s) and returns its status/message.
ChildOut open_in_child(const std::string &path) {
  ChildOut out;
  std::string why;
  bool ok = in_child(
      10,
      [&](ChildOut *r) {
        tsd_checkpoint *c = nullptr;
        r->status = tsd_checkpoint_open(&c, path.c_str(), nullptr);
        snprintf(r->msg, sizeof r->msg, "%s", tsd_last_error());
        tsd_checkpoint_free(c);
      },
      &out, &why);
  EXPECT_TRUE(ok) << "opening " << path << ": " << why;
  return out;
}

// ---- non-regular files -----------------------------------------------------

std::string make_fifo(const std::string &name) {
  std::string p = work_dir() + "/" + name;
  unlink(p.c_str());
  EXPECT_EQ(mkfifo(p.c_str(), 0600), 0) << strerror(errno);
  return p;
}

std::string make_socket(const std::string &name) {
  std::string p = work_dir() + "/" + name;
  unlink(p.c_str());
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", p.c_str());
  EXPECT_EQ(bind(s, reinterpret_cast<sockaddr *>(&a), sizeof a), 0)
      << strerror(errno);
  close(s); // the socket file stays
  return p;
}

// A shard's message is prefixed by its index's name: `via` + ": ".
void expect_refused(const ChildOut &o, const std::string &path,
                    const std::string &kind, const std::string &via = "") {
  EXPECT_EQ(o.status, TSD_ERR_IO) << o.msg;
  EXPECT_EQ(std::string(o.msg),
            (via.empty() ? "" : via + ": ") + path + ": not a regular file (a " +
                kind + "): refused, a checkpoint must be a regular file");
}

TEST(NonRegular, FifoCheckpointIsRefusedAtOnce) {
  std::string p = make_fifo("ckpt.pth");
  expect_refused(open_in_child(p), p, "FIFO");
  std::string s = make_fifo("ckpt.safetensors");
  expect_refused(open_in_child(s), s, "FIFO");
}

TEST(NonRegular, CharacterDeviceCheckpointIsRefusedAtOnce) {
  expect_refused(open_in_child("/dev/zero"), "/dev/zero", "character device");
  expect_refused(open_in_child("/dev/null"), "/dev/null", "character device");
}

TEST(NonRegular, DirectoryCheckpointIsRefused) {
  std::string d = work_dir() + "/dir.pth";
  mkdir(d.c_str(), 0700);
  expect_refused(open_in_child(d), d, "directory");
}

TEST(NonRegular, SocketCheckpointIsRefused) {
  std::string s = make_socket("sock.pth");
  ChildOut o = open_in_child(s);
  // open(2) itself fails on a socket (ENXIO): an I/O error at once.
  EXPECT_EQ(o.status, TSD_ERR_IO) << o.msg;
  EXPECT_EQ(std::string(o.msg), s + ": cannot open: " + strerror(ENXIO));
}

TEST(NonRegular, FifoIndexIsRefusedAtOnce) {
  std::string p = make_fifo("model.safetensors.index.json");
  expect_refused(open_in_child(p), p, "FIFO");
}

// An index whose one shard is `shard` (made by `make` in a fresh directory).
std::string index_over(const std::string &sub,
                       const std::function<std::string(const std::string &)>
                           &make_shard) {
  std::string dir = work_dir() + "/" + sub;
  mkdir(dir.c_str(), 0700);
  std::string shard = make_shard(dir);
  std::string idx = dir + "/model.safetensors.index.json";
  write_bytes(idx, "{\"weight_map\": {\"w\": \"" +
                       shard.substr(shard.rfind('/') + 1) + "\"}}");
  return idx;
}

TEST(NonRegular, FifoShardIsRefusedAtOnce) {
  std::string shard;
  std::string idx = index_over("fifo_shard", [&](const std::string &dir) {
    shard = dir + "/a.safetensors";
    unlink(shard.c_str());
    EXPECT_EQ(mkfifo(shard.c_str(), 0600), 0);
    return shard;
  });
  expect_refused(open_in_child(idx), shard, "FIFO", idx);
}

TEST(NonRegular, ShardSymlinkedToADeviceOrDirectoryIsRefused) {
  const char *targets[][2] = {{"/dev/zero", "character device"},
                              {"/", "directory"}};
  int k = 0;
  for (auto &t : targets) {
    std::string shard;
    std::string idx = index_over(
        "link_shard" + std::to_string(k++), [&](const std::string &dir) {
          shard = dir + "/a.safetensors";
          unlink(shard.c_str());
          EXPECT_EQ(symlink(t[0], shard.c_str()), 0);
          return shard;
        });
    expect_refused(open_in_child(idx), shard, t[1], idx);
  }
}

// The CLI's inputs (a checkpoint, --model-spec) all go through the same
// open: run it with a FIFO for each, bounded by alarm() across exec.
ChildOut run_cli(std::vector<std::string> args) {
  ChildOut out;
  std::string why;
  bool ok = in_child(
      20,
      [&](ChildOut *r) {
        std::string err = work_dir() + "/cli_err.txt";
        pid_t pid = fork();
        if (pid == 0) {
          int fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
          dup2(fd, 2);
          int nul = open("/dev/null", O_WRONLY);
          dup2(nul, 1);
          std::vector<char *> argv;
          static std::string cli = TSD_CLI;
          argv.push_back(&cli[0]);
          for (auto &a : args)
            argv.push_back(&a[0]);
          argv.push_back(nullptr);
          execv(TSD_CLI, argv.data());
          _exit(127);
        }
        int ws = 0;
        waitpid(pid, &ws, 0);
        r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        std::ifstream f(err);
        std::string text((std::istreambuf_iterator<char>(f)),
                         std::istreambuf_iterator<char>());
        snprintf(r->msg, sizeof r->msg, "%s", text.c_str());
      },
      &out, &why);
  EXPECT_TRUE(ok) << "tsd " << args[0] << ": " << why;
  return out;
}

TEST(NonRegular, CliInspectAndModelSpecRefuseAFifoAtOnce) {
  std::string f = make_fifo("cli.pth");
  std::string good = std::string(TSD_FIXTURES) + "/metadata.pth";
  ChildOut o = run_cli({"inspect", f});
  EXPECT_EQ(o.status, 2) << o.msg;
  EXPECT_NE(std::string(o.msg).find(f + ": not a regular file (a FIFO)"),
            std::string::npos)
      << o.msg;
  o = run_cli({"load", "--model-spec", f, "--class-name", "Net", good});
  EXPECT_EQ(o.status, 2) << o.msg;
  EXPECT_NE(std::string(o.msg).find(f + ": not a regular file (a FIFO)"),
            std::string::npos)
      << o.msg;
  o = run_cli({"load", "--model-spec", good, "--class-name", "Net", f});
  EXPECT_EQ(o.status, 2) << o.msg;
  EXPECT_NE(std::string(o.msg).find(f + ": not a regular file (a FIFO)"),
            std::string::npos)
      << o.msg;
}

TEST(NonRegular, RegularFileStillReadsAfterTheNonBlockingOpen) {
  // The descriptor's O_NONBLOCK is cleared: every byte still arrives.
  std::string p = std::string(TSD_FIXTURES) + "/nested.pth";
  tsd_checkpoint *c = nullptr;
  ASSERT_EQ(tsd_checkpoint_open(&c, p.c_str(), nullptr), TSD_OK)
      << tsd_last_error();
  int fl = fcntl(c->src.fd, F_GETFL);
  EXPECT_EQ(fl & O_NONBLOCK, 0);
  EXPECT_GT(tsd_checkpoint_count(c), 0u);
  tsd_checkpoint_free(c);
}

}  // namespace
