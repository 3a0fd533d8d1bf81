/*
 * model.h — models (c_api/src/model/), over checkpoint/: the module tree
 * every model kind shares, and the kinds that need no LibTorch.
 *   model.c              the tree, C-owned models (tsd_model_new)
 *   torchscript_model.c  a TorchScript archive's tree, read-only
 *                        (tsd_model_open_torchscript_state)
 * The LibTorch kind is shim/torchscript.cpp (over every layer); without
 * LibTorch shim/torchscript_stub.c stands in for it.
 * Not installed; not public.
 */
#ifndef TSD_MODEL_H
#define TSD_MODEL_H

#include "checkpoint.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsd__afile tsd__afile;

/* ---- models (model.c) --------------------------------------------------- */

typedef struct tsd__mtensor {
  char *name;          /* full dotted name (owned) */
  const char *local;   /* last component, points into name */
  size_t module;       /* index of the owning module */
  tsd_tensor_role role;
  tsd_dtype dtype;
  size_t ndim;
  int64_t *shape;      /* owned */
  int64_t numel;
  void *data;          /* C-owned models: caller's memory, or the mapped
                          view it is bound to (views: `bound`) */
  void *handle;        /* model-kind specific (the shim's tensor) */
  void *own;           /* C-owned models: the caller's memory (may be NULL:
                          tsd_model_add_tensor_unbacked) */
  const tsd_checkpoint *bound; /* views: data borrowed from this checkpoint's
                                  map (TSD_LOAD_BIND), else NULL */
} tsd__mtensor;

typedef enum tsd__norm {
  TSD__NORM_NONE = 0,
  TSD__NORM_BATCH = 1,   /* _NormBase (BatchNorm*, SyncBatchNorm, Lazy...) */
  TSD__NORM_INSTANCE = 2 /* _InstanceNorm (also a _NormBase) */
} tsd__norm;

typedef struct tsd__module {
  char *prefix;        /* "" for the root, else dotted path (owned) */
  const char *local;   /* last component (into prefix) */
  char *type_name;     /* declared PyTorch class name, or NULL */
  int64_t version;     /* _metadata version to save */
  tsd__norm norm;
  size_t parent;       /* SIZE_MAX for the root */
  size_t *children;    /* module indices, registration order (owned) */
  size_t n_children, cap_children;
  size_t *tensors;     /* tensor indices, registration order (owned) */
  size_t n_tensors, cap_tensors;
  /* branch model: the module's class overrides set_extra_state
   * (tsd_model_set_extra_state; the shim for a scripted set_extra_state):
   * non-NULL extra_fn is called with prefix + "_extra_state"'s value */
  tsd_extra_state_fn extra_fn;
  void *extra_user;
} tsd__module;

typedef struct tsd__model_ops {
  /* Copies checkpoint tensor `src` (same numel as `t`, already validated)
   * into model tensor `t`, converting dtype. */
  tsd_status (*copy_in)(tsd_model *m, tsd__mtensor *t,
                        const tsd_checkpoint *c, const tsd__tensor *src,
                        const tsd__scratch *scratch);
  /* Reads model tensor `t` as C-contiguous `dtype` into dst. */
  tsd_status (*read)(const tsd_model *m, const tsd__mtensor *t,
                     tsd_dtype dtype, void *dst);
  /* Writes the model in its own format into `out` (tsd_model_save opens
   * and commits it). NULL: the model is saved as a torch.save .pth by
   * write/'s pth writer (C-owned models, models over a checkpoint). */
  tsd_status (*save)(const tsd_model *m, tsd__afile *out);
  /* Frees the kind-specific parts (impl, tensor handles). */
  void (*destroy)(tsd_model *m);
  /* Optional: reads elements [first, first + count) of `t` (C order) as
   * `dtype`, so writers stream a tensor in windows. NULL: writers read
   * tensors that are not in memory whole. */
  tsd_status (*read_range)(const tsd_model *m, const tsd__mtensor *t,
                           tsd_dtype dtype, uint64_t first, uint64_t count,
                           void *dst);
  /* Non-NULL: the model has a format of its own but cannot be written in
   * it; tsd_model_save (not as safetensors) fails with TSD_ERR_UNSUPPORTED,
   * "<output>: <no_save>". */
  const char *no_save;
} tsd__model_ops;

struct tsd_model {
  tsd_allocator alloc;     /* the caller's hooks, copied */
  const tsd_allocator *al; /* &alloc, or NULL for libc */
  char *class_name;
  tsd__module *modules;   /* modules[0] is the root */
  size_t n_modules, cap_modules;
  tsd__mtensor *tensors;
  size_t n_tensors, cap_tensors;
  tsd__strmap tensor_index;  /* name -> tensor index */
  tsd__strmap module_index;  /* prefix -> module index */
  const tsd__model_ops *ops;
  void *impl;
  size_t *order;  /* cached tsd__model_order (model.c); NULL when stale */
  /* tsd_model_from_checkpoint: any dict key is a tensor name; one that is
   * no module path ('', 'a..b') is a root tensor under its whole name */
  bool any_key_names;
};

/* Creates an empty model with a root module, for any model kind. */
tsd_status tsd__model_create(tsd_model **out, const char *class_name,
                             const tsd__model_ops *ops, void *impl,
                             const tsd_allocator *al);
/* Adds a tensor (name checked, modules on its path created). *out_index
 * may be NULL. `data`/`handle` stored as given. */
tsd_status tsd__model_add(tsd_model *m, const char *name, tsd_tensor_role role,
                          tsd_dtype dtype, size_t ndim, const int64_t *shape,
                          void *data, void *handle, size_t *out_index);
/* Finds or creates the module at `prefix`; sets its type if type_name is
 * not NULL. */
tsd_status tsd__model_module(tsd_model *m, const char *prefix,
                             const char *type_name, int64_t version,
                             size_t *out_index);
/* The norm kind PyTorch gives a class name ("BatchNorm2d" -> BATCH). */
tsd__norm tsd__norm_of_type(const char *type_name);
/* Tensor indices in state_dict order (pre-order: params, buffers, children).
 * Returns a new array of m->n_tensors (tsd__mem_free with m->al) or NULL on OOM. */
size_t *tsd__model_order(const tsd_model *m);
/* Module indices in pre-order (a new array of n_modules, or NULL). */
size_t *tsd__model_module_preorder(const tsd_model *m);
/* Index of the tensor named / the module at prefix (s, n): true if found. */
bool tsd__model_find_tensor(const tsd_model *m, const char *s, size_t n,
                            size_t *out);
bool tsd__model_find_module(const tsd_model *m, const char *s, size_t n,
                            size_t *out);

/* C-owned models (model.c). */
bool tsd__model_is_cown(const tsd_model *m);

/* libtsd_torch (shim/torchscript.cpp; shim/torchscript_stub.c without
 * LibTorch), not libtsd. Called only by tsd_model_open_torchscript, which
 * checks out, path and the options, and gives "cpu" for a NULL device; `al`
 * is the model's allocator (NULL: malloc). */
tsd_status tsd__torchscript_open(tsd_model **out, const char *path,
                                 const char *device, const tsd_allocator *al);

#ifdef __cplusplus
}
#endif

#endif /* TSD_MODEL_H */
