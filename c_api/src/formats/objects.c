/* objects.c — the object model: inert placeholders.
 *
 * A global outside the allow-list (torch_globals.c) is not refused: it
 * becomes a GLOBAL value that only carries its name, and calling it
 * (REDUCE), instantiating it (NEWOBJ, NEWOBJ_EX) or building it (BUILD,
 * APPEND(S), SETITEM(S) on the result) records what Python would have done
 * in a placeholder OBJECT: the class, the constructor arguments, the BUILD
 * state and the items, kept as plain values. Nothing is ever called or
 * imported, and a placeholder is never a tensor or a storage: those come
 * only from the allow-listed rebuild functions and the format's persistent
 * ids. A load that needs a placeholder as a tensor fails like PyTorch's
 * load_state_dict does for any non-tensor, naming the key and the class.
 *
 * Cycles. Python's pickler emits an object's BUILD after its state, and
 * the state may refer back to the object (omegaconf's `_parent`, any
 * parent pointer): the object is then already inside another value when
 * its state arrives. Containers stay frozen and acyclic (pickle_vm.c), but
 * a placeholder accepts its state and items when frozen, so the value graph
 * may have cycles through OBJECT nodes. Code that descends into an object's
 * fields must bound its own walk (depth and node count); nothing else in
 * the library does.
 */
#include <stdio.h>
#include <string.h>

#include "pickle_vm.h"

#define TRY TSD__PK_TRY

/* A module or qualified name: what Python's find_class could look up.
 * Printable (no control characters, no quotes), at most 512 bytes: it is
 * shown in messages and listings. */
static bool name_ok(const char *s, size_t n) {
  if (n == 0 || n > 512) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7F || c == '\'' || c == '"' || c == '\\')
      return false;
  }
  return true;
}

static tsd_status np_on_call(tsd__pk *u, tsd__value *v);
static tsd_status np_on_build(tsd__pk *u, tsd__value *v);

tsd_status tsd__pk_named_global(tsd__pk *u, int64_t id, const char *mod,
                                size_t mlen, const char *name, size_t nlen,
                                tsd__value **out) {
  if (!name_ok(mod, mlen) || !name_ok(name, nlen))
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "global name of %zu+%zu bytes is not a printable "
                        "module and name",
                        mlen, nlen);
  /* "module.name\0<class 'module.name'>\0" */
  size_t full = mlen + 1 + nlen;
  char *s = tsd__pk_alloc(u, full + 1 + 9 + full + 2 + 1);
  if (!s) return tsd__pk_oom(u);
  memcpy(s, mod, mlen);
  s[mlen] = '.';
  memcpy(s + mlen + 1, name, nlen);
  s[full] = '\0';
  char *r = s + full + 1;
  memcpy(r, "<class '", 8);
  memcpy(r + 8, s, full);
  memcpy(r + 8 + full, "'>", 3);
  TRY(tsd__pk_new(u, TSD__V_GLOBAL, out));
  (*out)->u.g.id = id;
  (*out)->u.g.name = s;
  (*out)->u.g.repr = r;
  return TSD_OK;
}

tsd_status tsd__pk_object(tsd__pk *u, tsd__value *cls, tsd__value *args,
                          tsd__value *kwargs, tsd__value **out) {
  if (cls->kind != TSD__V_GLOBAL)
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "the class is a %s, not a global",
                        tsd__pk_kind_name(cls));
  if (args->kind != TSD__V_TUPLE)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "'%s' called with a %s, not a tuple of arguments",
                        cls->u.g.name, tsd__pk_kind_name(args));
  if (kwargs && kwargs->kind != TSD__V_DICT)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "'%s' called with keyword arguments in a %s, not a "
                        "dict",
                        cls->u.g.name, tsd__pk_kind_name(kwargs));
  tsd__value *v = NULL;
  TRY(tsd__pk_new(u, TSD__V_OBJECT, &v));
  v->depth = 1;
  TRY(tsd__pk_adopt(u, v, cls));
  TRY(tsd__pk_adopt(u, v, args));
  if (kwargs) TRY(tsd__pk_adopt(u, v, kwargs));
  v->u.obj.cls = cls;
  v->u.obj.args = args;
  v->u.obj.kwargs = kwargs;
  *out = v;
  return np_on_call(u, v);
}

tsd_status tsd__pk_object_build(tsd__pk *u, tsd__value *obj,
                                tsd__value *state) {
  if (obj->u.obj.state)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "a second BUILD on an object of '%s' (the pickler "
                        "builds each object once)",
                        obj->u.obj.cls->u.g.name);
  /* no check_mutable(): the object may be frozen already (see the top) */
  TRY(tsd__pk_adopt(u, obj, state));
  obj->u.obj.state = state;
  return np_on_build(u, obj);
}

tsd_status tsd__pk_object_items(tsd__pk *u, tsd__value *obj, tsd__vkind kind,
                                tsd__value **out) {
  tsd__value *it = obj->u.obj.items;
  if (!it) {
    TRY(tsd__pk_new(u, kind, &it));
    obj->u.obj.items = it;
  }
  if (it->kind != kind)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "both list items and dict items for an object of '%s'",
                        obj->u.obj.cls->u.g.name);
  *out = it;
  return TSD_OK;
}

/* ---- numpy: plain data, decoded ------------------------------------------- *
 *
 * numpy pickles (numpy/core/numeric.py, multiarray; numpy 2 spells the
 * package numpy._core):
 *   dtype    numpy.dtype(str, False, True) + BUILD (3, byteorder, ...)
 *   scalar   numpy.core.multiarray.scalar(dtype, bytes)
 *   ndarray  numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')
 *            + BUILD (1, shape, dtype, is_fortran, rawdata)
 *            protocol 5: numpy.core.numeric._frombuffer(buf, dtype, shape,
 *            order)
 * A scalar becomes a bool/int/float value that remembers its numpy type (for
 * its repr); an array a tensor over an in-memory copy of its bytes, marked
 * numpy (PyTorch's load_state_dict does not take one as a tensor). A dtype
 * tsd has no tsd_dtype for stays a placeholder. */

/* value.h numbers the numpy scalar types (a value keeps its code). */
enum {
  NP_BOOL = TSD__NP_BOOL,
  NP_INT8 = TSD__NP_INT8,
  NP_INT16 = TSD__NP_INT16,
  NP_INT32 = TSD__NP_INT32,
  NP_INT64 = TSD__NP_INT64,
  NP_UINT8 = TSD__NP_UINT8,
  NP_UINT16 = TSD__NP_UINT16,
  NP_UINT32 = TSD__NP_UINT32,
  NP_UINT64 = TSD__NP_UINT64,
  NP_FLOAT16 = TSD__NP_FLOAT16,
  NP_FLOAT32 = TSD__NP_FLOAT32,
  NP_FLOAT64 = TSD__NP_FLOAT64,
  NP_COMPLEX64 = TSD__NP_COMPLEX64,
  NP_COMPLEX128 = TSD__NP_COMPLEX128,
  NP_COUNT = TSD__NP_COUNT,
};

static const struct {
  const char *code; /* numpy's dtype.str without the byte order */
  int dtype; /* tsd_dtype, or -1 */
} np_types[NP_COUNT] = {
    [NP_BOOL] = {"b1", TSD_BOOL},
    [NP_INT8] = {"i1", TSD_INT8},
    [NP_INT16] = {"i2", TSD_INT16},
    [NP_INT32] = {"i4", TSD_INT32},
    [NP_INT64] = {"i8", TSD_INT64},
    [NP_UINT8] = {"u1", TSD_UINT8},
    [NP_UINT16] = {"u2", TSD_UINT16},
    [NP_UINT32] = {"u4", TSD_UINT32},
    [NP_UINT64] = {"u8", TSD_UINT64},
    [NP_FLOAT16] = {"f2", TSD_FLOAT16},
    [NP_FLOAT32] = {"f4", TSD_FLOAT32},
    [NP_FLOAT64] = {"f8", TSD_FLOAT64},
    [NP_COMPLEX64] = {"c8", TSD_COMPLEX64},
    [NP_COMPLEX128] = {"c16", TSD_COMPLEX128},
};
_Static_assert(NP_COUNT - 1 <= (TSD__VF_NP_MASK >> TSD__VF_NP_SHIFT),
               "numpy scalar codes fit tsd__value.flags");

static bool named(const tsd__value *g, const char *a, const char *b) {
  return g && g->kind == TSD__V_GLOBAL &&
         (strcmp(g->u.g.name, a) == 0 || (b && strcmp(g->u.g.name, b) == 0));
}

static bool is_str(const tsd__value *v, const char *s) {
  return v->kind == TSD__V_STR && strcmp(v->u.s.p, s) == 0;
}

typedef struct np_dtype {
  int code; /* NP_* */
  size_t itemsize;
  size_t unit; /* bytes swapped as one: a complex element's half */
  bool big;    /* big-endian data ('>') */
  bool swap;   /* its byte order is not this machine's: reversed on load */
} np_dtype;

/* A numpy.dtype placeholder: dtype(str, False, True) with BUILD state
 * (3, byteorder, subarray, names, fields, elsize, alignment, flags).
 * false: not a plain dtype tsd decodes (structured, object, datetime ...). */
static bool np_dtype_of(const tsd__value *d, np_dtype *out) {
  if (d->kind != TSD__V_OBJECT || !named(d->u.obj.cls, "numpy.dtype", NULL))
    return false;
  const tsd__value *a = d->u.obj.args, *st = d->u.obj.state;
  if (a->u.seq.len < 1 || a->u.seq.items[0]->kind != TSD__V_STR) return false;
  const char *s = a->u.seq.items[0]->u.s.p;
  int code = 0;
  for (int i = 1; i < NP_COUNT; i++)
    if (strcmp(s, np_types[i].code) == 0) code = i;
  if (!code) return false;
  char order = '|';
  if (st) {
    if (st->kind != TSD__V_TUPLE || st->u.seq.len < 2 ||
        st->u.seq.items[1]->kind != TSD__V_STR ||
        st->u.seq.items[1]->u.s.len != 1)
      return false;
    order = st->u.seq.items[1]->u.s.p[0];
    for (size_t i = 2; i < st->u.seq.len && i < 5; i++)
      if (st->u.seq.items[i]->kind != TSD__V_NONE) return false; /* records */
  }
  out->code = code;
  out->itemsize = tsd_dtype_size((tsd_dtype)np_types[code].dtype);
  out->unit = code == NP_COMPLEX64 || code == NP_COMPLEX128 ? out->itemsize / 2
                                                            : out->itemsize;
  if (order != '<' && order != '>' && order != '=' && order != '|')
    return false;
  out->big = order == '>';
  out->swap = out->big != (bool)TSD__BIG_ENDIAN && out->itemsize > 1;
  return true;
}

static void load_native(uint8_t *dst, const uint8_t *src, size_t n, bool swap) {
  for (size_t i = 0; i < n; i++)
    dst[i] = src[swap ? n - 1 - i : i];
}

/* A numpy scalar tsd keeps as a placeholder gets its type as the class
 * shown, as Python's type(x) is numpy.complex64, not the function that
 * made it: *cls is set, *out stays NULL. */
static tsd_status np_scalar_class(tsd__pk *u, int code, tsd__value **cls) {
  const char *name = tsd__np_code_repr((unsigned)code) + strlen("<class 'numpy.");
  return tsd__pk_named_global(u, 0, "numpy", 5, name, strlen(name) - 2, cls);
}

/* numpy.core.multiarray.scalar(dtype, bytes) -> a bool/int/float value, or
 * (*cls set) a placeholder of the scalar's numpy type. */
static tsd_status np_scalar(tsd__pk *u, const tsd__value *args,
                            tsd__value **out, tsd__value **cls) {
  np_dtype dt;
  if (args->u.seq.len != 2 || !np_dtype_of(args->u.seq.items[0], &dt))
    return TSD_OK; /* stays a placeholder */
  const tsd__value *b = args->u.seq.items[1];
  if (b->kind != TSD__V_BYTES || b->u.s.len != dt.itemsize)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "numpy scalar of %s with %zu byte(s) of data",
                        tsd__np_code_repr((unsigned)dt.code),
                        b->kind == TSD__V_BYTES ? b->u.s.len : (size_t)0);
  /* a complex scalar has no value kind of its own: it stays a placeholder
   * (numpy.core.multiarray.scalar(dtype, bytes), its bytes kept) */
  if (dt.code == NP_COMPLEX64 || dt.code == NP_COMPLEX128)
    return np_scalar_class(u, dt.code, cls);
  uint8_t raw[8] = {0};
  /* raw: little-endian bytes, decoded explicitly (any host byte order) */
  load_native(raw, (const uint8_t *)b->u.s.p, dt.itemsize, dt.big);
  uint64_t x = 0;
  for (size_t k = 8; k-- > 0;)
    x = x << 8 | raw[k];
  tsd__value *v = NULL;
  switch (dt.code) {
  case NP_FLOAT16:
  case NP_FLOAT32:
  case NP_FLOAT64: {
    double f;
    if (dt.code == NP_FLOAT16) {
      f = tsd__half_to_float((uint16_t)x);
    } else if (dt.code == NP_FLOAT32) {
      float g;
      uint32_t bits = (uint32_t)x;
      memcpy(&g, &bits, 4);
      f = g;
    } else {
      memcpy(&f, &x, 8);
    }
    TRY(tsd__pk_new(u, TSD__V_FLOAT, &v));
    v->u.f = f;
    break;
  }
  case NP_BOOL:
    TRY(tsd__pk_new(u, TSD__V_BOOL, &v));
    v->u.i = raw[0] != 0;
    break;
  default: {
    int64_t i;
    size_t n = dt.itemsize;
    bool sign = dt.code >= NP_INT8 && dt.code <= NP_INT64;
    if (sign && n < 8 && (x >> (8 * n - 1)) & 1) x |= ~(uint64_t)0 << (8 * n);
    if (!sign && x > (uint64_t)INT64_MAX) /* beyond int64: a placeholder */
      return np_scalar_class(u, dt.code, cls);
    i = (int64_t)x;
    TRY(tsd__pk_new(u, TSD__V_INT, &v));
    v->u.i = i;
  }
  }
  v->flags = (uint16_t)(v->flags | ((unsigned)dt.code << TSD__VF_NP_SHIFT));
  *out = v;
  return TSD_OK;
}

/* Turns `obj` into a numpy tensor: shape, order, dtype, raw bytes, all
 * checked; the bytes are copied (native byte order) into the arena. */
static tsd_status np_array(tsd__pk *u, tsd__value *obj, const tsd__value *shp,
                           const np_dtype *dt, bool fortran,
                           const tsd__value *raw) {
  const char *what = "numpy.ndarray";
  if (shp->kind != TSD__V_TUPLE)
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "%s shape is a %s, not a tuple",
                        what, tsd__pk_kind_name(shp));
  size_t nd = shp->u.seq.len;
  if (nd > TSD_MAX_NDIM)
    return tsd__pk_fail(u, TSD_ERR_UNSUPPORTED,
                        "%s has %zu dimensions (tsd supports up to %d)", what,
                        nd, TSD_MAX_NDIM);
  uint64_t numel = 1, nbytes;
  for (size_t i = 0; i < nd; i++) {
    const tsd__value *x = shp->u.seq.items[i];
    if (x->kind != TSD__V_INT || x->u.i < 0)
      return tsd__pk_fail(u, TSD_ERR_FORMAT,
                          "%s shape[%zu] is not a non-negative int", what, i);
    if (!tsd__mul_u64(numel, (uint64_t)x->u.i, &numel))
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "%s element count overflows",
                          what);
  }
  if (raw->kind != TSD__V_BYTES ||
      !tsd__mul_u64(numel, dt->itemsize, &nbytes) || nbytes != raw->u.s.len)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "%s of %llu element(s) of %zu byte(s) with %s of "
                        "data",
                        what, (unsigned long long)numel, dt->itemsize,
                        raw->kind == TSD__V_BYTES ? "another length"
                                                  : "no bytes");
  tsd__tensor *t = tsd__pk_alloc(u, sizeof *t);
  tsd__storage *s = tsd__pk_alloc(u, sizeof *s);
  int64_t *arr = tsd__pk_alloc(u, 2 * (nd ? nd : 1) * sizeof *arr);
  uint8_t *mem = dt->swap ? tsd__pk_alloc(u, nbytes ? (size_t)nbytes : 1)
                          : (uint8_t *)raw->u.s.p;
  if (!t || !s || !arr || !mem) return tsd__pk_oom(u);
  if (dt->swap) /* each element, or each half of a complex one */
    for (uint64_t i = 0; i < nbytes / dt->unit; i++)
      load_native(mem + i * dt->unit,
                  (const uint8_t *)raw->u.s.p + i * dt->unit, dt->unit, true);
  s->dtype = (tsd_dtype)np_types[dt->code].dtype;
  s->numel = numel;
  s->nbytes = nbytes;
  s->mem = mem;
  s->key = what;
  t->storage = s;
  t->dtype = s->dtype;
  t->ndim = nd;
  t->shape = arr;
  t->stride = arr + (nd ? nd : 1);
  int64_t st = 1;
  size_t big = 0; /* dimensions longer than 1 */
  for (size_t k = 0; k < nd; k++) {
    size_t i = fortran ? k : nd - 1 - k;
    t->shape[i] = shp->u.seq.items[i]->u.i;
    t->stride[i] = st;
    st *= t->shape[i] ? t->shape[i] : 1;
    if (t->shape[i] > 1) big++;
  }
  t->numel = (int64_t)numel;
  t->contiguous = !fortran || big <= 1 || numel == 0;
  t->numpy = true;
  obj->kind = TSD__V_TENSOR;
  obj->u.tensor = t;
  return TSD_OK;
}

/* Called when a placeholder is made: numpy scalars and protocol 5 arrays
 * are decoded at once; copyreg._reconstructor and numpy's _reconstruct make
 * an instance of their first argument, which is the class to show. */
static tsd_status np_on_call(tsd__pk *u, tsd__value *v) {
  tsd__value *cls = v->u.obj.cls, *args = v->u.obj.args;
  size_t n = args->u.seq.len;
  tsd__value **a = args->u.seq.items;
  if (named(cls, "numpy.core.multiarray.scalar",
            "numpy._core.multiarray.scalar")) {
    tsd__value *s = NULL, *c = NULL;
    TRY(np_scalar(u, args, &s, &c));
    if (c) v->u.obj.cls = c;
    if (s) { /* s is a 16-byte node (pickle_vm.c node_size): its member */
      v->kind = s->kind;
      v->flags = s->flags;
      v->depth = s->depth;
      memcpy(&v->u, &s->u, sizeof s->u.i);
    }
    return TSD_OK;
  }
  if (named(cls, "numpy.core.numeric._frombuffer",
            "numpy._core.numeric._frombuffer")) {
    np_dtype dt;
    if (n != 4 || !np_dtype_of(a[1], &dt) || np_types[dt.code].dtype < 0)
      /* a placeholder of the class it would have built */
      return tsd__pk_named_global(u, 0, "numpy", 5, "ndarray", 7,
                                  &v->u.obj.cls);
    if (a[3]->kind != TSD__V_STR || (!is_str(a[3], "C") && !is_str(a[3], "F")))
      return tsd__pk_fail(u, TSD_ERR_FORMAT,
                          "numpy _frombuffer order is not 'C' or 'F'");
    return np_array(u, v, a[2], &dt, is_str(a[3], "F"), a[0]);
  }
  if ((named(cls, "numpy.core.multiarray._reconstruct",
             "numpy._core.multiarray._reconstruct") ||
       named(cls, "copyreg._reconstructor", "copy_reg._reconstructor")) &&
      n >= 1 && a[0]->kind == TSD__V_GLOBAL)
    v->u.obj.cls = a[0];
  return TSD_OK;
}

/* Called after BUILD: an ndarray made by _reconstruct gets its data. */
static tsd_status np_on_build(tsd__pk *u, tsd__value *v) {
  if (!named(v->u.obj.cls, "numpy.ndarray", NULL)) return TSD_OK;
  const tsd__value *st = v->u.obj.state;
  /* (version 1, shape, dtype, is_fortran, rawdata) */
  if (st->kind != TSD__V_TUPLE || st->u.seq.len != 5)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "numpy.ndarray state is not a 5-tuple (version, "
                        "shape, dtype, is_fortran, rawdata)");
  tsd__value **s = st->u.seq.items;
  if (s[0]->kind != TSD__V_INT || s[0]->u.i != 1)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "numpy.ndarray state version is not 1");
  if (s[3]->kind != TSD__V_BOOL)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "numpy.ndarray is_fortran is a %s, not a bool",
                        tsd__pk_kind_name(s[3]));
  np_dtype dt;
  if (!np_dtype_of(s[2], &dt) || np_types[dt.code].dtype < 0 ||
      s[4]->kind == TSD__V_LIST)
    return TSD_OK; /* object arrays, records, dtypes tsd lacks: placeholder */
  return np_array(u, v, s[1], &dt, s[3]->u.i != 0, s[4]);
}

/* ---- whole pickled models: Module.state_dict from the inert objects ------- *
 *
 * torch.save(model) pickles the module objects: each one's __dict__ is its
 * BUILD state, with `_parameters`, `_buffers`, `_modules` (OrderedDicts),
 * `_non_persistent_buffers_set`, `_state_dict_hooks` ... What
 * Module.state_dict (torch 1.13) builds from them is rebuilt here:
 *   pre-order over `_modules` (None skipped), for each module its
 *   `_parameters` (None skipped, detached: plain tensors), then its
 *   `_buffers` (None and the non-persistent ones skipped), keys prefixed
 *   with the dotted module path; `_metadata[prefix] = {'version': v}`.
 * `_version` is a class attribute, so the pickle does not hold it unless an
 * instance set its own: v is the instance's `_version` if present, else
 * the value torch 1.13 / torchvision declare for the class (below), else 1
 * (Module._version). A subclass defined elsewhere of a versioned class (a
 * custom BatchNorm) is not recognised: its version reads 1.
 * What the pickle cannot show: a class that overrides state_dict,
 * _save_to_state_dict or get_extra_state. What it can: state-dict hooks
 * registered on an instance (`_state_dict_hooks`, 2.x's
 * `_state_dict_pre_hooks`) -- refused, naming the module, since PyTorch
 * would run them. A parameter or buffer that is not a tensor (a placeholder
 * of a tensor subclass such as UninitializedParameter) is refused too. */

static const char *const versioned_2[] = {
    "torch.nn.modules.batchnorm._NormBase",
    "torch.nn.modules.batchnorm._BatchNorm",
    "torch.nn.modules.batchnorm.BatchNorm1d",
    "torch.nn.modules.batchnorm.BatchNorm2d",
    "torch.nn.modules.batchnorm.BatchNorm3d",
    "torch.nn.modules.batchnorm.SyncBatchNorm",
    "torch.nn.modules.batchnorm.LazyBatchNorm1d",
    "torch.nn.modules.batchnorm.LazyBatchNorm2d",
    "torch.nn.modules.batchnorm.LazyBatchNorm3d",
    "torch.nn.modules.instancenorm.InstanceNorm1d",
    "torch.nn.modules.instancenorm.InstanceNorm2d",
    "torch.nn.modules.instancenorm.InstanceNorm3d",
    "torch.nn.modules.instancenorm.LazyInstanceNorm1d",
    "torch.nn.modules.instancenorm.LazyInstanceNorm2d",
    "torch.nn.modules.instancenorm.LazyInstanceNorm3d",
    "torch.nn.intrinsic.qat.modules.conv_fused.ConvBn1d",
    "torch.nn.intrinsic.qat.modules.conv_fused.ConvBn2d",
    "torch.nn.intrinsic.qat.modules.conv_fused.ConvBn3d",
    "torch.nn.intrinsic.qat.modules.conv_fused.ConvBnReLU1d",
    "torch.nn.intrinsic.qat.modules.conv_fused.ConvBnReLU2d",
    "torch.nn.intrinsic.qat.modules.conv_fused.ConvBnReLU3d",
    "torch.ao.nn.quantized.modules.batchnorm.BatchNorm2d",
    "torch.ao.nn.quantized.modules.batchnorm.BatchNorm3d",
    "torch.nn.quantized.modules.batchnorm.BatchNorm2d",
    "torch.nn.quantized.modules.batchnorm.BatchNorm3d",
    "torchvision.models._utils.IntermediateLayerGetter",
    "torchvision.models.densenet._DenseBlock",
    "torchvision.models.mnasnet.MNASNet",
    "torchvision.models.vision_transformer.MLPBlock",
};

static const tsd__value *attr(const tsd__value *obj, const char *name) {
  const tsd__value *st = obj->u.obj.state;
  if (!st || st->kind != TSD__V_DICT) return NULL;
  size_t n = strlen(name);
  for (size_t i = 0; i < st->u.dict.len; i++) {
    const tsd__value *k = st->u.dict.keys[i];
    if (k->kind == TSD__V_STR && k->u.s.len == n && !memcmp(k->u.s.p, name, n))
      return st->u.dict.vals[i];
  }
  return NULL;
}

bool tsd__is_module(const tsd__value *v) {
  if (!v || v->kind != TSD__V_OBJECT) return false;
  const tsd__value *p = attr(v, "_parameters"), *b = attr(v, "_buffers"),
                   *m = attr(v, "_modules");
  return p && b && m && p->kind == TSD__V_DICT && b->kind == TSD__V_DICT &&
         m->kind == TSD__V_DICT;
}

typedef struct msd {
  tsd__arena *a;
  const tsd__limits *lim;
  tsd__value *out, *meta;
  uint64_t budget; /* entries and modules left (limits.max_objects) */
} msd;

static void *msd_alloc(msd *x, size_t n) {
  return tsd__arena_alloc(x->a, n);
}

static tsd_status msd_oom(void) {
  return tsd__err(TSD_ERR_NOMEM, "out of memory recovering a state dict");
}

static tsd__value *msd_str(msd *x, const char *a, size_t na, const char *b,
                           size_t nb) {
  tsd__value *v = msd_alloc(x, sizeof *v);
  char *s = msd_alloc(x, na + nb + 1);
  if (!v || !s) return NULL;
  memcpy(s, a, na);
  memcpy(s + na, b, nb);
  v->kind = TSD__V_STR;
  v->u.s.p = s;
  v->u.s.len = na + nb;
  return v;
}

static tsd_status msd_put(msd *x, tsd__value *d, tsd__value *k, tsd__value *v) {
  if (!k) return msd_oom();
  if (x->budget-- == 0)
    return tsd__err(
        TSD_ERR_LIMIT,
        "the pickled model's state dict has more than %llu "
        "entries (one per byte of the file, at most limits.max_objects)",
        (unsigned long long)x->lim->max_objects);
  if (d->u.dict.len == d->u.dict.cap) {
    size_t cap = d->u.dict.cap ? 2 * d->u.dict.cap : 16;
    tsd__value **ks = msd_alloc(x, cap * sizeof *ks);
    tsd__value **vs = msd_alloc(x, cap * sizeof *vs);
    if (!ks || !vs) return msd_oom();
    if (d->u.dict.len) {
      memcpy(ks, d->u.dict.keys, d->u.dict.len * sizeof *ks);
      memcpy(vs, d->u.dict.vals, d->u.dict.len * sizeof *vs);
    }
    d->u.dict.keys = ks;
    d->u.dict.vals = vs;
    d->u.dict.cap = cap;
  }
  d->u.dict.keys[d->u.dict.len] = k;
  d->u.dict.vals[d->u.dict.len++] = v;
  return TSD_OK;
}

static tsd__value *msd_dict(msd *x, bool ordered) {
  tsd__value *d = msd_alloc(x, sizeof *d);
  if (!d) return NULL;
  d->kind = TSD__V_DICT;
  d->depth = 1;
  if (ordered) d->flags = TSD__VF_ORDERED;
  return d;
}

static tsd_status msd_module_fail(const tsd__value *m, const char *prefix,
                                  size_t plen, const char *why) {
  return tsd__err(TSD_ERR_UNSUPPORTED,
                  "the pickled model cannot give its state dict exactly: "
                  "module '%.*s' (%s) %s",
                  (int)(plen ? plen - 1 : 0), prefix, m->u.obj.cls->u.g.name,
                  why);
}

static bool in_set(const tsd__value *set, const tsd__value *k) {
  if (!set || (set->kind != TSD__V_SET && set->kind != TSD__V_LIST &&
               set->kind != TSD__V_TUPLE))
    return false;
  for (size_t i = 0; i < set->u.seq.len; i++) {
    const tsd__value *e = set->u.seq.items[i];
    if (e->kind == TSD__V_STR && e->u.s.len == k->u.s.len &&
        !memcmp(e->u.s.p, k->u.s.p, k->u.s.len))
      return true;
  }
  return false;
}

/* A tensor's detach(): the same data, not a Parameter. */
static tsd__value *detached(msd *x, const tsd__value *t) {
  if (!t->u.tensor->is_parameter) return TSD__UNCONST(tsd__value *, t);
  tsd__value *v = msd_alloc(x, sizeof *v);
  tsd__tensor *c = msd_alloc(x, sizeof *c);
  if (!v || !c) return NULL;
  *c = *t->u.tensor;
  c->is_parameter = false;
  v->kind = TSD__V_TENSOR;
  v->u.tensor = c;
  return v;
}

/* One module's own entries (_save_to_state_dict) and its _metadata. */
static tsd_status msd_local(msd *x, const tsd__value *m, const char *prefix,
                            size_t plen) {
  static const char *const hooks[] = {"_state_dict_hooks",
                                      "_state_dict_pre_hooks"};
  for (size_t h = 0; h < 2; h++) {
    const tsd__value *d = attr(m, hooks[h]);
    if (d && d->kind == TSD__V_DICT && d->u.dict.len) {
      char why[96];
      snprintf(why, sizeof why,
               "has %zu state-dict hook(s) in %s, which PyTorch would run",
               d->u.dict.len, hooks[h]);
      return msd_module_fail(m, prefix, plen, why);
    }
  }
  int64_t version = 1;
  const tsd__value *iv = attr(m, "_version");
  if (iv && iv->kind == TSD__V_INT) {
    version = iv->u.i;
  } else {
    for (size_t i = 0; i < sizeof versioned_2 / sizeof *versioned_2; i++)
      if (!strcmp(m->u.obj.cls->u.g.name, versioned_2[i])) version = 2;
  }
  tsd__value *ver = msd_dict(x, false), *vv = msd_alloc(x, sizeof *vv);
  if (!ver || !vv) return msd_oom();
  vv->kind = TSD__V_INT;
  vv->u.i = version;
  tsd_status st = msd_put(x, ver, msd_str(x, "version", 7, "", 0), vv);
  if (st == TSD_OK)
    st = msd_put(x, x->meta, msd_str(x, prefix, plen ? plen - 1 : 0, "", 0),
                 ver);
  if (st != TSD_OK) return st;
  const tsd__value *np = attr(m, "_non_persistent_buffers_set");
  for (int pass = 0; pass < 2; pass++) {
    const tsd__value *d = attr(m, pass ? "_buffers" : "_parameters");
    for (size_t i = 0; i < d->u.dict.len; i++) {
      const tsd__value *k = d->u.dict.keys[i], *v = d->u.dict.vals[i];
      if (k->kind != TSD__V_STR)
        return msd_module_fail(m, prefix, plen,
                               "has a tensor name that is "
                               "not a str");
      if (v->kind == TSD__V_NONE || (pass && in_set(np, k))) continue;
      if (v->kind != TSD__V_TENSOR || v->u.tensor->numpy) {
        char why[160];
        snprintf(why, sizeof why, "has %s '%.60s' that is a %s, not a tensor",
                 pass ? "buffer" : "parameter", k->u.s.p,
                 v->kind == TSD__V_OBJECT ? v->u.obj.cls->u.g.name
                                          : "non-tensor");
        return msd_module_fail(m, prefix, plen, why);
      }
      tsd__value *t = detached(x, v);
      if (!t) return msd_oom();
      st =
          msd_put(x, x->out, msd_str(x, prefix, plen, k->u.s.p, k->u.s.len), t);
      if (st != TSD_OK) return st;
    }
  }
  return TSD_OK;
}

typedef struct msd_item {
  const tsd__value *m;
  const char *prefix; /* "" or "a.b." */
  size_t plen;
  uint32_t depth;
} msd_item;

tsd_status tsd__module_state_dict(tsd__arena *a, const tsd__limits *lim,
                                  const tsd__value *root, tsd__value **out) {
  msd x = {a, lim, NULL, NULL, lim->max_objects};
  *out = NULL;
  x.out = msd_dict(&x, true);
  x.meta = msd_dict(&x, true);
  if (!x.out || !x.meta) return msd_oom();
  x.out->u.dict.metadata = x.meta;
  /* pre-order with an explicit stack (no recursion: the depth is the
   * file's); children pushed in reverse so they pop in order */
  size_t cap = 64, n = 0;
  msd_item *stack = msd_alloc(&x, cap * sizeof *stack);
  if (!stack) return msd_oom();
  stack[n++] = (msd_item){root, "", 0, 0};
  while (n) {
    msd_item it = stack[--n];
    tsd_status st = msd_local(&x, it.m, it.prefix, it.plen);
    if (st != TSD_OK) return st;
    const tsd__value *mods = attr(it.m, "_modules");
    for (size_t i = mods->u.dict.len; i-- > 0;) {
      const tsd__value *k = mods->u.dict.keys[i], *c = mods->u.dict.vals[i];
      if (c->kind == TSD__V_NONE) continue;
      if (k->kind != TSD__V_STR || !tsd__is_module(c))
        return msd_module_fail(it.m, it.prefix, it.plen,
                               "has a submodule that is not a pickled "
                               "nn.Module");
      if (it.depth + 1 > lim->max_depth)
        return tsd__err(TSD_ERR_LIMIT,
                        "the pickled model nests modules deeper than %u "
                        "(limits.max_depth)",
                        lim->max_depth);
      if (x.budget-- == 0)
        return tsd__err(
            TSD_ERR_LIMIT,
            "the pickled model has more than %llu modules and "
            "entries (one per byte of the file, at most limits.max_objects)",
            (unsigned long long)lim->max_objects);
      tsd__value *p = msd_str(&x, it.prefix, it.plen, k->u.s.p, k->u.s.len);
      if (n == cap) {
        msd_item *s = msd_alloc(&x, 2 * cap * sizeof *s);
        if (!s) return msd_oom();
        memcpy(s, stack, n * sizeof *s);
        stack = s;
        cap *= 2;
      }
      if (!p) return msd_oom();
      p->u.s.p[p->u.s.len] = '.'; /* room: msd_str allocated len + 1 */
      stack[n++] = (msd_item){c, p->u.s.p, p->u.s.len + 1, it.depth + 1};
    }
  }
  *out = x.out;
  return TSD_OK;
}
