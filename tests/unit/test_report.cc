// test_report.cc — report texts: PyTorch's RuntimeError message, the
// _IncompatibleKeys repr with Python's str repr rules, and the JSON form.
// Expected reprs were printed by Debian's /usr/bin/python3 (3.11).
#include "test_helpers.h"

namespace {

struct Report {
  tsd_report *r = nullptr;
  explicit Report(const char *cls = "Net") {
    EXPECT_EQ(tsd__report_new(&r, cls, nullptr), TSD_OK);
  }
  ~Report() {
    tsd_report_free(r);
  }
  void add(tsd_list l, const std::string &s) {
    ASSERT_EQ(tsd__report_add(r, l, s.data(), s.size()), TSD_OK);
  }
};

const std::vector<std::string> kNastyKeys = {"plain",
                                             "it's",
                                             "say \"hi\"",
                                             "both'\"",
                                             "back\\slash",
                                             "tab\there",
                                             "nl\nx",
                                             "cr\rx",
                                             "\x01"
                                             "ctl",
                                             "del\x7f",
                                             "\xc3\xa9",
                                             "nbsp\xc2\xa0",
                                             "shy\xc2\xad",
                                             "ls\xe2\x80\xa8",
                                             "emoji\xf0\x9f\x98\x80",
                                             "tag\xf3\xa0\x80\x81",
                                             "c1\xc2\x85"};

} // namespace

TEST(Report, IncompatibleKeysReprEscapesLikePython) {
  Report rep;
  for (auto &k : kNastyKeys)
    rep.add(TSD_LIST_MISSING, k);
  ASSERT_EQ(tsd__report_finish(rep.r, false), TSD_OK);
  EXPECT_TRUE(tsd_report_ok(rep.r));
  // print(repr(keys)) in Python 3.11
  EXPECT_EQ(
      std::string(tsd_report_message(rep.r)),
      std::string("_IncompatibleKeys(missing_keys=") +
          R"PY(['plain', "it's", 'say "hi"', 'both\'"', 'back\\slash', 'tab\there', 'nl\nx', 'cr\rx', '\x01ctl', 'del\x7f', 'é', 'nbsp\xa0', 'shy\xad', 'ls\u2028', 'emoji😀', 'tag\U000e0001', 'c1\x85'])PY" +
          ", unexpected_keys=[])");
}

TEST(Report, AllKeysMatchedWhenBothListsAreEmpty) {
  Report rep;
  ASSERT_EQ(tsd__report_finish(rep.r, true), TSD_OK);
  EXPECT_TRUE(tsd_report_ok(rep.r));
  EXPECT_STREQ(tsd_report_message(rep.r), "<All keys matched successfully>");
}

TEST(Report, OnlyUnexpectedKeysStillPrintsIncompatibleKeys) {
  Report rep;
  rep.add(TSD_LIST_UNEXPECTED, "x.y");
  ASSERT_EQ(tsd__report_finish(rep.r, false), TSD_OK);
  EXPECT_STREQ(tsd_report_message(rep.r),
               "_IncompatibleKeys(missing_keys=[], unexpected_keys=['x.y'])");
}

TEST(Report, StrictInsertsMissingThenUnexpectedBeforeTheErrors) {
  Report rep("VisionTransformer");
  rep.add(TSD_LIST_MISSING, "a");
  rep.add(TSD_LIST_MISSING, "b");
  rep.add(TSD_LIST_UNEXPECTED, "c");
  int64_t ck[2] = {1000, 768}, md[2] = {10, 768};
  ASSERT_EQ(tsd__report_add_mismatch(rep.r, TSD_LIST_MISMATCHED,
                                     "heads.head.weight", 2, ck, 2, md),
            TSD_OK);
  rep.add(TSD_LIST_ERRORS, "second error");
  ASSERT_EQ(tsd__report_finish(rep.r, true), TSD_OK);
  EXPECT_FALSE(tsd_report_ok(rep.r));
  EXPECT_STREQ(
      tsd_report_message(rep.r),
      "Error(s) in loading state_dict for VisionTransformer:\n\tMissing "
      "key(s) in state_dict: \"a\", \"b\". \n\tUnexpected key(s) in "
      "state_dict: \"c\". \n\tsize mismatch for heads.head.weight: copying a "
      "param with shape torch.Size([1000, 768]) from checkpoint, the shape in "
      "current model is torch.Size([10, 768]).\n\tsecond error");
  EXPECT_EQ(tsd_report_count(rep.r, TSD_LIST_ERRORS), 4u);
  EXPECT_STREQ(tsd_report_item(rep.r, TSD_LIST_ERRORS, 3), "second error");
  EXPECT_EQ(tsd_report_item(rep.r, TSD_LIST_ERRORS, 4), nullptr);
}

TEST(Report, NonStrictRaisesOnlyForPerKeyErrors) {
  Report rep;
  rep.add(TSD_LIST_MISSING, "a");
  int64_t ck[1] = {3};
  ASSERT_EQ(tsd__report_add_mismatch(rep.r, TSD_LIST_MISMATCHED, "s", 1, ck, 0,
                                     nullptr),
            TSD_OK);
  ASSERT_EQ(tsd__report_finish(rep.r, false), TSD_OK);
  EXPECT_STREQ(tsd_report_message(rep.r),
               "Error(s) in loading state_dict for Net:\n\tsize mismatch for "
               "s: copying a param with shape torch.Size([3]) from "
               "checkpoint, the shape in current model is torch.Size([]).");
  EXPECT_EQ(tsd_report_count(rep.r, TSD_LIST_MISSING), 1u);
}

TEST(Report, JsonHasTheDocumentedKeysInOrder) {
  Report rep("Net");
  rep.add(TSD_LIST_MISSING, "fc.weight");
  rep.add(TSD_LIST_UNEXPECTED, "q\"uote");
  int64_t ck[2] = {5, 3}, md[2] = {2, 3}, z[1] = {0};
  ASSERT_EQ(
      tsd__report_add_mismatch(rep.r, TSD_LIST_MISMATCHED, "w", 2, ck, 2, md),
      TSD_OK);
  ASSERT_EQ(
      tsd__report_add_mismatch(rep.r, TSD_LIST_POPPED, "p", 1, z, 0, nullptr),
      TSD_OK);
  ASSERT_EQ(tsd__report_finish(rep.r, true), TSD_OK);
  EXPECT_STREQ(
      tsd_report_json(rep.r),
      "{\"ok\": false, \"class_name\": \"Net\", \"missing_keys\": "
      "[\"fc.weight\"], \"unexpected_keys\": [\"q\\\"uote\"], "
      "\"size_mismatches\": [{\"key\": \"w\", \"checkpoint_shape\": [5, 3], "
      "\"model_shape\": [2, 3]}], \"popped_keys\": [\"p\"], \"popped\": "
      "[{\"key\": \"p\", \"checkpoint_shape\": [0], \"model_shape\": []}], "
      "\"error_msgs\": [\"Missing key(s) in state_dict: \\\"fc.weight\\\". \", "
      "\"Unexpected key(s) in state_dict: \\\"q\\\"uote\\\". \", \"size "
      "mismatch for w: copying a param with shape torch.Size([5, 3]) from "
      "checkpoint, the shape in current model is torch.Size([2, 3]).\"], "
      "\"message\": \"Error(s) in loading state_dict for Net:\\n\\tMissing "
      "key(s) in state_dict: \\\"fc.weight\\\". \\n\\tUnexpected key(s) in "
      "state_dict: \\\"q\\\"uote\\\". \\n\\tsize mismatch for w: copying a "
      "param with shape torch.Size([5, 3]) from checkpoint, the shape in "
      "current model is torch.Size([2, 3]).\"}");
  tsd_mismatch mm;
  ASSERT_EQ(tsd_report_mismatch(&mm, rep.r, TSD_LIST_POPPED, 0), TSD_OK);
  EXPECT_STREQ(mm.key, "p");
  EXPECT_EQ(mm.model_ndim, 0u);
  EXPECT_EQ(tsd_report_mismatch(&mm, rep.r, TSD_LIST_POPPED, 1),
            TSD_ERR_NOT_FOUND);
  EXPECT_EQ(tsd_report_mismatch(&mm, rep.r, TSD_LIST_MISSING, 0),
            TSD_ERR_INVALID_ARG);
}

TEST(Report, JsonEscapesControlCharactersAndPassesPrintableUtf8Through) {
  Report rep("C\\lass");
  for (auto &k : kNastyKeys)
    rep.add(TSD_LIST_UNEXPECTED, k);
  rep.add(TSD_LIST_UNEXPECTED, "bs\b ff\f");
  ASSERT_EQ(tsd__report_finish(rep.r, false), TSD_OK);
  std::string json = tsd_report_json(rep.r);
  // json.dumps(keys, ensure_ascii=False) in Python 3.11, item by item,
  // except that what repr() escapes (DEL, C1, U+00A0, U+00AD, U+2028, tag
  // characters) is escaped too, so the JSON is as safe on a terminal as the
  // text: json.loads gives back the same strings
  const char *expected[] = {"\"plain\"",
                            "\"it's\"",
                            "\"say \\\"hi\\\"\"",
                            "\"both'\\\"\"",
                            "\"back\\\\slash\"",
                            "\"tab\\there\"",
                            "\"nl\\nx\"",
                            "\"cr\\rx\"",
                            "\"\\u0001ctl\"",
                            "\"del\\u007f\"",
                            "\"\xc3\xa9\"",
                            "\"nbsp\\u00a0\"",
                            "\"shy\\u00ad\"",
                            "\"ls\\u2028\"",
                            "\"emoji\xf0\x9f\x98\x80\"",
                            "\"tag\\udb40\\udc01\"",
                            "\"c1\\u0085\"",
                            "\"bs\\b ff\\f\""};
  std::string list = "\"unexpected_keys\": [";
  for (size_t i = 0; i < sizeof expected / sizeof *expected; i++)
    list += (i ? ", " : "") + std::string(expected[i]);
  list += "]";
  EXPECT_NE(json.find(list), std::string::npos) << json;
  EXPECT_EQ(json.rfind("{\"ok\": true, \"class_name\": \"C\\\\lass\", ", 0),
            0u);
}

TEST(Report, AccessorsAcceptNull) {
  EXPECT_EQ(tsd_report_ok(nullptr), 0);
  EXPECT_EQ(tsd_report_count(nullptr, TSD_LIST_MISSING), 0u);
  EXPECT_EQ(tsd_report_item(nullptr, TSD_LIST_MISSING, 0), nullptr);
  EXPECT_STREQ(tsd_report_message(nullptr), "");
  EXPECT_STREQ(tsd_report_json(nullptr), "");
  tsd_report_free(nullptr);
}
