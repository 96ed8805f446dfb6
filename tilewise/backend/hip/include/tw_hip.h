// tilewise HIP runtime header for AMD CDNA GPUs (gfx90a, gfx942): the scalar types, math,
// integer helpers, atomics, barriers and wavefront shuffles the thread IR uses
// (docs/THREAD_IR.md). Included by every generated HIP kernel.
//
// It is compiled by clang's AMDGPU backend with -nogpuinc -nogpulib: no ROCm header and no device
// library (ocml / ockl) is available, so everything here is a clang builtin or plain C++. Math
// functions are those LLVM lowers to AMDGPU instructions on its own (expf, logf, sqrtf, ...);
// the renderer refuses the others (backend/hip/renderer.py, UNSUPPORTED_MATH) with a CompileError.
#pragma once

// no C library headers either: the fixed-width types from clang's predefined macros
typedef __INT8_TYPE__ int8_t;
typedef __INT16_TYPE__ int16_t;
typedef __INT32_TYPE__ int32_t;
typedef __INT64_TYPE__ int64_t;
typedef __UINT8_TYPE__ uint8_t;
typedef __UINT16_TYPE__ uint16_t;
typedef __UINT32_TYPE__ uint32_t;
typedef __UINT64_TYPE__ uint64_t;
typedef __UINTPTR_TYPE__ uintptr_t;

// HIP's spellings, which the ROCm headers would otherwise define, as the attributes clang knows.
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define __align__(n) __attribute__((aligned(n)))
// CUDA's (threads[, min blocks]): the workgroup size the register allocation may assume
#define __launch_bounds__(threads, ...) __attribute__((amdgpu_flat_work_group_size(1, threads)))

#define INFINITY __builtin_inff()
#define NAN __builtin_nanf("")

#define TW_DEV __device__ __attribute__((always_inline)) inline

namespace tw {

// ------------------------------------------------------------------ types
// clang's own half-precision types: _Float16 has gfx9 instructions; __bf16 converts from float
// rounding to nearest even (LLVM expands the conversion on gfx942, which has no bf16 cvt).
// Arithmetic happens in float: the renderer emits ((tw::half)((float)(a) + (float)(b))).
typedef _Float16 half;
typedef __bf16 bf16;

// tw-host-testable-begin (tests/ir/test_fnuz_dtypes.py compiles this on the host)
// AMD's fnuz float8 formats (float8_e4m3fnuz, float8_e5m2fnuz), the ones gfx942's fp8 MFMAs
// read: exponent bias 2^(E-1), no infinity, no negative zero, the one NaN 0x80. Stored as their
// bits; converted in integer arithmetic exactly as tw_cuda.h / tw_cpu.h do (round to nearest even,
// saturate past the largest finite value, NaN -> 0x80, a zero result is +0), so every target and
// the emulator (ml_dtypes) agree bit for bit. double rounds to float by round-to-odd first, which
// keeps the second rounding correct.
template <int E, int M> struct fnuz {
  uint8_t bits;
  fnuz() = default;
  TW_DEV fnuz(float f) : bits(encode(f)) {}
  TW_DEV fnuz(double d) : bits(encode(to_f32_odd(d))) {}
  TW_DEV fnuz(int v) : fnuz((float)v) {}
  TW_DEV fnuz(unsigned v) : fnuz((float)v) {}
  TW_DEV fnuz(long v) : fnuz((float)v) {}
  TW_DEV fnuz(unsigned long v) : fnuz((float)v) {}
  TW_DEV fnuz(long long v) : fnuz((float)v) {}
  TW_DEV fnuz(unsigned long long v) : fnuz((float)v) {}
  TW_DEV fnuz(short v) : fnuz((float)v) {}
  TW_DEV fnuz(unsigned short v) : fnuz((float)v) {}
  TW_DEV fnuz(signed char v) : fnuz((float)v) {}
  TW_DEV fnuz(unsigned char v) : fnuz((float)v) {}
  TW_DEV fnuz(char v) : fnuz((float)v) {}
  TW_DEV fnuz(bool v) : fnuz(v ? 1.0f : 0.0f) {}
  TW_DEV fnuz(half v) : fnuz((float)v) {}
  TW_DEV fnuz(bf16 v) : fnuz((float)v) {}
  TW_DEV operator float() const {
    if (bits == 0x80) return __builtin_nanf("");
    const uint32_t e = (bits >> M) & ((1u << E) - 1u), m = bits & ((1u << M) - 1u);
    uint32_t scale = (uint32_t)(127 + (int)(e ? e : 1u) - (1 << (E - 1)) - M) << 23;
    float s;
    __builtin_memcpy(&s, &scale, 4);
    const float v = (float)(e ? (m | (1u << M)) : m) * s;
    return (bits >> 7) ? -v : v;
  }
  static TW_DEV float to_f32_odd(double d) {
    float f = (float)d;
    if ((double)f != d && d == d) {  // inexact: take the neighbour with an odd last bit
      uint32_t u;
      __builtin_memcpy(&u, &f, 4);
      if (!(u & 1u)) u += (__builtin_fabs((double)f) > __builtin_fabs(d)) ? -1u : 1u;
      __builtin_memcpy(&f, &u, 4);
    }
    return f;
  }
  static TW_DEV uint8_t encode(float f) {
    uint32_t u;
    __builtin_memcpy(&u, &f, 4);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return 0x80;  // NaN
    const int k = (int)(a >> 23) - 127 + (1 << (E - 1)) - 1;  // the result's exponent field minus 1
    const int shift = 23 - M - (k < 0 ? k : 0);
    if (a < 0x00800000u || shift > 24) return 0;  // at most half the smallest subnormal: +0
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    const uint32_t rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
    uint32_t q = mant >> shift;
    q += (rem > halfway || (rem == halfway && (q & 1u))) ? 1u : 0u;
    uint32_t code = (k > 0 ? (uint32_t)k << M : 0u) + q;
    code = code > 0x7fu ? 0x7fu : code;  // saturate
    return (uint8_t)(code ? ((u >> 31) << 7) | code : 0u);
  }
};
typedef fnuz<4, 3> fp8_e4m3fnuz;
typedef fnuz<5, 2> fp8_e5m2fnuz;
// tw-host-testable-end
static_assert(sizeof(fp8_e4m3fnuz) == 1 && sizeof(fp8_e5m2fnuz) == 1, "fp8 types are their bits");

template <typename T> struct is_lowp { static constexpr bool value = false; };
template <> struct is_lowp<half> { static constexpr bool value = true; };
template <> struct is_lowp<bf16> { static constexpr bool value = true; };
template <> struct is_lowp<fp8_e4m3fnuz> { static constexpr bool value = true; };
template <> struct is_lowp<fp8_e5m2fnuz> { static constexpr bool value = true; };
template <bool C, typename T> struct enable_if {};
template <typename T> struct enable_if<true, T> { typedef T type; };

template <typename To, typename From> TW_DEV To bitcast(From x) {
  static_assert(sizeof(To) == sizeof(From), "reinterpret needs equal sizes");
  To y;
  __builtin_memcpy(&y, &x, sizeof(To));
  return y;
}

// ------------------------------------------------------------------ math
// float (and the 16-bit types, through float) map to the builtins LLVM expands into AMDGPU code:
// expf / exp2f / exp10f / logf / log2f / log10f use v_exp_f32 / v_log_f32 with LLVM's range
// reduction and denormal scaling (the accurate expansion, not the afn one).
#define TW_F32_MATH(name, fn)                                                                     \
  TW_DEV float name(float x) { return fn(x); }                                                    \
  template <typename T> TW_DEV typename enable_if<is_lowp<T>::value, T>::type name(T x) {        \
    return T(fn((float)x));                                                                       \
  }
TW_F32_MATH(exp, __builtin_expf) TW_F32_MATH(exp2, __builtin_exp2f) TW_F32_MATH(exp10, __builtin_exp10f)
TW_F32_MATH(log, __builtin_logf) TW_F32_MATH(log2, __builtin_log2f) TW_F32_MATH(log10, __builtin_log10f)
// T.__exp and the other fast-math intrinsics: the accurate expansions (no approximate variant here)
TW_F32_MATH(fast_exp, __builtin_expf) TW_F32_MATH(fast_exp10, __builtin_exp10f)
TW_F32_MATH(fast_log, __builtin_logf) TW_F32_MATH(fast_log2, __builtin_log2f) TW_F32_MATH(fast_log10, __builtin_log10f)
#undef TW_F32_MATH

// These lower to single instructions (or short exact sequences) for float and double alike.
#define TW_ANY_MATH(name, ffn, dfn)                                                               \
  TW_DEV float name(float x) { return ffn(x); }                                                   \
  TW_DEV double name(double x) { return dfn(x); }                                                 \
  template <typename T> TW_DEV typename enable_if<is_lowp<T>::value, T>::type name(T x) {        \
    return T(ffn((float)x));                                                                      \
  }
TW_ANY_MATH(sqrt, __builtin_sqrtf, __builtin_sqrt) TW_ANY_MATH(floor, __builtin_floorf, __builtin_floor)
TW_ANY_MATH(ceil, __builtin_ceilf, __builtin_ceil) TW_ANY_MATH(trunc, __builtin_truncf, __builtin_trunc)
TW_ANY_MATH(round, __builtin_roundf, __builtin_round) TW_ANY_MATH(nearbyint, __builtin_rintf, __builtin_rint)
#undef TW_ANY_MATH

TW_DEV float rsqrt(float x) { return 1.0f / __builtin_sqrtf(x); }
TW_DEV double rsqrt(double x) { return 1.0 / __builtin_sqrt(x); }
TW_DEV float rcp(float x) { return 1.0f / x; }
TW_DEV double rcp(double x) { return 1.0 / x; }
TW_DEV float fast_rcp(float x) { return __builtin_amdgcn_rcpf(x); }  // v_rcp_f32: 1 ulp
TW_DEV float sigmoid(float x) { return 1.0f / (1.0f + __builtin_expf(-x)); }
// tanh from exp: 1 - 2 / (e^2|x| + 1) loses the relative precision of small |x| to cancellation,
// so below 0.125 the odd Taylor polynomial (terms to x^9: the next is under 2^-30 relative).
TW_DEV float tanh(float x) {
  const float a = __builtin_fabsf(x);
  float r;
  if (a < 0.125f) {
    const float s = a * a;
    r = a * (1.0f + s * (-1.0f / 3 + s * (2.0f / 15 + s * (-17.0f / 315 + s * (62.0f / 2835)))));
  } else {
    r = 1.0f - 2.0f / (__builtin_expf(2.0f * a) + 1.0f);
  }
  return __builtin_copysignf(r, x);
}
template <typename T> TW_DEV typename enable_if<is_lowp<T>::value, T>::type rsqrt(T x) { return T(rsqrt((float)x)); }
template <typename T> TW_DEV typename enable_if<is_lowp<T>::value, T>::type rcp(T x) { return T(1.0f / (float)x); }
template <typename T> TW_DEV typename enable_if<is_lowp<T>::value, T>::type sigmoid(T x) { return T(sigmoid((float)x)); }
template <typename T> TW_DEV typename enable_if<is_lowp<T>::value, T>::type tanh(T x) { return T(tanh((float)x)); }

// abs, max and min: floats follow fabs / fmax / fmin (a NaN operand is ignored), integers compare.
// fmax / fmin compile to v_max_f32 / v_min_f32, which order -0 below +0 as PTX max.f32 does.
template <typename T> TW_DEV T abs(T x) {
  if constexpr (is_lowp<T>::value) return T(__builtin_fabsf((float)x));
  else if constexpr ((T)-1 > (T)0) return x;
  else return x < (T)0 ? (T)(-x) : x;
}
TW_DEV float abs(float x) { return __builtin_fabsf(x); }
TW_DEV double abs(double x) { return __builtin_fabs(x); }
template <typename T> TW_DEV T max(T a, T b) {
  if constexpr (is_lowp<T>::value) return T(__builtin_fmaxf((float)a, (float)b));
  else return a > b ? a : b;
}
template <typename T> TW_DEV T min(T a, T b) {
  if constexpr (is_lowp<T>::value) return T(__builtin_fminf((float)a, (float)b));
  else return a < b ? a : b;
}
TW_DEV float max(float a, float b) { return __builtin_fmaxf(a, b); }
TW_DEV float min(float a, float b) { return __builtin_fminf(a, b); }
TW_DEV double max(double a, double b) { return __builtin_fmax(a, b); }
TW_DEV double min(double a, double b) { return __builtin_fmin(a, b); }

TW_DEV float fmod(float a, float b) { return __builtin_fmodf(a, b); }
TW_DEV double fmod(double a, double b) { return __builtin_fmod(a, b); }
TW_DEV float copysign(float a, float b) { return __builtin_copysignf(a, b); }
TW_DEV double copysign(double a, double b) { return __builtin_copysign(a, b); }
// c + the dot product of the four signed bytes packed in a and b (v_dot4c_i32_i8, wrapping)
TW_DEV int32_t dp4a(int32_t a, int32_t b, int32_t c) { return __builtin_amdgcn_sdot4(a, b, c, false); }
TW_DEV float fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
TW_DEV double fma(double a, double b, double c) { return __builtin_fma(a, b, c); }
template <typename T> TW_DEV T ldexp(T x, int32_t e) {
  if constexpr (sizeof(T) == 8) return __builtin_ldexp(x, e);
  else return T(__builtin_ldexpf((float)x, e));
}
template <typename T> TW_DEV bool isnan(T x) { return (double)x != (double)x; }
template <typename T> TW_DEV bool isinf(T x) { return __builtin_fabs((double)x) == __builtin_inf(); }
template <typename T> TW_DEV bool isfinite(T x) { return __builtin_fabs((double)x) < __builtin_inf(); }
template <typename T> TW_DEV T popcount(T x) {
  if constexpr (sizeof(T) == 8) return (T)__builtin_popcountll((unsigned long long)x);
  else return (T)__builtin_popcount((unsigned)x & (0xffffffffu >> (32 - 8 * sizeof(T))));
}
template <typename T> TW_DEV T clz(T x) {  // clz(0) is the operand's width
  constexpr int bits = 8 * sizeof(T);
  const unsigned long long u = (unsigned long long)x & (~0ull >> (64 - bits));
  return (T)(u ? __builtin_clzll(u) - (64 - bits) : bits);
}

// ------------------------------------------------------------------ integer semantics
// As on the other targets (the CPU backend's values): x / 0 = -1, x % 0 = x, the most negative
// value / -1 wraps; float -> integer truncates and saturates, NaN gives 0; shift counts outside
// [0, width) give 0 (or the sign fill).
template <typename T> TW_DEV constexpr bool signed_int() { return (T)-1 < (T)0; }
template <typename T> TW_DEV T truncdiv(T a, T b) {
  return b == (T)0 ? (T)-1 : (signed_int<T>() && b == (T)-1) ? (T)(0ull - (unsigned long long)a) : (T)(a / b);
}
template <typename T> TW_DEV T truncmod(T a, T b) {
  return b == (T)0 ? a : (signed_int<T>() && b == (T)-1) ? (T)0 : (T)(a % b);
}
TW_DEV float floordiv(float a, float b) { return __builtin_floorf(a / b); }
TW_DEV double floordiv(double a, double b) { return __builtin_floor(a / b); }
template <typename F> TW_DEV F float_floormod(F a, F b) {
  const F r = __builtin_fmod(a, b);
  return (r != (F)0 && ((r < (F)0) != (b < (F)0))) ? r + b : r;
}
TW_DEV float floormod(float a, float b) { return float_floormod<float>(a, b); }
TW_DEV double floormod(double a, double b) { return float_floormod<double>(a, b); }
template <typename T> TW_DEV T floordiv(T a, T b) {
  if constexpr (is_lowp<T>::value) return T(floordiv((float)a, (float)b));
  else {
    const T q = truncdiv(a, b);
    const bool exact = b == (T)0 || (signed_int<T>() && b == (T)-1) || q * b == a;
    return (!exact && ((a < (T)0) != (b < (T)0))) ? (T)(q - 1) : q;
  }
}
template <typename T> TW_DEV T floormod(T a, T b) {
  if constexpr (is_lowp<T>::value) return T(floormod((float)a, (float)b));
  else {
    const T r = truncmod(a, b);
    const bool fix = b != (T)0 && !(signed_int<T>() && b == (T)-1) && r != (T)0 && ((r < (T)0) != (b < (T)0));
    return fix ? (T)(r + b) : r;
  }
}
template <typename I, typename F> TW_DEV I to_int(F x) {
  constexpr bool s = (I)-1 < (I)0;
  constexpr double top = 2.0 * (double)(1ull << (sizeof(I) * 8 - (s ? 2 : 1)));  // max + 1
  const double d = (double)x;
  if (!(d == d)) return (I)0;
  if (d >= top) return s ? (I)(~0ull >> (65 - sizeof(I) * 8)) : (I)~0ull;
  if (d <= (s ? -top - 1.0 : -1.0)) return s ? (I)(-(long long)(~0ull >> (65 - sizeof(I) * 8)) - 1) : (I)0;
  return (I)d;
}
template <typename T> TW_DEV T shl(T a, T b) {
  return (unsigned long long)b < sizeof(T) * 8 ? (T)((unsigned long long)a << (unsigned long long)b) : (T)0;
}
template <typename T> TW_DEV T shr(T a, T b) {
  return (unsigned long long)b < sizeof(T) * 8 ? (T)(a >> b) : (T)(a < (T)0 ? (T)-1 : (T)0);
}

// T.device_assert: without the device library there is no printf; a failed check ends the
// kernel with s_trap (the host sees the launch fail). The message is in the source.
TW_DEV void device_assert(bool cond, const char*) {
  if (!cond) __builtin_trap();
}

// ------------------------------------------------------------------ barriers
// __syncthreads as HIP defines it: LDS and global writes made visible to the workgroup, s_barrier,
// and the acquire side so that later reads are not moved above the barrier.
TW_DEV void syncthreads() {
  __builtin_amdgcn_fence(__ATOMIC_RELEASE, "workgroup");
  __builtin_amdgcn_s_barrier();
  __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "workgroup");
}
// A wavefront executes in lockstep: only the compiler's ordering of memory accesses is needed.
TW_DEV void syncwarp() {
  __builtin_amdgcn_fence(__ATOMIC_RELEASE, "wavefront");
  __builtin_amdgcn_wave_barrier();
  __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "wavefront");
}

// ------------------------------------------------------------------ atomics
// Natively: integer add / max / min / or and float / double add (global_atomic_* instructions);
// everything else is a compare-and-swap loop on the raw bits of the aligned 32- or 64-bit word
// holding the value (so a NaN cannot make it spin). Agent (device) scope, relaxed, like CUDA's.
#define TW_SCOPE __HIP_MEMORY_SCOPE_AGENT
enum class Op { add, max, min, bor };
template <Op O, typename T> TW_DEV T combine(T a, T b) {
  if constexpr (O == Op::add) return is_lowp<T>::value ? T((float)a + (float)b) : (T)(a + b);
  else if constexpr (O == Op::max) return max(a, b);
  else if constexpr (O == Op::min) return min(a, b);
  else return (T)(a | b);
}
template <Op O, typename T> TW_DEV T atomic_cas(T* addr, T v) {
  if constexpr (sizeof(T) == 8) {
    uint64_t* p = reinterpret_cast<uint64_t*>(addr);
    uint64_t old = __hip_atomic_load(p, __ATOMIC_RELAXED, TW_SCOPE), want;
    do {
      want = bitcast<uint64_t>(combine<O>(bitcast<T>(old), v));
    } while (!__hip_atomic_compare_exchange_strong(p, &old, want, __ATOMIC_RELAXED, __ATOMIC_RELAXED, TW_SCOPE));
    return bitcast<T>(old);
  } else {
    static_assert(sizeof(T) <= 4, "atomics take 1, 2, 4 or 8-byte values");
    const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
    uint32_t* word = reinterpret_cast<uint32_t*>(a & ~(uintptr_t)3);
    const int shift = (int)((a & 3) * 8);  // little-endian: the value's bytes start at a & 3
    const uint32_t mask = sizeof(T) == 4 ? ~0u : ((1u << (8 * sizeof(T))) - 1u) << shift;
    uint32_t old = __hip_atomic_load(word, __ATOMIC_RELAXED, TW_SCOPE), want;
    T cur;
    do {
      const uint32_t raw = old >> shift;
      __builtin_memcpy(&cur, &raw, sizeof(T));
      const T upd = combine<O>(cur, v);
      uint32_t ub = 0;
      __builtin_memcpy(&ub, &upd, sizeof(T));
      want = (old & ~mask) | (((uint32_t)ub << shift) & mask);
    } while (!__hip_atomic_compare_exchange_strong(word, &old, want, __ATOMIC_RELAXED, __ATOMIC_RELAXED, TW_SCOPE));
    return cur;
  }
}
template <typename T> struct native_rmw {  // types global_atomic_{add,max,min,or} take directly
  static constexpr bool ints = sizeof(T) >= 4 && !is_lowp<T>::value && (T)0.5 == (T)0;
};
template <typename T> TW_DEV T atomic_add(T* p, T v) {
  if constexpr (native_rmw<T>::ints || sizeof(T) >= 4) return __hip_atomic_fetch_add(p, v, __ATOMIC_RELAXED, TW_SCOPE);
  else return atomic_cas<Op::add>(p, v);
}
template <typename T> TW_DEV T atomic_max(T* p, T v) {
  if constexpr (native_rmw<T>::ints) return __hip_atomic_fetch_max(p, v, __ATOMIC_RELAXED, TW_SCOPE);
  else return atomic_cas<Op::max>(p, v);
}
template <typename T> TW_DEV T atomic_min(T* p, T v) {
  if constexpr (native_rmw<T>::ints) return __hip_atomic_fetch_min(p, v, __ATOMIC_RELAXED, TW_SCOPE);
  else return atomic_cas<Op::min>(p, v);
}
template <typename T> TW_DEV T atomic_or(T* p, T v) {
  if constexpr (native_rmw<T>::ints) return __hip_atomic_fetch_or(p, v, __ATOMIC_RELAXED, TW_SCOPE);
  else return atomic_cas<Op::bor>(p, v);
}
// T.atomic_load / T.atomic_store with TileLang's memory-order numbers (0 relaxed, else ordered:
// sequentially consistent, the strongest, at device scope).
template <int Bytes> struct uint_of;
template <> struct uint_of<4> { typedef uint32_t type; };
template <> struct uint_of<8> { typedef uint64_t type; };
template <typename T> TW_DEV T atomic_load(const T* p, int order) {
  if constexpr (sizeof(T) == 8 || sizeof(T) == 4) {
    typedef typename uint_of<sizeof(T)>::type U;
    const U* q = reinterpret_cast<const U*>(p);
    return bitcast<T>(order ? __hip_atomic_load(q, __ATOMIC_SEQ_CST, TW_SCOPE) : __hip_atomic_load(q, __ATOMIC_RELAXED, TW_SCOPE));
  } else {
    if (order) __builtin_amdgcn_fence(__ATOMIC_SEQ_CST, "agent");
    const T v = *reinterpret_cast<const volatile T*>(p);
    if (order) __builtin_amdgcn_fence(__ATOMIC_SEQ_CST, "agent");
    return v;
  }
}
template <typename T> TW_DEV void atomic_store(T* p, T v, int order) {
  if constexpr (sizeof(T) == 8 || sizeof(T) == 4) {
    typedef typename uint_of<sizeof(T)>::type U;
    U* q = reinterpret_cast<U*>(p);
    if (order) __hip_atomic_store(q, bitcast<U>(v), __ATOMIC_SEQ_CST, TW_SCOPE);
    else __hip_atomic_store(q, bitcast<U>(v), __ATOMIC_RELAXED, TW_SCOPE);
  } else {
    if (order) __builtin_amdgcn_fence(__ATOMIC_SEQ_CST, "agent");
    *reinterpret_cast<volatile T*>(p) = v;
    if (order) __builtin_amdgcn_fence(__ATOMIC_SEQ_CST, "agent");
  }
}

// ------------------------------------------------------------------ vector memory
// One vector move of Bytes bytes (both addresses aligned to Bytes): global_load_dwordx4 /
// ds_write_b128 and their narrower forms.
typedef uint32_t u32x2 __attribute__((ext_vector_type(2)));
typedef uint32_t u32x4 __attribute__((ext_vector_type(4)));
template <int Bytes> struct vec_word;
template <> struct vec_word<1> { typedef uint8_t type; };
template <> struct vec_word<2> { typedef uint16_t type; };
template <> struct vec_word<4> { typedef uint32_t type; };
template <> struct vec_word<8> { typedef u32x2 type; };
template <> struct vec_word<16> { typedef u32x4 type; };
template <int Bytes> TW_DEV void copy_vec(void* dst, const void* src) {
  typedef typename vec_word<Bytes>::type W;
  *reinterpret_cast<W*>(dst) = *reinterpret_cast<const W*>(src);
}
// One vector store of the N values (type T) into N consecutive elements at dst (aligned to their
// N * sizeof(T) bytes): the values are gathered in a register array (SROA keeps it in VGPRs).
template <class T, class... V> TW_DEV void store_vec(void* dst, V... vals) {
  constexpr int B = int(sizeof(T)) * int(sizeof...(V));
  const T v[sizeof...(V)] = {static_cast<T>(vals)...};
  typename vec_word<B>::type w;
  __builtin_memcpy(&w, v, B);
  *reinterpret_cast<typename vec_word<B>::type*>(dst) = w;
}

// ------------------------------------------------------------------ wavefront shuffles
// CUDA's __shfl_*_sync(width) over a 64-lane wavefront (HIP's __shfl_* definitions): lanes form
// segments of `width`; a source outside the lane's own segment (xor above it, down past its end,
// up before its start) gives the lane its own value; shfl_idx reads lane src mod width of the
// segment. The value moves through ds_bpermute_b32 (LDS hardware, no LDS memory), 32 bits at a
// time, or for constant butterfly masks below 32 through DPP / ds_swizzle (shfl_xor_const).
TW_DEV int32_t lane_id() { return (int32_t)__builtin_amdgcn_mbcnt_hi(~0u, __builtin_amdgcn_mbcnt_lo(~0u, 0u)); }
// Applies a 32-bit lane move `op` to a value of any size up to 8 bytes: 8- and 16-bit values
// travel in the low bits of a dword, 64-bit ones as two dwords.
template <typename T, typename Op> TW_DEV T by_dwords(T v, Op op) {
  if constexpr (sizeof(T) == 8) {
    const uint64_t u = bitcast<uint64_t>(v);
    const uint32_t lo = (uint32_t)op((int)(uint32_t)u), hi = (uint32_t)op((int)(uint32_t)(u >> 32));
    return bitcast<T>(((uint64_t)hi << 32) | lo);
  } else {
    static_assert(sizeof(T) <= 4, "shuffles move 1, 2, 4 or 8-byte values");
    uint32_t bits = 0;
    __builtin_memcpy(&bits, &v, sizeof(T));
    const uint32_t got = (uint32_t)op((int)bits);
    T out;
    __builtin_memcpy(&out, &got, sizeof(T));
    return out;
  }
}
struct bpermute_op {  // ds_bpermute_b32: lane i reads lane src(i) (address bits 7:2)
  int32_t src;
  TW_DEV int operator()(int x) const { return __builtin_amdgcn_ds_bpermute(src << 2, x); }
};
template <typename T> TW_DEV T bpermute(T v, int32_t src) { return by_dwords(v, bpermute_op{src}); }
// A butterfly with a constant mask below 32 stays inside each half-wavefront: DPP's quad
// permutations for masks 1 and 2 (quad_perm [1,0,3,2] = 0xb1 and [2,3,0,1] = 0x4e, a modifier of
// the consuming instruction, no LDS hardware), ds_swizzle_b32's bit mode (offset = and 0x1f |
// xor mask << 10, within 32 lanes; no address register) for 4, 8 and 16 (CDNA3 ISA, "DS_SWIZZLE_B32"
// and "DPP"). The renderer uses it when the mask is a constant smaller than the width.
template <int Mask> struct xor_op {
  TW_DEV int operator()(int x) const {
    static_assert(Mask > 0 && Mask < 32 && (Mask & (Mask - 1)) == 0, "a power-of-two mask below 32");
    if constexpr (Mask == 1) return __builtin_amdgcn_update_dpp(0, x, 0xb1, 0xf, 0xf, false);
    else if constexpr (Mask == 2) return __builtin_amdgcn_update_dpp(0, x, 0x4e, 0xf, 0xf, false);
    else return __builtin_amdgcn_ds_swizzle(x, 0x1f | (Mask << 10));
  }
};
template <int Mask, typename T> TW_DEV T shfl_xor_const(T v) { return by_dwords(v, xor_op<Mask>{}); }
template <typename T> TW_DEV T shfl_xor(T v, int32_t mask, int32_t width = 64) {
  const int32_t self = lane_id(), src = self ^ mask;
  return bpermute(v, src >= ((self + width) & ~(width - 1)) ? self : src);
}
template <typename T> TW_DEV T shfl_down(T v, int32_t delta, int32_t width = 64) {
  const int32_t self = lane_id();
  return bpermute(v, (self & (width - 1)) + delta >= width ? self : self + delta);
}
template <typename T> TW_DEV T shfl_up(T v, int32_t delta, int32_t width = 64) {
  const int32_t self = lane_id();
  return bpermute(v, self - delta < (self & ~(width - 1)) ? self : self - delta);
}
template <typename T> TW_DEV T shfl_idx(T v, int32_t src, int32_t width = 64) {
  const int32_t self = lane_id();
  return bpermute(v, (self & ~(width - 1)) + (src & (width - 1)));
}

// T.cast(x, "float16" / "bfloat16", round="rs", rbits=r): stochastic rounding as PTX cvt.rs
// defines it (sm_100a+ hardware; computed here in software): the result rounds away from zero when adding
// the random bits to the bits the conversion discards carries out, toward zero otherwise. The
// random bits are those TileLang's scalar cast gives the instruction: the low 13 (float16) or 16
// (bfloat16) bits of r. Results below the normal range take the top discarded bits (the PTX ISA
// leaves that case unstated). .satfinite, as TileLang requires: beyond the largest finite value
// (infinities too) the result is that value with the sign; NaN converts as a plain cast does.
// The same rule as tilewise/ir/stochastic_round.py, which the emulator runs.
template <int M, int NB, int EMIN> TW_DEV float stochastic_round(float x, uint32_t r, float max_finite) {
  if (!(x == x)) return x;
  const float a = __builtin_fabsf(x);
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
  static TW_DEV half cvt(float x, uint32_t r) { return half(stochastic_round<10, 13, -14>(x, r, 65504.0f)); }
};
template <> struct rs_format<bf16> {
  static TW_DEV bf16 cvt(float x, uint32_t r) {
    return bf16(stochastic_round<7, 16, -126>(x, r, 3.38953138925153547590470800371487866880e+38f));
  }
};
template <typename T> TW_DEV T cvt_rs(float x, uint32_t r) { return rs_format<T>::cvt(x, r); }

}  // namespace tw

// T.gemm's matrix instructions (MFMA), in their own header
#include "tw_mfma.h"
#include "tw_hip_math.h"  // the math clang cannot lower by itself (sin, erf, pow, double exp ...)

// T.rng_*: the Philox4x32-10 generator shared with the CUDA header (backend/include/tw_philox.h,
// which says what these are). clang compiles with -ffp-contract=off: plain float and double
// arithmetic rounds each operation to nearest, as CUDA's __fmul_rn / __fadd_rn do.
namespace tw {
TW_DEV uint32_t rng_mulhi(uint32_t a, uint32_t b) { return (uint32_t)(((uint64_t)a * b) >> 32); }
TW_DEV float rng_fmul(float a, float b) { return a * b; }
TW_DEV float rng_fadd(float a, float b) { return a + b; }
TW_DEV double rng_dmul(double a, double b) { return a * b; }
TW_DEV double rng_dadd(double a, double b) { return a + b; }
TW_DEV float rng_u2f(uint32_t x) { return (float)x; }
TW_DEV uint32_t rng_f_as_u(float x) { return bitcast<uint32_t>(x); }
TW_DEV float rng_u_as_f(uint32_t x) { return bitcast<float>(x); }
TW_DEV double rng_d_from_words(uint32_t hi, uint32_t lo) { return bitcast<double>(((uint64_t)hi << 32) | lo); }
TW_DEV uint32_t rng_d_lo(double x) { return (uint32_t)bitcast<uint64_t>(x); }
TW_DEV uint32_t rng_d_hi(double x) { return (uint32_t)(bitcast<uint64_t>(x) >> 32); }
TW_DEV float rng_logf(float x) { return __builtin_logf(x); }
TW_DEV float rng_sqrtf(float x) { return __builtin_sqrtf(x); }
TW_DEV float rng_sinpif(float x) { return (float)hm::sincospi(x, false); }
TW_DEV float rng_cospif(float x) { return (float)hm::sincospi(x, true); }
TW_DEV double rng_log(double x) { return hm::log(x); }
TW_DEV double rng_sqrt(double x) { return __builtin_sqrt(x); }
TW_DEV double rng_sinpi(double x) { return hm::sincospi(x, false); }
TW_DEV double rng_cospi(double x) { return hm::sincospi(x, true); }
}  // namespace tw
#include "tw_philox.h"

#ifdef TW_GRID_SYNC
// T.sync_grid: a barrier of every thread of every workgroup of a cooperative launch
// (hipModuleLaunchCooperativeKernel, after the launcher checks that all workgroups are resident).
// Every thread releases its writes to the device (agent scope: on MI300X this writes back what the
// L2 of its XCD holds for others), the workgroup meets at s_barrier, and one work-item arrives on
// a module-wide counter; the last to arrive resets it and advances the generation the others
// wait on (sleeping between polls). Then every thread acquires at agent scope (its caches drop
// what other workgroups may have changed). The counters are zero at module load and back at
// zero arrivals after every barrier. (Defined only where a kernel uses it: the renderer defines
// TW_GRID_SYNC.)
namespace tw {
__device__ uint32_t grid_barrier_state[2];  // [0] arrivals, [1] generation

// workgroups in the launch, from the dispatch packet (hsa_kernel_dispatch_packet_t: workgroup
// sizes as uint16 at bytes 4, 6, 8; grid sizes in work-items as uint32 at bytes 12, 16, 20)
TW_DEV uint32_t workgroups_in_grid() {
  const uint8_t* packet = (const uint8_t*)__builtin_amdgcn_dispatch_ptr();
  uint32_t n = 1;
#pragma unroll
  for (int d = 0; d < 3; ++d) {
    const uint32_t size = *(const uint16_t*)(packet + 4 + 2 * d);
    const uint32_t grid = *(const uint32_t*)(packet + 12 + 4 * d);
    n *= (grid + size - 1) / size;
  }
  return n;
}

TW_DEV void grid_sync() {
  __builtin_amdgcn_fence(__ATOMIC_RELEASE, "agent");
  syncthreads();
  if (__builtin_amdgcn_workitem_id_x() == 0 && __builtin_amdgcn_workitem_id_y() == 0 &&
      __builtin_amdgcn_workitem_id_z() == 0) {
    // read before arriving (the arrival's release orders it first): it cannot advance without us
    const uint32_t seen = __hip_atomic_load(&grid_barrier_state[1], __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT);
    const uint32_t blocks = workgroups_in_grid();
    if (__hip_atomic_fetch_add(&grid_barrier_state[0], 1u, __ATOMIC_ACQ_REL, __HIP_MEMORY_SCOPE_AGENT) == blocks - 1) {
      __hip_atomic_store(&grid_barrier_state[0], 0u, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT);
      __hip_atomic_fetch_add(&grid_barrier_state[1], 1u, __ATOMIC_RELEASE, __HIP_MEMORY_SCOPE_AGENT);
    } else {
      while (__hip_atomic_load(&grid_barrier_state[1], __ATOMIC_ACQUIRE, __HIP_MEMORY_SCOPE_AGENT) == seen) {
        __builtin_amdgcn_s_sleep(2);
      }
    }
  }
  syncthreads();
  __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "agent");
}
}  // namespace tw
#endif
