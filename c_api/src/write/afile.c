/* afile.c — the one way tsd writes an output file: whole or not at all.
 *
 * Every writer (the .pth and safetensors writers, the TorchScript shim's)
 * writes into a tsd__afile and commits it; the rules live here:
 *  - the data goes to an unnamed file in the destination's directory
 *    (O_TMPFILE), so a process killed mid-write leaves nothing behind; where
 *    the file system has no O_TMPFILE, to a named ".tsd-XXXXXX" (short, so
 *    any valid destination name works) that the host may remove on a
 *    signal (tsd_save_options.temp_file tells it the name: a library does
 *    not install signal handlers behind its host's back);
 *  - commit: fsync the file, give it its name (linkat, then rename over the
 *    old file), fsync the directory. Any failure (a full disk) removes the
 *    temporary and leaves the old file as it was;
 *  - an existing output keeps its permission bits (and, where allowed, its
 *    owner) instead of getting the umask's;
 *  - only regular files are replaced: a directory, FIFO, device or socket at
 *    the output path is refused, never replaced (`-o /dev/null` as root must
 *    not replace /dev/null);
 *  - a symlink at the output path is replaced by the new file; its target
 *    is never written (rename(2)'s own rule; writing through a link is how
 *    a link planted in a shared directory redirects a write elsewhere);
 *  - a caller's descriptor (stdout for `-`) is written through in order,
 *    never seeked back unless it is a regular file, never closed.
 * What is the same on Windows (afile_win32.c) is in afile_common.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "write.h"

static const char *file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

tsd_status tsd__afile_open_fd(tsd__afile *f, const tsd_allocator *al, int fd,
                              const char *name) {
  tsd__afile_init_fd(f, al, fd, name);
  struct stat st;
  if (fstat(fd, &st) != 0)
    return tsd__err(TSD_ERR_IO, "%s: cannot write: %s", f->name,
                    strerror(errno));
  if (S_ISDIR(st.st_mode))
    return tsd__err(TSD_ERR_INVALID_ARG, "%s: is a directory", f->name);
  off_t at = S_ISREG(st.st_mode) ? lseek(fd, 0, SEEK_CUR) : -1;
  f->seekable = at >= 0;
  f->base_off = at >= 0 ? (uint64_t)at : 0;
  return TSD_OK;
}

tsd_status tsd__afile_open_ex(tsd__afile *f, const tsd_allocator *al,
                              const char *path,
                              void (*temp_file)(void *, const char *),
                              void *temp_user, bool named) {
  tsd_status ist = tsd__afile_init_path(f, al, path, temp_file, temp_user);
  if (ist) return ist;
  const char *base = f->base;
  int dfd;
  do {
    dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } while (dfd < 0 && errno == EINTR);
  if (dfd < 0) {
    int e = errno;
    tsd__afile_abort(f);
    return tsd__err(TSD_ERR_IO, "%s: cannot open its directory: %s", path,
                    strerror(e));
  }
  f->dirfd = dfd;

  struct stat old;
  bool keep = false;
  if (fstatat(dfd, base, &old, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISREG(old.st_mode)) {
      keep = true;
    } else if (!S_ISLNK(old.st_mode)) {
      tsd__afile_abort(f);
      return tsd__afile_not_regular(path, file_kind(old.st_mode));
    }
  } else if (errno != ENOENT) {
    int e = errno;
    tsd__afile_abort(f);
    return tsd__err(TSD_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
  }

  int fd =
      named ? -1 : openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
  if (fd < 0) {
    /* no O_TMPFILE here (EOPNOTSUPP, EISDIR on old kernels, ...): a named
     * temporary, reported to the host */
    char name[12];
    for (unsigned attempt = 0; attempt < 100 && fd < 0; attempt++) {
      tsd__afile_temp_name(name);
      fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd < 0 && errno != EEXIST && errno != EINTR) break;
    }
    if (fd < 0) {
      int e = errno;
      tsd__afile_abort(f);
      return tsd__err(TSD_ERR_IO, "%s: cannot create a file next to it: %s",
                      path, strerror(e));
    }
    memcpy(f->tmp, name, sizeof name);
    tsd__afile_notify(f, f->tmp);
  }
  f->fd = fd;
  f->seekable = true;
  if (keep) {
    /* the owner first: fchown may clear set-id bits that fchmod then sets;
     * both may fail for a file someone else owns (the new file is then
     * ours, with the old permission bits) */
    if (fchown(fd, old.st_uid, old.st_gid) != 0) { /* not ours to give */
    }
    if (fchmod(fd, old.st_mode & 07777) != 0) {
      int e = errno;
      tsd__afile_abort(f);
      return tsd__err(TSD_ERR_IO, "%s: cannot keep its mode: %s", path,
                      strerror(e));
    }
  }
  return TSD_OK;
}

tsd_status tsd__afile_write(tsd__afile *f, const void *p, size_t n) {
  const unsigned char *c = p;
  while (n) {
    size_t chunk = n > ((size_t)1 << 30) ? (size_t)1 << 30 : n;
    ssize_t r = write(f->fd, c, chunk);
    if (r < 0) {
      if (errno == EINTR) continue;
      return tsd__err(TSD_ERR_IO, "%s: write failed at offset %llu: %s",
                      f->name, (unsigned long long)f->off, strerror(errno));
    }
    c += r;
    n -= (size_t)r;
    f->off += (uint64_t)r;
  }
  return tsd__afile_progress(f);
}

tsd_status tsd__afile_pwrite(tsd__afile *f, uint64_t off, const void *p,
                             size_t n) {
  if (!f->seekable)
    return tsd__err(TSD_ERR_INVALID_ARG, "%s: cannot seek", f->name);
  const unsigned char *c = p;
  off += f->base_off;
  while (n) {
    ssize_t r = pwrite(f->fd, c, n, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return tsd__err(TSD_ERR_IO, "%s: write failed at offset %llu: %s",
                      f->name, (unsigned long long)off, strerror(errno));
    }
    c += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return TSD_OK;
}

static tsd_status fail_io(tsd__afile *f, const char *what, int e) {
  tsd__afile_abort(f);
  return tsd__err(TSD_ERR_IO, "%s: %s: %s", f->name, what, strerror(e));
}

tsd_status tsd__afile_commit(tsd__afile *f) {
  if (f->caller_fd) {
    memset(f, 0, sizeof *f);
    return TSD_OK;
  }
  if (fsync(f->fd) != 0) return fail_io(f, "fsync failed", errno);
  if (!f->tmp[0]) {
    /* O_TMPFILE: straight to the name when no file has it (atomic, nothing to
     * clean up); else to a short name renamed over the old file */
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
    int r = linkat(f->fd, "", f->dirfd, f->base, AT_EMPTY_PATH);
    if (r != 0 && errno != EEXIST)
      r = linkat(AT_FDCWD, proc, f->dirfd, f->base, AT_SYMLINK_FOLLOW);
    if (r != 0 && errno != EEXIST)
      return fail_io(f, "cannot give the file its name", errno);
    if (r != 0) {
      char name[12];
      for (unsigned attempt = 0; attempt < 100 && r != 0; attempt++) {
        tsd__afile_temp_name(name);
        r = linkat(f->fd, "", f->dirfd, name, AT_EMPTY_PATH);
        if (r != 0 && errno != EEXIST)
          r = linkat(AT_FDCWD, proc, f->dirfd, name, AT_SYMLINK_FOLLOW);
        if (r != 0 && errno != EEXIST) break;
      }
      if (r != 0) return fail_io(f, "cannot give the file a name", errno);
      memcpy(f->tmp, name, sizeof name);
      tsd__afile_notify(f, f->tmp);
    }
  }
  if (f->tmp[0]) {
    /* the output may have been replaced by something else since open */
    struct stat now;
    if (fstatat(f->dirfd, f->base, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
        !S_ISREG(now.st_mode) && !S_ISLNK(now.st_mode)) {
      tsd__afile_abort(f);
      return tsd__afile_not_regular(f->name, file_kind(now.st_mode));
    }
    if (renameat(f->dirfd, f->tmp, f->dirfd, f->base) != 0)
      return fail_io(f, "cannot rename the finished file into place", errno);
    f->tmp[0] = '\0';
    tsd__afile_notify(f, NULL);
  }
  tsd_status st = TSD_OK;
  /* the new name is durable only once the directory is */
  if (fsync(f->dirfd) != 0 && errno != EINVAL)
    st = tsd__err(TSD_ERR_IO, "%s: fsync of its directory failed: %s", f->name,
                  strerror(errno));
  int fd = f->fd;
  f->fd = -1;
  if (close(fd) != 0 && errno != EINTR && st == TSD_OK)
    st = tsd__err(TSD_ERR_IO, "%s: close failed: %s", f->name, strerror(errno));
  tsd__afile_abort(f);
  return st;
}

void tsd__afile_abort(tsd__afile *f) {
  if (f->caller_fd) {
    memset(f, 0, sizeof *f);
    return;
  }
  if (f->fd >= 0) close(f->fd);
  if (f->tmp[0] && f->dirfd >= 0) {
    unlinkat(f->dirfd, f->tmp, 0);
    tsd__afile_notify(f, NULL);
  }
  if (f->dirfd >= 0) close(f->dirfd);
  tsd__afile_release(f);
}
