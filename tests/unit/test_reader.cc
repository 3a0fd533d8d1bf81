// test_reader.cc — the checkpoint reader: zip (protocols 2-5, ZIP64),
// legacy, the current-dict view, tensor reads, and malformed input (the
// restricted unpickler on raw bytes: test_unpickler.cc). Fixtures come from
// tests/fixtures/make_fixtures.py (Python torch is the oracle); expected
// values are in the .expect files it wrote.
#include "reader_helpers.h"
#include "test_tmp.h"

using namespace tsdtest_reader;

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
    ASSERT_EQ(tsd_checkpoint_find(&i, k.c, c.key), TSD_OK);
    ASSERT_EQ(tsd_checkpoint_entry(&e, k.c, i), TSD_OK);
    EXPECT_EQ(e.contiguous, c.contiguous) << c.key;
  }
  size_t i;
  tsd_entry e;
  ASSERT_EQ(tsd_checkpoint_find(&i, k.c, "scalar"), TSD_OK);
  ASSERT_EQ(tsd_checkpoint_entry(&e, k.c, i), TSD_OK);
  EXPECT_EQ(e.ndim, 0u);
  EXPECT_EQ(e.numel, 1);
  ASSERT_EQ(tsd_checkpoint_find(&i, k.c, "empty"), TSD_OK);
  ASSERT_EQ(tsd_checkpoint_entry(&e, k.c, i), TSD_OK);
  EXPECT_EQ(e.numel, 0);
  ASSERT_EQ(tsd_checkpoint_read(nullptr, 0, k.c, i, TSD_FLOAT32), TSD_OK);
}

TEST(Reader, TensorsSavedFromOneStorageShareIt) {
  for (const char *f : {"zip_p2.pth", "legacy.pth", "zip_p4.pth"}) {
    Ckpt k(fixture(f));
    ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
    size_t a, b, c;
    ASSERT_EQ(tsd_checkpoint_find(&a, k.c, "shared_a"), TSD_OK);
    ASSERT_EQ(tsd_checkpoint_find(&b, k.c, "shared_b"), TSD_OK);
    ASSERT_EQ(tsd_checkpoint_find(&c, k.c, "f32"), TSD_OK);
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
      ASSERT_EQ(tsd_checkpoint_find(&i, k.c, c.key), TSD_OK) << c.key;
      ASSERT_EQ(tsd_checkpoint_entry(&e, k.c, i), TSD_OK);
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
    ASSERT_EQ(tsd_checkpoint_find(&i, k.c, "epoch"), TSD_OK);
    float buf[4];
    EXPECT_FAILS_WITH(tsd_checkpoint_read(buf, sizeof buf, k.c, i, TSD_FLOAT32),
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
    EXPECT_EQ(tsd_checkpoint_entry(&e, k.c, 0), TSD_ERR_NOT_FOUND);
    size_t i;
    EXPECT_EQ(tsd_checkpoint_find(&i, k.c, "x"), TSD_ERR_NOT_FOUND);
  }
}

TEST(Reader, PopRemovesAKeyFromTheViewOnly) {
  Ckpt k(fixture("small.pth"));
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  ASSERT_EQ(tsd_checkpoint_count(k.c), 2u);
  ASSERT_EQ(tsd_checkpoint_pop(k.c, "w"), TSD_OK);
  EXPECT_EQ(tsd_checkpoint_count(k.c), 1u);
  size_t i;
  EXPECT_EQ(tsd_checkpoint_find(&i, k.c, "w"), TSD_ERR_NOT_FOUND);
  ASSERT_EQ(tsd_checkpoint_find(&i, k.c, "b"), TSD_OK);
  EXPECT_EQ(i, 0u);
  tsd_entry e;
  ASSERT_EQ(tsd_checkpoint_entry(&e, k.c, 0), TSD_OK);
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
  ASSERT_EQ(tsd_checkpoint_find(&i, k.c, "w"), TSD_OK);
  float buf[4];
  EXPECT_EQ(tsd_checkpoint_read(buf, 15, k.c, i, TSD_FLOAT32), TSD_ERR_BUFFER);
  EXPECT_EQ(tsd_checkpoint_read(buf, 16, k.c, 7, TSD_FLOAT32),
            TSD_ERR_NOT_FOUND);
  EXPECT_EQ(tsd_checkpoint_read(buf, 16, k.c, i, static_cast<tsd_dtype>(42)),
            TSD_ERR_INVALID_ARG);
  ASSERT_EQ(tsd_checkpoint_read(buf, 16, k.c, i, TSD_FLOAT32), TSD_OK);
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
      EXPECT_EQ(k.st, TSD_ERR_FORMAT) << f << " cut at " << n;
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
          if (tsd_checkpoint_entry(&e, k.c, i) != TSD_OK) continue;
          if (e.kind != TSD_KIND_TENSOR) continue;
          std::vector<double> out(static_cast<size_t>(e.numel) + 1);
          tsd_checkpoint_read(out.data(), out.size() * sizeof(double), k.c, i,
                              TSD_FLOAT64);
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
  EXPECT_FAILS_WITH(tsd_checkpoint_find(&i, k.c, "a"), TSD_ERR_FORMAT, "twice");
  EXPECT_EQ(k.c->view_status, TSD_ERR_FORMAT);
  tsd_entry e;
  EXPECT_EQ(tsd_checkpoint_entry(&e, k.c, 1), TSD_OK);
}

TEST(Reader, ANonStringKeyIsATypeError) {
  std::string p = B("\x80\x02}(K\x01K\x02u.");
  Ckpt k(pickle_zip(p));
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  tsd_entry e;
  EXPECT_FAILS_WITH(tsd_checkpoint_entry(&e, k.c, 0), TSD_ERR_TYPE,
                    "<class 'int'>");
  size_t i;
  EXPECT_EQ(tsd_checkpoint_find(&i, k.c, "1"), TSD_ERR_TYPE);
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
  ASSERT_EQ(tsd_checkpoint_read(&d, sizeof d, ok.c, 0, TSD_FLOAT64), TSD_OK);
  EXPECT_EQ(d, 2.5);
}

// ---- large tensors through a file: chunked conversion, strided windows ------

namespace {

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
  std::string path = tsdtest::temp_dir() + "/reader_large.pth";
  write_file(path, make_zip({{"large/data.pkl", pkl}, {"large/data/0", data}}));
  Ckpt k(path);
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();

  std::vector<double> w(N);
  ASSERT_EQ(tsd_checkpoint_read(w.data(), w.size() * 8, k.c, 0, TSD_FLOAT64),
            TSD_OK)
      << tsd_last_error();
  for (uint32_t i = 0; i < N; i += 997)
    ASSERT_EQ(w[i], i * 0.25) << i;
  ASSERT_EQ(w[N - 1], (N - 1) * 0.25);

  std::vector<float> wt(N);
  ASSERT_EQ(tsd_checkpoint_read(wt.data(), wt.size() * 4, k.c, 1, TSD_FLOAT32),
            TSD_OK)
      << tsd_last_error();
  for (uint32_t r = 0; r < C; r += 7)
    for (uint32_t c = 0; c < R; c += 13)
      ASSERT_EQ(wt[static_cast<size_t>(r) * R + c],
                static_cast<float>(c * C + r) * 0.25f)
          << r << "," << c;
  ASSERT_EQ(wt[N - 1], static_cast<float>(N - 1) * 0.25f);

  std::vector<uint16_t> col(R);
  ASSERT_EQ(tsd_checkpoint_read(col.data(), R * 2, k.c, 2, TSD_BFLOAT16),
            TSD_OK);
  for (uint32_t r = 0; r < R; r++)
    ASSERT_EQ(col[r],
              tsd__float_to_bf16(static_cast<float>(5 + r * C) * 0.25f));
  remove(path.c_str());
}

TEST(Reader, AFileTruncatedWhileOpenGivesAnErrorNotACrash) {
  auto bytes = slurp(fixture("zip_p2.pth"));
  std::string path = tsdtest::temp_dir() + "/reader_truncated.pth";
  write_file(path, bytes);
  Ckpt k(path);
  ASSERT_EQ(k.st, TSD_OK) << tsd_last_error();
  ASSERT_EQ(truncate(path.c_str(), 100), 0);
  size_t fails = 0;
  for (size_t i = 0; i < tsd_checkpoint_count(k.c); i++) {
    tsd_entry e;
    ASSERT_EQ(tsd_checkpoint_entry(&e, k.c, i), TSD_OK);
    std::vector<double> out(static_cast<size_t>(e.numel) + 1);
    tsd_status st =
        tsd_checkpoint_read(out.data(), out.size() * 8, k.c, i, TSD_FLOAT64);
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
