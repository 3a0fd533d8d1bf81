// test_cli_conventions.cc — the conventions every `tsd` command shares (one
// option parser: --opt=value, --, did you mean; `-` as stdin/stdout; write
// errors; help; --quiet; stderr for status lines), the hints where the
// common cases fail, the options convert/pop/diff gained, and the JSON
// schema (docs/json-schema.md) that every --json output follows. Runs the
// built binary (TSD_CLI) on committed fixtures.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <vector>

#include "test_helpers.h"
#include "tsd.h"

namespace {

using Out = tsdtest::CliOut;
using tsdtest::shell_quote;

std::string q(const std::string &s) { return shell_quote(s); }

std::string slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// `args` goes through the shell: redirections ("< file", "> /dev/full")
// may be part of it.
Out tsd(const std::string &args) { return tsdtest::run_cli(args); }

std::string fxp(const char *name) {
  return std::string(TSD_FIXTURES) + "/" + name;
}
std::string fx(const char *name) {
  return q(fxp(name));
}

std::string tmp(const char *name) {
  return tsdtest::temp_dir() + "/cliconv_" + std::to_string(getpid()) + "_" +
         name;
}

bool has(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

// metadata.pth: Sequential(Linear(2, 3), BatchNorm1d(3))'s state dict;
// remap_dp.pth the same under "module."; remap_head.pth with 5 outputs;
// remap_train.pth {"epoch", "model": state dict, "optimizer"}.
const std::string kSpec =
    "--model-spec " + fx("metadata.pth") + " --class-name Sequential ";

const char *const kLoadUsage =
    "usage: tsd load MODEL.pt CHECKPOINT [options]\n"
    "       tsd load --model-spec SPEC --class-name NAME CHECKPOINT "
    "[options]\n"
    "try 'tsd load --help'\n";

} // namespace

// ---- the option parser ----------------------------------------------------

TEST(CliOptions, GnuEqualsFormAndDoubleDash) {
  Out r = tsd("load --model-spec=" + fx("metadata.pth") +
              " --class-name=Sequential --strip-prefix=module. " +
              fx("remap_dp.pth"));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "<All keys matched successfully>\n");
  // after --, everything is an argument (a KEY, a file)
  std::string out = tmp("dd.pth");
  Out p = tsd("pop -o " + q(out) + " -- " + fx("metadata.pth") + " 0.bias");
  EXPECT_EQ(p.rc, 0) << p.err;
  Out l = tsd("load -q --non-strict " + kSpec + "-- " + q(out));
  EXPECT_EQ(l.out, "_IncompatibleKeys(missing_keys=['0.bias'], "
                   "unexpected_keys=[])\n");
  remove(out.c_str());
  // --output= is -o's long form
  Out o = tsd("pop " + fx("metadata.pth") + " 0.bias --output=" + q(out));
  EXPECT_EQ(o.rc, 0) << o.err;
  remove(out.c_str());
}

TEST(CliOptions, AMistypedOptionIsOneUsageLineWithDidYouMean) {
  Out r = tsd("load --jsn " + kSpec + fx("small.pth"));
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, std::string("tsd load: unknown option '--jsn' (did you "
                               "mean '--json'?)\n") +
                       kLoadUsage);
  r = tsd("load --strip module. " + kSpec + fx("small.pth"));
  EXPECT_EQ(r.err, std::string("tsd load: unknown option '--strip' (did you "
                               "mean '--strip-prefix'?)\n") +
                       kLoadUsage);
  r = tsd("inspect " + fx("small.pth") + " --select");
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "tsd inspect: option '--select' needs a value\n"
                   "usage: tsd inspect CHECKPOINT [--json] [--select KEY] "
                   "[--torchscript-checkpoint]\n"
                   "try 'tsd inspect --help'\n");
  r = tsd("inspect --json=yes " + fx("small.pth"));
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "tsd inspect: option '--json' takes no value\n"))
      << r.err;
  r = tsd("pop " + fx("small.pth") + " -w -o x.pth");
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "unknown option '-w' (put -- before an argument "
                         "that starts with -)"))
      << r.err;
  r = tsd("lod");
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "tsd: unknown command 'lod' (did you mean 'load'?)\n"
                   "usage: tsd <command> [args]\n"
                   "try 'tsd --help'\n");
}

TEST(CliOptions, HelpCmdIsCmdHelp) {
  for (const char *c : {"load", "inspect", "diff", "pop", "convert"}) {
    Out a = tsd(std::string("help ") + c), b = tsd(std::string(c) + " --help"),
        h = tsd(std::string(c) + " -h");
    EXPECT_EQ(a.rc, 0) << c;
    EXPECT_EQ(a.out, b.out) << c;
    EXPECT_EQ(a.out, h.out) << c;
    EXPECT_EQ(a.out.rfind(std::string("usage: tsd ") + c, 0), 0u) << a.out;
    for (const char *common : {"--quiet", "--opt=VALUE", "exit status"})
      EXPECT_TRUE(has(a.out, common)) << c << " " << common;
  }
  EXPECT_EQ(tsd("help").out, tsd("--help").out);
  EXPECT_EQ(tsd("help nope").rc, 2);
}

// ---- stdin, stdout, write errors
// ---------------------------------------------

TEST(CliStreams, DashIsStdinForEveryInput) {
  Out file = tsd("inspect " + fx("small.pth"));
  Out in = tsd("inspect - < " + fx("small.pth"));
  EXPECT_EQ(in.rc, 0) << in.err;
  EXPECT_EQ(in.out, file.out);
  Out l =
      tsd("load --model-spec - --class-name Sequential " + fx("remap_dp.pth") +
          " --strip-prefix module. < " + fx("metadata.pth"));
  EXPECT_EQ(l.rc, 0) << l.err;
  EXPECT_EQ(l.out, "<All keys matched successfully>\n");
  Out d = tsd("diff " + kSpec + "- < " + fx("metadata.pth"));
  EXPECT_EQ(d.rc, 0) << d.err;
  Out two = tsd("load --model-spec - --class-name M - < " + fx("small.pth"));
  EXPECT_EQ(two.rc, 2);
  EXPECT_TRUE(has(two.err, "only one input can be '-' (stdin)")) << two.err;
  Out model = tsd("load - " + fx("small.pth") + " < " + fx("small.pth"));
  EXPECT_EQ(model.rc, 2);
  EXPECT_TRUE(has(model.err, "tsd load: MODEL.pt cannot be '-'")) << model.err;
}

TEST(CliStreams, DashIsStdoutForEveryOutput) {
  std::string a = tmp("stdout_convert.pth"), b = tmp("stdout_pop.pth");
  Out c = tsd("convert " + fx("metadata.pth") + " - > " + q(a));
  EXPECT_EQ(c.rc, 0) << c.err;
  EXPECT_EQ(c.err, "tsd convert: wrote stdout (7 tensors, torch.save .pth)\n");
  Out p = tsd("pop " + fx("metadata.pth") + " 0.bias -o - > " + q(b));
  EXPECT_EQ(p.rc, 0) << p.err;
  EXPECT_FALSE(std::ifstream("-").good()) << "a file named - was written";
  Out ia = tsd("inspect " + q(a)), ib = tsd("inspect - < " + q(b));
  EXPECT_TRUE(has(ia.out, "7 tensors, 22 elements")) << ia.out;
  EXPECT_TRUE(has(ib.out, "6 tensors, 19 elements")) << ib.out;
  // load -o -: the model on stdout, the report on stderr
  Out l = tsd("load " + kSpec + fx("metadata.pth") + " -o - > " + q(a));
  EXPECT_EQ(l.rc, 0) << l.err;
  EXPECT_EQ(l.err, "<All keys matched successfully>\n");
  EXPECT_TRUE(has(tsd("inspect " + q(a)).out, "7 tensors")) << a;
  remove(a.c_str());
  remove(b.c_str());
}

TEST(CliStreams, WriteErrorsOnStdoutExit2) {
  for (std::string args :
       {"inspect " + fx("small.pth"), "inspect --json " + fx("small.pth"),
        "diff " + kSpec + fx("metadata.pth"),
        "load " + kSpec + fx("metadata.pth"), std::string("--help"),
        std::string("load --help"), "convert " + fx("metadata.pth") + " -"}) {
    Out r = tsd(args + " > /dev/full");
    EXPECT_EQ(r.rc, 2) << args;
    EXPECT_TRUE(has(r.err, "No space left on device")) << args << "\n" << r.err;
  }
}

// convert and pop show a progress bar on stderr when it is a terminal and
// the input is larger than 64 MB (a sparse 68 MB safetensors file; `script`
// gives the command a terminal).
TEST(CliStreams, ConvertAndPopShowProgressOnATerminal) {
  if (system("command -v script >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "no script(1) to provide a terminal";
  std::string big = tmp("big.safetensors"), out = tmp("big_out.pth");
  std::string hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[17000000],"
                    "\"data_offsets\":[0,68000000]},\"b\":{\"dtype\":\"F32\","
                    "\"shape\":[1],\"data_offsets\":[68000000,68000004]}}";
  while (hdr.size() % 8)
    hdr += ' ';
  {
    std::ofstream f(big, std::ios::binary);
    char n[8]; // the header's length, little-endian on any host
    for (int k = 0; k < 8; k++)
      n[k] = static_cast<char>((uint64_t)hdr.size() >> (8 * k) & 0xff);
    f.write(n, 8);
    f << hdr;
  }
  ASSERT_EQ(truncate(big.c_str(), (off_t)(8 + hdr.size() + 68000004)), 0);
  auto on_tty = [](const std::string &args) {
    Out r;
    std::string cmd =
        "script -qec " + q(std::string(TSD_CLI) + " " + args) + " /dev/null";
    FILE *p = popen(cmd.c_str(), "r");
    char buf[4096];
    size_t k;
    while (p && (k = fread(buf, 1, sizeof buf, p)) > 0)
      r.out.append(buf, k);
    int st = p ? pclose(p) : -1;
    r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
  };
  for (const std::string &args : {"convert " + q(big) + " " + q(out),
                                  "pop " + q(big) + " b -o " + q(out)}) {
    Out r = on_tty(args);
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.out;
    EXPECT_TRUE(has(r.out, "\rwriting [")) << args << "\n" << r.out;
    EXPECT_TRUE(has(r.out, "] 100%  68.0/68.0 MB")) << args << "\n" << r.out;
    Out quiet = on_tty(args + " --quiet");
    EXPECT_EQ(quiet.rc, 0);
    EXPECT_FALSE(has(quiet.out, "writing [")) << quiet.out;
  }
  remove(big.c_str());
  remove(out.c_str());
}

// ---- status lines, --quiet
// ------------------------------------------------------

TEST(CliStreams, StatusLinesGoToStderrAndQuietSilencesThem) {
  std::string out = tmp("quiet.safetensors");
  Out c = tsd("convert " + fx("metadata.pth") + " " + q(out));
  EXPECT_EQ(c.rc, 0);
  EXPECT_EQ(c.out, "");
  EXPECT_EQ(c.err, "tsd convert: wrote " + out + " (7 tensors, safetensors)\n");
  Out qc = tsd("convert -q " + fx("metadata.pth") + " " + q(out));
  EXPECT_EQ(qc.rc, 0);
  EXPECT_EQ(qc.out + qc.err, "");
  Out l = tsd("load --quiet " + kSpec + fx("remap_train.pth"));
  EXPECT_EQ(l.rc, 0);
  EXPECT_EQ(l.err, ""); // no "using the state dict under 'model'"
  EXPECT_EQ(l.out, "<All keys matched successfully>\n");
  // errors stay
  Out e = tsd("inspect -q " + q(tmp("absent.pth")));
  EXPECT_EQ(e.rc, 2);
  EXPECT_TRUE(has(e.err, "tsd inspect: cannot read checkpoint: ")) << e.err;
  remove(out.c_str());
}

// ---- hints
// ---------------------------------------------------------------------

TEST(CliHints, ASizeMismatchSuggestsAutoPop) {
  Out r = tsd("load " + kSpec + fx("remap_head.pth"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "tsd load: hint: 6 keys differ in shape from the model's: "
                   "--auto-pop drops them from the checkpoint and loads the "
                   "rest (tsd diff shows both shapes)\n");
  Out d = tsd("diff " + kSpec + fx("remap_head.pth"));
  EXPECT_TRUE(has(d.err, "hint: 6 keys differ in shape")) << d.err;
}

TEST(CliHints, TextAutoPopListsWhatItDroppedWithBothShapes) {
  Out r = tsd("load --non-strict --auto-pop " + kSpec + fx("remap_head.pth"));
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.err, "tsd load: popped '0.weight': checkpoint [5, 2], model "
                   "[3, 2]\n"
                   "tsd load: popped '0.bias': checkpoint [5], model [3]\n"
                   "tsd load: popped '1.weight': checkpoint [5], model [3]\n"
                   "tsd load: popped '1.bias': checkpoint [5], model [3]\n"
                   "tsd load: popped '1.running_mean': checkpoint [5], model "
                   "[3]\n"
                   "tsd load: popped '1.running_var': checkpoint [5], model "
                   "[3]\n");
}

TEST(CliHints, UnexpectedKeysSharingAPrefixTheModelLacksSuggestStripPrefix) {
  const std::string hint =
      "hint: all unexpected keys start with 'module.', which no model key "
      "does: --strip-prefix module. removes it\n";
  Out l = tsd("load " + kSpec + fx("remap_dp.pth"));
  EXPECT_EQ(l.rc, 1);
  EXPECT_EQ(l.err, "tsd load: " + hint);
  Out d = tsd("diff " + kSpec + fx("remap_dp.pth"));
  EXPECT_EQ(d.rc, 1);
  EXPECT_EQ(d.err, "tsd diff: " + hint);
  // the model has the prefix itself: no hint
  Out m = tsd("load --non-strict --model-spec " + fx("remap_dp.pth") +
              " --class-name DataParallel " + fx("metadata.pth"));
  EXPECT_FALSE(has(m.err, "--strip-prefix")) << m.err;
}

TEST(CliHints, ADirectoryNamesItsIndex) {
  std::string d = tmp("sharded_dir");
  mkdir(d.c_str(), 0777);
  std::ofstream(d + "/model.safetensors.index.json") << "{}";
  Out r = tsd("inspect " + q(d));
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "tsd inspect: " + d +
                       " is a directory, not a checkpoint file\n"
                       "tsd inspect: hint: a sharded checkpoint is opened by "
                       "its index: " +
                       d + "/model.safetensors.index.json\n");
  remove((d + "/model.safetensors.index.json").c_str());
  rmdir(d.c_str());
}

TEST(CliHints, SwappedModelAndCheckpointAreRecognised) {
  Out r = tsd("diff " + fx("metadata.pth") + " " + fx("shim_tiny.pt"));
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "tsd diff: cannot open model: " + fxp("metadata.pth") +
                       " is a checkpoint, not a TorchScript model "
                       "(torch.jit.save output)\n"
                       "tsd diff: hint: the arguments look swapped: the model "
                       "comes first: tsd diff " +
                       fxp("shim_tiny.pt") + " " + fxp("metadata.pth") + "\n");
  Out s = tsd("load " + fx("metadata.pth") + " " + fx("small.pth"));
  EXPECT_EQ(s.rc, 2);
  EXPECT_TRUE(has(s.err, "tsd load: hint: to build the model from its "
                         "tensors: --model-spec " +
                             fxp("metadata.pth") + " --class-name NAME\n"))
      << s.err;
  // no C function names, no library jargon
  std::regex cname("tsd_[a-z_]+|current dict");
  for (const Out &o : {r, s})
    EXPECT_FALSE(std::regex_search(o.err, cname)) << o.err;
}

TEST(CliHints, AMistypedKeySaysDidYouMean) {
  std::string out = tmp("dym.pth");
  Out p = tsd("pop " + fx("metadata.pth") + " 0.bais -o " + q(out));
  EXPECT_EQ(p.rc, 2);
  EXPECT_EQ(p.err, "tsd pop: cannot pop: no key '0.bais' in " +
                       fxp("metadata.pth") +
                       "\ntsd pop: hint: did you mean '0.bias'?\n");
  Out s = tsd("load " + kSpec + fx("remap_train.pth") + " --select modle");
  EXPECT_EQ(s.rc, 2);
  EXPECT_EQ(s.err, "tsd load: --select: no key 'modle' in the checkpoint\n"
                   "tsd load: hint: did you mean 'model'?\n");
  Out far = tsd("inspect " + fx("remap_train.pth") + " --select zzzzzz");
  EXPECT_FALSE(has(far.err, "did you mean")) << far.err;
  std::regex cname("tsd_[a-z_]+|current dict");
  for (const Out &o : {p, s, far})
    EXPECT_FALSE(std::regex_search(o.err, cname)) << o.err;
}

// ---- options
// -----------------------------------------------------------------------

TEST(CliOptions, InspectSelectAutoWorks) {
  Out r = tsd("inspect " + fx("remap_train.pth") + " --select auto");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "7 tensors, 22 elements")) << r.out;
  EXPECT_EQ(r.err, "tsd inspect: --select auto: using 'model'\n");
}

TEST(CliOptions, DiffNonStrict) {
  Out r = tsd("diff --non-strict " + kSpec + fx("remap_dp.pth"));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "0 matched, 6 missing, 7 unexpected, 0 shape "
                         "mismatches: a non-strict load would succeed\n"))
      << r.out;
  Out m = tsd("diff --non-strict " + kSpec + fx("remap_head.pth"));
  EXPECT_EQ(m.rc, 1); // size mismatches raise even when not strict
  EXPECT_TRUE(has(m.out, "a non-strict load would raise")) << m.out;
  Out j = tsd("diff --non-strict --json " + kSpec + fx("remap_dp.pth"));
  EXPECT_TRUE(has(j.out, "\"message\": \"_IncompatibleKeys(missing_keys="))
      << j.out;
}

TEST(CliOptions, DiffNeedsClassNameWithModelSpecAsLoadDoes) {
  for (const char *cmd : {"diff", "load"}) {
    Out r = tsd(std::string(cmd) + " --model-spec " + fx("metadata.pth") + " " +
                fx("metadata.pth"));
    EXPECT_EQ(r.rc, 2) << cmd;
    EXPECT_TRUE(has(r.err, std::string("tsd ") + cmd +
                               ": --model-spec needs --class-name"))
        << r.err;
  }
}

// A DataParallel checkpoint to a clean state dict that loads strictly.
TEST(CliOptions, ConvertAndPopRemapKeys) {
  std::string out = tmp("clean.pth"), st = tmp("clean.safetensors");
  Out c = tsd("convert " + fx("remap_dp.pth") + " " + q(out) +
              " --strip-prefix module.");
  ASSERT_EQ(c.rc, 0) << c.err;
  Out l = tsd("load " + kSpec + q(out));
  EXPECT_EQ(l.rc, 0) << l.out << l.err;
  EXPECT_EQ(l.out, "<All keys matched successfully>\n");
  // versions follow the renamed modules: Python reads them back
  auto py =
      tsdtest::run_python("import torch\n"
                          "sd = torch.load('" +
                          out +
                          "')\n"
                          "print(sorted(sd._metadata.keys()), list(sd)[:2])\n");
  EXPECT_EQ(py.second, "['', '0', '1'] ['0.weight', '0.bias']\n");
  // training checkpoint: --select then strip; pop with a rename
  Out s = tsd("convert " + fx("remap_train.pth") + " " + q(st) +
              " --select model --add-prefix net.");
  ASSERT_EQ(s.rc, 0) << s.err;
  EXPECT_TRUE(has(tsd("inspect " + q(st)).out, "net.0.weight")) << st;
  Out p = tsd("pop " + fx("remap_dp.pth") + " module.0.bias -o " + q(out) +
              " --strip-prefix module. --rename 1.=bn.");
  ASSERT_EQ(p.rc, 0) << p.err;
  Out i = tsd("inspect " + q(out));
  EXPECT_TRUE(has(i.out, "\nbn.running_var ")) << i.out;
  EXPECT_FALSE(has(i.out, "0.bias")) << i.out;
  // two keys renamed to one name: an error, nothing written
  remove(out.c_str());
  Out x =
      tsd("convert " + fx("metadata.pth") + " " + q(out) + " --rename 0.=1.");
  EXPECT_EQ(x.rc, 2);
  EXPECT_FALSE(std::ifstream(out).good());
  remove(st.c_str());
}

// ---- JSON
// ----------------------------------------------------------------------------

namespace {
// The doc's "Key order of each object" block: name -> keys.
std::map<std::string, std::vector<std::string>> documented_keys() {
  std::string doc =
      slurp(std::string(TSD_FIXTURES) + "/../../docs/json-schema.md");
  std::map<std::string, std::vector<std::string>> m;
  size_t at = doc.find("```text\n");
  if (at == std::string::npos) return m;
  std::stringstream ss(doc.substr(at + 8, doc.find("```", at + 8) - at - 8));
  std::string line;
  while (std::getline(ss, line)) {
    std::stringstream ls(line);
    std::string name, k;
    ls >> name;
    if (name.empty() || name.back() != ':') continue;
    name.pop_back();
    while (ls >> k)
      m[name].push_back(k);
  }
  return m;
}
} // namespace

TEST(Json, EveryOutputHasTheDocumentedKeysInOrder) {
  auto keys = documented_keys();
  ASSERT_EQ(keys.size(), 4u);
  std::string out = tmp("json_out.pth");
  struct Case {
    std::string args, object;
    int rc;
  } cases[] = {
      {"load --json " + kSpec + fx("remap_train.pth"), "report", 0},
      {"load --json " + kSpec + fx("remap_head.pth"), "report", 1},
      {"diff --json " + kSpec + fx("remap_dp.pth"), "report", 1},
      {"inspect --json " + fx("st_small.safetensors"), "inspect", 0},
      {"convert --json " + fx("metadata.pth") + " " + q(out), "written", 0},
      {"pop --json " + fx("metadata.pth") + " 0.bias -o " + q(out), "written",
       0},
      {"inspect --json " + q(tmp("absent.pth")), "error", 2},
      {"load --json --bogus", "error", 2},
      {"pop --json " + fx("metadata.pth") + " nope -o " + q(out), "error", 2},
  };
  std::string script = "import json, sys\nfails = []\n";
  for (const Case &c : cases) {
    Out r = tsd(c.args);
    EXPECT_EQ(r.rc, c.rc) << c.args << "\n" << r.err;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    std::string want;
    for (const std::string &k : keys[c.object])
      want += "'" + k + "', ";
    std::string file = tmp(("json_" + c.object + std::to_string(c.rc)).c_str());
    std::ofstream(file, std::ios::binary) << r.out;
    script += "j = json.loads(open('" + file +
              "', 'rb').read())\n"
              "if list(j) != [" +
              want +
              "] or j['schema_version'] != 1:\n"
              "    fails.append(('" +
              c.object + "', list(j)))\n";
  }
  script += "print(fails or 'SCHEMA_OK')\n";
  auto py = tsdtest::run_python(script);
  EXPECT_EQ(py.second, "SCHEMA_OK\n");
  remove(out.c_str());
}

TEST(Json, AnErrorIsOneObjectOnStdout) {
  std::string absent = tmp("absent.pth");
  Out r = tsd("inspect --json " + q(absent));
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.out,
            "{\"schema_version\": 1, \"ok\": false, \"error\": \"cannot "
            "read checkpoint: " +
                absent +
                ": cannot open: No such file or directory (TSD_ERR_IO)\", "
                "\"status\": \"TSD_ERR_IO\", \"hints\": []}\n");
  EXPECT_TRUE(has(r.err, "tsd inspect: cannot read checkpoint")) << r.err;
  Out u = tsd("load --json --jsn");
  EXPECT_EQ(u.out, "{\"schema_version\": 1, \"ok\": false, \"error\": "
                   "\"unknown option '--jsn' (did you mean '--json'?)\", "
                   "\"status\": \"TSD_ERR_INVALID_ARG\", \"hints\": []}\n");
  Out h = tsd("pop --json " + fx("metadata.pth") + " 0.bais -o " +
              q(tmp("never.pth")));
  EXPECT_EQ(h.out,
            "{\"schema_version\": 1, \"ok\": false, \"error\": "
            "\"cannot pop: no key '0.bais' in " +
                fxp("metadata.pth") +
                "\", \"status\": \"TSD_ERR_NOT_FOUND\", \"hints\": [\"did "
                "you mean '0.bias'?\"]}\n");
  // the data takes stdout: the JSON goes to stderr
  Out s = tsd("convert --json " + fx("metadata.pth") + " - > /dev/null");
  EXPECT_EQ(s.rc, 0);
  EXPECT_EQ(s.err.rfind("{\"schema_version\": 1, \"ok\": true, \"file\": ", 0),
            0u)
      << s.err;
}

