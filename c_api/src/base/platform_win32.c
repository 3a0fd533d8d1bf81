/* platform_win32.c — platform.h on Windows (built with MinGW-w64 here; plain
 * C11 and Win32, so MSVC compiles it too).
 *
 * Paths arrive in UTF-8 and are opened as UTF-16 through the W functions;
 * reads are ReadFile with an OVERLAPPED offset (64-bit, so files past 4 GiB
 * work, and the file position is never shared state); threads are Win32
 * threads; randomness is BCryptGenRandom; error texts come from
 * FormatMessageW in UTF-8. */
#ifdef _WIN32
#include <windows.h>
#include <bcrypt.h>
#include <fcntl.h>
#include <io.h>
#include <process.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base.h"
#include "platform.h"

tsd__oserr tsd__os_last_error(void) { return (tsd__oserr)GetLastError(); }

const char *tsd__os_error_text(tsd__oserr e, char *buf, size_t cap) {
  if (!cap) return buf;
  wchar_t w[TSD__OS_ERRTEXT_CAP];
  DWORD n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM |
                               FORMAT_MESSAGE_IGNORE_INSERTS,
                           NULL, (DWORD)e, 0, w, TSD__OS_ERRTEXT_CAP, NULL);
  /* FormatMessage ends its texts with ".\r\n": tsd's messages end where
   * the caller puts the period */
  while (n && (w[n - 1] == L'\r' || w[n - 1] == L'\n' || w[n - 1] == L'.' ||
               w[n - 1] == L' '))
    n--;
  int k = n ? WideCharToMultiByte(CP_UTF8, 0, w, (int)n, buf, (int)cap - 1,
                                  NULL, NULL)
            : 0;
  if (k <= 0) {
    snprintf(buf, cap, "Windows error %lu", (unsigned long)e);
    return buf;
  }
  buf[k] = '\0';
  return buf;
}

wchar_t *tsd__win_wide(const char *utf8) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8, -1, NULL, 0);
  if (n <= 0) return NULL;
  wchar_t *w = tsd__mem_alloc(NULL, (size_t)n * sizeof *w);
  if (!w) return NULL;
  if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8, -1, w, n) != n) {
    tsd__mem_free(NULL, w);
    return NULL;
  }
  return w;
}

tsd_status tsd__win_path_error(const char *path) {
  /* MultiByteToWideChar failed: not UTF-8, or no memory */
  if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, NULL, 0) <=
      0)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "%s: the path is not valid UTF-8 (tsd takes UTF-8 paths "
                    "on Windows)",
                    path);
  return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", path);
}

const char *tsd__file_type_name(unsigned mode) {
  switch (mode & _S_IFMT) {
  case _S_IFREG:
    return "regular file";
  case _S_IFDIR:
    return "directory";
  case _S_IFIFO:
    return "pipe";
  case _S_IFCHR:
    return "character device";
  }
  return "special file";
}

tsd_status tsd__open_regular(const char *path, int *out_fd, uint64_t *size) {
  *out_fd = -1;
  wchar_t *w = tsd__win_wide(path);
  if (!w) return tsd__win_path_error(path);
  /* FILE_SHARE_DELETE: a writer may replace the file while we read (tsd's
   * own atomic replace does); FILE_FLAG_BACKUP_SEMANTICS lets a directory
   * open, so it is refused below by its type, not by a vague error. */
  HANDLE h = CreateFileW(w, GENERIC_READ,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         NULL, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
  tsd__mem_free(NULL, w);
  char et[TSD__OS_ERRTEXT_CAP];
  if (h == INVALID_HANDLE_VALUE)
    return tsd__err(TSD_ERR_IO, "%s: cannot open: %s", path,
                    tsd__os_error_text(GetLastError(), et, sizeof et));
  DWORD type = GetFileType(h);
  BY_HANDLE_FILE_INFORMATION info;
  const char *kind = NULL;
  if (type == FILE_TYPE_PIPE)
    kind = "pipe";
  else if (type == FILE_TYPE_CHAR)
    kind = "character device";
  else if (type != FILE_TYPE_DISK)
    kind = "special file";
  else if (!GetFileInformationByHandle(h, &info)) {
    DWORD e = GetLastError();
    CloseHandle(h);
    return tsd__err(TSD_ERR_IO, "%s: cannot stat: %s", path,
                    tsd__os_error_text(e, et, sizeof et));
  } else if (info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
    kind = "directory";
  if (kind) {
    CloseHandle(h);
    return tsd__err(TSD_ERR_IO,
                    "%s: not a regular file (a %s): refused, tsd reads only "
                    "regular files",
                    path, kind);
  }
  int fd = _open_osfhandle((intptr_t)h, _O_RDONLY | _O_BINARY);
  if (fd < 0) {
    CloseHandle(h);
    return tsd__err(TSD_ERR_IO, "%s: cannot open: out of file descriptors",
                    path);
  }
  *out_fd = fd;
  if (size)
    *size = (uint64_t)info.nFileSizeHigh << 32 | (uint64_t)info.nFileSizeLow;
  return TSD_OK;
}

tsd__oserr tsd__os_pread(int fd, void *dst, size_t n, uint64_t off,
                         size_t *got) {
  *got = 0;
  HANDLE h = (HANDLE)_get_osfhandle(fd);
  if (h == INVALID_HANDLE_VALUE) return ERROR_INVALID_HANDLE;
  DWORD want = n > ((size_t)1 << 30) ? (DWORD)1 << 30 : (DWORD)n;
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.Offset = (DWORD)off;
  ov.OffsetHigh = (DWORD)(off >> 32);
  DWORD r = 0;
  if (!ReadFile(h, dst, want, &r, &ov)) {
    DWORD e = GetLastError();
    if (e == ERROR_HANDLE_EOF) return 0; /* at or past the end */
    return e;
  }
  *got = r;
  return 0;
}

/* Windows has no cheap way to ask (a zero-timeout overlapped read still
 * queues the I/O): unknown, and reads split as they always did. */
int tsd__os_cached(int fd, uint64_t off) {
  (void)fd;
  (void)off;
  return -1;
}

void tsd__os_close(int fd) {
  if (fd >= 0) _close(fd);
}

static unsigned __stdcall thread_main(void *arg) {
  tsd__thread *t = arg;
  t->fn(t->arg);
  return 0;
}

bool tsd__thread_start(tsd__thread *t, void *(*fn)(void *), void *arg) {
  t->fn = fn;
  t->arg = arg;
  /* _beginthreadex, not CreateThread: the C runtime's per-thread state
   * (errno, the thread-local error message) is set up for the thread */
  uintptr_t h = _beginthreadex(NULL, 0, thread_main, t, 0, NULL);
  t->handle = (void *)h;
  return h != 0;
}

void tsd__thread_join(tsd__thread *t) {
  WaitForSingleObject((HANDLE)t->handle, INFINITE);
  CloseHandle((HANDLE)t->handle);
  t->handle = NULL;
}

static BOOL CALLBACK once_cb(PINIT_ONCE o, PVOID param, PVOID *ctx) {
  (void)o;
  (void)ctx;
  void (**fn)(void) = param;
  (*fn)();
  return TRUE;
}

void tsd__once_run(tsd__once *once, void (*fn)(void)) {
  /* INIT_ONCE is one pointer, zero when fresh (INIT_ONCE_STATIC_INIT) */
  InitOnceExecuteOnce((PINIT_ONCE)(void *)&once->state, once_cb, (PVOID)&fn,
                      NULL);
}

/* SRWLOCK and CONDITION_VARIABLE are one pointer each, zero when fresh. */
void tsd__sync_init(tsd__sync *s) {
  InitializeSRWLock((PSRWLOCK)(void *)&s->lock);
  InitializeConditionVariable((PCONDITION_VARIABLE)(void *)&s->cond);
}

void tsd__sync_destroy(tsd__sync *s) { (void)s; }

void tsd__sync_lock(tsd__sync *s) {
  AcquireSRWLockExclusive((PSRWLOCK)(void *)&s->lock);
}

void tsd__sync_unlock(tsd__sync *s) {
  ReleaseSRWLockExclusive((PSRWLOCK)(void *)&s->lock);
}

void tsd__sync_wait(tsd__sync *s) {
  SleepConditionVariableSRW((PCONDITION_VARIABLE)(void *)&s->cond,
                            (PSRWLOCK)(void *)&s->lock, INFINITE, 0);
}

void tsd__sync_broadcast(tsd__sync *s) {
  WakeAllConditionVariable((PCONDITION_VARIABLE)(void *)&s->cond);
}

bool tsd__os_random(void *p, size_t n, bool nonblocking) {
  (void)nonblocking; /* the system generator never blocks */
  unsigned char *b = p;
  while (n) {
    ULONG chunk = n > 0x10000000u ? 0x10000000u : (ULONG)n;
    if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, b, chunk,
                                        BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
      return false;
    b += chunk;
    n -= chunk;
  }
  return true;
}

uint64_t tsd__os_weak_entropy(void) {
  LARGE_INTEGER c;
  QueryPerformanceCounter(&c);
  return (uint64_t)c.QuadPart * 0x9E3779B97F4A7C15ull ^
         (uint64_t)GetTickCount64() ^ (uint64_t)GetCurrentProcessId() << 32;
}
#endif
