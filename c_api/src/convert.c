/* convert.c — dtypes and element conversion with Tensor.copy_'s rules.
 *
 * The half and bfloat16 conversions are c10's (c10/util/Half.h,
 * c10/util/BFloat16.h), bit for bit: PyTorch rounds float->half and
 * float->bfloat16 to nearest even, keeps NaN a NaN, and converts double and
 * integers to half/bfloat16 through float (two roundings, as c10 does). */
#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "internal.h"

static const size_t dtype_sizes[TSD_DTYPE_COUNT] = {4, 8, 2, 2, 1,
                                                    2, 4, 8, 1, 1};
static const char *const dtype_names[TSD_DTYPE_COUNT] = {
    "float32", "float64", "float16", "bfloat16", "int8",
    "int16",   "int32",   "int64",   "uint8",    "bool"};

bool tsd__dtype_valid(int dtype) {
  return dtype >= 0 && dtype < (int)TSD_DTYPE_COUNT;
}

size_t tsd_dtype_size(tsd_dtype dtype) {
  return tsd__dtype_valid((int)dtype) ? dtype_sizes[dtype] : 0;
}

const char *tsd_dtype_name(tsd_dtype dtype) {
  return tsd__dtype_valid((int)dtype) ? dtype_names[dtype] : "?";
}

static inline uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
static inline float f32_from(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* c10's fp16_ieee_to_fp32_value: branch-free so the loop vectorises. */
static inline float half_to_float(uint16_t h) {
  const uint32_t w = (uint32_t)h << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const uint32_t exp_offset = 0xE0u << 23;
  const float exp_scale = 0x1.0p-112f;
  const float normalized = f32_from((two_w >> 4) + exp_offset) * exp_scale;
  const uint32_t magic_mask = 126u << 23;
  const float denormalized = f32_from((two_w >> 17) | magic_mask) - 0.5f;
  const uint32_t cutoff = 1u << 27;
  /* a mask rather than ?: so that the loop has no control flow */
  const uint32_t denorm_mask = 0u - (uint32_t)(two_w < cutoff);
  const uint32_t bits = sign | (f32_bits(denormalized) & denorm_mask) |
                        (f32_bits(normalized) & ~denorm_mask);
  return f32_from(bits);
}

/* c10's fp16_ieee_from_fp32_value: round to nearest even, NaN -> 0x7E00. */
static inline uint16_t float_to_half(float f) {
  const float scale_to_inf = 0x1.0p+112f;
  const float scale_to_zero = 0x1.0p-110f;
  float base = (fabsf(f) * scale_to_inf) * scale_to_zero;
  const uint32_t w = f32_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = f32_from((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = f32_bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

static inline float bf16_to_float(uint16_t h) {
  return f32_from((uint32_t)h << 16);
}

/* c10::detail::round_to_nearest_even. */
static inline uint16_t float_to_bf16(float f) {
  if (isnan(f)) return 0x7FC0;
  const uint32_t u = f32_bits(f);
  const uint32_t bias = ((u >> 16) & 1u) + 0x7FFFu;
  return (uint16_t)((u + bias) >> 16);
}

float tsd__half_to_float(uint16_t h) {
  return half_to_float(h);
}
uint16_t tsd__float_to_half(float f) {
  return float_to_half(f);
}
float tsd__bf16_to_float(uint16_t h) {
  return bf16_to_float(h);
}
uint16_t tsd__float_to_bf16(float f) {
  return float_to_bf16(f);
}

/* Float -> integer is a C++ static_cast in PyTorch, i.e. truncation toward
 * zero; out of range (and NaN) is undefined behaviour in C, so we reproduce
 * what x86-64 gives PyTorch instead: cvttsd2si's "integer indefinite"
 * (INT_MIN of the conversion width). int8/int16/int32 targets go through a
 * 32-bit conversion and wrap; int64 and uint8 (c10's
 * static_cast_with_inter_type<uint8_t> goes through int64) use 64 bits. */
static inline int64_t trunc_i64(double d) {
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
    return INT64_MIN;
  return (int64_t)d;
}
static inline int32_t trunc_i32(double d) {
  if (!(d > -2147483649.0 && d < 2147483648.0)) return INT32_MIN;
  return (int32_t)d;
}

/* Elements are converted in blocks through one of two intermediates: int64
 * for integer and bool sources (so int64 -> float32 rounds once, as a C++
 * cast does) and double for floating sources (exact for every float). */
#define BLOCK 256

static void load_int(int64_t *o, const void *src, tsd_dtype t, size_t n) {
  size_t i;
  switch (t) {
  case TSD_INT8:
    for (i = 0; i < n; i++)
      o[i] = ((const int8_t *)src)[i];
    break;
  case TSD_INT16:
    for (i = 0; i < n; i++) {
      int16_t v;
      memcpy(&v, (const char *)src + 2 * i, 2);
      o[i] = v;
    }
    break;
  case TSD_INT32:
    for (i = 0; i < n; i++) {
      int32_t v;
      memcpy(&v, (const char *)src + 4 * i, 4);
      o[i] = v;
    }
    break;
  case TSD_INT64:
    memcpy(o, src, n * 8);
    break;
  case TSD_UINT8:
    for (i = 0; i < n; i++)
      o[i] = ((const uint8_t *)src)[i];
    break;
  case TSD_BOOL: /* a byte other than 0/1 from a file still means true */
    for (i = 0; i < n; i++)
      o[i] = ((const uint8_t *)src)[i] != 0;
    break;
  default:
    break;
  }
}

static void load_float(double *o, const void *src, tsd_dtype t, size_t n) {
  size_t i;
  switch (t) {
  case TSD_FLOAT32:
    for (i = 0; i < n; i++) {
      float v;
      memcpy(&v, (const char *)src + 4 * i, 4);
      o[i] = v;
    }
    break;
  case TSD_FLOAT64:
    memcpy(o, src, n * 8);
    break;
  case TSD_FLOAT16:
    for (i = 0; i < n; i++) {
      uint16_t v;
      memcpy(&v, (const char *)src + 2 * i, 2);
      o[i] = half_to_float(v);
    }
    break;
  case TSD_BFLOAT16:
    for (i = 0; i < n; i++) {
      uint16_t v;
      memcpy(&v, (const char *)src + 2 * i, 2);
      o[i] = bf16_to_float(v);
    }
    break;
  default:
    break;
  }
}

#define STORE(type, expr)                                                      \
  for (i = 0; i < n; i++) {                                                    \
    type v_ = (type)(expr);                                                    \
    memcpy((char *)dst + i * sizeof(type), &v_, sizeof v_);                    \
  }

static void store_int(void *dst, tsd_dtype t, const int64_t *x, size_t n) {
  size_t i;
  switch (t) {
  case TSD_FLOAT32:
    STORE(float, (float)x[i]);
    break;
  case TSD_FLOAT64:
    STORE(double, (double)x[i]);
    break;
  case TSD_FLOAT16:
    STORE(uint16_t, float_to_half((float)x[i]));
    break;
  case TSD_BFLOAT16:
    STORE(uint16_t, float_to_bf16((float)x[i]));
    break;
  /* integer narrowing wraps modulo 2^n, as in C++ (and GCC for C) */
  case TSD_INT8:
    STORE(int8_t, (int8_t)(uint8_t)(uint64_t)x[i]);
    break;
  case TSD_INT16:
    STORE(int16_t, (int16_t)(uint16_t)(uint64_t)x[i]);
    break;
  case TSD_INT32:
    STORE(int32_t, (int32_t)(uint32_t)(uint64_t)x[i]);
    break;
  case TSD_INT64:
    memcpy(dst, x, n * 8);
    break;
  case TSD_UINT8:
    STORE(uint8_t, (uint8_t)(uint64_t)x[i]);
    break;
  case TSD_BOOL:
    STORE(uint8_t, x[i] != 0);
    break;
  default:
    break;
  }
}

static void store_float(void *dst, tsd_dtype t, const double *x, size_t n) {
  size_t i;
  switch (t) {
  case TSD_FLOAT32:
    STORE(float, (float)x[i]);
    break;
  case TSD_FLOAT64:
    memcpy(dst, x, n * 8);
    break;
  case TSD_FLOAT16:
    STORE(uint16_t, float_to_half((float)x[i]));
    break;
  case TSD_BFLOAT16:
    STORE(uint16_t, float_to_bf16((float)x[i]));
    break;
  case TSD_INT8:
    STORE(int8_t, (int8_t)(uint8_t)(uint32_t)trunc_i32(x[i]));
    break;
  case TSD_INT16:
    STORE(int16_t, (int16_t)(uint16_t)(uint32_t)trunc_i32(x[i]));
    break;
  case TSD_INT32:
    STORE(int32_t, trunc_i32(x[i]));
    break;
  case TSD_INT64:
    STORE(int64_t, trunc_i64(x[i]));
    break;
  case TSD_UINT8:
    STORE(uint8_t, (uint8_t)(uint64_t)trunc_i64(x[i]));
    break;
  /* NaN != 0, so NaN becomes True, as in PyTorch */
  case TSD_BOOL:
    STORE(uint8_t, x[i] != 0);
    break;
  default:
    break;
  }
}

static bool is_floating(tsd_dtype t) {
  return t == TSD_FLOAT32 || t == TSD_FLOAT64 || t == TSD_FLOAT16 ||
         t == TSD_BFLOAT16;
}

/* The hot paths (half/bfloat16 checkpoints loaded into float models): the
 * inner loops have a constant trip count, which GCC vectorises even at -O2
 * (its "very cheap" cost model refuses loops that need an epilogue). */
#define VEC 16
static void half_to_f32(float *restrict d, const uint8_t *restrict s,
                        size_t n) {
  size_t i = 0;
  for (; i + VEC <= n; i += VEC) {
    uint16_t h[VEC];
    memcpy(h, s + 2 * i, sizeof h);
    for (size_t j = 0; j < VEC; j++)
      d[i + j] = half_to_float(h[j]);
  }
  for (; i < n; i++) {
    uint16_t h;
    memcpy(&h, s + 2 * i, 2);
    d[i] = half_to_float(h);
  }
}
/* From this many elements bfloat16 -> float32 writes with non-temporal
 * stores: a large destination is not read again soon, and plain stores
 * would first read every destination line into the cache (a third of the
 * memory traffic of the widening; bench/notes.md). */
#define BF16_STREAM_MIN ((size_t)1 << 16)

static void bf16_to_f32(float *restrict d, const uint8_t *restrict s,
                        size_t n) {
  size_t i = 0;
#if defined(__SSE2__)
  if (n >= BF16_STREAM_MIN) {
    for (; i < n && ((uintptr_t)(d + i) & 15); i++) {
      uint16_t h;
      memcpy(&h, s + 2 * i, 2);
      d[i] = bf16_to_float(h);
    }
    const __m128i zero = _mm_setzero_si128();
    for (; i + 8 <= n; i += 8) {
      __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i));
      /* bfloat16 bits in the high half of each 32-bit lane */
      _mm_stream_si128((__m128i *)(void *)(d + i), _mm_unpacklo_epi16(zero, x));
      _mm_stream_si128((__m128i *)(void *)(d + i + 4),
                       _mm_unpackhi_epi16(zero, x));
    }
    /* the streamed stores are ordered before whatever the caller does next
     * (another thread reading dst after a join) */
    _mm_sfence();
  }
#endif
  for (; i + VEC <= n; i += VEC) {
    uint16_t h[VEC];
    uint32_t u[VEC];
    memcpy(h, s + 2 * i, sizeof h);
    for (size_t j = 0; j < VEC; j++)
      u[j] = (uint32_t)h[j] << 16;
    memcpy(d + i, u, sizeof u);
  }
  for (; i < n; i++) {
    uint16_t h;
    memcpy(&h, s + 2 * i, 2);
    d[i] = bf16_to_float(h);
  }
}

void tsd__convert(void *dst, tsd_dtype dst_dtype, const void *src,
                  tsd_dtype src_dtype, size_t n) {
  if (!n || !tsd__dtype_valid((int)dst_dtype) ||
      !tsd__dtype_valid((int)src_dtype))
    return;
  if (dst_dtype == src_dtype) {
    if (dst != src) memmove(dst, src, n * dtype_sizes[src_dtype]);
    return;
  }
  if (dst_dtype == TSD_FLOAT32 && src_dtype == TSD_FLOAT16) {
    half_to_f32(dst, src, n);
    return;
  }
  if (dst_dtype == TSD_FLOAT32 && src_dtype == TSD_BFLOAT16) {
    bf16_to_f32(dst, src, n);
    return;
  }
  const size_t ss = dtype_sizes[src_dtype], ds = dtype_sizes[dst_dtype];
  const char *s = src;
  char *d = dst;
  if (is_floating(src_dtype)) {
    double tmp[BLOCK];
    for (size_t i = 0; i < n; i += BLOCK) {
      size_t k = n - i < BLOCK ? n - i : BLOCK;
      load_float(tmp, s + i * ss, src_dtype, k);
      store_float(d + i * ds, dst_dtype, tmp, k);
    }
  } else {
    int64_t tmp[BLOCK];
    for (size_t i = 0; i < n; i += BLOCK) {
      size_t k = n - i < BLOCK ? n - i : BLOCK;
      load_int(tmp, s + i * ss, src_dtype, k);
      store_int(d + i * ds, dst_dtype, tmp, k);
    }
  }
}
