// test_helpers.h — shared helpers for the engine, report and save tests:
// checkpoints built by hand (no file, no reader), small models, Python.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#ifdef __linux__
#include <sys/mount.h>
#endif
#ifndef _WIN32
#include <sys/wait.h>
#endif
#include <unistd.h>
#include <utility>
#include <vector>

extern "C" {
#include "internal.h"
}
#include "test_tmp.h"

namespace tsdtest {

// Views (and so binding) need a little-endian host (tsd.h, "Views"); tests
// that write binary files write them little-endian explicitly (s390x).
inline bool host_little_endian() {
  const uint16_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

// `bytes` bytes of v, least significant first, appended to out.
inline void put_le(std::string &out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A checkpoint assembled in memory the way the readers leave one: values in
// an arena, a TSD__V_DICT root with TSD__V_STR keys, tensors whose storage
// has `mem` pointing at the data, and the live view + key index over it.
class CkptBuilder {
public:
  // The library's one constructor (checkpoint.h): values in its arena.
  CkptBuilder() {
    EXPECT_EQ(tsd__checkpoint_new(&c_, nullptr, nullptr), TSD_OK);
  }
  ~CkptBuilder() {
    tsd_checkpoint_free(c_);
  }
  CkptBuilder(const CkptBuilder &) = delete;
  CkptBuilder &operator=(const CkptBuilder &) = delete;

  tsd__value *value(tsd__vkind kind) {
    auto *v = static_cast<tsd__value *>(alloc(sizeof(tsd__value)));
    v->kind = kind;
    return v;
  }
  tsd__value *str(const std::string &s) {
    tsd__value *v = value(TSD__V_STR);
    char *p = static_cast<char *>(alloc(s.size() + 1));
    memcpy(p, s.data(), s.size());
    v->u.s.p = p;
    v->u.s.len = s.size();
    return v;
  }
  tsd__value *integer(int64_t i) {
    tsd__value *v = value(TSD__V_INT);
    v->u.i = i;
    return v;
  }
  // A C-contiguous tensor; `data` holds numel elements of `dtype`.
  tsd__value *tensor(tsd_dtype dtype, std::vector<int64_t> shape,
                     const void *data) {
    int64_t numel = 1;
    for (int64_t d : shape)
      numel *= d;
    size_t nbytes = static_cast<size_t>(numel) * tsd_dtype_size(dtype);
    auto *st = static_cast<tsd__storage *>(alloc(sizeof(tsd__storage)));
    st->dtype = dtype;
    st->numel = static_cast<uint64_t>(numel);
    st->nbytes = nbytes;
    uint8_t *mem = static_cast<uint8_t *>(alloc(nbytes ? nbytes : 1));
    if (nbytes) memcpy(mem, data, nbytes);
    st->mem = mem;
    st->key = "test";
    auto *t = static_cast<tsd__tensor *>(alloc(sizeof(tsd__tensor)));
    t->storage = st;
    t->dtype = dtype;
    t->ndim = shape.size();
    t->shape = static_cast<int64_t *>(alloc(8 * (shape.size() + 1)));
    t->stride = static_cast<int64_t *>(alloc(8 * (shape.size() + 1)));
    int64_t acc = 1;
    for (size_t i = shape.size(); i-- > 0;) {
      t->shape[i] = shape[i];
      t->stride[i] = acc;
      acc *= shape[i] > 1 ? shape[i] : 1;
    }
    t->numel = numel;
    t->contiguous = true;
    tsd__value *v = value(TSD__V_TENSOR);
    v->u.tensor = t;
    return v;
  }

  CkptBuilder &add(const std::string &key, tsd__value *v) {
    items_.emplace_back(str(key), v);
    return *this;
  }
  CkptBuilder &f32(const std::string &key, std::vector<int64_t> shape,
                   std::vector<float> data = {}) {
    int64_t numel = 1;
    for (int64_t d : shape)
      numel *= d;
    if (data.empty()) data.assign(static_cast<size_t>(numel), 0.5f);
    return add(key, tensor(TSD_FLOAT32, shape, data.data()));
  }
  CkptBuilder &version(const std::string &prefix, int64_t v) {
    meta_.emplace_back(prefix, v);
    has_meta_ = true;
    return *this;
  }
  CkptBuilder &empty_metadata() {
    has_meta_ = true;
    return *this;
  }
  // The root is a list instead of a dict.
  CkptBuilder &root_list() {
    root_list_ = true;
    return *this;
  }

  tsd_checkpoint *get() {
    if (built_) return c_;
    built_ = true;
    tsd__parsed p = {};
    if (root_list_) {
      p.root = value(TSD__V_LIST);
    } else {
      tsd__value *d = dict(items_);
      d->flags = TSD__VF_ORDERED;
      if (has_meta_) {
        std::vector<std::pair<tsd__value *, tsd__value *>> m;
        for (auto &pv : meta_) {
          std::vector<std::pair<tsd__value *, tsd__value *>> one;
          one.emplace_back(str("version"), integer(pv.second));
          m.emplace_back(str(pv.first), dict(one));
        }
        d->u.dict.metadata = dict(m);
        d->u.dict.metadata->flags = TSD__VF_ORDERED;
      }
      p.root = d;
    }
    EXPECT_EQ(tsd__checkpoint_adopt(c_, &p), TSD_OK) << tsd_last_error();
    return c_;
  }

private:
  void *alloc(size_t n) {
    return tsd__arena_alloc(&c_->arena, n);
  }
  tsd__value *
  dict(const std::vector<std::pair<tsd__value *, tsd__value *>> &items) {
    tsd__value *d = value(TSD__V_DICT);
    size_t n = items.size();
    d->u.dict.keys =
        static_cast<tsd__value **>(alloc(sizeof(void *) * (n + 1)));
    d->u.dict.vals =
        static_cast<tsd__value **>(alloc(sizeof(void *) * (n + 1)));
    for (size_t i = 0; i < n; i++) {
      d->u.dict.keys[i] = items[i].first;
      d->u.dict.vals[i] = items[i].second;
    }
    d->u.dict.len = d->u.dict.cap = n;
    return d;
  }

  tsd_checkpoint *c_ = nullptr;
  std::vector<std::pair<tsd__value *, tsd__value *>> items_;
  std::vector<std::pair<std::string, int64_t>> meta_;
  bool has_meta_ = false, root_list_ = false, built_ = false;
};

// A C-owned model whose tensors live in vectors owned by this object.
class Model {
public:
  explicit Model(const char *cls) {
    EXPECT_EQ(tsd_model_new(&m_, cls), TSD_OK) << tsd_last_error();
  }
  ~Model() {
    tsd_model_free(m_);
    for (auto *b : bufs_)
      delete b;
  }
  Model(const Model &) = delete;
  Model &operator=(const Model &) = delete;

  // Adds a tensor filled with `fill` (bytes of `fill` as float32/int64).
  std::vector<unsigned char> &add(const char *name, std::vector<int64_t> shape,
                                  tsd_tensor_role role = TSD_PARAMETER,
                                  tsd_dtype dtype = TSD_FLOAT32,
                                  double fill = 1.0) {
    int64_t numel = 1;
    for (int64_t d : shape)
      numel *= d;
    auto *b = new std::vector<unsigned char>(
        static_cast<size_t>(numel) * tsd_dtype_size(dtype) + 1);
    bufs_.push_back(b);
    for (int64_t i = 0; i < numel; i++) {
      double v = fill;
      tsd__convert(b->data() + i * tsd_dtype_size(dtype), dtype, &v,
                   TSD_FLOAT64, 1);
    }
    EXPECT_EQ(tsd_model_add_tensor(m_, name, role, dtype, shape.size(),
                                   shape.data(), b->data()),
              TSD_OK)
        << tsd_last_error();
    return *b;
  }
  void module(const char *name, const char *type, int64_t version = -1) {
    EXPECT_EQ(tsd_model_add_module(m_, name, type, version), TSD_OK)
        << tsd_last_error();
  }
  // Every byte of every tensor, for before/after comparisons.
  std::vector<unsigned char> snapshot() const {
    std::vector<unsigned char> all;
    for (auto *b : bufs_)
      all.insert(all.end(), b->begin(), b->end());
    return all;
  }
  tsd_model *get() const {
    return m_;
  }

private:
  tsd_model *m_ = nullptr;
  std::vector<std::vector<unsigned char> *> bufs_;
};

inline float as_f32(const std::vector<unsigned char> &b, size_t i = 0) {
  float f;
  memcpy(&f, b.data() + 4 * i, 4);
  return f;
}
inline int64_t as_i64(const std::vector<unsigned char> &b, size_t i = 0) {
  int64_t v;
  memcpy(&v, b.data() + 8 * i, 8);
  return v;
}

inline std::vector<std::string> report_list(const tsd_report *r, tsd_list l) {
  std::vector<std::string> out;
  for (size_t i = 0; i < tsd_report_count(r, l); i++)
    out.push_back(tsd_report_item(r, l, i));
  return out;
}

// Runs a load and keeps the report.
struct Load {
  tsd_status status = TSD_OK;
  tsd_report *report = nullptr;
  Load(tsd_model *m, tsd_checkpoint *c, int strict = 1, int auto_pop = 0,
       tsd_rules rules = TSD_RULES_TORCH_1_13) {
    tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
    o.strict = strict;
    o.auto_pop = auto_pop;
    o.rules = rules;
    status = tsd_load(&report, m, c, &o);
  }
  ~Load() {
    tsd_report_free(report);
  }
  Load(const Load &) = delete;
  Load &operator=(const Load &) = delete;
  std::string message() const {
    return report ? tsd_report_message(report) : "";
  }
  std::vector<std::string> list(tsd_list l) const {
    return report_list(report, l);
  }
};

inline std::string shell_quote(const std::string &s) {
  return "'" + s + "'";
}

// What the tsd command printed and its exit status.
struct CliOut {
  int rc = -1;
  std::string out, err;
};

#ifdef TSD_CLI
// Runs `tsd ARGS` (ARGS as a shell would split them, so redirections such as
// "< file" or "> /dev/full" may be part of it): stdout, stderr and the exit
// status (-1 if it did not exit). `prefix` goes before the command ("env
// LD_DEBUG=files ").
inline CliOut run_cli(const std::string &args, const std::string &prefix = "") {
  static int n = 0;
  std::string errf = temp_dir() + "/cli_err_" + std::to_string(getpid()) +
                     "_" + std::to_string(n++);
  std::string cmd = prefix + std::string(TSD_CLI) + " " + args + " 2>" +
                    shell_quote(errf);
  CliOut r;
  FILE *p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, p)) > 0)
    r.out.append(buf, k);
  int st = pclose(p);
#ifdef _WIN32
  r.rc = st; // the command's exit code
#else
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
#endif
  std::ifstream f(errf, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  r.err = ss.str();
  remove(errf.c_str());
  return r;
}
#endif

// tsd_escape of `s` as a std::string.
inline std::string esc(const std::string &s, tsd_escape_mode mode) {
  size_t need = tsd_escape(nullptr, 0, s.data(), s.size(), mode);
  std::string out(need + 1, '\0');
  EXPECT_EQ(tsd_escape(&out[0], out.size(), s.data(), s.size(), mode), need);
  out.resize(need);
  return out;
}

// Files and directories, portable (std::filesystem, no shell): the tests
// built for Windows use these.
// A new empty directory temp_dir()/name (removed first if it is there).
inline std::string scratch_subdir(const std::string &name) {
  std::string d = temp_dir() + "/" + name;
  std::error_code ec;
  std::filesystem::remove_all(d, ec);
  EXPECT_TRUE(std::filesystem::create_directory(d, ec)) << d << ": "
                                                         << ec.message();
  return d;
}
// The names in `dir` (not . and ..).
inline std::set<std::string> dir_names(const std::string &dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto &e : std::filesystem::directory_iterator(dir, ec))
    out.insert(e.path().filename().string());
  return out;
}
inline std::string slurp_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
inline void spit_file(const std::string &path, const std::string &bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

// A small tmpfs mounted on `dir` for the scope (a full disk for the
// writers' tests; mounting needs root, as in CI: `mounted` says whether it
// worked, errno why not).
#ifdef __linux__
struct SmallTmpfs {
  std::string dir;
  bool mounted = false;
  SmallTmpfs(const std::string &d, const char *size) : dir(d) {
    std::string opts = std::string("size=") + size;
    mounted = mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) == 0;
  }
  ~SmallTmpfs() {
    if (mounted) umount2(dir.c_str(), MNT_DETACH);
  }
  SmallTmpfs(const SmallTmpfs &) = delete;
  SmallTmpfs &operator=(const SmallTmpfs &) = delete;
};
#endif

// Runs `/usr/bin/python3 -c script`, returns (exit status, stdout+stderr).
inline std::pair<int, std::string> run_python(const std::string &script) {
  std::string path = temp_dir() + "/tsd_test_" + std::to_string(getpid()) +
                     "_" + std::to_string(rand()) + ".py";
  FILE *f = fopen(path.c_str(), "w");
  if (!f) return {-1, "cannot write " + path};
  fputs(script.c_str(), f);
  fclose(f);
  std::string cmd = "cd / && /usr/bin/python3 " + path + " 2>&1";
  FILE *p = popen(cmd.c_str(), "r");
  std::string out;
  if (p) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
      out.append(buf, n);
  }
  int rc = p ? pclose(p) : -1;
  remove(path.c_str());
  return {rc, out};
}

inline bool python_torch_available(std::string *why) {
  auto r = run_python("import torch\nprint('ok')\n");
  if (r.first != 0 || r.second.find("ok") == std::string::npos) {
    *why = "/usr/bin/python3 with torch is required (Debian python3-torch): " +
           r.second;
    return false;
  }
  return true;
}

} // namespace tsdtest
