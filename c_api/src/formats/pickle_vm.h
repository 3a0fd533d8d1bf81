/* pickle_vm.h — the interface between the generic pickle machine
 * (pickle_vm.c) and what a pickle's globals mean (torch_globals.c).
 *
 * The machine knows opcodes, the stack, the memo, marks and the limits; it
 * never decides what a global is or does. For GLOBAL / STACK_GLOBAL it asks
 * tsd__pk_global, for REDUCE tsd__pk_reduce, for NEWOBJ tsd__pk_newobj and
 * for BUILD tsd__pk_build. Those build their results with the machine's
 * constructors below, which count objects (limits.max_objects), allocate in
 * the arena (bounded by its limit) and keep container depth
 * (limits.max_depth), so every limit holds whatever the globals side makes.
 */
#ifndef TSD_PICKLE_VM_H
#define TSD_PICKLE_VM_H

#include "formats.h"

typedef struct tsd__pk {
  const uint8_t *buf;
  size_t len, pos;
  tsd__arena *arena;
  const tsd__limits *lim;
  tsd__persistent_fn persistent;
  tsd__persistent_ctx *pctx;
  const char *what;
  tsd__value **stack;
  size_t sp, scap;
  size_t *marks; /* stack heights at each MARK */
  size_t nmarks, mcap;
  tsd__value **memo;
  size_t nmemo, memocap;
  uint64_t nobjects;
  size_t op_off;
  uint8_t op;
  bool truncated;
  tsd__value *v_none, *v_true, *v_false, *v_empty_tuple;
  /* Shared nodes for the ints 0..TSD__PK_SMALL_INTS-1: a saved tensor's
   * offset, sizes, strides and storage numel are mostly small, and a
   * checkpoint of tens of thousands of tensors would otherwise spend most of
   * its value tree on them (bench/notes.md). Ints are immutable, so sharing
   * is safe. */
  tsd__value **small_ints;
  /* The parse's memory budget (branch `parse`): the arena limit at the
   * start, at most tsd__parse_budget of the input; `aux` bytes of working
   * arrays (stack, marks, memo, small_ints) outside the arena count against
   * it too, so the arena's limit is `limit - aux` while the parse runs. */
  uint64_t limit, base; /* base: arena->total at the start */
  size_t aux;
  bool over; /* the last failed arena allocation hit the limit */
} tsd__pk;

#define TSD__PK_SMALL_INTS 1024

/* tsd__value.flags: a container placed inside another one (pickle_vm.c) */
#define TSD__VF_FROZEN 0x100u

#define TSD__PK_TRY(x)                                                         \
  do {                                                                         \
    tsd_status st_ = (x);                                                      \
    if (st_ != TSD_OK) return st_;                                             \
  } while (0)

/* ---- pickle_vm.c: the machine's services ----------------------------------
 */

/* An error naming the pickle, the opcode's offset and the opcode. */
tsd_status tsd__pk_fail(tsd__pk *u, tsd_status st, const char *fmt, ...)
    TSD_PRINTF(3, 4);
/* Out of arena memory: TSD_ERR_LIMIT when the arena's limit is the cause. */
tsd_status tsd__pk_oom(tsd__pk *u);
void *tsd__pk_alloc(tsd__pk *u, size_t n);
/* A new value of `kind` (counted against limits.max_objects). */
tsd_status tsd__pk_new(tsd__pk *u, tsd__vkind kind, tsd__value **out);
tsd_status tsd__pk_int(tsd__pk *u, int64_t i, tsd__value **out);
/* `child` becomes part of `parent`: frozen, depth propagated and checked. */
tsd_status tsd__pk_adopt(tsd__pk *u, tsd__value *parent, tsd__value *child);
/* TSD_ERR_FORMAT if `v` is frozen (already inside another container). */
tsd_status tsd__pk_check_mutable(tsd__pk *u, const tsd__value *v);
/* Room for `len` items in a TUPLE/LIST/SET. */
tsd_status tsd__pk_grow_seq(tsd__pk *u, tsd__value *v, size_t len);
bool tsd__pk_is_container(const tsd__value *v);
/* "int", "dict", "OrderedDict", ... for messages. */
const char *tsd__pk_kind_name(const tsd__value *v);

/* ---- torch_globals.c: what the globals mean -------------------------------
 */

/* GLOBAL / STACK_GLOBAL module.name -> a value for the stack. */
tsd_status tsd__pk_global(tsd__pk *u, const char *mod, size_t mlen,
                          const char *name, size_t nlen, tsd__value **out);
/* REDUCE: fn(*args). */
tsd_status tsd__pk_reduce(tsd__pk *u, tsd__value *fn, tsd__value *args,
                          tsd__value **out);
/* NEWOBJ: cls.__new__(cls, *args); NEWOBJ_EX passes kwargs (else NULL). */
tsd_status tsd__pk_newobj(tsd__pk *u, tsd__value *cls, tsd__value *args,
                          tsd__value *kwargs, tsd__value **out);
/* BUILD: obj.__setstate__(state) or its default; obj stays on the stack. */
tsd_status tsd__pk_build(tsd__pk *u, tsd__value *obj, tsd__value *state);

/* ---- objects.c: inert placeholders ----------------------------------------- */

/* A GLOBAL value for module.name with torch_globals.c's `id` (0: not in the
 * allow-list); TSD_ERR_FORMAT if the names are not printable. */
tsd_status tsd__pk_named_global(tsd__pk *u, int64_t id, const char *mod,
                                size_t mlen, const char *name, size_t nlen,
                                tsd__value **out);
/* A placeholder OBJECT for cls(*args, **kwargs) (kwargs may be NULL). */
tsd_status tsd__pk_object(tsd__pk *u, tsd__value *cls, tsd__value *args,
                          tsd__value *kwargs, tsd__value **out);
/* BUILD on a placeholder: records the state (once). */
tsd_status tsd__pk_object_build(tsd__pk *u, tsd__value *obj,
                                tsd__value *state);
/* The placeholder's items container of `kind` (LIST for APPEND(S), DICT for
 * SETITEM(S)), created on first use. The caller extends it and then adopts
 * it into the object again (depth). */
tsd_status tsd__pk_object_items(tsd__pk *u, tsd__value *obj, tsd__vkind kind,
                                tsd__value **out);

#endif
