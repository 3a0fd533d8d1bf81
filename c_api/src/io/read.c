/* read.c — the tensor-read engine: a tensor view (tsd__tensor) of a
 * storage in a source read as C-contiguous elements of any dtype: storage
 * offsets, strides, byte order, dtype conversion, two threads for large
 * reads, windows for the writers. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "tsd_io.h"
#include "platform.h"

/* Where a read's bytes come from (storages without a source of their own)
 * and whose allocator its staging buffers use. */
typedef struct reader {
  const tsd__source *src;
  const tsd_allocator *al;
} reader;

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

static tsd_status read_bytes(const reader *c, const tsd__storage *s,
                             uint64_t off, void *dst, size_t n) {
  if (s->mem) {
    memcpy(dst, s->mem + off, n);
    return TSD_OK;
  }
  char what[256];
  snprintf(what, sizeof what, "storage '%s'", s->key);
  tsd_status st = tsd__source_read(s->src ? s->src : c->src, s->offset + off,
                                   dst, n, what);
  if (st == TSD_OK && s->swap > 1) byteswap(dst, n, s->swap);
  return st;
}

/* A contiguous read of n elements at byte `start` of storage s into dst,
 * `from` -> `to`, cut into pieces of `per` elements. Two threads share the
 * pieces, each taking the next one from the front (a ticket from
 * `claimed`), so neither waits for the other's share: when the worker is
 * slow to start or is preempted on a busy machine, the caller simply does
 * more pieces. Front to back on both threads keeps the file's reads in
 * order, which the kernel's read-ahead needs when the file is not in the
 * page cache: reading the front and the back of a tensor at once made cold
 * loads of vit_b_16 2-3x slower than `cat` (issue 15, bench/notes.md). */
typedef struct piece_job {
  const reader *c;
  const tsd__storage *s;
  uint64_t start;
  uint8_t *dst;
  tsd_dtype from, to;
  uint64_t n, per, pieces;
  atomic_uint_least64_t claimed; /* next piece to read, both threads */
  atomic_bool stop;              /* a thread failed: the other quits */
} piece_job;

/* The worker's staging buffer and outcome. tsd__err is per thread, so its
 * message is carried back here and raised again on the calling thread. */
typedef struct piece_worker {
  piece_job *job;
  uint64_t failed_at; /* the piece that failed */
  uint8_t *tmp; /* allocated and freed by the caller: a caller's allocator
                 * is only ever called from the caller's thread */
  tsd_status st;
  char msg[1024];
} piece_worker;

/* The next piece, front to back, or false when none is left (or the other
 * thread failed). */
static bool claim(piece_job *j, uint64_t *i) {
  if (atomic_load_explicit(&j->stop, memory_order_relaxed)) return false;
  *i = atomic_fetch_add_explicit(&j->claimed, 1, memory_order_relaxed);
  return *i < j->pieces;
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
  uint64_t i;
  while (w->st == TSD_OK && claim(j, &i)) {
    w->st = do_piece(j, i, w->tmp);
    if (w->st != TSD_OK) {
      w->failed_at = i;
      atomic_store_explicit(&j->stop, true, memory_order_relaxed);
    }
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

static tsd_status read_pieces(const reader *c, const tsd__storage *s,
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
  /* Two threads only when the tensor's last piece is in the page cache. Not
   * in it (a cold file), the reads wait for the disk, the second thread
   * adds nothing a disk can use, and two streams of preads interleaved on
   * one descriptor confuse the kernel's read-ahead (its state is per open
   * file): a cold vit_b_16 copy took 0.37-0.49 s with two threads against
   * 0.31-0.42 s with one and 0.23-0.29 s for `cat` (issue 15,
   * bench/notes.md). */
  if (split && !s->mem) {
    const tsd__source *from_src = s->src ? s->src : c->src;
    uint64_t last = s->offset + start + bytes - 1;
    if (!tsd__source_cached(from_src, last)) split = false;
  }
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
  tsd__thread th;
  bool threaded = false;
  if (split && needs_staging(&j)) {
    if (scratch && tmp == scratch->p && scratch->len >= 2 * one)
      w.tmp = scratch->p + one;
    else if (!scratch) /* a load passes scratch: it never allocates here */
      w.tmp = own_wtmp = staging(&j);
  }
  if (split && (!needs_staging(&j) || w.tmp)) {
    /* The worker blocks every signal (tsd__thread_start), so a host's
     * handlers keep running on the host's own threads. Without a thread (or
     * its buffer) the caller does it all. */
    threaded = tsd__thread_start(&th, piece_worker_main, &w);
  }
  tsd_status st = TSD_OK;
  uint64_t i, failed_at = UINT64_MAX;
  while (claim(&j, &i)) {
    st = do_piece(&j, i, tmp);
    if (st != TSD_OK) {
      failed_at = i;
      atomic_store_explicit(&j.stop, true, memory_order_relaxed);
      break;
    }
  }
  if (threaded) tsd__thread_join(&th);
  tsd__mem_free(c->al, own_wtmp);
  tsd__mem_free(c->al, own_tmp);
  /* Every piece before the last one claimed was read to its end, so the
   * failure of the lowest piece is the one a one-thread read would
   * report. */
  if (threaded && w.st != TSD_OK && w.failed_at < failed_at)
    return tsd__err(w.st, "%s", w.msg);
  return st;
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

static tsd_status tensor_read(const reader *c, const tsd__tensor *t,
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
/* ---- windows of a tensor -------------------------------------------------- */

static tsd_status read_range(const reader *c, const tsd__tensor *t,
                             tsd_dtype dtype, uint64_t first, uint64_t count,
                             void *dst) {
  const size_t nd = t->ndim, osz = tsd_dtype_size(dtype);
  if (nd == 0) /* a scalar: its one element */
    return count ? tensor_read(c, t, dtype, dst, NULL) : TSD_OK;
  /* inner[d]: elements of one step of dimension d (product of the later
   * dimensions' sizes) */
  uint64_t inner[TSD_MAX_NDIM];
  inner[nd - 1] = 1;
  for (size_t d = nd - 1; d-- > 0;)
    inner[d] = inner[d + 1] * (uint64_t)t->shape[d + 1];
  uint8_t *out = dst;
  while (count) {
    /* The largest block at `first` that is one strided sub-view: dims
     * before k fixed, a run of dim k, the later dims whole. k = nd - 1
     * always fits, so a window is at most 2 * nd sub-views. */
    uint64_t idx[TSD_MAX_NDIM], rest = first;
    for (size_t d = 0; d < nd; d++) {
      idx[d] = rest / inner[d];
      rest %= inner[d];
    }
    size_t k = 0;
    while (k < nd - 1 && (first % inner[k] != 0 || inner[k] > count))
      k++;
    uint64_t run = count / inner[k];
    if (run > (uint64_t)t->shape[k] - idx[k])
      run = (uint64_t)t->shape[k] - idx[k];
    tsd__tensor sub = *t;
    int64_t shape[TSD_MAX_NDIM];
    sub.ndim = nd - k;
    sub.shape = shape;
    sub.stride = t->stride + k;
    shape[0] = (int64_t)run;
    for (size_t d = k + 1; d < nd; d++)
      shape[d - k] = t->shape[d];
    sub.offset = t->offset;
    for (size_t d = 0; d <= k; d++)
      sub.offset += (int64_t)idx[d] * t->stride[d];
    sub.numel = (int64_t)(run * inner[k]);
    /* a run of leading indices of a C-contiguous tensor is C-contiguous */
    tsd_status st = tensor_read(c, &sub, dtype, out, NULL);
    if (st) return st;
    out += (size_t)sub.numel * osz;
    first += (uint64_t)sub.numel;
    count -= (uint64_t)sub.numel;
  }
  return TSD_OK;
}


tsd_status tsd__io_tensor_read(const tsd__source *src, const tsd_allocator *al,
                               const tsd__tensor *t, tsd_dtype dtype,
                               void *dst, const tsd__scratch *scratch) {
  const reader c = {src, al};
  return tensor_read(&c, t, dtype, dst, scratch);
}

tsd_status tsd__io_tensor_read_range(const tsd__source *src,
                                     const tsd_allocator *al,
                                     const tsd__tensor *t, tsd_dtype dtype,
                                     uint64_t first, uint64_t count,
                                     void *dst) {
  const reader c = {src, al};
  return read_range(&c, t, dtype, first, count, dst);
}
