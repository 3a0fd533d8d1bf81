// test_pickle_string.cc — the protocol 0 STRING opcode (Python 2's str,
// `S'...'\n`), read as torch.load reads it: Python's load_string (quotes
// stripped, codecs.escape_decode) and then encoding='utf-8'.
//
// Each expected value or error is what Python 3.11's
// pickle.loads(case, encoding='utf-8') gives for the same bytes (the cases
// were run through it when this test was written; the comment on each
// failing case quotes Python's exception).
#include <gtest/gtest.h>

#include <string>

extern "C" {
#include "internal.h"
}

using namespace std::string_literals;

namespace {

struct Out {
  tsd_status st;
  std::string value, msg;
};

Out load(const std::string &pkl) {
  tsd__arena a;
  tsd__arena_init(&a, 0, nullptr);
  tsd__limits lim;
  tsd__limits_resolve(&lim, nullptr);
  tsd__value *root = nullptr;
  size_t used = 0;
  Out o;
  o.st = tsd__unpickle(reinterpret_cast<const uint8_t *>(pkl.data()),
                       pkl.size(), &used, &a, &lim, nullptr, nullptr, "p",
                       &root);
  if (o.st == TSD_OK) {
    EXPECT_EQ(root->kind, TSD__V_STR);
    o.value.assign(root->u.s.p, root->u.s.len);
  } else {
    o.msg = tsd_last_error();
  }
  tsd__arena_free(&a);
  return o;
}

TEST(PickleString, DecodesEscapesAsPythonsLoadString) {
  struct {
    std::string pkl, want;
  } ok[] = {
      {"S'abc'\n.", "abc"},
      {"S\"it's\"\n.", "it's"},
      {"S'a\\nb\\t\\x41\\101\\\\'\n.", "a\nb\tAA\\"},
      {"S'\\q'\n.", "\\q"}, // an unknown escape stays
      {"S'\\xc3\\xa9'\n.", "\xc3\xa9"},
      {"S''\n.", ""},
      {"S'\\0'\n.", "\0"s},
      {"S'\\12a'\n.", "\na"}, // octal stops at a non-octal digit
      {"S'a'b'\n.", "a'b"},   // only the outermost quotes count
      {"S'\\ud800'\n.", "\\ud800"},
      {"S'\\a\\b\\f\\v\\r\\\"\\''\n.", "\a\b\f\v\r\"'"},
  };
  for (const auto &c : ok) {
    SCOPED_TRACE(c.pkl);
    Out o = load(c.pkl);
    ASSERT_EQ(o.st, TSD_OK) << o.msg;
    EXPECT_EQ(o.value, c.want);
  }
}

TEST(PickleString, MemoizedStringsAndKeysWork) {
  // (S'k'\np0\ng0\nl. is ['k', 'k'] in Python
  tsd__arena a;
  tsd__arena_init(&a, 0, nullptr);
  tsd__limits lim;
  tsd__limits_resolve(&lim, nullptr);
  tsd__value *root = nullptr;
  std::string p = "(dp0\nS'epoch'\np1\nI3\nsS'arch'\np2\ng1\ns.";
  ASSERT_EQ(tsd__unpickle(reinterpret_cast<const uint8_t *>(p.data()),
                          p.size(), nullptr, &a, &lim, nullptr, nullptr, "p",
                          &root),
            TSD_OK)
      << tsd_last_error();
  ASSERT_EQ(root->kind, TSD__V_DICT);
  ASSERT_EQ(root->u.dict.len, 2u);
  EXPECT_STREQ(root->u.dict.keys[0]->u.s.p, "epoch");
  EXPECT_EQ(root->u.dict.vals[0]->u.i, 3);
  EXPECT_STREQ(root->u.dict.keys[1]->u.s.p, "arch");
  EXPECT_STREQ(root->u.dict.vals[1]->u.s.p, "epoch");
  tsd__arena_free(&a);
}

TEST(PickleString, RefusesWhatPythonRefuses) {
  struct {
    std::string pkl, says;
  } bad[] = {
      // UnicodeDecodeError: can't decode byte 0xff
      {"S'\\xff'\n.", "is not valid UTF-8"},
      // UnpicklingError: the STRING opcode argument must be quoted
      {"S'abc\n.", "the STRING opcode argument must be quoted"},
      {"S'\n.", "the STRING opcode argument must be quoted"},
      {"Sabc\n.", "the STRING opcode argument must be quoted"},
      {"S'abc\".\n.", "the STRING opcode argument must be quoted"},
      // ValueError: Trailing \ in string
      {"S'a\\'\n.", "trailing \\ in string"},
      // ValueError: invalid \x escape at position 0
      {"S'\\x4'\n.", "invalid \\x escape at position 0"},
      {"S'ab\\xg0'\n.", "invalid \\x escape at position 2"},
      // UnicodeDecodeError (octal 777 is stored as 0xff)
      {"S'\\777'\n.", "is not valid UTF-8"},
      // UnicodeDecodeError: an encoded surrogate (strict UTF-8)
      {"S'\\xed\\xa0\\x80'\n.", "is not valid UTF-8"},
      // no newline: the line never ends
      {"S'abc'", "unterminated line"},
  };
  for (const auto &c : bad) {
    SCOPED_TRACE(c.pkl);
    Out o = load(c.pkl);
    EXPECT_EQ(o.st, TSD_ERR_FORMAT);
    EXPECT_NE(o.msg.find(c.says), std::string::npos) << o.msg;
    EXPECT_NE(o.msg.find("opcode STRING"), std::string::npos) << o.msg;
  }
}

} // namespace
