/*
 * bench_views.c — the C side of the issue-15 benchmark (bench/views.py
 * drives it): time-to-ready of a checkpoint by each way tsd offers, warm or
 * cold, beside the read bounds.
 *
 *   bench_views MODE REPS CHECKPOINT [cold]
 *
 *   cat     read() the file front to back in 128 KiB pieces into one small
 *           buffer (what `cat FILE > /dev/null` does): the cold bound
 *   pread   pread the whole file into one preallocated, pre-faulted buffer:
 *           the warm read bound (bench_tsd's (a))
 *   copy    tsd_checkpoint_open + tsd_load (TSD_LOAD_COPY) into a C-owned
 *           model whose memory is allocated and pre-faulted before timing
 *   bind    tsd_checkpoint_open(TSD_OPEN_MAP) + tsd_load(TSD_LOAD_BIND)
 *           into a C-owned model of unbacked tensors (no host memory)
 *   bind-upload  bind, then memcpy every bound tensor into the simulated
 *           device below: a CPU-side upload (glBufferSubData, a memcpy
 *           into a mapped Vulkan buffer) that takes any pointer needs no
 *           staging copy
 *   device  tsd_checkpoint_open + tsd_load(TSD_LOAD_DEVICE) into a
 *           simulated device: one pre-faulted buffer per tensor, each chunk
 *           memcpy'd from a staging buffer (16 MiB: three parts of 5.3 MiB;
 *           tsd reads chunk k + 1 while the callback copies chunk k) by
 *           the callback itself
 *   device-null  the same into a device whose copies cost the host
 *           nothing (a GPU's DMA engine): tsd's own cost of the device path
 *   device-async  the same, the memcpy done by a "DMA" thread as a GPU's
 *           copy engine would (the callback starts chunk k and waits for
 *           chunk k - 1: samples/cuda/device_copy.c's protocol); timed
 *           until the last chunk has landed
 *
 * The model is the checkpoint's own tensor entries (names, dtypes, shapes):
 * what a C program that knows its network builds. Its building is not
 * timed. After the repetitions a few tensors are compared with
 * tsd_checkpoint_read, so a load that delivered nothing cannot pass.
 *
 * cold: before each repetition the file's pages are dropped from the page
 * cache with posix_fadvise(POSIX_FADV_DONTNEED) (no privileges needed; the
 * file is clean), and mincore() measures how much of it stayed resident
 * ("resident_after_evict", the largest fraction over the repetitions).
 *
 * Memory: "extra_kib" is the rise of VmHWM over the RSS at the start of each
 * repetition (VmHWM reset through /proc/self/clear_refs). For bind,
 * "rss_bound_kib" is the RSS rise right after binding (nothing touched) and
 * "rss_touched_kib" after reading one byte of every page of the first
 * `touch_bytes` of tensors: resident memory grows only with what is read.
 *
 * The environment variable BENCH_THREADS=N sets tsd_load_options.threads;
 * BENCH_STAGING_KIB=N the device modes' staging buffer (default 16384).
 *
 * Prints one JSON object on stdout. Exit status 0, or 1 with a message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tsd.h"

#define BENCH_NAME "bench_views"
#include "bench_util.h"

#define MAX_REPS 64
#define STAGING_KIB_DEFAULT 16384

static void fail(const char *what) {
  fprintf(stderr, "bench_views: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* ---- the page cache ------------------------------------------------------ */

static double resident_fraction(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) fail(path);
  size_t size = (size_t)st.st_size, page = (size_t)sysconf(_SC_PAGESIZE);
  if (!size) {
    close(fd);
    return 0;
  }
  void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) fail("mmap");
  size_t pages = (size + page - 1) / page, in = 0;
  unsigned char *vec = malloc(pages);
  if (!vec || mincore(p, size, vec) != 0) fail("mincore");
  for (size_t i = 0; i < pages; i++)
    in += vec[i] & 1;
  free(vec);
  munmap(p, size);
  close(fd);
  return (double)in / (double)pages;
}

static void evict(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path);
  int e = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  if (e) {
    errno = e;
    fail("posix_fadvise");
  }
  close(fd);
}

/* ---- the model ----------------------------------------------------------- */

typedef struct {
  tsd_model *model;
  uint8_t *arena; /* copy: the model's memory; device: the device's */
  uint64_t *dev_off; /* device: where tensor i lives in the arena */
  size_t n;
} bench_model;

static void build_model(bench_model *bm, const char *path, int backed,
                        int device) {
  tsd_checkpoint *spec;
  tsd_status st = tsd_checkpoint_open(&spec, path, NULL);
  if (st != TSD_OK) die(path, st);
  size_t n = tsd_checkpoint_count(spec), total = 0;
  for (size_t i = 0; i < n; i++) {
    tsd_entry e;
    if ((st = tsd_checkpoint_entry(&e, spec, i)) != TSD_OK) die("entry", st);
    if (e.kind == TSD_KIND_TENSOR)
      total += align64((size_t)e.numel * tsd_dtype_size(e.dtype));
  }
  bm->arena = NULL;
  if ((backed || device) &&
      posix_memalign((void **)&bm->arena, 64, total ? total : 64))
    fail("posix_memalign");
  if (bm->arena) memset(bm->arena, 0xff, total); /* pre-faulted, NaN bytes */
  if ((st = tsd_model_new(&bm->model, "Model")) != TSD_OK) die("model", st);
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    tsd_entry e;
    if ((st = tsd_checkpoint_entry(&e, spec, i)) != TSD_OK) die("entry", st);
    if (e.kind != TSD_KIND_TENSOR) continue;
    tsd_tensor_role role = e.is_parameter ? TSD_PARAMETER : TSD_BUFFER;
    if (backed)
      st = tsd_model_add_tensor(bm->model, e.key, role, e.dtype, e.ndim,
                                e.shape, bm->arena + off);
    else
      st = tsd_model_add_tensor_unbacked(bm->model, e.key, role, e.dtype,
                                         e.ndim, e.shape);
    if (st != TSD_OK) die(e.key, st);
    off += align64((size_t)e.numel * tsd_dtype_size(e.dtype));
  }
  tsd_checkpoint_free(spec);
  bm->n = tsd_model_tensor_count(bm->model);
  bm->dev_off = calloc(bm->n ? bm->n : 1, sizeof *bm->dev_off);
  if (!bm->dev_off) fail("calloc");
  off = 0;
  for (size_t i = 0; i < bm->n; i++) { /* state_dict order */
    tsd_tensor_info info;
    if ((st = tsd_model_tensor(&info, bm->model, i)) != TSD_OK)
      die("tensor", st);
    bm->dev_off[i] = off;
    off += align64((size_t)info.numel * tsd_dtype_size(info.dtype));
  }
}

/* The simulated device: a chunk lands at its tensor's place. */
static int device_copy(void *user, const tsd_device_chunk *ch) {
  bench_model *bm = user;
  memcpy(bm->arena + bm->dev_off[ch->tensor] + ch->offset, ch->data, ch->len);
  return 0;
}

/* A device whose copies cost the host nothing (device-null), as a GPU's
 * DMA engine reading pinned staging: what remains is tsd's own cost of the
 * device path (the reads into staging, the chunking, the reading thread).
 * It counts the bytes and reads the first and last byte of each chunk; an
 * untimed load through device_copy afterwards is what `check` compares. */
static uint64_t null_bytes;
static volatile uint8_t null_sink;
static int device_null(void *user, const tsd_device_chunk *ch) {
  (void)user;
  const uint8_t *p = ch->data;
  null_bytes += ch->len;
  null_sink = (uint8_t)(null_sink ^ p[0] ^ p[ch->len - 1]);
  return 0;
}

/* The simulated device with a copy engine of its own (device-async): a
 * "DMA" thread does the memcpy, as cudaMemcpyAsync from pinned memory
 * would, and the callback follows samples/cuda/device_copy.c: start chunk
 * k, wait for chunk k - 1, return. */
typedef struct dma {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct { uint8_t *dst; const void *src; size_t len; } ring[2];
  uint64_t posted, completed;
  int quit;
  bench_model *bm;
} dma;

static void *dma_main(void *arg) {
  dma *d = arg;
  pthread_mutex_lock(&d->mu);
  for (;;) {
    while (d->completed == d->posted && !d->quit)
      pthread_cond_wait(&d->cv, &d->mu);
    if (d->completed == d->posted) break;
    uint64_t k = d->completed;
    pthread_mutex_unlock(&d->mu);
    memcpy(d->ring[k % 2].dst, d->ring[k % 2].src, d->ring[k % 2].len);
    pthread_mutex_lock(&d->mu);
    d->completed = k + 1;
    pthread_cond_broadcast(&d->cv);
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

static int device_copy_async(void *user, const tsd_device_chunk *ch) {
  dma *d = user;
  pthread_mutex_lock(&d->mu);
  uint64_t k = d->posted;
  d->ring[k % 2].dst = d->bm->arena + d->bm->dev_off[ch->tensor] + ch->offset;
  d->ring[k % 2].src = ch->data;
  d->ring[k % 2].len = ch->len;
  d->posted = k + 1;
  pthread_cond_broadcast(&d->cv);
  while (d->completed < k) /* chunk k - 1 done: its part may be refilled */
    pthread_cond_wait(&d->cv, &d->mu);
  pthread_mutex_unlock(&d->mu);
  return 0;
}

static void dma_drain(dma *d) {
  pthread_mutex_lock(&d->mu);
  while (d->completed < d->posted) pthread_cond_wait(&d->cv, &d->mu);
  pthread_mutex_unlock(&d->mu);
}

/* First, middle, last and every 37th tensor against tsd_checkpoint_read. */
static void check(const bench_model *bm, const char *path, int device) {
  tsd_checkpoint *ck;
  tsd_status st = tsd_checkpoint_open(&ck, path, NULL);
  if (st != TSD_OK) die(path, st);
  size_t n = bm->n, checked = 0;
  for (size_t i = 0; i < n; i++) {
    if (!(i == 0 || i == n / 2 || i + 1 == n || i % 37 == 0)) continue;
    tsd_tensor_info info;
    if ((st = tsd_model_tensor(&info, bm->model, i)) != TSD_OK)
      die("tensor", st);
    size_t idx;
    if (tsd_checkpoint_find(&idx, ck, info.name) != TSD_OK) continue;
    size_t bytes = (size_t)info.numel * tsd_dtype_size(info.dtype);
    uint8_t *want = malloc(bytes ? bytes : 1), *got = malloc(bytes ? bytes : 1);
    if (!want || !got) fail("malloc");
    if ((st = tsd_checkpoint_read(want, bytes, ck, idx, info.dtype)))
      die(info.name, st);
    if (device)
      memcpy(got, bm->arena + bm->dev_off[i], bytes);
    else if ((st = tsd_model_read(got, bytes, bm->model, i, info.dtype)))
      die(info.name, st);
    if (memcmp(want, got, bytes) != 0) {
      fprintf(stderr, "bench_views: %s: loaded values differ\n", info.name);
      exit(1);
    }
    free(want);
    free(got);
    checked++;
  }
  tsd_checkpoint_free(ck);
  if (!checked) {
    fprintf(stderr, "bench_views: nothing checked\n");
    exit(1);
  }
}

/* ---- the read bounds ------------------------------------------------------ */

static double read_file(const char *path, int whole, uint8_t *buf) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) fail(path);
  uint64_t size = (uint64_t)st.st_size, done = 0;
  double t0 = now();
  while (done < size) {
    size_t want = whole ? (size_t)(size - done) : (size_t)128 << 10;
    if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
    ssize_t r = whole ? pread(fd, buf + done, want, (off_t)done)
                      : read(fd, buf, want);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(path);
    if (r == 0) break;
    done += (uint64_t)r;
  }
  double t = now() - t0;
  close(fd);
  return t;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr,
            "usage: bench_views cat|pread|copy|bind|bind-upload|device|"
            "device-async|device-null "
            "REPS CKPT "
            "[cold]\n");
    return 2;
  }
  const char *mode = argv[1], *path = argv[3];
  int reps = atoi(argv[2]);
  int cold = argc > 4 && !strcmp(argv[4], "cold");
  if (reps < 1 || reps > MAX_REPS) return 2;
  const char *skib = getenv("BENCH_STAGING_KIB");
  size_t staging_bytes = (size_t)(skib ? atol(skib) : STAGING_KIB_DEFAULT) << 10;
  if (staging_bytes < 64) return 2;
  double t[MAX_REPS], t_open[MAX_REPS];
  long extra[MAX_REPS];
  double resident = 0;
  struct stat sb;
  if (stat(path, &sb) != 0) fail(path);

  if (!strcmp(mode, "cat") || !strcmp(mode, "pread")) {
    int whole = !strcmp(mode, "pread");
    size_t n = whole ? (size_t)sb.st_size : (size_t)128 << 10;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) fail("malloc");
    memset(buf, 0xa5, n);
    for (int r = 0; r < reps; r++) {
      if (cold) {
        evict(path);
        double f = resident_fraction(path);
        if (f > resident) resident = f;
      }
      long base = status_kib("VmRSS");
      reset_hwm();
      t[r] = read_file(path, whole, buf);
      t_open[r] = 0;
      extra[r] = status_kib("VmHWM") - base;
    }
    free(buf);
    printf("{\"mode\": \"%s\", \"cold\": %s, \"bytes\": %lld, "
           "\"resident_after_evict\": %.4f, ",
           mode, cold ? "true" : "false", (long long)sb.st_size, resident);
    print_list("times", t, reps);
    printf(", \"extra_kib\": [");
    for (int r = 0; r < reps; r++)
      printf("%s%ld", r ? ", " : "", extra[r]);
    printf("]}\n");
    return 0;
  }

  int upload = !strcmp(mode, "bind-upload");
  int bind = !strcmp(mode, "bind") || upload;
  int async = !strcmp(mode, "device-async");
  int null_dev = !strcmp(mode, "device-null");
  int device = !strcmp(mode, "device") || async || null_dev;
  if (!bind && !device && strcmp(mode, "copy")) {
    fprintf(stderr, "bench_views: unknown mode %s\n", mode);
    return 2;
  }
  bench_model bm;
  build_model(&bm, path, !bind && !device, device || upload);
  uint8_t *staging = NULL;
  if (device) {
    if (posix_memalign((void **)&staging, 4096, staging_bytes))
      fail("staging");
    memset(staging, 0, staging_bytes);
  }
  dma d;
  pthread_t dma_thread;
  memset(&d, 0, sizeof d);
  d.bm = &bm;
  if (async) {
    pthread_mutex_init(&d.mu, NULL);
    pthread_cond_init(&d.cv, NULL);
    if (pthread_create(&dma_thread, NULL, dma_main, &d)) fail("pthread");
  }
  malloc_trim(0);
  long rss_bound = -1, rss_touched = -1;
  uint64_t touch_bytes = 0;
  size_t n_bound = 0, n_copied = 0;
  tsd_checkpoint *keep = NULL; /* bind: the last checkpoint stays open */
  for (int r = 0; r < reps; r++) {
    if (cold) {
      evict(path);
      double f = resident_fraction(path);
      if (f > resident) resident = f;
    }
    long base = status_kib("VmRSS");
    reset_hwm();
    double t0 = now();
    tsd_open_options oo = TSD_OPEN_OPTIONS_INIT;
    oo.flags = bind ? TSD_OPEN_MAP : 0;
    tsd_checkpoint *ck;
    tsd_status st = tsd_checkpoint_open(&ck, path, &oo);
    if (st != TSD_OK) die(path, st);
    double t1 = now();
    tsd_load_options lo = TSD_LOAD_OPTIONS_INIT;
    if (getenv("BENCH_THREADS")) lo.threads = atoi(getenv("BENCH_THREADS"));
    lo.mode = bind ? TSD_LOAD_BIND : device ? TSD_LOAD_DEVICE : TSD_LOAD_COPY;
    lo.device_copy = async      ? device_copy_async
                     : null_dev ? device_null
                                : device_copy;
    lo.device_user = async ? (void *)&d : (void *)&bm;
    lo.staging = staging;
    lo.staging_bytes = staging_bytes;
    tsd_report *rep = NULL;
    st = tsd_load(&rep, bm.model, ck, &lo);
    if (async) dma_drain(&d); /* ready = on the device */
    for (size_t i = 0; upload && st == TSD_OK && i < bm.n; i++) {
      /* a CPU-side upload from the bound pointers (no staging copy) */
      tsd_tensor_info info;
      if (tsd_model_tensor(&info, bm.model, i) != TSD_OK) fail("tensor");
      memcpy(bm.arena + bm.dev_off[i], info.data,
             (size_t)info.numel * tsd_dtype_size(info.dtype));
    }
    double t2 = now();
    if (st != TSD_OK) {
      fprintf(stderr, "bench_views: load: %s: %s\n", tsd_status_name(st),
              tsd_last_error());
      return 1;
    }
    n_bound = tsd_report_count(rep, TSD_LIST_BOUND);
    n_copied = tsd_report_count(rep, TSD_LIST_COPIED);
    tsd_report_free(rep);
    extra[r] = status_kib("VmHWM") - base;
    if (bind && !upload && r + 1 == reps) {
      /* RSS now, and after touching the first quarter of the tensors */
      rss_bound = status_kib("VmRSS") - base;
      volatile uint8_t sink = 0;
      size_t n4 = (bm.n + 3) / 4;
      for (size_t i = 0; i < n4; i++) {
        tsd_tensor_info info;
        tsd_model_tensor(&info, bm.model, i);
        size_t bytes = (size_t)info.numel * tsd_dtype_size(info.dtype);
        for (size_t b = 0; b < bytes; b += 4096)
          sink ^= ((const uint8_t *)info.data)[b];
        touch_bytes += bytes;
      }
      (void)sink;
      rss_touched = status_kib("VmRSS") - base;
      keep = ck;
      t_open[r] = t1 - t0;
      t[r] = t2 - t0;
      break;
    }
    /* bind: the model now borrows from ck; freeing it is safe here only
     * because nothing reads the model before the next repetition binds
     * every tensor again (the last repetition keeps its checkpoint) */
    tsd_checkpoint_free(ck);
    t_open[r] = t1 - t0;
    t[r] = t2 - t0;
  }
  if (async) {
    pthread_mutex_lock(&d.mu);
    d.quit = 1;
    pthread_cond_broadcast(&d.cv);
    pthread_mutex_unlock(&d.mu);
    pthread_join(dma_thread, NULL);
  }
  if (null_dev) {
    /* every byte was handed over once per repetition; then one load that
     * lands them, for `check` */
    uint64_t want = 0;
    for (size_t i = 0; i < bm.n; i++) {
      tsd_tensor_info info;
      if (tsd_model_tensor(&info, bm.model, i) != TSD_OK) fail("tensor");
      want += (uint64_t)info.numel * tsd_dtype_size(info.dtype);
    }
    if (null_bytes != want * (uint64_t)reps) {
      fprintf(stderr, "bench_views: device-null got %" PRIu64
                      " bytes, expected %" PRIu64 "\n",
              null_bytes, want * (uint64_t)reps);
      return 1;
    }
    tsd_checkpoint *ck;
    tsd_status st = tsd_checkpoint_open(&ck, path, NULL);
    if (st != TSD_OK) die(path, st);
    tsd_load_options lo = TSD_LOAD_OPTIONS_INIT;
    lo.mode = TSD_LOAD_DEVICE;
    lo.device_copy = device_copy;
    lo.device_user = &bm;
    lo.staging = staging;
    lo.staging_bytes = staging_bytes;
    tsd_report *rep = NULL;
    if ((st = tsd_load(&rep, bm.model, ck, &lo)) != TSD_OK) die("load", st);
    tsd_report_free(rep);
    tsd_checkpoint_free(ck);
  }
  if (bind) {
    /* values through the bound pointers (or on the device), then release */
    check(&bm, path, upload);
    tsd_model_free(bm.model);
    tsd_checkpoint_free(keep);
  } else {
    check(&bm, path, device);
    tsd_model_free(bm.model);
  }
  printf("{\"mode\": \"%s\", \"cold\": %s, \"bytes\": %lld, \"tensors\": %zu, "
         "\"bound\": %zu, \"copied\": %zu, \"resident_after_evict\": %.4f, "
         "\"rss_bound_kib\": %ld, \"rss_touched_kib\": %ld, "
         "\"touch_bytes\": %" PRIu64 ", \"staging_kib\": %zu, ",
         mode, cold ? "true" : "false", (long long)sb.st_size, bm.n, n_bound,
         n_copied, resident, rss_bound, rss_touched, touch_bytes,
         device ? staging_bytes >> 10 : (size_t)0);
  print_list("times", t, reps);
  printf(", ");
  print_list("times_open", t_open, reps);
  printf(", \"extra_kib\": [");
  for (int r = 0; r < reps; r++)
    printf("%s%ld", r ? ", " : "", extra[r]);
  printf("]}\n");
  free(staging);
  free(bm.arena);
  free(bm.dev_off);
  return 0;
}
