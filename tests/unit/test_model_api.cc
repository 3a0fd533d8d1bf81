// test_model_api.cc — header gaps of issue 13: finding a model tensor by
// name, buffer-size errors that name the key, reports that outlive their
// model and checkpoint.
#include "test_helpers.h"

using namespace tsdtest;

TEST(ModelFind, FindsTensorsByNameInStateDictOrder) {
  Model m("M");
  m.add("b.x", {1}, TSD_BUFFER);
  m.add("b.w", {2});
  m.add("a", {3});
  size_t i = 99;
  ASSERT_EQ(tsd_model_find(&i, m.get(), "b.w"), TSD_OK);
  tsd_tensor_info info;
  ASSERT_EQ(tsd_model_tensor(&info, m.get(), i), TSD_OK);
  EXPECT_STREQ(info.name, "b.w");
  EXPECT_EQ(i, 1u); // root's "a", then b's parameter, then b's buffer
  ASSERT_EQ(tsd_model_find(&i, m.get(), "b.x"), TSD_OK);
  EXPECT_EQ(i, 2u);
  EXPECT_EQ(tsd_model_find(&i, m.get(), "b"), TSD_ERR_NOT_FOUND);
  EXPECT_NE(std::string(tsd_last_error()).find("\"b\""), std::string::npos);
  EXPECT_EQ(tsd_model_find(nullptr, m.get(), "a"), TSD_ERR_INVALID_ARG);
}

TEST(BufferErrors, NameTheKeyTheSizeAndTheDtype) {
  Model m("M");
  m.add("fc.weight", {2, 3});
  CkptBuilder b;
  b.f32("fc.weight", {2, 3}).add("step", b.integer(3));
  unsigned char buf[23];
  EXPECT_EQ(tsd_checkpoint_read(buf, sizeof buf, b.get(), 0, TSD_FLOAT32),
            TSD_ERR_BUFFER);
  EXPECT_STREQ(tsd_last_error(),
               "tsd_checkpoint_read: \"fc.weight\" needs 24 bytes (6 "
               "elements of float32), the buffer has 23");
  EXPECT_EQ(tsd_checkpoint_read(buf, sizeof buf, b.get(), 1, TSD_FLOAT32),
            TSD_ERR_TYPE);
  EXPECT_STREQ(tsd_last_error(), "tsd_checkpoint_read: entry 1 \"step\" is "
                                 "a <class 'int'>, not a tensor");
  EXPECT_EQ(tsd_model_read(buf, sizeof buf, m.get(), 0, TSD_FLOAT64),
            TSD_ERR_BUFFER);
  EXPECT_STREQ(tsd_last_error(),
               "tsd_model_read: \"fc.weight\" needs 48 bytes (6 elements of "
               "float64), the buffer has 23");
}

TEST(ReportLifetime, AReportOutlivesItsModelAndCheckpoint) {
  tsd_report *r = nullptr;
  {
    Model m("M");
    m.add("w", {2});
    CkptBuilder b;
    b.f32("w", {3}).f32("x", {1});
    EXPECT_EQ(tsd_load(&r, m.get(), b.get(), nullptr), TSD_ERR_LOAD);
  } // model and checkpoint freed here
  ASSERT_NE(r, nullptr);
  EXPECT_STREQ(tsd_report_class_name(r), "M");
  EXPECT_STREQ(tsd_report_item(r, TSD_LIST_UNEXPECTED, 0), "x");
  tsd_mismatch mm;
  ASSERT_EQ(tsd_report_mismatch(&mm, r, TSD_LIST_MISMATCHED, 0), TSD_OK);
  EXPECT_STREQ(mm.key, "w");
  EXPECT_EQ(mm.checkpoint_shape[0], 3);
  EXPECT_EQ(mm.model_shape[0], 2);
  EXPECT_NE(std::string(tsd_report_message(r)).find("size mismatch for w"),
            std::string::npos);
  tsd_report_free(r);
}

// tsd_checkpoint_open_memory needs no alignment: the same file at odd
// addresses reads the same values (every dtype of the fixtures, converted
// to float64 and in its own dtype).
TEST(OpenMemory, AnyAlignmentReadsTheSameValues) {
  for (const char *name : {"small.pth", "small_legacy.pth", "st_small.safetensors",
                           "torch2x_v3.pth", "torch2x_big.pth", "zip64.pth"}) {
    std::string path = std::string(TSD_FIXTURES) + "/" + name;
    FILE *f = fopen(path.c_str(), "rb");
    ASSERT_NE(f, nullptr) << path;
    std::vector<unsigned char> file;
    unsigned char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
      file.insert(file.end(), chunk, chunk + n);
    fclose(f);
    tsd_checkpoint *ref = nullptr;
    ASSERT_EQ(tsd_checkpoint_open(&ref, path.c_str(), nullptr), TSD_OK)
        << tsd_last_error();
    for (size_t shift : {1u, 3u, 7u}) {
      std::vector<unsigned char> buf(file.size() + 16);
      memcpy(buf.data() + shift, file.data(), file.size());
      tsd_checkpoint *c = nullptr;
      ASSERT_EQ(tsd_checkpoint_open_memory(&c, buf.data() + shift, file.size(),
                                           nullptr),
                TSD_OK)
          << name << ": " << tsd_last_error();
      tsd_checkpoint_select_auto(nullptr, c);
      tsd_checkpoint_select_auto(nullptr, ref);
      ASSERT_EQ(tsd_checkpoint_count(c), tsd_checkpoint_count(ref)) << name;
      size_t tensors = 0;
      for (size_t i = 0; i < tsd_checkpoint_count(c); i++) {
        tsd_entry e, r;
        ASSERT_EQ(tsd_checkpoint_entry(&e, c, i), TSD_OK);
        ASSERT_EQ(tsd_checkpoint_entry(&r, ref, i), TSD_OK);
        if (e.kind != TSD_KIND_TENSOR) continue;
        tensors++;
        for (tsd_dtype d : {e.dtype, TSD_FLOAT64}) {
          size_t nb = static_cast<size_t>(e.numel) * tsd_dtype_size(d);
          std::vector<unsigned char> a(nb + 1), b(nb + 1);
          ASSERT_EQ(tsd_checkpoint_read(a.data(), nb, c, i, d), TSD_OK)
              << name << " " << e.key << ": " << tsd_last_error();
          ASSERT_EQ(tsd_checkpoint_read(b.data(), nb, ref, i, d), TSD_OK);
          EXPECT_EQ(a, b) << name << " " << e.key << " shift " << shift;
        }
      }
      EXPECT_GT(tensors, 0u) << name;
      tsd_checkpoint_free(c);
    }
    tsd_checkpoint_free(ref);
  }
}
