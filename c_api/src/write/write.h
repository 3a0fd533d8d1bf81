/*
 * write.h — writers (c_api/src/write/), over model/:
 *   afile.c              the one atomic output file every writer writes into
 *   afile_win32.c        the same on Windows (one of the two is built)
 *   afile_common.c       what the two share
 *   pth.c                a torch.save-compatible .pth (zip + pickle writer)
 *   safetensors_write.c  a safetensors file
 *   write.c              tsd_model_save(_ex), models over a checkpoint,
 *                        tensors streamed in windows, the output bound
 * Not installed; not public.
 */
#ifndef TSD_WRITE_H
#define TSD_WRITE_H

#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- output files (afile.c): the one atomic writer ---------------------- */
/* An output being written: an unnamed (O_TMPFILE) or ".tsd-XXXXXX" file in
 * the destination's directory, given its name by tsd__afile_commit (fsync,
 * link/rename, fsync of the directory), or a caller's descriptor written
 * through. The rules are at the top of afile.c. */
typedef struct tsd__afile {
  const tsd_allocator *al;
  const char *name; /* for messages: the path, or the descriptor's name */
  const char *path; /* the destination, NULL for a caller's descriptor */
  int fd, dirfd;
  char *dir, *base;  /* the destination's directory and last component */
  char tmp[12];      /* the named temporary in dir, "" if none */
  bool caller_fd;    /* fd is the caller's: written through, kept open */
  bool seekable;     /* tsd__afile_pwrite works */
  uint64_t base_off; /* a caller's regular file: where the output starts */
  uint64_t off;      /* bytes written so far */
  void (*temp_file)(void *user, const char *temp_path);
  void *temp_user;
  /* cli: tsd_save_options.progress, called by tsd__afile_write (set by
   * tsd_model_save after opening) */
  tsd_progress_fn progress;
  void *progress_user;
  uint64_t progress_total;
} tsd__afile;
/* Opens an output at `path` (refusing a non-regular file there) or on the
 * caller's descriptor `fd` (`name` for messages). On failure nothing is
 * left to clean up. */
tsd_status tsd__afile_open(tsd__afile *f, const tsd_allocator *al,
                           const char *path,
                           void (*temp_file)(void *, const char *),
                           void *temp_user);
tsd_status tsd__afile_open_fd(tsd__afile *f, const tsd_allocator *al, int fd,
                              const char *name);
/* tsd__afile_open; `named` skips O_TMPFILE (tests of the fallback). */
tsd_status tsd__afile_open_ex(tsd__afile *f, const tsd_allocator *al,
                              const char *path,
                              void (*temp_file)(void *, const char *),
                              void *temp_user, bool named);
/* Appends; TSD_ERR_IO naming the output and offset (a full disk: ENOSPC). */
tsd_status tsd__afile_write(tsd__afile *f, const void *p, size_t n);
/* Overwrites bytes already written at `off` (only when f->seekable). */
tsd_status tsd__afile_pwrite(tsd__afile *f, uint64_t off, const void *p,
                             size_t n);
/* Makes the file the destination, durably; on failure the old file is
 * intact and no temporary is left. Either way `f` is closed. */
tsd_status tsd__afile_commit(tsd__afile *f);
/* Drops the output (the old file stays). Safe on a closed/zeroed afile. */
void tsd__afile_abort(tsd__afile *f);

/* For afile.c and afile_win32.c only: their OS-independent part
 * (afile_common.c). */
/* Sets `f` up for a caller's descriptor (the fields; no check of `fd`). */
void tsd__afile_init_fd(tsd__afile *f, const tsd_allocator *al, int fd,
                        const char *name);
/* Sets `f` up for `path`: f->dir and f->base (its directory, "." if none,
 * and last component; '\\' separates too on Windows); refuses a path ending
 * in a separator. On failure `f` holds nothing. */
tsd_status tsd__afile_init_path(tsd__afile *f, const tsd_allocator *al,
                                const char *path,
                                void (*temp_file)(void *, const char *),
                                void *temp_user);
/* Frees f->dir and f->base and zeroes `f` (fd and dirfd -1): the end of
 * tsd__afile_abort once the OS has closed and removed what it must. */
void tsd__afile_release(tsd__afile *f);
/* A fresh ".tsd-XXXXXX" (11 characters and the NUL). */
void tsd__afile_temp_name(char out[12]);
/* f->dir + "/" + name, allocated with f->al (NULL when out of memory). */
char *tsd__afile_join(const tsd__afile *f, const char *name);
/* Tells the host (f->temp_file) the temporary's path, or NULL: none left. */
void tsd__afile_notify(tsd__afile *f, const char *name);
/* TSD_ERR_INVALID_ARG: "`name`: is `kind`; tsd writes regular files only
 * ..." (kind: "a directory", "a FIFO", ...). */
tsd_status tsd__afile_not_regular(const char *name, const char *kind);
/* After each write: the save's progress callback (done = bytes written so
 * far, at most progress_total); TSD_ERR_CANCELED when it returns non-zero.
 * Both OS writers call it, so a save reports progress on every OS. */
tsd_status tsd__afile_progress(const tsd__afile *f);

/* Bytes a writer reads from a model at a time (tensors not in memory are
 * streamed through a buffer this large, never held whole). */
#define TSD__WRITE_WINDOW ((size_t)4 << 20)

/* safetensors_write.c: writes the model's persistent tensors (state_dict
 * order) as a safetensors file into `out`. */
tsd_status tsd__save_safetensors(const tsd_model *m, tsd__afile *out);

/* pth.c: writes a C-owned model as a torch.save .pth into `out`. */
tsd_status tsd__save_pth(const tsd_model *m, tsd__afile *out);
/* Hands the bytes of model tensor `t` (its own dtype, C order) to `sink`
 * in order: at once when in memory, else in windows read into `win`
 * (TSD__WRITE_WINDOW bytes) through the model's read_range, else (a model
 * kind without one) read whole into a temporary (write.c). */
typedef tsd_status (*tsd__sink_fn)(void *ctx, const void *p, size_t n);
tsd_status tsd__model_stream(const tsd_model *m, const tsd__mtensor *t,
                             void *win, tsd__sink_fn sink, void *ctx);
/* tsd__save_pth to a path, with ZIP64 fields for every size/offset >=
 * zip64_at (tests force ZIP64 on small files; tsd__save_pth uses
 * 0xFFFFFFFF). */
tsd_status tsd__save_pth_ex(const tsd_model *m, const char *path,
                            uint64_t zip64_at);

#ifdef __cplusplus
}
#endif

#endif /* TSD_WRITE_H */
