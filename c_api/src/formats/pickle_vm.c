/* pickle_vm.c — the restricted unpickler's machine.
 *
 * In the spirit of PyTorch's weights_only unpickler (torch/_weights_only_
 * unpickler.py): only the opcodes torch.save emits (protocols 0-5), every
 * operand's type checked, every length checked against the bytes that
 * remain. What a global is, and what calling or building it does, is
 * torch_globals.c's business (the allow-list); this file is the generic
 * machine: opcodes, stack, memo, marks and limits (pickle_vm.h).
 *
 * It is an explicit stack machine: no recursion anywhere, so a deeply
 * nested pickle cannot overflow the C stack, and everything lives in the
 * caller's arena, so freeing is not recursive either.
 *
 * Containers are frozen once they are placed inside another container (or
 * used as BUILD state); modifying a frozen container is an error. torch.save
 * (Python's pickler) always finishes a container before it inserts it, so
 * real files never do this, and the rule makes the value graph acyclic: a
 * self-referencing list (l.append(l)) cannot be built, and the nesting depth
 * recorded when a child is inserted is final. Consumers may therefore walk
 * the tree without cycle checks, within limits.max_depth.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pickle_vm.h"

#define TRY TSD__PK_TRY

#define VF_FROZEN TSD__VF_FROZEN
_Static_assert(VF_FROZEN < (1u << 16), "tsd__value.flags has 16 bits");

/* ---- opcodes -------------------------------------------------------------
 * Every opcode of pickle protocols 0-5, once: its byte and its name. The
 * names in messages and the labels step() dispatches on come from here;
 * opcodes step() has no case for (STRING, buffers, the extension registry)
 * are refused by name. */
#define PK_OPCODES(X) \
  X(0x80, PROTO) \
  X(0x95, FRAME) \
  X('.',  STOP) \
  X('(',  MARK) \
  X('0',  POP) \
  X('1',  POP_MARK) \
  X('2',  DUP) \
  X('c',  GLOBAL) \
  X(0x93, STACK_GLOBAL) \
  X('p',  PUT) \
  X('q',  BINPUT) \
  X('r',  LONG_BINPUT) \
  X(0x94, MEMOIZE) \
  X('g',  GET) \
  X('h',  BINGET) \
  X('j',  LONG_BINGET) \
  X('}',  EMPTY_DICT) \
  X(']',  EMPTY_LIST) \
  X(')',  EMPTY_TUPLE) \
  X(0x8f, EMPTY_SET) \
  X(0x90, ADDITEMS) \
  X(0x91, FROZENSET) \
  X('t',  TUPLE) \
  X(0x85, TUPLE1) \
  X(0x86, TUPLE2) \
  X(0x87, TUPLE3) \
  X('l',  LIST) \
  X('d',  DICT) \
  X('a',  APPEND) \
  X('e',  APPENDS) \
  X('s',  SETITEM) \
  X('u',  SETITEMS) \
  X('R',  REDUCE) \
  X('b',  BUILD) \
  X(0x81, NEWOBJ) \
  X(0x92, NEWOBJ_EX) \
  X('Q',  BINPERSID) \
  X('P',  PERSID) \
  X('N',  NONE) \
  X(0x88, NEWTRUE) \
  X(0x89, NEWFALSE) \
  X('J',  BININT) \
  X('K',  BININT1) \
  X('M',  BININT2) \
  X(0x8a, LONG1) \
  X(0x8b, LONG4) \
  X('G',  BINFLOAT) \
  X(0x8c, SHORT_BINUNICODE) \
  X('X',  BINUNICODE) \
  X(0x8d, BINUNICODE8) \
  X('U',  SHORT_BINSTRING) \
  X('T',  BINSTRING) \
  X('C',  SHORT_BINBYTES) \
  X('B',  BINBYTES) \
  X(0x8e, BINBYTES8) \
  X(0x96, BYTEARRAY8) \
  X(0x97, NEXT_BUFFER) \
  X(0x98, READONLY_BUFFER) \
  X('I',  INT) \
  X('L',  LONG) \
  X('F',  FLOAT) \
  X('S',  STRING) \
  X('V',  UNICODE) \
  X('i',  INST) \
  X('o',  OBJ) \
  X(0x82, EXT1) \
  X(0x83, EXT2) \
  X(0x84, EXT4)

enum {
#define PK_OPCODE_ENUM(byte, name) OP_##name = byte,
  PK_OPCODES(PK_OPCODE_ENUM)
#undef PK_OPCODE_ENUM
};

static const char *opname(uint8_t op) {
  switch (op) {
#define PK_OPCODE_NAME(byte, name)                                             \
  case byte:                                                                   \
    return #name;
    PK_OPCODES(PK_OPCODE_NAME)
#undef PK_OPCODE_NAME
  }
  return "unknown";
}

/* ---- the machine -------------------------------------------------------- */

tsd_status tsd__pk_fail(tsd__pk *u, tsd_status st, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return tsd__err(st, "%s: offset %zu (opcode %s, 0x%02x): %s", u->what,
                  u->op_off, opname(u->op), u->op, msg);
}

/* Past the parse's memory budget (tsd__parse_budget): the message says
 * what the bound is, so a user can tell a hostile file from a bug. */
static tsd_status over_budget(tsd__pk *u) {
  return tsd__pk_fail(
      u, TSD_ERR_LIMIT,
      "parsing needs more memory than the input's size justifies (tsd's "
      "bound: %u bytes per byte of input + 1 MiB, %llu bytes here)",
      TSD__PARSE_RATIO, (unsigned long long)(u->limit - u->base));
}

tsd_status tsd__pk_oom(tsd__pk *u) {
  if (u->over || u->arena->hit_limit) return over_budget(u);
  return tsd__pk_fail(u, TSD_ERR_NOMEM, "out of memory");
}

void *tsd__pk_alloc(tsd__pk *u, size_t n) {
  void *p = tsd__arena_alloc(u->arena, n);
  if (!p) u->over = u->arena->hit_limit || n > SIZE_MAX - 8;
  return p;
}

/* Grows one of the working arrays (stack, marks, memo) to twice its
 * capacity (`first` elements at first). They live outside the arena, but
 * count against the same budget: while realloc copies, old and new are
 * both held, so both are checked. */
static tsd_status aux_grow(tsd__pk *u, void **arr, size_t *cap, size_t elem,
                           size_t first) {
  size_t ncap = *cap ? *cap * 2 : first;
  if (ncap > SIZE_MAX / 2 / elem) return over_budget(u);
  size_t oldb = *cap * elem, newb = ncap * elem;
  if (u->limit && (u->arena->held + u->aux + newb > u->limit ||
                   u->arena->held + u->aux + newb < newb))
    return over_budget(u);
  void *p = tsd__mem_realloc(u->arena->al, *arr, newb);
  if (!p) return tsd__pk_fail(u, TSD_ERR_NOMEM, "out of memory");
  *arr = p;
  *cap = ncap;
  u->aux += newb - oldb;
  if (u->limit) u->arena->limit = u->limit - u->aux;
  return TSD_OK;
}

/* Bytes of a node of `kind`: its header and the union member that kind
 * uses, no more (tsd__value is 48 bytes for dicts and placeholders; an int
 * needs 16). Parse memory per input byte depends on it: a list of ints
 * >= 1024 spends 3 pickle bytes (BININT2) per node. Nothing may read or
 * write a pickle-made node beyond its kind's member, or copy it whole. */
static size_t node_size(tsd__vkind kind) {
  const size_t h = offsetof(tsd__value, u);
  const tsd__value *v = NULL;
  switch (kind) {
  case TSD__V_NONE:
  case TSD__V_BOOL:
  case TSD__V_INT:
  case TSD__V_FLOAT:
  case TSD__V_TENSOR:
  case TSD__V_STORAGE:
  case TSD__V_XTENSOR:
    return h + sizeof v->u.i;
  case TSD__V_BIGINT:
  case TSD__V_STR:
  case TSD__V_BYTES:
  case TSD__V_DTYPE:
  case TSD__V_DEVICE:
    return h + sizeof v->u.s;
  case TSD__V_TUPLE:
  case TSD__V_LIST:
  case TSD__V_SET:
    return h + sizeof v->u.seq;
  case TSD__V_GLOBAL:
    return h + sizeof v->u.g;
  case TSD__V_DICT:
  case TSD__V_OBJECT:
    break;
  }
  return sizeof *v;
}

tsd_status tsd__pk_new(tsd__pk *u, tsd__vkind kind, tsd__value **out) {
  if (++u->nobjects > u->lim->max_objects)
    return tsd__pk_fail(u, TSD_ERR_LIMIT,
                        "more than %llu objects (limits.max_objects)",
                        (unsigned long long)u->lim->max_objects);
  tsd__value *v = tsd__pk_alloc(u, node_size(kind));
  if (!v) return tsd__pk_oom(u);
  v->kind = kind;
  if (kind == TSD__V_TUPLE || kind == TSD__V_LIST || kind == TSD__V_SET ||
      kind == TSD__V_DICT)
    v->depth = 1;
  *out = v;
  return TSD_OK;
}

bool tsd__pk_is_container(const tsd__value *v) {
  return v->kind == TSD__V_TUPLE || v->kind == TSD__V_LIST ||
         v->kind == TSD__V_SET || v->kind == TSD__V_DICT;
}

const char *tsd__pk_kind_name(const tsd__value *v) {
  switch (v->kind) {
  case TSD__V_NONE:
    return "None";
  case TSD__V_BOOL:
    return "bool";
  case TSD__V_INT:
  case TSD__V_BIGINT:
    return "int";
  case TSD__V_FLOAT:
    return "float";
  case TSD__V_STR:
    return "str";
  case TSD__V_BYTES:
    return "bytes";
  case TSD__V_TUPLE:
    return "tuple";
  case TSD__V_LIST:
    return "list";
  case TSD__V_SET:
    return "set";
  case TSD__V_DICT:
    return (v->flags & TSD__VF_ORDERED) ? "OrderedDict" : "dict";
  case TSD__V_TENSOR:
    return "tensor";
  case TSD__V_STORAGE:
    return "storage";
  case TSD__V_GLOBAL:
    return "global";
  case TSD__V_DTYPE:
    return "dtype";
  case TSD__V_DEVICE:
    return "device";
  case TSD__V_XTENSOR:
    return "tensor";
  case TSD__V_OBJECT:
    return "object";
  }
  return "?";
}

/* `child` becomes part of `parent`: freeze it, propagate depth. */
tsd_status tsd__pk_adopt(tsd__pk *u, tsd__value *parent, tsd__value *child) {
  if (child == parent)
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "a %s cannot contain itself",
                        tsd__pk_kind_name(parent));
  child->flags |= VF_FROZEN;
  uint32_t d = tsd__pk_is_container(child) || child->kind == TSD__V_OBJECT
                   ? child->depth + 1
                   : 1;
  if (d > parent->depth) parent->depth = d;
  if (parent->depth > u->lim->max_depth)
    return tsd__pk_fail(u, TSD_ERR_LIMIT,
                        "containers nested deeper than %u (limits.max_depth)",
                        u->lim->max_depth);
  return TSD_OK;
}

tsd_status tsd__pk_check_mutable(tsd__pk *u, const tsd__value *v) {
  if (v->flags & VF_FROZEN)
    return tsd__pk_fail(
        u, TSD_ERR_FORMAT,
        "modifying a %s that is already inside another container "
        "(torch.save never does this; it would allow cycles)",
        tsd__pk_kind_name(v));
  return TSD_OK;
}

/* Room for element `len` of one of the machine's own arrays (the stack,
 * the marks, the memo; outside the arena, freed at the end): `first`
 * elements at first, then doubling, within the parse budget (aux_grow). */
static tsd_status grow(tsd__pk *u, void **p, size_t *cap, size_t len,
                       size_t first, size_t elem) {
  if (len < *cap) return TSD_OK;
  return aux_grow(u, p, cap, elem, first);
}

static tsd_status push(tsd__pk *u, tsd__value *v) {
  TRY(grow(u, (void **)&u->stack, &u->scap, u->sp, 64, sizeof *u->stack));
  u->stack[u->sp++] = v;
  return TSD_OK;
}

/* Items above the innermost MARK (the current frame, in Python's terms). */
static size_t frame_base(const tsd__pk *u) {
  return u->nmarks ? u->marks[u->nmarks - 1] : 0;
}

static tsd_status need(tsd__pk *u, size_t n) {
  if (u->sp - frame_base(u) < n)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "stack underflow: needs %zu value(s), the %s has %zu",
                        n, u->nmarks ? "frame above the MARK" : "stack",
                        u->sp - frame_base(u));
  return TSD_OK;
}

static tsd_status pop_mark(tsd__pk *u, size_t *base) {
  if (!u->nmarks)
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "no MARK on the stack");
  *base = u->marks[--u->nmarks];
  return TSD_OK;
}

tsd_status tsd__pk_grow_seq(tsd__pk *u, tsd__value *v, size_t need_len) {
  if (need_len <= v->u.seq.cap) return TSD_OK;
  /* a tuple is filled once and never grows: no spare room */
  size_t cap = v->u.seq.cap              ? v->u.seq.cap
               : v->kind == TSD__V_TUPLE ? need_len
                                         : 4;
  while (cap < need_len) {
    if (cap > SIZE_MAX / 16) return tsd__pk_oom(u);
    cap *= 2;
  }
  tsd__value **items = tsd__pk_alloc(u, cap * sizeof *items);
  if (!items) return tsd__pk_oom(u);
  if (v->u.seq.len) memcpy(items, v->u.seq.items, v->u.seq.len * sizeof *items);
  /* the old block serves the next nodes (parse memory: a growing list
   * would otherwise hold its items about twice) */
  tsd__arena_recycle(u->arena, v->u.seq.items, v->u.seq.cap * sizeof *items);
  v->u.seq.items = items;
  v->u.seq.cap = cap;
  return TSD_OK;
}

static tsd_status grow_dict(tsd__pk *u, tsd__value *v, size_t need_len) {
  if (need_len <= v->u.dict.cap) return TSD_OK;
  size_t cap = v->u.dict.cap ? v->u.dict.cap : 4;
  while (cap < need_len) {
    if (cap > SIZE_MAX / 16) return tsd__pk_oom(u);
    cap *= 2;
  }
  tsd__value **k = tsd__pk_alloc(u, cap * sizeof *k);
  tsd__value **vals = tsd__pk_alloc(u, cap * sizeof *vals);
  if (!k || !vals) return tsd__pk_oom(u);
  if (v->u.dict.len) {
    memcpy(k, v->u.dict.keys, v->u.dict.len * sizeof *k);
    memcpy(vals, v->u.dict.vals, v->u.dict.len * sizeof *vals);
  }
  tsd__arena_recycle(u->arena, v->u.dict.keys, v->u.dict.cap * sizeof *k);
  tsd__arena_recycle(u->arena, v->u.dict.vals, v->u.dict.cap * sizeof *k);
  v->u.dict.keys = k;
  v->u.dict.vals = vals;
  v->u.dict.cap = cap;
  return TSD_OK;
}

/* Appends stack[from..to) to a list/tuple/set. */
static tsd_status seq_extend(tsd__pk *u, tsd__value *seq, size_t from,
                             size_t to) {
  TRY(tsd__pk_grow_seq(u, seq, seq->u.seq.len + (to - from)));
  for (size_t i = from; i < to; i++) {
    TRY(tsd__pk_adopt(u, seq, u->stack[i]));
    seq->u.seq.items[seq->u.seq.len++] = u->stack[i];
  }
  return TSD_OK;
}

static tsd_status dict_extend(tsd__pk *u, tsd__value *d, size_t from,
                              size_t to) {
  if ((to - from) % 2)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "odd number of values (%zu) for a dict", to - from);
  TRY(grow_dict(u, d, d->u.dict.len + (to - from) / 2));
  for (size_t i = from; i < to; i += 2) {
    tsd__value *k = u->stack[i], *v = u->stack[i + 1];
    if (tsd__pk_is_container(k) && k->kind != TSD__V_TUPLE)
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "unhashable dict key of type %s",
                          tsd__pk_kind_name(k));
    TRY(tsd__pk_adopt(u, d, k));
    TRY(tsd__pk_adopt(u, d, v));
    d->u.dict.keys[d->u.dict.len] = k;
    d->u.dict.vals[d->u.dict.len] = v;
    d->u.dict.len++;
  }
  return TSD_OK;
}

/* APPEND(S) / SETITEM(S) on a placeholder: into its items container, which
 * only the unpickler holds, so it is not checked for being frozen. */
static tsd_status object_extend(tsd__pk *u, tsd__value *obj, tsd__vkind kind,
                                size_t from, size_t to) {
  tsd__value *items = NULL;
  TRY(tsd__pk_object_items(u, obj, kind, &items));
  if (kind == TSD__V_DICT)
    TRY(dict_extend(u, items, from, to));
  else
    TRY(seq_extend(u, items, from, to));
  return tsd__pk_adopt(u, obj, items);
}

/* ---- reading operands --------------------------------------------------- */

static tsd_status take(tsd__pk *u, size_t n, const uint8_t **p) {
  if (n > u->len - u->pos) {
    u->truncated = true;
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "needs %zu byte(s) but only %zu remain (truncated?)", n,
                        u->len - u->pos);
  }
  *p = u->buf + u->pos;
  u->pos += n;
  return TSD_OK;
}

static uint64_t le(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static tsd_status take_le(tsd__pk *u, size_t n, uint64_t *out) {
  const uint8_t *p = NULL;
  TRY(take(u, n, &p));
  *out = le(p, n);
  return TSD_OK;
}

/* A length operand, checked against the bytes that remain before anything
 * is allocated for it. */
static tsd_status take_len(tsd__pk *u, size_t width, uint64_t *out) {
  TRY(take_le(u, width, out));
  if (*out > u->len - u->pos) {
    u->truncated = true;
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "length %llu exceeds the %zu byte(s) that remain",
                        (unsigned long long)*out, u->len - u->pos);
  }
  return TSD_OK;
}

/* Python decodes pickle strings with 'utf-8', 'surrogatepass': valid UTF-8,
 * except that encoded surrogates are accepted. */
static bool utf8_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t k;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      k = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      k = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      k = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i <= k) return false;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
      return false;
    i += k + 1;
  }
  return true;
}

static tsd_status make_str(tsd__pk *u, const uint8_t *p, size_t n, bool is_str,
                           tsd__value **out) {
  if (is_str && !utf8_valid(p, n))
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "string of %zu bytes is not valid UTF-8", n);
  tsd__value *v = NULL;
  TRY(tsd__pk_new(u, is_str ? TSD__V_STR : TSD__V_BYTES, &v));
  char *s = tsd__pk_alloc(u, n + 1);
  if (!s) return tsd__pk_oom(u);
  if (n) memcpy(s, p, n);
  s[n] = '\0';
  v->u.s.p = s;
  v->u.s.len = n;
  *out = v;
  return TSD_OK;
}

static tsd_status op_string(tsd__pk *u, size_t width, bool is_str,
                            bool signed_len) {
  uint64_t n = 0;
  TRY(take_le(u, width, &n));
  if (signed_len && (n & 0x80000000u))
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "negative string length");
  if (n > u->len - u->pos) {
    u->truncated = true;
    return tsd__pk_fail(
        u, TSD_ERR_FORMAT,
        "string length %llu exceeds the %zu byte(s) that remain",
        (unsigned long long)n, u->len - u->pos);
  }
  const uint8_t *p = u->buf + u->pos;
  u->pos += (size_t)n;
  tsd__value *v = NULL;
  TRY(make_str(u, p, (size_t)n, is_str, &v));
  return push(u, v);
}

/* LONG1/LONG4: little-endian two's complement; INT when it fits int64. */
static tsd_status make_long(tsd__pk *u, const uint8_t *p, size_t n,
                            tsd__value **out) {
  tsd__value *v = NULL;
  bool neg = n && (p[n - 1] & 0x80);
  bool fits = true;
  for (size_t i = 8; i < n; i++)
    if (p[i] != (neg ? 0xFF : 0x00)) fits = false;
  if (n > 8 && fits && (((p[7] & 0x80) != 0) != neg)) fits = false;
  if (fits) {
    uint64_t x = 0;
    size_t m = n < 8 ? n : 8;
    for (size_t i = 0; i < m; i++)
      x |= (uint64_t)p[i] << (8 * i);
    if (neg && m < 8) x |= ~(uint64_t)0 << (8 * m);
    TRY(tsd__pk_int(u, (int64_t)x, &v));
  } else {
    TRY(tsd__pk_new(u, TSD__V_BIGINT, &v));
    char *s = tsd__pk_alloc(u, n + 1);
    if (!s) return tsd__pk_oom(u);
    memcpy(s, p, n);
    v->u.s.p = s;
    v->u.s.len = n;
  }
  *out = v;
  return TSD_OK;
}

tsd_status tsd__pk_int(tsd__pk *u, int64_t i, tsd__value **out) {
  bool small = i >= 0 && i < TSD__PK_SMALL_INTS;
  if (small && u->small_ints[i]) {
    *out = u->small_ints[i];
    return TSD_OK;
  }
  TRY(tsd__pk_new(u, TSD__V_INT, out));
  (*out)->u.i = i;
  if (small) u->small_ints[i] = *out;
  return TSD_OK;
}

/* ---- protocols 0 and 1: text operands ----------------------------------- */

/* The operand line up to (not including) '\n'. */
static tsd_status take_line(tsd__pk *u, const char **line, size_t *n) {
  size_t start = u->pos;
  const uint8_t *nl = memchr(u->buf + start, '\n', u->len - start);
  if (!nl) {
    u->truncated = true;
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "unterminated line");
  }
  *line = (const char *)u->buf + start;
  *n = (size_t)(nl - (u->buf + start));
  u->pos = start + *n + 1;
  return TSD_OK;
}

/* Decimal digits of a text INT/LONG: at most this many (Python's own limit
 * is 4300; the conversion below is quadratic in it, and a real pickle's
 * longest is the legacy magic number, 24 digits). */
#define MAX_TEXT_DIGITS 80

/* Text INT/LONG (protocols 0-1; "I01\n" is True): decimal to the LONG1
 * encoding (little-endian two's complement), then as LONG1. */
static tsd_status op_text_int(tsd__pk *u, bool is_long) {
  const char *s = NULL;
  size_t n = 0;
  TRY(take_line(u, &s, &n));
  if (is_long && n && s[n - 1] == 'L') n--;
  if (!is_long && n == 2 && s[0] == '0' && (s[1] == '0' || s[1] == '1'))
    return push(u, s[1] == '1' ? u->v_true : u->v_false);
  size_t i = 0;
  bool neg = false;
  if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
  if (i == n) return tsd__pk_fail(u, TSD_ERR_FORMAT, "empty integer literal");
  if (n - i > MAX_TEXT_DIGITS)
    return tsd__pk_fail(u, TSD_ERR_UNSUPPORTED,
                        "integer literal of %zu digits (tsd reads up to %d)",
                        n - i, MAX_TEXT_DIGITS);
  uint8_t mag[MAX_TEXT_DIGITS / 2 + 2] = {0}; /* 10^80 < 256^34 */
  size_t m = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "bad integer literal");
    unsigned carry = (unsigned)(s[i] - '0');
    for (size_t k = 0; k < m; k++) {
      unsigned x = mag[k] * 10u + carry;
      mag[k] = (uint8_t)x;
      carry = x >> 8;
    }
    if (carry) mag[m++] = (uint8_t)carry;
  }
  if (m == 0) mag[m++] = 0;
  if (mag[m - 1] & 0x80) mag[m++] = 0; /* room for the sign bit */
  if (neg) {                           /* two's complement */
    unsigned c = 1;
    for (size_t k = 0; k < m; k++) {
      unsigned x = (uint8_t)~mag[k] + c;
      mag[k] = (uint8_t)x;
      c = x >> 8;
    }
    /* -2^(8k-1) needs no extra byte: drop a redundant 0xFF */
    while (m > 1 && mag[m - 1] == 0xFF && (mag[m - 2] & 0x80))
      m--;
  }
  tsd__value *v = NULL;
  TRY(make_long(u, mag, m, &v));
  return push(u, v);
}

/* FLOAT: repr(float) text. */
static tsd_status op_text_float(tsd__pk *u) {
  const char *s = NULL;
  size_t n = 0;
  TRY(take_line(u, &s, &n));
  char tmp[64];
  if (n == 0 || n >= sizeof tmp)
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "bad float literal");
  for (size_t i = 0; i < n; i++)
    if (!strchr("0123456789+-.eEinfatyINFATY", s[i]))
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "bad float literal");
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  char *end = NULL;
  double f = strtod(tmp, &end);
  if (end != tmp + n)
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "bad float literal");
  tsd__value *v = NULL;
  TRY(tsd__pk_new(u, TSD__V_FLOAT, &v));
  v->u.f = f;
  return push(u, v);
}

static size_t put_utf8(uint8_t *d, uint32_t cp) {
  if (cp < 0x80) {
    d[0] = (uint8_t)cp;
    return 1;
  }
  if (cp < 0x800) {
    d[0] = (uint8_t)(0xC0 | cp >> 6);
    d[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    d[0] = (uint8_t)(0xE0 | cp >> 12);
    d[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    d[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  d[0] = (uint8_t)(0xF0 | cp >> 18);
  d[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
  d[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
  d[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

/* UNICODE: raw-unicode-escape (bytes are code points 0-255, \uXXXX and
 * \UXXXXXXXX escapes), stored as UTF-8 (surrogates as surrogatepass). */
static tsd_status op_text_unicode(tsd__pk *u) {
  const char *s = NULL;
  size_t n = 0;
  TRY(take_line(u, &s, &n));
  tsd__value *v = NULL;
  TRY(tsd__pk_new(u, TSD__V_STR, &v));
  if (n > (SIZE_MAX - 1) / 2) return tsd__pk_oom(u);
  uint8_t *d = tsd__pk_alloc(u, 2 * n + 1); /* UTF-8 never exceeds this */
  if (!d) return tsd__pk_oom(u);
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    const uint8_t c = (uint8_t)s[i];
    size_t w = 0;
    if (c == '\\' && i + 1 < n && (s[i + 1] == 'u' || s[i + 1] == 'U'))
      w = s[i + 1] == 'u' ? 4 : 8;
    if (!w) {
      k += put_utf8(d + k, c);
      i++;
      continue;
    }
    if (n - i - 2 < w)
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "truncated \\u escape");
    uint32_t cp = 0;
    for (size_t j = 0; j < w; j++) {
      char h = s[i + 2 + j];
      int x = h >= '0' && h <= '9'   ? h - '0'
              : h >= 'a' && h <= 'f' ? h - 'a' + 10
              : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                     : -1;
      if (x < 0) return tsd__pk_fail(u, TSD_ERR_FORMAT, "bad \\u escape");
      cp = cp << 4 | (uint32_t)x;
    }
    if (cp > 0x10FFFF)
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "\\U escape beyond U+10FFFF");
    k += put_utf8(d + k, cp); /* at most 4 bytes for 6 or 10 read */
    i += 2 + w;
  }
  d[k] = '\0';
  v->u.s.p = (char *)d;
  v->u.s.len = k;
  return push(u, v);
}

/* STRING (protocol 0, Python 2's str): a quoted repr, "S'a\\n'\n". As
 * Python's load_string: the outermost quotes (both ' or both ") stripped,
 * else an error; the rest decoded as codecs.escape_decode does (\\ \'
 * \" \a \b \f \n \r \t \v, \ooo octal, \xhh, a backslash-newline
 * dropped, any other backslash kept as it is; a trailing backslash or a bad
 * \x is an error); then, as torch.load passes encoding='utf-8', decoded as
 * strict UTF-8 into a str. */
static tsd_status op_text_string(tsd__pk *u) {
  const char *s = NULL;
  size_t n = 0;
  TRY(take_line(u, &s, &n));
  if (n < 2 || s[0] != s[n - 1] || (s[0] != '\'' && s[0] != '"'))
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "the STRING opcode argument must be quoted");
  s++;
  n -= 2;
  tsd__value *v = NULL;
  TRY(tsd__pk_new(u, TSD__V_STR, &v));
  uint8_t *d = tsd__pk_alloc(u, n + 1); /* escapes only shorten */
  if (!d) return tsd__pk_oom(u);
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    char c = s[i++];
    if (c != '\\') {
      d[k++] = (uint8_t)c;
      continue;
    }
    if (i == n)
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "STRING: trailing \\ in string");
    c = s[i++];
    switch (c) {
    case '\n':
      break; /* a line continuation: dropped */
    case '\\':
      d[k++] = '\\';
      break;
    case '\'':
      d[k++] = '\'';
      break;
    case '"':
      d[k++] = '"';
      break;
    case 'a':
      d[k++] = 7;
      break;
    case 'b':
      d[k++] = 8;
      break;
    case 'f':
      d[k++] = 12;
      break;
    case 'n':
      d[k++] = 10;
      break;
    case 'r':
      d[k++] = 13;
      break;
    case 't':
      d[k++] = 9;
      break;
    case 'v':
      d[k++] = 11;
      break;
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7': {
      unsigned x = (unsigned)(c - '0');
      for (int j = 0; j < 2 && i < n && s[i] >= '0' && s[i] <= '7'; j++)
        x = x * 8 + (unsigned)(s[i++] - '0');
      d[k++] = (uint8_t)x; /* as CPython stores it: the low 8 bits */
      break;
    }
    case 'x': {
      int x[2] = {-1, -1};
      for (int j = 0; j < 2 && i + (size_t)j < n; j++) {
        char h = s[i + (size_t)j];
        x[j] = h >= '0' && h <= '9'   ? h - '0'
               : h >= 'a' && h <= 'f' ? h - 'a' + 10
               : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                      : -1;
      }
      if (x[0] < 0 || x[1] < 0)
        return tsd__pk_fail(u, TSD_ERR_FORMAT,
                            "STRING: invalid \\x escape at position %zu",
                            i - 2);
      d[k++] = (uint8_t)(x[0] * 16 + x[1]);
      i += 2;
      break;
    }
    default: /* an unknown escape stays as written */
      d[k++] = '\\';
      d[k++] = (uint8_t)c;
    }
  }
  if (!tsd__utf8_valid((const char *)d, k))
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "STRING of %zu bytes is not valid UTF-8 (torch.load "
                        "decodes Python 2 str as UTF-8)",
                        k);
  d[k] = '\0';
  v->u.s.p = (char *)d;
  v->u.s.len = k;
  return push(u, v);
}

/* PUT / GET: a decimal memo index. */
static tsd_status text_index(tsd__pk *u, uint64_t *out) {
  const char *s = NULL;
  size_t n = 0;
  TRY(take_line(u, &s, &n));
  if (n == 0 || n > 18)
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "bad memo index");
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "bad memo index");
    x = x * 10 + (uint64_t)(s[i] - '0');
  }
  *out = x;
  return TSD_OK;
}

/* GLOBAL: "module\nname\n" */
static tsd_status op_global_text(tsd__pk *u, tsd__value **out) {
  const uint8_t *line[2];
  size_t n[2];
  for (int k = 0; k < 2; k++) {
    size_t start = u->pos;
    const uint8_t *nl = memchr(u->buf + start, '\n', u->len - start);
    if (!nl) {
      u->truncated = true;
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "unterminated GLOBAL name");
    }
    line[k] = u->buf + start;
    n[k] = (size_t)(nl - line[k]);
    u->pos = start + n[k] + 1;
  }
  return tsd__pk_global(u, (const char *)line[0], n[0], (const char *)line[1],
                        n[1], out);
}

/* ---- the loop ----------------------------------------------------------- */

/* ---- opcodes with more to do than a line or two ------------------------- */

/* BINPERSID, PERSID: the format resolves the persistent id `pid`. */
static tsd_status op_persid(tsd__pk *u, tsd__value *pid, tsd__value **out) {
  if (!u->persistent)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "persistent id where none is allowed");
  tsd_status st = u->persistent(u->pctx, pid, out);
  if (st != TSD_OK)
    tsd__err_prefix("%s: offset %zu (%s)", u->what, u->op_off, opname(u->op));
  return st;
}

/* PUT, BINPUT, LONG_BINPUT, MEMOIZE: the top of the stack into the memo. */
static tsd_status op_put(tsd__pk *u) {
  uint64_t x = 0;
  if (u->op == OP_PUT)
    TRY(text_index(u, &x));
  else if (u->op == OP_BINPUT)
    TRY(take_le(u, 1, &x));
  else if (u->op == OP_LONG_BINPUT)
    TRY(take_le(u, 4, &x));
  else
    x = u->nmemo;
  TRY(need(u, 1));
  /* torch.save (Python's pickler) numbers memo entries 0, 1, 2, ...:
   * an index past the end would make us allocate what the file says */
  if (x > u->nmemo)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "memo index %llu is beyond the memo size %zu",
                        (unsigned long long)x, u->nmemo);
  if (x == u->nmemo) {
    TRY(grow(u, (void **)&u->memo, &u->memocap, u->nmemo, 64,
             sizeof *u->memo));
    u->nmemo++;
  }
  u->memo[x] = u->stack[u->sp - 1];
  return TSD_OK;
}

/* GET, BINGET, LONG_BINGET: a memo entry onto the stack. */
static tsd_status op_get(tsd__pk *u) {
  uint64_t x = 0;
  if (u->op == OP_GET)
    TRY(text_index(u, &x));
  else
    TRY(take_le(u, u->op == OP_BINGET ? 1 : 4, &x));
  if (x >= u->nmemo)
    return tsd__pk_fail(u, TSD_ERR_FORMAT,
                        "unknown memo index %llu (memo size %zu)",
                        (unsigned long long)x, u->nmemo);
  return push(u, u->memo[x]);
}

/* LONG1, LONG4: a little-endian two's complement integer, its byte count
 * in 1 or 4 bytes. */
static tsd_status op_long(tsd__pk *u) {
  uint64_t x = 0;
  const uint8_t *p = NULL;
  tsd__value *v = NULL;
  TRY(take_le(u, u->op == OP_LONG1 ? 1 : 4, &x));
  if (u->op == OP_LONG4 && (x & 0x80000000u))
    return tsd__pk_fail(u, TSD_ERR_FORMAT, "negative LONG4 length");
  if (x > u->len - u->pos) {
    u->truncated = true;
    return tsd__pk_fail(
        u, TSD_ERR_FORMAT,
        "integer of %llu bytes exceeds the %zu byte(s) that remain",
        (unsigned long long)x, u->len - u->pos);
  }
  TRY(take(u, (size_t)x, &p));
  TRY(make_long(u, p, (size_t)x, &v));
  return push(u, v);
}

/* APPEND (n 1), SETITEM (n 2): the top n values into the list or dict
 * under them; APPENDS, SETITEMS (n 0): the values above the MARK into the
 * list or dict under it. A placeholder object takes them as its items. */
static tsd_status op_add(tsd__pk *u, tsd__vkind kind, size_t n) {
  size_t from = 0, to = 0;
  if (n) {
    TRY(need(u, n + 1));
    from = u->sp - n;
    to = u->sp;
  } else {
    TRY(pop_mark(u, &from));
    to = u->sp;
    u->sp = from;
    TRY(need(u, 1));
  }
  tsd__value *c = u->stack[from - 1];
  if (c->kind == TSD__V_OBJECT) {
    TRY(object_extend(u, c, kind, from, to));
  } else {
    if (c->kind != kind)
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "%s %s a %s, not a %s",
                          opname(u->op), kind == TSD__V_LIST ? "to" : "on",
                          tsd__pk_kind_name(c),
                          kind == TSD__V_LIST ? "list" : "dict");
    TRY(tsd__pk_check_mutable(u, c));
    if (kind == TSD__V_LIST)
      TRY(seq_extend(u, c, from, to));
    else
      TRY(dict_extend(u, c, from, to));
  }
  u->sp = from;
  return TSD_OK;
}

static tsd_status step(tsd__pk *u, bool *done, tsd__value **out) {
  u->op_off = u->pos;
  const uint8_t *p = NULL;
  TRY(take(u, 1, &p));
  u->op = *p;
  tsd__value *v = NULL;
  uint64_t x = 0;
  size_t base = 0;
  switch (u->op) {
  case OP_PROTO:
    TRY(take_le(u, 1, &x));
    if (x > 5)
      return tsd__pk_fail(u, TSD_ERR_UNSUPPORTED, "pickle protocol %llu",
                          (unsigned long long)x);
    return TSD_OK;
  case OP_FRAME: /* framing is only a hint for buffered readers */
    TRY(take_len(u, 8, &x));
    return TSD_OK;
  case OP_STOP:
    if (u->nmarks)
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "STOP with %zu unclosed MARK(s)",
                          u->nmarks);
    if (u->sp != 1)
      return tsd__pk_fail(u, TSD_ERR_FORMAT,
                          "STOP with %zu values on the stack (needs exactly 1)",
                          u->sp);
    *out = u->stack[0];
    *done = true;
    return TSD_OK;
  case OP_MARK:
    TRY(grow(u, (void **)&u->marks, &u->mcap, u->nmarks, 16, sizeof *u->marks));
    u->marks[u->nmarks++] = u->sp;
    return TSD_OK;
  case OP_POP: /* Python pops the MARK itself when the frame is empty */
    if (u->sp == frame_base(u) && u->nmarks) {
      u->nmarks--;
      return TSD_OK;
    }
    TRY(need(u, 1));
    u->sp--;
    return TSD_OK;
  case OP_POP_MARK:
    TRY(pop_mark(u, &base));
    u->sp = base;
    return TSD_OK;
  case OP_DUP:
    TRY(need(u, 1));
    return push(u, u->stack[u->sp - 1]);
  case OP_GLOBAL:
    TRY(op_global_text(u, &v));
    return push(u, v);
  case OP_STACK_GLOBAL: {
    TRY(need(u, 2));
    tsd__value *mod = u->stack[u->sp - 2], *name = u->stack[u->sp - 1];
    if (mod->kind != TSD__V_STR || name->kind != TSD__V_STR)
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "STACK_GLOBAL needs two str");
    TRY(tsd__pk_global(u, mod->u.s.p, mod->u.s.len, name->u.s.p, name->u.s.len,
                       &v));
    u->sp -= 2;
    return push(u, v);
  }
  case OP_PUT:
  case OP_BINPUT:
  case OP_LONG_BINPUT:
  case OP_MEMOIZE:
    return op_put(u);
  case OP_GET:
  case OP_BINGET:
  case OP_LONG_BINGET:
    return op_get(u);
  case OP_EMPTY_DICT:
    TRY(tsd__pk_new(u, TSD__V_DICT, &v));
    return push(u, v);
  case OP_EMPTY_LIST:
    TRY(tsd__pk_new(u, TSD__V_LIST, &v));
    return push(u, v);
  case OP_EMPTY_TUPLE: /* tuples are immutable: one empty tuple serves them all */
    if (!u->v_empty_tuple) TRY(tsd__pk_new(u, TSD__V_TUPLE, &u->v_empty_tuple));
    return push(u, u->v_empty_tuple);
  case OP_EMPTY_SET:
    TRY(tsd__pk_new(u, TSD__V_SET, &v));
    return push(u, v);
  case OP_ADDITEMS: {
    TRY(pop_mark(u, &base));
    size_t top = u->sp;
    u->sp = base;
    TRY(need(u, 1));
    tsd__value *set = u->stack[u->sp - 1];
    if (set->kind != TSD__V_SET)
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "ADDITEMS on a %s, not a set",
                          tsd__pk_kind_name(set));
    TRY(tsd__pk_check_mutable(u, set));
    return seq_extend(u, set, base, top);
  }
  case OP_FROZENSET:
  case OP_TUPLE:
  case OP_LIST:
  case OP_DICT: {
    TRY(pop_mark(u, &base));
    size_t top = u->sp;
    TRY(tsd__pk_new(u,
                    u->op == OP_TUPLE   ? TSD__V_TUPLE
                    : u->op == OP_LIST ? TSD__V_LIST
                    : u->op == OP_DICT ? TSD__V_DICT
                                   : TSD__V_SET,
                    &v));
    if (u->op == OP_DICT)
      TRY(dict_extend(u, v, base, top));
    else
      TRY(seq_extend(u, v, base, top));
    u->sp = base;
    return push(u, v);
  }
  case OP_TUPLE1:
  case OP_TUPLE2:
  case OP_TUPLE3: {
    size_t n = (size_t)(u->op - OP_TUPLE1) + 1;
    TRY(need(u, n));
    TRY(tsd__pk_new(u, TSD__V_TUPLE, &v));
    TRY(seq_extend(u, v, u->sp - n, u->sp));
    u->sp -= n;
    return push(u, v);
  }
  case OP_APPEND:
    return op_add(u, TSD__V_LIST, 1);
  case OP_APPENDS:
    return op_add(u, TSD__V_LIST, 0);
  case OP_SETITEM:
    return op_add(u, TSD__V_DICT, 2);
  case OP_SETITEMS:
    return op_add(u, TSD__V_DICT, 0);
  case OP_REDUCE: {
    TRY(need(u, 2));
    TRY(tsd__pk_reduce(u, u->stack[u->sp - 2], u->stack[u->sp - 1], &v));
    u->sp -= 2;
    return push(u, v);
  }
  case OP_NEWOBJ: { /* cls.__new__(cls, *args) */
    TRY(need(u, 2));
    TRY(tsd__pk_newobj(u, u->stack[u->sp - 2], u->stack[u->sp - 1], NULL, &v));
    u->sp -= 2;
    return push(u, v);
  }
  case OP_NEWOBJ_EX: { /* cls.__new__(cls, *args, **kwargs) */
    TRY(need(u, 3));
    TRY(tsd__pk_newobj(u, u->stack[u->sp - 3], u->stack[u->sp - 2],
                       u->stack[u->sp - 1], &v));
    u->sp -= 3;
    return push(u, v);
  }
  case OP_BUILD:
    TRY(need(u, 2));
    u->sp--;
    return tsd__pk_build(u, u->stack[u->sp - 1], u->stack[u->sp]);
  case OP_BINPERSID: {
    TRY(need(u, 1));
    TRY(op_persid(u, u->stack[u->sp - 1], &v));
    u->stack[u->sp - 1] = v;
    return TSD_OK;
  }
  case OP_NONE:
    return push(u, u->v_none);
  case OP_NEWTRUE:
    return push(u, u->v_true);
  case OP_NEWFALSE:
    return push(u, u->v_false);
  case OP_BININT:
    TRY(take_le(u, 4, &x));
    TRY(tsd__pk_int(u, (int64_t)(int32_t)(uint32_t)x, &v));
    return push(u, v);
  case OP_BININT1:
    TRY(take_le(u, 1, &x));
    TRY(tsd__pk_int(u, (int64_t)x, &v));
    return push(u, v);
  case OP_BININT2:
    TRY(take_le(u, 2, &x));
    TRY(tsd__pk_int(u, (int64_t)x, &v));
    return push(u, v);
  case OP_LONG1:
  case OP_LONG4:
    return op_long(u);
  case OP_BINFLOAT: { /* big-endian double */
    TRY(take(u, 8, &p));
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++)
      bits = (bits << 8) | p[i];
    TRY(tsd__pk_new(u, TSD__V_FLOAT, &v));
    memcpy(&v->u.f, &bits, sizeof bits);
    return push(u, v);
  }
  case OP_SHORT_BINUNICODE:
    return op_string(u, 1, true, false);
  case OP_BINUNICODE:
    return op_string(u, 4, true, false);
  case OP_BINUNICODE8:
    return op_string(u, 8, true, false);
  /* torch.load decodes Python 2 str with encoding='utf-8' */
  case OP_SHORT_BINSTRING:
    return op_string(u, 1, true, false);
  case OP_BINSTRING:
    return op_string(u, 4, true, true);
  case OP_SHORT_BINBYTES:
    return op_string(u, 1, false, false);
  case OP_BINBYTES:
    return op_string(u, 4, false, false);
  case OP_BINBYTES8:
    return op_string(u, 8, false, false);
  case OP_BYTEARRAY8:
    return op_string(u, 8, false, false);
  case OP_INT:
    return op_text_int(u, false);
  case OP_LONG:
    return op_text_int(u, true);
  case OP_FLOAT:
    return op_text_float(u);
  case OP_UNICODE:
    return op_text_unicode(u);
  case OP_STRING:
    return op_text_string(u);
  case OP_INST: { /* MARK args... "module\nname\n": cls(*args) */
    tsd__value *cls = NULL;
    TRY(op_global_text(u, &cls));
    TRY(pop_mark(u, &base));
    TRY(tsd__pk_new(u, TSD__V_TUPLE, &v));
    TRY(seq_extend(u, v, base, u->sp));
    u->sp = base;
    TRY(tsd__pk_reduce(u, cls, v, &v));
    return push(u, v);
  }
  case OP_OBJ: { /* MARK cls args...: cls(*args) */
    TRY(pop_mark(u, &base));
    if (u->sp == base)
      return tsd__pk_fail(u, TSD_ERR_FORMAT, "OBJ without a class");
    tsd__value *cls = u->stack[base];
    TRY(tsd__pk_new(u, TSD__V_TUPLE, &v));
    TRY(seq_extend(u, v, base + 1, u->sp));
    u->sp = base;
    TRY(tsd__pk_reduce(u, cls, v, &v));
    return push(u, v);
  }
  case OP_PERSID: { /* the id as a text line (a str) */
    const char *line = NULL;
    size_t n = 0;
    TRY(take_line(u, &line, &n));
    tsd__value *pid = NULL;
    TRY(make_str(u, (const uint8_t *)line, n, true, &pid));
    TRY(op_persid(u, pid, &v));
    return push(u, v);
  }
  default:
    return tsd__pk_fail(u, TSD_ERR_UNSUPPORTED,
                        "opcode not supported by tsd's restricted unpickler");
  }
}

tsd_status tsd__unpickle(const uint8_t *buf, size_t len, size_t *used,
                         tsd__arena *arena, const tsd__limits *limits,
                         tsd__persistent_fn persistent,
                         tsd__persistent_ctx *pctx, const char *what,
                         tsd__value **out) {
  tsd__pk u;
  memset(&u, 0, sizeof u);
  u.buf = buf;
  u.len = len;
  u.arena = arena;
  u.lim = limits;
  u.persistent = persistent;
  u.pctx = pctx;
  u.what = what ? what : "pickle";
  *out = NULL;
  if (used) *used = 0;
  /* The budget: the caller's arena limit (a reader of several pickles sets
   * one for the file) or this pickle's own, whichever is less. */
  uint64_t old_limit = arena->limit, own = tsd__parse_budget(arena, len);
  u.limit = old_limit && old_limit < own ? old_limit : own;
  arena->limit = u.limit;
  size_t small_bytes = TSD__PK_SMALL_INTS * sizeof *u.small_ints;
  tsd_status st = TSD_OK;
  u.base = arena->held;
  if (arena->held + small_bytes > u.limit) {
    st = over_budget(&u);
  } else {
    u.aux = small_bytes;
    arena->limit = u.limit - small_bytes;
  }
  if (st == TSD_OK) st = tsd__pk_new(&u, TSD__V_NONE, &u.v_none);
  if (st == TSD_OK) st = tsd__pk_new(&u, TSD__V_BOOL, &u.v_true);
  if (st == TSD_OK) st = tsd__pk_new(&u, TSD__V_BOOL, &u.v_false);
  if (st == TSD_OK) u.v_true->u.i = 1;
  if (st == TSD_OK) {
    u.small_ints =
        tsd__mem_calloc(u.arena->al, TSD__PK_SMALL_INTS, sizeof *u.small_ints);
    if (!u.small_ints) st = tsd__pk_fail(&u, TSD_ERR_NOMEM, "out of memory");
  }
  bool done = false;
  while (st == TSD_OK && !done) {
    if (u.pos >= u.len) {
      u.op_off = u.pos;
      u.op = 0;
      u.truncated = true;
      st = tsd__err(TSD_ERR_FORMAT,
                    "%s: the pickle ends at offset %zu without STOP "
                    "(truncated?)",
                    u.what, u.pos);
      break;
    }
    st = step(&u, &done, out);
  }
  if (st != TSD_OK) {
    *out = NULL;
    if (used) *used = u.truncated ? SIZE_MAX : 0;
  } else if (used) {
    *used = u.pos;
  }
  tsd__mem_free(u.arena->al, u.stack);
  tsd__mem_free(u.arena->al, u.marks);
  tsd__mem_free(u.arena->al, u.memo);
  tsd__mem_free(u.arena->al, u.small_ints);
  arena->limit = old_limit;
  return st;
}
