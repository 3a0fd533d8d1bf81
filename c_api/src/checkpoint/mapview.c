/* mapview.c — read-only memory maps of checkpoint files (TSD_OPEN_MAP),
 * views into them (tsd_checkpoint_view), and ranged reads of checkpoint and
 * model tensors.
 *
 * A map is opt-in because a mapped file that is truncated while mapped
 * raises SIGBUS in the host when a lost page is touched (source.c reads
 * with pread so that this cannot happen by default). The map is shared and
 * read-only: every process mapping one file shares its page cache pages,
 * and a write through a view faults instead of changing the checkpoint.
 *
 * The platform part is tsd__source_map / tsd__source_unmap: POSIX mmap, or
 * CreateFileMapping + MapViewOfFile on Windows. */
#include <string.h>

#include "checkpoint.h"

#ifdef _WIN32
#include <io.h>
#include <windows.h>
#else
#include <errno.h>
#include <sys/mman.h>
#endif

/* ---- the map ------------------------------------------------------------ */

tsd_status tsd__source_map(tsd__source *s) {
  if (s->map || s->fd < 0 || s->size == 0) return TSD_OK;
  if (s->size > (uint64_t)SIZE_MAX)
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: %llu bytes cannot be mapped in this address space",
                    s->name, (unsigned long long)s->size);
#ifdef _WIN32
  HANDLE fh = (HANDLE)_get_osfhandle(s->fd);
  if (fh == INVALID_HANDLE_VALUE)
    return tsd__err(TSD_ERR_IO, "%s: cannot map: no file handle", s->name);
  HANDLE mh = CreateFileMappingW(fh, NULL, PAGE_READONLY, 0, 0, NULL);
  if (!mh)
    return tsd__err(TSD_ERR_IO, "%s: cannot map: CreateFileMapping error %lu",
                    s->name, (unsigned long)GetLastError());
  void *p = MapViewOfFile(mh, FILE_MAP_READ, 0, 0, (SIZE_T)s->size);
  DWORD e = GetLastError();
  CloseHandle(mh); /* the view keeps the mapping alive */
  if (!p)
    return tsd__err(TSD_ERR_IO, "%s: cannot map: MapViewOfFile error %lu",
                    s->name, (unsigned long)e);
#else
  void *p = mmap(NULL, (size_t)s->size, PROT_READ, MAP_SHARED, s->fd, 0);
  if (p == MAP_FAILED)
    return tsd__err(TSD_ERR_IO, "%s: cannot map: %s", s->name,
                    strerror(errno));
#endif
  s->map = p;
  return TSD_OK;
}

void tsd__source_unmap(tsd__source *s) {
  if (!s || !s->map) return;
#ifdef _WIN32
  UnmapViewOfFile(s->map);
#else
  munmap(TSD__UNCONST(void *, s->map), (size_t)s->size);
#endif
  s->map = NULL;
}

/* ---- views -------------------------------------------------------------- */

static bool host_little_endian(void) {
  const uint16_t one = 1;
  uint8_t b;
  memcpy(&b, &one, 1);
  return b == 1;
}

tsd_status tsd__tensor_view(const tsd_checkpoint *c, const tsd__tensor *t,
                            const char *key, const void **out) {
  *out = NULL;
  const tsd__storage *s = t->storage;
  const size_t isz = tsd_dtype_size(t->dtype);
  const uint8_t *base;
  const char *where;
  if (s->mem) {
    base = s->mem; /* bytes the checkpoint holds (TorchScript copies) */
    where = "memory";
  } else {
    const tsd__source *src = s->src ? s->src : &c->src;
    if (src->mem) {
      base = src->mem + s->offset; /* tsd_checkpoint_open_memory's bytes */
      where = "memory";
    } else if (src->map) {
      base = src->map + s->offset;
      where = "file";
    } else {
      return tsd__err(TSD_ERR_UNSUPPORTED,
                      "\"%s\": not viewable: %s is not mapped (open the "
                      "checkpoint with the TSD_OPEN_MAP flag)",
                      key, src->name ? src->name : "the file");
    }
  }
  /* On a big-endian host a storage that needs no swap may be stored
   * big-endian and one that does little-endian: views are refused there
   * (documented), and the reason given is the host. */
  if (isz > 1 && !host_little_endian())
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "\"%s\": not viewable: views need a little-endian host "
                    "and this host is big-endian",
                    key);
  if (!s->mem && s->swap > 1)
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "\"%s\": not viewable: the file stores it big-endian "
                    "(reads swap its bytes)",
                    key);
  /* The offset was checked against the storage when the tensor was built. */
  const uint8_t *p = base + (uint64_t)t->offset * isz;
  /* Aligned to the element size, at most 8 bytes: what C's and c10's
   * types need (a complex128 is two doubles). */
  const size_t align = isz < 8 ? isz : 8;
  if (align > 1 && (uintptr_t)p % align != 0)
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "\"%s\": not viewable: its data at %s offset %llu is not "
                    "aligned to %zu bytes (%s)",
                    key, where,
                    (unsigned long long)(s->mem ? (uint64_t)t->offset * isz
                                                : s->offset +
                                                      (uint64_t)t->offset * isz),
                    align, tsd_dtype_name(t->dtype));
  *out = p;
  return TSD_OK;
}

/* The tensor at `index` of the current dict, or an error naming why not. */
static tsd_status entry_tensor(const tsd_checkpoint *c, size_t index,
                               const char *fn, const tsd__tensor **out,
                               const char **key) {
  if (!c) return tsd__err(TSD_ERR_INVALID_ARG, "%s: checkpoint is NULL", fn);
  if (index >= tsd__ckpt_count(c))
    return tsd__err(TSD_ERR_NOT_FOUND,
                    "%s: entry %zu does not exist (the dict has %zu)", fn,
                    index, tsd__ckpt_count(c));
  const tsd__value *k = tsd__ckpt_key(c, index);
  *key = k && k->kind == TSD__V_STR ? k->u.s.p : "?";
  const tsd__value *v = tsd__ckpt_val(c, index);
  if (v->kind != TSD__V_TENSOR)
    return tsd__err(TSD_ERR_TYPE, "%s: \"%s\" is a %s, not a tensor", fn,
                    *key, tsd__type_repr(v));
  *out = v->u.tensor;
  return TSD_OK;
}

TSD_API tsd_status tsd_checkpoint_view(tsd_tensor_view *out,
                                       const tsd_checkpoint *ckpt,
                                       size_t index) {
  if (!out)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_checkpoint_view: out is NULL");
  memset(out, 0, sizeof *out);
  const tsd__tensor *t;
  const char *key;
  tsd_status st = entry_tensor(ckpt, index, "tsd_checkpoint_view", &t, &key);
  if (st) return st;
  const void *p;
  if ((st = tsd__tensor_view(ckpt, t, key, &p))) return st;
  out->data = p;
  out->dtype = t->dtype;
  out->ndim = t->ndim;
  out->shape = t->shape;
  out->strides = t->stride;
  out->numel = t->numel;
  out->contiguous = t->contiguous;
  return TSD_OK;
}

/* ---- ranged reads -------------------------------------------------------- */

/* first + count within numel, dst large enough; `what` names the tensor. */
static tsd_status check_range(const char *fn, const char *what, int64_t numel,
                              tsd_dtype dtype, uint64_t first, uint64_t count,
                              const void *dst, size_t dst_bytes) {
  uint64_t end, need;
  const uint64_t n = numel > 0 ? (uint64_t)numel : 0;
  if (!tsd__add_u64(first, count, &end) || end > n)
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "%s: \"%s\": elements [%llu, %llu + %llu) are not within "
                    "its %llu elements",
                    fn, what, (unsigned long long)first,
                    (unsigned long long)first, (unsigned long long)count,
                    (unsigned long long)n);
  if (!tsd__mul_u64(count, tsd_dtype_size(dtype), &need) || need > dst_bytes)
    return tsd__err(TSD_ERR_BUFFER,
                    "%s: \"%s\": %llu elements of %s need %llu bytes, the "
                    "buffer has %zu",
                    fn, what, (unsigned long long)count, tsd_dtype_name(dtype),
                    (unsigned long long)(count * tsd_dtype_size(dtype)),
                    dst_bytes);
  if (need && !dst)
    return tsd__err(TSD_ERR_INVALID_ARG, "%s: dst is NULL", fn);
  return TSD_OK;
}

TSD_API tsd_status tsd_checkpoint_read_range(void *dst, size_t dst_bytes,
                                             const tsd_checkpoint *ckpt,
                                             size_t index, tsd_dtype dtype,
                                             uint64_t first, uint64_t count) {
  static const char fn[] = "tsd_checkpoint_read_range";
  if (!tsd__dtype_valid((int)dtype))
    return tsd__err(TSD_ERR_INVALID_ARG, "%s: invalid dtype %d", fn,
                    (int)dtype);
  const tsd__tensor *t;
  const char *key;
  tsd_status st = entry_tensor(ckpt, index, fn, &t, &key);
  if (st) return st;
  if ((st = check_range(fn, key, t->numel, dtype, first, count, dst,
                        dst_bytes)))
    return st;
  if (!count) return TSD_OK;
  return tsd__tensor_read_range(ckpt, t, dtype, first, count, dst);
}
