/* afile_common.c — the part of tsd__afile that is the same on every OS:
 * setting up the struct, splitting the destination into directory and last
 * component, the ".tsd-XXXXXX" temporary name, telling the host where the
 * temporary is, and the refusal of what is not a regular file. Opening,
 * writing, replacing and syncing are per OS: afile.c (POSIX) and
 * afile_win32.c (Windows); the rules are at the top of those. */
#include <string.h>

#include "write.h"
#include "platform.h"

/* the separators of a path's components: Windows accepts both */
#ifdef _WIN32
#define IS_SEP(c) ((c) == '/' || (c) == '\\')
#else
#define IS_SEP(c) ((c) == '/')
#endif

void tsd__afile_init_fd(tsd__afile *f, const tsd_allocator *al, int fd,
                        const char *name) {
  memset(f, 0, sizeof *f);
  f->al = al;
  f->fd = fd;
  f->dirfd = -1;
  f->name = name ? name : "<output>";
  f->caller_fd = true;
}

tsd_status tsd__afile_init_path(tsd__afile *f, const tsd_allocator *al,
                                const char *path,
                                void (*temp_file)(void *, const char *),
                                void *temp_user) {
  memset(f, 0, sizeof *f);
  f->al = al;
  f->fd = f->dirfd = -1;
  f->name = path;
  f->path = path;
  f->temp_file = temp_file;
  f->temp_user = temp_user;
  const char *slash = NULL;
  for (const char *p = path; *p; p++)
    if (IS_SEP(*p)) slash = p;
  const char *base = slash ? slash + 1 : path;
  if (!*base)
    return tsd__err(TSD_ERR_INVALID_ARG, "%s: names a directory, not a file",
                    path);
  f->dir = slash ? tsd__mem_strndup(al, path,
                                    slash == path ? 1 : (size_t)(slash - path))
                 : tsd__mem_strdup(al, ".");
  f->base = tsd__mem_strdup(al, base);
  if (!f->dir || !f->base) {
    tsd__afile_abort(f);
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", path);
  }
  return TSD_OK;
}

void tsd__afile_release(tsd__afile *f) {
  tsd__mem_free(f->al, f->dir);
  tsd__mem_free(f->al, f->base);
  memset(f, 0, sizeof *f);
  f->fd = f->dirfd = -1;
}

tsd_status tsd__afile_open(tsd__afile *f, const tsd_allocator *al,
                           const char *path,
                           void (*temp_file)(void *, const char *),
                           void *temp_user) {
  return tsd__afile_open_ex(f, al, path, temp_file, temp_user, false);
}

/* ".tsd-" and six random characters: short, so that a destination name of
 * NAME_MAX bytes still has a temporary name. */
void tsd__afile_temp_name(char out[12]) {
  static const char al[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char r[6];
  if (!tsd__os_random(r, sizeof r, true)) {
    /* no entropy yet: the address of a stack variable and the clock still
     * make a collision unlikely, and an exclusive create makes it harmless */
    uint64_t x = tsd__os_weak_entropy() ^ (uint64_t)(uintptr_t)r;
    for (int i = 0; i < 6; i++)
      r[i] = (unsigned char)(x >> (8 * i));
  }
  memcpy(out, ".tsd-", 5);
  for (int i = 0; i < 6; i++)
    out[5 + i] = al[r[i] % (sizeof al - 1)];
  out[11] = '\0';
}

char *tsd__afile_join(const tsd__afile *f, const char *name) {
  tsd__buf b;
  tsd__buf_init(&b, f->al);
  tsd__buf_append(&b, f->dir, strlen(f->dir));
  tsd__buf_puts(&b, "/");
  tsd__buf_puts(&b, name);
  if (b.oom) {
    tsd__buf_free(&b);
    return NULL;
  }
  char *s = tsd__mem_strndup(f->al, b.data, b.len);
  tsd__buf_free(&b);
  return s;
}

void tsd__afile_notify(tsd__afile *f, const char *name) {
  if (!f->temp_file) return;
  if (!name) {
    f->temp_file(f->temp_user, NULL);
    return;
  }
  char *p = tsd__afile_join(f, name);
  if (p) f->temp_file(f->temp_user, p);
  tsd__mem_free(f->al, p);
}

tsd_status tsd__afile_not_regular(const char *name, const char *kind) {
  return tsd__err(TSD_ERR_INVALID_ARG,
                  "%s: is %s; tsd writes regular files only and does not "
                  "replace anything else",
                  name, kind);
}

tsd_status tsd__afile_progress(const tsd__afile *f) {
  if (!f->progress) return TSD_OK;
  uint64_t done = f->off < f->progress_total ? f->off : f->progress_total;
  if (f->progress(f->progress_user, done, f->progress_total))
    return tsd__err(TSD_ERR_CANCELED, "%s: the save was canceled", f->name);
  return TSD_OK;
}
