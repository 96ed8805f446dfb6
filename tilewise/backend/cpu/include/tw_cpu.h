// tilewise CPU runtime header: scalar types, math, integer helpers. Included by every
// generated CPU kernel; the GEMM micro-kernel lives in tw_gemm.h.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace tw {

typedef _Float16 half;

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
  bf16(double d) : bf16((float)d) {}
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
    if (std::isnan(f)) { bits = FN ? (uint8_t)(s | 0x7f) : (uint8_t)(s | 0x7e); return; }
    if (a > maxv) { bits = FN ? (uint8_t)(s | 0x7e) : (uint8_t)(s | 0x7c); if (!FN && std::isinf(f)) bits = s | 0x7c; return; }
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
  fp8(double d) : fp8((float)d) {}
  fp8(int i) : fp8((float)i) {}
};
typedef fp8<4, 3, true> fp8_e4m3;
typedef fp8<5, 2, false> fp8_e5m2;

template <typename T> struct is_lowp : std::false_type {};
template <> struct is_lowp<half> : std::true_type {};
template <> struct is_lowp<bf16> : std::true_type {};
template <> struct is_lowp<fp8_e4m3> : std::true_type {};
template <> struct is_lowp<fp8_e5m2> : std::true_type {};

// Math: float and double call libm; low-precision types compute in float and round back.
#define TW_MATH1(name, ffn, dfn)                                                     \
  inline float name(float x) { return ffn(x); }                                      \
  inline double name(double x) { return dfn(x); }                                    \
  template <typename T, typename std::enable_if<is_lowp<T>::value, int>::type = 0>   \
  inline T name(T x) { return T(ffn((float)x)); }
TW_MATH1(exp, expf, std::exp)
TW_MATH1(exp2, exp2f, std::exp2)
TW_MATH1(log, logf, std::log)
TW_MATH1(log2, log2f, std::log2)
TW_MATH1(log10, log10f, std::log10)
TW_MATH1(log1p, log1pf, std::log1p)
TW_MATH1(expm1, expm1f, std::expm1)
TW_MATH1(sqrt, sqrtf, std::sqrt)
TW_MATH1(tanh, tanhf, std::tanh)
TW_MATH1(erf, erff, std::erf)
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

inline float exp10(float x) { return exp2f(x * 3.32192809488736234787f); }
inline double exp10(double x) { return std::pow(10.0, x); }
inline float rsqrt(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float rcp(float x) { return 1.0f / x; }
inline double rcp(double x) { return 1.0 / x; }
inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
template <typename T, typename std::enable_if<is_lowp<T>::value, int>::type = 0>
inline T exp10(T x) { return T(exp10((float)x)); }
template <typename T, typename std::enable_if<is_lowp<T>::value, int>::type = 0>
inline T rsqrt(T x) { return T(rsqrt((float)x)); }
template <typename T, typename std::enable_if<is_lowp<T>::value, int>::type = 0>
inline T rcp(T x) { return T(1.0f / (float)x); }
template <typename T, typename std::enable_if<is_lowp<T>::value, int>::type = 0>
inline T sigmoid(T x) { return T(sigmoid((float)x)); }

template <typename T> inline T abs(T x) {
  if constexpr (is_lowp<T>::value) return T(std::fabs((float)x));
  else if constexpr (std::is_floating_point<T>::value) return std::fabs(x);
  else if constexpr (std::is_unsigned<T>::value) return x;
  else return x < 0 ? (T)(-x) : x;
}

// max/min with IEEE-754 maxNum/minNum semantics for floats (a NaN operand is ignored), as on GPUs.
template <typename T> inline T max(T a, T b) {
  if constexpr (is_lowp<T>::value) return T(fmaxf((float)a, (float)b));
  else if constexpr (std::is_same<T, float>::value) return fmaxf(a, b);
  else if constexpr (std::is_same<T, double>::value) return std::fmax(a, b);
  else return a > b ? a : b;
}
template <typename T> inline T min(T a, T b) {
  if constexpr (is_lowp<T>::value) return T(fminf((float)a, (float)b));
  else if constexpr (std::is_same<T, float>::value) return fminf(a, b);
  else if constexpr (std::is_same<T, double>::value) return std::fmin(a, b);
  else return a < b ? a : b;
}

template <typename T> inline T pow(T a, T b) {
  if constexpr (std::is_same<T, double>::value) return std::pow(a, b);
  else if constexpr (std::is_integral<T>::value) return (T)std::pow((double)a, (double)b);
  else return T(powf((float)a, (float)b));
}
template <typename T> inline T fmod(T a, T b) {
  if constexpr (std::is_same<T, double>::value) return std::fmod(a, b);
  else if constexpr (std::is_integral<T>::value) return a % b;
  else return T(fmodf((float)a, (float)b));
}
template <typename T> inline T atan2(T a, T b) { return T(std::atan2((double)a, (double)b)); }
template <typename T> inline T hypot(T a, T b) { return T(std::hypot((double)a, (double)b)); }
template <typename T> inline T copysign(T a, T b) { return T(std::copysign((double)a, (double)b)); }

// Python-style integer division and modulo (round toward negative infinity).
template <typename T> inline T floordiv(T a, T b) {
  if constexpr (std::is_integral<T>::value) {
    T q = a / b;
    return (q * b != a && ((a < 0) != (b < 0))) ? (T)(q - 1) : q;
  } else {
    return T(std::floor((double)a / (double)b));
  }
}
template <typename T> inline T floormod(T a, T b) {
  if constexpr (std::is_integral<T>::value) {
    T r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? (T)(r + b) : r;
  } else {
    double r = std::fmod((double)a, (double)b);
    return T((r != 0 && ((r < 0) != ((double)b < 0))) ? r + (double)b : r);
  }
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

// Atomic add on any scalar type: compare-and-swap on the enclosing word.
template <typename T> inline void atomic_add(T* addr, T value) {
  if constexpr (std::is_integral<T>::value) {
    __atomic_fetch_add(addr, value, __ATOMIC_RELAXED);
  } else if constexpr (sizeof(T) == 4 || sizeof(T) == 8) {
    typedef typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type U;
    U* p = reinterpret_cast<U*>(addr);
    U old = __atomic_load_n(p, __ATOMIC_RELAXED), upd;
    do {
      T v = bitcast<T>(old) + value;
      upd = bitcast<U>(v);
    } while (!__atomic_compare_exchange_n(p, &old, upd, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  } else {  // 16-bit types: CAS on the aligned 32-bit word holding them
    uintptr_t a = reinterpret_cast<uintptr_t>(addr);
    uint32_t* word = reinterpret_cast<uint32_t*>(a & ~(uintptr_t)3);
    int shift = (int)((a & 2) * 8);
    uint32_t old = __atomic_load_n(word, __ATOMIC_RELAXED), upd;
    do {
      uint16_t cur = (uint16_t)(old >> shift);
      T v = T((float)bitcast<T>(cur) + (float)value);
      upd = (old & ~(0xffffu << shift)) | ((uint32_t)bitcast<uint16_t>(v) << shift);
    } while (!__atomic_compare_exchange_n(word, &old, upd, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  }
}

inline void* alloc_workspace(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  if (posix_memalign(&p, 64, (bytes + 63) / 64 * 64) != 0) return nullptr;
  return p;
}

inline double to_double(half x) { return (double)(float)x; }
inline double to_double(bf16 x) { return (double)(float)x; }
template <int E, int M, bool FN> inline double to_double(fp8<E, M, FN> x) { return (double)(float)x; }
template <typename T> inline double to_double(T x) { return (double)x; }

}  // namespace tw
