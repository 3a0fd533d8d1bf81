/* checkpoint.c — the public tsd_checkpoint_* API: opening (formats/ reads
 * the tree), the one constructor every checkpoint is made by, the view of
 * the current dict (select, pop), entries, and tensor reads (io/'s engine on
 * the checkpoint's source). */
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"

/* tsd_open_options before version 3 (tsd_limits without max_output_ratio):
 * the layout a caller built against an older header passes. */
typedef struct open_options_v2 {
  unsigned version;
  struct {
    uint32_t max_depth;
    uint64_t max_objects;
    uint64_t max_pickle_bytes;
  } limits;
  const tsd_allocator *allocator;
} open_options_v2;

/* Copies the caller's options, of any version, into the current layout
 * (NULL stays NULL). */
static const tsd_open_options *options_in(const tsd_open_options *in,
                                          tsd_open_options *buf) {
  if (!in) return NULL;
  if (in->version >= 4) {
    *buf = *in;
    return buf;
  }
  if (in->version == 3) { /* no `flags` */
    memset(buf, 0, sizeof *buf);
    memcpy(buf, in, offsetof(tsd_open_options, flags));
    return buf;
  }
  const open_options_v2 *o = (const open_options_v2 *)(const void *)in;
  memset(buf, 0, sizeof *buf);
  buf->version = o->version;
  buf->limits.max_depth = o->limits.max_depth;
  buf->limits.max_objects = o->limits.max_objects;
  buf->limits.max_pickle_bytes = o->limits.max_pickle_bytes;
  if (o->version >= 2) buf->allocator = o->allocator;
  return buf;
}

/* ---- the live view of the current dict ---------------------------------- */

/* The index maps a key to its position in the dict (u.dict); `live` holds
 * the dict positions not popped, ascending, so the public index of a key is
 * found by binary search in `live`. */
static const char *dict_key(const void *ctx, size_t i, size_t *len) {
  const tsd_checkpoint *c = ctx;
  const tsd__value *k = c->current->u.dict.keys[i];
  *len = k->u.s.len;
  return k->u.s.p;
}

static void view_clear(tsd_checkpoint *c) {
  tsd__mem_free(c->al, c->live);
  c->live = NULL;
  c->n_live = 0;
  tsd__strmap_free(&c->index);
  tsd__mem_free(c->al, c->view_error);
  c->view_error = NULL;
  c->view_status = TSD_OK;
}

static void view_fail(tsd_checkpoint *c, tsd_status st, const char *msg) {
  if (c->view_status != TSD_OK) return;
  c->view_status = st;
  c->view_error = tsd__mem_strdup(c->al, msg);
}

/* Builds the view of c->current. A dict whose keys are not all distinct
 * strings gets a view_status the engine and find report (the checkpoint
 * still opens: its entries can be listed). Out of memory is returned (and
 * kept as the view_status, so later calls report it too). */
static tsd_status view_build(tsd_checkpoint *c) {
  view_clear(c);
  if (!c->current) return TSD_OK;
  size_t n = c->current->u.dict.len;
  c->live = tsd__mem_alloc(c->al, (n ? n : 1) * sizeof *c->live);
  if (!c->live) {
    view_fail(c, TSD_ERR_NOMEM, "out of memory building the checkpoint view");
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory building the view",
                    c->src.name);
  }
  c->n_live = n;
  char msg[512];
  for (size_t i = 0; i < n; i++) {
    c->live[i] = i;
    const tsd__value *k = c->current->u.dict.keys[i];
    if (k->kind != TSD__V_STR) {
      snprintf(msg, sizeof msg,
               "%s: the state dict's key at position %zu is a %s, not a str",
               c->src.name, i, tsd__type_repr(k));
      view_fail(c, TSD_ERR_TYPE, msg);
      continue;
    }
    bool oom;
    size_t prev;
    if (!tsd__strmap_insert(&c->index, k->u.s.p, k->u.s.len, i, dict_key, c,
                            &prev, &oom)) {
      if (oom) {
        view_fail(c, TSD_ERR_NOMEM, "out of memory building the view");
        return tsd__err(TSD_ERR_NOMEM, "%s: out of memory building the view",
                        c->src.name);
      } else {
        snprintf(msg, sizeof msg,
                 "%s: the state dict has the key '%.200s' twice (positions "
                 "%zu and %zu)",
                 c->src.name, k->u.s.p, prev, i);
        view_fail(c, TSD_ERR_FORMAT, msg);
      }
    }
  }
  return TSD_OK;
}

size_t tsd__ckpt_count(const tsd_checkpoint *c) {
  return c ? c->n_live : 0;
}

const tsd__value *tsd__ckpt_key(const tsd_checkpoint *c, size_t i) {
  if (!c || i >= c->n_live) return NULL;
  return c->current->u.dict.keys[c->live[i]];
}

const tsd__value *tsd__ckpt_val(const tsd_checkpoint *c, size_t i) {
  if (!c || i >= c->n_live) return NULL;
  return c->current->u.dict.vals[c->live[i]];
}

static bool live_pos(const tsd_checkpoint *c, size_t dict_i, size_t *out) {
  size_t lo = 0, hi = c->n_live;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (c->live[mid] < dict_i)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < c->n_live && c->live[lo] == dict_i) {
    *out = lo;
    return true;
  }
  return false;
}

bool tsd__ckpt_lookup(const tsd_checkpoint *c, const char *key, size_t len,
                      size_t *out_i) {
  size_t di;
  if (!c || !c->current) return false;
  if (!tsd__strmap_find(&c->index, key, len, dict_key, c, &di)) return false;
  return live_pos(c, di, out_i);
}

const tsd__value *tsd__ckpt_metadata(const tsd_checkpoint *c) {
  if (!c || !c->current) return NULL;
  const tsd__value *m = c->current->u.dict.metadata;
  return m && m->kind == TSD__V_DICT ? m : NULL;
}

static const tsd__value *dict_get(const tsd__value *d, const char *key,
                                  size_t len) {
  for (size_t i = 0; i < d->u.dict.len; i++) {
    const tsd__value *k = d->u.dict.keys[i];
    if (k->kind == TSD__V_STR && k->u.s.len == len &&
        memcmp(k->u.s.p, key, len) == 0)
      return d->u.dict.vals[i];
  }
  return NULL;
}

int64_t tsd__metadata_version(const tsd__value *metadata, const char *prefix) {
  if (!metadata || metadata->kind != TSD__V_DICT || !prefix) return -1;
  const tsd__value *m = dict_get(metadata, prefix, strlen(prefix));
  if (!m || m->kind != TSD__V_DICT) return -1;
  const tsd__value *v = dict_get(m, "version", 7);
  if (!v || (v->kind != TSD__V_INT && v->kind != TSD__V_BOOL)) return -1;
  return v->u.i;
}

/* Makes `v` the current dict: a dict as it is, a pickled nn.Module as the
 * state dict rebuilt from it (objects.c), anything else: none. A module
 * whose state dict cannot be rebuilt gives an empty view whose status
 * carries the reason, for the load to report. */
static tsd_status set_current(tsd_checkpoint *c, tsd__value *v) {
  tsd__value *sd = NULL;
  tsd_status why = TSD_OK;
  char *msg = NULL;
  if (tsd__is_module(v)) {
    tsd__limits lim;
    tsd__limits_resolve(&lim, NULL);
    /* Entries and modules at most one per byte of the file: shared
     * submodules repeat under each path (as in PyTorch), so a small file
     * could otherwise ask for exponentially many. */
    if (c->src.size < lim.max_objects) lim.max_objects = c->src.size;
    why = tsd__module_state_dict(&c->arena, &lim, v, &sd);
    if (why != TSD_OK) {
      msg = tsd__mem_strdup(c->al, tsd_last_error());
      sd = tsd__arena_alloc(&c->arena, sizeof *sd);
      if (!sd || !msg) {
        tsd__mem_free(c->al, msg);
        return tsd__err(TSD_ERR_NOMEM, "out of memory");
      }
      sd->kind = TSD__V_DICT;
    }
    v = sd;
  }
  c->current = v && v->kind == TSD__V_DICT ? v : NULL;
  tsd_status st = view_build(c);
  if (st == TSD_OK && why != TSD_OK) view_fail(c, why, msg);
  tsd__mem_free(c->al, msg);
  return st;
}

tsd_status tsd__checkpoint_adopt(tsd_checkpoint *c, const tsd__parsed *p) {
  c->parsed = *p;
  return set_current(c, c->parsed.root);
}

static tsd_status open_source(tsd_checkpoint **out, tsd_checkpoint *c,
                              const tsd_open_options *options) {
  tsd__limits lim;
  tsd__limits_resolve(&lim, options);
  tsd__parsed p = {0};
  tsd_status st = tsd__read_checkpoint(&c->src, &c->arena, &lim, c->al, &p);
  if (st != TSD_OK) {
    /* every message names the file; readers name what inside it */
    const char *msg = tsd_last_error();
    size_t nl = strlen(c->src.name);
    if (strncmp(msg, c->src.name, nl) != 0 || msg[nl] != ':')
      tsd__err_prefix("%s", c->src.name);
    tsd__parsed_close(&p, c->al);
    tsd_checkpoint_free(c);
    return st;
  }
  c->max_output_ratio = lim.max_output_ratio;
  if (options && options->version >= 4 && (options->flags & TSD_OPEN_MAP)) {
    /* mapview.c: the file and every shard; a memory source needs none */
    st = tsd__source_map(&c->src);
    for (size_t i = 0; st == TSD_OK && i < p.n_shards; i++)
      st = tsd__source_map(&p.shards[i]);
    if (st != TSD_OK) {
      for (size_t i = 0; i < p.n_shards; i++) tsd__source_unmap(&p.shards[i]);
      tsd__parsed_close(&p, c->al);
      tsd_checkpoint_free(c);
      return st;
    }
  }
  st = tsd__checkpoint_adopt(c, &p);
  if (st != TSD_OK) {
    tsd_checkpoint_free(c);
    return st;
  }
  *out = c;
  return TSD_OK;
}

/* Checks the options (version 1: limits; 2: and an allocator) and makes
 * an empty checkpoint with their allocator. */
static tsd_status ckpt_new(tsd_checkpoint **out,
                           const tsd_open_options *options) {
  *out = NULL;
  const tsd_allocator *al = NULL;
  if (options) {
    if (options->version < 1 || options->version > TSD_OPEN_OPTIONS_VERSION)
      return tsd__err(TSD_ERR_INVALID_ARG,
                      "tsd_open_options.version is %u, expected 1 to %d",
                      options->version, TSD_OPEN_OPTIONS_VERSION);
    if (options->version >= 2) al = options->allocator;
    if (options->version >= 4 && (options->flags & ~TSD_OPEN_MAP))
      return tsd__err(TSD_ERR_INVALID_ARG,
                      "tsd_open_options.flags 0x%x: unknown flags 0x%x",
                      options->flags, options->flags & ~TSD_OPEN_MAP);
  }
  tsd_status st = tsd__allocator_check(al, "tsd_open_options.allocator");
  if (st != TSD_OK) return st;
  return tsd__checkpoint_new(out, NULL, al);
}

tsd_status tsd__checkpoint_new(tsd_checkpoint **out, const char *name,
                               const tsd_allocator *al) {
  *out = NULL;
  tsd_checkpoint *c = tsd__mem_calloc(al, 1, sizeof *c);
  if (!c) return tsd__err(TSD_ERR_NOMEM, "out of memory");
  if (al) {
    c->alloc = *al;
    c->al = &c->alloc;
  }
  c->src.fd = -1;
  c->src.al = c->al;
  tsd__arena_init(&c->arena, 0, c->al);
  tsd__strmap_init(&c->index, c->al);
  if (name && !(c->src.name = tsd__mem_strdup(c->al, name))) {
    tsd_checkpoint_free(c);
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", name);
  }
  *out = c;
  return TSD_OK;
}

tsd_status tsd_checkpoint_open(tsd_checkpoint **out, const char *path,
                               const tsd_open_options *options) {
  if (!out) return tsd__err(TSD_ERR_INVALID_ARG, "out is NULL");
  *out = NULL;
  if (!path) return tsd__err(TSD_ERR_INVALID_ARG, "path is NULL");
  tsd_open_options copy;
  options = options_in(options, &copy);
  tsd_checkpoint *c;
  tsd_status st = ckpt_new(&c, options);
  if (st != TSD_OK) return st;
  st = tsd__source_open_file(&c->src, path, c->al);
  if (st != TSD_OK) {
    tsd_checkpoint_free(c);
    return st;
  }
  return open_source(out, c, options);
}

tsd_status tsd_checkpoint_open_memory(tsd_checkpoint **out, const void *data,
                                      size_t size,
                                      const tsd_open_options *options) {
  if (!out) return tsd__err(TSD_ERR_INVALID_ARG, "out is NULL");
  *out = NULL;
  tsd_open_options copy;
  options = options_in(options, &copy);
  tsd_checkpoint *c;
  tsd_status st = ckpt_new(&c, options);
  if (st != TSD_OK) return st;
  st = tsd__source_open_memory(&c->src, data, size, c->al);
  if (st != TSD_OK) {
    tsd_checkpoint_free(c);
    return st;
  }
  return open_source(out, c, options);
}

void tsd_checkpoint_free(tsd_checkpoint *c) {
  if (!c) return;
  view_clear(c);
  tsd__arena_free(&c->arena);
  tsd__source_unmap(&c->src);
  tsd__source_close(&c->src);
  for (size_t i = 0; i < c->parsed.n_shards; i++)
    tsd__source_unmap(&c->parsed.shards[i]);
  tsd__parsed_close(&c->parsed, c->al);
  /* c->al points into c: free c through a copy */
  tsd_allocator a = c->alloc;
  tsd__mem_free(c->al ? &a : NULL, c);
}

/* ---- tensor reads ----------------------------------------------------------
 */

tsd_status tsd__tensor_read(const tsd_checkpoint *c, const tsd__tensor *t,
                            tsd_dtype dtype, void *dst,
                            const tsd__scratch *scratch) {
  return tsd__io_tensor_read(&c->src, c->al, t, dtype, dst, scratch);
}

tsd_status tsd__tensor_read_range(const tsd_checkpoint *c, const tsd__tensor *t,
                                  tsd_dtype dtype, uint64_t first,
                                  uint64_t count, void *dst) {
  return tsd__io_tensor_read_range(&c->src, c->al, t, dtype, first, count,
                                   dst);
}

/* ---- the public view API --------------------------------------------------
 */

tsd_kind tsd_checkpoint_root_kind(const tsd_checkpoint *c) {
  return c ? tsd__public_kind(c->parsed.root) : TSD_KIND_NONE;
}

const char *tsd_checkpoint_root_class(const tsd_checkpoint *c) {
  return c ? tsd__object_class(c->parsed.root) : NULL;
}

size_t tsd_checkpoint_count(const tsd_checkpoint *c) {
  return tsd__ckpt_count(c);
}

static void fill_entry(tsd_entry *e, const tsd__value *v) {
  e->kind = tsd__public_kind(v);
  e->type_repr = tsd__type_repr(v);
  switch (v->kind) {
  case TSD__V_TENSOR: {
    const tsd__tensor *t = v->u.tensor;
    e->dtype = t->dtype;
    e->ndim = t->ndim;
    e->shape = t->shape;
    e->numel = t->numel;
    e->is_parameter = t->is_parameter;
    e->contiguous = t->contiguous;
    break;
  }
  case TSD__V_BOOL:
  case TSD__V_INT:
    e->int_value = v->u.i;
    break;
  case TSD__V_FLOAT:
    e->float_value = v->u.f;
    break;
  case TSD__V_XTENSOR: /* "torch.qint8 per_tensor_affine" */
    e->ndim = v->u.xtensor->ndim;
    e->shape = v->u.xtensor->shape;
    e->dtype = v->u.xtensor->dtype;
    e->is_parameter = v->u.xtensor->is_parameter;
    e->str_value = v->u.xtensor->desc;
    e->str_len = strlen(e->str_value);
    break;
  case TSD__V_STR:
  case TSD__V_BYTES:
  case TSD__V_BIGINT: /* its little-endian two's complement bytes */
  case TSD__V_DTYPE:  /* "torch.float16" */
  case TSD__V_DEVICE: /* "cuda:1" */
    e->str_value = v->u.s.p;
    e->str_len = v->u.s.len;
    break;
  case TSD__V_DICT:
    e->length = v->u.dict.len;
    break;
  case TSD__V_LIST:
  case TSD__V_TUPLE:
  case TSD__V_SET:
    e->length = v->u.seq.len;
    break;
  default:
    break;
  }
}

tsd_status tsd_checkpoint_entry(tsd_entry *out, const tsd_checkpoint *c,
                                size_t index) {
  if (!c || !out) return tsd__err(TSD_ERR_INVALID_ARG, "NULL argument");
  memset(out, 0, sizeof *out);
  if (index >= c->n_live)
    return tsd__err(TSD_ERR_NOT_FOUND,
                    "entry %zu does not exist (the dict has %zu)", index,
                    c->n_live);
  const tsd__value *k = tsd__ckpt_key(c, index);
  if (k->kind != TSD__V_STR)
    return tsd__err(TSD_ERR_TYPE,
                    "%s: entry %zu's key is a %s, not a str (a state dict's "
                    "keys are strings)",
                    c->src.name, index, tsd__type_repr(k));
  out->key = k->u.s.p;
  out->key_len = k->u.s.len;
  fill_entry(out, tsd__ckpt_val(c, index));
  return TSD_OK;
}

tsd_status tsd_checkpoint_find(size_t *out_index, const tsd_checkpoint *c,
                               const char *key) {
  if (!c || !out_index || !key)
    return tsd__err(TSD_ERR_INVALID_ARG, "NULL argument");
  if (c->view_status != TSD_OK)
    return tsd__err(c->view_status, "%s",
                    c->view_error ? c->view_error : "bad checkpoint dict");
  if (!tsd__ckpt_lookup(c, key, strlen(key), out_index))
    return tsd__err(TSD_ERR_NOT_FOUND, "%s: no key '%s' in the current dict",
                    c->src.name, key);
  return TSD_OK;
}

tsd_status tsd_checkpoint_select(tsd_checkpoint *c, const char *key) {
  size_t i;
  tsd_status st = tsd_checkpoint_find(&i, c, key);
  if (st != TSD_OK) return st;
  tsd__value *v = c->current->u.dict.vals[c->live[i]];
  if (v->kind != TSD__V_DICT && !tsd__is_module(v))
    return tsd__err(TSD_ERR_TYPE, "%s: '%s' is a %s, not a dict", c->src.name,
                    key, tsd__type_repr(v));
  return set_current(c, v);
}

void tsd_checkpoint_select_root(tsd_checkpoint *c) {
  if (!c) return;
  (void)set_current(c, c->parsed.root); /* OOM: kept as the view's status */
}

tsd_status tsd_checkpoint_pop(tsd_checkpoint *c, const char *key) {
  size_t i;
  tsd_status st = tsd_checkpoint_find(&i, c, key);
  if (st != TSD_OK) return st;
  tsd__strmap_remove(&c->index, key, strlen(key), dict_key, c);
  memmove(c->live + i, c->live + i + 1, (c->n_live - i - 1) * sizeof *c->live);
  c->n_live--;
  return TSD_OK;
}

tsd_status tsd_checkpoint_read(void *dst, size_t dst_bytes,
                               const tsd_checkpoint *c, size_t index,
                               tsd_dtype dtype) {
  if (!c) return tsd__err(TSD_ERR_INVALID_ARG, "checkpoint is NULL");
  if (!tsd__dtype_valid((int)dtype))
    return tsd__err(TSD_ERR_INVALID_ARG, "invalid dtype %d", (int)dtype);
  if (index >= c->n_live)
    return tsd__err(TSD_ERR_NOT_FOUND,
                    "entry %zu does not exist (the dict has %zu)", index,
                    c->n_live);
  const tsd__value *v = tsd__ckpt_val(c, index);
  /* every message names the key (a key that is not a str: its index) */
  const tsd__value *k = tsd__ckpt_key(c, index);
  int kn = k && k->kind == TSD__V_STR ? (int)(k->u.s.len > 200 ? 200 : k->u.s.len)
                                      : 0;
  const char *ks = kn ? k->u.s.p : "";
  if (v->kind != TSD__V_TENSOR)
    return tsd__err(TSD_ERR_TYPE,
                    "tsd_checkpoint_read: entry %zu \"%.*s\" is a %s, not a "
                    "tensor",
                    index, kn, ks, tsd__type_repr(v));
  const tsd__tensor *t = v->u.tensor;
  uint64_t need;
  if (!tsd__mul_u64((uint64_t)t->numel, tsd_dtype_size(dtype), &need) ||
      need > dst_bytes)
    return tsd__err(TSD_ERR_BUFFER,
                    "tsd_checkpoint_read: \"%.*s\" needs %llu bytes (%lld "
                    "elements of %s), the buffer has %zu",
                    kn, ks, (unsigned long long)need, (long long)t->numel,
                    tsd_dtype_name(dtype), dst_bytes);
  if (!dst && need) return tsd__err(TSD_ERR_INVALID_ARG, "dst is NULL");
  return tsd__tensor_read(c, t, dtype, dst, NULL);
}

const char *tsd_checkpoint_entry_class(const tsd_checkpoint *c,
                                       size_t index) {
  if (!c || index >= c->n_live) return NULL;
  return tsd__object_class(tsd__ckpt_val(c, index));
}

int64_t tsd_checkpoint_module_version(const tsd_checkpoint *c,
                                      const char *prefix) {
  return tsd__metadata_version(tsd__ckpt_metadata(c), prefix);
}

size_t tsd_checkpoint_metadata_count(const tsd_checkpoint *c) {
  const tsd__value *m = tsd__ckpt_metadata(c);
  return m ? m->u.dict.len : 0;
}

const char *tsd_checkpoint_metadata_prefix(const tsd_checkpoint *c,
                                           size_t index) {
  const tsd__value *m = tsd__ckpt_metadata(c);
  if (!m || index >= m->u.dict.len) return NULL;
  const tsd__value *k = m->u.dict.keys[index];
  return k->kind == TSD__V_STR ? k->u.s.p : NULL;
}
