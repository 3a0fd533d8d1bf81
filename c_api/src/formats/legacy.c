/* legacy.c — torch.save(..., _use_new_zipfile_serialization=False), the
 * format before PyTorch 1.6 (torch/serialization.py, _legacy_save and
 * legacy_load):
 *
 *   pickle  MAGIC_NUMBER (0x1950a86a20f9469cfc6c)
 *   pickle  PROTOCOL_VERSION (1001)
 *   pickle  sys_info {'protocol_version', 'little_endian', 'type_sizes'}
 *   pickle  the object; storages are persistent ids
 *           ('storage', type, root_key, location, numel, view_metadata)
 *           with view_metadata None or (view_key, offset, view_numel)
 *   pickle  the list of storage keys (sorted)
 *   then, for each key of that list in order: int64 element count, raw bytes
 *
 * The pickles' total length is unknown until they are parsed, so each one is
 * unpickled from a window that grows (x4) while the pickle runs past it. */
#include <stdio.h>
#include <string.h>

#include "formats.h"

/* Identical in zip.c and legacy.c; `fmt` is the format's own state. */
struct tsd__persistent_ctx {
  tsd__arena *arena;
  const tsd__source *src;
  void *fmt;
};

typedef struct lstorage {
  tsd__storage *s;
  size_t root; /* SIZE_MAX for a root storage; else the view's base */
  uint64_t view_byte_offset;
  bool has_data;
} lstorage;

typedef struct legacy {
  const tsd__source *src;
  tsd__arena *arena;
  const tsd__limits *limits;
  lstorage *st; /* malloc'd */
  size_t n, cap;
  tsd__strmap keys;
} legacy;

static const char *lkey(const void *ctx, size_t i, size_t *len) {
  const legacy *L = ctx;
  *len = strlen(L->st[i].s->key);
  return L->st[i].s->key;
}

static bool find_key(legacy *L, const tsd__value *k, size_t *i) {
  return tsd__strmap_find(&L->keys, k->u.s.p, k->u.s.len, lkey, L, i);
}

static tsd_status add_storage(legacy *L, const tsd__value *key, tsd_dtype dtype,
                              uint64_t numel, size_t root, uint64_t view_off,
                              size_t *out) {
  uint64_t nbytes;
  if (!tsd__mul_u64(numel, tsd_dtype_size(dtype), &nbytes))
    return tsd__err(TSD_ERR_FORMAT, "storage '%s': size overflows", key->u.s.p);
  if (memchr(key->u.s.p, '\0', key->u.s.len))
    return tsd__err(TSD_ERR_FORMAT, "storage key contains a NUL byte");
  if (L->n == L->cap) {
    size_t cap = L->cap ? L->cap * 2 : 16;
    lstorage *a = tsd__mem_realloc(L->arena->al, L->st, cap * sizeof *a);
    if (!a) return tsd__err(TSD_ERR_NOMEM, "out of memory");
    L->st = a;
    L->cap = cap;
  }
  tsd__storage *s = tsd__arena_alloc(L->arena, sizeof *s);
  char *k = tsd__arena_alloc(L->arena, key->u.s.len + 1);
  if (!s || !k) return tsd__err(TSD_ERR_NOMEM, "out of memory");
  memcpy(k, key->u.s.p, key->u.s.len + 1);
  s->dtype = dtype;
  s->numel = numel;
  s->nbytes = nbytes;
  s->key = k;
  s->swap = tsd__swap_unit(dtype, false); /* sys_info says little-endian */
  lstorage *ls = &L->st[L->n];
  memset(ls, 0, sizeof *ls);
  ls->s = s;
  ls->root = root;
  ls->view_byte_offset = view_off;
  bool oom;
  if (!tsd__strmap_insert(&L->keys, k, key->u.s.len, L->n, lkey, L, NULL, &oom))
    return tsd__err(TSD_ERR_NOMEM, "out of memory");
  *out = L->n++;
  return TSD_OK;
}

static tsd_status legacy_persistent(tsd__persistent_ctx *ctx, tsd__value *pid,
                                    tsd__value **out) {
  legacy *L = ctx->fmt;
  /* A whole model: _legacy_save records each nn.Module class as
   * ('module', cls, source_file, source); legacy_load returns cls (the
   * source is only compared, for a warning). The class stays an inert
   * global: its instances are placeholders (objects.c). */
  if (pid->kind == TSD__V_TUPLE && pid->u.seq.len == 4 &&
      pid->u.seq.items[0]->kind == TSD__V_STR &&
      strcmp(pid->u.seq.items[0]->u.s.p, "module") == 0) {
    if (pid->u.seq.items[1]->kind != TSD__V_GLOBAL)
      return tsd__err(TSD_ERR_FORMAT,
                      "persistent id ('module', ...) does not name a class");
    *out = pid->u.seq.items[1];
    return TSD_OK;
  }
  if (pid->kind != TSD__V_TUPLE || pid->u.seq.len != 6 ||
      pid->u.seq.items[0]->kind != TSD__V_STR ||
      strcmp(pid->u.seq.items[0]->u.s.p, "storage") != 0)
    return tsd__err(TSD_ERR_FORMAT,
                    "persistent id is not ('storage', type, key, location, "
                    "numel, view_metadata)");
  tsd__value **it = pid->u.seq.items;
  tsd_dtype dtype;
  if (!tsd__storage_type_dtype(it[1], &dtype))
    return tsd__err(TSD_ERR_FORMAT, "persistent id: not a storage type");
  if (it[2]->kind != TSD__V_STR)
    return tsd__err(TSD_ERR_FORMAT, "persistent id: storage key is not a str");
  if (it[4]->kind != TSD__V_INT || it[4]->u.i < 0)
    return tsd__err(TSD_ERR_FORMAT,
                    "storage '%s': element count is not a non-negative int",
                    it[2]->u.s.p);
  size_t ri;
  /* legacy_load keeps the first storage seen under a key */
  if (!find_key(L, it[2], &ri)) {
    tsd_status st =
        add_storage(L, it[2], dtype, (uint64_t)it[4]->u.i, SIZE_MAX, 0, &ri);
    if (st != TSD_OK) return st;
  }
  tsd__storage *res = L->st[ri].s;
  const tsd__value *vm = it[5];
  if (vm->kind != TSD__V_NONE) {
    /* A storage view: (view_key, offset, view_numel), in elements of this
     * persistent id's dtype, into the root storage's bytes. */
    if (vm->kind != TSD__V_TUPLE || vm->u.seq.len != 3 ||
        vm->u.seq.items[0]->kind != TSD__V_STR ||
        vm->u.seq.items[1]->kind != TSD__V_INT ||
        vm->u.seq.items[2]->kind != TSD__V_INT || vm->u.seq.items[1]->u.i < 0 ||
        vm->u.seq.items[2]->u.i < 0)
      return tsd__err(TSD_ERR_FORMAT,
                      "storage '%s': view metadata is not (key, offset, "
                      "numel)",
                      res->key);
    const tsd__value *vkey = vm->u.seq.items[0];
    size_t vi;
    if (!find_key(L, vkey, &vi)) {
      uint64_t isz = tsd_dtype_size(dtype), off_b, len_b, end_b;
      if (L->st[ri].root != SIZE_MAX)
        return tsd__err(TSD_ERR_FORMAT, "storage '%s': a view of a view",
                        vkey->u.s.p);
      if (!tsd__mul_u64((uint64_t)vm->u.seq.items[1]->u.i, isz, &off_b) ||
          !tsd__mul_u64((uint64_t)vm->u.seq.items[2]->u.i, isz, &len_b) ||
          !tsd__add_u64(off_b, len_b, &end_b) || end_b > res->nbytes)
        return tsd__err(TSD_ERR_FORMAT,
                        "storage view '%s' (offset %lld, %lld elements) lies "
                        "outside storage '%s' (%llu bytes)",
                        vkey->u.s.p, (long long)vm->u.seq.items[1]->u.i,
                        (long long)vm->u.seq.items[2]->u.i, res->key,
                        (unsigned long long)res->nbytes);
      tsd_status st = add_storage(
          L, vkey, dtype, (uint64_t)vm->u.seq.items[2]->u.i, ri, off_b, &vi);
      if (st != TSD_OK) return st;
    }
    res = L->st[vi].s;
  }
  tsd__value *v = tsd__arena_alloc(ctx->arena, sizeof *v);
  if (!v) return tsd__err(TSD_ERR_NOMEM, "out of memory");
  v->kind = TSD__V_STORAGE;
  v->u.storage = res;
  *out = v;
  return TSD_OK;
}

static tsd_status unpickle_at(legacy *L, uint64_t *pos, bool with_pid,
                              const char *what, tsd__value **out) {
  const tsd__source *s = L->src;
  uint64_t remain = s->size - *pos;
  uint64_t cap = remain < L->limits->max_pickle_bytes
                     ? remain
                     : L->limits->max_pickle_bytes;
  if (cap > SIZE_MAX / 4) cap = SIZE_MAX / 4;
  uint64_t w = cap < (64u << 10) ? cap : (64u << 10);
  /* A window the pickle runs past is parsed again from a larger one: what
   * the first try built is released (its storages too), so a retry costs
   * time, not memory (tsd_read_legacy's budget covers the file once). */
  tsd__arena_mark mark = tsd__arena_get_mark(L->arena);
  size_t n0 = L->n;
  for (;;) {
    uint8_t *buf = tsd__mem_alloc(L->arena->al, (size_t)w);
    if (!buf) return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", s->name);
    tsd_status st = tsd__source_read(s, *pos, buf, (size_t)w, what);
    if (st != TSD_OK) {
      tsd__mem_free(L->arena->al, buf);
      return st;
    }
    tsd__persistent_ctx pctx = {L->arena, s, L};
    size_t used;
    char label[128];
    snprintf(label, sizeof label, "%s (at offset %llu)", what,
             (unsigned long long)*pos);
    st = tsd__unpickle(buf, (size_t)w, &used, L->arena, L->limits,
                       with_pid ? legacy_persistent : NULL, &pctx, label, out);
    tsd__mem_free(L->arena->al, buf);
    if (st == TSD_OK) {
      *pos += used;
      return TSD_OK;
    }
    /* a window's budget (tsd__unpickle: 16x the window) is no verdict on
     * a pickle that may run past the window: retry it like a truncation */
    if ((used != SIZE_MAX && st != TSD_ERR_LIMIT) || w == cap) {
      if (used == SIZE_MAX && cap < remain)
        return tsd__err(TSD_ERR_LIMIT,
                        "%s: %s is larger than limits.max_pickle_bytes (%llu)",
                        s->name, what,
                        (unsigned long long)L->limits->max_pickle_bytes);
      return st;
    }
    w = w * 4 < cap ? w * 4 : cap;
    while (L->n > n0) {
      L->n--;
      tsd__strmap_remove(&L->keys, L->st[L->n].s->key,
                         strlen(L->st[L->n].s->key), lkey, L);
    }
    tsd__arena_release(L->arena, mark);
  }
}

static const uint8_t magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                  0x20, 0x6a, 0xa8, 0x50, 0x19};

static const tsd__value *dict_get(const tsd__value *d, const char *key) {
  if (d->kind != TSD__V_DICT) return NULL;
  for (size_t i = 0; i < d->u.dict.len; i++) {
    const tsd__value *k = d->u.dict.keys[i];
    if (k->kind == TSD__V_STR && strcmp(k->u.s.p, key) == 0)
      return d->u.dict.vals[i];
  }
  return NULL;
}

static tsd_status read_legacy(legacy *L, tsd__parsed *out) {
  const tsd__source *s = L->src;
  uint8_t head[262];
  /* torch.load tries tarfile first: the format of PyTorch < 0.4 */
  if (s->size >= sizeof head &&
      tsd__source_read(s, 0, head, sizeof head, "header") == TSD_OK &&
      memcmp(head + 257, "ustar", 5) == 0)
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: a tar-format checkpoint (PyTorch < 0.4) is not "
                    "supported; re-save it with a newer PyTorch",
                    s->name);
  uint64_t pos = 0;
  tsd__value *v;
  tsd_status st = unpickle_at(L, &pos, false, "magic number", &v);
  if (st != TSD_OK && s->indirect) /* the VM's message may quote bytes */
    return tsd__err(st,
                    "%s: not a torch.save checkpoint (a pickle, but its "
                    "first one is not the legacy magic number)",
                    s->name);
  if (st != TSD_OK) return st;
  if (v->kind != TSD__V_BIGINT || v->u.s.len != sizeof magic ||
      memcmp(v->u.s.p, magic, sizeof magic) != 0)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: invalid magic number: not a legacy torch.save file",
                    s->name);
  st = unpickle_at(L, &pos, false, "protocol version", &v);
  if (st != TSD_OK) return st;
  if (v->kind != TSD__V_INT || v->u.i != 1001)
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: legacy protocol version %lld (tsd reads 1001)",
                    s->name, v->kind == TSD__V_INT ? (long long)v->u.i : -1LL);
  st = unpickle_at(L, &pos, false, "sys_info", &v);
  if (st != TSD_OK) return st;
  if (v->kind != TSD__V_DICT)
    return tsd__err(TSD_ERR_FORMAT, "%s: sys_info is not a dict", s->name);
  const tsd__value *le = dict_get(v, "little_endian");
  if (le && le->kind == TSD__V_BOOL && le->u.i == 0)
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: the checkpoint was saved on a big-endian machine",
                    s->name);
  tsd__value *root;
  st = unpickle_at(L, &pos, true, "object pickle", &root);
  if (st != TSD_OK) return st;
  tsd__value *keys;
  st = unpickle_at(L, &pos, false, "storage key list", &keys);
  if (st != TSD_OK) return st;
  if (keys->kind != TSD__V_LIST)
    return tsd__err(TSD_ERR_FORMAT, "%s: the storage key list is a not a list",
                    s->name);
  for (size_t i = 0; i < keys->u.seq.len; i++) {
    const tsd__value *k = keys->u.seq.items[i];
    size_t idx;
    if (k->kind != TSD__V_STR)
      return tsd__err(TSD_ERR_FORMAT, "%s: storage key %zu is not a str",
                      s->name, i);
    if (!find_key(L, k, &idx) || L->st[idx].root != SIZE_MAX)
      return tsd__err(TSD_ERR_FORMAT,
                      "%s: storage key '%s' in the key list is not a storage "
                      "of the pickle",
                      s->name, k->u.s.p);
    tsd__storage *st_ = L->st[idx].s;
    uint8_t nb[8];
    st = tsd__source_read(s, pos, nb, 8, "storage size");
    if (st != TSD_OK) {
      tsd__err_prefix("storage '%s'", st_->key);
      return st;
    }
    uint64_t count = 0;
    for (int b = 0; b < 8; b++)
      count |= (uint64_t)nb[b] << (8 * b);
    if (count != st_->numel)
      return tsd__err(TSD_ERR_FORMAT,
                      "%s: offset %llu: storage '%s' has %llu elements in the "
                      "file but the pickle declares %llu",
                      s->name, (unsigned long long)pos, st_->key,
                      (unsigned long long)count,
                      (unsigned long long)st_->numel);
    uint64_t data = pos + 8, end;
    if (!tsd__add_u64(data, st_->nbytes, &end) || end > s->size)
      return tsd__err(TSD_ERR_FORMAT,
                      "%s: offset %llu: storage '%s' (%llu bytes) runs past "
                      "the end of the file (%llu bytes)",
                      s->name, (unsigned long long)data, st_->key,
                      (unsigned long long)st_->nbytes,
                      (unsigned long long)s->size);
    st_->offset = data;
    L->st[idx].has_data = true;
    pos = end;
  }
  tsd__storage **all =
      tsd__arena_alloc(L->arena, (L->n ? L->n : 1) * sizeof *all);
  if (!all) return tsd__err(TSD_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < L->n; i++) {
    lstorage *ls = &L->st[i];
    if (ls->root != SIZE_MAX) {
      ls->s->offset = L->st[ls->root].s->offset + ls->view_byte_offset;
      ls->has_data = L->st[ls->root].has_data;
    }
    if (!ls->has_data)
      return tsd__err(TSD_ERR_FORMAT,
                      "%s: storage '%s' is used by the pickle but has no data "
                      "in the file",
                      s->name, ls->s->key);
    all[i] = ls->s;
  }
  out->root = root;
  out->storages = all;
  out->n_storages = L->n;
  return TSD_OK;
}

tsd_status tsd__read_legacy(const tsd__source *src, tsd__arena *arena,
                            const tsd__limits *limits, tsd__parsed *out) {
  legacy L;
  memset(&L, 0, sizeof L);
  L.src = src;
  L.arena = arena;
  L.limits = limits;
  tsd__strmap_init(&L.keys, arena->al);
  memset(out, 0, sizeof *out);
  /* one parse budget for the file's pickles (tsd__parse_budget) */
  uint64_t old_limit = arena->limit, lim = tsd__parse_budget(arena, src->size);
  arena->limit = old_limit && old_limit < lim ? old_limit : lim;
  tsd_status st = read_legacy(&L, out);
  arena->limit = old_limit;
  tsd__strmap_free(&L.keys);
  tsd__mem_free(arena->al, L.st);
  if (st != TSD_OK) memset(out, 0, sizeof *out);
  return st;
}
