/* value.c — the value tree in Python's terms (type(x), the public kind, a
 * placeholder's class) and the one builder of values outside the
 * unpickler. */
#include <string.h>

#include "value.h"

/* ---- descriptions ---------------------------------------------------------
 */

const char *tsd__type_repr(const tsd__value *v) {
  if (!v) return "<class 'NoneType'>";
  const char *np = tsd__np_scalar_repr(v);
  if (np) return np;
  switch (v->kind) {
  case TSD__V_NONE:
    return "<class 'NoneType'>";
  case TSD__V_BOOL:
    return "<class 'bool'>";
  case TSD__V_INT:
  case TSD__V_BIGINT:
    return "<class 'int'>";
  case TSD__V_FLOAT:
    return "<class 'float'>";
  case TSD__V_STR:
    return "<class 'str'>";
  case TSD__V_BYTES:
    return "<class 'bytes'>";
  case TSD__V_TUPLE:
    return "<class 'tuple'>";
  case TSD__V_LIST:
    return "<class 'list'>";
  case TSD__V_SET:
    return "<class 'set'>";
  case TSD__V_DICT:
    return (v->flags & TSD__VF_ORDERED) ? "<class 'collections.OrderedDict'>"
                                        : "<class 'dict'>";
  case TSD__V_TENSOR:
    if (v->u.tensor->numpy) return "<class 'numpy.ndarray'>";
    return v->u.tensor->is_parameter ? "<class 'torch.nn.parameter.Parameter'>"
                                     : "<class 'torch.Tensor'>";
  case TSD__V_STORAGE:
    return "<class 'torch.storage.TypedStorage'>";
  case TSD__V_GLOBAL:
    return "<class 'type'>";
  case TSD__V_DTYPE:
    return "<class 'torch.dtype'>";
  case TSD__V_DEVICE:
    return "<class 'torch.device'>";
  case TSD__V_XTENSOR:
    return v->u.xtensor->is_parameter
               ? "<class 'torch.nn.parameter.Parameter'>"
               : "<class 'torch.Tensor'>";
  case TSD__V_OBJECT:
    return v->u.obj.cls->u.g.repr; /* the class Python would have built */
  }
  return "<class 'object'>";
}

tsd_kind tsd__public_kind(const tsd__value *v) {
  if (!v) return TSD_KIND_NONE;
  switch (v->kind) {
  case TSD__V_TENSOR:
    return TSD_KIND_TENSOR;
  case TSD__V_NONE:
    return TSD_KIND_NONE;
  case TSD__V_BOOL:
    return TSD_KIND_BOOL;
  case TSD__V_INT:
    return TSD_KIND_INT;
  case TSD__V_FLOAT:
    return TSD_KIND_FLOAT;
  case TSD__V_STR:
    return TSD_KIND_STR;
  case TSD__V_BYTES:
    return TSD_KIND_BYTES;
  case TSD__V_DICT:
    return TSD_KIND_DICT;
  case TSD__V_LIST:
    return TSD_KIND_LIST;
  case TSD__V_TUPLE:
    return TSD_KIND_TUPLE;
  case TSD__V_OBJECT:
    return TSD_KIND_OBJECT;
  default:
    return TSD_KIND_OTHER;
  }
}

const char *tsd__object_class(const tsd__value *v) {
  return v && v->kind == TSD__V_OBJECT ? v->u.obj.cls->u.g.name : NULL;
}

static const char *const np_reprs[TSD__NP_COUNT] = {
    [TSD__NP_BOOL] = "<class 'numpy.bool_'>",
    [TSD__NP_INT8] = "<class 'numpy.int8'>",
    [TSD__NP_INT16] = "<class 'numpy.int16'>",
    [TSD__NP_INT32] = "<class 'numpy.int32'>",
    [TSD__NP_INT64] = "<class 'numpy.int64'>",
    [TSD__NP_UINT8] = "<class 'numpy.uint8'>",
    [TSD__NP_UINT16] = "<class 'numpy.uint16'>",
    [TSD__NP_UINT32] = "<class 'numpy.uint32'>",
    [TSD__NP_UINT64] = "<class 'numpy.uint64'>",
    [TSD__NP_FLOAT16] = "<class 'numpy.float16'>",
    [TSD__NP_FLOAT32] = "<class 'numpy.float32'>",
    [TSD__NP_FLOAT64] = "<class 'numpy.float64'>",
    [TSD__NP_COMPLEX64] = "<class 'numpy.complex64'>",
    [TSD__NP_COMPLEX128] = "<class 'numpy.complex128'>",
};

const char *tsd__np_code_repr(unsigned code) {
  return code && code < TSD__NP_COUNT ? np_reprs[code] : NULL;
}

const char *tsd__np_scalar_repr(const tsd__value *v) {
  if (v->kind != TSD__V_BOOL && v->kind != TSD__V_INT &&
      v->kind != TSD__V_FLOAT)
    return NULL;
  return tsd__np_code_repr((v->flags & TSD__VF_NP_MASK) >> TSD__VF_NP_SHIFT);
}

/* ---- building ------------------------------------------------------------ */

tsd__value *tsd__value_new(tsd__arena *a, tsd__vkind kind) {
  tsd__value *v = tsd__arena_alloc(a, sizeof *v); /* zeroed */
  if (v) v->kind = kind;
  return v;
}

tsd__value *tsd__value_str(tsd__arena *a, const char *s, size_t n) {
  tsd__value *v = tsd__value_new(a, TSD__V_STR);
  char *p = v && n < SIZE_MAX ? tsd__arena_alloc(a, n + 1) : NULL;
  if (!p) return NULL;
  if (n) memcpy(p, s, n);
  v->u.s.p = p;
  v->u.s.len = n;
  return v;
}

tsd__value *tsd__value_int(tsd__arena *a, int64_t i) {
  tsd__value *v = tsd__value_new(a, TSD__V_INT);
  if (v) v->u.i = i;
  return v;
}

tsd__value *tsd__value_dict(tsd__arena *a, size_t n, bool ordered) {
  tsd__value *d = tsd__value_new(a, TSD__V_DICT);
  if (!d || n >= SIZE_MAX / sizeof(tsd__value *)) return NULL;
  d->flags = ordered ? TSD__VF_ORDERED : 0;
  d->depth = 1;
  d->u.dict.keys = tsd__arena_alloc(a, (n ? n : 1) * sizeof(tsd__value *));
  d->u.dict.vals = tsd__arena_alloc(a, (n ? n : 1) * sizeof(tsd__value *));
  if (!d->u.dict.keys || !d->u.dict.vals) return NULL;
  d->u.dict.cap = n;
  return d;
}

void tsd__value_dict_set(tsd__value *d, tsd__value *k, tsd__value *v) {
  d->u.dict.keys[d->u.dict.len] = k;
  d->u.dict.vals[d->u.dict.len] = v;
  d->u.dict.len++;
  if (v && v->depth + 1 > d->depth) d->depth = v->depth + 1;
}

/* ---- what the readers produce -------------------------------------------- */

void tsd__parsed_close(tsd__parsed *p, const tsd_allocator *al) {
  for (size_t i = 0; i < p->n_shards; i++)
    tsd__source_close(&p->shards[i]);
  tsd__mem_free(al, p->shards);
  p->shards = NULL;
  p->n_shards = 0;
}
