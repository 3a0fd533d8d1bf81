// torchscript.cpp — TorchScript modules as tsd models: the only translation
// unit of tsd that includes LibTorch headers.
//
// A module opened with torch::jit::load is presented to the load engine on
// the same module tree as a C-owned model (model.c): every module of the
// TorchScript module tree (with its class name, so norm layers get their
// rules), every parameter and buffer in state_dict order, each tensor's
// handle holding its at::Tensor. A load writes a CPU, C-contiguous tensor
// directly from the checkpoint (tsd's reader converts with copy_'s rules,
// convert.c); any other tensor (another device, other strides) gets a
// temporary CPU copy of the checkpoint tensor through Tensor::copy_ under
// NoGradGuard, so that device, stride and dtype conversion are LibTorch's.
//
// The C++ border: every entry point runs its body through guarded(), which
// turns every exception (c10::Error, std::exception, anything else) into a
// tsd status and thread-local message. No exception reaches C.
//
// What TorchScript does not keep, and so a TorchScript model cannot know:
//  - persistent=False: a scripted module reports such a buffer as a buffer
//    (in named_buffers and in its own state_dict); tsd_model_set_persistent
//    is the way back to the eager model's answer;
//  - a submodule registered as None in `_modules` (add_module(name, None);
//    not the common `self.downsample = None`, a plain attribute) becomes a
//    NoneType attribute like any other None attribute; in eager PyTorch
//    1.13 its name is in `_modules`, so checkpoint keys under it are
//    ignored, while for tsd they are unexpected;
//  - a buffer registered as None is an attribute of NoneType: it is not in
//    state_dict and its key is unexpected, exactly as if it were absent, so
//    it is not registered at all.
// Parameters registered as None keep their parameter flag (the class type's
// attribute kind) and are registered as TSD_PARAMETER_NONE.
//
// Archive geometry is not trusted: LibTorch's unpickler sizes a storage
// from the element count the pickle declares, not from the record that holds
// its bytes, and sets a tensor's storage offset, sizes and strides on it with
// no bound check at all. A corrupt archive would make at::copy_,
// .contiguous() or our own memcpy read or write outside the storage. So
// before torch::jit::load, prescan() unpickles the archive's pickles with
// LibTorch's own Unpickler (classes as plain objects: no type resolved, no
// code compiled or run) and checks every tensor against the record behind
// it; after the load, every tensor tsd will copy is checked against its
// storage again (check_extent), before any copy in either direction.
#include <torch/csrc/jit/serialization/unpickler.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <unistd.h>

#include "internal.h"
#include "torch_host.h"
#include "tsd_torch.hpp"

// The C core is reached through the table libtsd lends (torch_host.h), never
// by its internal symbols, which libtsd.so does not export: the names below
// are the table's, so the code reads as if it called the C core directly.
namespace {
const tsd__torch_host *host() {
  static const tsd__torch_host *const h = tsd__torch_host_get();
  return h;
}
} // namespace
#define tsd__err (host()->err)
#define tsd__mem_calloc (host()->mem_calloc)
#define tsd__mem_strdup (host()->mem_strdup)
#define tsd__arena_init (host()->arena_init)
#define tsd__arena_alloc (host()->arena_alloc)
#define tsd__strmap_init (host()->strmap_init)
#define tsd__convert (host()->convert)
#define tsd__open_regular (host()->open_regular)
#define tsd__tensor_read (host()->tensor_read)
#define tsd__model_create (host()->model_create)
#define tsd__model_add (host()->model_add)
#define tsd__model_module (host()->model_module)
#define tsd__afile_write (host()->afile_write)
#define tsd__torchscript_check (host()->torchscript_check)
#define tsd__ckpt_val (host()->ckpt_val)
#define tsd__object_class (host()->object_class)
#define tsd__type_repr (host()->type_repr)
#define tsd__checkpoint_new (host()->checkpoint_new)
#define tsd__checkpoint_adopt (host()->checkpoint_adopt)
#define tsd__allocator_check (host()->allocator_check)
#define tsd__value_str (host()->value_str)
#define tsd__value_int (host()->value_int)
#define tsd__value_dict (host()->value_dict)
#define tsd__value_dict_set (host()->value_dict_set)

namespace {

// The two libraries must come from one build (torch_host.h): a table of
// another version or layout is refused before anything of it is used but
// its err, which keeps its place in every version.
tsd_status check_host() {
  const tsd__torch_host *h = host();
  if (h->abi == TSD__TORCH_HOST_ABI && h->version == TSD_VERSION_NUMBER &&
      h->size == sizeof(tsd__torch_host) &&
      h->sizeof_model == sizeof(struct tsd_model) &&
      h->sizeof_checkpoint == sizeof(struct tsd_checkpoint) &&
      h->sizeof_value == sizeof(tsd__value) &&
      h->sizeof_tensor == sizeof(tsd__tensor) &&
      h->sizeof_storage == sizeof(tsd__storage) &&
      h->sizeof_mtensor == sizeof(tsd__mtensor))
    return TSD_OK;
  return h->err(TSD_ERR_UNSUPPORTED,
                "libtsd_torch %d.%d.%d was built with another libtsd than the "
                "one in this process (version %u.%u.%u%s): install both from "
                "one build",
                TSD_VERSION_MAJOR, TSD_VERSION_MINOR, TSD_VERSION_PATCH,
                h->version / 10000,
                h->version / 100 % 100, h->version % 100,
                h->abi == TSD__TORCH_HOST_ABI ? ", another layout" : "");
}

// The model kind's private parts: the module, and one of these per tensor
// (tsd__mtensor.handle).
struct ts_extra;

struct ts_impl {
  torch::jit::Module module;
  // the modules whose class has a set_extra_state method (tsd__module's
  // extra_user points at one of these)
  std::vector<std::unique_ptr<ts_extra>> extras;
};

struct ts_extra {
  torch::jit::Module module;
};

struct ts_tensor {
  at::Tensor tensor;
};

// ---- the C++ border -------------------------------------------------------

// Runs `body` (returning tsd_status) and converts anything it throws into
// the status and message of the calling thread. `op` and `object` (a path,
// a tensor name) name what failed; both are plain C strings so that building
// the message cannot throw outside the try.
template <class F>
tsd_status guarded(const char *op, const char *object, F &&body) noexcept {
  try {
    return body();
  } catch (const c10::Error &e) {
    return tsd__err(TSD_ERR_TORCH, "%s \"%s\": LibTorch: %s", op, object,
                    e.what_without_backtrace());
  } catch (const std::bad_alloc &) {
    return tsd__err(TSD_ERR_NOMEM, "%s \"%s\": out of memory", op, object);
  } catch (const std::exception &e) {
    return tsd__err(TSD_ERR_TORCH, "%s \"%s\": %s", op, object, e.what());
  } catch (...) {
    return tsd__err(TSD_ERR_TORCH, "%s \"%s\": unknown C++ exception", op,
                    object);
  }
}

// ---- dtypes ---------------------------------------------------------------

bool dtype_of(at::ScalarType s, tsd_dtype *out) {
  switch (s) {
  case at::kFloat:
    *out = TSD_FLOAT32;
    return true;
  case at::kDouble:
    *out = TSD_FLOAT64;
    return true;
  case at::kHalf:
    *out = TSD_FLOAT16;
    return true;
  case at::kBFloat16:
    *out = TSD_BFLOAT16;
    return true;
  case at::kChar:
    *out = TSD_INT8;
    return true;
  case at::kShort:
    *out = TSD_INT16;
    return true;
  case at::kInt:
    *out = TSD_INT32;
    return true;
  case at::kLong:
    *out = TSD_INT64;
    return true;
  case at::kByte:
    *out = TSD_UINT8;
    return true;
  case at::kBool:
    *out = TSD_BOOL;
    return true;
  case at::kComplexHalf:
    *out = TSD_COMPLEX32;
    return true;
  case at::kComplexFloat:
    *out = TSD_COMPLEX64;
    return true;
  case at::kComplexDouble:
    *out = TSD_COMPLEX128;
    return true;
  default:
    return false;
  }
}

// Whether LibTorch 1.13 has the dtype (float8 and uint16/32/64 came later).
bool has_scalar(tsd_dtype d) {
  return d <= TSD_BOOL || d == TSD_COMPLEX32 || d == TSD_COMPLEX64 ||
         d == TSD_COMPLEX128;
}

at::ScalarType scalar_of(tsd_dtype d) {
  switch (d) {
  case TSD_FLOAT32:
    return at::kFloat;
  case TSD_FLOAT64:
    return at::kDouble;
  case TSD_FLOAT16:
    return at::kHalf;
  case TSD_BFLOAT16:
    return at::kBFloat16;
  case TSD_INT8:
    return at::kChar;
  case TSD_INT16:
    return at::kShort;
  case TSD_INT32:
    return at::kInt;
  case TSD_INT64:
    return at::kLong;
  case TSD_UINT8:
    return at::kByte;
  case TSD_BOOL:
    return at::kBool;
  case TSD_COMPLEX32:
    return at::kComplexHalf;
  case TSD_COMPLEX64:
    return at::kComplexFloat;
  case TSD_COMPLEX128:
    return at::kComplexDouble;
  default:
    break;
  }
  // Callers pass dtypes model.c and the engine validated.
  throw std::invalid_argument("invalid tsd dtype " + std::to_string(int(d)));
}

// ---- archive geometry ------------------------------------------------------

std::string ints_repr(c10::IntArrayRef v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); i++)
    s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// Checks that strided tensor `t` lies inside `storage_nbytes` bytes: every
// size, stride and the storage offset non-negative (PyTorch makes no
// negative strides), and the last element it reaches, offset +
// sum((size-1)*stride), within the storage, computed without overflow. A
// tensor without elements touches no byte. `what` names the tensor.
tsd_status check_extent(const at::Tensor &t, uint64_t storage_nbytes,
                        const char *path, const std::string &what) {
  const c10::IntArrayRef sizes = t.sizes(), strides = t.strides();
  const int64_t offset = t.storage_offset();
  auto geometry = [&]() {
    return "sizes " + ints_repr(sizes) + ", strides " + ints_repr(strides) +
           ", storage offset " + std::to_string(offset);
  };
  bool empty = false, negative = offset < 0 || sizes.size() != strides.size();
  for (size_t d = 0; d < sizes.size() && d < strides.size(); d++) {
    negative = negative || sizes[d] < 0 || strides[d] < 0;
    empty = empty || sizes[d] == 0;
  }
  if (negative)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: tensor %s has a negative or inconsistent geometry "
                    "(%s): a corrupt archive",
                    path, what.c_str(), geometry().c_str());
  if (empty) return TSD_OK;
  uint64_t last = uint64_t(offset), end = 0;
  bool ok = true;
  for (size_t d = 0; d < sizes.size() && ok; d++) {
    uint64_t step = 0;
    ok = tsd__mul_u64(uint64_t(sizes[d] - 1), uint64_t(strides[d]), &step) &&
         tsd__add_u64(last, step, &last);
  }
  ok = ok && tsd__add_u64(last, 1, &end) &&
       tsd__mul_u64(end, uint64_t(t.element_size()), &end);
  if (!ok || end > storage_nbytes)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: tensor %s reaches %s of its storage, which holds %llu "
                    "bytes (%s): a corrupt archive",
                    path, what.c_str(),
                    ok ? ("byte " + std::to_string(end)).c_str()
                       : "past 2^64 bytes",
                    (unsigned long long)storage_nbytes, geometry().c_str());
  return TSD_OK;
}

// A tensor of the loaded module, checked against the storage LibTorch gave
// it (whose size prescan() checked against the archive's record).
tsd_status check_loaded(const at::Tensor &t, const char *path,
                        const std::string &name) {
  const std::string what = "\"" + name + "\"";
  if (t.layout() != at::kStrided || !t.has_storage())
    return TSD_OK; // refused by the callers: tsd copies only dense tensors
  return check_extent(t, t.storage().nbytes(), path, what);
}

// Restore-type tags name TorchScript types ("Dict[str, __torch__.Foo]"),
// which the prescan does not resolve: an unknown one is Any there, which
// changes nothing it checks.
c10::TypePtr lenient_type(const std::string &s) {
  try {
    return torch::jit::Unpickler::defaultTypeParser(s);
  } catch (const std::exception &) {
    return c10::AnyType::get();
  }
}

// Unpickles `<archive>.pkl` (constants, data) as torch::jit::load would, and
// checks every tensor in it: the storage the pickle declares must fit in the
// record that holds its bytes, and the tensor in its storage. Records are
// read only to learn their size (one at a time: peak memory is the largest
// record); a one-byte marker stands for each, which the unpickler never
// dereferences (it only builds tensors on storages).
tsd_status prescan_pickle(caffe2::serialize::PyTorchStreamReader &reader,
                          const char *path, const std::string &archive,
                          uint64_t version) {
  const std::string pkl = archive + ".pkl";
  if (!reader.hasRecord(pkl))
    return tsd__err(TSD_ERR_FORMAT, "%s: the archive has no %s record", path,
                    pkl.c_str());
  auto rec = reader.getRecord(pkl);
  const char *bytes = static_cast<const char *>(std::get<0>(rec).get());
  const size_t len = std::get<1>(rec);
  size_t pos = 0;
  auto read = [&](char *dst, size_t n) -> size_t {
    n = std::min(n, len - pos);
    if (n) std::memcpy(dst, bytes + pos, n);
    pos += n;
    return n;
  };

  struct record {
    std::string key;
    uint64_t size;
  };
  std::unordered_map<const void *, record> records; // marker -> record
  auto read_record = [&](const std::string &key) -> at::DataPtr {
    const uint64_t size = std::get<1>(reader.getRecord(archive + "/" + key));
    char *marker = new char[1];
    at::DataPtr p(
        marker, marker, [](void *q) { delete[] static_cast<char *>(q); },
        at::kCPU);
    records[marker] = {key, size};
    return p;
  };

  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  std::unordered_map<std::string, c10::ClassTypePtr> classes;
  auto resolve = [&](const c10::QualifiedName &qn) {
    c10::ClassTypePtr &cls = classes[qn.qualifiedName()];
    if (!cls) cls = c10::ClassType::create(qn, cu);
    return c10::StrongTypePtr(cu, cls);
  };
  // An object keeps its BUILD state in its one slot: nothing is run.
  auto load_object = [](const at::StrongTypePtr &type, c10::IValue state) {
    auto obj = c10::ivalue::Object::create(type, 1);
    obj->setSlot(0, std::move(state));
    return obj;
  };
  torch::jit::Unpickler up(read, resolve, load_object, read_record,
                           c10::nullopt, false, lenient_type);
  up.set_version(version);
  c10::IValue root = up.parse_ivalue();

  // Every value reachable from the root; a list may contain itself.
  std::vector<c10::IValue> todo{root};
  std::unordered_set<const void *> seen;
  while (!todo.empty()) {
    c10::IValue v = std::move(todo.back());
    todo.pop_back();
    if (v.isPtrType() && !seen.insert(v.internalToPointer()).second) continue;
    if (v.isTensor()) {
      const at::Tensor &t = v.toTensor();
      if (t.is_sparse()) { // COO: its parts are dense tensors
        todo.push_back(t._indices());
        todo.push_back(t._values());
        continue;
      }
      if (t.layout() != at::kStrided || !t.has_storage())
        return tsd__err(TSD_ERR_UNSUPPORTED,
                        "%s: a tensor of %s has layout %s, whose geometry "
                        "tsd cannot check",
                        path, pkl.c_str(), c10::toString(t.layout()).c_str());
      // Tensors are named by their storage's record ("data/1").
      const c10::Storage &s = t.storage();
      uint64_t have = 0;
      std::string what = "on an empty storage of " + pkl;
      if (s.data()) {
        auto it = records.find(s.data());
        if (it == records.end())
          return tsd__err(TSD_ERR_FORMAT,
                          "%s: a tensor of %s has a storage that no record "
                          "of the archive holds",
                          path, pkl.c_str());
        have = it->second.size;
        what = "on storage \"" + archive + "/" + it->second.key + "\"";
      }
      if (s.nbytes() > have)
        return tsd__err(TSD_ERR_FORMAT,
                        "%s: tensor %s: the storage is declared with %llu "
                        "bytes, its record holds %llu: a corrupt archive",
                        path, what.c_str(), (unsigned long long)s.nbytes(),
                        (unsigned long long)have);
      tsd_status st = check_extent(t, s.nbytes(), path, what);
      if (st) return st;
    } else if (v.isTuple()) {
      for (const c10::IValue &e : v.toTupleRef().elements())
        todo.push_back(e);
    } else if (v.isList()) {
      for (const c10::IValue &e : v.toListRef())
        todo.push_back(e);
    } else if (v.isGenericDict()) {
      for (const auto &e : v.toGenericDict()) {
        todo.push_back(e.key());
        todo.push_back(e.value());
      }
    } else if (v.isObject()) {
      for (const c10::IValue &e : v.toObjectRef().slots())
        todo.push_back(e);
    }
  }
  return TSD_OK;
}

// ---- names ----------------------------------------------------------------

// PyTorch prints `type(m).__name__`. TorchScript qualifies the class with
// its Python module and, when one Python class gives several TorchScript
// types (a Linear with and one without bias), a `___torch_mangle_N`
// namespace: `__torch__.torch.nn.modules.linear.___torch_mangle_3.Linear`.
std::string class_name_of(const torch::jit::Module &m) {
  const auto &qn = m.type()->name();
  if (!qn) return "RecursiveScriptModule";
  std::string q = qn->qualifiedName();
  std::vector<std::string> atoms;
  size_t start = 0;
  for (size_t i = 0; i <= q.size(); i++) {
    if (i == q.size() || q[i] == '.') {
      atoms.push_back(q.substr(start, i - start));
      start = i + 1;
    }
  }
  static const char mangle[] = "___torch_mangle_";
  for (size_t i = atoms.size(); i-- > 0;) {
    std::string &a = atoms[i];
    // A mangle prefixed to the class atom itself (older LibTorch) or a
    // namespace atom of its own (1.13): skip the marker either way.
    if (a.compare(0, sizeof mangle - 1, mangle) == 0) {
      size_t j = sizeof mangle - 1;
      while (j < a.size() && a[j] >= '0' && a[j] <= '9')
        j++;
      if (j < a.size() && a[j] == '.') j++;
      a = a.substr(j);
    }
    if (!a.empty()) return a;
  }
  return q;
}

std::string join(const std::string &prefix, const std::string &name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// ---- the model kind's operations --------------------------------------------

at::Tensor &tensor_of(const tsd__mtensor *t) {
  return static_cast<ts_tensor *>(t->handle)->tensor;
}

tsd_status ts_copy_in(tsd_model *m, tsd__mtensor *t, const tsd_checkpoint *c,
                      const tsd__tensor *src, const tsd__scratch *scratch) {
  (void)m;
  if (t->numel == 0) return TSD_OK;
  return guarded("copying into", t->name, [&]() -> tsd_status {
    torch::NoGradGuard no_grad;
    at::Tensor &dst = tensor_of(t);
    // Straight into the tensor when its memory is exactly what
    // tsd__tensor_read writes: no temporary, no second pass. A read can then
    // only fail on an I/O error (the engine validated the rest), which
    // tsd_load documents as possibly leaving the model partly written.
    if (dst.device().is_cpu() && dst.is_contiguous() &&
        dst.scalar_type() == scalar_of(t->dtype) && !dst.is_conj() &&
        !dst.is_neg())
      return tsd__tensor_read(c, src, t->dtype, dst.data_ptr(), scratch);
    // Otherwise read into a temporary in the checkpoint's own dtype and let
    // copy_ convert (dtype, device, strides), as load_state_dict does. The
    // destination is written only once the read succeeded. A dtype this
    // LibTorch lacks (float8, uint16/32/64) is converted by tsd (c10's
    // rules, convert.c) to the model's dtype first.
    tsd_dtype via = has_scalar(src->dtype) ? src->dtype : t->dtype;
    at::Tensor tmp = at::empty(
        dst.sizes(), at::TensorOptions().dtype(scalar_of(via)).device(at::kCPU));
    tsd_status st = tsd__tensor_read(c, src, via, tmp.data_ptr(), scratch);
    if (st) return st;
    dst.copy_(tmp);
    return TSD_OK;
  });
}

tsd_status ts_read(const tsd_model *m, const tsd__mtensor *t, tsd_dtype dtype,
                   void *dst) {
  (void)m;
  if (t->numel == 0) return TSD_OK;
  return guarded("reading", t->name, [&]() -> tsd_status {
    torch::NoGradGuard no_grad;
    // a dtype this LibTorch lacks: its own dtype, then tsd converts
    tsd_dtype via = has_scalar(dtype) ? dtype : t->dtype;
    at::Tensor cpu = tensor_of(t)
                         .detach()
                         .to(at::kCPU, scalar_of(via))
                         .resolve_conj()
                         .resolve_neg()
                         .contiguous();
    if (via != dtype)
      tsd__convert(dst, dtype, cpu.data_ptr(), via, size_t(t->numel));
    else
      std::memcpy(dst, cpu.data_ptr(), size_t(t->numel) * tsd_dtype_size(dtype));
    return TSD_OK;
  });
}

// LibTorch's file writer writes through a symlink into its target, blocks
// on a FIFO, destroys the old file as it starts and aborts the process on a
// full disk. So the archive is built in memory (where LibTorch's writer only
// throws, on out-of-memory) and handed to tsd's one atomic writer (afile.c):
// the same rules as every other output.
tsd_status ts_save(const tsd_model *m, tsd__afile *out) {
  std::string bytes;
  tsd_status st =
      guarded("saving TorchScript archive", out->name, [&]() -> tsd_status {
        std::ostringstream os;
        static_cast<const ts_impl *>(m->impl)->module.save(os);
        bytes = os.str();
        return TSD_OK;
      });
  if (st) return st;
  return tsd__afile_write(out, bytes.data(), bytes.size());
}

void ts_destroy(tsd_model *m) {
  // Destructors of LibTorch objects do not throw; the guard is for form's
  // sake at a C border.
  (void)guarded("freeing TorchScript model", m->class_name,
                [&]() -> tsd_status {
                  for (size_t i = 0; i < m->n_tensors; i++) {
                    delete static_cast<ts_tensor *>(m->tensors[i].handle);
                    m->tensors[i].handle = nullptr;
                  }
                  delete static_cast<ts_impl *>(m->impl);
                  m->impl = nullptr;
                  return TSD_OK;
                });
}

const tsd__model_ops ts_ops = {ts_copy_in, ts_read, ts_save, ts_destroy,
                               nullptr, nullptr};

// ---- set_extra_state ----------------------------------------------------------
// Module._load_from_state_dict hands state_dict[prefix + "_extra_state"] to
// set_extra_state. A scripted method takes typed arguments: the value (an
// inert tsd__value tree) is converted to the type the method's schema
// declares; what has no such conversion is refused, naming the key.

struct not_convertible {
  std::string why;
};

c10::IValue to_ivalue(const tsd_checkpoint *c, const tsd__value *v,
                      const c10::TypePtr &want, int depth);

[[noreturn]] void refuse(const tsd__value *v, const c10::TypePtr &want) {
  const char *cls = tsd__object_class(v);
  throw not_convertible{std::string("the scripted method takes ") +
                        want->annotation_str() +
                        ", the checkpoint holds " +
                        (cls ? std::string("an object of class ") + cls
                             : std::string(tsd__type_repr(v)))};
}

c10::IValue tensor_ivalue(const tsd_checkpoint *c, const tsd__value *v) {
  const tsd__tensor *t = v->u.tensor;
  if (!has_scalar(t->dtype))
    throw not_convertible{std::string("a tensor of dtype ") +
                          tsd_dtype_name(t->dtype) +
                          ", which this LibTorch lacks"};
  std::vector<int64_t> shape(t->shape, t->shape + t->ndim);
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(scalar_of(t->dtype)));
  if (t->numel > 0) {
    tsd_status st = tsd__tensor_read(c, t, t->dtype, out.data_ptr(), nullptr);
    if (st) throw not_convertible{std::string("reading the tensor: ") +
                                  tsd_last_error()};
  }
  return out;
}

// The type a value has when the method takes Any: scalars and tensors.
c10::TypePtr type_of_value(const tsd__value *v) {
  switch (v->kind) {
  case TSD__V_NONE: return c10::NoneType::get();
  case TSD__V_BOOL: return c10::BoolType::get();
  case TSD__V_INT: return c10::IntType::get();
  case TSD__V_FLOAT: return c10::FloatType::get();
  case TSD__V_STR: return c10::StringType::get();
  case TSD__V_TENSOR: return c10::TensorType::get();
  default: return nullptr;
  }
}

c10::IValue to_ivalue(const tsd_checkpoint *c, const tsd__value *v,
                      const c10::TypePtr &want, int depth) {
  if (depth > 100) throw not_convertible{"the value nests too deep"};
  switch (want->kind()) {
  case c10::TypeKind::OptionalType:
    if (v->kind == TSD__V_NONE) return c10::IValue();
    return to_ivalue(c, v, want->castRaw<c10::OptionalType>()->getElementType(),
                     depth + 1);
  case c10::TypeKind::AnyType: {
    c10::TypePtr t = type_of_value(v);
    if (!t) refuse(v, want);
    return to_ivalue(c, v, t, depth + 1);
  }
  case c10::TypeKind::NoneType:
    if (v->kind == TSD__V_NONE) return c10::IValue();
    break;
  case c10::TypeKind::BoolType:
    if (v->kind == TSD__V_BOOL) return c10::IValue(v->u.i != 0);
    break;
  case c10::TypeKind::IntType:
    if (v->kind == TSD__V_INT || v->kind == TSD__V_BOOL)
      return c10::IValue(int64_t(v->u.i));
    break;
  case c10::TypeKind::FloatType: // Python passes an int where a float goes
    if (v->kind == TSD__V_FLOAT) return c10::IValue(v->u.f);
    if (v->kind == TSD__V_INT) return c10::IValue(double(v->u.i));
    break;
  case c10::TypeKind::StringType:
    if (v->kind == TSD__V_STR)
      return c10::IValue(std::string(v->u.s.p, v->u.s.len));
    break;
  case c10::TypeKind::TensorType:
    if (v->kind == TSD__V_TENSOR) return tensor_ivalue(c, v);
    break;
  case c10::TypeKind::ListType:
    if (v->kind == TSD__V_LIST || v->kind == TSD__V_TUPLE) {
      const c10::TypePtr &elem = want->castRaw<c10::ListType>()->getElementType();
      c10::impl::GenericList list(elem);
      for (size_t i = 0; i < v->u.seq.len; i++)
        list.push_back(to_ivalue(c, v->u.seq.items[i], elem, depth + 1));
      return list;
    }
    break;
  case c10::TypeKind::TupleType:
    if (v->kind == TSD__V_TUPLE || v->kind == TSD__V_LIST) {
      const auto &elems = want->castRaw<c10::TupleType>()->elements();
      if (elems.size() != v->u.seq.len) break;
      std::vector<c10::IValue> items;
      for (size_t i = 0; i < elems.size(); i++)
        items.push_back(to_ivalue(c, v->u.seq.items[i], elems[i], depth + 1));
      return c10::ivalue::Tuple::create(std::move(items));
    }
    break;
  case c10::TypeKind::DictType:
    if (v->kind == TSD__V_DICT) {
      const auto *dt = want->castRaw<c10::DictType>();
      c10::impl::GenericDict dict(dt->getKeyType(), dt->getValueType());
      for (size_t i = 0; i < v->u.dict.len; i++)
        dict.insert_or_assign(
            to_ivalue(c, v->u.dict.keys[i], dt->getKeyType(), depth + 1),
            to_ivalue(c, v->u.dict.vals[i], dt->getValueType(), depth + 1));
      return dict;
    }
    break;
  default:
    break;
  }
  refuse(v, want);
}

tsd_status ts_set_extra(void *user, const char *key, const tsd_checkpoint *c,
                        size_t index) {
  auto *ex = static_cast<ts_extra *>(user);
  const tsd__value *v = tsd__ckpt_val(c, index);
  if (!v) return tsd__err(TSD_ERR_INVALID_ARG, "no entry %zu", index);
  return guarded("set_extra_state of", key, [&]() -> tsd_status {
    torch::NoGradGuard no_grad;
    torch::jit::Method method = ex->module.get_method("set_extra_state");
    const auto &args = method.function().getSchema().arguments();
    if (args.size() != 2)
      return tsd__err(TSD_ERR_UNSUPPORTED,
                      "set_extra_state of \"%s\" takes %zu arguments, not "
                      "one",
                      key, args.size() ? args.size() - 1 : 0);
    c10::IValue arg;
    try {
      arg = to_ivalue(c, v, args[1].type(), 0);
    } catch (const not_convertible &e) {
      return tsd__err(TSD_ERR_UNSUPPORTED, "%s", e.why.c_str());
    }
    method({std::move(arg)});
    return TSD_OK;
  });
}

// ---- opening --------------------------------------------------------------

tsd_status add_tensor(tsd_model *m, const std::string &name,
                      tsd_tensor_role role, const at::Tensor *t,
                      const char *path) {
  if (!t)
    return tsd__model_add(m, name.c_str(), TSD_PARAMETER_NONE, TSD_FLOAT32, 0,
                          nullptr, nullptr, nullptr, nullptr);
  tsd_dtype dtype;
  if (!dtype_of(t->scalar_type(), &dtype))
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: tensor \"%s\" has dtype %s, which tsd does not "
                    "support",
                    path, name.c_str(), c10::toString(t->scalar_type()));
  if (t->layout() != at::kStrided || t->is_quantized())
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: tensor \"%s\" is not a dense strided tensor", path,
                    name.c_str());
  tsd_status st = check_loaded(*t, path, name);
  if (st) return st;
  std::vector<int64_t> shape(t->sizes().begin(), t->sizes().end());
  if (shape.size() > TSD_MAX_NDIM)
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: tensor \"%s\" has %zu dimensions (at most %d)", path,
                    name.c_str(), shape.size(), TSD_MAX_NDIM);
  auto handle = std::make_unique<ts_tensor>();
  handle->tensor = *t;
  st = tsd__model_add(m, name.c_str(), role, dtype, shape.size(), shape.data(),
                      nullptr, handle.get(), nullptr);
  if (st == TSD_OK) handle.release(); // the model owns it now (destroy)
  return st;
}

// state_dict order (module.py, _save_to_state_dict): a module's parameters,
// then its buffers, then each child. The class type's attribute slots keep
// the order of `_parameters`, `_buffers` and `_modules`, and their kind.
// Recursion is fine: a TorchScript archive is trusted input (it is code), its
// depth is the model author's.
tsd_status walk(tsd_model *m, const torch::jit::Module &mod,
                const std::string &prefix, const char *path) {
  std::string type = class_name_of(mod);
  size_t mi = 0;
  tsd_status st = tsd__model_module(m, prefix.c_str(), type.c_str(), -1, &mi);
  if (st) return st;
  if (mod.find_method("set_extra_state")) {
    // the class overrides set_extra_state (exported to TorchScript)
    auto *impl = static_cast<ts_impl *>(m->impl);
    impl->extras.push_back(std::make_unique<ts_extra>(ts_extra{mod}));
    m->modules[mi].extra_fn = ts_set_extra;
    m->modules[mi].extra_user = impl->extras.back().get();
  }
  const c10::ClassTypePtr &cls = mod.type();
  const auto &obj = mod._ivalue();
  const size_t n = cls->numAttributes();
  for (size_t i = 0; i < n && !st; i++) {
    if (!cls->is_parameter(i)) continue;
    const c10::IValue &v = obj->getSlot(i);
    std::string name = join(prefix, cls->getAttributeName(i));
    if (v.isTensor()) {
      at::Tensor t = v.toTensor();
      st = add_tensor(m, name, TSD_PARAMETER, &t, path);
    } else if (v.isNone()) {
      st = add_tensor(m, name, TSD_PARAMETER_NONE, nullptr, path);
    } else {
      st = tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: parameter \"%s\" is a %s, not a tensor", path,
                    name.c_str(), v.tagKind().c_str());
    }
  }
  for (size_t i = 0; i < n && !st; i++) {
    if (!cls->is_buffer(i)) continue;
    const c10::IValue &v = obj->getSlot(i);
    if (!v.isTensor()) continue; // a None buffer: not in state_dict
    at::Tensor t = v.toTensor();
    st = add_tensor(m, join(prefix, cls->getAttributeName(i)), TSD_BUFFER, &t,
                    path);
  }
  if (st) return st;
  for (const auto &child : mod.named_children()) {
    st = walk(m, child.value, join(prefix, child.name), path);
    if (st) return st;
  }
  return TSD_OK;
}

// The device, checked before anything is loaded onto it: CUDA must exist on
// this machine (a CPU-only LibTorch would fail deep inside the load). Other
// device types (mps, xla, ...) are left to torch::jit::load, which refuses
// those this LibTorch does not support.
tsd_status parse_device(const char *device, c10::Device *out) {
  try {
    *out = c10::Device(std::string(device));
  } catch (const c10::Error &e) {
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "device \"%s\" is not a device name LibTorch knows "
                    "(\"cpu\", \"cuda\", \"cuda:1\", ...): %s",
                    device, e.what_without_backtrace());
  }
  // A meta tensor has a shape and no data: a load would "succeed" and keep
  // nothing, a save would write no weights.
  if (out->is_meta())
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "device \"%s\": meta tensors hold no data to load into",
                    device);
  if (out->is_cuda()) {
    if (!torch::cuda::is_available())
      return tsd__err(TSD_ERR_INVALID_ARG,
                      "device \"%s\" is not available: no CUDA device (or "
                      "this LibTorch was built without CUDA)",
                      device);
    size_t count = torch::cuda::device_count();
    if (out->has_index() && size_t(out->index()) >= count)
      return tsd__err(TSD_ERR_INVALID_ARG,
                      "device \"%s\" is not available: %zu CUDA device(s)",
                      device, count);
  }
  return TSD_OK;
}

// Before torch::jit::load: a missing file is an I/O error, and a file that
// is not a TorchScript archive (a torch.save checkpoint, random bytes) says
// so instead of LibTorch's "constants.pkl: file not found".
tsd_status check_archive(const char *path) {
  // Non-blocking and by type first: a FIFO, device or directory is refused
  // at once, before LibTorch opens the path and would wait on it.
  int fd;
  if (tsd_status st = tsd__open_regular(path, &fd, nullptr)) return st;
  close(fd);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(
        std::string(path));
  } catch (const c10::Error &e) {
    return tsd__err(TSD_ERR_FORMAT,
                    "%s is not a TorchScript archive (torch.jit.save output): "
                    "not a zip archive LibTorch can read (%s)",
                    path, e.what_without_backtrace());
  }
  // torch.jit.save writes constants.pkl and code/; torch.save writes neither.
  if (!reader->hasRecord("constants.pkl"))
    return tsd__err(TSD_ERR_FORMAT,
                    "%s is not a TorchScript archive (torch.jit.save output): "
                    "a zip archive without constants.pkl, such as a torch.save "
                    "checkpoint (open those with tsd_checkpoint_open)",
                    path);
  // tsd's own reader first: LibTorch's unpickler trusts the lengths in a
  // pickle (a 3 GB string length makes it allocate 3 GB) and the sizes in
  // persistent ids; tsd's restricted unpickler bounds them all.
  tsd_status st = tsd__torchscript_check(path);
  if (st) return st;
  // Then the pickles as torch::jit::load reads them, in its order.
  st = prescan_pickle(*reader, path, "constants", reader->version());
  if (!st) st = prescan_pickle(*reader, path, "data", reader->version());
  return st;
}

// A model over `module` (a handle: the model shares the module's object, so
// a load writes the tensors the caller's own handles see). `what` names it
// in messages (the archive's path).
tsd_status model_of(tsd_model **out, const torch::jit::Module &module,
                    const char *what, const tsd_allocator *al) {
  auto impl = std::make_unique<ts_impl>();
  impl->module = module;
  std::string cls = class_name_of(impl->module);

  tsd_model *raw = nullptr;
  tsd_status st = tsd__model_create(&raw, cls.c_str(), &ts_ops, impl.get(), al);
  if (st) return st;
  impl.release(); // the model owns it now: tsd_model_free -> ts_destroy
  std::unique_ptr<tsd_model, void (*)(tsd_model *)> m(raw, tsd_model_free);
  if ((st = walk(m.get(), static_cast<ts_impl *>(raw->impl)->module, "", what)))
    return st;
  *out = m.release();
  return TSD_OK;
}

// The options of the two opens (NULL: the defaults) into *o: a version the
// library does not know is refused, as every options struct's.
tsd_status tsd__torchscript_options(tsd_torchscript_options *o,
                                    const tsd_torchscript_options *options,
                                    const char *fn) {
  if (!options) return TSD_OK;
  if (options->version < 1 ||
      options->version > TSD_TORCHSCRIPT_OPTIONS_VERSION)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "%s: options->version is %u, expected 1 to %d "
                    "(TSD_TORCHSCRIPT_OPTIONS_INIT)",
                    fn, options->version, TSD_TORCHSCRIPT_OPTIONS_VERSION);
  *o = *options;
  return tsd__allocator_check(o->allocator, fn);
}

tsd_status open_impl(tsd_model **out, const char *path, const char *device,
                     const tsd_allocator *al) {
  c10::Device dev(c10::kCPU);
  tsd_status st = parse_device(device, &dev);
  if (st) return st;
  if ((st = check_archive(path))) return st;
  return model_of(out, torch::jit::load(std::string(path), dev), path, al);
}

// ---- a TorchScript archive as a checkpoint
// ------------------------------------

// What Python's `torch.jit.load(path).state_dict()` holds: the tensors of
// every module (parameters, then buffers, then children; None skipped) and
// a `_metadata` entry per module. A scripted module's `_version` is
// nn.Module's, 1, for every module (BatchNorm's 2 is a Python class
// attribute TorchScript does not keep): the norm rules then see version 1,
// not None, which matters for _InstanceNorm's (it applies only to None).
struct named_tensor {
  std::string name;
  at::Tensor tensor;
  bool is_parameter;
};

void collect(const torch::jit::Module &mod, const std::string &prefix,
             std::vector<named_tensor> *tensors,
             std::vector<std::string> *modules) {
  modules->push_back(prefix);
  const c10::ClassTypePtr &cls = mod.type();
  const auto &obj = mod._ivalue();
  const size_t n = cls->numAttributes();
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < n; i++) {
      bool want = pass == 0 ? cls->is_parameter(i) : cls->is_buffer(i);
      const c10::IValue &v = obj->getSlot(i);
      if (!want || !v.isTensor()) continue;
      tensors->push_back(
          {join(prefix, cls->getAttributeName(i)), v.toTensor(), pass == 0});
    }
  }
  for (const auto &child : mod.named_children())
    collect(child.value, join(prefix, child.name), tensors, modules);
}

struct ckpt_builder {
  tsd_checkpoint *c;
  const char *path;

  template <class T> T *alloc(size_t n) {
    void *p = tsd__arena_alloc(&c->arena, n * sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T *>(p);
  }
  // The value builders of value.h, out of memory thrown.
  tsd__value *ok(tsd__value *v) {
    if (!v) throw std::bad_alloc();
    return v;
  }
  tsd__value *value(tsd__vkind kind) {
    return ok(host()->value_new(&c->arena, static_cast<int>(kind)));
  }
  tsd__value *str(const std::string &s) {
    return ok(tsd__value_str(&c->arena, s.data(), s.size()));
  }
  tsd__value *dict(size_t n) {
    return ok(tsd__value_dict(&c->arena, n, true));
  }
  void set(tsd__value *d, tsd__value *k, tsd__value *v) {
    tsd__value_dict_set(d, k, v);
  }

  // A tensor value whose storage is an in-memory copy of `t` (CPU,
  // C-contiguous).
  tsd_status tensor(const named_tensor &nt, tsd__value **out) {
    tsd_dtype dtype;
    const at::Tensor &src = nt.tensor;
    if (!dtype_of(src.scalar_type(), &dtype))
      return tsd__err(TSD_ERR_UNSUPPORTED,
                      "%s: tensor \"%s\" has dtype %s, which tsd does not "
                      "support",
                      path, nt.name.c_str(), c10::toString(src.scalar_type()));
    if (src.layout() != at::kStrided || src.is_quantized())
      return tsd__err(TSD_ERR_UNSUPPORTED,
                      "%s: tensor \"%s\" is not a dense strided tensor", path,
                      nt.name.c_str());
    if (size_t(src.dim()) > TSD_MAX_NDIM)
      return tsd__err(TSD_ERR_UNSUPPORTED,
                      "%s: tensor \"%s\" has %lld dimensions (at most %d)",
                      path, nt.name.c_str(), (long long)src.dim(),
                      TSD_MAX_NDIM);
    tsd_status st = check_loaded(src, path, nt.name);
    if (st) return st;
    at::Tensor cpu =
        src.detach().to(at::kCPU).resolve_conj().resolve_neg().contiguous();
    const size_t ndim = size_t(cpu.dim());
    const uint64_t numel = uint64_t(cpu.numel());
    const uint64_t nbytes = numel * tsd_dtype_size(dtype); // LibTorch's own
    tsd__storage *s = alloc<tsd__storage>(1);
    tsd__tensor *t = alloc<tsd__tensor>(1);
    std::memset(s, 0, sizeof *s);
    std::memset(t, 0, sizeof *t);
    uint8_t *mem = alloc<uint8_t>(nbytes ? size_t(nbytes) : 1);
    if (nbytes) std::memcpy(mem, cpu.data_ptr(), size_t(nbytes));
    s->dtype = dtype;
    s->numel = numel;
    s->nbytes = nbytes;
    s->mem = mem;
    s->key = str(nt.name)->u.s.p;
    t->storage = s;
    t->dtype = dtype;
    t->ndim = ndim;
    t->shape = alloc<int64_t>(ndim + 1);
    t->stride = alloc<int64_t>(ndim + 1);
    int64_t acc = 1; // PyTorch's contiguous strides: size-0 dims count as 1
    for (size_t d = ndim; d-- > 0;) {
      t->shape[d] = cpu.size(int64_t(d));
      t->stride[d] = acc;
      if (t->shape[d] > 1) acc *= t->shape[d];
    }
    t->numel = int64_t(numel);
    t->is_parameter = nt.is_parameter;
    t->contiguous = true;
    tsd__value *v = value(TSD__V_TENSOR);
    v->u.tensor = t;
    *out = v;
    return TSD_OK;
  }
};

tsd_status ckpt_impl(tsd_checkpoint **out, const char *path,
                     const tsd_allocator *al) {
  tsd_status st = check_archive(path);
  if (st) return st;
  torch::jit::Module module = torch::jit::load(std::string(path), at::kCPU);
  std::vector<named_tensor> tensors;
  std::vector<std::string> modules;
  collect(module, "", &tensors, &modules);

  // Messages about the checkpoint name its file.
  tsd_checkpoint *raw = nullptr;
  if ((st = tsd__checkpoint_new(&raw, path, al))) return st;
  std::unique_ptr<tsd_checkpoint, void (*)(tsd_checkpoint *)> c(
      raw, tsd_checkpoint_free);

  ckpt_builder b{raw, path};
  tsd__value *root = b.dict(tensors.size());
  std::vector<tsd__storage *> storages;
  for (const named_tensor &nt : tensors) {
    tsd__value *v = nullptr;
    if ((st = b.tensor(nt, &v))) return st;
    b.set(root, b.str(nt.name), v);
    storages.push_back(v->u.tensor->storage);
  }
  tsd__value *meta = b.dict(modules.size());
  for (const std::string &prefix : modules) {
    tsd__value *entry = b.dict(1);
    b.set(entry, b.str("version"), b.ok(tsd__value_int(&raw->arena, 1)));
    b.set(meta, b.str(prefix), entry);
  }
  root->u.dict.metadata = meta;
  tsd__parsed p = {};
  p.root = root;
  p.storages = b.alloc<tsd__storage *>(storages.size() + 1);
  std::copy(storages.begin(), storages.end(), p.storages);
  p.n_storages = storages.size();
  // Builds the view of the root dict; out of memory is kept as its status.
  (void)tsd__checkpoint_adopt(raw, &p);
  if (raw->view_status != TSD_OK)
    return tsd__err(raw->view_status, "%s: %s", path,
                    raw->view_error ? raw->view_error
                                    : "cannot build the checkpoint view");
  *out = c.release();
  return TSD_OK;
}

} // namespace

extern "C" {

// The TorchScript functions of tsd.h: libtsd_torch's, not libtsd's (the
// pure-C build's stand-ins are shim/torchscript_stub.c).

TSD_API int tsd_has_torch(void) {
  return 1;
}

// tsd_model_open_torchscript has checked the arguments.
tsd_status tsd__torchscript_open(tsd_model **out, const char *path,
                                 const char *device, const tsd_allocator *al) {
  return guarded("opening TorchScript archive", path,
                 [&]() { return open_impl(out, path, device, al); });
}

TSD_API tsd_status tsd_model_open_torchscript(
    tsd_model **out, const char *path, const tsd_torchscript_options *options) {
  static const char fn[] = "tsd_model_open_torchscript";
  if (tsd_status st = check_host()) return st;
  if (!out) return tsd__err(TSD_ERR_INVALID_ARG, "%s: out is NULL", fn);
  *out = nullptr;
  if (!path) return tsd__err(TSD_ERR_INVALID_ARG, "%s: path is NULL", fn);
  tsd_torchscript_options o = TSD_TORCHSCRIPT_OPTIONS_INIT;
  if (tsd_status st = tsd__torchscript_options(&o, options, fn)) return st;
  return tsd__torchscript_open(out, path, o.device ? o.device : "cpu",
                               o.allocator);
}

TSD_API tsd_status
tsd_checkpoint_open_torchscript(tsd_checkpoint **out, const char *path,
                                const tsd_torchscript_options *options) {
  static const char fn[] = "tsd_checkpoint_open_torchscript";
  if (tsd_status st = check_host()) return st;
  if (!out) return tsd__err(TSD_ERR_INVALID_ARG, "%s: out is NULL", fn);
  *out = nullptr;
  if (!path) return tsd__err(TSD_ERR_INVALID_ARG, "%s: path is NULL", fn);
  tsd_torchscript_options o = TSD_TORCHSCRIPT_OPTIONS_INIT;
  if (tsd_status st = tsd__torchscript_options(&o, options, fn)) return st;
  if (o.device && strcmp(o.device, "cpu") != 0)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "%s: options->device is \"%s\": a checkpoint's tensors "
                    "are read to CPU memory (NULL or \"cpu\")",
                    fn, o.device);
  return guarded("opening TorchScript archive", path,
                 [&]() { return ckpt_impl(out, path, o.allocator); });
}

// shim/tsd_torch.hpp: the module behind a model, and a model over a module.

TSD_API tsd_status tsd_torch_model_module(torch::jit::Module *out,
                                          const tsd_model *model) {
  if (tsd_status st = check_host()) return st;
  if (!out || !model)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_torch_model_module: %s is NULL",
                    out ? "model" : "out");
  // Only models of this library's own kind hold a module; a C-owned model
  // or tsd_model_open_torchscript_state's read-only tree does not.
  if (model->ops != &ts_ops || !model->impl)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_torch_model_module: model \"%s\" is not a "
                    "TorchScript model of libtsd_torch (tsd_model_open_"
                    "torchscript or tsd_torch_model_from_module)",
                    model->class_name ? model->class_name : "");
  return guarded("getting the module of", model->class_name, [&]() {
    *out = static_cast<const ts_impl *>(model->impl)->module;
    return TSD_OK;
  });
}

TSD_API tsd_status tsd_torch_model_from_module(tsd_model **out,
                                               const torch::jit::Module *module) {
  if (tsd_status st = check_host()) return st;
  if (!out)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_torch_model_from_module: out is NULL");
  *out = nullptr;
  if (!module)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_torch_model_from_module: module is NULL");
  return guarded("using TorchScript module", "(the caller's)", [&]() {
    std::string what = "module " + class_name_of(*module);
    return model_of(out, *module, what.c_str(), nullptr);
  });
}

} // extern "C"
