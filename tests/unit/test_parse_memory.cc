// test_parse_memory.cc — the parse memory bound (issue 11, 3b): parsing S
// bytes of pickle holds at most 16 x S + 1 MiB (TSD__PARSE_RATIO,
// TSD__PARSE_SLACK), whatever the bytes are.
//
// Each case builds the densest input of one construct (an opcode, or a
// pattern a real file repeats) of about kS bytes and measures the peak of
// the bytes the parse holds through a counting tsd_allocator: for the
// unpickler alone (tsd__unpickle: arena blocks and working arrays), and end
// to end (tsd_checkpoint_open_memory of a zip and of a legacy file holding
// that pickle: also the pickle's copy, the zip tables and the checkpoint's
// key index). A hostile case may be refused (TSD_ERR_LIMIT, with a message
// naming the bound) or read; either way the bound holds. The legitimate
// patterns (what torch.save writes for lists of ints, vocabularies, lists
// of strings and floats, many tensors) must be read, not refused.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "reader_helpers.h"

using namespace std::string_literals;

namespace {

// ---- a counting allocator ---------------------------------------------------

struct Counter {
  size_t live = 0, peak = 0;
};
struct alignas(16) Hdr {
  size_t n;
};

void *c_alloc(void *u, size_t n) {
  auto *c = static_cast<Counter *>(u);
  auto *h = static_cast<Hdr *>(malloc(sizeof(Hdr) + n));
  if (!h) return nullptr;
  h->n = n;
  c->live += n;
  if (c->live > c->peak) c->peak = c->live;
  return h + 1;
}
void *c_realloc(void *u, void *p, size_t n) {
  auto *c = static_cast<Counter *>(u);
  Hdr *h = static_cast<Hdr *>(p) - 1;
  size_t old = h->n;
  c->live += n; // both blocks are held while realloc copies
  if (c->live > c->peak) c->peak = c->live;
  auto *q = static_cast<Hdr *>(realloc(h, sizeof(Hdr) + n));
  if (!q) {
    c->live -= n;
    return nullptr;
  }
  c->live -= old;
  q->n = n;
  return q + 1;
}
void c_free(void *u, void *p) {
  auto *c = static_cast<Counter *>(u);
  Hdr *h = static_cast<Hdr *>(p) - 1;
  c->live -= h->n;
  free(h);
}

// ---- building pickles -------------------------------------------------------

size_t kS = 2u << 20; // each case's pickle: about 2 MiB (TimeIsLinear varies it)

using tsdtest_reader::le16;
using tsdtest_reader::le32;

const std::string P2 = "\x80\x02";
const std::string P4 = std::string("\x80\x04", 2);

// head + unit * n + tail, n chosen so that the whole is about kS bytes;
// unit(i) may vary with i (distinct names).
template <class F>
std::string repeat(const std::string &head, F unit, const std::string &tail) {
  std::string s = head;
  for (size_t i = 0; s.size() + tail.size() < kS; i++)
    s += unit(i);
  return s + tail;
}
std::string same(const std::string &head, const std::string &unit,
                 const std::string &tail) {
  return repeat(head, [&](size_t) { return unit; }, tail);
}

// Python's pickler: MARK, up to 1000 items, APPENDS / SETITEMS.
template <class F>
std::string batched(const std::string &head, F item, const char *close,
                    const std::string &tail) {
  std::string s = head;
  for (size_t i = 0; s.size() + tail.size() + 16 < kS;) {
    s += "(";
    for (size_t k = 0; k < 1000 && s.size() + tail.size() + 16 < kS; k++)
      s += item(i++);
    s += close;
  }
  return s + tail;
}

std::string short_name(size_t i) {
  std::string n;
  do {
    n += static_cast<char>('a' + i % 26);
    i /= 26;
  } while (i);
  return n;
}
std::string sbu(const std::string &s) { // SHORT_BINUNICODE
  return "\x8c" + std::string(1, static_cast<char>(s.size())) + s;
}

struct Case {
  const char *name;
  bool legit; // a pattern torch.save writes: must be read
  std::string pkl;
};

std::vector<Case> cases() {
  const std::string G = "c__main__\nC\n"; // a global tsd does not know
  std::vector<Case> v;
  // one-byte opcodes that make a new value (the densest hostile inputs)
  v.push_back({"empty_lists", false, same(P2 + "(", "]", "l.")});
  v.push_back({"empty_dicts", false, same(P2 + "(", "}", "l.")});
  v.push_back({"empty_sets", false, same(P4 + "(", "\x8f", "l.")});
  v.push_back({"empty_tuples", false, same(P2 + "(", ")", "l.")});
  v.push_back({"nones", false, same(P2 + "(", "N", "l.")});
  v.push_back({"dups", false, same(P2 + "(N", "2", "l.")});
  v.push_back({"marks", false,
               P2 + "N" + std::string(kS / 2, '(') + std::string(kS / 2, '1') +
                   "."});
  v.push_back({"marks_closed", false,
               same(P2 + "(", "(l", "l.")}); // MARK LIST: empty lists
  v.push_back({"tuple1_of_lists", false, same(P2 + "(", "]\x85", "l.")});
  v.push_back({"tuple3_of_nones", false, same(P2 + "(", "NNN\x87", "l.")});
  // the memo
  v.push_back({"memoize", false, same(P4 + "N", "\x94", ".")});
  v.push_back({"binput_binget", false,
               same(P2 + "(N", "q\x00h\x00"s, "l.")});
  v.push_back({"list_of_memo_gets", false,
               same(P2 + "(]q\x00"s, "h\x00"s, "l.")});
  v.push_back({"memoized_lists", false, same(P4 + "(", "]\x94", "l.")});
  // strings and numbers
  v.push_back({"empty_strings", false, same(P2 + "(", "\x8c\x00"s, "l.")});
  v.push_back({"one_char_strings", false, same(P2 + "(", "\x8c\x01" "a", "l.")});
  v.push_back(
      {"binunicode_small", false, same(P2 + "(", "X" + le32(1) + "a", "l.")});
  v.push_back({"empty_bytes", false, same(P4 + "(", "C\x00"s, "l.")});
  v.push_back({"big_ints", false, same(P2 + "(", "M" + le16(5000), "l.")});
  v.push_back({"long1_empty", false, same(P2 + "(", "\x8a\x00"s, "l.")});
  v.push_back({"bigints", false,
               same(P2 + "(", "\x8a\x09" + std::string(8, '\xff') + "\x7f",
                    "l.")});
  v.push_back({"floats", false, same(P2 + "(", "G" + std::string(8, '\0'),
                                     "l.")});
  // protocol 0 text
  v.push_back({"text_ints", false, same("(", "I1025\n", "l.")});
  v.push_back({"text_unicode", false, same("(", "Va\n", "l.")});
  v.push_back({"text_put_get", false, same("(N", "p0\ng0\n", "l.")});
  // containers filled item by item
  v.push_back({"append_small_ints", false, same(P2 + "]", "K\x01" "a", ".")});
  v.push_back({"setitem_small_ints", false,
               same(P2 + "}", "K\x01K\x01s", ".")});
  v.push_back({"setitems", false, same(P2 + "}(", "K\x01N", "u.")});
  v.push_back({"tuples_of_two", false, same(P2 + "(", "K\x01N\x86", "l.")});
  // placeholders (globals tsd does not know), with args, BUILD, items
  v.push_back({"placeholder_calls", false,
               same(P2 + "(" + G + "q\x00"s, "h\x00)R"s, "l.")});
  v.push_back({"placeholder_newobj", false,
               same(P2 + "(" + G + "q\x00"s, "h\x00)\x81"s, "l.")});
  v.push_back({"placeholder_args_build", false,
               same(P2 + "(" + G + "q\x00"s, "h\x00N\x85R}b"s, "l.")});
  v.push_back({"placeholder_appends", false,
               same(P2 + G + ")R", "N" "a", ".")});
  v.push_back({"placeholder_setitems", false,
               same(P2 + G + ")R", "K\x01N" "s", ".")});
  v.push_back({"inst_objects", false, same("(", "(i__main__\nC\n", "l.")});
  // a dict root: the checkpoint also indexes its keys
  v.push_back({"root_dict_members", false,
               repeat(P2 + "}(", [](size_t i) { return sbu(short_name(i)) + "N"; },
                      "u.")});
  // what torch.save writes: must be read
  v.push_back(
      {"list_of_ints", true,
       batched(
           P2 + "}q\x00X\x01\x00\x00\x00"s
                "aq\x01]q\x02",
           [](size_t i) { return "M" + le16(1024 + i % 60000); }, "e", "s.")});
  v.push_back({"list_of_floats", true,
               batched(P2 + "]q\x00"s,
                       [](size_t) { return "G" + std::string(8, '\x01'); },
                       "e", ".")});
  v.push_back({"vocabulary", true,
               batched(
                   P4 + "}\x94",
                   [](size_t i) {
                     return sbu("w" + short_name(i)) + "\x94J" +
                            le32(static_cast<uint32_t>(i));
                   },
                   "u", ".")});
  v.push_back(
      {"list_of_strings", true,
       batched(
           P2 + "]q\x00"s,
           [](size_t i) {
             return "X" +
                    le32(static_cast<uint32_t>(2 + short_name(i).size())) +
                    "s_" + short_name(i) + "r" +
                    le32(static_cast<uint32_t>(i + 1));
           },
           "e", ".")});
  v.push_back({"nested_small_dicts", true,
               batched(
                   P2 + "]q\x00"s,
                   [](size_t i) {
                     return "}r" + le32(static_cast<uint32_t>(2 * i + 1)) +
                            "X\x02\x00\x00\x00lrr"s +
                            le32(static_cast<uint32_t>(2 * i + 2)) + "G" +
                            std::string(8, '\x01') + "s";
                   },
                   "e", ".")});
  return v;
}

uint64_t bound(size_t bytes) {
  return TSD__PARSE_RATIO * static_cast<uint64_t>(bytes) + TSD__PARSE_SLACK;
}

// ---- the unpickler alone ------------------------------------------------------

struct VmRun {
  tsd_status st;
  size_t peak;
  std::string msg;
};

VmRun run_vm(const std::string &pkl) {
  Counter c;
  tsd_allocator al = {c_alloc, c_realloc, c_free, &c};
  tsd__arena a;
  tsd__arena_init(&a, 0, &al);
  tsd__limits lim;
  tsd__limits_resolve(&lim, nullptr);
  lim.max_depth = 100000;
  tsd__value *root = nullptr;
  size_t used = 0;
  VmRun r;
  r.st = tsd__unpickle(reinterpret_cast<const uint8_t *>(pkl.data()),
                       pkl.size(), &used, &a, &lim, nullptr, nullptr, "case",
                       &root);
  r.msg = r.st == TSD_OK ? "" : tsd_last_error();
  tsd__arena_free(&a);
  r.peak = c.peak;
  EXPECT_EQ(c.live, 0u) << "leak";
  return r;
}

TEST(ParseMemory, UnpicklerStaysWithin16xPlus1MiBForEveryConstruct) {
  for (const Case &k : cases()) {
    SCOPED_TRACE(k.name);
    VmRun r = run_vm(k.pkl);
    printf("vm  %-24s %8zu bytes  peak %9zu  %5.2fx  %s\n", k.name,
           k.pkl.size(), r.peak, double(r.peak) / k.pkl.size(),
           tsd_status_name(r.st));
    EXPECT_LE(r.peak, bound(k.pkl.size()))
        << k.name << ": " << r.peak << " bytes for " << k.pkl.size();
    if (k.legit)
      EXPECT_EQ(r.st, TSD_OK) << r.msg;
    else if (r.st != TSD_OK)
      EXPECT_EQ(r.st, TSD_ERR_LIMIT) << r.msg;
    if (r.st == TSD_ERR_LIMIT) {
      EXPECT_NE(r.msg.find("parsing needs more memory than the input's size "
                           "justifies (tsd's bound: 16 bytes per byte of "
                           "input + 1 MiB"),
                std::string::npos)
          << r.msg;
    }
  }
}

// The budget is real: the hostile constructs that would take more are
// refused (not merely lucky), and the dense legitimate ones fit well inside.
TEST(ParseMemory, DenseHostileInputsAreRefusedAndRealOnesFitWithRoom) {
  for (const Case &k : cases()) {
    if (strcmp(k.name, "empty_lists") && strcmp(k.name, "placeholder_calls") &&
        strcmp(k.name, "one_char_strings") && !k.legit)
      continue;
    SCOPED_TRACE(k.name);
    VmRun r = run_vm(k.pkl);
    if (k.legit) {
      EXPECT_EQ(r.st, TSD_OK) << r.msg;
      // room: at most 3/4 of the budget's per-byte part
      EXPECT_LE(r.peak, 12 * k.pkl.size() + TSD__PARSE_SLACK)
          << r.peak << " bytes for " << k.pkl.size();
    } else {
      EXPECT_EQ(r.st, TSD_ERR_LIMIT) << k.name;
    }
  }
}

// Time linear in the input: constructs of each kind at 1 and 4 MiB, the
// process's CPU time (the machine may be shared), best of three runs after
// one to warm the heap: 4 times the bytes may take at most 8 times as long
// (linear is 4, quadratic 16), + 20 ms.
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

TEST(ParseMemory, TimeIsLinearInTheInput) {
  const char *const which[] = {
      "empty_lists",       "dups",           "marks",
      "memoize",           "setitems",       "placeholder_calls",
      "placeholder_args_build", "inst_objects", "text_ints",
      "text_unicode",      "bigints",        "vocabulary",
      "list_of_ints",      "root_dict_members"};
  const size_t saved = kS;
  double t[2][sizeof which / sizeof *which];
  for (int k = 0; k < 2; k++) {
    kS = k ? 4u << 20 : 1u << 20;
    std::vector<Case> all = cases();
    for (size_t w = 0; w < sizeof which / sizeof *which; w++) {
      const Case *c = nullptr;
      for (const Case &x : all)
        if (strcmp(x.name, which[w]) == 0) c = &x;
      ASSERT_NE(c, nullptr) << which[w];
      run_vm(c->pkl);
      double best = 1e9;
      for (int run = 0; run < 3; run++) {
        double t0 = cpu_seconds();
        run_vm(c->pkl);
        double d = cpu_seconds() - t0;
        if (d < best) best = d;
      }
      t[k][w] = best;
    }
  }
  kS = saved;
  for (size_t w = 0; w < sizeof which / sizeof *which; w++) {
    printf("time %-24s 1 MiB %7.1f ms  4 MiB %7.1f ms\n", which[w],
           1e3 * t[0][w], 1e3 * t[1][w]);
    EXPECT_LE(t[1][w], 8 * t[0][w] + 0.020) << which[w];
  }
}

// ---- end to end: a zip and a legacy file holding the pickle -------------------

using tsdtest_reader::make_zip_string;

// torch.save(..., _use_new_zipfile_serialization=False) around `pkl`.
std::string make_legacy(const std::string &pkl) {
  const char magic[] = "\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
  return P2 + "\x8a\x0a" + std::string(magic, 10) + "." + P2 + "M" +
         le16(1001) + "." + P2 + "}." + pkl + P2 + "].";
}

struct OpenRun {
  tsd_status st;
  size_t peak;
  std::string msg;
};

OpenRun open_counted(const std::string &file) {
  Counter c;
  tsd_allocator al = {c_alloc, c_realloc, c_free, &c};
  tsd_open_options o = TSD_OPEN_OPTIONS_INIT;
  o.allocator = &al;
  o.limits.max_depth = 100000;
  tsd_checkpoint *ck = nullptr;
  OpenRun r;
  r.st = tsd_checkpoint_open_memory(&ck, file.data(), file.size(), &o);
  r.msg = r.st == TSD_OK ? "" : tsd_last_error();
  tsd_checkpoint_free(ck);
  r.peak = c.peak;
  EXPECT_EQ(c.live, 0u) << "leak";
  return r;
}

// What tsd.h states for opening S bytes: 24 x S + 2 MiB (the parse's 16 x
// S + 1 MiB, the pickle's own copy, the key index of a dict root).
uint64_t open_bound(size_t bytes) {
  return 24 * static_cast<uint64_t>(bytes) + (2u << 20);
}

TEST(ParseMemory, OpeningAZipOrLegacyFileStaysWithinTheStatedBound) {
  for (const Case &k : cases()) {
    SCOPED_TRACE(k.name);
    std::string zip =
        make_zip_string({{"c/data.pkl", k.pkl}, {"c/version", "3\n"}});
    std::string leg = make_legacy(k.pkl);
    for (int f = 0; f < 2; f++) {
      const std::string &file = f ? leg : zip;
      OpenRun r = open_counted(file);
      printf("%-3s %-24s %8zu bytes  peak %9zu  %5.2fx  %s\n",
             f ? "leg" : "zip", k.name, file.size(), r.peak,
             double(r.peak) / file.size(), tsd_status_name(r.st));
      EXPECT_LE(r.peak, open_bound(file.size()))
          << (f ? "legacy " : "zip ") << k.name;
      if (k.legit) EXPECT_EQ(r.st, TSD_OK) << r.msg;
    }
  }
}

// A legacy pickle longer than the first window (64 KiB) is parsed again
// from a larger one; the values of the failed try are released, so a
// legacy file costs what the same pickle costs in a zip.
TEST(ParseMemory, LegacyWindowRetriesDoNotAccumulate) {
  std::string pkl = batched(P2 + "]q\x00"s,
                            [](size_t) { return "G" + std::string(8, 'x'); },
                            "e", ".");
  OpenRun z = open_counted(make_zip_string({{"c/data.pkl", pkl}}));
  OpenRun l = open_counted(make_legacy(pkl));
  ASSERT_EQ(z.st, TSD_OK) << z.msg;
  ASSERT_EQ(l.st, TSD_OK) << l.msg;
  // the zip holds the pickle's bytes once more than the legacy window
  EXPECT_LE(l.peak, z.peak + pkl.size() / 2)
      << "legacy " << l.peak << ", zip " << z.peak;
}

} // namespace
