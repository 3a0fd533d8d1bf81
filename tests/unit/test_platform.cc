// test_platform.cc — the OS layer (platform.h) and the byte-order helpers,
// on every platform tsd builds for (run under Wine and qemu by the presets).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "internal.h"
#include "platform.h"
}
#include "test_tmp.h"


// The CRC-32 check value of the ISO-HDLC / zlib polynomial, and chaining.
TEST(Platform, Crc32MatchesTheStandardCheckValues) {
  EXPECT_EQ(tsd__crc32(0, "123456789", 9), 0xCBF43926u);
  EXPECT_EQ(tsd__crc32(0, "", 0), 0u);
  EXPECT_EQ(tsd__crc32(0, "The quick brown fox jumps over the lazy dog", 43),
            0x414FA339u);
  uint32_t c = tsd__crc32(0, "12345", 5);
  EXPECT_EQ(tsd__crc32(c, "6789", 4), 0xCBF43926u);
  std::vector<unsigned char> big(100003);
  for (size_t i = 0; i < big.size(); i++)
    big[i] = (unsigned char)(i * 131 + 7);
  uint32_t whole = tsd__crc32(0, big.data(), big.size());
  uint32_t parts = tsd__crc32(tsd__crc32(0, big.data(), 1001), big.data() + 1001,
                              big.size() - 1001);
  EXPECT_EQ(whole, parts);
}

TEST(Platform, SwapElemsReversesEachElement) {
  unsigned char b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  tsd__swap_elems(b, 2, 4);
  EXPECT_EQ(0, memcmp(b, "\x02\x01\x04\x03\x06\x05\x08\x07", 8));
  unsigned char c[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  tsd__swap_elems(c, 4, 2);
  EXPECT_EQ(0, memcmp(c, "\x04\x03\x02\x01\x08\x07\x06\x05", 8));
  unsigned char d[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  tsd__swap_elems(d, 8, 1);
  EXPECT_EQ(0, memcmp(d, "\x08\x07\x06\x05\x04\x03\x02\x01", 8));
}

// The swap unit follows the machine: none where the file's order is the
// machine's, the element (half a complex one) where it is not.
TEST(Platform, SwapUnitFollowsTheMachineByteOrder) {
  uint16_t probe = 1;
  unsigned char first;
  memcpy(&first, &probe, 1);
  bool big = first == 0;
  EXPECT_EQ(big, (bool)TSD__BIG_ENDIAN);
  EXPECT_EQ(tsd__swap_unit(TSD_FLOAT32, big), 0);
  EXPECT_EQ(tsd__swap_unit(TSD_FLOAT32, !big), 4);
  EXPECT_EQ(tsd__swap_unit(TSD_COMPLEX64, !big), 4);
  EXPECT_EQ(tsd__swap_unit(TSD_COMPLEX128, !big), 8);
  EXPECT_EQ(tsd__swap_unit(TSD_FLOAT16, !big), 2);
  EXPECT_EQ(tsd__swap_unit(TSD_UINT8, !big), 0);
}

// A float32 tensor written by tsd and read back: the file holds it
// little-endian on every machine (the bytes are checked, not only the
// round trip).
TEST(Platform, SavedTensorsAreLittleEndianOnEveryMachine) {
  std::string path = tsdtest::temp_dir() + "/platform_le.safetensors";
  tsd_model *m = nullptr;
  ASSERT_EQ(tsd_model_new(&m, "M"), TSD_OK);
  float w[2] = {1.0f, -2.5f};
  int64_t shape[1] = {2};
  ASSERT_EQ(tsd_model_add_tensor(m, "w", TSD_PARAMETER, TSD_FLOAT32, 1, shape, w), TSD_OK);
  ASSERT_EQ(tsd_model_save(m, path.c_str(), NULL), TSD_OK) << tsd_last_error();
  FILE *f = fopen(path.c_str(), "rb");
  ASSERT_TRUE(f);
  std::vector<unsigned char> bytes(4096);
  size_t n = fread(bytes.data(), 1, bytes.size(), f);
  fclose(f);
  bytes.resize(n);
  // 1.0f = 0x3f800000, -2.5f = 0xc0200000, little-endian at the end
  ASSERT_GE(n, 8u);
  const unsigned char want[8] = {0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0};
  EXPECT_EQ(0, memcmp(bytes.data() + n - 8, want, 8));
  tsd_checkpoint *ck = nullptr;
  ASSERT_EQ(tsd_checkpoint_open(&ck, path.c_str(), nullptr), TSD_OK)
      << tsd_last_error();
  float back[2] = {0, 0};
  ASSERT_EQ(tsd_checkpoint_read(back, sizeof back, ck, 0, TSD_FLOAT32), TSD_OK);
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], -2.5f);
  double d[2];
  ASSERT_EQ(tsd_checkpoint_read(d, sizeof d, ck, 0, TSD_FLOAT64), TSD_OK);
  EXPECT_EQ(d[1], -2.5);
  tsd_checkpoint_free(ck);
  tsd_model_free(m);
  remove(path.c_str());
}

// Reads at offsets past 4 GiB: a sparse file where the OS makes one cheaply
// (skipped where it cannot be created: a small disk, a file system without
// sparse files).
TEST(Platform, ReadsAtOffsetsPast4GiB) {
  std::string path = tsdtest::temp_dir() + "/platform_big.bin";
  FILE *f = fopen(path.c_str(), "wb");
  ASSERT_TRUE(f);
  const uint64_t at = (uint64_t)5 << 30;
  bool made = false;
#ifdef _WIN32
  made = _fseeki64(f, (long long)at, SEEK_SET) == 0;
#else
  made = fseeko(f, (off_t)at, SEEK_SET) == 0;
#endif
  made = made && fwrite("tail!", 1, 5, f) == 5;
  made = fclose(f) == 0 && made;
  if (!made) {
    remove(path.c_str());
    GTEST_SKIP() << "cannot make a 5 GiB sparse file here";
  }
  int fd = -1;
  uint64_t size = 0;
  ASSERT_EQ(tsd__open_regular(path.c_str(), &fd, &size), TSD_OK)
      << tsd_last_error();
  EXPECT_EQ(size, at + 5);
  char buf[8] = {0};
  size_t got = 0;
  EXPECT_EQ(tsd__os_pread(fd, buf, 5, at, &got), 0u);
  EXPECT_EQ(got, 5u);
  EXPECT_EQ(std::string(buf, 5), "tail!");
  EXPECT_EQ(tsd__os_pread(fd, buf, 5, at + 5, &got), 0u);
  EXPECT_EQ(got, 0u); // the end
  tsd__os_close(fd);
  remove(path.c_str());
}

// A UTF-8 path (not representable in a Windows ANSI code page) is written,
// replaced atomically and read back.
TEST(Platform, Utf8PathsAndAtomicReplace) {
  std::string path = tsdtest::temp_dir() + "/platform_\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80.safetensors";
  for (int round = 0; round < 2; round++) {
    tsd_model *m = nullptr;
    ASSERT_EQ(tsd_model_new(&m, "M"), TSD_OK);
    float w[1] = {(float)round};
    int64_t shape[1] = {1};
    ASSERT_EQ(tsd_model_add_tensor(m, "w", TSD_PARAMETER, TSD_FLOAT32, 1, shape, w),
              TSD_OK);
    ASSERT_EQ(tsd_model_save(m, path.c_str(), NULL), TSD_OK)
        << tsd_last_error();
    tsd_model_free(m);
    tsd_checkpoint *ck = nullptr;
    ASSERT_EQ(tsd_checkpoint_open(&ck, path.c_str(), nullptr), TSD_OK)
        << tsd_last_error();
    float back = -1;
    ASSERT_EQ(tsd_checkpoint_read(&back, sizeof back, ck, 0, TSD_FLOAT32),
              TSD_OK);
    EXPECT_EQ(back, (float)round);
    tsd_checkpoint_free(ck);
  }
  tsd_checkpoint *ck = nullptr;
  std::string missing = tsdtest::temp_dir() + "/platform_missing.pth";
  EXPECT_EQ(tsd_checkpoint_open(&ck, missing.c_str(), nullptr), TSD_ERR_IO);
  // the OS's own text follows the path (strerror / FormatMessageW)
  EXPECT_NE(std::string(tsd_last_error()).find("cannot open: "),
            std::string::npos)
      << tsd_last_error();
}

static void *add_one(void *p) {
  *static_cast<int *>(p) += 1;
  return nullptr;
}

TEST(Platform, ThreadsStartAndJoin) {
  int v = 41;
  tsd__thread t;
  ASSERT_TRUE(tsd__thread_start(&t, add_one, &v));
  tsd__thread_join(&t);
  EXPECT_EQ(v, 42);
}

TEST(Platform, OsErrorTextsAreNonEmpty) {
  char buf[TSD__OS_ERRTEXT_CAP];
#ifdef _WIN32
  const tsd__oserr e = 2; // ERROR_FILE_NOT_FOUND
#else
  const tsd__oserr e = 2; // ENOENT
#endif
  const char *s = tsd__os_error_text(e, buf, sizeof buf);
  EXPECT_GT(strlen(s), 3u);
  EXPECT_EQ(s[strlen(s) - 1] == '\n', false);
}
