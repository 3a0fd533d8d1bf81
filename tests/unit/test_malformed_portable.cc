// test_malformed_portable.cc — the malformed-input corpus (tests/malformed/)
// and the tsd_limits bounds, in-process, on every OS (built for Windows too
// and run under Wine). Every corpus case is opened from memory and from its
// path; if it opens, every entry is read and it is loaded (strict,
// non-strict, auto-pop) into a fixed small model (tests/fuzz/fuzz_common.h,
// the same as fuzz_load). Each case must give the status manifest.tsv
// documents, with a message, and leave the model's bytes unchanged
// (malformed_helpers.h). The memory bound of each case (a child under
// RLIMIT_AS, its peak RSS) is POSIX-only: test_malformed.cc.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "malformed_helpers.h"

namespace {

using namespace tsdtest_malformed;

void check_case(const Case &c) {
  SCOPED_TRACE(c.name + " (" + c.expect + ")");
  std::ifstream probe(c.path, std::ios::binary);
  ASSERT_TRUE(probe.good()) << "missing corpus file " << c.path;
  check_outcome(c, run_case(slurp_bytes(c.path), c.path));
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
  EXPECT_EQ(case_files(), cases.size());
}

TEST(MalformedCorpus, FuzzRegressionsAreHandled) {
  for (const Case &c : regressions())
    check_case(c);
}

// ---- limits ------------------------------------------------------------------

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
  auto z = slurp_bytes(corpus_dir() + "/cases/ok_zip_p2.bin");
  auto l = slurp_bytes(corpus_dir() + "/cases/ok_legacy.bin");
  ASSERT_FALSE(z.empty());
  std::string msg;
  EXPECT_EQ(open_with(z, {0, 0, 0}), TSD_OK) << tsd_last_error();
  EXPECT_EQ(open_with(z, {0, 10, 0}, &msg), TSD_ERR_LIMIT);
  EXPECT_NE(msg.find("max_objects"), std::string::npos) << msg;
  EXPECT_EQ(open_with(l, {0, 10, 0}), TSD_ERR_LIMIT);
  EXPECT_EQ(open_with(z, {0, 100000, 0}), TSD_OK) << tsd_last_error();
}

TEST(Limits, MaxPickleBytesRefusesALargerPickle) {
  auto z = slurp_bytes(corpus_dir() + "/cases/ok_zip_p2.bin");
  auto l = slurp_bytes(corpus_dir() + "/cases/ok_legacy.bin");
  std::string msg;
  EXPECT_EQ(open_with(z, {0, 0, 64}, &msg), TSD_ERR_LIMIT);
  EXPECT_NE(msg.find("max_pickle_bytes"), std::string::npos) << msg;
  EXPECT_EQ(open_with(l, {0, 0, 64}, &msg), TSD_ERR_LIMIT);
  EXPECT_NE(msg.find("max_pickle_bytes"), std::string::npos) << msg;
  EXPECT_EQ(open_with(z, {0, 0, 1 << 20}), TSD_OK) << tsd_last_error();
  EXPECT_EQ(open_with(l, {0, 0, 1 << 20}), TSD_OK) << tsd_last_error();
}

TEST(Limits, AWrongOptionsVersionIsRejected) {
  auto z = slurp_bytes(corpus_dir() + "/cases/ok_zip_p2.bin");
  tsd_open_options o = TSD_OPEN_OPTIONS_INIT;
  o.version = 99;
  tsd_checkpoint *c = nullptr;
  EXPECT_EQ(tsd_checkpoint_open_memory(&c, z.data(), z.size(), &o),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(c, nullptr);
}

TEST(Limits, AValidCheckpointLoadsIntoTheFixedModel) {
  // The harness itself: a real checkpoint of Net loads and sets every byte.
  auto z = slurp_bytes(corpus_dir() + "/cases/ok_zip_p2.bin");
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
