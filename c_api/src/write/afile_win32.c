/* afile_win32.c — tsd__afile on Windows: the output written whole or not at
 * all, as afile.c does on POSIX.
 *  - the data goes to a named ".tsd-XXXXXX" in the destination's directory
 *    (Windows has no unnamed files), reported to the host through
 *    tsd_save_options.temp_file; a failure deletes it;
 *  - commit: FlushFileBuffers, close, then ReplaceFileW over an existing
 *    output (which keeps its attributes and security descriptor) or
 *    MoveFileExW (MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH) to a
 *    new name: either the old file or the new one is at the path, never a
 *    part;
 *  - only regular files are replaced: a directory or a device at the path is
 *    refused;
 *  - paths are UTF-8, opened as UTF-16 (the W functions);
 *  - every write carries its offset (WriteFile with OVERLAPPED), so files
 *    past 4 GiB work; a caller's descriptor (stdout for `-`) is written
 *    through in order, never closed.
 * What is the same on POSIX (afile.c) is in afile_common.c. */
#ifdef _WIN32
#include <windows.h>
#include <io.h>
#include <string.h>

#include "write.h"
#include "platform.h"

static tsd_status win_err(const char *name, const char *what, DWORD e) {
  char et[TSD__OS_ERRTEXT_CAP];
  return tsd__err(TSD_ERR_IO, "%s: %s: %s", name, what,
                  tsd__os_error_text(e, et, sizeof et));
}

static HANDLE handle_of(const tsd__afile *f) {
  return (HANDLE)_get_osfhandle(f->fd);
}

tsd_status tsd__afile_open_fd(tsd__afile *f, const tsd_allocator *al, int fd,
                              const char *name) {
  tsd__afile_init_fd(f, al, fd, name);
  HANDLE h = handle_of(f);
  if (h == INVALID_HANDLE_VALUE)
    return tsd__err(TSD_ERR_IO, "%s: cannot write: not an open descriptor",
                    f->name);
  if (GetFileType(h) == FILE_TYPE_DISK) {
    LARGE_INTEGER zero, at;
    zero.QuadPart = 0;
    if (SetFilePointerEx(h, zero, &at, FILE_CURRENT)) {
      f->seekable = true;
      f->base_off = (uint64_t)at.QuadPart;
    }
  }
  return TSD_OK;
}

tsd_status tsd__afile_open_ex(tsd__afile *f, const tsd_allocator *al,
                              const char *path,
                              void (*temp_file)(void *, const char *),
                              void *temp_user, bool named) {
  (void)named; /* always named on Windows */
  tsd_status ist = tsd__afile_init_path(f, al, path, temp_file, temp_user);
  if (ist) return ist;
  wchar_t *w = tsd__win_wide(path);
  if (!w) {
    tsd__afile_abort(f);
    return tsd__win_path_error(path);
  }
  WIN32_FILE_ATTRIBUTE_DATA old;
  BOOL exists = GetFileAttributesExW(w, GetFileExInfoStandard, &old);
  DWORD e = exists ? 0 : GetLastError();
  tsd__mem_free(NULL, w);
  if (exists && (old.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)) {
    tsd__afile_abort(f);
    return tsd__afile_not_regular(path, "a directory");
  }
  if (!exists && e != ERROR_FILE_NOT_FOUND) {
    tsd__afile_abort(f);
    if (e == ERROR_PATH_NOT_FOUND)
      return win_err(path, "cannot open its directory", e);
    return win_err(path, "cannot stat", e);
  }
  char name[12];
  HANDLE h = INVALID_HANDLE_VALUE;
  e = 0;
  for (unsigned attempt = 0; attempt < 100 && h == INVALID_HANDLE_VALUE;
       attempt++) {
    tsd__afile_temp_name(name);
    char *tp = tsd__afile_join(f, name);
    wchar_t *tw = tp ? tsd__win_wide(tp) : NULL;
    tsd__mem_free(al, tp);
    if (!tw) {
      tsd__afile_abort(f);
      return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", path);
    }
    h = CreateFileW(tw, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ, NULL,
                    CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL);
    e = h == INVALID_HANDLE_VALUE ? GetLastError() : 0;
    tsd__mem_free(NULL, tw);
    if (h == INVALID_HANDLE_VALUE && e != ERROR_FILE_EXISTS &&
        e != ERROR_ALREADY_EXISTS)
      break;
  }
  if (h == INVALID_HANDLE_VALUE) {
    tsd__afile_abort(f);
    return win_err(path, "cannot create a file next to it", e);
  }
  int fd = _open_osfhandle((intptr_t)h, 0);
  if (fd < 0) {
    CloseHandle(h);
    char *tp = tsd__afile_join(f, name);
    wchar_t *tw = tp ? tsd__win_wide(tp) : NULL;
    if (tw) DeleteFileW(tw);
    tsd__mem_free(NULL, tw);
    tsd__mem_free(al, tp);
    tsd__afile_abort(f);
    return tsd__err(TSD_ERR_IO, "%s: out of file descriptors", path);
  }
  memcpy(f->tmp, name, sizeof name);
  tsd__afile_notify(f, f->tmp);
  f->fd = fd;
  f->seekable = true;
  return TSD_OK;
}

static tsd_status write_at(tsd__afile *f, const void *p, size_t n,
                           bool positioned, uint64_t off) {
  HANDLE h = handle_of(f);
  const unsigned char *c = p;
  while (n) {
    DWORD chunk = n > ((size_t)1 << 30) ? (DWORD)1 << 30 : (DWORD)n;
    DWORD w = 0;
    BOOL ok;
    if (positioned) {
      OVERLAPPED ov;
      memset(&ov, 0, sizeof ov);
      ov.Offset = (DWORD)off;
      ov.OffsetHigh = (DWORD)(off >> 32);
      ok = WriteFile(h, c, chunk, &w, &ov);
    } else {
      ok = WriteFile(h, c, chunk, &w, NULL);
    }
    if (!ok || w == 0) {
      char et[TSD__OS_ERRTEXT_CAP];
      return tsd__err(TSD_ERR_IO, "%s: write failed at offset %llu: %s",
                      f->name, (unsigned long long)off,
                      ok ? "nothing written"
                         : tsd__os_error_text(GetLastError(), et, sizeof et));
    }
    c += w;
    n -= w;
    off += w;
  }
  return TSD_OK;
}

tsd_status tsd__afile_write(tsd__afile *f, const void *p, size_t n) {
  /* A positioned write leaves the handle's position after the bytes it
   * wrote, so on a seekable file every write names its offset; a pipe or
   * console is written in order. */
  tsd_status st = write_at(f, p, n, f->seekable, f->base_off + f->off);
  if (st) return st;
  f->off += n;
  return tsd__afile_progress(f);
}

tsd_status tsd__afile_pwrite(tsd__afile *f, uint64_t off, const void *p,
                             size_t n) {
  if (!f->seekable)
    return tsd__err(TSD_ERR_INVALID_ARG, "%s: cannot seek", f->name);
  return write_at(f, p, n, true, f->base_off + off);
}

tsd_status tsd__afile_commit(tsd__afile *f) {
  if (f->caller_fd) {
    /* the caller's file position follows what was written, as after
     * write(2) on POSIX */
    if (f->seekable) {
      LARGE_INTEGER to;
      to.QuadPart = (LONGLONG)(f->base_off + f->off);
      SetFilePointerEx(handle_of(f), to, NULL, FILE_BEGIN);
    }
    memset(f, 0, sizeof *f);
    return TSD_OK;
  }
  HANDLE h = handle_of(f);
  if (!FlushFileBuffers(h)) {
    DWORD e = GetLastError();
    tsd__afile_abort(f);
    return win_err(f->name, "flush failed", e);
  }
  int fd = f->fd;
  f->fd = -1;
  if (_close(fd) != 0) {
    tsd__afile_abort(f);
    return tsd__err(TSD_ERR_IO, "%s: close failed", f->name);
  }
  char *tp = tsd__afile_join(f, f->tmp);
  wchar_t *tw = tp ? tsd__win_wide(tp) : NULL;
  wchar_t *dw = tsd__win_wide(f->path);
  tsd__mem_free(f->al, tp);
  if (!tw || !dw) {
    tsd__mem_free(NULL, tw);
    tsd__mem_free(NULL, dw);
    tsd__afile_abort(f);
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", f->name);
  }
  /* the output may have been replaced by a directory since open */
  DWORD attr = GetFileAttributesW(dw);
  tsd_status st = TSD_OK;
  if (attr != INVALID_FILE_ATTRIBUTES && (attr & FILE_ATTRIBUTE_DIRECTORY)) {
    st = tsd__afile_not_regular(f->name, "a directory");
  } else {
    BOOL ok = FALSE;
    if (attr != INVALID_FILE_ATTRIBUTES && !(attr & FILE_ATTRIBUTE_REPARSE_POINT))
      ok = ReplaceFileW(dw, tw, NULL, REPLACEFILE_IGNORE_MERGE_ERRORS, NULL,
                        NULL);
    if (!ok)
      ok = MoveFileExW(tw, dw,
                       MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH);
    if (!ok)
      st = win_err(f->name, "cannot rename the finished file into place",
                   GetLastError());
    else {
      f->tmp[0] = '\0';
      tsd__afile_notify(f, NULL);
    }
  }
  tsd__mem_free(NULL, tw);
  tsd__mem_free(NULL, dw);
  tsd__afile_abort(f);
  return st;
}

void tsd__afile_abort(tsd__afile *f) {
  if (f->caller_fd) {
    memset(f, 0, sizeof *f);
    return;
  }
  if (f->fd >= 0) _close(f->fd);
  if (f->tmp[0] && f->dir) {
    char *tp = tsd__afile_join(f, f->tmp);
    wchar_t *tw = tp ? tsd__win_wide(tp) : NULL;
    if (tw) DeleteFileW(tw);
    tsd__mem_free(NULL, tw);
    tsd__mem_free(f->al, tp);
    tsd__afile_notify(f, NULL);
  }
  tsd__afile_release(f);
}
#endif
