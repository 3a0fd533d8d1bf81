/* engine_threads.c — how a game or robot runtime embeds tsd.
 *
 *   engine_threads CHECKPOINT [THREADS]
 *
 * The host owns memory and threads:
 *  - every allocation tsd makes for a checkpoint or a model goes through the
 *    host's allocator (here a fixed-budget arena per worker: a host that
 *    must never call malloc while a level loads gives tsd a budget);
 *  - tsd_load_options.threads = 1: tsd starts no thread of its own;
 *  - several models load at once, one per host thread, each with its own
 *    checkpoint handle (handles are not shared; nothing global is).
 * Each worker checks every loaded byte against tsd_checkpoint_read and
 * prints what it used. The model mirrors the checkpoint (every tensor, same
 * shape and dtype), so this runs on any state dict. Only the public header
 * is used. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsd.h"

/* ---- the host's allocator: a bump arena with a budget ------------------- */

typedef struct arena {
  unsigned char *base;
  size_t cap, used, live, peak; /* bytes; live/peak count what tsd holds */
} arena;

#define ALIGN 16
typedef struct block_header {
  size_t size;
  unsigned char pad[ALIGN - sizeof(size_t)];
} block_header;

static void *arena_allocate(void *user, size_t size) {
  arena *a = user;
  size_t need = sizeof(block_header) + (size + ALIGN - 1) / ALIGN * ALIGN;
  if (size > a->cap || need > a->cap - a->used) return NULL; /* budget */
  block_header *h = (block_header *)(a->base + a->used);
  h->size = size;
  a->used += need;
  a->live += size;
  if (a->live > a->peak) a->peak = a->live;
  return h + 1;
}

static void arena_deallocate(void *user, void *ptr) {
  arena *a = user;
  a->live -= ((block_header *)ptr - 1)->size; /* space reused at reset */
}

static void *arena_reallocate(void *user, void *ptr, size_t size) {
  size_t old = ((block_header *)ptr - 1)->size;
  void *p = arena_allocate(user, size);
  if (!p) return NULL;
  memcpy(p, ptr, old < size ? old : size);
  arena_deallocate(user, ptr);
  return p;
}

/* ---- one worker: open, build, load, check ------------------------------- */

typedef struct job {
  const char *path;
  int id;
  int ok;
  size_t tensors, bytes, peak;
  char message[256];
} job;

static void *worker(void *arg) {
  job *j = arg;
  arena a = {0};
  a.cap = (size_t)64 << 20; /* tsd's own memory: tables and the report */
  a.base = malloc(a.cap);   /* one host allocation, up front */
  tsd_allocator al = {arena_allocate, arena_reallocate, arena_deallocate, &a};
  tsd_open_options oo = TSD_OPEN_OPTIONS_INIT;
  oo.allocator = &al;

  tsd_checkpoint *ck = NULL;
  tsd_model *model = NULL;
  tsd_report *r = NULL;
  void **data = NULL;
  size_t n_data = 0;
  unsigned char *check = NULL;
  tsd_status st = a.base ? TSD_OK : TSD_ERR_NOMEM;
  if (st == TSD_OK) st = tsd_checkpoint_open(&ck, j->path, &oo);
  if (st == TSD_OK) st = tsd_checkpoint_select_auto(NULL, ck);
  if (st == TSD_OK) st = tsd_model_new_ex(&model, "Model", &al);
  size_t n = st == TSD_OK ? tsd_checkpoint_count(ck) : 0;
  if (st == TSD_OK && !(data = calloc(n ? n : 1, sizeof *data)))
    st = TSD_ERR_NOMEM;
  for (size_t i = 0; i < n && st == TSD_OK; i++) {
    tsd_entry e;
    if (tsd_checkpoint_entry(&e, ck, i) != TSD_OK || e.kind != TSD_KIND_TENSOR)
      continue;
    size_t bytes = (size_t)e.numel * tsd_dtype_size(e.dtype);
    /* the model's tensors are the host's memory (here malloc, for a
     * simple sample; an engine would place them in its own pools) */
    if (!(data[n_data] = calloc(bytes ? bytes : 1, 1))) {
      st = TSD_ERR_NOMEM;
      break;
    }
    st = tsd_model_add_tensor(model, e.key, TSD_PARAMETER, e.dtype, e.ndim,
                              e.shape, data[n_data++]);
    j->bytes += bytes;
  }
  if (st == TSD_OK) {
    tsd_load_options lo = TSD_LOAD_OPTIONS_INIT;
    lo.threads = 1; /* the host owns every thread */
    st = tsd_load(&r, model, ck, &lo);
  }
  if (st == TSD_OK) {
    /* every loaded byte equals what the checkpoint holds */
    j->tensors = tsd_model_tensor_count(model);
    for (size_t i = 0; i < j->tensors && st == TSD_OK; i++) {
      tsd_tensor_info ti;
      size_t k;
      st = tsd_model_tensor(&ti, model, i);
      if (st == TSD_OK) st = tsd_checkpoint_find(&k, ck, ti.name);
      size_t bytes = (size_t)ti.numel * tsd_dtype_size(ti.dtype);
      free(check);
      check = malloc(bytes ? bytes : 1);
      if (st == TSD_OK && !check) st = TSD_ERR_NOMEM;
      if (st == TSD_OK) st = tsd_checkpoint_read(check, bytes, ck, k, ti.dtype);
      if (st == TSD_OK && memcmp(check, ti.data, bytes) != 0) {
        snprintf(j->message, sizeof j->message, "%s differs", ti.name);
        break; /* j->message set: reported as a failure below */
      }
    }
  }
  if (st == TSD_OK && !j->message[0]) {
    j->ok = 1;
    snprintf(j->message, sizeof j->message, "%s", tsd_report_message(r));
  } else if (!j->message[0]) {
    snprintf(j->message, sizeof j->message, "%s: %s", tsd_status_name(st),
             tsd_last_error()); /* per thread: this worker's own error */
  }
  tsd_report_free(r);
  tsd_model_free(model);
  tsd_checkpoint_free(ck);
  j->peak = a.peak;
  if (a.live != 0 && j->ok) {
    snprintf(j->message, sizeof j->message, "tsd kept %zu bytes", a.live);
    j->ok = 0;
  }
  for (size_t i = 0; i < n_data; i++) free(data[i]);
  free(data);
  free(check);
  free(a.base);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: engine_threads CHECKPOINT [THREADS]\n");
    return 2;
  }
  int n = argc == 3 ? atoi(argv[2]) : 4;
  if (n < 1 || n > 64) {
    fprintf(stderr, "engine_threads: THREADS must be 1..64\n");
    return 2;
  }
  job jobs[64];
  pthread_t th[64];
  int started = 0;
  for (int i = 0; i < n; i++) {
    memset(&jobs[i], 0, sizeof jobs[i]);
    jobs[i].path = argv[1];
    jobs[i].id = i;
    if (pthread_create(&th[i], NULL, worker, &jobs[i]) != 0) break;
    started++;
  }
  int rc = started == n ? 0 : 2;
  for (int i = 0; i < started; i++) {
    pthread_join(th[i], NULL);
    printf("worker %d: %s: %zu tensors, %zu bytes loaded, tsd peak %zu "
           "bytes\n",
           i, jobs[i].ok ? "ok" : "FAILED", jobs[i].tensors, jobs[i].bytes,
           jobs[i].peak);
    printf("worker %d: %s\n", i, jobs[i].message);
    if (!jobs[i].ok) rc = 1;
  }
  return rc;
}
