// test_cli_text.cc — what tsd prints when a file's strings are hostile: keys,
// values and metadata holding ESC sequences, newlines, NUL bytes, lone
// surrogates, C1 and bidi controls; non-UTF-8 file names; ints beyond 64
// bits, nan and inf; byte totals beyond 2^64; a 1 MiB key. tsd_escape
// against Python first (its own cases: test_escape_portable.cc), then the `tsd` command (TSD_CLI) on
// checkpoints written by Python's torch.save (/usr/bin/python3) and
// safetensors files written byte by byte.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "internal.h"
#include "test_helpers.h"
#include "test_sanitized.h"
#include "tsd.h"

namespace {

using tsdtest::esc;

using Out = tsdtest::CliOut;

std::string q(const std::string &s) {
  return tsdtest::shell_quote(s);
}

std::string slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Out tsd(const std::string &args) {
  return tsdtest::run_cli(args);
}

std::string dir() {
  static std::string d =
      tsdtest::temp_dir() + "/clitext_" + std::to_string(getpid());
  return d;
}

std::string path(const char *name) {
  return dir() + "/" + name;
}

// Fixtures written once per process by torch.save (and by hand for
// safetensors, whose header order matters).
class CliText : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string why;
    if (!tsdtest::python_torch_available(&why)) {
      skip_ = why;
      return;
    }
    mkdir(dir().c_str(), 0777);
    auto r = tsdtest::run_python(
        "import collections, json, struct, torch\n"
        "d = '" +
        dir() +
        "'\n"
        "t = lambda n=1: torch.ones(n)\n"
        "sd = collections.OrderedDict()\n"
        "sd['a\\x1b]0;pwned\\x07b'] = t(2)\n"
        "sd['row\\nforged'] = t()\n"
        "sd['bs\\\\x00'] = t()\n"
        "sd['c1\\x85bidi\\u202e'] = t()\n"
        "sd['sur\\ud800'] = t()\n"
        "sd['\\u00e9'] = t()\n"
        "sd['note'] = 'v\\x1b[2J\\nx'\n"
        "sd['nan'] = float('nan')\n"
        "sd['inf'] = float('inf')\n"
        "sd['ninf'] = float('-inf')\n"
        "sd['i64min'] = -2**63\n"
        "sd['two64'] = 2**64\n"
        "sd['nbig'] = -2**70 - 5\n"
        "sd['huge'] = 10**5000\n"
        "torch.save(sd, d + '/hostile.pth')\n"
        "torch.save({'w': t(), 'w\\x00x': t(2)}, d + '/nul.pth')\n"
        "torch.save({'w': t()}, d + '/spec_w.pth')\n"
        "z = torch.zeros(1, dtype=torch.float64)\n"
        "torch.save({'e1': z.expand(2**62), 'e2': z.expand(2**62)},\n"
        "           d + '/wide.pth')\n"
        "big = {'k' * 2**20: t()}\n"
        "for i in range(300): big['p%d' % i] = t()\n"
        "torch.save(big, d + '/longkey.pth')\n"
        // safetensors: header order b, 'a\x1b[1m', a; hostile metadata
        "hdr = collections.OrderedDict()\n"
        "hdr['b'] = {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4]}\n"
        "hdr['a\\x1b[1m'] = {'dtype': 'F32', 'shape': [1],\n"
        "                    'data_offsets': [4, 8]}\n"
        "hdr['a'] = {'dtype': 'F32', 'shape': [1], 'data_offsets': [8, 12]}\n"
        "hdr['__metadata__'] = {'k\\x1b[1m': 'v\\nforged\\x9b',\n"
        "                       'format': 'pt'}\n"
        "h = json.dumps(hdr).encode()\n"
        "open(d + '/order.safetensors', 'wb').write(\n"
        "    struct.pack('<Q', len(h)) + h + struct.pack('<3f', 1, 2, 3))\n"
        "print('FIXTURES_OK')\n");
    if (r.first != 0 || r.second.find("FIXTURES_OK") == std::string::npos)
      skip_ = "fixtures: " + r.second;
  }
  void SetUp() override {
    ASSERT_EQ(skip_, "") << skip_;
  }
  static std::string skip_;
};
std::string CliText::skip_;

} // namespace

// ---- tsd_escape against Python -------------------------------------------------
// (tsd_escape's own cases and the library's message escaping:
// test_escape_portable.cc, built for Windows too)

// Differential: every 1- and 2-byte string and 30000 random short ones
// against Python 3.11: TEXT is repr() of each character of the string
// decoded as pickle does ('surrogatepass') or, where that fails, as
// os.fsdecode does ('surrogateescape'); MESSAGE the same with backslashes
// kept; json.loads gives back the decoded string from JSON (surrogates
// next to each other paired, as JSON reads them).
TEST(Escape, AgreesWithPythonOnEveryShortStringAndRandomOnes) {
  std::string why;
  ASSERT_TRUE(tsdtest::python_torch_available(&why)) << why;
  std::vector<std::string> in;
  for (int a = 0; a < 256; a++) {
    in.push_back(std::string(1, static_cast<char>(a)));
    for (int b = 0; b < 256; b++)
      in.push_back(std::string{static_cast<char>(a), static_cast<char>(b)});
  }
  const unsigned char alphabet[] = {
      0x00, 0x09, 0x0a, 0x1b, '\\', '"',  '\'', 'a',  0x7f, 0x80, 0x85,
      0x9f, 0xa0, 0xad, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe2, 0xed,
      0xef, 0xf0, 0xf3, 0xf4, 0xf5, 0xff, 0x8f, 0x90, 0xb8, 0x98};
  unsigned seed = 12345;
  for (int i = 0; i < 30000; i++) {
    std::string s;
    seed = seed * 1103515245u + 12345u;
    size_t n = 1 + (seed >> 16) % 12;
    for (size_t k = 0; k < n; k++) {
      seed = seed * 1103515245u + 12345u;
      s += static_cast<char>(alphabet[(seed >> 16) % sizeof alphabet]);
    }
    in.push_back(s);
  }
  auto hex = [](const std::string &s) {
    static const char d[] = "0123456789abcdef";
    std::string h;
    for (unsigned char c : s) {
      h += d[c >> 4];
      h += d[c & 15];
    }
    return h.empty() ? std::string("-") : h;
  };
  std::string file =
      tsdtest::temp_dir() + "/escape_" + std::to_string(getpid()) + ".txt";
  FILE *f = fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  for (const std::string &s : in) {
    std::string t = esc(s, TSD_ESCAPE_TEXT), m = esc(s, TSD_ESCAPE_MESSAGE),
                j = esc(s, TSD_ESCAPE_JSON);
    ASSERT_EQ(esc(m, TSD_ESCAPE_MESSAGE), m) << hex(s);
    fprintf(f, "%s %s %s %s\n", hex(s).c_str(), hex(t).c_str(), hex(m).c_str(),
            hex(j).c_str());
  }
  fclose(f);
  auto r = tsdtest::run_python(
      "import codecs, json\n"
      "def h(e):\n"
      "    try:\n"
      "        return codecs.lookup_error('surrogatepass')(e)\n"
      "    except UnicodeDecodeError:\n"
      "        return codecs.lookup_error('surrogateescape')(e)\n"
      "codecs.register_error('tsd', h)\n"
      "b = lambda x: b'' if x == '-' else bytes.fromhex(x)\n"
      "n = 0\n"
      "for line in open('" +
      file +
      "'):\n"
      "    s, t, m, j = (b(x) for x in line.split())\n"
      "    u = s.decode('utf-8', 'tsd')\n"
      "    want = ''.join(repr(c)[1:-1] for c in u)\n"
      "    assert t.decode('utf-8') == want, (s, t, want)\n"
      "    want = ''.join('\\\\' if c == '\\\\' else repr(c)[1:-1] for c in "
      "u)\n"
      "    assert m.decode('utf-8') == want, (s, m, want)\n"
      // JSON pairs a high surrogate with a low one that follows, lone or
      // not (json.dumps has the same limit): what UTF-16 would pair
      "    paired = u.encode('utf-16-le', 'surrogatepass')"
      ".decode('utf-16-le', 'surrogatepass')\n"
      "    assert json.loads(b'\"' + j + b'\"') == paired, (s, j)\n"
      "    n += 1\n"
      "print('AGREE', n)\n");
  remove(file.c_str());
  EXPECT_EQ(r.second, "AGREE " + std::to_string(in.size()) + "\n");
}

// ---- the tsd command
// ----------------------------------------------------------

// Every key, value and metadata string escaped as Python's repr does (the
// key column by its escaped width); ints beyond 64 bits exact; the table
// keeps its shape.
TEST_F(CliText, InspectEscapesKeysAndValuesAndShowsBigIntsExactly) {
  Out r = tsd("inspect " + q(path("hostile.pth")));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            "key                 dtype    shape             bytes\n"
            "a\\x1b]0;pwned\\x07b  float32  [2]                   8\n"
            "row\\nforged         float32  [1]                   4\n"
            "bs\\\\x00             float32  [1]                   4\n"
            "c1\\x85bidi\\u202e    float32  [1]                   4\n"
            "sur\\ud800           float32  [1]                   4\n"
            "\xc3\xa9                   float32  [1]                   4\n"
            "note                str      'v\\x1b[2J\\nx'\n"
            "nan                 float    nan\n"
            "inf                 float    inf\n"
            "ninf                float    -inf\n"
            "i64min              int      -9223372036854775808\n"
            "two64               int      18446744073709551616\n"
            "nbig                int      -1180591620717411303429\n"
            "huge                int      (an int of 2077 bytes)\n"
            "----------------------------------------------------\n"
            "total               float32  6 tensors            28\n"
            "6 tensors, 7 elements, 28 bytes\n");
}

// --json is valid UTF-8 JSON that Python's json module reads back to the
// very keys and values torch.load gives (lone surrogate included); nan and
// inf are strings, big ints exact numbers (null past 2048 bytes).
TEST_F(CliText, InspectJsonIsValidAndPythonReadsBackEveryKeyAndValue) {
  std::string out = path("hostile.json");
  Out r = tsd("inspect " + q(path("hostile.pth")) + " --json >" + q(out));
  ASSERT_EQ(r.rc, 0) << r.err;
  auto py = tsdtest::run_python(
      "import json, math, torch\n"
      "raw = open('" +
      out +
      "', 'rb').read()\n"
      "raw.decode('utf-8')  # strict: valid UTF-8\n"
      "j = json.loads(raw)\n"
      "sd = torch.load('" +
      path("hostile.pth") +
      "')\n"
      "assert [e['key'] for e in j['entries']] == list(sd), j['entries']\n"
      "for e in j['entries']:\n"
      "    v = sd[e['key']]\n"
      "    if e['kind'] == 'tensor':\n"
      "        assert e['shape'] == list(v.shape) and e['numel'] == v.numel()\n"
      "    elif e['key'] == 'huge':\n"
      "        assert e['kind'] == 'int' and e['value'] is None, e\n"
      "    elif isinstance(v, float) and not math.isfinite(v):\n"
      "        assert e['value'] == str(v), e\n"
      "    else:\n"
      "        assert e['value'] == v and type(e['value']) is type(v), e\n"
      "assert j['tensors'] == 6 and j['numel'] == 7 and j['bytes'] == 28\n"
      "print('JSON_OK')\n");
  EXPECT_EQ(py.first, 0) << py.second;
  EXPECT_NE(py.second.find("JSON_OK"), std::string::npos) << py.second;
  // the escapes themselves: ESC and BEL as \u00NN, the lone surrogate as
  // itself, U+202E and C1 escaped although JSON allows them raw
  std::string j = slurp(out);
  for (const char *s :
       {"{\"key\": \"a\\u001b]0;pwned\\u0007b\"", "{\"key\": \"row\\nforged\"",
        "{\"key\": \"bs\\\\x00\"", "{\"key\": \"c1\\u0085bidi\\u202e\"",
        "{\"key\": \"sur\\ud800\"", "{\"key\": \"\xc3\xa9\"",
        "\"value\": \"v\\u001b[2J\\nx\"}",
        "{\"key\": \"nan\", \"kind\": \"float\", \"value\": \"nan\"}",
        "{\"key\": \"ninf\", \"kind\": \"float\", \"value\": \"-inf\"}",
        "{\"key\": \"two64\", \"kind\": \"int\", \"value\": "
        "18446744073709551616}",
        "{\"key\": \"nbig\", \"kind\": \"int\", \"value\": "
        "-1180591620717411303429}"})
    EXPECT_NE(j.find(s), std::string::npos) << s << "\n" << j;
}

// A file name that is not UTF-8: its bytes shown as \udcNN, as Python shows
// an os.fsdecode'd name (surrogateescape), in --json, text and messages.
TEST_F(CliText, NonUtf8FileNamesAreEscaped) {
  std::string name = path("n\xff\x1b.pth");
  ASSERT_EQ(system(("cp " + q(path("spec_w.pth")) + " " + q(name)).c_str()), 0);
  std::string out = path("name.json");
  Out r = tsd("inspect " + q(name) + " --json >" + q(out));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(
      slurp(out).rfind("{\"schema_version\": 1, \"ok\": true, \"file\": \"" +
                           dir() + "/n\\udcff\\u001b.pth\"",
                       0),
      0u)
      << slurp(out);
  auto py = tsdtest::run_python("import json, os\n"
                                "j = json.load(open('" +
                                out +
                                "', encoding='utf-8'))\n"
                                "assert os.fsencode(j['file']) == b'" +
                                dir() +
                                "/n\\xff\\x1b.pth', j['file']\n"
                                "print('NAME_OK')\n");
  EXPECT_NE(py.second.find("NAME_OK"), std::string::npos) << py.second;
  Out missing = tsd("inspect " + q(path("missing\xff\x1b.pth")));
  EXPECT_EQ(missing.rc, 2);
  EXPECT_EQ(missing.err, "tsd inspect: cannot read checkpoint: " + dir() +
                             "/missing\\udcff\\x1b.pth: cannot open: No such "
                             "file or directory (TSD_ERR_IO)\n");
  std::string o = path("o\x1b.pth");
  Out pop = tsd("pop " + q(name) + " w -o " + q(o));
  EXPECT_EQ(pop.rc, 0) << pop.err;
  EXPECT_EQ(pop.err, "tsd pop: popped 1 key; wrote " + dir() +
                         "/o\\x1b.pth (0 tensors, torch.save .pth)\n");
}

// 'w' and 'w\0x' are two keys: shown apart, never written back cut.
TEST_F(CliText, NulKeysAreShownWholeAndRefusedByEveryWriterAndLoad) {
  std::string nul = q(path("nul.pth")), spec = q(path("spec_w.pth"));
  Out r = tsd("inspect " + nul);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "key     dtype    shape             bytes\n"
                   "w       float32  [1]                   4\n"
                   "w\\x00x  float32  [2]                   8\n"
                   "----------------------------------------\n"
                   "total   float32  2 tensors            12\n"
                   "2 tensors, 3 elements, 12 bytes\n");
  r = tsd("inspect " + nul + " --json");
  EXPECT_NE(r.out.find("{\"key\": \"w\\u0000x\", \"kind\": \"tensor\""),
            std::string::npos)
      << r.out;
  const std::string writer_msg =
      "key 'w\\x00x' holds a NUL byte; tsd writes keys as C strings and "
      "would cut it\n";
  for (const char *out : {"o.pth", "o.safetensors"}) {
    r = tsd("convert " + nul + " " + q(path(out)));
    EXPECT_EQ(r.rc, 2) << out;
    EXPECT_EQ(r.err, "tsd convert: " + writer_msg) << out;
    EXPECT_NE(access(path(out).c_str(), F_OK), 0) << out << " was written";
  }
  r = tsd("pop " + nul + " w -o " + q(path("o.pth")));
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "tsd pop: " + writer_msg);
  EXPECT_NE(access(path("o.pth").c_str(), F_OK), 0);
  r = tsd("load --model-spec " + nul + " --class-name M " + spec);
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "tsd load: --model-spec: " + writer_msg);
  const std::string load_msg =
      dir() + "/nul.pth: key 'w\\x00x' holds a NUL byte, which a load report "
              "(C strings) cannot carry (TSD_ERR_UNSUPPORTED)\n";
  for (const char *strict : {"", "--non-strict "}) {
    r = tsd("load " + std::string(strict) + "--model-spec " + spec +
            " --class-name M " + nul);
    EXPECT_EQ(r.rc, 2) << strict;
    EXPECT_EQ(r.out, "") << strict;
    EXPECT_EQ(r.err, "tsd load: cannot load: " + load_msg) << strict;
  }
  r = tsd("diff --model-spec " + spec + " --class-name M " + nul);
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "tsd diff: cannot diff: " + load_msg);
}

// PyTorch's texts: the non-strict repr is Python's own (compared with
// Python's), the strict RuntimeError keeps its lines while a key's newline
// cannot forge one; --json's message is PyTorch's text exactly.
TEST_F(CliText, LoadMessagesEscapeKeysAndMatchPython) {
  std::string args = "--model-spec " + q(path("spec_w.pth")) +
                     " --class-name M " + q(path("hostile.pth"));
  Out strict = tsd("load " + args);
  EXPECT_EQ(strict.rc, 1) << strict.err;
  EXPECT_EQ(strict.out,
            "Error(s) in loading state_dict for M:\n"
            "\tMissing key(s) in state_dict: \"w\". \n"
            "\tUnexpected key(s) in state_dict: \"a\\x1b]0;pwned\\x07b\", "
            "\"row\\nforged\", \"bs\\x00\", \"c1\\x85bidi\\u202e\", "
            "\"sur\\ud800\", \"\xc3\xa9\", \"note\", \"nan\", \"inf\", "
            "\"ninf\", \"i64min\", \"two64\", \"nbig\", \"huge\". \n");
  Out loose = tsd("load --non-strict " + args);
  EXPECT_EQ(loose.rc, 0) << loose.err;
  std::string json = path("load.json");
  Out j = tsd("load --json " + args + " >" + q(json));
  EXPECT_EQ(j.rc, 1) << j.err;
  auto py = tsdtest::run_python(
      "import json, sys, torch, torch.nn as nn\n"
      "class M(nn.Module):\n"
      "    def __init__(self):\n"
      "        super().__init__()\n"
      "        self.w = nn.Parameter(torch.ones(1))\n"
      "sd = torch.load('" +
      path("hostile.pth") +
      "')\n"
      "sys.stdout.write(str(M().load_state_dict(sd, strict=False)) + '\\n')\n"
      "try:\n"
      "    M().load_state_dict(sd)\n"
      "except RuntimeError as e:\n"
      "    j = json.load(open('" +
      json +
      "', encoding='utf-8'))\n"
      "    assert j['message'] == str(e), (j['message'], str(e))\n"
      "    assert j['unexpected_keys'] == list(sd), j['unexpected_keys']\n"
      "    print('MESSAGE_OK')\n");
  ASSERT_EQ(py.first, 0) << py.second;
  EXPECT_EQ(py.second, loose.out + "MESSAGE_OK\n");
}

TEST_F(CliText, DiffTableEscapesKeys) {
  Out r = tsd("diff --model-spec " + q(path("spec_w.pth")) +
              " --class-name M " + q(path("hostile.pth")));
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_EQ(r.out, "state       key                 checkpoint       model\n"
                   "missing     w                   -                [1]\n"
                   "unexpected  a\\x1b]0;pwned\\x07b  [2]              -\n"
                   "unexpected  row\\nforged         [1]              -\n"
                   "unexpected  bs\\\\x00             [1]              -\n"
                   "unexpected  c1\\x85bidi\\u202e    [1]              -\n"
                   "unexpected  sur\\ud800           [1]              -\n"
                   "unexpected  \xc3\xa9                   [1]              -\n"
                   "unexpected  note                <class 'str'>    -\n"
                   "unexpected  nan                 <class 'float'>  -\n"
                   "unexpected  inf                 <class 'float'>  -\n"
                   "unexpected  ninf                <class 'float'>  -\n"
                   "unexpected  i64min              <class 'int'>    -\n"
                   "unexpected  two64               <class 'int'>    -\n"
                   "unexpected  nbig                <class 'int'>    -\n"
                   "unexpected  huge                <class 'int'>    -\n"
                   "0 matched, 1 missing, 14 unexpected, 0 shape mismatches: a "
                   "strict load would raise\n");
}

// Two stride-0 views of 2^62 float64 each: 2^65 bytes each, 2^66 in all
// (64 bits would show 0).
TEST_F(CliText, ByteTotalsDoNotWrapAt2To64) {
  Out r = tsd("inspect " + q(path("wide.pth")));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out,
            "key    dtype    shape                                 bytes\n"
            "e1     float64  [4611686018427387904]  36893488147419103232\n"
            "e2     float64  [4611686018427387904]  36893488147419103232\n"
            "-----------------------------------------------------------\n"
            "total  float64  2 tensors              73786976294838206464\n"
            "2 tensors, 9223372036854775808 elements, 73786976294838206464 "
            "bytes\n");
  r = tsd("inspect " + q(path("wide.pth")) + " --json");
  EXPECT_EQ(r.out,
            "{\"schema_version\": 1, \"ok\": true, \"file\": \"" +
                path("wide.pth") +
                "\", \"root_kind\": \"dict\", \"tensors\": 2, \"numel\": "
                "9223372036854775808, \"bytes\": 73786976294838206464, "
                "\"entries\": [{\"key\": \"e1\", \"kind\": \"tensor\", "
                "\"dtype\": \"float64\", \"shape\": [4611686018427387904], "
                "\"numel\": 4611686018427387904, \"bytes\": "
                "36893488147419103232, \"parameter\": false}, {\"key\": "
                "\"e2\", \"kind\": \"tensor\", \"dtype\": \"float64\", "
                "\"shape\": [4611686018427387904], \"numel\": "
                "4611686018427387904, \"bytes\": 36893488147419103232, "
                "\"parameter\": false}], \"bytes_by_dtype\": {\"float64\": "
                "73786976294838206464}, \"metadata\": {}, \"selected\": "
                "null}\n");
}

// A 1 MiB key beside 300 short ones: the key column stops at 80, so the
// table is ~1 MiB + 300 short rows, not 301 MiB; run in a child under
// RLIMIT_AS 256 MiB, its peak RSS checked.
TEST_F(CliText, ALongKeyOverflowsItsColumnInsteadOfPaddingEveryRow) {
  std::string out = path("longkey.txt");
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    // ASan reserves terabytes of address space. (The LibTorch build's tsd
    // maps LibTorch only for a TorchScript model: cli/torch_dl.c.)
    if (!TSD_TEST_SANITIZED) {
      rlimit lim;
      lim.rlim_cur = lim.rlim_max = 256ull << 20;
      setrlimit(RLIMIT_AS, &lim);
    }
    int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, 1) < 0) _exit(126);
    std::string ck = path("longkey.pth");
    execl(TSD_CLI, "tsd", "inspect", ck.c_str(), (char *)nullptr);
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  int st = 0;
  rusage ru;
  ASSERT_EQ(wait4(pid, &st, 0, &ru), pid);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
  std::string text = slurp(out);
  EXPECT_LT(text.size(), (1u << 20) + 300 * 120) << "the table is padded";
  EXPECT_GT(text.size(), 1u << 20); // the key itself, whole
  // a short row: key padded to the cap (80), then its columns
  EXPECT_NE(text.find("\np0" + std::string(78, ' ') +
                      "  float32  [1]                     4\n"),
            std::string::npos);
  // peak RSS above what the same binary needs to start (--help: LibTorch
  // is not loaded, as for inspect; --version would load it to answer)
  long base = 0;
  pid_t bp = fork();
  if (bp == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull < 0 || dup2(devnull, 1) < 0) _exit(126);
    execl(TSD_CLI, "tsd", "--help", (char *)nullptr);
    _exit(127);
  }
  ASSERT_GT(bp, 0);
  rusage bru;
  int bst = 0;
  ASSERT_EQ(wait4(bp, &bst, 0, &bru), bp);
  base = bru.ru_maxrss;
  if (!TSD_TEST_SANITIZED)
    EXPECT_LT(ru.ru_maxrss - base, 64 * 1024) << "KiB above " << base;
}

// safe_open(...).keys() sorts the names; load_file builds its dict in that
// order, so tsd lists them so, and a non-strict load reports unexpected
// keys in the order Python shows them. Metadata escaped.
TEST_F(CliText, SafetensorsKeysComeSortedAsLoadFileGivesThem) {
  Out r = tsd("inspect " + q(path("order.safetensors")));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "key       dtype    shape             bytes\n"
                   "a         float32  [1]                   4\n"
                   "a\\x1b[1m  float32  [1]                   4\n"
                   "b         float32  [1]                   4\n"
                   "------------------------------------------\n"
                   "total     float32  3 tensors            12\n"
                   "3 tensors, 3 elements, 12 bytes\n"
                   "metadata:\n"
                   "  k\\x1b[1m  v\\nforged\\x9b\n"
                   "  format    pt\n");
  r = tsd("load --non-strict --model-spec " + q(path("spec_w.pth")) +
          " --class-name M " + q(path("order.safetensors")));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "_IncompatibleKeys(missing_keys=['w'], "
                   "unexpected_keys=['a', 'a\\x1b[1m', 'b'])\n");
  // the header's own order is b, a\x1b[1m, a (Python's sorted() agrees)
  auto py = tsdtest::run_python(
      "import json, struct\n"
      "raw = open('" +
      path("order.safetensors") +
      "', 'rb').read()\n"
      "n = struct.unpack('<Q', raw[:8])[0]\n"
      "h = [k for k in json.loads(raw[8:8 + n]) if k != '__metadata__']\n"
      "print(h == ['b', 'a\\x1b[1m', 'a'], sorted(h) == ['a', 'a\\x1b[1m', "
      "'b'])\n");
  EXPECT_EQ(py.second, "True True\n");
}
