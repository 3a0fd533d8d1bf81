/* safetensors.c — the safetensors format (huggingface/safetensors), read
 * (write/safetensors_write.c writes it).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON header
 * (UTF-8, starting with '{', possibly padded with trailing spaces), then the
 * data section. The header maps each tensor name to
 * {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]} with
 * offsets relative to the data section, plus an optional "__metadata__"
 * str -> str map. Data is C-order, little-endian, no strides.
 *
 * Reading checks every rule the reference reader (the Rust crate's
 * `SafeTensors::read_metadata` / `validate`) checks, and some more:
 * N <= 100,000,000 (its MAX_HEADER_SIZE) and within the file; the header
 * valid UTF-8 JSON starting with '{' (no duplicate names: json.c); a known
 * dtype; a shape of non-negative integers; data_offsets exactly two
 * integers, begin <= end; end - begin == numel * itemsize, overflow-checked;
 * the tensors, sorted by offset, tiling the data section exactly from 0 to
 * its end (no gap, no overlap, no trailing bytes). Tensors keep their bytes
 * in the file: a storage per tensor points at them, so a read converts or
 * copies straight into the destination, as for .pth.
 *
 * Key order is what a Python user sees: safetensors.torch.load_file builds
 * its dict from safe_open(...).keys(), which sorts the names (Rust's
 * `keys.sort()` on String: byte order, which for UTF-8 is code point order,
 * Python's str order), whatever order the header has. So listings and a
 * non-strict load's unexpected keys come in that order. The engine takes
 * its own order from the model.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

#define ST_MAX_HEADER 100000000ull

/* safetensors dtype names, by tsd_dtype (the Rust crate's `Dtype`; the
 * Python library maps F8_E4M3 <-> torch.float8_e4m3fn, F8_E8M0 <->
 * float8_e8m0fnu, C64 <-> complex64). NULL: the format has no name for it
 * (the fnuz float8 types, complex32, complex128), so it cannot be written. */
static const char *const ST_NAMES[TSD_DTYPE_COUNT] = {
    [TSD_FLOAT32] = "F32",   [TSD_FLOAT64] = "F64", [TSD_FLOAT16] = "F16",
    [TSD_BFLOAT16] = "BF16", [TSD_INT8] = "I8",     [TSD_INT16] = "I16",
    [TSD_INT32] = "I32",     [TSD_INT64] = "I64",   [TSD_UINT8] = "U8",
    [TSD_BOOL] = "BOOL",     [TSD_FLOAT8_E4M3FN] = "F8_E4M3",
    [TSD_FLOAT8_E5M2] = "F8_E5M2", [TSD_FLOAT8_E8M0FNU] = "F8_E8M0",
    [TSD_UINT16] = "U16",    [TSD_UINT32] = "U32",  [TSD_UINT64] = "U64",
    [TSD_COMPLEX64] = "C64"};

static bool st_dtype(const char *s, tsd_dtype *out) {
  for (int d = 0; d < TSD_DTYPE_COUNT; d++)
    if (ST_NAMES[d] && strcmp(s, ST_NAMES[d]) == 0) {
      *out = (tsd_dtype)d;
      return true;
    }
  return false;
}

/* ---- reading --------------------------------------------------------------
 */

typedef struct span {
  uint64_t begin, end;
  size_t index; /* position in the root dict */
} span;

static int span_cmp(const void *a, const void *b) {
  const span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

static tsd__value *new_value(tsd__arena *a, tsd__vkind kind) {
  tsd__value *v = tsd__arena_alloc(a, sizeof *v);
  if (v) v->kind = kind;
  return v;
}

static tsd__value *new_str(tsd__arena *a, const char *s, size_t n) {
  tsd__value *v = new_value(a, TSD__V_STR);
  if (!v) return NULL;
  v->u.s.p = TSD__UNCONST(char *, s); /* json.c strings live in the same arena */
  v->u.s.len = n;
  return v;
}

/* A dict value with room for n entries (len 0). */
static tsd__value *new_dict(tsd__arena *a, size_t n) {
  tsd__value *d = new_value(a, TSD__V_DICT);
  if (!d) return NULL;
  d->depth = 1;
  if (n) {
    d->u.dict.keys = tsd__arena_alloc(a, n * sizeof *d->u.dict.keys);
    d->u.dict.vals = tsd__arena_alloc(a, n * sizeof *d->u.dict.vals);
    if (!d->u.dict.keys || !d->u.dict.vals) return NULL;
  }
  d->u.dict.cap = n;
  return d;
}

static tsd_status read_metadata(const tsd__json *m, tsd__arena *a,
                                const char *name, tsd__value **out) {
  *out = NULL;
  if (m->kind == TSD__J_NULL) return TSD_OK;
  if (m->kind != TSD__J_OBJ)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: safetensors header: __metadata__ is %s, not an "
                    "object of strings",
                    name, tsd__json_kind_name(m->kind));
  tsd__value *d = new_dict(a, m->n);
  if (!d) return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", name);
  for (size_t i = 0; i < m->n; i++) {
    const tsd__json *k = m->keys[i], *v = m->items[i];
    if (v->kind != TSD__J_STR)
      return tsd__err(TSD_ERR_FORMAT,
                      "%s: safetensors header: __metadata__[\"%.200s\"] is "
                      "%s; the format allows only strings",
                      name, k->s, tsd__json_kind_name(v->kind));
    d->u.dict.keys[i] = new_str(a, k->s, k->len);
    d->u.dict.vals[i] = new_str(a, v->s, v->len);
    if (!d->u.dict.keys[i] || !d->u.dict.vals[i])
      return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", name);
  }
  d->u.dict.len = m->n;
  *out = d;
  return TSD_OK;
}

/* One tensor entry of the header: checked, turned into a tensor value
 * whose storage points at its bytes. */
static tsd_status read_tensor(const tsd__json *info, const char *key,
                              uint64_t data_start, uint64_t data_size,
                              tsd__arena *a, const char *name, tsd__value **out,
                              span *sp) {
  if (info->kind != TSD__J_OBJ)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: safetensors header: tensor '%.200s' is described by "
                    "%s, not an object",
                    name, key, tsd__json_kind_name(info->kind));
  const tsd__json *dt = tsd__json_get(info, "dtype"),
                  *shape = tsd__json_get(info, "shape"),
                  *offs = tsd__json_get(info, "data_offsets");
  const char *missing = !dt      ? "dtype"
                        : !shape ? "shape"
                        : !offs  ? "data_offsets"
                                 : NULL;
  if (missing)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: safetensors header: tensor '%.200s' has no \"%s\"",
                    name, key, missing);
  tsd_dtype dtype;
  if (dt->kind != TSD__J_STR)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: safetensors header: tensor '%.200s': dtype is %s, "
                    "not a string",
                    name, key, tsd__json_kind_name(dt->kind));
  if (!st_dtype(dt->s, &dtype))
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: safetensors tensor '%.200s' has dtype \"%.40s\", "
                    "which tsd does not handle (F32 F64 F16 BF16 I8 I16 I32 "
                    "I64 U8 BOOL)",
                    name, key, dt->s);
  if (shape->kind != TSD__J_ARR)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: safetensors header: tensor '%.200s': shape is %s, "
                    "not an array",
                    name, key, tsd__json_kind_name(shape->kind));
  if (shape->n > TSD_MAX_NDIM)
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: safetensors tensor '%.200s' has %zu dimensions "
                    "(tsd handles up to %d)",
                    name, key, (size_t)shape->n, TSD_MAX_NDIM);
  uint64_t numel = 1;
  bool too_big = false;
  for (size_t d = 0; d < shape->n; d++) {
    const tsd__json *x = shape->items[d];
    if (x->kind != TSD__J_INT || x->i < 0) {
      char num[24]; /* an INT keeps no text */
      if (x->kind == TSD__J_INT)
        snprintf(num, sizeof num, "%lld", (long long)x->i);
      return tsd__err(TSD_ERR_FORMAT,
                      "%s: safetensors header: tensor '%.200s': shape[%zu] "
                      "is %s, not a non-negative integer",
                      name, key, d,
                      x->kind == TSD__J_INT   ? num
                      : x->kind == TSD__J_NUM ? x->s
                                              : tsd__json_kind_name(x->kind));
    }
    if (!tsd__mul_u64(numel, (uint64_t)x->i, &numel)) too_big = true;
  }
  uint64_t nbytes = 0;
  if (too_big || numel > (uint64_t)INT64_MAX ||
      !tsd__mul_u64(numel, tsd_dtype_size(dtype), &nbytes))
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: safetensors header: tensor '%.200s': the shape's "
                    "byte count overflows 64 bits",
                    name, key);
  if (offs->kind != TSD__J_ARR || offs->n != 2 ||
      offs->items[0]->kind != TSD__J_INT || offs->items[0]->i < 0 ||
      offs->items[1]->kind != TSD__J_INT || offs->items[1]->i < 0)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: safetensors header: tensor '%.200s': data_offsets "
                    "is not [begin, end] of two non-negative integers",
                    name, key);
  uint64_t begin = (uint64_t)offs->items[0]->i,
           end = (uint64_t)offs->items[1]->i;
  if (begin > end || end > data_size)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: safetensors tensor '%.200s': data_offsets [%llu, "
                    "%llu] are not a range inside the data section (%llu "
                    "bytes)",
                    name, key, (unsigned long long)begin,
                    (unsigned long long)end, (unsigned long long)data_size);
  if (end - begin != nbytes)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: safetensors tensor '%.200s': data_offsets [%llu, "
                    "%llu] hold %llu bytes, but shape and dtype %s need "
                    "%llu",
                    name, key, (unsigned long long)begin,
                    (unsigned long long)end, (unsigned long long)(end - begin),
                    dt->s, (unsigned long long)nbytes);

  tsd__storage *s = tsd__arena_alloc(a, sizeof *s);
  tsd__tensor *t = tsd__arena_alloc(a, sizeof *t);
  tsd__value *v = new_value(a, TSD__V_TENSOR);
  int64_t *sh = tsd__arena_alloc(a, (shape->n + 1) * sizeof *sh);
  int64_t *stride = tsd__arena_alloc(a, (shape->n + 1) * sizeof *stride);
  if (!s || !t || !v || !sh || !stride)
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", name);
  s->dtype = dtype;
  s->numel = numel;
  s->nbytes = nbytes;
  s->offset = data_start + begin; /* no overflow: both within the file */
  s->key = key;
  s->swap = tsd__swap_unit(dtype, false); /* safetensors: little-endian */
  t->storage = s;
  t->dtype = dtype;
  t->ndim = shape->n;
  t->shape = sh;
  t->stride = stride;
  t->numel = (int64_t)numel;
  t->contiguous = true;
  int64_t acc = 1; /* PyTorch's contiguous strides: size-0 dims count as 1 */
  for (size_t d = shape->n; d-- > 0;) {
    sh[d] = shape->items[d]->i;
    stride[d] = acc;
    if (sh[d] > 1) acc = (int64_t)((uint64_t)acc * (uint64_t)sh[d]);
  }
  v->u.tensor = t;
  *out = v;
  sp->begin = begin;
  sp->end = end;
  return TSD_OK;
}

typedef struct entry_pair {
  tsd__value *key, *val;
} entry_pair;

static int pair_cmp(const void *a, const void *b) {
  const tsd__value *x = ((const entry_pair *)a)->key;
  const tsd__value *y = ((const entry_pair *)b)->key;
  size_t n = x->u.s.len < y->u.s.len ? x->u.s.len : y->u.s.len;
  int c = memcmp(x->u.s.p, y->u.s.p, n);
  if (c) return c;
  return (x->u.s.len > y->u.s.len) - (x->u.s.len < y->u.s.len);
}

/* The dict in safe_open(...).keys() order: sorted by name, bytewise (the
 * names are unique: json.c refuses duplicates). */
static tsd_status sort_by_key(tsd__value *dict, const tsd_allocator *al,
                              const char *name) {
  size_t n = dict->u.dict.len;
  if (n < 2) return TSD_OK;
  entry_pair *p = tsd__mem_alloc(al, n * sizeof *p);
  if (!p) return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", name);
  for (size_t i = 0; i < n; i++)
    p[i] = (entry_pair){dict->u.dict.keys[i], dict->u.dict.vals[i]};
  tsd__sort(p, n, sizeof *p, pair_cmp);
  for (size_t i = 0; i < n; i++) {
    dict->u.dict.keys[i] = p[i].key;
    dict->u.dict.vals[i] = p[i].val;
  }
  tsd__mem_free(al, p);
  return TSD_OK;
}

static tsd_status parse_header(const tsd__source *src, tsd__arena *arena,
                               const tsd__limits *limits, const char *text,
                               uint64_t hlen, tsd__parsed *out) {
  const char *name = src->name;
  uint64_t data_start = 8 + hlen, data_size = src->size - data_start;
  tsd__json *root = NULL;
  uint32_t depth = limits->max_depth < 3 ? limits->max_depth : 3;
  char what[64];
  snprintf(what, sizeof what, "safetensors header");
  tsd_status st =
      tsd__json_parse(text, (size_t)hlen, arena, depth, what, &root);
  if (st) return st;
  if (root->kind != TSD__J_OBJ)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: safetensors header is %s, not an object", name,
                    tsd__json_kind_name(root->kind));
  size_t n = root->n;
  const tsd__json *meta = tsd__json_get(root, "__metadata__");
  if (meta) n--;
  if (n > limits->max_objects)
    return tsd__err(TSD_ERR_LIMIT,
                    "%s: safetensors header lists %zu tensors, more than the "
                    "limit of %llu",
                    name, n, (unsigned long long)limits->max_objects);
  tsd__value *dict = new_dict(arena, n);
  tsd__storage **storages =
      n ? tsd__arena_alloc(arena, n * sizeof *storages) : NULL;
  span *spans = tsd__mem_alloc(arena->al, (n ? n : 1) * sizeof *spans);
  if (!dict || (n && !storages) || !spans) {
    tsd__mem_free(arena->al, spans);
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", name);
  }
  if (meta) st = read_metadata(meta, arena, name, &out->file_metadata);
  size_t k = 0;
  for (size_t i = 0; !st && i < root->n; i++) {
    const tsd__json *key = root->keys[i];
    if (root->items[i] == meta) continue;
    tsd__value *v = NULL;
    st = read_tensor(root->items[i], key->s, data_start, data_size, arena, name,
                     &v, &spans[k]);
    if (st) break;
    dict->u.dict.keys[k] = new_str(arena, key->s, key->len);
    if (!dict->u.dict.keys[k]) {
      st = tsd__err(TSD_ERR_NOMEM, "%s: out of memory", name);
      break;
    }
    dict->u.dict.vals[k] = v;
    storages[k] = v->u.tensor->storage;
    spans[k].index = k;
    k++;
  }
  dict->u.dict.len = k;
  if (!st) {
    /* The reference reader's rule: sorted by offsets, each tensor starts
     * where the previous one ended, and the last ends at the file's end. */
    tsd__sort(spans, n, sizeof *spans, span_cmp);
    uint64_t pos = 0;
    for (size_t i = 0; !st && i < n; i++) {
      const char *key = dict->u.dict.keys[spans[i].index]->u.s.p;
      if (spans[i].begin < pos) {
        const char *prev = dict->u.dict.keys[spans[i - 1].index]->u.s.p;
        st = tsd__err(TSD_ERR_FORMAT,
                      "%s: safetensors tensors '%.200s' and '%.200s' overlap "
                      "(data_offsets [%llu, %llu] and [%llu, %llu])",
                      name, prev, key, (unsigned long long)spans[i - 1].begin,
                      (unsigned long long)spans[i - 1].end,
                      (unsigned long long)spans[i].begin,
                      (unsigned long long)spans[i].end);
      } else if (spans[i].begin > pos) {
        st = tsd__err(TSD_ERR_FORMAT,
                      "%s: safetensors data section has a gap: bytes [%llu, "
                      "%llu) belong to no tensor (the next is '%.200s')",
                      name, (unsigned long long)pos,
                      (unsigned long long)spans[i].begin, key);
      }
      pos = spans[i].end;
    }
    if (!st && pos != data_size)
      st = tsd__err(TSD_ERR_FORMAT,
                    "%s: safetensors data section has %llu bytes but the "
                    "tensors cover only [0, %llu)",
                    name, (unsigned long long)data_size,
                    (unsigned long long)pos);
  }
  tsd__mem_free(arena->al, spans);
  if (!st) st = sort_by_key(dict, arena->al, name);
  if (st) return st;
  out->root = dict;
  out->storages = storages;
  out->n_storages = n;
  return TSD_OK;
}

tsd_status tsd__read_safetensors(const tsd__source *src, tsd__arena *arena,
                                 const tsd__limits *limits, tsd__parsed *out) {
  const char *name = src->name;
  uint8_t len8[8];
  if (src->size < 8)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: too short for safetensors (%llu bytes; the header "
                    "length alone is 8)",
                    name, (unsigned long long)src->size);
  tsd_status st =
      tsd__source_read(src, 0, len8, 8, "safetensors header length");
  if (st) return st;
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--)
    hlen = hlen << 8 | len8[i];
  /* The length is the file's first 8 bytes: of a file the user did not
   * name (a shard, perhaps a symlink to a secret), it is not quoted. */
  char shown[32] = "";
  if (!src->indirect)
    snprintf(shown, sizeof shown, " %llu", (unsigned long long)hlen);
  if (hlen > ST_MAX_HEADER)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: safetensors header length%s is larger than the "
                    "format's limit (%llu bytes)",
                    name, shown, (unsigned long long)ST_MAX_HEADER);
  if (hlen > src->size - 8)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: safetensors header length%s runs past the end of "
                    "the file (%llu bytes after the length)",
                    name, shown, (unsigned long long)(src->size - 8));
  if (hlen > limits->max_pickle_bytes)
    return tsd__err(TSD_ERR_LIMIT,
                    "%s: safetensors header%s%s exceeds the limit of %llu "
                    "bytes",
                    name, shown[0] ? " of" : "", shown,
                    (unsigned long long)limits->max_pickle_bytes);
  if (hlen == 0)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: safetensors header length is 0 (the smallest header "
                    "is \"{}\", 2 bytes)",
                    name);
  char *text = tsd__mem_alloc(arena->al, (size_t)hlen);
  if (!text) return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", name);
  st = tsd__source_read(src, 8, text, (size_t)hlen, "safetensors header");
  if (!st && text[0] != '{')
    st = tsd__err(TSD_ERR_FORMAT,
                  "%s: safetensors header does not start with '{'", name);
  if (!st) st = parse_header(src, arena, limits, text, hlen, out);
  tsd__mem_free(arena->al, text);
  return st;
}

const char *tsd__st_dtype_name(tsd_dtype d) {
  return (unsigned)d < TSD_DTYPE_COUNT ? ST_NAMES[d] : NULL;
}
