// tilewise CUDA runtime header: scalar types, math, integer helpers, atomics and the warp-level
// intrinsics of the thread IR (docs/THREAD_IR.md). Included by every generated CUDA kernel.
// Device functions only; everything is __forceinline__ so that the register arrays passed by
// address to ldmatrix / mma stay in registers.
//
// It includes no CUDA header: parsing cuda_fp16.h, cuda_bf16.h and cuda_fp8.h cost NVRTC 60-150 ms
// per kernel, about five times this whole header. The low-precision types are our own structs
// holding the bits, converted through float with inline PTX; everything else (math, atomics,
// shuffles, printf, memcpy) is built into NVRTC. Overloads for the low-precision types are
// templates, which NVRTC only analyses when a kernel uses them.
#pragma once

#ifdef __CUDACC_RTC__
// NVRTC ships no C++ standard headers.
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long long int64_t;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef unsigned long long uintptr_t;
// glibc's <sys/types.h> names, which nvcc's host headers bring into CUDA sources written for it
// (TileLang's lop3 decoders in T.import_source use `uint`)
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
#else
#include <cstdint>
#include <cstdio>
#endif

#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif

#define TW_DEV __device__ __forceinline__

// The driver's TMA tensor map (cuda.h's CUtensorMap, which NVRTC would have to parse all of cuda.h
// for): 128 opaque bytes, 64-byte aligned, passed as a `const __grid_constant__` kernel parameter.
#ifndef __cuda_cuda_h__
typedef struct alignas(64) CUtensorMap_st {
  unsigned long long opaque[16];
} CUtensorMap;
#endif

namespace tw {

// ------------------------------------------------------------------ low-precision conversions
// All conversions round to nearest even. float16 and bfloat16 overflow to infinity; float8
// saturates to the largest finite value (inf included), as cvt.rn.satfinite does and as
// cuda_fp8.h's __nv_fp8_e4m3 / __nv_fp8_e5m2 constructors did; a NaN becomes 0x7f.
namespace cvt {

TW_DEV uint16_t f32_to_f16(float f) {
  uint16_t h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
TW_DEV float f16_to_f32(uint16_t h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
TW_DEV uint16_t f64_to_f16(double d) {
  uint16_t h;
  asm("cvt.rn.f16.f64 %0, %1;" : "=h"(h) : "d"(d));
  return h;
}

// tw-host-testable-begin: below __CUDA_ARCH__ 800 / 890 the code is plain C++ (save the
// intrinsics __float_as_uint, __uint_as_float, __int_as_float, __double2float_rz and f16_to_f32),
// which tests/test_cuda_header.py compiles on the host and checks against exact references.

// double -> float rounded to odd: truncate, then set the last bit if anything was cut off. A
// format at least two bits narrower than float rounds that value to nearest even exactly as it
// would round the double itself (no double rounding), so f64 -> bf16 / fp8 need no f64 paths.
TW_DEV float f64_to_f32_odd(double d) {
  const float f = __double2float_rz(d);
  uint32_t u = __float_as_uint(f);
  if ((double)f != d && (u & 0x7fffffffu) < 0x7f800000u) u |= 1u;
  return __uint_as_float(u);
}

TW_DEV uint16_t f32_to_bf16(float f) {
#if __CUDA_ARCH__ >= 800
  uint16_t b;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(b) : "f"(f));
  return b;
#else
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
#endif
}
// bfloat16 is the top half of a float.
TW_DEV float bf16_to_f32(uint16_t b) { return __uint_as_float((uint32_t)b << 16); }

// float -> float8 with M mantissa bits, exponent bias Bias and largest finite code MaxCode, in
// integer arithmetic: GPUs before sm_89 have no float8 cvt.
template <int M, int Bias, uint32_t MaxCode> TW_DEV uint8_t f32_to_fp8_sw(float f) {
  const uint32_t u = __float_as_uint(f);
  const uint32_t sign = (u >> 24) & 0x80u;
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return 0x7f;
  const int k = (int)(a >> 23) - 127 + Bias - 1;  // the result's exponent field minus 1; < 0: subnormal
  const int shift = 23 - M - (k < 0 ? k : 0);     // float significand bits to drop
  if (a < 0x00800000u || shift > 24) return (uint8_t)sign;  // at most half the smallest subnormal
  const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
  const uint32_t rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
  uint32_t q = mant >> shift;  // includes the implicit bit, which adds 1 to the exponent field
  q += (rem > halfway || (rem == halfway && (q & 1u))) ? 1u : 0u;
  const uint32_t code = (k > 0 ? (uint32_t)k << M : 0u) + q;  // a carry out of q moves into the exponent
  return (uint8_t)(sign | (code > MaxCode ? MaxCode : code));
}

TW_DEV uint8_t f32_to_e4m3(float f) {
#if __CUDA_ARCH__ >= 890
  uint16_t r;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(0.0f), "f"(f));  // f -> the low byte
  return (uint8_t)r;
#else
  return f32_to_fp8_sw<3, 7, 0x7eu>(f);
#endif
}
TW_DEV uint8_t f32_to_e5m2(float f) {
#if __CUDA_ARCH__ >= 890
  uint16_t r;
  asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(r) : "f"(0.0f), "f"(f));
  return (uint8_t)r;
#else
  return f32_to_fp8_sw<2, 15, 0x7bu>(f);
#endif
}

TW_DEV float e4m3_to_f32(uint8_t b) {
#if __CUDA_ARCH__ >= 890
  float f;
  asm("{\n\t.reg .b32 tw_p;\n\t.reg .b16 tw_lo, tw_hi;\n\tcvt.rn.f16x2.e4m3x2 tw_p, %1;\n\t"
      "mov.b32 {tw_lo, tw_hi}, tw_p;\n\tcvt.f32.f16 %0, tw_lo;\n\t}"
      : "=f"(f)
      : "h"((uint16_t)b));
  return f;
#else
  // e4m3's fields placed in float16's are the value times 2^-8, subnormals included; 0x7f is NaN
  if ((b & 0x7f) == 0x7f) return __int_as_float(0x7fffffff);
  return f16_to_f32((uint16_t)(((b & 0x80) << 8) | ((b & 0x7f) << 7))) * 256.0f;
#endif
}
// e5m2 is the top byte of a float16 (same exponent width and bias): exact on every architecture.
TW_DEV float e5m2_to_f32(uint8_t b) { return f16_to_f32((uint16_t)(b << 8)); }

TW_DEV uint16_t f64_to_bf16(double d) { return f32_to_bf16(f64_to_f32_odd(d)); }
TW_DEV uint8_t f64_to_e4m3(double d) { return f32_to_e4m3(f64_to_f32_odd(d)); }
TW_DEV uint8_t f64_to_e5m2(double d) { return f32_to_e5m2(f64_to_f32_odd(d)); }
// The OCP microscaling (MX) types, in integer arithmetic on every architecture (the sm_100 cvt
// forms are not used), bit-identical to ml_dtypes. fp4 (e2m1) and fp6 (e2m3, e3m2) are stored one
// value per byte in the low 1+E+M bits and have no infinity or NaN: from float they round to
// nearest even, saturate past the largest finite value (infinities included), and a NaN becomes a
// zero of the opposite sign (ml_dtypes' choice; OCP leaves it open); any bit set above the value's
// reads as its sign. e8m0 is an unsigned power of
// two 2^(code-127), code 0xff NaN: a float rounds to the nearer power with ties upward (mantissa
// >= 1.5 goes up, as ml_dtypes does); zero, negatives, infinities, NaN and values rounding past
// 2^127 give NaN; values below 2^-127 give 2^-127.
template <int E, int M> TW_DEV uint8_t f32_to_mxfp(float f) {
  const uint32_t u = __float_as_uint(f);
  const uint32_t sign = (u >> 31) << (E + M);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint8_t)(sign ^ (1u << (E + M)));  // NaN: a zero of the other sign
  const int k = (int)(a >> 23) - 127 + (1 << (E - 1)) - 2;  // the result's exponent field minus 1
  const int shift = 23 - M - (k < 0 ? k : 0);
  if (a < 0x00800000u || shift > 24) return (uint8_t)sign;  // at most half the smallest subnormal
  const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
  const uint32_t rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
  uint32_t q = mant >> shift;
  q += (rem > halfway || (rem == halfway && (q & 1u))) ? 1u : 0u;
  const uint32_t code = (k > 0 ? (uint32_t)k << M : 0u) + q, top = (1u << (E + M)) - 1u;
  return (uint8_t)(sign | (code > top ? top : code));
}
template <int E, int M> TW_DEV float mxfp_to_f32(uint8_t b) {
  const uint32_t s = b >> (E + M), e = (b >> M) & ((1u << E) - 1u), m = b & ((1u << M) - 1u);
  const int bias = (1 << (E - 1)) - 1;
  // (e ? 1.m : 0.m) * 2^(max(e, 1) - bias): an exact small integer times a power of two
  const float v = (float)(e ? (m | (1u << M)) : m) * __uint_as_float((uint32_t)(127 + (int)(e ? e : 1u) - bias - M) << 23);
  return s ? -v : v;
}
TW_DEV uint8_t f32_to_e8m0(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u >> 31) || u == 0u || u >= 0x7f800000u) return 0xff;  // negative (-0 too), zero, inf, NaN
  const uint32_t e = u >> 23, m = u & 0x7fffffu;
  if (e == 0u) return m >= 0x600000u ? 1 : 0;  // float32 subnormals: 2^-127 or, from 1.5 * 2^-127 up, 2^-126
  const uint32_t code = e + (m >> 22);
  return (uint8_t)(code > 254u ? 0xffu : code);
}
TW_DEV float e8m0_to_f32(uint8_t b) {
  if (b == 0xff) return __int_as_float(0x7fffffff);
  return __uint_as_float(b ? (uint32_t)b << 23 : 0x00400000u);  // code 0 is 2^-127, a float32 subnormal
}
TW_DEV uint8_t f32_to_e2m1(float f) { return f32_to_mxfp<2, 1>(f); }
TW_DEV uint8_t f32_to_e2m3(float f) { return f32_to_mxfp<2, 3>(f); }
TW_DEV uint8_t f32_to_e3m2(float f) { return f32_to_mxfp<3, 2>(f); }
TW_DEV float e2m1_to_f32(uint8_t b) { return mxfp_to_f32<2, 1>(b); }
TW_DEV float e2m3_to_f32(uint8_t b) { return mxfp_to_f32<2, 3>(b); }
TW_DEV float e3m2_to_f32(uint8_t b) { return mxfp_to_f32<3, 2>(b); }
TW_DEV uint8_t f64_to_e2m1(double d) { return f32_to_mxfp<2, 1>(f64_to_f32_odd(d)); }
TW_DEV uint8_t f64_to_e2m3(double d) { return f32_to_mxfp<2, 3>(f64_to_f32_odd(d)); }
TW_DEV uint8_t f64_to_e3m2(double d) { return f32_to_mxfp<3, 2>(f64_to_f32_odd(d)); }
TW_DEV uint8_t f64_to_e8m0(double d) { return f32_to_e8m0(f64_to_f32_odd(d)); }
// AMD's fnuz float8 formats (float8_e4m3fnuz, float8_e5m2fnuz; ml_dtypes' names): exponent bias
// 2^(E-1) (one more than OCP's), no infinity, no negative zero, the one NaN 0x80. Converted in
// integer arithmetic (no NVIDIA instruction knows them), as tilewise's other float8 types convert:
// round to nearest even and saturate past the largest finite value (infinities included); a NaN
// becomes 0x80 and a result of zero is +0. tw_cpu.h's fnuz is the same code.
template <int E, int M> TW_DEV uint8_t f32_to_fnuz(float f) {
  const uint32_t u = __float_as_uint(f);
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
template <int E, int M> TW_DEV float fnuz_to_f32(uint8_t b) {
  if (b == 0x80) return __int_as_float(0x7fffffff);
  const uint32_t e = (b >> M) & ((1u << E) - 1u), m = b & ((1u << M) - 1u);
  const float v = (float)(e ? (m | (1u << M)) : m) *
                  __uint_as_float((uint32_t)(127 + (int)(e ? e : 1u) - (1 << (E - 1)) - M) << 23);
  return (b >> 7) ? -v : v;
}
TW_DEV uint8_t f32_to_e4m3fnuz(float f) { return f32_to_fnuz<4, 3>(f); }
TW_DEV uint8_t f32_to_e5m2fnuz(float f) { return f32_to_fnuz<5, 2>(f); }
TW_DEV float e4m3fnuz_to_f32(uint8_t b) { return fnuz_to_f32<4, 3>(b); }
TW_DEV float e5m2fnuz_to_f32(uint8_t b) { return fnuz_to_f32<5, 2>(b); }
TW_DEV uint8_t f64_to_e4m3fnuz(double d) { return f32_to_fnuz<4, 3>(f64_to_f32_odd(d)); }
TW_DEV uint8_t f64_to_e5m2fnuz(double d) { return f32_to_fnuz<5, 2>(f64_to_f32_odd(d)); }
// tw-host-testable-end

}  // namespace cvt

// A low-precision float: the raw bits, converted implicitly to and from float (like cuda_fp16.h's
// __half). Arithmetic happens in float: the renderer emits ((tw::half)((float)(a) + (float)(b))).
#define TW_LOWP_TYPE(T, Bits, from_f32, from_f64, to_f32)                                        \
  struct T {                                                                                      \
    Bits bits;                                                                                    \
    T() = default;                                                                                \
    TW_DEV T(float f) : bits(from_f32(f)) {}                                                      \
    TW_DEV T(double d) : bits(from_f64(d)) {}                                                     \
    TW_DEV T(bool v) : T(v ? 1.0f : 0.0f) {}                                                      \
    TW_DEV T(signed char v) : T((float)v) {}                                                      \
    TW_DEV T(unsigned char v) : T((float)v) {}                                                    \
    TW_DEV T(char v) : T((float)v) {}                                                             \
    TW_DEV T(short v) : T((float)v) {}                                                            \
    TW_DEV T(unsigned short v) : T((float)v) {}                                                   \
    TW_DEV T(int v) : T((float)v) {}                                                              \
    TW_DEV T(unsigned int v) : T((float)v) {}                                                     \
    TW_DEV T(long v) : T((float)v) {}                                                             \
    TW_DEV T(unsigned long v) : T((float)v) {}                                                    \
    TW_DEV T(long long v) : T((float)v) {}                                                        \
    TW_DEV T(unsigned long long v) : T((float)v) {}                                               \
    TW_DEV operator float() const { return to_f32(bits); }                                       \
    static TW_DEV T from_bits(Bits b) {                                                           \
      T x;                                                                                        \
      x.bits = b;                                                                                 \
      return x;                                                                                   \
    }                                                                                             \
  };

TW_LOWP_TYPE(half, uint16_t, cvt::f32_to_f16, cvt::f64_to_f16, cvt::f16_to_f32)
TW_LOWP_TYPE(bf16, uint16_t, cvt::f32_to_bf16, cvt::f64_to_bf16, cvt::bf16_to_f32)
TW_LOWP_TYPE(fp8_e4m3, uint8_t, cvt::f32_to_e4m3, cvt::f64_to_e4m3, cvt::e4m3_to_f32)
TW_LOWP_TYPE(fp8_e5m2, uint8_t, cvt::f32_to_e5m2, cvt::f64_to_e5m2, cvt::e5m2_to_f32)
TW_LOWP_TYPE(fp4_e2m1, uint8_t, cvt::f32_to_e2m1, cvt::f64_to_e2m1, cvt::e2m1_to_f32)
TW_LOWP_TYPE(fp6_e2m3, uint8_t, cvt::f32_to_e2m3, cvt::f64_to_e2m3, cvt::e2m3_to_f32)
TW_LOWP_TYPE(fp6_e3m2, uint8_t, cvt::f32_to_e3m2, cvt::f64_to_e3m2, cvt::e3m2_to_f32)
TW_LOWP_TYPE(fp8_e8m0, uint8_t, cvt::f32_to_e8m0, cvt::f64_to_e8m0, cvt::e8m0_to_f32)
TW_LOWP_TYPE(fp8_e4m3fnuz, uint8_t, cvt::f32_to_e4m3fnuz, cvt::f64_to_e4m3fnuz, cvt::e4m3fnuz_to_f32)
TW_LOWP_TYPE(fp8_e5m2fnuz, uint8_t, cvt::f32_to_e5m2fnuz, cvt::f64_to_e5m2fnuz, cvt::e5m2fnuz_to_f32)
#undef TW_LOWP_TYPE

// TensorFloat-32 (TileLang's tfloat32): a float whose low 13 mantissa bits are zero; conversions
// into it round to nearest, ties away (cvt.rna.tf32.f32, as CUTLASS's tfloat32_t), integers
// through double (one rounding); arithmetic in float, rounded back; reads ignore the low 13 bits
// (CUTLASS's conversion to float, the tensor cores). tw_cpu.h's tf32 is the same.
struct tf32 {
  float v;
  static TW_DEV float round(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    return __uint_as_float(u);
  }
  tf32() = default;
  TW_DEV tf32(float f) : v(round(f)) {}
  TW_DEV tf32(double d) : tf32(cvt::f64_to_f32_odd(d)) {}
  TW_DEV tf32(bool b) : tf32(b ? 1.0f : 0.0f) {}
  TW_DEV tf32(signed char i) : tf32((float)i) {}
  TW_DEV tf32(unsigned char i) : tf32((float)i) {}
  TW_DEV tf32(char i) : tf32((float)i) {}
  TW_DEV tf32(short i) : tf32((float)i) {}
  TW_DEV tf32(unsigned short i) : tf32((float)i) {}
  TW_DEV tf32(int i) : tf32((double)i) {}
  TW_DEV tf32(unsigned int i) : tf32((double)i) {}
  TW_DEV tf32(long i) : tf32((double)i) {}
  TW_DEV tf32(unsigned long i) : tf32((double)i) {}
  TW_DEV tf32(long long i) : tf32((double)i) {}
  TW_DEV tf32(unsigned long long i) : tf32((double)i) {}
  TW_DEV operator float() const { return __uint_as_float(__float_as_uint(v) & 0xffffe000u); }
};

// TileLang's int4 / uint4: one value per byte in the low four bits (as ml_dtypes and tw_cpu.h);
// conversions from integers wrap at four bits, arithmetic promotes to int.
template <bool S>
struct nibble {
  uint8_t bits;
  static constexpr int lo = S ? -8 : 0, hi = S ? 7 : 15;
  nibble() = default;
  TW_DEV nibble(bool v) : bits(v ? 1 : 0) {}
  TW_DEV nibble(signed char v) : bits((uint8_t)v & 0xfu) {}
  TW_DEV nibble(unsigned char v) : bits(v & 0xfu) {}
  TW_DEV nibble(char v) : bits((uint8_t)v & 0xfu) {}
  TW_DEV nibble(short v) : bits((uint8_t)v & 0xfu) {}
  TW_DEV nibble(unsigned short v) : bits((uint8_t)v & 0xfu) {}
  TW_DEV nibble(int v) : bits((uint8_t)v & 0xfu) {}
  TW_DEV nibble(unsigned int v) : bits((uint8_t)v & 0xfu) {}
  TW_DEV nibble(long v) : bits((uint8_t)v & 0xfu) {}
  TW_DEV nibble(unsigned long v) : bits((uint8_t)v & 0xfu) {}
  TW_DEV nibble(long long v) : bits((uint8_t)v & 0xfu) {}
  TW_DEV nibble(unsigned long long v) : bits((uint8_t)v & 0xfu) {}
  TW_DEV operator int() const { return S ? (int)(signed char)(uint8_t)(bits << 4) >> 4 : (int)bits; }
};
typedef nibble<true> i4;
typedef nibble<false> u4;
// float -> int4 / uint4: truncation toward zero, saturating at the four-bit range, NaN giving 0
template <typename N, typename F> TW_DEV N to_nibble(F x) {
  if (!(x == x)) return N(0);
  if (x <= (F)N::lo) return N(N::lo);
  if (x >= (F)N::hi) return N(N::hi);
  return N((int)x);
}
// f16 add/sub/mul in f16 (sm_53+; the renderer uses them for float16 arithmetic): the result is
// rounded once, exactly what the float route gives (float's 24 bits are at least 2 x 11 + 2, so
// rounding to float first is harmless), in one HADD/HMUL instead of two conversions around an
// FADD. Written with .rn so that ptxas does not fuse them (as --fmad=false does for float).
TW_DEV half hadd(half a, half b) {
  uint16_t r;
  asm("add.rn.f16 %0, %1, %2;" : "=h"(r) : "h"(a.bits), "h"(b.bits));
  return half::from_bits(r);
}
TW_DEV half hsub(half a, half b) {
  uint16_t r;
  asm("sub.rn.f16 %0, %1, %2;" : "=h"(r) : "h"(a.bits), "h"(b.bits));
  return half::from_bits(r);
}
TW_DEV half hmul(half a, half b) {
  uint16_t r;
  asm("mul.rn.f16 %0, %1, %2;" : "=h"(r) : "h"(a.bits), "h"(b.bits));
  return half::from_bits(r);
}
// 32-bit integers to f16, rounded once (I2F.F16; through float would round twice past 2^24).
TW_DEV half i2h(int32_t v) {
  uint16_t r;
  asm("cvt.rn.f16.s32 %0, %1;" : "=h"(r) : "r"(v));
  return half::from_bits(r);
}
TW_DEV half u2h(uint32_t v) {
  uint16_t r;
  asm("cvt.rn.f16.u32 %0, %1;" : "=h"(r) : "r"(v));
  return half::from_bits(r);
}
static_assert(sizeof(half) == 2 && sizeof(bf16) == 2 && sizeof(fp8_e4m3) == 1 && sizeof(fp8_e5m2) == 1,
              "low-precision types are their bits");

// Every low-precision float type computes in float and rounds back (as the CPU backend does).
template <typename T> struct is_lowp { static constexpr bool value = false; };
template <> struct is_lowp<half> { static constexpr bool value = true; };
template <> struct is_lowp<bf16> { static constexpr bool value = true; };
template <> struct is_lowp<fp8_e4m3> { static constexpr bool value = true; };
template <> struct is_lowp<fp8_e5m2> { static constexpr bool value = true; };
template <> struct is_lowp<fp4_e2m1> { static constexpr bool value = true; };
template <> struct is_lowp<fp6_e2m3> { static constexpr bool value = true; };
template <> struct is_lowp<fp6_e3m2> { static constexpr bool value = true; };
template <> struct is_lowp<fp8_e8m0> { static constexpr bool value = true; };
template <> struct is_lowp<fp8_e4m3fnuz> { static constexpr bool value = true; };
template <> struct is_lowp<fp8_e5m2fnuz> { static constexpr bool value = true; };
template <> struct is_lowp<tf32> { static constexpr bool value = true; };
template <bool C, typename T> struct enable_if {};
template <typename T> struct enable_if<true, T> { typedef T type; };
template <typename T> using lowp_t = typename enable_if<is_lowp<T>::value, T>::type;

// ------------------------------------------------------------------ math
// Unary math: double calls the double function, float and the low-precision types the float one.
#define TW_MATH1(name, ffn, dfn)                              \
  template <typename T> TW_DEV T name(T x) {                  \
    if constexpr (sizeof(T) == 8) return ::dfn(x);            \
    else return T(::ffn((float)x));                           \
  }
TW_MATH1(exp, expf, exp)
TW_MATH1(exp2, exp2f, exp2)
TW_MATH1(exp10, exp10f, exp10)
TW_MATH1(log, logf, log)
TW_MATH1(log2, log2f, log2)
TW_MATH1(log10, log10f, log10)
TW_MATH1(log1p, log1pf, log1p)
TW_MATH1(expm1, expm1f, expm1)
TW_MATH1(sqrt, sqrtf, sqrt)
TW_MATH1(rsqrt, rsqrtf, rsqrt)
TW_MATH1(tanh, tanhf, tanh)
TW_MATH1(erf, erff, erf)
TW_MATH1(floor, floorf, floor)
TW_MATH1(ceil, ceilf, ceil)
TW_MATH1(trunc, truncf, trunc)
TW_MATH1(round, roundf, round)
TW_MATH1(nearbyint, nearbyintf, nearbyint)
TW_MATH1(sin, sinf, sin)
TW_MATH1(cos, cosf, cos)
TW_MATH1(tan, tanf, tan)
TW_MATH1(asin, asinf, asin)
TW_MATH1(acos, acosf, acos)
TW_MATH1(atan, atanf, atan)
TW_MATH1(sinh, sinhf, sinh)
TW_MATH1(cosh, coshf, cosh)
TW_MATH1(asinh, asinhf, asinh)
TW_MATH1(acosh, acoshf, acosh)
TW_MATH1(atanh, atanhf, atanh)
#undef TW_MATH1

TW_DEV float rcp(float x) { return 1.0f / x; }
TW_DEV double rcp(double x) { return 1.0 / x; }
TW_DEV float sigmoid(float x) { return 1.0f / (1.0f + ::expf(-x)); }
TW_DEV double sigmoid(double x) { return 1.0 / (1.0 + ::exp(-x)); }
template <typename T> TW_DEV lowp_t<T> rcp(T x) { return T(1.0f / (float)x); }
template <typename T> TW_DEV lowp_t<T> sigmoid(T x) { return T(sigmoid((float)x)); }

// abs: integers and floats (unsigned values are their own magnitude).
template <typename T> TW_DEV T abs(T x) {
  if constexpr (is_lowp<T>::value) return T(::fabsf((float)x));
  else return x < (T)0 ? (T)(-x) : x;
}
TW_DEV uint8_t abs(uint8_t x) { return x; }
TW_DEV uint16_t abs(uint16_t x) { return x; }
TW_DEV uint32_t abs(uint32_t x) { return x; }
TW_DEV uint64_t abs(uint64_t x) { return x; }
TW_DEV float abs(float x) { return ::fabsf(x); }
TW_DEV double abs(double x) { return ::fabs(x); }

// max/min follow IEEE-754 maxNum/minNum for floats (a NaN operand is ignored), as fmaxf does;
// fmaxf / fminf compile to max.f32 / min.f32, which order -0 below +0 (docs/API.md "Numbers").
template <typename T> TW_DEV T max(T a, T b) {
  if constexpr (is_lowp<T>::value) return T(::fmaxf((float)a, (float)b));
  else return a > b ? a : b;
}
template <typename T> TW_DEV T min(T a, T b) {
  if constexpr (is_lowp<T>::value) return T(::fminf((float)a, (float)b));
  else return a < b ? a : b;
}
TW_DEV float max(float a, float b) { return ::fmaxf(a, b); }
TW_DEV float min(float a, float b) { return ::fminf(a, b); }
TW_DEV double max(double a, double b) { return ::fmax(a, b); }
TW_DEV double min(double a, double b) { return ::fmin(a, b); }

// Float to integer conversion with explicit semantics (those of cvt.rzi.sat): toward zero,
// saturating at the type's range, NaN giving 0. A C cast leaves out-of-range values undefined,
// and NVVM may narrow an 8 or 16-bit one through a wider conversion that wraps.
template <typename I, typename F> TW_DEV I to_int(F x) {
  constexpr bool s = (I)-1 < (I)0;
  constexpr F hi = (F)2 * (F)(1ull << (sizeof(I) * 8 - (s ? 2 : 1)));  // max + 1
  constexpr F lo = s ? -hi - (F)1 : (F)-1;  // at or below: the minimum (still so if F rounds it)
  constexpr I mx = s ? (I)(~0ull >> (65 - sizeof(I) * 8)) : (I)~0ull;
  constexpr I mn = s ? (I)(-mx - 1) : (I)0;
  const I r = (I)((x < hi && x > lo) ? x : (F)0);  // NaN fails both tests
  return x >= hi ? mx : (x <= lo ? mn : r);
}

// Shifts by a count outside [0, width) defined as PTX shl/shr define them (the count clamped to
// the width: 0, or the sign fill); the renderer calls these only where it cannot prove the count
// in range, since C leaves those counts undefined and the optimizer may assume they do not occur.
template <typename T> TW_DEV T shl(T a, T b) {
  const unsigned long long n = (unsigned long long)b;
  return n < sizeof(T) * 8 ? (T)((unsigned long long)a << n) : (T)0;
}
template <typename T> TW_DEV T shr(T a, T b) {
  const unsigned long long n = (unsigned long long)b;
  return n < sizeof(T) * 8 ? (T)(a >> n) : (T)(a < (T)0 ? (T)-1 : (T)0);
}

template <typename T> TW_DEV T truncmod(T a, T b);  // below, with truncdiv

// Binary math: float and double call the CUDA math library, integers have exact versions.
TW_DEV float pow(float a, float b) { return ::powf(a, b); }
TW_DEV double pow(double a, double b) { return ::pow(a, b); }
template <typename T> TW_DEV T pow(T a, T b) {
  if constexpr (is_lowp<T>::value) return T(::powf((float)a, (float)b));
  else return to_int<T>(::pow((double)a, (double)b));
}
TW_DEV float fmod(float a, float b) { return ::fmodf(a, b); }
TW_DEV double fmod(double a, double b) { return ::fmod(a, b); }
template <typename T> TW_DEV T fmod(T a, T b) {
  if constexpr (is_lowp<T>::value) return T(::fmodf((float)a, (float)b));
  else return truncmod(a, b);  // never traps
}
#define TW_MATH2(name, ffn, dfn)                                    \
  TW_DEV float name(float a, float b) { return ::ffn(a, b); }       \
  TW_DEV double name(double a, double b) { return ::dfn(a, b); }    \
  template <typename T> TW_DEV lowp_t<T> name(T a, T b) { return T(::ffn((float)a, (float)b)); }
TW_MATH2(atan2, atan2f, atan2)
TW_MATH2(hypot, hypotf, hypot)
TW_MATH2(copysign, copysignf, copysign)
TW_MATH2(nextafter, nextafterf, nextafter)
#undef TW_MATH2

// float64 mul / fma / div / rcp / sqrt in a directed rounding mode (T.ieee_mul(x, y, "rz") ...):
// CUDA's intrinsics, PTX mul.rz.f64, fma.rp.f64, div.rm.f64, rcp.rz.f64, sqrt.rp.f64 ...
#define TW_DIRECTED64(suffix, cuda)                                                              \
  TW_DEV double dmul_##suffix(double a, double b) { return __dmul_##cuda(a, b); }              \
  TW_DEV double dfma_##suffix(double a, double b, double c) { return __fma_##cuda(a, b, c); }  \
  TW_DEV double ddiv_##suffix(double a, double b) { return __ddiv_##cuda(a, b); }              \
  TW_DEV double drcp_##suffix(double a) { return __drcp_##cuda(a); }                           \
  TW_DEV double dsqrt_##suffix(double a) { return __dsqrt_##cuda(a); }
TW_DIRECTED64(rz, rz)
TW_DIRECTED64(ru, ru)
TW_DIRECTED64(rd, rd)
#undef TW_DIRECTED64

// TIR math TileLang re-exports (language/tir_math.py): float tests, ldexp, bit counts of the
// operand's own width (clz(0) is the width, as __clz), and the fast-math intrinsics (T.__exp
// ...: the __expf family for float and the low-precision types, the accurate function for double).
template <typename T> TW_DEV bool isnan(T x) {
  if constexpr (sizeof(T) == 8) return x != x;
  else return (float)x != (float)x;
}
template <typename T> TW_DEV bool isinf(T x) {
  if constexpr (sizeof(T) == 8) return ::fabs(x) == (double)INFINITY;
  else return ::fabsf((float)x) == INFINITY;
}
template <typename T> TW_DEV bool isfinite(T x) {
  if constexpr (sizeof(T) == 8) return ::fabs(x) < (double)INFINITY;
  else return ::fabsf((float)x) < INFINITY;
}
template <typename T> TW_DEV T ldexp(T x, int32_t e) {
  if constexpr (sizeof(T) == 8) return ::ldexp(x, e);
  else return T(::ldexpf((float)x, e));
}
template <typename T> TW_DEV T popcount(T x) {
  if constexpr (sizeof(T) == 8) return (T)__popcll((unsigned long long)x);
  else return (T)__popc((unsigned)x & (0xffffffffu >> (32 - 8 * sizeof(T))));
}
template <typename T> TW_DEV T clz(T x) {
  if constexpr (sizeof(T) == 8) return (T)__clzll((long long)x);
  else return (T)(__clz((int)((unsigned)x & (0xffffffffu >> (32 - 8 * sizeof(T))))) - (int)(32 - 8 * sizeof(T)));
}
// T.device_assert: a failed check prints the message (which names the line) with the thread and
// stops the kernel.
TW_DEV void device_assert(bool cond, const char* msg) {
  if (!cond) {
    printf("%s (block (%d, %d, %d), thread (%d, %d, %d))\n", msg, (int)blockIdx.x, (int)blockIdx.y,
           (int)blockIdx.z, (int)threadIdx.x, (int)threadIdx.y, (int)threadIdx.z);
    __trap();
  }
}
#define TW_FAST1(name, ffn, dfn)                                  \
  template <typename T> TW_DEV T name(T x) {                     \
    if constexpr (sizeof(T) == 8) return ::dfn(x);               \
    else return T(ffn((float)x));                                \
  }
TW_FAST1(fast_exp, __expf, exp)
TW_FAST1(fast_exp10, __exp10f, exp10)
TW_FAST1(fast_log, __logf, log)
TW_FAST1(fast_log2, __log2f, log2)
TW_FAST1(fast_log10, __log10f, log10)
TW_FAST1(fast_sin, __sinf, sin)
TW_FAST1(fast_cos, __cosf, cos)
TW_FAST1(fast_tan, __tanf, tan)
#undef TW_FAST1
TW_DEV float fast_rcp(float x) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}

// C division and remainder that never trap, with the CPU backend's values: x / 0 = -1,
// x % 0 = x, and x / -1 wraps (the most negative value stays itself).
template <typename T> TW_DEV bool is_signed_int() { return (T)-1 < (T)0; }
template <typename T> TW_DEV T truncdiv(T a, T b) {
  if (b == (T)0) return (T)-1;
  if (is_signed_int<T>() && b == (T)-1) return (T)(0ull - (unsigned long long)a);
  return (T)(a / b);
}
template <typename T> TW_DEV T truncmod(T a, T b) {
  if (b == (T)0) return a;
  if (is_signed_int<T>() && b == (T)-1) return (T)0;
  return (T)(a % b);
}

// Python-style division and modulo (round toward negative infinity); floats through floor / fmod.
TW_DEV float floordiv(float a, float b) { return ::floorf(a / b); }
TW_DEV double floordiv(double a, double b) { return ::floor(a / b); }
TW_DEV float floormod(float a, float b) {
  float r = ::fmodf(a, b);
  return (r != 0.0f && ((r < 0.0f) != (b < 0.0f))) ? r + b : r;
}
TW_DEV double floormod(double a, double b) {
  double r = ::fmod(a, b);
  return (r != 0.0 && ((r < 0.0) != (b < 0.0))) ? r + b : r;
}
template <typename T> TW_DEV T floordiv(T a, T b) {
  if constexpr (is_lowp<T>::value) {
    return T(floordiv((float)a, (float)b));
  } else {
    if (b == (T)0 || (is_signed_int<T>() && b == (T)-1)) return truncdiv(a, b);
    T q = a / b;
    return (q * b != a && ((a < (T)0) != (b < (T)0))) ? (T)(q - 1) : q;
  }
}
template <typename T> TW_DEV T floormod(T a, T b) {
  if constexpr (is_lowp<T>::value) {
    return T(floormod((float)a, (float)b));
  } else {
    if (b == (T)0 || (is_signed_int<T>() && b == (T)-1)) return truncmod(a, b);
    T r = a % b;
    return (r != (T)0 && ((r < (T)0) != (b < (T)0))) ? (T)(r + b) : r;
  }
}

// int4 / uint4 (nibble): the integer rules at four bits (ir/scalar_ops.py), computed on the values
// in int32 and wrapped back; a shift count is the operand's four bits read unsigned, and a count of
// four or more shifts everything out (the sign fill for a right shift of a negative int4).
template <bool S> TW_DEV nibble<S> truncdiv(nibble<S> a, nibble<S> b) { return nibble<S>(truncdiv((int32_t)(int)a, (int32_t)(int)b)); }
template <bool S> TW_DEV nibble<S> truncmod(nibble<S> a, nibble<S> b) { return nibble<S>(truncmod((int32_t)(int)a, (int32_t)(int)b)); }
template <bool S> TW_DEV nibble<S> floordiv(nibble<S> a, nibble<S> b) { return nibble<S>(floordiv((int32_t)(int)a, (int32_t)(int)b)); }
template <bool S> TW_DEV nibble<S> floormod(nibble<S> a, nibble<S> b) { return nibble<S>(floormod((int32_t)(int)a, (int32_t)(int)b)); }
template <bool S> TW_DEV nibble<S> shl(nibble<S> a, nibble<S> b) {
  const unsigned c = b.bits & 15u;
  return nibble<S>(c >= 4u ? 0u : (unsigned)(int)a << c);
}
template <bool S> TW_DEV nibble<S> shr(nibble<S> a, nibble<S> b) {
  const unsigned c = b.bits & 15u;
  return nibble<S>(c >= 4u ? ((int)a < 0 ? -1 : 0) : (int)a >> c);
}

template <typename To, typename From> TW_DEV To bitcast(From x) {
  static_assert(sizeof(To) == sizeof(From), "reinterpret needs equal sizes");
  To y;
  memcpy(&y, &x, sizeof(To));
  return y;
}

// x rounded to tf32 (nearest, ties away from zero) as an mma .tf32 operand register: the mma
// itself ignores the low 13 mantissa bits, so without this it would truncate.
TW_DEV uint32_t tf32_round(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

// a * b + c rounded once (the IR's explicit contraction, transform/contract_fma.py).
TW_DEV float fma(float a, float b, float c) { return ::fmaf(a, b, c); }
TW_DEV double fma(double a, double b, double c) { return ::fma(a, b, c); }

// c + the dot product of the four signed bytes packed in a and b.
TW_DEV int32_t dp4a(int32_t a, int32_t b, int32_t c) { return __dp4a(a, b, c); }

// ------------------------------------------------------------------ atomics
// *addr = f(*addr) by compare-and-swap on the raw bits (so a NaN cannot make the loop spin).
// One-byte types swap the aligned 32-bit word holding them; returns the old value.
template <typename T, typename F> TW_DEV T atomic_update(T* addr, F f) {
  if constexpr (sizeof(T) == 8) {
    unsigned long long* p = reinterpret_cast<unsigned long long*>(addr);
    unsigned long long old = *p, assumed;
    do {
      assumed = old;
      old = atomicCAS(p, assumed, bitcast<unsigned long long>(f(bitcast<T>(assumed))));
    } while (old != assumed);
    return bitcast<T>(old);
  } else if constexpr (sizeof(T) == 4) {
    unsigned int* p = reinterpret_cast<unsigned int*>(addr);
    unsigned int old = *p, assumed;
    do {
      assumed = old;
      old = atomicCAS(p, assumed, bitcast<unsigned int>(f(bitcast<T>(assumed))));
    } while (old != assumed);
    return bitcast<T>(old);
  } else if constexpr (sizeof(T) == 2) {
    unsigned short int* p = reinterpret_cast<unsigned short int*>(addr);
    unsigned short int old = *p, assumed;
    do {
      assumed = old;
      old = atomicCAS(p, assumed, bitcast<unsigned short int>(f(bitcast<T>(assumed))));
    } while (old != assumed);
    return bitcast<T>(old);
  } else {
    static_assert(sizeof(T) == 1, "atomics need a 1, 2, 4 or 8-byte type");
    uintptr_t a = reinterpret_cast<uintptr_t>(addr);
    unsigned int* word = reinterpret_cast<unsigned int*>(a & ~(uintptr_t)3);
    const int shift = (int)((a & 3) * 8);  // little-endian: the byte at a & 3
    unsigned int old = *word, assumed;
    do {
      assumed = old;
      uint8_t cur = (uint8_t)(assumed >> shift);
      uint8_t upd = bitcast<uint8_t>(f(bitcast<T>(cur)));
      old = atomicCAS(word, assumed, (assumed & ~(0xffu << shift)) | ((unsigned int)upd << shift));
    } while (old != assumed);
    return bitcast<T>((uint8_t)(old >> shift));
  }
}

TW_DEV float atomic_add(float* p, float v) { return atomicAdd(p, v); }
TW_DEV double atomic_add(double* p, double v) { return atomicAdd(p, v); }
// float16 adds natively (sm_70+), bfloat16 from sm_90; both round the sum once, as the CAS loop does.
TW_DEV half atomic_add(half* p, half v) {
  uint16_t old;
  asm volatile("atom.add.noftz.f16 %0, [%1], %2;" : "=h"(old) : "l"(p), "h"(v.bits) : "memory");
  return half::from_bits(old);
}
TW_DEV bf16 atomic_add(bf16* p, bf16 v) {
#if __CUDA_ARCH__ >= 900
  uint16_t old;
  asm volatile("atom.add.noftz.bf16 %0, [%1], %2;" : "=h"(old) : "l"(p), "h"(v.bits) : "memory");
  return bf16::from_bits(old);
#else
  return atomic_update(p, [v](bf16 x) { return bf16((float)x + (float)v); });
#endif
}
TW_DEV int32_t atomic_add(int32_t* p, int32_t v) { return atomicAdd(p, v); }
TW_DEV uint32_t atomic_add(uint32_t* p, uint32_t v) { return atomicAdd(p, v); }
TW_DEV int64_t atomic_add(int64_t* p, int64_t v) {
  return (int64_t)atomicAdd(reinterpret_cast<unsigned long long*>(p), (unsigned long long)v);
}
TW_DEV uint64_t atomic_add(uint64_t* p, uint64_t v) {
  return (uint64_t)atomicAdd(reinterpret_cast<unsigned long long*>(p), (unsigned long long)v);
}
template <typename T> TW_DEV T atomic_add(T* p, T v) {
  return atomic_update(p, [v](T x) { return (T)(x + v); });
}
TW_DEV fp8_e4m3 atomic_add(fp8_e4m3* p, fp8_e4m3 v) {
  return atomic_update(p, [v](fp8_e4m3 x) { return fp8_e4m3((float)x + (float)v); });
}
TW_DEV fp8_e5m2 atomic_add(fp8_e5m2* p, fp8_e5m2 v) {
  return atomic_update(p, [v](fp8_e5m2 x) { return fp8_e5m2((float)x + (float)v); });
}

TW_DEV int32_t atomic_max(int32_t* p, int32_t v) { return atomicMax(p, v); }
TW_DEV uint32_t atomic_max(uint32_t* p, uint32_t v) { return atomicMax(p, v); }
TW_DEV int64_t atomic_max(int64_t* p, int64_t v) { return (int64_t)atomicMax(reinterpret_cast<long long*>(p), (long long)v); }
TW_DEV uint64_t atomic_max(uint64_t* p, uint64_t v) {
  return (uint64_t)atomicMax(reinterpret_cast<unsigned long long*>(p), (unsigned long long)v);
}
TW_DEV int32_t atomic_min(int32_t* p, int32_t v) { return atomicMin(p, v); }
TW_DEV uint32_t atomic_min(uint32_t* p, uint32_t v) { return atomicMin(p, v); }
TW_DEV int64_t atomic_min(int64_t* p, int64_t v) { return (int64_t)atomicMin(reinterpret_cast<long long*>(p), (long long)v); }
TW_DEV uint64_t atomic_min(uint64_t* p, uint64_t v) {
  return (uint64_t)atomicMin(reinterpret_cast<unsigned long long*>(p), (unsigned long long)v);
}
// What a float atomic_max / atomic_min compares: narrow float types widened (exactly) to float.
template <typename T> TW_DEV auto compare_value(T x) {
  if constexpr (is_lowp<T>::value) return (float)x;
  else return x;
}
// Floats: TileLang's rule (its atomic.h: a compare-and-swap loop for half / bfloat16, libcu++'s
// fetch_max / fetch_min for the others, which decide alike): the value is stored only when it
// compares strictly greater (smaller) than the stored one, so -0 does not replace +0 (nor +0
// -0), a NaN value never stores and a stored NaN stays. Not tilewise's max/min (NaN-ignoring,
// -0 < +0), which T.max / T.reduce_max keep.
template <typename T> TW_DEV T atomic_max(T* p, T v) {
  return atomic_update(p, [v](T x) { return (compare_value(x) < compare_value(v)) ? v : x; });
}
template <typename T> TW_DEV T atomic_min(T* p, T v) {
  return atomic_update(p, [v](T x) { return (compare_value(v) < compare_value(x)) ? v : x; });
}
TW_DEV int32_t atomic_or(int32_t* p, int32_t v) { return atomicOr(p, v); }
TW_DEV uint32_t atomic_or(uint32_t* p, uint32_t v) { return atomicOr(p, v); }
TW_DEV int64_t atomic_or(int64_t* p, int64_t v) {
  return (int64_t)atomicOr(reinterpret_cast<unsigned long long*>(p), (unsigned long long)v);
}
TW_DEV uint64_t atomic_or(uint64_t* p, uint64_t v) {
  return (uint64_t)atomicOr(reinterpret_cast<unsigned long long*>(p), (unsigned long long)v);
}
template <typename T> TW_DEV T atomic_or(T* p, T v) {
  return atomic_update(p, [v](T x) { return (T)(x | v); });
}
// T.atomic_load / T.atomic_store with TileLang's memory-order numbers (0 relaxed, 1 consume,
// 2 acquire, 3 release, 4 acq_rel, 5 seq_cst): a volatile access (never cached in a register,
// one memory transaction for 1 to 8 bytes) with a device-wide fence after an ordered load and
// before an ordered store.
template <typename T> TW_DEV T atomic_load(const T* p, int order) {
  T v;
  if constexpr (sizeof(T) == 1) v = bitcast<T>(*reinterpret_cast<const volatile uint8_t*>(p));
  else if constexpr (sizeof(T) == 2) v = bitcast<T>(*reinterpret_cast<const volatile uint16_t*>(p));
  else if constexpr (sizeof(T) == 4) v = bitcast<T>(*reinterpret_cast<const volatile uint32_t*>(p));
  else v = bitcast<T>(*reinterpret_cast<const volatile unsigned long long*>(p));
  if (order != 0) __threadfence();
  return v;
}
template <typename T> TW_DEV void atomic_store(T* p, T v, int order) {
  if (order != 0) __threadfence();
  if constexpr (sizeof(T) == 1) *reinterpret_cast<volatile uint8_t*>(p) = bitcast<uint8_t>(v);
  else if constexpr (sizeof(T) == 2) *reinterpret_cast<volatile uint16_t*>(p) = bitcast<uint16_t>(v);
  else if constexpr (sizeof(T) == 4) *reinterpret_cast<volatile uint32_t*>(p) = bitcast<uint32_t>(v);
  else *reinterpret_cast<volatile unsigned long long*>(p) = bitcast<unsigned long long>(v);
}

// ------------------------------------------------------------------ memory
// The 32-bit shared-window address of a generic pointer into shared memory, as PTX .shared wants.
TW_DEV uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

// One vector move of Bytes bytes; both addresses are aligned to Bytes.
template <int Bytes> TW_DEV void copy_vec(void* dst, const void* src) {
  if constexpr (Bytes == 16) *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
  else if constexpr (Bytes == 8) *reinterpret_cast<uint2*>(dst) = *reinterpret_cast<const uint2*>(src);
  else if constexpr (Bytes == 4) *reinterpret_cast<uint32_t*>(dst) = *reinterpret_cast<const uint32_t*>(src);
  else if constexpr (Bytes == 2) *reinterpret_cast<uint16_t*>(dst) = *reinterpret_cast<const uint16_t*>(src);
  else {
    static_assert(Bytes == 1, "copy_vec moves 1, 2, 4, 8 or 16 bytes");
    *reinterpret_cast<uint8_t*>(dst) = *reinterpret_cast<const uint8_t*>(src);
  }
}

// One vector store of the N values (type T) into N consecutive elements at dst (aligned to the
// N * sizeof(T) bytes). The values are packed into 32-bit words by their bits rather than through
// an addressable array, which ptxas would otherwise keep in local memory for 16- and 8-bit types.
template <class T> TW_DEV uint32_t vec_bits(T x) {
  if constexpr (sizeof(T) == 4) { uint32_t u; memcpy(&u, &x, 4); return u; }
  else if constexpr (sizeof(T) == 2) { uint16_t u; memcpy(&u, &x, 2); return u; }
  else { static_assert(sizeof(T) == 1, "store_vec packs 1-, 2- or 4-byte values"); uint8_t u; memcpy(&u, &x, 1); return u; }
}
template <class T, class... V> TW_DEV void store_vec(void* dst, V... vals) {
  constexpr int N = sizeof...(V), B = int(sizeof(T)) * N, per = 4 / int(sizeof(T));
  static_assert(B == 2 || B == 4 || B == 8 || B == 16, "store_vec stores 2, 4, 8 or 16 bytes");
  const uint32_t bits[N] = {vec_bits<T>(static_cast<T>(vals))...};
  uint32_t w[(B + 3) / 4] = {};
#pragma unroll
  for (int i = 0; i < N; ++i) w[i / per] |= bits[i] << (8 * int(sizeof(T)) * (i % per));
  if constexpr (B == 16) *reinterpret_cast<uint4*>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
  else if constexpr (B == 8) *reinterpret_cast<uint2*>(dst) = make_uint2(w[0], w[1]);
  else if constexpr (B == 4) *reinterpret_cast<uint32_t*>(dst) = w[0];
  else *reinterpret_cast<uint16_t*>(dst) = static_cast<uint16_t>(w[0]);
}

// cp.async global -> shared. 16-byte copies use .cg (L2 only: the tile is staged in shared memory
// anyway); 4 and 8 bytes must use .ca. The src_bytes form copies src_bytes bytes and zero-fills
// the rest of the Bytes (src_bytes = 0: pure zero fill, the source is not read).
template <int Bytes> TW_DEV void cp_async(void* dst, const void* src) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async copies 4, 8 or 16 bytes");
  const uint32_t d = smem_addr(dst);
  const uint64_t s = (uint64_t)__cvta_generic_to_global(src);
  if constexpr (Bytes == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(s) : "memory");
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(d), "l"(s), "n"(Bytes) : "memory");
  }
}
template <int Bytes> TW_DEV void cp_async(void* dst, const void* src, int32_t src_bytes) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async copies 4, 8 or 16 bytes");
  const uint32_t d = smem_addr(dst);
  const uint64_t s = (uint64_t)__cvta_generic_to_global(src);
  if constexpr (Bytes == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(s), "r"(src_bytes) : "memory");
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(d), "l"(s), "n"(Bytes), "r"(src_bytes)
                 : "memory");
  }
}
TW_DEV void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// All but the newest N committed groups of this thread have landed.
template <int N> TW_DEV void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// ------------------------------------------------------------------ ldmatrix
// ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16: each lane gives the address of one
// 16-byte row; dst receives 1, 2 or 4 32-bit registers.
template <bool Trans> TW_DEV void ldmatrix_x1(void* dst, const void* src) {
  uint32_t* d = reinterpret_cast<uint32_t*>(dst);
  const uint32_t a = smem_addr(src);
  if constexpr (Trans) asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(d[0]) : "r"(a));
  else asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(d[0]) : "r"(a));
}
template <bool Trans> TW_DEV void ldmatrix_x2(void* dst, const void* src) {
  uint32_t* d = reinterpret_cast<uint32_t*>(dst);
  const uint32_t a = smem_addr(src);
  if constexpr (Trans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(d[0]), "=r"(d[1]) : "r"(a));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(d[0]), "=r"(d[1]) : "r"(a));
}
template <bool Trans> TW_DEV void ldmatrix_x4(void* dst, const void* src) {
  uint32_t* d = reinterpret_cast<uint32_t*>(dst);
  const uint32_t a = smem_addr(src);
  if constexpr (Trans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "r"(a));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "r"(a));
}

// ------------------------------------------------------------------ mma.sync
// D = A * B + C with D written over C: mma.sync.aligned.<shape>.row.col.<d>.<a>.<b>.<c>.
// a, b point at the thread's packed 32-bit fragment registers, c at its accumulators.
#define TW_MMA_F32_ACC(fn, shape, atype, btype)                                                     \
  TW_DEV void fn(const void* a, const void* b, void* c) {                                           \
    const uint32_t* A = reinterpret_cast<const uint32_t*>(a);                                       \
    const uint32_t* B = reinterpret_cast<const uint32_t*>(b);                                       \
    float* C = reinterpret_cast<float*>(c);                                                         \
    asm volatile("mma.sync.aligned." shape ".row.col.f32." atype "." btype ".f32 {%0, %1, %2, %3}, "  \
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"                                  \
                 : "+f"(C[0]), "+f"(C[1]), "+f"(C[2]), "+f"(C[3])                                   \
                 : "r"(A[0]), "r"(A[1]), "r"(A[2]), "r"(A[3]), "r"(B[0]), "r"(B[1]));                \
  }
TW_MMA_F32_ACC(mma_m16n8k16_f32_f16_f16, "m16n8k16", "f16", "f16")
TW_MMA_F32_ACC(mma_m16n8k16_f32_bf16_bf16, "m16n8k16", "bf16", "bf16")
TW_MMA_F32_ACC(mma_m16n8k8_f32_tf32_tf32, "m16n8k8", "tf32", "tf32")
#undef TW_MMA_F32_ACC

// m16n8k8 with 16-bit inputs: two A registers, one B register.
#define TW_MMA_K8_16BIT(fn, atype)                                                                   \
  TW_DEV void fn(const void* a, const void* b, void* c) {                                           \
    const uint32_t* A = reinterpret_cast<const uint32_t*>(a);                                       \
    const uint32_t* B = reinterpret_cast<const uint32_t*>(b);                                       \
    float* C = reinterpret_cast<float*>(c);                                                         \
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32." atype "." atype ".f32 {%0, %1, %2, %3}, "  \
                 "{%4, %5}, {%6}, {%0, %1, %2, %3};\n"                                              \
                 : "+f"(C[0]), "+f"(C[1]), "+f"(C[2]), "+f"(C[3])                                   \
                 : "r"(A[0]), "r"(A[1]), "r"(B[0]));                                                 \
  }
TW_MMA_K8_16BIT(mma_m16n8k8_f32_f16_f16, "f16")
TW_MMA_K8_16BIT(mma_m16n8k8_f32_bf16_bf16, "bf16")
#undef TW_MMA_K8_16BIT

// f16 accumulators: two 32-bit registers of packed half pairs.
TW_DEV void mma_m16n8k8_f16_f16_f16(const void* a, const void* b, void* c) {
  const uint32_t* A = reinterpret_cast<const uint32_t*>(a);
  const uint32_t* B = reinterpret_cast<const uint32_t*>(b);
  uint32_t* C = reinterpret_cast<uint32_t*>(c);
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f16.f16.f16.f16 {%0, %1}, {%2, %3}, {%4}, {%0, %1};\n"
               : "+r"(C[0]), "+r"(C[1])
               : "r"(A[0]), "r"(A[1]), "r"(B[0]));
}
TW_DEV void mma_m16n8k16_f16_f16_f16(const void* a, const void* b, void* c) {
  const uint32_t* A = reinterpret_cast<const uint32_t*>(a);
  const uint32_t* B = reinterpret_cast<const uint32_t*>(b);
  uint32_t* C = reinterpret_cast<uint32_t*>(c);
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f16.f16.f16.f16 {%0, %1}, {%2, %3, %4, %5}, {%6, %7}, {%0, %1};\n"
               : "+r"(C[0]), "+r"(C[1])
               : "r"(A[0]), "r"(A[1]), "r"(A[2]), "r"(A[3]), "r"(B[0]), "r"(B[1]));
}

// 8-bit integers, int32 accumulators (wrapping, no .satfinite).
#define TW_MMA_INT8(fn, atype, btype)                                                                \
  TW_DEV void fn(const void* a, const void* b, void* c) {                                           \
    const uint32_t* A = reinterpret_cast<const uint32_t*>(a);                                       \
    const uint32_t* B = reinterpret_cast<const uint32_t*>(b);                                       \
    int32_t* C = reinterpret_cast<int32_t*>(c);                                                     \
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32." atype "." btype ".s32 {%0, %1, %2, %3}, " \
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"                                  \
                 : "+r"(C[0]), "+r"(C[1]), "+r"(C[2]), "+r"(C[3])                                   \
                 : "r"(A[0]), "r"(A[1]), "r"(A[2]), "r"(A[3]), "r"(B[0]), "r"(B[1]));                \
  }
TW_MMA_INT8(mma_m16n8k32_s32_s8_s8, "s8", "s8")
TW_MMA_INT8(mma_m16n8k32_s32_u8_u8, "u8", "u8")
TW_MMA_INT8(mma_m16n8k32_s32_s8_u8, "s8", "u8")
TW_MMA_INT8(mma_m16n8k32_s32_u8_s8, "u8", "s8")
#undef TW_MMA_INT8

// 4-bit integers, eight per register (the lowest element in the lowest bits), int32 accumulators.
#define TW_MMA_INT4(fn, atype, btype)                                                                \
  TW_DEV void fn(const void* a, const void* b, void* c) {                                           \
    const uint32_t* A = reinterpret_cast<const uint32_t*>(a);                                       \
    const uint32_t* B = reinterpret_cast<const uint32_t*>(b);                                       \
    int32_t* C = reinterpret_cast<int32_t*>(c);                                                     \
    asm volatile("mma.sync.aligned.m16n8k64.row.col.s32." atype "." btype ".s32 {%0, %1, %2, %3}, " \
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"                                  \
                 : "+r"(C[0]), "+r"(C[1]), "+r"(C[2]), "+r"(C[3])                                   \
                 : "r"(A[0]), "r"(A[1]), "r"(A[2]), "r"(A[3]), "r"(B[0]), "r"(B[1]));                \
  }
TW_MMA_INT4(mma_m16n8k64_s32_s4_s4, "s4", "s4")
TW_MMA_INT4(mma_m16n8k64_s32_u4_u4, "u4", "u4")
#undef TW_MMA_INT4

// ------------------------------------------------------------------ mbarriers (sm_80 and later)
// docs/THREAD_IR.md, "mbarriers": init, arrivals (also the ones cp.async copies trigger) and the
// parity wait exist since sm_80; the tx-count (expect_tx, TMA completions) and try_wait since
// sm_90 (below). Defined only for sm_80 and later, so that a kernel using them fails to compile
// for an older GPU.
#if __CUDA_ARCH__ >= 800

// mbarrier (a uint64 in shared memory): init by one thread, then a __syncthreads before use.
TW_DEV void mbarrier_init(void* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
TW_DEV void mbarrier_arrive(void* bar) {
#if __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
#else  // the sink `_` for the returned state needs sm_90
  asm volatile("{\n.reg .b64 tw_state;\nmbarrier.arrive.shared::cta.b64 tw_state, [%0];\n}\n" ::"r"(smem_addr(bar))
               : "memory");
#endif
}
// An arrival triggered when every earlier cp.async of this thread has landed; the pending count
// is incremented now, so it cancels out (the thread arrives itself too).
TW_DEV void cp_async_mbarrier_arrive(void* bar) {
  asm volatile("cp.async.mbarrier.arrive.shared::cta.b64 [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
// The same without the increment: the triggered arrival is one of the phase's expected arrivals.
TW_DEV void cp_async_mbarrier_arrive_noinc(void* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
// Whether the phase of this parity has completed (the barrier is in the next phase). On sm_90
// try_wait suspends the thread for a while before answering no, so the loop below does not spin
// hot; sm_80 has only test_wait, which answers at once.
TW_DEV bool mbarrier_try_wait(void* bar, uint32_t parity) {
  uint32_t done;
#if __CUDA_ARCH__ >= 900
  asm volatile("{\n.reg .pred tw_done;\nmbarrier.try_wait.parity.shared::cta.b64 tw_done, [%1], %2;\n"
               "selp.u32 %0, 1, 0, tw_done;\n}\n"
               : "=r"(done)
               : "r"(smem_addr(bar)), "r"(parity)
               : "memory");
#else
  asm volatile("{\n.reg .pred tw_done;\nmbarrier.test_wait.parity.shared::cta.b64 tw_done, [%1], %2;\n"
               "selp.u32 %0, 1, 0, tw_done;\n}\n"
               : "=r"(done)
               : "r"(smem_addr(bar)), "r"(parity)
               : "memory");
#endif
  return done != 0;
}
TW_DEV void mbarrier_wait(void* bar, uint32_t parity) {
  while (!mbarrier_try_wait(bar, parity)) {
  }
}
#endif  // __CUDA_ARCH__ >= 800

// ------------------------------------------------------------------ Hopper (sm_90 / sm_90a)
// docs/THREAD_IR.md, "Hopper": the mbarrier tx-count, TMA (cp.async.bulk.tensor) and the wgmma
// fences, groups and shared-memory descriptors. Defined only for sm_90 and later, so that a
// kernel lowered for Hopper fails to compile for an older GPU instead of losing its copies. The
// wgmma instructions themselves, one function per shape and type, are generated into the kernels
// that issue them (backend/cuda/wgmma_variants.py): they need sm_90a.
#if __CUDA_ARCH__ >= 900

// tx-count += bytes, then one arrival.
TW_DEV void mbarrier_arrive_expect_tx(void* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
}
// tx-count += bytes, no arrival (the arrivals come from T.mbarrier_arrive).
TW_DEV void mbarrier_expect_tx(void* bar, uint32_t bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
}
// Makes the initialisation of mbarriers visible to the asynchronous proxy (TMA completions).
TW_DEV void fence_barrier_init() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
// Shared-memory writes of this thread become visible to TMA stores and wgmma reads after it.
TW_DEV void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// TMA. The tensor map is a __grid_constant__ kernel parameter; coordinates are innermost first
// (PTX's order), in elements, and may lie outside the tensor (those elements load as zero and are
// not stored). A load completes `bar`'s tx-count by the box's bytes when it lands.
#define TW_TMA(rank, coord_params, load_coords, store_coords, coord_ops)                                      \
  TW_DEV void tma_load_##rank##d(const CUtensorMap* map, void* dst, void* bar, coord_params) {               \
    asm volatile("cp.async.bulk.tensor." #rank "d.shared::cluster.global.mbarrier::complete_tx::bytes "     \
                 "[%0], [%1, {" load_coords "}], [%2];\n" ::"r"(smem_addr(dst)),                              \
                 "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_addr(bar)), coord_ops                       \
                 : "memory");                                                                               \
  }                                                                                                         \
  TW_DEV void tma_store_##rank##d(const CUtensorMap* map, const void* src, coord_params) {                  \
    asm volatile("cp.async.bulk.tensor." #rank "d.global.shared::cta.bulk_group [%0, {" store_coords "}], [%1];\n" \
                 ::"l"(reinterpret_cast<uint64_t>(map)), "r"(smem_addr(src)), coord_ops                      \
                 : "memory");                                                                               \
  }
#define TW_C ,
TW_TMA(1, int32_t c0, "%3", "%2", "r"(c0))
TW_TMA(2, int32_t c0 TW_C int32_t c1, "%3, %4", "%2, %3", "r"(c0) TW_C "r"(c1))
TW_TMA(3, int32_t c0 TW_C int32_t c1 TW_C int32_t c2, "%3, %4, %5", "%2, %3, %4", "r"(c0) TW_C "r"(c1) TW_C "r"(c2))
TW_TMA(4, int32_t c0 TW_C int32_t c1 TW_C int32_t c2 TW_C int32_t c3, "%3, %4, %5, %6", "%2, %3, %4, %5",
       "r"(c0) TW_C "r"(c1) TW_C "r"(c2) TW_C "r"(c3))
TW_TMA(5, int32_t c0 TW_C int32_t c1 TW_C int32_t c2 TW_C int32_t c3 TW_C int32_t c4, "%3, %4, %5, %6, %7",
       "%2, %3, %4, %5, %6", "r"(c0) TW_C "r"(c1) TW_C "r"(c2) TW_C "r"(c3) TW_C "r"(c4))
#undef TW_C
#undef TW_TMA
TW_DEV void tma_store_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
// The shared sources of all but the newest N committed TMA store groups may be reused.
template <int N> TW_DEV void tma_store_wait() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");
}

// wgmma: fences, groups and the shared-memory matrix descriptor (start address >> 4 in bits
// 0-13, leading and stride byte offsets >> 4 in bits 16-29 and 32-45, the swizzle mode in bits
// 62-63: 1 = 128-byte, 2 = 64-byte, 3 = 32-byte rows, 0 = none).
TW_DEV void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
TW_DEV void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> TW_DEV void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
// Pins N accumulator registers here (after the wait that completes their wgmma): NVVM sees a
// wgmma's accumulators as asm outputs ready at the wgmma and would otherwise move reads of them
// above the wait. Emits no instruction.
template <int N> TW_DEV void wgmma_fence_operand(float* d) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
// Integer and packed half accumulators: N 32-bit registers.
template <int N, typename T> TW_DEV void wgmma_fence_operand(T* d) {
  uint32_t* r = reinterpret_cast<uint32_t*>(d);
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i])::"memory");
}
template <int Swizzle, int LBO, int SBO> TW_DEV uint64_t wgmma_desc(const void* p) {
  static_assert(Swizzle == 0 || Swizzle == 32 || Swizzle == 64 || Swizzle == 128, "wgmma swizzles rows of 32, 64 or 128 bytes");
  static_assert(LBO % 16 == 0 && SBO % 16 == 0 && LBO < (1 << 18) && SBO < (1 << 18),
                "descriptor byte offsets are multiples of 16 below 256 KiB");
  constexpr uint64_t mode = Swizzle == 128 ? 1 : Swizzle == 64 ? 2 : Swizzle == 32 ? 3 : 0;
  constexpr uint64_t fixed = ((uint64_t)(LBO >> 4) << 16) | ((uint64_t)(SBO >> 4) << 32) | (mode << 62);
  return fixed | (uint64_t)((smem_addr(p) & 0x3ffffu) >> 4);
}
// The descriptor of base + byte_offset, byte_offset >= 0 a multiple of 16 and the address below
// 256 KiB (as every shared address is): its start-address field is (address >> 4), which then
// moves by byte_offset >> 4 without a carry out of the field. The base's descriptor is computed
// once per tile (hoisted out of loops), each operand's is one add: for a warp-uniform offset a
// 64-bit add (one UIADD3.64 in the uniform datapath).
template <int Swizzle, int LBO, int SBO> TW_DEV uint64_t wgmma_desc(const void* base, int32_t byte_offset) {
  return wgmma_desc<Swizzle, LBO, SBO>(base) + (uint64_t)(uint32_t)(byte_offset >> 4);
}
// The same for an offset that depends on the thread (a warpgroup's rows of the tile): a 32-bit
// add on the low word, since nothing carries into the high one -- in per-thread registers a
// 64-bit add is two instructions (IADD3 + IADD3.X).
template <int Swizzle, int LBO, int SBO> TW_DEV uint64_t wgmma_desc_lo(const void* base, int32_t byte_offset) {
  const uint64_t d = wgmma_desc<Swizzle, LBO, SBO>(base);
  const uint32_t lo = (uint32_t)d + ((uint32_t)byte_offset >> 4);
  return (d & 0xffffffff00000000ull) | lo;
}


// Warp specialisation (docs/THREAD_IR.md, "Warp specialisation"). setmaxnreg and elect need
// sm_90a / sm_90; the named barriers exist on every architecture but only warp-specialised
// kernels use them.
// Register budget of this warpgroup: all 128 threads execute it together.
template <int N> TW_DEV void setmaxnreg_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N)); }
template <int N> TW_DEV void setmaxnreg_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N)); }
// True on exactly one active lane of the warp.
TW_DEV bool elect_one() {
  uint32_t pred;
  asm volatile("{\n.reg .pred tw_p;\nelect.sync _|tw_p, 0xffffffff;\nselp.u32 %0, 1, 0, tw_p;\n}\n" : "=r"(pred));
  return pred != 0;
}
#endif  // __CUDA_ARCH__ >= 900

// ------------------------------------------------------------------ named barriers
// bar.sync / bar.arrive on barrier `id` (0-15) for `count` threads (a multiple of 32); barrier 0
// is the one __syncthreads uses.
TW_DEV void named_barrier(uint32_t id, uint32_t count) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory"); }
TW_DEV void named_barrier_arrive(uint32_t id, uint32_t count) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}

// ------------------------------------------------------------------ shuffles (full warp)
// 8 and 16-bit integers travel through the int overloads of __shfl_*_sync, low-precision floats
// as their bits.
#define TW_SHFL(name, intrinsic)                                                                 \
  template <typename T> TW_DEV T name(T v, int32_t lane, int32_t width = 32) {                   \
    if constexpr (is_lowp<T>::value)                                                             \
      return T::from_bits((decltype(v.bits))intrinsic(0xffffffffu, (uint32_t)v.bits, lane, width)); \
    else                                                                                         \
      return (T)intrinsic(0xffffffffu, v, lane, width);                                          \
  }
TW_SHFL(shfl_xor, __shfl_xor_sync)
TW_SHFL(shfl_down, __shfl_down_sync)
TW_SHFL(shfl_up, __shfl_up_sync)
TW_SHFL(shfl_idx, __shfl_sync)
#undef TW_SHFL

// ------------------------------------------------------------------ T.print
// Same line format as the CPU backend; every line is one printf, so lines of different threads
// never mix. The lowering decides which threads print.
TW_DEV double print_arg(float v) { return (double)v; }
TW_DEV double print_arg(double v) { return v; }
TW_DEV long long print_arg(int8_t v) { return v; }
TW_DEV long long print_arg(int16_t v) { return v; }
TW_DEV long long print_arg(int32_t v) { return v; }
TW_DEV long long print_arg(long v) { return v; }
TW_DEV long long print_arg(long long v) { return v; }
TW_DEV unsigned long long print_arg(uint8_t v) { return v; }
TW_DEV unsigned long long print_arg(uint16_t v) { return v; }
TW_DEV unsigned long long print_arg(uint32_t v) { return v; }
TW_DEV unsigned long long print_arg(unsigned long v) { return v; }
TW_DEV unsigned long long print_arg(unsigned long long v) { return v; }
TW_DEV const char* print_arg(bool v) { return v ? "true" : "false"; }
template <typename T> TW_DEV typename enable_if<is_lowp<T>::value, double>::type print_arg(T v) {
  return (double)(float)v;
}

TW_DEV const char* print_fmt(double) { return "%s%sblock (%lld, %lld, %lld) %s%s = %g\n"; }
TW_DEV const char* print_fmt(long long) { return "%s%sblock (%lld, %lld, %lld) %s%s = %lld\n"; }
TW_DEV const char* print_fmt(unsigned long long) { return "%s%sblock (%lld, %lld, %lld) %s%s = %llu\n"; }
TW_DEV const char* print_fmt(const char*) { return "%s%sblock (%lld, %lld, %lld) %s%s = %s\n"; }

template <typename T>
TW_DEV void print_scalar(const char* msg, const char* label, long long bx, long long by, long long bz, T v) {
  auto x = print_arg(v);
  printf(print_fmt(x), msg, msg[0] ? ": " : "", bx, by, bz, label, "", x);
}

// T.print(msg="...") without a value: the message and the block.
TW_DEV void print_msg(const char* msg, long long bx, long long by, long long bz) {
  printf("%s: block (%lld, %lld, %lld)\n", msg, bx, by, bz);
}

// A tile at p with N dimensions: dims holds N extents, N element strides, N starts.
template <int N, typename T, typename... D>
TW_DEV void print_tile(const char* msg, const char* name, long long bx, long long by, long long bz, const T* p,
                       D... dims) {
  static_assert(sizeof...(D) == 3 * N, "print_tile takes extents, strides and starts");
  const long long d[3 * N] = {(long long)dims...};
  long long total = 1;
  for (int k = 0; k < N; ++k) total *= d[k];
  for (long long n = 0; n < total; ++n) {
    long long rem = n, off = 0;
    char idx[96];
    int pos = 0;
    long long ix[N];
    for (int k = N - 1; k >= 0; --k) {
      ix[k] = rem % d[k];
      rem /= d[k];
      off += ix[k] * d[N + k];
    }
    // the index text "[i, j]" built by hand: device printf has no way to print a variable-length list
    idx[pos++] = '[';
    for (int k = 0; k < N && pos < 80; ++k) {
      long long v = d[2 * N + k] + ix[k];
      if (k) { idx[pos++] = ','; idx[pos++] = ' '; }
      if (v < 0) { idx[pos++] = '-'; v = -v; }
      char tmp[24];
      int t = 0;
      do { tmp[t++] = (char)('0' + v % 10); v /= 10; } while (v && t < 20);
      while (t) idx[pos++] = tmp[--t];
    }
    idx[pos++] = ']';
    idx[pos] = 0;
    auto x = print_arg(p[off]);
    printf(print_fmt(x), msg, msg[0] ? ": " : "", bx, by, bz, name, idx, x);
  }
}

// T.cast(x, "float16" / "bfloat16", round="rs", rbits=r): stochastic rounding as PTX cvt.rs
// defines it (sm_100a+ hardware; computed here in software on every architecture): the result rounds away from zero when adding
// the random bits to the bits the conversion discards carries out, toward zero otherwise. The
// random bits are those TileLang's scalar cast gives the instruction: the low 13 (float16) or 16
// (bfloat16) bits of r. Results below the normal range take the top discarded bits (the PTX ISA
// leaves that case unstated). .satfinite, as TileLang requires: beyond the largest finite value
// (infinities too) the result is that value with the sign; NaN converts as a plain cast does.
// The same rule as tilewise/ir/stochastic_round.py, which the emulator runs.
template <int M, int NB, int EMIN> TW_DEV float stochastic_round(float x, uint32_t r, float max_finite) {
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
  static TW_DEV half cvt(float x, uint32_t r) { return half(stochastic_round<10, 13, -14>(x, r, 65504.0f)); }
};
template <> struct rs_format<bf16> {
  static TW_DEV bf16 cvt(float x, uint32_t r) {
    return bf16(stochastic_round<7, 16, -126>(x, r, 3.38953138925153547590470800371487866880e+38f));
  }
};
template <typename T> TW_DEV T cvt_rs(float x, uint32_t r) { return rs_format<T>::cvt(x, r); }

}  // namespace tw

// T.rng_*: the Philox4x32-10 generator shared with the HIP header (backend/include/tw_philox.h),
// with CUDA's spelling of the operations it needs (round-to-nearest intrinsics: never fused)
namespace tw {
TW_DEV uint32_t rng_mulhi(uint32_t a, uint32_t b) { return __umulhi(a, b); }
TW_DEV float rng_fmul(float a, float b) { return __fmul_rn(a, b); }
TW_DEV float rng_fadd(float a, float b) { return __fadd_rn(a, b); }
TW_DEV double rng_dmul(double a, double b) { return __dmul_rn(a, b); }
TW_DEV double rng_dadd(double a, double b) { return __dadd_rn(a, b); }
TW_DEV float rng_u2f(uint32_t x) { return __uint2float_rn(x); }
TW_DEV uint32_t rng_f_as_u(float x) { return __float_as_uint(x); }
TW_DEV float rng_u_as_f(uint32_t x) { return __uint_as_float(x); }
TW_DEV double rng_d_from_words(uint32_t hi, uint32_t lo) { return __hiloint2double((int)hi, (int)lo); }
TW_DEV uint32_t rng_d_lo(double x) { return (uint32_t)__double2loint(x); }
TW_DEV uint32_t rng_d_hi(double x) { return (uint32_t)__double2hiint(x); }
TW_DEV float rng_logf(float x) { return logf(x); }
TW_DEV float rng_sqrtf(float x) { return sqrtf(x); }
TW_DEV float rng_sinpif(float x) { return sinpif(x); }
TW_DEV float rng_cospif(float x) { return cospif(x); }
TW_DEV double rng_log(double x) { return log(x); }
TW_DEV double rng_sqrt(double x) { return sqrt(x); }
TW_DEV double rng_sinpi(double x) { return sinpi(x); }
TW_DEV double rng_cospi(double x) { return cospi(x); }
}  // namespace tw
#include "tw_philox.h"

#ifdef TW_GRID_SYNC
// T.sync_grid: a barrier of every thread of every block of a cooperative launch (the launcher
// checks that all blocks are resident, cuLaunchCooperativeKernel). One thread per block arrives
// on a module-wide counter; the last to arrive resets it and advances the generation the others
// wait on. The counters are zero at module load and back at zero arrivals after every barrier.
// (Defined only where a kernel uses it: the renderer defines TW_GRID_SYNC.)
namespace tw {
__device__ unsigned int grid_barrier_state[2];  // [0] arrivals, [1] generation

TW_DEV void grid_sync() {
  __syncthreads();
  if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) {
    volatile unsigned int* generation = &grid_barrier_state[1];
    const unsigned int seen = *generation;  // read before arriving: it cannot advance without us
    const unsigned int blocks = gridDim.x * gridDim.y * gridDim.z;
    __threadfence();  // this block's writes are visible before it is counted
    if (atomicAdd(&grid_barrier_state[0], 1u) == blocks - 1) {
      atomicExch(&grid_barrier_state[0], 0u);
      __threadfence();
      atomicAdd(&grid_barrier_state[1], 1u);
    } else {
      while (*generation == seen) {
      }
    }
    __threadfence();  // the other blocks' writes are visible to what follows
  }
  __syncthreads();
}

}  // namespace tw
#endif
