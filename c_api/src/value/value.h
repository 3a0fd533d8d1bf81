/*
 * value.h — the value tree (c_api/src/value/), over io/: what every reader
 * produces (a Python value tree whose tensors are io's views) and its
 * descriptions in Python's terms.
 *   value.c  Python's type(x) text, the public kind, a placeholder's class;
 *            the one builder of values outside the unpickler
 * Not installed; not public.
 */
#ifndef TSD_VALUE_H
#define TSD_VALUE_H

#include "tsd_io.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tsd__vkind {
  TSD__V_NONE,
  TSD__V_BOOL,
  TSD__V_INT,
  TSD__V_BIGINT,  /* LONG1/LONG4 beyond int64: s = little-endian bytes */
  TSD__V_FLOAT,
  TSD__V_STR,
  TSD__V_BYTES,
  TSD__V_TUPLE,
  TSD__V_LIST,
  TSD__V_SET,
  TSD__V_DICT,
  TSD__V_TENSOR,
  TSD__V_STORAGE, /* storage object (from a persistent id) */
  TSD__V_GLOBAL,  /* a global (callable or class): u.g */
  TSD__V_DTYPE,   /* a torch.dtype: s = "torch.float16" */
  TSD__V_OBJECT,  /* an inert placeholder for an object tsd does not
                     construct (objects.c): u.obj */
  TSD__V_DEVICE,  /* a torch.device: s = its str(), "cuda:1" */
  TSD__V_XTENSOR  /* a quantized or sparse tensor: xtensor (not loadable) */
} tsd__vkind;

/* A tensor tsd shows but does not load: quantized (_rebuild_qtensor) or
 * sparse (_rebuild_sparse_tensor). */
typedef struct tsd__xtensor {
  size_t ndim;
  int64_t *shape;
  tsd_dtype dtype;   /* sparse: the values' dtype; quantized: the storage's */
  bool sparse;       /* else quantized */
  bool is_parameter;
  const char *desc;  /* "torch.qint8 per_tensor_affine", "torch.sparse_coo" */
} tsd__xtensor;

typedef struct tsd__value tsd__value;
struct tsd__value {
  /* 8 bytes of header, 48 in all: a checkpoint of tens of thousands of
   * tensors holds ~10 of these per tensor (bench/notes.md). The unpickler
   * allocates only the header and the member its kind uses (16 bytes for
   * an int; pickle_vm.c node_size): never read a value beyond its kind's
   * member, nor copy one whole (`*dst = *src`). */
  tsd__vkind kind : 8;
  unsigned flags : 16; /* TSD__VF_* and the unpickler's VF_FROZEN (0x100) */
  uint32_t depth;     /* nesting depth of this container, for limits */
  union {
    int64_t i;     /* BOOL, INT, GLOBAL (a TSD__G_* id) */
    double f;
    struct { char *p; size_t len; } s;  /* STR (NUL-terminated), BYTES, BIGINT */
    struct { tsd__value **items; size_t len, cap; } seq; /* TUPLE LIST SET */
    struct {
      tsd__value **keys, **vals;
      size_t len, cap;
      tsd__value *metadata; /* OrderedDict `_metadata` attribute, or NULL */
    } dict;
    tsd__tensor *tensor;
    tsd__storage *storage;
    tsd__xtensor *xtensor;
    /* GLOBAL: `id` aliases `i` (a torch_globals.c id, 0 for a global
     * outside the allow-list); name "module.qualname" and repr
     * "<class 'module.qualname'>", both NUL-terminated. */
    struct { int64_t id; const char *name, *repr; } g;
    /* OBJECT: what would have been built, never built. cls is the GLOBAL
     * called (REDUCE) or instantiated (NEWOBJ, NEWOBJ_EX, INST, OBJ); args
     * a tuple; kwargs a dict or NULL; state the BUILD state or NULL; items
     * a list (APPEND/APPENDS) or dict (SETITEM/SETITEMS) or NULL. */
    struct { tsd__value *cls, *args, *kwargs, *state, *items; } obj;
  } u;
};
#define TSD__VF_ORDERED 1u /* collections.OrderedDict (vs dict) */
/* BOOL/INT/FLOAT decoded from a numpy scalar: bits 4-7 hold its
 * tsd__np_scalar code (objects.c), for its type's repr */
#define TSD__VF_NP_SHIFT 4
#define TSD__VF_NP_MASK 0xF0u
/* The numpy scalar types a value may remember (objects.c decodes them). */
enum {
  TSD__NP_BOOL = 1,
  TSD__NP_INT8,
  TSD__NP_INT16,
  TSD__NP_INT32,
  TSD__NP_INT64,
  TSD__NP_UINT8,
  TSD__NP_UINT16,
  TSD__NP_UINT32,
  TSD__NP_UINT64,
  TSD__NP_FLOAT16,
  TSD__NP_FLOAT32,
  TSD__NP_FLOAT64,
  TSD__NP_COMPLEX64,
  TSD__NP_COMPLEX128,
  TSD__NP_COUNT
};
/* "<class 'numpy.float32'>" ... for a value with a numpy code, else NULL;
 * tsd__np_code_repr the same for a TSD__NP_* code. */
const char *tsd__np_scalar_repr(const tsd__value *v);
const char *tsd__np_code_repr(unsigned code);

/* Python's `type(x)` text for a value: "<class 'int'>", ... (static). */
const char *tsd__type_repr(const tsd__value *v);
tsd_kind tsd__public_kind(const tsd__value *v);
/* "module.qualname" of a placeholder OBJECT's class, else NULL. */
const char *tsd__object_class(const tsd__value *v);

/* ---- building values in an arena (value.c) ------------------------------
 * For readers and constructors outside the unpickler (which counts its
 * objects against the limits with its own constructors, pickle_vm.h). All
 * return NULL when the arena is out of memory; strings are copied. */
tsd__value *tsd__value_new(tsd__arena *a, tsd__vkind kind);
tsd__value *tsd__value_str(tsd__arena *a, const char *s, size_t n);
tsd__value *tsd__value_int(tsd__arena *a, int64_t i);
/* An empty dict (OrderedDict when `ordered`) with room for n items. */
tsd__value *tsd__value_dict(tsd__arena *a, size_t n, bool ordered);
/* Appends k: v to a dict made by tsd__value_dict (within its room). */
void tsd__value_dict_set(tsd__value *d, tsd__value *k, tsd__value *v);

struct tsd__ts_state; /* torchscript_state.c */

/* Everything the readers produce. */
typedef struct tsd__parsed {
  tsd__value *root;
  tsd__storage **storages;
  size_t n_storages;
  /* A str -> str dict: safetensors `__metadata__`, a sharded index's
   * "metadata" (scalars as their JSON text); NULL when the file has none. */
  tsd__value *file_metadata;
  /* A TorchScript archive's module tree (root is then its state dict);
   * NULL for any other file. */
  const struct tsd__ts_state *torchscript;
  /* A sharded checkpoint's shard files (sharded.c), opened with the
   * allocator the reader was given; the storages point at them. Closed and
   * freed by tsd__parsed_close, also after a failed read. */
  tsd__source *shards;
  size_t n_shards;
} tsd__parsed;
/* Closes and frees p->shards (`al`: the allocator they were made with). */
void tsd__parsed_close(tsd__parsed *p, const tsd_allocator *al);

#ifdef __cplusplus
}
#endif

#endif /* TSD_VALUE_H */
