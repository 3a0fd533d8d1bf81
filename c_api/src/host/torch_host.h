/* torch_host.h — what libtsd lends its LibTorch part (libtsd_torch).
 *
 * libtsd never links LibTorch (issue 12): the TorchScript functions live in
 * libtsd_torch (shim/), which builds tsd models and checkpoints with the C
 * core's internal functions. libtsd.so exports none of those (hidden
 * visibility, cmake/tsd.map), so it lends them through one table instead,
 * reached by the one private symbol `tsd__torch_host_get` (torch_host.c). The
 * shim calls the C core only through it (shim/torchscript.cpp redirects the
 * names), so the same shim objects work in libtsd_torch.so over libtsd.so
 * and in libtsd_torch.a over libtsd.a, always over the one C core of the
 * process: one thread-local error, one definition of every struct.
 *
 * The shim reads tsd's internal structs directly (a model's impl, a
 * checkpoint's arena), so the two libraries must come from the same build:
 * the table carries the version and the sizes of those structs, and the
 * shim refuses a table that differs (its `err` is always safe to call).
 *
 * Plain C with forward declarations only: the tsd command's loader
 * (cli/torch_dl.c) includes it without internal.h, for `err`. */
#ifndef TSD_TORCH_HOST_H
#define TSD_TORCH_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tsd.h"

#ifdef __cplusplus
extern "C" {
#endif

struct tsd__arena;
struct tsd__strmap;
struct tsd__tensor;
struct tsd__scratch;
struct tsd__afile;
struct tsd__model_ops;
struct tsd__value;
struct tsd__parsed;

/* Bump when a field changes meaning; fields are only added at the end. */
#define TSD__TORCH_HOST_ABI 1

typedef struct tsd__torch_host {
  /* The stable prefix: never reordered, readable whatever else differs. */
  uint32_t abi;          /* TSD__TORCH_HOST_ABI */
  uint32_t version;      /* TSD_VERSION_NUMBER of libtsd */
  size_t size;           /* sizeof(tsd__torch_host) */
  tsd_status (*err)(tsd_status status, const char *fmt, ...)
#if defined(__GNUC__)
      __attribute__((format(printf, 2, 3)))
#endif
      ;
  /* sizeof the internal structs the shim reads or builds */
  size_t sizeof_model, sizeof_checkpoint, sizeof_value, sizeof_tensor,
      sizeof_storage, sizeof_mtensor;

  void *(*mem_calloc)(const tsd_allocator *al, size_t count, size_t size);
  char *(*mem_strdup)(const tsd_allocator *al, const char *s);
  void (*arena_init)(struct tsd__arena *a, uint64_t limit,
                     const tsd_allocator *al);
  void *(*arena_alloc)(struct tsd__arena *a, size_t n);
  void (*strmap_init)(struct tsd__strmap *m, const tsd_allocator *al);
  void (*convert)(void *dst, tsd_dtype dst_dtype, const void *src,
                  tsd_dtype src_dtype, size_t n);
  tsd_status (*open_regular)(const char *path, int *out_fd, uint64_t *size);
  tsd_status (*tensor_read)(const tsd_checkpoint *c,
                            const struct tsd__tensor *t, tsd_dtype dtype,
                            void *dst, const struct tsd__scratch *scratch);
  tsd_status (*model_create)(tsd_model **out, const char *class_name,
                             const struct tsd__model_ops *ops, void *impl,
                             const tsd_allocator *al);
  tsd_status (*model_add)(tsd_model *m, const char *name, tsd_tensor_role role,
                          tsd_dtype dtype, size_t ndim, const int64_t *shape,
                          void *data, void *handle, size_t *out_index);
  tsd_status (*model_module)(tsd_model *m, const char *prefix,
                             const char *type_name, int64_t version,
                             size_t *out_index);
  tsd_status (*afile_write)(struct tsd__afile *f, const void *p, size_t n);
  tsd_status (*torchscript_check)(const char *path);
  /* set_extra_state's argument: a checkpoint value's class and repr */
  const struct tsd__value *(*ckpt_val)(const tsd_checkpoint *c, size_t i);
  const char *(*object_class)(const struct tsd__value *v);
  const char *(*type_repr)(const struct tsd__value *v);
  /* the checkpoint from a parsed tree (tsd_checkpoint_open_torchscript) */
  tsd_status (*checkpoint_new)(tsd_checkpoint **out, const char *name,
                               const tsd_allocator *al);
  tsd_status (*checkpoint_adopt)(tsd_checkpoint *c,
                                 const struct tsd__parsed *p);
  /* an options struct's allocator: all three functions or none */
  tsd_status (*allocator_check)(const tsd_allocator *al, const char *fn);
  /* the value tree's one builder (value.h), for the checkpoint's dict */
  struct tsd__value *(*value_new)(struct tsd__arena *a, int kind);
  struct tsd__value *(*value_str)(struct tsd__arena *a, const char *s,
                                  size_t n);
  struct tsd__value *(*value_int)(struct tsd__arena *a, int64_t i);
  struct tsd__value *(*value_dict)(struct tsd__arena *a, size_t n,
                                   bool ordered);
  void (*value_dict_set)(struct tsd__value *d, struct tsd__value *k,
                         struct tsd__value *v);
} tsd__torch_host;

/* The table of the libtsd in this process (static storage, never NULL).
 * Exported by libtsd.so (default visibility) though not in tsd.h. */
TSD_API const tsd__torch_host *tsd__torch_host_get(void);

#ifdef __cplusplus
}
#endif

#endif /* TSD_TORCH_HOST_H */
