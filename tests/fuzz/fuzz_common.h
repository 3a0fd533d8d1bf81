/* fuzz_common.h — shared by the fuzz targets (tests/fuzz/) and the
 * malformed-corpus and thread tests (tests/unit/): the fixed small model
 * malformed checkpoints are loaded into, and a minimal zip writer that wraps
 * a pickle as the data.pkl of an otherwise valid torch.save archive.
 * Public API only (tsd.h). Header-only, C and C++. */
#ifndef TSD_FUZZ_COMMON_H
#define TSD_FUZZ_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tsd.h"

/* ---- the fixed model: class Net, as tests/malformed/make_corpus.py --------
 *   fc  = Linear(4, 3)     fc.weight [3, 4], fc.bias [3]
 *   act = ReLU()           declared, no tensors
 *   bn  = BatchNorm2d(3)   weight, bias, running_mean, running_var [3],
 *                          num_batches_tracked (int64, 0-dim) */
typedef struct tsdf_net_data {
  float fc_weight[12];
  float fc_bias[3];
  float bn_weight[3];
  float bn_bias[3];
  float bn_running_mean[3];
  float bn_running_var[3];
  int64_t bn_num_batches_tracked;
} tsdf_net_data;

typedef struct tsdf_net {
  tsd_model *model;
  tsdf_net_data data; /* the model's tensors live here */
} tsdf_net;

/* Fills the tensors with a recognisable pattern (no value a real checkpoint
 * of the model would hold) and builds the model. */
static inline tsd_status tsdf_net_init(tsdf_net *n) {
  static const int64_t s34[2] = {3, 4}, s3[1] = {3};
  tsd_status st;
  memset(n, 0, sizeof *n);
  for (size_t i = 0; i < sizeof n->data / sizeof(float) - 2; i++)
    ((float *)&n->data)[i] = -1000.0f - (float)i;
  n->data.bn_num_batches_tracked = -77;
  if ((st = tsd_model_new(&n->model, "Net")) != TSD_OK) return st;
#define TSDF_ADD(name, role, dt, nd, shp, ptr)                                 \
  if ((st = tsd_model_add_tensor(n->model, name, role, dt, nd, shp, ptr)) !=   \
      TSD_OK)                                                                  \
    goto fail;
  TSDF_ADD("fc.weight", TSD_PARAMETER, TSD_FLOAT32, 2, s34, n->data.fc_weight)
  TSDF_ADD("fc.bias", TSD_PARAMETER, TSD_FLOAT32, 1, s3, n->data.fc_bias)
  if ((st = tsd_model_add_module(n->model, "act", "ReLU", -1)) != TSD_OK)
    goto fail;
  TSDF_ADD("bn.weight", TSD_PARAMETER, TSD_FLOAT32, 1, s3, n->data.bn_weight)
  TSDF_ADD("bn.bias", TSD_PARAMETER, TSD_FLOAT32, 1, s3, n->data.bn_bias)
  TSDF_ADD("bn.running_mean", TSD_BUFFER, TSD_FLOAT32, 1, s3,
           n->data.bn_running_mean)
  TSDF_ADD("bn.running_var", TSD_BUFFER, TSD_FLOAT32, 1, s3,
           n->data.bn_running_var)
  TSDF_ADD("bn.num_batches_tracked", TSD_BUFFER, TSD_INT64, 0, NULL,
           &n->data.bn_num_batches_tracked)
#undef TSDF_ADD
  if ((st = tsd_model_add_module(n->model, "fc", "Linear", -1)) != TSD_OK ||
      (st = tsd_model_add_module(n->model, "bn", "BatchNorm2d", -1)) != TSD_OK)
    goto fail;
  return TSD_OK;
fail:
  tsd_model_free(n->model);
  n->model = NULL;
  return st;
}

static inline void tsdf_net_free(tsdf_net *n) {
  tsd_model_free(n->model);
  n->model = NULL;
}

/* ---- shards for sharded indexes (fuzz_sharded, test_sharded) ------------
 * Written by tsd's own writers from the fixed model (its initial pattern):
 *   net.safetensors, net.pth   every tensor of the model
 *   fc.safetensors             fc.weight, fc.bias
 *   bn.pth                     the BatchNorm2d's five tensors (_metadata)
 *   bad.safetensors            a malformed shard (header length past the end)
 *   empty.pth                  an empty file
 * tests/fuzz/make_seeds.py writes indexes naming them. */
static const char *const tsdf_shard_files[6] = {
    "net.safetensors", "net.pth",         "fc.safetensors",
    "bn.pth",          "bad.safetensors", "empty.pth"};

/* 0, or -1 if the file cannot be written. */
static inline int tsdf_write_file(const char *path, const void *data,
                                  size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return -1;
  const uint8_t *p = (const uint8_t *)data;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) {
      close(fd);
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return close(fd);
}

/* A model of the tensors of `net` whose names start with `prefix` ("" for
 * all), saved as dir/file. */
static inline tsd_status tsdf_save_part(const tsdf_net *net,
                                        const char *prefix, const char *dir,
                                        const char *file) {
  tsd_model *m = NULL;
  tsd_status st = tsd_model_new(&m, "Net");
  size_t n = tsd_model_tensor_count(net->model);
  for (size_t i = 0; st == TSD_OK && i < n; i++) {
    tsd_tensor_info t;
    st = tsd_model_tensor(&t, net->model, i);
    if (st == TSD_OK && strncmp(t.name, prefix, strlen(prefix)) == 0)
      st = tsd_model_add_tensor(m, t.name, t.role, t.dtype, t.ndim, t.shape,
                                t.data);
  }
  if (st == TSD_OK && (!*prefix || strcmp(prefix, "bn.") == 0))
    st = tsd_model_add_module(m, "bn", "BatchNorm2d", -1);
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, file);
  if (st == TSD_OK) st = tsd_model_save(m, p, NULL);
  tsd_model_free(m);
  return st;
}

/* Writes the shards above into `dir` (which must exist). */
static inline tsd_status tsdf_write_shards(const char *dir) {
  /* an 8-byte header length far past the end, then '{' */
  static const uint8_t bad[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
  char p[4096];
  tsdf_net net;
  tsd_status st = tsdf_net_init(&net);
  if (st != TSD_OK) return st;
  if ((st = tsdf_save_part(&net, "", dir, "net.safetensors")) == TSD_OK &&
      (st = tsdf_save_part(&net, "", dir, "net.pth")) == TSD_OK &&
      (st = tsdf_save_part(&net, "fc.", dir, "fc.safetensors")) == TSD_OK &&
      (st = tsdf_save_part(&net, "bn.", dir, "bn.pth")) == TSD_OK) {
    snprintf(p, sizeof p, "%s/bad.safetensors", dir);
    if (tsdf_write_file(p, bad, sizeof bad) != 0) st = TSD_ERR_IO;
    snprintf(p, sizeof p, "%s/empty.pth", dir);
    if (tsdf_write_file(p, "", 0) != 0) st = TSD_ERR_IO;
  }
  tsdf_net_free(&net);
  return st;
}

/* ---- a minimal stored zip ------------------------------------------------ */

static inline uint32_t tsdf_crc32(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

static inline void tsdf_put16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void tsdf_put32(uint8_t *p, uint32_t v) {
  tsdf_put16(p, v & 0xFFFFu);
  tsdf_put16(p + 2, v >> 16);
}

typedef struct tsdf_record {
  const char *name;
  const uint8_t *data;
  size_t size;
} tsdf_record;

/* A zip archive of stored records (malloc'd; *out_size its size), or NULL
 * on allocation failure or a record over 4 GiB. */
static inline uint8_t *tsdf_zip(const tsdf_record *recs, size_t n,
                                size_t *out_size) {
  size_t total = 22;
  for (size_t i = 0; i < n; i++) {
    if (recs[i].size > 0xFFFFFFF0u) return NULL;
    total += 30 + 46 + 2 * strlen(recs[i].name) + recs[i].size;
  }
  if (total > 0xFFFFFFF0u) return NULL;
  uint8_t *z = (uint8_t *)malloc(total);
  if (!z) return NULL;
  uint32_t *offs = (uint32_t *)malloc((n ? n : 1) * sizeof *offs);
  uint32_t *crcs = (uint32_t *)malloc((n ? n : 1) * sizeof *crcs);
  if (!offs || !crcs) {
    free(z);
    free(offs);
    free(crcs);
    return NULL;
  }
  size_t pos = 0;
  for (size_t i = 0; i < n; i++) {
    size_t nl = strlen(recs[i].name);
    uint8_t *h = z + pos;
    offs[i] = (uint32_t)pos;
    crcs[i] = tsdf_crc32(recs[i].data, recs[i].size);
    memset(h, 0, 30);
    tsdf_put32(h, 0x04034b50u);
    tsdf_put16(h + 4, 20);
    tsdf_put32(h + 14, crcs[i]);
    tsdf_put32(h + 18, (uint32_t)recs[i].size);
    tsdf_put32(h + 22, (uint32_t)recs[i].size);
    tsdf_put16(h + 26, (uint32_t)nl);
    memcpy(h + 30, recs[i].name, nl);
    if (recs[i].size) memcpy(h + 30 + nl, recs[i].data, recs[i].size);
    pos += 30 + nl + recs[i].size;
  }
  size_t cd = pos;
  for (size_t i = 0; i < n; i++) {
    size_t nl = strlen(recs[i].name);
    uint8_t *h = z + pos;
    memset(h, 0, 46);
    tsdf_put32(h, 0x02014b50u);
    tsdf_put16(h + 4, 20);
    tsdf_put16(h + 6, 20);
    tsdf_put32(h + 16, crcs[i]);
    tsdf_put32(h + 20, (uint32_t)recs[i].size);
    tsdf_put32(h + 24, (uint32_t)recs[i].size);
    tsdf_put16(h + 28, (uint32_t)nl);
    tsdf_put32(h + 42, offs[i]);
    memcpy(h + 46, recs[i].name, nl);
    pos += 46 + nl;
  }
  uint8_t *e = z + pos;
  memset(e, 0, 22);
  tsdf_put32(e, 0x06054b50u);
  tsdf_put16(e + 8, (uint32_t)n);
  tsdf_put16(e + 10, (uint32_t)n);
  tsdf_put32(e + 12, (uint32_t)(pos - cd));
  tsdf_put32(e + 16, (uint32_t)cd);
  pos += 22;
  free(offs);
  free(crcs);
  *out_size = pos;
  return z;
}

/* `pickle` as archive/data.pkl of a one-record archive. */
static inline uint8_t *tsdf_zip_pickle(const uint8_t *pickle, size_t n,
                                       size_t *out_size) {
  tsdf_record r = {"archive/data.pkl", pickle, n};
  return tsdf_zip(&r, 1, out_size);
}

/* ---- exercising a checkpoint through the whole public API ---------------- */

/* Reads every entry (tensors into a bounded buffer, as float32 and in their
 * own dtype), then, if `net` is not NULL, loads into it strict, non-strict
 * and auto-pop. Returns
 * 0, or 1 if a failed load changed the model's bytes (the atomicity
 * guarantee of tsd_load) or a failure came without a message. */
static inline int tsdf_exercise(const tsd_checkpoint *ckpt, tsdf_net *net) {
  enum { MAX_BYTES = 16 << 20 };
  static const int modes[3][2] = {{1, 0}, {0, 0}, {0, 1}};
  int bad = 0;
  size_t n = tsd_checkpoint_count(ckpt);
  (void)tsd_checkpoint_root_kind(ckpt);
  for (size_t i = 0; i < n; i++) {
    tsd_entry e;
    if (tsd_checkpoint_entry(&e, ckpt, i) != TSD_OK) {
      if (!tsd_last_error()[0]) bad = 1;
      continue;
    }
    size_t found;
    (void)tsd_checkpoint_find(&found, ckpt, e.key);
    if (e.kind != TSD_KIND_TENSOR) continue;
    if (e.numel < 0 || (uint64_t)e.numel > MAX_BYTES / 8) continue;
    size_t nb = (size_t)e.numel * 8;
    void *buf = malloc(nb ? nb : 1);
    if (!buf) continue;
    if (tsd_checkpoint_read(buf, nb, ckpt, i, TSD_FLOAT32) != TSD_OK &&
        !tsd_last_error()[0])
      bad = 1;
    if (tsd_checkpoint_read(buf, nb, ckpt, i, e.dtype) != TSD_OK &&
        !tsd_last_error()[0])
      bad = 1;
    free(buf);
  }
  /* file metadata (safetensors __metadata__, a sharded index's metadata):
   * every key and value must be a readable C string */
  size_t nf = tsd_checkpoint_file_metadata_count(ckpt);
  for (size_t i = 0; i < nf; i++) {
    const char *k = NULL, *v = NULL;
    if (tsd_checkpoint_file_metadata(&k, &v, ckpt, i) != TSD_OK || !k || !v)
      bad = 1;
    else if (tsd_checkpoint_file_metadata_string(ckpt, k) == NULL)
      bad = 1;
    else
      (void)strlen(v);
  }
  if (tsd_checkpoint_file_metadata(NULL, NULL, ckpt, nf) != TSD_ERR_NOT_FOUND)
    bad = 1;
  (void)tsd_checkpoint_module_version(ckpt, "bn");
  size_t nm = tsd_checkpoint_metadata_count(ckpt);
  for (size_t i = 0; i < nm; i++)
    (void)tsd_checkpoint_metadata_prefix(ckpt, i);
  for (int k = 0; net && k < 3; k++) {
    tsdf_net_data before = net->data;
    tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
    o.strict = modes[k][0];
    o.auto_pop = modes[k][1];
    tsd_report *r = NULL;
    tsd_status st = tsd_load(&r, net->model, ckpt, &o);
    if (st != TSD_OK && memcmp(&before, &net->data, sizeof before) != 0)
      bad = 1;
    if (st == TSD_OK || st == TSD_ERR_LOAD) {
      if (!r)
        bad = 1;
      else {
        (void)tsd_report_json(r);
        if (st == TSD_ERR_LOAD && !tsd_report_message(r)[0]) bad = 1;
      }
    } else if (!tsd_last_error()[0]) {
      bad = 1;
    }
    tsd_report_free(r);
    net->data = before; /* the next mode starts from the same model */
  }
  return bad;
}

#endif /* TSD_FUZZ_COMMON_H */
