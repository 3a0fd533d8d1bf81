// test_shim_save.cc — the TorchScript writer follows every writer's rules
// (afile.c): LibTorch's own file writer wrote through a symlink into its
// target, blocked on a FIFO, truncated the old file first and aborted the
// process on a full disk. The archive is now built in memory and written by
// tsd. LibTorch build only (tests/CMakeLists.txt: test_shim*).
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "test_helpers.h"
#include "tsd.h"

namespace {

std::string fixture(const std::string &n) {
  return std::string(TSD_FIXTURES) + "/" + n;
}

std::string fresh_dir(const std::string &name) {
  std::string d = std::string(TSD_TEST_TMP) + "/shim_save_" +
                  std::to_string(getpid()) + "_" + name;
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

struct TsModel {
  tsd_model *m = nullptr;
  explicit TsModel(const std::string &path) {
    EXPECT_EQ(tsd_model_open_torchscript(&m, path.c_str(), NULL), TSD_OK)
        << tsd_last_error();
  }
  ~TsModel() {
    tsd_model_free(m);
  }
};

// The saved archive opens again with the same tensors.
void expect_archive(const std::string &path, const tsd_model *src) {
  tsd_model *back = nullptr;
  ASSERT_EQ(tsd_model_open_torchscript(&back, path.c_str(), NULL), TSD_OK)
      << tsd_last_error();
  EXPECT_EQ(tsd_model_tensor_count(back), tsd_model_tensor_count(src));
  tsd_model_free(back);
}

TEST(ShimSave, ASymlinkOutputIsReplacedItsTargetKept) {
  std::string d = fresh_dir("symlink");
  TsModel t(fixture("shim_tiny.pt"));
  ASSERT_TRUE(t.m);
  spit(d + "/target.pt", "the target's own bytes");
  ASSERT_EQ(symlink("target.pt", (d + "/out.pt").c_str()), 0);
  ASSERT_EQ(tsd_model_save(t.m, (d + "/out.pt").c_str(), NULL), TSD_OK)
      << tsd_last_error();
  struct stat st;
  ASSERT_EQ(lstat((d + "/out.pt").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(slurp(d + "/target.pt"), "the target's own bytes");
  expect_archive(d + "/out.pt", t.m);
  EXPECT_EQ(ls(d), (std::set<std::string>{"out.pt", "target.pt"}));
}

TEST(ShimSave, AFifoOrDirectoryOutputIsRefusedAtOnce) {
  std::string d = fresh_dir("fifo");
  TsModel t(fixture("shim_tiny.pt"));
  ASSERT_TRUE(t.m);
  ASSERT_EQ(mkfifo((d + "/fifo.pt").c_str(), 0666), 0);
  ASSERT_EQ(mkdir((d + "/dir.pt").c_str(), 0777), 0);
  time_t t0 = time(nullptr);
  EXPECT_EQ(tsd_model_save(t.m, (d + "/fifo.pt").c_str(), NULL),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(std::string(tsd_last_error()),
            d + "/fifo.pt: is a FIFO; tsd writes regular files only and "
                "does not replace anything else");
  EXPECT_EQ(tsd_model_save(t.m, (d + "/dir.pt").c_str(), NULL),
            TSD_ERR_INVALID_ARG);
  EXPECT_LE(time(nullptr) - t0, 2);
  struct stat st;
  ASSERT_EQ(lstat((d + "/fifo.pt").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(ls(d), (std::set<std::string>{"fifo.pt", "dir.pt"}));
}

TEST(ShimSave, AnExistingOutputKeepsItsMode) {
  std::string d = fresh_dir("mode");
  TsModel t(fixture("shim_tiny.pt"));
  ASSERT_TRUE(t.m);
  std::string p = d + "/out.pt";
  spit(p, "old");
  ASSERT_EQ(chmod(p.c_str(), 0600), 0);
  ASSERT_EQ(tsd_model_save(t.m, p.c_str(), NULL), TSD_OK) << tsd_last_error();
  struct stat st;
  ASSERT_EQ(stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  expect_archive(p, t.m);
  EXPECT_EQ(ls(d), (std::set<std::string>{"out.pt"}));
}

// A full disk: LibTorch's writer aborted the process and left the old file
// truncated. Now: TSD_ERR_IO, the process alive, the old file intact.
TEST(ShimSave, AFullDiskIsAnIoErrorAndTheOldFileStays) {
  if (geteuid() != 0)
    GTEST_SKIP() << "mounting a tmpfs needs root (CI runs as root)";
  std::string d = fresh_dir("full");
  tsdtest::SmallTmpfs fs(d, "1m");
  ASSERT_TRUE(fs.mounted) << strerror(errno);
  TsModel t(fixture("shim_mini.pt")); // a 68 KB archive
  ASSERT_TRUE(t.m);
  std::string p = d + "/out.pt", old(50000, 'o');
  spit(p, old);
  // leave less room than the archive needs
  spit(d + "/filler", std::string((1 << 20) - 50000 - 30000, 'f'));
  EXPECT_EQ(tsd_model_save(t.m, p.c_str(), NULL), TSD_ERR_IO);
  EXPECT_NE(std::string(tsd_last_error()).find("No space left on device"),
            std::string::npos)
      << tsd_last_error();
  EXPECT_EQ(slurp(p), old);
  EXPECT_EQ(ls(d), (std::set<std::string>{"out.pt", "filler"}));
  // room again: the same save works
  ASSERT_EQ(unlink((d + "/filler").c_str()), 0);
  ASSERT_EQ(tsd_model_save(t.m, p.c_str(), NULL), TSD_OK) << tsd_last_error();
  expect_archive(p, t.m);
}

TEST(ShimSave, ToADescriptorAsForDash) {
  std::string d = fresh_dir("fd");
  TsModel t(fixture("shim_tiny.pt"));
  ASSERT_TRUE(t.m);
  ASSERT_EQ(tsd_model_save(t.m, (d + "/a.pt").c_str(), NULL), TSD_OK);
  FILE *f = fopen((d + "/b.pt").c_str(), "wb");
  ASSERT_NE(f, nullptr);
  tsd_save_options o = TSD_SAVE_OPTIONS_INIT;
  o.fd = fileno(f);
  ASSERT_EQ(tsd_model_save(t.m, nullptr, &o), TSD_OK) << tsd_last_error();
  fclose(f);
  expect_archive(d + "/b.pt", t.m);
  EXPECT_EQ(slurp(d + "/b.pt").size(), slurp(d + "/a.pt").size());
}

} // namespace
