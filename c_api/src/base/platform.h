/* platform.h — the operating system below tsd, one implementation per OS:
 * platform_posix.c (Linux and other POSIX systems) and platform_win32.c
 * (Windows: wide-character paths, ReadFile at an offset, Win32 threads).
 * The rest of the C core calls these instead of the OS, so it builds
 * unchanged on both. Not public; included by the files that need the OS.
 *
 * Paths are UTF-8 everywhere in tsd; on Windows they are converted to
 * UTF-16 and opened through the wide-character API, so any file name works
 * (the ANSI code page cannot name every file). File descriptors are C
 * runtime descriptors (`int`, -1 for none) on both: on Windows they wrap a
 * HANDLE (_open_osfhandle) opened by CreateFileW, and the reads use that
 * HANDLE with an explicit 64-bit offset, so files past 4 GiB work. */
#ifndef TSD_PLATFORM_H
#define TSD_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tsd.h"

#ifndef _WIN32
#include <pthread.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------- */
/* An OS error code: errno on POSIX, GetLastError() on Windows. */
typedef unsigned long tsd__oserr;
/* The calling thread's last OS error (errno / GetLastError()). */
tsd__oserr tsd__os_last_error(void);
/* The OS's text for `e` in UTF-8 (strerror / FormatMessageW), written into
 * buf (always terminated) and returned. */
const char *tsd__os_error_text(tsd__oserr e, char *buf, size_t cap);
/* A buffer large enough for tsd__os_error_text. */
#define TSD__OS_ERRTEXT_CAP 256

/* ---- files -------------------------------------------------------------- */
/* Reads up to n bytes at offset `off` of descriptor `fd` without moving its
 * file position (pread / ReadFile with an OVERLAPPED offset). *got is 0 at
 * the end of the file. Returns 0, or the OS error (EINTR is retried). */
tsd__oserr tsd__os_pread(int fd, void *dst, size_t n, uint64_t off,
                         size_t *got);
/* Whether the byte at `off` of descriptor `fd` is in the OS's page cache
 * (a read of it would not wait for the disk): 1 yes, 0 no, -1 unknown.
 * POSIX: mincore on a one-page map (nothing is read); Windows: always -1
 * (the callers then behave as before they asked). */
int tsd__os_cached(int fd, uint64_t off);
/* Closes a descriptor from tsd__open_regular. */
void tsd__os_close(int fd);

#ifdef _WIN32
/* UTF-8 -> UTF-16 for the W functions; NULL if not UTF-8 or out of memory
 * (then tsd__win_path_error says which). Free with tsd__mem_free(NULL, .). */
wchar_t *tsd__win_wide(const char *utf8);
tsd_status tsd__win_path_error(const char *path);
#endif

/* ---- threads ------------------------------------------------------------ */
/* One extra thread, started and joined by the same caller. On POSIX the
 * thread starts with every signal blocked, so a host's signal handlers keep
 * running on the host's own threads. */
#ifdef _WIN32
typedef struct tsd__thread {
  void *handle; /* HANDLE */
  void *(*fn)(void *);
  void *arg;
} tsd__thread;
#else
typedef struct tsd__thread {
  pthread_t th;
} tsd__thread;
#endif
/* false when no thread could be started (the caller does the work alone).
 * `t` must stay in place until tsd__thread_join. */
bool tsd__thread_start(tsd__thread *t, void *(*fn)(void *), void *arg);
void tsd__thread_join(tsd__thread *t);

/* A lock and one condition, for two threads handing work to each other
 * (the device load's reading thread). Never fails: POSIX default mutex and
 * condition (glibc's never fail to initialise), Windows SRW lock and
 * condition variable (static, nothing to free). */
#ifdef _WIN32
typedef struct tsd__sync {
  void *lock; /* SRWLOCK: one pointer */
  void *cond; /* CONDITION_VARIABLE: one pointer */
} tsd__sync;
#else
typedef struct tsd__sync {
  pthread_mutex_t mu;
  pthread_cond_t cv;
} tsd__sync;
#endif
void tsd__sync_init(tsd__sync *s);
void tsd__sync_destroy(tsd__sync *s);
void tsd__sync_lock(tsd__sync *s);
void tsd__sync_unlock(tsd__sync *s);
/* Locked: unlocks, waits for a broadcast (or wakes spuriously), relocks. */
void tsd__sync_wait(tsd__sync *s);
void tsd__sync_broadcast(tsd__sync *s);

/* Runs fn exactly once per process, whichever thread comes first; the
 * others wait until it has returned. */
#ifdef _WIN32
typedef struct tsd__once {
  void *state; /* INIT_ONCE */
} tsd__once;
#define TSD__ONCE_INIT {0}
#else
typedef struct tsd__once {
  pthread_once_t o;
} tsd__once;
#define TSD__ONCE_INIT {PTHREAD_ONCE_INIT}
#endif
void tsd__once_run(tsd__once *once, void (*fn)(void));

/* ---- randomness --------------------------------------------------------- */
/* Fills p with n bytes from the OS's generator (getrandom / BCryptGenRandom);
 * false when it could not (then mix in tsd__os_weak_entropy). */
bool tsd__os_random(void *p, size_t n, bool nonblocking);
/* The clock and the process id: not secret, but not a file's to know. */
uint64_t tsd__os_weak_entropy(void);

#ifdef __cplusplus
}
#endif
#endif
