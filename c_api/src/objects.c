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

/* ---- outside the unpickler ------------------------------------------------
 */

const char *tsd__object_class(const tsd__value *v) {
  return v && v->kind == TSD__V_OBJECT ? v->u.obj.cls->u.g.name : NULL;
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

enum {
  NP_BOOL = 1,
  NP_INT8,
  NP_INT16,
  NP_INT32,
  NP_INT64,
  NP_UINT8,
  NP_UINT16,
  NP_UINT32,
  NP_UINT64,
  NP_FLOAT16,
  NP_FLOAT32,
  NP_FLOAT64,
  NP_COUNT
};

static const struct {
  const char *code; /* numpy's dtype.str without the byte order */
  const char *repr;
  int dtype; /* tsd_dtype, or -1 */
} np_types[NP_COUNT] = {
    [NP_BOOL] = {"b1", "<class 'numpy.bool_'>", TSD_BOOL},
    [NP_INT8] = {"i1", "<class 'numpy.int8'>", TSD_INT8},
    [NP_INT16] = {"i2", "<class 'numpy.int16'>", TSD_INT16},
    [NP_INT32] = {"i4", "<class 'numpy.int32'>", TSD_INT32},
    [NP_INT64] = {"i8", "<class 'numpy.int64'>", TSD_INT64},
    [NP_UINT8] = {"u1", "<class 'numpy.uint8'>", TSD_UINT8},
    [NP_UINT16] = {"u2", "<class 'numpy.uint16'>", -1},
    [NP_UINT32] = {"u4", "<class 'numpy.uint32'>", -1},
    [NP_UINT64] = {"u8", "<class 'numpy.uint64'>", -1},
    [NP_FLOAT16] = {"f2", "<class 'numpy.float16'>", TSD_FLOAT16},
    [NP_FLOAT32] = {"f4", "<class 'numpy.float32'>", TSD_FLOAT32},
    [NP_FLOAT64] = {"f8", "<class 'numpy.float64'>", TSD_FLOAT64},
};

const char *tsd__np_scalar_repr(const tsd__value *v) {
  if (v->kind != TSD__V_BOOL && v->kind != TSD__V_INT &&
      v->kind != TSD__V_FLOAT)
    return NULL;
  unsigned c = (v->flags & TSD__VF_NP_MASK) >> TSD__VF_NP_SHIFT;
  return c && c < NP_COUNT ? np_types[c].repr : NULL;
}

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
  bool swap; /* big-endian data */
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
  out->itemsize = tsd_dtype_size((
      tsd_dtype)(np_types[code].dtype >= 0 ? np_types[code].dtype : TSD_INT64));
  if (code == NP_UINT16) out->itemsize = 2;
  if (code == NP_UINT32) out->itemsize = 4;
  if (order != '<' && order != '>' && order != '=' && order != '|')
    return false;
  out->swap = order == '>' && out->itemsize > 1;
  return true;
}

static void load_native(uint8_t *dst, const uint8_t *src, size_t n, bool swap) {
  for (size_t i = 0; i < n; i++)
    dst[i] = src[swap ? n - 1 - i : i];
}

/* numpy.core.multiarray.scalar(dtype, bytes) -> a bool/int/float value. */
static tsd_status np_scalar(tsd__pk *u, const tsd__value *args,
                            tsd__value **out) {
  np_dtype dt;
  if (args->u.seq.len != 2 || !np_dtype_of(args->u.seq.items[0], &dt))
    return TSD_OK; /* stays a placeholder */
  const tsd__value *b = args->u.seq.items[1];
  if (b->kind != TSD__V_BYTES || b->u.s.len != dt.itemsize)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "numpy scalar of %s with %zu byte(s) of data",
                        np_types[dt.code].repr,
                        b->kind == TSD__V_BYTES ? b->u.s.len : (size_t)0);
  uint8_t raw[8] = {0};
  load_native(raw, (const uint8_t *)b->u.s.p, dt.itemsize, dt.swap);
  uint64_t x = 0;
  memcpy(&x, raw, 8);
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
      memcpy(&g, raw, 4);
      f = g;
    } else {
      memcpy(&f, raw, 8);
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
    if (!sign && x > (uint64_t)INT64_MAX) return TSD_OK; /* placeholder */
    i = (int64_t)x;
    TRY(tsd__pk_new(u, TSD__V_INT, &v));
    v->u.i = i;
  }
  }
  v->flags |= (unsigned)dt.code << TSD__VF_NP_SHIFT;
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
  if (dt->swap)
    for (uint64_t i = 0; i < numel; i++)
      load_native(mem + i * dt->itemsize,
                  (const uint8_t *)raw->u.s.p + i * dt->itemsize, dt->itemsize,
                  true);
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
    tsd__value *s = NULL;
    TRY(np_scalar(u, args, &s));
    if (s) *v = *s;
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
