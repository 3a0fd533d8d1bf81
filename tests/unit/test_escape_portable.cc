// test_escape_portable.cc — tsd_escape (TEXT, MESSAGE, JSON; truncation) and
// the library's escaping of file strings in its messages, moved from
// test_cli_text.cc (which keeps the differential check against Python and
// the command's output) so that they are built for Windows too and run
// under Wine.
#include <string>

#include "internal.h"
#include "test_helpers.h"
#include "tsd.h"

namespace {

using tsdtest::esc;

} // namespace

// ---- tsd_escape and the library's messages ----------------------------------

TEST(Escape, TextIsPythonsReprWithoutQuotes) {
  // repr() in Python 3.11 of each string, quotes removed
  EXPECT_EQ(esc("plain key.weight", TSD_ESCAPE_TEXT), "plain key.weight");
  EXPECT_EQ(esc("a\x1b[2J\nb\tc\rd", TSD_ESCAPE_TEXT), "a\\x1b[2J\\nb\\tc\\rd");
  EXPECT_EQ(esc(std::string("w\0x", 3), TSD_ESCAPE_TEXT), "w\\x00x");
  EXPECT_EQ(esc("back\\slash", TSD_ESCAPE_TEXT), "back\\\\slash");
  EXPECT_EQ(esc("del\x7f", TSD_ESCAPE_TEXT), "del\\x7f");
  EXPECT_EQ(esc("c1\xc2\x85nbsp\xc2\xa0", TSD_ESCAPE_TEXT), "c1\\x85nbsp\\xa0");
  EXPECT_EQ(esc("bidi\xe2\x80\xae ls\xe2\x80\xa8", TSD_ESCAPE_TEXT),
            "bidi\\u202e ls\\u2028");
  EXPECT_EQ(esc("sur\xed\xa0\x80", TSD_ESCAPE_TEXT), "sur\\ud800");
  EXPECT_EQ(esc("tag\xf3\xa0\x80\x81", TSD_ESCAPE_TEXT), "tag\\U000e0001");
  EXPECT_EQ(
      esc("\xc3\xa9t\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80", TSD_ESCAPE_TEXT),
      "\xc3\xa9t\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80");
  // not UTF-8: a stray byte, an overlong form, a truncated sequence
  EXPECT_EQ(esc("x\xff\xc0\xaf\xe6\xbc", TSD_ESCAPE_TEXT),
            "x\\udcff\\udcc0\\udcaf\\udce6\\udcbc");
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
  EXPECT_EQ(tsd_escape(out, sizeof out, "ab\x1b\x1b", 4, TSD_ESCAPE_TEXT), 10u);
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
