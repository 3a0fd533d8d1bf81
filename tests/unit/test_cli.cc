// test_cli.cc — the `tsd` command's output and exit statuses on committed
// fixtures (tests/fixtures; remap_*.pth from make_remap_fixtures.py): help
// texts, key remapping and selection flags of `tsd load`, `tsd diff`,
// `tsd pop`, `tsd inspect`'s table and file metadata, and
// --torchscript-checkpoint (shim_*.pt from make_shim_fixtures.py). Runs the
// built binary (TSD_CLI).
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "test_helpers.h"
#include "tsd.h"

namespace {

using Out = tsdtest::CliOut;

std::string q(const std::string &s) { return tsdtest::shell_quote(s); }

Out tsd(const std::string &args) { return tsdtest::run_cli(args); }

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
  for (const char *c : {"load", "inspect", "diff"})
    EXPECT_TRUE(has(tsd(std::string(c) + " --help").out,
                    "--torchscript-checkpoint"))
        << c;
  EXPECT_TRUE(has(tsd("inspect --help").out, "metadata")) << "inspect";
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
  EXPECT_EQ(j.out, "{\"schema_version\": 1, \"ok\": true, \"class_name\": "
                   "\"Sequential\", \"matched_keys\": [\"0.weight\", "
                   "\"0.bias\", \"1.weight\", \"1.bias\", \"1.running_mean\", "
                   "\"1.running_var\", \"1.num_batches_tracked\"], "
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
  EXPECT_EQ(r.out.rfind("{\"schema_version\": 1, \"ok\": false, "
                        "\"class_name\": \"Sequential\", \"matched_keys\": "
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
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "tsd pop: popped 2 keys; wrote " + out +
                       " (5 tensors, torch.save .pth)\n");
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
  EXPECT_EQ(b.err, "tsd pop: popped 0 keys; wrote " + out +
                       " (7 tensors, torch.save .pth)\n");
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

// ---- inspect ---------------------------------------------------------------------

// st_small.safetensors (make_formats_fixtures.py): one tensor of every dtype,
// __metadata__ {"format": "pt", "note": "tsd été fixture"}. The byte counts
// are data_offsets differences of its header. Keys come sorted, as
// safetensors.torch.load_file gives them (the header has w.f32 first).
TEST(Cli, InspectSafetensorsPrintsDtypeTotalsAndMetadata) {
  Out r = tsd("inspect " + fx("st_small.safetensors"));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out,
            "key     dtype     shape             bytes\n"
            "a.f64   float64   [2, 3]               48\n"
            "b.bf16  bfloat16  [2, 2]                8\n"
            "empty   float32   [0, 3]                0\n"
            "h.f16   float16   [5]                  10\n"
            "i.i16   int16     [2, 2]                8\n"
            "i.i32   int32     [3]                  12\n"
            "i.i64   int64     [3]                  24\n"
            "i.i8    int8      [5]                   5\n"
            "m.bool  bool      [4]                   4\n"
            "scalar  float32   []                    4\n"
            "u.u8    uint8     [3]                   3\n"
            "w.f32   float32   [3, 4]               48\n"
            "z.last  float32   [1, 2, 3]            24\n"
            "-----------------------------------------\n"
            "total   float64   1 tensor             48\n"
            "total   bfloat16  1 tensor              8\n"
            "total   float32   4 tensors            76\n"
            "total   float16   1 tensor             10\n"
            "total   int16     1 tensor              8\n"
            "total   int32     1 tensor             12\n"
            "total   int64     1 tensor             24\n"
            "total   int8      1 tensor              5\n"
            "total   bool      1 tensor              4\n"
            "total   uint8     1 tensor              3\n"
            "13 tensors, 56 elements, 198 bytes\n"
            "metadata:\n"
            "  format  pt\n"
            "  note    tsd \xc3\xa9t\xc3\xa9 fixture\n");
}

TEST(Cli, InspectSafetensorsJsonHasDtypeTotalsAndMetadata) {
  std::string path = std::string(TSD_FIXTURES) + "/st_small.safetensors";
  Out r = tsd("inspect " + q(path) + " --json");
  EXPECT_EQ(r.rc, 0) << r.err;
  auto t = [](const char *key, const char *dtype, const char *shape,
              int numel, int bytes) {
    return std::string("{\"key\": \"") + key +
           "\", \"kind\": \"tensor\", \"dtype\": \"" + dtype +
           "\", \"shape\": " + shape + ", \"numel\": " +
           std::to_string(numel) + ", \"bytes\": " + std::to_string(bytes) +
           ", \"parameter\": false}";
  };
  std::string expect =
      "{\"schema_version\": 1, \"ok\": true, \"file\": \"" + path +
      "\", \"root_kind\": \"dict\", \"tensors\": 13, \"numel\": 56, "
      "\"bytes\": 198, \"entries\": [" +
      t("a.f64", "float64", "[2, 3]", 6, 48) + ", " +
      t("b.bf16", "bfloat16", "[2, 2]", 4, 8) + ", " +
      t("empty", "float32", "[0, 3]", 0, 0) + ", " +
      t("h.f16", "float16", "[5]", 5, 10) + ", " +
      t("i.i16", "int16", "[2, 2]", 4, 8) + ", " +
      t("i.i32", "int32", "[3]", 3, 12) + ", " +
      t("i.i64", "int64", "[3]", 3, 24) + ", " +
      t("i.i8", "int8", "[5]", 5, 5) + ", " +
      t("m.bool", "bool", "[4]", 4, 4) + ", " +
      t("scalar", "float32", "[]", 1, 4) + ", " +
      t("u.u8", "uint8", "[3]", 3, 3) + ", " +
      t("w.f32", "float32", "[3, 4]", 12, 48) + ", " +
      t("z.last", "float32", "[1, 2, 3]", 6, 24) +
      "], \"bytes_by_dtype\": {\"float64\": 48, \"bfloat16\": 8, "
      "\"float32\": 76, \"float16\": 10, \"int16\": 8, \"int32\": 12, "
      "\"int64\": 24, \"int8\": 5, \"bool\": 4, \"uint8\": 3}, "
      "\"metadata\": {\"format\": \"pt\", \"note\": \"tsd \xc3\xa9t\xc3\xa9 "
      "fixture\"}, \"selected\": null}\n";
  EXPECT_EQ(r.out, expect);
}

// A sharded index's "metadata": numbers come as their JSON text.
TEST(Cli, InspectShardedIndexShowsItsMetadata) {
  Out r = tsd("inspect " + fx("shard_st.index.json"));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "10 tensors, 40 elements, 164 bytes\n"
                         "metadata:\n"
                         "  total_size  164\n"
                         "  format      safetensors\n"))
      << r.out;
  Out j = tsd("inspect " + fx("shard_st.index.json") + " --json");
  EXPECT_TRUE(has(j.out, "\"bytes_by_dtype\": {\"float32\": 156, \"int64\": "
                         "8}, \"metadata\": {\"total_size\": \"164\", "
                         "\"format\": \"safetensors\"}, \"selected\": null}\n"))
      << j.out;
}

// torch.save files have no file metadata: no heading, an empty object.
TEST(Cli, InspectPthHasNoFileMetadata) {
  Out r = tsd("inspect " + fx("small.pth"));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_FALSE(has(r.out, "metadata:")) << r.out;
  EXPECT_TRUE(has(r.out, "total  float32  1 tensor            16\n"
                         "total  int64    1 tensor            16\n"
                         "2 tensors, 6 elements, 32 bytes\n"))
      << r.out;
  Out j = tsd("inspect " + fx("small.pth") + " --json");
  EXPECT_TRUE(has(j.out, "\"bytes_by_dtype\": {\"float32\": 16, \"int64\": "
                         "16}, \"metadata\": {}, \"selected\": null}\n"))
      << j.out;
}

// A top level that is no dict: said in one line, not an empty table.
TEST(Cli, InspectSaysWhatATopLevelThatIsNoDictIs) {
  Out r = tsd("inspect " + fx("list_root.pth"));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "top level: list, not a dict: no state dict to list\n");
  Out o = tsd("inspect " + std::string(TSD_FIXTURES) +
              "/../malformed/cases/refused_posix_system.bin");
  EXPECT_EQ(o.rc, 0) << o.err;
  EXPECT_EQ(o.out, "top level: object (posix.system), not a dict: no state "
                   "dict to list\n");
}

// ---- --torchscript-checkpoint ---------------------------------------------------

// Without the option a TorchScript archive reads as inert module objects,
// not a state dict (it never reaches LibTorch), with a hint naming the option.
// A TorchScript archive is read as its state_dict() without the option,
// running nothing of it (torchscript_state.c; test_ts_state.cc in detail).
TEST(Cli, TorchScriptArchiveIsReadAsItsStateDictWithoutTheOption) {
  const std::string model =
      "--model-spec " + fx("small.pth") + " --class-name M ";
  Out r = tsd("inspect " + fx("shim_tiny.pt"));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "13 tensors, 118 elements, 488 bytes")) << r.out;
  r = tsd("load --non-strict " + model + fx("shim_tiny.pt"));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "_IncompatibleKeys(missing_keys=['w', 'b'], "
                         "unexpected_keys=['dbl', 'tview', 'scale',"))
      << r.out;
  r = tsd("diff " + model + fx("shim_cpp_seq.pt"));
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_TRUE(has(r.out, "0 matched, 2 missing, 8 unexpected")) << r.out;
  // Other placeholders get no such hint: a bare global opens (no entries).
  Out o = tsd("inspect --json " + fx("refused.pth"));
  EXPECT_EQ(o.rc, 0) << o.err;
  EXPECT_TRUE(has(o.out, "\"root_kind\": \"other\"")) << o.out;
  EXPECT_FALSE(has(o.err, "--torchscript-checkpoint")) << o.err;
}

// Each build checks what it can do: the pure-C build the clear error, the
// LibTorch build the archive's state dict.
static void check_torchscript_option_without_libtorch() {
  const std::string model =
      "--model-spec " + fx("small.pth") + " --class-name M ";
  for (const std::string &args :
       {"inspect --torchscript-checkpoint " + fx("shim_tiny.pt"),
        "load --non-strict --torchscript-checkpoint " + model +
            fx("shim_tiny.pt"),
        "diff --torchscript-checkpoint " + model + fx("shim_tiny.pt"),
        "convert --torchscript-checkpoint " + fx("shim_tiny.pt") + " " +
            q(tmp("never.safetensors"))}) {
    Out r = tsd(args);
    EXPECT_EQ(r.rc, 2) << args;
    EXPECT_EQ(r.out, "") << args;
    EXPECT_TRUE(has(r.err, "this build of tsd has no LibTorch")) << r.err;
    EXPECT_TRUE(has(r.err, "(TSD_ERR_UNSUPPORTED)")) << r.err;
  }
  EXPECT_FALSE(std::ifstream(tmp("never.safetensors")).good());
}

namespace {
// shim_cpp_seq.values: key, dtype, shape ("8,4"), values; one tensor a line.
std::vector<std::vector<std::string>> read_values(const char *name) {
  std::ifstream f(std::string(TSD_FIXTURES) + "/" + name);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(f, line)) {
    std::vector<std::string> cols;
    std::stringstream ss(line);
    std::string c;
    while (std::getline(ss, c, '\t')) cols.push_back(c);
    rows.push_back(cols);
  }
  return rows;
}
} // namespace

static void check_torchscript_option_with_libtorch() {
  // inspect: the keys, dtypes and shapes Python's
  // torch.jit.load(...).state_dict() holds, in its order.
  auto rows = read_values("shim_cpp_seq.values");
  ASSERT_GT(rows.size(), 0u);
  Out r = tsd("inspect --json --torchscript-checkpoint " +
              fx("shim_cpp_seq.pt"));
  ASSERT_EQ(r.rc, 0) << r.err;
  size_t at = 0;
  for (const auto &row : rows) {
    ASSERT_GE(row.size(), 3u);
    std::string shape = "[" + row[2] + "]";
    for (size_t c = 0; (c = shape.find(',', c)) != std::string::npos; c += 2)
      shape.replace(c, 1, ", ");
    std::string entry = "{\"key\": \"" + row[0] +
                        "\", \"kind\": \"tensor\", \"dtype\": \"" + row[1] +
                        "\", \"shape\": " + shape + ",";
    size_t pos = r.out.find(entry, at);
    EXPECT_NE(pos, std::string::npos) << entry << "\n" << r.out;
    if (pos != std::string::npos) at = pos;
  }
  EXPECT_TRUE(has(r.out, "\"tensors\": " + std::to_string(rows.size()) + ","))
      << r.out;
  // load and diff: a scripted Tiny's state into the TorchScript Tiny.
  Out l = tsd("load --torchscript-checkpoint " + fx("shim_tiny.pt") + " " +
              fx("shim_tiny_src.pt"));
  EXPECT_EQ(l.rc, 0) << l.err;
  EXPECT_EQ(l.out, "<All keys matched successfully>\n");
  Out d = tsd("diff " + fx("shim_tiny.pt") + " " + fx("shim_tiny_src.pt") +
              " --torchscript-checkpoint");
  EXPECT_EQ(d.rc, 0) << d.err;
  EXPECT_TRUE(has(d.out, " 0 missing, 0 unexpected, 0 shape mismatches: a "
                         "strict load would succeed\n"))
      << d.out;
  // convert: the archive's state dict as a safetensors file, read back.
  std::string out = tmp("cpp_seq.safetensors");
  Out c = tsd("convert --torchscript-checkpoint " + fx("shim_cpp_seq.pt") +
              " " + q(out));
  EXPECT_EQ(c.rc, 0) << c.err;
  Out back = tsd("inspect " + q(out));
  EXPECT_TRUE(has(back.out, std::to_string(rows.size()) + " tensors, ")) <<
      back.out;
  remove(out.c_str());
}

TEST(Cli, TorchScriptCheckpointOptionLoadsWithLibTorchElseIsAClearError) {
  if (tsd_has_torch())
    check_torchscript_option_with_libtorch();
  else
    check_torchscript_option_without_libtorch();
}
