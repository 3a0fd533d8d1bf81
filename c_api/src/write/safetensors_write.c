/* safetensors_write.c — a model's persistent tensors written as a
 * safetensors file (the format: formats/safetensors.c). */
#include <string.h>

#include "write.h"

/* ---- writing --------------------------------------------------------------
 */

static void json_escaped(tsd__buf *b, const char *s) {
  tsd__buf_puts(b, "\"");
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      char e[2] = {'\\', (char)*p};
      tsd__buf_append(b, e, 2);
    } else if (*p < 0x20) {
      tsd__buf_printf(b, "\\u%04x", *p);
    } else {
      tsd__buf_append(b, (const char *)p, 1);
    }
  }
  tsd__buf_puts(b, "\"");
}

typedef struct witem {
  const tsd__mtensor *t;
  uint64_t nbytes, begin;
  size_t pos; /* state_dict position, the header's order */
} witem;

/* Data layout: larger elements first (stable), so that every tensor starts
 * at a multiple of its own element size (the data section starts 8-aligned)
 * and a reader can use the bytes in place, as the Rust writer arranges. */
static int witem_cmp(const void *a, const void *b) {
  const witem *x = a, *y = b;
  size_t sx = tsd_dtype_size(x->t->dtype), sy = tsd_dtype_size(y->t->dtype);
  if (sx != sy) return sx > sy ? -1 : 1;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int witem_pos_cmp(const void *a, const void *b) {
  const witem *x = a, *y = b;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static tsd_status build_header(const witem *items, size_t n, tsd__buf *h,
                               const char *path) {
  tsd__buf_puts(h, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (size_t i = 0; i < n; i++) {
    const tsd__mtensor *t = items[i].t;
    if (strcmp(t->name, "__metadata__") == 0)
      return tsd__err(TSD_ERR_INVALID_ARG,
                      "%s: a tensor named \"__metadata__\" cannot be saved as "
                      "safetensors (the name is the format's metadata)",
                      path);
    if (!tsd__utf8_valid(t->name, strlen(t->name)))
      return tsd__err(TSD_ERR_INVALID_ARG,
                      "%s: tensor name \"%.200s\" is not valid UTF-8", path,
                      t->name);
    if (!tsd__st_dtype_name(t->dtype))
      return tsd__err(TSD_ERR_UNSUPPORTED,
                      "%s: tensor \"%.200s\" is %s, which safetensors has no "
                      "dtype for",
                      path, t->name, tsd_dtype_name(t->dtype));
    tsd__buf_puts(h, ",");
    json_escaped(h, t->name);
    tsd__buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", tsd__st_dtype_name(t->dtype));
    for (size_t d = 0; d < t->ndim; d++)
      tsd__buf_printf(h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
    tsd__buf_printf(h, "],\"data_offsets\":[%llu,%llu]}",
                    (unsigned long long)items[i].begin,
                    (unsigned long long)(items[i].begin + items[i].nbytes));
  }
  tsd__buf_puts(h, "}");
  /* The reference writer pads the header with spaces so the data section
   * starts at a multiple of 8. */
  while (!h->oom &&
         (8 + h->len) % 8) /* an out-of-memory buffer stops growing */
    tsd__buf_puts(h, " ");
  if (h->oom) return tsd__err(TSD_ERR_NOMEM, "out of memory writing %s", path);
  return TSD_OK;
}

static tsd_status afile_sink(void *ctx, const void *p, size_t n) {
  return tsd__afile_write(ctx, p, n);
}

static tsd_status write_all(tsd__afile *f, const tsd_model *m, witem *items,
                            size_t n, const char *path) {
  /* offsets in data order, then the header in state_dict order */
  tsd__sort(items, n, sizeof *items, witem_cmp);
  uint64_t pos = 0;
  bool stream = false;
  for (size_t i = 0; i < n; i++) {
    items[i].begin = pos;
    /* (big-endian machine: in-memory tensors are swapped in the window) */
    stream |= (!items[i].t->data || TSD__BIG_ENDIAN) && items[i].nbytes;
    if (!tsd__add_u64(pos, items[i].nbytes, &pos))
      return tsd__err(TSD_ERR_LIMIT, "%s: the tensors exceed 2^64 bytes", path);
  }
  tsd__sort(items, n, sizeof *items, witem_pos_cmp);
  tsd__buf h;
  tsd__buf_init(&h, m->al);
  tsd_status st = build_header(items, n, &h, path);
  if (!st) {
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
      len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    st = tsd__afile_write(f, len8, 8);
  }
  if (!st) st = tsd__afile_write(f, h.data, h.len);
  tsd__buf_free(&h);
  tsd__sort(items, n, sizeof *items, witem_cmp);
  /* Tensors not in memory (a model over a checkpoint, a TorchScript model)
   * are streamed in windows, never held whole. */
  uint8_t *win = NULL;
  if (!st && stream && (m->ops->read_range || TSD__BIG_ENDIAN) &&
      !(win = tsd__mem_alloc(m->al, TSD__WRITE_WINDOW)))
    st = tsd__err(TSD_ERR_NOMEM, "out of memory writing %s", path);
  for (size_t i = 0; !st && i < n; i++)
    st = tsd__model_stream(m, items[i].t, win, afile_sink, f);
  tsd__mem_free(m->al, win);
  return st;
}

tsd_status tsd__save_safetensors(const tsd_model *m, tsd__afile *f) {
  const char *path = f->name;
  size_t *order = tsd__model_order(m);
  witem *items =
      tsd__mem_alloc(m->al, (m->n_tensors ? m->n_tensors : 1) * sizeof *items);
  if (!order || !items) {
    tsd__mem_free(m->al, order);
    tsd__mem_free(m->al, items);
    return tsd__err(TSD_ERR_NOMEM, "out of memory saving %s", path);
  }
  size_t n = 0;
  tsd_status st = TSD_OK;
  for (size_t i = 0; i < m->n_tensors; i++) {
    const tsd__mtensor *t = &m->tensors[order[i]];
    if (t->role != TSD_PARAMETER && t->role != TSD_BUFFER) continue;
    items[n].t = t;
    items[n].pos = n;
    if (!tsd__mul_u64((uint64_t)t->numel, tsd_dtype_size(t->dtype),
                      &items[n].nbytes) ||
        items[n].nbytes > SIZE_MAX) {
      st = tsd__err(TSD_ERR_LIMIT, "%s: tensor \"%s\" is too large", path,
                    t->name);
      break;
    }
    n++;
  }
  tsd__mem_free(m->al, order);
  if (!st) st = write_all(f, m, items, n, path);
  tsd__mem_free(m->al, items);
  return st;
}
