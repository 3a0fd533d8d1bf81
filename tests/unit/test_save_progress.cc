// test_save_progress.cc — tsd_save_options.progress on every OS (no CLI,
// no shell: built for Windows too, where saves once never called it).
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "test_helpers.h"

namespace {

std::string slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f),
                     std::istreambuf_iterator<char>());
}

std::string tmp(const char *name) { return tsdtest::temp_dir() + "/" + name; }

} // namespace

TEST(SaveProgress, ReportsTheBytesWrittenAndCanCancel) {
  std::vector<float> data(3u << 20, 1.0f); // 12 MiB: several writes
  tsd_model *m = nullptr;
  ASSERT_EQ(tsd_model_new(&m, "M"), TSD_OK);
  int64_t shape[1] = {(int64_t)data.size()};
  ASSERT_EQ(tsd_model_add_tensor(m, "w", TSD_PARAMETER, TSD_FLOAT32, 1, shape,
                                 data.data()),
            TSD_OK);
  struct Seen {
    std::vector<uint64_t> done;
    uint64_t total = 0;
    int cancel_at = -1;
  } seen;
  auto cb = [](void *user, uint64_t done, uint64_t total) -> int {
    Seen *s = static_cast<Seen *>(user);
    s->done.push_back(done);
    s->total = total;
    return s->cancel_at >= 0 && (int)s->done.size() > s->cancel_at;
  };
  tsd_save_options o = TSD_SAVE_OPTIONS_INIT;
  o.progress = cb;
  o.progress_user = &seen;
  std::string out = tmp("progress.pth");
  ASSERT_EQ(tsd_model_save(m, out.c_str(), &o), TSD_OK) << tsd_last_error();
  EXPECT_EQ(seen.total, data.size() * 4);
  ASSERT_GE(seen.done.size(), 2u);
  for (size_t i = 1; i < seen.done.size(); i++)
    EXPECT_LE(seen.done[i - 1], seen.done[i]);
  EXPECT_EQ(seen.done.back(), seen.total);
  // canceled: TSD_ERR_CANCELED, the old file as it was
  std::string before = slurp(out);
  seen = Seen();
  seen.cancel_at = 1;
  EXPECT_EQ(tsd_model_save(m, out.c_str(), &o), TSD_ERR_CANCELED);
  EXPECT_EQ(slurp(out), before);
  // a version 1 struct has no progress field; an unknown version is refused
  tsd_save_options v1 = o;
  v1.version = 1;
  seen = Seen();
  EXPECT_EQ(tsd_model_save(m, out.c_str(), &v1), TSD_OK);
  EXPECT_TRUE(seen.done.empty());
  v1.version = 99;
  EXPECT_EQ(tsd_model_save(m, out.c_str(), &v1), TSD_ERR_INVALID_ARG);
  remove(out.c_str());
  tsd_model_free(m);
}
