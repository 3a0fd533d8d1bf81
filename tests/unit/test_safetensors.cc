// test_safetensors.cc — the safetensors reader (every header rule), the
// writer (read back by tsd and by Python's json + torch), and `tsd convert`.
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <sstream>

#include "test_helpers.h"

using tsdtest::Model;

namespace {

std::string fixture(const char *name) {
  return std::string(TSD_FIXTURES) + "/" + name;
}

std::string tmp_path(const std::string &name) {
  std::string dir =
      tsdtest::temp_dir() + "/safetensors_" + std::to_string(getpid());
  mkdir(dir.c_str(), 0777);
  return dir + "/" + name;
}

std::vector<unsigned char> read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<unsigned char>((std::istreambuf_iterator<char>(f)),
                                    std::istreambuf_iterator<char>());
}

void write_file(const std::string &path, const std::vector<unsigned char> &b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char *>(b.data()),
          static_cast<std::streamsize>(b.size()));
}

struct Ckpt {
  tsd_checkpoint *c = nullptr;
  tsd_status st;
  std::string err;
  explicit Ckpt(const std::string &path) {
    st = tsd_checkpoint_open(&c, path.c_str(), nullptr);
    err = tsd_last_error();
  }
  // the bytes are borrowed by the checkpoint: keep a copy alive
  std::vector<unsigned char> mem_;
  explicit Ckpt(const std::vector<unsigned char> &mem) : mem_(mem) {
    st = tsd_checkpoint_open_memory(&c, mem_.data(), mem_.size(), nullptr);
    err = tsd_last_error();
  }
  ~Ckpt() {
    tsd_checkpoint_free(c);
  }
  Ckpt(const Ckpt &) = delete;
  Ckpt &operator=(const Ckpt &) = delete;
  tsd_entry entry(size_t i) const {
    tsd_entry e;
    EXPECT_EQ(tsd_checkpoint_entry(&e, c, i), TSD_OK) << tsd_last_error();
    return e;
  }
  std::vector<unsigned char> bytes(size_t i, tsd_dtype dt) const {
    tsd_entry e = entry(i);
    std::vector<unsigned char> b(
        static_cast<size_t>(e.numel) * tsd_dtype_size(dt) + 1);
    EXPECT_EQ(tsd_checkpoint_read(b.data(), b.size(), c, i, dt), TSD_OK)
        << tsd_last_error();
    b.pop_back();
    return b;
  }
};

// A safetensors file in memory: 8-byte length, header, data. `len` overrides
// the length field when not -1.
std::vector<unsigned char> st_bytes(const std::string &header, size_t data,
                                    int64_t len = -1) {
  std::vector<unsigned char> b(8);
  uint64_t n = len < 0 ? header.size() : static_cast<uint64_t>(len);
  for (int i = 0; i < 8; i++)
    b[i] = static_cast<unsigned char>(n >> (8 * i));
  b.insert(b.end(), header.begin(), header.end());
  for (size_t i = 0; i < data; i++)
    b.push_back(static_cast<unsigned char>(i * 7 + 1));
  return b;
}

// The checkpoint must fail with `st` and a message containing `needle`.
void expect_refused(const std::vector<unsigned char> &file, tsd_status st,
                    const std::string &needle) {
  Ckpt k(file);
  EXPECT_EQ(k.st, st) << k.err;
  EXPECT_EQ(k.c, nullptr);
  EXPECT_NE(k.err.find(needle), std::string::npos)
      << "message: " << k.err << "\nexpected to contain: " << needle;
  EXPECT_NE(k.err.find("<memory>"), std::string::npos) << k.err;
}

const char *T1 = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

} // namespace

// ---- reading ----------------------------------------------------------------

TEST(Safetensors, ReadsEveryDtypeExactlyAsTorchSavedThem) {
  Ckpt st(fixture("st_small.safetensors")), ref(fixture("st_small_ref.pth"));
  ASSERT_EQ(st.st, TSD_OK) << st.err;
  ASSERT_EQ(ref.st, TSD_OK) << ref.err;
  ASSERT_EQ(tsd_checkpoint_count(st.c), 13u);
  ASSERT_EQ(tsd_checkpoint_count(st.c), tsd_checkpoint_count(ref.c));
  for (size_t i = 0; i < tsd_checkpoint_count(st.c); i++) {
    // sorted as safetensors.torch.load_file gives them, not the header's
    // order (the .pth has that one: "w.f32" first)
    size_t j = 0;
    tsd_entry a = st.entry(i);
    ASSERT_EQ(tsd_checkpoint_find(&j, ref.c, a.key), TSD_OK) << a.key;
    tsd_entry b = ref.entry(j);
    if (i) EXPECT_LT(strcmp(st.entry(i - 1).key, a.key), 0) << a.key;
    EXPECT_EQ(a.kind, TSD_KIND_TENSOR);
    EXPECT_EQ(a.dtype, b.dtype) << a.key;
    ASSERT_EQ(a.ndim, b.ndim) << a.key;
    for (size_t d = 0; d < a.ndim; d++)
      EXPECT_EQ(a.shape[d], b.shape[d]) << a.key;
    EXPECT_EQ(a.numel, b.numel);
    EXPECT_TRUE(a.contiguous);
    EXPECT_EQ(st.bytes(i, a.dtype), ref.bytes(j, b.dtype)) << a.key;
    EXPECT_EQ(st.bytes(i, TSD_FLOAT64), ref.bytes(j, TSD_FLOAT64)) << a.key;
    EXPECT_EQ(st.bytes(i, TSD_INT32), ref.bytes(j, TSD_INT32)) << a.key;
  }
  EXPECT_STREQ(st.entry(0).key, "a.f64");
  EXPECT_STREQ(ref.entry(0).key, "w.f32");
  EXPECT_EQ(tsd_checkpoint_metadata_count(st.c), 0u); // no _metadata
}

TEST(Safetensors, OpensFromMemoryTheSameAsFromAFile) {
  auto file = read_file(fixture("st_small.safetensors"));
  Ckpt mem(file), disk(fixture("st_small.safetensors"));
  ASSERT_EQ(mem.st, TSD_OK) << mem.err;
  ASSERT_EQ(tsd_checkpoint_count(mem.c), tsd_checkpoint_count(disk.c));
  for (size_t i = 0; i < tsd_checkpoint_count(mem.c); i++)
    EXPECT_EQ(mem.bytes(i, TSD_FLOAT32), disk.bytes(i, TSD_FLOAT32));
}

TEST(Safetensors, MetadataIsExposedAsStrings) {
  Ckpt st(fixture("st_small.safetensors"));
  ASSERT_EQ(st.st, TSD_OK) << st.err;
  ASSERT_EQ(tsd_checkpoint_file_metadata_count(st.c), 2u);
  const char *k = nullptr, *v = nullptr;
  ASSERT_EQ(tsd_checkpoint_file_metadata(&k, &v, st.c, 0), TSD_OK);
  EXPECT_STREQ(k, "format");
  EXPECT_STREQ(v, "pt");
  // json.dumps wrote "\u00e9" escapes: decoded to UTF-8
  EXPECT_STREQ(tsd_checkpoint_file_metadata_string(st.c, "note"),
               "tsd \xc3\xa9t\xc3\xa9 fixture");
  EXPECT_EQ(tsd_checkpoint_file_metadata_string(st.c, "absent"), nullptr);
  EXPECT_EQ(tsd_checkpoint_file_metadata(&k, &v, st.c, 2), TSD_ERR_NOT_FOUND);
  Ckpt pth(fixture("st_small_ref.pth"));
  EXPECT_EQ(tsd_checkpoint_file_metadata_count(pth.c), 0u);
  EXPECT_EQ(tsd_checkpoint_file_metadata_string(pth.c, "format"), nullptr);
}

TEST(Safetensors, EmptyHeaderIsAnEmptyStateDict) {
  Ckpt k(st_bytes("{}      ", 0));
  ASSERT_EQ(k.st, TSD_OK) << k.err;
  EXPECT_EQ(tsd_checkpoint_root_kind(k.c), TSD_KIND_DICT);
  EXPECT_EQ(tsd_checkpoint_count(k.c), 0u);
}

TEST(Safetensors, ZeroSizeTensorsMayShareAnOffset) {
  Ckpt k(st_bytes(R"({"e":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},)"
                  R"("f":{"dtype":"I64","shape":[3,0],"data_offsets":[0,0]},)"
                  R"("g":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})",
                  2));
  ASSERT_EQ(k.st, TSD_OK) << k.err;
  ASSERT_EQ(tsd_checkpoint_count(k.c), 3u);
  EXPECT_EQ(k.entry(1).numel, 0);
  EXPECT_EQ(k.bytes(2, TSD_UINT8), (std::vector<unsigned char>{1, 8}));
}

TEST(Safetensors, HeaderLengthPastTheFileIsRefused) {
  std::string h = std::string("{") + T1 + "}";
  expect_refused(st_bytes(h, 8, static_cast<int64_t>(h.size() + 9)),
                 TSD_ERR_FORMAT, "runs past the end of the file");
}

TEST(Safetensors, HugeHeaderLengthIsRefusedBeforeAnyAllocation) {
  std::string h = std::string("{") + T1 + "}";
  expect_refused(st_bytes(h, 8, int64_t(1) << 40), TSD_ERR_FORMAT,
                 "larger than the format's limit");
  auto all_ones = st_bytes(h, 8);
  for (int i = 0; i < 8; i++)
    all_ones[i] = 0xFF;
  expect_refused(all_ones, TSD_ERR_FORMAT, "larger than the format's limit");
}

TEST(Safetensors, MalformedJsonIsRefused) {
  expect_refused(st_bytes(R"({"a":{"dtype":"F32",)", 0), TSD_ERR_FORMAT,
                 "bad JSON");
  expect_refused(st_bytes(R"({"a":1}x)", 0), TSD_ERR_FORMAT,
                 "text after the value");
  expect_refused(st_bytes(R"({"a":{"dtype":"F32","shape":[01],)"
                          R"("data_offsets":[0,4]}})",
                          4),
                 TSD_ERR_FORMAT, "leading zero");
  // invalid UTF-8 in a name (an overlong '/')
  expect_refused(st_bytes("{\"\xc0\xaf\":1}", 0), TSD_ERR_FORMAT,
                 "invalid UTF-8");
  expect_refused(st_bytes(R"({"a\u0000b":1})", 0), TSD_ERR_FORMAT, "\\u0000");
  expect_refused(st_bytes(R"({"\ud800":1})", 0), TSD_ERR_FORMAT, "surrogate");
  expect_refused(st_bytes(std::string("{") + T1 + "," + T1 + "}", 8),
                 TSD_ERR_FORMAT, "duplicate name \"a\"");
  // nesting deeper than a header ever needs
  expect_refused(st_bytes(R"({"a":{"b":[[1]]}})", 0), TSD_ERR_FORMAT,
                 "nested deeper");
  expect_refused(st_bytes(R"({"a":[]})", 0), TSD_ERR_FORMAT, "not an object");
}

TEST(Safetensors, OverlappingOffsetsAreRefused) {
  expect_refused(
      st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
               12),
      TSD_ERR_FORMAT, "'a' and 'b' overlap");
  // the same bytes claimed twice
  expect_refused(
      st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})",
               8),
      TSD_ERR_FORMAT, "overlap");
}

TEST(Safetensors, GapsAndTrailingBytesAreRefused) {
  expect_refused(
      st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
               12),
      TSD_ERR_FORMAT, "gap: bytes [4, 8)");
  expect_refused(
      st_bytes(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
      TSD_ERR_FORMAT, "gap: bytes [0, 4)");
  expect_refused(st_bytes(std::string("{") + T1 + "}", 12), TSD_ERR_FORMAT,
                 "cover only [0, 8)");
}

TEST(Safetensors, OffsetsOutOfBoundsAreRefused) {
  expect_refused(
      st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4),
      TSD_ERR_FORMAT, "not a range inside the data section (4 bytes)");
  expect_refused(
      st_bytes(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8),
      TSD_ERR_FORMAT, "not a range");
  expect_refused(
      st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8),
      TSD_ERR_FORMAT, "two non-negative integers");
  expect_refused(
      st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8),
      TSD_ERR_FORMAT, "two non-negative integers");
  // 2^64 + 8 does not fit: not silently rounded as a double would be
  expect_refused(st_bytes(R"({"a":{"dtype":"F32","shape":[2],)"
                          R"("data_offsets":[18446744073709551616,)"
                          R"(18446744073709551624]}})",
                          8),
                 TSD_ERR_FORMAT, "two non-negative integers");
}

TEST(Safetensors, UnknownDtypesAreUnsupportedAndNamed) {
  // F4 (float4_e2m1fn_x2) and F6 are safetensors dtypes tsd does not handle
  expect_refused(
      st_bytes(R"({"q":{"dtype":"F4","shape":[2],"data_offsets":[0,2]}})", 2),
      TSD_ERR_UNSUPPORTED, "'q' has dtype \"F4\"");
  expect_refused(
      st_bytes(R"({"q":{"dtype":"F6_E2M3","shape":[1],"data_offsets":[0,1]}})",
               1),
      TSD_ERR_UNSUPPORTED, "'q' has dtype \"F6_E2M3\"");
  expect_refused(
      st_bytes(R"({"q":{"dtype":"f8_e4m3","shape":[1],"data_offsets":[0,1]}})",
               1),
      TSD_ERR_UNSUPPORTED, "'q' has dtype \"f8_e4m3\"");
  expect_refused(
      st_bytes(R"({"q":{"dtype":7,"shape":[1],"data_offsets":[0,2]}})", 2),
      TSD_ERR_FORMAT, "dtype is a number");
  expect_refused(st_bytes(R"({"q":{"shape":[1],"data_offsets":[0,2]}})", 2),
                 TSD_ERR_FORMAT, "has no \"dtype\"");
}

TEST(Safetensors, ByteCountMustMatchShapeAndDtype) {
  expect_refused(
      st_bytes(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})",
               12),
      TSD_ERR_FORMAT, "hold 12 bytes, but shape and dtype F32 need 16");
  expect_refused(st_bytes(R"({"a":{"dtype":"F64","shape":[4611686018427387904,)"
                          R"(4],"data_offsets":[0,8]}})",
                          8),
                 TSD_ERR_FORMAT, "overflows");
}

TEST(Safetensors, NegativeOrNonIntegerShapesAreRefused) {
  expect_refused(
      st_bytes(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0),
      TSD_ERR_FORMAT, "shape[0] is -1, not a non-negative integer");
  expect_refused(
      st_bytes(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})",
               4),
      TSD_ERR_FORMAT, "shape[0] is 1.5");
  expect_refused(
      st_bytes(R"({"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8),
      TSD_ERR_FORMAT, "shape is a string");
}

TEST(Safetensors, MetadataMustMapStringsToStrings) {
  expect_refused(st_bytes(R"({"__metadata__":{"epoch":3}})", 0), TSD_ERR_FORMAT,
                 "__metadata__[\"epoch\"] is a number");
  expect_refused(st_bytes(R"({"__metadata__":["x"]})", 0), TSD_ERR_FORMAT,
                 "__metadata__ is an array");
  Ckpt ok(st_bytes(R"({"__metadata__":{"a":"b"}})", 0));
  ASSERT_EQ(ok.st, TSD_OK) << ok.err;
  EXPECT_STREQ(tsd_checkpoint_file_metadata_string(ok.c, "a"), "b");
  EXPECT_EQ(tsd_checkpoint_count(ok.c), 0u);
}

TEST(Safetensors, ShortOrBadlyStartedFilesNamedSafetensorsAreRefused) {
  std::string p = tmp_path("short.safetensors");
  write_file(p, {1, 0, 0});
  Ckpt a(p);
  EXPECT_EQ(a.st, TSD_ERR_FORMAT);
  EXPECT_NE(a.err.find("too short for safetensors"), std::string::npos)
      << a.err;
  write_file(p, st_bytes(" {}", 0));
  Ckpt b(p);
  EXPECT_EQ(b.st, TSD_ERR_FORMAT);
  EXPECT_NE(b.err.find("does not start with '{'"), std::string::npos) << b.err;
  EXPECT_NE(b.err.find(p), std::string::npos) << b.err;
}

TEST(Safetensors, LoadsIntoAModelLikeAPth) {
  Model m("Small");
  m.add("w.f32", {3, 4});
  m.add("a.f64", {2, 3}, TSD_PARAMETER, TSD_FLOAT32); // converted on copy
  Ckpt st(fixture("st_small.safetensors"));
  ASSERT_EQ(st.st, TSD_OK);
  tsdtest::Load l(m.get(), st.c, /*strict=*/0);
  ASSERT_EQ(l.status, TSD_OK) << tsd_last_error();
  EXPECT_EQ(l.list(TSD_LIST_UNEXPECTED).size(), 11u);
  std::vector<unsigned char> got(6 * 4);
  ASSERT_EQ(tsd_model_read(got.data(), got.size(), m.get(), 1, TSD_FLOAT32),
            TSD_OK);
  EXPECT_STREQ(st.entry(0).key, "a.f64"); // sorted, as load_file gives them
  EXPECT_EQ(got, st.bytes(0, TSD_FLOAT32));
}

// ---- writing ----------------------------------------------------------------

namespace {

// A model with every dtype, including tensors state_dict leaves out.
struct Zoo {
  Model m{"Zoo"};
  Zoo() {
    auto fill = [](std::vector<unsigned char> &b, tsd_dtype dt,
                   std::vector<double> v) {
      for (size_t i = 0; i < v.size(); i++)
        tsd__convert(b.data() + i * tsd_dtype_size(dt), dt, &v[i], TSD_FLOAT64,
                     1);
    };
    fill(m.add("net.0.h", {3}, TSD_PARAMETER, TSD_FLOAT16), TSD_FLOAT16,
         {1.5, -2, 65504});
    fill(m.add("net.0.w", {2, 3}), TSD_FLOAT32, {1.5, -2, 3.25, 0, 1e-3, 7});
    fill(m.add("net.0.d", {2}, TSD_BUFFER, TSD_FLOAT64), TSD_FLOAT64,
         {0.1, -1e300});
    m.add("net.0.skip", {3}, TSD_BUFFER_NON_PERSISTENT);
    m.add("net.0.none", {}, TSD_PARAMETER_NONE);
    fill(m.add("net.1.bf", {2}, TSD_PARAMETER, TSD_BFLOAT16), TSD_BFLOAT16,
         {3.140625, -8});
    fill(m.add("net.1.i8", {2}, TSD_BUFFER, TSD_INT8), TSD_INT8, {-128, 127});
    fill(m.add("net.1.i16", {1}, TSD_BUFFER, TSD_INT16), TSD_INT16, {-30000});
    fill(m.add("net.1.i32", {2}, TSD_BUFFER, TSD_INT32), TSD_INT32,
         {-2147483648.0, 65536});
    fill(m.add("net.1.i64", {}, TSD_BUFFER, TSD_INT64), TSD_INT64,
         {123456789012345});
    fill(m.add("net.1.u8", {3}, TSD_BUFFER, TSD_UINT8), TSD_UINT8,
         {0, 200, 255});
    fill(m.add("net.1.b", {2}, TSD_BUFFER, TSD_BOOL), TSD_BOOL, {1, 0});
    m.add("net.1.empty", {0, 4});
    fill(m.add("we\"ird\\name\x01", {1}), TSD_FLOAT32, {42});
  }
};

} // namespace

TEST(SafetensorsWrite, ReadsBackInStateDictOrderWithEveryByte) {
  Zoo z;
  std::string p = tmp_path("zoo.safetensors");
  ASSERT_EQ(tsd_model_save(z.m.get(), p.c_str(), NULL), TSD_OK)
      << tsd_last_error();
  Ckpt k(p);
  ASSERT_EQ(k.st, TSD_OK) << k.err;
  EXPECT_STREQ(tsd_checkpoint_file_metadata_string(k.c, "format"), "pt");
  size_t n = 0;
  for (size_t i = 0; i < tsd_model_tensor_count(z.m.get()); i++) {
    tsd_tensor_info t;
    ASSERT_EQ(tsd_model_tensor(&t, z.m.get(), i), TSD_OK);
    if (t.role != TSD_PARAMETER && t.role != TSD_BUFFER) continue;
    ASSERT_LT(n, tsd_checkpoint_count(k.c));
    // written in state_dict order, read back sorted (as load_file does)
    size_t at = 0;
    ASSERT_EQ(tsd_checkpoint_find(&at, k.c, t.name), TSD_OK) << t.name;
    tsd_entry e = k.entry(at);
    EXPECT_STREQ(e.key, t.name);
    EXPECT_EQ(e.dtype, t.dtype);
    ASSERT_EQ(e.ndim, t.ndim);
    for (size_t d = 0; d < t.ndim; d++)
      EXPECT_EQ(e.shape[d], t.shape[d]);
    size_t nb = static_cast<size_t>(t.numel) * tsd_dtype_size(t.dtype);
    std::vector<unsigned char> want(static_cast<unsigned char *>(t.data),
                                    static_cast<unsigned char *>(t.data) + nb);
    EXPECT_EQ(k.bytes(at, t.dtype), want) << t.name;
    n++;
  }
  EXPECT_EQ(n, tsd_checkpoint_count(k.c));
  EXPECT_EQ(n, 12u);

  // layout: header padded so the data starts 8-aligned, and every tensor
  // aligned to its element size
  auto file = read_file(p);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--)
    hlen = hlen << 8 | file[i];
  EXPECT_EQ((8 + hlen) % 8, 0u);
  EXPECT_EQ(file[8 + hlen - 1] == ' ' || file[8 + hlen - 1] == '}', true);
}

TEST(SafetensorsWrite, PythonJsonAndTorchSeeTheSameTensors) {
  std::string why;
  ASSERT_TRUE(tsdtest::python_torch_available(&why)) << why;
  Zoo z;
  std::string p = tmp_path("zoo_py.safetensors");
  ASSERT_EQ(tsd_model_save(z.m.get(), p.c_str(), NULL), TSD_OK)
      << tsd_last_error();
  std::ostringstream py;
  py.precision(17);
  py << "import json, struct, torch\n"
        "DT = {'F32': torch.float32, 'F64': torch.float64, 'F16': "
        "torch.float16, 'BF16': torch.bfloat16, 'I8': torch.int8, 'I16': "
        "torch.int16, 'I32': torch.int32, 'I64': torch.int64, 'U8': "
        "torch.uint8, 'BOOL': torch.bool}\n"
        "expected = [\n";
  for (size_t i = 0; i < tsd_model_tensor_count(z.m.get()); i++) {
    tsd_tensor_info t;
    ASSERT_EQ(tsd_model_tensor(&t, z.m.get(), i), TSD_OK);
    if (t.role != TSD_PARAMETER && t.role != TSD_BUFFER) continue;
    std::string name;
    for (const char *c = t.name; *c; c++) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", (unsigned char)*c);
      name += buf;
    }
    py << "  ('" << name << "', torch." << tsd_dtype_name(t.dtype) << ", [";
    for (size_t d = 0; d < t.ndim; d++)
      py << (d ? ", " : "") << t.shape[d];
    py << "], [";
    std::vector<double> v(static_cast<size_t>(t.numel) + 1);
    ASSERT_EQ(tsd_model_read(v.data(), v.size() * 8, z.m.get(), i, TSD_FLOAT64),
              TSD_OK);
    for (int64_t k = 0; k < t.numel; k++)
      py << (k ? ", " : "") << v[k];
    py << "]),\n";
  }
  py << "]\n"
        "raw = open('"
     << p
     << "', 'rb').read()\n"
        "n = struct.unpack('<Q', raw[:8])[0]\n"
        "assert (8 + n) % 8 == 0, n\n"
        "text = raw[8:8 + n].decode('utf-8')\n"
        "assert text.startswith('{') and text.rstrip(' ').endswith('}')\n"
        "hdr = json.loads(text)\n"
        "assert hdr.pop('__metadata__') == {'format': 'pt'}\n"
        "assert list(hdr) == [e[0] for e in expected], list(hdr)\n"
        "data = raw[8 + n:]\n"
        "spans = sorted(tuple(h['data_offsets']) for h in hdr.values())\n"
        "pos = 0\n"
        "for b, e in spans:\n"
        "    assert b == pos, (b, pos)\n"
        "    pos = e\n"
        "assert pos == len(data), (pos, len(data))\n"
        "for name, dt, shape, vals in expected:\n"
        "    h = hdr[name]\n"
        "    assert DT[h['dtype']] == dt, (name, h)\n"
        "    assert h['shape'] == shape, (name, h)\n"
        "    b, e = h['data_offsets']\n"
        "    want = torch.tensor(vals, dtype=torch.float64).to(dt)"
        ".reshape(shape)\n"
        "    buf = bytearray(data[b:e])\n"
        "    got = torch.frombuffer(buf, dtype=dt).reshape(shape) if e > b "
        "else torch.empty(shape, dtype=dt)\n"
        "    assert torch.equal(got, want), (name, got, want)\n"
        "    assert b % torch.empty(0, dtype=dt).element_size() == 0, name\n"
        "print('ok', len(expected))\n";
  auto r = tsdtest::run_python(py.str());
  EXPECT_EQ(r.first, 0) << r.second;
  EXPECT_NE(r.second.find("ok 12"), std::string::npos) << r.second;
}

TEST(SafetensorsWrite, RefusesATensorNamedMetadataAndLeavesNoFile) {
  Model m("M");
  m.add("__metadata__", {1});
  std::string p = tmp_path("meta.safetensors");
  remove(p.c_str());
  EXPECT_EQ(tsd_model_save(m.get(), p.c_str(), NULL), TSD_ERR_INVALID_ARG);
  EXPECT_NE(std::string(tsd_last_error()).find("__metadata__"),
            std::string::npos);
  struct stat sb;
  EXPECT_NE(stat(p.c_str(), &sb), 0);
  std::string dir = p.substr(0, p.rfind('/'));
  auto r = tsdtest::run_python("import os\nprint([f for f in os.listdir('" +
                               dir + "') if 'tsd-tmp' in f])\n");
  EXPECT_NE(r.second.find("[]"), std::string::npos) << r.second;
}

// ---- tsd convert ------------------------------------------------------------

namespace {
std::pair<int, std::string> run(const std::string &args) {
  std::string cmd = std::string(TSD_CLI) + " " + args + " 2>&1";
  FILE *p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while (p && (n = fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  int rc = p ? pclose(p) : -1;
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

void expect_same_tensors(const Ckpt &a, const Ckpt &b, bool same_order) {
  ASSERT_EQ(tsd_checkpoint_count(a.c), tsd_checkpoint_count(b.c));
  for (size_t i = 0; i < tsd_checkpoint_count(a.c); i++) {
    tsd_entry e = a.entry(i);
    size_t j = i;
    if (!same_order)
      ASSERT_EQ(tsd_checkpoint_find(&j, b.c, e.key), TSD_OK) << e.key;
    tsd_entry f = b.entry(j);
    EXPECT_STREQ(e.key, f.key);
    EXPECT_EQ(e.dtype, f.dtype);
    EXPECT_EQ(a.bytes(i, e.dtype), b.bytes(j, f.dtype)) << e.key;
  }
}
} // namespace

TEST(Convert, PthToSafetensorsAndBackKeepsValuesAndMetadata) {
  std::string st = tmp_path("conv.safetensors"), pth = tmp_path("conv.pth");
  auto r = run("convert " + fixture("shard_ref.pth") + " " + st);
  ASSERT_EQ(r.first, 0) << r.second;
  EXPECT_NE(r.second.find("safetensors"), std::string::npos) << r.second;
  r = run("convert " + st + " " + pth);
  ASSERT_EQ(r.first, 0) << r.second;
  Ckpt ref(fixture("shard_ref.pth")), a(st), b(pth);
  ASSERT_EQ(a.st, TSD_OK) << a.err;
  ASSERT_EQ(b.st, TSD_OK) << b.err;
  // the safetensors file reads back sorted (as load_file gives it), and so
  // does the .pth made from it (as torch.save(load_file(...)) would)
  expect_same_tensors(ref, a, false);
  expect_same_tensors(ref, b, false);

  // .pth -> .pth keeps _metadata (bn's version 2)
  std::string pth2 = tmp_path("conv2.pth");
  r = run("convert " + fixture("shard_ref.pth") + " " + pth2);
  ASSERT_EQ(r.first, 0) << r.second;
  Ckpt c(pth2);
  ASSERT_EQ(c.st, TSD_OK) << c.err;
  EXPECT_EQ(tsd_checkpoint_module_version(c.c, "bn"), 2);
  EXPECT_EQ(tsd_checkpoint_module_version(ref.c, "bn"), 2);
  expect_same_tensors(ref, c, true);
}

TEST(Convert, ShardedAndSortedInputsConvert) {
  std::string out = tmp_path("from_shards.pth");
  auto r = run("convert " + fixture("shard_st.index.json") + " " + out);
  ASSERT_EQ(r.first, 0) << r.second;
  // sorted keys are not module order: said, and written module by module
  EXPECT_NE(r.second.find("not in module order"), std::string::npos)
      << r.second;
  Ckpt ref(fixture("shard_ref.pth")), got(out);
  ASSERT_EQ(got.st, TSD_OK) << got.err;
  expect_same_tensors(ref, got, false);
}

TEST(Convert, BadUsageAndUnreadableInputExitTwo) {
  EXPECT_EQ(run("convert").first, 2);
  EXPECT_EQ(run("convert only_one.pth").first, 2);
  std::string out = tmp_path("never.safetensors");
  auto r = run("convert " + fixture("shard_bad_abs.index.json") + " " + out);
  EXPECT_EQ(r.first, 2);
  EXPECT_NE(r.second.find("refused"), std::string::npos) << r.second;
  struct stat sb;
  EXPECT_NE(stat(out.c_str(), &sb), 0);
  r = run("convert --help");
  EXPECT_EQ(r.first, 0);
  EXPECT_NE(r.second.find("usage: tsd convert IN OUT"), std::string::npos);
}

TEST(Safetensors, NewDtypesAreWrittenWithTheFormatsNames) {
  tsdtest::Model m{"N"};
  const tsd_dtype dts[] = {TSD_FLOAT8_E4M3FN, TSD_FLOAT8_E5M2,
                           TSD_FLOAT8_E8M0FNU, TSD_UINT16,
                           TSD_UINT32,        TSD_UINT64,
                           TSD_COMPLEX64};
  const char *names[] = {"F8_E4M3", "F8_E5M2", "F8_E8M0", "U16",
                         "U32",     "U64",     "C64"};
  std::vector<std::vector<unsigned char>> want;
  for (tsd_dtype dt : dts) {
    auto &b = m.add(tsd_dtype_name(dt), {3}, TSD_PARAMETER, dt);
    for (size_t i = 0; i < b.size(); i++)
      b[i] = (unsigned char)(i * 29 + dt);
    want.emplace_back(b.begin(), b.end() - 1); // the helper's spare byte
  }
  std::string path = tsdtest::temp_dir() + "/st_new_" +
                     std::to_string(getpid()) + ".safetensors";
  ASSERT_EQ(tsd_model_save(m.get(), path.c_str(), NULL), TSD_OK)
      << tsd_last_error();
  auto file = read_file(path);
  std::string header(file.begin() + 8, file.end());
  for (size_t i = 0; i < 7; i++)
    EXPECT_NE(header.find(std::string("\"") + tsd_dtype_name(dts[i]) +
                          "\":{\"dtype\":\"" + names[i] + "\""),
              std::string::npos)
        << names[i];
  Ckpt k(path);
  ASSERT_EQ(k.st, TSD_OK) << k.err;
  for (size_t i = 0; i < 7; i++) {
    // keys come sorted, as safetensors' load_file gives them: find each
    size_t at = 0;
    ASSERT_EQ(tsd_checkpoint_find(&at, k.c, tsd_dtype_name(dts[i])), TSD_OK);
    EXPECT_EQ(k.entry(at).dtype, dts[i]);
    EXPECT_EQ(k.bytes(at, dts[i]), want[i]) << names[i];
  }
  unlink(path.c_str());
  // dtypes safetensors has no name for are refused, and nothing is written
  for (tsd_dtype dt : {TSD_COMPLEX32, TSD_COMPLEX128, TSD_FLOAT8_E4M3FNUZ}) {
    tsdtest::Model m2{"N"};
    m2.add("x", {1}, TSD_PARAMETER, dt);
    EXPECT_EQ(tsd_model_save(m2.get(), path.c_str(), NULL),
              TSD_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(tsd_last_error())
                  .find(std::string("tensor \"x\" is ") + tsd_dtype_name(dt) +
                        ", which safetensors has no dtype for"),
              std::string::npos)
        << tsd_last_error();
    EXPECT_NE(access(path.c_str(), F_OK), 0);
  }
}
