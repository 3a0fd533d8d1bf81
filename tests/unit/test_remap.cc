// test_remap.cc — key remapping before matching (strip / rename / add), the
// `_metadata` rules that go with it, automatic state-dict selection, dry
// runs, the matched-keys list, the progress callback and version-1 options.
// Orders and texts follow torch 1.13's consume_prefix_in_state_dict_if_present
// + load_state_dict (see tests/parity/run_remap.py for the oracle runs).
#include "test_helpers.h"

using tsdtest::as_f32;
using tsdtest::CkptBuilder;
using tsdtest::Model;
using Strings = std::vector<std::string>;

namespace {

struct Opts {
  std::vector<const char *> strip;
  std::vector<tsd_rename> renames;
  const char *add = nullptr;
  int strict = 1;
  tsd_rules rules = TSD_RULES_TORCH_1_13;
  int dry_run = 0;
  tsd_progress_fn progress = nullptr;
  void *user = nullptr;
};

struct RLoad {
  tsd_status status;
  tsd_report *report = nullptr;
  RLoad(tsd_model *m, tsd_checkpoint *c, const Opts &o) {
    tsd_load_options lo = TSD_LOAD_OPTIONS_INIT;
    lo.strict = o.strict;
    lo.rules = o.rules;
    lo.strip_prefixes = o.strip.empty() ? nullptr : o.strip.data();
    lo.n_strip_prefixes = o.strip.size();
    lo.renames = o.renames.empty() ? nullptr : o.renames.data();
    lo.n_renames = o.renames.size();
    lo.add_prefix = o.add;
    lo.dry_run = o.dry_run;
    lo.progress = o.progress;
    lo.progress_user = o.user;
    status = tsd_load(&report, m, c, &lo);
  }
  ~RLoad() { tsd_report_free(report); }
  RLoad(const RLoad &) = delete;
  RLoad &operator=(const RLoad &) = delete;
  Strings list(tsd_list l) const { return tsdtest::report_list(report, l); }
  std::string message() const {
    return report ? tsd_report_message(report) : "";
  }
};

// class Net: fc1 = Linear(4, 3); fc2 = Linear(3, 2)
struct Net {
  Model m{"Net"};
  std::vector<unsigned char> &w1 = m.add("fc1.weight", {3, 4});
  std::vector<unsigned char> &b1 = m.add("fc1.bias", {3});
  std::vector<unsigned char> &w2 = m.add("fc2.weight", {2, 3});
  std::vector<unsigned char> &b2 = m.add("fc2.bias", {2});
};

void net_ckpt(CkptBuilder &b, const std::string &prefix, float v = 2.0f) {
  b.f32(prefix + "fc1.weight", {3, 4}, std::vector<float>(12, v));
  b.f32(prefix + "fc1.bias", {3}, std::vector<float>(3, v));
  b.f32(prefix + "fc2.weight", {2, 3}, std::vector<float>(6, v));
  b.f32(prefix + "fc2.bias", {2}, std::vector<float>(2, v));
}

} // namespace

// ---- strip ----------------------------------------------------------------

TEST(Remap, StripPrefixLoadsADataParallelCheckpoint) {
  Net n;
  CkptBuilder b;
  net_ckpt(b, "module.", 3.0f);
  Opts o;
  o.strip = {"module."};
  RLoad l(n.m.get(), b.get(), o);
  ASSERT_EQ(l.status, TSD_OK) << tsd_last_error();
  EXPECT_EQ(l.message(), "<All keys matched successfully>");
  EXPECT_EQ(as_f32(n.w1, 11), 3.0f);
  EXPECT_EQ(as_f32(n.b2, 1), 3.0f);
}

TEST(Remap, WithoutStripTheKeysAreUnexpectedAsInPyTorch) {
  Net n;
  CkptBuilder b;
  net_ckpt(b, "module.");
  RLoad l(n.m.get(), b.get(), Opts{});
  EXPECT_EQ(l.status, TSD_ERR_LOAD);
  EXPECT_EQ(l.list(TSD_LIST_UNEXPECTED).size(), 4u);
}

// consume_prefix: `for key in sorted(keys): if key.startswith(prefix):
// sd[key[len(prefix):]] = sd.pop(key)`: keys without the prefix keep their
// place, stripped keys follow in sorted order. torch 1.13, non-strict load
// of {module.fc1.zz, other.y, module.fc1.aa, module.fc1.weight, ...}:
// unexpected_keys=['other.y', 'fc1.aa', 'fc1.zz'].
TEST(Remap, StripMovesStrippedKeysAfterTheOthersInSortedOrder) {
  Net n;
  CkptBuilder b;
  b.f32("module.fc1.zz", {1}).f32("other.y", {1}).f32("module.fc1.aa", {1});
  net_ckpt(b, "module.");
  Opts o;
  o.strip = {"module."};
  o.strict = 0;
  RLoad l(n.m.get(), b.get(), o);
  ASSERT_EQ(l.status, TSD_OK) << tsd_last_error();
  EXPECT_EQ(l.list(TSD_LIST_UNEXPECTED),
            (Strings{"other.y", "fc1.aa", "fc1.zz"}));
}

TEST(Remap, StripOnlyWherePresentAndOnlyOnce) {
  Model m("M");
  m.add("a.w", {1});
  m.add("module.b.w", {1});
  CkptBuilder b;
  b.f32("a.w", {1}).f32("module.module.b.w", {1});
  Opts o;
  o.strip = {"module."};
  RLoad l(m.get(), b.get(), o);
  EXPECT_EQ(l.status, TSD_OK) << tsd_last_error() << l.message();
}

TEST(Remap, SeveralStripPrefixesApplyInOrder) {
  Net n;
  CkptBuilder b;
  net_ckpt(b, "_orig_mod.module.");
  Opts o;
  o.strip = {"_orig_mod.", "module."};
  EXPECT_EQ(RLoad(n.m.get(), b.get(), o).status, TSD_OK) << tsd_last_error();
  Net n2;
  o.strip = {"module.", "_orig_mod."}; // module. is not a prefix yet
  EXPECT_EQ(RLoad(n2.m.get(), b.get(), o).status, TSD_ERR_LOAD);
}

// ---- rename and add --------------------------------------------------------

TEST(Remap, RenameFirstMatchingRuleWinsAndOnlyOne) {
  Net n;
  CkptBuilder b;
  b.f32("old1.weight", {3, 4}).f32("old1.bias", {3});
  b.f32("x.weight", {2, 3}).f32("x.bias", {2});
  Opts o;
  // "old1." matches first; the second rule would also match but is skipped;
  // "x." -> "fc2." is not applied to the result of another rule.
  o.renames = {{"old1.", "fc1."}, {"old", "zzz"}, {"x.", "fc2."},
               {"fc1.", "nope."}};
  RLoad l(n.m.get(), b.get(), o);
  EXPECT_EQ(l.status, TSD_OK) << tsd_last_error() << l.message();
}

TEST(Remap, RenameToEmptyDropsThePrefix) {
  Net n;
  CkptBuilder b;
  net_ckpt(b, "encoder.");
  Opts o;
  o.renames = {{"encoder.", ""}};
  EXPECT_EQ(RLoad(n.m.get(), b.get(), o).status, TSD_OK) << tsd_last_error();
}

TEST(Remap, AddPrefixComesLastAfterStripAndRename) {
  Model m("Wrapper");
  m.add("net.fc1.weight", {1});
  m.add("net.head.bias", {1});
  CkptBuilder b;
  b.f32("module.fc1.weight", {1}).f32("module.fc9.bias", {1});
  Opts o;
  o.strip = {"module."};
  o.renames = {{"fc9.", "head."}};
  o.add = "net.";
  RLoad l(m.get(), b.get(), o);
  EXPECT_EQ(l.status, TSD_OK) << tsd_last_error() << l.message();
}

TEST(Remap, ReportNamesKeysAsTheModelSeesThem) {
  Net n;
  CkptBuilder b;
  b.f32("module.fc1.weight", {5, 4}).f32("module.fc1.bias", {3});
  b.f32("module.fc2.weight", {2, 3}).f32("module.extra", {1});
  Opts o;
  o.strip = {"module."};
  RLoad l(n.m.get(), b.get(), o);
  ASSERT_EQ(l.status, TSD_ERR_LOAD);
  EXPECT_EQ(l.message(),
            "Error(s) in loading state_dict for Net:\n\t"
            "Missing key(s) in state_dict: \"fc2.bias\". \n\t"
            "Unexpected key(s) in state_dict: \"extra\". \n\t"
            "size mismatch for fc1.weight: copying a param with shape "
            "torch.Size([5, 4]) from checkpoint, the shape in current model is "
            "torch.Size([3, 4]).");
}

TEST(Remap, TwoKeysRenamedToOneNameAreAnErrorNamingBoth) {
  Net n;
  auto before = n.m.snapshot();
  CkptBuilder b;
  net_ckpt(b, "module.");
  b.f32("fc1.bias", {3});
  Opts o;
  o.strip = {"module."};
  RLoad l(n.m.get(), b.get(), o);
  EXPECT_EQ(l.status, TSD_ERR_INVALID_ARG);
  EXPECT_EQ(l.report, nullptr);
  std::string e = tsd_last_error();
  EXPECT_NE(e.find("'fc1.bias'"), std::string::npos) << e;
  EXPECT_NE(e.find("'module.fc1.bias'"), std::string::npos) << e;
  EXPECT_EQ(n.m.snapshot(), before);
}

TEST(Remap, BadRulesAreInvalidArguments) {
  Net n;
  CkptBuilder b;
  net_ckpt(b, "");
  Opts o;
  o.strip = {""};
  EXPECT_EQ(RLoad(n.m.get(), b.get(), o).status, TSD_ERR_INVALID_ARG);
  o.strip = {nullptr};
  EXPECT_EQ(RLoad(n.m.get(), b.get(), o).status, TSD_ERR_INVALID_ARG);
  o.strip.clear();
  o.renames = {{"", "x."}};
  EXPECT_EQ(RLoad(n.m.get(), b.get(), o).status, TSD_ERR_INVALID_ARG);
  o.renames = {{"fc1.", nullptr}};
  EXPECT_EQ(RLoad(n.m.get(), b.get(), o).status, TSD_ERR_INVALID_ARG);
  o.renames.clear();
  o.add = ""; // "" means no prefix
  EXPECT_EQ(RLoad(n.m.get(), b.get(), o).status, TSD_OK) << tsd_last_error();
}

// ---- _metadata ---------------------------------------------------------------

namespace {
// bn = BatchNorm1d(2) under `module.`, num_batches_tracked absent from the
// checkpoint, `_metadata` {"module.bn": version 2}.
struct BnCase {
  Model m{"M"};
  CkptBuilder b;
  BnCase() {
    m.add("bn.weight", {2});
    m.add("bn.bias", {2});
    m.add("bn.running_mean", {2}, TSD_BUFFER);
    m.add("bn.running_var", {2}, TSD_BUFFER);
    m.add("bn.num_batches_tracked", {}, TSD_BUFFER, TSD_INT64, 5);
    m.module("bn", "BatchNorm1d");
    for (const char *k : {"weight", "bias", "running_mean", "running_var"})
      b.f32(std::string("module.bn.") + k, {2});
    b.version("", 1).version("module", 1).version("module.bn", 2);
  }
};
} // namespace

// torch 1.13's consume_prefix tests `"_metadata" in state_dict` (a key, never
// there) and leaves `_metadata` alone: bn finds no version, the _NormBase
// rule fills num_batches_tracked with 0 and the strict load succeeds.
TEST(Remap, StripLeavesMetadataAloneUnderTorch113Rules) {
  BnCase c;
  Opts o;
  o.strip = {"module."};
  RLoad l(c.m.get(), c.b.get(), o);
  EXPECT_EQ(l.status, TSD_OK) << l.message();
  EXPECT_EQ(l.list(TSD_LIST_MISSING), Strings{});
}

// 2.x strips `_metadata` too: bn has version 2, so the missing
// num_batches_tracked is reported.
TEST(Remap, StripRenamesMetadataUnderTorch2Rules) {
  BnCase c;
  Opts o;
  o.strip = {"module."};
  o.rules = TSD_RULES_TORCH_2;
  RLoad l(c.m.get(), c.b.get(), o);
  EXPECT_EQ(l.status, TSD_ERR_LOAD);
  EXPECT_EQ(l.list(TSD_LIST_MISSING), Strings{"bn.num_batches_tracked"});
}

TEST(Remap, RenameAndAddPrefixRenameMetadataModules) {
  // Checkpoint keys under `module.`, model under `net.`: the rename carries
  // the version 2 of "module.bn" to "net.bn" (missing num_batches_tracked is
  // then reported); without metadata renaming it would be filled with 0.
  BnCase c0;
  Model m("M");
  m.add("net.bn.weight", {2});
  m.add("net.bn.bias", {2});
  m.add("net.bn.running_mean", {2}, TSD_BUFFER);
  m.add("net.bn.running_var", {2}, TSD_BUFFER);
  m.add("net.bn.num_batches_tracked", {}, TSD_BUFFER, TSD_INT64, 5);
  m.module("net.bn", "BatchNorm1d");
  Opts o;
  o.renames = {{"module.", "net."}};
  RLoad l(m.get(), c0.b.get(), o);
  EXPECT_EQ(l.list(TSD_LIST_MISSING), Strings{"net.bn.num_batches_tracked"});

  CkptBuilder b; // keys without prefix, version 2 for "bn", add "net."
  for (const char *k : {"weight", "bias", "running_mean", "running_var"})
    b.f32(std::string("bn.") + k, {2});
  b.version("", 1).version("bn", 2);
  Opts o2;
  o2.add = "net.";
  RLoad l2(m.get(), b.get(), o2);
  EXPECT_EQ(l2.list(TSD_LIST_MISSING), Strings{"net.bn.num_batches_tracked"});

  CkptBuilder b1; // version 1 for "bn": the rule fills in 0
  for (const char *k : {"weight", "bias", "running_mean", "running_var"})
    b1.f32(std::string("bn.") + k, {2});
  b1.version("", 1).version("bn", 1);
  RLoad l3(m.get(), b1.get(), o2);
  EXPECT_EQ(l3.status, TSD_OK) << l3.message();
}

// ---- options compatibility, dry run, matched ---------------------------------

TEST(Remap, VersionOneOptionsNeverReadTheNewFields) {
  Net n;
  CkptBuilder b;
  net_ckpt(b, "");
  tsd_load_options o;
  memset(&o, 0xAB, sizeof o); // what lies past a version-1 caller's struct
  o.version = 1;
  o.strict = 1;
  o.auto_pop = 0;
  o.rules = TSD_RULES_TORCH_1_13;
  tsd_report *r = nullptr;
  EXPECT_EQ(tsd_load(&r, n.m.get(), b.get(), &o), TSD_OK) << tsd_last_error();
  EXPECT_EQ(as_f32(n.w1), 2.0f); // copied: dry_run (0xABABABAB) ignored
  tsd_report_free(r);
}

TEST(Remap, DryRunReportsLikeALoadAndCopiesNothing) {
  Net n;
  auto before = n.m.snapshot();
  CkptBuilder b;
  net_ckpt(b, "module.");
  Opts o;
  o.strip = {"module."};
  o.dry_run = 1;
  RLoad l(n.m.get(), b.get(), o);
  EXPECT_EQ(l.status, TSD_OK);
  EXPECT_EQ(l.message(), "<All keys matched successfully>");
  EXPECT_EQ(l.list(TSD_LIST_MATCHED),
            (Strings{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  EXPECT_EQ(n.m.snapshot(), before);
}

TEST(Remap, MatchedListsCopiedKeysButNotTheFilledInNumBatchesTracked) {
  BnCase c;
  Opts o;
  o.strip = {"module."};
  RLoad l(c.m.get(), c.b.get(), o);
  ASSERT_EQ(l.status, TSD_OK);
  EXPECT_EQ(l.list(TSD_LIST_MATCHED),
            (Strings{"bn.weight", "bn.bias", "bn.running_mean",
                     "bn.running_var"}));
  // the JSON (the parity format) does not carry it
  EXPECT_EQ(std::string(tsd_report_json(l.report)).find("matched_keys"),
            std::string::npos);
}

// ---- progress -----------------------------------------------------------------

namespace {
struct Calls {
  std::vector<std::pair<uint64_t, uint64_t>> seen;
  int cancel_at = -1; // index of the call that returns non-zero
};
int record(void *user, uint64_t done, uint64_t total) {
  auto *c = static_cast<Calls *>(user);
  c->seen.emplace_back(done, total);
  return static_cast<int>(c->seen.size()) - 1 == c->cancel_at;
}
} // namespace

TEST(Progress, StartsAtZeroEndsAtTotalAndIsMonotonic) {
  Model m("M");
  CkptBuilder b;
  for (int i = 0; i < 300; i++) {
    std::string k = "t" + std::to_string(i);
    m.add(k.c_str(), {10});
    b.f32(k, {10});
  }
  Calls c;
  Opts o;
  o.progress = record;
  o.user = &c;
  RLoad l(m.get(), b.get(), o);
  ASSERT_EQ(l.status, TSD_OK);
  ASSERT_GE(c.seen.size(), 2u);
  EXPECT_EQ(c.seen.front(), (std::pair<uint64_t, uint64_t>(0, 300 * 40)));
  EXPECT_EQ(c.seen.back(), (std::pair<uint64_t, uint64_t>(12000, 12000)));
  // at most ~1% steps: 300 tensors of 1/300 each give about 100 calls
  EXPECT_LE(c.seen.size(), 102u);
  EXPECT_GE(c.seen.size(), 50u);
  for (size_t i = 1; i < c.seen.size(); i++) {
    EXPECT_GT(c.seen[i].first, c.seen[i - 1].first);
    EXPECT_EQ(c.seen[i].second, 12000u);
  }
}

TEST(Progress, CancelAtTheFirstCallLeavesTheModelUnchanged) {
  Net n;
  auto before = n.m.snapshot();
  CkptBuilder b;
  net_ckpt(b, "");
  Calls c;
  c.cancel_at = 0;
  Opts o;
  o.progress = record;
  o.user = &c;
  RLoad l(n.m.get(), b.get(), o);
  EXPECT_EQ(l.status, TSD_ERR_CANCELED);
  EXPECT_EQ(l.report, nullptr);
  EXPECT_EQ(n.m.snapshot(), before);
  EXPECT_STREQ(tsd_status_name(TSD_ERR_CANCELED), "TSD_ERR_CANCELED");
}

TEST(Progress, CancelLaterLeavesTheCopiedTensorsLoaded) {
  Net n;
  CkptBuilder b;
  net_ckpt(b, "", 9.0f);
  Calls c;
  c.cancel_at = 1; // after fc1.weight (48 of 92 bytes, > 1%)
  Opts o;
  o.progress = record;
  o.user = &c;
  RLoad l(n.m.get(), b.get(), o);
  EXPECT_EQ(l.status, TSD_ERR_CANCELED);
  EXPECT_EQ(as_f32(n.w1), 9.0f);
  EXPECT_EQ(as_f32(n.b1), 1.0f);
  EXPECT_EQ(as_f32(n.w2), 1.0f);
  EXPECT_NE(std::string(tsd_last_error()).find("after 1 of 4"),
            std::string::npos)
      << tsd_last_error();
}

TEST(Progress, NotCalledForAFailedLoadOrADryRun) {
  Net n;
  CkptBuilder b;
  net_ckpt(b, "module.");
  Calls c;
  Opts o;
  o.progress = record;
  o.user = &c;
  EXPECT_EQ(RLoad(n.m.get(), b.get(), o).status, TSD_ERR_LOAD);
  o.strip = {"module."};
  o.dry_run = 1;
  EXPECT_EQ(RLoad(n.m.get(), b.get(), o).status, TSD_OK);
  EXPECT_TRUE(c.seen.empty());
}

// ---- automatic selection ----------------------------------------------------------

namespace {
// A dict value whose arrays live in the test (the builder's arena is private).
struct Dict {
  std::vector<tsd__value *> keys, vals;
  tsd__value *v;
  explicit Dict(CkptBuilder &b) : v(b.value(TSD__V_DICT)) {}
  Dict &add(CkptBuilder &b, const std::string &k, tsd__value *val) {
    keys.push_back(b.str(k));
    vals.push_back(val);
    v->u.dict.keys = keys.data();
    v->u.dict.vals = vals.data();
    v->u.dict.len = v->u.dict.cap = keys.size();
    return *this;
  }
};
float one = 1.0f;
} // namespace

TEST(SelectAuto, AStateDictStaysAsItIs) {
  CkptBuilder b;
  b.add("epoch", b.integer(1)).f32("w", {1});
  const char *key = "unset";
  EXPECT_EQ(tsd_checkpoint_select_auto(&key, b.get()), TSD_OK);
  EXPECT_EQ(key, nullptr);
  EXPECT_EQ(tsd_checkpoint_count(b.get()), 2u);
}

TEST(SelectAuto, FollowsThePriorityListAndSkipsDictsWithoutTensors) {
  CkptBuilder b;
  Dict ema(b), model(b), empty_sd(b);
  ema.add(b, "ema.w", b.tensor(TSD_FLOAT32, {1}, &one));
  model.add(b, "model.w", b.tensor(TSD_FLOAT32, {1}, &one));
  empty_sd.add(b, "lr", b.integer(3));
  // 'state_dict' holds no tensor: skipped; 'model' beats 'model_ema'.
  b.add("epoch", b.integer(1)).add("model_ema", ema.v);
  b.add("state_dict", empty_sd.v).add("model", model.v);
  const char *key = nullptr;
  ASSERT_EQ(tsd_checkpoint_select_auto(&key, b.get()), TSD_OK)
      << tsd_last_error();
  EXPECT_STREQ(key, "model");
  tsd_entry e;
  ASSERT_EQ(tsd_checkpoint_entry(&e, b.get(), 0), TSD_OK);
  EXPECT_STREQ(e.key, "model.w");
}

// pytorch/examples' ImageNet checkpoint: {'epoch', 'arch', 'state_dict',
// 'best_acc1': tensor(...), 'optimizer'}: the tensor beside the candidate
// does not stop the selection.
TEST(SelectAuto, ACandidateWinsOverTensorsBesideIt) {
  CkptBuilder b;
  Dict sd(b), opt(b);
  sd.add(b, "fc.weight", b.tensor(TSD_FLOAT32, {1}, &one));
  opt.add(b, "state", b.integer(0));
  b.add("epoch", b.integer(90)).add("arch", b.str("resnet18"));
  b.add("state_dict", sd.v).f32("best_acc1", {1}).add("optimizer", opt.v);
  const char *key = nullptr;
  ASSERT_EQ(tsd_checkpoint_select_auto(&key, b.get()), TSD_OK)
      << tsd_last_error();
  EXPECT_STREQ(key, "state_dict");
  ASSERT_EQ(tsd_checkpoint_count(b.get()), 1u);
  tsd_entry e;
  ASSERT_EQ(tsd_checkpoint_entry(&e, b.get(), 0), TSD_OK);
  EXPECT_STREQ(e.key, "fc.weight");
  // A candidate holding no tensor leaves the dict with its tensor as is.
  CkptBuilder c;
  Dict none(c);
  none.add(c, "lr", c.integer(3));
  c.add("model", none.v).f32("w", {1});
  key = "unset";
  ASSERT_EQ(tsd_checkpoint_select_auto(&key, c.get()), TSD_OK);
  EXPECT_EQ(key, nullptr);
  EXPECT_EQ(tsd_checkpoint_count(c.get()), 2u);
}

TEST(SelectAuto, EmaIsChosenOnlyWithoutRawWeights) {
  CkptBuilder b;
  Dict ema(b);
  ema.add(b, "w", b.tensor(TSD_FLOAT32, {1}, &one));
  b.add("epoch", b.integer(1)).add("state_dict_ema", ema.v);
  const char *key = nullptr;
  ASSERT_EQ(tsd_checkpoint_select_auto(&key, b.get()), TSD_OK);
  EXPECT_STREQ(key, "state_dict_ema");
}

TEST(SelectAuto, NoCandidateIsNotFoundNamingTheKeys) {
  CkptBuilder b;
  Dict other(b);
  other.add(b, "w", b.tensor(TSD_FLOAT32, {1}, &one));
  b.add("epoch", b.integer(1)).add("weights_of_something", other.v);
  const char *key = "unset";
  EXPECT_EQ(tsd_checkpoint_select_auto(&key, b.get()), TSD_ERR_NOT_FOUND);
  EXPECT_EQ(key, nullptr);
  EXPECT_NE(std::string(tsd_last_error()).find("'weights_of_something'"),
            std::string::npos);
}

TEST(SelectAuto, ARootThatIsNoDictIsATypeError) {
  CkptBuilder b;
  b.root_list();
  EXPECT_EQ(tsd_checkpoint_select_auto(nullptr, b.get()), TSD_ERR_TYPE);
  EXPECT_EQ(tsd_checkpoint_select_auto(nullptr, nullptr),
            TSD_ERR_INVALID_ARG);
}

TEST(SelectAuto, OnRealTrainingCheckpoints) {
  tsd_checkpoint *c = nullptr;
  ASSERT_EQ(tsd_checkpoint_open(&c, TSD_FIXTURES "/nested.pth", nullptr),
            TSD_OK);
  const char *key = nullptr;
  EXPECT_EQ(tsd_checkpoint_select_auto(&key, c), TSD_OK) << tsd_last_error();
  EXPECT_STREQ(key, "state_dict");
  EXPECT_EQ(tsd_checkpoint_count(c), 2u);
  tsd_checkpoint_free(c);
  ASSERT_EQ(tsd_checkpoint_open(&c, TSD_FIXTURES "/remap_train.pth", nullptr),
            TSD_OK);
  EXPECT_EQ(tsd_checkpoint_select_auto(&key, c), TSD_OK) << tsd_last_error();
  EXPECT_STREQ(key, "model");
  EXPECT_EQ(tsd_checkpoint_count(c), 7u);
  tsd_checkpoint_free(c);
}
