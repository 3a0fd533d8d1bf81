/* write.c — tsd_model_save, models over a checkpoint's dict, and the
 * bound on what a command may produce from its input.
 *
 * Amplification: a tensor in a file may take far fewer bytes than it does
 * written out or in memory (views of one storage, shared storages, and
 * expanded stride-0 tensors: eight `zeros(1).expand(2**25)` are 1 GiB from
 * 2.5 KB). Two rules keep that bounded:
 *  - writers stream tensors that are not in memory in TSD__WRITE_WINDOW
 *    windows (tsd__model_stream): a model over a checkpoint reads each
 *    window as a strided sub-view of the tensor (tsd__tensor_read_range), so
 *    writing costs a window of memory whatever the tensor's size;
 *  - the bytes produced are bounded by max_output_ratio * input + 64 MiB
 *    (tsd_checkpoint_output_bytes), checked before anything is written or
 *    allocated: a model built from a checkpoint's tensors (tsd load
 *    --model-spec) needs their full size in memory, and a write the disk. */
#include <string.h>

#include "write.h"

#define OUTPUT_RATIO_DEFAULT 16u
#define OUTPUT_SLACK ((uint64_t)64 << 20)

/* ---- streaming a model tensor ------------------------------------------- */

tsd_status tsd__model_stream(const tsd_model *m, const tsd__mtensor *t,
                             void *win, tsd__sink_fn sink, void *ctx) {
  const size_t isz = tsd_dtype_size(t->dtype);
  const uint64_t n = t->numel > 0 ? (uint64_t)t->numel : 0;
  /* Files are little-endian: on a big-endian machine every window is
   * byte-swapped (per element, per half of a complex one) before the sink */
  const uint8_t unit = tsd__swap_unit(t->dtype, false);
  if (!n) return TSD_OK;
  if (t->data && !unit) return sink(ctx, t->data, (size_t)(n * isz));
  if (t->data) {
    const uint64_t per = TSD__WRITE_WINDOW / isz;
    for (uint64_t e = 0; e < n; e += per) {
      uint64_t k = n - e < per ? n - e : per;
      memcpy(win, (const uint8_t *)t->data + e * isz, (size_t)(k * isz));
      tsd__swap_elems(win, unit, (size_t)(k * isz / unit));
      tsd_status st = sink(ctx, win, (size_t)(k * isz));
      if (st) return st;
    }
    return TSD_OK;
  }
  if (m->ops->read_range) {
    const uint64_t per = TSD__WRITE_WINDOW / isz;
    for (uint64_t e = 0; e < n; e += per) {
      uint64_t k = n - e < per ? n - e : per;
      tsd_status st = m->ops->read_range(m, t, t->dtype, e, k, win);
      if (!st && unit) tsd__swap_elems(win, unit, (size_t)(k * isz / unit));
      if (!st) st = sink(ctx, win, (size_t)(k * isz));
      if (st) return st;
    }
    return TSD_OK;
  }
  /* A model kind that can only read a tensor whole (TorchScript: the tensor
   * is in the model's memory already): one tensor at a time. */
  void *tmp = tsd__mem_alloc(m->al, (size_t)(n * isz));
  if (!tmp)
    return tsd__err(TSD_ERR_NOMEM, "out of memory reading \"%s\" (%llu bytes)",
                    t->name, (unsigned long long)(n * isz));
  tsd_status st = m->ops->read(m, t, t->dtype, tmp);
  if (!st && unit) tsd__swap_elems(tmp, unit, (size_t)(n * isz / unit));
  if (!st) st = sink(ctx, tmp, (size_t)(n * isz));
  tsd__mem_free(m->al, tmp);
  return st;
}

/* ---- the output bound -----------------------------------------------------
 */

/* The file (and shards); plus the storages held in memory rather than in a
 * file (a TorchScript checkpoint's tensors, copied out of LibTorch: one
 * storage each, already taking their bytes). */
static uint64_t input_bytes(const tsd_checkpoint *c) {
  uint64_t n = c->src.size;
  for (size_t i = 0; i < c->parsed.n_shards; i++)
    if (!tsd__add_u64(n, c->parsed.shards[i].size, &n)) return UINT64_MAX;
  for (size_t i = 0; i < tsd__ckpt_count(c); i++) {
    const tsd__value *v = tsd__ckpt_val(c, i);
    if (v && v->kind == TSD__V_TENSOR && v->u.tensor->storage->mem &&
        !tsd__add_u64(n, v->u.tensor->storage->nbytes, &n))
      return UINT64_MAX;
  }
  return n;
}

TSD_API tsd_status tsd_checkpoint_output_bytes(uint64_t *out_bytes,
                                               const tsd_checkpoint *c) {
  if (out_bytes) *out_bytes = 0;
  if (!c)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_checkpoint_output_bytes: checkpoint is NULL");
  const uint64_t ratio =
      c->max_output_ratio ? c->max_output_ratio : OUTPUT_RATIO_DEFAULT;
  const uint64_t in = input_bytes(c);
  uint64_t bound = UINT64_MAX;
  if (ratio != UINT64_MAX && (!tsd__mul_u64(ratio, in, &bound) ||
                              !tsd__add_u64(bound, OUTPUT_SLACK, &bound)))
    bound = UINT64_MAX;
  uint64_t total = 0;
  for (size_t i = 0; i < tsd__ckpt_count(c); i++) {
    const tsd__value *v = tsd__ckpt_val(c, i);
    if (!v || v->kind != TSD__V_TENSOR) continue;
    const tsd__tensor *t = v->u.tensor;
    uint64_t b;
    if (!tsd__mul_u64(t->numel > 0 ? (uint64_t)t->numel : 0,
                      tsd_dtype_size(t->dtype), &b) ||
        !tsd__add_u64(total, b, &total))
      total = UINT64_MAX;
    if (total > bound) {
      const tsd__value *k = tsd__ckpt_key(c, i);
      return tsd__err(
          TSD_ERR_LIMIT,
          "%s: '%s' brings the tensors to %llu bytes, more than "
          "max_output_ratio %llu x the input's %llu bytes + 64 MiB (views, "
          "shared storages and expanded tensors take their full size when "
          "written or held in memory); raise tsd_limits.max_output_ratio to "
          "allow it",
          c->src.name, k && k->kind == TSD__V_STR ? k->u.s.p : "?",
          (unsigned long long)total, (unsigned long long)ratio,
          (unsigned long long)in);
    }
  }
  if (out_bytes) *out_bytes = total;
  return TSD_OK;
}

/* ---- a model over a checkpoint's dict ------------------------------------ */

static tsd_status ck_read(const tsd_model *m, const tsd__mtensor *t,
                          tsd_dtype dtype, void *dst) {
  return tsd__tensor_read(m->impl, t->handle, dtype, dst, NULL);
}

static tsd_status ck_read_range(const tsd_model *m, const tsd__mtensor *t,
                                tsd_dtype dtype, uint64_t first, uint64_t count,
                                void *dst) {
  return tsd__tensor_read_range(m->impl, t->handle, dtype, first, count, dst);
}

static void ck_destroy(tsd_model *m) {
  (void)m; /* the checkpoint is the caller's */
}

/* save NULL: written as a .pth (tsd__save_pth) */
static const tsd__model_ops ck_ops = {NULL, ck_read, NULL, ck_destroy,
                                      ck_read_range, NULL};

TSD_API tsd_status tsd_model_from_checkpoint(tsd_model **out,
                                             const tsd_checkpoint *c,
                                             const char *class_name) {
  if (!out)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_model_from_checkpoint: out is NULL");
  *out = NULL;
  if (!c)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_model_from_checkpoint: checkpoint is NULL");
  if (c->view_status != TSD_OK)
    return tsd__err(c->view_status, "%s",
                    c->view_error ? c->view_error : "bad checkpoint dict");
  const size_t n = tsd__ckpt_count(c);
  for (size_t i = 0; i < n; i++) {
    const tsd__value *v = tsd__ckpt_val(c, i);
    if (v->kind != TSD__V_TENSOR)
      return tsd__err(TSD_ERR_TYPE, "%s: entry '%s' is a %s, not a tensor",
                      c->src.name, tsd__ckpt_key(c, i)->u.s.p,
                      tsd__type_repr(v));
  }
  tsd_status st = tsd_checkpoint_output_bytes(NULL, c);
  if (st) return st;
  tsd_model *m = NULL;
  st = tsd__model_create(&m, class_name ? class_name : "StateDict", &ck_ops,
                         TSD__UNCONST(void *, c), c->al);
  if (st) return st;
  m->any_key_names = true;
  size_t n_meta = tsd_checkpoint_metadata_count(c);
  for (size_t i = 0; !st && i < n_meta; i++) {
    const char *prefix = tsd_checkpoint_metadata_prefix(c, i);
    if (!prefix) continue;
    int64_t v = tsd_checkpoint_module_version(c, prefix);
    st = tsd__model_module(m, prefix, NULL, v >= 0 ? v : 1, NULL);
  }
  for (size_t i = 0; !st && i < n; i++) {
    const tsd__tensor *t = tsd__ckpt_val(c, i)->u.tensor;
    st = tsd__model_add(m, tsd__ckpt_key(c, i)->u.s.p, TSD_BUFFER, t->dtype,
                        t->ndim, t->shape, NULL, TSD__UNCONST(void *, t), NULL);
  }
  if (st) {
    tsd_model_free(m);
    return st;
  }
  *out = m;
  return TSD_OK;
}

/* ---- saving ---------------------------------------------------------------
 */

static bool has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n > k && strcmp(s + n - k, suffix) == 0;
}

TSD_API tsd_status tsd_model_save(const tsd_model *model, const char *path,
                                  const tsd_save_options *options) {
  tsd_save_options o = TSD_SAVE_OPTIONS_INIT;
  if (options) {
    if (options->version < 1 || options->version > TSD_SAVE_OPTIONS_VERSION)
      return tsd__err(TSD_ERR_INVALID_ARG,
                      "tsd_model_save: options->version is %u, expected 1 "
                      "to %d (use TSD_SAVE_OPTIONS_INIT)",
                      options->version, TSD_SAVE_OPTIONS_VERSION);
    o.format = options->format;
    o.fd = options->fd;
    o.temp_file = options->temp_file;
    o.user = options->user;
    if (options->version >= 2) {
      o.progress = options->progress;
      o.progress_user = options->progress_user;
    }
  }
  if (!model || (!path && o.fd < 0))
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_model_save: NULL argument");
  if (path && !*path && o.fd < 0)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_model_save: empty path");
  if ((unsigned)o.format > TSD_SAVE_SAFETENSORS)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_model_save: format %d",
                    (int)o.format);
  bool safetensors =
      o.format == TSD_SAVE_SAFETENSORS ||
      (o.format == TSD_SAVE_AUTO && path && has_suffix(path, ".safetensors"));
  if (!model->ops)
    return tsd__err(TSD_ERR_UNSUPPORTED, "this model kind cannot be saved");
  tsd__afile f;
  tsd_status st =
      o.fd >= 0 ? tsd__afile_open_fd(&f, model->al, o.fd, path ? path : "<fd>")
                : tsd__afile_open(&f, model->al, path, o.temp_file, o.user);
  if (st) return st;
  if (o.progress) {
    /* about the bytes written: the tensors' (headers aside) */
    uint64_t total = 0;
    size_t n = tsd_model_tensor_count(model);
    for (size_t i = 0; i < n; i++) {
      tsd_tensor_info ti;
      if (tsd_model_tensor(&ti, model, i) == TSD_OK && ti.numel > 0)
        total += (uint64_t)ti.numel * tsd_dtype_size(ti.dtype);
    }
    f.progress = o.progress;
    f.progress_user = o.progress_user;
    f.progress_total = total;
  }
  /* a model kind without a format of its own is written as a .pth */
  if (safetensors)
    st = tsd__save_safetensors(model, &f);
  else if (model->ops->no_save)
    st = tsd__err(TSD_ERR_UNSUPPORTED, "%s: %s", f.name, model->ops->no_save);
  else if (model->ops->save)
    st = model->ops->save(model, &f);
  else
    st = tsd__save_pth(model, &f);
  if (st) {
    tsd__afile_abort(&f);
    return st;
  }
  return tsd__afile_commit(&f);
}
