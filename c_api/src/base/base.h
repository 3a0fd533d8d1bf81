/*
 * base.h — the bottom layer of libtsd (c_api/src/base/): errors,
 * allocation, arena, string buffer, string map, sort, hashing, overflow-safe
 * arithmetic, dtype conversion, the text helpers and the limits. It depends
 * on nothing but tsd.h and libc; every other layer includes it.
 *   util.c     errors (thread-local), allocation, arena, buffer, map, hash
 *   convert.c  dtype conversion (Tensor.copy_ semantics), float16/bfloat16
 *   text.c     UTF-8 decoding, escaping strings from files (tsd_escape)
 *   limits.c   the tsd_limits a checkpoint is read within, defaults filled in
 * Not installed; not public.
 */
#ifndef TSD_BASE_H
#define TSD_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tsd.h"

#ifdef __cplusplus
extern "C" {
#endif


#if defined(__MINGW32__)
/* MinGW's "printf" archetype is msvcrt's (no %zu); tsd's formatting is C99
 * (vsnprintf with __USE_MINGW_ANSI_STDIO) */
#define TSD_PRINTF(a, b) __attribute__((format(gnu_printf, a, b)))
#elif defined(__GNUC__)
#define TSD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TSD_PRINTF(a, b)
#endif

/* Drops const on purpose, where a pointer is stored in a field shared by
 * mutable and immutable data (a value's string, a model's impl handle, a
 * lazily filled cache): through uintptr_t, which -Wcast-qual accepts as
 * deliberate. */
#define TSD__UNCONST(type, p) ((type)(uintptr_t)(const void *)(p))
/* ---- errors (util.c) ---------------------------------------------------- */

/* Sets the calling thread's error message and returns `status`.
 * Usage: return tsd__err(TSD_ERR_FORMAT, "%s: offset %llu: ...", ...); */
tsd_status tsd__err(tsd_status status, const char *fmt, ...) TSD_PRINTF(2, 3);
/* Prefixes the current thread message with "<prefix>: " (for context). */
void tsd__err_prefix(const char *fmt, ...) TSD_PRINTF(1, 2);
void tsd__err_clear(void);

/* ---- allocation (util.c) ------------------------------------------------ */
/* Allocation through an object's allocator `al` (its copy of the caller's
 * hooks); NULL means libc's. Sizes are never 0 when they reach the hooks.
 * They never abort; on failure they return NULL. */
void *tsd__mem_alloc(const tsd_allocator *al, size_t n);
void *tsd__mem_calloc(const tsd_allocator *al, size_t count, size_t size);
void *tsd__mem_realloc(const tsd_allocator *al, void *p, size_t n);
void tsd__mem_free(const tsd_allocator *al, void *p);
char *tsd__mem_strdup(const tsd_allocator *al, const char *s);
char *tsd__mem_strndup(const tsd_allocator *al, const char *s, size_t n);
/* Grows the array *p (capacity *cap elements of `elem` bytes) to hold at
 * least `need`, doubling; false on overflow or OOM, leaving it unchanged. */
bool tsd__mem_grow(const tsd_allocator *al, void **p, size_t *cap, size_t need,
                   size_t elem);
/* Checks a caller's allocator: all three functions or none (NULL). */
tsd_status tsd__allocator_check(const tsd_allocator *al, const char *fn);
/* qsort's contract, without allocating (util.c; not stable). */
void tsd__sort(void *base, size_t n, size_t size,
               int (*cmp)(const void *, const void *));

/* ---- arena (util.c): bump allocator freed all at once -------------------- */
typedef struct tsd__arena_block tsd__arena_block;
typedef struct tsd__arena {
  const tsd_allocator *al; /* NULL: libc */
  tsd__arena_block *head;
  uint64_t total;  /* bytes handed out so far */
  uint64_t held;   /* bytes of the blocks it holds (>= total) */
  uint64_t limit;  /* 0 = unlimited; bounds `held`: past it allocations
                      fail (a new block is cut to what remains of it) */
  unsigned char *spare; /* recycled memory, used before the head block */
  size_t spare_len;
  bool hit_limit; /* the last allocation was refused for the limit */
} tsd__arena;
void tsd__arena_init(tsd__arena *a, uint64_t limit, const tsd_allocator *al);
void *tsd__arena_alloc(tsd__arena *a, size_t n); /* 8-byte aligned, zeroed */
void tsd__arena_free(tsd__arena *a);

/* ---- growable string buffer (util.c) ------------------------------------ */
typedef struct tsd__buf {
  const tsd_allocator *al; /* NULL: libc */
  char *data; /* always NUL-terminated when len > 0 or after any append */
  size_t len, cap;
  bool oom;   /* set once an append failed; later appends are no-ops */
} tsd__buf;
void tsd__buf_init(tsd__buf *b, const tsd_allocator *al);
void tsd__buf_free(tsd__buf *b);
void tsd__buf_append(tsd__buf *b, const char *s, size_t n);
void tsd__buf_puts(tsd__buf *b, const char *s);
void tsd__buf_printf(tsd__buf *b, const char *fmt, ...) TSD_PRINTF(2, 3);
/* Takes the string (the caller frees it with tsd__mem_free(b->al, ...));
 * the buffer is reset. */
char *tsd__buf_take(tsd__buf *b);

/* ---- string -> index hash map (util.c) ---------------------------------- */
typedef struct tsd__strmap {
  const tsd_allocator *al; /* NULL: libc */
  uint64_t *slots; /* hash << 32 | (index + 1); 0 = empty (util.c) */
  size_t cap;    /* power of two */
  size_t count;
} tsd__strmap;
/* Keys are not stored: the caller passes a function that gives the key of an
 * index. */
typedef const char *(*tsd__strmap_keyfn)(const void *ctx, size_t index,
                                          size_t *len);
void tsd__strmap_init(tsd__strmap *m, const tsd_allocator *al);
void tsd__strmap_free(tsd__strmap *m);
/* Inserts index; if an equal key exists returns false and sets *existing. */
bool tsd__strmap_insert(tsd__strmap *m, const char *key, size_t len,
                        size_t index, tsd__strmap_keyfn fn, const void *ctx,
                        size_t *existing, bool *oom);
bool tsd__strmap_find(const tsd__strmap *m, const char *key, size_t len,
                      tsd__strmap_keyfn fn, const void *ctx, size_t *out);
void tsd__strmap_remove(tsd__strmap *m, const char *key, size_t len,
                        tsd__strmap_keyfn fn, const void *ctx);
/* SipHash-1-3 of s[0..n) keyed with a per-process random seed (util.c). */
uint64_t tsd__hash(const char *s, size_t n);
uint64_t tsd__siphash13(uint64_t k0, uint64_t k1, const void *data, size_t n);

/* overflow-safe arithmetic */
static inline bool tsd__mul_u64(uint64_t a, uint64_t b, uint64_t *r) {
  return !__builtin_mul_overflow(a, b, r);
}
static inline bool tsd__add_u64(uint64_t a, uint64_t b, uint64_t *r) {
  return !__builtin_add_overflow(a, b, r);
}

/* ---- dtypes and conversion (convert.c) ---------------------------------- */
/* Converts n elements from `src` (src_dtype) to `dst` (dst_dtype), both
 * C-contiguous, with Tensor.copy_'s rules (float->int truncates toward zero,
 * ->bool is x != 0, float->half/bfloat16 rounds to nearest even). src and dst
 * must not overlap unless the dtypes are equal and src == dst. */
void tsd__convert(void *dst, tsd_dtype dst_dtype, const void *src,
                  tsd_dtype src_dtype, size_t n);
float tsd__half_to_float(uint16_t h);
uint16_t tsd__float_to_half(float f);
float tsd__bf16_to_float(uint16_t h);
uint16_t tsd__float_to_bf16(float f);
/* One float8 value of dtype t (a TSD_FLOAT8_*) to float and back, c10's
 * rules (convert.c). */
float tsd__fp8_to_float(uint8_t x, tsd_dtype t);
uint8_t tsd__float_to_fp8(float f, tsd_dtype t);
bool tsd__dtype_valid(int dtype);

/* ---- showing strings from files (text.c) -------------------------------- */
/* Decodes one UTF-8 sequence at s[0..n) (n > 0); returns its length, or 0
 * if the bytes are not UTF-8. Encoded surrogates are accepted (pickle
 * decodes with 'surrogatepass'). */
size_t tsd__utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Appends s[0..len) escaped as tsd_escape does. */
void tsd__buf_escape(tsd__buf *b, const char *s, size_t len,
                     tsd_escape_mode mode);


/* Limits with defaults filled in. */
typedef struct tsd__limits {
  uint32_t max_depth;
  uint64_t max_objects;
  uint64_t max_pickle_bytes;
  uint64_t max_output_ratio; /* as given (0: the default, write.c) */
} tsd__limits;
void tsd__limits_resolve(tsd__limits *out, const tsd_open_options *opts);

/* ---- parse memory budget (branch `parse`) ---------------------------------
 * What one parse of S bytes of pickle may hold: its values in the arena and
 * the unpickler's working arrays (stack, marks, memo) together at most
 * TSD__PARSE_RATIO * S + TSD__PARSE_SLACK bytes (tsd__unpickle enforces it,
 * TSD_ERR_LIMIT past it; a reader with several pickles in one file sets one
 * arena limit for all of them, tsd__parse_budget). JSON keeps the same
 * bound by construction (json.c). */
#define TSD__PARSE_RATIO 16u
#define TSD__PARSE_SLACK ((uint64_t)1 << 20)
/* arena->held + RATIO * bytes + SLACK (UINT64_MAX on overflow). */
uint64_t tsd__parse_budget(const tsd__arena *a, uint64_t bytes);
/* A point to roll an arena back to (tsd__arena_release frees everything
 * allocated after it; pointers into that memory become invalid). */
typedef struct tsd__arena_mark {
  tsd__arena_block *head;
  size_t used;
  uint64_t total, held;
} tsd__arena_mark;
tsd__arena_mark tsd__arena_get_mark(const tsd__arena *a);
void tsd__arena_release(tsd__arena *a, tsd__arena_mark m);
/* p[0..n), from this arena and no longer used (a container's items before
 * it grew), may serve later allocations: the largest such block is kept. */
void tsd__arena_recycle(tsd__arena *a, void *p, size_t n);

/* ---- platform (branch `platform`): crc32.c, byteorder.c ----------------- */
/* zlib's crc32 (ISO-HDLC): crc = tsd__crc32(0, p, n), chained by passing the
 * previous value. The OS below tsd is platform.h (this folder). */
uint32_t tsd__crc32(uint32_t crc, const void *data, size_t n);
/* 1 on a big-endian machine (s390x): tensor data in files is little-endian
 * (every format tsd reads and writes), so it is byte-swapped per element on
 * the way in and out (tsd__swap_elems). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define TSD__BIG_ENDIAN 1
#else
#define TSD__BIG_ENDIAN 0
#endif
/* Reverses the bytes of each of `count` elements of `elsize` bytes (1: no
 * op; complex types swap each half: pass the component size). */
void tsd__swap_elems(void *p, size_t elsize, size_t count);
/* tsd__storage.swap for a storage of `dtype` in a file of the given byte
 * order: 0 when it is the machine's, else the unit to reverse (the element,
 * or each half of a complex element; 0 for one-byte types). */
uint8_t tsd__swap_unit(tsd_dtype dtype, bool file_big);

/* ---- input files (platform_posix.c, platform_win32.c) ------------------- */
/* "directory", "FIFO", "character device", ... for an st_mode. */
const char *tsd__file_type_name(unsigned mode);
/* Opens an input file for reading without ever blocking on it: a FIFO,
 * device, directory or socket is refused at once (TSD_ERR_IO naming the
 * path and the file type). *out_fd is blocking, O_CLOEXEC; *size if
 * non-NULL. Every input tsd opens by path goes through here. */
tsd_status tsd__open_regular(const char *path, int *out_fd, uint64_t *size);
#ifdef __cplusplus
}
#endif

#endif /* TSD_BASE_H */
