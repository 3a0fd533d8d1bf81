// test_cli_map.cc — `tsd load --map`: CHECKPOINT opened mapped
// (TSD_OPEN_MAP) and loaded with TSD_LOAD_BIND into a --model-spec model.
// Safetensors files are written here byte by byte; the torch.save zip is
// the committed fixture small.pth (PyTorch 1.13; w = [[1, -2], [0.5, 4]]
// float32, b = [7, -7] int64, small.expect). Checks which tensors are bound
// and which copied (with the reason), the text and --json reports, the
// refusals, and that -o writes the same bytes as a copy load. No Python.
#include <sys/wait.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_helpers.h"
#include "tsd.h"

namespace {

using Out = tsdtest::CliOut;

std::string q(const std::string &s) { return tsdtest::shell_quote(s); }

Out tsd(const std::string &args) { return tsdtest::run_cli(args); }

std::string fx(const char *name) {
  return q(std::string(TSD_FIXTURES) + "/" + name);
}

std::string tmp(const std::string &name) {
  return tsdtest::temp_dir() + "/map_" + std::to_string(getpid()) + "_" +
         name;
}

bool has(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

std::string slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

using tsdtest::host_little_endian;
using tsdtest::put_le;

uint64_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

uint64_t f64_bits(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}

// One tensor of a safetensors file: its name as the JSON header spells it
// (already escaped), dtype name, shape and little-endian data.
struct St {
  std::string json_name, dtype;
  std::vector<int64_t> shape;
  std::string data;
};

// An 8-byte header length, the JSON header padded with spaces to a
// multiple of 8 (so every tensor below is 8-byte aligned), the data.
std::string write_st(const std::string &name, const std::vector<St> &ts) {
  std::string hdr = "{", data;
  for (const St &t : ts) {
    if (hdr.size() > 1) hdr += ",";
    hdr += "\"" + t.json_name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); i++)
      hdr += (i ? "," : "") + std::to_string(t.shape[i]);
    hdr += "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
           std::to_string(data.size() + t.data.size()) + "]}";
    data += t.data;
  }
  hdr += "}";
  while (hdr.size() % 8)
    hdr += " ";
  std::string file;
  put_le(file, hdr.size(), 8);
  file += hdr + data;
  std::string path = tmp(name);
  std::ofstream(path, std::ios::binary) << file;
  return path;
}

std::string f32s(const std::vector<float> &v) {
  std::string s;
  for (float f : v)
    put_le(s, f32_bits(f), 4);
  return s;
}

std::string f64s(const std::vector<double> &v) {
  std::string s;
  for (double d : v)
    put_le(s, f64_bits(d), 8);
  return s;
}

std::string i64s(const std::vector<int64_t> &v) {
  std::string s;
  for (int64_t x : v)
    put_le(s, static_cast<uint64_t>(x), 8);
  return s;
}

// The model: a [2, 3] float32, b [4] float32, n a 0-dim int64, all zero.
std::string spec_st() {
  return write_st("spec.safetensors",
                  {{"a", "F32", {2, 3}, f32s({0, 0, 0, 0, 0, 0})},
                   {"b", "F32", {4}, f32s({0, 0, 0, 0})},
                   {"n", "I64", {}, i64s({0})}});
}

// The checkpoint for it, same dtypes: every tensor can be bound.
std::string ckpt_st() {
  return write_st("ckpt.safetensors",
                  {{"a", "F32", {2, 3}, f32s({1, 2, 3, 4, 5, 6})},
                   {"b", "F32", {4}, f32s({-1.5f, 0.25f, 8, 9})},
                   {"n", "I64", {}, i64s({42})}});
}

// b stored float64: it is converted, so copied.
std::string ckpt_st_f64() {
  return write_st("ckpt_f64.safetensors",
                  {{"a", "F32", {2, 3}, f32s({1, 2, 3, 4, 5, 6})},
                   {"b", "F64", {4}, f64s({-1.5, 0.25, 8, 9})},
                   {"n", "I64", {}, i64s({42})}});
}

std::string spec_args(const std::string &spec) {
  return "--model-spec " + q(spec) + " --class-name M ";
}

// small.pth's state dict as a model, all zero (so that a load that changed
// nothing would write different bytes from one that loaded).
std::string spec_small_zero() {
  return write_st("small_zero.safetensors",
                  {{"w", "F32", {2, 2}, f32s({0, 0, 0, 0})},
                   {"b", "I64", {2}, i64s({0, 0})}});
}

// The float32 values of tensor `key` of the file at `path`.
std::vector<float> read_f32(const std::string &path, const char *key) {
  tsd_checkpoint *c = nullptr;
  std::vector<float> v;
  EXPECT_EQ(tsd_checkpoint_open(&c, path.c_str(), nullptr), TSD_OK)
      << tsd_last_error();
  if (!c) return v;
  size_t i = 0;
  tsd_entry e;
  EXPECT_EQ(tsd_checkpoint_find(&i, c, key), TSD_OK) << key;
  if (tsd_checkpoint_entry(&e, c, i) == TSD_OK) {
    v.resize(static_cast<size_t>(e.numel));
    EXPECT_EQ(tsd_checkpoint_read(v.data(), v.size() * 4, c, i, TSD_FLOAT32),
              TSD_OK)
        << tsd_last_error();
  }
  tsd_checkpoint_free(c);
  return v;
}

} // namespace

TEST(CliMap, SafetensorsAllBound) {
  std::string spec = spec_st(), ck = ckpt_st();
  Out r = tsd("load --map " + spec_args(spec) + q(ck));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "<All keys matched successfully>\n");
  if (host_little_endian()) {
    EXPECT_TRUE(has(r.err, "bound 3 tensors to the mapped checkpoint, "
                           "copied 0\n"))
        << r.err;
    EXPECT_FALSE(has(r.err, "copied '")) << r.err;
  } else {
    EXPECT_TRUE(has(r.err, "bound 0 tensors to the mapped checkpoint, "
                           "copied 3\n"))
        << r.err;
  }
  // --quiet silences the status lines, as --auto-pop's
  Out qr = tsd("load --map --quiet " + spec_args(spec) + q(ck));
  EXPECT_EQ(qr.rc, 0);
  EXPECT_EQ(qr.err, "");
}

TEST(CliMap, TorchSaveZipAllBound) {
  std::string spec = spec_small_zero();
  Out r = tsd("load --map " + spec_args(spec) + fx("small.pth"));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "<All keys matched successfully>\n");
  if (host_little_endian())
    EXPECT_TRUE(has(r.err, "bound 2 tensors to the mapped checkpoint, "
                           "copied 0\n"))
        << r.err;
  // the zip as its own spec: the same
  Out s = tsd("load --map --model-spec " + fx("small.pth") +
              " --class-name M " + fx("small.pth"));
  EXPECT_EQ(s.rc, 0) << s.err;
  if (host_little_endian())
    EXPECT_TRUE(has(s.err, "bound 2 tensors")) << s.err;
}

TEST(CliMap, ConvertedTensorIsCopiedWithItsReason) {
  std::string spec = spec_st(), ck = ckpt_st_f64();
  Out r = tsd("load --map " + spec_args(spec) + q(ck));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "<All keys matched successfully>\n");
  if (host_little_endian()) {
    EXPECT_TRUE(has(r.err, "bound 2 tensors to the mapped checkpoint, "
                           "copied 1\n"))
        << r.err;
    EXPECT_TRUE(has(r.err, "copied 'b': float64 in the checkpoint, float32 "
                           "in the model\n"))
        << r.err;
  }
}

TEST(CliMap, JsonHasBoundAndCopied) {
  std::string spec = spec_st(), ck = ckpt_st_f64();
  Out r = tsd("load --map --json " + spec_args(spec) + q(ck));
  EXPECT_EQ(r.rc, 0) << r.err;
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.back(), '\n');
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "one line:\n" << r.out;
  EXPECT_TRUE(has(r.out, "\"ok\": true")) << r.out;
  if (host_little_endian()) {
    EXPECT_TRUE(has(r.out, ", \"bound\": [\"a\", \"n\"], \"copied\": "
                           "[{\"key\": \"b\", \"reason\": \"float64 in the "
                           "checkpoint, float32 in the model\"}]}\n"))
        << r.out;
  }
  // the status lines are not printed with --json
  EXPECT_FALSE(has(r.err, "bound ")) << r.err;

  Out all = tsd("load --map --json " + spec_args(spec) + q(ckpt_st()));
  EXPECT_EQ(all.rc, 0) << all.err;
  if (host_little_endian())
    EXPECT_TRUE(has(all.out, ", \"bound\": [\"a\", \"b\", \"n\"], "
                             "\"copied\": []}\n"))
        << all.out;

  // without --map the object is as it was: no "bound", no "copied"
  Out plain = tsd("load --json " + spec_args(spec) + q(ck));
  EXPECT_EQ(plain.rc, 0) << plain.err;
  EXPECT_FALSE(has(plain.out, "\"bound\"")) << plain.out;
  EXPECT_FALSE(has(plain.out, "\"copied\"")) << plain.out;
  // and the rest of the object is the same
  std::string with_map = r.out.substr(0, r.out.find(", \"bound\": "));
  EXPECT_EQ(with_map + "}\n", plain.out);
}

TEST(CliMap, FailedLoadBindsNothing) {
  // the model lacks b: strict load_state_dict raises; nothing is bound
  std::string spec =
      write_st("spec_a.safetensors",
               {{"a", "F32", {2, 3}, f32s({0, 0, 0, 0, 0, 0})},
                {"n", "I64", {}, i64s({0})}});
  Out r = tsd("load --map --json " + spec_args(spec) + q(ckpt_st()));
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_TRUE(has(r.out, "\"ok\": false")) << r.out;
  EXPECT_TRUE(has(r.out, ", \"bound\": [], \"copied\": []}\n")) << r.out;
  Out t = tsd("load --map " + spec_args(spec) + q(ckpt_st()));
  EXPECT_EQ(t.rc, 1) << t.err;
  EXPECT_FALSE(has(t.err, "bound ")) << t.err; // nothing to say
  // --non-strict: it loads, b is unexpected
  Out n = tsd("load --map --non-strict " + spec_args(spec) + q(ckpt_st()));
  EXPECT_EQ(n.rc, 0) << n.err;
  if (host_little_endian())
    EXPECT_TRUE(has(n.err, "bound 2 tensors")) << n.err;
}

TEST(CliMap, CopiedKeysAreEscaped) {
  // a key holding ESC and a newline, converted (so copied and named)
  const std::string json_key = "x\\u001b[31m\\nend";
  std::string spec =
      write_st("spec_esc.safetensors",
               {{json_key, "F32", {2}, f32s({0, 0})}});
  std::string ck =
      write_st("ckpt_esc.safetensors",
               {{json_key, "F64", {2}, f64s({1, 2})}});
  Out r = tsd("load --map " + spec_args(spec) + q(ck));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_FALSE(has(r.err, "\x1b")) << r.err;
  if (host_little_endian()) {
    EXPECT_TRUE(has(r.err, "copied 'x\\x1b[31m\\nend': float64 in the "
                           "checkpoint, float32 in the model\n"))
        << r.err;
  }
  Out j = tsd("load --map --json " + spec_args(spec) + q(ck));
  EXPECT_EQ(j.rc, 0) << j.err;
  EXPECT_FALSE(has(j.out, "\x1b")) << j.out;
  if (host_little_endian())
    EXPECT_TRUE(has(j.out, "\"copied\": [{\"key\": \"x\\u001b[31m\\nend\", "))
        << j.out;
}

TEST(CliMap, Refusals) {
  std::string spec = spec_st(), ck = ckpt_st();
  // stdin cannot be mapped
  Out s = tsd("load --map " + spec_args(spec) + "- < " + q(ck));
  EXPECT_EQ(s.rc, 2);
  EXPECT_EQ(s.out, "");
  EXPECT_TRUE(has(s.err, "tsd load: --map maps CHECKPOINT; stdin ('-') "
                         "cannot be mapped\n"))
      << s.err;
  EXPECT_TRUE(has(s.err, "usage: tsd load")) << s.err;
  // a TorchScript MODEL.pt: refused before it is opened (so the same in
  // the pure-C build)
  Out t = tsd("load --map " + fx("shim_tiny.pt") + " " +
              fx("shim_tiny_ckpt.pth"));
  EXPECT_EQ(t.rc, 2);
  EXPECT_EQ(t.out, "");
  EXPECT_TRUE(has(t.err, "tsd load: --map binds the tensors of a C-owned "
                         "model (--model-spec)"))
      << t.err;
  // --torchscript-checkpoint reads through LibTorch: nothing to map
  Out tc = tsd("load --map --torchscript-checkpoint " + spec_args(spec) +
               fx("shim_tiny.pt"));
  EXPECT_EQ(tc.rc, 2);
  EXPECT_TRUE(has(tc.err, "--torchscript-checkpoint")) << tc.err;
  // --map takes no value
  Out v = tsd("load --map=1 " + spec_args(spec) + q(ck));
  EXPECT_EQ(v.rc, 2);
  // --json refusals are one JSON error object
  Out j = tsd("load --map --json " + spec_args(spec) + "- < " + q(ck));
  EXPECT_EQ(j.rc, 2);
  EXPECT_TRUE(has(j.out, "\"ok\": false")) << j.out;
}

TEST(CliMap, OutputEqualsACopyLoads) {
  struct Case {
    std::string spec, ck, out;
  } cases[] = {
      {spec_st(), q(ckpt_st()), "all.pth"},
      {spec_st(), q(ckpt_st_f64()), "mixed.pth"},
      {spec_st(), q(ckpt_st_f64()), "mixed.safetensors"},
      {spec_small_zero(), fx("small.pth"), "zip.pth"},
  };
  // one OUT path for both (a .pth names its records after OUT's name)
  for (const Case &c : cases) {
    std::string out = tmp(c.out);
    Out b = tsd("load --map " + spec_args(c.spec) + c.ck + " -o " + q(out));
    EXPECT_EQ(b.rc, 0) << c.out << ": " << b.err;
    std::string bb = slurp(out);
    EXPECT_EQ(remove(out.c_str()), 0);
    Out p = tsd("load " + spec_args(c.spec) + c.ck + " -o " + q(out));
    EXPECT_EQ(p.rc, 0) << c.out << ": " << p.err;
    std::string pb = slurp(out);
    EXPECT_FALSE(bb.empty()) << c.out;
    EXPECT_EQ(bb, pb) << c.out;
    // and what was written is the checkpoint's values, not the spec's zeros
    EXPECT_EQ(remove(out.c_str()), 0);
    Out z = tsd("load --model-spec " + q(c.spec) + " --class-name M " +
                q(c.spec) + " -o " + q(out));
    EXPECT_EQ(z.rc, 0) << z.err;
    EXPECT_NE(bb, slurp(out)) << c.out;
    // the bound load's file, kept for the value checks below
    std::ofstream(tmp("bound_" + c.out), std::ios::binary) << bb;
  }
  // the values, read back
  EXPECT_EQ(read_f32(tmp("bound_mixed.pth"), "b"),
            (std::vector<float>{-1.5f, 0.25f, 8, 9}));
  EXPECT_EQ(read_f32(tmp("bound_all.pth"), "a"),
            (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(read_f32(tmp("bound_zip.pth"), "w"),
            (std::vector<float>{1, -2, 0.5f, 4}));
  // -o -: the model on stdout, the report and the counts on stderr
  Out s = tsd("load --map " + spec_args(spec_st()) + q(ckpt_st()) + " -o -");
  EXPECT_EQ(s.rc, 0) << s.err;
  Out sc = tsd("load " + spec_args(spec_st()) + q(ckpt_st()) + " -o -");
  EXPECT_EQ(sc.rc, 0) << sc.err;
  EXPECT_FALSE(s.out.empty());
  EXPECT_EQ(s.out, sc.out);
  EXPECT_TRUE(has(s.err, "<All keys matched successfully>\n")) << s.err;
  if (host_little_endian()) EXPECT_TRUE(has(s.err, "bound 3 tensors")) << s.err;
}

TEST(CliMap, HelpDocumentsMap) {
  Out r = tsd("load --help");
  EXPECT_EQ(r.rc, 0);
  EXPECT_TRUE(has(r.out, "  --map ")) << r.out;
  EXPECT_TRUE(has(r.out, "\"bound\" and\n")) << r.out;
}
