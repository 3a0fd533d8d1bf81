// test_cli.cc — the `tsd` command's output and exit statuses on committed
// fixtures (tests/fixtures; remap_*.pth from make_remap_fixtures.py): help
// texts, key remapping and selection flags of `tsd load`, `tsd diff`,
// `tsd pop`. Runs the built binary (TSD_CLI).
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "test_helpers.h"

namespace {

struct Out {
  int rc = -1;
  std::string out, err;
};

std::string q(const std::string &s) { return "'" + s + "'"; }

Out tsd(const std::string &args) {
  static int n = 0;
  std::string errf = tsdtest::temp_dir() + "/cli_err_" +
                     std::to_string(getpid()) + "_" + std::to_string(n++);
  std::string cmd = std::string(TSD_CLI) + " " + args + " 2>" + q(errf);
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

std::string fx(const char *name) {
  return q(std::string(TSD_FIXTURES) + "/" + name);
}

std::string tmp(const char *name) {
  return tsdtest::temp_dir() + "/cli_" + std::to_string(getpid()) + "_" + name;
}

bool has(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

// The spec of the DataParallel fixture's inner model: metadata.pth holds
// Sequential(Linear(2, 3), BatchNorm1d(3))'s state dict.
const std::string kSpec = "--model-spec " + fx("metadata.pth") +
                          " --class-name Sequential ";

} // namespace

// ---- help ------------------------------------------------------------------

TEST(Cli, MainHelpListsEveryCommand) {
  Out r = tsd("--help");
  EXPECT_EQ(r.rc, 0);
  for (const char *c : {"load", "inspect", "diff", "pop"})
    EXPECT_TRUE(has(r.out, std::string("  ") + c + " ")) << c << "\n" << r.out;
  EXPECT_EQ(tsd("").rc, 2);
  EXPECT_EQ(tsd("frobnicate").rc, 2);
}

TEST(Cli, EveryCommandHasHelp) {
  for (const char *c : {"load", "inspect", "diff", "pop"}) {
    Out r = tsd(std::string(c) + " --help");
    EXPECT_EQ(r.rc, 0) << c;
    EXPECT_EQ(r.out.rfind(std::string("usage: tsd ") + c, 0), 0u) << r.out;
  }
  Out load = tsd("load --help");
  for (const char *f : {"--strip-prefix", "--add-prefix", "--rename",
                        "--select", "progress bar"})
    EXPECT_TRUE(has(load.out, f)) << f;
  EXPECT_TRUE(has(tsd("pop --help").out, "writes tensors only"));
}

// ---- load: remapping and selection --------------------------------------------

TEST(Cli, LoadDataParallelCheckpointFailsWithoutStrip) {
  Out r = tsd("load " + kSpec + fx("remap_dp.pth"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.out.rfind("Error(s) in loading state_dict for Sequential:\n\t"
                        "Missing key(s) in state_dict: \"0.weight\"",
                        0),
            0u)
      << r.out;
}

TEST(Cli, LoadStripPrefixMatchesEveryKey) {
  Out r = tsd("load " + kSpec + fx("remap_dp.pth") + " --strip-prefix module.");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "<All keys matched successfully>\n");
  Out j = tsd("load " + kSpec + fx("remap_dp.pth") +
              " --strip-prefix module. --json");
  EXPECT_EQ(j.rc, 0);
  EXPECT_EQ(j.out, "{\"ok\": true, \"class_name\": \"Sequential\", "
                   "\"missing_keys\": [], \"unexpected_keys\": [], "
                   "\"size_mismatches\": [], \"popped_keys\": [], "
                   "\"popped\": [], \"error_msgs\": [], \"message\": \"<All "
                   "keys matched successfully>\", \"selected\": null}\n");
}

TEST(Cli, LoadRenameAndAddPrefix) {
  // The model is the DataParallel one; the checkpoint has no prefix.
  std::string spec =
      "--model-spec " + fx("remap_dp.pth") + " --class-name DataParallel ";
  Out a = tsd("load " + spec + fx("metadata.pth") + " --add-prefix module.");
  EXPECT_EQ(a.rc, 0) << a.out << a.err;
  Out b = tsd("load " + spec + fx("metadata.pth") +
              " --rename 0.=module.0. --rename 1.=module.1.");
  EXPECT_EQ(b.rc, 0) << b.out << b.err;
  Out c = tsd("load " + spec + fx("metadata.pth") +
              " --rename 0.=module.0. --non-strict");
  EXPECT_EQ(c.rc, 0);
  EXPECT_TRUE(has(c.out, "unexpected_keys=['1.weight'")) << c.out;
}

TEST(Cli, LoadRemapCollisionAndBadFlagsExit2) {
  std::string spec =
      "--model-spec " + fx("remap_dp.pth") + " --class-name DataParallel ";
  Out r = tsd("load " + spec + fx("metadata.pth") +
              " --rename 0.=1. --non-strict");
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "the same name")) << r.err;
  EXPECT_TRUE(has(r.err, "TSD_ERR_INVALID_ARG")) << r.err;
  EXPECT_EQ(tsd("load " + kSpec + fx("remap_dp.pth") + " --rename nope").rc,
            2);
  EXPECT_EQ(tsd("load " + kSpec + fx("remap_dp.pth") + " --strip-prefix").rc,
            2);
  EXPECT_EQ(tsd("load " + kSpec + fx("remap_dp.pth") + " --strip-prefix ''").rc,
            2);
}

TEST(Cli, LoadSelectsTheStateDictAutomaticallyAndSaysSo) {
  Out r = tsd("load " + kSpec + fx("remap_train.pth"));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "<All keys matched successfully>\n");
  EXPECT_TRUE(has(r.err, "'model'")) << r.err;
  Out j = tsd("load " + kSpec + fx("remap_train.pth") + " --json");
  EXPECT_TRUE(has(j.out, "\"message\": \"<All keys matched successfully>\", "
                         "\"selected\": \"model\"}\n"))
      << j.out;
  Out s = tsd("load " + kSpec + fx("remap_train.pth") + " --select auto --json");
  EXPECT_EQ(s.rc, 0);
  EXPECT_TRUE(has(s.out, "\"selected\": \"model\"}")) << s.out;
  Out e = tsd("load " + kSpec + fx("remap_train.pth") +
              " --select model --json");
  EXPECT_EQ(e.rc, 0);
  EXPECT_TRUE(has(e.out, "\"selected\": \"model\"}")) << e.out;
  EXPECT_FALSE(has(e.err, "'model'")) << e.err; // explicit: nothing to say
}

TEST(Cli, SelectAutoWithoutCandidateExits2ButImplicitFallsBack) {
  std::string spec =
      "--model-spec " + fx("small.pth") + " --class-name M --non-strict ";
  Out r = tsd("load " + spec + fx("empty.pth") + " --select auto");
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "no state dict found")) << r.err;
  // No --select: the dict is loaded as it is (nothing selected).
  Out i = tsd("load " + spec + fx("empty.pth") + " --json");
  EXPECT_EQ(i.rc, 0) << i.err;
  EXPECT_TRUE(has(i.out, "\"missing_keys\": [\"w\", \"b\"]")) << i.out;
  EXPECT_TRUE(has(i.out, "\"selected\": null}")) << i.out;
  Out n = tsd("load --model-spec " + fx("small.pth") + " --class-name M " +
              fx("nested.pth") + " --json");
  EXPECT_EQ(n.rc, 0) << n.err;
  EXPECT_TRUE(has(n.out, "\"selected\": \"state_dict\"}")) << n.out;
}

// ---- diff ------------------------------------------------------------------------

TEST(Cli, DiffCleanExitsZeroWithASummary) {
  Out r = tsd("diff " + kSpec + fx("remap_dp.pth") + " --strip-prefix module.");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "7 matched, 0 missing, 0 unexpected, 0 shape mismatches: a "
                   "strict load would succeed\n");
  Out all = tsd("diff " + kSpec + fx("remap_dp.pth") +
                " --strip-prefix module. --all");
  EXPECT_TRUE(has(all.out, "matched     0.weight               [3, 2]      "
                           "[3, 2]\n"))
      << all.out;
}

TEST(Cli, DiffShowsMismatchesMissingAndUnexpected) {
  Out r = tsd("diff " + kSpec + fx("remap_head.pth"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.out,
            "state       key             checkpoint  model\n"
            "mismatch    0.weight        [5, 2]      [3, 2]\n"
            "mismatch    0.bias          [5]         [3]\n"
            "mismatch    1.weight        [5]         [3]\n"
            "mismatch    1.bias          [5]         [3]\n"
            "mismatch    1.running_mean  [5]         [3]\n"
            "mismatch    1.running_var   [5]         [3]\n"
            "1 matched, 0 missing, 0 unexpected, 6 shape mismatches: a strict "
            "load would raise\n");
  Out u = tsd("diff " + kSpec + fx("remap_dp.pth"));
  EXPECT_EQ(u.rc, 1);
  EXPECT_TRUE(has(u.out, "missing     0.weight                      -     "))
      << u.out;
  EXPECT_TRUE(has(u.out, "unexpected  module.0.weight               [3, 2]"))
      << u.out;
  // 1.num_batches_tracked is not missing: `_metadata` names "module.1", so
  // the model's "1" has no version and the _NormBase rule fills it in.
  EXPECT_TRUE(has(u.out, "0 matched, 6 missing, 7 unexpected")) << u.out;
}

TEST(Cli, DiffJsonAndAutoPop) {
  Out r = tsd("diff " + kSpec + fx("remap_head.pth") + " --json");
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.out.rfind("{\"ok\": false, \"matched_keys\": "
                        "[\"1.num_batches_tracked\"], \"missing_keys\": [], "
                        "\"unexpected_keys\": [], \"size_mismatches\": "
                        "[{\"key\": \"0.weight\", \"checkpoint_shape\": [5, "
                        "2], \"model_shape\": [3, 2]}",
                        0),
            0u)
      << r.out;
  EXPECT_TRUE(has(r.out, "\"selected\": null}\n"));
  // auto-pop: the popped keys become missing, so strict still fails
  Out p = tsd("diff " + kSpec + fx("remap_head.pth") + " --auto-pop");
  EXPECT_EQ(p.rc, 1);
  EXPECT_TRUE(has(p.out, "1 matched, 6 missing, 0 unexpected, 0 shape "
                         "mismatches, 6 popped"))
      << p.out;
  EXPECT_EQ(tsd("diff " + kSpec).rc, 2);
  EXPECT_EQ(tsd("diff " + kSpec + fx("remap_head.pth") + " --bogus").rc, 2);
}

// ---- pop ---------------------------------------------------------------------------

TEST(Cli, PopWritesTheRestAndItLoadsBack) {
  std::string out = tmp("popped.pth");
  Out r = tsd("pop " + fx("metadata.pth") + " 1.running_var 0.bias -o " +
              q(out));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "popped 2 keys; wrote " + out + " (5 tensors)\n");
  Out i = tsd("inspect " + q(out));
  EXPECT_EQ(i.rc, 0);
  EXPECT_FALSE(has(i.out, "running_var"));
  EXPECT_FALSE(has(i.out, "0.bias"));
  EXPECT_TRUE(has(i.out, "5 tensors, 16 elements, 68 bytes")) << i.out;
  // The popped keys are exactly what a load then misses.
  Out l = tsd("load " + kSpec + q(out) + " --non-strict");
  EXPECT_EQ(l.out, "_IncompatibleKeys(missing_keys=['0.bias', "
                   "'1.running_var'], unexpected_keys=[])\n");
  remove(out.c_str());
}

TEST(Cli, PopSelectsInsideATrainingCheckpoint) {
  std::string out = tmp("popped_train.pth");
  Out r = tsd("pop " + fx("remap_train.pth") + " 0.weight -o " + q(out));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.err, "'model'"));
  Out i = tsd("inspect " + q(out));
  EXPECT_TRUE(has(i.out, "6 tensors")) << i.out;
  remove(out.c_str());
}

TEST(Cli, PopErrors) {
  std::string out = tmp("popped_err.pth");
  Out a = tsd("pop " + fx("metadata.pth") + " nope -o " + q(out));
  EXPECT_EQ(a.rc, 2);
  EXPECT_TRUE(has(a.err, "no key 'nope'")) << a.err;
  Out b = tsd("pop " + fx("metadata.pth") + " nope --missing-ok -o " + q(out));
  EXPECT_EQ(b.rc, 0) << b.err;
  EXPECT_EQ(b.out, "popped 0 keys; wrote " + out + " (7 tensors)\n");
  EXPECT_EQ(tsd("pop " + fx("metadata.pth") + " 0.bias").rc, 2); // no -o
  EXPECT_EQ(tsd("pop " + fx("metadata.pth") + " -o " + q(out)).rc, 2);
  EXPECT_EQ(tsd("pop " + fx("metadata.pth") + " 0.bias -o " +
                fx("metadata.pth"))
                .rc,
            2);
  // remap_mixed.pth: a state dict with an int entry next to its tensors
  Out c = tsd("pop " + fx("remap_mixed.pth") + " 0.bias -o " + q(out));
  EXPECT_EQ(c.rc, 2);
  EXPECT_TRUE(has(c.err, "entry 'step' is a <class 'int'>: the .pth writer "
                         "writes tensors only"))
      << c.err;
  Out d = tsd("pop " + fx("remap_mixed.pth") + " step -o " + q(out));
  EXPECT_EQ(d.rc, 0) << d.err;
  remove(out.c_str());
}
