// test_api.cc — the API rules every function shares (tsd.h, "Conventions"):
// options structs refuse a version they do not know, enum values are fixed
// numbers, the version is the header's.
#include <gtest/gtest.h>

#include <string>
#include <thread>

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
    EXPECT_EQ(tsd_model_save(m.get(), path.c_str(), &o), TSD_ERR_INVALID_ARG);
    EXPECT_NE(access(path.c_str(), F_OK), 0); // nothing written
  }
  tsd_save_options o = TSD_SAVE_OPTIONS_INIT;
  EXPECT_EQ(tsd_model_save(m.get(), path.c_str(), &o), TSD_OK)
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

TEST(Api, LayoutOptionsRefuseAVersionTheLibraryDoesNotKnow) {
  // checked before the file is read: no layout needed
  static char arena[64];
  for (unsigned v : {0u, unsigned(TSD_LAYOUT_OPTIONS_VERSION + 1), 99u}) {
    SCOPED_TRACE(v);
    tsd_layout_options o = TSD_LAYOUT_OPTIONS_INIT;
    o.version = v;
    o.arena = arena;
    o.arena_bytes = sizeof arena;
    tsd_model *m = reinterpret_cast<tsd_model *>(0x1);
    EXPECT_EQ(tsd_model_from_layout(&m, "/nonexistent/layout.json", &o),
              TSD_ERR_INVALID_ARG);
    EXPECT_EQ(m, nullptr);
    EXPECT_EQ(std::string(tsd_last_error()),
              "tsd_model_from_layout: options->version is " +
                  std::to_string(v) + ", expected 1 to " +
                  std::to_string(TSD_LAYOUT_OPTIONS_VERSION) +
                  " (use TSD_LAYOUT_OPTIONS_INIT)");
  }
}

// The TorchScript opens check their options in every build (the pure-C
// build's stand-ins too), before the file is looked at.
TEST(Api, TorchScriptOptionsRefuseAVersionTheLibraryDoesNotKnow) {
  for (unsigned v : {0u, unsigned(TSD_TORCHSCRIPT_OPTIONS_VERSION + 1), 99u}) {
    SCOPED_TRACE(v);
    tsd_torchscript_options o = TSD_TORCHSCRIPT_OPTIONS_INIT;
    o.version = v;
    const std::string tail = ": options->version is " + std::to_string(v) +
                             ", expected 1 to " +
                             std::to_string(TSD_TORCHSCRIPT_OPTIONS_VERSION) +
                             " (TSD_TORCHSCRIPT_OPTIONS_INIT)";
    tsd_model *m = reinterpret_cast<tsd_model *>(0x1);
    EXPECT_EQ(tsd_model_open_torchscript(&m, "/nonexistent/x.pt", &o),
              TSD_ERR_INVALID_ARG);
    EXPECT_EQ(m, nullptr);
    EXPECT_EQ(std::string(tsd_last_error()),
              "tsd_model_open_torchscript" + tail);
    tsd_checkpoint *c = reinterpret_cast<tsd_checkpoint *>(0x1);
    EXPECT_EQ(tsd_checkpoint_open_torchscript(&c, "/nonexistent/x.pt", &o),
              TSD_ERR_INVALID_ARG);
    EXPECT_EQ(c, nullptr);
    EXPECT_EQ(std::string(tsd_last_error()),
              "tsd_checkpoint_open_torchscript" + tail);
  }
  // an allocator is all three functions or none
  tsd_allocator half = {};
  tsd_torchscript_options o = TSD_TORCHSCRIPT_OPTIONS_INIT;
  o.allocator = &half;
  tsd_model *m = nullptr;
  EXPECT_EQ(tsd_model_open_torchscript(&m, "/nonexistent/x.pt", &o),
            TSD_ERR_INVALID_ARG);
  EXPECT_NE(std::string(tsd_last_error()).find("all three functions"),
            std::string::npos)
      << tsd_last_error();
  // tsd_model_open_torchscript_state takes tsd_checkpoint_open's options
  tsd_open_options oo = TSD_OPEN_OPTIONS_INIT;
  oo.version = 99;
  EXPECT_EQ(
      tsd_model_open_torchscript_state(&m, TSD_FIXTURES "/small.pth", &oo),
      TSD_ERR_INVALID_ARG);
  EXPECT_EQ(m, nullptr);
}

// tsd.h, "Errors": a failure sets the calling thread's message; a call
// that succeeds leaves it as it was, except tsd_load, which clears it when
// it returns TSD_OK; another thread never sees it.
TEST(Api, LastErrorIsSetByAFailureAndClearedOnlyByASuccessfulLoad) {
  CkptBuilder ck;
  ck.f32("w", {2}, {3.0f, 4.0f});
  size_t i = 0;
  ASSERT_EQ(tsd_checkpoint_find(&i, ck.get(), "nope"), TSD_ERR_NOT_FOUND);
  const std::string msg = tsd_last_error();
  EXPECT_NE(msg.find("no key 'nope'"), std::string::npos) << msg;
  // successful calls keep it
  tsd_entry e;
  ASSERT_EQ(tsd_checkpoint_entry(&e, ck.get(), 0), TSD_OK);
  ASSERT_EQ(tsd_checkpoint_find(&i, ck.get(), "w"), TSD_OK);
  float buf[2];
  ASSERT_EQ(tsd_checkpoint_read(buf, sizeof buf, ck.get(), 0, TSD_FLOAT32),
            TSD_OK);
  EXPECT_EQ(tsd_last_error(), msg);
  // another thread has its own, empty message
  std::string other = "unset";
  std::thread([&] { other = tsd_last_error(); }).join();
  EXPECT_EQ(other, "");
  // a load that raises sets it to PyTorch's text
  Model bad("Net");
  bad.add("v", {2});
  tsd_report *r = nullptr;
  EXPECT_EQ(tsd_load(&r, bad.get(), ck.get(), nullptr), TSD_ERR_LOAD);
  EXPECT_STREQ(tsd_last_error(), tsd_report_message(r));
  tsd_report_free(r);
  // a load that succeeds clears it
  Model m("Net");
  m.add("w", {2});
  ASSERT_EQ(tsd_load(&r, m.get(), ck.get(), nullptr), TSD_OK);
  EXPECT_STREQ(tsd_last_error(), "");
  tsd_report_free(r);
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
