/* convert.c — dtypes and element conversion with Tensor.copy_'s rules.
 *
 * The half and bfloat16 conversions are c10's (c10/util/Half.h,
 * c10/util/BFloat16.h), bit for bit: PyTorch rounds float->half and
 * float->bfloat16 to nearest even, keeps NaN a NaN, and converts double and
 * integers to half/bfloat16 through float (two roundings, as c10 does).
 *
 * The float8 conversions are c10's too (c10/util/Float8_e4m3fn.h,
 * Float8_e5m2.h, Float8_e4m3fnuz.h, Float8_e5m2fnuz.h, Float8_fnuz_cvt.h,
 * Float8_e8m0fnu.h, PyTorch 2.2-2.7): every float8 value widens to float
 * exactly; float -> float8 rounds to nearest even, and what lies beyond the
 * largest finite value becomes what c10 makes of it (NaN for e4m3fn and the
 * fnuz types, inf for e5m2; e8m0fnu keeps only the exponent). Like c10 they
 * take a float, so double and integers reach them through float.
 *
 * Complex values follow Tensor.copy_ (c10/util/TypeCast.h): complex -> real
 * keeps the real part (PyTorch warns "Casting complex values to real
 * discards the imaginary part"; with torch 1.13 -> bool also looks at the real
 * part only), real -> complex has imaginary part 0, complex32 -> wider widens
 * each half, complex128 -> complex32 goes through complex64. */
#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "base.h"

static const size_t dtype_sizes[TSD_DTYPE_COUNT] = {
    4, 8, 2, 2, 1, 2, 4, 8, 1, 1, 1, 1, 1, 1, 1, 2, 4, 8, 4, 8, 16};
static const char *const dtype_names[TSD_DTYPE_COUNT] = {
    "float32",        "float64",         "float16",
    "bfloat16",       "int8",            "int16",
    "int32",          "int64",           "uint8",
    "bool",           "float8_e4m3fn",   "float8_e5m2",
    "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
    "uint16",         "uint32",          "uint64",
    "complex32",      "complex64",       "complex128"};

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
  /* the cast rounds the product to float (overflowing to inf) also where
   * C evaluates float in double (FLT_EVAL_METHOD 1: GCC on s390x) */
  float base = (float)(fabsf(f) * scale_to_inf) * scale_to_zero;
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

/* ---- float8 (c10's algorithms, restated) --------------------------------
 * Float -> float8 for e4m3fn, e5m2 and the fnuz types share one shape:
 * a NaN/overflow cutoff, subnormals rounded by adding a magic float (the FPU
 * rounds to nearest even), normals rounded by adding half an ulp minus one
 * plus the odd bit, then shifting. */
static inline uint8_t fp8_round(uint32_t bits, uint32_t denorm_min_bits,
                                uint32_t denorm_mask, uint32_t bias_adj,
                                unsigned shift) {
  if (bits < denorm_min_bits)
    return (uint8_t)(f32_bits(f32_from(bits) + f32_from(denorm_mask)) -
                     denorm_mask);
  const uint32_t odd = (bits >> shift) & 1u;
  return (uint8_t)((bits + bias_adj + ((1u << (shift - 1)) - 1u) + odd) >>
                   shift);
}

/* fp8e4m3fn_to_fp32_value: 0x7F/0xFF are NaN, there is no infinity. */
static inline float e4m3fn_to_float(uint8_t x) {
  const uint32_t w = (uint32_t)x << 24;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t nonsign = w & 0x7FFFFFFFu;
  uint32_t renorm = nonsign ? (uint32_t)__builtin_clz(nonsign) : 32u;
  renorm = renorm > 4 ? renorm - 4 : 0;
  const uint32_t inf_nan =
      (uint32_t)((int32_t)(nonsign + 0x01000000u) >> 8) & 0x7F800000u;
  const uint32_t zero = (uint32_t)((int32_t)(nonsign - 1u) >> 31);
  const uint32_t mag =
      ((nonsign << (renorm & 31)) >> 4) + ((0x78u - renorm) << 23);
  return f32_from(sign | ((mag | inf_nan) & ~zero));
}
/* fp8e4m3fn_from_fp32_value: |x| >= 464 (and inf, NaN) -> NaN 0x7F. */
static inline uint8_t float_to_e4m3fn(float f) {
  uint32_t b = f32_bits(f);
  const uint32_t sign = b & 0x80000000u;
  b ^= sign;
  uint8_t r = b >= (1087u << 20)
                  ? 0x7F
                  : fp8_round(b, 121u << 23, 141u << 23,
                              (uint32_t)(7 - 127) << 23, 20);
  return (uint8_t)(r | (sign >> 24));
}
/* e5m2 is the top byte of a float16. */
static inline float e5m2_to_float(uint8_t x) {
  return half_to_float((uint16_t)((uint16_t)x << 8));
}
/* fp8e5m2_from_fp32_value: |x| >= 65536 -> inf 0x7C, NaN -> 0x7F. */
static inline uint8_t float_to_e5m2(float f) {
  uint32_t b = f32_bits(f);
  const uint32_t sign = b & 0x80000000u;
  b ^= sign;
  uint8_t r;
  if (b >= (143u << 23))
    r = b > (255u << 23) ? 0x7F : 0x7C;
  else
    r = fp8_round(b, 113u << 23, 134u << 23, (uint32_t)(15 - 127) << 23, 21);
  return (uint8_t)(r | (sign >> 24));
}
/* fp8_fnuz_to_fp32_value<we, wm>: 0x80 is the only NaN (c10 returns the
 * bits 0x7F800001), 0x00 the only zero. */
static inline float fnuz_to_float(uint8_t x, unsigned we, unsigned wm) {
  if (x == 0) return 0.0f;
  if (x == 0x80) return f32_from(0x7F800001u);
  uint32_t mant = x & ((1u << wm) - 1u);
  uint32_t exp = (x & 0x7Fu) >> wm;
  if (exp == 0) { /* subnormal: normalise */
    const uint32_t sh = 1u + (uint32_t)__builtin_clz(mant) - (32u - wm);
    mant = (mant << sh) & ((1u << wm) - 1u);
    exp = exp + 1u - sh;
  }
  exp += (1u << 7) - (1u << (we - 1)) - 1u;
  return f32_from(((uint32_t)(x >> 7) << 31) | (exp << 23) |
                  (mant << (23 - wm)));
}
/* fp8e4m3fnuz/e5m2fnuz_from_fp32_value: beyond the range (and inf, NaN) ->
 * NaN 0x80; a result that rounds to zero is +0 (there is no -0). */
static inline uint8_t float_to_fnuz(float f, uint32_t max_bits,
                                    uint32_t denorm_min_bits,
                                    uint32_t denorm_mask, uint32_t bias_adj,
                                    unsigned shift) {
  uint32_t b = f32_bits(f);
  const uint32_t sign = b & 0x80000000u;
  b ^= sign;
  if (b >= max_bits) return 0x80;
  uint8_t r = fp8_round(b, denorm_min_bits, denorm_mask, bias_adj, shift);
  if (b < denorm_min_bits && r == 0) return 0;
  return (uint8_t)(r | (sign >> 24));
}
static inline uint8_t float_to_e4m3fnuz(float f) {
  return float_to_fnuz(f, 0x87u << 23, 0x78u << 23, 0x8Cu << 23,
                       (uint32_t)(8 - 127) << 23, 20);
}
static inline uint8_t float_to_e5m2fnuz(float f) {
  return float_to_fnuz(f, 0x8Fu << 23, 0x70u << 23, 0x85u << 23,
                       (uint32_t)(16 - 127) << 23, 21);
}
/* Float8_e8m0fnu: 2^(x-127); 0 is 2^-127 (a float subnormal), 0xFF NaN. */
static inline float e8m0_to_float(uint8_t x) {
  if (x == 0) return f32_from(0x00400000u);
  if (x == 0xFF) return f32_from(0x7F800001u);
  return f32_from((uint32_t)x << 23);
}
/* fp8e8m0fnu_from_fp32_value: the float's exponent, rounded to nearest
 * even on the mantissa (the sign is dropped); inf and NaN -> NaN 0xFF. */
static inline uint8_t float_to_e8m0(float f) {
  const uint32_t b = f32_bits(f);
  uint32_t e = (b >> 23) & 0xFFu;
  if (e == 0xFF) return 0xFF;
  const bool g = b & 0x400000u, r = b & 0x200000u, s = b & 0x1FFFFFu;
  if (g && (r || s || e > 0)) e++;
  return (uint8_t)e;
}

static inline float e4m3fnuz_to_float(uint8_t x) {
  return fnuz_to_float(x, 4, 3);
}
static inline float e5m2fnuz_to_float(uint8_t x) {
  return fnuz_to_float(x, 5, 2);
}

/* The float8 dtypes' decoder and encoder, from TSD_FLOAT8_E4M3FN on. */
typedef struct fp8_codec {
  float (*decode)(uint8_t x);
  uint8_t (*encode)(float f);
} fp8_codec;
static const fp8_codec fp8_codecs[] = {
    [TSD_FLOAT8_E4M3FN - TSD_FLOAT8_E4M3FN] = {e4m3fn_to_float,
                                               float_to_e4m3fn},
    [TSD_FLOAT8_E5M2 - TSD_FLOAT8_E4M3FN] = {e5m2_to_float, float_to_e5m2},
    [TSD_FLOAT8_E4M3FNUZ - TSD_FLOAT8_E4M3FN] = {e4m3fnuz_to_float,
                                                 float_to_e4m3fnuz},
    [TSD_FLOAT8_E5M2FNUZ - TSD_FLOAT8_E4M3FN] = {e5m2fnuz_to_float,
                                                 float_to_e5m2fnuz},
    [TSD_FLOAT8_E8M0FNU - TSD_FLOAT8_E4M3FN] = {e8m0_to_float, float_to_e8m0},
};
_Static_assert(sizeof fp8_codecs / sizeof fp8_codecs[0] ==
                   TSD_FLOAT8_E8M0FNU - TSD_FLOAT8_E4M3FN + 1,
               "one codec per float8 dtype");
/* `t`'s codec; any other dtype gets e8m0's (the last) */
static inline const fp8_codec *fp8_codec_of(tsd_dtype t) {
  return t >= TSD_FLOAT8_E4M3FN && t <= TSD_FLOAT8_E8M0FNU
             ? &fp8_codecs[t - TSD_FLOAT8_E4M3FN]
             : &fp8_codecs[TSD_FLOAT8_E8M0FNU - TSD_FLOAT8_E4M3FN];
}
static inline float fp8_to_float(uint8_t x, tsd_dtype t) {
  return fp8_codec_of(t)->decode(x);
}
static inline uint8_t float_to_fp8(float f, tsd_dtype t) {
  return fp8_codec_of(t)->encode(f);
}

float tsd__fp8_to_float(uint8_t x, tsd_dtype t) {
  return fp8_to_float(x, t);
}
uint8_t tsd__float_to_fp8(float f, tsd_dtype t) {
  return float_to_fp8(f, t);
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
 * (INT_MIN of the conversion width). int8/int16/int32 and uint16 targets go
 * through a 32-bit conversion and wrap; int64, uint32 and uint8 (c10's
 * static_cast_with_inter_type<uint8_t> goes through int64) use 64 bits;
 * uint64 is GCC's sequence (values from 2^63 are converted less 2^63). */
static inline int64_t trunc_i64(double d) {
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
    return INT64_MIN;
  return (int64_t)d;
}
static inline int32_t trunc_i32(double d) {
  if (!(d > -2147483649.0 && d < 2147483648.0)) return INT32_MIN;
  return (int32_t)d;
}
static inline uint64_t trunc_u64(double d) {
  if (d >= 9223372036854775808.0)
    return (uint64_t)trunc_i64(d - 9223372036854775808.0) ^ (1ull << 63);
  return (uint64_t)trunc_i64(d);
}

static bool is_complex(tsd_dtype t) {
  return t == TSD_COMPLEX32 || t == TSD_COMPLEX64 || t == TSD_COMPLEX128;
}
static bool is_fp8(tsd_dtype t) {
  return t >= TSD_FLOAT8_E4M3FN && t <= TSD_FLOAT8_E8M0FNU;
}
static bool is_floating(tsd_dtype t) {
  return t == TSD_FLOAT32 || t == TSD_FLOAT64 || t == TSD_FLOAT16 ||
         t == TSD_BFLOAT16 || is_fp8(t);
}

/* Elements are converted in blocks through one of two intermediates: int64
 * for integer and bool sources (so int64 -> float32 rounds once, as a C++
 * cast does; uint64 keeps its bits and is read back unsigned) and double
 * pairs (real, imaginary) for floating and complex sources (exact for every
 * float). */
#define BLOCK 256

#define LOAD(type, expr)                                                       \
  for (i = 0; i < n; i++) {                                                    \
    type v;                                                                    \
    memcpy(&v, (const char *)src + i * sizeof(type), sizeof v);                \
    o[i] = (expr);                                                             \
  }
/* complex: element i's parts v[0], v[1] into o[i] and im[i] */
#define LOAD2(type, re, imag)                                                  \
  for (i = 0; i < n; i++) {                                                    \
    type v[2];                                                                 \
    memcpy(v, (const char *)src + i * sizeof v, sizeof v);                     \
    o[i] = (re);                                                               \
    im[i] = (imag);                                                            \
  }

static void load_int(int64_t *o, const void *src, tsd_dtype t, size_t n) {
  size_t i;
  switch (t) {
  case TSD_INT8:
    LOAD(int8_t, v);
    break;
  case TSD_INT16:
    LOAD(int16_t, v);
    break;
  case TSD_INT32:
    LOAD(int32_t, v);
    break;
  case TSD_INT64:
  case TSD_UINT64: /* the bits; store_int reads them back as unsigned */
    memcpy(o, src, n * 8);
    break;
  case TSD_UINT8:
    LOAD(uint8_t, v);
    break;
  case TSD_UINT16:
    LOAD(uint16_t, v);
    break;
  case TSD_UINT32:
    LOAD(uint32_t, v);
    break;
  case TSD_BOOL: /* a byte other than 0/1 from a file still means true */
    LOAD(uint8_t, v != 0);
    break;
  default:
    break;
  }
}

/* Real parts into o, imaginary parts into im (0 for a real source). */
static void load_float(double *o, double *im, const void *src, tsd_dtype t,
                       size_t n) {
  size_t i;
  memset(im, 0, n * sizeof *im);
  switch (t) {
  case TSD_FLOAT32:
    LOAD(float, v);
    break;
  case TSD_FLOAT64:
    memcpy(o, src, n * 8);
    break;
  case TSD_FLOAT16:
    LOAD(uint16_t, half_to_float(v));
    break;
  case TSD_BFLOAT16:
    LOAD(uint16_t, bf16_to_float(v));
    break;
  case TSD_FLOAT8_E4M3FN:
  case TSD_FLOAT8_E5M2:
  case TSD_FLOAT8_E4M3FNUZ:
  case TSD_FLOAT8_E5M2FNUZ:
  case TSD_FLOAT8_E8M0FNU:
    LOAD(uint8_t, fp8_to_float(v, t));
    break;
  case TSD_COMPLEX32:
    LOAD2(uint16_t, half_to_float(v[0]), half_to_float(v[1]));
    break;
  case TSD_COMPLEX64:
    LOAD2(float, v[0], v[1]);
    break;
  case TSD_COMPLEX128:
    LOAD2(double, v[0], v[1]);
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
/* complex: real and imaginary part of element i */
#define STORE2(type, re, im)                                                   \
  for (i = 0; i < n; i++) {                                                    \
    type v_[2] = {(type)(re), (type)(im)};                                     \
    memcpy((char *)dst + i * sizeof v_, v_, sizeof v_);                        \
  }

/* An integer as float or double, rounded once as a C++ cast does; `u`: the
 * int64 holds uint64 bits (a uint64 source). */
static inline float int_f32(int64_t x, bool u) {
  return u ? (float)(uint64_t)x : (float)x;
}
static inline double int_f64(int64_t x, bool u) {
  return u ? (double)(uint64_t)x : (double)x;
}

static void store_int(void *dst, tsd_dtype t, const int64_t *x, bool u,
                      size_t n) {
  size_t i;
  switch (t) {
  case TSD_FLOAT32:
    STORE(float, int_f32(x[i], u));
    break;
  case TSD_FLOAT64:
    STORE(double, int_f64(x[i], u));
    break;
  case TSD_COMPLEX32:
    STORE2(uint16_t, float_to_half(int_f32(x[i], u)), 0);
    break;
  case TSD_COMPLEX64:
    STORE2(float, int_f32(x[i], u), 0);
    break;
  case TSD_COMPLEX128:
    STORE2(double, int_f64(x[i], u), 0);
    break;
  case TSD_FLOAT16:
    STORE(uint16_t, float_to_half(int_f32(x[i], u)));
    break;
  case TSD_BFLOAT16:
    STORE(uint16_t, float_to_bf16(int_f32(x[i], u)));
    break;
  case TSD_FLOAT8_E4M3FN:
  case TSD_FLOAT8_E5M2:
  case TSD_FLOAT8_E4M3FNUZ:
  case TSD_FLOAT8_E5M2FNUZ:
  case TSD_FLOAT8_E8M0FNU:
    STORE(uint8_t, float_to_fp8(int_f32(x[i], u), t));
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
  case TSD_UINT64:
    memcpy(dst, x, n * 8);
    break;
  case TSD_UINT8:
    STORE(uint8_t, (uint8_t)(uint64_t)x[i]);
    break;
  case TSD_UINT16:
    STORE(uint16_t, (uint16_t)(uint64_t)x[i]);
    break;
  case TSD_UINT32:
    STORE(uint32_t, (uint32_t)(uint64_t)x[i]);
    break;
  case TSD_BOOL:
    STORE(uint8_t, x[i] != 0);
    break;
  default:
    break;
  }
}

static void store_float(void *dst, tsd_dtype t, const double *x,
                        const double *im, size_t n) {
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
  case TSD_FLOAT8_E4M3FN:
  case TSD_FLOAT8_E5M2:
  case TSD_FLOAT8_E4M3FNUZ:
  case TSD_FLOAT8_E5M2FNUZ:
  case TSD_FLOAT8_E8M0FNU:
    STORE(uint8_t, float_to_fp8((float)x[i], t));
    break;
  case TSD_COMPLEX32: /* complex128 -> complex32 goes through complex64 */
    STORE2(uint16_t, float_to_half((float)x[i]), float_to_half((float)im[i]));
    break;
  case TSD_COMPLEX64:
    STORE2(float, x[i], im[i]);
    break;
  case TSD_COMPLEX128:
    STORE2(double, x[i], im[i]);
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
  case TSD_UINT16:
    STORE(uint16_t, (uint16_t)(uint32_t)trunc_i32(x[i]));
    break;
  case TSD_UINT32:
    STORE(uint32_t, (uint32_t)(uint64_t)trunc_i64(x[i]));
    break;
  case TSD_UINT64:
    STORE(uint64_t, trunc_u64(x[i]));
    break;
  /* NaN != 0, so NaN becomes True, as in PyTorch */
  case TSD_BOOL:
    STORE(uint8_t, x[i] != 0);
    break;
  default:
    break;
  }
}

/* The hot paths (half/bfloat16 checkpoints loaded into float models): the
 * inner loops have a constant trip count, which GCC vectorises even at -O2
 * (its "very cheap" cost model refuses loops that need an epilogue). */
#define VEC 16
/* dst is bytes, stored through memcpy: a destination need not be aligned
 * (a caller's buffer, a device-copy staging part); memcpy of a float
 * compiles to one store either way. */
static void half_to_f32(uint8_t *restrict d, const uint8_t *restrict s,
                        size_t n) {
  size_t i = 0;
  for (; i + VEC <= n; i += VEC) {
    uint16_t h[VEC];
    float f[VEC];
    memcpy(h, s + 2 * i, sizeof h);
    for (size_t j = 0; j < VEC; j++)
      f[j] = half_to_float(h[j]);
    memcpy(d + 4 * i, f, sizeof f);
  }
  for (; i < n; i++) {
    uint16_t h;
    memcpy(&h, s + 2 * i, 2);
    float f = half_to_float(h);
    memcpy(d + 4 * i, &f, 4);
  }
}
/* From this many elements bfloat16 -> float32 writes with non-temporal
 * stores: a large destination is not read again soon, and plain stores
 * would first read every destination line into the cache (a third of the
 * memory traffic of the widening; bench/notes.md). */
#define BF16_STREAM_MIN ((size_t)1 << 16)

static void bf16_to_f32(uint8_t *restrict d, const uint8_t *restrict s,
                        size_t n) {
  size_t i = 0;
#if defined(__SSE2__)
  /* streaming needs 16-byte aligned stores: reachable when d is 4-aligned */
  if (n >= BF16_STREAM_MIN && !((uintptr_t)d & 3)) {
    for (; i < n && ((uintptr_t)(d + 4 * i) & 15); i++) {
      uint16_t h;
      memcpy(&h, s + 2 * i, 2);
      float f = bf16_to_float(h);
      memcpy(d + 4 * i, &f, 4);
    }
    const __m128i zero = _mm_setzero_si128();
    for (; i + 8 <= n; i += 8) {
      __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i));
      /* bfloat16 bits in the high half of each 32-bit lane */
      _mm_stream_si128((__m128i *)(void *)(d + 4 * i),
                       _mm_unpacklo_epi16(zero, x));
      _mm_stream_si128((__m128i *)(void *)(d + 4 * i + 16),
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
    memcpy(d + 4 * i, u, sizeof u);
  }
  for (; i < n; i++) {
    uint16_t h;
    memcpy(&h, s + 2 * i, 2);
    float f = bf16_to_float(h);
    memcpy(d + 4 * i, &f, 4);
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
  if (dst_dtype == TSD_FLOAT32 && is_fp8(src_dtype)) {
    /* direct, so that c10's NaN bits (0x7F800001) reach the float as they
     * are (through double they would be quieted) */
    const uint8_t *s8 = src;
    uint8_t *d8 = dst;
    for (size_t i = 0; i < n; i++) {
      float f = fp8_to_float(s8[i], src_dtype);
      memcpy(d8 + 4 * i, &f, 4);
    }
    return;
  }
  const size_t ss = dtype_sizes[src_dtype], ds = dtype_sizes[dst_dtype];
  const char *s = src;
  char *d = dst;
  if (is_floating(src_dtype) || is_complex(src_dtype)) {
    double re[BLOCK], im[BLOCK];
    for (size_t i = 0; i < n; i += BLOCK) {
      size_t k = n - i < BLOCK ? n - i : BLOCK;
      load_float(re, im, s + i * ss, src_dtype, k);
      store_float(d + i * ds, dst_dtype, re, im, k);
    }
  } else {
    int64_t tmp[BLOCK];
    for (size_t i = 0; i < n; i += BLOCK) {
      size_t k = n - i < BLOCK ? n - i : BLOCK;
      load_int(tmp, s + i * ss, src_dtype, k);
      store_int(d + i * ds, dst_dtype, tmp, src_dtype == TSD_UINT64, k);
    }
  }
}
