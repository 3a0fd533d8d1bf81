/*
 * bench_tsd.c — the C side of the load benchmark (bench/run.sh drives it).
 *
 *   bench_tsd pread  REPS FILE               (a) the file's bytes into one
 *                                                preallocated buffer, pread
 *   bench_tsd pread2 REPS FILE               (a2) the same with two threads,
 *                                                each reading one half
 *   bench_tsd c      REPS SPEC CHECKPOINT    (b) tsd into C-owned buffers
 *   bench_tsd ts     REPS MODEL.pt CHECKPOINT (c) tsd into a TorchScript module
 *
 * (b) builds a C-owned model with one tensor per tensor entry of SPEC (a
 * state_dict saved by Python: names, dtypes, shapes), in one 64-byte aligned
 * allocation written once before timing, so no page fault is timed.
 * (c) opens MODEL.pt with tsd_model_open_torchscript, not timed.
 * Each repetition times tsd_checkpoint_open + tsd_load (strict) + the
 * checkpoint's free, and tsd_load alone. After the repetitions a few tensors
 * of the model are compared with tsd_checkpoint_read of the checkpoint, so a
 * load that wrote nothing cannot pass for a fast one.
 *
 * Peak memory: the baseline is VmRSS after the model is built; before each
 * repetition VmHWM is reset to the current RSS by writing "5" to
 * /proc/self/clear_refs, and after it the rise of VmHWM over the RSS at the
 * reset is the repetition's extra memory. If the reset is refused, only the
 * first repetition's peak is meaningful and it is the one reported. After
 * each repetition malloc_trim gives the freed heap back to the kernel, so
 * memory glibc kept from one repetition does not hide the next one's peak.
 *
 * Prints one JSON object on stdout. Exit status 0, or 1 with a message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tsd.h"

#define BENCH_NAME "bench_tsd"
#include "bench_util.h"

#define MAX_REPS 64

/* ---- memory ----------------------------------------------------------- */

typedef struct {
  int can_reset;
  long rss_at_start; /* KiB */
} mem_probe;

static void mem_begin(mem_probe *m, int first) {
  m->can_reset = reset_hwm();
  if (!m->can_reset && !first) {
    m->rss_at_start = -1;
    return;
  }
  m->rss_at_start = status_kib("VmRSS");
}

static long mem_end(const mem_probe *m) {
  if (m->rss_at_start < 0) return -1;
  long hwm = status_kib("VmHWM");
  return hwm > m->rss_at_start ? hwm - m->rss_at_start : 0;
}

/* ---- output ----------------------------------------------------------- */

static void print_list_l(const char *name, const long *v, int n) {
  printf("\"%s\": [", name);
  for (int i = 0; i < n; i++) printf("%s%ld", i ? ", " : "", v[i]);
  printf("]");
}

/* ---- (a) pread -------------------------------------------------------- */

typedef struct {
  int fd;
  uint8_t *buf;
  uint64_t off, len;
  int err;
} pread_job;

static void *pread_range(void *arg) {
  pread_job *j = arg;
  uint64_t done = 0;
  while (done < j->len) {
    uint64_t want = j->len - done;
    if (want > (1u << 30)) want = 1u << 30;
    ssize_t r = pread(j->fd, j->buf + j->off + done, (size_t)want,
                      (off_t)(j->off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      j->err = r < 0 ? errno : EIO;
      return NULL;
    }
    done += (uint64_t)r;
  }
  return NULL;
}

static int run_pread(int reps, const char *path, int threads) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    fprintf(stderr, "bench_tsd: %s: %s\n", path, strerror(errno));
    return 1;
  }
  uint64_t size = (uint64_t)st.st_size;
  uint8_t *buf = NULL;
  if (posix_memalign((void **)&buf, 4096, size ? size : 1)) {
    fprintf(stderr, "bench_tsd: out of memory\n");
    return 1;
  }
  memset(buf, 0xa5, size); /* fault the pages in before timing */
  double t[MAX_REPS];
  for (int r = 0; r < reps; r++) {
    pread_job jobs[2] = {{fd, buf, 0, size, 0}, {fd, buf, 0, 0, 0}};
    if (threads == 2) {
      uint64_t half = (size / 2) & ~(uint64_t)4095;
      jobs[0].len = half;
      jobs[1].off = half;
      jobs[1].len = size - half;
    }
    double t0 = now();
    if (threads == 2) {
      pthread_t th;
      if (pthread_create(&th, NULL, pread_range, &jobs[1]) != 0) {
        fprintf(stderr, "bench_tsd: pthread_create failed\n");
        return 1;
      }
      pread_range(&jobs[0]);
      pthread_join(th, NULL);
    } else {
      pread_range(&jobs[0]);
    }
    t[r] = now() - t0;
    if (jobs[0].err || jobs[1].err) {
      fprintf(stderr, "bench_tsd: %s: read failed: %s\n", path,
              strerror(jobs[0].err ? jobs[0].err : jobs[1].err));
      return 1;
    }
  }
  printf("{\"mode\": \"pread%s\", \"bytes\": %" PRIu64 ", ",
         threads == 2 ? "2" : "", size);
  print_list("times", t, reps);
  printf("}\n");
  free(buf);
  close(fd);
  return 0;
}

/* ---- (b) the C-owned model --------------------------------------------- */

typedef struct {
  tsd_model *model;
  uint8_t *arena;
  size_t arena_bytes;
} c_model;

/* A C-owned model shaped like SPEC's tensors: what a C program that knows
 * its network would build, with its weights in its own memory. */
static void build_c_model(c_model *cm, const char *spec_path) {
  tsd_checkpoint *spec;
  tsd_status st = tsd_checkpoint_open(&spec, spec_path, NULL);
  if (st != TSD_OK) die(spec_path, st);
  size_t n = tsd_checkpoint_count(spec), total = 0;
  for (size_t i = 0; i < n; i++) {
    tsd_entry e;
    if ((st = tsd_checkpoint_entry(&e, spec, i)) != TSD_OK) die("entry", st);
    if (e.kind == TSD_KIND_TENSOR)
      total += align64((size_t)e.numel * tsd_dtype_size(e.dtype));
  }
  if (posix_memalign((void **)&cm->arena, 64, total ? total : 64)) {
    fprintf(stderr, "bench_tsd: out of memory for %zu bytes\n", total);
    exit(1);
  }
  /* NaN bytes: a tensor the load leaves alone cannot pass the check */
  memset(cm->arena, 0xff, total);
  cm->arena_bytes = total;
  if ((st = tsd_model_new(&cm->model, "Model")) != TSD_OK) die("model", st);
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    tsd_entry e;
    if ((st = tsd_checkpoint_entry(&e, spec, i)) != TSD_OK) die("entry", st);
    if (e.kind != TSD_KIND_TENSOR) continue;
    st = tsd_model_add_tensor(cm->model, e.key,
                              e.is_parameter ? TSD_PARAMETER : TSD_BUFFER,
                              e.dtype, e.ndim, e.shape, cm->arena + off);
    if (st != TSD_OK) die(e.key, st);
    off += align64((size_t)e.numel * tsd_dtype_size(e.dtype));
  }
  tsd_checkpoint_free(spec);
}

/* ---- checking ---------------------------------------------------------- */

/* Compares model tensors (first, middle, last and every 97th) with the
 * checkpoint's values read in the model's dtype. */
static void check_loaded(const tsd_model *m, const char *ckpt_path) {
  tsd_checkpoint *ck;
  tsd_status st = tsd_checkpoint_open(&ck, ckpt_path, NULL);
  if (st != TSD_OK) die(ckpt_path, st);
  size_t n = tsd_model_tensor_count(m), checked = 0;
  for (size_t i = 0; i < n; i++) {
    if (!(i == 0 || i == n / 2 || i + 1 == n || i % 97 == 0)) continue;
    tsd_tensor_info info;
    if ((st = tsd_model_tensor(&info, m, i)) != TSD_OK) die("tensor", st);
    size_t idx;
    if (tsd_checkpoint_find(&idx, ck, info.name) != TSD_OK) continue;
    size_t bytes = (size_t)info.numel * tsd_dtype_size(info.dtype);
    uint8_t *want = malloc(bytes ? bytes : 1), *got = malloc(bytes ? bytes : 1);
    if (!want || !got) {
      fprintf(stderr, "bench_tsd: out of memory\n");
      exit(1);
    }
    if ((st = tsd_checkpoint_read(want, bytes, ck, idx, info.dtype)) != TSD_OK)
      die(info.name, st);
    if ((st = tsd_model_read(got, bytes, m, i, info.dtype)) != TSD_OK)
      die(info.name, st);
    if (memcmp(want, got, bytes) != 0) {
      fprintf(stderr, "bench_tsd: %s: loaded values differ from %s\n",
              info.name, ckpt_path);
      exit(1);
    }
    free(want);
    free(got);
    checked++;
  }
  tsd_checkpoint_free(ck);
  if (!checked) {
    fprintf(stderr, "bench_tsd: no tensor of the model is in %s\n",
            ckpt_path);
    exit(1);
  }
}

/* ---- (b) and (c) -------------------------------------------------------- */

static int run_load(int reps, tsd_model *model, const char *ckpt_path,
                    const char *mode, long baseline_kib) {
  double t_all[MAX_REPS], t_load[MAX_REPS], t_open[MAX_REPS];
  long extra[MAX_REPS];
  int can_reset = 1;
  size_t loaded = 0;
  malloc_trim(0); /* what building the model freed must not hide a peak */
  for (int r = 0; r < reps; r++) {
    mem_probe mp;
    mem_begin(&mp, r == 0);
    can_reset &= mp.can_reset;
    double t0 = now();
    tsd_checkpoint *ck;
    tsd_status st = tsd_checkpoint_open(&ck, ckpt_path, NULL);
    if (st != TSD_OK) die(ckpt_path, st);
    double t1 = now();
    tsd_report *rep = NULL;
    st = tsd_load(&rep, model, ck, NULL);
    double t2 = now();
    if (st != TSD_OK) {
      fprintf(stderr, "bench_tsd: load: %s: %s\n%s\n", tsd_status_name(st),
              tsd_last_error(), rep ? tsd_report_message(rep) : "");
      return 1;
    }
    loaded = tsd_report_count(rep, TSD_LIST_MATCHED);
    tsd_report_free(rep);
    tsd_checkpoint_free(ck);
    double t3 = now();
    extra[r] = mem_end(&mp);
    malloc_trim(0); /* freed heap back to the kernel: honest next baseline */
    t_open[r] = t1 - t0;
    t_load[r] = t2 - t1;
    t_all[r] = t3 - t0;
  }
  check_loaded(model, ckpt_path);
  printf("{\"mode\": \"%s\", \"tsd_version\": \"%s\", \"tensors\": %zu, "
         "\"loaded\": %zu, \"baseline_kib\": %ld, \"hwm_reset\": %s, ",
         mode, tsd_version(), tsd_model_tensor_count(model), loaded,
         baseline_kib,
         can_reset ? "true" : "false");
  print_list("times_open_load", t_all, reps);
  printf(", ");
  print_list("times_open", t_open, reps);
  printf(", ");
  print_list("times_load", t_load, reps);
  printf(", ");
  print_list_l("extra_kib", extra, reps);
  printf("}\n");
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr,
            "usage: bench_tsd pread|pread2 REPS FILE\n"
            "       bench_tsd c REPS SPEC CHECKPOINT\n"
            "       bench_tsd ts REPS MODEL.pt CHECKPOINT\n");
    return 2;
  }
  const char *mode = argv[1];
  int reps = atoi(argv[2]);
  if (reps < 1 || reps > MAX_REPS) {
    fprintf(stderr, "bench_tsd: REPS must be 1..%d\n", MAX_REPS);
    return 2;
  }
  if (!strcmp(mode, "pread")) return run_pread(reps, argv[3], 1);
  if (!strcmp(mode, "pread2")) return run_pread(reps, argv[3], 2);
  if (argc < 5) {
    fprintf(stderr, "bench_tsd: %s needs MODEL and CHECKPOINT\n", mode);
    return 2;
  }
  int rc;
  if (!strcmp(mode, "c")) {
    c_model cm;
    build_c_model(&cm, argv[3]);
    long base = status_kib("VmRSS");
    rc = run_load(reps, cm.model, argv[4], "c", base);
    tsd_model_free(cm.model);
    free(cm.arena);
  } else if (!strcmp(mode, "ts")) {
    if (!tsd_has_torch()) {
      printf("{\"mode\": \"ts\", \"skipped\": \"n/a (built without "
             "LibTorch)\"}\n");
      return 0;
    }
    tsd_model *m;
    tsd_status st = tsd_model_open_torchscript(&m, argv[3], NULL);
    if (st != TSD_OK) die(argv[3], st);
    long base = status_kib("VmRSS");
    rc = run_load(reps, m, argv[4], "ts", base);
    tsd_model_free(m);
  } else {
    fprintf(stderr, "bench_tsd: unknown mode '%s'\n", mode);
    return 2;
  }
  return rc;
}
