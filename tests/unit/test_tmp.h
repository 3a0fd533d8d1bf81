// test_tmp.h — the unit tests' scratch directory: one per test process
// (TSD_TEST_TMP/p<pid>), removed with everything in it when the process
// that made it exits. Each test is its own process (gtest_discover_tests),
// so nothing a test writes outlives it: left behind, the streaming tests'
// fixtures alone took ~100 MB per test per run and CI's disk filled.
// TSD_KEEP_WORK=1 keeps the directories for a post-mortem.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <unistd.h>

namespace tsdtest {

// The build tree's scratch root itself, shared by every test process: only
// for small fixtures made once per build tree on purpose (test_views).
inline std::string shared_dir() {
#ifdef TSD_TEST_TMP
  return TSD_TEST_TMP;
#else
  return "/tmp";
#endif
}

namespace detail {
struct ScratchRoot {
  std::string path;
  long owner;
  ScratchRoot() : owner(static_cast<long>(getpid())) {
    path = shared_dir() + "/p" + std::to_string(owner);
    std::error_code ec;
    std::filesystem::remove_all(path, ec);  // a stale one of a reused pid
    std::filesystem::create_directories(path, ec);
  }
  ~ScratchRoot() {
    // A forked child that exits must not take its parent's files along.
    if (static_cast<long>(getpid()) != owner || std::getenv("TSD_KEEP_WORK"))
      return;
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};
}  // namespace detail

inline std::string temp_dir() {
  static detail::ScratchRoot root;
  return root.path;
}

}  // namespace tsdtest
