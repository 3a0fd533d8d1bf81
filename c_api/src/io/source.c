/* source.c — the bytes of a checkpoint: a file read with pread, or memory.
 *
 * Never mmap: a mapped file truncated underneath raises SIGBUS in the host;
 * pread on a truncated file returns short, which becomes an error. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

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

tsd_status tsd__source_open_file(tsd__source *s, const char *path,
                                 const tsd_allocator *al) {
  memset(s, 0, sizeof *s);
  s->al = al;
  s->fd = -1;
  int fd;
  uint64_t size;
  tsd_status st = tsd__open_regular(path, &fd, &size);
  if (st) return st;
  s->name = tsd__mem_strdup(al, path);
  if (!s->name) {
    close(fd);
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", path);
  }
  s->fd = fd;
  s->size = size;
  return TSD_OK;
}

tsd_status tsd__source_open_memory(tsd__source *s, const void *p, size_t n,
                                   const tsd_allocator *al) {
  memset(s, 0, sizeof *s);
  s->al = al;
  s->fd = -1;
  if (!p && n)
    return tsd__err(TSD_ERR_INVALID_ARG, "<memory>: NULL data with size %zu",
                    n);
  static const uint8_t empty[1] = {0};
  s->mem = p ? p : empty;
  s->size = n;
  s->name = tsd__mem_strdup(al, "<memory>");
  if (!s->name) return tsd__err(TSD_ERR_NOMEM, "<memory>: out of memory");
  return TSD_OK;
}

void tsd__source_close(tsd__source *s) {
  if (!s) return;
  if (s->fd >= 0) close(s->fd);
  tsd__mem_free(s->al, s->name);
  s->fd = -1;
  s->name = NULL;
  s->mem = NULL;
}

tsd_status tsd__source_read(const tsd__source *s, uint64_t off, void *dst,
                            size_t n, const char *what) {
  const char *name = s->name ? s->name : "<source>";
  uint64_t end;
  if (!tsd__add_u64(off, n, &end) || end > s->size)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: %s: %zu bytes at offset %llu run past the end of "
                    "the file (%llu bytes)",
                    name, what, n, (unsigned long long)off,
                    (unsigned long long)s->size);
  if (!n) return TSD_OK;
  if (s->mem) {
    memcpy(dst, s->mem + off, n);
    return TSD_OK;
  }
  uint8_t *d = dst;
  size_t done = 0;
  while (done < n) {
    size_t want = n - done;
    /* pread's count is capped by the kernel anyway; keep it in ssize_t */
    if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
    ssize_t r = pread(s->fd, d + done, want, (off_t)(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return tsd__err(TSD_ERR_IO, "%s: %s: read at offset %llu failed: %s",
                      name, what, (unsigned long long)(off + done),
                      strerror(errno));
    }
    if (r == 0)
      return tsd__err(TSD_ERR_IO,
                      "%s: %s: file ended at offset %llu (was it truncated "
                      "while open?)",
                      name, what, (unsigned long long)(off + done));
    done += (size_t)r;
  }
  return TSD_OK;
}
