// test_cli_text.cc — what tsd prints when a file's strings are hostile: keys,
// values and metadata holding ESC sequences, newlines, NUL bytes, lone
// surrogates, C1 and bidi controls; non-UTF-8 file names; ints beyond 64
// bits, nan and inf; byte totals beyond 2^64; a 1 MiB key. tsd_escape and
// the library's message escaping first, then the `tsd` command (TSD_CLI) on
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

std::string esc(const std::string &s, tsd_escape_mode mode) {
  size_t need = tsd_escape(nullptr, 0, s.data(), s.size(), mode);
  std::string out(need + 1, '\0');
  EXPECT_EQ(tsd_escape(&out[0], out.size(), s.data(), s.size(), mode), need);
  out.resize(need);
  return out;
}

struct Out {
  int rc = -1;
  std::string out, err;
};

std::string q(const std::string &s) { return "'" + s + "'"; }

std::string slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Out tsd(const std::string &args) {
  static int n = 0;
  std::string errf = tsdtest::temp_dir() + "/clitext_err_" +
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
  r.err = slurp(errf);
  remove(errf.c_str());
  return r;
}

std::string dir() {
  static std::string d = tsdtest::temp_dir() + "/clitext_" +
                         std::to_string(getpid());
  return d;
}

std::string path(const char *name) { return dir() + "/" + name; }

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
        "d = '" + dir() + "'\n"
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
        // safetensors: header order b, 'a\\0z', a; __metadata__ hostile
        "hdr = collections.OrderedDict()\n"
        "hdr['b'] = {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4]}\n"
        "hdr['a\\x00z'] = {'dtype': 'F32', 'shape': [1],\n"
        "                 'data_offsets': [4, 8]}\n"
        "hdr['a'] = {'dtype': 'F32', 'shape': [1], 'data_offsets': [8, 12]}\n"
        "hdr['__metadata__'] = {'k\\x1b[1m': 'v\\nforged\\x9b'}\n"
        "h = json.dumps(hdr).encode()\n"
        "open(d + '/order.safetensors', 'wb').write(\n"
        "    struct.pack('<Q', len(h)) + h + struct.pack('<3f', 1, 2, 3))\n"
        "hdr.pop('a\\x00z'); hdr.pop('__metadata__')\n"
        "hdr['a']['data_offsets'] = [4, 8]\n"
        "h = json.dumps(hdr).encode()\n"
        "open(d + '/order2.safetensors', 'wb').write(\n"
        "    struct.pack('<Q', len(h)) + h + struct.pack('<2f', 1, 2))\n"
        "print('FIXTURES_OK')\n");
    if (r.first != 0 || r.second.find("FIXTURES_OK") == std::string::npos)
      skip_ = "fixtures: " + r.second;
  }
  void SetUp() override { ASSERT_EQ(skip_, "") << skip_; }
  static std::string skip_;
};
std::string CliText::skip_;

} // namespace

// ---- tsd_escape and the library's messages ----------------------------------

TEST(Escape, TextIsPythonsReprWithoutQuotes) {
  // repr() in Python 3.11 of each string, quotes removed
  EXPECT_EQ(esc("plain key.weight", TSD_ESCAPE_TEXT), "plain key.weight");
  EXPECT_EQ(esc("a\x1b[2J\nb\tc\rd", TSD_ESCAPE_TEXT),
            "a\\x1b[2J\\nb\\tc\\rd");
  EXPECT_EQ(esc(std::string("w\0x", 3), TSD_ESCAPE_TEXT), "w\\x00x");
  EXPECT_EQ(esc("back\\slash", TSD_ESCAPE_TEXT), "back\\\\slash");
  EXPECT_EQ(esc("del\x7f", TSD_ESCAPE_TEXT), "del\\x7f");
  EXPECT_EQ(esc("c1\xc2\x85nbsp\xc2\xa0", TSD_ESCAPE_TEXT),
            "c1\\x85nbsp\\xa0");
  EXPECT_EQ(esc("bidi\xe2\x80\xae ls\xe2\x80\xa8", TSD_ESCAPE_TEXT),
            "bidi\\u202e ls\\u2028");
  EXPECT_EQ(esc("sur\xed\xa0\x80", TSD_ESCAPE_TEXT), "sur\\ud800");
  EXPECT_EQ(esc("tag\xf3\xa0\x80\x81", TSD_ESCAPE_TEXT), "tag\\U000e0001");
  EXPECT_EQ(esc("\xc3\xa9t\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80",
                TSD_ESCAPE_TEXT),
            "\xc3\xa9t\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80");
  // not UTF-8: a stray byte, an overlong form, a truncated sequence
  EXPECT_EQ(esc("x\xff\xc0\xaf\xe6\xbc", TSD_ESCAPE_TEXT),
            "x\\xff\\xc0\\xaf\\xe6\\xbc");
}

TEST(Escape, MessageKeepsBackslashesAndIsIdempotent) {
  std::string s = std::string("k\x1b[31m\\x00\n\0", 12);
  std::string once = esc(s, TSD_ESCAPE_MESSAGE);
  EXPECT_EQ(once, "k\\x1b[31m\\x00\\n\\x00");
  EXPECT_EQ(esc(once, TSD_ESCAPE_MESSAGE), once);
  EXPECT_EQ(esc("C:\\dir \xc3\xa9", TSD_ESCAPE_MESSAGE), "C:\\dir \xc3\xa9");
}

TEST(Escape, JsonIsAlwaysValidUtf8) {
  EXPECT_EQ(esc("q\"b\\s/\x08\x0c\n\r\t", TSD_ESCAPE_JSON),
            "q\\\"b\\\\s/\\b\\f\\n\\r\\t");
  EXPECT_EQ(esc(std::string("\x1b\0\x7f\xc2\x9b", 5), TSD_ESCAPE_JSON),
            "\\u001b\\u0000\\u007f\\u009b");
  EXPECT_EQ(esc("sur\xed\xa0\x80\xed\xbf\xbf", TSD_ESCAPE_JSON),
            "sur\\ud800\\udfff");
  EXPECT_EQ(esc("name\xff\xfe", TSD_ESCAPE_JSON), "name\\udcff\\udcfe");
  // what TEXT escapes, JSON escapes too (beyond U+FFFF as a pair)
  EXPECT_EQ(esc("\xc3\xa9\xe2\x80\xae\xf3\xa0\x80\x81\xf0\x9f\x98\x80",
                TSD_ESCAPE_JSON),
            "\xc3\xa9\\u202e\\udb40\\udc01\xf0\x9f\x98\x80");
}

TEST(Escape, TruncatesWholeEscapesAndReturnsTheFullLength) {
  char out[7];
  EXPECT_EQ(tsd_escape(out, sizeof out, "ab\x1b\x1b", 4, TSD_ESCAPE_TEXT),
            10u);
  EXPECT_STREQ(out, "ab\\x1b"); // 7 bytes with the NUL; the next does not fit
  EXPECT_EQ(tsd_escape(out, 6, "ab\x1b", 3, TSD_ESCAPE_TEXT), 6u);
  EXPECT_STREQ(out, "ab"); // \x1b would need the NUL's byte
  EXPECT_EQ(tsd_escape(out, 3, "ab\x1b", 3, TSD_ESCAPE_TEXT), 6u);
  EXPECT_STREQ(out, "ab");
  EXPECT_EQ(tsd_escape(out, 1, "\xc3\xa9", 2, TSD_ESCAPE_TEXT), 2u);
  EXPECT_STREQ(out, ""); // never half a character
  EXPECT_EQ(tsd_escape(nullptr, 0, "\xff", 1, TSD_ESCAPE_JSON), 6u);
  EXPECT_EQ(tsd_escape(out, sizeof out, "", 0, TSD_ESCAPE_JSON), 0u);
  EXPECT_STREQ(out, "");
}

TEST(Escape, LibraryMessagesQuoteFileStringsEscaped) {
  EXPECT_EQ(tsd__err(TSD_ERR_FORMAT, "f.pth: key '%s'", "a\x1b]0;t\x07\nb"),
            TSD_ERR_FORMAT);
  EXPECT_STREQ(tsd_last_error(), "f.pth: key 'a\\x1b]0;t\\x07\\nb'");
  // a message quoting a message is not escaped twice
  std::string first = tsd_last_error();
  tsd__err(TSD_ERR_IO, "%s", first.c_str());
  EXPECT_EQ(tsd_last_error(), first);
  tsd__err(TSD_ERR_FORMAT, "x");
  tsd__err_prefix("shard '%s'", "s\x1b");
  EXPECT_STREQ(tsd_last_error(), "shard 's\\x1b': x");
  // TSD_ERR_LOAD carries PyTorch's RuntimeError text as it is
  tsd__err(TSD_ERR_LOAD, "Error(s) in loading state_dict for M:\n\t%s",
           "size mismatch for k\x1b");
  EXPECT_STREQ(tsd_last_error(),
               "Error(s) in loading state_dict for M:\n\tsize mismatch for "
               "k\x1b");
}

TEST(Escape, LoadRefusesAKeyHoldingNulInsteadOfReportingItCut) {
  tsdtest::CkptBuilder b;
  b.f32("w", {1}).f32(std::string("w\0x", 3), {2});
  tsdtest::Model m("M");
  m.add("w", {1});
  tsd_report *rep = nullptr;
  tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
  o.strict = 0;
  EXPECT_EQ(tsd_load(&rep, m.get(), b.get(), &o), TSD_ERR_UNSUPPORTED);
  EXPECT_EQ(rep, nullptr);
  EXPECT_STREQ(tsd_last_error(),
               "<checkpoint>: key 'w\\x00x' holds a NUL byte, which a load "
               "report (C strings) cannot carry");
  tsd_report_free(rep);
}
