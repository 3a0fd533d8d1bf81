/*
 * internal.h — shared internals of libtsd. Not installed; not public.
 *
 * Layout of the C core (one job per file):
 *   util.c       errors (thread-local), allocation, arena, string buffer, hash
 *   convert.c    dtype conversion (Tensor.copy_ semantics), float16/bfloat16
 *   source.c     a byte source: a file read with pread, or caller memory
 *   zip.c        zip / ZIP64 central directory reader (stored records only)
 *   pickle_vm.c  the restricted unpickler's machine (opcodes, stack, memo,
 *                marks, limits; pickle_vm.h is its interface)
 *   torch_globals.c the allow-listed globals: torch's rebuild functions
 *   objects.c    the object model: inert placeholders for other globals,
 *                numpy data, a pickled nn.Module's state dict
 *   legacy.c     the legacy (pre-1.6) torch.save format
 *   checkpoint.c the public tsd_checkpoint_* API, the current-dict view,
 *                tensor reads (strides, offsets, conversion)
 *   model.c      the module tree shared by both model kinds, C-owned models
 *   engine.c     load_state_dict semantics (tsd_load)
 *   remap.c      the keys a load sees (strip/rename/add prefixes, with
 *                `_metadata`), automatic state-dict selection
 *   report.c     reports, PyTorch's message texts, JSON
 *   save.c       writing a torch.save-compatible .pth (zip + pickle writer)
 *   json.c       a strict JSON parser (safetensors headers, shard indexes)
 *   safetensors.c the safetensors format, read and written
 *   sharded.c    `*.index.json` sharded checkpoints opened as one
 *   afile.c      the one atomic output file every writer writes into
 *   write.c      tsd_model_save(_ex), models over a checkpoint, tensors
 *                streamed in windows, the output bound
 *   mapview.c    read-only maps of checkpoint files (TSD_OPEN_MAP), views
 *                into them, ranged reads of checkpoint and model tensors
 * shim/torchscript.cpp (C++) implements TorchScript models on the same tree.
 */
#ifndef TSD_INTERNAL_H
#define TSD_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tsd.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__MINGW32__)
/* MinGW's "printf" archetype is msvcrt's (no %zu); tsd's formatting is C99
 * (vsnprintf with __USE_MINGW_ANSI_STDIO) */
#define TSD_PRINTF(a, b) __attribute__((format(gnu_printf, a, b)))
#elif defined(__GNUC__)
#define TSD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TSD_PRINTF(a, b)
#endif

/* ---- errors (util.c) ---------------------------------------------------- */

/* Sets the calling thread's error message and returns `status`.
 * Usage: return tsd__err(TSD_ERR_FORMAT, "%s: offset %llu: ...", ...); */
tsd_status tsd__err(tsd_status status, const char *fmt, ...) TSD_PRINTF(2, 3);
/* Prefixes the current thread message with "<prefix>: " (for context). */
void tsd__err_prefix(const char *fmt, ...) TSD_PRINTF(1, 2);
void tsd__err_clear(void);

/* ---- allocation (util.c) ------------------------------------------------ */
/* Allocation through an object's allocator `al` (its copy of the caller's
 * hooks); NULL means libc's. Sizes are never 0 when they reach the hooks.
 * They never abort; on failure they return NULL. */
void *tsd__mem_alloc(const tsd_allocator *al, size_t n);
void *tsd__mem_calloc(const tsd_allocator *al, size_t count, size_t size);
void *tsd__mem_realloc(const tsd_allocator *al, void *p, size_t n);
void tsd__mem_free(const tsd_allocator *al, void *p);
char *tsd__mem_strdup(const tsd_allocator *al, const char *s);
char *tsd__mem_strndup(const tsd_allocator *al, const char *s, size_t n);
/* Grows the array *p (capacity *cap elements of `elem` bytes) to hold at
 * least `need`, doubling; false on overflow or OOM, leaving it unchanged. */
bool tsd__mem_grow(const tsd_allocator *al, void **p, size_t *cap, size_t need,
                   size_t elem);
/* Checks a caller's allocator: all three functions or none (NULL). */
tsd_status tsd__allocator_check(const tsd_allocator *al, const char *fn);
/* qsort's contract, without allocating (util.c; not stable). */
void tsd__sort(void *base, size_t n, size_t size,
               int (*cmp)(const void *, const void *));

/* ---- arena (util.c): bump allocator freed all at once -------------------- */
typedef struct tsd__arena_block tsd__arena_block;
typedef struct tsd__arena {
  const tsd_allocator *al; /* NULL: libc */
  tsd__arena_block *head;
  uint64_t total;  /* bytes handed out so far */
  uint64_t held;   /* bytes of the blocks it holds (>= total) */
  uint64_t limit;  /* 0 = unlimited; bounds `held`: past it allocations
                      fail (a new block is cut to what remains of it) */
  unsigned char *spare; /* recycled memory, used before the head block */
  size_t spare_len;
  bool hit_limit; /* the last allocation was refused for the limit */
} tsd__arena;
void tsd__arena_init(tsd__arena *a, uint64_t limit, const tsd_allocator *al);
void *tsd__arena_alloc(tsd__arena *a, size_t n); /* 8-byte aligned, zeroed */
void tsd__arena_free(tsd__arena *a);

/* ---- growable string buffer (util.c) ------------------------------------ */
typedef struct tsd__buf {
  const tsd_allocator *al; /* NULL: libc */
  char *data; /* always NUL-terminated when len > 0 or after any append */
  size_t len, cap;
  bool oom;   /* set once an append failed; later appends are no-ops */
} tsd__buf;
void tsd__buf_init(tsd__buf *b, const tsd_allocator *al);
void tsd__buf_free(tsd__buf *b);
void tsd__buf_append(tsd__buf *b, const char *s, size_t n);
void tsd__buf_puts(tsd__buf *b, const char *s);
void tsd__buf_printf(tsd__buf *b, const char *fmt, ...) TSD_PRINTF(2, 3);
/* Takes the string (caller frees with tsd__free); the buffer is reset. */
char *tsd__buf_take(tsd__buf *b);

/* ---- string -> index hash map (util.c) ---------------------------------- */
typedef struct tsd__strmap {
  const tsd_allocator *al; /* NULL: libc */
  uint64_t *slots; /* hash << 32 | (index + 1); 0 = empty (util.c) */
  size_t cap;    /* power of two */
  size_t count;
} tsd__strmap;
/* Keys are not stored: the caller passes a function that gives the key of an
 * index. */
typedef const char *(*tsd__strmap_keyfn)(const void *ctx, size_t index,
                                          size_t *len);
void tsd__strmap_init(tsd__strmap *m, const tsd_allocator *al);
void tsd__strmap_free(tsd__strmap *m);
/* Inserts index; if an equal key exists returns false and sets *existing. */
bool tsd__strmap_insert(tsd__strmap *m, const char *key, size_t len,
                        size_t index, tsd__strmap_keyfn fn, const void *ctx,
                        size_t *existing, bool *oom);
bool tsd__strmap_find(const tsd__strmap *m, const char *key, size_t len,
                      tsd__strmap_keyfn fn, const void *ctx, size_t *out);
void tsd__strmap_remove(tsd__strmap *m, const char *key, size_t len,
                        tsd__strmap_keyfn fn, const void *ctx);
/* SipHash-1-3 of s[0..n) keyed with a per-process random seed (util.c). */
uint64_t tsd__hash(const char *s, size_t n);
uint64_t tsd__siphash13(uint64_t k0, uint64_t k1, const void *data, size_t n);

/* overflow-safe arithmetic */
static inline bool tsd__mul_u64(uint64_t a, uint64_t b, uint64_t *r) {
  return !__builtin_mul_overflow(a, b, r);
}
static inline bool tsd__add_u64(uint64_t a, uint64_t b, uint64_t *r) {
  return !__builtin_add_overflow(a, b, r);
}

/* ---- dtypes and conversion (convert.c) ---------------------------------- */
/* Converts n elements from `src` (src_dtype) to `dst` (dst_dtype), both
 * C-contiguous, with Tensor.copy_'s rules (float->int truncates toward zero,
 * ->bool is x != 0, float->half/bfloat16 rounds to nearest even). src and dst
 * must not overlap unless the dtypes are equal and src == dst. */
void tsd__convert(void *dst, tsd_dtype dst_dtype, const void *src,
                  tsd_dtype src_dtype, size_t n);
float tsd__half_to_float(uint16_t h);
uint16_t tsd__float_to_half(float f);
float tsd__bf16_to_float(uint16_t h);
uint16_t tsd__float_to_bf16(float f);
/* One float8 value of dtype t (a TSD_FLOAT8_*) to float and back, c10's
 * rules (convert.c). */
float tsd__fp8_to_float(uint8_t x, tsd_dtype t);
uint8_t tsd__float_to_fp8(float f, tsd_dtype t);
bool tsd__dtype_valid(int dtype);

/* ---- byte source (source.c) --------------------------------------------- */
typedef struct tsd__source {
  const tsd_allocator *al; /* for `name` */
  int fd;               /* -1 for memory */
  const uint8_t *mem;   /* non-NULL for memory */
  uint64_t size;
  char *name;           /* path, or "<memory>", for messages (owned) */
  /* Named by another file (a shard of an index), not by the user: until
   * its bytes prove to be a checkpoint, messages must not quote them (a
   * shard may be a symlink to any file the user can read). */
  bool indirect;
  /* TSD_OPEN_MAP: the whole file mapped read-only (mapview.c), else NULL */
  const uint8_t *map;
} tsd__source;
tsd_status tsd__source_open_file(tsd__source *s, const char *path,
                                 const tsd_allocator *al);
tsd_status tsd__source_open_memory(tsd__source *s, const void *p, size_t n,
                                   const tsd_allocator *al);
void tsd__source_close(tsd__source *s);
/* "directory", "FIFO", "character device", ... for an st_mode. */
const char *tsd__file_type_name(unsigned mode);
/* Opens an input file for reading without ever blocking on it: a FIFO,
 * device, directory or socket is refused at once (TSD_ERR_IO naming the
 * path and the file type). *out_fd is blocking, O_CLOEXEC; *size if
 * non-NULL. Every input tsd opens by path goes through here. */
tsd_status tsd__open_regular(const char *path, int *out_fd, uint64_t *size);
/* Reads exactly n bytes at `off`; TSD_ERR_FORMAT if past the end (message
 * names `what` and the offset), TSD_ERR_IO on a read error. */
tsd_status tsd__source_read(const tsd__source *s, uint64_t off, void *dst,
                            size_t n, const char *what);

/* ---- the unpickled value tree (pickle_vm.c, legacy.c) -------------------- */

typedef struct tsd__storage {
  tsd_dtype dtype;
  uint64_t numel;       /* elements, as declared and checked */
  uint64_t nbytes;      /* numel * itemsize */
  uint64_t offset;      /* byte offset of the data in the source */
  const uint8_t *mem;   /* non-NULL: data lives here instead (synthetic) */
  const char *key;      /* storage key / record name, for messages */
  /* non-NULL: `offset` is in this source, not the checkpoint's own (the
   * shards of a sharded checkpoint, sharded.c) */
  const tsd__source *src;
  bool untyped;  /* a torch.storage.UntypedStorage (dtype uint8: bytes) */
  /* a big-endian file: reads reverse the bytes of each `swap`-byte unit
   * (the element, or each half of a complex element); 0 or 1: none */
  uint8_t swap;
  bool big_file; /* (platform) the file says `byteorder` big: an untyped
                  * storage viewed as a wider dtype swaps by that dtype */
} tsd__storage;

typedef struct tsd__tensor {
  tsd__storage *storage;
  tsd_dtype dtype;      /* == storage->dtype */
  size_t ndim;
  int64_t *shape;       /* ndim */
  int64_t *stride;      /* ndim, in elements */
  int64_t offset;       /* storage offset, elements */
  int64_t numel;
  bool is_parameter;
  bool contiguous;      /* C-contiguous (size-1 dims' strides ignored) */
  bool numpy;           /* a numpy.ndarray (objects.c), not a torch tensor */
} tsd__tensor;

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
/* "<class 'numpy.float32'>" ... for a value with a numpy code, else NULL. */
const char *tsd__np_scalar_repr(const tsd__value *v);

/* Python's `type(x)` text for a value: "<class 'int'>", ... (static). */
const char *tsd__type_repr(const tsd__value *v);
tsd_kind tsd__public_kind(const tsd__value *v);
/* "module.qualname" of a placeholder OBJECT's class, else NULL. */
const char *tsd__object_class(const tsd__value *v);

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
} tsd__parsed;

/* Limits with defaults filled in. */
typedef struct tsd__limits {
  uint32_t max_depth;
  uint64_t max_objects;
  uint64_t max_pickle_bytes;
  uint64_t max_output_ratio; /* as given (0: the default, write.c) */
} tsd__limits;
void tsd__limits_resolve(tsd__limits *out, const tsd_open_options *opts);

/* A pickled nn.Module: a placeholder whose state has the dicts
 * `_parameters`, `_buffers` and `_modules` (objects.c). */
bool tsd__is_module(const tsd__value *v);
/* What Module.state_dict() returns for such a module, rebuilt in `a`: an
 * OrderedDict with `_metadata`. TSD_ERR_UNSUPPORTED (naming the module)
 * where the pickle cannot give it exactly; TSD_ERR_LIMIT past the limits. */
tsd_status tsd__module_state_dict(tsd__arena *a, const tsd__limits *lim,
                                  const tsd__value *module, tsd__value **out);

/* pickle_vm.c: how persistent ids are resolved, per format. */
typedef struct tsd__persistent_ctx tsd__persistent_ctx;
typedef tsd_status (*tsd__persistent_fn)(tsd__persistent_ctx *ctx,
                                         tsd__value *pid, tsd__value **out);
/* Unpickles one pickle from buf[0..len). Values live in `arena`. *used gets
 * the number of bytes consumed (up to and including STOP). */
tsd_status tsd__unpickle(const uint8_t *buf, size_t len, size_t *used,
                         tsd__arena *arena, const tsd__limits *limits,
                         tsd__persistent_fn persistent,
                         tsd__persistent_ctx *pctx, const char *what,
                         tsd__value **out);
/* On failure *used is SIZE_MAX when the pickle ran past `len` (a caller
 * reading a stream of unknown length may retry with more bytes), else 0. */
/* The dtype of an allow-listed torch.*Storage class value (torch_globals.c). */
bool tsd__storage_type_dtype(const tsd__value *v, tsd_dtype *out);
/* torch.storage.UntypedStorage (for which tsd__storage_type_dtype gives
 * uint8: its persistent id counts bytes). */
bool tsd__storage_type_untyped(const tsd__value *v);

/* zip.c / legacy.c: parse a whole checkpoint from a source. */
tsd_status tsd__read_zip(const tsd__source *src, tsd__arena *arena,
                         const tsd__limits *limits, tsd__parsed *out);
tsd_status tsd__read_legacy(const tsd__source *src, tsd__arena *arena,
                            const tsd__limits *limits, tsd__parsed *out);
/* safetensors.c: a safetensors file (header checked against every rule of
 * the format; tensor bytes stay in the file). */
tsd_status tsd__read_safetensors(const tsd__source *src, tsd__arena *arena,
                                 const tsd__limits *limits, tsd__parsed *out);
/* checkpoint.c: any single-file format, detected from the first bytes
 * (safetensors, zip, legacy). */
tsd_status tsd__read_file_format(const tsd__source *src, tsd__arena *arena,
                                 const tsd__limits *limits, tsd__parsed *out);

/* ---- JSON (json.c): strict RFC 8259, exact int64, into an arena --------- */
typedef enum tsd__jkind {
  TSD__J_NULL,
  TSD__J_BOOL,
  TSD__J_INT, /* an integer literal that fits int64 */
  TSD__J_NUM, /* any other number (text in s) */
  TSD__J_STR,
  TSD__J_ARR,
  TSD__J_OBJ
} tsd__jkind;
typedef struct tsd__json tsd__json;
/* 24 bytes: parse memory is bounded by the nodes per input byte (json.c). */
struct tsd__json {
  uint8_t kind; /* tsd__jkind */
  bool b;       /* BOOL */
  union {
    uint32_t len; /* STR, NUM: bytes of s */
    uint32_t n;   /* ARR, OBJ: number of items */
  };
  union {
    int64_t i;         /* INT (no text kept) */
    const char *s;     /* STR: NUL-terminated UTF-8 (no NUL inside); NUM text */
    tsd__json **items; /* ARR, OBJ: n values, in document order */
  };
  tsd__json **keys; /* OBJ: n names (TSD__J_STR), distinct */
};
/* Parses text[0..len) (one value, whitespace around it). Containers may
 * nest max_depth levels (1: a flat object). Errors are TSD_ERR_FORMAT
 * "<what>: bad JSON at byte N: ...". Memory: at most 16 bytes per input
 * byte in the arena and in temporaries together (json.c says why); nodes
 * that carry nothing but their kind and value (null, true, false, "", [],
 * {}, integers of two characters) are shared and read-only. */
tsd_status tsd__json_parse(const char *text, size_t len, tsd__arena *arena,
                           uint32_t max_depth, const char *what,
                           tsd__json **out);
/* The member `key` of an object, or NULL. */
const tsd__json *tsd__json_get(const tsd__json *obj, const char *key);
const char *tsd__json_kind_name(tsd__jkind kind); /* "an object", ... */
/* Strict UTF-8 (no overlong forms, no surrogates, <= U+10FFFF). */
bool tsd__utf8_valid(const char *s, size_t n);

/* ---- showing strings from files (text.c) -------------------------------- */
/* Decodes one UTF-8 sequence at s[0..n) (n > 0); returns its length, or 0
 * if the bytes are not UTF-8. Encoded surrogates are accepted (pickle
 * decodes with 'surrogatepass'). */
size_t tsd__utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Appends s[0..len) escaped as tsd_escape does. */
void tsd__buf_escape(tsd__buf *b, const char *s, size_t len,
                     tsd_escape_mode mode);

/* ---- checkpoint (checkpoint.c) ------------------------------------------ */

struct tsd_checkpoint {
  tsd_allocator alloc;     /* the caller's hooks, copied */
  const tsd_allocator *al; /* &alloc, or NULL for libc */
  tsd__source src;
  tsd__arena arena;
  tsd__parsed parsed;
  tsd__value *current;   /* the current dict, or NULL if the root is no dict */
  /* live view of `current`: positions into current->u.dict, popped removed */
  size_t *live;
  size_t n_live;
  tsd__strmap index;     /* key -> position in `live` */
  /* a sharded checkpoint's shard files (sharded.c); storages point at them */
  tsd__source *shards;
  size_t n_shards;
  tsd_status view_status;/* non-OK if a key is not a str or is duplicated */
  char *view_error;      /* message for view_status */
  uint64_t max_output_ratio; /* tsd_limits.max_output_ratio, 0: default */
};

/* Current-dict access for the engine. Keys are TSD__V_STR values. */
size_t tsd__ckpt_count(const tsd_checkpoint *c);
const tsd__value *tsd__ckpt_key(const tsd_checkpoint *c, size_t i);
const tsd__value *tsd__ckpt_val(const tsd_checkpoint *c, size_t i);
bool tsd__ckpt_lookup(const tsd_checkpoint *c, const char *key, size_t len,
                      size_t *out_i);
/* The current dict's `_metadata` (a dict value) or NULL. */
const tsd__value *tsd__ckpt_metadata(const tsd_checkpoint *c);
/* `_metadata`[prefix]['version'] or -1. */
int64_t tsd__metadata_version(const tsd__value *metadata, const char *prefix);

/* Memory a tensor read uses for its staging buffers instead of allocating:
 * tsd_load allocates it before copying anything, so that running out of
 * memory can never leave a model partly loaded. */
typedef struct tsd__scratch {
  uint8_t *p;
  size_t len;
  bool one_thread; /* tsd_load_options.threads == 1: start no worker */
} tsd__scratch;

/* Reads tensor `t` into dst as C-contiguous `dtype` (numel*itemsize bytes).
 * Handles storage offset, strides, in-memory storages, conversion; never
 * reads outside the tensor's storage (checked when the tensor was built).
 * Staging buffers come from `scratch` when it is large enough (see
 * tsd__tensor_read_scratch), else from the checkpoint's allocator; NULL
 * scratch is allowed. */
tsd_status tsd__tensor_read(const tsd_checkpoint *c, const tsd__tensor *t,
                            tsd_dtype dtype, void *dst,
                            const tsd__scratch *scratch);
/* The scratch bytes a read of `t` as `dtype` needs to allocate nothing
 * (0 for a same-dtype contiguous read or an in-memory storage). */
size_t tsd__tensor_read_scratch(const tsd__tensor *t, tsd_dtype dtype,
                                bool one_thread);

typedef struct tsd__afile tsd__afile;

/* ---- models (model.c) --------------------------------------------------- */

typedef struct tsd__mtensor {
  char *name;          /* full dotted name (owned) */
  const char *local;   /* last component, points into name */
  size_t module;       /* index of the owning module */
  tsd_tensor_role role;
  tsd_dtype dtype;
  size_t ndim;
  int64_t *shape;      /* owned */
  int64_t numel;
  void *data;          /* C-owned models: caller's memory, or the mapped
                          view it is bound to (views: `bound`) */
  void *handle;        /* model-kind specific (the shim's tensor) */
  void *own;           /* C-owned models: the caller's memory (may be NULL:
                          tsd_model_add_tensor_unbacked) */
  const tsd_checkpoint *bound; /* views: data borrowed from this checkpoint's
                                  map (TSD_LOAD_BIND), else NULL */
} tsd__mtensor;

typedef enum tsd__norm {
  TSD__NORM_NONE = 0,
  TSD__NORM_BATCH = 1,   /* _NormBase (BatchNorm*, SyncBatchNorm, Lazy...) */
  TSD__NORM_INSTANCE = 2 /* _InstanceNorm (also a _NormBase) */
} tsd__norm;

typedef struct tsd__module {
  char *prefix;        /* "" for the root, else dotted path (owned) */
  const char *local;   /* last component (into prefix) */
  char *type_name;     /* declared PyTorch class name, or NULL */
  int64_t version;     /* _metadata version to save */
  tsd__norm norm;
  size_t parent;       /* SIZE_MAX for the root */
  size_t *children;    /* module indices, registration order (owned) */
  size_t n_children, cap_children;
  size_t *tensors;     /* tensor indices, registration order (owned) */
  size_t n_tensors, cap_tensors;
  /* branch model: the module's class overrides set_extra_state
   * (tsd_model_set_extra_state; the shim for a scripted set_extra_state):
   * non-NULL extra_fn is called with prefix + "_extra_state"'s value */
  tsd_extra_state_fn extra_fn;
  void *extra_user;
} tsd__module;

typedef struct tsd__model_ops {
  /* Copies checkpoint tensor `src` (same numel as `t`, already validated)
   * into model tensor `t`, converting dtype. */
  tsd_status (*copy_in)(tsd_model *m, tsd__mtensor *t,
                        const tsd_checkpoint *c, const tsd__tensor *src,
                        const tsd__scratch *scratch);
  /* Reads model tensor `t` as C-contiguous `dtype` into dst. */
  tsd_status (*read)(const tsd_model *m, const tsd__mtensor *t,
                     tsd_dtype dtype, void *dst);
  /* Writes the model in its own format into `out` (tsd_model_save opens
   * and commits it). */
  tsd_status (*save)(const tsd_model *m, tsd__afile *out);
  /* Frees the kind-specific parts (impl, tensor handles). */
  void (*destroy)(tsd_model *m);
  /* Optional: reads elements [first, first + count) of `t` (C order) as
   * `dtype`, so writers stream a tensor in windows. NULL: writers read
   * tensors that are not in memory whole. */
  tsd_status (*read_range)(const tsd_model *m, const tsd__mtensor *t,
                           tsd_dtype dtype, uint64_t first, uint64_t count,
                           void *dst);
} tsd__model_ops;

struct tsd_model {
  tsd_allocator alloc;     /* the caller's hooks, copied */
  const tsd_allocator *al; /* &alloc, or NULL for libc */
  char *class_name;
  tsd__module *modules;   /* modules[0] is the root */
  size_t n_modules, cap_modules;
  tsd__mtensor *tensors;
  size_t n_tensors, cap_tensors;
  tsd__strmap tensor_index;  /* name -> tensor index */
  tsd__strmap module_index;  /* prefix -> module index */
  const tsd__model_ops *ops;
  void *impl;
  size_t *order;  /* cached tsd__model_order (model.c); NULL when stale */
  /* tsd_model_from_checkpoint: any dict key is a tensor name; one that is
   * no module path ('', 'a..b') is a root tensor under its whole name */
  bool any_key_names;
};

/* Creates an empty model with a root module, for any model kind. */
tsd_status tsd__model_create(tsd_model **out, const char *class_name,
                             const tsd__model_ops *ops, void *impl,
                             const tsd_allocator *al);
/* Adds a tensor (name checked, modules on its path created). *out_index
 * may be NULL. `data`/`handle` stored as given. */
tsd_status tsd__model_add(tsd_model *m, const char *name, tsd_tensor_role role,
                          tsd_dtype dtype, size_t ndim, const int64_t *shape,
                          void *data, void *handle, size_t *out_index);
/* Finds or creates the module at `prefix`; sets its type if type_name is
 * not NULL. */
tsd_status tsd__model_module(tsd_model *m, const char *prefix,
                             const char *type_name, int64_t version,
                             size_t *out_index);
/* The norm kind PyTorch gives a class name ("BatchNorm2d" -> BATCH). */
tsd__norm tsd__norm_of_type(const char *type_name);
/* Tensor indices in state_dict order (pre-order: params, buffers, children).
 * Returns a new array of m->n_tensors (tsd__free) or NULL on OOM. */
size_t *tsd__model_order(const tsd_model *m);
/* Module indices in pre-order (a new array of n_modules, or NULL). */
size_t *tsd__model_module_preorder(const tsd_model *m);
/* Index of the tensor named / the module at prefix (s, n): true if found. */
bool tsd__model_find_tensor(const tsd_model *m, const char *s, size_t n,
                            size_t *out);
bool tsd__model_find_module(const tsd_model *m, const char *s, size_t n,
                            size_t *out);

/* ---- reports (report.c), built by the engine ----------------------------- */
/* All return TSD_OK or TSD_ERR_NOMEM. */
/* The report allocates with `al` (the model's allocator; NULL: libc). */
tsd_status tsd__report_new(tsd_report **out, const char *class_name,
                           const tsd_allocator *al);
/* Appends a copy of `text` to a string list (MISSING, UNEXPECTED, ERRORS). */
tsd_status tsd__report_add(tsd_report *r, tsd_list list, const char *text,
                           size_t len);
/* TSD_LIST_MISMATCHED: appends the size-mismatch error text to the error
 * list and the entry; TSD_LIST_POPPED: the entry only. */
tsd_status tsd__report_add_mismatch(tsd_report *r, tsd_list list,
                                    const char *key, size_t ckpt_ndim,
                                    const int64_t *ckpt_shape,
                                    size_t model_ndim,
                                    const int64_t *model_shape);
/* load_state_dict's ending: the strict Missing/Unexpected lines, ok, the
 * message and the JSON. */
tsd_status tsd__report_finish(tsd_report *r, bool strict);
/* Appends "torch.Size([1000, 768])". */
void tsd__shape_repr(tsd__buf *b, size_t ndim, const int64_t *shape);

/* ---- key remapping (remap.c), used by the engine ------------------------ */

/* The keys of a checkpoint's current dict as one load sees them, after the
 * tsd_load_options remapping (strip, rename, add). */
typedef struct tsd__vkey {
  const char *name; /* as the model sees it (borrowed or in `arena`) */
  size_t len;
  size_t src;       /* index in the checkpoint's current dict */
} tsd__vkey;

typedef struct tsd__remap {
  const char *const *strip;
  size_t n_strip;
  const tsd_rename *renames;
  size_t n_renames;
  const char *add;     /* NULL or "" for none */
  bool strip_metadata; /* 2.x's consume_prefix also strips `_metadata` */
} tsd__remap;

typedef struct tsd__keyview {
  const tsd_checkpoint *c;
  const tsd_allocator *al; /* the loading model's */
  bool identity;       /* no remapping: names and order are the dict's */
  size_t n;
  tsd__vkey *keys;     /* n, in the order the load sees them */
  tsd__strmap map;     /* name -> position in keys */
  tsd__arena arena;
  /* `_metadata` after remapping, when it changes (else meta_names NULL) */
  const tsd__value *meta;
  tsd__vkey *meta_names; /* src = index into meta_versions */
  int64_t *meta_versions;
  size_t n_meta;
  tsd__strmap meta_map;
} tsd__keyview;

/* Builds the view; `r` NULL means no remapping. TSD_ERR_INVALID_ARG for a
 * bad rule or two keys remapped to one name, TSD_ERR_NOMEM. */
tsd_status tsd__keyview_build(tsd__keyview *v, const tsd_checkpoint *c,
                              const tsd__remap *r, const tsd_allocator *al);
void tsd__keyview_free(tsd__keyview *v);
/* Position of `key` in the view. */
bool tsd__keyview_find(const tsd__keyview *v, const char *key, size_t len,
                       size_t *out);
/* The `_metadata` version of module `prefix` as the model names it, or -1. */
int64_t tsd__keyview_version(const tsd__keyview *v, const char *prefix);

/* sharded.c: reads the index c->src (a `*.index.json`) and its shards into
 * c->parsed / c->shards. */
tsd_status tsd__read_sharded(tsd_checkpoint *c, const tsd__limits *limits);

/* ---- output files (afile.c): the one atomic writer ---------------------- */
/* An output being written: an unnamed (O_TMPFILE) or ".tsd-XXXXXX" file in
 * the destination's directory, given its name by tsd__afile_commit (fsync,
 * link/rename, fsync of the directory), or a caller's descriptor written
 * through. The rules are at the top of afile.c. */
typedef struct tsd__afile {
  const tsd_allocator *al;
  const char *name; /* for messages: the path, or the descriptor's name */
  const char *path; /* the destination, NULL for a caller's descriptor */
  int fd, dirfd;
  char *dir, *base;  /* the destination's directory and last component */
  char tmp[12];      /* the named temporary in dir, "" if none */
  bool caller_fd;    /* fd is the caller's: written through, kept open */
  bool seekable;     /* tsd__afile_pwrite works */
  uint64_t base_off; /* a caller's regular file: where the output starts */
  uint64_t off;      /* bytes written so far */
  void (*temp_file)(void *user, const char *temp_path);
  void *temp_user;
  /* cli: tsd_save_options.progress, called by tsd__afile_write (set by
   * tsd_model_save_ex after opening) */
  tsd_progress_fn progress;
  void *progress_user;
  uint64_t progress_total;
} tsd__afile;
/* Opens an output at `path` (refusing a non-regular file there) or on the
 * caller's descriptor `fd` (`name` for messages). On failure nothing is
 * left to clean up. */
tsd_status tsd__afile_open(tsd__afile *f, const tsd_allocator *al,
                           const char *path,
                           void (*temp_file)(void *, const char *),
                           void *temp_user);
tsd_status tsd__afile_open_fd(tsd__afile *f, const tsd_allocator *al, int fd,
                              const char *name);
/* tsd__afile_open; `named` skips O_TMPFILE (tests of the fallback). */
tsd_status tsd__afile_open_ex(tsd__afile *f, const tsd_allocator *al,
                              const char *path,
                              void (*temp_file)(void *, const char *),
                              void *temp_user, bool named);
/* Appends; TSD_ERR_IO naming the output and offset (a full disk: ENOSPC). */
tsd_status tsd__afile_write(tsd__afile *f, const void *p, size_t n);
/* Overwrites bytes already written at `off` (only when f->seekable). */
tsd_status tsd__afile_pwrite(tsd__afile *f, uint64_t off, const void *p,
                             size_t n);
/* Makes the file the destination, durably; on failure the old file is
 * intact and no temporary is left. Either way `f` is closed. */
tsd_status tsd__afile_commit(tsd__afile *f);
/* Drops the output (the old file stays). Safe on a closed/zeroed afile. */
void tsd__afile_abort(tsd__afile *f);

/* Bytes a writer reads from a model at a time (tensors not in memory are
 * streamed through a buffer this large, never held whole). */
#define TSD__WRITE_WINDOW ((size_t)4 << 20)

/* safetensors.c: writes the model's persistent tensors (state_dict order)
 * as a safetensors file into `out`. */
tsd_status tsd__save_safetensors(const tsd_model *m, tsd__afile *out);

/* save.c: writes a C-owned model as a torch.save .pth into `out`. */
tsd_status tsd__save_pth(const tsd_model *m, tsd__afile *out);
/* Hands the bytes of model tensor `t` (its own dtype, C order) to `sink`
 * in order: at once when in memory, else in windows read into `win`
 * (TSD__WRITE_WINDOW bytes) through the model's read_range, else (a model
 * kind without one) read whole into a temporary (write.c). */
typedef tsd_status (*tsd__sink_fn)(void *ctx, const void *p, size_t n);
tsd_status tsd__model_stream(const tsd_model *m, const tsd__mtensor *t,
                             void *win, tsd__sink_fn sink, void *ctx);
/* Reads elements [first, first + count) of checkpoint tensor `t` (C order)
 * as `dtype` into dst, in strided sub-views of t (write.c). */
tsd_status tsd__tensor_read_range(const tsd_checkpoint *c, const tsd__tensor *t,
                                  tsd_dtype dtype, uint64_t first,
                                  uint64_t count, void *dst);
/* tsd__save_pth to a path, with ZIP64 fields for every size/offset >=
 * zip64_at (tests force ZIP64 on small files; tsd__save_pth uses
 * 0xFFFFFFFF). */
tsd_status tsd__save_pth_ex(const tsd_model *m, const char *path,
                            uint64_t zip64_at);

/* ---- TorchScript archives read without running them (torchscript_state.c)
 * A parameter or buffer of the module tree, state_dict order. */
typedef struct tsd__ts_entry {
  const char *name;
  tsd_tensor_role role; /* PARAMETER, PARAMETER_NONE or BUFFER */
  tsd__value *tensor;   /* a TENSOR value; NULL for a None parameter */
} tsd__ts_entry;
typedef struct tsd__ts_module {
  const char *prefix, *class_name; /* pre-order; class unmangled */
  bool extra_state; /* its class defines set_extra_state (branch model) */
} tsd__ts_module;
typedef struct tsd__ts_state {
  tsd__ts_entry *entries;
  size_t n_entries;
  tsd__ts_module *modules;
  size_t n_modules;
  const char *root_class;
} tsd__ts_state;
/* When p->root (from tsd__read_zip) is a TorchScript module placeholder:
 * reads the archive's code files, replaces p->root by the state dict and
 * sets p->torchscript. Anything else: no change. */
tsd_status tsd__torchscript_state(const tsd__source *src, tsd__arena *arena,
                                  const tsd__limits *limits, tsd__parsed *p);
/* For the shim, before LibTorch's unpickler sees the archive at `path`:
 * its zip structure, and constants.pkl and data.pkl through tsd's
 * restricted unpickler within the default limits (every length, index and
 * tensor bounded by the sizes the pickle declares; the shim then checks
 * those against the records). Module state is not interpreted. */
tsd_status tsd__torchscript_check(const char *path);
/* zip.c: records `<prefix><names[i]>` (prefix: data.pkl's folder) into the
 * arena, NUL-terminated; texts[i] NULL when absent; TSD_ERR_LIMIT over
 * max_bytes. */
tsd_status tsd__zip_read_records(const tsd__source *src, tsd__arena *arena,
                                 const tsd__limits *limits,
                                 const char *const *names, size_t n,
                                 uint64_t max_bytes, char **texts,
                                 size_t *lens);

/* inflate.c: raw DEFLATE of in[0..in_len) into exactly out_len bytes;
 * TSD_ERR_FORMAT (naming `what`) for corrupt data or another size. */
tsd_status tsd__inflate(const uint8_t *in, size_t in_len, uint8_t *out,
                        size_t out_len, const char *what);

/* ---- parse memory budget (branch `parse`) ---------------------------------
 * What one parse of S bytes of pickle may hold: its values in the arena and
 * the unpickler's working arrays (stack, marks, memo) together at most
 * TSD__PARSE_RATIO * S + TSD__PARSE_SLACK bytes (tsd__unpickle enforces it,
 * TSD_ERR_LIMIT past it; a reader with several pickles in one file sets one
 * arena limit for all of them, tsd__parse_budget). JSON keeps the same
 * bound by construction (json.c). */
#define TSD__PARSE_RATIO 16u
#define TSD__PARSE_SLACK ((uint64_t)1 << 20)
/* arena->held + RATIO * bytes + SLACK (UINT64_MAX on overflow). */
uint64_t tsd__parse_budget(const tsd__arena *a, uint64_t bytes);
/* A point to roll an arena back to (tsd__arena_release frees everything
 * allocated after it; pointers into that memory become invalid). */
typedef struct tsd__arena_mark {
  tsd__arena_block *head;
  size_t used;
  uint64_t total, held;
} tsd__arena_mark;
tsd__arena_mark tsd__arena_get_mark(const tsd__arena *a);
void tsd__arena_release(tsd__arena *a, tsd__arena_mark m);
/* p[0..n), from this arena and no longer used (a container's items before
 * it grew), may serve later allocations: the largest such block is kept. */
void tsd__arena_recycle(tsd__arena *a, void *p, size_t n);

/* ---- platform (branch `platform`): crc32.c, byteorder.c ----------------- */
/* zlib's crc32 (ISO-HDLC): crc = tsd__crc32(0, p, n), chained by passing the
 * previous value. The OS below tsd is platform.h. */
uint32_t tsd__crc32(uint32_t crc, const void *data, size_t n);
/* 1 on a big-endian machine (s390x): tensor data in files is little-endian
 * (every format tsd reads and writes), so it is byte-swapped per element on
 * the way in and out (tsd__swap_elems). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define TSD__BIG_ENDIAN 1
#else
#define TSD__BIG_ENDIAN 0
#endif
/* Reverses the bytes of each of `count` elements of `elsize` bytes (1: no
 * op; complex types swap each half: pass the component size). */
void tsd__swap_elems(void *p, size_t elsize, size_t count);
/* tsd__storage.swap for a storage of `dtype` in a file of the given byte
 * order: 0 when it is the machine's, else the unit to reverse (the element,
 * or each half of a complex element; 0 for one-byte types). */
uint8_t tsd__swap_unit(tsd_dtype dtype, bool file_big);

/* libtsd_torch (shim/torchscript.cpp; shim/torchscript_stub.c without
 * LibTorch), not libtsd. Called only by tsd_model_open_torchscript, which
 * checks out and path and gives "cpu" for a NULL device. */
tsd_status tsd__torchscript_open(tsd_model **out, const char *path,
                                 const char *device);

/* ---- views (branch `views`): mapped views, binding, ranged reads -------- */
/* mapview.c: maps s (a file source) whole, read-only, shared (s->map). An
 * empty file is not mapped (nothing in it can be viewed). The platform
 * part is these two functions. */
tsd_status tsd__source_map(tsd__source *s);
void tsd__source_unmap(tsd__source *s);
/* The address of tensor t's element 0 where its bytes lie (the map, the
 * caller's memory of tsd_checkpoint_open_memory, or memory the checkpoint
 * holds), for a view: TSD_OK, or TSD_ERR_UNSUPPORTED with the reason as
 * the message (not mapped, big-endian, misaligned). `key` names it. */
tsd_status tsd__tensor_view(const tsd_checkpoint *c, const tsd__tensor *t,
                            const char *key, const void **out);
/* C-owned models (model.c). */
bool tsd__model_is_cown(const tsd_model *m);

#ifdef __cplusplus
}
#endif

#endif /* TSD_INTERNAL_H */
