// tilewise CPU runtime header: scalar types, math, integer helpers. Included by every
// generated CPU kernel; the GEMM micro-kernel lives in tw_gemm.h.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cfenv>
#include <initializer_list>
#include <type_traits>
#include <utility>
#include <vector>

#include <omp.h>

#include "tw_math.h"

namespace tw {

// Rounds a double to float with round-to-odd: an inexact result gets its last bit set, so a
// second rounding to a format at least 2 bits narrower (half, bfloat16) rounds as if directly.
inline float round_to_odd_float(double d) {
  float f = (float)d;
  if ((double)f != d && f == f) {
    uint32_t u = fmath::as_u32(f);
    if (std::fabs((double)f) > std::fabs(d)) u -= 1;  // truncate toward zero first
    f = fmath::as_f32(u | 1u);
  }
  return f;
}

// float16 as storage, converted with integer arithmetic that GCC vectorises (GCC 12 has no
// vector float16 type without AVX512-FP16, so _Float16 conversions stay one element at a time).
// Round to nearest even, with denormals, infinities and NaNs, bit-identical to vcvtps2ph.
struct half {
  uint16_t bits;
  half() = default;
  half(float f) : bits(from_float(f)) {}
  half(double d) : half(round_to_odd_float(d)) {}
  // integers: exact in float up to 2^24, and larger values overflow a half anyway
  template <typename I, typename std::enable_if<std::is_integral<I>::value, int>::type = 0>
  half(I i) : half((float)i) {}
  operator float() const {
    // Exponent and mantissa shifted into place; the multiply by 2^112 rebiases the exponent,
    // exactly, denormals included. Infinities and NaNs keep an all-ones exponent (NaNs quieted).
    uint32_t em = (uint32_t)(bits & 0x7fffu) << 13;
    float f = fmath::as_f32(em) * 0x1p112f;
    uint32_t special = em | 0x7f800000u | fmath::select_u32(em > 0x0f800000u, 0x00400000u, 0u);
    f = fmath::select(em >= 0x0f800000u, fmath::as_f32(special), f);
    return fmath::as_f32(fmath::as_u32(f) | ((uint32_t)(bits & 0x8000u) << 16));
  }
  static uint16_t from_float(float f) {
    uint32_t u = fmath::as_u32(f);
    uint32_t a = u & 0x7fffffffu;
    // normal results: rebias the exponent and round away the 13 low mantissa bits to nearest
    // even (a carry into the exponent is the correct rounding up, to inf past 65504)
    uint32_t normal = (a - 0x38000000u + 0x0fffu + ((a >> 13) & 1u)) >> 13;
    // denormal results (|f| < 2^-14): adding 0.5 rounds to a multiple of 2^-24 in hardware
    uint32_t denormal = fmath::as_u32(fmath::as_f32(a) + 0.5f) - 0x3f000000u;
    uint32_t r = fmath::select_u32(a < 0x38800000u, denormal, normal);
    r = fmath::select_u32(a >= 0x47800000u, 0x7c00u, r);                           // overflow
    r = fmath::select_u32(a > 0x7f800000u, 0x7e00u | ((a >> 13) & 0x3ffu), r);  // quiet NaN
    return (uint16_t)(r | ((u >> 16) & 0x8000u));
  }
};

// bfloat16 as storage; arithmetic happens in float through the conversion operator.
struct bf16 {
  uint16_t bits;
  bf16() = default;
  bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      bits = (uint16_t)((u >> 16) | 0x40);  // quiet NaN
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
      bits = (uint16_t)(u >> 16);
    }
  }
  bf16(double d) : bf16(round_to_odd_float(d)) {}
  bf16(int i) : bf16((float)i) {}
  bf16(int64_t i) : bf16((float)i) {}
  bf16(half h) : bf16((float)h) {}
  operator float() const {
    uint32_t u = (uint32_t)bits << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

// float8 formats as storage (OCP e4m3fn and e5m2), converted through float.
template <int E, int M, bool FN>
struct fp8 {
  uint8_t bits;
  fp8() = default;
  static constexpr int bias = (1 << (E - 1)) - 1;
  operator float() const {
    int s = bits >> 7, e = (bits >> M) & ((1 << E) - 1), m = bits & ((1 << M) - 1);
    float v;
    if (FN && e == (1 << E) - 1 && m == (1 << M) - 1) return NAN;
    if (!FN && e == (1 << E) - 1) return m ? NAN : (s ? -INFINITY : INFINITY);
    if (e == 0) v = std::ldexp((float)m, 1 - bias - M);
    else v = std::ldexp((float)(m | (1 << M)), e - bias - M);
    return s ? -v : v;
  }
  fp8(float f) {
    uint8_t s = std::signbit(f) ? 0x80 : 0;
    float a = std::fabs(f);
    const float maxv = FN ? std::ldexp((float)((1 << (M + 1)) - 2), (1 << E) - 1 - bias - M)
                          : std::ldexp((float)((1 << (M + 1)) - 1), (1 << E) - 2 - bias - M);
    // As cvt.rn.satfinite and tw_cuda.h: a NaN becomes 0x7f, and past the largest finite value
    // (infinities included) the result saturates to it.
    if (std::isnan(f)) { bits = 0x7f; return; }
    if (a > maxv) { bits = (uint8_t)(s | (FN ? 0x7e : 0x7b)); return; }
    int e;
    std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
    int exp = e - 1 + bias;
    if (exp < 1) exp = 1;  // subnormal range uses the smallest exponent's scale
    float q = std::nearbyint(std::ldexp(a, M - (exp - bias)));
    int mant = (int)q;
    if (mant >= (2 << M)) { exp += 1; mant >>= 1; }
    if (mant < (1 << M)) { bits = (uint8_t)(s | mant); return; }  // subnormal
    bits = (uint8_t)(s | (exp << M) | (mant & ((1 << M) - 1)));
  }
  fp8(double d) : fp8(round_to_odd_float(d)) {}  // one rounding, as from float
  fp8(int i) : fp8((float)i) {}
};
typedef fp8<4, 3, true> fp8_e4m3;
typedef fp8<5, 2, false> fp8_e5m2;

// The OCP microscaling (MX) element types fp4 (e2m1) and fp6 (e2m3, e3m2): one value per byte in
// the low 1+E+M bits, as ml_dtypes stores them, without infinity or NaN. From float: round to
// nearest even, saturate past the largest finite value (infinities included), a NaN becomes a
// zero of the opposite sign (ml_dtypes' choice; OCP leaves it open). Any bit set above the value's
// reads as its sign. These are ml_dtypes' rules; tw_cuda.h's f32_to_mxfp is the same code.
template <int E, int M>
struct mxfp {
  uint8_t bits;
  static constexpr int bias = (1 << (E - 1)) - 1;
  mxfp() = default;
  operator float() const {
    const uint32_t s = bits >> (E + M), e = (bits >> M) & ((1u << E) - 1u), m = bits & ((1u << M) - 1u);
    const float v = (float)(e ? (m | (1u << M)) : m) * fmath::as_f32((uint32_t)(127 + (int)(e ? e : 1u) - bias - M) << 23);
    return s ? -v : v;
  }
  mxfp(float f) {
    const uint32_t u = fmath::as_u32(f);
    const uint32_t sign = (u >> 31) << (E + M), a = u & 0x7fffffffu;
    const int k = (int)(a >> 23) - 127 + bias - 1;  // the result's exponent field minus 1
    const int shift = 23 - M - (k < 0 ? k : 0);
    if (a > 0x7f800000u) { bits = (uint8_t)(sign ^ (1u << (E + M))); return; }  // NaN
    if (a < 0x00800000u || shift > 24) { bits = (uint8_t)sign; return; }  // at most half the smallest subnormal
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    const uint32_t rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
    uint32_t q = mant >> shift;
    q += (rem > halfway || (rem == halfway && (q & 1u))) ? 1u : 0u;
    const uint32_t code = (k > 0 ? (uint32_t)k << M : 0u) + q, top = (1u << (E + M)) - 1u;
    bits = (uint8_t)(sign | (code > top ? top : code));
  }
  mxfp(double d) : mxfp(round_to_odd_float(d)) {}
  mxfp(int i) : mxfp((float)i) {}
};
typedef mxfp<2, 1> fp4_e2m1;
typedef mxfp<2, 3> fp6_e2m3;
typedef mxfp<3, 2> fp6_e3m2;

// The OCP MX scale type e8m0: 2^(bits-127), 0xff NaN. From float (as ml_dtypes): the nearer power
// of two with ties upward; zero, negatives, infinities, NaN and values rounding past 2^127 give
// NaN; values below 2^-127 give 2^-127.
struct fp8_e8m0 {
  uint8_t bits;
  fp8_e8m0() = default;
  operator float() const {
    if (bits == 0xff) return NAN;
    return fmath::as_f32(bits ? (uint32_t)bits << 23 : 0x00400000u);  // code 0: 2^-127, a float subnormal
  }
  fp8_e8m0(float f) {
    const uint32_t u = fmath::as_u32(f);
    const uint32_t e = u >> 23, m = u & 0x7fffffu;
    if ((u >> 31) || u == 0u || u >= 0x7f800000u) bits = 0xff;
    else if (e == 0u) bits = m >= 0x600000u ? 1 : 0;  // float subnormals: 2^-127, or 2^-126 from 1.5 * 2^-127
    else bits = (uint8_t)(e + (m >> 22) > 254u ? 0xffu : e + (m >> 22));
  }
  fp8_e8m0(double d) : fp8_e8m0(round_to_odd_float(d)) {}
  fp8_e8m0(int i) : fp8_e8m0((float)i) {}
};

// AMD's fnuz float8 formats (e4m3fnuz, e5m2fnuz): exponent bias 2^(E-1), no infinity, no
// negative zero, NaN 0x80. From float as the other float8 types: round to nearest even, saturate
// past the largest finite value, NaN -> 0x80, a zero result is +0 (tw_cuda.h's f32_to_fnuz).
template <int E, int M>
struct fnuz {
  uint8_t bits;
  fnuz() = default;
  operator float() const {
    if (bits == 0x80) return NAN;
    const uint32_t e = (bits >> M) & ((1u << E) - 1u), m = bits & ((1u << M) - 1u);
    const float v = (float)(e ? (m | (1u << M)) : m) *
                    fmath::as_f32((uint32_t)(127 + (int)(e ? e : 1u) - (1 << (E - 1)) - M) << 23);
    return (bits >> 7) ? -v : v;
  }
  fnuz(float f) {
    const uint32_t u = fmath::as_u32(f), a = u & 0x7fffffffu;
    if (a > 0x7f800000u) { bits = 0x80; return; }
    const int k = (int)(a >> 23) - 127 + (1 << (E - 1)) - 1;
    const int shift = 23 - M - (k < 0 ? k : 0);
    if (a < 0x00800000u || shift > 24) { bits = 0; return; }
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    const uint32_t rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
    uint32_t q = mant >> shift;
    q += (rem > halfway || (rem == halfway && (q & 1u))) ? 1u : 0u;
    uint32_t code = (k > 0 ? (uint32_t)k << M : 0u) + q;
    code = code > 0x7fu ? 0x7fu : code;
    bits = (uint8_t)(code ? ((u >> 31) << 7) | code : 0u);
  }
  fnuz(double d) : fnuz(round_to_odd_float(d)) {}
  fnuz(int i) : fnuz((float)i) {}
};
typedef fnuz<4, 3> fp8_e4m3fnuz;
typedef fnuz<5, 2> fp8_e5m2fnuz;

// TensorFloat-32 (TileLang's tfloat32): a float whose low 13 mantissa bits are zero. Every
// conversion into it rounds to nearest, ties away from zero (cvt.rna.tf32.f32, CUTLASS's
// tfloat32_t); infinities and NaNs stay. Integers go through double (one rounding). Reading one
// ignores the low 13 bits, as CUTLASS's conversion to float and the tensor cores do: a float32
// tensor passed for a tfloat32 parameter reads truncated.
struct tf32 {
  float v;
  static float round(float f) {
    uint32_t u = fmath::as_u32(f);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    return fmath::as_f32(u);
  }
  tf32() = default;
  tf32(float f) : v(round(f)) {}
  tf32(double d) : tf32(round_to_odd_float(d)) {}
  template <typename I, typename std::enable_if<std::is_integral<I>::value, int>::type = 0>
  tf32(I i) : tf32((double)i) {}
  operator float() const { return fmath::as_f32(fmath::as_u32(v) & 0xffffe000u); }
};

// TileLang's sub-byte integers int4 / uint4: one value per byte in the low four bits, as
// ml_dtypes stores them. A conversion from an integer wraps at four bits (two's complement), as
// the IR's integers wrap at their width; arithmetic promotes to int (the renderer casts back).
template <bool S>
struct nibble {
  uint8_t bits;
  static constexpr int lo = S ? -8 : 0, hi = S ? 7 : 15;
  nibble() = default;
  template <typename I, typename std::enable_if<std::is_integral<I>::value, int>::type = 0>
  nibble(I v) : bits((uint8_t)((unsigned long long)v & 0xfu)) {}
  operator int() const { return S ? (int)(int8_t)(uint8_t)(bits << 4) >> 4 : (int)bits; }
};
typedef nibble<true> i4;  // (tw_cuda.h: CUDA's int4 / uint4 are vector types)
typedef nibble<false> u4;
// float -> int4 / uint4: truncation toward zero, saturating at the four-bit range, NaN giving 0
template <typename N, typename F> inline N to_nibble(F x) {
  if (!(x == x)) return N(0);
  if (x <= (F)N::lo) return N(N::lo);
  if (x >= (F)N::hi) return N(N::hi);
  return N((int)x);
}

template <typename T> struct is_lowp : std::false_type {};
template <> struct is_lowp<half> : std::true_type {};
template <> struct is_lowp<bf16> : std::true_type {};
template <> struct is_lowp<fp8_e4m3> : std::true_type {};
template <> struct is_lowp<fp8_e5m2> : std::true_type {};
template <> struct is_lowp<fp4_e2m1> : std::true_type {};
template <> struct is_lowp<fp6_e2m3> : std::true_type {};
template <> struct is_lowp<fp6_e3m2> : std::true_type {};
template <> struct is_lowp<fp8_e8m0> : std::true_type {};
template <> struct is_lowp<fp8_e4m3fnuz> : std::true_type {};
template <> struct is_lowp<fp8_e5m2fnuz> : std::true_type {};
template <> struct is_lowp<tf32> : std::true_type {};

inline double exp10_double(double x) { return std::pow(10.0, x); }
inline double sigmoid_double(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Math: float uses tw_math.h where it has the function (vectorisable, within 2 ulp), libm
// otherwise; double calls libm; low-precision types compute in float and round back.
#define TW_MATH1(name, ffn, dfn)                                                     \
  inline float name(float x) { return ffn(x); }                                      \
  inline double name(double x) { return dfn(x); }                                    \
  template <typename T, typename std::enable_if<is_lowp<T>::value, int>::type = 0>   \
  inline T name(T x) { return T(name((float)x)); }
TW_MATH1(exp, fmath::exp, std::exp)
TW_MATH1(exp2, fmath::exp2, std::exp2)
TW_MATH1(exp10, fmath::exp10, exp10_double)
TW_MATH1(log, fmath::log, std::log)
TW_MATH1(log2, fmath::log2, std::log2)
TW_MATH1(log10, fmath::log10, std::log10)
TW_MATH1(tanh, fmath::tanh, std::tanh)
TW_MATH1(erf, fmath::erf, std::erf)
TW_MATH1(sigmoid, fmath::sigmoid, sigmoid_double)
TW_MATH1(log1p, log1pf, std::log1p)
TW_MATH1(expm1, expm1f, std::expm1)
TW_MATH1(sqrt, sqrtf, std::sqrt)
TW_MATH1(floor, floorf, std::floor)
TW_MATH1(ceil, ceilf, std::ceil)
TW_MATH1(trunc, truncf, std::trunc)
TW_MATH1(round, roundf, std::round)
TW_MATH1(nearbyint, nearbyintf, std::nearbyint)
TW_MATH1(sin, sinf, std::sin)
TW_MATH1(cos, cosf, std::cos)
TW_MATH1(tan, tanf, std::tan)
TW_MATH1(asin, asinf, std::asin)
TW_MATH1(acos, acosf, std::acos)
TW_MATH1(atan, atanf, std::atan)
TW_MATH1(sinh, sinhf, std::sinh)
TW_MATH1(cosh, coshf, std::cosh)
TW_MATH1(asinh, asinhf, std::asinh)
TW_MATH1(acosh, acoshf, std::acosh)
TW_MATH1(atanh, atanhf, std::atanh)
#undef TW_MATH1

// rsqrt and rcp are divisions (and sqrtf), which GCC vectorises as they are.
inline float rsqrt(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float rcp(float x) { return 1.0f / x; }
inline double rcp(double x) { return 1.0 / x; }
template <typename T, typename std::enable_if<is_lowp<T>::value, int>::type = 0>
inline T rsqrt(T x) { return T(rsqrt((float)x)); }
template <typename T, typename std::enable_if<is_lowp<T>::value, int>::type = 0>
inline T rcp(T x) { return T(1.0f / (float)x); }

template <typename T> inline T abs(T x) {
  if constexpr (is_lowp<T>::value) return T(std::fabs((float)x));
  else if constexpr (std::is_floating_point<T>::value) return std::fabs(x);
  else if constexpr (std::is_unsigned<T>::value) return x;
  else return x < 0 ? (T)(-x) : x;
}

// max/min with IEEE-754 maxNum/minNum semantics for floats (a NaN operand is ignored) and -0 < +0,
// as PTX max.f32/min.f32 (max(+0, -0) = +0, min(+0, -0) = -0 in either order). Written as selects
// rather than fmaxf/fminf: GCC vectorises these (compare + blend) without fast-math, while fmaxf
// stays a scalar libm call (about 20x slower in reductions). Equal operands take the AND of their
// bits for max (+0 unless both are -0) and the OR for min (-0 unless both are +0); for equal
// non-zero values both are the value itself. GCC vectorises the bit operations (vpand / vpor).
template <typename T> struct BitsOf {
  typedef typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type type;
};
template <typename T> inline T and_bits(T a, T b) {
  typename BitsOf<T>::type x, y;
  std::memcpy(&x, &a, sizeof(T));
  std::memcpy(&y, &b, sizeof(T));
  x &= y;
  std::memcpy(&a, &x, sizeof(T));
  return a;
}
template <typename T> inline T or_bits(T a, T b) {
  typename BitsOf<T>::type x, y;
  std::memcpy(&x, &a, sizeof(T));
  std::memcpy(&y, &b, sizeof(T));
  x |= y;
  std::memcpy(&a, &x, sizeof(T));
  return a;
}
template <typename T> inline T max_float(T a, T b) {
  T r = (a > b) | (b != b) ? a : b;
  return a == b ? and_bits(a, b) : r;
}
template <typename T> inline T min_float(T a, T b) {
  T r = (a < b) | (b != b) ? a : b;
  return a == b ? or_bits(a, b) : r;
}
template <typename T> inline T max(T a, T b) {
  if constexpr (is_lowp<T>::value) return T(max((float)a, (float)b));
  else if constexpr (std::is_floating_point<T>::value) return max_float(a, b);
  else return a > b ? a : b;
}
template <typename T> inline T min(T a, T b) {
  if constexpr (is_lowp<T>::value) return T(min((float)a, (float)b));
  else if constexpr (std::is_floating_point<T>::value) return min_float(a, b);
  else return a < b ? a : b;
}

// Float to integer conversion as on a GPU (cvt.rzi.sat, what a C cast compiles to there):
// toward zero, saturating at the type's range, NaN giving 0. A plain C cast leaves the rest
// undefined (x86 gives INT_MIN, and narrow types wrap).
template <typename I, typename F> inline I to_int(F x) {
  constexpr bool s = std::is_signed<I>::value;
  constexpr F hi = (F)2 * (F)((uint64_t)1 << (sizeof(I) * 8 - (s ? 2 : 1)));  // max + 1
  constexpr F lo = s ? -hi - (F)1 : (F)-1;  // at or below: the minimum (still so if F rounds it)
  constexpr I mx = s ? (I)(~0ull >> (65 - sizeof(I) * 8)) : (I)~0ull;
  constexpr I mn = s ? (I)(-mx - 1) : (I)0;
  const I r = (I)(((x < hi) & (x > lo)) ? x : (F)0);  // NaN fails both tests
  return x >= hi ? mx : (x <= lo ? mn : r);
}

// Shifts as on a GPU (PTX shl/shr clamp the count to the width): a count of the type's width or
// more, or a negative one, gives 0, or the sign fill for a right shift of a negative value. The
// renderer calls these where it cannot prove the count in range; x86 takes it modulo the width.
template <typename T> inline T shl(T a, T b) {
  typedef typename std::make_unsigned<T>::type U;
  return (U)b < (U)(sizeof(T) * 8) ? (T)((U)a << (U)b) : (T)0;
}
template <typename T> inline T shr(T a, T b) {
  typedef typename std::make_unsigned<T>::type U;
  return (U)b < (U)(sizeof(T) * 8) ? (T)(a >> (U)b) : (T)(a < (T)0 ? (T)-1 : (T)0);
}

template <typename T> inline T truncmod(T a, T b);  // below, with truncdiv

template <typename T> inline T pow(T a, T b) {
  if constexpr (std::is_same<T, double>::value) return std::pow(a, b);
  else if constexpr (std::is_integral<T>::value) return to_int<T>(std::pow((double)a, (double)b));
  else return T(powf((float)a, (float)b));
}
template <typename T> inline T fmod(T a, T b) {
  if constexpr (std::is_same<T, double>::value) return std::fmod(a, b);
  else if constexpr (std::is_integral<T>::value) return truncmod(a, b);  // never traps
  else return T(fmodf((float)a, (float)b));
}
template <typename T> inline T atan2(T a, T b) { return T(std::atan2((double)a, (double)b)); }
template <typename T> inline T hypot(T a, T b) { return T(std::hypot((double)a, (double)b)); }
template <typename T> inline T copysign(T a, T b) { return T(std::copysign((double)a, (double)b)); }
// a * b + c rounded once: the IR's explicit contraction (transform/contract_fma.py)
inline float fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
inline double fma(double a, double b, double c) { return __builtin_fma(a, b, c); }

// TIR math TileLang re-exports (language/tir_math.py). The float tests are comparisons, which
// vectorise (std::isnan and friends are calls before GCC 13 without -ffast-math).
template <typename T> inline bool isnan(T x) {
  if constexpr (is_lowp<T>::value) return (float)x != (float)x;
  else return x != x;
}
template <typename T> inline bool isinf(T x) {
  if constexpr (is_lowp<T>::value) return std::fabs((float)x) == INFINITY;
  else return std::fabs(x) == (T)INFINITY;
}
template <typename T> inline bool isfinite(T x) {
  if constexpr (is_lowp<T>::value) return std::fabs((float)x) < INFINITY;
  else return std::fabs(x) < (T)INFINITY;
}
template <typename T> inline T ldexp(T x, int32_t e) {
  if constexpr (std::is_same<T, double>::value) return std::ldexp(x, e);
  else return T(std::ldexp((float)x, e));
}
inline float nextafter(float a, float b) { return std::nextafter(a, b); }
inline double nextafter(double a, double b) { return std::nextafter(a, b); }
// float64 mul / fma / div / rcp / sqrt rounded toward zero, up or down (T.ieee_mul(x, y, "rz")
// ...: CUDA's __dmul_rz ...). The CPU's own instruction rounds in the mode the floating-point
// environment holds (MXCSR on x86, FPCR on AArch64), so the operation runs between two
// fesetround calls. GCC does not honour FENV_ACCESS: the volatile operands and result keep the
// arithmetic after the first call and before the second (and out of constant folding).
template <int MODE, typename F> inline double in_rounding(F op) {
  const int saved = std::fegetround();
  std::fesetround(MODE);
  const double r = op();
  std::fesetround(saved);
  return r;
}
#define TW_DIRECTED64(suffix, MODE)                                                              \
  inline double dmul_##suffix(double a, double b) {                                            \
    return in_rounding<MODE>([&] { volatile double x = a, y = b; volatile double r = x * y; return (double)r; }); \
  }                                                                                              \
  inline double dfma_##suffix(double a, double b, double c) {                                  \
    return in_rounding<MODE>([&] {                                                               \
      volatile double x = a, y = b, z = c;                                                       \
      volatile double r = std::fma((double)x, (double)y, (double)z);                             \
      return (double)r;                                                                          \
    });                                                                                          \
  }                                                                                              \
  inline double ddiv_##suffix(double a, double b) {                                            \
    return in_rounding<MODE>([&] { volatile double x = a, y = b; volatile double r = x / y; return (double)r; }); \
  }                                                                                              \
  inline double drcp_##suffix(double a) { return ddiv_##suffix(1.0, a); }                       \
  inline double dsqrt_##suffix(double a) {                                                       \
    return in_rounding<MODE>([&] { volatile double x = a; volatile double r = std::sqrt((double)x); return (double)r; }); \
  }
TW_DIRECTED64(rz, FE_TOWARDZERO)
TW_DIRECTED64(ru, FE_UPWARD)
TW_DIRECTED64(rd, FE_DOWNWARD)
#undef TW_DIRECTED64
// Bit counts of the operand's own width (a negative value counts its two's complement bits);
// clz(0) is the width, as CUDA's __clz.
template <typename T> inline T popcount(T x) {
  typedef typename std::make_unsigned<T>::type U;
  if constexpr (sizeof(T) == 8) return (T)__builtin_popcountll((unsigned long long)(U)x);
  else return (T)__builtin_popcount((unsigned)(U)x);
}
template <typename T> inline T clz(T x) {
  typedef typename std::make_unsigned<T>::type U;
  if (x == 0) return (T)(sizeof(T) * 8);
  if constexpr (sizeof(T) == 8) return (T)__builtin_clzll((unsigned long long)(U)x);
  else return (T)(__builtin_clz((unsigned)(U)x) - (int)(32 - sizeof(T) * 8));
}
// An on-chip tile accessed outside its shape (transform/check_tile_bounds.py): the access does
// nothing (a read gives zero), the first failure's message and indices are kept, and the entry
// returns BOUNDS_STATUS after its blocks; Python reads them with tw_take_bounds_error and raises.
// `static`: one record per kernel library, whatever the dynamic linker shares.
static std::atomic<const char*> bounds_msg{nullptr};
static int64_t bounds_idx[8];
static int32_t bounds_ndim = 0;
constexpr int32_t BOUNDS_STATUS = 2;
template <typename... I> inline void bounds_fail(const char* msg, I... idx) {
  const char* none = nullptr;
  if (bounds_msg.compare_exchange_strong(none, msg)) {
    int64_t v[] = {(int64_t)idx..., 0};
    bounds_ndim = (int32_t)std::min<size_t>(sizeof...(idx), 8);
    for (int32_t k = 0; k < bounds_ndim; ++k) bounds_idx[k] = v[k];
  }
}
template <typename T, typename... I> inline T bounds_fail_value(const char* msg, I... idx) {
  bounds_fail(msg, idx...);
  return T{};
}
// A launch with 0 blocks along a grid dimension: TileLang's runtime refuses it, so the entry
// returns EMPTY_GRID_STATUS before any block runs, with TileLang's message (emulator/errors.py).
static char empty_grid_msg[512];
constexpr int32_t EMPTY_GRID_STATUS = 3;
inline int32_t empty_grid(const char* kernel, int64_t x, int64_t y, int64_t z) {
  std::snprintf(empty_grid_msg, sizeof(empty_grid_msg),
                "CUDALaunch Error: grid dimension must be positive, but got grid=(%lld,%lld,%lld) in kernel %s. "
                "A zero grid dimension is often caused by a dynamic shape (e.g. num_tokens) being 0 at runtime.",
                (long long)x, (long long)y, (long long)z, kernel);
  return EMPTY_GRID_STATUS;
}
// T.device_assert: a failed check stops the process with the message (which names the line).
inline void device_assert(bool cond, const char* msg) {
  if (__builtin_expect(!cond, 0)) {
    std::fprintf(stderr, "%s\n", msg);
    std::fflush(stderr);
    std::abort();
  }
}
// TileLang's fast-math names (T.__exp, ...): the CPU's float math (tw_math.h) is already fast.
template <typename T> inline T fast_exp(T x) { return exp(x); }
template <typename T> inline T fast_exp10(T x) { return exp10(x); }
template <typename T> inline T fast_log(T x) { return log(x); }
template <typename T> inline T fast_log2(T x) { return log2(x); }
template <typename T> inline T fast_log10(T x) { return log10(x); }
template <typename T> inline T fast_sin(T x) { return sin(x); }
template <typename T> inline T fast_cos(T x) { return cos(x); }
template <typename T> inline T fast_tan(T x) { return tan(x); }
inline float fast_rcp(float x) { return 1.0f / x; }

// Integer division never traps, as on a GPU: by zero the quotient is -1 (all ones) and the
// remainder is the dividend; the most negative value divided by -1 wraps.
template <typename T> inline T truncdiv(T a, T b) {
  if (b == 0) return (T)-1;
  if constexpr (std::is_signed<T>::value) {
    if (b == (T)-1) return (T)(0 - (typename std::make_unsigned<T>::type)a);
  }
  return (T)(a / b);
}
template <typename T> inline T truncmod(T a, T b) {
  if (b == 0) return a;
  if constexpr (std::is_signed<T>::value) {
    if (b == (T)-1) return (T)0;
  }
  return (T)(a % b);
}

// Python-style integer division and modulo (round toward negative infinity).
template <typename T> inline T floordiv(T a, T b) {
  if constexpr (std::is_integral<T>::value) {
    if (b == 0 || (std::is_signed<T>::value && b == (T)-1)) return truncdiv(a, b);
    // branch-free: GCC 12 -O3 miscompiled the branchy form (`q * b != a && ...`) inside guards
    // that loop unswitching hoists (a stream-K GEMM lost whole tiles)
    T q = a / b, r = a % b;
    return (T)(q - (T)((r != 0) & ((r < 0) != (b < 0))));
  } else {
    typedef typename std::conditional<std::is_same<T, double>::value, double, float>::type F;
    return T(std::floor((F)a / (F)b));  // the quotient rounded to F first, as on a GPU
  }
}
template <typename T> inline T floormod(T a, T b) {
  if constexpr (std::is_integral<T>::value) {
    if (b == 0 || (std::is_signed<T>::value && b == (T)-1)) return truncmod(a, b);
    T r = a % b;
    return (T)(r + (((r != 0) & ((r < 0) != (b < 0))) ? b : (T)0));
  } else {
    double r = std::fmod((double)a, (double)b);
    return T((r != 0 && ((r < 0) != ((double)b < 0))) ? r + (double)b : r);
  }
}

// int4 / uint4 (nibble): the integer rules at four bits (ir/scalar_ops.py), computed on the values
// in int32 and wrapped back; a shift count is the operand's four bits read unsigned, and a count of
// four or more shifts everything out (the sign fill for a right shift of a negative int4).
template <bool S> inline nibble<S> truncdiv(nibble<S> a, nibble<S> b) { return nibble<S>(truncdiv((int32_t)(int)a, (int32_t)(int)b)); }
template <bool S> inline nibble<S> truncmod(nibble<S> a, nibble<S> b) { return nibble<S>(truncmod((int32_t)(int)a, (int32_t)(int)b)); }
template <bool S> inline nibble<S> floordiv(nibble<S> a, nibble<S> b) { return nibble<S>(floordiv((int32_t)(int)a, (int32_t)(int)b)); }
template <bool S> inline nibble<S> floormod(nibble<S> a, nibble<S> b) { return nibble<S>(floormod((int32_t)(int)a, (int32_t)(int)b)); }
template <bool S> inline nibble<S> shl(nibble<S> a, nibble<S> b) {
  const unsigned c = b.bits & 15u;
  return nibble<S>(c >= 4u ? 0u : (unsigned)(int)a << c);
}
template <bool S> inline nibble<S> shr(nibble<S> a, nibble<S> b) {
  const unsigned c = b.bits & 15u;
  return nibble<S>(c >= 4u ? ((int)a < 0 ? -1 : 0) : (int)a >> c);
}

template <typename To, typename From> inline To bitcast(From x) {
  static_assert(sizeof(To) == sizeof(From), "reinterpret needs equal sizes");
  To y;
  std::memcpy(&y, &x, sizeof(To));
  return y;
}

inline int32_t dp4a(int32_t a, int32_t b, int32_t c) {
  int32_t acc = c;
  for (int k = 0; k < 4; ++k) acc += (int32_t)(int8_t)(a >> (8 * k)) * (int32_t)(int8_t)(b >> (8 * k));
  return acc;
}

// Atomics (relaxed, as on GPUs): *addr = f(*addr) by compare-and-swap, returning the old value
// (T.atomic_add(..., return_prev=True)). Types narrower than 32 bits swap the aligned 32-bit
// word holding them, since x86 has no 8/16-bit float atomics.
template <typename T, typename F> inline T atomic_update(T* addr, F f) {
  if constexpr (sizeof(T) == 4 || sizeof(T) == 8) {
    typedef typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type U;
    U* p = reinterpret_cast<U*>(addr);
    U old = __atomic_load_n(p, __ATOMIC_RELAXED), upd;
    do {
      upd = bitcast<U>(f(bitcast<T>(old)));
      if (upd == old) return bitcast<T>(old);
    } while (!__atomic_compare_exchange_n(p, &old, upd, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return bitcast<T>(old);
  } else {
    static_assert(sizeof(T) == 1 || sizeof(T) == 2, "atomics need a 1, 2, 4 or 8-byte type");
    typedef typename std::conditional<sizeof(T) == 1, uint8_t, uint16_t>::type U;
    uintptr_t a = reinterpret_cast<uintptr_t>(addr);
    uint32_t* word = reinterpret_cast<uint32_t*>(a & ~(uintptr_t)3);
    const int shift = (int)((a & 3) * 8);  // little-endian: the byte at a & 3
    const uint32_t mask = (uint32_t)(U)~(U)0 << shift;
    uint32_t old = __atomic_load_n(word, __ATOMIC_RELAXED), upd;
    do {
      T cur = bitcast<T>((U)(old >> shift));
      upd = (old & ~mask) | ((uint32_t)bitcast<U>(f(cur)) << shift);
      if (upd == old) return cur;
    } while (!__atomic_compare_exchange_n(word, &old, upd, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return bitcast<T>((U)(old >> shift));
  }
}

// PTX's atom/red.add.f32 flushes subnormal inputs and results to zero of the same sign: so
// does float32 here (TileLang's atomicAdd of 1e-40 to 0 leaves 0)
inline float flush_subnormal(float x) {
  return (bitcast<uint32_t>(x) & 0x7f800000u) ? x : bitcast<float>(bitcast<uint32_t>(x) & 0x80000000u);
}
template <typename T> inline T atomic_add(T* addr, T value) {
  if constexpr (std::is_integral<T>::value) {
    return __atomic_fetch_add(addr, value, __ATOMIC_RELAXED);
  } else if constexpr (std::is_same<T, float>::value) {
    const float v = flush_subnormal(value);
    return atomic_update(addr, [v](float x) { return flush_subnormal(flush_subnormal(x) + v); });
  } else if constexpr (is_lowp<T>::value) {
    return atomic_update(addr, [value](T x) { return T((float)x + (float)value); });
  } else {
    return atomic_update(addr, [value](T x) { return x + value; });
  }
}
// dst[0:n] += src[0:n], each element by one atomic read-modify-write, as atomic_add would do
// it, but 16 bytes (four floats, two doubles) per `lock cmpxchg16b` where dst is 16-byte aligned
// (transform/atomic_add_runs.py). The exchange is atomic against per-element atomics on the same
// memory too (a locked instruction holds the cache line either way). Without cmpxchg16b (no
// -mcx16), element by element.
// flush_subnormal on each float of a 16-byte vector; doubles are left as they are (atom.add.f64
// keeps subnormals)
template <typename V> inline V flush_subnormals(V x) {
  if constexpr (sizeof(x[0]) == 4) {
    typedef uint32_t IV __attribute__((vector_size(16)));
    IV b;
    std::memcpy(&b, &x, 16);
    const IV zero_exp = (IV)((b & 0x7f800000u) == 0);  // all ones where the exponent is 0
    b &= ~(zero_exp & 0x7fffffffu);
    std::memcpy(&x, &b, 16);
  }
  return x;
}
template <typename T> inline void atomic_add_run(T* dst, const T* src, int64_t n) {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "float32 / float64 runs");
  int64_t j = 0;
#if defined(__GCC_HAVE_SYNC_COMPARE_AND_SWAP_16)
  constexpr int W = 16 / (int)sizeof(T);
  typedef T V __attribute__((vector_size(16)));
  typedef T U __attribute__((vector_size(16), aligned(sizeof(T)), may_alias));
  typedef unsigned __int128 Q;
  for (; j < n && (reinterpret_cast<uintptr_t>(dst + j) & 15); ++j) atomic_add(dst + j, src[j]);
  for (; j + W <= n; j += W) {
    Q* p = reinterpret_cast<Q*>(dst + j);
    const V v = *(const U*)(src + j);
    // a torn first read only fails the exchange, which then returns the current bits
    Q old = *(volatile Q*)p;
    for (;;) {
      V cur;
      std::memcpy(&cur, &old, 16);
      V sum = flush_subnormals(flush_subnormals(cur) + flush_subnormals(v));
      Q upd;
      std::memcpy(&upd, &sum, 16);
      const Q seen = __sync_val_compare_and_swap(p, old, upd);
      if (seen == old) break;
      old = seen;
    }
  }
#endif
  for (; j < n; ++j) atomic_add(dst + j, src[j]);
}
// What a float atomic_max / atomic_min compares: narrow float types widened (exactly) to float.
template <typename T> inline auto compare_value(T x) {
  if constexpr (is_lowp<T>::value) return (float)x;
  else return x;
}
// Floats: TileLang's rule on CUDA (its atomic.h: a compare-and-swap loop for half / bfloat16,
// libcu++'s fetch_max / fetch_min for the others, which decide alike): the value is stored only
// when it compares strictly greater (smaller) than the stored one, so -0 does not replace +0
// (nor +0 -0), a NaN value never stores and a stored NaN stays. Integers: max / min.
template <typename T> inline T atomic_max(T* addr, T value) {
  if constexpr (std::is_integral<T>::value) return atomic_update(addr, [value](T x) { return max(x, value); });
  else return atomic_update(addr, [value](T x) { return ((compare_value(x) < compare_value(value)) ? value : x); });
}
template <typename T> inline T atomic_min(T* addr, T value) {
  if constexpr (std::is_integral<T>::value) return atomic_update(addr, [value](T x) { return min(x, value); });
  else return atomic_update(addr, [value](T x) { return ((compare_value(value) < compare_value(x)) ? value : x); });
}
template <typename T> inline T atomic_or(T* addr, T value) {
  if constexpr (sizeof(T) >= 4) return __atomic_fetch_or(addr, value, __ATOMIC_RELAXED);
  else return atomic_update(addr, [value](T x) { return (T)(x | value); });
}
// T.atomic_load / T.atomic_store: the memory order is TileLang's number (0 relaxed, 1 consume,
// 2 acquire, 3 release, 4 acq_rel, 5 seq_cst), the same numbering as GCC's __ATOMIC_*. Values
// move as their bits (half and the other storage structs are not atomic types to GCC).
template <typename T> inline T atomic_load(const T* addr, int order) {
  typedef typename std::conditional<sizeof(T) == 1, uint8_t, typename std::conditional<sizeof(T) == 2, uint16_t,
          typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type>::type>::type U;
  return bitcast<T>(__atomic_load_n(reinterpret_cast<const U*>(addr), order));
}
template <typename T> inline void atomic_store(T* addr, T value, int order) {
  typedef typename std::conditional<sizeof(T) == 1, uint8_t, typename std::conditional<sizeof(T) == 2, uint16_t,
          typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type>::type>::type U;
  __atomic_store_n(reinterpret_cast<U*>(addr), bitcast<U>(value), order);
}

// Consecutive blocks per OpenMP hand-out: nblocks split into at least `runs` runs per thread.
inline int64_t block_run(int64_t nblocks, int64_t runs) {
  int64_t n = nblocks / (runs * (int64_t)omp_get_max_threads());
  return n > 1 ? n : 1;
}

inline void* alloc_workspace(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  if (posix_memalign(&p, 64, (bytes + 63) / 64 * 64) != 0) return nullptr;
  return p;
}

// Private copies of a tensor that a kernel only atomically adds into (privatise_atomics.py in
// tilewise/transform): they pay when the updates (-1: no bound known) outnumber the elements the
// copies cost to zero and to add up, and must fit a memory budget.
inline bool private_atomics_worthwhile(int64_t updates, int64_t threads, int64_t elements, int64_t bytes) {
  if (threads * bytes > ((int64_t)512 << 20)) return false;
  return updates < 0 || updates >= threads * elements;
}

inline double to_double(half x) { return (double)(float)x; }
inline double to_double(bf16 x) { return (double)(float)x; }
template <int E, int M, bool FN> inline double to_double(fp8<E, M, FN> x) { return (double)(float)x; }
template <int E, int M> inline double to_double(mxfp<E, M> x) { return (double)(float)x; }
inline double to_double(fp8_e8m0 x) { return (double)(float)x; }
template <typename T> inline double to_double(T x) { return (double)x; }

// Row reductions, for T.reduce along a tile's innermost dimension: `init` combined with the n
// values p[0], p[stride], ... in Acc's type. The simd reduction lets GCC reassociate, hence
// vectorise, without fast-math. Low-precision accumulators round after every step, as in the IR,
// and fold the row the way a GPU warp does (32 lanes each take every 32nd value, then the lanes
// combine pairwise): a sequential float16 sum of a long row drifts far more than a GPU's.
template <typename T> inline T plus(T a, T b) {
  if constexpr (is_lowp<T>::value) return T((float)a + (float)b);
  else return (T)(a + b);
}
// Contiguous rows whose elements already have the accumulator's type: four independent vector
// accumulators (GCC vector extensions), since a single one makes every step wait for the
// previous one's latency (2x slower on a 4096-float row). Same maxNum/minNum rules as max/min.
namespace row_detail {
// The host's vector width: g++ splits generic vectors wider than the ISA's registers lane by lane
// for comparisons and selects (a 64-byte max on an AVX2 CPU was 21,000 scalar instructions).
#if defined(__AVX512F__)
constexpr int32_t kRowVecBytes = 64;
#elif defined(__AVX__)
constexpr int32_t kRowVecBytes = 32;
#else
constexpr int32_t kRowVecBytes = 16;
#endif
template <typename A> struct Lanes {
  static constexpr bool vector = std::is_floating_point<A>::value || (std::is_integral<A>::value && sizeof(A) >= 4);
  static constexpr int32_t n = kRowVecBytes / (int32_t)sizeof(A);
};
template <typename A> struct VecOf { typedef A type __attribute__((vector_size(kRowVecBytes))); };
template <typename A> using Vec = typename VecOf<A>::type;
template <typename A> inline Vec<A> load(const A* p) {
  Vec<A> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <typename V> inline V vabs(V x) {
  typedef typename std::remove_reference<decltype(x[0])>::type A;
  if constexpr (std::is_floating_point<A>::value) {
    typedef typename std::conditional<sizeof(A) == 4, uint32_t, uint64_t>::type U;
    typedef U UV __attribute__((vector_size(sizeof(V))));
    return (V)((UV)x & (U)~((U)1 << (sizeof(A) * 8 - 1)));  // clear the sign bit
  } else if constexpr (std::is_signed<A>::value) {
    return x < 0 ? -x : x;
  } else {
    return x;
  }
}
struct Sum {
  template <typename X> static X step(X a, X b) { return a + b; }
  template <typename X> static X inner(X a, X b) { return a + b; }
  template <typename X> static X first(X x) { return x; }
};
template <typename X, typename = void> struct ElemOf { typedef X type; };  // a scalar: itself
template <typename X> struct ElemOf<X, std::void_t<decltype(std::declval<X>()[0])>> {  // a vector's lanes
  typedef typename std::remove_cv<typename std::remove_reference<decltype(std::declval<X>()[0])>::type>::type type;
};
template <typename X> constexpr bool kFloatLanes = std::is_floating_point<typename ElemOf<X>::type>::value;
// max_float / min_float for a scalar or a vector of floats (the bit operations on a vector go
// through an integer vector of the same size)
template <typename X> inline X vmax(X a, X b) {
  if constexpr (std::is_floating_point<X>::value) {
    return max_float(a, b);
  } else {
    typedef typename BitsOf<typename ElemOf<X>::type>::type U;
    typedef U UV __attribute__((vector_size(sizeof(X))));
    X r = (a > b) | (b != b) ? a : b;
    return a == b ? (X)((UV)a & (UV)b) : r;
  }
}
template <typename X> inline X vmin(X a, X b) {
  if constexpr (std::is_floating_point<X>::value) {
    return min_float(a, b);
  } else {
    typedef typename BitsOf<typename ElemOf<X>::type>::type U;
    typedef U UV __attribute__((vector_size(sizeof(X))));
    X r = (a < b) | (b != b) ? a : b;
    return a == b ? (X)((UV)a | (UV)b) : r;
  }
}
// Inside a row reduction, `first` turns a NaN element into the identity (-inf for max, +inf for
// min), so the accumulators never hold a NaN and `inner` combines them with two plain x86 max
// (or min) instructions: maxps(a, b) and maxps(b, a) agree unless a == b, where they return b and
// a, and the AND of their bits is then +0 unless both are -0 (the OR for min: -0 unless both are
// +0). Three instructions per step, as cheap as the select without the -0 < +0 rule. `step`
// combines values that may be NaN (the initial value, dst).
template <typename X> inline X nan_to(X x, double to) {
  if constexpr (kFloatLanes<X>) return x != x ? X{} + (typename ElemOf<X>::type)to : x;
  else return x;
}
template <typename X, bool IsMax> inline X inner_minmax(X a, X b) {
  if constexpr (kFloatLanes<X> && !std::is_floating_point<X>::value) {
    typedef typename BitsOf<typename ElemOf<X>::type>::type U;
    typedef U UV __attribute__((vector_size(sizeof(X))));
    X m1 = IsMax ? (a > b ? a : b) : (a < b ? a : b);
    X m2 = IsMax ? (b > a ? b : a) : (b < a ? b : a);
    return IsMax ? (X)((UV)m1 & (UV)m2) : (X)((UV)m1 | (UV)m2);
  } else if constexpr (kFloatLanes<X>) {
    return IsMax ? max_float(a, b) : min_float(a, b);
  } else {
    return IsMax ? (a > b ? a : b) : (a < b ? a : b);
  }
}
struct Max {
  template <typename X> static X step(X a, X b) {
    if constexpr (kFloatLanes<X>) return vmax(a, b);  // -0 < +0, a NaN operand ignored
    else return (a > b) ? a : b;
  }
  template <typename X> static X inner(X a, X b) { return inner_minmax<X, true>(a, b); }
  template <typename X> static X first(X x) { return nan_to(x, -INFINITY); }
};
struct Min {
  template <typename X> static X step(X a, X b) {
    if constexpr (kFloatLanes<X>) return vmin(a, b);
    else return (a < b) ? a : b;
  }
  template <typename X> static X inner(X a, X b) { return inner_minmax<X, false>(a, b); }
  template <typename X> static X first(X x) { return nan_to(x, INFINITY); }
};
struct BitAnd {
  template <typename X> static X step(X a, X b) { return a & b; }
  template <typename X> static X inner(X a, X b) { return a & b; }
  template <typename X> static X first(X x) { return x; }
};
struct BitOr {
  template <typename X> static X step(X a, X b) { return a | b; }
  template <typename X> static X inner(X a, X b) { return a | b; }
  template <typename X> static X first(X x) { return x; }
};
struct BitXor : Sum {  // like a sum, not idempotent: partial vectors start at 0, the tail is masked
  template <typename X> static X step(X a, X b) { return a ^ b; }
  template <typename X> static X inner(X a, X b) { return a ^ b; }
};
struct AbsSum : Sum {
  template <typename X> static X first(X x) { return vabs(x); }
};
struct AbsMax : Max {
  template <typename X> static X first(X x) { return nan_to(vabs(x), -INFINITY); }
};
template <typename Op, typename A> inline A reduce(A init, const A* p, int32_t n) {
  constexpr int32_t W = Lanes<A>::n;
  constexpr bool idempotent = !std::is_base_of<Sum, Op>::value;
  Vec<A> a0 = Op::first(load(p));
  Vec<A> a1 = idempotent ? a0 : Vec<A>{}, a2 = a1, a3 = a1;  // sums start the others at zero
  int32_t i = W;
  for (; i + 4 * W <= n; i += 4 * W) {
    a0 = Op::inner(a0, Op::first(load(p + i)));
    a1 = Op::inner(a1, Op::first(load(p + i + W)));
    a2 = Op::inner(a2, Op::first(load(p + i + 2 * W)));
    a3 = Op::inner(a3, Op::first(load(p + i + 3 * W)));
  }
  for (; i + W <= n; i += W) a0 = Op::inner(a0, Op::first(load(p + i)));
  // the last partial vector overlaps the previous ones: fine for max/min, not for sums
  if (i < n) {
    Vec<A> tail = Op::first(load(p + n - W));
    if constexpr (idempotent) {
      a1 = Op::inner(a1, tail);
    } else {
      Vec<A> keep;
      for (int32_t l = 0; l < W; ++l) keep[l] = l >= W - (n - i) ? tail[l] : (A)0;
      a1 = Op::inner(a1, keep);
    }
  }
  Vec<A> v = Op::inner(Op::inner(a0, a1), Op::inner(a2, a3));
  A lane[W];
  std::memcpy(lane, &v, sizeof(v));
#pragma GCC unroll 8
  for (int32_t w = W / 2; w > 0; w /= 2) {
#pragma GCC unroll 8
    for (int32_t l = 0; l < w; ++l) lane[l] = Op::inner(lane[l], lane[l + w]);
  }
  return Op::step(init, lane[0]);
}

// As many rows of 4-byte values as a vector has lanes (W = 16 with AVX-512, 8 with AVX2, 4
// otherwise; n a multiple of 16, row pitch ld): each row folds into one vector, then log2(W)
// rounds of two-vector shuffles (W/2, ..., 1 lanes) fold the W vectors into one holding the W
// results, in bit-reversed row order. About 6 vector operations per row instead of a per-row
// horizontal reduction (rows of 64: 3x faster).
template <typename A> constexpr int32_t kRowsAtOnce = Lanes<A>::n;
template <typename Op, typename A> inline Vec<A> rows_block(const A* p, int32_t n, int32_t ld) {
  static_assert(sizeof(A) == 4, "rows_block takes 4-byte elements");
  constexpr int32_t W = Lanes<A>::n;
  typedef int32_t I __attribute__((vector_size(kRowVecBytes)));
  Vec<A> v[W];
  for (int32_t r = 0; r < W; ++r) {
    const A* q = p + (int64_t)r * ld;
    Vec<A> a = Op::first(load(q));
    for (int32_t j = W; j < n; j += W) a = Op::inner(a, Op::first(load(q + j)));
    v[r] = a;
  }
  // round with half width h: lane i of the result takes, within its group of 2h lanes, the
  // first h lanes of the left vector's group then the first h of the right one's (+h: the second)
#if defined(__AVX512F__)
  const I lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
  const I lo4 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
  const I lo2 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
  const I lo1 = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
  const I bitrev = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
  for (int32_t k = 0; k < 8; ++k)
    v[k] = Op::inner(__builtin_shuffle(v[2 * k], v[2 * k + 1], lo8), __builtin_shuffle(v[2 * k], v[2 * k + 1], lo8 + 8));
#elif defined(__AVX__)
  const I lo4 = {0, 1, 2, 3, 8, 9, 10, 11};
  const I lo2 = {0, 1, 8, 9, 4, 5, 12, 13};
  const I lo1 = {0, 8, 2, 10, 4, 12, 6, 14};
  const I bitrev = {0, 4, 2, 6, 1, 5, 3, 7};
#else
  const I lo2 = {0, 1, 4, 5};
  const I lo1 = {0, 4, 2, 6};
  const I bitrev = {0, 2, 1, 3};
#endif
#if defined(__AVX__)
  for (int32_t k = 0; k < 4; ++k)
    v[k] = Op::inner(__builtin_shuffle(v[2 * k], v[2 * k + 1], lo4), __builtin_shuffle(v[2 * k], v[2 * k + 1], lo4 + 4));
#endif
  for (int32_t k = 0; k < 2; ++k)
    v[k] = Op::inner(__builtin_shuffle(v[2 * k], v[2 * k + 1], lo2), __builtin_shuffle(v[2 * k], v[2 * k + 1], lo2 + 2));
  Vec<A> r = Op::inner(__builtin_shuffle(v[0], v[1], lo1), __builtin_shuffle(v[0], v[1], lo1 + 1));
  return __builtin_shuffle(r, bitrev);
}
}  // namespace row_detail

// OpenMP's built-in max/min reductions combine the lanes' partial results with a plain compare
// (GCC's MAX_EXPR, x86 maxps), which may return -0 for max(+0, -0) or a NaN: these combine with
// tw::max / tw::min instead (each lane starts from the initial value, harmless for max/min).
#pragma omp declare reduction(tw_max : float, double, bool, char, signed char, unsigned char, short, unsigned short, int, \
    unsigned int, long, unsigned long, long long, unsigned long long \
    : omp_out = max(omp_out, omp_in)) initializer(omp_priv = omp_orig)
#pragma omp declare reduction(tw_min : float, double, bool, char, signed char, unsigned char, short, unsigned short, int, \
    unsigned int, long, unsigned long, long long, unsigned long long \
    : omp_out = min(omp_out, omp_in)) initializer(omp_priv = omp_orig)
#define TW_PRAGMA(x) _Pragma(#x)
#define TW_ROW_REDUCE(name, omp_op, step, first, kind_op)                               \
  template <typename Acc, typename T>                                          \
  inline Acc name(Acc init, const T* p, int32_t n, int32_t stride) {           \
    Acc acc = init;                                                            \
    if constexpr (is_lowp<Acc>::value) {                                       \
      constexpr int32_t L = 32;                                                \
      if (n <= L) {                                                            \
        for (int32_t i = 0; i < n; ++i) {                                      \
          Acc x = Acc(p[i * stride]);                                          \
          acc = step;                                                          \
        }                                                                      \
        return acc;                                                            \
      }                                                                        \
      Acc lane[L];                                                             \
      for (int32_t l = 0; l < L; ++l) {                                        \
        Acc x = Acc(p[l * stride]);                                            \
        lane[l] = first;                                                       \
      }                                                                        \
      for (int32_t i = L; i < n; ++i) {                                        \
        Acc acc = lane[i % L];                                                 \
        Acc x = Acc(p[i * stride]);                                            \
        lane[i % L] = step;                                                    \
      }                                                                        \
      for (int32_t w = L / 2; w > 0; w /= 2) {                                 \
        for (int32_t l = 0; l < w; ++l) {                                      \
          Acc acc = lane[l];                                                   \
          Acc x = lane[l + w];                                                 \
          lane[l] = step;                                                      \
        }                                                                      \
      }                                                                        \
      Acc x = lane[0];                                                         \
      acc = step;                                                              \
    } else if constexpr (std::is_same<T, Acc>::value && row_detail::Lanes<Acc>::vector) {    \
      if (stride == 1 && n >= 8 * row_detail::Lanes<Acc>::n) {                 \
        return row_detail::reduce<row_detail::kind_op>(init, p, n);            \
      }                                                                        \
      TW_PRAGMA(omp simd reduction(omp_op : acc))                              \
      for (int32_t i = 0; i < n; ++i) {                                        \
        Acc x = (Acc)p[i * stride];                                            \
        acc = step;                                                            \
      }                                                                        \
    } else {                                                                   \
      TW_PRAGMA(omp simd reduction(omp_op : acc))                              \
      for (int32_t i = 0; i < n; ++i) {                                        \
        Acc x = (Acc)p[i * stride];                                            \
        acc = step;                                                            \
      }                                                                        \
    }                                                                          \
    return acc;                                                                \
  }
TW_ROW_REDUCE(row_sum, +, plus(acc, x), x, Sum)
TW_ROW_REDUCE(row_abssum, +, plus(acc, abs(x)), abs(x), AbsSum)
TW_ROW_REDUCE(row_max, tw_max, max(acc, x), x, Max)
TW_ROW_REDUCE(row_min, tw_min, min(acc, x), x, Min)
TW_ROW_REDUCE(row_absmax, tw_max, max(acc, abs(x)), abs(x), AbsMax)
TW_ROW_REDUCE(row_bitand, &, (Acc)(acc & x), x, BitAnd)
TW_ROW_REDUCE(row_bitor, |, (Acc)(acc | x), x, BitOr)
TW_ROW_REDUCE(row_bitxor, ^, (Acc)(acc ^ x), x, BitXor)
#undef TW_ROW_REDUCE

// T.reduce of `rows` contiguous rows of n elements (pitch ld) into rows consecutive dst
// elements, for 4-byte types with n a multiple of 16. start: 0 combines with `init` (clear),
// 1 with dst's value, 2 with |dst| (absmax without clear).
#define TW_ROWS_REDUCE(name, row_name, kind_op)                                            \
  template <typename A>                                                                    \
  inline void name(A* dst, const A* src, int32_t rows, int32_t n, int32_t ld, int32_t start, A init) { \
    int32_t r = 0;                                                                         \
    for (; r + row_detail::kRowsAtOnce<A> <= rows; r += row_detail::kRowsAtOnce<A>) {     \
      row_detail::Vec<A> red = row_detail::rows_block<row_detail::kind_op>(src + (int64_t)r * ld, n, ld); \
      row_detail::Vec<A> s = row_detail::Vec<A>{} + init;                                  \
      if (start != 0) s = row_detail::load(dst + r);                                       \
      if (start == 2) s = row_detail::vabs(s);                                             \
      s = row_detail::kind_op::step(s, red);                                               \
      std::memcpy(dst + r, &s, sizeof(s));                                                 \
    }                                                                                      \
    for (; r < rows; ++r) {                                                                \
      A s = start == 0 ? init : (start == 2 ? abs(dst[r]) : dst[r]);                       \
      dst[r] = row_name(s, src + (int64_t)r * ld, n, 1);                                   \
    }                                                                                      \
  }
TW_ROWS_REDUCE(rows_sum, row_sum, Sum)
TW_ROWS_REDUCE(rows_abssum, row_abssum, AbsSum)
TW_ROWS_REDUCE(rows_max, row_max, Max)
TW_ROWS_REDUCE(rows_min, row_min, Min)
TW_ROWS_REDUCE(rows_absmax, row_absmax, AbsMax)
TW_ROWS_REDUCE(rows_bitand, row_bitand, BitAnd)
TW_ROWS_REDUCE(rows_bitor, row_bitor, BitOr)
TW_ROWS_REDUCE(rows_bitxor, row_bitxor, BitXor)
#undef TW_ROWS_REDUCE
#undef TW_PRAGMA

// T.print: every call's lines stay together although blocks run on several threads, and are
// flushed at once so they interleave correctly with the host's own output.
template <typename T> inline void print_value(T v) {
  if constexpr (std::is_same<T, bool>::value) std::printf("%s", v ? "true" : "false");
  else if constexpr (std::is_integral<T>::value && std::is_signed<T>::value) std::printf("%lld", (long long)v);
  else if constexpr (std::is_integral<T>::value) std::printf("%llu", (unsigned long long)v);
  else std::printf("%g", to_double(v));
}
inline void print_prefix(const char* msg, int64_t bx, int64_t by, int64_t bz) {
  if (msg[0]) std::printf("%s: ", msg);
  std::printf("block (%lld, %lld, %lld) ", (long long)bx, (long long)by, (long long)bz);
}
template <typename T>
inline void print_scalar(const char* msg, const char* label, int64_t bx, int64_t by, int64_t bz, T v) {
#pragma omp critical(tw_print)
  {
    print_prefix(msg, bx, by, bz);
    std::printf("%s = ", label);
    print_value(v);
    std::printf("\n");
    std::fflush(stdout);
  }
}
// T.print(msg="...") without a value: the message and the block.
inline void print_msg(const char* msg, int64_t bx, int64_t by, int64_t bz) {
#pragma omp critical(tw_print)
  {
    std::printf("%s: block (%lld, %lld, %lld)\n", msg, (long long)bx, (long long)by, (long long)bz);
    std::fflush(stdout);
  }
}
// A tile at p: `extents` and element `strides` per dimension; indices print as starts + offset.
template <typename T>
inline void print_tile(const char* msg, const char* name, int64_t bx, int64_t by, int64_t bz, const T* p,
                       std::initializer_list<int64_t> extents, std::initializer_list<int64_t> strides,
                       std::initializer_list<int64_t> starts) {
  const int nd = (int)extents.size();
  const int64_t *ext = extents.begin(), *st = strides.begin(), *s0 = starts.begin();
  int64_t total = 1;
  for (int k = 0; k < nd; ++k) total *= ext[k];
  std::vector<int64_t> idx(nd, 0);
#pragma omp critical(tw_print)
  {
    for (int64_t n = 0; n < total; ++n) {
      int64_t off = 0;
      for (int k = 0; k < nd; ++k) off += idx[k] * st[k];
      print_prefix(msg, bx, by, bz);
      std::printf("%s[", name);
      for (int k = 0; k < nd; ++k) std::printf(k ? ", %lld" : "%lld", (long long)(s0[k] + idx[k]));
      std::printf("] = ");
      print_value(p[off]);
      std::printf("\n");
      for (int k = nd - 1; k >= 0; --k) {
        if (++idx[k] < ext[k]) break;
        idx[k] = 0;
      }
    }
    std::fflush(stdout);
  }
}

// T.cast(x, "float16" / "bfloat16", round="rs", rbits=r): stochastic rounding as PTX cvt.rs
// defines it (sm_100a+ hardware; computed here): the result rounds away from zero when adding
// the random bits to the bits the conversion discards carries out, toward zero otherwise. The
// random bits are those TileLang's scalar cast gives the instruction: the low 13 (float16) or 16
// (bfloat16) bits of r. Results below the normal range take the top discarded bits (the PTX ISA
// leaves that case unstated). .satfinite, as TileLang requires: beyond the largest finite value
// (infinities too) the result is that value with the sign; NaN converts as a plain cast does.
// The same rule as tilewise/ir/stochastic_round.py, which the emulator runs.
template <int M, int NB, int EMIN> inline float stochastic_round(float x, uint32_t r, float max_finite) {
  if (!(x == x)) return x;
  const float a = fabsf(x);
  if (a >= max_finite) return x < 0 ? -max_finite : max_finite;
  const int biased = (int)(bitcast<uint32_t>(a) >> 23);
  const int e = biased == 0 ? -127 : biased - 127;
  const int qe = (e < EMIN ? EMIN : e) - M;  // the result's unit in the last place is 2^qe
  const double s = ldexp((double)a, -qe);
  double k = floor(s);
  const double kept = floor(ldexp(s - k, NB));  // the top NB discarded bits
  if (kept + (double)(r & ((1u << NB) - 1u)) >= ldexp(1.0, NB)) k += 1.0;
  float out = (float)ldexp(k, qe);
  if (out > max_finite) out = max_finite;
  return (bitcast<uint32_t>(x) >> 31) ? -out : out;
}
template <typename T> struct rs_format;
template <> struct rs_format<half> {
  static inline half cvt(float x, uint32_t r) { return half(stochastic_round<10, 13, -14>(x, r, 65504.0f)); }
};
template <> struct rs_format<bf16> {
  static inline bf16 cvt(float x, uint32_t r) {
    return bf16(stochastic_round<7, 16, -126>(x, r, 3.38953138925153547590470800371487866880e+38f));
  }
};
template <typename T> inline T cvt_rs(float x, uint32_t r) { return rs_format<T>::cvt(x, r); }

}  // namespace tw
