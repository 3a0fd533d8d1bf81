/* json.c — a small strict JSON parser (RFC 8259) for the two JSON texts tsd
 * reads from untrusted files: the safetensors header and a sharded
 * checkpoint's `*.index.json`.
 *
 * Why our own and not cJSON (Debian's libcjson) or json-c:
 *  - exact integers: safetensors offsets and shapes are u64; cJSON and
 *    json-c keep numbers as double (cJSON) or clamp them, so 2^53 + 1 would
 *    silently become another offset. Here an integer literal is parsed
 *    exactly or rejected as out of range;
 *  - allocation: every byte comes from the checkpoint's arena (bounded,
 *    freed at once, through the checkpoint's allocator). cJSON's only allocator
 * switch, cJSON_InitHooks, is process-global mutable state, which tsd must not
 *    touch (a host may use cJSON itself);
 *  - strictness the formats need: duplicate object names are an error (a
 *    header naming one tensor twice is ambiguous; cJSON keeps both), strings
 *    must be valid UTF-8 (overlong forms and lone surrogates refused) and may
 *    not contain U+0000 (keys become C strings);
 *  - bounded recursion: the caller's depth limit (the safetensors header
 *    needs 3 levels), checked before descending, so hostile nesting cannot
 *    exhaust the C stack;
 *  - one less dependency for the pure-C embedded build.
 */
#include <string.h>

#include "formats.h"

/* Memory per input byte (the bound tsd.h states: 16x + 1 MiB). A node is
 * 24 bytes and an open container's items wait on one stack shared by all
 * levels (8 bytes each, freed at the end) before they are copied into the
 * arena (8 more); an object's names also pass through a string map (8
 * bytes a slot, at least half full). The densest texts are then: `0,` (2
 * bytes), `10,` `-1,` `"",` `[],` `{},` (3) and `null,`: shared nodes,
 * 16 bytes each; `100,` (4 bytes): 24 + 16 = 40; `"a",` `[0],` `1.0,` (4):
 * 24 + 8 (the string, items or text) + 16 = 48; a member `"ab":0,` (7
 * bytes): 32 for the name, 32 for the pointers, 16-32 in the map. Each is
 * at most 12x, plus the text itself and the stack's doubling; the 1 MiB
 * covers arena blocks. tests/unit/test_io.cc measures each. */
typedef struct jp {
  const char *p, *end, *start;
  tsd__arena *arena;
  uint32_t max_depth;
  const char *what;
  tsd__json **stack; /* the items of every open container, innermost last */
  size_t depth_n, cap;
} jp;

/* Nodes that carry nothing but their kind: shared, never written (the
 * tree is read-only once parsed). */
static const tsd__json J_NULL = {.kind = TSD__J_NULL};
static const tsd__json J_TRUE = {.kind = TSD__J_BOOL, .b = true};
static const tsd__json J_FALSE = {.kind = TSD__J_BOOL, .b = false};
static const tsd__json J_EMPTY_STR = {.kind = TSD__J_STR, .len = 0, .s = ""};
static const tsd__json J_EMPTY_ARR = {.kind = TSD__J_ARR};
static const tsd__json J_EMPTY_OBJ = {.kind = TSD__J_OBJ};
/* every integer of at most two characters: 0..99 and -9..-1 */
#define J_INT(x)                                                               \
  { .kind = TSD__J_INT, .i = (x) }
#define J_INT10(b)                                                             \
  J_INT(b), J_INT(b + 1), J_INT(b + 2), J_INT(b + 3), J_INT(b + 4),            \
      J_INT(b + 5), J_INT(b + 6), J_INT(b + 7), J_INT(b + 8), J_INT(b + 9)
static const tsd__json J_SMALL[100] = {
    J_INT10(0),  J_INT10(10), J_INT10(20), J_INT10(30), J_INT10(40),
    J_INT10(50), J_INT10(60), J_INT10(70), J_INT10(80), J_INT10(90)};
static const tsd__json J_MINUS[10] = {
    J_INT(0),  J_INT(-1), J_INT(-2), J_INT(-3), J_INT(-4),
    J_INT(-5), J_INT(-6), J_INT(-7), J_INT(-8), J_INT(-9)};
#define SHARED(node) TSD__UNCONST(tsd__json *, &(node))

static tsd_status jerr(const jp *j, const char *msg) {
  return tsd__err(TSD_ERR_FORMAT, "%s: bad JSON at byte %llu: %s", j->what,
                  (unsigned long long)(j->p - j->start), msg);
}

static void skip_ws(jp *j) {
  while (j->p < j->end &&
         (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
    j->p++;
}

static tsd__json *jnew(jp *j, tsd__jkind kind) {
  tsd__json *v = tsd__arena_alloc(j->arena, sizeof *v);
  if (v) v->kind = (uint8_t)kind;
  return v;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool read_hex4(jp *j, uint32_t *out) {
  if (j->end - j->p < 4) return false;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(j->p[i]);
    if (h < 0) return false;
    v = v << 4 | (uint32_t)h;
  }
  j->p += 4;
  *out = v;
  return true;
}

static size_t put_utf8(char *o, uint32_t cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | cp >> 12);
    o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | cp >> 18);
  o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
  o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Length of the valid UTF-8 sequence at p (strict: no overlong forms, no
 * surrogates, at most U+10FFFF), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
  unsigned char c = p[0];
  size_t n;
  uint32_t min, cp;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2, min = 0x80, cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, min = 0x800, cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, min = 0x10000, cp = c & 0x07;
  } else {
    return 0;
  }
  if ((size_t)(end - p) < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

/* A string (the opening quote already consumed). The decoded text is never
 * longer than the source, so one allocation of the source length suffices. */
static tsd_status parse_string(jp *j, const char **out, uint32_t *out_len) {
  const char *q = j->p;
  while (q < j->end && *q != '"')
    q += (*q == '\\' && j->end - q > 1) ? 2 : 1;
  if (q >= j->end) return jerr(j, "unterminated string");
  if (q == j->p) { /* "": no allocation (a text of them stays small) */
    j->p++;
    *out = "";
    *out_len = 0;
    return TSD_OK;
  }
  size_t cap = (size_t)(q - j->p) + 1;
  char *o = tsd__arena_alloc(j->arena, cap);
  if (!o) return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", j->what);
  size_t n = 0;
  for (;;) {
    if (j->p >= j->end) return jerr(j, "unterminated string");
    unsigned char c = (unsigned char)*j->p;
    if (c == '"') {
      j->p++;
      break;
    }
    if (c < 0x20) return jerr(j, "control character in a string");
    if (c != '\\') {
      size_t k =
          utf8_len((const unsigned char *)j->p, (const unsigned char *)j->end);
      if (!k) return jerr(j, "invalid UTF-8 in a string");
      memcpy(o + n, j->p, k);
      n += k;
      j->p += k;
      continue;
    }
    j->p++;
    if (j->p >= j->end) return jerr(j, "unterminated escape");
    char e = *j->p++;
    switch (e) {
    case '"':
      o[n++] = '"';
      break;
    case '\\':
      o[n++] = '\\';
      break;
    case '/':
      o[n++] = '/';
      break;
    case 'b':
      o[n++] = '\b';
      break;
    case 'f':
      o[n++] = '\f';
      break;
    case 'n':
      o[n++] = '\n';
      break;
    case 'r':
      o[n++] = '\r';
      break;
    case 't':
      o[n++] = '\t';
      break;
    case 'u': {
      uint32_t cp, lo;
      if (!read_hex4(j, &cp)) return jerr(j, "bad \\u escape");
      if (cp >= 0xDC00 && cp <= 0xDFFF) return jerr(j, "lone low surrogate");
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
          return jerr(j, "lone high surrogate");
        j->p += 2;
        if (!read_hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF)
          return jerr(j, "bad surrogate pair");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      }
      if (cp == 0) return jerr(j, "\\u0000 in a string (keys are C strings)");
      /* \uXXXX is 6 source bytes for at most 3 output bytes; a pair is 12
       * for 4: the buffer of the source length is enough. */
      n += put_utf8(o + n, cp);
      break;
    }
    default:
      return jerr(j, "bad escape");
    }
  }
  o[n] = '\0';
  *out = o;
  *out_len = (uint32_t)n; /* texts are under 4 GiB (tsd__json_parse) */
  return TSD_OK;
}

/* RFC 8259 number grammar. An integer literal (no fraction, no exponent)
 * that fits int64 is TSD__J_INT; any other number is TSD__J_NUM with its
 * text kept (nothing in tsd needs its value). */
static tsd_status parse_number(jp *j, tsd__json **out) {
  const char *s = j->p;
  bool neg = false, integral = true, fits = true;
  uint64_t acc = 0;
  if (j->p < j->end && *j->p == '-') {
    neg = true;
    j->p++;
  }
  if (j->p >= j->end || *j->p < '0' || *j->p > '9')
    return jerr(j, "bad number");
  if (*j->p == '0') {
    j->p++;
    if (j->p < j->end && *j->p >= '0' && *j->p <= '9')
      return jerr(j, "leading zero in a number");
  } else {
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
      uint64_t d = (uint64_t)(*j->p - '0');
      if (!tsd__mul_u64(acc, 10, &acc) || !tsd__add_u64(acc, d, &acc))
        fits = false;
      j->p++;
    }
  }
  if (j->p < j->end && *j->p == '.') {
    integral = false;
    j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
      return jerr(j, "bad fraction");
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
      j->p++;
  }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    integral = false;
    j->p++;
    if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
      return jerr(j, "bad exponent");
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
      j->p++;
  }
  size_t len = (size_t)(j->p - s);
  if (integral && fits &&
      (neg ? acc <= (uint64_t)INT64_MAX + 1 : acc <= (uint64_t)INT64_MAX)) {
    if (!neg && acc < 100) {
      *out = SHARED(J_SMALL[acc]);
      return TSD_OK;
    }
    if (neg && acc < 10) {
      *out = SHARED(J_MINUS[acc]);
      return TSD_OK;
    }
    tsd__json *v = jnew(j, TSD__J_INT);
    if (!v) return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", j->what);
    v->i = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    *out = v;
    return TSD_OK;
  }
  tsd__json *v = jnew(j, TSD__J_NUM);
  char *text = tsd__arena_alloc(j->arena, len + 1);
  if (!v || !text) return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", j->what);
  memcpy(text, s, len);
  v->s = text;
  v->len = (uint32_t)len;
  *out = v;
  return TSD_OK;
}

static tsd_status parse_value(jp *j, uint32_t depth, tsd__json **out);

/* Pushes an item (or a name) of the innermost open container. */
static bool push(jp *j, tsd__json *x) {
  if (j->depth_n == j->cap) {
    size_t cap = j->cap ? j->cap * 2 : 64;
    if (cap > SIZE_MAX / sizeof *j->stack) return false;
    tsd__json **p = tsd__mem_realloc(j->arena->al, j->stack, cap * sizeof *p);
    if (!p) return false;
    j->stack = p;
    j->cap = cap;
  }
  j->stack[j->depth_n++] = x;
  return true;
}

/* The names of the object whose items start at stack[base]: name, value,
 * name, value... (the stack may move while the object is open). */
typedef struct names_ctx {
  const jp *j;
  size_t base;
} names_ctx;

static const char *member_key(const void *ctx, size_t i, size_t *len) {
  const names_ctx *c = ctx;
  const tsd__json *k = c->j->stack[c->base + 2 * i];
  *len = k->len;
  return k->s;
}

static tsd_status parse_container(jp *j, uint32_t depth, bool object,
                                  tsd__json **out) {
  if (depth >= j->max_depth)
    return jerr(j, "nested deeper than the limit allows");
  size_t base = j->depth_n, n = 0;
  names_ctx ctx = {j, base};
  tsd__strmap seen;
  tsd__strmap_init(&seen, j->arena->al);
  tsd_status st = TSD_OK;
  char close = object ? '}' : ']';
  skip_ws(j);
  if (j->p < j->end && *j->p == close) {
    j->p++;
  } else {
    for (;;) {
      skip_ws(j);
      if (object) {
        if (j->p >= j->end || *j->p != '"') {
          st = jerr(j, "expected a string (an object member name)");
          break;
        }
        j->p++;
        const char *kstart = j->p - 1;
        const char *ks;
        uint32_t klen;
        if ((st = parse_string(j, &ks, &klen))) break;
        tsd__json *k = klen ? jnew(j, TSD__J_STR) : SHARED(J_EMPTY_STR);
        if (!k || !push(j, k)) {
          st = tsd__err(TSD_ERR_NOMEM, "%s: out of memory", j->what);
          break;
        }
        if (klen) {
          k->s = ks;
          k->len = klen;
        }
        bool oom = false;
        size_t prev;
        if (!tsd__strmap_insert(&seen, k->s, k->len, n, member_key, &ctx, &prev,
                                &oom)) {
          st = oom ? tsd__err(TSD_ERR_NOMEM, "%s: out of memory", j->what)
                   : tsd__err(TSD_ERR_FORMAT,
                              "%s: bad JSON at byte %llu: duplicate name "
                              "\"%.200s\" in an object",
                              j->what, (unsigned long long)(kstart - j->start),
                              k->s);
          break;
        }
        skip_ws(j);
        if (j->p >= j->end || *j->p != ':') {
          st = jerr(j, "expected ':'");
          break;
        }
        j->p++;
      }
      tsd__json *item = NULL;
      if ((st = parse_value(j, depth + 1, &item))) break;
      if (!push(j, item)) {
        st = tsd__err(TSD_ERR_NOMEM, "%s: out of memory", j->what);
        break;
      }
      n++;
      skip_ws(j);
      if (j->p < j->end && *j->p == ',') {
        j->p++;
        continue;
      }
      if (j->p < j->end && *j->p == close) {
        j->p++;
        break;
      }
      st = jerr(j, object ? "expected ',' or '}'" : "expected ',' or ']'");
      break;
    }
  }
  tsd__strmap_free(&seen);
  if (!st && !n) *out = object ? SHARED(J_EMPTY_OBJ) : SHARED(J_EMPTY_ARR);
  if (!st && n) {
    tsd__json *v = jnew(j, object ? TSD__J_OBJ : TSD__J_ARR);
    tsd__json **items =
        v ? tsd__arena_alloc(j->arena, n * sizeof *v->items) : NULL;
    tsd__json **keys =
        object && items ? tsd__arena_alloc(j->arena, n * sizeof *keys) : NULL;
    if (!items || (object && !keys)) {
      st = tsd__err(TSD_ERR_NOMEM, "%s: out of memory", j->what);
    } else {
      tsd__json **at = j->stack + base;
      for (size_t i = 0; i < n; i++) {
        if (object) keys[i] = *at++;
        items[i] = *at++;
      }
      v->items = items;
      v->keys = keys;
      v->n = (uint32_t)n;
      *out = v;
    }
  }
  j->depth_n = base;
  return st;
}

static bool literal(jp *j, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) return false;
  j->p += n;
  return true;
}

static tsd_status parse_value(jp *j, uint32_t depth, tsd__json **out) {
  skip_ws(j);
  if (j->p >= j->end) return jerr(j, "unexpected end of the text");
  char c = *j->p;
  switch (c) {
  case '{':
  case '[':
    j->p++;
    return parse_container(j, depth, c == '{', out);
  case '"': {
    j->p++;
    const char *str;
    uint32_t len;
    tsd_status st = parse_string(j, &str, &len);
    if (st) return st;
    if (!len) {
      *out = SHARED(J_EMPTY_STR);
      return TSD_OK;
    }
    tsd__json *v = jnew(j, TSD__J_STR);
    if (!v) return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", j->what);
    v->s = str;
    v->len = len;
    *out = v;
    return TSD_OK;
  }
  case 't':
  case 'f':
    if (!literal(j, c == 't' ? "true" : "false")) return jerr(j, "bad literal");
    *out = c == 't' ? SHARED(J_TRUE) : SHARED(J_FALSE);
    return TSD_OK;
  case 'n':
    if (!literal(j, "null")) return jerr(j, "bad literal");
    *out = SHARED(J_NULL);
    return TSD_OK;
  default:
    return parse_number(j, out);
  }
}

tsd_status tsd__json_parse(const char *text, size_t len, tsd__arena *arena,
                           uint32_t max_depth, const char *what,
                           tsd__json **out) {
  jp j = {text, text + len, text, arena, max_depth ? max_depth : 1,
          what, NULL,       0,    0};
  *out = NULL;
  if (len > UINT32_MAX)
    return tsd__err(TSD_ERR_LIMIT,
                    "%s: %zu bytes of JSON; tsd reads up to 4 GiB", what, len);
  tsd__json *v = NULL;
  tsd_status st = parse_value(&j, 0, &v);
  tsd__mem_free(arena->al, j.stack);
  if (st) return st;
  skip_ws(&j);
  if (j.p != j.end) return jerr(&j, "text after the value");
  *out = v;
  return TSD_OK;
}

const tsd__json *tsd__json_get(const tsd__json *obj, const char *key) {
  if (!obj || obj->kind != TSD__J_OBJ) return NULL;
  size_t n = strlen(key);
  for (size_t i = 0; i < obj->n; i++)
    if (obj->keys[i]->len == n && memcmp(obj->keys[i]->s, key, n) == 0)
      return obj->items[i];
  return NULL;
}

bool tsd__utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s, *end = p + n;
  while (p < end) {
    size_t k = utf8_len(p, end);
    if (!k) return false;
    p += k;
  }
  return true;
}

const char *tsd__json_kind_name(tsd__jkind kind) {
  switch (kind) {
  case TSD__J_NULL:
    return "null";
  case TSD__J_BOOL:
    return "a boolean";
  case TSD__J_INT:
  case TSD__J_NUM:
    return "a number";
  case TSD__J_STR:
    return "a string";
  case TSD__J_ARR:
    return "an array";
  case TSD__J_OBJ:
    return "an object";
  }
  return "?";
}
