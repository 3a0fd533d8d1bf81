/* layout.c — a C-owned model built from a layout file (branch model):
 * the JSON scripts/tsd_layout.py writes from a Python nn.Module, format in
 * docs/layout.md. Parsed with json.c (strict, bounded), every field checked
 * before the model is built, then built with the public model calls. */
#include <stdio.h>
#include <string.h>

#include "model.h"

/* A layout of a model with 300k tensors is ~40 MB: 64 MiB bounds parse
 * memory (16x, json.c) at 1 GiB. */
#define LAYOUT_MAX_BYTES ((uint64_t)64 << 20)
/* root object > "tensors" array > tensor object > "shape" array */
#define LAYOUT_DEPTH 4
#define LAYOUT_ALIGN 64

typedef struct layout {
  const char *path;
  const char *class_name;
  const tsd__json *modules, *tensors; /* arrays (may be NULL: none) */
} layout;

static tsd_status lerr(const layout *l, const char *what, size_t i,
                       const char *name, const char *msg) {
  return tsd__err(TSD_ERR_FORMAT, "%s: %s %zu%s%s%s: %s", l->path, what, i,
                  name ? " (\"" : "", name ? name : "", name ? "\")" : "",
                  msg);
}

static const char *str_member(const tsd__json *o, const char *key) {
  const tsd__json *v = tsd__json_get(o, key);
  return v && v->kind == TSD__J_STR ? v->s : NULL;
}

static bool dtype_named(const char *s, tsd_dtype *out) {
  if (strncmp(s, "torch.", 6) == 0) s += 6;
  for (int d = 0; d < TSD_DTYPE_COUNT; d++)
    if (strcmp(s, tsd_dtype_name((tsd_dtype)d)) == 0) {
      *out = (tsd_dtype)d;
      return true;
    }
  return false;
}

static const struct {
  const char *name;
  tsd_tensor_role role;
} k_roles[] = {{"parameter", TSD_PARAMETER},
               {"buffer", TSD_BUFFER},
               {"buffer_non_persistent", TSD_BUFFER_NON_PERSISTENT},
               {"parameter_none", TSD_PARAMETER_NONE}};

/* One tensor of the layout, checked: name, role, dtype, shape, bytes. */
typedef struct ltensor {
  const char *name;
  tsd_tensor_role role;
  tsd_dtype dtype;
  size_t ndim;
  int64_t shape[TSD_MAX_NDIM];
  uint64_t numel, nbytes;
} ltensor;

static tsd_status tensor_at(const layout *l, size_t i, ltensor *t) {
  const tsd__json *o = l->tensors->items[i];
  memset(t, 0, sizeof *t);
  if (o->kind != TSD__J_OBJ)
    return lerr(l, "tensor", i, NULL, "not an object");
  t->name = str_member(o, "name");
  if (!t->name) return lerr(l, "tensor", i, NULL, "\"name\" is not a string");
  const char *role = str_member(o, "role");
  if (!role)
    return lerr(l, "tensor", i, t->name, "\"role\" is not a string");
  size_t r = 0, nr = sizeof k_roles / sizeof *k_roles;
  while (r < nr && strcmp(role, k_roles[r].name) != 0)
    r++;
  if (r == nr)
    return lerr(l, "tensor", i, t->name,
                "\"role\" is none of \"parameter\", \"buffer\", "
                "\"buffer_non_persistent\", \"parameter_none\"");
  t->role = k_roles[r].role;
  t->dtype = TSD_FLOAT32;
  if (t->role == TSD_PARAMETER_NONE) return TSD_OK; /* no data */
  const char *dt = str_member(o, "dtype");
  if (!dt) return lerr(l, "tensor", i, t->name, "\"dtype\" is not a string");
  if (!dtype_named(dt, &t->dtype))
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: tensor %zu (\"%s\"): dtype \"%s\" is not one tsd "
                    "supports",
                    l->path, i, t->name, dt);
  const tsd__json *sh = tsd__json_get(o, "shape");
  if (!sh || sh->kind != TSD__J_ARR)
    return lerr(l, "tensor", i, t->name, "\"shape\" is not an array");
  if (sh->n > TSD_MAX_NDIM)
    return lerr(l, "tensor", i, t->name, "\"shape\" has more than 64 dims");
  t->ndim = sh->n;
  t->numel = 1;
  for (size_t k = 0; k < sh->n; k++) {
    const tsd__json *d = sh->items[k];
    if (d->kind != TSD__J_INT || d->i < 0)
      return lerr(l, "tensor", i, t->name,
                  "\"shape\" holds something other than an integer >= 0");
    t->shape[k] = d->i;
    if (!tsd__mul_u64(t->numel, (uint64_t)d->i, &t->numel) ||
        t->numel > (uint64_t)INT64_MAX)
      return lerr(l, "tensor", i, t->name, "element count overflows");
  }
  if (!tsd__mul_u64(t->numel, tsd_dtype_size(t->dtype), &t->nbytes) ||
      t->nbytes > (uint64_t)SIZE_MAX - LAYOUT_ALIGN)
    return lerr(l, "tensor", i, t->name, "byte size overflows");
  return TSD_OK;
}

/* Reads and parses `path`; checks the top level. */
static tsd_status parse(const char *path, tsd__arena *arena,
                        const tsd_allocator *al, layout *l) {
  memset(l, 0, sizeof *l);
  l->path = path;
  tsd__source src;
  tsd_status st = tsd__source_open_file(&src, path, al);
  if (st) return st;
  if (src.size > LAYOUT_MAX_BYTES) {
    tsd__source_close(&src);
    return tsd__err(TSD_ERR_LIMIT,
                    "%s: a layout of %llu bytes is larger than the %llu tsd "
                    "accepts",
                    path, (unsigned long long)src.size,
                    (unsigned long long)LAYOUT_MAX_BYTES);
  }
  char *text = tsd__mem_alloc(al, src.size ? (size_t)src.size : 1);
  if (!text) {
    tsd__source_close(&src);
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", path);
  }
  st = tsd__source_read(&src, 0, text, (size_t)src.size, "layout");
  tsd__source_close(&src);
  tsd__json *root = NULL;
  if (!st)
    st = tsd__json_parse(text, (size_t)src.size, arena, LAYOUT_DEPTH, path,
                         &root);
  tsd__mem_free(al, text);
  if (st) return st;
  const char *format = str_member(root, "format");
  if (root->kind != TSD__J_OBJ || !format || strcmp(format, "tsd.layout"))
    return tsd__err(TSD_ERR_TYPE,
                    "%s: JSON, but not a tsd layout (no \"format\": "
                    "\"tsd.layout\"; scripts/tsd_layout.py writes one)",
                    path);
  const tsd__json *v = tsd__json_get(root, "format_version");
  if (!v || v->kind != TSD__J_INT || v->i < 1)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: \"format_version\" is not an integer >= 1", path);
  if (v->i > 1)
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: layout format_version %lld; this tsd reads version 1",
                    path, (long long)v->i);
  l->class_name = str_member(root, "class_name");
  if (!l->class_name || !l->class_name[0])
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: \"class_name\" is not a non-empty string", path);
  l->modules = tsd__json_get(root, "modules");
  l->tensors = tsd__json_get(root, "tensors");
  if (!l->tensors || l->tensors->kind != TSD__J_ARR)
    return tsd__err(TSD_ERR_FORMAT, "%s: \"tensors\" is not an array", path);
  if (l->modules && l->modules->kind != TSD__J_ARR)
    return tsd__err(TSD_ERR_FORMAT, "%s: \"modules\" is not an array", path);
  return TSD_OK;
}

static size_t align_up(size_t n) {
  return (n + LAYOUT_ALIGN - 1) & ~(size_t)(LAYOUT_ALIGN - 1);
}

/* Checks every tensor; *out_bytes gets the arena size. */
static tsd_status arena_size(const layout *l, size_t *out_bytes) {
  size_t total = 0;
  ltensor t;
  for (size_t i = 0; i < l->tensors->n; i++) {
    tsd_status st = tensor_at(l, i, &t);
    if (st) return st;
    if (t.role == TSD_PARAMETER_NONE) continue;
    size_t a = align_up((size_t)t.nbytes);
    if (total > SIZE_MAX - a)
      return tsd__err(TSD_ERR_FORMAT, "%s: the tensors' bytes overflow",
                      l->path);
    total += a;
  }
  *out_bytes = total;
  return TSD_OK;
}

/* A name the model refuses ('a..b', a duplicate) is a malformed file. */
static tsd_status as_format(tsd_status st) {
  if (st != TSD_ERR_INVALID_ARG) return st;
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", tsd_last_error());
  return tsd__err(TSD_ERR_FORMAT, "%s", msg);
}

static tsd_status add_modules(tsd_model *m, const layout *l,
                              const tsd_layout_options *o) {
  size_t n = l->modules ? l->modules->n : 0;
  for (size_t i = 0; i < n; i++) {
    const tsd__json *mo = l->modules->items[i];
    if (mo->kind != TSD__J_OBJ)
      return lerr(l, "module", i, NULL, "not an object");
    const char *name = str_member(mo, "name");
    if (!name) return lerr(l, "module", i, NULL, "\"name\" is not a string");
    const tsd__json *type = tsd__json_get(mo, "type");
    if (type && type->kind != TSD__J_STR && type->kind != TSD__J_NULL)
      return lerr(l, "module", i, name, "\"type\" is not a string or null");
    const tsd__json *ver = tsd__json_get(mo, "version");
    int64_t version = -1;
    if (ver && ver->kind == TSD__J_INT && ver->i >= 0)
      version = ver->i;
    else if (ver && ver->kind != TSD__J_NULL)
      return lerr(l, "module", i, name,
                  "\"version\" is not an integer >= 0 or null");
    const tsd__json *extra = tsd__json_get(mo, "extra_state");
    if (extra && extra->kind != TSD__J_BOOL)
      return lerr(l, "module", i, name, "\"extra_state\" is not a boolean");
    tsd_status st = as_format(tsd_model_add_module(
        m, name, type && type->kind == TSD__J_STR ? type->s : NULL, version));
    if (!st && extra && extra->b) {
      if (!o->extra_state)
        st = tsd__err(TSD_ERR_INVALID_ARG,
                      "module \"%s\" has extra state (set_extra_state); give "
                      "tsd_layout_options.extra_state to receive it",
                      name);
      else
        st = as_format(tsd_model_set_extra_state(m, name, o->extra_state,
                                                 o->extra_state_user));
    }
    if (st) {
      tsd__err_prefix("%s: module %zu", l->path, i);
      return st;
    }
  }
  return TSD_OK;
}

static tsd_status add_tensors(tsd_model *m, const layout *l,
                              const tsd_layout_options *o) {
  size_t off = 0;
  ltensor t;
  for (size_t i = 0; i < l->tensors->n; i++) {
    tsd_status st = tensor_at(l, i, &t);
    if (st) return st;
    void *data = NULL;
    if (t.role != TSD_PARAMETER_NONE) {
      if (o->memory) {
        tsd_tensor_info info = {t.name, t.role,  t.dtype, t.ndim,
                                t.shape, (int64_t)t.numel, NULL};
        data = o->memory(o->memory_user, &info, (size_t)t.nbytes);
        if (!data && t.nbytes)
          return tsd__err(TSD_ERR_NOMEM,
                          "%s: tensor %zu (\"%s\"): the memory callback "
                          "gave no memory for %llu bytes",
                          l->path, i, t.name, (unsigned long long)t.nbytes);
      } else {
        data = (char *)o->arena + off;
        off += align_up((size_t)t.nbytes);
      }
    }
    st = as_format(tsd_model_add_tensor(m, t.name, t.role, t.dtype, t.ndim,
                                        t.shape, data));
    if (st) {
      tsd__err_prefix("%s: tensor %zu", l->path, i);
      return st;
    }
  }
  return TSD_OK;
}

TSD_API tsd_status tsd_model_from_layout(tsd_model **out, const char *path,
                                         const tsd_layout_options *options) {
  if (!out)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_model_from_layout: out is NULL");
  *out = NULL;
  if (!path || !options)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_model_from_layout: %s is NULL",
                    path ? "options" : "path");
  if (options->version < 1 || options->version > TSD_LAYOUT_OPTIONS_VERSION)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_model_from_layout: options->version is %u, expected "
                    "1 to %d (use TSD_LAYOUT_OPTIONS_INIT)",
                    options->version, TSD_LAYOUT_OPTIONS_VERSION);
  if (!options->memory && !options->arena)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_model_from_layout: give the tensors' memory "
                    "(options->memory or options->arena)");
  const tsd_allocator *al = options->allocator;
  tsd_status st = tsd__allocator_check(al, "tsd_model_from_layout");
  if (st) return st;
  tsd__arena arena;
  tsd__arena_init(&arena, 0, al);
  layout l;
  st = parse(path, &arena, al, &l);
  size_t need = 0;
  if (!st) st = arena_size(&l, &need);
  if (!st && !options->memory && options->arena_bytes < need)
    st = tsd__err(TSD_ERR_BUFFER,
                  "%s: the tensors need an arena of %zu bytes, "
                  "tsd_layout_options.arena_bytes is %zu",
                  path, need, options->arena_bytes);
  tsd_model *m = NULL;
  if (!st)
    st = tsd_model_new_ex(
        &m, options->class_name ? options->class_name : l.class_name, al);
  if (!st) st = add_modules(m, &l, options);
  if (!st) st = add_tensors(m, &l, options);
  tsd__arena_free(&arena);
  if (st) {
    tsd_model_free(m);
    return st;
  }
  *out = m;
  return TSD_OK;
}

TSD_API tsd_status tsd_layout_arena_bytes(size_t *out_bytes,
                                          const char *path) {
  if (!out_bytes || !path)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_layout_arena_bytes: %s is NULL",
                    path ? "out_bytes" : "path");
  *out_bytes = 0;
  tsd__arena arena;
  tsd__arena_init(&arena, 0, NULL);
  layout l;
  tsd_status st = parse(path, &arena, NULL, &l);
  if (!st) st = arena_size(&l, out_bytes);
  tsd__arena_free(&arena);
  return st;
}
