// test_views.cc — issue 15: mapped views (TSD_OPEN_MAP), binding a C-owned
// model (TSD_LOAD_BIND), the device-copy hook (TSD_LOAD_DEVICE, against a
// simulated device) and ranged reads, checked against copy loads and against
// the bytes Python PyTorch's own load_state_dict leaves in the model.
#include <sys/stat.h>
#include <algorithm>

#include <fstream>
#include <map>
#include <memory>
#include <set>

#include "test_helpers.h"
#include "views_helpers.h"

namespace {

using tsdtest_views::Ckpt;
using tsdtest_views::LoadR;
using tsdtest_views::mode;

// The fixtures are made once per build tree (Python takes seconds and every
// test runs in its own process): written into a private directory, then
// renamed into place, so parallel test processes never see half of them.
std::string dir() {
  return tsdtest::shared_dir() + "/views_fixtures";
}

std::vector<unsigned char> read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<unsigned char>((std::istreambuf_iterator<char>(f)),
                                    std::istreambuf_iterator<char>());
}

// Python writes the checkpoints and, after torch's own
// `Net().load_state_dict(torch.load(ckpt))`, each model tensor's bytes as
// <dir>/expect/<key>.bin: the oracle for every mode.
const char *kScript = R"PY(
import json, os, struct, sys, torch, torch.nn as nn
d = sys.argv[1]
torch.manual_seed(0)
class Net(nn.Module):
    def __init__(s):
        super().__init__()
        s.fc = nn.Linear(8, 4)
        s.bn = nn.BatchNorm1d(4)
        s.emb = nn.Embedding(10, 8)
        s.register_buffer('scale', torch.tensor(2.0))
net = Net()
with torch.no_grad():
    for p in net.parameters(): p.uniform_(-1, 1)
    net.bn.running_mean.uniform_(-1, 1); net.bn.running_var.uniform_(1, 2)
    net.bn.num_batches_tracked.fill_(7)
sd = net.state_dict()
sd['fc.bias'] = sd['fc.bias'].half()            # dtype conversion
sd['emb.weight'] = torch.randn(8, 10).t()        # strided (transposed)
sd['scale'] = torch.tensor([3.5])                # the 0-dim rule
torch.save(sd, d + '/ckpt.pth')
torch.save(sd, d + '/legacy.pth', _use_new_zipfile_serialization=False)
m = Net(); m.load_state_dict(torch.load(d + '/ckpt.pth'))
os.makedirs(d + '/expect', exist_ok=True)
for k, v in m.state_dict().items():
    open(d + '/expect/' + k + '.bin', 'wb').write(v.contiguous().numpy().tobytes())
# safetensors by hand: header padded to 8 bytes, larger dtypes first
st = {k: v.contiguous() for k, v in m.state_dict().items()}
order = sorted(st, key=lambda k: -st[k].element_size())
hdr, off, blobs = {}, 0, []
names = {torch.float32: 'F32', torch.int64: 'I64'}
for k in order:
    b = st[k].numpy().tobytes()
    hdr[k] = {'dtype': names[st[k].dtype], 'shape': list(st[k].shape),
              'data_offsets': [off, off + len(b)]}
    off += len(b); blobs.append(b)
h = json.dumps(hdr).encode()
h += b' ' * ((8 - len(h) % 8) % 8)
open(d + '/ckpt.safetensors', 'wb').write(struct.pack('<Q', len(h)) + h + b''.join(blobs))
print('ok')
)PY";

class Views : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    struct stat sb;
    if (stat((dir() + "/ckpt.safetensors").c_str(), &sb) == 0) return;
    std::string why;
    if (!tsdtest::python_torch_available(&why)) {
      skip_ = why;
      return;
    }
    std::string work = dir() + ".tmp" + std::to_string(getpid());
    mkdir(work.c_str(), 0777);
    std::string py = work + "/make.py";
    FILE *f = fopen(py.c_str(), "w");
    fputs(kScript, f);
    fclose(f);
    std::string cmd = "cd / && /usr/bin/python3 " + py + " " + work + " 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    char buf[4096];
    std::string out;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
      out.append(buf, n);
    if (pclose(p) != 0 || out.find("ok") == std::string::npos) {
      skip_ = "the fixture script failed: " + out;
      return;
    }
    // another process may have won the race: then ours is removed
    if (rename(work.c_str(), dir().c_str()) != 0)
      (void)!system(("rm -rf '" + work + "'").c_str());
  }
  void SetUp() override {
    // A missing torch is a failure, not a skip (the parity label needs it).
    ASSERT_TRUE(skip_.empty()) << skip_;
  }
  static std::string skip_;
};
std::string Views::skip_;

struct Spec {
  const char *name;
  tsd_dtype dtype;
  std::vector<int64_t> shape;
};
const std::vector<Spec> &specs() {
  static const std::vector<Spec> s = {
      {"fc.weight", TSD_FLOAT32, {4, 8}},
      {"fc.bias", TSD_FLOAT32, {4}},
      {"bn.weight", TSD_FLOAT32, {4}},
      {"bn.bias", TSD_FLOAT32, {4}},
      {"bn.running_mean", TSD_FLOAT32, {4}},
      {"bn.running_var", TSD_FLOAT32, {4}},
      {"bn.num_batches_tracked", TSD_INT64, {}},
      {"emb.weight", TSD_FLOAT32, {10, 8}},
      {"scale", TSD_FLOAT32, {}},
  };
  return s;
}

size_t nbytes(const Spec &s) {
  size_t n = tsd_dtype_size(s.dtype);
  for (int64_t d : s.shape)
    n *= static_cast<size_t>(d);
  return n;
}

// The Net of the script as a C-owned model; `unbacked` names the tensors
// added without memory. Backed memory is filled with 0xAB (a sentinel).
struct Net {
  tsd_model *m = nullptr;
  std::map<std::string, std::vector<unsigned char>> mem;
  explicit Net(const std::set<std::string> &unbacked = {}) {
    EXPECT_EQ(tsd_model_new(&m, "Net"), TSD_OK);
    EXPECT_EQ(tsd_model_add_module(m, "bn", "BatchNorm1d", -1), TSD_OK);
    for (const Spec &s : specs()) {
      tsd_tensor_role role = TSD_PARAMETER;
      std::string n = s.name;
      if (n.find("running") != std::string::npos ||
          n.find("num_batches") != std::string::npos || n == "scale")
        role = TSD_BUFFER;
      if (unbacked.count(n)) {
        EXPECT_EQ(tsd_model_add_tensor_unbacked(m, s.name, role, s.dtype,
                                                s.shape.size(), s.shape.data()),
                  TSD_OK)
            << tsd_last_error();
        continue;
      }
      auto &b = mem[n];
      b.assign(nbytes(s), 0xAB);
      EXPECT_EQ(tsd_model_add_tensor(m, s.name, role, s.dtype, s.shape.size(),
                                     s.shape.data(), b.data()),
                TSD_OK);
    }
  }
  ~Net() {
    tsd_model_free(m);
  }
  size_t index(const std::string &name) const {
    for (size_t i = 0; i < tsd_model_tensor_count(m); i++) {
      tsd_tensor_info info;
      tsd_model_tensor(&info, m, i);
      if (name == info.name) return i;
    }
    ADD_FAILURE() << "no tensor " << name;
    return 0;
  }
  std::vector<unsigned char> value(const std::string &name) const {
    size_t i = index(name);
    tsd_tensor_info info;
    tsd_model_tensor(&info, m, i);
    std::vector<unsigned char> b(
        static_cast<size_t>(info.numel) * tsd_dtype_size(info.dtype));
    EXPECT_EQ(tsd_model_read(b.data(), b.size(), m, i, info.dtype), TSD_OK)
        << tsd_last_error();
    return b;
  }
  bool untouched(const std::string &name) const {
    auto it = mem.find(name);
    for (unsigned char c : it->second)
      if (c != 0xAB) return false;
    return true;
  }
};

void expect_torch_values(const Net &n) {
  for (const Spec &s : specs())
    EXPECT_EQ(n.value(s.name), read_file(dir() + "/expect/" + s.name + ".bin"))
        << s.name;
}

} // namespace

// ---- views -------------------------------------------------------------

TEST_F(Views, MappedZipTensorsAreViewsIntoTheFileWithTheirStrides) {
  Ckpt c(dir() + "/ckpt.pth", true);
  tsd_tensor_view v;
  ASSERT_EQ(tsd_checkpoint_view(&v, c.c, c.find("fc.weight")), TSD_OK)
      << tsd_last_error();
  EXPECT_EQ(v.dtype, TSD_FLOAT32);
  ASSERT_EQ(v.ndim, 2u);
  EXPECT_EQ(v.shape[0], 4);
  EXPECT_EQ(v.strides[0], 8);
  EXPECT_TRUE(v.contiguous);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % 64, 0u) << "zip: 64-aligned";
  std::vector<unsigned char> want(32 * 4);
  ASSERT_EQ(tsd_checkpoint_read(want.data(), want.size(), c.c,
                                c.find("fc.weight"), TSD_FLOAT32),
            TSD_OK);
  EXPECT_EQ(memcmp(v.data, want.data(), want.size()), 0);

  // The transposed embedding is a view with its strides (not contiguous).
  ASSERT_EQ(tsd_checkpoint_view(&v, c.c, c.find("emb.weight")), TSD_OK);
  EXPECT_FALSE(v.contiguous);
  ASSERT_EQ(v.ndim, 2u);
  EXPECT_EQ(v.strides[0], 1);
  EXPECT_EQ(v.strides[1], 10);
  std::vector<float> emb(80);
  ASSERT_EQ(tsd_checkpoint_read(emb.data(), 320, c.c, c.find("emb.weight"),
                                TSD_FLOAT32),
            TSD_OK);
  const float *p = static_cast<const float *>(v.data);
  for (int i = 0; i < 10; i++)
    for (int j = 0; j < 8; j++)
      EXPECT_EQ(p[i * v.strides[0] + j * v.strides[1]], emb[i * 8 + j]);
}

TEST_F(Views, ViewsSurviveSelectAndPopUntilTheCheckpointIsFreed) {
  Ckpt c(dir() + "/ckpt.safetensors", true);
  tsd_tensor_view v;
  ASSERT_EQ(tsd_checkpoint_view(&v, c.c, c.find("fc.weight")), TSD_OK)
      << tsd_last_error();
  std::vector<unsigned char> before(static_cast<const unsigned char *>(v.data),
                                    static_cast<const unsigned char *>(v.data) +
                                        128);
  const int64_t *shape = v.shape;
  ASSERT_EQ(tsd_checkpoint_pop(c.c, "fc.weight"), TSD_OK);
  EXPECT_EQ(memcmp(v.data, before.data(), 128), 0);
  EXPECT_EQ(shape[1], 8);
  EXPECT_EQ(before, read_file(dir() + "/expect/fc.weight.bin"));
}

TEST_F(Views, UnmappedFilesSayWhyAndMemoryCheckpointsAreViewable) {
  Ckpt c(dir() + "/ckpt.pth", false);
  tsd_tensor_view v;
  EXPECT_EQ(tsd_checkpoint_view(&v, c.c, c.find("fc.weight")),
            TSD_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(tsd_last_error()).find("TSD_OPEN_MAP"),
            std::string::npos)
      << tsd_last_error();
  EXPECT_EQ(v.data, nullptr);

  // From memory: the view points into the caller's bytes.
  std::vector<unsigned char> bytes = read_file(dir() + "/ckpt.safetensors");
  tsd_checkpoint *mc = nullptr;
  ASSERT_EQ(tsd_checkpoint_open_memory(&mc, bytes.data(), bytes.size(), nullptr),
            TSD_OK);
  size_t i;
  ASSERT_EQ(tsd_checkpoint_find(&i, mc, "fc.weight"), TSD_OK);
  ASSERT_EQ(tsd_checkpoint_view(&v, mc, i), TSD_OK) << tsd_last_error();
  EXPECT_GE(static_cast<const unsigned char *>(v.data), bytes.data());
  EXPECT_LT(static_cast<const unsigned char *>(v.data),
            bytes.data() + bytes.size());
  tsd_checkpoint_free(mc);
}

TEST_F(Views, BadOptionsAndEntriesAreErrors) {
  tsd_open_options o = TSD_OPEN_OPTIONS_INIT;
  o.flags = 0x80;
  tsd_checkpoint *c = nullptr;
  EXPECT_EQ(tsd_checkpoint_open(&c, (dir() + "/ckpt.pth").c_str(), &o),
            TSD_ERR_INVALID_ARG);
  EXPECT_EQ(c, nullptr);
  Ckpt k(dir() + "/ckpt.pth", true);
  tsd_tensor_view v;
  EXPECT_EQ(tsd_checkpoint_view(&v, k.c, 999), TSD_ERR_NOT_FOUND);
  EXPECT_EQ(tsd_checkpoint_view(nullptr, k.c, 0), TSD_ERR_INVALID_ARG);
}

TEST_F(Views, LegacyFilesAreViewableWhereAligned) {
  Ckpt c(dir() + "/legacy.pth", true);
  size_t ok = 0, refused = 0;
  for (size_t i = 0; i < tsd_checkpoint_count(c.c); i++) {
    tsd_entry e;
    ASSERT_EQ(tsd_checkpoint_entry(&e, c.c, i), TSD_OK);
    if (e.kind != TSD_KIND_TENSOR) continue;
    tsd_tensor_view v;
    tsd_status st = tsd_checkpoint_view(&v, c.c, i);
    if (st == TSD_OK) {
      ok++;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) %
                    std::min<size_t>(tsd_dtype_size(v.dtype), 8),
                0u);
    } else {
      refused++;
      EXPECT_EQ(st, TSD_ERR_UNSUPPORTED);
      EXPECT_NE(std::string(tsd_last_error()).find("not aligned"),
                std::string::npos)
          << tsd_last_error();
    }
  }
  EXPECT_EQ(ok + refused, 9u);
}

// ---- binding -------------------------------------------------------------

TEST_F(Views, BindPointsAtTheMapCopiesTheRestAndMatchesTorchAndACopyLoad) {
  for (const char *file : {"ckpt.pth", "legacy.pth"}) {
    SCOPED_TRACE(file);
    Ckpt c(dir() + "/" + file, true);
    Net copy, bound;
    LoadR a(copy.m, c.c, mode(TSD_LOAD_COPY));
    ASSERT_EQ(a.st, TSD_OK) << a.err;
    LoadR b(bound.m, c.c, mode(TSD_LOAD_BIND));
    ASSERT_EQ(b.st, TSD_OK) << b.err;
    EXPECT_STREQ(tsd_report_message(a.r), tsd_report_message(b.r));
    expect_torch_values(copy);
    expect_torch_values(bound);
    std::vector<std::string> copied = b.list(TSD_LIST_COPIED);
    std::vector<std::string> reasons = b.list(TSD_LIST_COPY_REASONS);
    ASSERT_EQ(copied.size(), reasons.size());
    std::map<std::string, std::string> why;
    for (size_t i = 0; i < copied.size(); i++)
      why[copied[i]] = reasons[i];
    EXPECT_EQ(why["fc.bias"], "float16 in the checkpoint, float32 in the model");
    EXPECT_NE(why["emb.weight"].find("not C-contiguous"), std::string::npos);
    EXPECT_NE(why["scale"].find("0-dim rule"), std::string::npos);
    EXPECT_EQ(b.list(TSD_LIST_BOUND).size() + copied.size(),
              b.list(TSD_LIST_MATCHED).size());
    for (const std::string &k : b.list(TSD_LIST_BOUND)) {
      size_t i = bound.index(k);
      EXPECT_TRUE(bound.untouched(k)) << k << ": the caller's memory is kept";
      EXPECT_EQ(tsd_model_tensor_borrowed(bound.m, i), c.c);
      tsd_tensor_info info;
      tsd_model_tensor(&info, bound.m, i);
      tsd_tensor_view v;
      ASSERT_EQ(tsd_checkpoint_view(&v, c.c, c.find(k.c_str())), TSD_OK);
      EXPECT_EQ(info.data, v.data) << k;
    }
    for (const std::string &k : copied) {
      EXPECT_FALSE(bound.untouched(k)) << k;
      EXPECT_EQ(tsd_model_tensor_borrowed(bound.m, bound.index(k)), nullptr);
    }
    EXPECT_EQ(tsd_model_borrow_count(bound.m, c.c),
              b.list(TSD_LIST_BOUND).size());
    EXPECT_EQ(tsd_model_borrow_count(copy.m, nullptr), 0u);
    if (std::string(file) == "ckpt.pth")
      EXPECT_EQ(b.list(TSD_LIST_BOUND).size(), 6u); // zip: all aligned
  }
}

TEST_F(Views, BindingASafetensorsFileBindsEveryTensorWithoutHostMemory) {
  Ckpt c(dir() + "/ckpt.safetensors", true);
  std::set<std::string> all;
  for (const Spec &s : specs())
    all.insert(s.name);
  Net n(all);
  LoadR b(n.m, c.c, mode(TSD_LOAD_BIND));
  ASSERT_EQ(b.st, TSD_OK) << b.err;
  EXPECT_EQ(b.list(TSD_LIST_BOUND).size(), 9u);
  EXPECT_TRUE(b.list(TSD_LIST_COPIED).empty());
  expect_torch_values(n);
  // Ranged read of a bound model tensor.
  std::vector<double> part(5);
  ASSERT_EQ(tsd_model_read_range(part.data(), 40, n.m, n.index("emb.weight"),
                                 TSD_FLOAT64, 31, 5),
            TSD_OK)
      << tsd_last_error();
  std::vector<unsigned char> e = read_file(dir() + "/expect/emb.weight.bin");
  for (int i = 0; i < 5; i++)
    EXPECT_EQ(part[i], static_cast<double>(tsdtest::as_f32(e, 31 + i)));
}

TEST_F(Views, WritingThroughABoundTensorFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Ckpt c(dir() + "/ckpt.safetensors", true);
  Net n;
  LoadR b(n.m, c.c, mode(TSD_LOAD_BIND));
  ASSERT_EQ(b.st, TSD_OK);
  tsd_tensor_info info;
  tsd_model_tensor(&info, n.m, n.index("fc.weight"));
  EXPECT_DEATH(static_cast<volatile float *>(info.data)[0] = 1.0f, "");
}

TEST_F(Views, WithoutAMapEveryTensorIsCopiedAndTheReportSaysWhy) {
  Ckpt c(dir() + "/ckpt.safetensors", false);
  Net n;
  LoadR b(n.m, c.c, mode(TSD_LOAD_BIND));
  ASSERT_EQ(b.st, TSD_OK) << b.err;
  EXPECT_TRUE(b.list(TSD_LIST_BOUND).empty());
  ASSERT_EQ(b.list(TSD_LIST_COPY_REASONS).size(), 9u);
  EXPECT_NE(b.list(TSD_LIST_COPY_REASONS)[0].find("TSD_OPEN_MAP"),
            std::string::npos);
  expect_torch_values(n);
}

TEST_F(Views, ABindThatFailsBindsNothing) {
  Ckpt c(dir() + "/ckpt.pth", true);
  // An unbacked tensor that must be copied (dtype conversion): refused
  // before anything changes, naming it.
  {
    Net n({"fc.weight", "fc.bias"});
    LoadR b(n.m, c.c, mode(TSD_LOAD_BIND));
    EXPECT_EQ(b.st, TSD_ERR_UNSUPPORTED);
    EXPECT_NE(b.err.find("\"fc.bias\""), std::string::npos) << b.err;
    EXPECT_EQ(tsd_model_borrow_count(n.m, nullptr), 0u);
    for (auto &kv : n.mem)
      EXPECT_TRUE(n.untouched(kv.first)) << kv.first;
    tsd_tensor_info info;
    tsd_model_tensor(&info, n.m, n.index("fc.weight"));
    EXPECT_EQ(info.data, nullptr);
    // and a copy load into an unbacked tensor fails the same way
    LoadR a(n.m, c.c, mode(TSD_LOAD_COPY));
    EXPECT_EQ(a.st, TSD_ERR_UNSUPPORTED);
    for (auto &kv : n.mem)
      EXPECT_TRUE(n.untouched(kv.first)) << kv.first;
  }
  // A strict load that raises: nothing bound, nothing written.
  {
    Net n;
    ASSERT_EQ(tsd_model_add_tensor_unbacked(n.m, "extra.w", TSD_PARAMETER,
                                            TSD_FLOAT32, 0, nullptr),
              TSD_OK);
    LoadR b(n.m, c.c, mode(TSD_LOAD_BIND));
    EXPECT_EQ(b.st, TSD_ERR_LOAD);
    EXPECT_NE(std::string(tsd_report_message(b.r)).find("Missing key(s)"),
              std::string::npos);
    EXPECT_EQ(tsd_model_borrow_count(n.m, nullptr), 0u);
    for (auto &kv : n.mem)
      EXPECT_TRUE(n.untouched(kv.first)) << kv.first;
  }
}

TEST_F(Views, ACopyLoadAfterABindUnbindsIntoTheCallersMemory) {
  Ckpt c(dir() + "/ckpt.safetensors", true);
  Net n;
  {
    LoadR b(n.m, c.c, mode(TSD_LOAD_BIND));
    ASSERT_EQ(b.st, TSD_OK);
  }
  EXPECT_EQ(tsd_model_borrow_count(n.m, c.c), 9u);
  {
    LoadR a(n.m, c.c, mode(TSD_LOAD_COPY));
    ASSERT_EQ(a.st, TSD_OK) << a.err;
  }
  EXPECT_EQ(tsd_model_borrow_count(n.m, nullptr), 0u);
  tsd_tensor_info info;
  tsd_model_tensor(&info, n.m, n.index("fc.weight"));
  EXPECT_EQ(info.data, n.mem["fc.weight"].data());
  EXPECT_EQ(n.mem["fc.weight"], read_file(dir() + "/expect/fc.weight.bin"));
  expect_torch_values(n);
}

TEST_F(Views, BindNeedsACOwnedModelAndAKnownMode) {
  Ckpt c(dir() + "/ckpt.pth", true);
  tsd_model *fc = nullptr;
  ASSERT_EQ(tsd_model_from_checkpoint(&fc, c.c, nullptr), TSD_OK);
  LoadR b(fc, c.c, mode(TSD_LOAD_BIND));
  EXPECT_EQ(b.st, TSD_ERR_UNSUPPORTED);
  tsd_model_free(fc);
  Net n;
  // An unknown mode, as a C caller could pass it (7 in the enum's storage;
  // a C++ value of the enum type outside its range would be undefined).
  tsd_load_options bad = TSD_LOAD_OPTIONS_INIT;
  const int seven = 7;
  std::memcpy(&bad.mode, &seven, sizeof seven);
  LoadR x(n.m, c.c, bad);
  EXPECT_EQ(x.st, TSD_ERR_INVALID_ARG);
}

// ---- the device hook -------------------------------------------------------

namespace {

// A simulated device: one buffer per model tensor, filled only through the
// callback, which checks the order and bounds of every chunk.
struct Device {
  uint8_t *staging = nullptr;
  size_t half = 0;
  std::map<size_t, std::vector<unsigned char>> mem; // by tensor index
  std::map<size_t, uint64_t> next;                  // next offset expected
  size_t last_tensor = 0;
  std::vector<size_t> seq; // tensor indices in the order they arrived
  bool any = false;
  uint64_t chunks = 0;
  uint64_t fail_at = UINT64_MAX; // chunk number that returns -3
  std::vector<std::string> errors;

  static int copy(void *user, const tsd_device_chunk *ch) {
    auto *d = static_cast<Device *>(user);
    uint64_t k = d->chunks++;
    // chunk k is in half k % 2 of the staging buffer
    if (ch->data != d->staging + (k % 2) * d->half)
      d->errors.push_back("chunk " + std::to_string(k) + " not in its half");
    if (ch->len == 0 || ch->len > d->half)
      d->errors.push_back("bad length " + std::to_string(ch->len));
    if (ch->len % tsd_dtype_size(ch->dtype))
      d->errors.push_back("not whole elements");
    // tensors in file order (checked by the test): one run of chunks each
    if (!d->any || ch->tensor != d->last_tensor) {
      if (std::find(d->seq.begin(), d->seq.end(), ch->tensor) != d->seq.end())
        d->errors.push_back(std::string(ch->name) + " came back");
      d->seq.push_back(ch->tensor);
    }
    if (d->any && ch->tensor != d->last_tensor &&
        d->next[d->last_tensor] != d->mem[d->last_tensor].size())
      d->errors.push_back("a tensor left before it was complete");
    d->any = true;
    d->last_tensor = ch->tensor;
    auto &buf = d->mem[ch->tensor];
    if (buf.empty()) buf.assign(ch->tensor_bytes, 0);
    if (ch->offset != d->next[ch->tensor])
      d->errors.push_back(std::string(ch->name) + ": chunk out of order");
    if (ch->offset + ch->len > buf.size())
      d->errors.push_back(std::string(ch->name) + ": out of bounds");
    else
      memcpy(buf.data() + ch->offset, ch->data, ch->len);
    d->next[ch->tensor] = ch->offset + ch->len;
    return k == d->fail_at ? -3 : 0;
  }
};

tsd_load_options device_options(Device &d, std::vector<uint8_t> &staging) {
  tsd_load_options o = mode(TSD_LOAD_DEVICE);
  o.device_copy = Device::copy;
  o.device_user = &d;
  o.staging = staging.data();
  o.staging_bytes = staging.size();
  d.staging = staging.data();
  d.half = staging.size() / 2 / 8 * 8; // tsd.h: halves of multiples of 8
  return o;
}

} // namespace

TEST_F(Views, DeviceChunksArriveInOrderWithinBoundsAndMatchTorch) {
  for (size_t staging_bytes : {16, 40, 4096}) {
    for (const char *file : {"ckpt.pth", "legacy.pth", "ckpt.safetensors"}) {
      SCOPED_TRACE(std::string(file) + " staging " +
                   std::to_string(staging_bytes));
      Ckpt c(dir() + "/" + file, false);
      Net n({"emb.weight"}); // a device load needs no host memory
      Device d;
      std::vector<uint8_t> staging(staging_bytes);
      LoadR r(n.m, c.c, device_options(d, staging));
      ASSERT_EQ(r.st, TSD_OK) << r.err;
      EXPECT_TRUE(tsd_report_ok(r.r));
      EXPECT_TRUE(d.errors.empty()) << d.errors[0];
      EXPECT_EQ(d.mem.size(), 9u);
      for (const Spec &s : specs()) {
        size_t i = n.index(s.name);
        EXPECT_EQ(d.next[i], nbytes(s)) << s.name << ": covered exactly";
        EXPECT_EQ(d.mem[i], read_file(dir() + "/expect/" + s.name + ".bin"))
            << s.name;
        if (n.mem.count(s.name)) EXPECT_TRUE(n.untouched(s.name)) << s.name;
      }
      if (staging_bytes == 16) EXPECT_GT(d.chunks, 9u + 30u);
      // Tensors arrive in the order their bytes lie in the file (what a
      // copy load reads; tsd.h), here told by the address of each
      // tensor's view in a map of the file.
      if (std::string(file) == "legacy.pth") continue;
      Ckpt mapped(dir() + "/" + file, true);
      std::vector<std::pair<uintptr_t, size_t>> at;
      for (const Spec &s : specs()) {
        tsd_tensor_view v;
        ASSERT_EQ(tsd_checkpoint_view(&v, mapped.c, mapped.find(s.name)),
                  TSD_OK)
            << s.name << ": " << tsd_last_error();
        at.push_back({reinterpret_cast<uintptr_t>(v.data), n.index(s.name)});
      }
      std::sort(at.begin(), at.end());
      std::vector<size_t> want;
      for (auto &a : at) want.push_back(a.second);
      EXPECT_EQ(d.seq, want) << "not in file order";
    }
  }
}

TEST_F(Views, ACallbackThatFailsFailsTheLoadAndTheReportNamesTheTensor) {
  Ckpt c(dir() + "/ckpt.pth", true);
  Net n;
  Device d;
  d.fail_at = 10;
  std::vector<uint8_t> staging(32); // 16-byte halves: 4 floats
  LoadR r(n.m, c.c, device_options(d, staging));
  EXPECT_EQ(r.st, TSD_ERR_CALLBACK);
  ASSERT_NE(r.r, nullptr);
  // file order: torch.save's records "0" to "8" hold the checkpoint's
  // tensors in its state_dict order (the root's buffer first): scale
  // (chunk 0), fc.weight's 128 bytes (1-8), fc.bias (9), bn.weight (10)
  EXPECT_EQ(r.list(TSD_LIST_DEVICE_FAILED),
            std::vector<std::string>{"bn.weight"});
  EXPECT_NE(r.err.find("returned -3 for \"bn.weight\" at byte offset 0 of 16"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(d.chunks, 11u);
  for (auto &kv : n.mem)
    EXPECT_TRUE(n.untouched(kv.first)) << kv.first;
}

TEST_F(Views, DeviceLoadsCheckTheirStaging) {
  Ckpt c(dir() + "/ckpt.pth", false);
  Net n;
  Device d;
  std::vector<uint8_t> staging(15); // int64 needs two halves of 8
  LoadR r(n.m, c.c, device_options(d, staging));
  EXPECT_EQ(r.st, TSD_ERR_INVALID_ARG);
  EXPECT_EQ(d.chunks, 0u);
  tsd_load_options o = mode(TSD_LOAD_DEVICE);
  LoadR r2(n.m, c.c, o);
  EXPECT_EQ(r2.st, TSD_ERR_INVALID_ARG);
}

// ---- ranged reads ----------------------------------------------------------

TEST_F(Views, RangedReadsOfCheckpointAndModelTensorsMatchWholeReads) {
  for (const char *file : {"ckpt.pth", "legacy.pth", "ckpt.safetensors"}) {
    SCOPED_TRACE(file);
    Ckpt c(dir() + "/" + file, false);
    Net n;
    LoadR a(n.m, c.c, mode(TSD_LOAD_COPY));
    ASSERT_EQ(a.st, TSD_OK);
    for (const char *key : {"emb.weight", "fc.weight", "fc.bias"}) {
      size_t ci = c.find(key);
      tsd_entry e;
      ASSERT_EQ(tsd_checkpoint_entry(&e, c.c, ci), TSD_OK);
      std::vector<double> whole(static_cast<size_t>(e.numel));
      ASSERT_EQ(tsd_checkpoint_read(whole.data(), whole.size() * 8, c.c, ci,
                                    TSD_FLOAT64),
                TSD_OK);
      uint64_t n_el = static_cast<uint64_t>(e.numel);
      for (uint64_t first = 0; first < n_el; first += 3)
        for (uint64_t count : {uint64_t{1}, uint64_t{7}, n_el - first}) {
          if (first + count > n_el) continue;
          std::vector<double> part(count);
          ASSERT_EQ(tsd_checkpoint_read_range(part.data(), count * 8, c.c, ci,
                                              TSD_FLOAT64, first, count),
                    TSD_OK)
              << tsd_last_error();
          for (uint64_t i = 0; i < count; i++)
            ASSERT_EQ(part[i], whole[first + i]) << key << " " << first;
          std::vector<double> mpart(count);
          ASSERT_EQ(tsd_model_read_range(mpart.data(), count * 8, n.m,
                                         n.index(key), TSD_FLOAT64, first,
                                         count),
                    TSD_OK);
          // the model holds float32 values of the checkpoint's
          for (uint64_t i = 0; i < count; i++)
            ASSERT_EQ(mpart[i], static_cast<double>(
                                    static_cast<float>(whole[first + i])));
        }
      double one;
      EXPECT_EQ(
          tsd_checkpoint_read_range(&one, 8, c.c, ci, TSD_FLOAT64, n_el, 1),
          TSD_ERR_INVALID_ARG);
      EXPECT_EQ(tsd_checkpoint_read_range(&one, 8, c.c, ci, TSD_FLOAT64, 0, 2),
                TSD_ERR_BUFFER);
      EXPECT_EQ(tsd_checkpoint_read_range(&one, 8, c.c, ci, TSD_FLOAT64,
                                          UINT64_MAX, 2),
                TSD_ERR_INVALID_ARG);
      EXPECT_EQ(tsd_model_read_range(&one, 8, n.m, n.index(key), TSD_FLOAT64,
                                     n_el, 1),
                TSD_ERR_INVALID_ARG);
    }
  }
}

// Not a PyTorch-oracle test: the fixtures of test_sharded.cc, whose values
// that suite checks against shard_ref.pth.
TEST(ViewsSharded, EveryShardIsMappedAndItsTensorsAreViews) {
  for (const char *index : {"shard_st.index.json", "shard_pth.index.json"}) {
    SCOPED_TRACE(index);
    std::string path = std::string(TSD_FIXTURES) + "/" + index;
    tsd_open_options o = TSD_OPEN_OPTIONS_INIT;
    o.flags = TSD_OPEN_MAP;
    tsd_checkpoint *c = nullptr;
    ASSERT_EQ(tsd_checkpoint_open(&c, path.c_str(), &o), TSD_OK)
        << tsd_last_error();
    size_t viewed = 0;
    for (size_t i = 0; i < tsd_checkpoint_count(c); i++) {
      tsd_entry e;
      ASSERT_EQ(tsd_checkpoint_entry(&e, c, i), TSD_OK);
      if (e.kind != TSD_KIND_TENSOR || !e.contiguous) continue;
      tsd_tensor_view v;
      tsd_status st = tsd_checkpoint_view(&v, c, i);
      if (st != TSD_OK) {
        // a safetensors shard may hold a tensor its writer left unaligned
        EXPECT_NE(std::string(tsd_last_error()).find("not aligned"),
                  std::string::npos)
            << tsd_last_error();
        continue;
      }
      size_t bytes = static_cast<size_t>(e.numel) * tsd_dtype_size(e.dtype);
      std::vector<unsigned char> want(bytes + 1);
      ASSERT_EQ(tsd_checkpoint_read(want.data(), bytes, c, i, e.dtype), TSD_OK);
      EXPECT_EQ(memcmp(v.data, want.data(), bytes), 0) << e.key;
      viewed++;
    }
    EXPECT_GT(viewed, 0u);
    tsd_checkpoint_free(c);
  }
}
