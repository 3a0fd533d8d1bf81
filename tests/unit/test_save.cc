// test_save.cc — tsd_model_save writes a .pth that Python's torch.load (the
// oracle) and tsd's own reader read back exactly.
#include <dirent.h>
#include <sys/stat.h>


#include <fstream>
#include <sstream>

#include "test_helpers.h"

using tsdtest::Model;

namespace {

std::string tmp_path(const std::string &name) {
  std::string dir = tsdtest::temp_dir() + "/save_" + std::to_string(getpid());
  mkdir(dir.c_str(), 0777);
  return dir + "/" + name;
}

std::vector<unsigned char> read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<unsigned char>((std::istreambuf_iterator<char>(f)),
                                    std::istreambuf_iterator<char>());
}

uint32_t rd32(const std::vector<unsigned char> &b, size_t o) {
  return b[o] | b[o + 1] << 8 | b[o + 2] << 16 | (uint32_t)b[o + 3] << 24;
}
uint16_t rd16(const std::vector<unsigned char> &b, size_t o) {
  return static_cast<uint16_t>(b[o] | b[o + 1] << 8);
}

// A model with every dtype, 0-dim and zero-size tensors, nested modules, a
// declared BatchNorm, and tensors that state_dict leaves out.
struct Zoo {
  Model m{"Zoo"};
  Zoo() {
    auto fill = [](std::vector<unsigned char> &b, tsd_dtype dt,
                   std::vector<double> v) {
      for (size_t i = 0; i < v.size(); i++)
        tsd__convert(b.data() + i * tsd_dtype_size(dt), dt, &v[i], TSD_FLOAT64,
                     1);
    };
    fill(m.add("conv.weight", {2, 3}), TSD_FLOAT32,
         {1.5, -2, 3.25, 0, 1e-3, 7});
    m.add("conv.bias", {}, TSD_PARAMETER_NONE);
    fill(m.add("conv.d", {2}, TSD_BUFFER, TSD_FLOAT64), TSD_FLOAT64,
         {0.1, -1e300});
    m.add("conv.tmp", {3}, TSD_BUFFER_NON_PERSISTENT);
    m.module("bn", "BatchNorm2d");
    fill(m.add("bn.weight", {2}, TSD_PARAMETER, TSD_FLOAT16), TSD_FLOAT16,
         {1, -0.5});
    fill(m.add("bn.running_mean", {2}, TSD_BUFFER, TSD_BFLOAT16), TSD_BFLOAT16,
         {3.140625, -8});
    fill(m.add("bn.num_batches_tracked", {}, TSD_BUFFER, TSD_INT64), TSD_INT64,
         {123456789012345});
    m.module("act", "ReLU");
    fill(m.add("blocks.0.inner.i8", {2, 1, 2}, TSD_PARAMETER, TSD_INT8),
         TSD_INT8, {-128, 127, 0, 5});
    fill(m.add("blocks.0.inner.i16", {1}, TSD_BUFFER, TSD_INT16), TSD_INT16,
         {-30000});
    fill(m.add("blocks.0.i32", {2}, TSD_BUFFER, TSD_INT32), TSD_INT32,
         {-2147483647.0 - 1, 65536});
    fill(m.add("blocks.1.u8", {3}, TSD_BUFFER, TSD_UINT8), TSD_UINT8,
         {0, 200, 255});
    fill(m.add("blocks.1.flag", {2}, TSD_BUFFER, TSD_BOOL), TSD_BOOL, {1, 0});
    m.add("blocks.1.empty", {0, 4});
    fill(m.add("top", {1}), TSD_FLOAT32, {42});
  }
};

// The expected state_dict as a Python literal: [(name, dtype, shape, values)]
std::string python_expectation(tsd_model *m) {
  std::ostringstream py;
  py.precision(17);
  py << "expected = [\n";
  for (size_t i = 0; i < tsd_model_tensor_count(m); i++) {
    tsd_tensor_info info;
    EXPECT_EQ(tsd_model_tensor(&info, m, i), TSD_OK);
    if (info.role != TSD_PARAMETER && info.role != TSD_BUFFER) continue;
    py << "  ('" << info.name << "', 'torch." << tsd_dtype_name(info.dtype)
       << "', [";
    for (size_t d = 0; d < info.ndim; d++)
      py << (d ? ", " : "") << info.shape[d];
    py << "], [";
    std::vector<double> v(static_cast<size_t>(info.numel) + 1);
    EXPECT_EQ(tsd_model_read(v.data(), v.size() * 8, m, i, TSD_FLOAT64),
              TSD_OK);
    for (int64_t k = 0; k < info.numel; k++)
      py << (k ? ", " : "") << v[k];
    py << "]),\n";
  }
  py << "]\n";
  return py.str();
}

// Saves a model whose tensors cannot be read (a model kind whose read
// fails), to check a failure leaves nothing behind.
tsd_status failing_read(const tsd_model *, const tsd__mtensor *, tsd_dtype,
                        void *) {
  return tsd__err(TSD_ERR_IO, "simulated read failure");
}
void no_destroy(tsd_model *) {}
const tsd__model_ops kFailingOps = {nullptr, failing_read, tsd__save_pth,
                                    no_destroy};

std::vector<std::string> list_dir(const std::string &dir) {
  std::vector<std::string> out;
  if (DIR *d = opendir(dir.c_str())) {
    while (struct dirent *e = readdir(d))
      if (e->d_name[0] != '.' ||
          (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")))
        out.push_back(e->d_name);
    closedir(d);
  }
  return out;
}

} // namespace

TEST(Save, RecordsAreStoredAlignedAndTheirCrcsMatch) {
  Zoo z;
  std::string path = tmp_path("zoo.pth");
  ASSERT_EQ(tsd_model_save(z.m.get(), path.c_str(), NULL), TSD_OK)
      << tsd_last_error();
  auto b = read_file(path);
  ASSERT_GT(b.size(), 22u);
  size_t eocd = b.size() - 22;
  ASSERT_EQ(rd32(b, eocd), 0x06054b50u);
  size_t n = rd16(b, eocd + 10), cd = rd32(b, eocd + 16);
  // data.pkl, 12 saved tensors, version
  ASSERT_EQ(n, 14u);
  std::vector<std::string> names;
  for (size_t i = 0; i < n; i++) {
    ASSERT_EQ(rd32(b, cd), 0x02014b50u);
    uint32_t crc = rd32(b, cd + 16), size = rd32(b, cd + 24);
    size_t fn = rd16(b, cd + 28), ex = rd16(b, cd + 30), cm = rd16(b, cd + 32);
    size_t off = rd32(b, cd + 42);
    EXPECT_EQ(rd16(b, cd + 10), 0) << "stored, not compressed";
    names.emplace_back(reinterpret_cast<const char *>(&b[cd + 46]), fn);
    ASSERT_EQ(rd32(b, off), 0x04034b50u);
    size_t data = off + 30 + rd16(b, off + 26) + rd16(b, off + 28);
    EXPECT_EQ(data % 64, 0u) << names.back();
    ASSERT_LE(data + size, b.size());
    EXPECT_EQ(tsd__crc32(0, b.data() + data, size), crc) << names.back();
    cd += 46 + fn + ex + cm;
  }
  EXPECT_EQ(names.front(), "zoo/data.pkl");
  EXPECT_EQ(names[1], "zoo/data/0");
  EXPECT_EQ(names.back(), "zoo/version");
}

TEST(Save, PythonTorchLoadReadsItBack) {
  std::string why;
  ASSERT_TRUE(tsdtest::python_torch_available(&why)) << why;
  for (uint64_t zip64_at : {uint64_t{0xFFFFFFFF}, uint64_t{0}}) {
    Zoo z;
    std::string path = tmp_path(zip64_at ? "my.model.pth" : "zip64.pth");
    ASSERT_EQ(tsd__save_pth_ex(z.m.get(), path.c_str(), zip64_at), TSD_OK)
        << tsd_last_error();
    std::string script =
        "import torch, zipfile, collections, math\n" +
        python_expectation(z.m.get()) + "path = '" + path +
        "'\n"
        "zf = zipfile.ZipFile(path)\n"
        "assert zf.testzip() is None, 'bad CRC'\n"
        "stem = zf.namelist()[0].split('/')[0]\n"
        "assert stem == ('my.model' if 'my.model' in path else 'zip64'), stem\n"
        "assert zf.read(stem + '/version') == b'3\\n'\n"
        "sd = torch.load(path)\n"
        "assert type(sd) is collections.OrderedDict, type(sd)\n"
        "got = list(sd.keys()); want = [e[0] for e in expected]\n"
        "assert got == want, (got, want)\n"
        "for name, dt, shape, vals in expected:\n"
        "    t = sd[name]\n"
        "    assert type(t) is torch.Tensor, (name, type(t))\n"
        "    assert str(t.dtype) == dt, (name, t.dtype, dt)\n"
        "    assert list(t.shape) == shape, (name, t.shape, shape)\n"
        "    assert t.is_contiguous(), name\n"
        "    flat = t.reshape(-1).double().tolist()\n"
        "    assert flat == vals, (name, flat, vals)\n"
        "meta = sd._metadata\n"
        "assert type(meta) is collections.OrderedDict\n"
        "want_meta = [('', 1), ('conv', 1), ('bn', 2), ('act', 1),\n"
        "             ('blocks', 1), ('blocks.0', 1), ('blocks.0.inner', 1),\n"
        "             ('blocks.1', 1)]\n"
        "got_meta = [(k, v['version']) for k, v in meta.items()]\n"
        "assert got_meta == want_meta, got_meta\n"
        "assert all(list(v.keys()) == ['version'] for v in meta.values())\n"
        "print('TORCH_LOAD_OK')\n";
    auto r = tsdtest::run_python(script);
    EXPECT_EQ(r.first, 0) << r.second;
    EXPECT_NE(r.second.find("TORCH_LOAD_OK"), std::string::npos) << r.second;
  }
}

TEST(Save, PythonLoadStateDictAcceptsItIntoTheEagerModel) {
  std::string why;
  ASSERT_TRUE(tsdtest::python_torch_available(&why)) << why;
  // nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.BatchNorm1d(2))
  Model m("Sequential");
  std::vector<float> w = {1, 2, 3, 4, 5, 6};
  auto &wb = m.add("0.weight", {2, 3});
  memcpy(wb.data(), w.data(), 24);
  m.add("0.bias", {2});
  m.module("1", "ReLU");
  m.module("2", "BatchNorm1d");
  m.add("2.weight", {2});
  m.add("2.bias", {2});
  m.add("2.running_mean", {2}, TSD_BUFFER);
  m.add("2.running_var", {2}, TSD_BUFFER);
  m.add("2.num_batches_tracked", {}, TSD_BUFFER, TSD_INT64, 3);
  std::string path = tmp_path("seq.pth");
  ASSERT_EQ(tsd_model_save(m.get(), path.c_str(), NULL), TSD_OK)
      << tsd_last_error();
  auto r = tsdtest::run_python(
      "import torch, torch.nn as nn\n"
      "m = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.BatchNorm1d(2))\n"
      "sd = torch.load('" +
      path +
      "')\n"
      "print(m.load_state_dict(sd))\n"
      "assert m[0].weight.tolist() == [[1, 2, 3], [4, 5, 6]]\n"
      "assert int(m[2].num_batches_tracked) == 3\n"
      "assert list(sd._metadata.items()) == "
      "list(m.state_dict()._metadata.items()), sd._metadata\n"
      "print('EAGER_OK')\n");
  EXPECT_EQ(r.first, 0) << r.second;
  EXPECT_NE(r.second.find("<All keys matched successfully>\nEAGER_OK"),
            std::string::npos)
      << r.second;
}

TEST(Save, FailureLeavesNoFileBehind) {
  std::string path = tmp_path("fail_dir");
  mkdir(path.c_str(), 0777);
  std::string out = path + "/model.pth";
  { // a directory that does not exist
    Zoo z;
    std::string bad = path + "/no/such/dir/model.pth";
    EXPECT_EQ(tsd_model_save(z.m.get(), bad.c_str(), NULL), TSD_ERR_IO);
    EXPECT_NE(std::string(tsd_last_error()).find("no/such/dir"),
              std::string::npos);
  }
  { // a tensor that cannot be read, mid-file
    tsd_model *m = nullptr;
    ASSERT_EQ(tsd__model_create(&m, "Broken", &kFailingOps, nullptr, nullptr), TSD_OK);
    int64_t shape[1] = {1000};
    ASSERT_EQ(tsd__model_add(m, "a", TSD_PARAMETER, TSD_FLOAT32, 1, shape,
                             nullptr, nullptr, nullptr),
              TSD_OK);
    EXPECT_EQ(tsd_model_save(m, out.c_str(), NULL), TSD_ERR_IO);
    EXPECT_STREQ(tsd_last_error(), "simulated read failure");
    tsd_model_free(m);
  }
  EXPECT_TRUE(list_dir(path).empty()) << list_dir(path).front();
}

TEST(Save, ReplacesAnExistingFileWhole) {
  std::string path = tmp_path("replace.pth");
  {
    std::ofstream f(path);
    f << std::string(100000, 'x');
  }
  Model m("M");
  m.add("w", {1});
  ASSERT_EQ(tsd_model_save(m.get(), path.c_str(), NULL), TSD_OK);
  auto b = read_file(path);
  ASSERT_GT(b.size(), 4u);
  EXPECT_EQ(rd32(b, 0), 0x04034b50u);
  EXPECT_LT(b.size(), 100000u);
}

TEST(Save, RoundTripsThroughTsdReaderAndLoad) {
  Zoo src;
  std::string path = tmp_path("roundtrip.pth");
  ASSERT_EQ(tsd_model_save(src.m.get(), path.c_str(), NULL), TSD_OK)
      << tsd_last_error();
  tsd_checkpoint *c = nullptr;
  ASSERT_EQ(tsd_checkpoint_open(&c, path.c_str(), nullptr), TSD_OK)
      << tsd_last_error();
  // keys, dtypes and shapes in state_dict order
  size_t k = 0;
  for (size_t i = 0; i < tsd_model_tensor_count(src.m.get()); i++) {
    tsd_tensor_info info;
    ASSERT_EQ(tsd_model_tensor(&info, src.m.get(), i), TSD_OK);
    if (info.role != TSD_PARAMETER && info.role != TSD_BUFFER) continue;
    tsd_entry e;
    ASSERT_EQ(tsd_checkpoint_entry(&e, c, k++), TSD_OK) << tsd_last_error();
    EXPECT_STREQ(e.key, info.name);
    EXPECT_EQ(e.kind, TSD_KIND_TENSOR);
    EXPECT_EQ(e.dtype, info.dtype) << e.key;
    ASSERT_EQ(e.ndim, info.ndim) << e.key;
    for (size_t d = 0; d < e.ndim; d++)
      EXPECT_EQ(e.shape[d], info.shape[d]);
  }
  EXPECT_EQ(tsd_checkpoint_count(c), k);
  EXPECT_EQ(tsd_checkpoint_module_version(c, ""), 1);
  EXPECT_EQ(tsd_checkpoint_module_version(c, "bn"), 2);
  EXPECT_EQ(tsd_checkpoint_module_version(c, "blocks.0.inner"), 1);
  EXPECT_EQ(tsd_checkpoint_metadata_count(c), 8u);

  // load into the same architecture with every persistent tensor zeroed
  Zoo dst;
  for (size_t i = 0; i < tsd_model_tensor_count(dst.m.get()); i++) {
    tsd_tensor_info info;
    ASSERT_EQ(tsd_model_tensor(&info, dst.m.get(), i), TSD_OK);
    if (info.role == TSD_PARAMETER || info.role == TSD_BUFFER)
      memset(info.data, 0, info.numel * tsd_dtype_size(info.dtype));
  }
  EXPECT_NE(dst.m.snapshot(), src.m.snapshot());
  tsd_report *r = nullptr;
  ASSERT_EQ(tsd_load(&r, dst.m.get(), c, nullptr), TSD_OK) << tsd_last_error();
  EXPECT_STREQ(tsd_report_message(r), "<All keys matched successfully>");
  EXPECT_EQ(dst.m.snapshot(), src.m.snapshot());
  tsd_report_free(r);
  tsd_checkpoint_free(c);
}

// PyTorch 2.x dtypes: complex64/128 as typed storages (torch 1.13 reads them
// back: checked in Python), float8 / uint16/32/64 / complex32 as torch 2.x
// writes them (_rebuild_tensor_v3 over an UntypedStorage; 1.13 cannot load
// that, so the pickle is checked opcode by opcode with pickletools, which
// executes nothing, and the values through tsd's reader).
TEST(Save, NewDtypesRoundTripAsTorch2WritesThem) {
  Model m{"New"};
  std::vector<std::vector<unsigned char> *> bufs;
  const tsd_dtype dts[] = {TSD_COMPLEX64, TSD_COMPLEX128,
                           TSD_FLOAT8_E4M3FN, TSD_FLOAT8_E5M2,
                           TSD_FLOAT8_E4M3FNUZ, TSD_FLOAT8_E5M2FNUZ,
                           TSD_FLOAT8_E8M0FNU, TSD_UINT16, TSD_UINT32,
                           TSD_UINT64, TSD_COMPLEX32};
  for (tsd_dtype dt : dts) {
    auto &b = m.add((std::string("t.") + tsd_dtype_name(dt)).c_str(), {2, 3},
                    TSD_PARAMETER, dt);
    for (size_t i = 0; i < b.size(); i++)
      b[i] = (unsigned char)(i * 37 + 11 + dt); // any bit patterns
    bufs.push_back(&b);
  }
  std::string path = tmp_path("newdtypes.pth");
  ASSERT_EQ(tsd_model_save(m.get(), path.c_str(), NULL), TSD_OK)
      << tsd_last_error();
  tsd_checkpoint *c = nullptr;
  ASSERT_EQ(tsd_checkpoint_open(&c, path.c_str(), nullptr), TSD_OK)
      << tsd_last_error();
  for (size_t i = 0; i < sizeof dts / sizeof *dts; i++) {
    tsd_entry e;
    ASSERT_EQ(tsd_checkpoint_entry(&e, c, i), TSD_OK);
    EXPECT_EQ(e.dtype, dts[i]) << e.key;
    // (the helper's buffers have one spare byte at the end)
    std::vector<unsigned char> got(bufs[i]->size() - 1),
        want(bufs[i]->begin(), bufs[i]->end() - 1);
    ASSERT_EQ(tsd_checkpoint_read(got.data(), got.size(), c, i, dts[i]),
              TSD_OK);
    EXPECT_EQ(got, want) << e.key;
  }
  tsd_checkpoint_free(c);

  std::string why;
  ASSERT_TRUE(tsdtest::python_torch_available(&why)) << why;
  auto r = tsdtest::run_python(
      "import zipfile, pickletools\n"
      "zf = zipfile.ZipFile('" + path + "')\n"
      "pkl = zf.read('newdtypes/data.pkl')\n"
      "ops = [(o.name, a) for o, a, _ in pickletools.genops(pkl)]\n"
      "g = [a for n, a in ops if n == 'GLOBAL']\n"
      "want = ['collections OrderedDict', 'torch._utils _rebuild_tensor_v2',\n"
      "        'torch ComplexFloatStorage', 'torch ComplexDoubleStorage',\n"
      "        'torch._utils _rebuild_tensor_v3',\n"
      "        'torch.storage UntypedStorage', 'torch float8_e4m3fn',\n"
      "        'torch float8_e5m2', 'torch float8_e4m3fnuz',\n"
      "        'torch float8_e5m2fnuz', 'torch float8_e8m0fnu',\n"
      "        'torch uint16', 'torch uint32', 'torch uint64',\n"
      "        'torch complex32']\n"
      "assert g == want, g\n"
      "# each persistent id: ('storage', type, key, 'cpu', count), count in\n"
      "# elements for a typed storage, in bytes for an untyped one\n"
      "counts = []\n"
      "for k, (n, a) in enumerate(ops):\n"
      "    if n == 'BINPERSID':\n"
      "        counts.append(ops[k - 2][1])\n"
      "assert counts == [6, 6, 6, 6, 6, 6, 6, 12, 24, 48, 24], counts\n"
      "print('PICKLE_OK')\n");
  EXPECT_EQ(r.first, 0) << r.second;
  EXPECT_NE(r.second.find("PICKLE_OK"), std::string::npos) << r.second;
}

TEST(Save, ComplexTensorsLoadInPythonTorch) {
  Model m{"C"};
  std::vector<float> c64 = {1.5f, -2, 0.25f, 1e30f};
  std::vector<double> c128 = {0.1, -0.2};
  memcpy(m.add("a", {2}, TSD_PARAMETER, TSD_COMPLEX64).data(), c64.data(), 16);
  memcpy(m.add("b", {1}, TSD_BUFFER, TSD_COMPLEX128).data(), c128.data(), 16);
  std::string path = tmp_path("complex.pth");
  ASSERT_EQ(tsd_model_save(m.get(), path.c_str(), NULL), TSD_OK)
      << tsd_last_error();
  std::string why;
  ASSERT_TRUE(tsdtest::python_torch_available(&why)) << why;
  auto r = tsdtest::run_python(
      "import torch\n"
      "sd = torch.load('" + path + "')\n"
      "assert sd['a'].dtype == torch.complex64, sd['a'].dtype\n"
      "assert torch.equal(sd['a'], torch.tensor([1.5-2j, 0.25+1e30j], "
      "dtype=torch.complex64)), sd['a']\n"
      "assert sd['b'].dtype == torch.complex128\n"
      "assert sd['b'].tolist() == [complex(0.1, -0.2)], sd['b']\n"
      "print('COMPLEX_OK')\n");
  EXPECT_EQ(r.first, 0) << r.second;
  EXPECT_NE(r.second.find("COMPLEX_OK"), std::string::npos) << r.second;
}
