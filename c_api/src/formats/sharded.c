/* sharded.c — sharded checkpoints: a JSON index
 *   {"metadata": {"total_size": 123}, "weight_map": {"key": "shard file"}}
 * (Hugging Face's `pytorch_model.bin.index.json` /
 * `model.safetensors.index.json`) over torch.save or safetensors shards,
 * opened as one checkpoint.
 *
 * Rules (documented in tsd.h at tsd_checkpoint_open):
 *  - shards are plain file names in the index's directory: a '/', a '\\',
 *    "." or ".." is refused, so an index can never make tsd open a file
 *    elsewhere (/etc/..., ../../secret);
 *  - each distinct shard is opened once, in order of first mention; only its
 *    pickle or header is read now, and its tensors' storages point at its
 *    own source (tsd__storage.src), so tensor bytes are read on demand from
 *    the right file;
 *  - the root dict holds every weight_map key in the index's order. A key
 *    that its shard does not hold is an error (the index promised it); keys
 *    of a shard that the weight_map does not list are ignored: the index is
 *    the checkpoint's table of contents, and what a shard holds beyond it is
 *    not part of the state dict;
 *  - torch.save shards' `_metadata` (module versions) are merged, the first
 *    shard naming a module winning, so BatchNorm's version rule sees them.
 */
#include <stdio.h>
#include <string.h>

#include "formats.h"

#define INDEX_MAX_BYTES 100000000ull

/* One read: the index's source, where its tree goes and with what. */
typedef struct sharded {
  const tsd__source *src;
  tsd__arena *arena;
  const tsd_allocator *al;
  tsd__parsed *out;
} sharded;

static const char *dict_key(const void *ctx, size_t i, size_t *len) {
  const tsd__value *d = ctx;
  *len = d->u.dict.keys[i]->u.s.len;
  return d->u.dict.keys[i]->u.s.p;
}

typedef struct names {
  const tsd__json *const *v;
} names;

static const char *json_str_key(const void *ctx, size_t i, size_t *len) {
  const names *n = ctx;
  *len = n->v[i]->len;
  return n->v[i]->s;
}

static tsd_status check_shard_name(const char *index, const char *key,
                                   const tsd__json *file) {
  if (file->kind != TSD__J_STR)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: weight_map[\"%.200s\"] is %s, not a shard file name",
                    index, key, tsd__json_kind_name(file->kind));
  const char *s = file->s;
  if (!*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strchr(s, '/') ||
      strchr(s, '\\'))
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: weight_map[\"%.200s\"] names the shard \"%.200s\": "
                    "refused, a shard must be a plain file name in the "
                    "index's directory (no path, no \"..\")",
                    index, key, s);
  return TSD_OK;
}

static tsd_status read_index(sharded *c, const tsd__limits *lim,
                             tsd__json **out) {
  const tsd__source *src = c->src;
  if (src->size > INDEX_MAX_BYTES)
    return tsd__err(TSD_ERR_LIMIT,
                    "%s: a sharded index of %llu bytes is larger than the "
                    "%llu tsd accepts",
                    src->name, (unsigned long long)src->size,
                    (unsigned long long)INDEX_MAX_BYTES);
  char *text = tsd__mem_alloc(c->al, src->size ? (size_t)src->size : 1);
  if (!text) return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", src->name);
  tsd_status st =
      tsd__source_read(src, 0, text, (size_t)src->size, "sharded index");
  uint32_t depth = lim->max_depth < 64 ? lim->max_depth : 64;
  if (!st)
    st = tsd__json_parse(text, (size_t)src->size, c->arena, depth,
                         "sharded index", out);
  tsd__mem_free(c->al, text);
  return st;
}

/* The index's "metadata": scalars as their JSON text. */
static tsd_status index_metadata(sharded *c, const tsd__json *m) {
  const char *name = c->src->name;
  if (!m || m->kind == TSD__J_NULL) return TSD_OK;
  if (m->kind != TSD__J_OBJ)
    return tsd__err(TSD_ERR_FORMAT, "%s: \"metadata\" is %s, not an object",
                    name, tsd__json_kind_name(m->kind));
  tsd__value *d = tsd__arena_alloc(c->arena, sizeof *d);
  tsd__value **keys = tsd__arena_alloc(c->arena, (m->n + 1) * sizeof *keys);
  tsd__value **vals = tsd__arena_alloc(c->arena, (m->n + 1) * sizeof *vals);
  if (!d || !keys || !vals)
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", name);
  d->kind = TSD__V_DICT;
  d->u.dict.keys = keys;
  d->u.dict.vals = vals;
  for (size_t i = 0; i < m->n; i++) {
    const tsd__json *v = m->items[i];
    const char *text;
    char num[24], *copy;
    switch (v->kind) {
    case TSD__J_STR:
    case TSD__J_NUM:
      text = v->s;
      break;
    case TSD__J_INT: /* an INT keeps no text: write it (the JSON's own form) */
      snprintf(num, sizeof num, "%lld", (long long)v->i);
      if (!(copy = tsd__arena_alloc(c->arena, strlen(num) + 1)))
        return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", name);
      text = memcpy(copy, num, strlen(num) + 1);
      break;
    case TSD__J_BOOL:
      text = v->b ? "true" : "false";
      break;
    case TSD__J_NULL:
      text = "null";
      break;
    default:
      continue; /* arrays and objects have no string form here */
    }
    tsd__value *k = tsd__arena_alloc(c->arena, sizeof *k);
    tsd__value *s = tsd__arena_alloc(c->arena, sizeof *s);
    if (!k || !s) return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", name);
    k->kind = s->kind = TSD__V_STR;
    k->u.s.p = TSD__UNCONST(char *, m->keys[i]->s);
    k->u.s.len = m->keys[i]->len;
    s->u.s.p = TSD__UNCONST(char *, text);
    s->u.s.len = strlen(text);
    keys[d->u.dict.len] = k;
    vals[d->u.dict.len++] = s;
  }
  d->u.dict.cap = m->n;
  c->out->file_metadata = d;
  return TSD_OK;
}

/* Opens and parses shard k; its storages read from its own source. */
static tsd_status open_shard(sharded *c, const tsd__limits *lim,
                             const char *dir, size_t dir_len, const char *file,
                             size_t k, tsd__parsed *p) {
  tsd__buf path;
  tsd__buf_init(&path, c->al);
  tsd__buf_append(&path, dir, dir_len);
  tsd__buf_puts(&path, file);
  if (path.oom) {
    tsd__buf_free(&path);
    return tsd__err(TSD_ERR_NOMEM, "out of memory");
  }
  tsd_status st = tsd__source_open_file(&c->out->shards[k], path.data, c->al);
  tsd__buf_free(&path);
  if (st) return st;
  c->out->shards[k].indirect = true;
  memset(p, 0, sizeof *p);
  st = tsd__read_file_format(&c->out->shards[k], c->arena, lim, p);
  if (st) return st;
  if (!p->root || p->root->kind != TSD__V_DICT)
    return tsd__err(TSD_ERR_FORMAT, "%s: the shard holds a %s, not a dict",
                    c->out->shards[k].name, tsd__type_repr(p->root));
  for (size_t i = 0; i < p->n_storages; i++)
    p->storages[i]->src = &c->out->shards[k];
  return TSD_OK;
}

/* Merges the shards' `_metadata` dicts: modules in first-seen order. */
static tsd_status merge_metadata(sharded *c, tsd__parsed *parts,
                                 size_t n_parts, tsd__value **out) {
  *out = NULL;
  size_t total = 0;
  for (size_t k = 0; k < n_parts; k++) {
    const tsd__value *m = parts[k].root->u.dict.metadata;
    if (m && m->kind == TSD__V_DICT) total += m->u.dict.len;
  }
  if (!total) return TSD_OK;
  tsd__value *d = tsd__arena_alloc(c->arena, sizeof *d);
  tsd__value **keys = tsd__arena_alloc(c->arena, total * sizeof *keys);
  tsd__value **vals = tsd__arena_alloc(c->arena, total * sizeof *vals);
  if (!d || !keys || !vals)
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", c->src->name);
  d->kind = TSD__V_DICT;
  d->flags = TSD__VF_ORDERED;
  d->u.dict.keys = keys;
  d->u.dict.vals = vals;
  d->u.dict.cap = total;
  tsd__strmap seen;
  tsd__strmap_init(&seen, c->al);
  tsd_status st = TSD_OK;
  for (size_t k = 0; !st && k < n_parts; k++) {
    const tsd__value *m = parts[k].root->u.dict.metadata;
    if (!m || m->kind != TSD__V_DICT) continue;
    for (size_t i = 0; i < m->u.dict.len; i++) {
      tsd__value *key = m->u.dict.keys[i];
      if (key->kind != TSD__V_STR) continue;
      bool oom = false;
      size_t at = d->u.dict.len;
      keys[at] = key;
      vals[at] = m->u.dict.vals[i];
      if (tsd__strmap_insert(&seen, key->u.s.p, key->u.s.len, at, dict_key, d,
                             NULL, &oom)) {
        d->u.dict.len++;
      } else if (oom) {
        st = tsd__err(TSD_ERR_NOMEM, "%s: out of memory", c->src->name);
        break;
      }
    }
  }
  tsd__strmap_free(&seen);
  if (!st) *out = d;
  return st;
}

static tsd_status build_root(sharded *c, const tsd__json *wm,
                             const size_t *shard_of, tsd__parsed *parts,
                             const char *const *files, size_t n_shards) {
  const char *name = c->src->name;
  size_t n = wm->n;
  tsd__value *root = tsd__arena_alloc(c->arena, sizeof *root);
  tsd__value **keys = tsd__arena_alloc(c->arena, (n + 1) * sizeof *keys);
  tsd__value **vals = tsd__arena_alloc(c->arena, (n + 1) * sizeof *vals);
  tsd__strmap *maps =
      tsd__mem_calloc(c->al, n_shards ? n_shards : 1, sizeof *maps);
  if (!root || !keys || !vals || !maps) {
    tsd__mem_free(c->al, maps);
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", name);
  }
  for (size_t k = 0; k < n_shards; k++) {
    tsd__strmap_init(&maps[k], c->al);
  }
  tsd_status st = TSD_OK;
  /* one key index per shard */
  for (size_t k = 0; !st && k < n_shards; k++) {
    const tsd__value *d = parts[k].root;
    for (size_t i = 0; i < d->u.dict.len; i++) {
      const tsd__value *key = d->u.dict.keys[i];
      if (key->kind != TSD__V_STR) continue;
      bool oom = false;
      size_t prev;
      if (!tsd__strmap_insert(&maps[k], key->u.s.p, key->u.s.len, i, dict_key,
                              d, &prev, &oom)) {
        st = oom ? tsd__err(TSD_ERR_NOMEM, "%s: out of memory", name)
                 : tsd__err(TSD_ERR_FORMAT,
                            "%s: shard %s holds the key '%.200s' twice", name,
                            files[k], key->u.s.p);
        break;
      }
    }
  }
  for (size_t i = 0; !st && i < n; i++) {
    const tsd__json *k = wm->keys[i];
    size_t s = shard_of[i], at;
    const tsd__value *d = parts[s].root;
    if (!tsd__strmap_find(&maps[s], k->s, k->len, dict_key, d, &at)) {
      st = tsd__err(TSD_ERR_FORMAT,
                    "%s: weight_map maps '%.200s' to shard %s, which does not "
                    "hold it",
                    name, k->s, files[s]);
      break;
    }
    keys[i] = d->u.dict.keys[at];
    vals[i] = d->u.dict.vals[at];
  }
  for (size_t k = 0; k < n_shards; k++)
    tsd__strmap_free(&maps[k]);
  tsd__mem_free(c->al, maps);
  if (st) return st;
  root->kind = TSD__V_DICT;
  root->flags = TSD__VF_ORDERED;
  root->depth = 1;
  root->u.dict.keys = keys;
  root->u.dict.vals = vals;
  root->u.dict.len = root->u.dict.cap = n;
  st = merge_metadata(c, parts, n_shards, &root->u.dict.metadata);
  if (st) return st;
  c->out->root = root;
  return TSD_OK;
}

tsd_status tsd__read_sharded(const tsd__source *src, tsd__arena *arena,
                             const tsd__limits *lim, const tsd_allocator *al,
                             tsd__parsed *out) {
  sharded ctx_ = {src, arena, al, out}, *c = &ctx_;
  const char *name = c->src->name;
  tsd__json *index = NULL;
  tsd_status st = read_index(c, lim, &index);
  if (st) return st;
  if (index->kind != TSD__J_OBJ)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: a sharded index is a JSON object; this is %s", name,
                    tsd__json_kind_name(index->kind));
  const tsd__json *wm = tsd__json_get(index, "weight_map");
  if (!wm || wm->kind != TSD__J_OBJ)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: a sharded index needs a \"weight_map\" object "
                    "(key -> shard file)%s",
                    name, wm ? "" : "; there is none");
  if ((st = index_metadata(c, tsd__json_get(index, "metadata")))) return st;
  size_t n = wm->n;
  if (n > lim->max_objects)
    return tsd__err(TSD_ERR_LIMIT,
                    "%s: weight_map has %zu keys, more than the limit of %llu",
                    name, n, (unsigned long long)lim->max_objects);

  /* distinct shards, in order of first mention */
  size_t *shard_of = tsd__mem_alloc(c->al, (n ? n : 1) * sizeof *shard_of);
  const tsd__json **first = tsd__mem_alloc(c->al, (n ? n : 1) * sizeof *first);
  tsd__strmap files;
  tsd__strmap_init(&files, c->al);
  size_t n_shards = 0;
  if (!shard_of || !first) st = tsd__err(TSD_ERR_NOMEM, "out of memory");
  names ctx = {first};
  for (size_t i = 0; !st && i < n; i++) {
    const tsd__json *f = wm->items[i];
    if ((st = check_shard_name(name, wm->keys[i]->s, f))) break;
    size_t at;
    bool oom = false;
    first[n_shards] = f;
    if (tsd__strmap_insert(&files, f->s, f->len, n_shards, json_str_key, &ctx,
                           &at, &oom)) {
      at = n_shards++;
    } else if (oom) {
      st = tsd__err(TSD_ERR_NOMEM, "out of memory");
      break;
    }
    shard_of[i] = at;
  }
  tsd__strmap_free(&files);

  const char *slash = strrchr(name, '/');
  size_t dir_len = slash ? (size_t)(slash - name) + 1 : 0;
  tsd__parsed *parts = NULL;
  const char **file_names = NULL;
  if (!st) {
    c->out->shards =
        tsd__mem_calloc(c->al, n_shards ? n_shards : 1, sizeof *c->out->shards);
    parts = tsd__mem_calloc(c->al, n_shards ? n_shards : 1, sizeof *parts);
    file_names =
        tsd__mem_calloc(c->al, n_shards ? n_shards : 1, sizeof *file_names);
    if (!c->out->shards || !parts || !file_names)
      st = tsd__err(TSD_ERR_NOMEM, "out of memory");
  }
  for (size_t k = 0; !st && k < n_shards; k++) {
    c->out->shards[k].fd = -1;
    c->out->n_shards = k + 1; /* closed by tsd__parsed_close, even if partial */
    file_names[k] = first[k]->s;
    st = open_shard(c, lim, name, dir_len, first[k]->s, k, &parts[k]);
  }
  if (!st) st = build_root(c, wm, shard_of, parts, file_names, n_shards);
  tsd__mem_free(c->al, file_names);
  tsd__mem_free(c->al, parts);
  tsd__mem_free(c->al, first);
  tsd__mem_free(c->al, shard_of);
  return st;
}
