/* util.c — errors, allocation, arena, string buffer, string hash map. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "platform.h"

/* ---- errors ------------------------------------------------------------- */

/* One message per thread (libgit2's model): two threads never share it. */
#define TSD_ERRMSG_CAP 4096
static _Thread_local char tls_errmsg[TSD_ERRMSG_CAP];

/* Messages quote keys, names and values from files: every one is escaped
 * here (text.c, TSD_ESCAPE_MESSAGE), so no call site can forget. Escaping is
 * idempotent, so a message that quotes another is not escaped twice.
 * TSD_ERR_LOAD's message is PyTorch's RuntimeError text, kept exact. */
tsd_status tsd__err(tsd_status status, const char *fmt, ...) {
  char raw[TSD_ERRMSG_CAP];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  size_t len = n < 0 ? 0 : (size_t)n < sizeof raw ? (size_t)n : sizeof raw - 1;
  if (status == TSD_ERR_LOAD)
    memcpy(tls_errmsg, raw, len + 1);
  else
    tsd_escape(tls_errmsg, sizeof tls_errmsg, raw, len, TSD_ESCAPE_MESSAGE);
  return status;
}

void tsd__err_prefix(const char *fmt, ...) {
  char raw[1024], prefix[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  size_t len = n < 0 ? 0 : (size_t)n < sizeof raw ? (size_t)n : sizeof raw - 1;
  tsd_escape(prefix, sizeof prefix, raw, len, TSD_ESCAPE_MESSAGE);
  size_t plen = strlen(prefix);
  size_t olen = strnlen(tls_errmsg, TSD_ERRMSG_CAP - 1);
  if (plen + 2 + olen >= TSD_ERRMSG_CAP) olen = TSD_ERRMSG_CAP - 1 - plen - 2;
  memmove(tls_errmsg + plen + 2, tls_errmsg, olen);
  memcpy(tls_errmsg, prefix, plen);
  tls_errmsg[plen] = ':';
  tls_errmsg[plen + 1] = ' ';
  tls_errmsg[plen + 2 + olen] = '\0';
}

void tsd__err_clear(void) { tls_errmsg[0] = '\0'; }

const char *tsd_last_error(void) { return tls_errmsg; }

const char *tsd_status_name(tsd_status s) {
  switch (s) {
  case TSD_OK: return "TSD_OK";
  case TSD_ERR_INVALID_ARG: return "TSD_ERR_INVALID_ARG";
  case TSD_ERR_IO: return "TSD_ERR_IO";
  case TSD_ERR_FORMAT: return "TSD_ERR_FORMAT";
  case TSD_ERR_UNSUPPORTED: return "TSD_ERR_UNSUPPORTED";
  case TSD_ERR_REFUSED: return "TSD_ERR_REFUSED";
  case TSD_ERR_NOMEM: return "TSD_ERR_NOMEM";
  case TSD_ERR_NOT_FOUND: return "TSD_ERR_NOT_FOUND";
  case TSD_ERR_TYPE: return "TSD_ERR_TYPE";
  case TSD_ERR_LIMIT: return "TSD_ERR_LIMIT";
  case TSD_ERR_LOAD: return "TSD_ERR_LOAD";
  case TSD_ERR_TORCH: return "TSD_ERR_TORCH";
  case TSD_ERR_BUFFER: return "TSD_ERR_BUFFER";
  case TSD_ERR_CANCELED: return "TSD_ERR_CANCELED";
  case TSD_ERR_CALLBACK: return "TSD_ERR_CALLBACK";
  }
  return "TSD_ERR_UNKNOWN";
}

const char *tsd_version(void) {
#define TSD_STR2(x) #x
#define TSD_STR(x) TSD_STR2(x)
  return TSD_STR(TSD_VERSION_MAJOR) "." TSD_STR(TSD_VERSION_MINOR) "." TSD_STR(
      TSD_VERSION_PATCH);
}

int tsd_version_number(void) { return TSD_VERSION_NUMBER; }

/* ---- allocation --------------------------------------------------------- */

/* Every object keeps a copy of the allocator it was created with and passes
 * it down (zstd's customMem model): no process-wide hooks to set, so two
 * parts of a program (or two threads) can use different allocators. */
static void *libc_allocate(void *user, size_t n) {
  (void)user;
  return malloc(n);
}
static void *libc_reallocate(void *user, void *p, size_t n) {
  (void)user;
  return realloc(p, n);
}
static void libc_deallocate(void *user, void *p) {
  (void)user;
  free(p);
}
static const tsd_allocator libc_allocator = {libc_allocate, libc_reallocate,
                                             libc_deallocate, NULL};

void *tsd__mem_alloc(const tsd_allocator *al, size_t n) {
  if (!al) al = &libc_allocator;
  return al->allocate(al->user, n ? n : 1);
}
void *tsd__mem_calloc(const tsd_allocator *al, size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) return NULL;
  void *p = tsd__mem_alloc(al, n);
  if (p) memset(p, 0, n ? n : 1);
  return p;
}
void *tsd__mem_realloc(const tsd_allocator *al, void *p, size_t n) {
  if (!al) al = &libc_allocator;
  if (!p) return al->allocate(al->user, n ? n : 1);
  return al->reallocate(al->user, p, n ? n : 1);
}
void tsd__mem_free(const tsd_allocator *al, void *p) {
  if (!p) return;
  if (!al) al = &libc_allocator;
  al->deallocate(al->user, p);
}
char *tsd__mem_strndup(const tsd_allocator *al, const char *s, size_t n) {
  if (n == SIZE_MAX) return NULL;
  char *p = tsd__mem_alloc(al, n + 1);
  if (!p) return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}
char *tsd__mem_strdup(const tsd_allocator *al, const char *s) {
  return tsd__mem_strndup(al, s, strlen(s));
}
bool tsd__mem_grow(const tsd_allocator *al, void **p, size_t *cap, size_t need,
                   size_t elem) {
  if (need <= *cap) return true;
  size_t c = *cap ? *cap : 16;
  while (c < need) {
    if (c > SIZE_MAX / 2 / elem) return false;
    c *= 2;
  }
  void *q = tsd__mem_realloc(al, *p, c * elem);
  if (!q) return false;
  *p = q;
  *cap = c;
  return true;
}

tsd_status tsd__allocator_check(const tsd_allocator *al, const char *fn) {
  if (al && (!al->allocate || !al->reallocate || !al->deallocate))
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "%s: the allocator must give all three functions "
                    "(allocate, reallocate, deallocate)",
                    fn);
  return TSD_OK;
}

/* ---- sorting ------------------------------------------------------------ */

/* Heapsort: O(n log n) worst case and no memory at all. glibc's qsort
 * mallocs a merge buffer for arrays over 1 KiB, which would go around the
 * caller's allocator (and can be made quadratic by no input here, but a
 * checkpoint's order is the attacker's to choose). Not stable: every caller
 * sorts distinct keys. */
static void swap_bytes(unsigned char *a, unsigned char *b, size_t size) {
  while (size--) {
    unsigned char t = *a;
    *a++ = *b;
    *b++ = t;
  }
}

static void sift_down(unsigned char *base, size_t root, size_t n, size_t size,
                      int (*cmp)(const void *, const void *)) {
  for (;;) {
    size_t child = 2 * root + 1;
    if (child >= n) return;
    if (child + 1 < n &&
        cmp(base + child * size, base + (child + 1) * size) < 0)
      child++;
    if (cmp(base + root * size, base + child * size) >= 0) return;
    swap_bytes(base + root * size, base + child * size, size);
    root = child;
  }
}

void tsd__sort(void *base, size_t n, size_t size,
               int (*cmp)(const void *, const void *)) {
  unsigned char *b = base;
  if (n < 2) return;
  for (size_t i = n / 2; i-- > 0;)
    sift_down(b, i, n, size, cmp);
  for (size_t end = n - 1; end > 0; end--) {
    swap_bytes(b, b + end * size, size);
    sift_down(b, 0, end, size, cmp);
  }
}

/* ---- arena -------------------------------------------------------------- */

struct tsd__arena_block {
  tsd__arena_block *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

void tsd__arena_init(tsd__arena *a, uint64_t limit, const tsd_allocator *al) {
  a->al = al;
  a->head = NULL;
  a->total = 0;
  a->held = 0;
  a->limit = limit;
  a->spare = NULL;
  a->spare_len = 0;
  a->hit_limit = false;
}

void *tsd__arena_alloc(tsd__arena *a, size_t n) {
  /* 8-byte granules: nothing tsd keeps in an arena needs more alignment,
   * and 16 would add 8 bytes to every 56-byte value node. */
  a->hit_limit = false;
  if (n > SIZE_MAX - 7) return NULL;
  n = (n + 7u) & ~(size_t)7u;
  if (n == 0) n = 8;
  if (a->spare_len >= n) {
    void *p = a->spare;
    a->spare += n;
    a->spare_len -= n;
    a->total += n;
    memset(p, 0, n);
    return p;
  }
  tsd__arena_block *b = a->head;
  if (!b || b->cap - b->used < n) {
    /* an eighth of what it holds (64 KiB to 16 MiB): the unused end of
     * the newest block is then at most 1/8 of the whole, which matters
     * where the arena's limit bounds a parse (tsd__parse_budget) */
    size_t cap = (size_t)(a->held / 8 < ((size_t)16 << 20) ? a->held / 8
                                                            : (16u << 20));
    if (cap < 64 * 1024) cap = 64 * 1024;
    cap = (cap + 4095) & ~(size_t)4095;
    if (cap < n) cap = n;
    if (cap > SIZE_MAX - sizeof *b) return NULL;
    if (a->limit) { /* what the allocator holds stays within the limit */
      uint64_t room = a->held < a->limit ? a->limit - a->held : 0;
      if (room < sizeof *b || n > room - sizeof *b) {
        a->hit_limit = true;
        return NULL;
      }
      /* at most half the room left: the rest may be needed outside the
       * arena under the same limit (the unpickler's stack and memo) */
      room = (room - sizeof *b) / 2;
      if (cap > room) cap = n > room ? n : (size_t)room;
    }
    b = tsd__mem_alloc(a->al, sizeof *b + cap);
    if (!b) return NULL;
    b->next = a->head;
    b->used = 0;
    b->cap = cap;
    a->head = b;
    a->held += sizeof *b + cap;
  }
  void *p = b->data + b->used;
  b->used += n;
  a->total += n;
  memset(p, 0, n);
  return p;
}

void tsd__arena_free(tsd__arena *a) {
  tsd__arena_block *b = a->head;
  while (b) {
    tsd__arena_block *next = b->next;
    tsd__mem_free(a->al, b);
    b = next;
  }
  a->head = NULL;
  a->total = 0;
  a->held = 0;
  a->spare = NULL;
  a->spare_len = 0;
}

uint64_t tsd__parse_budget(const tsd__arena *a, uint64_t bytes) {
  uint64_t b;
  if (!tsd__mul_u64(bytes, TSD__PARSE_RATIO, &b) ||
      !tsd__add_u64(b, a->held, &b) || !tsd__add_u64(b, TSD__PARSE_SLACK, &b))
    return UINT64_MAX;
  return b;
}

tsd__arena_mark tsd__arena_get_mark(const tsd__arena *a) {
  tsd__arena_mark m = {a->head, a->head ? a->head->used : 0, a->total,
                       a->held};
  return m;
}

void tsd__arena_release(tsd__arena *a, tsd__arena_mark m) {
  while (a->head && a->head != m.head) {
    tsd__arena_block *next = a->head->next;
    tsd__mem_free(a->al, a->head);
    a->head = next;
  }
  if (a->head) a->head->used = m.used;
  a->total = m.total;
  a->held = m.held;
  a->spare = NULL; /* it may lie in a released block */
  a->spare_len = 0;
}

void tsd__arena_recycle(tsd__arena *a, void *p, size_t n) {
  n &= ~(size_t)7u; /* allocations are 8-byte granules */
  if (p && n > a->spare_len) {
    a->spare = p;
    a->spare_len = n;
  }
}

/* ---- string buffer ------------------------------------------------------ */

void tsd__buf_init(tsd__buf *b, const tsd_allocator *al) {
  memset(b, 0, sizeof *b);
  b->al = al;
}
void tsd__buf_free(tsd__buf *b) {
  const tsd_allocator *al = b->al;
  tsd__mem_free(al, b->data);
  memset(b, 0, sizeof *b);
  b->al = al;
}

static bool buf_reserve(tsd__buf *b, size_t extra) {
  if (b->oom) return false;
  if (b->len + extra + 1 <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1) {
    if (cap > SIZE_MAX / 2) {
      b->oom = true;
      return false;
    }
    cap *= 2;
  }
  char *p = tsd__mem_realloc(b->al, b->data, cap);
  if (!p) {
    b->oom = true;
    return false;
  }
  b->data = p;
  b->cap = cap;
  return true;
}

void tsd__buf_append(tsd__buf *b, const char *s, size_t n) {
  if (!buf_reserve(b, n)) return;
  if (n) memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void tsd__buf_puts(tsd__buf *b, const char *s) {
  tsd__buf_append(b, s, strlen(s));
}

void tsd__buf_printf(tsd__buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !buf_reserve(b, (size_t)n)) {
    va_end(ap2);
    if (n < 0) b->oom = true;
    return;
  }
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  b->len += (size_t)n;
}

char *tsd__buf_take(tsd__buf *b) {
  if (b->oom) {
    tsd__buf_free(b);
    return NULL;
  }
  if (!b->data) {
    buf_reserve(b, 0);
    if (b->oom) return NULL;
    b->data[0] = '\0';
  }
  char *p = b->data;
  const tsd_allocator *al = b->al;
  memset(b, 0, sizeof *b);
  b->al = al;
  return p;
}

/* ---- string hash map ---------------------------------------------------- */

/* SipHash-1-3 (Aumasson & Bernstein; the variant Rust's and CPython's
 * hash tables use) keyed with a per-process random seed. Keys come from
 * files: with an unkeyed hash (tsd used FNV-1a) an attacker builds keys
 * that share their low bits, and linear probing over them is quadratic
 * (150k such keys took 18 s to open). Without the seed no one can predict
 * which keys collide. */
#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND                                                              \
  do {                                                                         \
    v0 += v1;                                                                  \
    v1 = SIP_ROTL(v1, 13);                                                     \
    v1 ^= v0;                                                                  \
    v0 = SIP_ROTL(v0, 32);                                                     \
    v2 += v3;                                                                  \
    v3 = SIP_ROTL(v3, 16);                                                     \
    v3 ^= v2;                                                                  \
    v0 += v3;                                                                  \
    v3 = SIP_ROTL(v3, 21);                                                     \
    v3 ^= v0;                                                                  \
    v2 += v1;                                                                  \
    v1 = SIP_ROTL(v1, 17);                                                     \
    v1 ^= v2;                                                                  \
    v2 = SIP_ROTL(v2, 32);                                                     \
  } while (0)

static uint64_t load_le64(const unsigned char *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint64_t v;
  memcpy(&v, p, 8); /* one load: the hash is on every key's hot path */
  return v;
#else
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
#endif
}

uint64_t tsd__siphash13(uint64_t k0, uint64_t k1, const void *data, size_t n) {
  const unsigned char *p = data;
  uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull,
           v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t m = load_le64(p + i);
    v3 ^= m;
    SIP_ROUND;
    v0 ^= m;
  }
  uint64_t b = (uint64_t)n << 56;
  for (size_t j = 0; i + j < n; j++)
    b |= (uint64_t)p[i + j] << (8 * j);
  v3 ^= b;
  SIP_ROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIP_ROUND;
  SIP_ROUND;
  SIP_ROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

/* The seed: drawn once per process (tsd__once_run, so two threads opening
 * their first checkpoints at once agree on it) and never changed after. */
static tsd__once seed_once = TSD__ONCE_INIT;
static uint64_t seed_k[2];

static void seed_init(void) {
  uint64_t k[2] = {0, 0};
  if (!tsd__os_random(k, sizeof k, false)) {
    /* No getrandom (a seccomp sandbox, an old kernel): the clock, the
     * addresses ASLR chose and the pid are still not a file's to know. */
    k[0] ^= tsd__os_weak_entropy();
    k[1] ^= (uint64_t)(uintptr_t)&k ^ (uint64_t)(uintptr_t)&seed_init ^
            tsd__os_weak_entropy() << 1;
  }
  seed_k[0] = k[0];
  seed_k[1] = k[1];
}

uint64_t tsd__hash(const char *s, size_t n) {
  tsd__once_run(&seed_once, seed_init);
  return tsd__siphash13(seed_k[0], seed_k[1], s, n);
}

void tsd__strmap_init(tsd__strmap *m, const tsd_allocator *al) {
  memset(m, 0, sizeof *m);
  m->al = al;
}
void tsd__strmap_free(tsd__strmap *m) {
  const tsd_allocator *al = m->al;
  tsd__mem_free(al, m->slots);
  memset(m, 0, sizeof *m);
  m->al = al;
}

/* A slot holds the key's index + 1 (low 32 bits, 0 = empty) and the low 32
 * bits of its hash (high 32 bits): probes compare hashes before calling back
 * for the key, and growing never needs the keys again. */
#define SLOT(h, i) ((uint64_t)(uint32_t)(h) << 32 | (uint64_t)((i) + 1))
#define SLOT_INDEX(s) ((size_t)((s) & 0xFFFFFFFFu) - 1)
#define SLOT_HASH(s) ((uint32_t)((s) >> 32))
#define STRMAP_MAX_PROBE 64

static bool key_eq(const char *key, size_t len, uint64_t slot, uint32_t hash,
                   tsd__strmap_keyfn fn, const void *ctx) {
  if (SLOT_HASH(slot) != hash) return false;
  size_t klen;
  const char *k = fn(ctx, SLOT_INDEX(slot), &klen);
  return klen == len && memcmp(k, key, len) == 0;
}

static bool strmap_grow(tsd__strmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 16;
  if (cap > ((size_t)1 << 31)) return false;
  uint64_t *slots = tsd__mem_calloc(m->al, cap, sizeof *slots);
  if (!slots) return false;
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->slots[i]) continue;
    size_t j = SLOT_HASH(m->slots[i]) & (cap - 1);
    while (slots[j]) j = (j + 1) & (cap - 1);
    slots[j] = m->slots[i];
  }
  tsd__mem_free(m->al, m->slots);
  m->slots = slots;
  m->cap = cap;
  return true;
}

bool tsd__strmap_insert(tsd__strmap *m, const char *key, size_t len,
                        size_t index, tsd__strmap_keyfn fn, const void *ctx,
                        size_t *existing, bool *oom) {
  *oom = false;
  if (index >= 0xFFFFFFFFu ||
      ((m->count + 1) * 2 > m->cap && !strmap_grow(m))) {
    *oom = true;
    return false;
  }
  uint32_t h = (uint32_t)tsd__hash(key, len);
  for (;;) {
    size_t j = h & (m->cap - 1), dist = 0;
    while (m->slots[j]) {
      if (key_eq(key, len, m->slots[j], h, fn, ctx)) {
        if (existing) *existing = SLOT_INDEX(m->slots[j]);
        return false;
      }
      j = (j + 1) & (m->cap - 1);
      dist++;
    }
    /* Bounded probing: with the keyed hash a chain this long is a fluke
     * (expected ~log n at half load); should one form anyway, a larger
     * table spreads it, down to a load of 1/16. */
    if (dist > STRMAP_MAX_PROBE && m->cap / 16 < m->count + 1 && strmap_grow(m))
      continue;
    m->slots[j] = SLOT(h, index);
    m->count++;
    return true;
  }
}

bool tsd__strmap_find(const tsd__strmap *m, const char *key, size_t len,
                      tsd__strmap_keyfn fn, const void *ctx, size_t *out) {
  if (!m->cap) return false;
  uint32_t h = (uint32_t)tsd__hash(key, len);
  size_t j = h & (m->cap - 1);
  while (m->slots[j]) {
    if (key_eq(key, len, m->slots[j], h, fn, ctx)) {
      if (out) *out = SLOT_INDEX(m->slots[j]);
      return true;
    }
    j = (j + 1) & (m->cap - 1);
  }
  return false;
}

void tsd__strmap_remove(tsd__strmap *m, const char *key, size_t len,
                        tsd__strmap_keyfn fn, const void *ctx) {
  if (!m->cap) return;
  size_t mask = m->cap - 1;
  uint32_t h = (uint32_t)tsd__hash(key, len);
  size_t j = h & mask;
  while (m->slots[j]) {
    if (key_eq(key, len, m->slots[j], h, fn, ctx)) break;
    j = (j + 1) & mask;
  }
  if (!m->slots[j]) return;
  m->slots[j] = 0;
  m->count--;
  /* Backward-shift deletion keeps linear probing chains intact. */
  size_t k = (j + 1) & mask;
  while (m->slots[k]) {
    size_t home = SLOT_HASH(m->slots[k]) & mask;
    /* Move slot k to hole j if its home is not in (j, k]. */
    bool between = (j < k) ? (home > j && home <= k) : (home > j || home <= k);
    if (!between) {
      m->slots[j] = m->slots[k];
      m->slots[k] = 0;
      j = k;
    }
    k = (k + 1) & mask;
  }
}
