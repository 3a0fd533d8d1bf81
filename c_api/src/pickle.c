/* pickle.c — the restricted unpickler.
 *
 * In the spirit of PyTorch's weights_only unpickler (torch/_weights_only_
 * unpickler.py): only the opcodes torch.save emits (protocols 2-5), only an
 * allow-list of globals, every operand's type checked, every length checked
 * against the bytes that remain. It is an explicit stack machine: no
 * recursion anywhere, so a deeply nested pickle cannot overflow the C stack,
 * and everything lives in the caller's arena, so freeing is not recursive
 * either.
 *
 * Containers are frozen once they are placed inside another container (or
 * used as BUILD state); modifying a frozen container is an error. torch.save
 * (Python's pickler) always finishes a container before it inserts it, so
 * real files never do this, and the rule makes the value graph acyclic: a
 * self-referencing list (l.append(l)) cannot be built, and the nesting depth
 * recorded when a child is inserted is final. Consumers may therefore walk
 * the tree without cycle checks, within limits.max_depth.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define VF_FROZEN 0x100u /* internal to the unpickler, see above */
_Static_assert(VF_FROZEN < (1u << 16), "tsd__value.flags has 16 bits");

enum {
  G_ORDERED_DICT = 1,
  G_REBUILD_TENSOR_V2,
  G_REBUILD_TENSOR,
  G_REBUILD_PARAMETER,
  G_REBUILD_PARAMETER_WITH_STATE,
  G_REBUILD_FROM_TYPE_V2,
  G_TENSOR,
  G_PARAMETER,
  G_SIZE,
  G_CODECS_ENCODE,
  G_SET,
  G_FROZENSET,
  G_BYTES,
  G_STORAGE_BASE = 100 /* + tsd_dtype */
};

typedef struct global_entry {
  const char *module, *name;
  int id;
} global_entry;

/* The allow-list. Protocol 2 spells builtins as __builtin__ (pickle's
 * fix_imports). */
static const global_entry allowed_globals[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2},
    {"torch._utils", "_rebuild_tensor", G_REBUILD_TENSOR},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER},
    {"torch._utils", "_rebuild_parameter_with_state",
     G_REBUILD_PARAMETER_WITH_STATE},
    {"torch._tensor", "_rebuild_from_type_v2", G_REBUILD_FROM_TYPE_V2},
    {"torch", "Tensor", G_TENSOR},
    {"torch._tensor", "Tensor", G_TENSOR},
    {"torch.nn.parameter", "Parameter", G_PARAMETER},
    {"torch", "Size", G_SIZE},
    {"_codecs", "encode", G_CODECS_ENCODE},
    {"builtins", "set", G_SET},
    {"__builtin__", "set", G_SET},
    {"builtins", "frozenset", G_FROZENSET},
    {"__builtin__", "frozenset", G_FROZENSET},
    {"builtins", "bytes", G_BYTES},
    {"__builtin__", "bytes", G_BYTES},
    {"torch", "FloatStorage", G_STORAGE_BASE + TSD_FLOAT32},
    {"torch", "DoubleStorage", G_STORAGE_BASE + TSD_FLOAT64},
    {"torch", "HalfStorage", G_STORAGE_BASE + TSD_FLOAT16},
    {"torch", "BFloat16Storage", G_STORAGE_BASE + TSD_BFLOAT16},
    {"torch", "CharStorage", G_STORAGE_BASE + TSD_INT8},
    {"torch", "ShortStorage", G_STORAGE_BASE + TSD_INT16},
    {"torch", "IntStorage", G_STORAGE_BASE + TSD_INT32},
    {"torch", "LongStorage", G_STORAGE_BASE + TSD_INT64},
    {"torch", "ByteStorage", G_STORAGE_BASE + TSD_UINT8},
    {"torch", "BoolStorage", G_STORAGE_BASE + TSD_BOOL},
};

bool tsd__storage_type_dtype(const tsd__value *v, tsd_dtype *out) {
  if (!v || v->kind != TSD__V_GLOBAL) return false;
  int64_t d = v->u.i - G_STORAGE_BASE;
  if (d < 0 || d >= TSD_DTYPE_COUNT) return false;
  *out = (tsd_dtype)d;
  return true;
}

/* ---- opcode names, for messages ---------------------------------------- */

static const char *opname(uint8_t op) {
  switch (op) {
  case 0x80:
    return "PROTO";
  case 0x95:
    return "FRAME";
  case '.':
    return "STOP";
  case '(':
    return "MARK";
  case '0':
    return "POP";
  case '1':
    return "POP_MARK";
  case '2':
    return "DUP";
  case 'c':
    return "GLOBAL";
  case 0x93:
    return "STACK_GLOBAL";
  case 'q':
    return "BINPUT";
  case 'r':
    return "LONG_BINPUT";
  case 0x94:
    return "MEMOIZE";
  case 'h':
    return "BINGET";
  case 'j':
    return "LONG_BINGET";
  case '}':
    return "EMPTY_DICT";
  case ']':
    return "EMPTY_LIST";
  case ')':
    return "EMPTY_TUPLE";
  case 0x8f:
    return "EMPTY_SET";
  case 0x90:
    return "ADDITEMS";
  case 0x91:
    return "FROZENSET";
  case 't':
    return "TUPLE";
  case 0x85:
    return "TUPLE1";
  case 0x86:
    return "TUPLE2";
  case 0x87:
    return "TUPLE3";
  case 'l':
    return "LIST";
  case 'd':
    return "DICT";
  case 'a':
    return "APPEND";
  case 'e':
    return "APPENDS";
  case 's':
    return "SETITEM";
  case 'u':
    return "SETITEMS";
  case 'R':
    return "REDUCE";
  case 'b':
    return "BUILD";
  case 0x81:
    return "NEWOBJ";
  case 0x92:
    return "NEWOBJ_EX";
  case 'Q':
    return "BINPERSID";
  case 'P':
    return "PERSID";
  case 'N':
    return "NONE";
  case 0x88:
    return "NEWTRUE";
  case 0x89:
    return "NEWFALSE";
  case 'J':
    return "BININT";
  case 'K':
    return "BININT1";
  case 'M':
    return "BININT2";
  case 0x8a:
    return "LONG1";
  case 0x8b:
    return "LONG4";
  case 'G':
    return "BINFLOAT";
  case 0x8c:
    return "SHORT_BINUNICODE";
  case 'X':
    return "BINUNICODE";
  case 0x8d:
    return "BINUNICODE8";
  case 'U':
    return "SHORT_BINSTRING";
  case 'T':
    return "BINSTRING";
  case 'C':
    return "SHORT_BINBYTES";
  case 'B':
    return "BINBYTES";
  case 0x8e:
    return "BINBYTES8";
  case 0x96:
    return "BYTEARRAY8";
  case 0x97:
    return "NEXT_BUFFER";
  case 0x98:
    return "READONLY_BUFFER";
  case 'I':
    return "INT";
  case 'L':
    return "LONG";
  case 'F':
    return "FLOAT";
  case 'S':
    return "STRING";
  case 'V':
    return "UNICODE";
  case 'p':
    return "PUT";
  case 'g':
    return "GET";
  case 'i':
    return "INST";
  case 'o':
    return "OBJ";
  case 0x82:
    return "EXT1";
  case 0x83:
    return "EXT2";
  case 0x84:
    return "EXT4";
  }
  return "unknown";
}

/* ---- the machine -------------------------------------------------------- */

typedef struct up {
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
  /* Shared nodes for the ints 0..SMALL_INTS-1: a saved tensor's offset,
   * sizes, strides and storage numel are mostly small, and a checkpoint of
   * tens of thousands of tensors would otherwise spend most of its value
   * tree on them (bench/notes.md). Ints are immutable, so sharing is safe. */
  tsd__value **small_ints;
} up;

#define SMALL_INTS 1024

static tsd_status fail(up *u, tsd_status st, const char *fmt, ...)
    TSD_PRINTF(3, 4);
static tsd_status fail(up *u, tsd_status st, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return tsd__err(st, "%s: offset %zu (opcode %s, 0x%02x): %s", u->what,
                  u->op_off, opname(u->op), u->op, msg);
}

#define TRY(x)                                                                 \
  do {                                                                         \
    tsd_status st_ = (x);                                                      \
    if (st_ != TSD_OK) return st_;                                             \
  } while (0)

static tsd_status oom(up *u) {
  if (u->arena->limit && u->arena->total >= u->arena->limit / 2)
    return fail(u, TSD_ERR_LIMIT,
                "the pickle needs more memory than its size justifies "
                "(arena limit %llu bytes)",
                (unsigned long long)u->arena->limit);
  return fail(u, TSD_ERR_NOMEM, "out of memory");
}

static void *alloc(up *u, size_t n) {
  return tsd__arena_alloc(u->arena, n);
}

static tsd_status mk(up *u, tsd__vkind kind, tsd__value **out) {
  if (++u->nobjects > u->lim->max_objects)
    return fail(u, TSD_ERR_LIMIT, "more than %llu objects (limits.max_objects)",
                (unsigned long long)u->lim->max_objects);
  tsd__value *v = alloc(u, sizeof *v);
  if (!v) return oom(u);
  v->kind = kind;
  if (kind == TSD__V_TUPLE || kind == TSD__V_LIST || kind == TSD__V_SET ||
      kind == TSD__V_DICT)
    v->depth = 1;
  *out = v;
  return TSD_OK;
}

static bool is_container(const tsd__value *v) {
  return v->kind == TSD__V_TUPLE || v->kind == TSD__V_LIST ||
         v->kind == TSD__V_SET || v->kind == TSD__V_DICT;
}

static const char *kind_name(const tsd__value *v) {
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
  }
  return "?";
}

/* `child` becomes part of `parent`: freeze it, propagate depth. */
static tsd_status adopt(up *u, tsd__value *parent, tsd__value *child) {
  if (child == parent)
    return fail(u, TSD_ERR_FORMAT, "a %s cannot contain itself",
                kind_name(parent));
  child->flags |= VF_FROZEN;
  uint32_t d = is_container(child) ? child->depth + 1 : 1;
  if (d > parent->depth) parent->depth = d;
  if (parent->depth > u->lim->max_depth)
    return fail(u, TSD_ERR_LIMIT,
                "containers nested deeper than %u (limits.max_depth)",
                u->lim->max_depth);
  return TSD_OK;
}

static tsd_status check_mutable(up *u, const tsd__value *v) {
  if (v->flags & VF_FROZEN)
    return fail(u, TSD_ERR_FORMAT,
                "modifying a %s that is already inside another container "
                "(torch.save never does this; it would allow cycles)",
                kind_name(v));
  return TSD_OK;
}

static tsd_status push(up *u, tsd__value *v) {
  if (u->sp == u->scap) {
    size_t cap = u->scap ? u->scap * 2 : 64;
    tsd__value **s = tsd__mem_realloc(u->arena->al, u->stack, cap * sizeof *s);
    if (!s) return fail(u, TSD_ERR_NOMEM, "out of memory");
    u->stack = s;
    u->scap = cap;
  }
  u->stack[u->sp++] = v;
  return TSD_OK;
}

/* Items above the innermost MARK (the current frame, in Python's terms). */
static size_t frame_base(const up *u) {
  return u->nmarks ? u->marks[u->nmarks - 1] : 0;
}

static tsd_status need(up *u, size_t n) {
  if (u->sp - frame_base(u) < n)
    return fail(u, TSD_ERR_FORMAT,
                "stack underflow: needs %zu value(s), the %s has %zu", n,
                u->nmarks ? "frame above the MARK" : "stack",
                u->sp - frame_base(u));
  return TSD_OK;
}

static tsd_status pop_mark(up *u, size_t *base) {
  if (!u->nmarks) return fail(u, TSD_ERR_FORMAT, "no MARK on the stack");
  *base = u->marks[--u->nmarks];
  return TSD_OK;
}

static tsd_status grow_seq(up *u, tsd__value *v, size_t need_len) {
  if (need_len <= v->u.seq.cap) return TSD_OK;
  /* a tuple is filled once and never grows: no spare room */
  size_t cap = v->u.seq.cap              ? v->u.seq.cap
               : v->kind == TSD__V_TUPLE ? need_len
                                         : 4;
  while (cap < need_len) {
    if (cap > SIZE_MAX / 16) return oom(u);
    cap *= 2;
  }
  /* the old block stays in the arena: at most as much again as the final */
  tsd__value **items = alloc(u, cap * sizeof *items);
  if (!items) return oom(u);
  if (v->u.seq.len) memcpy(items, v->u.seq.items, v->u.seq.len * sizeof *items);
  v->u.seq.items = items;
  v->u.seq.cap = cap;
  return TSD_OK;
}

static tsd_status grow_dict(up *u, tsd__value *v, size_t need_len) {
  if (need_len <= v->u.dict.cap) return TSD_OK;
  size_t cap = v->u.dict.cap ? v->u.dict.cap : 4;
  while (cap < need_len) {
    if (cap > SIZE_MAX / 16) return oom(u);
    cap *= 2;
  }
  tsd__value **k = alloc(u, cap * sizeof *k);
  tsd__value **vals = alloc(u, cap * sizeof *vals);
  if (!k || !vals) return oom(u);
  if (v->u.dict.len) {
    memcpy(k, v->u.dict.keys, v->u.dict.len * sizeof *k);
    memcpy(vals, v->u.dict.vals, v->u.dict.len * sizeof *vals);
  }
  v->u.dict.keys = k;
  v->u.dict.vals = vals;
  v->u.dict.cap = cap;
  return TSD_OK;
}

/* Appends stack[from..to) to a list/tuple/set. */
static tsd_status seq_extend(up *u, tsd__value *seq, size_t from, size_t to) {
  TRY(grow_seq(u, seq, seq->u.seq.len + (to - from)));
  for (size_t i = from; i < to; i++) {
    TRY(adopt(u, seq, u->stack[i]));
    seq->u.seq.items[seq->u.seq.len++] = u->stack[i];
  }
  return TSD_OK;
}

static tsd_status dict_extend(up *u, tsd__value *d, size_t from, size_t to) {
  if ((to - from) % 2)
    return fail(u, TSD_ERR_FORMAT, "odd number of values (%zu) for a dict",
                to - from);
  TRY(grow_dict(u, d, d->u.dict.len + (to - from) / 2));
  for (size_t i = from; i < to; i += 2) {
    tsd__value *k = u->stack[i], *v = u->stack[i + 1];
    if (is_container(k) && k->kind != TSD__V_TUPLE)
      return fail(u, TSD_ERR_FORMAT, "unhashable dict key of type %s",
                  kind_name(k));
    TRY(adopt(u, d, k));
    TRY(adopt(u, d, v));
    d->u.dict.keys[d->u.dict.len] = k;
    d->u.dict.vals[d->u.dict.len] = v;
    d->u.dict.len++;
  }
  return TSD_OK;
}

/* ---- reading operands --------------------------------------------------- */

static tsd_status take(up *u, size_t n, const uint8_t **p) {
  if (n > u->len - u->pos) {
    u->truncated = true;
    return fail(u, TSD_ERR_FORMAT,
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

static tsd_status take_le(up *u, size_t n, uint64_t *out) {
  const uint8_t *p = NULL;
  TRY(take(u, n, &p));
  *out = le(p, n);
  return TSD_OK;
}

/* A length operand, checked against the bytes that remain before anything
 * is allocated for it. */
static tsd_status take_len(up *u, size_t width, uint64_t *out) {
  TRY(take_le(u, width, out));
  if (*out > u->len - u->pos) {
    u->truncated = true;
    return fail(u, TSD_ERR_FORMAT,
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

static tsd_status make_str(up *u, const uint8_t *p, size_t n, bool is_str,
                           tsd__value **out) {
  if (is_str && !utf8_valid(p, n))
    return fail(u, TSD_ERR_FORMAT, "string of %zu bytes is not valid UTF-8", n);
  tsd__value *v = NULL;
  TRY(mk(u, is_str ? TSD__V_STR : TSD__V_BYTES, &v));
  char *s = alloc(u, n + 1);
  if (!s) return oom(u);
  if (n) memcpy(s, p, n);
  s[n] = '\0';
  v->u.s.p = s;
  v->u.s.len = n;
  *out = v;
  return TSD_OK;
}

static tsd_status op_string(up *u, size_t width, bool is_str, bool signed_len) {
  uint64_t n = 0;
  TRY(take_le(u, width, &n));
  if (signed_len && (n & 0x80000000u))
    return fail(u, TSD_ERR_FORMAT, "negative string length");
  if (n > u->len - u->pos) {
    u->truncated = true;
    return fail(u, TSD_ERR_FORMAT,
                "string length %llu exceeds the %zu byte(s) that remain",
                (unsigned long long)n, u->len - u->pos);
  }
  const uint8_t *p = u->buf + u->pos;
  u->pos += (size_t)n;
  tsd__value *v = NULL;
  TRY(make_str(u, p, (size_t)n, is_str, &v));
  return push(u, v);
}

static tsd_status make_int(up *u, int64_t i, tsd__value **out);

/* LONG1/LONG4: little-endian two's complement; INT when it fits int64. */
static tsd_status make_long(up *u, const uint8_t *p, size_t n,
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
    TRY(make_int(u, (int64_t)x, &v));
  } else {
    TRY(mk(u, TSD__V_BIGINT, &v));
    char *s = alloc(u, n + 1);
    if (!s) return oom(u);
    memcpy(s, p, n);
    v->u.s.p = s;
    v->u.s.len = n;
  }
  *out = v;
  return TSD_OK;
}

static tsd_status make_int(up *u, int64_t i, tsd__value **out) {
  bool small = i >= 0 && i < SMALL_INTS;
  if (small && u->small_ints[i]) {
    *out = u->small_ints[i];
    return TSD_OK;
  }
  TRY(mk(u, TSD__V_INT, out));
  (*out)->u.i = i;
  if (small) u->small_ints[i] = *out;
  return TSD_OK;
}

/* Text INT/LONG (protocol 0, also "I01\n" for True). */
static tsd_status op_text_int(up *u, bool is_long) {
  size_t start = u->pos;
  const uint8_t *nl = memchr(u->buf + start, '\n', u->len - start);
  if (!nl) {
    u->truncated = true;
    return fail(u, TSD_ERR_FORMAT, "unterminated line");
  }
  size_t n = (size_t)(nl - (u->buf + start));
  const char *s = (const char *)u->buf + start;
  u->pos = start + n + 1;
  if (is_long && n && s[n - 1] == 'L') n--;
  tsd__value *v = NULL;
  if (!is_long && n == 2 && s[0] == '0' && (s[1] == '0' || s[1] == '1')) {
    return push(u, s[1] == '1' ? u->v_true : u->v_false);
  }
  size_t i = 0;
  bool neg = false;
  if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
  if (i == n) return fail(u, TSD_ERR_FORMAT, "empty integer literal");
  uint64_t x = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return fail(u, TSD_ERR_FORMAT, "bad integer literal");
    if (x > (UINT64_MAX - 9) / 10)
      return fail(u, TSD_ERR_UNSUPPORTED, "integer literal too large");
    x = x * 10 + (uint64_t)(s[i] - '0');
  }
  if (x > (uint64_t)INT64_MAX + (neg ? 1u : 0u))
    return fail(u, TSD_ERR_UNSUPPORTED, "integer literal too large");
  TRY(make_int(u, neg ? (int64_t)(0 - x) : (int64_t)x, &v));
  return push(u, v);
}

/* ---- globals and REDUCE -------------------------------------------------- */

static tsd_status make_global(up *u, const char *mod, size_t mlen,
                              const char *name, size_t nlen) {
  for (size_t i = 0; i < sizeof allowed_globals / sizeof *allowed_globals;
       i++) {
    const global_entry *g = &allowed_globals[i];
    if (strlen(g->module) == mlen && strlen(g->name) == nlen &&
        memcmp(g->module, mod, mlen) == 0 && memcmp(g->name, name, nlen) == 0) {
      tsd__value *v = NULL;
      TRY(mk(u, TSD__V_GLOBAL, &v));
      v->u.i = g->id;
      return push(u, v);
    }
  }
  /* The names come from the file: print them bounded and printable. */
  char buf[256];
  size_t k = 0;
  for (size_t i = 0; i < mlen + 1 + nlen && k + 5 < sizeof buf; i++) {
    unsigned char c = i < mlen    ? (unsigned char)mod[i]
                      : i == mlen ? '.'
                                  : (unsigned char)name[i - mlen - 1];
    if (c >= 0x20 && c < 0x7F && c != '\'') {
      buf[k++] = (char)c;
    } else {
      k += (size_t)snprintf(buf + k, sizeof buf - k, "\\x%02x", c);
    }
  }
  buf[k] = '\0';
  return fail(u, TSD_ERR_REFUSED,
              "refusing global '%s' (not in tsd's allow-list of the globals "
              "torch.save writes)",
              buf);
}

static tsd_status op_global_text(up *u) {
  const uint8_t *line[2];
  size_t n[2];
  for (int k = 0; k < 2; k++) {
    size_t start = u->pos;
    const uint8_t *nl = memchr(u->buf + start, '\n', u->len - start);
    if (!nl) {
      u->truncated = true;
      return fail(u, TSD_ERR_FORMAT, "unterminated GLOBAL name");
    }
    line[k] = u->buf + start;
    n[k] = (size_t)(nl - line[k]);
    u->pos = start + n[k] + 1;
  }
  return make_global(u, (const char *)line[0], n[0], (const char *)line[1],
                     n[1]);
}

static int64_t global_id(const tsd__value *v) {
  return v && v->kind == TSD__V_GLOBAL ? v->u.i : 0;
}

static bool is_int(const tsd__value *v) {
  return v->kind == TSD__V_INT;
}

/* Reads an int tuple (size or stride) into dst. */
static tsd_status int_tuple(up *u, const tsd__value *t, const char *what,
                            int64_t *dst, size_t *ndim) {
  if (t->kind != TSD__V_TUPLE && t->kind != TSD__V_LIST)
    return fail(u, TSD_ERR_FORMAT, "tensor %s is a %s, not a tuple", what,
                kind_name(t));
  if (t->u.seq.len > TSD_MAX_NDIM)
    return fail(u, TSD_ERR_UNSUPPORTED,
                "tensor has %zu dimensions (tsd supports up to %d)",
                t->u.seq.len, TSD_MAX_NDIM);
  for (size_t i = 0; i < t->u.seq.len; i++) {
    const tsd__value *x = t->u.seq.items[i];
    if (!is_int(x))
      return fail(u, TSD_ERR_FORMAT, "tensor %s[%zu] is a %s, not an int", what,
                  i, kind_name(x));
    if (x->u.i < 0)
      return fail(u, TSD_ERR_FORMAT, "tensor %s[%zu] is negative (%lld)", what,
                  i, (long long)x->u.i);
    dst[i] = x->u.i;
  }
  *ndim = t->u.seq.len;
  return TSD_OK;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, ...): every
 * number is checked so that the tensor lies inside its storage. */
static tsd_status build_tensor(up *u, const tsd__value *const *a,
                               tsd__value **out) {
  if (a[0]->kind != TSD__V_STORAGE)
    return fail(u, TSD_ERR_FORMAT, "tensor storage is a %s, not a storage",
                kind_name(a[0]));
  tsd__storage *s = a[0]->u.storage;
  if (!is_int(a[1]) || a[1]->u.i < 0)
    return fail(u, TSD_ERR_FORMAT,
                "tensor storage offset is not a non-negative int (storage "
                "'%s')",
                s->key);
  int64_t shape[TSD_MAX_NDIM], stride[TSD_MAX_NDIM];
  size_t nd, nd2;
  TRY(int_tuple(u, a[2], "size", shape, &nd));
  TRY(int_tuple(u, a[3], "stride", stride, &nd2));
  if (nd != nd2)
    return fail(u, TSD_ERR_FORMAT,
                "tensor has %zu sizes but %zu strides (storage '%s')", nd, nd2,
                s->key);
  uint64_t numel = 1, maxidx = (uint64_t)a[1]->u.i;
  bool ok = true;
  for (size_t i = 0; i < nd; i++) {
    if (!tsd__mul_u64(numel, (uint64_t)shape[i], &numel)) ok = false;
  }
  if (!ok || numel > (uint64_t)INT64_MAX)
    return fail(u, TSD_ERR_FORMAT,
                "tensor element count overflows (storage '%s')", s->key);
  if (numel) {
    for (size_t i = 0; i < nd; i++) {
      uint64_t span;
      if (!tsd__mul_u64((uint64_t)(shape[i] - 1), (uint64_t)stride[i], &span) ||
          !tsd__add_u64(maxidx, span, &maxidx))
        return fail(u, TSD_ERR_FORMAT, "tensor extent overflows (storage '%s')",
                    s->key);
    }
    if (maxidx >= s->numel)
      return fail(u, TSD_ERR_FORMAT,
                  "tensor needs element %llu of storage '%s', which has only "
                  "%llu element(s)",
                  (unsigned long long)maxidx, s->key,
                  (unsigned long long)s->numel);
  }
  tsd__value *v = NULL;
  TRY(mk(u, TSD__V_TENSOR, &v));
  tsd__tensor *t = alloc(u, sizeof *t);
  int64_t *arr = alloc(u, 2 * (nd ? nd : 1) * sizeof *arr);
  if (!t || !arr) return oom(u);
  t->storage = s;
  t->dtype = s->dtype;
  t->ndim = nd;
  t->shape = arr;
  t->stride = arr + (nd ? nd : 1);
  if (nd) {
    memcpy(t->shape, shape, nd * sizeof *shape);
    memcpy(t->stride, stride, nd * sizeof *stride);
  }
  t->offset = a[1]->u.i;
  t->numel = (int64_t)numel;
  /* C-contiguous in PyTorch's sense: size-1 dimensions' strides ignored */
  bool contig = true;
  int64_t expect = 1;
  for (size_t i = nd; i-- > 0;) {
    if (shape[i] == 1) continue;
    if (stride[i] != expect) contig = false;
    expect *= shape[i];
  }
  t->contiguous = contig || numel == 0;
  v->u.tensor = t;
  *out = v;
  return TSD_OK;
}

static tsd_status as_parameter(up *u, tsd__value *tv, tsd__value **out) {
  if (tv->kind != TSD__V_TENSOR)
    return fail(u, TSD_ERR_FORMAT, "Parameter data is a %s, not a tensor",
                kind_name(tv));
  tsd__value *v = NULL;
  TRY(mk(u, TSD__V_TENSOR, &v));
  tsd__tensor *t = alloc(u, sizeof *t);
  if (!t) return oom(u);
  *t = *tv->u.tensor;
  t->is_parameter = true;
  v->u.tensor = t;
  *out = v;
  return TSD_OK;
}

/* Decodes a str to bytes with latin-1: every code point must be < 256. */
static tsd_status latin1(up *u, const tsd__value *s, tsd__value **out) {
  const uint8_t *p = (const uint8_t *)s->u.s.p;
  size_t n = s->u.s.len, k = 0;
  tsd__value *v = NULL;
  TRY(mk(u, TSD__V_BYTES, &v));
  char *d = alloc(u, n + 1);
  if (!d) return oom(u);
  for (size_t i = 0; i < n;) {
    if (p[i] < 0x80) {
      d[k++] = (char)p[i++];
    } else if ((p[i] == 0xC2 || p[i] == 0xC3) && i + 1 < n) {
      d[k++] = (char)(((p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F));
      i += 2;
    } else {
      return fail(u, TSD_ERR_FORMAT,
                  "_codecs.encode: character outside latin-1");
    }
  }
  d[k] = '\0';
  v->u.s.p = d;
  v->u.s.len = k;
  *out = v;
  return TSD_OK;
}

static tsd_status call(up *u, int64_t id, tsd__value *args, bool nested,
                       tsd__value **out);

static tsd_status argc(up *u, const tsd__value *args, size_t lo, size_t hi,
                       const char *fn) {
  if (args->u.seq.len < lo || args->u.seq.len > hi)
    return fail(u, TSD_ERR_FORMAT, "%s called with %zu argument(s)", fn,
                args->u.seq.len);
  return TSD_OK;
}

/* What calling an allow-listed global does (REDUCE / NEWOBJ). */
static tsd_status call(up *u, int64_t id, tsd__value *args, bool nested,
                       tsd__value **out) {
  if (args->kind != TSD__V_TUPLE)
    return fail(u, TSD_ERR_FORMAT, "call arguments are a %s, not a tuple",
                kind_name(args));
  tsd__value **a = args->u.seq.items;
  tsd__value *v = NULL;
  switch (id) {
  case G_ORDERED_DICT:
    TRY(argc(u, args, 0, 0, "collections.OrderedDict"));
    TRY(mk(u, TSD__V_DICT, &v));
    v->flags |= TSD__VF_ORDERED;
    *out = v;
    return TSD_OK;
  case G_REBUILD_TENSOR_V2:
    TRY(argc(u, args, 6, 7, "_rebuild_tensor_v2"));
    if (a[4]->kind != TSD__V_BOOL && a[4]->kind != TSD__V_INT)
      return fail(u, TSD_ERR_FORMAT, "requires_grad is a %s", kind_name(a[4]));
    if (a[5]->kind != TSD__V_DICT && a[5]->kind != TSD__V_NONE)
      return fail(u, TSD_ERR_FORMAT, "backward_hooks is a %s", kind_name(a[5]));
    return build_tensor(u, (const tsd__value *const *)a, out);
  case G_REBUILD_TENSOR:
    TRY(argc(u, args, 4, 4, "_rebuild_tensor"));
    return build_tensor(u, (const tsd__value *const *)a, out);
  case G_REBUILD_PARAMETER:
    TRY(argc(u, args, 3, 3, "_rebuild_parameter"));
    return as_parameter(u, a[0], out);
  case G_REBUILD_PARAMETER_WITH_STATE:
    TRY(argc(u, args, 4, 4, "_rebuild_parameter_with_state"));
    return as_parameter(u, a[0], out);
  case G_REBUILD_FROM_TYPE_V2: {
    /* (func, new_type, args, state): one level only, never recursive */
    TRY(argc(u, args, 4, 4, "_rebuild_from_type_v2"));
    int64_t f = global_id(a[0]), type = global_id(a[1]);
    if (nested || (f != G_REBUILD_TENSOR_V2 && f != G_REBUILD_TENSOR &&
                   f != G_REBUILD_PARAMETER))
      return fail(u, TSD_ERR_REFUSED,
                  "_rebuild_from_type_v2 with a function other than "
                  "_rebuild_tensor/_rebuild_parameter");
    if (type != G_TENSOR && type != G_PARAMETER)
      return fail(u, TSD_ERR_REFUSED,
                  "_rebuild_from_type_v2 with a type other than torch.Tensor "
                  "or torch.nn.parameter.Parameter");
    tsd__value *t;
    TRY(call(u, f, a[2], true, &t));
    if (t->kind != TSD__V_TENSOR)
      return fail(u, TSD_ERR_FORMAT, "_rebuild_from_type_v2 built no tensor");
    if (type == G_PARAMETER && !t->u.tensor->is_parameter)
      return as_parameter(u, t, out);
    *out = t;
    return TSD_OK;
  }
  case G_SIZE:
    TRY(argc(u, args, 0, 1, "torch.Size"));
    if (args->u.seq.len == 0) return mk(u, TSD__V_TUPLE, out);
    if (a[0]->kind != TSD__V_TUPLE && a[0]->kind != TSD__V_LIST)
      return fail(u, TSD_ERR_FORMAT, "torch.Size of a %s", kind_name(a[0]));
    TRY(mk(u, TSD__V_TUPLE, &v));
    v->u.seq = a[0]->u.seq;
    v->u.seq.cap = v->u.seq.len;
    v->depth = a[0]->depth;
    *out = v;
    return TSD_OK;
  case G_CODECS_ENCODE:
    /* protocol 2 writes bytes as _codecs.encode('...', 'latin1') */
    TRY(argc(u, args, 2, 2, "_codecs.encode"));
    if (a[0]->kind != TSD__V_STR || a[1]->kind != TSD__V_STR ||
        (strcmp(a[1]->u.s.p, "latin1") != 0 &&
         strcmp(a[1]->u.s.p, "latin-1") != 0))
      return fail(u, TSD_ERR_REFUSED,
                  "_codecs.encode is allowed only as (str, 'latin1')");
    return latin1(u, a[0], out);
  case G_BYTES:
    TRY(argc(u, args, 0, 0, "bytes"));
    TRY(mk(u, TSD__V_BYTES, &v));
    v->u.s.p = alloc(u, 1);
    if (!v->u.s.p) return oom(u);
    *out = v;
    return TSD_OK;
  case G_SET:
  case G_FROZENSET:
    TRY(argc(u, args, 0, 1, id == G_SET ? "set" : "frozenset"));
    TRY(mk(u, TSD__V_SET, &v));
    if (args->u.seq.len) {
      const tsd__value *src = a[0];
      if (src->kind != TSD__V_LIST && src->kind != TSD__V_TUPLE &&
          src->kind != TSD__V_SET)
        return fail(u, TSD_ERR_FORMAT, "set of a %s", kind_name(src));
      TRY(grow_seq(u, v, src->u.seq.len));
      for (size_t i = 0; i < src->u.seq.len; i++) {
        TRY(adopt(u, v, src->u.seq.items[i]));
        v->u.seq.items[v->u.seq.len++] = src->u.seq.items[i];
      }
    }
    *out = v;
    return TSD_OK;
  default:
    return fail(u, TSD_ERR_REFUSED, "this global cannot be called");
  }
}

static tsd_status op_build(up *u) {
  TRY(need(u, 2));
  tsd__value *state = u->stack[--u->sp];
  tsd__value *obj = u->stack[u->sp - 1];
  if (obj->kind == TSD__V_DICT && (obj->flags & TSD__VF_ORDERED)) {
    /* An OrderedDict's state is its instance __dict__; state_dict() puts
     * `_metadata` there. Other attributes are ignored (they carry nothing
     * load_state_dict reads). */
    if (state->kind == TSD__V_NONE) return TSD_OK;
    if (state->kind != TSD__V_DICT)
      return fail(u, TSD_ERR_FORMAT, "OrderedDict state is a %s, not a dict",
                  kind_name(state));
    TRY(check_mutable(u, obj));
    for (size_t i = 0; i < state->u.dict.len; i++) {
      const tsd__value *k = state->u.dict.keys[i];
      if (k->kind == TSD__V_STR && strcmp(k->u.s.p, "_metadata") == 0 &&
          k->u.s.len == 9) {
        tsd__value *m = state->u.dict.vals[i];
        TRY(adopt(u, obj, m));
        obj->u.dict.metadata = m;
      }
    }
    return TSD_OK;
  }
  return fail(u, TSD_ERR_UNSUPPORTED, "BUILD on a %s is not supported",
              kind_name(obj));
}

/* ---- the loop ----------------------------------------------------------- */

static tsd_status step(up *u, bool *done, tsd__value **out) {
  u->op_off = u->pos;
  const uint8_t *p = NULL;
  TRY(take(u, 1, &p));
  u->op = *p;
  tsd__value *v = NULL;
  uint64_t x = 0;
  size_t base = 0;
  switch (u->op) {
  case 0x80: /* PROTO */
    TRY(take_le(u, 1, &x));
    if (x > 5)
      return fail(u, TSD_ERR_UNSUPPORTED, "pickle protocol %llu",
                  (unsigned long long)x);
    return TSD_OK;
  case 0x95: /* FRAME: framing is only a hint for buffered readers */
    TRY(take_len(u, 8, &x));
    return TSD_OK;
  case '.': /* STOP */
    if (u->nmarks)
      return fail(u, TSD_ERR_FORMAT, "STOP with %zu unclosed MARK(s)",
                  u->nmarks);
    if (u->sp != 1)
      return fail(u, TSD_ERR_FORMAT,
                  "STOP with %zu values on the stack (needs exactly 1)", u->sp);
    *out = u->stack[0];
    *done = true;
    return TSD_OK;
  case '(': /* MARK */
    if (u->nmarks == u->mcap) {
      size_t cap = u->mcap ? u->mcap * 2 : 16;
      size_t *m = tsd__mem_realloc(u->arena->al, u->marks, cap * sizeof *m);
      if (!m) return fail(u, TSD_ERR_NOMEM, "out of memory");
      u->marks = m;
      u->mcap = cap;
    }
    u->marks[u->nmarks++] = u->sp;
    return TSD_OK;
  case '0': /* POP: Python pops the MARK itself when the frame is empty */
    if (u->sp == frame_base(u) && u->nmarks) {
      u->nmarks--;
      return TSD_OK;
    }
    TRY(need(u, 1));
    u->sp--;
    return TSD_OK;
  case '1': /* POP_MARK */
    TRY(pop_mark(u, &base));
    u->sp = base;
    return TSD_OK;
  case '2': /* DUP */
    TRY(need(u, 1));
    return push(u, u->stack[u->sp - 1]);
  case 'c':
    return op_global_text(u);
  case 0x93: { /* STACK_GLOBAL */
    TRY(need(u, 2));
    tsd__value *mod = u->stack[u->sp - 2], *name = u->stack[u->sp - 1];
    if (mod->kind != TSD__V_STR || name->kind != TSD__V_STR)
      return fail(u, TSD_ERR_FORMAT, "STACK_GLOBAL needs two str");
    u->sp -= 2;
    return make_global(u, mod->u.s.p, mod->u.s.len, name->u.s.p, name->u.s.len);
  }
  case 'q':
  case 'r':
  case 0x94: { /* BINPUT LONG_BINPUT MEMOIZE */
    if (u->op == 'q')
      TRY(take_le(u, 1, &x));
    else if (u->op == 'r')
      TRY(take_le(u, 4, &x));
    else
      x = u->nmemo;
    TRY(need(u, 1));
    /* torch.save (Python's pickler) numbers memo entries 0, 1, 2, ...:
     * an index past the end would make us allocate what the file says */
    if (x > u->nmemo)
      return fail(u, TSD_ERR_FORMAT,
                  "memo index %llu is beyond the memo size %zu",
                  (unsigned long long)x, u->nmemo);
    if (x == u->nmemo) {
      if (u->nmemo == u->memocap) {
        size_t cap = u->memocap ? u->memocap * 2 : 64;
        tsd__value **m =
            tsd__mem_realloc(u->arena->al, u->memo, cap * sizeof *m);
        if (!m) return fail(u, TSD_ERR_NOMEM, "out of memory");
        u->memo = m;
        u->memocap = cap;
      }
      u->nmemo++;
    }
    u->memo[x] = u->stack[u->sp - 1];
    return TSD_OK;
  }
  case 'h':
  case 'j': /* BINGET LONG_BINGET */
    TRY(take_le(u, u->op == 'h' ? 1 : 4, &x));
    if (x >= u->nmemo)
      return fail(u, TSD_ERR_FORMAT, "unknown memo index %llu (memo size %zu)",
                  (unsigned long long)x, u->nmemo);
    return push(u, u->memo[x]);
  case '}':
    TRY(mk(u, TSD__V_DICT, &v));
    return push(u, v);
  case ']':
    TRY(mk(u, TSD__V_LIST, &v));
    return push(u, v);
  case ')': /* tuples are immutable: one empty tuple serves them all */
    if (!u->v_empty_tuple) TRY(mk(u, TSD__V_TUPLE, &u->v_empty_tuple));
    return push(u, u->v_empty_tuple);
  case 0x8f:
    TRY(mk(u, TSD__V_SET, &v));
    return push(u, v);
  case 0x90: { /* ADDITEMS */
    TRY(pop_mark(u, &base));
    size_t top = u->sp;
    u->sp = base;
    TRY(need(u, 1));
    tsd__value *set = u->stack[u->sp - 1];
    if (set->kind != TSD__V_SET)
      return fail(u, TSD_ERR_FORMAT, "ADDITEMS on a %s, not a set",
                  kind_name(set));
    TRY(check_mutable(u, set));
    return seq_extend(u, set, base, top);
  }
  case 0x91:  /* FROZENSET */
  case 't':   /* TUPLE */
  case 'l':   /* LIST */
  case 'd': { /* DICT */
    TRY(pop_mark(u, &base));
    size_t top = u->sp;
    TRY(mk(u,
           u->op == 't'   ? TSD__V_TUPLE
           : u->op == 'l' ? TSD__V_LIST
           : u->op == 'd' ? TSD__V_DICT
                          : TSD__V_SET,
           &v));
    if (u->op == 'd')
      TRY(dict_extend(u, v, base, top));
    else
      TRY(seq_extend(u, v, base, top));
    u->sp = base;
    return push(u, v);
  }
  case 0x85:
  case 0x86:
  case 0x87: { /* TUPLE1/2/3 */
    size_t n = (size_t)(u->op - 0x84);
    TRY(need(u, n));
    TRY(mk(u, TSD__V_TUPLE, &v));
    TRY(seq_extend(u, v, u->sp - n, u->sp));
    u->sp -= n;
    return push(u, v);
  }
  case 'a': { /* APPEND */
    TRY(need(u, 2));
    tsd__value *list = u->stack[u->sp - 2];
    if (list->kind != TSD__V_LIST)
      return fail(u, TSD_ERR_FORMAT, "APPEND to a %s, not a list",
                  kind_name(list));
    TRY(check_mutable(u, list));
    TRY(seq_extend(u, list, u->sp - 1, u->sp));
    u->sp--;
    return TSD_OK;
  }
  case 'e': { /* APPENDS */
    TRY(pop_mark(u, &base));
    size_t top = u->sp;
    u->sp = base;
    TRY(need(u, 1));
    tsd__value *list = u->stack[u->sp - 1];
    if (list->kind != TSD__V_LIST)
      return fail(u, TSD_ERR_FORMAT, "APPENDS to a %s, not a list",
                  kind_name(list));
    TRY(check_mutable(u, list));
    return seq_extend(u, list, base, top);
  }
  case 's': { /* SETITEM */
    TRY(need(u, 3));
    tsd__value *d = u->stack[u->sp - 3];
    if (d->kind != TSD__V_DICT)
      return fail(u, TSD_ERR_FORMAT, "SETITEM on a %s, not a dict",
                  kind_name(d));
    TRY(check_mutable(u, d));
    TRY(dict_extend(u, d, u->sp - 2, u->sp));
    u->sp -= 2;
    return TSD_OK;
  }
  case 'u': { /* SETITEMS */
    TRY(pop_mark(u, &base));
    size_t top = u->sp;
    u->sp = base;
    TRY(need(u, 1));
    tsd__value *d = u->stack[u->sp - 1];
    if (d->kind != TSD__V_DICT)
      return fail(u, TSD_ERR_FORMAT, "SETITEMS on a %s, not a dict",
                  kind_name(d));
    TRY(check_mutable(u, d));
    return dict_extend(u, d, base, top);
  }
  case 'R': { /* REDUCE */
    TRY(need(u, 2));
    tsd__value *fn = u->stack[u->sp - 2], *args = u->stack[u->sp - 1];
    if (fn->kind != TSD__V_GLOBAL)
      return fail(u, TSD_ERR_FORMAT, "REDUCE on a %s, not a global",
                  kind_name(fn));
    TRY(call(u, fn->u.i, args, false, &v));
    u->sp -= 2;
    return push(u, v);
  }
  case 0x81: { /* NEWOBJ: cls.__new__(cls, *args) */
    TRY(need(u, 2));
    tsd__value *cls = u->stack[u->sp - 2], *args = u->stack[u->sp - 1];
    if (global_id(cls) != G_ORDERED_DICT && global_id(cls) != G_SET)
      return fail(u, TSD_ERR_REFUSED,
                  "NEWOBJ is allowed only for OrderedDict and set");
    TRY(call(u, global_id(cls), args, false, &v));
    u->sp -= 2;
    return push(u, v);
  }
  case 'b':
    return op_build(u);
  case 'Q': { /* BINPERSID */
    TRY(need(u, 1));
    if (!u->persistent)
      return fail(u, TSD_ERR_FORMAT, "persistent id where none is allowed");
    tsd__value *pid = u->stack[u->sp - 1];
    tsd_status st = u->persistent(u->pctx, pid, &v);
    if (st != TSD_OK) {
      tsd__err_prefix("%s: offset %zu (BINPERSID)", u->what, u->op_off);
      return st;
    }
    u->stack[u->sp - 1] = v;
    return TSD_OK;
  }
  case 'N':
    return push(u, u->v_none);
  case 0x88:
    return push(u, u->v_true);
  case 0x89:
    return push(u, u->v_false);
  case 'J':
    TRY(take_le(u, 4, &x));
    TRY(make_int(u, (int64_t)(int32_t)(uint32_t)x, &v));
    return push(u, v);
  case 'K':
    TRY(take_le(u, 1, &x));
    TRY(make_int(u, (int64_t)x, &v));
    return push(u, v);
  case 'M':
    TRY(take_le(u, 2, &x));
    TRY(make_int(u, (int64_t)x, &v));
    return push(u, v);
  case 0x8a:   /* LONG1 */
  case 0x8b: { /* LONG4 */
    TRY(take_le(u, u->op == 0x8a ? 1 : 4, &x));
    if (u->op == 0x8b && (x & 0x80000000u))
      return fail(u, TSD_ERR_FORMAT, "negative LONG4 length");
    if (x > u->len - u->pos) {
      u->truncated = true;
      return fail(u, TSD_ERR_FORMAT,
                  "integer of %llu bytes exceeds the %zu byte(s) that remain",
                  (unsigned long long)x, u->len - u->pos);
    }
    TRY(take(u, (size_t)x, &p));
    TRY(make_long(u, p, (size_t)x, &v));
    return push(u, v);
  }
  case 'G': { /* BINFLOAT: big-endian double */
    TRY(take(u, 8, &p));
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++)
      bits = (bits << 8) | p[i];
    TRY(mk(u, TSD__V_FLOAT, &v));
    memcpy(&v->u.f, &bits, sizeof bits);
    return push(u, v);
  }
  case 0x8c:
    return op_string(u, 1, true, false);
  case 'X':
    return op_string(u, 4, true, false);
  case 0x8d:
    return op_string(u, 8, true, false);
  /* torch.load decodes Python 2 str with encoding='utf-8' */
  case 'U':
    return op_string(u, 1, true, false);
  case 'T':
    return op_string(u, 4, true, true);
  case 'C':
    return op_string(u, 1, false, false);
  case 'B':
    return op_string(u, 4, false, false);
  case 0x8e:
    return op_string(u, 8, false, false);
  case 0x96:
    return op_string(u, 8, false, false);
  case 'I':
    return op_text_int(u, false);
  case 'L':
    return op_text_int(u, true);
  default:
    return fail(u, TSD_ERR_UNSUPPORTED,
                "opcode not supported by tsd's restricted unpickler");
  }
}

tsd_status tsd__unpickle(const uint8_t *buf, size_t len, size_t *used,
                         tsd__arena *arena, const tsd__limits *limits,
                         tsd__persistent_fn persistent,
                         tsd__persistent_ctx *pctx, const char *what,
                         tsd__value **out) {
  up u;
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
  tsd_status st = mk(&u, TSD__V_NONE, &u.v_none);
  if (st == TSD_OK) st = mk(&u, TSD__V_BOOL, &u.v_true);
  if (st == TSD_OK) st = mk(&u, TSD__V_BOOL, &u.v_false);
  if (st == TSD_OK) u.v_true->u.i = 1;
  if (st == TSD_OK) {
    u.small_ints =
        tsd__mem_calloc(u.arena->al, SMALL_INTS, sizeof *u.small_ints);
    if (!u.small_ints) st = fail(&u, TSD_ERR_NOMEM, "out of memory");
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
  return st;
}
