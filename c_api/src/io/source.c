/* source.c — the bytes of a checkpoint: a file read with pread (ReadFile at
 * an offset on Windows: platform.h), or memory.
 *
 * Never mmap: a mapped file truncated underneath raises SIGBUS in the host;
 * pread on a truncated file returns short, which becomes an error. */
#include <string.h>

#include "tsd_io.h"
#include "platform.h"

/* tsd__open_regular and tsd__file_type_name: platform_posix.c and
 * platform_win32.c. */

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
    tsd__os_close(fd);
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
  if (s->fd >= 0) tsd__os_close(s->fd);
  tsd__mem_free(s->al, s->name);
  s->fd = -1;
  s->name = NULL;
  s->mem = NULL;
}

bool tsd__source_cached(const tsd__source *s, uint64_t off) {
  if (s->mem || s->fd < 0 || off >= s->size) return true;
  return tsd__os_cached(s->fd, off) != 0;
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
    size_t got;
    tsd__oserr e = tsd__os_pread(s->fd, d + done, n - done, off + done, &got);
    if (e) {
      char et[TSD__OS_ERRTEXT_CAP];
      return tsd__err(TSD_ERR_IO, "%s: %s: read at offset %llu failed: %s",
                      name, what, (unsigned long long)(off + done),
                      tsd__os_error_text(e, et, sizeof et));
    }
    if (got == 0)
      return tsd__err(TSD_ERR_IO,
                      "%s: %s: file ended at offset %llu (was it truncated "
                      "while open?)",
                      name, what, (unsigned long long)(off + done));
    done += got;
  }
  return TSD_OK;
}
