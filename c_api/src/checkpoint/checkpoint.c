/* checkpoint.c — the public tsd_checkpoint_* API: opening (format
 * detection), the view of the current dict (select, pop), entries, and
 * tensor reads (storage offsets, strides, dtype conversion). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* ---- limits -------------------------------------------------------------- */

void tsd__limits_resolve(tsd__limits *out, const tsd_open_options *opts) {
  out->max_depth = 1000;
  out->max_objects = (uint64_t)64 << 20;
  out->max_pickle_bytes = (uint64_t)4 << 30;
  if (!opts) return;
  if (opts->limits.max_depth) out->max_depth = opts->limits.max_depth;
  if (opts->limits.max_objects) out->max_objects = opts->limits.max_objects;
  if (opts->limits.max_pickle_bytes)
    out->max_pickle_bytes = opts->limits.max_pickle_bytes;
  out->max_output_ratio = opts->limits.max_output_ratio;
}

/* tsd_open_options before version 3 (tsd_limits without max_output_ratio):
 * the layout a caller built against an older header passes. */
typedef struct open_options_v2 {
  unsigned version;
  struct {
    uint32_t max_depth;
    uint64_t max_objects;
    uint64_t max_pickle_bytes;
  } limits;
  const tsd_allocator *allocator;
} open_options_v2;

/* Copies the caller's options, of any version, into the current layout
 * (NULL stays NULL). */
static const tsd_open_options *options_in(const tsd_open_options *in,
                                          tsd_open_options *buf) {
  if (!in) return NULL;
  if (in->version >= 3) {
    *buf = *in;
    return buf;
  }
  const open_options_v2 *o = (const open_options_v2 *)(const void *)in;
  memset(buf, 0, sizeof *buf);
  buf->version = o->version;
  buf->limits.max_depth = o->limits.max_depth;
  buf->limits.max_objects = o->limits.max_objects;
  buf->limits.max_pickle_bytes = o->limits.max_pickle_bytes;
  if (o->version >= 2) buf->allocator = o->allocator;
  return buf;
}

/* ---- value descriptions ---------------------------------------------------
 */

const char *tsd__type_repr(const tsd__value *v) {
  if (!v) return "<class 'NoneType'>";
  const char *np = tsd__np_scalar_repr(v);
  if (np) return np;
  switch (v->kind) {
  case TSD__V_NONE:
    return "<class 'NoneType'>";
  case TSD__V_BOOL:
    return "<class 'bool'>";
  case TSD__V_INT:
  case TSD__V_BIGINT:
    return "<class 'int'>";
  case TSD__V_FLOAT:
    return "<class 'float'>";
  case TSD__V_STR:
    return "<class 'str'>";
  case TSD__V_BYTES:
    return "<class 'bytes'>";
  case TSD__V_TUPLE:
    return "<class 'tuple'>";
  case TSD__V_LIST:
    return "<class 'list'>";
  case TSD__V_SET:
    return "<class 'set'>";
  case TSD__V_DICT:
    return (v->flags & TSD__VF_ORDERED) ? "<class 'collections.OrderedDict'>"
                                        : "<class 'dict'>";
  case TSD__V_TENSOR:
    if (v->u.tensor->numpy) return "<class 'numpy.ndarray'>";
    return v->u.tensor->is_parameter ? "<class 'torch.nn.parameter.Parameter'>"
                                     : "<class 'torch.Tensor'>";
  case TSD__V_STORAGE:
    return "<class 'torch.storage.TypedStorage'>";
  case TSD__V_GLOBAL:
    return "<class 'type'>";
  case TSD__V_DTYPE:
    return "<class 'torch.dtype'>";
  case TSD__V_DEVICE:
    return "<class 'torch.device'>";
  case TSD__V_XTENSOR:
    return v->u.xtensor->is_parameter
               ? "<class 'torch.nn.parameter.Parameter'>"
               : "<class 'torch.Tensor'>";
  case TSD__V_OBJECT:
    return v->u.obj.cls->u.g.repr; /* the class Python would have built */
  }
  return "<class 'object'>";
}

tsd_kind tsd__public_kind(const tsd__value *v) {
  if (!v) return TSD_KIND_NONE;
  switch (v->kind) {
  case TSD__V_TENSOR:
    return TSD_KIND_TENSOR;
  case TSD__V_NONE:
    return TSD_KIND_NONE;
  case TSD__V_BOOL:
    return TSD_KIND_BOOL;
  case TSD__V_INT:
    return TSD_KIND_INT;
  case TSD__V_FLOAT:
    return TSD_KIND_FLOAT;
  case TSD__V_STR:
    return TSD_KIND_STR;
  case TSD__V_BYTES:
    return TSD_KIND_BYTES;
  case TSD__V_DICT:
    return TSD_KIND_DICT;
  case TSD__V_LIST:
    return TSD_KIND_LIST;
  case TSD__V_TUPLE:
    return TSD_KIND_TUPLE;
  case TSD__V_OBJECT:
    return TSD_KIND_OBJECT;
  default:
    return TSD_KIND_OTHER;
  }
}

/* ---- the live view of the current dict ---------------------------------- */

/* The index maps a key to its position in the dict (u.dict); `live` holds
 * the dict positions not popped, ascending, so the public index of a key is
 * found by binary search in `live`. */
static const char *dict_key(const void *ctx, size_t i, size_t *len) {
  const tsd_checkpoint *c = ctx;
  const tsd__value *k = c->current->u.dict.keys[i];
  *len = k->u.s.len;
  return k->u.s.p;
}

static void view_clear(tsd_checkpoint *c) {
  tsd__mem_free(c->al, c->live);
  c->live = NULL;
  c->n_live = 0;
  tsd__strmap_free(&c->index);
  tsd__mem_free(c->al, c->view_error);
  c->view_error = NULL;
  c->view_status = TSD_OK;
}

static void view_fail(tsd_checkpoint *c, tsd_status st, const char *msg) {
  if (c->view_status != TSD_OK) return;
  c->view_status = st;
  c->view_error = tsd__mem_strdup(c->al, msg);
}

/* Builds the view of c->current. A dict whose keys are not all distinct
 * strings gets a view_status the engine and find report (the checkpoint
 * still opens: its entries can be listed). Out of memory is returned (and
 * kept as the view_status, so later calls report it too). */
static tsd_status view_build(tsd_checkpoint *c) {
  view_clear(c);
  if (!c->current) return TSD_OK;
  size_t n = c->current->u.dict.len;
  c->live = tsd__mem_alloc(c->al, (n ? n : 1) * sizeof *c->live);
  if (!c->live) {
    view_fail(c, TSD_ERR_NOMEM, "out of memory building the checkpoint view");
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory building the view",
                    c->src.name);
  }
  c->n_live = n;
  char msg[512];
  for (size_t i = 0; i < n; i++) {
    c->live[i] = i;
    const tsd__value *k = c->current->u.dict.keys[i];
    if (k->kind != TSD__V_STR) {
      snprintf(msg, sizeof msg,
               "%s: the state dict's key at position %zu is a %s, not a str",
               c->src.name, i, tsd__type_repr(k));
      view_fail(c, TSD_ERR_TYPE, msg);
      continue;
    }
    bool oom;
    size_t prev;
    if (!tsd__strmap_insert(&c->index, k->u.s.p, k->u.s.len, i, dict_key, c,
                            &prev, &oom)) {
      if (oom) {
        view_fail(c, TSD_ERR_NOMEM, "out of memory building the view");
        return tsd__err(TSD_ERR_NOMEM, "%s: out of memory building the view",
                        c->src.name);
      } else {
        snprintf(msg, sizeof msg,
                 "%s: the state dict has the key '%.200s' twice (positions "
                 "%zu and %zu)",
                 c->src.name, k->u.s.p, prev, i);
        view_fail(c, TSD_ERR_FORMAT, msg);
      }
    }
  }
  return TSD_OK;
}

size_t tsd__ckpt_count(const tsd_checkpoint *c) {
  return c ? c->n_live : 0;
}

const tsd__value *tsd__ckpt_key(const tsd_checkpoint *c, size_t i) {
  if (!c || i >= c->n_live) return NULL;
  return c->current->u.dict.keys[c->live[i]];
}

const tsd__value *tsd__ckpt_val(const tsd_checkpoint *c, size_t i) {
  if (!c || i >= c->n_live) return NULL;
  return c->current->u.dict.vals[c->live[i]];
}

static bool live_pos(const tsd_checkpoint *c, size_t dict_i, size_t *out) {
  size_t lo = 0, hi = c->n_live;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (c->live[mid] < dict_i)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < c->n_live && c->live[lo] == dict_i) {
    *out = lo;
    return true;
  }
  return false;
}

bool tsd__ckpt_lookup(const tsd_checkpoint *c, const char *key, size_t len,
                      size_t *out_i) {
  size_t di;
  if (!c || !c->current) return false;
  if (!tsd__strmap_find(&c->index, key, len, dict_key, c, &di)) return false;
  return live_pos(c, di, out_i);
}

const tsd__value *tsd__ckpt_metadata(const tsd_checkpoint *c) {
  if (!c || !c->current) return NULL;
  const tsd__value *m = c->current->u.dict.metadata;
  return m && m->kind == TSD__V_DICT ? m : NULL;
}

static const tsd__value *dict_get(const tsd__value *d, const char *key,
                                  size_t len) {
  for (size_t i = 0; i < d->u.dict.len; i++) {
    const tsd__value *k = d->u.dict.keys[i];
    if (k->kind == TSD__V_STR && k->u.s.len == len &&
        memcmp(k->u.s.p, key, len) == 0)
      return d->u.dict.vals[i];
  }
  return NULL;
}

int64_t tsd__metadata_version(const tsd__value *metadata, const char *prefix) {
  if (!metadata || metadata->kind != TSD__V_DICT || !prefix) return -1;
  const tsd__value *m = dict_get(metadata, prefix, strlen(prefix));
  if (!m || m->kind != TSD__V_DICT) return -1;
  const tsd__value *v = dict_get(m, "version", 7);
  if (!v || (v->kind != TSD__V_INT && v->kind != TSD__V_BOOL)) return -1;
  return v->u.i;
}

/* ---- tensor reads ----------------------------------------------------------
 */

/* Staging buffer of a converting read, per thread: 256 KiB stays in L2
 * between the pread and the widening (bf16 -> f32 of vit_b_16: 1 MiB ~5%
 * and 4 MiB ~40% slower; bench/notes.md). */
#define CHUNK ((size_t)256 << 10)
#define WINDOW ((size_t)4 << 20)
/* A contiguous converting read of at least this many checkpoint bytes uses
 * a second thread (bf16 -> f32 of vit_b_16: 0.040 s -> 0.026 s with the
 * non-temporal stores of convert.c). Below it the thread's creation and
 * join (~50 us) weigh more than half the work. */
#define SPLIT_CONVERT ((uint64_t)1 << 20)
/* Same-dtype reads go by one pread straight into dst; from SPLIT_COPY bytes
 * in COPY_PIECE preads shared by two threads (vit_l_16: 0.14 s -> 0.11 s,
 * the kernel's copy out of the page cache runs on both cores). */
#define SPLIT_COPY ((uint64_t)4 << 20)
#define COPY_PIECE ((uint64_t)2 << 20)

/* Reverses the bytes of each `unit`-byte group of p[0..n) (n and p's
 * position in the storage are multiples of unit: reads are whole elements). */
static void byteswap(uint8_t *p, size_t n, unsigned unit) {
  for (size_t i = 0; i + unit <= n; i += unit)
    for (unsigned a = 0, b = unit - 1; a < b; a++, b--) {
      uint8_t t = p[i + a];
      p[i + a] = p[i + b];
      p[i + b] = t;
    }
}

static tsd_status read_bytes(const tsd_checkpoint *c, const tsd__storage *s,
                             uint64_t off, void *dst, size_t n) {
  if (s->mem) {
    memcpy(dst, s->mem + off, n);
    return TSD_OK;
  }
  char what[256];
  snprintf(what, sizeof what, "storage '%s'", s->key);
  tsd_status st = tsd__source_read(s->src ? s->src : &c->src, s->offset + off,
                                   dst, n, what);
  if (st == TSD_OK && s->swap > 1) byteswap(dst, n, s->swap);
  return st;
}

/* A contiguous read of n elements at byte `start` of storage s into dst,
 * `from` -> `to`, cut into pieces of `per` elements. Two threads share the
 * pieces: the caller takes them from the front, the worker from the back,
 * each piece by a ticket from `claimed`, so neither waits for the other's
 * share: when the worker is slow to start or is preempted on a busy machine,
 * the caller simply does more pieces. */
typedef struct piece_job {
  const tsd_checkpoint *c;
  const tsd__storage *s;
  uint64_t start;
  uint8_t *dst;
  tsd_dtype from, to;
  uint64_t n, per, pieces;
  atomic_uint_least64_t claimed; /* tickets handed out, both threads */
  atomic_bool stop;              /* the caller failed: the worker quits */
} piece_job;

/* The worker's staging buffer and outcome. tsd__err is per thread, so its
 * message is carried back here and raised again on the calling thread. */
typedef struct piece_worker {
  piece_job *job;
  uint8_t *tmp; /* allocated and freed by the caller: a caller's allocator
                 * is only ever called from the caller's thread */
  tsd_status st;
  char msg[1024];
} piece_worker;

static bool claim(piece_job *j) {
  return atomic_fetch_add_explicit(&j->claimed, 1, memory_order_relaxed) <
         j->pieces;
}

/* Piece i; `tmp` is a staging buffer of `per` source elements when
 * needs_staging (else the bytes go straight into dst). */
static tsd_status do_piece(const piece_job *j, uint64_t i, uint8_t *tmp) {
  const size_t isz = tsd_dtype_size(j->from), osz = tsd_dtype_size(j->to);
  uint64_t e = i * j->per;
  size_t k = (size_t)(j->n - e < j->per ? j->n - e : j->per);
  uint64_t off = j->start + e * isz;
  if (j->from == j->to)
    return read_bytes(j->c, j->s, off, j->dst + e * osz, k * isz);
  if (j->s->mem) {
    tsd__convert(j->dst + e * osz, j->to, j->s->mem + off, j->from, k);
    return TSD_OK;
  }
  tsd_status st = read_bytes(j->c, j->s, off, tmp, k * isz);
  if (st == TSD_OK) tsd__convert(j->dst + e * osz, j->to, tmp, j->from, k);
  return st;
}

static bool needs_staging(const piece_job *j) {
  return j->from != j->to && !j->s->mem;
}

static uint8_t *staging(const piece_job *j) {
  return tsd__mem_alloc(j->c->al, (size_t)j->per * tsd_dtype_size(j->from));
}

static void *piece_worker_main(void *arg) {
  piece_worker *w = arg;
  piece_job *j = w->job;
  uint8_t *tmp = w->tmp;
  /* The last piece is the worker's without a ticket (the caller handed it
   * out), so which thread reads what is known; the others it claims. */
  w->st = do_piece(j, j->pieces - 1, tmp);
  for (uint64_t b = 1; w->st == TSD_OK; b++) {
    if (atomic_load_explicit(&j->stop, memory_order_relaxed) || !claim(j))
      break;
    w->st = do_piece(j, j->pieces - 1 - b, tmp);
  }
  if (w->st != TSD_OK) snprintf(w->msg, sizeof w->msg, "%s", tsd_last_error());
  return NULL;
}

/* Pieces of a read of n elements `from` -> `to` (how read_pieces cuts it):
 * *per elements a piece, *threaded when two threads share them. */
static void piece_plan(tsd_dtype from, tsd_dtype to, uint64_t n, uint64_t *per,
                       bool *split) {
  const size_t isz = tsd_dtype_size(from);
  const uint64_t bytes = n * isz;
  if (from == to) {
    *per = bytes < SPLIT_COPY ? n : COPY_PIECE / isz;
  } else {
    *per = CHUNK / isz;
    if (*per > n) *per = n; /* a small tensor, a small buffer */
  }
  uint64_t pieces = *per ? (n + *per - 1) / *per : 0;
  *split = pieces >= 2 && bytes >= (from == to ? SPLIT_COPY : SPLIT_CONVERT);
}

static tsd_status read_pieces(const tsd_checkpoint *c, const tsd__storage *s,
                              uint64_t start, tsd_dtype from, tsd_dtype to,
                              uint64_t n, uint8_t *dst,
                              const tsd__scratch *scratch) {
  const size_t isz = tsd_dtype_size(from);
  /* n * isz fits: the tensor was checked against its storage */
  const uint64_t bytes = n * isz;
  piece_job j = {.c = c,
                 .s = s,
                 .start = start,
                 .dst = dst,
                 .from = from,
                 .to = to,
                 .n = n};
  bool split;
  piece_plan(from, to, n, &j.per, &split);
  if (scratch && scratch->one_thread) split = false;
  if (from == to && !split) return read_bytes(c, s, start, dst, (size_t)bytes);
  j.pieces = (n + j.per - 1) / j.per;
  atomic_init(&j.claimed, 0);
  atomic_init(&j.stop, false);
  /* Staging: the caller's scratch when given and large enough (one buffer,
   * or two for a split), else allocated here. */
  const size_t one = (size_t)j.per * isz;
  uint8_t *tmp = NULL, *own_tmp = NULL, *own_wtmp = NULL;
  if (needs_staging(&j)) {
    if (scratch && scratch->len >= one)
      tmp = scratch->p;
    else if (!(tmp = own_tmp = staging(&j)))
      return tsd__err(TSD_ERR_NOMEM,
                      "storage '%s': out of memory (a %zu-byte read buffer)",
                      s->key, one);
  }

  piece_worker w = {.job = &j, .st = TSD_OK};
  pthread_t th;
  bool threaded = false;
  if (split && needs_staging(&j)) {
    if (scratch && tmp == scratch->p && scratch->len >= 2 * one)
      w.tmp = scratch->p + one;
    else if (!scratch) /* a load passes scratch: it never allocates here */
      w.tmp = own_wtmp = staging(&j);
  }
  if (split && (!needs_staging(&j) || w.tmp)) {
    /* The worker blocks every signal, so a host's handlers keep running on
     * the host's own threads. Without a thread (or its buffer) the caller
     * does it all. */
    sigset_t all, old;
    sigfillset(&all);
    if (pthread_sigmask(SIG_SETMASK, &all, &old) == 0) {
      atomic_store_explicit(&j.claimed, 1, memory_order_relaxed);
      threaded = pthread_create(&th, NULL, piece_worker_main, &w) == 0;
      if (!threaded) atomic_store_explicit(&j.claimed, 0, memory_order_relaxed);
      pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
  }
  tsd_status st = TSD_OK;
  for (uint64_t i = 0; claim(&j); i++) {
    st = do_piece(&j, i, tmp);
    if (st != TSD_OK) {
      atomic_store_explicit(&j.stop, true, memory_order_relaxed);
      break;
    }
  }
  if (threaded) pthread_join(th, NULL);
  tsd__mem_free(c->al, own_wtmp);
  tsd__mem_free(c->al, own_tmp);
  /* The caller's pieces all precede the worker's, so its error, if any, is
   * the one a one-thread read would report; the worker's comes next. */
  if (st != TSD_OK) return st;
  if (threaded && w.st != TSD_OK) return tsd__err(w.st, "%s", w.msg);
  return TSD_OK;
}

/* Elements [lo, hi) of the storage a strided tensor spans. */
static void strided_span(const tsd__tensor *t, uint64_t *lo, uint64_t *hi) {
  *lo = (uint64_t)t->offset;
  *hi = *lo + 1;
  for (size_t d = 0; d < t->ndim; d++)
    *hi += (uint64_t)(t->shape[d] - 1) * (uint64_t)t->stride[d];
}

size_t tsd__tensor_read_scratch(const tsd__tensor *t, tsd_dtype dtype,
                                bool one_thread) {
  if (t->numel <= 0 || t->storage->mem) return 0;
  const size_t isz = tsd_dtype_size(t->dtype);
  const uint64_t n = (uint64_t)t->numel;
  if (t->contiguous) {
    if (t->dtype == dtype) return 0;
    uint64_t per;
    bool split;
    piece_plan(t->dtype, dtype, n, &per, &split);
    return (size_t)(per * isz) * (split && !one_thread ? 2 : 1);
  }
  uint64_t lo, hi, cap = WINDOW / isz;
  strided_span(t, &lo, &hi);
  if (hi - lo < cap) cap = hi - lo;
  return (size_t)(cap * isz);
}

tsd_status tsd__tensor_read(const tsd_checkpoint *c, const tsd__tensor *t,
                            tsd_dtype dtype, void *dst,
                            const tsd__scratch *scratch) {
  if (!tsd__dtype_valid((int)dtype))
    return tsd__err(TSD_ERR_INVALID_ARG, "invalid dtype %d", (int)dtype);
  if (t->numel <= 0) return TSD_OK;
  const tsd__storage *s = t->storage;
  const size_t isz = tsd_dtype_size(t->dtype), osz = tsd_dtype_size(dtype);
  const uint64_t n = (uint64_t)t->numel;
  if (n > SIZE_MAX / 8)
    return tsd__err(TSD_ERR_LIMIT, "tensor too large for this platform");
  uint8_t *out = dst;

  if (t->contiguous) {
    uint64_t start = (uint64_t)t->offset * isz;
    return read_pieces(c, s, start, t->dtype, dtype, n, out, scratch);
  }

  /* Strided: visit the elements in the order of the storage (dimensions by
   * decreasing stride), so reads through the window move forward; write
   * each element to its C-order place in dst. */
  size_t nd = t->ndim, perm[TSD_MAX_NDIM];
  int64_t ostride[TSD_MAX_NDIM], idx[TSD_MAX_NDIM];
  int64_t acc = 1;
  for (size_t d = nd; d-- > 0;) {
    ostride[d] = acc;
    acc *= t->shape[d];
  }
  for (size_t d = 0; d < nd; d++)
    perm[d] = d;
  for (size_t a = 1; a < nd; a++) { /* stable insertion sort, stride desc */
    size_t x = perm[a], b = a;
    while (b > 0 && t->stride[perm[b - 1]] < t->stride[x]) {
      perm[b] = perm[b - 1];
      b--;
    }
    perm[b] = x;
  }
  uint64_t lo, hi; /* element range needed */
  strided_span(t, &lo, &hi);
  const uint8_t *win;
  uint8_t *buf = NULL, *own_buf = NULL;
  uint64_t win_lo = 0, win_n = 0; /* window, in elements */
  uint64_t cap = WINDOW / isz;
  if (s->mem) {
    win = s->mem;
    win_n = s->numel;
  } else {
    uint64_t span = hi - lo;
    if (span < cap) cap = span;
    if (scratch && scratch->len >= (size_t)cap * isz)
      buf = scratch->p;
    else if (!(buf = own_buf = tsd__mem_alloc(c->al, (size_t)cap * isz)))
      return tsd__err(TSD_ERR_NOMEM, "out of memory");
    win = buf;
  }
  memset(idx, 0, sizeof idx);
  tsd_status st = TSD_OK;
  for (uint64_t e = 0; e < n; e++) {
    int64_t src = t->offset, o = 0;
    for (size_t d = 0; d < nd; d++) {
      src += idx[d] * t->stride[d];
      o += idx[d] * ostride[d];
    }
    uint64_t si = (uint64_t)src;
    if (si < win_lo || si >= win_lo + win_n) {
      win_lo = si;
      win_n = hi - si < cap ? hi - si : cap;
      st = read_bytes(c, s, win_lo * isz, buf, (size_t)(win_n * isz));
      if (st != TSD_OK) break;
    }
    tsd__convert(out + (size_t)o * osz, dtype, win + (si - win_lo) * isz,
                 t->dtype, 1);
    for (size_t k = nd; k-- > 0;) { /* odometer over perm, last fastest */
      size_t d = perm[k];
      if (++idx[d] < t->shape[d]) break;
      idx[d] = 0;
    }
  }
  tsd__mem_free(c->al, own_buf);
  return st;
}

/* ---- opening ------------------------------------------------------------- */

static bool has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n > k && strcmp(s + n - k, suffix) == 0;
}

/* A zip: torch.save's, or a TorchScript archive read as its state dict
 * without running it (torchscript_state.c). */
static tsd_status read_zip(const tsd__source *src, tsd__arena *arena,
                           const tsd__limits *lim, tsd__parsed *out) {
  tsd_status st = tsd__read_zip(src, arena, lim, out);
  if (st == TSD_OK) st = tsd__torchscript_state(src, arena, lim, out);
  return st;
}

tsd_status tsd__read_file_format(const tsd__source *src, tsd__arena *arena,
                                 const tsd__limits *lim, tsd__parsed *out) {
  uint8_t head[9] = {0};
  size_t hn = src->size < 9 ? (size_t)src->size : 9;
  tsd_status st = tsd__source_read(src, 0, head, hn, "header");
  if (st != TSD_OK) return st;
  /* safetensors: an 8-byte length then '{'. A torch.save file never has
   * '{' there (zip: the method field; legacy: the magic number). */
  if ((hn == 9 && head[8] == '{') || has_suffix(src->name, ".safetensors"))
    return tsd__read_safetensors(src, arena, lim, out);
  if (hn >= 2 && head[0] == 'P' && head[1] == 'K')
    return read_zip(src, arena, lim, out);
  /* legacy: protocol 2's PROTO, or protocols 0-1's text LONG magic */
  if (hn >= 1 && (head[0] == 0x80 || head[0] == 'L'))
    return tsd__read_legacy(src, arena, lim, out);
  if (src->size >= 262) {
    /* a tar (legacy < 0.4) or a zip with a prefix: let the readers say */
    uint8_t t[5];
    st = tsd__source_read(src, 257, t, 5, "header");
    if (st == TSD_OK && memcmp(t, "ustar", 5) == 0)
      return tsd__read_legacy(src, arena, lim, out);
    if (st == TSD_OK) return read_zip(src, arena, lim, out);
    return st;
  }
  return tsd__err(TSD_ERR_FORMAT,
                  "%s: not a torch.save checkpoint (neither a zip archive "
                  "nor a legacy pickle; %llu bytes)",
                  src->name, (unsigned long long)src->size);
}

/* Makes `v` the current dict: a dict as it is, a pickled nn.Module as the
 * state dict rebuilt from it (objects.c), anything else: none. A module
 * whose state dict cannot be rebuilt gives an empty view whose status
 * carries the reason, for the load to report. */
static tsd_status set_current(tsd_checkpoint *c, tsd__value *v) {
  tsd__value *sd = NULL;
  tsd_status why = TSD_OK;
  char *msg = NULL;
  if (tsd__is_module(v)) {
    tsd__limits lim;
    tsd__limits_resolve(&lim, NULL);
    /* Entries and modules at most one per byte of the file: shared
     * submodules repeat under each path (as in PyTorch), so a small file
     * could otherwise ask for exponentially many. */
    if (c->src.size < lim.max_objects) lim.max_objects = c->src.size;
    why = tsd__module_state_dict(&c->arena, &lim, v, &sd);
    if (why != TSD_OK) {
      msg = tsd__mem_strdup(c->al, tsd_last_error());
      sd = tsd__arena_alloc(&c->arena, sizeof *sd);
      if (!sd || !msg) {
        tsd__mem_free(c->al, msg);
        return tsd__err(TSD_ERR_NOMEM, "out of memory");
      }
      sd->kind = TSD__V_DICT;
    }
    v = sd;
  }
  c->current = v && v->kind == TSD__V_DICT ? v : NULL;
  tsd_status st = view_build(c);
  if (st == TSD_OK && why != TSD_OK) view_fail(c, why, msg);
  tsd__mem_free(c->al, msg);
  return st;
}

static tsd_status open_source(tsd_checkpoint **out, tsd_checkpoint *c,
                              const tsd_open_options *options) {
  tsd__limits lim;
  tsd__limits_resolve(&lim, options);
  tsd_status st;
  /* A sharded checkpoint's index names its shards relative to its own
   * directory, so it is recognised by its path (never from memory). */
  if (c->src.fd >= 0 && has_suffix(c->src.name, ".json"))
    st = tsd__read_sharded(c, &lim);
  else
    st = tsd__read_file_format(&c->src, &c->arena, &lim, &c->parsed);
  if (st != TSD_OK) {
    /* every message names the file; readers name what inside it */
    const char *msg = tsd_last_error();
    size_t nl = strlen(c->src.name);
    if (strncmp(msg, c->src.name, nl) != 0 || msg[nl] != ':')
      tsd__err_prefix("%s", c->src.name);
    tsd_checkpoint_free(c);
    return st;
  }
  c->max_output_ratio = lim.max_output_ratio;
  st = set_current(c, c->parsed.root);
  if (st != TSD_OK) {
    tsd_checkpoint_free(c);
    return st;
  }
  *out = c;
  return TSD_OK;
}

/* Checks the options (version 1: limits; 2: and an allocator) and makes
 * an empty checkpoint with their allocator. */
static tsd_status ckpt_new(tsd_checkpoint **out,
                           const tsd_open_options *options) {
  *out = NULL;
  const tsd_allocator *al = NULL;
  if (options) {
    if (options->version < 1 || options->version > TSD_OPEN_OPTIONS_VERSION)
      return tsd__err(TSD_ERR_INVALID_ARG,
                      "tsd_open_options.version is %u, expected 1 to %d",
                      options->version, TSD_OPEN_OPTIONS_VERSION);
    if (options->version >= 2) al = options->allocator;
  }
  tsd_status st = tsd__allocator_check(al, "tsd_open_options.allocator");
  if (st != TSD_OK) return st;
  tsd_checkpoint *c = tsd__mem_calloc(al, 1, sizeof *c);
  if (!c) return tsd__err(TSD_ERR_NOMEM, "out of memory");
  if (al) {
    c->alloc = *al;
    c->al = &c->alloc;
  }
  c->src.fd = -1;
  tsd__arena_init(&c->arena, 0, c->al);
  tsd__strmap_init(&c->index, c->al);
  *out = c;
  return TSD_OK;
}

tsd_status tsd_checkpoint_open(tsd_checkpoint **out, const char *path,
                               const tsd_open_options *options) {
  if (!out) return tsd__err(TSD_ERR_INVALID_ARG, "out is NULL");
  *out = NULL;
  if (!path) return tsd__err(TSD_ERR_INVALID_ARG, "path is NULL");
  tsd_open_options copy;
  options = options_in(options, &copy);
  tsd_checkpoint *c;
  tsd_status st = ckpt_new(&c, options);
  if (st != TSD_OK) return st;
  st = tsd__source_open_file(&c->src, path, c->al);
  if (st != TSD_OK) {
    tsd_checkpoint_free(c);
    return st;
  }
  return open_source(out, c, options);
}

tsd_status tsd_checkpoint_open_memory(tsd_checkpoint **out, const void *data,
                                      size_t size,
                                      const tsd_open_options *options) {
  if (!out) return tsd__err(TSD_ERR_INVALID_ARG, "out is NULL");
  *out = NULL;
  tsd_open_options copy;
  options = options_in(options, &copy);
  tsd_checkpoint *c;
  tsd_status st = ckpt_new(&c, options);
  if (st != TSD_OK) return st;
  st = tsd__source_open_memory(&c->src, data, size, c->al);
  if (st != TSD_OK) {
    tsd_checkpoint_free(c);
    return st;
  }
  return open_source(out, c, options);
}

void tsd_checkpoint_free(tsd_checkpoint *c) {
  if (!c) return;
  view_clear(c);
  tsd__arena_free(&c->arena);
  tsd__source_close(&c->src);
  for (size_t i = 0; i < c->n_shards; i++)
    tsd__source_close(&c->shards[i]);
  tsd__mem_free(c->al, c->shards);
  /* c->al points into c: free c through a copy */
  tsd_allocator a = c->alloc;
  tsd__mem_free(c->al ? &a : NULL, c);
}

/* ---- the public view API --------------------------------------------------
 */

tsd_kind tsd_checkpoint_root_kind(const tsd_checkpoint *c) {
  return c ? tsd__public_kind(c->parsed.root) : TSD_KIND_NONE;
}

const char *tsd_checkpoint_root_class(const tsd_checkpoint *c) {
  return c ? tsd__object_class(c->parsed.root) : NULL;
}

size_t tsd_checkpoint_count(const tsd_checkpoint *c) {
  return tsd__ckpt_count(c);
}

static void fill_entry(tsd_entry *e, const tsd__value *v) {
  e->kind = tsd__public_kind(v);
  e->type_repr = tsd__type_repr(v);
  switch (v->kind) {
  case TSD__V_TENSOR: {
    const tsd__tensor *t = v->u.tensor;
    e->dtype = t->dtype;
    e->ndim = t->ndim;
    e->shape = t->shape;
    e->numel = t->numel;
    e->is_parameter = t->is_parameter;
    e->contiguous = t->contiguous;
    break;
  }
  case TSD__V_BOOL:
  case TSD__V_INT:
    e->int_value = v->u.i;
    break;
  case TSD__V_FLOAT:
    e->float_value = v->u.f;
    break;
  case TSD__V_XTENSOR: /* "torch.qint8 per_tensor_affine" */
    e->ndim = v->u.xtensor->ndim;
    e->shape = v->u.xtensor->shape;
    e->dtype = v->u.xtensor->dtype;
    e->is_parameter = v->u.xtensor->is_parameter;
    e->str_value = v->u.xtensor->desc;
    e->str_len = strlen(e->str_value);
    break;
  case TSD__V_STR:
  case TSD__V_BYTES:
  case TSD__V_BIGINT: /* its little-endian two's complement bytes */
  case TSD__V_DTYPE:  /* "torch.float16" */
  case TSD__V_DEVICE: /* "cuda:1" */
    e->str_value = v->u.s.p;
    e->str_len = v->u.s.len;
    break;
  case TSD__V_DICT:
    e->length = v->u.dict.len;
    break;
  case TSD__V_LIST:
  case TSD__V_TUPLE:
  case TSD__V_SET:
    e->length = v->u.seq.len;
    break;
  default:
    break;
  }
}

tsd_status tsd_checkpoint_entry(const tsd_checkpoint *c, size_t index,
                                tsd_entry *out) {
  if (!c || !out) return tsd__err(TSD_ERR_INVALID_ARG, "NULL argument");
  memset(out, 0, sizeof *out);
  if (index >= c->n_live)
    return tsd__err(TSD_ERR_NOT_FOUND,
                    "entry %zu does not exist (the dict has %zu)", index,
                    c->n_live);
  const tsd__value *k = tsd__ckpt_key(c, index);
  if (k->kind != TSD__V_STR)
    return tsd__err(TSD_ERR_TYPE,
                    "%s: entry %zu's key is a %s, not a str (a state dict's "
                    "keys are strings)",
                    c->src.name, index, tsd__type_repr(k));
  out->key = k->u.s.p;
  out->key_len = k->u.s.len;
  fill_entry(out, tsd__ckpt_val(c, index));
  return TSD_OK;
}

tsd_status tsd_checkpoint_find(const tsd_checkpoint *c, size_t *out_index,
                               const char *key) {
  if (!c || !out_index || !key)
    return tsd__err(TSD_ERR_INVALID_ARG, "NULL argument");
  if (c->view_status != TSD_OK)
    return tsd__err(c->view_status, "%s",
                    c->view_error ? c->view_error : "bad checkpoint dict");
  if (!tsd__ckpt_lookup(c, key, strlen(key), out_index))
    return tsd__err(TSD_ERR_NOT_FOUND, "%s: no key '%s' in the current dict",
                    c->src.name, key);
  return TSD_OK;
}

tsd_status tsd_checkpoint_select(tsd_checkpoint *c, const char *key) {
  size_t i;
  tsd_status st = tsd_checkpoint_find(c, &i, key);
  if (st != TSD_OK) return st;
  tsd__value *v = c->current->u.dict.vals[c->live[i]];
  if (v->kind != TSD__V_DICT && !tsd__is_module(v))
    return tsd__err(TSD_ERR_TYPE, "%s: '%s' is a %s, not a dict", c->src.name,
                    key, tsd__type_repr(v));
  return set_current(c, v);
}

void tsd_checkpoint_select_root(tsd_checkpoint *c) {
  if (!c) return;
  (void)set_current(c, c->parsed.root); /* OOM: kept as the view's status */
}

tsd_status tsd_checkpoint_pop(tsd_checkpoint *c, const char *key) {
  size_t i;
  tsd_status st = tsd_checkpoint_find(c, &i, key);
  if (st != TSD_OK) return st;
  tsd__strmap_remove(&c->index, key, strlen(key), dict_key, c);
  memmove(c->live + i, c->live + i + 1, (c->n_live - i - 1) * sizeof *c->live);
  c->n_live--;
  return TSD_OK;
}

tsd_status tsd_checkpoint_read(const tsd_checkpoint *c, size_t index,
                               tsd_dtype dtype, void *dst, size_t dst_bytes) {
  if (!c) return tsd__err(TSD_ERR_INVALID_ARG, "checkpoint is NULL");
  if (!tsd__dtype_valid((int)dtype))
    return tsd__err(TSD_ERR_INVALID_ARG, "invalid dtype %d", (int)dtype);
  if (index >= c->n_live)
    return tsd__err(TSD_ERR_NOT_FOUND,
                    "entry %zu does not exist (the dict has %zu)", index,
                    c->n_live);
  const tsd__value *v = tsd__ckpt_val(c, index);
  if (v->kind != TSD__V_TENSOR)
    return tsd__err(TSD_ERR_TYPE, "entry %zu is a %s, not a tensor", index,
                    tsd__type_repr(v));
  const tsd__tensor *t = v->u.tensor;
  uint64_t need;
  if (!tsd__mul_u64((uint64_t)t->numel, tsd_dtype_size(dtype), &need) ||
      need > dst_bytes)
    return tsd__err(TSD_ERR_BUFFER,
                    "the buffer has %zu bytes; the tensor needs %llu",
                    dst_bytes, (unsigned long long)need);
  if (!dst && need) return tsd__err(TSD_ERR_INVALID_ARG, "dst is NULL");
  return tsd__tensor_read(c, t, dtype, dst, NULL);
}

const char *tsd_checkpoint_entry_class(const tsd_checkpoint *c,
                                       size_t index) {
  if (!c || index >= c->n_live) return NULL;
  return tsd__object_class(tsd__ckpt_val(c, index));
}

int64_t tsd_checkpoint_module_version(const tsd_checkpoint *c,
                                      const char *prefix) {
  return tsd__metadata_version(tsd__ckpt_metadata(c), prefix);
}

size_t tsd_checkpoint_metadata_count(const tsd_checkpoint *c) {
  const tsd__value *m = tsd__ckpt_metadata(c);
  return m ? m->u.dict.len : 0;
}

const char *tsd_checkpoint_metadata_prefix(const tsd_checkpoint *c,
                                           size_t index) {
  const tsd__value *m = tsd__ckpt_metadata(c);
  if (!m || index >= m->u.dict.len) return NULL;
  const tsd__value *k = m->u.dict.keys[index];
  return k->kind == TSD__V_STR ? k->u.s.p : NULL;
}
