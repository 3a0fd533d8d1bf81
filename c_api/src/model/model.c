/* model.c — the module tree shared by every model kind, and C-owned models
 * (tensors that live in the caller's memory). */
#include <string.h>

#include "model.h"

/* ---- the module tree ---------------------------------------------------- */

static const char *tensor_key(const void *ctx, size_t index, size_t *len) {
  const tsd_model *m = ctx;
  const char *k = m->tensors[index].name;
  *len = strlen(k);
  return k;
}

static const char *module_key(const void *ctx, size_t index, size_t *len) {
  const tsd_model *m = ctx;
  const char *k = m->modules[index].prefix;
  *len = strlen(k);
  return k;
}

static void invalidate_order(tsd_model *m) {
  tsd__mem_free(m->al, m->order);
  m->order = NULL;
}

tsd_status tsd__model_create(tsd_model **out, const char *class_name,
                             const tsd__model_ops *ops, void *impl,
                             const tsd_allocator *al) {
  *out = NULL;
  tsd_model *m = tsd__mem_calloc(al, 1, sizeof *m);
  if (!m) return tsd__err(TSD_ERR_NOMEM, "out of memory creating a model");
  if (al) {
    m->alloc = *al;
    m->al = &m->alloc;
  }
  tsd__strmap_init(&m->tensor_index, m->al);
  tsd__strmap_init(&m->module_index, m->al);
  m->ops = ops;
  m->impl = impl;
  m->class_name = tsd__mem_strdup(m->al, class_name ? class_name : "");
  m->modules = tsd__mem_calloc(m->al, 8, sizeof *m->modules);
  char *root_prefix = tsd__mem_strdup(m->al, "");
  bool oom = !m->class_name || !m->modules || !root_prefix;
  if (!oom) {
    m->cap_modules = 8;
    tsd__module *root = &m->modules[0];
    root->prefix = root_prefix;
    root->local = root_prefix;
    root->version = 1;
    root->parent = SIZE_MAX;
    m->n_modules = 1;
    root_prefix = NULL;
    tsd__strmap_insert(&m->module_index, "", 0, 0, module_key, m, NULL, &oom);
  }
  if (oom) {
    tsd__mem_free(m->al, root_prefix);
    m->impl = NULL;
    m->ops = NULL; /* the caller still owns impl on failure */
    tsd_model_free(m);
    return tsd__err(TSD_ERR_NOMEM, "out of memory creating a model");
  }
  *out = m;
  return TSD_OK;
}

/* PyTorch forbids empty attribute names and names containing '.'
 * (register_parameter / add_module raise KeyError), so every component of a
 * dotted path must be non-empty. */
static tsd_status check_path(const char *name, const char *what) {
  if (!name) return tsd__err(TSD_ERR_INVALID_ARG, "%s name is NULL", what);
  size_t n = strlen(name);
  if (n == 0) return tsd__err(TSD_ERR_INVALID_ARG, "%s name is empty", what);
  if (name[0] == '.' || name[n - 1] == '.' || strstr(name, ".."))
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "%s name \"%s\" has an empty dotted component", what, name);
  return TSD_OK;
}

bool tsd__model_find_module(const tsd_model *m, const char *p, size_t len,
                            size_t *out) {
  return tsd__strmap_find(&m->module_index, p, len, module_key, m, out);
}

bool tsd__model_find_tensor(const tsd_model *m, const char *p, size_t len,
                            size_t *out) {
  return tsd__strmap_find(&m->tensor_index, p, len, tensor_key, m, out);
}

/* A module path may not pass through a tensor: "fc.weight" cannot be both a
 * tensor and a module (PyTorch: "attribute 'weight' already exists"). Checks
 * every prefix of path[0..len) that ends at a component boundary. */
static tsd_status check_no_tensor_on_path(const tsd_model *m, const char *path,
                                          size_t len, const char *full) {
  for (size_t i = 1; i <= len; i++) { /* i = 0: the root, never a tensor */
    if (i == len || path[i] == '.') {
      if (tsd__model_find_tensor(m, path, i, NULL))
        return tsd__err(TSD_ERR_INVALID_ARG,
                        "\"%s\": \"%.*s\" is already a tensor, it cannot also "
                        "be a module",
                        full, (int)i, path);
    }
  }
  return TSD_OK;
}

/* Creates every missing module on path[0..len), parents first. The path has
 * been validated. */
static tsd_status ensure_modules(tsd_model *m, const char *path, size_t len,
                                 size_t *out_index) {
  size_t cur = 0;
  if (len == 0) {
    *out_index = 0;
    return TSD_OK;
  }
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i != len && path[i] != '.') continue;
    size_t found;
    if (tsd__model_find_module(m, path, i, &found)) {
      cur = found;
    } else {
      if (!tsd__mem_grow(m->al, (void **)&m->modules, &m->cap_modules,
                         m->n_modules + 1, sizeof *m->modules))
        return tsd__err(TSD_ERR_NOMEM, "out of memory adding module %.*s",
                        (int)i, path);
      tsd__module *parent = &m->modules[cur];
      if (!tsd__mem_grow(m->al, (void **)&parent->children,
                         &parent->cap_children, parent->n_children + 1,
                         sizeof *parent->children))
        return tsd__err(TSD_ERR_NOMEM, "out of memory adding module %.*s",
                        (int)i, path);
      char *prefix = tsd__mem_strndup(m->al, path, i);
      if (!prefix)
        return tsd__err(TSD_ERR_NOMEM, "out of memory adding module %.*s",
                        (int)i, path);
      size_t idx = m->n_modules;
      tsd__module *mod = &m->modules[idx];
      memset(mod, 0, sizeof *mod);
      mod->prefix = prefix;
      mod->local = prefix + start;
      mod->version = 1; /* nn.Module._version */
      mod->parent = cur;
      m->n_modules++;
      bool oom;
      if (!tsd__strmap_insert(&m->module_index, prefix, i, idx, module_key, m,
                              NULL, &oom)) {
        m->n_modules--;
        tsd__mem_free(m->al, prefix);
        return tsd__err(TSD_ERR_NOMEM, "out of memory adding module %.*s",
                        (int)i, path);
      }
      parent->children[parent->n_children++] = idx;
      cur = idx;
      invalidate_order(m);
    }
    start = i + 1;
  }
  *out_index = cur;
  return TSD_OK;
}

tsd__norm tsd__norm_of_type(const char *t) {
  if (!t) return TSD__NORM_NONE;
  static const char *const batch[] = {
      "BatchNorm1d",     "BatchNorm2d",     "BatchNorm3d",    "SyncBatchNorm",
      "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d"};
  static const char *const inst[] = {
      "InstanceNorm1d",     "InstanceNorm2d",     "InstanceNorm3d",
      "LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d"};
  for (size_t i = 0; i < sizeof batch / sizeof *batch; i++)
    if (strcmp(t, batch[i]) == 0) return TSD__NORM_BATCH;
  for (size_t i = 0; i < sizeof inst / sizeof *inst; i++)
    if (strcmp(t, inst[i]) == 0) return TSD__NORM_INSTANCE;
  return TSD__NORM_NONE;
}

tsd_status tsd__model_module(tsd_model *m, const char *prefix,
                             const char *type_name, int64_t version,
                             size_t *out_index) {
  if (!m || !prefix)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_model_add_module: NULL argument");
  size_t len = strlen(prefix);
  if (len) {
    tsd_status st = check_path(prefix, "module");
    if (st) return st;
    st = check_no_tensor_on_path(m, prefix, len, prefix);
    if (st) return st;
  }
  if (version < -1)
    return tsd__err(TSD_ERR_INVALID_ARG, "module \"%s\": version %lld < -1",
                    prefix, (long long)version);
  char *type_copy = NULL;
  if (type_name && !(type_copy = tsd__mem_strdup(m->al, type_name)))
    return tsd__err(TSD_ERR_NOMEM, "out of memory declaring module %s", prefix);
  size_t idx;
  tsd_status st = ensure_modules(m, prefix, len, &idx);
  if (st) {
    tsd__mem_free(m->al, type_copy);
    return st;
  }
  tsd__module *mod = &m->modules[idx];
  if (type_copy) {
    tsd__mem_free(m->al, mod->type_name);
    mod->type_name = type_copy;
    mod->norm = tsd__norm_of_type(type_copy);
    /* _NormBase._version = 2 (num_batches_tracked added); nn.Module's is 1. */
    if (version < 0) mod->version = mod->norm != TSD__NORM_NONE ? 2 : 1;
  }
  if (version >= 0) mod->version = version;
  if (out_index) *out_index = idx;
  return TSD_OK;
}

static bool role_valid(int role) {
  return role == TSD_PARAMETER || role == TSD_BUFFER ||
         role == TSD_BUFFER_NON_PERSISTENT || role == TSD_PARAMETER_NONE;
}

/* Whether `name` can be placed in the module tree as a dotted path (the
 * rules of tsd__model_add, without setting an error). */
static tsd_status check_name_as_path(const tsd_model *m, const char *name) {
  size_t n = strlen(name);
  if (n == 0 || name[0] == '.' || name[n - 1] == '.' || strstr(name, ".."))
    return TSD_ERR_INVALID_ARG;
  if (tsd__model_find_module(m, name, n, NULL)) return TSD_ERR_INVALID_ARG;
  const char *dot = strrchr(name, '.');
  size_t mod_len = dot ? (size_t)(dot - name) : 0;
  for (size_t i = 0; i <= mod_len; i++)
    if ((i == mod_len || name[i] == '.') && i &&
        tsd__model_find_tensor(m, name, i, NULL))
      return TSD_ERR_INVALID_ARG;
  return TSD_OK;
}

tsd_status tsd__model_add(tsd_model *m, const char *name, tsd_tensor_role role,
                          tsd_dtype dtype, size_t ndim, const int64_t *shape,
                          void *data, void *handle, size_t *out_index) {
  if (!m) return tsd__err(TSD_ERR_INVALID_ARG, "model is NULL");
  if (!name) return tsd__err(TSD_ERR_INVALID_ARG, "tensor name is NULL");
  /* A model over a checkpoint's dict (tsd_model_from_checkpoint) takes any
   * key a dict may hold ('', '.w', 'a..b', 'fc' beside 'fc.w'): a key that
   * is no module path is a tensor of the root under its whole name. */
  bool flat = m->any_key_names && check_name_as_path(m, name) != TSD_OK;
  tsd_status st = flat ? TSD_OK : check_path(name, "tensor");
  if (st) return st;
  if (!role_valid((int)role))
    return tsd__err(TSD_ERR_INVALID_ARG, "tensor \"%s\": invalid role %d", name,
                    (int)role);
  bool is_none = role == TSD_PARAMETER_NONE;
  if (is_none) {
    ndim = 0;
    shape = NULL;
    data = NULL;
    if ((unsigned)dtype >= TSD_DTYPE_COUNT) dtype = TSD_FLOAT32;
  } else if ((unsigned)dtype >= TSD_DTYPE_COUNT) {
    return tsd__err(TSD_ERR_INVALID_ARG, "tensor \"%s\": invalid dtype %d",
                    name, (int)dtype);
  }
  if (ndim > TSD_MAX_NDIM)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tensor \"%s\": %zu dimensions (at most %d)", name, ndim,
                    TSD_MAX_NDIM);
  if (ndim && !shape)
    return tsd__err(TSD_ERR_INVALID_ARG, "tensor \"%s\": shape is NULL", name);
  uint64_t numel = 1;
  for (size_t i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return tsd__err(TSD_ERR_INVALID_ARG,
                      "tensor \"%s\": negative dimension %lld at %zu", name,
                      (long long)shape[i], i);
    if (!tsd__mul_u64(numel, (uint64_t)shape[i], &numel) ||
        numel > (uint64_t)INT64_MAX)
      return tsd__err(TSD_ERR_INVALID_ARG,
                      "tensor \"%s\": element count overflows", name);
  }
  uint64_t nbytes;
  if (!tsd__mul_u64(numel, tsd_dtype_size(dtype), &nbytes) ||
      nbytes > (uint64_t)SIZE_MAX)
    return tsd__err(TSD_ERR_INVALID_ARG, "tensor \"%s\": byte size overflows",
                    name);
  if (is_none) numel = 0;

  size_t len = strlen(name);
  if (tsd__model_find_tensor(m, name, len, NULL))
    return tsd__err(TSD_ERR_INVALID_ARG, "duplicate tensor name \"%s\"", name);
  if (!flat && tsd__model_find_module(m, name, len, NULL))
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "\"%s\" is already a module, it cannot also be a tensor",
                    name);
  const char *dot = flat ? NULL : strrchr(name, '.');
  size_t mod_len = dot ? (size_t)(dot - name) : 0;
  if (!flat) st = check_no_tensor_on_path(m, name, mod_len, name);
  if (st) return st;

  /* Allocate everything before changing the model, so a failure leaves it
   * as it was (modules created on the path may stay: they are harmless). */
  char *name_copy = tsd__mem_strndup(m->al, name, len);
  int64_t *shape_copy =
      tsd__mem_alloc(m->al, (ndim ? ndim : 1) * sizeof *shape_copy);
  if (!name_copy || !shape_copy ||
      !tsd__mem_grow(m->al, (void **)&m->tensors, &m->cap_tensors,
                     m->n_tensors + 1, sizeof *m->tensors)) {
    tsd__mem_free(m->al, name_copy);
    tsd__mem_free(m->al, shape_copy);
    return tsd__err(TSD_ERR_NOMEM, "out of memory adding tensor %s", name);
  }
  if (ndim) memcpy(shape_copy, shape, ndim * sizeof *shape_copy);
  size_t mod;
  st = ensure_modules(m, name, mod_len, &mod);
  tsd__module *mm = st ? NULL : &m->modules[mod];
  if (!st && !tsd__mem_grow(m->al, (void **)&mm->tensors, &mm->cap_tensors,
                            mm->n_tensors + 1, sizeof *mm->tensors))
    st = tsd__err(TSD_ERR_NOMEM, "out of memory adding tensor %s", name);
  size_t idx = m->n_tensors;
  bool oom = false;
  if (!st) {
    tsd__mtensor *t = &m->tensors[idx];
    memset(t, 0, sizeof *t);
    t->name = name_copy;
    t->local = dot ? name_copy + mod_len + 1 : name_copy;
    t->module = mod;
    t->role = role;
    t->dtype = dtype;
    t->ndim = ndim;
    t->shape = shape_copy;
    t->numel = (int64_t)numel;
    t->data = data;
    t->handle = handle;
    m->n_tensors++;
    if (!tsd__strmap_insert(&m->tensor_index, name_copy, len, idx, tensor_key,
                            m, NULL, &oom)) {
      m->n_tensors--;
      st = tsd__err(TSD_ERR_NOMEM, "out of memory adding tensor %s", name);
    }
  }
  if (st) {
    tsd__mem_free(m->al, name_copy);
    tsd__mem_free(m->al, shape_copy);
    return st;
  }
  mm->tensors[mm->n_tensors++] = idx;
  invalidate_order(m);
  if (out_index) *out_index = idx;
  return TSD_OK;
}

static bool is_param_role(tsd_tensor_role r) {
  return r == TSD_PARAMETER || r == TSD_PARAMETER_NONE;
}

/* Module indices in pre-order (the `_metadata` order). A new array of
 * m->n_modules (freed with m->al), or NULL on OOM. Iterative: the depth of a
 * model is the caller's. */
size_t *tsd__model_module_preorder(const tsd_model *m) {
  size_t *out = tsd__mem_alloc(m->al, m->n_modules * sizeof *out);
  size_t *stack = tsd__mem_alloc(m->al, m->n_modules * sizeof *stack);
  if (!out || !stack) {
    tsd__mem_free(m->al, out);
    tsd__mem_free(m->al, stack);
    return NULL;
  }
  size_t sp = 0, n = 0;
  stack[sp++] = 0;
  while (sp) {
    size_t mi = stack[--sp];
    out[n++] = mi;
    const tsd__module *mod = &m->modules[mi];
    for (size_t k = mod->n_children; k-- > 0;)
      stack[sp++] = mod->children[k];
  }
  tsd__mem_free(m->al, stack);
  return out;
}

size_t *tsd__model_order(const tsd_model *m) {
  size_t *order =
      tsd__mem_alloc(m->al, (m->n_tensors ? m->n_tensors : 1) * sizeof *order);
  size_t *stack = tsd__mem_alloc(m->al, m->n_modules * sizeof *stack);
  if (!order || !stack) {
    tsd__mem_free(m->al, order);
    tsd__mem_free(m->al, stack);
    return NULL;
  }
  /* Pre-order with an explicit stack: the depth of a model is the caller's
   * choice, the C stack is not. Children are pushed in reverse so they pop
   * in registration order (PyTorch's _modules order). */
  size_t sp = 0, n = 0;
  stack[sp++] = 0;
  while (sp) {
    const tsd__module *mod = &m->modules[stack[--sp]];
    /* state_dict: self._parameters, then self._buffers. */
    for (size_t i = 0; i < mod->n_tensors; i++)
      if (is_param_role(m->tensors[mod->tensors[i]].role))
        order[n++] = mod->tensors[i];
    for (size_t i = 0; i < mod->n_tensors; i++)
      if (!is_param_role(m->tensors[mod->tensors[i]].role))
        order[n++] = mod->tensors[i];
    for (size_t i = mod->n_children; i-- > 0;)
      stack[sp++] = mod->children[i];
  }
  tsd__mem_free(m->al, stack);
  return order;
}

/* The cached state_dict order. The cache is filled on first use after a
 * change; `m` is logically const (the order is a function of the tree).
 * Readers may race to fill it (const accessors from several threads are
 * allowed): the first compare-and-swap wins, the others free their copy. */
static const size_t *model_order(const tsd_model *cm) {
  tsd_model *m = TSD__UNCONST(tsd_model *, cm);
  size_t *cur = __atomic_load_n(&m->order, __ATOMIC_ACQUIRE);
  if (cur) return cur;
  size_t *fresh = tsd__model_order(m);
  if (!fresh) return NULL;
  size_t *expected = NULL;
  if (__atomic_compare_exchange_n(&m->order, &expected, fresh, false,
                                  __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return fresh;
  tsd__mem_free(m->al, fresh);
  return expected;
}

/* ---- C-owned models ----------------------------------------------------- */

/* A copy load writes into the caller's memory (`own`): a tensor bound to a
 * checkpoint's map (TSD_LOAD_BIND) goes back to it. tsd_load checks that
 * every tensor it copies into has memory before it copies anything. */
static tsd_status cown_copy_in(tsd_model *m, tsd__mtensor *t,
                               const tsd_checkpoint *c, const tsd__tensor *src,
                               const tsd__scratch *scratch) {
  (void)m;
  tsd_status st = TSD_OK;
  if (t->numel != 0) st = tsd__tensor_read(c, src, t->dtype, t->own, scratch);
  if (st == TSD_OK) {
    t->data = t->own;
    t->bound = NULL;
  }
  return st;
}

static tsd_status no_data(const tsd__mtensor *t) {
  return tsd__err(TSD_ERR_TYPE,
                  "\"%s\" has no data (a tensor added without memory that no "
                  "load has bound)",
                  t->name);
}

static tsd_status cown_read(const tsd_model *m, const tsd__mtensor *t,
                            tsd_dtype dtype, void *dst) {
  (void)m;
  if (t->numel > 0 && !t->data) return no_data(t);
  if (t->numel > 0)
    tsd__convert(dst, dtype, t->data, t->dtype, (size_t)t->numel);
  return TSD_OK;
}

static tsd_status cown_read_range(const tsd_model *m, const tsd__mtensor *t,
                                  tsd_dtype dtype, uint64_t first,
                                  uint64_t count, void *dst) {
  (void)m;
  if (!count) return TSD_OK;
  if (!t->data) return no_data(t);
  tsd__convert(dst, dtype,
               (const uint8_t *)t->data + first * tsd_dtype_size(t->dtype),
               t->dtype, (size_t)count);
  return TSD_OK;
}

static void cown_destroy(tsd_model *m) {
  (void)m; /* the caller's memory */
}

/* save NULL: write/ saves a C-owned model as a .pth (tsd__save_pth) */
static const tsd__model_ops cown_ops = {cown_copy_in, cown_read, NULL,
                                        cown_destroy, cown_read_range, NULL};

bool tsd__model_is_cown(const tsd_model *m) { return m && m->ops == &cown_ops; }

/* tsd_model_new and tsd_model_new_ex; `fn` names the caller in messages. */
static tsd_status model_new(tsd_model **out, const char *class_name,
                            const tsd_allocator *allocator, const char *fn) {
  if (!out) return tsd__err(TSD_ERR_INVALID_ARG, "%s: out is NULL", fn);
  *out = NULL;
  if (!class_name || !*class_name)
    return tsd__err(TSD_ERR_INVALID_ARG, "%s: class_name is NULL or empty", fn);
  tsd_status st = tsd__allocator_check(allocator, fn);
  if (st != TSD_OK) return st;
  return tsd__model_create(out, class_name, &cown_ops, NULL, allocator);
}

TSD_API tsd_status tsd_model_new(tsd_model **out, const char *class_name) {
  return model_new(out, class_name, NULL, "tsd_model_new");
}

TSD_API tsd_status tsd_model_new_ex(tsd_model **out, const char *class_name,
                                    const tsd_allocator *allocator) {
  return model_new(out, class_name, allocator, "tsd_model_new_ex");
}

/* tsd_model_open_torchscript is libtsd_torch's (shim/torchscript.cpp): libtsd
 * never links LibTorch. */

TSD_API void tsd_model_free(tsd_model *m) {
  if (!m) return;
  if (m->ops && m->ops->destroy) m->ops->destroy(m);
  for (size_t i = 0; i < m->n_modules; i++) {
    tsd__mem_free(m->al, m->modules[i].prefix);
    tsd__mem_free(m->al, m->modules[i].type_name);
    tsd__mem_free(m->al, m->modules[i].children);
    tsd__mem_free(m->al, m->modules[i].tensors);
  }
  for (size_t i = 0; i < m->n_tensors; i++) {
    tsd__mem_free(m->al, m->tensors[i].name);
    tsd__mem_free(m->al, m->tensors[i].shape);
  }
  tsd__mem_free(m->al, m->modules);
  tsd__mem_free(m->al, m->tensors);
  tsd__strmap_free(&m->tensor_index);
  tsd__strmap_free(&m->module_index);
  tsd__mem_free(m->al, m->order);
  tsd__mem_free(m->al, m->class_name);
  /* m->al points into m: free m through a copy */
  tsd_allocator a = m->alloc;
  tsd__mem_free(m->al ? &a : NULL, m);
}

TSD_API tsd_status tsd_model_add_tensor(tsd_model *model, const char *name,
                                        tsd_tensor_role role, tsd_dtype dtype,
                                        size_t ndim, const int64_t *shape,
                                        void *data) {
  if (!model)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_model_add_tensor: model is NULL");
  if (model->ops != &cown_ops)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_model_add_tensor: \"%s\" is not a C-owned model "
                    "(tensors can only be added to models from tsd_model_new)",
                    model->class_name);
  if (role != TSD_PARAMETER_NONE && !data && ndim <= TSD_MAX_NDIM) {
    /* A zero-size tensor needs no memory; any other needs some. */
    bool empty = false;
    for (size_t i = 0; shape && i < ndim; i++)
      empty |= shape[i] == 0;
    if (!empty)
      return tsd__err(TSD_ERR_INVALID_ARG, "tensor \"%s\": data is NULL",
                      name ? name : "(null)");
  }
  size_t idx;
  tsd_status st = tsd__model_add(model, name, role, dtype, ndim, shape, data,
                                 NULL, &idx);
  if (st == TSD_OK) model->tensors[idx].own = model->tensors[idx].data;
  return st;
}

TSD_API tsd_status tsd_model_add_tensor_unbacked(tsd_model *model,
                                                 const char *name,
                                                 tsd_tensor_role role,
                                                 tsd_dtype dtype, size_t ndim,
                                                 const int64_t *shape) {
  if (!model)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_model_add_tensor_unbacked: model is NULL");
  if (model->ops != &cown_ops)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_model_add_tensor_unbacked: \"%s\" is not a C-owned "
                    "model",
                    model->class_name);
  return tsd__model_add(model, name, role, dtype, ndim, shape, NULL, NULL,
                        NULL);
}

TSD_API tsd_status tsd_model_add_module(tsd_model *model, const char *name,
                                        const char *type_name,
                                        int64_t version) {
  if (!model)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_model_add_module: model is NULL");
  return tsd__model_module(model, name, type_name, version, NULL);
}

TSD_API tsd_status tsd_model_set_persistent(tsd_model *model, const char *name,
                                            int persistent) {
  if (!model || !name)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_model_set_persistent: NULL argument");
  size_t i;
  if (!tsd__model_find_tensor(model, name, strlen(name), &i))
    return tsd__err(TSD_ERR_NOT_FOUND, "model %s has no tensor \"%s\"",
                    model->class_name, name);
  tsd__mtensor *t = &model->tensors[i];
  if (t->role != TSD_BUFFER && t->role != TSD_BUFFER_NON_PERSISTENT)
    return tsd__err(TSD_ERR_TYPE,
                    "\"%s\" is a parameter; only buffers can be non-persistent",
                    name);
  t->role = persistent ? TSD_BUFFER : TSD_BUFFER_NON_PERSISTENT;
  return TSD_OK;
}

TSD_API const char *tsd_model_class_name(const tsd_model *model) {
  return model ? model->class_name : "";
}

TSD_API size_t tsd_model_tensor_count(const tsd_model *model) {
  return model ? model->n_tensors : 0;
}

static tsd_status tensor_at(const tsd_model *model, size_t index,
                            const tsd__mtensor **out) {
  if (!model) return tsd__err(TSD_ERR_INVALID_ARG, "model is NULL");
  if (index >= model->n_tensors)
    return tsd__err(TSD_ERR_NOT_FOUND, "tensor index %zu out of range (%zu)",
                    index, model->n_tensors);
  const size_t *order = model_order(model);
  if (!order) return tsd__err(TSD_ERR_NOMEM, "out of memory");
  *out = &model->tensors[order[index]];
  return TSD_OK;
}

TSD_API tsd_status tsd_model_tensor(tsd_tensor_info *out,
                                    const tsd_model *model, size_t index) {
  if (!out)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_model_tensor: out is NULL");
  const tsd__mtensor *t = NULL;
  tsd_status st = tensor_at(model, index, &t);
  if (st) return st;
  out->name = t->name;
  out->role = t->role;
  out->dtype = t->dtype;
  out->ndim = t->ndim;
  out->shape = t->shape;
  out->numel = t->numel;
  out->data = t->data;
  return TSD_OK;
}

TSD_API tsd_status tsd_model_read(void *dst, size_t dst_bytes,
                                  const tsd_model *model, size_t index,
                                  tsd_dtype dtype) {
  const tsd__mtensor *t = NULL;
  tsd_status st = tensor_at(model, index, &t);
  if (st) return st;
  if ((unsigned)dtype >= TSD_DTYPE_COUNT)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_model_read: invalid dtype %d",
                    (int)dtype);
  if (t->role == TSD_PARAMETER_NONE)
    return tsd__err(TSD_ERR_TYPE, "\"%s\" is a parameter registered as None",
                    t->name);
  uint64_t need = (uint64_t)t->numel * tsd_dtype_size(dtype);
  if (dst_bytes < need)
    return tsd__err(TSD_ERR_BUFFER,
                    "tsd_model_read: \"%s\" needs %llu bytes (%lld elements "
                    "of %s), the buffer has %zu",
                    t->name, (unsigned long long)need, (long long)t->numel,
                    tsd_dtype_name(dtype), dst_bytes);
  if (need && !dst)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_model_read: dst is NULL");
  if (need == 0) return TSD_OK;
  return model->ops->read(model, t, dtype, dst);
}

TSD_API const tsd_checkpoint *tsd_model_tensor_borrowed(const tsd_model *model,
                                                        size_t index) {
  if (!model || index >= model->n_tensors) return NULL;
  const size_t *order = model_order(model);
  return order ? model->tensors[order[index]].bound : NULL;
}

TSD_API size_t tsd_model_borrow_count(const tsd_model *model,
                                      const tsd_checkpoint *ckpt) {
  size_t n = 0;
  for (size_t i = 0; model && i < model->n_tensors; i++)
    n += model->tensors[i].bound && (!ckpt || model->tensors[i].bound == ckpt);
  return n;
}

TSD_API tsd_status tsd_model_read_range(void *dst, size_t dst_bytes,
                                        const tsd_model *model, size_t index,
                                        tsd_dtype dtype, uint64_t first,
                                        uint64_t count) {
  static const char fn[] = "tsd_model_read_range";
  const tsd__mtensor *t = NULL;
  tsd_status st = tensor_at(model, index, &t);
  if (st) return st;
  if ((unsigned)dtype >= TSD_DTYPE_COUNT)
    return tsd__err(TSD_ERR_INVALID_ARG, "%s: invalid dtype %d", fn,
                    (int)dtype);
  if (t->role == TSD_PARAMETER_NONE)
    return tsd__err(TSD_ERR_TYPE, "\"%s\" is a parameter registered as None",
                    t->name);
  const uint64_t n = t->numel > 0 ? (uint64_t)t->numel : 0;
  uint64_t end, need;
  if (!tsd__add_u64(first, count, &end) || end > n)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "%s: \"%s\": elements [%llu, %llu + %llu) are not within "
                    "its %llu elements",
                    fn, t->name, (unsigned long long)first,
                    (unsigned long long)first, (unsigned long long)count,
                    (unsigned long long)n);
  if (!tsd__mul_u64(count, tsd_dtype_size(dtype), &need) || need > dst_bytes)
    return tsd__err(TSD_ERR_BUFFER,
                    "%s: \"%s\": %llu elements of %s need %llu bytes, the "
                    "buffer has %zu",
                    fn, t->name, (unsigned long long)count,
                    tsd_dtype_name(dtype),
                    (unsigned long long)(count * tsd_dtype_size(dtype)),
                    dst_bytes);
  if (need && !dst)
    return tsd__err(TSD_ERR_INVALID_ARG, "%s: dst is NULL", fn);
  if (!count) return TSD_OK;
  if (model->ops->read_range)
    return model->ops->read_range(model, t, dtype, first, count, dst);
  /* A model kind that reads tensors whole (TorchScript): the whole tensor
   * into a temporary, then the range. */
  uint64_t all;
  if (!tsd__mul_u64(n, tsd_dtype_size(dtype), &all) || all > SIZE_MAX)
    return tsd__err(TSD_ERR_NOMEM, "%s: \"%s\" is too large", fn, t->name);
  uint8_t *tmp = tsd__mem_alloc(model->al, (size_t)all);
  if (!tmp)
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory reading \"%s\"", fn,
                    t->name);
  st = model->ops->read(model, t, dtype, tmp);
  if (!st) memcpy(dst, tmp + first * tsd_dtype_size(dtype), (size_t)need);
  tsd__mem_free(model->al, tmp);
  return st;
}

/* ---- extra state, lookups (branch model) -------------------------------- */

TSD_API tsd_status tsd_model_set_extra_state(tsd_model *model,
                                             const char *module,
                                             tsd_extra_state_fn set_fn,
                                             void *user) {
  if (!model || !module)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_model_set_extra_state: %s is NULL",
                    model ? "module" : "model");
  if (!model->ops || !model->ops->copy_in)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_model_set_extra_state: model %s cannot be loaded "
                    "into (it is read-only)",
                    model->class_name);
  size_t idx;
  tsd_status st = tsd__model_module(model, module, NULL, -1, &idx);
  if (st) return st;
  model->modules[idx].extra_fn = set_fn;
  model->modules[idx].extra_user = set_fn ? user : NULL;
  return TSD_OK;
}

TSD_API tsd_status tsd_model_find(size_t *out_index, const tsd_model *model,
                                  const char *name) {
  if (!model || !out_index || !name)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_model_find: %s is NULL",
                    !model ? "model" : !out_index ? "out_index" : "name");
  size_t ti;
  if (!tsd__model_find_tensor(model, name, strlen(name), &ti))
    return tsd__err(TSD_ERR_NOT_FOUND, "model %s has no tensor \"%s\"",
                    model->class_name, name);
  const size_t *order = model_order(model);
  if (!order) return tsd__err(TSD_ERR_NOMEM, "tsd_model_find: out of memory");
  /* the inverse of the order: a scan (no second cache to keep coherent) */
  for (size_t k = 0; k < model->n_tensors; k++)
    if (order[k] == ti) {
      *out_index = k;
      return TSD_OK;
    }
  return tsd__err(TSD_ERR_NOT_FOUND, "model %s has no tensor \"%s\"",
                  model->class_name, name);
}
