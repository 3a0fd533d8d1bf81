/*
 * formats.h — the readers (c_api/src/formats/), over value/: each turns a
 * source into a parsed value tree (tsd__parsed); none knows the checkpoint
 * that will hold it.
 *   detect.c           which reader a file needs (first bytes, *.json)
 *   pickle_vm.c        the restricted unpickler's machine (opcodes, stack,
 *                      memo, marks, limits; pickle_vm.h is its interface)
 *   torch_globals.c    the allow-listed globals: torch's rebuild functions
 *   objects.c          inert placeholders for other globals, numpy data, a
 *                      pickled nn.Module's state dict
 *   zip.c, inflate.c   torch.save's zip (ZIP64, stored or deflated records)
 *   legacy.c           the legacy (pre-1.6) torch.save format
 *   json.c             a strict JSON parser (safetensors headers, indexes)
 *   safetensors.c      the safetensors format
 *   sharded.c          `*.index.json` sharded checkpoints read as one tree
 *   torchscript_state.c a TorchScript archive's state dict, never run
 * Not installed; not public.
 */
#ifndef TSD_FORMATS_H
#define TSD_FORMATS_H

#include "value.h"

#ifdef __cplusplus
extern "C" {
#endif

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
/* The format's name of a dtype ("F32"), NULL where it has none. */
const char *tsd__st_dtype_name(tsd_dtype d);
/* detect.c: any single-file format, detected from the first bytes
 * (safetensors, zip, legacy); a TorchScript archive is read as its state
 * dict (torchscript_state.c). */
tsd_status tsd__read_file_format(const tsd__source *src, tsd__arena *arena,
                                 const tsd__limits *limits, tsd__parsed *out);
/* detect.c: what tsd_checkpoint_open reads: a sharded index (by its path:
 * an opened file named *.json) or any single-file format. `al` allocates
 * the shards' sources (out->shards, closed by tsd__parsed_close even when
 * this fails). */
tsd_status tsd__read_checkpoint(const tsd__source *src, tsd__arena *arena,
                                const tsd__limits *limits,
                                const tsd_allocator *al, tsd__parsed *out);
/* sharded.c: reads the index `src` (a `*.index.json`) and its shards into
 * `out` (out->shards, as tsd__read_checkpoint). */
tsd_status tsd__read_sharded(const tsd__source *src, tsd__arena *arena,
                             const tsd__limits *limits,
                             const tsd_allocator *al, tsd__parsed *out);

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

#ifdef __cplusplus
}
#endif

#endif /* TSD_FORMATS_H */
