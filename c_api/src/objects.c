/* objects.c — the object model: inert placeholders.
 *
 * A global outside the allow-list (torch_globals.c) is not refused: it
 * becomes a GLOBAL value that only carries its name, and calling it
 * (REDUCE), instantiating it (NEWOBJ, NEWOBJ_EX) or building it (BUILD,
 * APPEND(S), SETITEM(S) on the result) records what Python would have done
 * in a placeholder OBJECT: the class, the constructor arguments, the BUILD
 * state and the items, kept as plain values. Nothing is ever called or
 * imported, and a placeholder is never a tensor or a storage: those come
 * only from the allow-listed rebuild functions and the format's persistent
 * ids. A load that needs a placeholder as a tensor fails like PyTorch's
 * load_state_dict does for any non-tensor, naming the key and the class.
 *
 * Cycles. Python's pickler emits an object's BUILD after its state, and
 * the state may refer back to the object (omegaconf's `_parent`, any
 * parent pointer): the object is then already inside another value when
 * its state arrives. Containers stay frozen and acyclic (pickle_vm.c), but
 * a placeholder accepts its state and items when frozen, so the value graph
 * may have cycles through OBJECT nodes. Code that descends into an object's
 * fields must bound its own walk (depth and node count); nothing else in
 * the library does.
 */
#include <stdio.h>
#include <string.h>

#include "pickle_vm.h"

#define TRY TSD__PK_TRY

/* A module or qualified name: what Python's find_class could look up.
 * Printable (no control characters, no quotes), at most 512 bytes: it is
 * shown in messages and listings. */
static bool name_ok(const char *s, size_t n) {
  if (n == 0 || n > 512) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7F || c == '\'' || c == '"' || c == '\\')
      return false;
  }
  return true;
}

tsd_status tsd__pk_named_global(tsd__pk *u, int64_t id, const char *mod,
                                size_t mlen, const char *name, size_t nlen,
                                tsd__value **out) {
  if (!name_ok(mod, mlen) || !name_ok(name, nlen))
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "global name of %zu+%zu bytes is not a printable "
                        "module and name",
                        mlen, nlen);
  /* "module.name\0<class 'module.name'>\0" */
  size_t full = mlen + 1 + nlen;
  char *s = tsd__pk_alloc(u, full + 1 + 9 + full + 2 + 1);
  if (!s) return tsd__pk_oom(u);
  memcpy(s, mod, mlen);
  s[mlen] = '.';
  memcpy(s + mlen + 1, name, nlen);
  s[full] = '\0';
  char *r = s + full + 1;
  memcpy(r, "<class '", 8);
  memcpy(r + 8, s, full);
  memcpy(r + 8 + full, "'>", 3);
  TRY(tsd__pk_new(u, TSD__V_GLOBAL, out));
  (*out)->u.g.id = id;
  (*out)->u.g.name = s;
  (*out)->u.g.repr = r;
  return TSD_OK;
}

tsd_status tsd__pk_object(tsd__pk *u, tsd__value *cls, tsd__value *args,
                          tsd__value *kwargs, tsd__value **out) {
  if (cls->kind != TSD__V_GLOBAL)
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "the class is a %s, not a global",
                        tsd__pk_kind_name(cls));
  if (args->kind != TSD__V_TUPLE)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "'%s' called with a %s, not a tuple of arguments",
                        cls->u.g.name, tsd__pk_kind_name(args));
  if (kwargs && kwargs->kind != TSD__V_DICT)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "'%s' called with keyword arguments in a %s, not a "
                        "dict",
                        cls->u.g.name, tsd__pk_kind_name(kwargs));
  tsd__value *v = NULL;
  TRY(tsd__pk_new(u, TSD__V_OBJECT, &v));
  v->depth = 1;
  TRY(tsd__pk_adopt(u, v, cls));
  TRY(tsd__pk_adopt(u, v, args));
  if (kwargs) TRY(tsd__pk_adopt(u, v, kwargs));
  v->u.obj.cls = cls;
  v->u.obj.args = args;
  v->u.obj.kwargs = kwargs;
  *out = v;
  return TSD_OK;
}

tsd_status tsd__pk_object_build(tsd__pk *u, tsd__value *obj,
                                tsd__value *state) {
  if (obj->u.obj.state)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "a second BUILD on an object of '%s' (the pickler "
                        "builds each object once)",
                        obj->u.obj.cls->u.g.name);
  /* no check_mutable(): the object may be frozen already (see the top) */
  TRY(tsd__pk_adopt(u, obj, state));
  obj->u.obj.state = state;
  return TSD_OK;
}

tsd_status tsd__pk_object_items(tsd__pk *u, tsd__value *obj, tsd__vkind kind,
                                tsd__value **out) {
  tsd__value *it = obj->u.obj.items;
  if (!it) {
    TRY(tsd__pk_new(u, kind, &it));
    obj->u.obj.items = it;
  }
  if (it->kind != kind)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "both list items and dict items for an object of '%s'",
                        obj->u.obj.cls->u.g.name);
  *out = it;
  return TSD_OK;
}

/* ---- outside the unpickler ------------------------------------------------ */

const char *tsd__object_class(const tsd__value *v) {
  return v && v->kind == TSD__V_OBJECT ? v->u.obj.cls->u.g.name : NULL;
}
