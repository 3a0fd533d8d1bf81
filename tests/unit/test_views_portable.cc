// test_views_portable.cc — issue 15's mapped views, binding and the device
// hook on fixtures that need no Python, so that they also run under Wine
// (the Win32 mapping: CreateFileMapping/MapViewOfFile) and qemu (arm64, and
// s390x, where views are refused by design: the host is big-endian).
//
// The safetensors file is written here byte by byte, little-endian
// explicitly; the zip file is tests/fixtures/remap_head.pth (torch.save of
// PyTorch 1.13, committed), whose values were printed once by torch.load.
// test_views.cc checks the same paths against Python's load_state_dict.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#ifndef _WIN32
#include <unistd.h>
#endif

#include "test_helpers.h"
#include "views_helpers.h"

namespace {

using tsdtest_views::Ckpt;
using tsdtest_views::LoadR;
using tsdtest_views::mode;

using tsdtest::host_little_endian;
using tsdtest::put_le;

uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

// The tensors of the safetensors file, in file order, with their values.
constexpr int64_t kBigRows = 300, kBigCols = 256; // 300 KiB of float32
constexpr int64_t kHalfRows = 200, kHalfCols = 300;
float big_value(int64_t i) { return static_cast<float>(i % 1000) * 0.25f; }
uint16_t half_bits(int64_t i) { return static_cast<uint16_t>(0x3C00 | (i % 1024)); }
float half_value(int64_t i) { return 1.0f + static_cast<float>(i % 1024) / 1024.0f; }
float w_value(int64_t i) { return static_cast<float>(i) - 7.5f; }
constexpr int64_t kCount = 42;

struct StTensor {
  const char *name;
  const char *dtype; // safetensors name
  tsd_dtype model_dtype;
  std::vector<int64_t> shape;
};
const std::vector<StTensor> &st_tensors() {
  static const std::vector<StTensor> t = {
      {"n", "I64", TSD_INT64, {}},
      {"big", "F32", TSD_FLOAT32, {kBigRows, kBigCols}},
      {"w", "F32", TSD_FLOAT32, {4, 8}},
      {"bigh", "F16", TSD_FLOAT32, {kHalfRows, kHalfCols}}, // converted
      {"b", "F16", TSD_FLOAT32, {4}},                        // converted
  };
  return t;
}

int64_t numel(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

// The value of tensor `name` as its model dtype (what a load delivers).
std::vector<unsigned char> expected(const std::string &name) {
  std::string out;
  if (name == "n") {
    put_le(out, kCount, 8);
  } else if (name == "big") {
    for (int64_t i = 0; i < kBigRows * kBigCols; i++)
      put_le(out, float_bits(big_value(i)), 4);
  } else if (name == "w") {
    for (int64_t i = 0; i < 32; i++)
      put_le(out, float_bits(w_value(i)), 4);
  } else if (name == "bigh") {
    for (int64_t i = 0; i < kHalfRows * kHalfCols; i++)
      put_le(out, float_bits(half_value(i)), 4);
  } else if (name == "b") {
    for (int64_t i = 0; i < 4; i++)
      put_le(out, float_bits(half_value(i * 100)), 4);
  }
  // the host's order: what a load writes into memory
  std::vector<unsigned char> v(out.begin(), out.end());
  if (!host_little_endian()) {
    size_t isz = name == "n" ? 8 : 4;
    for (size_t i = 0; i < v.size(); i += isz)
      std::reverse(v.begin() + static_cast<long>(i),
                   v.begin() + static_cast<long>(i + isz));
  }
  return v;
}

// The file's data bytes of `name` (little-endian, its file dtype).
std::string file_bytes(const std::string &name) {
  std::string out;
  if (name == "bigh") {
    for (int64_t i = 0; i < kHalfRows * kHalfCols; i++)
      put_le(out, half_bits(i), 2);
  } else if (name == "b") {
    for (int64_t i = 0; i < 4; i++)
      put_le(out, half_bits(i * 100), 2);
  } else {
    std::vector<unsigned char> e = expected(name);
    out.assign(e.begin(), e.end());
    if (!host_little_endian()) { // back to little-endian
      size_t isz = name == "n" ? 8 : 4;
      for (size_t i = 0; i < out.size(); i += isz)
        std::reverse(out.begin() + static_cast<long>(i),
                     out.begin() + static_cast<long>(i + isz));
    }
  }
  return out;
}

// An 8-byte little-endian header length, the JSON header padded with spaces
// to a multiple of 8, then the data in the order of st_tensors().
std::string write_safetensors() {
  std::string path = tsdtest::temp_dir() + "/portable.safetensors";
  std::string hdr = "{", data;
  for (const StTensor &t : st_tensors()) {
    std::string b = file_bytes(t.name);
    if (hdr.size() > 1) hdr += ",";
    hdr += "\"" + std::string(t.name) + "\":{\"dtype\":\"" + t.dtype +
           "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); i++)
      hdr += (i ? "," : "") + std::to_string(t.shape[i]);
    hdr += "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
           std::to_string(data.size() + b.size()) + "]}";
    data += b;
  }
  hdr += "}";
  while (hdr.size() % 8)
    hdr += " ";
  std::string file;
  put_le(file, hdr.size(), 8);
  file += hdr + data;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(file.data(), static_cast<std::streamsize>(file.size()));
  f.close();
  EXPECT_TRUE(f.good());
  return path;
}

std::string st_path() {
  static const std::string p = write_safetensors();
  return p;
}

// The file's tensors as a C-owned model (model dtypes), backed memory
// filled with 0xAB, or unbacked.
struct Model {
  tsd_model *m = nullptr;
  std::map<std::string, std::vector<unsigned char>> mem;
  std::vector<std::string> names;
  explicit Model(bool unbacked) {
    EXPECT_EQ(tsd_model_new(&m, "Portable"), TSD_OK);
    for (const StTensor &t : st_tensors()) {
      names.push_back(t.name);
      if (unbacked) {
        EXPECT_EQ(tsd_model_add_tensor_unbacked(m, t.name, TSD_PARAMETER,
                                                t.model_dtype, t.shape.size(),
                                                t.shape.data()),
                  TSD_OK);
        continue;
      }
      auto &b = mem[t.name];
      b.assign(static_cast<size_t>(numel(t.shape)) *
                   tsd_dtype_size(t.model_dtype),
               0xAB);
      EXPECT_EQ(tsd_model_add_tensor(m, t.name, TSD_PARAMETER, t.model_dtype,
                                     t.shape.size(), t.shape.data(), b.data()),
                TSD_OK);
    }
  }
  ~Model() { tsd_model_free(m); }
  std::vector<unsigned char> value(size_t i) const {
    const StTensor &t = st_tensors()[i];
    std::vector<unsigned char> b(static_cast<size_t>(numel(t.shape)) *
                                 tsd_dtype_size(t.model_dtype));
    EXPECT_EQ(tsd_model_read(b.data(), b.size(), m, i, t.model_dtype), TSD_OK)
        << tsd_last_error();
    return b;
  }
  bool untouched(const std::string &name) const {
    for (unsigned char c : mem.at(name))
      if (c != 0xAB) return false;
    return true;
  }
};

// A simulated device that also plays a DMA engine's part: chunk k's bytes
// are checked again when the callback of chunk k + 1 ends (an asynchronous
// copy of chunk k may still be reading them until then: tsd.h's rule).
struct Device {
  const uint8_t *staging = nullptr;
  size_t part = 0, nparts = 0;
  std::map<size_t, std::vector<unsigned char>> mem;
  std::map<size_t, uint64_t> next;
  uint64_t chunks = 0, fail_at = UINT64_MAX;
  const void *prev_data = nullptr;
  std::vector<unsigned char> prev_bytes;
  std::vector<std::string> errors;
  std::vector<std::string> seq; // tensor names in the order they arrived

  void check_prev(uint64_t k) {
    if (prev_data && memcmp(prev_data, prev_bytes.data(), prev_bytes.size()))
      errors.push_back("chunk " + std::to_string(k - 1) +
                       " was overwritten before the callback of chunk " +
                       std::to_string(k) + " returned");
  }
  static int copy(void *user, const tsd_device_chunk *ch) {
    auto *d = static_cast<Device *>(user);
    uint64_t k = d->chunks++;
    d->check_prev(k);
    if (ch->data != d->staging + (k % d->nparts) * d->part)
      d->errors.push_back("chunk " + std::to_string(k) + " not in part " +
                          std::to_string(k % d->nparts));
    if (ch->len == 0 || ch->len > d->part)
      d->errors.push_back("bad length " + std::to_string(ch->len));
    if (d->seq.empty() || d->seq.back() != ch->name) d->seq.push_back(ch->name);
    auto &buf = d->mem[ch->tensor];
    if (buf.empty()) buf.assign(ch->tensor_bytes, 0);
    if (ch->offset != d->next[ch->tensor])
      d->errors.push_back(std::string(ch->name) + ": chunk out of order");
    if (ch->offset + ch->len > buf.size())
      d->errors.push_back(std::string(ch->name) + ": out of bounds");
    else
      memcpy(buf.data() + ch->offset, ch->data, ch->len);
    d->next[ch->tensor] = ch->offset + ch->len;
    // give tsd's reading thread time to run, then check the last chunk again
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    d->check_prev(k);
    d->prev_data = ch->data;
    d->prev_bytes.assign(static_cast<const unsigned char *>(ch->data),
                         static_cast<const unsigned char *>(ch->data) + ch->len);
    return k == d->fail_at ? -5 : 0;
  }
};

tsd_load_options device_options(Device &d, std::vector<uint8_t> &staging) {
  tsd_load_options o = mode(TSD_LOAD_DEVICE);
  o.device_copy = Device::copy;
  o.device_user = &d;
  o.staging = staging.data();
  o.staging_bytes = staging.size();
  d.staging = staging.data();
  // tsd.h: three parts (64-byte multiples) from 3 * 64 KiB, else halves
  if (staging.size() / 3 >= (64u << 10)) {
    d.nparts = 3;
    d.part = staging.size() / 3 / 64 * 64;
  } else { // two halves, multiples of 8 bytes
    d.nparts = 2;
    d.part = staging.size() / 2 / 8 * 8;
  }
  return o;
}

} // namespace

// ---- views ---------------------------------------------------------------

TEST(ViewsPortable, MappedSafetensorsTensorsAreViewsOfTheFileOnLittleEndianHosts) {
  Ckpt c(st_path(), true);
  for (const StTensor &t : st_tensors()) {
    SCOPED_TRACE(t.name);
    tsd_tensor_view v;
    tsd_status st = tsd_checkpoint_view(&v, c.c, c.find(t.name));
    if (!host_little_endian()) {
      // s390x: refused by design, with the reason
      EXPECT_EQ(st, TSD_ERR_UNSUPPORTED);
      EXPECT_NE(std::string(tsd_last_error()).find("this host is big-endian"),
                std::string::npos)
          << tsd_last_error();
      EXPECT_EQ(v.data, nullptr);
      continue;
    }
    ASSERT_EQ(st, TSD_OK) << tsd_last_error();
    ASSERT_EQ(v.ndim, t.shape.size());
    EXPECT_EQ(v.numel, numel(t.shape));
    EXPECT_TRUE(v.contiguous);
    size_t isz = tsd_dtype_size(v.dtype);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % isz, 0u);
    std::string want = file_bytes(t.name);
    ASSERT_EQ(static_cast<size_t>(v.numel) * isz, want.size());
    EXPECT_EQ(memcmp(v.data, want.data(), want.size()), 0)
        << "the view shows the file's bytes";
  }
}

TEST(ViewsPortable, UnmappedFilesAreNotViewable) {
  Ckpt c(st_path(), false);
  tsd_tensor_view v;
  EXPECT_EQ(tsd_checkpoint_view(&v, c.c, c.find("w")), TSD_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(tsd_last_error()).find("TSD_OPEN_MAP"),
            std::string::npos)
      << tsd_last_error();
}

TEST(ViewsPortable, MappedTorchSaveZipRecordsAre64ByteAlignedViews) {
  Ckpt c(std::string(TSD_FIXTURES) + "/remap_head.pth", true);
  // torch.load: 0.weight starts 0.08434174, 0.08356927, -0.57776725;
  // 1.running_var is five ones; 1.num_batches_tracked is 0
  const uint32_t w0[3] = {1034730333u, 1034626654u, 3205752974u};
  for (const char *key : {"0.weight", "0.bias", "1.running_var",
                          "1.num_batches_tracked"}) {
    SCOPED_TRACE(key);
    size_t i = c.find(key);
    tsd_tensor_view v;
    tsd_status st = tsd_checkpoint_view(&v, c.c, i);
    if (!host_little_endian()) {
      EXPECT_EQ(st, TSD_ERR_UNSUPPORTED);
      continue;
    }
    ASSERT_EQ(st, TSD_OK) << tsd_last_error();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % 64, 0u);
    size_t bytes = static_cast<size_t>(v.numel) * tsd_dtype_size(v.dtype);
    std::vector<unsigned char> read(bytes);
    ASSERT_EQ(tsd_checkpoint_read(read.data(), bytes, c.c, i, v.dtype), TSD_OK);
    EXPECT_EQ(memcmp(v.data, read.data(), bytes), 0) << "map == read";
    if (!strcmp(key, "0.weight"))
      EXPECT_EQ(memcmp(v.data, w0, sizeof w0), 0);
    if (!strcmp(key, "1.running_var"))
      for (int k = 0; k < 5; k++)
        EXPECT_EQ(static_cast<const float *>(v.data)[k], 1.0f);
    if (!strcmp(key, "1.num_batches_tracked"))
      EXPECT_EQ(*static_cast<const int64_t *>(v.data), 0);
  }
}

// ---- binding -------------------------------------------------------------

TEST(ViewsPortable, BindBindsWhatMatchesCopiesConversionsAndLeavesBoundMemory) {
  Ckpt c(st_path(), true);
  Model m(false);
  LoadR r(m.m, c.c, mode(TSD_LOAD_BIND));
  ASSERT_EQ(r.st, TSD_OK) << r.err;
  std::vector<std::string> bound = r.list(TSD_LIST_BOUND),
                           copied = r.list(TSD_LIST_COPIED),
                           why = r.list(TSD_LIST_COPY_REASONS);
  ASSERT_EQ(copied.size(), why.size());
  if (host_little_endian()) {
    EXPECT_EQ(bound, (std::vector<std::string>{"n", "big", "w"}));
    EXPECT_EQ(copied, (std::vector<std::string>{"bigh", "b"}));
    for (const std::string &s : why)
      EXPECT_EQ(s, "float16 in the checkpoint, float32 in the model");
    for (const char *name : {"n", "big", "w"})
      EXPECT_TRUE(m.untouched(name)) << name << ": bound, memory untouched";
  } else {
    EXPECT_TRUE(bound.empty());
    EXPECT_EQ(copied.size(), 5u);
    EXPECT_NE(why[0].find("big-endian"), std::string::npos) << why[0];
  }
  for (size_t i = 0; i < m.names.size(); i++)
    EXPECT_EQ(m.value(i), expected(m.names[i])) << m.names[i];
}

// ---- the device hook, with tsd's reading thread ---------------------------

TEST(ViewsPortable, DeviceChunksRotateThroughThreePartsAndArriveIntact) {
  for (bool map : {false, true}) {
    // 3 * 64 KiB + 100: three parts of 65536 bytes; 4096: two halves
    for (size_t staging_bytes : {size_t(3) * (64 << 10) + 100, size_t(4096)}) {
      SCOPED_TRACE(std::to_string(staging_bytes) + (map ? " mapped" : ""));
      Ckpt c(st_path(), map);
      Model m(true); // no host memory at all
      Device d;
      std::vector<uint8_t> staging(staging_bytes);
      LoadR r(m.m, c.c, device_options(d, staging));
      ASSERT_EQ(r.st, TSD_OK) << r.err;
      EXPECT_TRUE(d.errors.empty()) << d.errors[0];
      for (size_t i = 0; i < m.names.size(); i++) {
        EXPECT_EQ(d.next[i], expected(m.names[i]).size()) << m.names[i];
        EXPECT_EQ(d.mem[i], expected(m.names[i])) << m.names[i];
      }
      // big: 300 KiB in parts of 64 KiB is 5 chunks
      if (d.nparts == 3) EXPECT_EQ(d.chunks, 1u + 5u + 1u + 4u + 1u);
    }
  }
}

// Device chunks come in the order of the bytes in the file (a cold load then
// reads the file front to back), not in the model's order: here the model
// declares the file's tensors in reverse.
TEST(ViewsPortable, DeviceChunksFollowTheFileNotTheModel) {
  for (int threads : {0, 1}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    Ckpt c(st_path(), false);
    tsd_model *m = nullptr;
    ASSERT_EQ(tsd_model_new(&m, "Reversed"), TSD_OK);
    std::vector<std::string> file_order;
    for (const StTensor &t : st_tensors())
      file_order.push_back(t.name);
    for (auto t = st_tensors().rbegin(); t != st_tensors().rend(); ++t)
      ASSERT_EQ(tsd_model_add_tensor_unbacked(m, t->name, TSD_PARAMETER,
                                              t->model_dtype, t->shape.size(),
                                              t->shape.data()),
                TSD_OK);
    Device d;
    std::vector<uint8_t> staging(size_t(3) * (64 << 10) + 100);
    tsd_load_options o = device_options(d, staging);
    o.threads = threads;
    if (threads == 1) { // two halves, multiples of 8 bytes
      d.nparts = 2;
      d.part = staging.size() / 2 / 8 * 8;
    }
    {
      LoadR r(m, c.c, o);
      ASSERT_EQ(r.st, TSD_OK) << r.err;
    }
    EXPECT_TRUE(d.errors.empty()) << d.errors[0];
    EXPECT_EQ(d.seq, file_order);
    // every tensor whole, by its index in the reversed model
    for (size_t i = 0; i < file_order.size(); i++)
      EXPECT_EQ(d.mem[file_order.size() - 1 - i], expected(file_order[i]))
          << file_order[i];
    tsd_model_free(m);
  }
}

TEST(ViewsPortable, ACallbackFailingWhileTheNextChunkIsReadFailsTheLoad) {
  Ckpt c(st_path(), false);
  Model m(false);
  Device d;
  d.fail_at = 3; // big's third chunk; its fourth is being read meanwhile
  std::vector<uint8_t> staging(size_t(3) * (64 << 10));
  LoadR r(m.m, c.c, device_options(d, staging));
  EXPECT_EQ(r.st, TSD_ERR_CALLBACK);
  EXPECT_EQ(r.list(TSD_LIST_DEVICE_FAILED), std::vector<std::string>{"big"});
  EXPECT_NE(r.err.find("returned -5 for \"big\" at byte offset 131072 of "
                       "307200"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(d.chunks, 4u);
  for (const std::string &n : m.names)
    EXPECT_TRUE(m.untouched(n)) << n;
}

#ifndef _WIN32
// A read that fails on tsd's reading thread is reported on the caller's, with
// the message a one-thread load gives: the file shrank after it was opened.
TEST(ViewsPortable, AReadThatFailsOnTheReadingThreadNamesItsTensor) {
  std::string path = tsdtest::temp_dir() + "/shrinks.safetensors";
  {
    std::ifstream in(st_path(), std::ios::binary);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << in.rdbuf();
  }
  Ckpt c(path, false);
  // cut inside big's third chunk (bytes 131072.. of big, which starts after
  // the header and n's 8 bytes)
  std::ifstream h(path, std::ios::binary);
  unsigned char len[8];
  h.read(reinterpret_cast<char *>(len), 8);
  uint64_t hdr = 0;
  for (int i = 7; i >= 0; i--)
    hdr = hdr << 8 | len[i];
  ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(8 + hdr + 8 + 150000)), 0);
  Model m(true);
  Device d;
  std::vector<uint8_t> staging(size_t(3) * (64 << 10));
  LoadR r(m.m, c.c, device_options(d, staging));
  EXPECT_NE(r.st, TSD_OK);
  EXPECT_NE(r.err.find("reading \"big\" for the device copy (the model's "
                       "memory is unchanged)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("storage 'big'"), std::string::npos) << r.err;
  EXPECT_EQ(d.chunks, 3u) << "n and big's first two chunks";
  EXPECT_TRUE(d.errors.empty()) << d.errors[0];
}
#endif

TEST(ViewsPortable, OneThreadDeviceLoadsKeepTwoHalves) {
  Ckpt c(st_path(), false);
  Model m(true);
  Device d;
  std::vector<uint8_t> staging(size_t(3) * (64 << 10));
  tsd_load_options o = device_options(d, staging);
  o.threads = 1; // tsd starts no thread: no reading ahead, two halves
  d.nparts = 2;
  d.part = staging.size() / 2 / 8 * 8;
  LoadR r(m.m, c.c, o);
  ASSERT_EQ(r.st, TSD_OK) << r.err;
  EXPECT_TRUE(d.errors.empty()) << d.errors[0];
  for (size_t i = 0; i < m.names.size(); i++)
    EXPECT_EQ(d.mem[i], expected(m.names[i])) << m.names[i];
}

// Converted elements are stored into staging: its halves start at
// multiples of 8 bytes whatever its size (an odd half once put float32 at
// an address of 2 mod 4: UBSan), and a staging buffer at an odd address
// works too (the conversions store through memcpy).
TEST(ViewsPortable, StagingOfAnySizeOrAlignmentDeliversEveryByte) {
  Ckpt c(st_path(), false);
  // halves of 502, 2054 and 98305 bytes before rounding: 2 mod 4 or odd
  for (size_t size : {size_t(1004), size_t(4108), size_t(3 * 64 * 1024 + 2)}) {
    SCOPED_TRACE(size);
    Model m(true);
    Device d;
    std::vector<uint8_t> staging(size);
    tsd_load_options o = device_options(d, staging);
    o.threads = 1; // two halves
    d.nparts = 2;
    d.part = size / 2 / 8 * 8;
    LoadR r(m.m, c.c, o);
    ASSERT_EQ(r.st, TSD_OK) << r.err;
    EXPECT_TRUE(d.errors.empty()) << d.errors[0];
    for (size_t i = 0; i < m.names.size(); i++)
      EXPECT_EQ(d.mem[i], expected(m.names[i])) << m.names[i];
  }
  for (size_t shift : {1, 2, 3}) {
    SCOPED_TRACE("staging at an address of " + std::to_string(shift) +
                 " mod 4");
    Model m(true);
    Device d;
    std::vector<uint8_t> buf(4096 + 8);
    std::vector<uint8_t> view(buf.begin(), buf.begin() + 4096); // for sizes
    tsd_load_options o = device_options(d, view);
    o.staging = buf.data() + shift;
    o.threads = 1;
    d.staging = buf.data() + shift;
    d.nparts = 2;
    d.part = 2048;
    LoadR r(m.m, c.c, o);
    ASSERT_EQ(r.st, TSD_OK) << r.err;
    EXPECT_TRUE(d.errors.empty()) << d.errors[0];
    for (size_t i = 0; i < m.names.size(); i++)
      EXPECT_EQ(d.mem[i], expected(m.names[i])) << m.names[i];
  }
  // too small for two parts of 8 bytes: refused with the minimum named
  Model m(true);
  Device d;
  std::vector<uint8_t> tiny(15);
  tsd_load_options o = device_options(d, tiny);
  LoadR r2(m.m, c.c, o);
  EXPECT_EQ(r2.st, TSD_ERR_INVALID_ARG);
  EXPECT_NE(r2.err.find("needs at least 16"), std::string::npos) << r2.err;
}
