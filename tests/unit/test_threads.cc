// test_threads.cc — tsd's thread contract (tsd.h, "Threads" and "Errors"):
// one checkpoint opened once and loaded into many models from many threads at
// once gives identical results; different checkpoints load concurrently;
// error messages are per thread. Run under TSan by scripts/sanitize.sh.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "../fuzz/fuzz_common.h"
#include "tsd.h"

namespace {

const std::string kCases = std::string(TSD_FIXTURES) + "/../malformed/cases/";
constexpr int kThreads = 8;
constexpr int kRounds = 20;

std::vector<uint8_t> slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

// A start line, so the threads really run at the same time.
class Gate {
public:
  explicit Gate(int n) : waiting_(n) {}
  void arrive_and_wait() {
    waiting_.fetch_sub(1);
    while (waiting_.load() > 0)
      std::this_thread::yield();
  }

private:
  std::atomic<int> waiting_;
};

struct Result {
  int status = -100;
  std::string message;
  tsdf_net_data data{};
};

Result load_into_fresh_model(const tsd_checkpoint *c, int strict,
                             int auto_pop) {
  Result r;
  tsdf_net net;
  if (tsdf_net_init(&net) != TSD_OK) return r;
  tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
  o.strict = strict;
  o.auto_pop = auto_pop;
  tsd_report *rep = nullptr;
  r.status = tsd_load(&rep, net.model, c, &o);
  r.message = rep ? tsd_report_message(rep) : tsd_last_error();
  r.data = net.data;
  tsd_report_free(rep);
  tsdf_net_free(&net);
  return r;
}

TEST(Threads, OneCheckpointLoadsIntoManyModelsAtOnce) {
  auto bytes = slurp(kCases + "ok_zip_p2.bin");
  ASSERT_FALSE(bytes.empty());
  tsd_checkpoint *c = nullptr;
  ASSERT_EQ(tsd_checkpoint_open_memory(&c, bytes.data(), bytes.size(), nullptr),
            TSD_OK)
      << tsd_last_error();
  Result ref = load_into_fresh_model(c, 1, 0);
  ASSERT_EQ(ref.status, TSD_OK) << ref.message;

  std::vector<std::vector<Result>> got(kThreads);
  Gate gate(kThreads);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++)
    ts.emplace_back([&, t] {
      gate.arrive_and_wait();
      for (int i = 0; i < kRounds; i++) {
        got[t].push_back(load_into_fresh_model(c, i % 2, (i / 2) % 2));
        // reads of the shared checkpoint at the same time as the loads
        std::vector<float> buf(12);
        size_t idx;
        if (tsd_checkpoint_find(&idx, c, "fc.weight") == TSD_OK)
          tsd_checkpoint_read(buf.data(), 48, c, idx, TSD_FLOAT32);
        for (int k = 0; k < 12; k++)
          if (buf[k] != ref.data.fc_weight[k]) got[t].back().status = -200;
      }
    });
  for (auto &th : ts)
    th.join();
  for (int t = 0; t < kThreads; t++) {
    ASSERT_EQ(got[t].size(), static_cast<size_t>(kRounds));
    for (const Result &r : got[t]) {
      EXPECT_EQ(r.status, TSD_OK) << r.message;
      EXPECT_EQ(r.message, ref.message);
      EXPECT_EQ(memcmp(&r.data, &ref.data, sizeof r.data), 0)
          << "thread " << t << " loaded different bytes";
    }
  }
  tsd_checkpoint_free(c);
}

TEST(Threads, DifferentCheckpointsLoadConcurrently) {
  // zip p2/p4/p5, legacy, from memory and from their paths.
  const char *names[] = {"ok_zip_p2", "ok_zip_p4", "ok_zip_p5", "ok_legacy"};
  std::vector<Result> ref;
  for (const char *n : names) {
    tsd_checkpoint *c = nullptr;
    ASSERT_EQ(tsd_checkpoint_open((&c), (kCases + n + ".bin").c_str(), nullptr),
              TSD_OK)
        << tsd_last_error();
    ref.push_back(load_into_fresh_model(c, 1, 0));
    ASSERT_EQ(ref.back().status, TSD_OK) << ref.back().message;
    tsd_checkpoint_free(c);
  }
  std::atomic<int> failures{0};
  Gate gate(kThreads);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++)
    ts.emplace_back([&, t] {
      gate.arrive_and_wait();
      for (int i = 0; i < kRounds; i++) {
        size_t which = static_cast<size_t>(t + i) % 4;
        std::string path = kCases + names[which] + ".bin";
        std::vector<uint8_t> bytes;
        tsd_checkpoint *c = nullptr;
        tsd_status st;
        if (i % 2) {
          st = tsd_checkpoint_open(&c, path.c_str(), nullptr);
        } else {
          bytes = slurp(path);
          st = tsd_checkpoint_open_memory(&c, bytes.data(), bytes.size(),
                                          nullptr);
        }
        if (st != TSD_OK) {
          failures++;
          continue;
        }
        Result r = load_into_fresh_model(c, 1, 0);
        if (r.status != TSD_OK || r.message != ref[which].message ||
            memcmp(&r.data, &ref[which].data, sizeof r.data) != 0)
          failures++;
        tsd_checkpoint_free(c);
      }
    });
  for (auto &th : ts)
    th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(Threads, ErrorMessagesArePerThread) {
  // Thread A fails over and over with a refused global; thread B fails with
  // a truncated file and checks after each call that its own message is
  // still its own; thread C succeeds and sees no foreign message.
  auto refused = slurp(kCases + "refused_newobj_codecs_encode.bin");
  auto truncated = slurp(kCases + "trunc_zip_p2_00001.bin");
  auto good = slurp(kCases + "ok_zip_p2.bin");
  ASSERT_FALSE(refused.empty());
  ASSERT_FALSE(good.empty());
  std::atomic<int> wrong{0};
  std::string example;
  std::atomic<bool> have_example{false};
  auto report = [&](const std::string &m) {
    wrong++;
    bool f = false;
    if (have_example.compare_exchange_strong(f, true)) example = m;
  };
  Gate gate(3);
  std::thread a([&] {
    gate.arrive_and_wait();
    for (int i = 0; i < 200; i++) {
      tsd_checkpoint *c = nullptr;
      tsd_status st = tsd_checkpoint_open_memory(&c, refused.data(),
                                                 refused.size(), nullptr);
      std::this_thread::yield();
      std::string m = tsd_last_error();
      if (st != TSD_ERR_REFUSED ||
          m.find("NEWOBJ is allowed only") == std::string::npos)
        report("A: " + m);
    }
  });
  std::thread b([&] {
    gate.arrive_and_wait();
    for (int i = 0; i < 200; i++) {
      tsd_checkpoint *c = nullptr;
      tsd_status st = tsd_checkpoint_open_memory(&c, truncated.data(),
                                                 truncated.size(), nullptr);
      std::this_thread::yield();
      std::string m = tsd_last_error();
      if (st != TSD_ERR_FORMAT || m.empty() ||
          m.find("refusing") != std::string::npos)
        report("B: " + m);
    }
  });
  std::thread c([&] {
    gate.arrive_and_wait();
    for (int i = 0; i < 200; i++) {
      tsd_checkpoint *ck = nullptr;
      tsd_status st =
          tsd_checkpoint_open_memory(&ck, good.data(), good.size(), nullptr);
      if (st != TSD_OK) report("C: " + std::string(tsd_last_error()));
      std::this_thread::yield();
      std::string m = tsd_last_error();
      if (m.find("refusing") != std::string::npos ||
          m.find("zip") != std::string::npos)
        report("C sees a foreign message: " + m);
      tsd_checkpoint_free(ck);
    }
  });
  a.join();
  b.join();
  c.join();
  EXPECT_EQ(wrong.load(), 0) << "first wrong message: " << example;
  // The main thread never failed: its message is not any thread's.
  std::string mine = tsd_last_error();
  EXPECT_EQ(mine.find("refusing"), std::string::npos) << mine;
}

} // namespace
