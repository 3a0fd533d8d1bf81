// views_helpers.h — what the two views test programs share (test_views.cc:
// fixtures from Python torch; test_views_portable.cc: fixtures written
// byte by byte, run under Wine and qemu): a checkpoint opened mapped or not,
// a load's status, report and message, and load options of one mode.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "test_helpers.h"

namespace tsdtest_views {

struct Ckpt {
  tsd_checkpoint *c = nullptr;
  Ckpt(const std::string &path, bool map) {
    tsd_open_options o = TSD_OPEN_OPTIONS_INIT;
    o.flags = map ? TSD_OPEN_MAP : 0;
    EXPECT_EQ(tsd_checkpoint_open(&c, path.c_str(), &o), TSD_OK)
        << tsd_last_error();
  }
  ~Ckpt() { tsd_checkpoint_free(c); }
  Ckpt(const Ckpt &) = delete;
  Ckpt &operator=(const Ckpt &) = delete;
  size_t find(const char *key) const {
    size_t i = SIZE_MAX;
    EXPECT_EQ(tsd_checkpoint_find(&i, c, key), TSD_OK) << key;
    return i;
  }
};

struct LoadR {
  tsd_status st;
  tsd_report *r = nullptr;
  std::string err;
  LoadR(tsd_model *m, const tsd_checkpoint *c, const tsd_load_options &o) {
    st = tsd_load(&r, m, c, &o);
    err = tsd_last_error();
  }
  ~LoadR() { tsd_report_free(r); }
  LoadR(const LoadR &) = delete;
  LoadR &operator=(const LoadR &) = delete;
  std::vector<std::string> list(tsd_list l) const {
    return tsdtest::report_list(r, l);
  }
};

inline tsd_load_options mode(tsd_load_mode md) {
  tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
  o.mode = md;
  return o;
}

}  // namespace tsdtest_views
