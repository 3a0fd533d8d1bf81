/* pth.c — writes a model's state_dict as a file Python's torch.load reads:
 * the zip layout of PyTorch's PyTorchStreamWriter (records `<stem>/data.pkl`,
 * `<stem>/data/<i>`, `<stem>/version`, stored, data 64-byte aligned with an
 * "FB" padding extra field, ZIP64 past 4 GiB) around a protocol-2 pickle of
 * an OrderedDict with `_metadata`, as torch.save(model.state_dict()) writes.
 *
 * Output goes through afile.c (a failure never leaves a half-written file).
 * Tensors not in memory (a model over a checkpoint, a TorchScript model) are
 * streamed in TSD__WRITE_WINDOW windows, never held whole: a record's CRC,
 * which its local header holds before the data, is patched in afterwards,
 * or, on an output that cannot seek (stdout), computed by a first pass. */
#include <stdio.h>
#include <string.h>

#include "write.h"

#define ZIP_ALIGN 64
#define U32_MAX_MARK 0xFFFFFFFFu

/* ---- pickle writer ------------------------------------------------------ */

typedef struct pk {
  tsd__buf b;
  /* memo ids of the objects torch.save memoizes and we refer to again */
  int memo_od, memo_rebuild, memo_storage, memo_cpu, memo_version;
  int memo_rebuild_v3, memo_untyped;
  int memo_type[TSD_DTYPE_COUNT];
  int next_memo;
} pk;

static void pk_byte(pk *p, unsigned char c) {
  tsd__buf_append(&p->b, (const char *)&c, 1);
}

static void pk_u32(pk *p, uint32_t v) {
  unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8),
                        (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
  tsd__buf_append(&p->b, (const char *)b, 4);
}

/* Python's save_long for protocol 2. */
static void pk_int(pk *p, int64_t v) {
  if (v >= 0 && v <= 0xff) {
    pk_byte(p, 'K');
    pk_byte(p, (unsigned char)v);
  } else if (v >= 0 && v <= 0xffff) {
    pk_byte(p, 'M');
    pk_byte(p, (unsigned char)v);
    pk_byte(p, (unsigned char)(v >> 8));
  } else if (v >= -0x80000000LL && v <= 0x7fffffffLL) {
    pk_byte(p, 'J');
    pk_u32(p, (uint32_t)(int32_t)v);
  } else {
    /* LONG1: minimal little-endian two's complement */
    unsigned char bytes[8];
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
      bytes[i] = (unsigned char)(u >> (8 * i));
    int n = 8;
    while (n > 1) {
      unsigned char top = bytes[n - 1], next = bytes[n - 2];
      if ((top == 0x00 && !(next & 0x80)) || (top == 0xff && (next & 0x80)))
        n--;
      else
        break;
    }
    pk_byte(p, 0x8a);
    pk_byte(p, (unsigned char)n);
    tsd__buf_append(&p->b, (const char *)bytes, (size_t)n);
  }
}

static void pk_put(pk *p, int *id) {
  *id = p->next_memo++;
  pk_byte(p, 'q');
  pk_byte(p, (unsigned char)*id); /* fewer than 256 memoized objects */
}

static void pk_get(pk *p, int id) {
  pk_byte(p, 'h');
  pk_byte(p, (unsigned char)id);
}

static void pk_str(pk *p, const char *s, size_t n) {
  pk_byte(p, 'X');
  pk_u32(p, (uint32_t)n);
  tsd__buf_append(&p->b, s, n);
}

/* An object emitted once and fetched from the memo afterwards. */
static void pk_global(pk *p, int *memo, const char *mod, const char *name) {
  if (*memo >= 0) {
    pk_get(p, *memo);
    return;
  }
  pk_byte(p, 'c');
  tsd__buf_puts(&p->b, mod);
  tsd__buf_puts(&p->b, "\n");
  tsd__buf_puts(&p->b, name);
  tsd__buf_puts(&p->b, "\n");
  pk_put(p, memo);
}

static void pk_memo_str(pk *p, int *memo, const char *s) {
  if (*memo >= 0) {
    pk_get(p, *memo);
    return;
  }
  pk_str(p, s, strlen(s));
  pk_put(p, memo);
}

static void pk_int_tuple(pk *p, size_t n, const int64_t *v) {
  if (n == 0) {
    pk_byte(p, ')');
    return;
  }
  if (n > 3) pk_byte(p, '(');
  for (size_t i = 0; i < n; i++)
    pk_int(p, v[i]);
  pk_byte(p, n == 1 ? 0x85 : n == 2 ? 0x86 : n == 3 ? 0x87 : 't');
}

static const char *storage_class(tsd_dtype d) {
  switch (d) {
  case TSD_FLOAT32:
    return "FloatStorage";
  case TSD_FLOAT64:
    return "DoubleStorage";
  case TSD_FLOAT16:
    return "HalfStorage";
  case TSD_BFLOAT16:
    return "BFloat16Storage";
  case TSD_INT8:
    return "CharStorage";
  case TSD_INT16:
    return "ShortStorage";
  case TSD_INT32:
    return "IntStorage";
  case TSD_INT64:
    return "LongStorage";
  case TSD_UINT8:
    return "ByteStorage";
  case TSD_BOOL:
    return "BoolStorage";
  case TSD_COMPLEX64:
    return "ComplexFloatStorage";
  case TSD_COMPLEX128:
    return "ComplexDoubleStorage";
  default: /* saved as torch 2.x does: _rebuild_tensor_v3 (pk_tensor) */
    return NULL;
  }
}

static bool saved(const tsd__mtensor *t) {
  return t->role == TSD_PARAMETER || t->role == TSD_BUFFER;
}

/* torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False,
 * OrderedDict()) with persistent id ('storage', torch.<T>Storage, '<i>',
 * 'cpu', numel). A dtype without a typed storage class (float8, uint16/32/64,
 * complex32) as PyTorch >= 2.1 writes it: _rebuild_tensor_v3(storage, 0,
 * size, stride, False, OrderedDict(), torch.<dtype>) with persistent id
 * ('storage', torch.storage.UntypedStorage, '<i>', 'cpu', nbytes). */
static void pk_tensor(pk *p, const tsd__mtensor *t, size_t storage_index) {
  const char *cls = storage_class(t->dtype);
  if (cls)
    pk_global(p, &p->memo_rebuild, "torch._utils", "_rebuild_tensor_v2");
  else
    pk_global(p, &p->memo_rebuild_v3, "torch._utils", "_rebuild_tensor_v3");
  pk_byte(p, '(');
  pk_byte(p, '(');
  pk_memo_str(p, &p->memo_storage, "storage");
  if (cls)
    pk_global(p, &p->memo_type[t->dtype], "torch", cls);
  else
    pk_global(p, &p->memo_untyped, "torch.storage", "UntypedStorage");
  char key[32];
  int kn = snprintf(key, sizeof key, "%zu", storage_index);
  pk_str(p, key, (size_t)kn);
  pk_memo_str(p, &p->memo_cpu, "cpu");
  /* no overflow: the tensor's bytes were checked when it was added */
  pk_int(p, cls ? t->numel
                : t->numel * (int64_t)tsd_dtype_size(t->dtype));
  pk_byte(p, 't');
  pk_byte(p, 'Q'); /* BINPERSID */
  pk_int(p, 0);    /* storage_offset */
  pk_int_tuple(p, t->ndim, t->shape);
  /* contiguous strides as PyTorch computes them: size-0 dims count as 1 */
  int64_t stride[TSD_MAX_NDIM];
  uint64_t acc = 1; /* unsigned: a zero-size tensor's strides may wrap */
  for (size_t i = t->ndim; i-- > 0;) {
    stride[i] = (int64_t)acc;
    acc *= t->shape[i] > 1 ? (uint64_t)t->shape[i] : 1u;
  }
  pk_int_tuple(p, t->ndim, stride);
  pk_byte(p, 0x89); /* requires_grad = False */
  pk_get(p, p->memo_od);
  pk_byte(p, ')');
  pk_byte(p, 'R'); /* backward_hooks = OrderedDict() */
  if (!cls) /* the dtype: torch.dtype pickles as the global torch.<name> */
    pk_global(p, &p->memo_type[t->dtype], "torch", tsd_dtype_name(t->dtype));
  pk_byte(p, 't');
  pk_byte(p, 'R');
}

/* pickle's _batch_setitems: batches of 1000, SETITEM for a batch of one. */
typedef void (*pk_item_fn)(pk *p, const void *ctx, size_t i);
static void pk_setitems(pk *p, size_t n, pk_item_fn item, const void *ctx) {
  for (size_t start = 0; start < n; start += 1000) {
    size_t end = n - start > 1000 ? start + 1000 : n;
    if (end - start == 1) {
      item(p, ctx, start);
      pk_byte(p, 's');
      continue;
    }
    pk_byte(p, '(');
    for (size_t i = start; i < end; i++)
      item(p, ctx, i);
    pk_byte(p, 'u');
  }
}

typedef struct save_ctx {
  const tsd_model *m;
  const size_t *items; /* saved tensor indices, state_dict order */
  const size_t *mods;  /* module indices, pre-order */
} save_ctx;

static void pk_tensor_item(pk *p, const void *vctx, size_t i) {
  const save_ctx *s = vctx;
  const tsd__mtensor *t = &s->m->tensors[s->items[i]];
  pk_str(p, t->name, strlen(t->name));
  pk_tensor(p, t, i);
}

static void pk_meta_item(pk *p, const void *vctx, size_t i) {
  const save_ctx *s = vctx;
  const tsd__module *mod = &s->m->modules[s->mods[i]];
  pk_str(p, mod->prefix, strlen(mod->prefix));
  pk_byte(p, '}');
  pk_memo_str(p, &p->memo_version, "version");
  pk_int(p, mod->version);
  pk_byte(p, 's');
}

static void pk_state_dict(pk *p, const save_ctx *s, size_t n_items,
                          size_t n_mods) {
  p->memo_od = p->memo_rebuild = p->memo_storage = p->memo_cpu = -1;
  p->memo_version = p->memo_rebuild_v3 = p->memo_untyped = -1;
  for (int i = 0; i < TSD_DTYPE_COUNT; i++)
    p->memo_type[i] = -1;
  p->next_memo = 0;
  pk_byte(p, 0x80);
  pk_byte(p, 2);
  pk_global(p, &p->memo_od, "collections", "OrderedDict");
  pk_byte(p, ')');
  pk_byte(p, 'R');
  pk_setitems(p, n_items, pk_tensor_item, s);
  /* OrderedDict.__reduce__'s state: {'_metadata': OrderedDict(...)} */
  pk_byte(p, '}');
  pk_str(p, "_metadata", 9);
  pk_get(p, p->memo_od);
  pk_byte(p, ')');
  pk_byte(p, 'R');
  pk_setitems(p, n_mods, pk_meta_item, s);
  pk_byte(p, 's');
  pk_byte(p, 'b');
  pk_byte(p, '.');
}

/* ---- zip writer --------------------------------------------------------- */

typedef struct zrec {
  char *name;
  uint64_t offset, size;
  uint32_t crc;
} zrec;

typedef struct zw {
  const tsd_allocator *al; /* the model's */
  tsd__afile *f;
  const char *path; /* the output's name, for messages */
  uint64_t off;
  unsigned char *buf;
  size_t len, cap;
  uint64_t zip64_at; /* a size or offset >= this uses ZIP64 fields */
  zrec *recs;
  size_t n_recs, cap_recs;
  const tsd_model *m;
  unsigned char *win; /* TSD__WRITE_WINDOW bytes, for streamed tensors */
} zw;

static tsd_status zw_raw(zw *w, const void *p, size_t n) {
  return tsd__afile_write(w->f, p, n);
}

static tsd_status zw_flush(zw *w) {
  tsd_status st = zw_raw(w, w->buf, w->len);
  w->len = 0;
  return st;
}

static tsd_status zw_write(zw *w, const void *p, size_t n) {
  tsd_status st;
  if (w->len + n > w->cap) {
    if ((st = zw_flush(w))) return st;
    if (n >= w->cap) {
      if ((st = zw_raw(w, p, n))) return st;
      w->off += n;
      return TSD_OK;
    }
  }
  memcpy(w->buf + w->len, p, n);
  w->len += n;
  w->off += n;
  return TSD_OK;
}

static void le16(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
}
static void le32(unsigned char *p, uint32_t v) {
  le16(p, v);
  le16(p + 2, v >> 16);
}
static void le64(unsigned char *p, uint64_t v) {
  le32(p, (uint32_t)v);
  le32(p + 4, (uint32_t)(v >> 32));
}

/* Where a streamed tensor's bytes come from. */
typedef struct zsrc {
  const void *data;      /* in memory, or NULL: */
  const tsd__mtensor *t; /* read from the model in windows */
} zsrc;

typedef struct zsink {
  zw *w;
  uint32_t crc;
  bool write;
} zsink;

static tsd_status zsink_fn(void *ctx, const void *p, size_t n) {
  zsink *k = ctx;
  const unsigned char *c = p;
  k->crc = tsd__crc32(k->crc, c, n);
  return k->write ? zw_write(k->w, p, n) : TSD_OK;
}

/* Visits the record's bytes (in windows when streamed): crc and/or write. */
static tsd_status zw_stream(zw *w, const zsrc *src, uint64_t size,
                            uint32_t *crc, bool write) {
  zsink k = {w, 0, write};
  tsd_status st = src->data
                      ? (size ? zsink_fn(&k, src->data, (size_t)size) : TSD_OK)
                      : tsd__model_stream(w->m, src->t, w->win, zsink_fn, &k);
  if (!st && crc) *crc = (uint32_t)k.crc;
  return st;
}

/* One stored record: local header (with ZIP64 sizes if needed and the "FB"
 * extra field that pads the data to a 64-byte boundary, as PyTorch's writer
 * does), then the data. */
static tsd_status zw_record_src(zw *w, const char *name, const zsrc *src,
                                uint64_t size) {
  if (!w->recs || w->n_recs == w->cap_recs) {
    size_t cap = w->cap_recs ? w->cap_recs * 2 : 16;
    zrec *r = tsd__mem_realloc(w->al, w->recs, cap * sizeof *r);
    if (!r) return tsd__err(TSD_ERR_NOMEM, "out of memory writing %s", w->path);
    w->recs = r;
    w->cap_recs = cap;
  }
  zrec *rec = &w->recs[w->n_recs];
  rec->name = tsd__mem_strdup(w->al, name);
  if (!rec->name) return tsd__err(TSD_ERR_NOMEM, "out of memory");
  w->n_recs++;
  rec->offset = w->off;
  rec->size = size;
  rec->crc = 0;
  /* the CRC precedes the data: known for memory, patched in afterwards on a
   * seekable output, else a first pass over the tensor */
  bool patch = !src->data && w->f->seekable;
  tsd_status st = TSD_OK;
  if (!patch) st = zw_stream(w, src, size, &rec->crc, false);
  if (st) return st;

  size_t fn = strlen(name);
  bool z64 = size >= w->zip64_at;
  size_t z64_len = z64 ? 4 + 16 : 0;
  uint64_t start = w->off + 30 + fn + z64_len + 4;
  size_t pad = (size_t)((ZIP_ALIGN - start % ZIP_ALIGN) % ZIP_ALIGN);
  unsigned char h[30 + 4 + 16 + 4 + ZIP_ALIGN];
  le32(h, 0x04034b50);
  le16(h + 4, z64 ? 45 : 20);
  le16(h + 6, 0);  /* flags */
  le16(h + 8, 0);  /* stored */
  le16(h + 10, 0); /* time: PyTorch writes 0 */
  le16(h + 12, 0); /* date */
  le32(h + 14, rec->crc);
  le32(h + 18, z64 ? U32_MAX_MARK : (uint32_t)size);
  le32(h + 22, z64 ? U32_MAX_MARK : (uint32_t)size);
  le16(h + 26, (uint32_t)fn);
  le16(h + 28, (uint32_t)(z64_len + 4 + pad));
  st = zw_write(w, h, 30);
  if (!st) st = zw_write(w, name, fn);
  size_t e = 0;
  if (z64) {
    le16(h + e, 0x0001);
    le16(h + e + 2, 16);
    le64(h + e + 4, size);
    le64(h + e + 12, size);
    e += 20;
  }
  h[e] = 'F';
  h[e + 1] = 'B';
  le16(h + e + 2, (uint32_t)pad);
  memset(h + e + 4, 'Z', pad);
  e += 4 + pad;
  if (!st) st = zw_write(w, h, e);
  if (!st) st = zw_stream(w, src, size, patch ? &rec->crc : NULL, true);
  if (!st && patch) {
    unsigned char c4[4];
    le32(c4, rec->crc);
    st = zw_flush(w);
    if (!st) st = tsd__afile_pwrite(w->f, rec->offset + 14, c4, 4);
  }
  return st;
}

static tsd_status zw_record(zw *w, const char *name, const void *data,
                            uint64_t size) {
  zsrc src = {data ? data : "", NULL};
  return zw_record_src(w, name, &src, size);
}

static tsd_status zw_finish(zw *w) {
  uint64_t cd_start = w->off;
  tsd_status st = TSD_OK;
  for (size_t i = 0; !st && i < w->n_recs; i++) {
    const zrec *r = &w->recs[i];
    bool big_size = r->size >= w->zip64_at, big_off = r->offset >= w->zip64_at;
    size_t fn = strlen(r->name);
    unsigned char h[46 + 4 + 24];
    size_t ext = (big_size || big_off)
                     ? 4u + (big_size ? 16u : 0u) + (big_off ? 8u : 0u)
                     : 0u;
    le32(h, 0x02014b50);
    le16(h + 4, ext ? 45 : 20); /* made by */
    le16(h + 6, ext ? 45 : 20); /* needed */
    le16(h + 8, 0);
    le16(h + 10, 0);
    le16(h + 12, 0);
    le16(h + 14, 0);
    le32(h + 16, r->crc);
    le32(h + 20, big_size ? U32_MAX_MARK : (uint32_t)r->size);
    le32(h + 24, big_size ? U32_MAX_MARK : (uint32_t)r->size);
    le16(h + 28, (uint32_t)fn);
    le16(h + 30, (uint32_t)ext);
    le16(h + 32, 0); /* comment */
    le16(h + 34, 0); /* disk */
    le16(h + 36, 0); /* internal attributes */
    le32(h + 38, 0); /* external attributes */
    le32(h + 42, big_off ? U32_MAX_MARK : (uint32_t)r->offset);
    st = zw_write(w, h, 46);
    if (!st) st = zw_write(w, r->name, fn);
    if (!st && ext) {
      size_t e = 0;
      le16(h + e, 0x0001);
      le16(h + e + 2, (uint32_t)(ext - 4));
      e += 4;
      if (big_size) {
        le64(h + e, r->size);
        le64(h + e + 8, r->size);
        e += 16;
      }
      if (big_off) {
        le64(h + e, r->offset);
        e += 8;
      }
      st = zw_write(w, h, e);
    }
  }
  if (st) return st;
  uint64_t cd_size = w->off - cd_start, n = w->n_recs;
  bool z64 = n >= 0xFFFF || cd_size >= w->zip64_at || cd_start >= w->zip64_at;
  unsigned char h[56 + 20 + 22];
  if (z64) {
    uint64_t eocd64 = w->off;
    le32(h, 0x06064b50);
    le64(h + 4, 44);
    le16(h + 12, 45);
    le16(h + 14, 45);
    le32(h + 16, 0);
    le32(h + 20, 0);
    le64(h + 24, n);
    le64(h + 32, n);
    le64(h + 40, cd_size);
    le64(h + 48, cd_start);
    le32(h + 56, 0x07064b50);
    le32(h + 60, 0);
    le64(h + 64, eocd64);
    le32(h + 72, 1);
    if ((st = zw_write(w, h, 76))) return st;
  }
  le32(h, 0x06054b50);
  le16(h + 4, 0);
  le16(h + 6, 0);
  le16(h + 8, n >= 0xFFFF ? 0xFFFF : (uint32_t)n);
  le16(h + 10, n >= 0xFFFF ? 0xFFFF : (uint32_t)n);
  le32(h + 12, cd_size >= w->zip64_at ? U32_MAX_MARK : (uint32_t)cd_size);
  le32(h + 16, cd_start >= w->zip64_at ? U32_MAX_MARK : (uint32_t)cd_start);
  le16(h + 20, 0);
  if ((st = zw_write(w, h, 22))) return st;
  return zw_flush(w);
}

/* ---- the .pth ----------------------------------------------------------- */

/* PyTorchStreamWriter: the archive's directory is the file's base name up to
 * its last '.'; we also keep it to characters every zip tool accepts. */
static char *archive_stem(const tsd_allocator *al, const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *dot = strrchr(base, '.');
  size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
  if (n > 200) n = 200;
  if (n == 0) return tsd__mem_strdup(al, "archive");
  char *s = tsd__mem_strndup(al, base, n);
  if (!s) return NULL;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok) s[i] = '_';
  }
  return s;
}

static tsd_status write_all(zw *w, const tsd_model *m, const char *stem,
                            const size_t *items, size_t n_items,
                            const size_t *mods) {
  save_ctx sc = {m, items, mods};
  pk p;
  tsd__buf_init(&p.b, w->al);
  pk_state_dict(&p, &sc, n_items, m->n_modules);
  if (p.b.oom) {
    tsd__buf_free(&p.b);
    return tsd__err(TSD_ERR_NOMEM, "out of memory writing %s", w->path);
  }
  tsd__buf name;
  tsd__buf_init(&name, w->al);
  tsd__buf_printf(&name, "%s/data.pkl", stem);
  tsd_status st = name.oom ? tsd__err(TSD_ERR_NOMEM, "out of memory")
                           : zw_record(w, name.data, p.b.data, p.b.len);
  tsd__buf_free(&p.b);
  for (size_t i = 0; !st && i < n_items; i++) {
    const tsd__mtensor *t = &m->tensors[items[i]];
    uint64_t nbytes = (uint64_t)t->numel * tsd_dtype_size(t->dtype);
    /* not in memory (another model kind): streamed in windows */
    /* (on a big-endian machine every tensor is streamed: byte-swapped) */
    zsrc src = {t->data && !tsd__swap_unit(t->dtype, false) ? t->data
                : nbytes                                   ? NULL
                                                           : "",
                t};
    name.len = 0;
    tsd__buf_printf(&name, "%s/data/%zu", stem, i);
    if (name.oom) st = tsd__err(TSD_ERR_NOMEM, "out of memory");
    if (!st) st = zw_record_src(w, name.data, &src, nbytes);
  }
  if (!st) {
    name.len = 0;
    tsd__buf_printf(&name, "%s/version", stem);
    st = name.oom ? tsd__err(TSD_ERR_NOMEM, "out of memory")
                  : zw_record(w, name.data, "3\n", 2);
  }
  tsd__buf_free(&name);
  if (!st) st = zw_finish(w);
  return st;
}

static tsd_status save_pth(const tsd_model *m, tsd__afile *f,
                           uint64_t zip64_at) {
  size_t *order = tsd__model_order(m);
  size_t *mods = tsd__model_module_preorder(m);
  /* a descriptor has no file name: torch.save to a file object says
   * "archive" */
  char *stem = archive_stem(m->al, f->path ? f->path : "archive");
  zw w;
  memset(&w, 0, sizeof w);
  w.al = m->al;
  w.f = f;
  w.m = m;
  w.path = f->name;
  w.zip64_at = zip64_at;
  w.cap = (size_t)1 << 20;
  w.buf = tsd__mem_alloc(w.al, w.cap);
  tsd_status st = TSD_OK;
  if (!order || !mods || !stem || !w.buf)
    st = tsd__err(TSD_ERR_NOMEM, "out of memory saving %s", f->name);
  size_t n_items = 0;
  bool stream = false;
  for (size_t i = 0; !st && i < m->n_tensors; i++)
    if (saved(&m->tensors[order[i]])) {
      order[n_items++] = order[i];
      /* big-endian machine: in-memory tensors go through the window too,
       * to be written little-endian */
      stream |= !m->tensors[order[i]].data || TSD__BIG_ENDIAN;
    }
  if (!st && stream && (m->ops->read_range || TSD__BIG_ENDIAN) &&
      !(w.win = tsd__mem_alloc(w.al, TSD__WRITE_WINDOW)))
    st = tsd__err(TSD_ERR_NOMEM, "out of memory saving %s", f->name);
  if (!st) st = write_all(&w, m, stem, order, n_items, mods);
  for (size_t i = 0; i < w.n_recs; i++)
    tsd__mem_free(w.al, w.recs[i].name);
  tsd__mem_free(w.al, w.recs);
  tsd__mem_free(w.al, w.buf);
  tsd__mem_free(w.al, w.win);
  tsd__mem_free(w.al, stem);
  tsd__mem_free(w.al, mods);
  tsd__mem_free(w.al, order);
  return st;
}

tsd_status tsd__save_pth(const tsd_model *m, tsd__afile *f) {
  return save_pth(m, f, U32_MAX_MARK);
}

tsd_status tsd__save_pth_ex(const tsd_model *m, const char *path,
                            uint64_t zip64_at) {
  if (!m || !path || !*path)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_model_save: no model or path");
  tsd__afile f;
  tsd_status st = tsd__afile_open(&f, m->al, path, NULL, NULL);
  if (st) return st;
  st = save_pth(m, &f, zip64_at);
  if (st)
    tsd__afile_abort(&f);
  else
    st = tsd__afile_commit(&f);
  return st;
}
