// test_unpickler.cc — the restricted unpickler on raw bytes: the stack,
// the memo, limits, operand types, text and binary encodings.
#include "reader_helpers.h"

using namespace tsdtest_reader;

// ---- the unpickler on raw bytes
// -----------------------------------------------

TEST(Unpickler, StackUnderflowIsAnError) {
  Unpickled u(B("\x80\x02"
                "a."));
  EXPECT_EQ(u.st, TSD_ERR_FORMAT);
  EXPECT_NE(std::string(tsd_last_error()).find("APPEND"), std::string::npos);
  EXPECT_NE(std::string(tsd_last_error()).find("offset 2"), std::string::npos)
      << tsd_last_error();
}

TEST(Unpickler, StopOnAnEmptyStackIsAnError) {
  Unpickled u(B("."));
  EXPECT_EQ(u.st, TSD_ERR_FORMAT);
  EXPECT_NE(std::string(tsd_last_error()).find("STOP"), std::string::npos);
  Unpickled two(B("NN."));
  EXPECT_EQ(two.st, TSD_ERR_FORMAT);
  Unpickled mark(B("(N."));
  EXPECT_EQ(mark.st, TSD_ERR_FORMAT);
}

TEST(Unpickler, MissingStopIsATruncation) {
  Unpickled u(B("\x80\x02N"));
  EXPECT_EQ(u.st, TSD_ERR_FORMAT);
  EXPECT_EQ(u.used, SIZE_MAX);
  EXPECT_NE(std::string(tsd_last_error()).find("STOP"), std::string::npos);
}

TEST(Unpickler, UnknownMemoIndexIsAnError) {
  Unpickled u(B("\x80\x02h\x05."));
  EXPECT_EQ(u.st, TSD_ERR_FORMAT);
  EXPECT_NE(std::string(tsd_last_error()).find("memo"), std::string::npos);
  Unpickled l(B("\x80\x02j\xff\xff\xff\x7f."));
  EXPECT_EQ(l.st, TSD_ERR_FORMAT);
}

TEST(Unpickler, MemoIndexesMustBeSequential) {
  Unpickled gap(B("Nq\x05."));
  EXPECT_EQ(gap.st, TSD_ERR_FORMAT);
  Unpickled huge(B("Nr\xff\xff\xff\xff."));
  EXPECT_EQ(huge.st, TSD_ERR_FORMAT);
  // 0, 1, then overwrite 0, then get both
  Unpickled ok(B("K\x01q\x00K\x02q\x01K\x03q\x00"
                 "0"
                 "0"
                 "0h\x00h\x01\x86."));
  ASSERT_EQ(ok.st, TSD_OK) << tsd_last_error();
  ASSERT_EQ(ok.v->kind, TSD__V_TUPLE);
  EXPECT_EQ(ok.v->u.seq.items[0]->u.i, 3);
  EXPECT_EQ(ok.v->u.seq.items[1]->u.i, 2);
}

TEST(Unpickler, HugeLengthsAreCheckedBeforeAllocating) {
  for (const std::string &p :
       {B("X\xff\xff\xff\x7f"), B("\x8d\xff\xff\xff\xff\xff\xff\xff\x7f"),
        B("B\xff\xff\xff\xff"), B("\x8e\0\0\0\0\0\0\0\x01"),
        B("\x8b\xff\xff\xff\x7f"), B("T\xff\xff\xff\xff"),
        B("\x95\xff\xff\xff\xff\xff\xff\xff\xff"),
        B("\x8c\x05"
          "ab")}) {
    Unpickled u(p);
    EXPECT_EQ(u.st, TSD_ERR_FORMAT) << tsd_last_error();
    EXPECT_STRNE(tsd_last_error(), "");
  }
}

TEST(Unpickler, DeepNestingHitsTheDepthLimitWithoutRecursion) {
  const size_t n = 100000;
  std::string lists(n, ']');
  lists += std::string(n - 1, 'a') + ".";
  Unpickled a(lists);
  EXPECT_EQ(a.st, TSD_ERR_LIMIT) << tsd_last_error();
  std::string marks(n, '(');
  marks += std::string(n, 'l') + ".";
  Unpickled b(marks);
  EXPECT_EQ(b.st, TSD_ERR_LIMIT) << tsd_last_error();
  std::string tuples = "N" + std::string(n, '\x85') + ".";
  Unpickled c(tuples);
  EXPECT_EQ(c.st, TSD_ERR_LIMIT) << tsd_last_error();
  // Within the limit, a deep structure is fine. A list per 2 bytes takes
  // more than the parse budget of 16 bytes per byte: FRAME opcodes of
  // length 0 (9 bytes that build nothing) pad it to a size that pays.
  tsd__limits lim;
  tsd__limits_resolve(&lim, nullptr);
  lim.max_depth = 200000;
  std::string pad;
  while (pad.size() < 3 * n)
    pad += std::string("\x95\0\0\0\0\0\0\0\0", 9);
  Unpickled d(pad + lists, &lim);
  EXPECT_EQ(d.st, TSD_OK) << tsd_last_error();
  // Many marks with nothing built is bounded by the input too.
  Unpickled e(std::string(n, '(') + std::string(n, '1') + "N.");
  EXPECT_EQ(e.st, TSD_OK) << tsd_last_error();
}

TEST(Unpickler, OperandTypesAreChecked) {
  // every failure is TSD_ERR_FORMAT but those given their status
  struct {
    std::string bytes;
    const char *text;
    tsd_status st = TSD_ERR_FORMAT;
  } cases[] = {
      {B("]K\x01K\x02s."), "SETITEM on a list"},
      {B("}K\x01"
         "a."),
       "APPEND to a dict"},
      {B("K\x01(K\x02u."), "SETITEMS on a int"},
      {B("](K\x01K\x02"
         "u."),
       "SETITEMS on a list"},
      {B("}(K\x01"
         "u."),
       "odd number"},
      {B("K\x01)R."), "REDUCE on a int"},
      {B("e."), "no MARK"},
      {B("](K\x01\x90."), "ADDITEMS on a list"},
      {B("}K\x01]s."), "ok"},
      {B("}]K\x01s."), "unhashable"},
      {B("\x8c\x02\xc3\x28."), "UTF-8"},
      {B("\x8c\x03\xed\xa0\x80."), "ok"}, // surrogatepass
      {B("NQ."), "persistent"},
      {B("K\x01]N"
         "b."),
       "BUILD", TSD_ERR_UNSUPPORTED},
      {B("\x80\x06N."), "protocol 6", TSD_ERR_UNSUPPORTED},
      {B("\x80\x02S'a\n."), "STRING opcode argument must be quoted"},
      {B("ccollections\nOrderedDict\nK\x01\x85R."), "argument"},
      {B("cbuiltins\nset\n)\x81."), "ok"},
      {B("cbuiltins\nset\n\x85\x81."), "NEWOBJ"},
      {B("c_codecs\nencode\n)\x81."), "NEWOBJ", TSD_ERR_REFUSED},
      {B("cbuiltins\nlist\n)R."), "ok"}, // a placeholder, never called
      {B("cbuiltins\nlist\n)}\x92."), "ok"},      // NEWOBJ_EX
      {B("cbuiltins\nlist\n)N\x92."), "keyword arguments in a None"},
      {B("cbuiltins\nlist\nK\x01R."), "not a tuple of arguments"},
      {B("c\x01x\nlist\n)R."), "not a printable module and name"},
      {B("cbuiltins\nlist\n)R}b}b."), "a second BUILD"},
      {B("cbuiltins\nlist\n)RK\x01"
         "a."),
       "ok"},
      {B("cbuiltins\ndict\n)RK\x01K\x02s(K\x03K\x04u."), "ok"},
      {B("cbuiltins\nlist\n)RK\x01"
         "aK\x01K\x02s."),
       "both list items"},
      {B("ccollections\nOrderedDict\n)}\x92."), "NEWOBJ is allowed only",
       TSD_ERR_REFUSED},
      // protocols 0 and 1: text operands
      {B("L123456789012345678901234567890L\n."), "ok"},
      {"L" + std::string(81, '7') + "\n.", "integer literal of 81 digits",
       TSD_ERR_UNSUPPORTED},
      {B("L12a\n."), "bad integer literal"},
      {B("F1.5\n."), "ok"},
      {B("F-inf\n."), "ok"},
      {B("F1.5x\n."), "bad float literal"},
      {B("F\n."), "bad float literal"},
      {B("Vx\\u00e9\\U0001F600\xff\n."), "ok"},
      {B("V\\uZZZZ\n."), "bad \\u escape"},
      {B("V\\U00110000\n."), "beyond U+10FFFF"},
      {B("V\\u00e\n."), "truncated \\u escape"},
      {B("(I1\nI2\nl."), "ok"},
      {B("I1\np0\n0g0\n."), "ok"},
      {B("I1\np1\n."), "beyond the memo size"},
      {B("g5\n."), "unknown memo index"},
      {B("gx\n."), "bad memo index"},
      {B("(I1\nios\nsystem\n."), "ok"}, // INST: a placeholder
      {B("(cos\nsystem\nI1\no."), "ok"}, // OBJ: a placeholder
      {B("(o."), "OBJ without a class"},
      {B("(I1\no."), "REDUCE on a int"},
      {B("Pabc\n."), "persistent id where none is allowed"},
  };
  for (const auto &c : cases) {
    Unpickled u(c.bytes);
    if (!strcmp(c.text, "ok")) {
      EXPECT_EQ(u.st, TSD_OK) << tsd_last_error();
      continue;
    }
    EXPECT_EQ(u.st, c.st) << c.text;
    EXPECT_NE(std::string(tsd_last_error()).find(c.text), std::string::npos)
        << "want '" << c.text << "' in: " << tsd_last_error();
  }
}

// Text LONG/INT decode to what LONG1 holds for the same number.
TEST(Unpickler, TextIntegersMatchTheBinaryEncoding) {
  struct {
    std::string pkl, bytes;
    int64_t i;
  } cases[] = {
      {"L-1180591620717411303424L\n.", B("\0\0\0\0\0\0\0\0\xc0"), 0},
      {"L1180591620717411303424\n.", B("\0\0\0\0\0\0\0\0@"), 0},
      {"L-9223372036854775808L\n.", "", INT64_MIN},
      {"L9223372036854775807\n.", "", INT64_MAX},
      {"I-128\n.", "", -128},
      {"L128L\n.", "", 128},
      {"I0\n.", "", 0},
      {"L-0\n.", "", 0},
  };
  for (const auto &c : cases) {
    Unpickled u(c.pkl);
    ASSERT_EQ(u.st, TSD_OK) << c.pkl << ": " << tsd_last_error();
    if (c.bytes.empty()) {
      ASSERT_EQ(u.v->kind, TSD__V_INT) << c.pkl;
      EXPECT_EQ(u.v->u.i, c.i) << c.pkl;
    } else {
      ASSERT_EQ(u.v->kind, TSD__V_BIGINT) << c.pkl;
      EXPECT_EQ(std::string(u.v->u.s.p, u.v->u.s.len), c.bytes) << c.pkl;
    }
  }
  Unpickled f("F-2.5e-3\n.");
  ASSERT_EQ(f.st, TSD_OK);
  EXPECT_EQ(f.v->u.f, -2.5e-3);
  Unpickled s("Vx\\u00e9\xe9\\U0001F600\\n\n.");
  ASSERT_EQ(s.st, TSD_OK);
  EXPECT_EQ(std::string(s.v->u.s.p, s.v->u.s.len),
            "x\xc3\xa9\xc3\xa9\xf0\x9f\x98\x80\\n");
}

TEST(Unpickler, ASelfContainingListCannotBeBuilt) {
  // l = []; l.append(l)
  Unpickled a(B("]q\x00h\x00"
                "a."));
  EXPECT_EQ(a.st, TSD_ERR_FORMAT);
  EXPECT_NE(std::string(tsd_last_error()).find("itself"), std::string::npos);
  // a = []; b = [a]; a.append(b): modifying a list already inside another
  Unpickled b(B("]q\x00h\x00\x85q\x01"
                "0h\x00h\x01"
                "a."));
  EXPECT_EQ(b.st, TSD_ERR_FORMAT) << tsd_last_error();
}

TEST(Unpickler, DecodesScalarsLikePython) {
  // (True, False, None, -1, 255, 65535, LONG1 2**70, LONG1 -2, 1.5, 'é', b'xy')
  const char raw[] = "(\x88\x89NJ\xff\xff\xff\xffK\xffM\xff\xff"
                     "\x8a\x09\0\0\0\0\0\0\0\0\x40"
                     "\x8a\x01\xfe"
                     "G\x3f\xf8\0\0\0\0\0\0"
                     "\x8c\x02\xc3\xa9"
                     "C\x02xy"
                     "I01\nL-12L\nt.";
  Unpickled u(std::string(raw, sizeof raw - 1));
  ASSERT_EQ(u.st, TSD_OK) << tsd_last_error();
  ASSERT_EQ(u.v->kind, TSD__V_TUPLE);
  ASSERT_EQ(u.v->u.seq.len, 13u);
  tsd__value **it = u.v->u.seq.items;
  EXPECT_EQ(it[0]->kind, TSD__V_BOOL);
  EXPECT_EQ(it[0]->u.i, 1);
  EXPECT_EQ(it[1]->u.i, 0);
  EXPECT_EQ(it[2]->kind, TSD__V_NONE);
  EXPECT_EQ(it[3]->u.i, -1);
  EXPECT_EQ(it[4]->u.i, 255);
  EXPECT_EQ(it[5]->u.i, 65535);
  EXPECT_EQ(it[6]->kind, TSD__V_BIGINT);
  EXPECT_EQ(it[7]->kind, TSD__V_INT);
  EXPECT_EQ(it[7]->u.i, -2);
  EXPECT_EQ(it[8]->u.f, 1.5);
  EXPECT_STREQ(it[9]->u.s.p, "\xc3\xa9");
  EXPECT_EQ(it[10]->kind, TSD__V_BYTES);
  EXPECT_EQ(it[11]->kind, TSD__V_BOOL);
  EXPECT_EQ(it[12]->u.i, -12);
  EXPECT_EQ(u.used, sizeof raw - 1);
  // LONG1 of 9 bytes that fits int64 (2**63 - 1 padded) stays an int
  Unpickled big(B("\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\x00."));
  ASSERT_EQ(big.st, TSD_OK);
  EXPECT_EQ(big.v->kind, TSD__V_INT);
  EXPECT_EQ(big.v->u.i, INT64_MAX);
  Unpickled b2(B("\x8a\x09\0\0\0\0\0\0\0\x80\x00."));
  ASSERT_EQ(b2.st, TSD_OK);
  EXPECT_EQ(b2.v->kind, TSD__V_BIGINT);
}

TEST(Unpickler, ProtocolTwoBytesComeFromCodecsEncode) {
  // _codecs.encode('\x00\xff', 'latin1')
  const char raw[] = "\x80\x02"
                     "c_codecs\nencode\n"
                     "X\x03\0\0\0\0\xc3\xbf"
                     "X\x06\0\0\0latin1\x86R.";
  Unpickled u(std::string(raw, sizeof raw - 1));
  ASSERT_EQ(u.st, TSD_OK) << tsd_last_error();
  ASSERT_EQ(u.v->kind, TSD__V_BYTES);
  EXPECT_EQ(std::string(u.v->u.s.p, u.v->u.s.len), B("\x00\xff"));
}
