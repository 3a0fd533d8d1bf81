/*
 * bench_util.h — what the C benchmarks (bench_tsd.c, bench_views.c) share:
 * a monotonic clock, /proc/self/status fields, the VmHWM reset, failing
 * with tsd's error, the JSON number lists they print. Linux only, as the
 * benchmarks are. Define BENCH_NAME ("bench_tsd") before including it: the
 * prefix of error messages. Include after the system headers (it needs
 * _GNU_SOURCE's clock_gettime and the POSIX file calls).
 */
#ifndef TSD_BENCH_UTIL_H
#define TSD_BENCH_UTIL_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tsd.h"

#ifndef BENCH_NAME
#error "define BENCH_NAME (the program's name) before bench_util.h"
#endif

/* Seconds on the monotonic clock. */
static inline double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "BENCH_NAME: WHAT: STATUS: tsd_last_error()" on stderr, exit 1. */
static inline void die(const char *what, tsd_status st) {
  fprintf(stderr, BENCH_NAME ": %s: %s: %s\n", what, tsd_status_name(st),
          tsd_last_error());
  exit(1);
}

/* A "Field:   N kB" line of /proc/self/status, in KiB; -1 if absent. */
static inline long status_kib(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  size_t n = strlen(field);
  long v = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, field, n) && line[n] == ':') {
      v = strtol(line + n + 1, NULL, 10);
      break;
    }
  fclose(f);
  return v;
}

/* Resets VmHWM to the current RSS ("5" into /proc/self/clear_refs): 1 done,
 * 0 refused (only the first peak is then meaningful). */
static inline int reset_hwm(void) {
  int fd = open("/proc/self/clear_refs", O_WRONLY);
  if (fd < 0) return 0;
  int ok = write(fd, "5", 1) == 1;
  close(fd);
  return ok;
}

/* `"name": [v0, v1, ...]` (6 decimals), no newline. */
static inline void print_list(const char *name, const double *v, int n) {
  printf("\"%s\": [", name);
  for (int i = 0; i < n; i++) printf("%s%.6f", i ? ", " : "", v[i]);
  printf("]");
}

/* n rounded up to a multiple of 64 (tensor placement in one arena). */
static inline size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

#endif
