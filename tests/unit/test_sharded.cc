// test_sharded.cc — `*.index.json` sharded checkpoints (torch.save and
// safetensors shards) open as one checkpoint equal to the unsharded file.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "test_helpers.h"

namespace {

std::string fixture(const std::string &name) {
  return std::string(TSD_FIXTURES) + "/" + name;
}

std::string tmp_dir() {
  std::string dir =
      tsdtest::temp_dir() + "/sharded_" + std::to_string(getpid());
  mkdir(dir.c_str(), 0777);
  return dir;
}

void copy_file(const std::string &from, const std::string &to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary);
  out << in.rdbuf();
}

void write_text(const std::string &path, const std::string &text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

struct Ckpt {
  tsd_checkpoint *c = nullptr;
  tsd_status st;
  std::string err;
  explicit Ckpt(const std::string &path) {
    st = tsd_checkpoint_open(&c, path.c_str(), nullptr);
    err = tsd_last_error();
  }
  ~Ckpt() {
    tsd_checkpoint_free(c);
  }
  Ckpt(const Ckpt &) = delete;
  Ckpt &operator=(const Ckpt &) = delete;
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (size_t i = 0; i < tsd_checkpoint_count(c); i++) {
      tsd_entry e;
      EXPECT_EQ(tsd_checkpoint_entry(c, i, &e), TSD_OK);
      out.push_back(e.key);
    }
    return out;
  }
  std::vector<unsigned char> bytes(size_t i) const {
    tsd_entry e;
    EXPECT_EQ(tsd_checkpoint_entry(c, i, &e), TSD_OK);
    std::vector<unsigned char> b(
        static_cast<size_t>(e.numel) * tsd_dtype_size(e.dtype) + 1);
    EXPECT_EQ(tsd_checkpoint_read(c, i, e.dtype, b.data(), b.size()), TSD_OK)
        << tsd_last_error();
    b.pop_back();
    return b;
  }
};

// Every key of `got` holds the same dtype, shape and bytes as in `ref`.
void expect_same_values(const Ckpt &got, const Ckpt &ref) {
  for (size_t i = 0; i < tsd_checkpoint_count(got.c); i++) {
    tsd_entry e, f;
    ASSERT_EQ(tsd_checkpoint_entry(got.c, i, &e), TSD_OK);
    size_t j;
    ASSERT_EQ(tsd_checkpoint_find(ref.c, &j, e.key), TSD_OK) << e.key;
    ASSERT_EQ(tsd_checkpoint_entry(ref.c, j, &f), TSD_OK);
    EXPECT_EQ(e.dtype, f.dtype) << e.key;
    ASSERT_EQ(e.ndim, f.ndim) << e.key;
    for (size_t d = 0; d < e.ndim; d++)
      EXPECT_EQ(e.shape[d], f.shape[d]) << e.key;
    EXPECT_EQ(got.bytes(i), ref.bytes(j)) << e.key;
  }
}

// The file a tensor of the current dict reads its bytes from.
std::string source_of(const Ckpt &k, size_t i) {
  const tsd__value *v = tsd__ckpt_val(k.c, i);
  if (!v || v->kind != TSD__V_TENSOR) return "";
  const tsd__storage *s = v->u.tensor->storage;
  std::string name = s->src ? s->src->name : k.c->src.name;
  return name.substr(name.rfind('/') + 1);
}

} // namespace

TEST(Sharded, PthShardsOpenAsTheWholeStateDictInIndexOrder) {
  Ckpt sh(fixture("shard_pth.index.json")), ref(fixture("shard_ref.pth"));
  ASSERT_EQ(sh.st, TSD_OK) << sh.err;
  ASSERT_EQ(ref.st, TSD_OK) << ref.err;
  EXPECT_EQ(tsd_checkpoint_root_kind(sh.c), TSD_KIND_DICT);
  EXPECT_EQ(sh.keys(), ref.keys()); // this index lists state_dict order
  EXPECT_EQ(sh.keys().size(), 10u);
  expect_same_values(sh, ref);
  // the shards' _metadata, merged: BatchNorm's version survives
  EXPECT_EQ(tsd_checkpoint_module_version(sh.c, "bn"), 2);
  EXPECT_EQ(tsd_checkpoint_metadata_count(sh.c),
            tsd_checkpoint_metadata_count(ref.c));
  for (size_t i = 0; i < tsd_checkpoint_metadata_count(ref.c); i++)
    EXPECT_STREQ(tsd_checkpoint_metadata_prefix(sh.c, i),
                 tsd_checkpoint_metadata_prefix(ref.c, i));
  EXPECT_STREQ(tsd_checkpoint_metadata_string(sh.c, "format"), "pth");
  EXPECT_STREQ(tsd_checkpoint_metadata_string(sh.c, "total_size"), "164");
}

TEST(Sharded, SafetensorsShardsKeepTheIndexsSortedOrder) {
  Ckpt sh(fixture("shard_st.index.json")), ref(fixture("shard_ref.pth"));
  ASSERT_EQ(sh.st, TSD_OK) << sh.err;
  auto want = ref.keys();
  std::sort(want.begin(), want.end());
  EXPECT_EQ(sh.keys(), want);
  expect_same_values(sh, ref);
  EXPECT_EQ(tsd_checkpoint_metadata_count(sh.c), 0u); // safetensors: none
  EXPECT_EQ(tsd_checkpoint_module_version(sh.c, "bn"), -1);
  EXPECT_EQ(tsd_checkpoint_file_metadata_count(sh.c), 2u);
}

TEST(Sharded, EachTensorReadsFromItsOwnShardOpenedOnce) {
  Ckpt sh(fixture("shard_pth.index.json"));
  ASSERT_EQ(sh.st, TSD_OK) << sh.err;
  EXPECT_EQ(sh.c->n_shards, 2u);
  auto keys = sh.keys();
  for (size_t i = 0; i < keys.size(); i++)
    EXPECT_EQ(source_of(sh, i), i < keys.size() / 2
                                    ? "shard_pth-00001-of-00002.pth"
                                    : "shard_pth-00002-of-00002.pth")
        << keys[i];
}

TEST(Sharded, LoadsIntoAModelAsTheUnshardedFileDoes) {
  Ckpt ref(fixture("shard_ref.pth"));
  ASSERT_EQ(ref.st, TSD_OK);
  for (const char *index : {"shard_pth.index.json", "shard_st.index.json"}) {
    tsdtest::Model m("Net");
    m.module("bn", "BatchNorm2d");
    for (size_t i = 0; i < tsd_checkpoint_count(ref.c); i++) {
      tsd_entry e;
      ASSERT_EQ(tsd_checkpoint_entry(ref.c, i, &e), TSD_OK);
      bool buffer = strstr(e.key, "running_") || strstr(e.key, "num_batches");
      m.add(e.key, std::vector<int64_t>(e.shape, e.shape + e.ndim),
            buffer ? TSD_BUFFER : TSD_PARAMETER, e.dtype, 0.0);
    }
    Ckpt sh(fixture(index));
    ASSERT_EQ(sh.st, TSD_OK) << sh.err;
    tsdtest::Load l(m.get(), sh.c);
    ASSERT_EQ(l.status, TSD_OK) << l.message();
    EXPECT_EQ(l.message(), "<All keys matched successfully>");
    for (size_t i = 0; i < tsd_model_tensor_count(m.get()); i++) {
      tsd_tensor_info t;
      ASSERT_EQ(tsd_model_tensor(m.get(), i, &t), TSD_OK);
      size_t j;
      ASSERT_EQ(tsd_checkpoint_find(ref.c, &j, t.name), TSD_OK);
      size_t nb = static_cast<size_t>(t.numel) * tsd_dtype_size(t.dtype);
      std::vector<unsigned char> got(static_cast<unsigned char *>(t.data),
                                     static_cast<unsigned char *>(t.data) + nb);
      EXPECT_EQ(got, ref.bytes(j)) << index << " " << t.name;
    }
  }
}

TEST(Sharded, AKeyItsShardDoesNotHoldIsAnError) {
  Ckpt sh(fixture("shard_bad_key.index.json"));
  EXPECT_EQ(sh.st, TSD_ERR_FORMAT);
  EXPECT_EQ(sh.c, nullptr);
  EXPECT_NE(sh.err.find("weight_map maps 'not.in.any.shard' to shard "
                        "shard_pth-00001-of-00002.pth, which does not hold it"),
            std::string::npos)
      << sh.err;
  EXPECT_NE(sh.err.find("shard_bad_key.index.json"), std::string::npos);
}

TEST(Sharded, ShardKeysTheWeightMapDoesNotListAreIgnored) {
  Ckpt sh(fixture("shard_extra.index.json")), ref(fixture("shard_ref.pth"));
  ASSERT_EQ(sh.st, TSD_OK) << sh.err;
  auto want = ref.keys();
  want.erase(std::find(want.begin(), want.end(), "head.bias"));
  EXPECT_EQ(sh.keys(), want);
  size_t i;
  EXPECT_EQ(tsd_checkpoint_find(sh.c, &i, "head.bias"), TSD_ERR_NOT_FOUND);
  expect_same_values(sh, ref);
}

TEST(Sharded, ShardPathsOutsideTheIndexDirectoryAreRefused) {
  for (const char *index :
       {"shard_bad_abs.index.json", "shard_bad_dotdot.index.json"}) {
    Ckpt sh(fixture(index));
    EXPECT_EQ(sh.st, TSD_ERR_FORMAT) << index;
    EXPECT_NE(sh.err.find("refused, a shard must be a plain file name"),
              std::string::npos)
        << sh.err;
  }
}

TEST(Sharded, MissingWeightMapOrShardFileIsAClearError) {
  Ckpt a(fixture("shard_bad_nomap.index.json"));
  EXPECT_EQ(a.st, TSD_ERR_FORMAT);
  EXPECT_NE(a.err.find("needs a \"weight_map\" object"), std::string::npos)
      << a.err;
  Ckpt b(fixture("shard_bad_absent.index.json"));
  EXPECT_EQ(b.st, TSD_ERR_IO);
  EXPECT_NE(b.err.find("shard_absent-00001.pth: cannot open"),
            std::string::npos)
      << b.err;
}

TEST(Sharded, MalformedIndexesAreRefused) {
  std::string dir = tmp_dir();
  struct Case {
    const char *text, *needle;
  } cases[] = {
      {"{\"weight_map\": {\"a\": \"x.pth\"", "bad JSON"},
      {"[1, 2]", "a JSON object; this is an array"},
      {"{\"weight_map\": []}", "needs a \"weight_map\" object"},
      {"{\"weight_map\": {\"a\": 3}}", "is a number, not a shard file name"},
      {"{\"weight_map\": {\"a\": \"\"}}", "refused"},
      {"{\"weight_map\": {\"a\": \"sub/x.pth\"}}", "refused"},
      {"{\"weight_map\": {\"a\": \"..\"}}", "refused"},
      {"{\"metadata\": 5, \"weight_map\": {}}", "\"metadata\" is a number"},
      {"{\"weight_map\": {\"a\": \"x.pth\", \"a\": \"y.pth\"}}",
       "duplicate name \"a\""},
  };
  for (const auto &c : cases) {
    std::string p = dir + "/bad.index.json";
    write_text(p, c.text);
    Ckpt k(p);
    EXPECT_NE(k.st, TSD_OK) << c.text;
    EXPECT_NE(k.err.find(c.needle), std::string::npos)
        << c.text << "\nmessage: " << k.err;
  }
  // an empty weight_map is an empty state dict
  write_text(dir + "/empty.index.json", "{\"weight_map\": {}}");
  Ckpt e(dir + "/empty.index.json");
  ASSERT_EQ(e.st, TSD_OK) << e.err;
  EXPECT_EQ(tsd_checkpoint_count(e.c), 0u);
}

TEST(Sharded, AShardTruncatedAfterOpeningFailsTheReadNotTheProcess) {
  std::string dir = tmp_dir() + "/trunc";
  mkdir(dir.c_str(), 0777);
  for (const char *f :
       {"shard_st.index.json", "shard_st-00001-of-00002.safetensors",
        "shard_st-00002-of-00002.safetensors"})
    copy_file(fixture(f), dir + "/" + f);
  Ckpt sh(dir + "/shard_st.index.json");
  ASSERT_EQ(sh.st, TSD_OK) << sh.err;
  ASSERT_EQ(
      truncate((dir + "/shard_st-00002-of-00002.safetensors").c_str(), 100), 0);
  size_t i;
  ASSERT_EQ(tsd_checkpoint_find(sh.c, &i, "head.weight"), TSD_OK);
  std::vector<float> buf(12);
  tsd_status st = tsd_checkpoint_read(sh.c, i, TSD_FLOAT32, buf.data(), 48);
  EXPECT_EQ(st, TSD_ERR_IO);
  EXPECT_NE(
      std::string(tsd_last_error()).find("shard_st-00002-of-00002.safetensors"),
      std::string::npos)
      << tsd_last_error();
}
