/*
 * load.h — load_state_dict (c_api/src/load/), over model/:
 *   engine.c  tsd_load: PyTorch's load_state_dict rules, copying last
 *   remap.c   the keys a load sees (strip/rename/add prefixes, with
 *             `_metadata`), automatic state-dict selection
 *   report.c  reports, PyTorch's message texts, JSON
 * Not installed; not public.
 */
#ifndef TSD_LOAD_H
#define TSD_LOAD_H

#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- reports (report.c), built by the engine ----------------------------- */
/* All return TSD_OK or TSD_ERR_NOMEM. */
/* The report allocates with `al` (the model's allocator; NULL: libc). */
tsd_status tsd__report_new(tsd_report **out, const char *class_name,
                           const tsd_allocator *al);
/* Appends a copy of `text` to a string list (MISSING, UNEXPECTED, ERRORS). */
tsd_status tsd__report_add(tsd_report *r, tsd_list list, const char *text,
                           size_t len);
/* TSD_LIST_MISMATCHED: appends the size-mismatch error text to the error
 * list and the entry; TSD_LIST_POPPED: the entry only. */
tsd_status tsd__report_add_mismatch(tsd_report *r, tsd_list list,
                                    const char *key, size_t ckpt_ndim,
                                    const int64_t *ckpt_shape,
                                    size_t model_ndim,
                                    const int64_t *model_shape);
/* load_state_dict's ending: the strict Missing/Unexpected lines, ok, the
 * message and the JSON. */
tsd_status tsd__report_finish(tsd_report *r, bool strict);
/* Appends "torch.Size([1000, 768])". */
void tsd__shape_repr(tsd__buf *b, size_t ndim, const int64_t *shape);

/* ---- key remapping (remap.c), used by the engine ------------------------ */

/* The keys of a checkpoint's current dict as one load sees them, after the
 * tsd_load_options remapping (strip, rename, add). */
typedef struct tsd__vkey {
  const char *name; /* as the model sees it (borrowed or in `arena`) */
  size_t len;
  size_t src;       /* index in the checkpoint's current dict */
} tsd__vkey;

typedef struct tsd__remap {
  const char *const *strip;
  size_t n_strip;
  const tsd_rename *renames;
  size_t n_renames;
  const char *add;     /* NULL or "" for none */
  bool strip_metadata; /* 2.x's consume_prefix also strips `_metadata` */
} tsd__remap;

typedef struct tsd__keyview {
  const tsd_checkpoint *c;
  const tsd_allocator *al; /* the loading model's */
  bool identity;       /* no remapping: names and order are the dict's */
  size_t n;
  tsd__vkey *keys;     /* n, in the order the load sees them */
  tsd__strmap map;     /* name -> position in keys */
  tsd__arena arena;
  /* `_metadata` after remapping, when it changes (else meta_names NULL) */
  const tsd__value *meta;
  tsd__vkey *meta_names; /* src = index into meta_versions */
  int64_t *meta_versions;
  size_t n_meta;
  tsd__strmap meta_map;
} tsd__keyview;

/* Builds the view; `r` NULL means no remapping. TSD_ERR_INVALID_ARG for a
 * bad rule or two keys remapped to one name, TSD_ERR_NOMEM. */
tsd_status tsd__keyview_build(tsd__keyview *v, const tsd_checkpoint *c,
                              const tsd__remap *r, const tsd_allocator *al);
void tsd__keyview_free(tsd__keyview *v);
/* Position of `key` in the view. */
bool tsd__keyview_find(const tsd__keyview *v, const char *key, size_t len,
                       size_t *out);
/* The `_metadata` version of module `prefix` as the model names it, or -1. */
int64_t tsd__keyview_version(const tsd__keyview *v, const char *prefix);

#ifdef __cplusplus
}
#endif

#endif /* TSD_LOAD_H */
