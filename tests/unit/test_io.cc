// test_io.cc — hostile inputs at the file level (issue 11): non-regular files
// never hang, key sets built to collide cost what random ones cost, messages
// about files the user did not name do not quote their bytes, and JSON
// parsing stays within its memory bound.
// The tests that need only the library (a directory refused, the hash and
// the map) are in test_io_portable.cc, built for Windows too.
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
    ssize_t n =
        read(fds[0], reinterpret_cast<char *>(out) + got, sizeof *out - got);
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
  sockaddr_un a{};
  if (p.size() >= sizeof a.sun_path) // a deep build directory
    p = "/tmp/tsd_io_" + std::to_string(getpid()) + "_" + name;
  unlink(p.c_str());
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
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
  EXPECT_EQ(std::string(o.msg), (via.empty() ? "" : via + ": ") + path +
                                    ": not a regular file (a " + kind +
                                    "): refused, tsd reads only regular files");
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
std::string
index_over(const std::string &sub,
           const std::function<std::string(const std::string &)> &make_shard) {
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
    std::string idx = index_over("link_shard" + std::to_string(k++),
                                 [&](const std::string &dir) {
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

TEST(NonRegular, CliTorchScriptModelFifoIsRefusedAtOnce) {
  // A TorchScript MODEL is opened by the shim (LibTorch), which checks the
  // path through the same non-blocking open before LibTorch reads it.
  std::string f = make_fifo("model.pt");
  std::string good = std::string(TSD_FIXTURES) + "/metadata.pth";
  ChildOut o = run_cli({"load", f, good});
  EXPECT_EQ(o.status, 2) << o.msg;
  if (tsd_has_torch())
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

// ---- hash flooding ---------------------------------------------------------
// (SipHash's vectors, the keyed hash and the map itself: test_io_portable.cc)

// The hash tsd used before (FNV-1a 64): kept here to build keys that collide
// for it.
uint64_t old_fnv1a(uint64_t h, const std::string &s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// n keys of equal length whose old hash agrees in the low 32 bits (all the
// old map used): "k." then 18 blocks of 6 characters, each block one of two
// that collide from the state the previous blocks leave, so every choice
// of the 2^18 paths ends in the same low 32 bits. And n random keys of the
// same length and alphabet.
void flood_keys(size_t n, std::vector<std::string> *collide,
                std::vector<std::string> *random_keys) {
  const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::mt19937_64 rng(12345);
  auto block = [&] {
    std::string b(6, 'a');
    for (char &ch : b)
      ch = alpha[rng() % 36];
    return b;
  };
  uint64_t h = old_fnv1a(1469598103934665603ull, "k.");
  std::vector<std::pair<std::string, std::string>> pairs;
  while (pairs.size() < 18) {
    std::unordered_map<uint32_t, std::pair<std::string, uint64_t>> seen;
    for (;;) {
      std::string b = block();
      uint64_t x = old_fnv1a(h, b);
      auto it = seen.find(static_cast<uint32_t>(x));
      if (it != seen.end() && it->second.first != b) {
        pairs.emplace_back(it->second.first, b);
        h = x; // the low 32 bits agree; later low bits depend only on them
        break;
      }
      seen[static_cast<uint32_t>(x)] = {b, x};
    }
  }
  for (size_t i = 0; i < n; i++) {
    std::string k = "k.", r = "k.";
    for (size_t l = 0; l < 18; l++) {
      k += (i >> l & 1) ? pairs[l].second : pairs[l].first;
      r += block();
    }
    collide->push_back(k);
    random_keys->push_back(r);
  }
}

// A safetensors file of empty F32 tensors named by `keys`.
std::string safetensors_of(const std::vector<std::string> &keys) {
  std::string h = "{";
  for (size_t i = 0; i < keys.size(); i++)
    h += (i ? ",\"" : "\"") + keys[i] +
         "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}";
  h += "}";
  std::string out(8, '\0');
  for (int i = 0; i < 8; i++)
    out[i] = static_cast<char>(static_cast<uint64_t>(h.size()) >> (8 * i));
  return out + h;
}

// A torch.save-style zip whose data.pkl is {key: i} (protocol 2).
std::string pickle_zip_of(const std::vector<std::string> &keys) {
  std::string p = "\x80\x02}(";
  for (size_t i = 0; i < keys.size(); i++) {
    uint32_t n = static_cast<uint32_t>(keys[i].size());
    p += 'X';
    for (int b = 0; b < 4; b++)
      p += static_cast<char>(n >> (8 * b));
    p += keys[i];
    p += 'J';
    for (int b = 0; b < 4; b++)
      p += static_cast<char>(static_cast<uint32_t>(i) >> (8 * b));
  }
  p += "u.";
  size_t zn = 0;
  uint8_t *z = tsdf_zip_pickle(reinterpret_cast<const uint8_t *>(p.data()),
                               p.size(), &zn);
  std::string out(reinterpret_cast<char *>(z), zn);
  free(z);
  return out;
}

// Seconds to open `bytes` from memory and look up every key once (the best
// of `reps`).
double open_seconds(const std::string &bytes,
                    const std::vector<std::string> &keys, int reps);

// The colliding set's seconds, opened in a child bounded by alarm() (the old
// hash took minutes: fail, not stall), or a failure.
double bounded_open_seconds(const std::string &bytes,
                            const std::vector<std::string> &keys,
                            double random_s) {
  ChildOut out;
  std::string why;
  unsigned bound = 10 + static_cast<unsigned>(20 * random_s);
  bool ok = in_child(
      bound,
      [&](ChildOut *r) {
        double s = open_seconds(bytes, keys, 2);
        r->status = 0;
        snprintf(r->msg, sizeof r->msg, "%.6f", s);
      },
      &out, &why);
  EXPECT_TRUE(ok) << "colliding keys: " << why;
  return ok ? atof(out.msg) : 1e9;
}

double open_seconds(const std::string &bytes,
                    const std::vector<std::string> &keys, int reps) {
  double best = 1e9;
  for (int r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
    tsd_checkpoint *c = nullptr;
    tsd_status st =
        tsd_checkpoint_open_memory(&c, bytes.data(), bytes.size(), nullptr);
    EXPECT_EQ(st, TSD_OK) << tsd_last_error();
    if (st != TSD_OK) return best;
    EXPECT_EQ(tsd_checkpoint_count(c), keys.size());
    size_t found = 0;
    for (const std::string &k : keys) {
      size_t at;
      found += tsd_checkpoint_find(&at, c, k.c_str()) == TSD_OK;
    }
    EXPECT_EQ(found, keys.size());
    tsd_checkpoint_free(c);
    double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
    if (s < best) best = s;
  }
  return best;
}

class Flood : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    flood_keys(150000, &collide_, &random_);
  }
  static std::vector<std::string> collide_, random_;
};
std::vector<std::string> Flood::collide_, Flood::random_;

TEST_F(Flood, KeysReallyCollideForTheOldHash) {
  uint32_t low =
      static_cast<uint32_t>(old_fnv1a(1469598103934665603ull, collide_[0]));
  for (size_t i = 0; i < collide_.size(); i += 997)
    ASSERT_EQ(
        static_cast<uint32_t>(old_fnv1a(1469598103934665603ull, collide_[i])),
        low)
        << i;
  EXPECT_EQ(collide_[0].size(), random_[0].size());
}

// With the old hash every colliding key probed past all the ones before it:
// 150k keys took minutes (> 300 s measured) where random keys take ~1 s.
// Now both cost the same; compared within one run, so a slow machine slows
// both alike.
TEST_F(Flood, CollidingSafetensorsKeysCostWhatRandomOnesCost) {
  std::string c = safetensors_of(collide_), r = safetensors_of(random_);
  double tr = open_seconds(r, random_, 2);
  double tc = bounded_open_seconds(c, collide_, tr);
  RecordProperty("random_s", std::to_string(tr));
  RecordProperty("colliding_s", std::to_string(tc));
  EXPECT_LT(tc, 2.0 * tr + 0.05)
      << "colliding " << tc << " s, random " << tr << " s";
}

TEST_F(Flood, CollidingPickleKeysCostWhatRandomOnesCost) {
  std::string c = pickle_zip_of(collide_), r = pickle_zip_of(random_);
  double tr = open_seconds(r, random_, 2);
  double tc = bounded_open_seconds(c, collide_, tr);
  RecordProperty("random_s", std::to_string(tr));
  RecordProperty("colliding_s", std::to_string(tc));
  EXPECT_LT(tc, 2.0 * tr + 0.05)
      << "colliding " << tc << " s, random " << tr << " s";
}

// ---- messages about files the user did not name ----------------------------

// An index whose shard a.safetensors is a symlink to `secret`.
std::string index_over_secret(const std::string &sub,
                              const std::string &secret_bytes) {
  std::string secret = work_dir() + "/" + sub + ".secret";
  write_bytes(secret, secret_bytes);
  return index_over(sub, [&](const std::string &dir) {
    std::string shard = dir + "/a.safetensors";
    unlink(shard.c_str());
    EXPECT_EQ(symlink(secret.c_str(), shard.c_str()), 0);
    return shard;
  });
}

std::string u64_le_decimal(const std::string &b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | static_cast<unsigned char>(b[i]);
  return std::to_string(v);
}

TEST(Leak, ShardMessagesDoNotQuoteTheShardsBytes) {
  // A password file (the length would be huge) and a binary file whose
  // first 8 bytes are a small number (runs past the end).
  std::string pw = "hunter2-s3cr3t\nroot:x:0:0\n" + std::string(100, 'x');
  std::string small("\x39\x30\x00\x00\x00\x00\x00\x00", 8);
  small += std::string(100, '\x01');
  struct {
    const char *sub;
    std::string bytes;
  } cases[] = {{"leak_pw", pw}, {"leak_small", small}};
  for (auto &k : cases) {
    std::string idx = index_over_secret(k.sub, k.bytes);
    ChildOut o = open_in_child(idx);
    std::string msg = o.msg;
    EXPECT_EQ(o.status, TSD_ERR_FORMAT) << msg;
    EXPECT_NE(msg.find("a.safetensors: safetensors header length "),
              std::string::npos)
        << msg;
    EXPECT_EQ(msg.find(u64_le_decimal(k.bytes)), std::string::npos) << msg;
    EXPECT_EQ(msg.find("hunter2"), std::string::npos) << msg;
  }
  // A shard that starts like a pickle: the VM's message (which quotes
  // globals and strings) is not passed on.
  std::string pk = "\x80\x02\x63os\nsystem\n\x8c\x07hunter2\x85R.";
  std::string pidx = work_dir() + "/leak_pickle/i.index.json";
  index_over_secret("leak_pickle", pk);
  std::string shard = work_dir() + "/leak_pickle/a.bin";
  rename((work_dir() + "/leak_pickle/a.safetensors").c_str(), shard.c_str());
  write_bytes(pidx, "{\"weight_map\": {\"w\": \"a.bin\"}}");
  // os.system is an inert placeholder now (never called): the pickle reads,
  // and is not the legacy magic number; nothing of it is quoted.
  ChildOut po = open_in_child(pidx);
  EXPECT_EQ(po.status, TSD_ERR_FORMAT) << po.msg;
  EXPECT_EQ(std::string(po.msg),
            pidx + ": " + shard +
                ": invalid magic number: not a legacy torch.save file");
  // A pickle the VM refuses (a string, then an unknown opcode): its message
  // would quote the bytes, so a generic one is given instead.
  write_bytes(shard, std::string("\x80\x02\x8c\x07hunter2\xff.", 13));
  po = open_in_child(pidx);
  EXPECT_EQ(po.status, TSD_ERR_UNSUPPORTED) << po.msg; // the opcode's status
  EXPECT_EQ(std::string(po.msg),
            pidx + ": " + shard +
                ": not a torch.save checkpoint (a pickle, but its first one "
                "is not the legacy magic number)");
  // A limit on the header size: refused without the length either.
  std::string hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
                    "\"data_offsets\":[0,4]}}";
  std::string st(8, '\0');
  st[0] = static_cast<char>(hdr.size());
  st += hdr + std::string(4, '\0');
  std::string idx = index_over_secret("leak_limit", st);
  tsd_open_options opt = TSD_OPEN_OPTIONS_INIT;
  opt.limits.max_pickle_bytes = 16;
  tsd_checkpoint *c = nullptr;
  EXPECT_EQ(tsd_checkpoint_open(&c, idx.c_str(), &opt), TSD_ERR_LIMIT);
  std::string msg = tsd_last_error();
  EXPECT_NE(msg.find("a.safetensors: safetensors header exceeds the limit of "
                     "16 bytes"),
            std::string::npos)
      << msg;
  // the length must not appear outside the paths (whose pid may hold it)
  std::string bare = msg;
  for (size_t at; (at = bare.find(work_dir())) != std::string::npos;)
    bare.erase(at, work_dir().size());
  EXPECT_EQ(bare.find(std::to_string(hdr.size())), std::string::npos) << msg;
  // The file the user names keeps the number in its message.
  std::string named = work_dir() + "/named.safetensors";
  write_bytes(named, small);
  ChildOut o = open_in_child(named);
  EXPECT_NE(std::string(o.msg).find("header length 12345 runs past the end"),
            std::string::npos)
      << o.msg;
}

// ---- JSON parse memory ------------------------------------------------------

// Worst cases for the JSON parser: the most nodes per input byte. Each is
// a complete text of about `bytes` bytes.
std::string json_worst(const std::string &kind, size_t bytes) {
  std::string body;
  auto fill = [&](const std::string &open, const std::string &item,
                  const std::string &close) {
    std::string t = open;
    while (t.size() + item.size() + close.size() < bytes)
      t += item;
    if (t.back() == ',') t.pop_back();
    return t + close;
  };
  if (kind == "ints") return fill("{\"a\":[", "0,", "]}");
  if (kind == "strings") return fill("{\"a\":[", "\"\",", "]}");
  // the smallest values that get a node of their own
  if (kind == "two_digit_ints") return fill("{\"a\":[", "10,", "]}");
  if (kind == "three_digit_ints") return fill("{\"a\":[", "100,", "]}");
  if (kind == "fractions") return fill("{\"a\":[", "1.0,", "]}");
  if (kind == "short_strings") return fill("{\"a\":[", "\"a\",", "]}");
  if (kind == "one_item_arrays") return fill("{\"a\":[", "[0],", "]}");
  if (kind == "empty_arrays") return fill("{\"a\":[", "[],", "]}");
  if (kind == "empty_objects") return fill("{\"a\":[", "{},", "]}");
  if (kind == "members") {
    // distinct names, as short as they can be
    std::string t = "{";
    for (size_t i = 0; t.size() < bytes; i++) {
      std::string name;
      size_t v = i;
      do {
        name += static_cast<char>('a' + v % 26);
        v /= 26;
      } while (v);
      t += (i ? ",\"" : "\"") + name + "\":0";
    }
    return t + "}";
  }
  if (kind == "tensors") {
    // valid, the smallest header per tensor: zero-size tensors
    std::string t = "{";
    for (size_t i = 0; t.size() < bytes; i++)
      t += (i ? ",\"" : "\"") + std::to_string(i) +
           "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}";
    return t + "}";
  }
  return "";
}

std::string as_safetensors(const std::string &header) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; i++)
    out[i] = static_cast<char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  return out + header;
}

const char *const kJsonWorst[] = {
    "ints",          "strings",       "two_digit_ints",  "three_digit_ints",
    "fractions",     "short_strings", "one_item_arrays", "empty_arrays",
    "empty_objects", "members",       "tensors"};

// Peak RSS growth (KiB) of opening `bytes` (from memory, or from `path`
// if not empty) in a child; the status in *st.
long open_peak_kb(const std::string &bytes, const std::string &path, int *st) {
  ChildOut out;
  std::string why;
  bool ok = in_child(
      60,
      [&](ChildOut *r) {
        tsd_checkpoint *c = nullptr;
        r->status = path.empty()
                        ? tsd_checkpoint_open_memory(&c, bytes.data(),
                                                     bytes.size(), nullptr)
                        : tsd_checkpoint_open(&c, path.c_str(), nullptr);
        snprintf(r->msg, sizeof r->msg, "%s", tsd_last_error());
        tsd_checkpoint_free(c);
      },
      &out, &why);
  EXPECT_TRUE(ok) << why;
  *st = out.status;
  return out.hwm_growth_kb;
}

// The bound stated in tsd.h for parsing JSON: 16 x the text + 1 MiB.
long json_bound_kb(size_t text_bytes) {
  return static_cast<long>((16 * text_bytes + (1u << 20)) / 1024);
}

TEST(JsonMemory, SafetensorsHeaderParsesWithin16xPlus1MiB) {
  if (TSD_TEST_SANITIZED) GTEST_SKIP() << "RSS means nothing under ASan";
  const size_t S = 8u << 20;
  for (const char *k : kJsonWorst) {
    std::string file = as_safetensors(json_worst(k, S));
    int st = -1;
    long kb = open_peak_kb(file, "", &st);
    RecordProperty(std::string("peak_kb_") + k, std::to_string(kb));
    EXPECT_LE(kb, json_bound_kb(file.size()))
        << k << ": peak grew by " << kb << " KiB for a " << file.size()
        << "-byte file (status " << st << ")";
    printf("safetensors %-14s %8ld KiB for %zu bytes (%.1fx)\n", k, kb,
           file.size(), kb * 1024.0 / file.size());
  }
}

TEST(JsonMemory, ShardedIndexParsesWithin16xPlus1MiB) {
  if (TSD_TEST_SANITIZED) GTEST_SKIP() << "RSS means nothing under ASan";
  const size_t S = 8u << 20;
  for (const char *k : kJsonWorst) {
    std::string text = json_worst(k, S);
    // the same shapes one level down, under "weight_map", where an index
    // keeps its many members
    std::string idx = work_dir() + "/mem_" + k + ".index.json";
    write_bytes(idx, "{\"weight_map\":" + text + "}");
    int st = -1;
    long kb = open_peak_kb("", idx, &st);
    RecordProperty(std::string("peak_kb_") + k, std::to_string(kb));
    EXPECT_LE(kb, json_bound_kb(text.size() + 16))
        << k << ": peak grew by " << kb << " KiB for a " << text.size()
        << "-byte index (status " << st << ")";
    printf("index       %-14s %8ld KiB for %zu bytes (%.1fx)\n", k, kb,
           text.size(), kb * 1024.0 / text.size());
    unlink(idx.c_str());
  }
}

} // namespace
