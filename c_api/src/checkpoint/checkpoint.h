/*
 * checkpoint.h — checkpoints (c_api/src/checkpoint/), over formats/: the
 * public tsd_checkpoint_* API over a parsed tree, and the view of its
 * current dict (select, pop) that the load and the writers read.
 *   checkpoint.c      opening, the one constructor, the view, entries, reads
 *   file_metadata.c   a file's own metadata (safetensors, sharded index)
 * Not installed; not public.
 */
#ifndef TSD_CHECKPOINT_H
#define TSD_CHECKPOINT_H

#include "formats.h"

#ifdef __cplusplus
extern "C" {
#endif

struct tsd_checkpoint {
  tsd_allocator alloc;     /* the caller's hooks, copied */
  const tsd_allocator *al; /* &alloc, or NULL for libc */
  tsd__source src;
  tsd__arena arena;
  tsd__parsed parsed;
  tsd__value *current;   /* the current dict, or NULL if the root is no dict */
  /* live view of `current`: positions into current->u.dict, popped removed */
  size_t *live;
  size_t n_live;
  tsd__strmap index;     /* key -> position in `live` */
  tsd_status view_status;/* non-OK if a key is not a str or is duplicated */
  char *view_error;      /* message for view_status */
  uint64_t max_output_ratio; /* tsd_limits.max_output_ratio, 0: default */
};

/* Current-dict access for the engine. Keys are TSD__V_STR values. */
size_t tsd__ckpt_count(const tsd_checkpoint *c);
const tsd__value *tsd__ckpt_key(const tsd_checkpoint *c, size_t i);
const tsd__value *tsd__ckpt_val(const tsd_checkpoint *c, size_t i);
bool tsd__ckpt_lookup(const tsd_checkpoint *c, const char *key, size_t len,
                      size_t *out_i);
/* The current dict's `_metadata` (a dict value) or NULL. */
const tsd__value *tsd__ckpt_metadata(const tsd_checkpoint *c);
/* `_metadata`[prefix]['version'] or -1. */
int64_t tsd__metadata_version(const tsd__value *metadata, const char *prefix);

/* ---- the one constructor (checkpoint.c) ---------------------------------
 * Every checkpoint is made by these two, whatever built its tree: the
 * readers (tsd_checkpoint_open), the shim (a TorchScript module's tensors)
 * and the tests.
 *
 * A new empty checkpoint allocating with `al` (NULL: libc; the caller has
 * checked it). Its source is closed (fd -1) and named `name` (copied) for
 * messages; NULL leaves it unnamed, for tsd_checkpoint_open to open one. */
tsd_status tsd__checkpoint_new(tsd_checkpoint **out, const char *name,
                               const tsd_allocator *al);
/* Makes `p` (its values in c->arena, its shards opened with c->al) the
 * checkpoint's tree and its root the current dict (a pickled nn.Module's
 * state dict, or none for a root that is no dict). The checkpoint owns p's
 * shards from here, even on failure (TSD_ERR_NOMEM); free it with
 * tsd_checkpoint_free either way. A dict whose keys are not distinct
 * strings still opens, with the view_status the load and find report. */
tsd_status tsd__checkpoint_adopt(tsd_checkpoint *c, const tsd__parsed *p);

/* ---- tensor reads of a checkpoint (io's engine on its source) ---------- */

/* tsd__io_tensor_read from the checkpoint's source, staging buffers from
 * its allocator. */
tsd_status tsd__tensor_read(const tsd_checkpoint *c, const tsd__tensor *t,
                            tsd_dtype dtype, void *dst,
                            const tsd__scratch *scratch);
/* tsd__io_tensor_read_range from the checkpoint's source: elements
 * [first, first + count) of `t` (C order) as `dtype`. */
tsd_status tsd__tensor_read_range(const tsd_checkpoint *c, const tsd__tensor *t,
                                  tsd_dtype dtype, uint64_t first,
                                  uint64_t count, void *dst);

/* ---- views (branch `views`): mapped views, binding, ranged reads -------- */
/* mapview.c: maps s (a file source) whole, read-only, shared (s->map). An
 * empty file is not mapped (nothing in it can be viewed). The platform
 * part is these two functions. */
tsd_status tsd__source_map(tsd__source *s);
void tsd__source_unmap(tsd__source *s);
/* The address of tensor t's element 0 where its bytes lie (the map, the
 * caller's memory of tsd_checkpoint_open_memory, or memory the checkpoint
 * holds), for a view: TSD_OK, or TSD_ERR_UNSUPPORTED with the reason as
 * the message (not mapped, big-endian, misaligned). `key` names it. */
tsd_status tsd__tensor_view(const tsd_checkpoint *c, const tsd__tensor *t,
                            const char *key, const void **out);

#ifdef __cplusplus
}
#endif

#endif /* TSD_CHECKPOINT_H */
