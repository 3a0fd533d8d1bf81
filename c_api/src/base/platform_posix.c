/* platform_posix.c — platform.h on Linux and other POSIX systems. */
#ifndef _WIN32
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "platform.h"

tsd__oserr tsd__os_last_error(void) { return (tsd__oserr)errno; }

const char *tsd__os_error_text(tsd__oserr e, char *buf, size_t cap) {
  if (!cap) return buf;
  /* strerror is not thread-safe everywhere; glibc's is for known codes, and
   * the copy keeps the text ours */
  const char *s = strerror((int)e);
  size_t n = strlen(s);
  if (n >= cap) n = cap - 1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return buf;
}

const char *tsd__file_type_name(unsigned mode) {
  switch (mode & S_IFMT) {
  case S_IFREG:
    return "regular file";
  case S_IFDIR:
    return "directory";
  case S_IFIFO:
    return "FIFO";
  case S_IFCHR:
    return "character device";
  case S_IFBLK:
    return "block device";
  case S_IFSOCK:
    return "socket";
  case S_IFLNK:
    return "symbolic link";
  }
  return "special file";
}

tsd_status tsd__open_regular(const char *path, int *out_fd, uint64_t *size) {
  *out_fd = -1;
  /* O_NONBLOCK: opening a FIFO for reading blocks until a writer comes (a
   * device may block too), so the file type is checked on the descriptor
   * before anything can wait; O_NOCTTY: a terminal never becomes ours. The
   * flag is cleared again for the reads of a regular file. */
  int fd;
  do {
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return tsd__err(TSD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return tsd__err(TSD_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return tsd__err(TSD_ERR_IO,
                    "%s: not a regular file (a %s): refused, tsd reads only "
                    "regular files",
                    path, tsd__file_type_name(st.st_mode));
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    int e = errno;
    close(fd);
    return tsd__err(TSD_ERR_IO, "%s: cannot clear O_NONBLOCK: %s", path,
                    strerror(e));
  }
  *out_fd = fd;
  if (size) *size = (uint64_t)st.st_size;
  return TSD_OK;
}

int tsd__os_cached(int fd, uint64_t off) {
  /* mincore on a one-page map of the file: asks without reading (a
   * preadv2 with RWF_NOWAIT would start the read-ahead it asks about). The
   * page is never touched, so a file truncated meanwhile cannot fault. */
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return -1;
  uint64_t at = off - off % (uint64_t)page;
  void *p = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, (off_t)at);
  if (p == MAP_FAILED) return -1;
  unsigned char in = 0;
  int r = mincore(p, (size_t)page, &in) == 0 ? (in & 1) : -1;
  munmap(p, (size_t)page);
  return r;
}

tsd__oserr tsd__os_pread(int fd, void *dst, size_t n, uint64_t off,
                         size_t *got) {
  *got = 0;
  /* pread's count is capped by the kernel anyway; keep it in ssize_t */
  if (n > ((size_t)1 << 30)) n = (size_t)1 << 30;
  for (;;) {
    ssize_t r = pread(fd, dst, n, (off_t)off);
    if (r >= 0) {
      *got = (size_t)r;
      return 0;
    }
    if (errno != EINTR) return (tsd__oserr)errno;
  }
}

void tsd__os_close(int fd) {
  if (fd >= 0) close(fd);
}

bool tsd__thread_start(tsd__thread *t, void *(*fn)(void *), void *arg) {
  sigset_t all, old;
  sigfillset(&all);
  if (pthread_sigmask(SIG_SETMASK, &all, &old) != 0) return false;
  bool ok = pthread_create(&t->th, NULL, fn, arg) == 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return ok;
}

void tsd__thread_join(tsd__thread *t) { pthread_join(t->th, NULL); }

void tsd__once_run(tsd__once *once, void (*fn)(void)) {
  pthread_once(&once->o, fn);
}

void tsd__sync_init(tsd__sync *s) {
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
}

void tsd__sync_destroy(tsd__sync *s) {
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
}

void tsd__sync_lock(tsd__sync *s) { pthread_mutex_lock(&s->mu); }
void tsd__sync_unlock(tsd__sync *s) { pthread_mutex_unlock(&s->mu); }
void tsd__sync_wait(tsd__sync *s) { pthread_cond_wait(&s->cv, &s->mu); }
void tsd__sync_broadcast(tsd__sync *s) { pthread_cond_broadcast(&s->cv); }

bool tsd__os_random(void *p, size_t n, bool nonblocking) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom((char *)p + got, n - got,
                          nonblocking ? GRND_NONBLOCK : 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += (size_t)r;
  }
  return true;
}

uint64_t tsd__os_weak_entropy(void) {
  struct timespec ts = {0, 0};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec ^
         (uint64_t)getpid() << 32;
}
#endif
