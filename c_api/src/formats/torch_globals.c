/* torch_globals.c — what the globals in a torch.save pickle mean.
 *
 * The allow-list (in the spirit of torch/_weights_only_unpickler.py's
 * _get_allowed_globals) and what calling (REDUCE / NEWOBJ) or building
 * (BUILD) each allowed global does: torch's rebuild functions, storages,
 * OrderedDict, set, bytes. Everything else is refused. The generic machine
 * is pickle_vm.c; the interface between the two is pickle_vm.h.
 */
#include <stdio.h>
#include <string.h>

#include "pickle_vm.h"

#define TRY TSD__PK_TRY

enum {
  G_NOT_ALLOWED = 0, /* a placeholder's class or function (objects.c) */
  G_ORDERED_DICT,
  G_REBUILD_TENSOR_V2,
  G_REBUILD_TENSOR,
  G_REBUILD_PARAMETER,
  G_REBUILD_PARAMETER_WITH_STATE,
  G_REBUILD_FROM_TYPE_V2,
  G_TENSOR,
  G_PARAMETER,
  G_SIZE,
  G_CODECS_ENCODE,
  G_SET,
  G_FROZENSET,
  G_BYTES,
  G_REBUILD_TENSOR_V3,
  G_DEVICE,
  G_UNTYPED_STORAGE,
  G_REBUILD_QTENSOR,
  G_REBUILD_SPARSE,
  G_GET_LAYOUT,
  G_LAYOUT_BASE = 50,   /* + index in layouts[] */
  G_QSCHEME_BASE = 70,  /* + index in qschemes[] */
  G_STORAGE_BASE = 100, /* + tsd_dtype */
  G_QSTORAGE_BASE = 150 /* + tsd_dtype of the bytes (qint8: int8) */
};

/* torch.layout and torch.qscheme objects pickle as globals torch.<name>. */
static const char *const layouts[] = {"strided",    "sparse_coo", "sparse_csr",
                                      "sparse_csc", "sparse_bsr", "sparse_bsc"};
static const char *const qschemes[] = {
    "per_tensor_affine", "per_channel_affine", "per_tensor_symmetric",
    "per_channel_symmetric", "per_channel_affine_float_qparams"};

typedef struct global_entry {
  const char *module, *name;
  int id;
} global_entry;

/* The allow-list. Protocol 2 spells builtins as __builtin__ (pickle's
 * fix_imports). */
static const global_entry allowed_globals[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2},
    {"torch._utils", "_rebuild_tensor", G_REBUILD_TENSOR},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER},
    {"torch._utils", "_rebuild_parameter_with_state",
     G_REBUILD_PARAMETER_WITH_STATE},
    {"torch._tensor", "_rebuild_from_type_v2", G_REBUILD_FROM_TYPE_V2},
    {"torch", "Tensor", G_TENSOR},
    {"torch._tensor", "Tensor", G_TENSOR},
    {"torch.nn.parameter", "Parameter", G_PARAMETER},
    {"torch", "Size", G_SIZE},
    {"_codecs", "encode", G_CODECS_ENCODE},
    {"builtins", "set", G_SET},
    {"__builtin__", "set", G_SET},
    {"builtins", "frozenset", G_FROZENSET},
    {"__builtin__", "frozenset", G_FROZENSET},
    {"builtins", "bytes", G_BYTES},
    {"__builtin__", "bytes", G_BYTES},
    {"torch", "FloatStorage", G_STORAGE_BASE + TSD_FLOAT32},
    {"torch", "DoubleStorage", G_STORAGE_BASE + TSD_FLOAT64},
    {"torch", "HalfStorage", G_STORAGE_BASE + TSD_FLOAT16},
    {"torch", "BFloat16Storage", G_STORAGE_BASE + TSD_BFLOAT16},
    {"torch", "CharStorage", G_STORAGE_BASE + TSD_INT8},
    {"torch", "ShortStorage", G_STORAGE_BASE + TSD_INT16},
    {"torch", "IntStorage", G_STORAGE_BASE + TSD_INT32},
    {"torch", "LongStorage", G_STORAGE_BASE + TSD_INT64},
    {"torch", "ByteStorage", G_STORAGE_BASE + TSD_UINT8},
    {"torch", "BoolStorage", G_STORAGE_BASE + TSD_BOOL},
    {"torch", "ComplexFloatStorage", G_STORAGE_BASE + TSD_COMPLEX64},
    {"torch", "ComplexDoubleStorage", G_STORAGE_BASE + TSD_COMPLEX128},
    /* PyTorch >= 2.1 saves the dtypes that have no typed storage class
     * (float8, uint16/32/64, complex32) as _rebuild_tensor_v3 of an untyped
     * storage, whose persistent id counts bytes */
    {"torch._utils", "_rebuild_tensor_v3", G_REBUILD_TENSOR_V3},
    {"torch.storage", "UntypedStorage", G_UNTYPED_STORAGE},
    {"torch", "UntypedStorage", G_UNTYPED_STORAGE},
    {"torch", "device", G_DEVICE},
    /* quantized and sparse tensors: read and shown, not loaded */
    {"torch._utils", "_rebuild_qtensor", G_REBUILD_QTENSOR},
    {"torch._utils", "_rebuild_sparse_tensor", G_REBUILD_SPARSE},
    {"torch.serialization", "_get_layout", G_GET_LAYOUT},
    {"torch", "QInt8Storage", G_QSTORAGE_BASE + TSD_INT8},
    {"torch", "QUInt8Storage", G_QSTORAGE_BASE + TSD_UINT8},
    {"torch", "QInt32Storage", G_QSTORAGE_BASE + TSD_INT32},
};

/* torch.dtype objects pickle as the global torch.<name> (dtype.__reduce__
 * returns its name). -1: a dtype tsd holds no tensors of (quantized). */
static const struct {
  const char *name;
  int dtype;
} torch_dtypes[] = {
    {"float32", TSD_FLOAT32},
    {"float", TSD_FLOAT32},
    {"float64", TSD_FLOAT64},
    {"double", TSD_FLOAT64},
    {"float16", TSD_FLOAT16},
    {"half", TSD_FLOAT16},
    {"bfloat16", TSD_BFLOAT16},
    {"int8", TSD_INT8},
    {"int16", TSD_INT16},
    {"short", TSD_INT16},
    {"int32", TSD_INT32},
    {"int", TSD_INT32},
    {"int64", TSD_INT64},
    {"long", TSD_INT64},
    {"uint8", TSD_UINT8},
    {"bool", TSD_BOOL},
    {"float8_e4m3fn", TSD_FLOAT8_E4M3FN},
    {"float8_e5m2", TSD_FLOAT8_E5M2},
    {"float8_e4m3fnuz", TSD_FLOAT8_E4M3FNUZ},
    {"float8_e5m2fnuz", TSD_FLOAT8_E5M2FNUZ},
    {"float8_e8m0fnu", TSD_FLOAT8_E8M0FNU},
    {"uint16", TSD_UINT16},
    {"uint32", TSD_UINT32},
    {"uint64", TSD_UINT64},
    {"complex32", TSD_COMPLEX32},
    {"chalf", TSD_COMPLEX32},
    {"complex64", TSD_COMPLEX64},
    {"cfloat", TSD_COMPLEX64},
    {"complex128", TSD_COMPLEX128},
    {"cdouble", TSD_COMPLEX128},
    {"qint8", -1},
    {"quint8", -1},
    {"qint32", -1},
    {"quint4x2", -1},
    {"quint2x4", -1},
};

/* The tsd dtype of a torch.dtype value (false: not one, or quantized). */
static bool dtype_value(const tsd__value *v, tsd_dtype *out) {
  if (!v || v->kind != TSD__V_DTYPE) return false;
  for (size_t i = 0; i < sizeof torch_dtypes / sizeof *torch_dtypes; i++)
    if (strcmp(v->u.s.p + 6, torch_dtypes[i].name) == 0) { /* "torch." */
      if (torch_dtypes[i].dtype < 0) return false;
      *out = (tsd_dtype)torch_dtypes[i].dtype;
      return true;
    }
  return false;
}

bool tsd__storage_type_untyped(const tsd__value *v) {
  return v && v->kind == TSD__V_GLOBAL && v->u.i == G_UNTYPED_STORAGE;
}

bool tsd__storage_type_dtype(const tsd__value *v, tsd_dtype *out) {
  if (tsd__storage_type_untyped(v)) { /* bytes */
    *out = TSD_UINT8;
    return true;
  }
  if (!v || v->kind != TSD__V_GLOBAL) return false;
  int64_t d = v->u.i - G_STORAGE_BASE;
  if (v->u.i >= G_QSTORAGE_BASE) d = v->u.i - G_QSTORAGE_BASE;
  if (d < 0 || d >= TSD_DTYPE_COUNT) return false;
  *out = (tsd_dtype)d;
  return true;
}

/* ---- globals and REDUCE -------------------------------------------------- */

/* An allow-listed global gets its id; any other one an inert GLOBAL (id 0)
 * that calling or instantiating turns into a placeholder (objects.c). */
tsd_status tsd__pk_global(tsd__pk *u, const char *mod, size_t mlen,
                          const char *name, size_t nlen, tsd__value **out) {
  int64_t id = G_NOT_ALLOWED;
  for (size_t i = 0; i < sizeof allowed_globals / sizeof *allowed_globals;
       i++) {
    const global_entry *g = &allowed_globals[i];
    if (strlen(g->module) == mlen && strlen(g->name) == nlen &&
        memcmp(g->module, mod, mlen) == 0 && memcmp(g->name, name, nlen) == 0) {
      id = g->id;
      break;
    }
  }
  if (id == G_NOT_ALLOWED && mlen == 5 && memcmp(mod, "torch", 5) == 0) {
    /* torch.layout, torch.qscheme: named globals with their own ids */
    for (size_t i = 0; i < sizeof layouts / sizeof *layouts; i++)
      if (strlen(layouts[i]) == nlen && memcmp(layouts[i], name, nlen) == 0)
        id = G_LAYOUT_BASE + (int64_t)i;
    for (size_t i = 0; i < sizeof qschemes / sizeof *qschemes; i++)
      if (strlen(qschemes[i]) == nlen && memcmp(qschemes[i], name, nlen) == 0)
        id = G_QSCHEME_BASE + (int64_t)i;
    /* a torch.dtype: the value itself, "torch.<name>" as str(dtype) */
    for (size_t i = 0; i < sizeof torch_dtypes / sizeof *torch_dtypes; i++)
      if (strlen(torch_dtypes[i].name) == nlen &&
          memcmp(torch_dtypes[i].name, name, nlen) == 0) {
        TRY(tsd__pk_new(u, TSD__V_DTYPE, out));
        char *p = tsd__pk_alloc(u, 6 + nlen + 1);
        if (!p) return tsd__pk_oom(u);
        memcpy(p, "torch.", 6);
        memcpy(p + 6, name, nlen);
        p[6 + nlen] = '\0';
        (*out)->u.s.p = p;
        (*out)->u.s.len = 6 + nlen;
        return TSD_OK;
      }
  }
  return tsd__pk_named_global(u, id, mod, mlen, name, nlen, out);
}

static int64_t global_id(const tsd__value *v) {
  return v && v->kind == TSD__V_GLOBAL ? v->u.i : 0;
}

static bool is_int(const tsd__value *v) {
  return v->kind == TSD__V_INT;
}

/* Reads an int tuple (size or stride) into dst. */
static tsd_status int_tuple(tsd__pk *u, const tsd__value *t, const char *what,
                            int64_t *dst, size_t *ndim) {
  if (t->kind != TSD__V_TUPLE && t->kind != TSD__V_LIST)
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "tensor %s is a %s, not a tuple",
                        what, tsd__pk_kind_name(t));
  if (t->u.seq.len > TSD_MAX_NDIM)
    return tsd__pk_fail(u, TSD_ERR_UNSUPPORTED,
                        "tensor has %zu dimensions (tsd supports up to %d)",
                        t->u.seq.len, TSD_MAX_NDIM);
  for (size_t i = 0; i < t->u.seq.len; i++) {
    const tsd__value *x = t->u.seq.items[i];
    if (!is_int(x))
      return tsd__pk_fail(u, TSD_ERR_FORMAT,
                          "tensor %s[%zu] is a %s, not an int", what, i,
                          tsd__pk_kind_name(x));
    if (x->u.i < 0)
      return tsd__pk_fail(u, TSD_ERR_FORMAT,
                          "tensor %s[%zu] is negative (%lld)", what, i,
                          (long long)x->u.i);
    dst[i] = x->u.i;
  }
  *ndim = t->u.seq.len;
  return TSD_OK;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, ...): every
 * number is checked so that the tensor lies inside its storage. */
static tsd_status build_tensor(tsd__pk *u, const tsd__value *const *a,
                               tsd__value **out) {
  if (a[0]->kind != TSD__V_STORAGE)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "tensor storage is a %s, not a storage",
                        tsd__pk_kind_name(a[0]));
  tsd__storage *s = a[0]->u.storage;
  if (!is_int(a[1]) || a[1]->u.i < 0)
    return tsd__pk_fail(
        u, TSD_ERR_FORMAT,
        "tensor storage offset is not a non-negative int (storage "
        "'%s')",
        s->key);
  int64_t shape[TSD_MAX_NDIM], stride[TSD_MAX_NDIM];
  size_t nd, nd2;
  TRY(int_tuple(u, a[2], "size", shape, &nd));
  TRY(int_tuple(u, a[3], "stride", stride, &nd2));
  if (nd != nd2)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "tensor has %zu sizes but %zu strides (storage '%s')",
                        nd, nd2, s->key);
  uint64_t numel = 1, maxidx = (uint64_t)a[1]->u.i;
  bool ok = true;
  for (size_t i = 0; i < nd; i++) {
    if (!tsd__mul_u64(numel, (uint64_t)shape[i], &numel)) ok = false;
  }
  if (!ok || numel > (uint64_t)INT64_MAX)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "tensor element count overflows (storage '%s')",
                        s->key);
  if (numel) {
    for (size_t i = 0; i < nd; i++) {
      uint64_t span;
      if (!tsd__mul_u64((uint64_t)(shape[i] - 1), (uint64_t)stride[i], &span) ||
          !tsd__add_u64(maxidx, span, &maxidx))
        return tsd__pk_fail(u, TSD_ERR_FORMAT,
                            "tensor extent overflows (storage '%s')", s->key);
    }
    if (maxidx >= s->numel)
      return tsd__pk_fail(
          u, TSD_ERR_FORMAT,
          "tensor needs element %llu of storage '%s', which has only "
          "%llu element(s)",
          (unsigned long long)maxidx, s->key, (unsigned long long)s->numel);
  }
  tsd__value *v = NULL;
  TRY(tsd__pk_new(u, TSD__V_TENSOR, &v));
  tsd__tensor *t = tsd__pk_alloc(u, sizeof *t);
  int64_t *arr = tsd__pk_alloc(u, 2 * (nd ? nd : 1) * sizeof *arr);
  if (!t || !arr) return tsd__pk_oom(u);
  t->storage = s;
  t->dtype = s->dtype;
  t->ndim = nd;
  t->shape = arr;
  t->stride = arr + (nd ? nd : 1);
  if (nd) {
    memcpy(t->shape, shape, nd * sizeof *shape);
    memcpy(t->stride, stride, nd * sizeof *stride);
  }
  t->offset = a[1]->u.i;
  t->numel = (int64_t)numel;
  /* C-contiguous in PyTorch's sense: size-1 dimensions' strides ignored */
  bool contig = true;
  int64_t expect = 1;
  for (size_t i = nd; i-- > 0;) {
    if (shape[i] == 1) continue;
    if (stride[i] != expect) contig = false;
    expect *= shape[i];
  }
  t->contiguous = contig || numel == 0;
  v->u.tensor = t;
  *out = v;
  return TSD_OK;
}

static tsd_status as_parameter(tsd__pk *u, tsd__value *tv, tsd__value **out) {
  if (tv->kind == TSD__V_XTENSOR) { /* a quantized or sparse Parameter */
    tsd__value *v = NULL;
    TRY(tsd__pk_new(u, TSD__V_XTENSOR, &v));
    tsd__xtensor *x = tsd__pk_alloc(u, sizeof *x);
    if (!x) return tsd__pk_oom(u);
    *x = *tv->u.xtensor;
    x->is_parameter = true;
    v->u.xtensor = x;
    *out = v;
    return TSD_OK;
  }
  if (tv->kind != TSD__V_TENSOR)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "Parameter data is a %s, not a tensor",
                        tsd__pk_kind_name(tv));
  tsd__value *v = NULL;
  TRY(tsd__pk_new(u, TSD__V_TENSOR, &v));
  tsd__tensor *t = tsd__pk_alloc(u, sizeof *t);
  if (!t) return tsd__pk_oom(u);
  *t = *tv->u.tensor;
  t->is_parameter = true;
  v->u.tensor = t;
  *out = v;
  return TSD_OK;
}

/* Decodes a str to bytes with latin-1: every code point must be < 256. */
static tsd_status latin1(tsd__pk *u, const tsd__value *s, tsd__value **out) {
  const uint8_t *p = (const uint8_t *)s->u.s.p;
  size_t n = s->u.s.len, k = 0;
  tsd__value *v = NULL;
  TRY(tsd__pk_new(u, TSD__V_BYTES, &v));
  char *d = tsd__pk_alloc(u, n + 1);
  if (!d) return tsd__pk_oom(u);
  for (size_t i = 0; i < n;) {
    if (p[i] < 0x80) {
      d[k++] = (char)p[i++];
    } else if ((p[i] == 0xC2 || p[i] == 0xC3) && i + 1 < n) {
      d[k++] = (char)(((p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F));
      i += 2;
    } else {
      return tsd__pk_fail(u, TSD_ERR_FORMAT,
                          "_codecs.encode: character outside latin-1");
    }
  }
  d[k] = '\0';
  v->u.s.p = d;
  v->u.s.len = k;
  *out = v;
  return TSD_OK;
}

static tsd_status call(tsd__pk *u, int64_t id, tsd__value *args, bool nested,
                       tsd__value **out);

/* A quantized or sparse tensor value: shape and a description ("what
 * [scheme]") kept for inspection; never loaded (tsd_load says why). */
static tsd_status make_xtensor(tsd__pk *u, size_t nd, const int64_t *shape,
                               tsd_dtype dtype, bool sparse, const char *what,
                               const char *scheme, tsd__value **out) {
  tsd__value *v = NULL;
  TRY(tsd__pk_new(u, TSD__V_XTENSOR, &v));
  tsd__xtensor *x = tsd__pk_alloc(u, sizeof *x);
  int64_t *sh = tsd__pk_alloc(u, (nd ? nd : 1) * sizeof *sh);
  size_t dl = strlen(what) + (scheme ? strlen(scheme) + 1 : 0) + 1;
  char *desc = tsd__pk_alloc(u, dl);
  if (!x || !sh || !desc) return tsd__pk_oom(u);
  if (nd) memcpy(sh, shape, nd * sizeof *sh);
  snprintf(desc, dl, "%s%s%s", what, scheme ? " " : "", scheme ? scheme : "");
  x->ndim = nd;
  x->shape = sh;
  x->dtype = dtype;
  x->sparse = sparse;
  x->desc = desc;
  v->u.xtensor = x;
  *out = v;
  return TSD_OK;
}

static tsd_status argc(tsd__pk *u, const tsd__value *args, size_t lo, size_t hi,
                       const char *fn) {
  if (args->u.seq.len < lo || args->u.seq.len > hi)
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "%s called with %zu argument(s)", fn,
                        args->u.seq.len);
  return TSD_OK;
}

/* What calling an allow-listed global does (REDUCE / NEWOBJ). */
static tsd_status call(tsd__pk *u, int64_t id, tsd__value *args, bool nested,
                       tsd__value **out) {
  if (args->kind != TSD__V_TUPLE)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "call arguments are a %s, not a tuple",
                        tsd__pk_kind_name(args));
  tsd__value **a = args->u.seq.items;
  tsd__value *v = NULL;
  switch (id) {
  case G_ORDERED_DICT:
    TRY(argc(u, args, 0, 0, "collections.OrderedDict"));
    TRY(tsd__pk_new(u, TSD__V_DICT, &v));
    v->flags |= TSD__VF_ORDERED;
    *out = v;
    return TSD_OK;
  case G_REBUILD_TENSOR_V2:
    TRY(argc(u, args, 6, 7, "_rebuild_tensor_v2"));
    if (a[4]->kind != TSD__V_BOOL && a[4]->kind != TSD__V_INT)
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "requires_grad is a %s",
                          tsd__pk_kind_name(a[4]));
    if (a[5]->kind != TSD__V_DICT && a[5]->kind != TSD__V_NONE)
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "backward_hooks is a %s",
                          tsd__pk_kind_name(a[5]));
    return build_tensor(u, (const tsd__value *const *)a, out);
  case G_REBUILD_TENSOR_V3: {
    /* (storage, storage_offset, size, stride, requires_grad, backward_hooks,
     * dtype[, metadata]): torch views the storage's bytes as `dtype`
     * (offset, size and stride count `dtype` elements) */
    TRY(argc(u, args, 7, 8, "_rebuild_tensor_v3"));
    if (a[4]->kind != TSD__V_BOOL && a[4]->kind != TSD__V_INT)
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "requires_grad is a %s",
                          tsd__pk_kind_name(a[4]));
    if (a[5]->kind != TSD__V_DICT && a[5]->kind != TSD__V_NONE)
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "backward_hooks is a %s",
                          tsd__pk_kind_name(a[5]));
    tsd_dtype dt;
    if (!dtype_value(a[6], &dt))
      return a[6]->kind == TSD__V_DTYPE
                 ? tsd__pk_fail(u, TSD_ERR_UNSUPPORTED,
                                "_rebuild_tensor_v3 of dtype %s, which tsd "
                                "does not handle",
                                a[6]->u.s.p)
                 : tsd__pk_fail(u, TSD_ERR_FORMAT,
                                "_rebuild_tensor_v3 dtype is a %s, not a "
                                "torch.dtype",
                                tsd__pk_kind_name(a[6]));
    if (a[0]->kind != TSD__V_STORAGE)
      return tsd__pk_fail(u, TSD_ERR_FORMAT,
                          "tensor storage is a %s, not a storage",
                          tsd__pk_kind_name(a[0]));
    tsd__storage *s = a[0]->u.storage;
    const tsd__value *b[4] = {a[0], a[1], a[2], a[3]};
    if (s->dtype != dt) {
      if (!s->untyped)
        return tsd__pk_fail(u, TSD_ERR_UNSUPPORTED,
                            "_rebuild_tensor_v3 views %s storage '%s' as %s",
                            tsd_dtype_name(s->dtype), s->key,
                            tsd_dtype_name(dt));
      /* the same bytes as `dt` elements (whole elements only). The bytes
       * are little-endian `dt` elements unless the file says big (torch
       * 2.x writes uint16/32/64 this way): swapped by `dt` where that is
       * not the machine's order. On a little-endian machine reading a
       * little-endian file nothing is swapped (torch.load never swaps an
       * untyped storage: for a big-endian file it leaves these as they
       * are, and so does tsd). */
      tsd__storage *d = tsd__pk_alloc(u, sizeof *d);
      tsd__value *sv = NULL;
      if (!d) return tsd__pk_oom(u);
      TRY(tsd__pk_new(u, TSD__V_STORAGE, &sv));
      *d = *s;
      d->dtype = dt;
      d->numel = s->nbytes / tsd_dtype_size(dt);
      d->nbytes = d->numel * tsd_dtype_size(dt);
      d->swap = s->big_file ? 0 : tsd__swap_unit(dt, false);
      sv->u.storage = d;
      b[0] = sv;
    }
    return build_tensor(u, b, out);
  }
  case G_DEVICE: {
    /* torch.device('cuda', 1) / ('cpu',) / ('cuda:0',): kept as its str() */
    TRY(argc(u, args, 1, 2, "torch.device"));
    if (a[0]->kind != TSD__V_STR ||
        (args->u.seq.len == 2 && a[1]->kind != TSD__V_NONE &&
         (a[1]->kind != TSD__V_INT || a[1]->u.i < 0)) ||
        a[0]->u.s.len > 64)
      return tsd__pk_fail(u, TSD_ERR_FORMAT,
                          "torch.device takes a str and an optional "
                          "non-negative int");
    TRY(tsd__pk_new(u, TSD__V_DEVICE, &v));
    char *p = tsd__pk_alloc(u, a[0]->u.s.len + 24);
    if (!p) return tsd__pk_oom(u);
    if (args->u.seq.len == 2 && a[1]->kind == TSD__V_INT)
      snprintf(p, a[0]->u.s.len + 24, "%s:%lld", a[0]->u.s.p,
               (long long)a[1]->u.i);
    else
      snprintf(p, a[0]->u.s.len + 24, "%s", a[0]->u.s.p);
    v->u.s.p = p;
    v->u.s.len = strlen(p);
    *out = v;
    return TSD_OK;
  }
  case G_GET_LAYOUT: /* torch.serialization._get_layout('torch.sparse_coo') */
    TRY(argc(u, args, 1, 1, "_get_layout"));
    if (a[0]->kind == TSD__V_STR && strncmp(a[0]->u.s.p, "torch.", 6) == 0)
      for (size_t i = 0; i < sizeof layouts / sizeof *layouts; i++)
        if (strcmp(a[0]->u.s.p + 6, layouts[i]) == 0)
          return tsd__pk_named_global(u, G_LAYOUT_BASE + (int64_t)i, "torch",
                                      5, layouts[i], strlen(layouts[i]), out);
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "_get_layout of an unknown layout");
  case G_REBUILD_QTENSOR: {
    /* (storage, storage_offset, size, stride, quantizer_params,
     * requires_grad, backward_hooks); quantizer_params = (qscheme, scale,
     * zero_point) or (qscheme, scales, zero_points, axis) */
    TRY(argc(u, args, 7, 7, "_rebuild_qtensor"));
    tsd__value *t;
    TRY(build_tensor(u, (const tsd__value *const *)a, &t));
    const tsd__value *q = a[4];
    int64_t scheme = q->kind == TSD__V_TUPLE && q->u.seq.len >= 1
                         ? global_id(q->u.seq.items[0]) - G_QSCHEME_BASE
                         : -1;
    if (scheme < 0 || scheme >= (int64_t)(sizeof qschemes / sizeof *qschemes))
      return tsd__pk_fail(u, TSD_ERR_FORMAT,
                          "_rebuild_qtensor quantizer_params is no (qscheme, "
                          "...) tuple");
    const tsd_dtype sd = t->u.tensor->dtype;
    const char *qname = sd == TSD_INT8    ? "torch.qint8"
                        : sd == TSD_UINT8 ? "torch.quint8"
                        : sd == TSD_INT32 ? "torch.qint32"
                                          : NULL;
    if (!qname)
      return tsd__pk_fail(u, TSD_ERR_FORMAT,
                          "_rebuild_qtensor of a %s storage, not a quantized "
                          "one",
                          tsd_dtype_name(sd));
    return make_xtensor(u, t->u.tensor->ndim, t->u.tensor->shape, sd, false,
                        qname, qschemes[scheme], out);
  }
  case G_REBUILD_SPARSE: {
    /* (layout, data): COO data = (indices, values, size[, is_coalesced]),
     * CSR/CSC/BSR/BSC data = (compressed_indices, plain_indices, values,
     * size) */
    TRY(argc(u, args, 2, 2, "_rebuild_sparse_tensor"));
    int64_t lay = global_id(a[0]) - G_LAYOUT_BASE;
    const tsd__value *d = a[1];
    if (lay < 1 || lay >= (int64_t)(sizeof layouts / sizeof *layouts) ||
        d->kind != TSD__V_TUPLE)
      return tsd__pk_fail(u, TSD_ERR_FORMAT,
                          "_rebuild_sparse_tensor of no sparse layout and "
                          "data tuple");
    const size_t nv = lay == 1 ? 1 : 2; /* position of values */
    if (d->u.seq.len < nv + 2 || d->u.seq.len > nv + 3)
      return tsd__pk_fail(u, TSD_ERR_FORMAT,
                          "_rebuild_sparse_tensor data has %zu items",
                          d->u.seq.len);
    for (size_t i = 0; i <= nv; i++)
      if (d->u.seq.items[i]->kind != TSD__V_TENSOR)
        return tsd__pk_fail(u, TSD_ERR_FORMAT,
                            "_rebuild_sparse_tensor data[%zu] is a %s, not a "
                            "tensor",
                            i, tsd__pk_kind_name(d->u.seq.items[i]));
    int64_t shape[TSD_MAX_NDIM];
    size_t nd;
    TRY(int_tuple(u, d->u.seq.items[nv + 1], "size", shape, &nd));
    char name[32];
    snprintf(name, sizeof name, "torch.%s", layouts[lay]);
    return make_xtensor(u, nd, shape, d->u.seq.items[nv]->u.tensor->dtype,
                        true, name, NULL, out);
  }
  case G_REBUILD_TENSOR:
    TRY(argc(u, args, 4, 4, "_rebuild_tensor"));
    return build_tensor(u, (const tsd__value *const *)a, out);
  case G_REBUILD_PARAMETER:
    TRY(argc(u, args, 3, 3, "_rebuild_parameter"));
    return as_parameter(u, a[0], out);
  case G_REBUILD_PARAMETER_WITH_STATE:
    TRY(argc(u, args, 4, 4, "_rebuild_parameter_with_state"));
    return as_parameter(u, a[0], out);
  case G_REBUILD_FROM_TYPE_V2: {
    /* (func, new_type, args, state): one level only, never recursive */
    TRY(argc(u, args, 4, 4, "_rebuild_from_type_v2"));
    int64_t f = global_id(a[0]), type = global_id(a[1]);
    if (nested || (f != G_REBUILD_TENSOR_V2 && f != G_REBUILD_TENSOR &&
                   f != G_REBUILD_TENSOR_V3 && f != G_REBUILD_PARAMETER))
      return tsd__pk_fail(u, TSD_ERR_REFUSED,
                          "_rebuild_from_type_v2 with a function other than "
                          "_rebuild_tensor/_rebuild_parameter");
    if (type != G_TENSOR && type != G_PARAMETER && type != G_NOT_ALLOWED)
      return tsd__pk_fail(
          u, TSD_ERR_REFUSED,
          "_rebuild_from_type_v2 with a type other than torch.Tensor, "
          "torch.nn.parameter.Parameter or a tensor subclass");
    tsd__value *t;
    TRY(call(u, f, a[2], true, &t));
    if (t->kind != TSD__V_TENSOR)
      return tsd__pk_fail(u, TSD_ERR_FORMAT,
                          "_rebuild_from_type_v2 built no tensor");
    if (type == G_NOT_ALLOWED) {
      /* A tensor subclass: a placeholder of the subclass holding the tensor
       * as its one argument and the subclass's state; tsd does not make it
       * a tensor (its class may override anything). */
      tsd__value *targs = NULL;
      TRY(tsd__pk_new(u, TSD__V_TUPLE, &targs));
      TRY(tsd__pk_grow_seq(u, targs, 1));
      TRY(tsd__pk_adopt(u, targs, t));
      targs->u.seq.items[targs->u.seq.len++] = t;
      TRY(tsd__pk_object(u, a[1], targs, NULL, out));
      return tsd__pk_object_build(u, *out, a[3]);
    }
    if (type == G_PARAMETER && !t->u.tensor->is_parameter)
      return as_parameter(u, t, out);
    *out = t;
    return TSD_OK;
  }
  case G_SIZE:
    TRY(argc(u, args, 0, 1, "torch.Size"));
    if (args->u.seq.len == 0) return tsd__pk_new(u, TSD__V_TUPLE, out);
    if (a[0]->kind != TSD__V_TUPLE && a[0]->kind != TSD__V_LIST)
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "torch.Size of a %s",
                          tsd__pk_kind_name(a[0]));
    TRY(tsd__pk_new(u, TSD__V_TUPLE, &v));
    v->u.seq = a[0]->u.seq;
    v->u.seq.cap = v->u.seq.len;
    v->depth = a[0]->depth;
    *out = v;
    return TSD_OK;
  case G_CODECS_ENCODE:
    /* protocol 2 writes bytes as _codecs.encode('...', 'latin1') */
    TRY(argc(u, args, 2, 2, "_codecs.encode"));
    if (a[0]->kind != TSD__V_STR || a[1]->kind != TSD__V_STR ||
        (strcmp(a[1]->u.s.p, "latin1") != 0 &&
         strcmp(a[1]->u.s.p, "latin-1") != 0))
      return tsd__pk_fail(u, TSD_ERR_REFUSED,
                          "_codecs.encode is allowed only as (str, 'latin1')");
    return latin1(u, a[0], out);
  case G_BYTES:
    TRY(argc(u, args, 0, 0, "bytes"));
    TRY(tsd__pk_new(u, TSD__V_BYTES, &v));
    v->u.s.p = tsd__pk_alloc(u, 1);
    if (!v->u.s.p) return tsd__pk_oom(u);
    *out = v;
    return TSD_OK;
  case G_SET:
  case G_FROZENSET:
    TRY(argc(u, args, 0, 1, id == G_SET ? "set" : "frozenset"));
    TRY(tsd__pk_new(u, TSD__V_SET, &v));
    if (args->u.seq.len) {
      const tsd__value *src = a[0];
      if (src->kind != TSD__V_LIST && src->kind != TSD__V_TUPLE &&
          src->kind != TSD__V_SET)
        return tsd__pk_fail(u, TSD_ERR_FORMAT, "set of a %s",
                            tsd__pk_kind_name(src));
      TRY(tsd__pk_grow_seq(u, v, src->u.seq.len));
      for (size_t i = 0; i < src->u.seq.len; i++) {
        TRY(tsd__pk_adopt(u, v, src->u.seq.items[i]));
        v->u.seq.items[v->u.seq.len++] = src->u.seq.items[i];
      }
    }
    *out = v;
    return TSD_OK;
  default:
    return tsd__pk_fail(u, TSD_ERR_REFUSED, "this global cannot be called");
  }
}

tsd_status tsd__pk_build(tsd__pk *u, tsd__value *obj, tsd__value *state) {
  if (obj->kind == TSD__V_OBJECT) return tsd__pk_object_build(u, obj, state);
  if (obj->kind == TSD__V_DICT && (obj->flags & TSD__VF_ORDERED)) {
    /* An OrderedDict's state is its instance __dict__; state_dict() puts
     * `_metadata` there. Other attributes are ignored (they carry nothing
     * load_state_dict reads). */
    if (state->kind == TSD__V_NONE) return TSD_OK;
    if (state->kind != TSD__V_DICT)
      return tsd__pk_fail(u, TSD_ERR_FORMAT,
                          "OrderedDict state is a %s, not a dict",
                          tsd__pk_kind_name(state));
    TRY(tsd__pk_check_mutable(u, obj));
    for (size_t i = 0; i < state->u.dict.len; i++) {
      const tsd__value *k = state->u.dict.keys[i];
      if (k->kind == TSD__V_STR && strcmp(k->u.s.p, "_metadata") == 0 &&
          k->u.s.len == 9) {
        tsd__value *m = state->u.dict.vals[i];
        TRY(tsd__pk_adopt(u, obj, m));
        obj->u.dict.metadata = m;
      }
    }
    return TSD_OK;
  }
  return tsd__pk_fail(u, TSD_ERR_UNSUPPORTED, "BUILD on a %s is not supported",
                      tsd__pk_kind_name(obj));
}

tsd_status tsd__pk_reduce(tsd__pk *u, tsd__value *fn, tsd__value *args,
                          tsd__value **out) {
  if (fn->kind != TSD__V_GLOBAL)
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "REDUCE on a %s, not a global",
                        tsd__pk_kind_name(fn));
  if (fn->u.g.id == G_NOT_ALLOWED)
    return tsd__pk_object(u, fn, args, NULL, out);
  return call(u, fn->u.i, args, false, out);
}

tsd_status tsd__pk_newobj(tsd__pk *u, tsd__value *cls, tsd__value *args,
                          tsd__value *kwargs, tsd__value **out) {
  if (cls->kind == TSD__V_GLOBAL && cls->u.g.id == G_NOT_ALLOWED)
    return tsd__pk_object(u, cls, args, kwargs, out);
  if ((global_id(cls) != G_ORDERED_DICT && global_id(cls) != G_SET) || kwargs)
    return tsd__pk_fail(u, TSD_ERR_REFUSED,
                        "NEWOBJ is allowed only for OrderedDict and set "
                        "among the allow-listed globals");
  return call(u, global_id(cls), args, false, out);
}
