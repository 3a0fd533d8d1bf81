// test_io_portable.cc — the file-level tests of test_io.cc that need only
// the library (no FIFOs, sockets, devices, symlinks, fork/exec or /proc), so
// that they are built for Windows too and run under Wine (platform_win32.c's
// open): a directory given as a checkpoint is refused, SipHash-1-3 and the
// keyed string map. test_io.cc keeps the POSIX ones.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "test_helpers.h"

namespace {

// A directory cannot block an open (test_io.cc opens FIFOs and devices in a
// child bounded by alarm(); this one runs in-process).
TEST(NonRegular, DirectoryCheckpointIsRefused) {
  std::string d = tsdtest::scratch_subdir("dir.pth");
  tsd_checkpoint *c = nullptr;
  EXPECT_EQ(tsd_checkpoint_open(&c, d.c_str(), nullptr), TSD_ERR_IO)
      << tsd_last_error();
  EXPECT_EQ(c, nullptr);
  EXPECT_EQ(std::string(tsd_last_error()),
            d + ": not a regular file (a directory): refused, tsd reads only "
                "regular files");
}

// ---- the hash and the map ---------------------------------------------------

TEST(Hash, SipHash13MatchesReferenceVectors) {
  // SipHash-1-3 with the all-zero key (vectors of the Rust crates).
  EXPECT_EQ(tsd__siphash13(0, 0, "", 0), 0xd1fba762150c532cull);
  EXPECT_EQ(tsd__siphash13(0, 0, "siphash", 7), 0x8264ceeccb16bcbeull);
  EXPECT_EQ(tsd__siphash13(0, 0, "digest-sip_hash", 15), 0xce31007e34130c0aull);
}

TEST(Hash, MapHashIsKeyedNotTheBareFunction) {
  // The seed is random per process: the map's hash is not the unkeyed one
  // (a 2^-64 chance of equality per string).
  const char *k[] = {"a", "weight", "layer.0.attention.self.query.weight"};
  for (const char *s : k)
    EXPECT_NE(tsd__hash(s, strlen(s)), tsd__siphash13(0, 0, s, strlen(s))) << s;
}

TEST(Hash, MapStaysCorrectThroughGrowthAndRemoval) {
  // Insert, find, remove and re-find 100k keys (growth, bounded-probe
  // rehashing and backward-shift deletion all exercised).
  std::vector<std::string> keys;
  for (int i = 0; i < 100000; i++)
    keys.push_back("key." + std::to_string(i));
  struct Ctx {
    const std::vector<std::string> *k;
  } ctx{&keys};
  auto fn = [](const void *c, size_t i, size_t *len) -> const char * {
    const auto &k = *static_cast<const Ctx *>(c)->k;
    *len = k[i].size();
    return k[i].data();
  };
  tsd__strmap m;
  tsd__strmap_init(&m, nullptr);
  for (size_t i = 0; i < keys.size(); i++) {
    bool oom = false;
    ASSERT_TRUE(tsd__strmap_insert(&m, keys[i].data(), keys[i].size(), i, fn,
                                   &ctx, nullptr, &oom));
  }
  size_t prev = 0;
  bool oom = false;
  EXPECT_FALSE(tsd__strmap_insert(&m, "key.7", 5, 0, fn, &ctx, &prev, &oom));
  EXPECT_EQ(prev, 7u);
  for (size_t i = 0; i < keys.size(); i += 2)
    tsd__strmap_remove(&m, keys[i].data(), keys[i].size(), fn, &ctx);
  for (size_t i = 0; i < keys.size(); i++) {
    size_t at = 0;
    bool f =
        tsd__strmap_find(&m, keys[i].data(), keys[i].size(), fn, &ctx, &at);
    ASSERT_EQ(f, i % 2 == 1) << keys[i];
    if (f) EXPECT_EQ(at, i);
  }
  EXPECT_EQ(m.count, keys.size() / 2);
  tsd__strmap_free(&m);
}

} // namespace
