// fuzz_torchscript — the LibTorch shim's archive path (LibTorch build only;
// scripts/fuzz.sh builds it in build-fuzz-torch/). The input is the data.pkl
// of a TorchScript archive: the target wraps it with the other records of a
// valid archive (tests/malformed/torchscript/cases/ok_net.pt: its code,
// constants and storage records, unchanged, so that LibTorch's CRC checks do
// not stop the mutations), writes it to a file and opens it as a model and
// as a checkpoint, reads every tensor both ways and loads one into the
// other. Any crash, sanitizer report or abort from LibTorch is a finding;
// a failure must come with a message and leave nothing allocated.
#include <caffe2/serialize/inline_container.h>

#include <cstdint>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

#include "fuzz_common.h"

namespace {

std::vector<std::pair<std::string, std::string>> base; // full name -> bytes
std::string pkl_name, path;

void read_base() {
  caffe2::serialize::PyTorchStreamReader r(std::string(TSD_FUZZ_TS_BASE));
  // The reader prefixes the archive's folder itself: keep it in the names.
  for (const std::string &n : r.getAllRecords()) {
    auto rec = r.getRecord(n);
    const char *p = static_cast<const char *>(std::get<0>(rec).get());
    base.emplace_back(n, std::string(p, std::get<1>(rec)));
  }
  path = "/tmp/fuzz_torchscript-" + std::to_string(getpid()) + ".pt";
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  read_base();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<std::string> names;
  std::vector<tsdf_record> recs;
  for (const auto &r : base)
    names.push_back("archive/" + r.first);
  for (size_t i = 0; i < base.size(); i++) {
    bool pkl = base[i].first == "data.pkl";
    recs.push_back(
        {names[i].c_str(),
         pkl ? data : reinterpret_cast<const uint8_t *>(base[i].second.data()),
         pkl ? size : base[i].second.size()});
  }
  size_t zsize = 0;
  uint8_t *z = tsdf_zip(recs.data(), recs.size(), &zsize);
  if (!z) return 0;
  int w = tsdf_write_file(path.c_str(), z, zsize);
  free(z);
  if (w) __builtin_trap();

  tsd_model *m = nullptr;
  if (tsd_model_open_torchscript(&m, path.c_str(), NULL) == TSD_OK) {
    for (size_t i = 0; i < tsd_model_tensor_count(m); i++) {
      tsd_tensor_info t;
      if (tsd_model_tensor(&t, m, i) != TSD_OK) __builtin_trap();
      if (t.role == TSD_PARAMETER_NONE || t.numel > (1 << 20)) continue;
      std::vector<uint8_t> buf(size_t(t.numel) * 8 + 1);
      (void)tsd_model_read(buf.data(), buf.size(), m, i, TSD_FLOAT32);
    }
  } else if (m || !tsd_last_error()[0]) {
    __builtin_trap();
  }
  tsd_checkpoint *c = nullptr;
  if (tsd_checkpoint_open_torchscript(&c, path.c_str(), NULL) == TSD_OK) {
    if (tsdf_exercise(c, nullptr)) __builtin_trap();
    if (m) {
      tsd_load_options opt = TSD_LOAD_OPTIONS_INIT;
      opt.strict = 0;
      tsd_report *r = nullptr;
      (void)tsd_load(&r, m, c, &opt);
      tsd_report_free(r);
    }
  } else if (c || !tsd_last_error()[0]) {
    __builtin_trap();
  }
  tsd_checkpoint_free(c);
  tsd_model_free(m);
  return 0;
}
