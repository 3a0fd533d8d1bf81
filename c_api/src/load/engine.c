/* engine.c — PyTorch 1.13's Module.load_state_dict (module.py), with
 * _NormBase's and _InstanceNorm's _load_from_state_dict (batchnorm.py,
 * instancenorm.py), reproduced over a tsd_model and a checkpoint's current
 * dict.
 *
 * PyTorch walks the modules in pre-order; each module sees the keys that
 * start with its prefix (a filtered copy of its parent's dict). We never copy
 * dicts: a checkpoint key is seen by exactly the chain of modules along its
 * dotted path, so one walk down that chain per key (O(depth) hash lookups)
 * finds the one module where it is unexpected, if any, and a stable bucket
 * sort by module replays PyTorch's order (modules in pre-order, keys in
 * checkpoint order within a module).
 *
 * Unlike PyTorch, which copies each matching tensor before it raises, we
 * validate everything first and copy only when the load succeeds. */
#include <stdio.h>
#include <string.h>

#include "load.h"
#include "platform.h"

#define NONE_IDX SIZE_MAX

typedef struct plan_item {
  size_t tensor;   /* model tensor index */
  bool elem0;      /* the 0-dim rule: element 0 of a 1-dim tensor */
  tsd__tensor src; /* what to copy: a checkpoint tensor, its element 0, or the
                      synthetic num_batches_tracked */
} plan_item;

typedef struct mod_info {
  bool bn_synth;     /* the _NormBase rule inserted num_batches_tracked */
  size_t in_drop[2]; /* keys the _InstanceNorm rule popped (running_mean/var) */
  size_t n_in_drop;
  size_t frozen_drop; /* num_batches_tracked FrozenBatchNorm2d deletes */
  size_t extra;       /* key index of prefix + "_extra_state" (any module) */
  size_t unexp_begin, unexp_end; /* range in the bucketed unexpected keys */
} mod_info;

typedef struct load_ctx {
  tsd_model *m;
  const tsd_checkpoint *c;
  tsd__keyview view; /* the keys as the model sees them (remap.c) */
  tsd_rules rules;
  size_t n_keys;
  bool *popped;     /* n_keys: dropped from the load's view by auto-pop */
  size_t *unexp_at; /* n_keys: module where the key is unexpected, or NONE */
  size_t *bucket;   /* unexpected key indices grouped by module */
  mod_info *info;   /* per module */
  size_t *preorder; /* module indices in pre-order */
  plan_item *plan;
  size_t n_plan;
  size_t *extra_plan; /* modules whose set_extra_state gets a value, pre-order */
  size_t n_extra_plan;
  tsd_report *report;
  tsd__buf scratch;
  tsd__storage zero_storage;
  tsd__tensor zero_tensor;
} load_ctx;

static const int64_t k_zero = 0;

/* ---- lookups ------------------------------------------------------------ */

/* A module's local_state: parameters that are not None, and persistent
 * buffers (Module._load_from_state_dict). */
static bool is_local_state(const tsd__mtensor *t) {
  return t->role == TSD_PARAMETER || t->role == TSD_BUFFER;
}

/* Key i of the load's view (after remapping), and its value. */
static void key_of(const load_ctx *x, size_t i, const char **s, size_t *n) {
  if (x->view.identity) {
    const tsd__value *k = tsd__ckpt_key(x->c, i);
    *s = k->u.s.p;
    *n = k->u.s.len;
  } else {
    *s = x->view.keys[i].name;
    *n = x->view.keys[i].len;
  }
}

static const tsd__value *val_of(const load_ctx *x, size_t i) {
  return tsd__ckpt_val(x->c, x->view.identity ? i : x->view.keys[i].src);
}

/* Is `key` in the load's view (present in the checkpoint, not auto-popped)? */
static bool view_lookup(const load_ctx *x, const char *key, size_t len,
                        size_t *out) {
  size_t i;
  if (!tsd__keyview_find(&x->view, key, len, &i) || x->popped[i]) return false;
  *out = i;
  return true;
}

/* Builds prefix + "." + name (or name for the root) in the scratch buffer. */
static const char *module_key_name(load_ctx *x, const tsd__module *mod,
                                   const char *name, size_t *len) {
  x->scratch.len = 0;
  tsd__buf_puts(&x->scratch, mod->prefix);
  if (mod->prefix[0]) tsd__buf_puts(&x->scratch, ".");
  tsd__buf_puts(&x->scratch, name);
  if (x->scratch.oom) return NULL;
  *len = x->scratch.len;
  return x->scratch.data;
}

static bool shapes_equal(size_t an, const int64_t *a, size_t bn,
                         const int64_t *b) {
  if (an != bn) return false;
  for (size_t i = 0; i < an; i++)
    if (a[i] != b[i]) return false;
  return true;
}

/* The shape the checkpoint tensor has after the backward-compatibility rule
 * ("loading 1-dim tensor from 0.3.* to version 0.4+"): a 0-dim model tensor
 * takes element 0 of a 1-dim checkpoint tensor. PyTorch 1.13 does it for
 * any length (and raises IndexError for length 0); 2.x only for length 1.
 * Returns 1 when the rule applies, 0 when not, -1 for 1.13's IndexError. */
static int zero_dim_rule(const load_ctx *x, const tsd__mtensor *t,
                         const tsd__tensor *s) {
  if (t->ndim != 0 || s->ndim != 1) return 0;
  if (x->rules == TSD_RULES_TORCH_2) return s->shape[0] == 1;
  return s->shape[0] == 0 ? -1 : 1;
}

/* ---- auto-pop ----------------------------------------------------------- */

static tsd_status auto_pop(load_ctx *x, const size_t *order) {
  tsd_model *m = x->m;
  for (size_t k = 0; k < m->n_tensors; k++) {
    const tsd__mtensor *t = &m->tensors[order[k]];
    if (!is_local_state(t)) continue;
    size_t i;
    if (!view_lookup(x, t->name, strlen(t->name), &i)) continue;
    const tsd__value *v = val_of(x, i);
    if (v->kind != TSD__V_TENSOR || v->u.tensor->numpy)
      continue; /* an error, not a mismatch */
    const tsd__tensor *s = v->u.tensor;
    int rule = zero_dim_rule(x, t, s);
    /* A length-0 tensor for a 0-dim one cannot be loaded either (1.13 raises
     * IndexError): auto-pop drops it like any shape that does not fit. */
    bool fits = rule == 1 || (rule == 0 && shapes_equal(s->ndim, s->shape,
                                                        t->ndim, t->shape));
    if (fits) continue;
    x->popped[i] = true;
    tsd_status st =
        tsd__report_add_mismatch(x->report, TSD_LIST_POPPED, t->name, s->ndim,
                                 s->shape, t->ndim, t->shape);
    if (st) return st;
  }
  return TSD_OK;
}

/* ---- per-module rules that change a module's view ------------------------ */

static bool tracks_running_stats(const tsd_model *m, const tsd__module *mod) {
  for (size_t i = 0; i < mod->n_tensors; i++) {
    const tsd__mtensor *t = &m->tensors[mod->tensors[i]];
    if (strcmp(t->local, "num_batches_tracked") == 0 &&
        (t->role == TSD_BUFFER || t->role == TSD_BUFFER_NON_PERSISTENT))
      return true;
  }
  return false;
}

static tsd_status module_rules(load_ctx *x) {
  for (size_t mi = 0; mi < x->m->n_modules; mi++) {
    const tsd__module *mod = &x->m->modules[mi];
    mod_info *info = &x->info[mi];
    info->extra = NONE_IDX;
    info->frozen_drop = NONE_IDX;
    size_t len, i;
    if (mod->type_name && strcmp(mod->type_name, "FrozenBatchNorm2d") == 0) {
      /* torchvision.ops.FrozenBatchNorm2d._load_from_state_dict deletes
       * prefix + "num_batches_tracked" from its dict before loading: the key
       * is neither loaded nor unexpected. */
      const char *key = module_key_name(x, mod, "num_batches_tracked", &len);
      if (!key) return tsd__err(TSD_ERR_NOMEM, "out of memory");
      if (view_lookup(x, key, len, &i)) info->frozen_drop = i;
    }
    if (mod->norm == TSD__NORM_NONE) continue;
    /* local_metadata = metadata.get(prefix[:-1], {}); version may be None */
    int64_t version = tsd__keyview_version(&x->view, mod->prefix);
    bool tracking = tracks_running_stats(x->m, mod);
    if (mod->norm == TSD__NORM_INSTANCE && version < 0 && !tracking) {
      /* _InstanceNorm, version None, track_running_stats=False: running
       * stats in the checkpoint are an error and are popped. */
      static const char *const names[2] = {"running_mean", "running_var"};
      for (int k = 0; k < 2; k++) {
        const char *key = module_key_name(x, mod, names[k], &len);
        if (!key) return tsd__err(TSD_ERR_NOMEM, "out of memory");
        if (view_lookup(x, key, len, &i)) info->in_drop[info->n_in_drop++] = i;
      }
    }
    if (tracking && version < 2) {
      /* _NormBase, version None or < 2: num_batches_tracked appeared in
       * version 2; a missing one defaults to torch.tensor(0). */
      const char *key = module_key_name(x, mod, "num_batches_tracked", &len);
      if (!key) return tsd__err(TSD_ERR_NOMEM, "out of memory");
      if (!view_lookup(x, key, len, &i)) info->bn_synth = true;
    }
  }
  return TSD_OK;
}

static bool in_dropped(const mod_info *info, size_t i) {
  if (info->frozen_drop == i) return true;
  for (size_t k = 0; k < info->n_in_drop; k++)
    if (info->in_drop[k] == i) return true;
  return false;
}

/* ---- unexpected keys ---------------------------------------------------- */

/* Follows key i down the modules that see it and records where it is
 * unexpected (or the module whose `_extra_state` it is). */
static void classify_key(load_ctx *x, size_t i) {
  const tsd_model *m = x->m;
  const char *key;
  size_t len;
  key_of(x, i, &key, &len);
  size_t mod = 0, off = 0;
  for (;;) {
    const char *rest = key + off;
    size_t rn = len - off;
    /* Module._load_from_state_dict: prefix + "_extra_state" goes to
     * set_extra_state when the module's class overrides it, else it is
     * unexpected; either way the scan skips it (load_module). */
    if (rn == 12 && memcmp(rest, "_extra_state", 12) == 0) {
      if (x->info[mod].extra == NONE_IDX) x->info[mod].extra = i;
      return;
    }
    if (in_dropped(&x->info[mod], i)) return;
    const char *dot = memchr(rest, '.', rn);
    size_t end = off + (dot ? (size_t)(dot - rest) : rn);
    size_t child, ti;
    bool is_child = tsd__model_find_module(m, key, end, &child) &&
                    m->modules[child].parent == mod;
    bool is_local = tsd__model_find_tensor(m, key, end, &ti) &&
                    m->tensors[ti].module == mod &&
                    is_local_state(&m->tensors[ti]);
    bool unexpected;
    if (x->rules == TSD_RULES_TORCH_2)
      /* 2.x: "Must be Module if it have attributes" */
      unexpected = dot ? !is_child : !is_local;
    else
      /* 1.13: the first component after the prefix names neither a child
       * module nor a local tensor (so "fc.weight.foo" is silently ignored) */
      unexpected = !is_child && !is_local;
    if (unexpected) {
      x->unexp_at[i] = mod;
      return;
    }
    if (!(is_child && dot)) return;
    mod = child;
    off = end + 1;
  }
}

static tsd_status bucket_unexpected(load_ctx *x) {
  size_t nm = x->m->n_modules;
  for (size_t i = 0; i < x->n_keys; i++) {
    x->unexp_at[i] = NONE_IDX;
    if (!x->popped[i]) classify_key(x, i);
  }
  /* Stable counting sort by module: checkpoint order within a module. */
  for (size_t i = 0; i < x->n_keys; i++)
    if (x->unexp_at[i] != NONE_IDX) x->info[x->unexp_at[i]].unexp_end++;
  size_t pos = 0;
  for (size_t mi = 0; mi < nm; mi++) {
    size_t n = x->info[mi].unexp_end;
    x->info[mi].unexp_begin = x->info[mi].unexp_end = pos;
    pos += n;
  }
  for (size_t i = 0; i < x->n_keys; i++)
    if (x->unexp_at[i] != NONE_IDX)
      x->bucket[x->info[x->unexp_at[i]].unexp_end++] = i;
  return TSD_OK;
}

/* ---- the per-module load ------------------------------------------------ */

static tsd_status add_error(load_ctx *x) {
  if (x->scratch.oom) return tsd__err(TSD_ERR_NOMEM, "out of memory");
  return tsd__report_add(x->report, TSD_LIST_ERRORS, x->scratch.data,
                         x->scratch.len);
}

/* One local tensor whose key is in the module's view with value `s`. */
static tsd_status load_tensor(load_ctx *x, size_t ti, const tsd__tensor *s) {
  const tsd__mtensor *t = &x->m->tensors[ti];
  int rule = zero_dim_rule(x, t, s);
  if (rule < 0) {
    x->scratch.len = 0;
    tsd__buf_printf(&x->scratch,
                    "While copying the parameter named \"%s\", the checkpoint "
                    "tensor has shape torch.Size([0]): it has no element 0 to "
                    "load into the 0-dim tensor of the model (PyTorch 1.13 "
                    "raises IndexError: index 0 is out of bounds for "
                    "dimension 0 with size 0)",
                    t->name);
    return add_error(x);
  }
  plan_item *p = &x->plan[x->n_plan];
  p->tensor = ti;
  p->src = *s;
  p->elem0 = rule == 1;
  if (rule == 1) { /* input_param = input_param[0] */
    p->src.ndim = 0;
    p->src.shape = NULL;
    p->src.stride = NULL;
    p->src.numel = 1;
    p->src.contiguous = true;
  } else if (!shapes_equal(s->ndim, s->shape, t->ndim, t->shape)) {
    return tsd__report_add_mismatch(x->report, TSD_LIST_MISMATCHED, t->name,
                                    s->ndim, s->shape, t->ndim, t->shape);
  }
  x->n_plan++;
  return TSD_OK;
}

/* PyTorch's legacy type name of a dense tensor of `d` ("FloatTensor"). */
static const char *legacy_type(tsd_dtype d) {
  switch (d) {
  case TSD_FLOAT32:
    return "FloatTensor";
  case TSD_FLOAT64:
    return "DoubleTensor";
  case TSD_FLOAT16:
    return "HalfTensor";
  case TSD_BFLOAT16:
    return "BFloat16Tensor";
  case TSD_INT8:
    return "CharTensor";
  case TSD_INT16:
    return "ShortTensor";
  case TSD_INT32:
    return "IntTensor";
  case TSD_INT64:
    return "LongTensor";
  case TSD_UINT8:
    return "ByteTensor";
  case TSD_BOOL:
    return "BoolTensor";
  case TSD_COMPLEX64:
    return "ComplexFloatTensor";
  case TSD_COMPLEX128:
    return "ComplexDoubleTensor";
  default:
    return NULL;
  }
}

/* A quantized or sparse checkpoint tensor for a dense model tensor: as in
 * PyTorch 1.13's _load_from_state_dict, a size mismatch is reported first;
 * otherwise param.copy_(input_param) raises and the error quotes it. */
static tsd_status load_xtensor(load_ctx *x, const tsd__mtensor *t,
                               const tsd__xtensor *s) {
  if (!shapes_equal(s->ndim, s->shape, t->ndim, t->shape))
    return tsd__report_add_mismatch(x->report, TSD_LIST_MISMATCHED, t->name,
                                    s->ndim, s->shape, t->ndim, t->shape);
  x->scratch.len = 0;
  tsd__buf_printf(&x->scratch,
                  "While copying the parameter named \"%s\", whose dimensions "
                  "in the model are ",
                  t->name);
  tsd__shape_repr(&x->scratch, t->ndim, t->shape);
  tsd__buf_puts(&x->scratch, " and whose dimensions in the checkpoint are ");
  tsd__shape_repr(&x->scratch, s->ndim, s->shape);
  tsd__buf_puts(&x->scratch, ", an exception occurred : ('");
  const char *mt = legacy_type(t->dtype), *ct = legacy_type(s->dtype);
  if (!s->sparse)
    tsd__buf_puts(&x->scratch,
                  "Copying from quantized Tensor to non-quantized Tensor is "
                  "not allowed, please use dequantize to get a float Tensor "
                  "from a quantized Tensor");
  else if (mt && ct)
    tsd__buf_printf(&x->scratch,
                    "copy_() between dense and sparse Tensors is not "
                    "implemented! Found self type = torch.%s and src type = "
                    "torch.sparse.%s",
                    mt, ct);
  else /* a dtype 1.13 has no legacy type for */
    tsd__buf_printf(&x->scratch,
                    "copy_() between dense and sparse Tensors is not "
                    "implemented! (self %s, src %s %s)",
                    tsd_dtype_name(t->dtype), s->desc,
                    tsd_dtype_name(s->dtype));
  tsd__buf_puts(&x->scratch, "',).");
  return add_error(x);
}

static tsd_status load_module(load_ctx *x, size_t mi) {
  const tsd_model *m = x->m;
  const tsd__module *mod = &m->modules[mi];
  const mod_info *info = &x->info[mi];
  tsd_status st;

  if (info->n_in_drop) {
    x->scratch.len = 0;
    tsd__buf_puts(&x->scratch, "Unexpected running stats buffer(s) ");
    for (size_t k = 0; k < info->n_in_drop; k++) {
      const char *key;
      size_t len;
      key_of(x, info->in_drop[k], &key, &len);
      tsd__buf_printf(&x->scratch, "%s\"%.*s\"", k ? " and " : "", (int)len,
                      key);
    }
    const char *klass = mod->type_name ? mod->type_name : "InstanceNorm";
    tsd__buf_printf(
        &x->scratch,
        " for %s with track_running_stats=False. If state_dict is a "
        "checkpoint saved before 0.4.0, this may be expected because %s does "
        "not track running stats by default since 0.4.0. Please remove these "
        "keys from state_dict. If the running stats are actually needed, "
        "instead set track_running_stats=True in %s to enable them. See the "
        "documentation of %s for details.",
        klass, klass, klass, klass);
    if ((st = add_error(x))) return st;
  }

  /* local_state: self._parameters, then the persistent self._buffers. */
  for (int pass = 0; pass < 2; pass++) {
    for (size_t k = 0; k < mod->n_tensors; k++) {
      size_t ti = mod->tensors[k];
      const tsd__mtensor *t = &m->tensors[ti];
      if (t->role != (pass == 0 ? TSD_PARAMETER : TSD_BUFFER)) continue;
      size_t i;
      bool present =
          view_lookup(x, t->name, strlen(t->name), &i) && !in_dropped(info, i);
      if (!present) {
        if (info->bn_synth && strcmp(t->local, "num_batches_tracked") == 0) {
          /* 1.13 inserts torch.tensor(0, dtype=torch.long); 2.x inserts
           * the module's own num_batches_tracked (nothing changes). */
          if (x->rules == TSD_RULES_TORCH_2) continue;
          if ((st = load_tensor(x, ti, &x->zero_tensor))) return st;
        } else if ((st = tsd__report_add(x->report, TSD_LIST_MISSING, t->name,
                                         strlen(t->name)))) {
          return st;
        }
        continue;
      }
      const tsd__value *v = val_of(x, i);
      if (v->kind == TSD__V_XTENSOR) {
        if ((st = load_xtensor(x, t, v->u.xtensor))) return st;
        continue;
      }
      /* a numpy array is no tensor to load_state_dict (is_tensor_like) */
      if (v->kind != TSD__V_TENSOR || v->u.tensor->numpy) {
        x->scratch.len = 0;
        tsd__buf_printf(&x->scratch,
                        "While copying the parameter named \"%s\", expected "
                        "torch.Tensor or Tensor-like object from checkpoint "
                        "but received %s",
                        t->name, tsd__type_repr(v));
        if ((st = add_error(x))) return st;
        continue;
      }
      if ((st = load_tensor(x, ti, v->u.tensor))) return st;
    }
  }

  /* extra_state_key = prefix + "_extra_state" (1.13): a class that
   * overrides set_extra_state gets the value (here: once the load is known
   * to succeed, extra_plan) or reports the key missing; any other module
   * reports a present key unexpected, before the scan's keys. */
  const char *key;
  size_t len;
  if (mod->extra_fn) {
    if (info->extra != NONE_IDX) {
      x->extra_plan[x->n_extra_plan++] = mi;
    } else {
      key = module_key_name(x, mod, "_extra_state", &len);
      if (!key) return tsd__err(TSD_ERR_NOMEM, "out of memory");
      if ((st = tsd__report_add(x->report, TSD_LIST_MISSING, key, len)))
        return st;
    }
  } else if (info->extra != NONE_IDX) {
    key_of(x, info->extra, &key, &len);
    if ((st = tsd__report_add(x->report, TSD_LIST_UNEXPECTED, key, len)))
      return st;
  }
  for (size_t b = info->unexp_begin; b < info->unexp_end; b++) {
    key_of(x, x->bucket[b], &key, &len);
    if ((st = tsd__report_add(x->report, TSD_LIST_UNEXPECTED, key, len)))
      return st;
  }
  if (info->bn_synth) {
    /* The inserted key sits last in the module's dict; it is unexpected when
     * num_batches_tracked is not in local_state (a non-persistent buffer). */
    key = module_key_name(x, mod, "num_batches_tracked", &len);
    if (!key) return tsd__err(TSD_ERR_NOMEM, "out of memory");
    size_t ti;
    if (!(tsd__model_find_tensor(m, key, len, &ti) &&
          is_local_state(&m->tensors[ti])))
      if ((st = tsd__report_add(x->report, TSD_LIST_UNEXPECTED, key, len)))
        return st;
  }
  return TSD_OK;
}

static void ctx_free(load_ctx *x) {
  const tsd_allocator *al = x->m->al;
  tsd__mem_free(al, x->popped);
  tsd__mem_free(al, x->unexp_at);
  tsd__mem_free(al, x->bucket);
  tsd__mem_free(al, x->info);
  tsd__mem_free(al, x->preorder);
  tsd__mem_free(al, x->plan);
  tsd__mem_free(al, x->extra_plan);
  tsd__buf_free(&x->scratch);
  tsd__keyview_free(&x->view);
  tsd_report_free(x->report);
}

/* Module.set_extra_state(state_dict[prefix + "_extra_state"]) for each
 * module that has one and a value, in module pre-order. PyTorch calls it
 * while it walks the modules, before it raises; tsd only once the load is
 * known to succeed, and before any tensor is copied: a callback that fails
 * stops the load with the tensors unchanged. */
static tsd_status call_extra_state(load_ctx *x) {
  for (size_t k = 0; k < x->n_extra_plan; k++) {
    const tsd__module *mod = &x->m->modules[x->extra_plan[k]];
    size_t i = x->info[x->extra_plan[k]].extra, len;
    const char *key = module_key_name(x, mod, "_extra_state", &len);
    if (!key) return tsd__err(TSD_ERR_NOMEM, "out of memory");
    size_t src = x->view.identity ? i : x->view.keys[i].src;
    tsd__err_clear();
    tsd_status st = mod->extra_fn(mod->extra_user, key, x->c, src);
    if (st == TSD_OK) continue;
    /* keep a message the callback set (the shim's); else say who failed */
    const char *prev = tsd_last_error();
    if (prev[0])
      tsd__err_prefix("tsd_load: set_extra_state of \"%s\" (no tensor of the "
                      "model is changed%s)",
                      key, k ? "; the earlier modules' extra state is set" : "");
    else
      tsd__err(st, "tsd_load: the set_extra_state callback for \"%s\" "
                   "returned %s (no tensor of the model is changed%s)",
               key, tsd_status_name(st),
               k ? "; the earlier modules' extra state is set" : "");
    return st;
  }
  return TSD_OK;
}

static bool is_synthetic(const load_ctx *x, const plan_item *p) {
  return p->src.storage == &x->zero_storage;
}

/* The matched keys, for TSD_LIST_MATCHED: every planned copy except the
 * num_batches_tracked the _NormBase rule made up (no checkpoint key). */
static tsd_status record_matched(load_ctx *x) {
  for (size_t k = 0; k < x->n_plan; k++) {
    if (is_synthetic(x, &x->plan[k])) continue;
    const char *name = x->m->tensors[x->plan[k].tensor].name;
    tsd_status st =
        tsd__report_add(x->report, TSD_LIST_MATCHED, name, strlen(name));
    if (st) return st;
  }
  return TSD_OK;
}

static uint64_t src_bytes(const tsd__tensor *t) {
  uint64_t n;
  if (t->numel <= 0 ||
      !tsd__mul_u64((uint64_t)t->numel, tsd_dtype_size(t->dtype), &n))
    return 0;
  return n;
}

/* Copies the plan, reporting progress: done = 0 before the first byte, then
 * after a tensor once >= 1% more is done, and done == total at the end. */
static tsd_status copy_tensors(load_ctx *x, const tsd_load_options *opt,
                               const tsd__scratch *scratch, uint64_t total,
                               uint64_t step, const bool *skip);

/* The order tensors are read in: the order of their bytes in the files
 * (state_dict order where they lie in memory or at the same place).
 * torch.save writes its records sorted by storage key as *strings*
 * ("0", "1", "10", "100", ...), so state_dict order jumps around a zip
 * file; reading it in state_dict order made a cold load of vit_l_16 1.5x
 * slower than `cat`, and a cold device load about 2x a copy load
 * (bench/notes.md). Copy loads and device loads both use this order. */
typedef struct read_key {
  uintptr_t src;   /* the source (0: memory) */
  uint64_t off;    /* byte offset of element 0 in it */
  size_t k;        /* plan index */
} read_key;

static int read_key_cmp(const void *a, const void *b) {
  const read_key *x = a, *y = b;
  if (x->src != y->src) return x->src < y->src ? -1 : 1;
  if (x->off != y->off) return x->off < y->off ? -1 : 1;
  return x->k < y->k ? -1 : x->k > y->k;
}

/* A new array of plan indices in read order (NULL on OOM). */
static size_t *read_order(load_ctx *x) {
  const tsd_allocator *al = x->m->al;
  size_t n = x->n_plan ? x->n_plan : 1;
  read_key *keys = tsd__mem_alloc(al, n * sizeof *keys);
  size_t *order = tsd__mem_alloc(al, n * sizeof *order);
  if (!keys || !order) {
    tsd__mem_free(al, keys);
    tsd__mem_free(al, order);
    return NULL;
  }
  for (size_t k = 0; k < x->n_plan; k++) {
    const tsd__tensor *t = &x->plan[k].src;
    const tsd__storage *st = t->storage;
    keys[k].k = k;
    keys[k].src = st->mem ? 0 : (uintptr_t)(st->src ? st->src : &x->c->src);
    keys[k].off = st->mem ? 0
                          : st->offset + (uint64_t)(t->offset > 0 ? t->offset : 0) *
                                             tsd_dtype_size(t->dtype);
  }
  tsd__sort(keys, x->n_plan, sizeof *keys, read_key_cmp);
  for (size_t k = 0; k < x->n_plan; k++)
    order[k] = keys[k].k;
  tsd__mem_free(al, keys);
  return order;
}

/* Copies the plan's items (those not in `skip`, when given). */
static tsd_status copy_plan(load_ctx *x, const tsd_load_options *opt,
                            const bool *skip) {
  uint64_t total = 0;
  for (size_t k = 0; k < x->n_plan; k++)
    if (!skip || !skip[k]) total += src_bytes(&x->plan[k].src);
  uint64_t step = total / 100 ? total / 100 : 1;
  /* Every staging buffer the copies need, allocated before the first byte
   * is written: running out of memory leaves the model unchanged. (A model
   * kind may read in the checkpoint's dtype and convert itself: room for
   * both.) */
  const bool one = opt->threads == 1;
  size_t need = 0;
  for (size_t k = 0; k < x->n_plan; k++) {
    const tsd__tensor *src = &x->plan[k].src;
    tsd_dtype to = x->m->tensors[x->plan[k].tensor].dtype;
    size_t a = tsd__tensor_read_scratch(src, to, one);
    size_t b = tsd__tensor_read_scratch(src, src->dtype, one);
    if (a > need) need = a;
    if (b > need) need = b;
  }
  tsd__scratch scratch = {NULL, need, one};
  if (need && !(scratch.p = tsd__mem_alloc(x->m->al, need)))
    return tsd__err(TSD_ERR_NOMEM,
                    "tsd_load: out of memory (a %zu-byte read buffer; the "
                    "model is unchanged)",
                    need);
  tsd_status st = copy_tensors(x, opt, &scratch, total, step, skip);
  tsd__mem_free(x->m->al, scratch.p);
  return st;
}

static tsd_status copy_one(load_ctx *x, const tsd_load_options *opt,
                           const tsd__scratch *scratch, uint64_t total,
                           uint64_t step, const bool *skip, const size_t *ord,
                           size_t kk, size_t last_k, uint64_t *done,
                           uint64_t *last, size_t *n_done);

static tsd_status copy_tensors(load_ctx *x, const tsd_load_options *opt,
                               const tsd__scratch *scratch, uint64_t total,
                               uint64_t step, const bool *skip) {
  uint64_t done = 0, last = 0;
  size_t *ord = read_order(x);
  if (!ord)
    return tsd__err(TSD_ERR_NOMEM,
                    "tsd_load: out of memory (the model is unchanged)");
  if (opt->progress && opt->progress(opt->progress_user, 0, total)) {
    tsd__mem_free(x->m->al, ord);
    return tsd__err(TSD_ERR_CANCELED,
                    "tsd_load: canceled by the progress callback before "
                    "copying (the model is unchanged)");
  }
  size_t last_k = x->n_plan;
  for (size_t k = 0; k < x->n_plan; k++)
    if (!skip || !skip[ord[k]]) last_k = k;
  tsd_status st = TSD_OK;
  size_t n_done = 0;
  for (size_t k = 0; !st && k < x->n_plan; k++)
    st = copy_one(x, opt, scratch, total, step, skip, ord, k, last_k, &done,
                  &last, &n_done);
  tsd__mem_free(x->m->al, ord);
  return st;
}

/* Copies item ord[kk] and reports progress (`n_done`: items copied). */
static tsd_status copy_one(load_ctx *x, const tsd_load_options *opt,
                           const tsd__scratch *scratch, uint64_t total,
                           uint64_t step, const bool *skip, const size_t *ord,
                           size_t kk, size_t last_k, uint64_t *done,
                           uint64_t *last, size_t *n_done) {
  size_t k = ord[kk];
  if (skip && skip[k]) return TSD_OK;
  tsd__mtensor *t = &x->m->tensors[x->plan[k].tensor];
  tsd_status st = x->m->ops->copy_in(x->m, t, x->c, &x->plan[k].src, scratch);
  if (st) {
    tsd__err_prefix("tsd_load: copying \"%s\" (the model is partly loaded)",
                    t->name);
    return st;
  }
  ++*n_done;
  *done += src_bytes(&x->plan[k].src);
  bool last_one = kk == last_k;
  if (!opt->progress || (!last_one && *done - *last < step)) return TSD_OK;
  *last = *done;
  if (opt->progress(opt->progress_user, *done, total) && !last_one)
    return tsd__err(TSD_ERR_CANCELED,
                    "tsd_load: canceled by the progress callback after "
                    "%zu of %zu tensors (those are loaded, the others "
                    "unchanged)",
                    *n_done, x->n_plan);
  return TSD_OK;
}

/* ---- the load modes (branch `views`): copy, bind, device ---------------- */

/* A copy into a C-owned model needs the caller's memory: checked for every
 * item to copy before anything is written. */
static tsd_status check_backed(load_ctx *x, const bool *skip) {
  if (!tsd__model_is_cown(x->m)) return TSD_OK;
  for (size_t k = 0; k < x->n_plan; k++) {
    const tsd__mtensor *t = &x->m->tensors[x->plan[k].tensor];
    if ((skip && skip[k]) || t->own || t->numel == 0) continue;
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "tsd_load: \"%s\" must be copied but has no memory of its "
                    "own (tsd_model_add_tensor_unbacked: only a bind or device "
                    "load can fill it); the model is unchanged",
                    t->name);
  }
  return TSD_OK;
}

static tsd_status copy_mode(load_ctx *x, const tsd_load_options *opt) {
  tsd_status st = check_backed(x, NULL);
  return st ? st : copy_plan(x, opt, NULL);
}

/* Why item k cannot be bound, into x->scratch; false when it can (*view
 * set). */
static bool bind_refused(load_ctx *x, const plan_item *p, const void **view) {
  const tsd__mtensor *t = &x->m->tensors[p->tensor];
  x->scratch.len = 0;
  if (is_synthetic(x, p)) {
    tsd__buf_puts(&x->scratch,
                  "made up by the _NormBase rule (torch.tensor(0)): not in "
                  "the checkpoint");
  } else if (p->elem0) {
    tsd__buf_puts(&x->scratch,
                  "the 0-dim rule: element 0 of a 1-dim checkpoint tensor");
  } else if (p->src.dtype != t->dtype) {
    tsd__buf_printf(&x->scratch, "%s in the checkpoint, %s in the model",
                    tsd_dtype_name(p->src.dtype), tsd_dtype_name(t->dtype));
  } else if (!p->src.contiguous) {
    tsd__buf_puts(&x->scratch,
                  "not C-contiguous in the checkpoint (a strided view of its "
                  "storage)");
  } else if (tsd__tensor_view(x->c, &p->src, t->name, view) != TSD_OK) {
    /* "\"key\": not viewable: <reason>": keep the reason */
    const char *e = tsd_last_error();
    const char *r = strstr(e, "not viewable: ");
    tsd__buf_puts(&x->scratch, r ? r + 14 : e);
  } else {
    return false;
  }
  return true;
}

static tsd_status bind_mode(load_ctx *x, const tsd_load_options *opt) {
  const tsd_allocator *al = x->m->al;
  size_t n = x->n_plan ? x->n_plan : 1;
  const void **views = tsd__mem_calloc(al, n, sizeof *views);
  bool *skip = tsd__mem_calloc(al, n, sizeof *skip);
  tsd_status st = TSD_OK;
  if (!views || !skip) st = tsd__err(TSD_ERR_NOMEM, "tsd_load: out of memory");
  for (size_t k = 0; !st && k < x->n_plan; k++) {
    const plan_item *p = &x->plan[k];
    const char *name = x->m->tensors[p->tensor].name;
    bool copy = bind_refused(x, p, &views[k]);
    if (x->scratch.oom) {
      st = tsd__err(TSD_ERR_NOMEM, "tsd_load: out of memory");
      break;
    }
    skip[k] = !copy;
    if (is_synthetic(x, p)) continue; /* no key: in neither list */
    if (!copy) {
      st = tsd__report_add(x->report, TSD_LIST_BOUND, name, strlen(name));
    } else {
      st = tsd__report_add(x->report, TSD_LIST_COPIED, name, strlen(name));
      if (!st)
        st = tsd__report_add(x->report, TSD_LIST_COPY_REASONS,
                             x->scratch.data, x->scratch.len);
    }
  }
  if (!st) st = check_backed(x, skip);
  if (!st) st = copy_plan(x, opt, skip);
  /* Only a load that succeeded binds. */
  for (size_t k = 0; !st && k < x->n_plan; k++) {
    if (!skip[k]) continue;
    tsd__mtensor *t = &x->m->tensors[x->plan[k].tensor];
    t->data = (void *)(uintptr_t)views[k]; /* read-only: documented */
    t->bound = x->c;
  }
  tsd__mem_free(al, views);
  tsd__mem_free(al, skip);
  return st;
}

/* Reads elements [first, first + count) of item p as `to` into dst. */
static tsd_status device_read(load_ctx *x, const plan_item *p, tsd_dtype to,
                              uint64_t first, uint64_t count, void *dst,
                              const tsd__scratch *scratch) {
  const tsd__tensor *src = &p->src;
  if (src->ndim == 0) return tsd__tensor_read(x->c, src, to, dst, scratch);
  if (!src->contiguous)
    return tsd__tensor_read_range(x->c, src, to, first, count, dst);
  /* a run of a C-contiguous tensor is one flat contiguous tensor */
  tsd__tensor sub = *src;
  int64_t shape = (int64_t)count, stride = 1;
  sub.ndim = 1;
  sub.shape = &shape;
  sub.stride = &stride;
  sub.offset = src->offset + (int64_t)first;
  sub.numel = (int64_t)count;
  return tsd__tensor_read(x->c, &sub, to, dst, scratch);
}

/* ---- the device copy's pipeline ------------------------------------------
 * A synchronous callback (a memcpy to the device, a blocking upload) used to
 * run after each chunk's read, so the load cost read + callback, twice the
 * copy path's work on one core (issue 15: 1.3-1.7x a copy load warm). With
 * a staging buffer of at least 3 * PIPE_PART bytes it is used as three
 * parts, chunk k in part k % 3, and one reading thread of tsd runs for the
 * whole load: while the callback for chunk k runs on the calling thread, it
 * reads chunk k + 1. It may write chunk j only once the callback for chunk
 * j - 2 has returned: part j % 3 held chunk j - 3, which must stay untouched
 * until the callback for chunk j - 2 returns (tsd.h's rule), so it is never
 * more than one chunk ahead. A chunk the reading thread has not taken when
 * the calling thread needs it (a busy machine, a strided or 0-dim tensor
 * whose read allocates) is read by the calling thread itself, so a late or
 * descheduled reader costs at worst the one-thread speed. (A thread per
 * chunk, started and joined around each callback, cost ~50 us a chunk: with
 * parts of 1 MiB, 1,200 starts for ViT-L.) Smaller buffers keep two halves
 * and no thread (tsd.h). */
#define PIPE_PART ((size_t)64 << 10)

/* A chunk: elements [e, e + cnt) of plan item ord[kk]; kk == n_plan after
 * the last. */
typedef struct dev_pos {
  size_t kk;
  uint64_t e, cnt;
} dev_pos;

/* Moves *c to the first chunk at or after (c->kk, c->e). Empty tensors
 * have no chunk. */
static void dev_settle(const load_ctx *x, const size_t *ord, size_t part,
                       dev_pos *c) {
  for (; c->kk < x->n_plan; c->kk++, c->e = 0) {
    const tsd__mtensor *t = &x->m->tensors[x->plan[ord[c->kk]].tensor];
    uint64_t n = t->numel > 0 ? (uint64_t)t->numel : 0;
    uint64_t per = part / tsd_dtype_size(t->dtype); /* >= 1: checked */
    if (c->e < n) {
      c->cnt = n - c->e < per ? n - c->e : per;
      return;
    }
  }
  c->e = c->cnt = 0;
}

static void dev_next(const load_ctx *x, const size_t *ord, size_t part,
                     dev_pos *c) {
  c->e += c->cnt;
  dev_settle(x, ord, part, c);
}

typedef struct dev_pipe {
  load_ctx *x;
  const size_t *ord;
  size_t part;
  uint8_t *parts[3];
  tsd__scratch scratch; /* the reading thread's own */
  tsd__sync sync;       /* guards everything below */
  uint64_t claimed;     /* chunks 0 .. claimed - 1 are taken by a thread */
  uint64_t called;      /* callbacks returned */
  uint64_t reading;     /* the chunk the reading thread took, UINT64_MAX: none */
  uint64_t read_done;   /* it finished every chunk it took below this */
  uint64_t failed;      /* the chunk whose read failed there, or UINT64_MAX */
  bool quit;
  tsd_status st;  /* that failure */
  char msg[1024]; /* tsd__err is per thread: its message, carried back */
} dev_pipe;

/* The reading thread takes a chunk only if it is a plain contiguous run (a
 * strided read allocates its window with the model's allocator, which
 * tsd.h says is called from the calling thread). */
static bool dev_reader_may(const load_ctx *x, const size_t *ord,
                           const dev_pos *c) {
  const plan_item *p = &x->plan[ord[c->kk]];
  return p->src.contiguous && p->src.ndim > 0;
}

static void *dev_reader_main(void *arg) {
  dev_pipe *q = arg;
  load_ctx *x = q->x;
  dev_pos c = {0, 0, 0};
  uint64_t at = 0; /* the number of chunk c */
  dev_settle(x, q->ord, q->part, &c);
  tsd__sync_lock(&q->sync);
  for (;;) {
    /* wait until the next unclaimed chunk may be read here */
    while (!q->quit) {
      while (at < q->claimed && c.kk < x->n_plan) {
        dev_next(x, q->ord, q->part, &c);
        at++;
      }
      if (c.kk >= x->n_plan) break;
      if (at <= q->called + 1 && dev_reader_may(x, q->ord, &c)) break;
      tsd__sync_wait(&q->sync);
    }
    if (q->quit || c.kk >= x->n_plan) break;
    q->claimed = at + 1;
    q->reading = at;
    tsd__sync_unlock(&q->sync);
    const plan_item *p = &x->plan[q->ord[c.kk]];
    tsd_status st = device_read(x, p, x->m->tensors[p->tensor].dtype, c.e,
                                c.cnt, q->parts[at % 3], &q->scratch);
    tsd__sync_lock(&q->sync);
    q->reading = UINT64_MAX;
    q->read_done = at + 1;
    if (st) {
      q->st = st;
      q->failed = at;
      snprintf(q->msg, sizeof q->msg, "%s", tsd_last_error());
      q->quit = true;
    }
    tsd__sync_broadcast(&q->sync);
  }
  tsd__sync_unlock(&q->sync);
  return NULL;
}

/* Chunk k into buf: read here, or wait for the reading thread if it took
 * it. */
static tsd_status dev_get(dev_pipe *q, bool piped, uint64_t k,
                          const plan_item *p, tsd_dtype to, const dev_pos *c,
                          uint8_t *buf, const tsd__scratch *scratch) {
  if (piped) {
    tsd__sync_lock(&q->sync);
    bool mine = q->claimed <= k;
    if (mine) {
      q->claimed = k + 1;
    } else {
      while (q->read_done <= k && q->failed != k)
        tsd__sync_wait(&q->sync);
    }
    tsd_status st = q->failed == k ? q->st : TSD_OK;
    tsd__sync_unlock(&q->sync);
    if (!mine) {
      if (st) tsd__err(st, "%s", q->msg);
      return st;
    }
  }
  return device_read(q->x, p, to, c->e, c->cnt, buf, scratch);
}

static tsd_status device_mode(load_ctx *x, const tsd_load_options *opt) {
  const tsd_model *m = x->m;
  /* Parts start at multiples of 8 bytes from staging (an odd half once
   * put float32 elements at addresses of 2 mod 4; the conversions now
   * store through memcpy, and aligned parts stay the fast case). */
  const size_t half = opt->staging_bytes / 2 & ~(size_t)7;
  size_t max_isz = 1;
  for (size_t k = 0; k < x->n_plan; k++) {
    size_t isz = tsd_dtype_size(m->tensors[x->plan[k].tensor].dtype);
    if (isz > max_isz) max_isz = isz;
  }
  if (half < max_isz || half == 0)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_load: staging_bytes is %zu; the device copy needs at "
                    "least %zu (two parts of a multiple of 8 bytes, each "
                    "holding an element of the largest dtype loaded)",
                    opt->staging_bytes, 2 * ((max_isz + 7) & ~(size_t)7));
  /* Three parts (64-byte aligned from staging) and a reading thread, or
   * two halves read in turn. */
  size_t nparts = 2, part = half;
  if (opt->staging_bytes / 3 >= PIPE_PART && opt->threads != 1) {
    nparts = 3;
    part = opt->staging_bytes / 3 & ~(size_t)63;
  }
  /* The public index of each model tensor, the read order and every read
   * buffer (the reading thread's too), before the first chunk. */
  const bool one = opt->threads == 1;
  size_t need = 0;
  for (size_t k = 0; k < x->n_plan; k++) {
    const tsd__tensor *src = &x->plan[k].src;
    size_t a = tsd__tensor_read_scratch(src, m->tensors[x->plan[k].tensor].dtype,
                                        one);
    if (a > need) need = a;
  }
  dev_pipe q;
  memset(&q, 0, sizeof q);
  tsd__scratch scratch = {NULL, need, one};
  q.scratch = scratch;
  q.scratch.one_thread = true;
  size_t *pub = tsd__mem_alloc(m->al, (m->n_tensors ? m->n_tensors : 1) *
                                          sizeof *pub);
  size_t *ord = read_order(x);
  if (!pub || !ord || (need && !(scratch.p = tsd__mem_alloc(m->al, need))) ||
      (need && nparts == 3 && !(q.scratch.p = tsd__mem_alloc(m->al, need)))) {
    tsd__mem_free(m->al, pub);
    tsd__mem_free(m->al, ord);
    tsd__mem_free(m->al, scratch.p);
    return tsd__err(TSD_ERR_NOMEM, "tsd_load: out of memory");
  }
  for (size_t i = 0; i < m->n_tensors; i++)
    pub[m->order[i]] = i;

  uint64_t total = 0, done = 0, last = 0;
  for (size_t k = 0; k < x->n_plan; k++)
    total += src_bytes(&x->plan[k].src);
  const uint64_t step = total / 100 ? total / 100 : 1;
  tsd_status st = TSD_OK;
  if (opt->progress && opt->progress(opt->progress_user, 0, total))
    st = tsd__err(TSD_ERR_CANCELED,
                  "tsd_load: canceled by the progress callback before "
                  "copying (nothing was sent)");
  q.x = x;
  q.ord = ord;
  q.part = part;
  for (size_t i = 0; i < nparts; i++)
    q.parts[i] = (uint8_t *)opt->staging + i * part;
  q.reading = q.failed = UINT64_MAX;
  tsd__sync_init(&q.sync);
  tsd__thread th;
  const bool piped =
      !st && nparts == 3 && tsd__thread_start(&th, dev_reader_main, &q);
  if (piped) scratch.one_thread = true; /* the reader has the other core */

  uint64_t chunk_no = 0;
  for (size_t kk = 0; !st && kk < x->n_plan; kk++) {
    const plan_item *p = &x->plan[ord[kk]];
    const tsd__mtensor *t = &m->tensors[p->tensor];
    const size_t isz = tsd_dtype_size(t->dtype);
    const uint64_t n = t->numel > 0 ? (uint64_t)t->numel : 0;
    const uint64_t per = part / isz;
    tsd_device_chunk ch;
    ch.tensor = pub[p->tensor];
    ch.name = t->name;
    ch.dtype = t->dtype;
    ch.tensor_bytes = n * isz;
    /* the chunks of this tensor: dev_settle's sequence, which the reading
     * thread follows */
    for (uint64_t e = 0; !st && e < n; e += per, chunk_no++) {
      dev_pos c = {kk, e, n - e < per ? n - e : per};
      uint8_t *buf = q.parts[chunk_no % nparts];
      st = dev_get(&q, piped, chunk_no, p, t->dtype, &c, buf, &scratch);
      if (st) {
        tsd__err_prefix("tsd_load: reading \"%s\" for the device copy (the "
                        "model's memory is unchanged)",
                        t->name);
        break;
      }
      ch.offset = e * isz;
      ch.data = buf;
      ch.len = (size_t)(c.cnt * isz);
      int rc = opt->device_copy(opt->device_user, &ch);
      if (piped) {
        tsd__sync_lock(&q.sync);
        q.called = chunk_no + 1;
        tsd__sync_broadcast(&q.sync);
        tsd__sync_unlock(&q.sync);
      }
      if (rc) {
        st = tsd__report_add(x->report, TSD_LIST_DEVICE_FAILED, t->name,
                             strlen(t->name));
        if (!st)
          st = tsd__err(TSD_ERR_CALLBACK,
                        "tsd_load: the device-copy callback returned %d for "
                        "\"%s\" at byte offset %llu of %llu (the model's "
                        "memory is unchanged)",
                        rc, t->name, (unsigned long long)ch.offset,
                        (unsigned long long)ch.tensor_bytes);
      }
    }
    if (st) break;
    done += src_bytes(&p->src);
    bool last_one = kk + 1 == x->n_plan;
    if (!opt->progress || (!last_one && done - last < step)) continue;
    last = done;
    if (opt->progress(opt->progress_user, done, total) && !last_one)
      st = tsd__err(TSD_ERR_CANCELED,
                    "tsd_load: canceled by the progress callback after %zu "
                    "of %zu tensors (those were sent)",
                    kk + 1, x->n_plan);
  }
  if (piped) {
    tsd__sync_lock(&q.sync);
    q.quit = true;
    tsd__sync_broadcast(&q.sync);
    tsd__sync_unlock(&q.sync);
    tsd__thread_join(&th);
  }
  tsd__sync_destroy(&q.sync);
  tsd__mem_free(m->al, q.scratch.p);
  tsd__mem_free(m->al, scratch.p);
  tsd__mem_free(m->al, pub);
  tsd__mem_free(m->al, ord);
  return st;
}

TSD_API tsd_status tsd_load(tsd_report **out, tsd_model *model,
                            const tsd_checkpoint *ckpt,
                            const tsd_load_options *options) {
  if (!out) return tsd__err(TSD_ERR_INVALID_ARG, "tsd_load: out is NULL");
  *out = NULL;
  if (!model || !ckpt)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_load: %s is NULL",
                    model ? "checkpoint" : "model");
  if (!model->ops || !model->ops->copy_in)
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "tsd_load: this model cannot be loaded into (a model over "
                    "a checkpoint is read-only)");
  tsd_load_options opt = TSD_LOAD_OPTIONS_INIT;
  if (options) {
    /* A version this library does not know has fields it would ignore. */
    if (options->version < 1 || options->version > TSD_LOAD_OPTIONS_VERSION)
      return tsd__err(TSD_ERR_INVALID_ARG,
                      "tsd_load: options->version is %u, expected 1 to %d "
                      "(use TSD_LOAD_OPTIONS_INIT)",
                      options->version, TSD_LOAD_OPTIONS_VERSION);
    opt.strict = options->strict;
    opt.auto_pop = options->auto_pop;
    opt.rules = options->rules;
    /* A version-1 caller's struct ends at `rules`: read no further. */
    if (options->version >= 2) {
      opt.strip_prefixes = options->strip_prefixes;
      opt.n_strip_prefixes = options->n_strip_prefixes;
      opt.renames = options->renames;
      opt.n_renames = options->n_renames;
      opt.add_prefix = options->add_prefix;
      opt.progress = options->progress;
      opt.progress_user = options->progress_user;
      opt.dry_run = options->dry_run;
    }
    if (options->version >= 3) opt.threads = options->threads;
    if (options->version >= 4) {
      opt.mode = options->mode;
      opt.device_copy = options->device_copy;
      opt.device_user = options->device_user;
      opt.staging = options->staging;
      opt.staging_bytes = options->staging_bytes;
    }
  }
  if (opt.mode != TSD_LOAD_COPY && opt.mode != TSD_LOAD_BIND &&
      opt.mode != TSD_LOAD_DEVICE)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_load: unknown mode %d",
                    (int)opt.mode);
  if (opt.mode == TSD_LOAD_BIND && !tsd__model_is_cown(model))
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "tsd_load: TSD_LOAD_BIND needs a C-owned model (\"%s\" "
                    "is not one)",
                    model->class_name);
  if (opt.mode == TSD_LOAD_DEVICE && (!opt.device_copy || !opt.staging))
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_load: TSD_LOAD_DEVICE needs device_copy and staging");
  if (opt.threads < 0)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_load: threads is %d",
                    opt.threads);
  if (opt.rules != TSD_RULES_TORCH_1_13 && opt.rules != TSD_RULES_TORCH_2)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_load: unknown rules %d",
                    (int)opt.rules);
  if (!ckpt->current)
    /* load_state_dict's isinstance(state_dict, Mapping) check */
    return tsd__err(TSD_ERR_TYPE,
                    "Expected state_dict to be dict-like, got %s.",
                    ckpt->parsed.root ? tsd__type_repr(ckpt->parsed.root)
                                      : "<class 'NoneType'>");
  if (ckpt->view_status != TSD_OK)
    /* bad keys: FORMAT; a pickled model keeps its own reason (objects.c) */
    return tsd__err(ckpt->view_status == TSD_ERR_NOMEM ||
                            ckpt->view_status == TSD_ERR_LIMIT ||
                            ckpt->view_status == TSD_ERR_UNSUPPORTED
                        ? ckpt->view_status
                        : TSD_ERR_FORMAT,
                    "%s",
                    ckpt->view_error ? ckpt->view_error
                                     : "the state dict has invalid keys");

  load_ctx x;
  memset(&x, 0, sizeof x);
  x.m = model;
  x.c = ckpt;
  x.rules = opt.rules;
  tsd__buf_init(&x.scratch, model->al);
  tsd__remap remap = {opt.strip_prefixes, opt.n_strip_prefixes,
                      opt.renames,        opt.n_renames,
                      opt.add_prefix,     opt.rules == TSD_RULES_TORCH_2};
  tsd_status st = tsd__keyview_build(&x.view, ckpt, &remap, model->al);
  if (st) {
    ctx_free(&x);
    return st;
  }
  x.n_keys = x.view.n;
  x.zero_storage.dtype = TSD_INT64;
  x.zero_storage.numel = 1;
  x.zero_storage.nbytes = sizeof k_zero;
  x.zero_storage.mem = (const uint8_t *)&k_zero;
  x.zero_storage.key = "num_batches_tracked (torch.tensor(0))";
  x.zero_tensor.storage = &x.zero_storage;
  x.zero_tensor.dtype = TSD_INT64;
  x.zero_tensor.numel = 1;
  x.zero_tensor.contiguous = true;

  size_t nk = x.n_keys ? x.n_keys : 1;
  const tsd_allocator *al = model->al;
  x.popped = tsd__mem_calloc(al, nk, sizeof *x.popped);
  x.unexp_at = tsd__mem_alloc(al, nk * sizeof *x.unexp_at);
  x.bucket = tsd__mem_alloc(al, nk * sizeof *x.bucket);
  x.info = tsd__mem_calloc(al, model->n_modules, sizeof *x.info);
  x.preorder = tsd__model_module_preorder(model);
  x.plan = tsd__mem_alloc(al, (model->n_tensors ? model->n_tensors : 1) *
                                  sizeof *x.plan);
  x.extra_plan = tsd__mem_alloc(al, model->n_modules * sizeof *x.extra_plan);
  if (!model->order) model->order = tsd__model_order(model);
  if (!x.popped || !x.unexp_at || !x.bucket || !x.info || !x.preorder ||
      !x.plan || !x.extra_plan || !model->order)
    st = tsd__err(TSD_ERR_NOMEM, "tsd_load: out of memory");
  if (!st) st = tsd__report_new(&x.report, model->class_name, model->al);
  if (!st && opt.auto_pop) st = auto_pop(&x, model->order);
  if (!st) st = module_rules(&x);
  if (!st) st = bucket_unexpected(&x);
  for (size_t k = 0; !st && k < model->n_modules; k++)
    st = load_module(&x, x.preorder[k]);
  if (!st) st = tsd__report_finish(x.report, opt.strict != 0);
  if (!st) st = record_matched(&x);
  if (st) {
    ctx_free(&x);
    return st;
  }

  if (!tsd_report_ok(x.report)) {
    /* PyTorch raises RuntimeError here (after copying); we copied nothing. */
    *out = x.report;
    x.report = NULL;
    st = tsd__err(TSD_ERR_LOAD, "%s", tsd_report_message(*out));
    ctx_free(&x);
    return st;
  }
  /* set_extra_state first (before any tensor changes), then the tensors:
   * the plan is in state_dict order; copies and device chunks go in file
   * order (read_order). */
  if (!opt.dry_run) st = call_extra_state(&x);
  if (!opt.dry_run && !st)
    st = opt.mode == TSD_LOAD_BIND     ? bind_mode(&x, &opt)
         : opt.mode == TSD_LOAD_DEVICE ? device_mode(&x, &opt)
                                       : copy_mode(&x, &opt);
  if (st == TSD_ERR_CALLBACK) { /* the report says which tensor */
    *out = x.report;
    x.report = NULL;
  }
  if (st) {
    ctx_free(&x);
    return st;
  }
  *out = x.report;
  x.report = NULL;
  ctx_free(&x);
  tsd__err_clear();
  return TSD_OK;
}
