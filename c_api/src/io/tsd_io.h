/*
 * tsd_io.h — the input layer (c_api/src/io/), over base/ (not "io.h":
 * that would hide Windows' <io.h> from the layers above): byte sources (a file
 * read with pread, or caller memory), the storages and strided tensor views
 * that point into them, and the threaded tensor-read engine.
 *   source.c  byte sources; every input opened by path goes through here
 *   read.c    tensor reads: storage offsets, strides, byte order, dtype
 *             conversion, two threads for large reads, windows
 * Not installed; not public.
 */
#ifndef TSD_IO_H
#define TSD_IO_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- byte source (source.c) --------------------------------------------- */
typedef struct tsd__source {
  const tsd_allocator *al; /* for `name` */
  int fd;               /* -1 for memory */
  const uint8_t *mem;   /* non-NULL for memory */
  uint64_t size;
  char *name;           /* path, or "<memory>", for messages (owned) */
  /* Named by another file (a shard of an index), not by the user: until
   * its bytes prove to be a checkpoint, messages must not quote them (a
   * shard may be a symlink to any file the user can read). */
  bool indirect;
  /* TSD_OPEN_MAP: the whole file mapped read-only (checkpoint/mapview.c),
   * else NULL */
  const uint8_t *map;
} tsd__source;
tsd_status tsd__source_open_file(tsd__source *s, const char *path,
                                 const tsd_allocator *al);
tsd_status tsd__source_open_memory(tsd__source *s, const void *p, size_t n,
                                   const tsd_allocator *al);
void tsd__source_close(tsd__source *s);
/* false when the byte at `off` of a file source is known not to be in the
 * page cache (a read of it waits for the disk); true for memory, maps and
 * whenever the OS cannot tell (tsd__os_cached). */
bool tsd__source_cached(const tsd__source *s, uint64_t off);
/* Reads exactly n bytes at `off`; TSD_ERR_FORMAT if past the end (message
 * names `what` and the offset), TSD_ERR_IO on a read error. */
tsd_status tsd__source_read(const tsd__source *s, uint64_t off, void *dst,
                            size_t n, const char *what);


/* ---- storages and tensor views (what the readers build, io reads) ------- */

typedef struct tsd__storage {
  tsd_dtype dtype;
  uint64_t numel;       /* elements, as declared and checked */
  uint64_t nbytes;      /* numel * itemsize */
  uint64_t offset;      /* byte offset of the data in the source */
  const uint8_t *mem;   /* non-NULL: data lives here instead (synthetic) */
  const char *key;      /* storage key / record name, for messages */
  /* non-NULL: `offset` is in this source, not the checkpoint's own (the
   * shards of a sharded checkpoint, sharded.c) */
  const tsd__source *src;
  bool untyped;  /* a torch.storage.UntypedStorage (dtype uint8: bytes) */
  /* a big-endian file: reads reverse the bytes of each `swap`-byte unit
   * (the element, or each half of a complex element); 0 or 1: none */
  uint8_t swap;
  bool big_file; /* (platform) the file says `byteorder` big: an untyped
                  * storage viewed as a wider dtype swaps by that dtype */
} tsd__storage;

typedef struct tsd__tensor {
  tsd__storage *storage;
  tsd_dtype dtype;      /* == storage->dtype */
  size_t ndim;
  int64_t *shape;       /* ndim */
  int64_t *stride;      /* ndim, in elements */
  int64_t offset;       /* storage offset, elements */
  int64_t numel;
  bool is_parameter;
  bool contiguous;      /* C-contiguous (size-1 dims' strides ignored) */
  bool numpy;           /* a numpy.ndarray (objects.c), not a torch tensor */
} tsd__tensor;

/* ---- tensor reads (read.c) ---------------------------------------------- */

/* Memory a tensor read uses for its staging buffers instead of allocating:
 * tsd_load allocates it before copying anything, so that running out of
 * memory can never leave a model partly loaded. */
typedef struct tsd__scratch {
  uint8_t *p;
  size_t len;
  bool one_thread; /* tsd_load_options.threads == 1: start no worker */
} tsd__scratch;

/* Reads tensor `t` into dst as C-contiguous `dtype` (numel*itemsize bytes).
 * Storages without their own `src` are read from `src`; staging buffers are
 * allocated with `al`. Handles storage offset, strides, in-memory storages,
 * byte order, conversion; never reads outside the tensor's storage (checked
 * when the tensor was built). Staging buffers come from `scratch` when it is
 * large enough (see tsd__tensor_read_scratch); NULL scratch is allowed. */
tsd_status tsd__io_tensor_read(const tsd__source *src, const tsd_allocator *al,
                               const tsd__tensor *t, tsd_dtype dtype,
                               void *dst, const tsd__scratch *scratch);
/* The scratch bytes a read of `t` as `dtype` needs to allocate nothing
 * (0 for a same-dtype contiguous read or an in-memory storage). */
size_t tsd__tensor_read_scratch(const tsd__tensor *t, tsd_dtype dtype,
                                bool one_thread);
/* Reads elements [first, first + count) of tensor `t` (C order) as `dtype`
 * into dst, in strided sub-views of t (the writers' windows). */
tsd_status tsd__io_tensor_read_range(const tsd__source *src,
                                     const tsd_allocator *al,
                                     const tsd__tensor *t, tsd_dtype dtype,
                                     uint64_t first, uint64_t count,
                                     void *dst);

#ifdef __cplusplus
}
#endif

#endif /* TSD_IO_H */
