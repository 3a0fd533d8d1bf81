/* torchscript_model.c — tsd_model_open_torchscript_state: a TorchScript
 * archive's module tree as a read-only model, its state read by
 * formats/torchscript_state.c without running any of the archive. */
#include "model.h"

static tsd_status state_copy_in(tsd_model *m, tsd__mtensor *t,
                                const tsd_checkpoint *c, const tsd__tensor *src,
                                const tsd__scratch *scratch) {
  (void)m, (void)c, (void)src, (void)scratch;
  return tsd__err(TSD_ERR_UNSUPPORTED,
                  "cannot load into \"%s\": a model opened with "
                  "tsd_model_open_torchscript_state is read-only (a dry run "
                  "works; to load, open it with tsd_model_open_torchscript, "
                  "which runs its code)",
                  t->name);
}

static tsd_status state_read(const tsd_model *m, const tsd__mtensor *t,
                             tsd_dtype dtype, void *dst) {
  const tsd_checkpoint *c = m->impl;
  const tsd__value *v = t->handle;
  return tsd__tensor_read(c, v->u.tensor, dtype, dst, NULL);
}

static tsd_status state_read_range(const tsd_model *m, const tsd__mtensor *t,
                                   tsd_dtype dtype, uint64_t first,
                                   uint64_t count, void *dst) {
  const tsd__value *v = t->handle;
  return tsd__tensor_read_range(m->impl, v->u.tensor, dtype, first, count,
                                dst);
}

static void state_destroy(tsd_model *m) {
  tsd_checkpoint_free(m->impl);
  m->impl = NULL;
}

/* A module with set_extra_state: its key is matched (what `tsd diff`
 * shows); a real load cannot call the method without running code. */
static tsd_status state_extra(void *user, const char *key,
                              const tsd_checkpoint *c, size_t index) {
  (void)user, (void)c, (void)index;
  return tsd__err(TSD_ERR_UNSUPPORTED,
                  "cannot give \"%s\" to set_extra_state: a model opened "
                  "with tsd_model_open_torchscript_state is read-only (a dry "
                  "run works)",
                  key);
}

static const tsd__model_ops state_ops = {
    state_copy_in, state_read, NULL, state_destroy, state_read_range,
    "a model opened with tsd_model_open_torchscript_state cannot be saved "
    "as a TorchScript archive (it has no code to save)"};

TSD_API tsd_status tsd_model_open_torchscript_state(
    tsd_model **out, const char *path, const tsd_open_options *options) {
  if (!out)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_model_open_torchscript_state: out is NULL");
  *out = NULL;
  if (!path)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_model_open_torchscript_state: path is NULL");
  tsd_checkpoint *c = NULL;
  tsd_status st = tsd_checkpoint_open(&c, path, options);
  if (st != TSD_OK) return st;
  const tsd__ts_state *ts = c->parsed.torchscript;
  if (!ts) {
    tsd_checkpoint_free(c);
    return tsd__err(TSD_ERR_FORMAT,
                    "%s is not a TorchScript archive (torch.jit.save output): "
                    "open checkpoints with tsd_checkpoint_open",
                    path);
  }
  tsd_model *m = NULL;
  if ((st = tsd__model_create(&m, ts->root_class, &state_ops, c, c->al))) {
    tsd_checkpoint_free(c);
    return st;
  }
  /* Modules first (pre-order, with their class names), then the tensors in
   * state_dict order: tsd__model_add finds each tensor's module. */
  for (size_t i = 0; i < ts->n_modules && st == TSD_OK; i++) {
    size_t mi;
    st = tsd__model_module(m, ts->modules[i].prefix, ts->modules[i].class_name,
                           -1, &mi);
    if (st == TSD_OK && ts->modules[i].extra_state)
      m->modules[mi].extra_fn = state_extra;
  }
  for (size_t i = 0; i < ts->n_entries && st == TSD_OK; i++) {
    const tsd__ts_entry *e = &ts->entries[i];
    if (!e->tensor) {
      st = tsd__model_add(m, e->name, TSD_PARAMETER_NONE, TSD_FLOAT32, 0, NULL,
                          NULL, NULL, NULL);
      continue;
    }
    const tsd__tensor *t = e->tensor->u.tensor;
    if (t->ndim > TSD_MAX_NDIM)
      st = tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: tensor \"%s\" has %zu dimensions (at most %d)", path,
                    e->name, t->ndim, TSD_MAX_NDIM);
    else
      st = tsd__model_add(m, e->name, e->role, t->dtype, t->ndim, t->shape,
                          NULL, e->tensor, NULL);
  }
  if (st != TSD_OK) {
    tsd_model_free(m); /* frees the checkpoint too */
    return st;
  }
  *out = m;
  return TSD_OK;
}
