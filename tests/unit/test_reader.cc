// test_reader.cc — the checkpoint reader: zip (protocols 2-5, ZIP64),
// legacy, the restricted unpickler, the current-dict view, tensor reads, and
// malformed input. Fixtures come from tests/fixtures/make_fixtures.py (Python
// torch is the oracle); expected values are in the .expect files it wrote.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

extern "C" {
#include "internal.h"
}

namespace {

std::string fixture(const std::string &name) {
  return std::string(TSD_FIXTURES) + "/" + name;
}

std::vector<uint8_t> slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

struct Expect {
  std::string key;
  tsd_dtype dtype;
  bool is_param;
  std::vector<int64_t> shape;
  std::vector<double> values, as_f32;
  std::vector<int64_t> as_i64;
};

tsd_dtype dtype_from_name(const std::string &n) {
  for (int d = 0; d < TSD_DTYPE_COUNT; d++)
    if (n == tsd_dtype_name(static_cast<tsd_dtype>(d)))
      return static_cast<tsd_dtype>(d);
  ADD_FAILURE() << "unknown dtype " << n;
  return TSD_FLOAT32;
}

std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep))
    out.push_back(cur);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

std::vector<double> doubles(const std::string &s) {
  std::vector<double> out;
  for (const auto &w : split(s, ' '))
    if (!w.empty()) out.push_back(strtod(w.c_str(), nullptr));
  return out;
}

std::vector<Expect> load_expect(const std::string &name) {
  std::ifstream f(fixture(name));
  EXPECT_TRUE(f.good()) << name;
  std::vector<Expect> out;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    auto col = split(line, '\t');
    EXPECT_EQ(col.size(), 7u) << line;
    if (col.size() != 7) continue;
    Expect e;
    e.key = col[0];
    e.dtype = dtype_from_name(col[1]);
    e.is_param = col[2] == "1";
    for (const auto &d : split(col[3], ','))
      if (!d.empty()) e.shape.push_back(std::stoll(d));
    e.values = doubles(col[4]);
    e.as_f32 = doubles(col[5]);
    for (const auto &w : split(col[6], ' '))
      if (!w.empty()) e.as_i64.push_back(std::stoll(w));
    out.push_back(e);
  }
  return out;
}

// The element i of a buffer of `dtype`, as a double.
double element(const std::vector<uint8_t> &buf, tsd_dtype dtype, size_t i) {
  const uint8_t *p = buf.data() + i * tsd_dtype_size(dtype);
  switch (dtype) {
  case TSD_FLOAT32: {
    float v;
    memcpy(&v, p, 4);
    return v;
  }
  case TSD_FLOAT64: {
    double v;
    memcpy(&v, p, 8);
    return v;
  }
  case TSD_FLOAT16: {
    uint16_t v;
    memcpy(&v, p, 2);
    return tsd__half_to_float(v);
  }
  case TSD_BFLOAT16: {
    uint16_t v;
    memcpy(&v, p, 2);
    return tsd__bf16_to_float(v);
  }
  case TSD_INT8:
    return static_cast<int8_t>(*p);
  case TSD_INT16: {
    int16_t v;
    memcpy(&v, p, 2);
    return v;
  }
  case TSD_INT32: {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
  }
  case TSD_INT64: {
    int64_t v;
    memcpy(&v, p, 8);
    return static_cast<double>(v);
  }
  case TSD_UINT8:
    return *p;
  case TSD_BOOL:
    return *p;
  default:
    return NAN;
  }
}

bool same(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) ||
         (a == b && std::signbit(a) == std::signbit(b));
}

struct Ckpt {
  tsd_checkpoint *c = nullptr;
  tsd_status st;
  explicit Ckpt(const std::string &path, const tsd_open_options *o = nullptr) {
    st = tsd_checkpoint_open(&c, path.c_str(), o);
  }
  // The bytes are borrowed by the checkpoint: keep our own copy alive.
  std::vector<uint8_t> mem;
  Ckpt(const std::vector<uint8_t> &bytes, const tsd_open_options *o = nullptr)
      : mem(bytes) {
    st = tsd_checkpoint_open_memory(&c, mem.data(), mem.size(), o);
  }
  ~Ckpt() {
    tsd_checkpoint_free(c);
  }
  Ckpt(const Ckpt &) = delete;
  Ckpt &operator=(const Ckpt &) = delete;
};

// Every tensor of the .expect file: metadata, native values, and the
// float32 / int64 conversions Tensor.copy_ gives.
void check_against(tsd_checkpoint *c, const std::vector<Expect> &want) {
  ASSERT_FALSE(want.empty());
  for (const auto &e : want) {
    SCOPED_TRACE(e.key);
    size_t i;
    ASSERT_EQ(tsd_checkpoint_find(c, &i, e.key.c_str()), TSD_OK)
        << tsd_last_error();
    tsd_entry en;
    ASSERT_EQ(tsd_checkpoint_entry(c, i, &en), TSD_OK) << tsd_last_error();
    EXPECT_EQ(std::string(en.key), e.key);
    ASSERT_EQ(en.kind, TSD_KIND_TENSOR);
    EXPECT_EQ(en.dtype, e.dtype);
    EXPECT_EQ(en.is_parameter != 0, e.is_param);
    EXPECT_STREQ(en.type_repr, e.is_param
                                   ? "<class 'torch.nn.parameter.Parameter'>"
                                   : "<class 'torch.Tensor'>");
    ASSERT_EQ(en.ndim, e.shape.size());
    for (size_t d = 0; d < en.ndim; d++)
      EXPECT_EQ(en.shape[d], e.shape[d]);
    ASSERT_EQ(static_cast<size_t>(en.numel), e.values.size());
    size_t n = e.values.size();

    std::vector<uint8_t> native(n * tsd_dtype_size(e.dtype) + 1);
    ASSERT_EQ(tsd_checkpoint_read(c, i, e.dtype, native.data(), native.size()),
              TSD_OK)
        << tsd_last_error();
    for (size_t k = 0; k < n; k++)
      EXPECT_TRUE(same(element(native, e.dtype, k), e.values[k]))
          << "element " << k << ": " << element(native, e.dtype, k)
          << " != " << e.values[k];

    std::vector<uint8_t> f32(n * 4 + 1);
    ASSERT_EQ(tsd_checkpoint_read(c, i, TSD_FLOAT32, f32.data(), f32.size()),
              TSD_OK);
    for (size_t k = 0; k < n; k++)
      EXPECT_TRUE(same(element(f32, TSD_FLOAT32, k), e.as_f32[k]))
          << "float32 element " << k;

    std::vector<int64_t> i64(n + 1);
    ASSERT_EQ(tsd_checkpoint_read(c, i, TSD_INT64, i64.data(), i64.size() * 8),
              TSD_OK);
    for (size_t k = 0; k < n; k++)
      EXPECT_EQ(i64[k], e.as_i64[k]) << "int64 element " << k;
  }
}

void check_fixture(const std::string &file, const std::string &expect) {
  Ckpt k(fixture(file));
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  auto want = load_expect(expect);
  EXPECT_EQ(tsd_checkpoint_root_kind(k.c), TSD_KIND_DICT);
  EXPECT_EQ(tsd_checkpoint_count(k.c), want.size());
  check_against(k.c, want);
  // Order is the checkpoint's order.
  for (size_t i = 0; i < want.size() && i < tsd_checkpoint_count(k.c); i++) {
    tsd_entry en;
    ASSERT_EQ(tsd_checkpoint_entry(k.c, i, &en), TSD_OK);
    EXPECT_EQ(std::string(en.key), want[i].key);
  }
}

// ---- a stored zip built in memory, for crafted pickles ------------------

void put16(std::vector<uint8_t> &b, uint32_t v) {
  b.push_back(v & 0xFF);
  b.push_back((v >> 8) & 0xFF);
}
void put32(std::vector<uint8_t> &b, uint32_t v) {
  put16(b, v & 0xFFFF);
  put16(b, v >> 16);
}

std::vector<uint8_t>
make_zip(const std::vector<std::pair<std::string, std::string>> &recs) {
  std::vector<uint8_t> out, cd;
  for (const auto &r : recs) {
    uint32_t off = static_cast<uint32_t>(out.size());
    put32(out, 0x04034b50);
    put16(out, 20);
    put16(out, 0);
    put16(out, 0); // stored
    put32(out, 0); // time, date
    put32(out, 0); // crc (not checked)
    put32(out, static_cast<uint32_t>(r.second.size()));
    put32(out, static_cast<uint32_t>(r.second.size()));
    put16(out, static_cast<uint32_t>(r.first.size()));
    put16(out, 0);
    out.insert(out.end(), r.first.begin(), r.first.end());
    out.insert(out.end(), r.second.begin(), r.second.end());
    put32(cd, 0x02014b50);
    put16(cd, 20);
    put16(cd, 20);
    put16(cd, 0);
    put16(cd, 0);
    put32(cd, 0);
    put32(cd, 0);
    put32(cd, static_cast<uint32_t>(r.second.size()));
    put32(cd, static_cast<uint32_t>(r.second.size()));
    put16(cd, static_cast<uint32_t>(r.first.size()));
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0);
    put32(cd, 0);
    put32(cd, off);
    cd.insert(cd.end(), r.first.begin(), r.first.end());
  }
  uint32_t cd_off = static_cast<uint32_t>(out.size());
  out.insert(out.end(), cd.begin(), cd.end());
  put32(out, 0x06054b50);
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<uint32_t>(recs.size()));
  put16(out, static_cast<uint32_t>(recs.size()));
  put32(out, static_cast<uint32_t>(cd.size()));
  put32(out, cd_off);
  put16(out, 0);
  return out;
}

std::vector<uint8_t> pickle_zip(const std::string &pkl) {
  return make_zip({{"ck/data.pkl", pkl}, {"ck/version", "3\n"}});
}

// Runs tsd__unpickle on raw bytes with default limits.
struct Unpickled {
  tsd__arena arena;
  tsd__value *v = nullptr;
  tsd_status st;
  size_t used = 0;
  explicit Unpickled(const std::string &bytes,
                     const tsd__limits *lim = nullptr) {
    tsd__limits def;
    tsd__limits_resolve(&def, nullptr);
    tsd__arena_init(&arena, 0, nullptr);
    st = tsd__unpickle(reinterpret_cast<const uint8_t *>(bytes.data()),
                       bytes.size(), &used, &arena, lim ? lim : &def, nullptr,
                       nullptr, "test.pkl", &v);
  }
  ~Unpickled() {
    tsd__arena_free(&arena);
  }
};

#define EXPECT_FAILS_WITH(expr, status, text)                                  \
  do {                                                                         \
    tsd_status st_ = (expr);                                                   \
    EXPECT_EQ(st_, status) << tsd_status_name(st_) << ": "                     \
                           << tsd_last_error();                                \
    EXPECT_NE(std::string(tsd_last_error()).find(text), std::string::npos)     \
        << tsd_last_error();                                                   \
  } while (0)

std::string S(const char *p, size_t n) {
  return std::string(p, n);
}
// A string literal with its embedded NULs.
template <size_t N> std::string B(const char (&s)[N]) {
  return std::string(s, N - 1);
}

} // namespace

// ---- real checkpoints
// --------------------------------------------------------

TEST(Reader, ReadsEveryDtypeFromZipProtocol2AsPythonWroteIt) {
  check_fixture("zip_p2.pth", "kitchen.expect");
}
TEST(Reader, ReadsZipProtocol3) {
  check_fixture("zip_p3.pth", "kitchen.expect");
}
TEST(Reader, ReadsZipProtocol4WithFramesAndMemoize) {
  check_fixture("zip_p4.pth", "kitchen.expect");
}
TEST(Reader, ReadsZipProtocol5) {
  check_fixture("zip_p5.pth", "kitchen.expect");
}
TEST(Reader, ReadsTheLegacyFormat) {
  check_fixture("legacy.pth", "kitchen.expect");
}
TEST(Reader, ReadsLegacyStorageViews) {
  check_fixture("legacy_view.pth", "legacy_view.expect");
}
TEST(Reader, ReadsZip64ExtraFieldsAndEndRecords) {
  check_fixture("zip64.pth", "small.expect");
}
TEST(Reader, ReadsAModuleStateDict) {
  check_fixture("metadata.pth", "metadata.expect");
}

TEST(Reader, OpensFromMemoryLikeFromAFile) {
  auto bytes = slurp(fixture("zip_p2.pth"));
  Ckpt k(bytes);
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  check_against(k.c, load_expect("kitchen.expect"));
  auto leg = slurp(fixture("legacy.pth"));
  Ckpt l(leg);
  ASSERT_EQ(l.st, TSD_OK) << tsd_last_error();
  check_against(l.c, load_expect("kitchen.expect"));
}

TEST(Reader, ReportsParametersViewsAndContiguity) {
  Ckpt k(fixture("zip_p2.pth"));
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  struct {
    const char *key;
    int contiguous;
  } cases[] = {{"f32", 1},      {"transposed", 0}, {"slice", 0},
               {"shared_a", 1}, {"shared_b", 1},   {"expanded", 0},
               {"scalar", 1},   {"empty", 1}};
  for (const auto &c : cases) {
    size_t i;
    tsd_entry e;
    ASSERT_EQ(tsd_checkpoint_find(k.c, &i, c.key), TSD_OK);
    ASSERT_EQ(tsd_checkpoint_entry(k.c, i, &e), TSD_OK);
    EXPECT_EQ(e.contiguous, c.contiguous) << c.key;
  }
  size_t i;
  tsd_entry e;
  ASSERT_EQ(tsd_checkpoint_find(k.c, &i, "scalar"), TSD_OK);
  ASSERT_EQ(tsd_checkpoint_entry(k.c, i, &e), TSD_OK);
  EXPECT_EQ(e.ndim, 0u);
  EXPECT_EQ(e.numel, 1);
  ASSERT_EQ(tsd_checkpoint_find(k.c, &i, "empty"), TSD_OK);
  ASSERT_EQ(tsd_checkpoint_entry(k.c, i, &e), TSD_OK);
  EXPECT_EQ(e.numel, 0);
  ASSERT_EQ(tsd_checkpoint_read(k.c, i, TSD_FLOAT32, nullptr, 0), TSD_OK);
}

TEST(Reader, TensorsSavedFromOneStorageShareIt) {
  for (const char *f : {"zip_p2.pth", "legacy.pth", "zip_p4.pth"}) {
    Ckpt k(fixture(f));
    ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
    size_t a, b, c;
    ASSERT_EQ(tsd_checkpoint_find(k.c, &a, "shared_a"), TSD_OK);
    ASSERT_EQ(tsd_checkpoint_find(k.c, &b, "shared_b"), TSD_OK);
    ASSERT_EQ(tsd_checkpoint_find(k.c, &c, "f32"), TSD_OK);
    const tsd__tensor *ta = tsd__ckpt_val(k.c, a)->u.tensor;
    const tsd__tensor *tb = tsd__ckpt_val(k.c, b)->u.tensor;
    const tsd__tensor *tc = tsd__ckpt_val(k.c, c)->u.tensor;
    EXPECT_EQ(ta->storage, tb->storage) << f;
    EXPECT_NE(ta->storage, tc->storage) << f;
    EXPECT_EQ(tb->offset, 2) << f;
  }
}

TEST(Reader, KeepsTheMetadataVersionsPythonWrote) {
  Ckpt k(fixture("metadata.pth"));
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  std::ifstream f(fixture("metadata.versions"));
  std::string line;
  size_t n = 0;
  while (std::getline(f, line)) {
    auto col = split(line, '\t');
    ASSERT_EQ(col.size(), 2u);
    EXPECT_EQ(tsd_checkpoint_module_version(k.c, col[0].c_str()),
              std::stoll(col[1]))
        << "prefix '" << col[0] << "'";
    ASSERT_NE(tsd_checkpoint_metadata_prefix(k.c, n), nullptr);
    EXPECT_EQ(std::string(tsd_checkpoint_metadata_prefix(k.c, n)), col[0]);
    n++;
  }
  EXPECT_GT(n, 2u);
  EXPECT_EQ(tsd_checkpoint_metadata_count(k.c), n);
  EXPECT_EQ(tsd_checkpoint_metadata_prefix(k.c, n), nullptr);
  EXPECT_EQ(tsd_checkpoint_module_version(k.c, "no.such.module"), -1);
  // A plain dict has no _metadata.
  Ckpt p(fixture("zip_p2.pth"));
  ASSERT_EQ(p.st, TSD_OK);
  EXPECT_EQ(tsd_checkpoint_metadata_count(p.c), 0u);
  EXPECT_EQ(tsd_checkpoint_module_version(p.c, ""), -1);
}

TEST(Reader, SeesNonTensorValuesOfATrainingCheckpoint) {
  for (const char *file : {"nested.pth", "nested_p4.pth"}) {
    SCOPED_TRACE(file);
    Ckpt k(fixture(file));
    ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
    ASSERT_EQ(tsd_checkpoint_root_kind(k.c), TSD_KIND_DICT);
    EXPECT_EQ(tsd_checkpoint_count(k.c), 11u);
    struct {
      const char *key;
      tsd_kind kind;
      const char *repr;
    } cases[] = {
        {"epoch", TSD_KIND_INT, "<class 'int'>"},
        {"state_dict", TSD_KIND_DICT, "<class 'collections.OrderedDict'>"},
        {"lr", TSD_KIND_FLOAT, "<class 'float'>"},
        {"name", TSD_KIND_STR, "<class 'str'>"},
        {"flag", TSD_KIND_BOOL, "<class 'bool'>"},
        {"none", TSD_KIND_NONE, "<class 'NoneType'>"},
        {"blob", TSD_KIND_BYTES, "<class 'bytes'>"},
        {"list", TSD_KIND_LIST, "<class 'list'>"},
        {"tuple", TSD_KIND_TUPLE, "<class 'tuple'>"},
        {"big", TSD_KIND_OTHER, "<class 'int'>"},
        {"neg", TSD_KIND_INT, "<class 'int'>"},
    };
    for (const auto &c : cases) {
      size_t i;
      tsd_entry e;
      ASSERT_EQ(tsd_checkpoint_find(k.c, &i, c.key), TSD_OK) << c.key;
      ASSERT_EQ(tsd_checkpoint_entry(k.c, i, &e), TSD_OK);
      EXPECT_EQ(e.kind, c.kind) << c.key;
      EXPECT_STREQ(e.type_repr, c.repr) << c.key;
      if (!strcmp(c.key, "epoch")) EXPECT_EQ(e.int_value, 7);
      if (!strcmp(c.key, "neg")) EXPECT_EQ(e.int_value, -5);
      if (!strcmp(c.key, "flag")) EXPECT_EQ(e.int_value, 1);
      if (!strcmp(c.key, "lr")) EXPECT_EQ(e.float_value, 0.125);
      if (!strcmp(c.key, "name")) EXPECT_EQ(S(e.str_value, e.str_len), "vit");
      if (!strcmp(c.key, "blob"))
        EXPECT_EQ(S(e.str_value, e.str_len), B("\x00\x01\xff"));
      if (!strcmp(c.key, "list")) EXPECT_EQ(e.length, 3u);
      if (!strcmp(c.key, "tuple")) EXPECT_EQ(e.length, 2u);
      if (!strcmp(c.key, "state_dict")) EXPECT_EQ(e.length, 2u);
    }
    size_t i;
    ASSERT_EQ(tsd_checkpoint_find(k.c, &i, "epoch"), TSD_OK);
    float buf[4];
    EXPECT_FAILS_WITH(tsd_checkpoint_read(k.c, i, TSD_FLOAT32, buf, sizeof buf),
                      TSD_ERR_TYPE, "<class 'int'>");
  }
}

TEST(Reader, SelectsTheNestedStateDictAndGoesBackToTheRoot) {
  Ckpt k(fixture("nested.pth"));
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  EXPECT_FAILS_WITH(tsd_checkpoint_select(k.c, "epoch"), TSD_ERR_TYPE, "epoch");
  EXPECT_FAILS_WITH(tsd_checkpoint_select(k.c, "nope"), TSD_ERR_NOT_FOUND,
                    "nope");
  ASSERT_EQ(tsd_checkpoint_select(k.c, "state_dict"), TSD_OK);
  EXPECT_EQ(tsd_checkpoint_count(k.c), 2u);
  check_against(k.c, load_expect("small.expect"));
  tsd_checkpoint_select_root(k.c);
  EXPECT_EQ(tsd_checkpoint_count(k.c), 11u);
}

TEST(Reader, NonDictRootsHaveNoEntriesButAKind) {
  struct {
    const char *file;
    tsd_kind kind;
  } cases[] = {{"list_root.pth", TSD_KIND_LIST},
               {"tuple_root.pth", TSD_KIND_TUPLE},
               {"scalar_root.pth", TSD_KIND_INT},
               {"empty.pth", TSD_KIND_DICT}};
  for (const auto &c : cases) {
    Ckpt k(fixture(c.file));
    ASSERT_EQ(k.st, TSD_OK) << c.file << ": " << tsd_last_error();
    EXPECT_EQ(tsd_checkpoint_root_kind(k.c), c.kind) << c.file;
    EXPECT_EQ(tsd_checkpoint_count(k.c), 0u) << c.file;
    tsd_entry e;
    EXPECT_EQ(tsd_checkpoint_entry(k.c, 0, &e), TSD_ERR_NOT_FOUND);
    size_t i;
    EXPECT_EQ(tsd_checkpoint_find(k.c, &i, "x"), TSD_ERR_NOT_FOUND);
  }
}

TEST(Reader, PopRemovesAKeyFromTheViewOnly) {
  Ckpt k(fixture("small.pth"));
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  ASSERT_EQ(tsd_checkpoint_count(k.c), 2u);
  ASSERT_EQ(tsd_checkpoint_pop(k.c, "w"), TSD_OK);
  EXPECT_EQ(tsd_checkpoint_count(k.c), 1u);
  size_t i;
  EXPECT_EQ(tsd_checkpoint_find(k.c, &i, "w"), TSD_ERR_NOT_FOUND);
  ASSERT_EQ(tsd_checkpoint_find(k.c, &i, "b"), TSD_OK);
  EXPECT_EQ(i, 0u);
  tsd_entry e;
  ASSERT_EQ(tsd_checkpoint_entry(k.c, 0, &e), TSD_OK);
  EXPECT_STREQ(e.key, "b");
  EXPECT_EQ(tsd_checkpoint_pop(k.c, "w"), TSD_ERR_NOT_FOUND);
  EXPECT_EQ(tsd__ckpt_count(k.c), 1u);
  EXPECT_EQ(k.c->current->u.dict.len, 2u); // the value tree is untouched
  tsd_checkpoint_select_root(k.c);
  EXPECT_EQ(tsd_checkpoint_count(k.c), 2u);
}

TEST(Reader, ReadChecksTheBufferTheIndexAndTheDtype) {
  Ckpt k(fixture("small.pth"));
  ASSERT_EQ(k.st, TSD_OK);
  size_t i;
  ASSERT_EQ(tsd_checkpoint_find(k.c, &i, "w"), TSD_OK);
  float buf[4];
  EXPECT_EQ(tsd_checkpoint_read(k.c, i, TSD_FLOAT32, buf, 15), TSD_ERR_BUFFER);
  EXPECT_EQ(tsd_checkpoint_read(k.c, 7, TSD_FLOAT32, buf, 16),
            TSD_ERR_NOT_FOUND);
  EXPECT_EQ(tsd_checkpoint_read(k.c, i, static_cast<tsd_dtype>(42), buf, 16),
            TSD_ERR_INVALID_ARG);
  ASSERT_EQ(tsd_checkpoint_read(k.c, i, TSD_FLOAT32, buf, 16), TSD_OK);
  EXPECT_EQ(buf[1], -2.0f);
}

// ---- refusals and malformed input
// ---------------------------------------------

// A global outside the allow-list is never called: os.system('...') reads as
// an inert placeholder object, and the load fails naming its class.
TEST(Reader, PosixSystemIsAnInertPlaceholderThatNoLoadAccepts) {
  Ckpt k(fixture("refused.pth"));
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  // pickle.dumps(os.system) is the bare function: a global, not a call
  EXPECT_EQ(tsd_checkpoint_root_kind(k.c), TSD_KIND_OTHER);
  EXPECT_EQ(tsd_checkpoint_root_class(k.c), nullptr);
  EXPECT_STREQ(tsd__type_repr(k.c->parsed.root), "<class 'type'>");
  EXPECT_STREQ(k.c->parsed.root->u.g.name, "posix.system");

  // posix.system('id') as the root: an object of that "class"
  std::string call = B("\x80\x02"
                        "cposix\nsystem\nX\x02\x00\x00\x00id\x85R.");
  Ckpt c(pickle_zip(call));
  ASSERT_EQ(c.st, TSD_OK) << tsd_last_error();
  EXPECT_EQ(tsd_checkpoint_root_kind(c.c), TSD_KIND_OBJECT);
  EXPECT_STREQ(tsd_checkpoint_root_class(c.c), "posix.system");
  const tsd__value *o = c.c->parsed.root;
  ASSERT_EQ(o->kind, TSD__V_OBJECT);
  ASSERT_EQ(o->u.obj.args->u.seq.len, 1u);
  EXPECT_STREQ(o->u.obj.args->u.seq.items[0]->u.s.p, "id");
  EXPECT_EQ(o->u.obj.state, nullptr);
  EXPECT_EQ(tsd_checkpoint_count(c.c), 0u);
}

TEST(Reader, StackGlobalsOutsideTheAllowListAreInert) {
  // protocol 4: SHORT_BINUNICODE 'builtins', 'eval', STACK_GLOBAL
  std::string p = B("\x80\x04\x8c\x08"
                    "builtins"
                    "\x8c\x04"
                    "eval"
                    "\x93.");
  Ckpt k(pickle_zip(p));
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  EXPECT_EQ(k.c->parsed.root->kind, TSD__V_GLOBAL);
  EXPECT_STREQ(k.c->parsed.root->u.g.name, "builtins.eval");
}

TEST(Reader, RefusesCompressedRecordsAndNamesThem) {
  Ckpt k(fixture("deflated.pth"));
  EXPECT_FAILS_WITH(k.st, TSD_ERR_UNSUPPORTED, "compressed");
  EXPECT_NE(std::string(tsd_last_error()).find("small/data.pkl"),
            std::string::npos)
      << tsd_last_error();
}

TEST(Reader, RejectsATensorLargerThanItsStorage) {
  Ckpt k(fixture("short_storage.pth"));
  EXPECT_FAILS_WITH(k.st, TSD_ERR_FORMAT, "storage '0'");
}

TEST(Reader, RejectsARecordWhoseSizeDisagreesWithTheDeclaredCount) {
  Ckpt k(fixture("bad_record_size.pth"));
  EXPECT_FAILS_WITH(k.st, TSD_ERR_FORMAT, "storage '0'");
}

TEST(Reader, ReportsMissingFilesAndGarbage) {
  Ckpt a(fixture("does_not_exist.pth"));
  EXPECT_FAILS_WITH(a.st, TSD_ERR_IO, "does_not_exist.pth");
  std::vector<uint8_t> junk(1000, 'x');
  Ckpt b(junk);
  EXPECT_EQ(b.st, TSD_ERR_FORMAT);
  EXPECT_STRNE(tsd_last_error(), "");
  std::vector<uint8_t> empty;
  Ckpt c(empty);
  EXPECT_EQ(c.st, TSD_ERR_FORMAT);
  std::vector<uint8_t> tar(1024, 0);
  memcpy(tar.data() + 257, "ustar", 5);
  Ckpt d(tar);
  EXPECT_FAILS_WITH(d.st, TSD_ERR_UNSUPPORTED, "tar");
}

TEST(Reader, RejectsAWrongOptionsVersion) {
  tsd_open_options o = TSD_OPEN_OPTIONS_INIT;
  o.version = 99;
  Ckpt k(fixture("small.pth"), &o);
  EXPECT_EQ(k.st, TSD_ERR_INVALID_ARG);
}

TEST(Reader, EnforcesTheOpenLimits) {
  tsd_open_options o = TSD_OPEN_OPTIONS_INIT;
  o.limits.max_pickle_bytes = 16;
  Ckpt a(fixture("small.pth"), &o);
  EXPECT_FAILS_WITH(a.st, TSD_ERR_LIMIT, "max_pickle_bytes");
  Ckpt a2(fixture("small_legacy.pth"), &o);
  EXPECT_EQ(a2.st, TSD_ERR_LIMIT) << tsd_last_error();
  o = TSD_OPEN_OPTIONS_INIT;
  o.limits.max_objects = 10;
  Ckpt b(fixture("small.pth"), &o);
  EXPECT_FAILS_WITH(b.st, TSD_ERR_LIMIT, "max_objects");
  o = TSD_OPEN_OPTIONS_INIT;
  o.limits.max_depth = 1; // nested: a dict holding an OrderedDict is depth 2
  Ckpt c(fixture("nested.pth"), &o);
  EXPECT_FAILS_WITH(c.st, TSD_ERR_LIMIT, "max_depth");
  o.limits.max_depth = 2;
  Ckpt d(fixture("nested.pth"), &o);
  EXPECT_EQ(d.st, TSD_OK) << tsd_last_error();
}

TEST(Reader, EveryTruncationOfARealCheckpointFailsCleanly) {
  for (const char *f : {"small.pth", "small_legacy.pth", "legacy_view.pth"}) {
    auto bytes = slurp(fixture(f));
    ASSERT_GT(bytes.size(), 100u);
    for (size_t n = 0; n < bytes.size(); n++) {
      std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
      Ckpt k(cut);
      EXPECT_NE(k.st, TSD_OK) << f << " cut at " << n;
      EXPECT_STRNE(tsd_last_error(), "") << f << " cut at " << n;
      EXPECT_EQ(k.c, nullptr);
    }
  }
}

// A flipped byte may still give a valid file (a flipped float); either way
// nothing crashes, every failure has a message, and every tensor of a file
// that opens reads within bounds.
TEST(Reader, FlippedBytesNeverCrashAndFailWithAMessage) {
  for (const char *f :
       {"small.pth", "small_legacy.pth", "nested.pth", "zip64.pth"}) {
    auto bytes = slurp(fixture(f));
    size_t failures = 0;
    for (size_t pos = 0; pos < bytes.size(); pos++) {
      for (uint8_t mask : {0xFF, 0x01, 0x80}) {
        auto b = bytes;
        b[pos] ^= mask;
        Ckpt k(b);
        if (k.st != TSD_OK) {
          failures++;
          EXPECT_STRNE(tsd_last_error(), "") << f << " flip at " << pos;
          continue;
        }
        for (size_t i = 0; i < tsd_checkpoint_count(k.c); i++) {
          tsd_entry e;
          if (tsd_checkpoint_entry(k.c, i, &e) != TSD_OK) continue;
          if (e.kind != TSD_KIND_TENSOR) continue;
          std::vector<double> out(static_cast<size_t>(e.numel) + 1);
          tsd_checkpoint_read(k.c, i, TSD_FLOAT64, out.data(),
                              out.size() * sizeof(double));
        }
      }
    }
    EXPECT_GT(failures, 0u) << f;
  }
}

TEST(Reader, ADuplicateKeyMakesFindFailButEntriesStillList) {
  // EMPTY_DICT MARK 'a' 1 'a' 2 SETITEMS STOP
  std::string p = B("\x80\x02}(X\x01\0\0\0aK\x01X\x01\0\0\0aK\x02u.");
  Ckpt k(pickle_zip(p));
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  EXPECT_EQ(tsd_checkpoint_count(k.c), 2u);
  size_t i;
  EXPECT_FAILS_WITH(tsd_checkpoint_find(k.c, &i, "a"), TSD_ERR_FORMAT, "twice");
  EXPECT_EQ(k.c->view_status, TSD_ERR_FORMAT);
  tsd_entry e;
  EXPECT_EQ(tsd_checkpoint_entry(k.c, 1, &e), TSD_OK);
}

TEST(Reader, ANonStringKeyIsATypeError) {
  std::string p = B("\x80\x02}(K\x01K\x02u.");
  Ckpt k(pickle_zip(p));
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  tsd_entry e;
  EXPECT_FAILS_WITH(tsd_checkpoint_entry(k.c, 0, &e), TSD_ERR_TYPE,
                    "<class 'int'>");
  size_t i;
  EXPECT_EQ(tsd_checkpoint_find(k.c, &i, "1"), TSD_ERR_TYPE);
  EXPECT_EQ(k.c->view_status, TSD_ERR_TYPE);
}

TEST(Reader, FindsTheArchivePrefixWhateverItIs) {
  std::string p = B("\x80\x02}.");
  Ckpt a(make_zip({{"whatever-name/data.pkl", p}}));
  EXPECT_EQ(a.st, TSD_OK) << tsd_last_error();
  Ckpt b(make_zip({{"data.pkl", p}}));
  EXPECT_EQ(b.st, TSD_OK) << tsd_last_error();
  Ckpt c(make_zip({{"a/data.pkl", p}, {"b/data.pkl", p}}));
  EXPECT_FAILS_WITH(c.st, TSD_ERR_FORMAT, "ambiguous");
  Ckpt d(make_zip({{"a/b/data.pkl", p}}));
  EXPECT_FAILS_WITH(d.st, TSD_ERR_FORMAT, "no data.pkl");
}

TEST(Reader, AStorageWithoutItsRecordIsNamed) {
  // {'w': _rebuild_tensor_v2(('storage', FloatStorage, '7', 'cpu', 1),
  //                            0, (), (), False, {})}
  const char raw[] = "\x80\x02}X\x01\0\0\0w"
                     "ctorch._utils\n_rebuild_tensor_v2\n"
                     "((X\x07\0\0\0storage"
                     "ctorch\nFloatStorage\n"
                     "X\x01\0\0\0"
                     "7"
                     "X\x03\0\0\0cpu"
                     "K\x01tQ"
                     "K\x00))\x89}tRs.";
  std::string p = std::string(raw, sizeof raw - 1);
  Ckpt k(pickle_zip(p));
  EXPECT_FAILS_WITH(k.st, TSD_ERR_FORMAT, "storage '7'");
  EXPECT_NE(std::string(tsd_last_error()).find("ck/data/7"), std::string::npos)
      << tsd_last_error();
  // With the record it opens and reads (0-dim: size () stride ()).
  Ckpt ok(make_zip({{"ck/data.pkl", p},
                    {"ck/data/7", std::string("\0\0\x20\x40", 4)}})); // 2.5f LE
  ASSERT_EQ(ok.st, TSD_OK) << tsd_last_error();
  double d = 0;
  ASSERT_EQ(tsd_checkpoint_read(ok.c, 0, TSD_FLOAT64, &d, sizeof d), TSD_OK);
  EXPECT_EQ(d, 2.5);
}

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
  struct {
    std::string bytes;
    const char *text;
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
       "BUILD"},
      {B("\x80\x06N."), "protocol 6"},
      {B("\x80\x02S'a\n."), "STRING opcode argument must be quoted"},
      {B("ccollections\nOrderedDict\nK\x01\x85R."), "argument"},
      {B("cbuiltins\nset\n)\x81."), "ok"},
      {B("cbuiltins\nset\n\x85\x81."), "NEWOBJ"},
      {B("c_codecs\nencode\n)\x81."), "NEWOBJ"},
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
      {B("ccollections\nOrderedDict\n)}\x92."), "NEWOBJ is allowed only"},
      // protocols 0 and 1: text operands
      {B("L123456789012345678901234567890L\n."), "ok"},
      {"L" + std::string(81, '7') + "\n.", "integer literal of 81 digits"},
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
    EXPECT_NE(u.st, TSD_OK) << c.text;
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

// ---- large tensors through a file: chunked conversion, strided windows ------

namespace {

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; i++)
    s[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}
std::string pstr(const std::string &s) {
  return "X" + le32(s.size()) + s;
}
std::string pints(const std::vector<uint32_t> &v) {
  std::string s = "(";
  for (uint32_t x : v)
    s += "J" + le32(x);
  return s + "t";
}
// _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', numel), offset,
//                    sizes, strides, False, {})
std::string ptensor(uint32_t numel, uint32_t offset,
                    const std::vector<uint32_t> &sizes,
                    const std::vector<uint32_t> &strides) {
  return "ctorch._utils\n_rebuild_tensor_v2\n((" + pstr("storage") +
         "ctorch\nFloatStorage\n" + pstr("0") + pstr("cpu") + "J" +
         le32(numel) + "tQJ" + le32(offset) + pints(sizes) + pints(strides) +
         "\x89}tR";
}

void write_file(const std::string &path, const std::vector<uint8_t> &b) {
  FILE *f = fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(fwrite(b.data(), 1, b.size(), f), b.size());
  fclose(f);
}

} // namespace

TEST(Reader, ReadsLargeTensorsInChunksAndStridedViewsThroughAWindow) {
  const uint32_t R = 2048, C = 768, N = R * C; // 6 MiB of float32
  std::string data(static_cast<size_t>(N) * 4, '\0');
  for (uint32_t i = 0; i < N; i++) {
    float v = static_cast<float>(i) * 0.25f;
    uint32_t b;
    memcpy(&b, &v, 4);
    for (int k = 0; k < 4; k++) // little-endian, as in any .pth
      data[static_cast<size_t>(i) * 4 + k] = static_cast<char>(b >> (8 * k));
  }
  std::string pkl = "\x80\x02}(" + pstr("w") + ptensor(N, 0, {R, C}, {C, 1}) +
                    pstr("wt") + ptensor(N, 0, {C, R}, {1, C}) + pstr("col") +
                    ptensor(N, 5, {R}, {C}) + "u.";
  std::string path = std::string(TSD_TEST_TMP) + "/reader_large.pth";
  write_file(path, make_zip({{"large/data.pkl", pkl}, {"large/data/0", data}}));
  Ckpt k(path);
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();

  std::vector<double> w(N);
  ASSERT_EQ(tsd_checkpoint_read(k.c, 0, TSD_FLOAT64, w.data(), w.size() * 8),
            TSD_OK)
      << tsd_last_error();
  for (uint32_t i = 0; i < N; i += 997)
    ASSERT_EQ(w[i], i * 0.25) << i;
  ASSERT_EQ(w[N - 1], (N - 1) * 0.25);

  std::vector<float> wt(N);
  ASSERT_EQ(tsd_checkpoint_read(k.c, 1, TSD_FLOAT32, wt.data(), wt.size() * 4),
            TSD_OK)
      << tsd_last_error();
  for (uint32_t r = 0; r < C; r += 7)
    for (uint32_t c = 0; c < R; c += 13)
      ASSERT_EQ(wt[static_cast<size_t>(r) * R + c],
                static_cast<float>(c * C + r) * 0.25f)
          << r << "," << c;
  ASSERT_EQ(wt[N - 1], static_cast<float>(N - 1) * 0.25f);

  std::vector<uint16_t> col(R);
  ASSERT_EQ(tsd_checkpoint_read(k.c, 2, TSD_BFLOAT16, col.data(), R * 2),
            TSD_OK);
  for (uint32_t r = 0; r < R; r++)
    ASSERT_EQ(col[r],
              tsd__float_to_bf16(static_cast<float>(5 + r * C) * 0.25f));
  remove(path.c_str());
}

TEST(Reader, AFileTruncatedWhileOpenGivesAnErrorNotACrash) {
  auto bytes = slurp(fixture("zip_p2.pth"));
  std::string path = std::string(TSD_TEST_TMP) + "/reader_truncated.pth";
  write_file(path, bytes);
  Ckpt k(path);
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  ASSERT_EQ(truncate(path.c_str(), 100), 0);
  size_t fails = 0;
  for (size_t i = 0; i < tsd_checkpoint_count(k.c); i++) {
    tsd_entry e;
    ASSERT_EQ(tsd_checkpoint_entry(k.c, i, &e), TSD_OK);
    std::vector<double> out(static_cast<size_t>(e.numel) + 1);
    tsd_status st =
        tsd_checkpoint_read(k.c, i, TSD_FLOAT64, out.data(), out.size() * 8);
    if (e.numel > 0) {
      EXPECT_EQ(st, TSD_ERR_IO) << e.key;
      EXPECT_NE(std::string(tsd_last_error()).find("truncated"),
                std::string::npos)
          << tsd_last_error();
      fails++;
    }
  }
  EXPECT_GT(fails, 10u);
  remove(path.c_str());
}
