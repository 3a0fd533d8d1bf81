// test_util.cc — util.c's building blocks against the standard library:
// tsd__sort (replaces qsort, which mallocs) and the string hash map.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include "internal.h"
}

namespace {

TEST(Sort, MatchesStdSortOnRandomArrays) {
  std::mt19937_64 rng(42);
  for (size_t n : {0, 1, 2, 3, 7, 64, 1000, 4097}) {
    std::vector<uint64_t> v(n);
    for (auto &x : v) x = rng() % (n + 1); // duplicates too
    std::vector<uint64_t> ref = v;
    std::sort(ref.begin(), ref.end());
    tsd__sort(v.data(), v.size(), sizeof(uint64_t),
              [](const void *a, const void *b) {
                uint64_t x = *static_cast<const uint64_t *>(a),
                         y = *static_cast<const uint64_t *>(b);
                return x < y ? -1 : x > y;
              });
    EXPECT_EQ(v, ref) << "n = " << n;
  }
}

const char *key_of(const void *ctx, size_t i, size_t *len) {
  const auto *keys = static_cast<const std::vector<std::string> *>(ctx);
  *len = (*keys)[i].size();
  return (*keys)[i].data();
}

// Random inserts, finds and removes (removal exercises the backward shift
// over wrapped probe chains), checked against std::map after every step.
TEST(StrMap, AgreesWithStdMapUnderRandomInsertFindRemove) {
  std::mt19937_64 rng(7);
  std::vector<std::string> keys;
  for (int i = 0; i < 3000; i++)
    keys.push_back("k" + std::to_string(rng() % 2000) + "." +
                   std::to_string(i % 3));
  tsd__strmap m;
  tsd__strmap_init(&m, nullptr);
  std::map<std::string, size_t> ref;
  for (size_t i = 0; i < keys.size(); i++) {
    size_t existing = 0;
    bool oom = false;
    bool inserted = tsd__strmap_insert(&m, keys[i].data(), keys[i].size(), i,
                                       key_of, &keys, &existing, &oom);
    ASSERT_FALSE(oom);
    auto it = ref.find(keys[i]);
    ASSERT_EQ(inserted, it == ref.end()) << keys[i];
    if (inserted) ref[keys[i]] = i;
    else ASSERT_EQ(existing, it->second);
    if (rng() % 3 == 0 && !ref.empty()) {
      auto victim = ref.begin();
      std::advance(victim, rng() % ref.size());
      tsd__strmap_remove(&m, victim->first.data(), victim->first.size(), key_of,
                         &keys);
      ref.erase(victim);
    }
  }
  ASSERT_EQ(m.count, ref.size());
  for (const auto &kv : ref) {
    size_t at = 0;
    ASSERT_TRUE(tsd__strmap_find(&m, kv.first.data(), kv.first.size(), key_of,
                                 &keys, &at))
        << kv.first;
    EXPECT_EQ(at, kv.second);
  }
  for (int i = 0; i < 500; i++) {
    std::string absent = "absent" + std::to_string(i);
    EXPECT_FALSE(tsd__strmap_find(&m, absent.data(), absent.size(), key_of,
                                  &keys, nullptr));
  }
  tsd__strmap_free(&m);
}

} // namespace
