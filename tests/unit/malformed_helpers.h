// malformed_helpers.h — the malformed-input corpus (tests/malformed/,
// written by make_corpus.py from real checkpoints) as the tests see it: the
// cases of manifest.tsv and the fuzz regressions, what one case does
// (run_case: open from memory and from the path, read every entry, load into
// the fixed model of tests/fuzz/fuzz_common.h strict, non-strict and
// auto-pop) and the documented expectations (check_outcome). Shared by
// test_malformed_portable.cc (every case in-process, on every OS) and
// test_malformed.cc (every case again in a child under RLIMIT_AS, POSIX).
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../fuzz/fuzz_common.h"
#include "tsd.h"

namespace tsdtest_malformed {

inline const std::string &corpus_dir() {
  static const std::string d = std::string(TSD_FIXTURES) + "/../malformed";
  return d;
}

inline std::vector<uint8_t> slurp_bytes(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

struct Case {
  std::string name, path, expect, substring;
};

inline void PrintTo(const Case &c, std::ostream *os) { *os << c.name; }

inline std::vector<Case> manifest() {
  std::vector<Case> out;
  std::ifstream f(corpus_dir() + "/manifest.tsv");
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    Case c;
    std::istringstream in(line);
    std::getline(in, c.name, '\t');
    std::getline(in, c.expect, '\t');
    std::getline(in, c.substring);
    c.path = corpus_dir() + "/cases/" + c.name + ".bin";
    out.push_back(c);
  }
  return out;
}

// Crash files found by fuzzing (scripts/fuzz.sh copies them here): any
// outcome but a crash, as for the random bit flips.
inline std::vector<Case> regressions() {
  std::vector<Case> out;
  std::string dir = corpus_dir() + "/regressions";
  std::error_code ec;
  for (const auto &e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    Case c;
    c.name = name;
    c.path = dir + "/" + name;
    c.expect = "any";
    out.push_back(c);
  }
  return out;
}

// The number of .bin files in cases/ (every one must be in the manifest).
inline size_t case_files() {
  size_t n = 0;
  std::error_code ec;
  for (const auto &e :
       std::filesystem::directory_iterator(corpus_dir() + "/cases", ec))
    if (e.path().filename().string().find(".bin") != std::string::npos) n++;
  return n;
}

// What one case did: statuses of each step, first message.
struct Outcome {
  int open_mem = 0, open_path = 0;
  int read = 0;       // first failing tsd_checkpoint_read, or 0
  int load[3] = {};   // strict, non-strict, auto-pop (0 if not opened)
  int empty_msgs = 0; // failing calls whose message was empty
  int changed = 0;    // failed loads that changed the model's bytes
  int model_init = 0;
  char msg[600] = {}; // message of the first failure
};

inline void note(Outcome &o, const char *m) {
  if (!m || !m[0]) {
    o.empty_msgs++;
    return;
  }
  if (!o.msg[0]) snprintf(o.msg, sizeof o.msg, "%s", m);
}

inline Outcome run_case(const std::vector<uint8_t> &bytes, const std::string &path) {
  Outcome o;
  tsd_checkpoint *c = nullptr, *cp = nullptr;
  o.open_mem =
      tsd_checkpoint_open_memory(&c, bytes.data(), bytes.size(), nullptr);
  if (o.open_mem != TSD_OK) note(o, tsd_last_error());
  o.open_path = tsd_checkpoint_open(&cp, path.c_str(), nullptr);
  if (o.open_path != TSD_OK && !tsd_last_error()[0]) o.empty_msgs++;
  tsd_checkpoint_free(cp);
  if (!c) return o;

  for (size_t i = 0; i < tsd_checkpoint_count(c); i++) {
    tsd_entry e;
    if (tsd_checkpoint_entry(&e, c, i) != TSD_OK || e.kind != TSD_KIND_TENSOR)
      continue;
    if (e.numel < 0 || e.numel > (16 << 20)) continue;
    std::vector<uint8_t> buf(static_cast<size_t>(e.numel) * 8 + 1);
    tsd_status st =
        tsd_checkpoint_read(buf.data(), buf.size(), c, i, TSD_FLOAT32);
    if (st != TSD_OK && !o.read) {
      o.read = st;
      note(o, tsd_last_error());
    }
  }

  tsdf_net net;
  o.model_init = tsdf_net_init(&net);
  if (o.model_init != TSD_OK) {
    tsd_checkpoint_free(c);
    return o;
  }
  static const int modes[3][2] = {{1, 0}, {0, 0}, {0, 1}};
  for (int k = 0; k < 3; k++) {
    tsdf_net_data before = net.data;
    tsd_load_options opt = TSD_LOAD_OPTIONS_INIT;
    opt.strict = modes[k][0];
    opt.auto_pop = modes[k][1];
    tsd_report *r = nullptr;
    tsd_status st = tsd_load(&r, net.model, c, &opt);
    o.load[k] = st;
    if (st == TSD_ERR_LOAD)
      note(o, r ? tsd_report_message(r) : "");
    else if (st != TSD_OK)
      note(o, tsd_last_error());
    if (st != TSD_OK && memcmp(&before, &net.data, sizeof before) != 0)
      o.changed++;
    tsd_report_free(r);
    net.data = before;
  }
  tsdf_net_free(&net);
  tsd_checkpoint_free(c);
  return o;
}

inline bool malformed_status(int st) {
  return st == TSD_ERR_FORMAT || st == TSD_ERR_REFUSED ||
         st == TSD_ERR_UNSUPPORTED || st == TSD_ERR_LIMIT || st == TSD_ERR_TYPE;
}

inline const char *name_of(int st) {
  return tsd_status_name(static_cast<tsd_status>(st));
}

// The documented outcome of case `c` (manifest.tsv's expect field), a
// message for every failure, the model unchanged by every failed load.
inline void check_outcome(const Case &c, const Outcome &o) {
  ASSERT_EQ(o.model_init, TSD_OK) << "cannot build the model";

  EXPECT_EQ(o.open_mem, o.open_path)
      << "opening from memory and from the path disagree";
  EXPECT_EQ(o.empty_msgs, 0) << "a failing call left no message";
  EXPECT_EQ(o.changed, 0) << "a failed load changed the model's bytes";

  std::string got_open = name_of(o.open_mem), msg = o.msg;
  if (c.expect == "ok") {
    EXPECT_EQ(o.open_mem, TSD_OK) << msg;
    EXPECT_EQ(o.read, TSD_OK) << msg;
    EXPECT_EQ(o.load[0], TSD_OK) << msg;
  } else if (c.expect == "any") {
    if (o.open_mem != TSD_OK)
      EXPECT_TRUE(malformed_status(o.open_mem)) << got_open << ": " << msg;
    if (o.read != TSD_OK)
      EXPECT_TRUE(malformed_status(o.read) || o.read == TSD_ERR_IO)
          << name_of(o.read) << ": " << msg;
    for (int st : o.load)
      if (st != TSD_OK && st != TSD_ERR_LOAD)
        EXPECT_TRUE(malformed_status(st)) << name_of(st) << ": " << msg;
  } else if (c.expect.compare(0, 5, "open:") == 0) {
    std::string want = c.expect.substr(5);
    EXPECT_EQ(got_open, want) << "message: " << msg;
    if (o.open_mem != TSD_OK)
      EXPECT_NE(msg.find(c.substring), std::string::npos)
          << "message lacks \"" << c.substring << "\": " << msg;
  } else if (c.expect.compare(0, 5, "load:") == 0) {
    std::string want = c.expect.substr(5);
    ASSERT_EQ(o.open_mem, TSD_OK) << "expected to open: " << msg;
    EXPECT_EQ(std::string(name_of(o.load[0])), want) << "message: " << msg;
    if (o.load[0] != TSD_OK)
      EXPECT_NE(msg.find(c.substring), std::string::npos)
          << "message lacks \"" << c.substring << "\": " << msg;
  } else {
    ADD_FAILURE() << "bad expect field in manifest.tsv: " << c.expect;
  }
}

} // namespace tsdtest_malformed
