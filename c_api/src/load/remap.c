/* remap.c — the keys a load sees: a checkpoint's current dict after key
 * remapping (strip a prefix as PyTorch's consume_prefix_in_state_dict_if_
 * present does, rename prefixes, add a prefix), the `_metadata` module names
 * renamed alike, and the automatic selection of the state dict inside a
 * training checkpoint. */
#include <stdlib.h>
#include <string.h>

#include "load.h"

/* ---- the view ------------------------------------------------------------ */

static const char *view_key(const void *ctx, size_t i, size_t *len) {
  const tsd__keyview *v = ctx;
  *len = v->keys[i].len;
  return v->keys[i].name;
}

static const char *meta_key(const void *ctx, size_t i, size_t *len) {
  const tsd__keyview *v = ctx;
  *len = v->meta_names[i].len;
  return v->meta_names[i].name;
}

static const char *src_name(const tsd_checkpoint *c) {
  return c->src.name ? c->src.name : "<checkpoint>";
}

static bool starts_with(const char *s, size_t n, const char *p, size_t pn) {
  return n >= pn && memcmp(s, p, pn) == 0;
}

/* Python's str ordering is by code point, which for UTF-8 is byte order. */
static int key_cmp(const void *a, const void *b) {
  const tsd__vkey *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->name, y->name, n);
  if (c) return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

static const char *concat(tsd__arena *a, const char *p, size_t pn,
                          const char *s, size_t sn, size_t *out_len) {
  size_t n;
  if (__builtin_add_overflow(pn, sn, &n) || n == SIZE_MAX) return NULL;
  char *r = tsd__arena_alloc(a, n + 1);
  if (!r) return NULL;
  if (pn) memcpy(r, p, pn);
  if (sn) memcpy(r + pn, s, sn);
  r[n] = '\0';
  *out_len = n;
  return r;
}

/* consume_prefix_in_state_dict_if_present: `for key in sorted(keys): if
 * key.startswith(prefix): sd[key[len(prefix):]] = sd.pop(key)` — the keys
 * left alone keep their order, the stripped ones follow in sorted order. */
static tsd_status strip_step(tsd__vkey *keys, size_t n, const char *p,
                             tsd__vkey *tmp) {
  size_t pn = strlen(p), kept = 0, moved = 0;
  for (size_t i = 0; i < n; i++)
    if (!starts_with(keys[i].name, keys[i].len, p, pn))
      keys[kept++] = keys[i];
    else
      tmp[moved++] = keys[i];
  if (moved == 0) return TSD_OK;
  tsd__sort(tmp, moved, sizeof *tmp, key_cmp);
  for (size_t i = 0; i < moved; i++) {
    tmp[i].name += pn;
    tmp[i].len -= pn;
    keys[kept + i] = tmp[i];
  }
  return TSD_OK;
}

/* Renames (first matching rule) and the added prefix, for one name. Returns
 * false on OOM. *changed is set when the name changed. */
static bool rename_one(tsd__arena *a, const tsd__remap *r, tsd__vkey *k,
                       bool *changed) {
  for (size_t j = 0; j < r->n_renames; j++) {
    const char *from = r->renames[j].from, *to = r->renames[j].to;
    size_t fn = strlen(from);
    if (!starts_with(k->name, k->len, from, fn)) continue;
    k->name = concat(a, to, strlen(to), k->name + fn, k->len - fn, &k->len);
    if (!k->name) return false;
    *changed = true;
    break;
  }
  if (r->add && r->add[0]) {
    k->name = concat(a, r->add, strlen(r->add), k->name, k->len, &k->len);
    if (!k->name) return false;
    *changed = true;
  }
  return true;
}

static tsd_status check_rules(const tsd__remap *r) {
  if (r->n_strip && !r->strip)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_load: strip_prefixes is NULL");
  for (size_t i = 0; i < r->n_strip; i++)
    if (!r->strip[i] || !r->strip[i][0])
      return tsd__err(TSD_ERR_INVALID_ARG,
                      "tsd_load: strip_prefixes[%zu] is %s", i,
                      r->strip[i] ? "empty" : "NULL");
  if (r->n_renames && !r->renames)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_load: renames is NULL");
  for (size_t i = 0; i < r->n_renames; i++)
    if (!r->renames[i].from || !r->renames[i].from[0] || !r->renames[i].to)
      return tsd__err(TSD_ERR_INVALID_ARG, "tsd_load: renames[%zu] has %s", i,
                      !r->renames[i].to ? "a NULL `to`" : "an empty `from`");
  return TSD_OK;
}

static int64_t version_of(const tsd__value *m) {
  if (!m || m->kind != TSD__V_DICT) return -1;
  for (size_t i = 0; i < m->u.dict.len; i++) {
    const tsd__value *k = m->u.dict.keys[i], *v = m->u.dict.vals[i];
    if (k->kind == TSD__V_STR && k->u.s.len == 7 &&
        memcmp(k->u.s.p, "version", 7) == 0)
      return v->kind == TSD__V_INT || v->kind == TSD__V_BOOL ? v->u.i : -1;
  }
  return -1;
}

/* `_metadata` module names renamed like keys: module "m" as the key "m."
 * (the root as ""), minus the final dot. A renamed entry wins over one that
 * already had the name, and a later renamed one over an earlier (PyTorch
 * 2.x: `metadata[newkey] = metadata.pop(key)` in order). */
static tsd_status remap_metadata(tsd__keyview *v, const tsd__remap *r) {
  const tsd__value *m = v->meta;
  size_t n = m->u.dict.len;
  v->meta_names = tsd__mem_calloc(v->al, n ? n : 1, sizeof *v->meta_names);
  v->meta_versions =
      tsd__mem_calloc(v->al, n ? n : 1, sizeof *v->meta_versions);
  bool *changed = tsd__mem_calloc(v->al, n ? n : 1, sizeof *changed);
  if (!v->meta_names || !v->meta_versions || !changed) {
    tsd__mem_free(v->al, changed);
    return tsd__err(TSD_ERR_NOMEM, "tsd_load: out of memory");
  }
  tsd_status st = TSD_OK;
  for (size_t i = 0; i < n && !st; i++) {
    const tsd__value *key = m->u.dict.keys[i];
    if (key->kind != TSD__V_STR) continue; /* PyTorch cannot match it either */
    tsd__vkey k;
    if (key->u.s.len) {
      k.name = concat(&v->arena, key->u.s.p, key->u.s.len, ".", 1, &k.len);
      if (!k.name) {
        st = tsd__err(TSD_ERR_NOMEM, "tsd_load: out of memory");
        break;
      }
    } else {
      k.name = "";
      k.len = 0;
    }
    bool ch = false;
    if (r->strip_metadata) {
      /* 2.x skips the root ("" is the DDP wrapper's own entry) */
      for (size_t j = 0; j < r->n_strip && k.len; j++) {
        size_t pn = strlen(r->strip[j]);
        if (starts_with(k.name, k.len, r->strip[j], pn)) {
          k.name += pn;
          k.len -= pn;
          ch = true;
        }
      }
    }
    if (!rename_one(&v->arena, r, &k, &ch)) {
      st = tsd__err(TSD_ERR_NOMEM, "tsd_load: out of memory");
      break;
    }
    if (k.len && k.name[k.len - 1] == '.') k.len--;
    size_t at = v->n_meta++;
    k.src = at;
    v->meta_names[at] = k;
    v->meta_versions[at] = version_of(m->u.dict.vals[i]);
    changed[at] = ch;
    size_t prev;
    bool oom = false;
    if (tsd__strmap_insert(&v->meta_map, k.name, k.len, at, meta_key, v, &prev,
                           &oom))
      continue;
    if (oom) {
      st = tsd__err(TSD_ERR_NOMEM, "tsd_load: out of memory");
    } else if (ch) {
      tsd__strmap_remove(&v->meta_map, k.name, k.len, meta_key, v);
      if (!tsd__strmap_insert(&v->meta_map, k.name, k.len, at, meta_key, v,
                              &prev, &oom))
        st = tsd__err(TSD_ERR_NOMEM, "tsd_load: out of memory");
    }
  }
  tsd__mem_free(v->al, changed);
  return st;
}

tsd_status tsd__keyview_build(tsd__keyview *v, const tsd_checkpoint *c,
                              const tsd__remap *r, const tsd_allocator *al) {
  memset(v, 0, sizeof *v);
  v->c = c;
  v->al = al;
  tsd__strmap_init(&v->map, al);
  tsd__strmap_init(&v->meta_map, al);
  tsd__arena_init(&v->arena, 0, al);
  v->n = tsd__ckpt_count(c);
  v->meta = tsd__ckpt_metadata(c);
  /* A report lists keys as C strings: 'head\0.evil' would be reported as
   * 'head', a key the checkpoint does not hold. Such a key never matches
   * (model names are C strings too): refusing it loses no tensor a load
   * could copy, only the unexpected-key entry; the message shows it
   * escaped. */
  for (size_t i = 0; i < v->n; i++) {
    const tsd__value *k = tsd__ckpt_key(c, i);
    if (k->kind != TSD__V_STR || !memchr(k->u.s.p, '\0', k->u.s.len)) continue;
    char shown[1024]; /* escaped here: printf's %s would stop at the NUL */
    tsd_escape(shown, sizeof shown, k->u.s.p, k->u.s.len, TSD_ESCAPE_MESSAGE);
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: key '%s' holds a NUL byte, which a load report (C "
                    "strings) cannot carry",
                    src_name(c), shown);
  }
  bool any = r && (r->n_strip || r->n_renames || (r->add && r->add[0]));
  if (!any) {
    v->identity = true;
    return TSD_OK;
  }
  tsd_status st = check_rules(r);
  if (st) return st;
  size_t n = v->n;
  v->keys = tsd__mem_alloc(v->al, (n ? n : 1) * sizeof *v->keys);
  tsd__vkey *tmp = tsd__mem_alloc(v->al, (n ? n : 1) * sizeof *tmp);
  if (!v->keys || !tmp) {
    tsd__mem_free(v->al, tmp);
    return tsd__err(TSD_ERR_NOMEM, "tsd_load: out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    const tsd__value *k = tsd__ckpt_key(c, i);
    v->keys[i].name = k->u.s.p;
    v->keys[i].len = k->u.s.len;
    v->keys[i].src = i;
  }
  for (size_t j = 0; j < r->n_strip; j++)
    strip_step(v->keys, n, r->strip[j], tmp);
  tsd__mem_free(v->al, tmp);
  for (size_t i = 0; i < n; i++) {
    bool ch = false;
    if (!rename_one(&v->arena, r, &v->keys[i], &ch))
      return tsd__err(TSD_ERR_NOMEM, "tsd_load: out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    size_t prev;
    bool oom = false;
    if (tsd__strmap_insert(&v->map, v->keys[i].name, v->keys[i].len, i,
                           view_key, v, &prev, &oom))
      continue;
    if (oom) return tsd__err(TSD_ERR_NOMEM, "tsd_load: out of memory");
    const tsd__value *a = tsd__ckpt_key(c, v->keys[prev].src);
    const tsd__value *b = tsd__ckpt_key(c, v->keys[i].src);
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "%s: key remapping gives the checkpoint keys '%.300s' "
                    "and '%.300s' the same name '%.*s'",
                    src_name(c), a->u.s.p, b->u.s.p,
                    (int)(v->keys[i].len > 300 ? 300 : v->keys[i].len),
                    v->keys[i].name);
  }
  bool meta_changes = r->n_renames || (r->add && r->add[0]) ||
                      (r->n_strip && r->strip_metadata);
  if (v->meta && meta_changes) return remap_metadata(v, r);
  return TSD_OK;
}

void tsd__keyview_free(tsd__keyview *v) {
  if (!v) return;
  /* allocated with v->al */
  tsd__mem_free(v->al, v->keys);
  tsd__mem_free(v->al, v->meta_names);
  tsd__mem_free(v->al, v->meta_versions);
  tsd__strmap_free(&v->map);
  tsd__strmap_free(&v->meta_map);
  tsd__arena_free(&v->arena);
  memset(v, 0, sizeof *v);
}

bool tsd__keyview_find(const tsd__keyview *v, const char *key, size_t len,
                       size_t *out) {
  if (v->identity) return tsd__ckpt_lookup(v->c, key, len, out);
  return tsd__strmap_find(&v->map, key, len, view_key, v, out);
}

int64_t tsd__keyview_version(const tsd__keyview *v, const char *prefix) {
  if (!v->meta_names) return tsd__metadata_version(v->meta, prefix);
  size_t i;
  if (!tsd__strmap_find(&v->meta_map, prefix, strlen(prefix), meta_key, v, &i))
    return -1;
  return v->meta_versions[i];
}

/* ---- automatic selection ------------------------------------------------- */

/* Keys training scripts save the model's state dict under, most common
 * first; EMA copies last so the raw weights win when both are present. */
static const char *const k_auto_keys[] = {
    "state_dict", "model_state_dict", "model",          "module",   "net",
    "network",    "params",           "state_dict_ema", "model_ema"};
#define N_AUTO_KEYS (sizeof k_auto_keys / sizeof *k_auto_keys)

static bool is_torch_tensor(const tsd__value *v) {
  return v->kind == TSD__V_TENSOR && !v->u.tensor->numpy;
}

static bool dict_has_tensor(const tsd__value *d) {
  for (size_t i = 0; i < d->u.dict.len; i++)
    if (is_torch_tensor(d->u.dict.vals[i])) return true;
  return false;
}

/* A module's parameters, or its submodules' (a pickled model). `visits`
 * bounds the walk: a file can make a submodule graph whose paths are
 * exponential in its size; a real model is found in far fewer steps. */
static bool module_has_tensor(const tsd__value *m, uint32_t depth,
                              uint32_t *visits) {
  const tsd__value *st = m->u.obj.state;
  if (depth > 64 || *visits == 0) return false;
  --*visits;
  for (size_t i = 0; i < st->u.dict.len; i++) {
    const tsd__value *k = st->u.dict.keys[i], *v = st->u.dict.vals[i];
    if (k->kind != TSD__V_STR || v->kind != TSD__V_DICT) continue;
    if (!strcmp(k->u.s.p, "_parameters") || !strcmp(k->u.s.p, "_buffers")) {
      if (dict_has_tensor(v)) return true;
    } else if (!strcmp(k->u.s.p, "_modules")) {
      for (size_t j = 0; j < v->u.dict.len; j++)
        if (tsd__is_module(v->u.dict.vals[j]) &&
            module_has_tensor(v->u.dict.vals[j], depth + 1, visits))
          return true;
    }
  }
  return false;
}

static bool holds_state_dict(const tsd__value *v) {
  uint32_t visits = 100000;
  return (v->kind == TSD__V_DICT && dict_has_tensor(v)) ||
         (tsd__is_module(v) && module_has_tensor(v, 0, &visits));
}

TSD_API tsd_status tsd_checkpoint_select_auto(const char **out_key,
                                              tsd_checkpoint *c) {
  if (out_key) *out_key = NULL;
  if (!c)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_checkpoint_select_auto: checkpoint is NULL");
  if (!c->current)
    return tsd__err(TSD_ERR_TYPE,
                    "%s: the checkpoint holds a %s, not a dict: no state "
                    "dict to select",
                    src_name(c), tsd__type_repr(c->parsed.root));
  size_t n = tsd__ckpt_count(c);
  /* A named candidate wins over tensors beside it: a state dict never maps
   * one of these bare names to a dict (its keys are dotted tensor paths),
   * while training scripts keep tensors among the extras (pytorch/examples'
   * ImageNet checkpoint: 'best_acc1' is a tensor beside 'state_dict'). */
  for (size_t k = 0; k < N_AUTO_KEYS; k++) {
    size_t i;
    if (!tsd__ckpt_lookup(c, k_auto_keys[k], strlen(k_auto_keys[k]), &i))
      continue;
    if (!holds_state_dict(tsd__ckpt_val(c, i))) continue;
    tsd_status st = tsd_checkpoint_select(c, k_auto_keys[k]);
    if (st == TSD_OK && out_key) *out_key = k_auto_keys[k];
    return st;
  }
  for (size_t i = 0; i < n; i++)
    if (is_torch_tensor(tsd__ckpt_val(c, i))) return TSD_OK;
  tsd__buf b;
  tsd__buf_init(&b, c->al);
  for (size_t i = 0; i < n && i < 20; i++) {
    const tsd__value *k = tsd__ckpt_key(c, i);
    if (k->kind == TSD__V_STR)
      tsd__buf_printf(&b, "%s'%.80s'", i ? ", " : "", k->u.s.p);
  }
  if (n > 20) tsd__buf_printf(&b, ", ... (%zu keys)", n);
  tsd_status st = tsd__err(
      TSD_ERR_NOT_FOUND,
      "%s: no state dict found: none of 'state_dict', "
      "'model_state_dict', 'model', 'module', 'net', 'network', 'params', "
      "'state_dict_ema', 'model_ema' is a dict of tensors or a pickled "
      "model, and the dict holds no tensor (its keys: %s)",
      src_name(c), b.data && !b.oom ? b.data : "none");
  tsd__buf_free(&b);
  return st;
}
