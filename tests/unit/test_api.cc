// test_api.cc — the API rules every function shares (tsd.h, "Conventions"):
// options structs refuse a version they do not know, enum values are fixed
// numbers, the version is the header's.
#include <gtest/gtest.h>

#include <string>

#include "test_helpers.h"

namespace {

using tsdtest::CkptBuilder;
using tsdtest::Model;

TEST(Api, LoadOptionsRefuseAVersionTheLibraryDoesNotKnow) {
  for (unsigned v : {0u, unsigned(TSD_LOAD_OPTIONS_VERSION + 1), 99u}) {
    SCOPED_TRACE(v);
    CkptBuilder ck;
    ck.f32("w", {2}, {3.0f, 4.0f});
    Model m("Net");
    m.add("w", {2});
    auto before = m.snapshot();
    tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
    o.version = v;
    tsd_report *r = nullptr;
    EXPECT_EQ(tsd_load(&r, m.get(), ck.get(), &o), TSD_ERR_INVALID_ARG);
    EXPECT_EQ(r, nullptr);
    EXPECT_NE(std::string(tsd_last_error()).find("options->version is"),
              std::string::npos)
        << tsd_last_error();
    EXPECT_EQ(m.snapshot(), before); // nothing copied
  }
  // every version it knows still loads
  for (unsigned v = 1; v <= TSD_LOAD_OPTIONS_VERSION; v++) {
    SCOPED_TRACE(v);
    CkptBuilder ck;
    ck.f32("w", {2}, {3.0f, 4.0f});
    Model m("Net");
    m.add("w", {2});
    tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
    o.version = v;
    tsd_report *r = nullptr;
    EXPECT_EQ(tsd_load(&r, m.get(), ck.get(), &o), TSD_OK) << tsd_last_error();
    tsd_report_free(r);
  }
}

TEST(Api, SaveOptionsRefuseAVersionTheLibraryDoesNotKnow) {
  Model m("Net");
  m.add("w", {2});
  const std::string path = tsdtest::temp_dir() + "/api_save_version.pth";
  for (unsigned v : {0u, unsigned(TSD_SAVE_OPTIONS_VERSION + 1), 99u}) {
    SCOPED_TRACE(v);
    remove(path.c_str());
    tsd_save_options o = TSD_SAVE_OPTIONS_INIT;
    o.version = v;
    EXPECT_EQ(tsd_model_save_ex(m.get(), path.c_str(), &o),
              TSD_ERR_INVALID_ARG);
    EXPECT_NE(access(path.c_str(), F_OK), 0); // nothing written
  }
  tsd_save_options o = TSD_SAVE_OPTIONS_INIT;
  EXPECT_EQ(tsd_model_save_ex(m.get(), path.c_str(), &o), TSD_OK)
      << tsd_last_error();
  remove(path.c_str());
}

TEST(Api, OpenOptionsRefuseAVersionTheLibraryDoesNotKnow) {
  for (unsigned v : {0u, unsigned(TSD_OPEN_OPTIONS_VERSION + 1), 99u}) {
    SCOPED_TRACE(v);
    tsd_open_options o = TSD_OPEN_OPTIONS_INIT;
    o.version = v;
    tsd_checkpoint *c = nullptr;
    EXPECT_EQ(tsd_checkpoint_open(&c, TSD_FIXTURES "/small.pth", &o),
              TSD_ERR_INVALID_ARG);
    EXPECT_EQ(c, nullptr);
  }
}

// The numbers are part of the ABI: a program built against one header
// passes them to a library built from another.
TEST(Api, EnumValuesAreTheDocumentedNumbers) {
  EXPECT_EQ(TSD_KIND_TENSOR, 0);
  EXPECT_EQ(TSD_KIND_NONE, 1);
  EXPECT_EQ(TSD_KIND_OTHER, 10);
  EXPECT_EQ(TSD_KIND_OBJECT, 11);
  EXPECT_EQ(TSD_DTYPE_COUNT, 21);
  EXPECT_EQ(TSD_COMPLEX128, 20);
  EXPECT_EQ(TSD_ERR_CANCELED, -13);
  EXPECT_EQ(TSD_PARAMETER_NONE, 3);
  EXPECT_EQ(TSD_LIST_MATCHED, 5);
  EXPECT_EQ(TSD_SAVE_SAFETENSORS, 2);
  EXPECT_EQ(TSD_ESCAPE_JSON, 2);
  EXPECT_EQ(TSD_RULES_TORCH_2, 1);
}

TEST(Api, TheLibraryIsTheHeadersVersion) {
  EXPECT_EQ(tsd_version_number(), TSD_VERSION_NUMBER);
  EXPECT_EQ(std::string(tsd_version()),
            std::to_string(TSD_VERSION_MAJOR) + "." +
                std::to_string(TSD_VERSION_MINOR) + "." +
                std::to_string(TSD_VERSION_PATCH));
}

} // namespace
