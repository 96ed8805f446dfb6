// tilewise HIP math library: the functions clang's AMDGPU backend cannot lower by itself without
// ROCm's device library (ocml), written from the mathematics in plain C++ (included by tw_hip.h).
//
// float (and half / bfloat16, through float): sin cos tan asin acos atan sinh cosh asinh acosh
// atanh erf log1p expm1 pow atan2 hypot nextafter and fast_sin / fast_cos / fast_tan. All but erf
// (float arithmetic, within 2.5 ulp: see erf_float) are evaluated in double: an MI300X runs fp64
// at the fp32 rate, and double's ~29 spare bits make the float result the correctly rounded one
// but for rare double roundings (within 0.501 ulp).
// double: exp exp2 exp10 log log2 log10 expm1 log1p tanh sigmoid sinh cosh asinh acosh atanh atan
// asin acos atan2 hypot nextafter (and fast_exp ... = the accurate ones), a few ulp each (the
// bounds tests/hip/test_hip_math.py asserts). double sin / cos / tan / pow / erf are not here
// (the float erf is a float algorithm): the renderer refuses them.
//
// The approximations: Cody-Waite reduction by ln 2 (hi part of 32 bits, so k * hi is exact) and
// the Taylor polynomial of expm1 on |r| <= ln2 / 2; log through s = f / (2 + f), log(1 + f) =
// f - f^2/2 + s (f^2/2 + R(s^2)) with R the series of 2 atanh; trigonometric functions with the
// Payne-Hanek reduction (the float's 24-bit significand times a 96-bit window of the bits of
// 2/pi, exact integer arithmetic) then the Taylor polynomials on |r| <= pi/4; atan by two
// half-angle steps to |a| <= tan(pi/16) and its series; float erf by two polynomials fitted to
// erf(x) / x below 1 and to erfc(x) e^(x^2) on [1, 4) (tools/fit_erfcx_hip.py).
// v_sin_f32 / v_cos_f32 (__builtin_amdgcn_sinf) are not used: they take revolutions, keep only
// |x| < 256 revolutions and are approximate; fast_sin & co. are the accurate functions here.
//
// No builtin here needs the GPU: the test (tests/hip/test_hip_math.py) compiles this header for
// the host with TW_DEV defined as `inline` and TW_HIP_MATH_HOST (which leaves out the half /
// bfloat16 overloads, whose types tw_hip.h defines) and compares against numpy. On the host,
// erf's __builtin_expf is the C library's expf; on the GPU it is LLVM's AMDGPU expansion.
#pragma once

namespace tw {
namespace hm {

TW_DEV uint64_t dbits(double x) { return __builtin_bit_cast(uint64_t, x); }
TW_DEV double dfrom(uint64_t b) { return __builtin_bit_cast(double, b); }
TW_DEV uint32_t fbits(float x) { return __builtin_bit_cast(uint32_t, x); }
TW_DEV float ffrom(uint32_t b) { return __builtin_bit_cast(float, b); }
TW_DEV bool isnan_d(double x) { return x != x; }
TW_DEV double inf_d() { return __builtin_inf(); }
TW_DEV double nan_d() { return __builtin_nan(""); }

// ln 2 = LN2_HI + LN2_LO with LN2_HI of 32 significant bits: k * LN2_HI is exact for |k| < 2^21
constexpr double LN2_HI = 0x1.62e42ff000000p-1, LN2_LO = -0x1.718432a1b0e26p-35;
constexpr double LN2 = 0x1.62e42fefa39efp-1, LN2_TAIL = 0x1.abc9e3b39803fp-56;  // double-double
constexpr double INV_LN2 = 0x1.71547652b82fep+0, INV_LN2_TAIL = 0x1.777d0ffda0d24p-56;
constexpr double LN10 = 0x1.26bb1bbb55516p+1, LN10_TAIL = -0x1.f48ad494ea3e9p-53;
constexpr double LOG10_2_HI = 0x1.3441350a00000p-2, LOG10_2_LO = -0x1.0c0219dc1da99p-39;
constexpr double LOG10_E = 0x1.bcb7b1526e50ep-2, LOG2_10 = 0x1.a934f0979a371p+1;
constexpr double PIO2 = 0x1.921fb54442d18p+0, PIO2_TAIL = 0x1.1a62633145c07p-54;
constexpr double PI = 0x1.921fb54442d18p+1, PI_TAIL = 0x1.1a62633145c07p-53;
constexpr double TWO_OVER_SQRTPI = 0x1.20dd750429b6dp+0, INV_SQRTPI = 0x1.20dd750429b6dp-1;

// e^r - 1 for |r| <= 0.35: Taylor to r^14 (the next term is below 2^-60 relative)
TW_DEV double expm1_poly(double r) {
  double p = 1.0 / 87178291200;  // 1/14!
  p = 1.0 / 6227020800 + r * p;
  p = 1.0 / 479001600 + r * p;
  p = 1.0 / 39916800 + r * p;
  p = 1.0 / 3628800 + r * p;
  p = 1.0 / 362880 + r * p;
  p = 1.0 / 40320 + r * p;
  p = 1.0 / 5040 + r * p;
  p = 1.0 / 720 + r * p;
  p = 1.0 / 120 + r * p;
  p = 1.0 / 24 + r * p;
  p = 1.0 / 6 + r * p;
  p = 0.5 + r * p;
  return r + r * (r * p);
}

// x = 2^k (1 + p): k = rint(x / ln2), p = expm1(x - k ln2)
TW_DEV double exp_reduce(double x, double* p) {
  const double k = __builtin_rint(x * INV_LN2);
  const double r = (x - k * LN2_HI) - k * LN2_LO;
  *p = expm1_poly(r);
  return k;
}

TW_DEV double exp(double x) {
  if (isnan_d(x)) return x;
  if (x > 709.8) return inf_d();
  if (x < -745.2) return 0.0;
  double p;
  const double k = exp_reduce(x, &p);
  return __builtin_ldexp(1.0 + p, (int)k);
}

TW_DEV double expm1(double x) {
  if (isnan_d(x) || x == 0.0) return x;  // ±0 keeps its sign
  if (x > 709.8) return inf_d();
  if (x < -38.0) return -1.0;  // e^x below 2^-54: -1 rounded
  if (__builtin_fabs(x) < 0.34) return expm1_poly(x);
  double p;
  const int k = (int)exp_reduce(x, &p);
  // 2^k (1 + p) - 1 = 2^k (p + (1 - 2^-k)); 1 - 2^-k is exact for |k| <= 53
  if (k > 56) return __builtin_ldexp(1.0 + p, k) - 1.0;
  return __builtin_ldexp(p + (1.0 - __builtin_ldexp(1.0, -k)), k);
}

TW_DEV double exp2(double x) {
  if (isnan_d(x)) return x;
  if (x >= 1024.0) return inf_d();
  if (x < -1076.0) return 0.0;
  const double k = __builtin_rint(x);
  const double f = x - k;  // exact, |f| <= 1/2
  const double hi = f * LN2;
  const double lo = __builtin_fma(f, LN2, -hi) + f * LN2_TAIL;  // f ln2 = hi + lo
  return __builtin_ldexp(1.0 + (expm1_poly(hi) + lo), (int)k);
}

TW_DEV double exp10(double x) {
  if (isnan_d(x)) return x;
  if (x > 308.3) return inf_d();
  if (x < -324.0) return 0.0;
  const double k = __builtin_rint(x * LOG2_10);
  // x ln10 - k ln2 with x ln10 as the pair (phi, plo); phi - k LN2_HI is exact (Sterbenz)
  const double phi = x * LN10;
  const double plo = __builtin_fma(x, LN10, -phi) + x * LN10_TAIL;
  const double r = ((phi - k * LN2_HI) - k * LN2_LO) + plo;
  return __builtin_ldexp(1.0 + expm1_poly(r), (int)k);
}

// finite x > 0 as 2^e * m, m in [sqrt(1/2), sqrt(2)); returns log(m)
TW_DEV double log_m(double x, int* e) {
  uint64_t u = dbits(x);
  int ex = (int)(u >> 52);
  if (ex == 0) {  // subnormal: scale into the normal range first
    u = dbits(x * 0x1p54);
    ex = (int)(u >> 52) - 54;
  }
  ex -= 1023;
  double m = dfrom((u & 0x000fffffffffffffull) | 0x3ff0000000000000ull);
  if (m > 0x1.6a09e667f3bcdp+0) {
    m *= 0.5;
    ex += 1;
  }
  *e = ex;
  const double f = m - 1.0;  // exact
  const double s = f / (2.0 + f);
  const double z = s * s;
  // R = 2 (z/3 + z^2/5 + ...): |s| <= 0.1716, z^12 < 2^-60
  double R = 2.0 / 25;
  R = 2.0 / 23 + z * R;
  R = 2.0 / 21 + z * R;
  R = 2.0 / 19 + z * R;
  R = 2.0 / 17 + z * R;
  R = 2.0 / 15 + z * R;
  R = 2.0 / 13 + z * R;
  R = 2.0 / 11 + z * R;
  R = 2.0 / 9 + z * R;
  R = 2.0 / 7 + z * R;
  R = 2.0 / 5 + z * R;
  R = 2.0 / 3 + z * R;
  R = z * R;
  const double hfsq = 0.5 * f * f;
  return f - (hfsq - s * (hfsq + R));
}

// NaN, negative, zero and infinite arguments of the logarithms; true if `*r` holds the result
TW_DEV bool log_special(double x, double* r) {
  if (isnan_d(x)) *r = x;
  else if (x < 0.0) *r = nan_d();
  else if (x == 0.0) *r = -inf_d();
  else if (x == inf_d()) *r = x;
  else return false;
  return true;
}

TW_DEV double log(double x) {
  double r;
  if (log_special(x, &r)) return r;
  int e;
  const double l = log_m(x, &e);
  return e * LN2_HI + (l + e * LN2_LO);
}

TW_DEV double log2(double x) {
  double r;
  if (log_special(x, &r)) return r;
  int e;
  const double l = log_m(x, &e);
  return e + (l * INV_LN2 + l * INV_LN2_TAIL);
}

TW_DEV double log10(double x) {
  double r;
  if (log_special(x, &r)) return r;
  int e;
  const double l = log_m(x, &e);
  return e * LOG10_2_HI + (l * LOG10_E + e * LOG10_2_LO);
}

// log(1 + x) = log(u) * x / (u - 1) with u = 1 + x rounded: the factor corrects u's rounding
TW_DEV double log1p(double x) {
  if (isnan_d(x) || x == inf_d()) return x;
  if (x < -1.0) return nan_d();
  if (x == -1.0) return -inf_d();
  const double u = 1.0 + x;
  if (u == 1.0) return x;
  return log(u) * (x / (u - 1.0));
}

TW_DEV double tanh(double x) {
  const double a = __builtin_fabs(x);
  if (a > 22.0) return __builtin_copysign(1.0, x);  // 1 - tanh below 2^-63
  const double e = expm1(2.0 * a);
  return __builtin_copysign(e / (e + 2.0), x);
}

TW_DEV double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

TW_DEV double sinh(double x) {
  const double a = __builtin_fabs(x);
  if (a < 0x1p-28) return x;
  double s;
  if (a < 709.0) {
    const double e = expm1(a);  // (E - 1/E) / 2 with E = e + 1
    s = 0.5 * (e + e / (e + 1.0));
  } else {
    const double h = exp(0.5 * a);  // e^a itself would overflow
    s = (0.5 * h) * h;
  }
  return __builtin_copysign(s, x);
}

TW_DEV double cosh(double x) {
  const double a = __builtin_fabs(x);
  if (a < 709.0) {
    const double E = exp(a);
    return 0.5 * E + 0.5 / E;
  }
  const double h = exp(0.5 * a);
  return (0.5 * h) * h;
}

TW_DEV double asinh(double x) {
  const double a = __builtin_fabs(x);
  if (isnan_d(x) || a < 0x1p-28) return x;
  double r;
  if (a > 0x1p28) r = log(a) + LN2;
  else if (a > 2.0) r = log(2.0 * a + 1.0 / (__builtin_sqrt(a * a + 1.0) + a));
  else r = log1p(a + a * a / (1.0 + __builtin_sqrt(1.0 + a * a)));
  return __builtin_copysign(r, x);
}

TW_DEV double acosh(double x) {
  if (isnan_d(x)) return x;
  if (x < 1.0) return nan_d();
  if (x > 0x1p28) return log(x) + LN2;
  if (x > 2.0) return log(2.0 * x - 1.0 / (x + __builtin_sqrt(x * x - 1.0)));
  const double t = x - 1.0;  // exact
  return log1p(t + __builtin_sqrt(2.0 * t + t * t));
}

TW_DEV double atanh(double x) {
  const double a = __builtin_fabs(x);
  if (isnan_d(x) || a < 0x1p-28) return x;
  const double r = a < 0.5 ? 0.5 * log1p(2.0 * a + 2.0 * a * a / (1.0 - a)) : 0.5 * log1p(2.0 * a / (1.0 - a));
  return __builtin_copysign(r, x);  // a = 1: inf; a > 1: log1p of < -1, NaN
}

// atan of a in [0, 1]
TW_DEV double atan_unit(double a) {
  if (a < 0x1p-27) return a;
  // atan(a) = 2 atan(a / (1 + sqrt(1 + a^2))), twice: a <= tan(pi/16) < 0.2
  a = a / (1.0 + __builtin_sqrt(1.0 + a * a));
  a = a / (1.0 + __builtin_sqrt(1.0 + a * a));
  const double z = a * a;
  double p = -1.0 / 25;
  p = 1.0 / 23 + z * p;
  p = -1.0 / 21 + z * p;
  p = 1.0 / 19 + z * p;
  p = -1.0 / 17 + z * p;
  p = 1.0 / 15 + z * p;
  p = -1.0 / 13 + z * p;
  p = 1.0 / 11 + z * p;
  p = -1.0 / 9 + z * p;
  p = 1.0 / 7 + z * p;
  p = -1.0 / 5 + z * p;
  p = 1.0 / 3 + z * p;
  return 4.0 * (a - a * (z * p));
}

// atan(a) for a >= 0 (inf included)
TW_DEV double atan_pos(double a) {
  if (a <= 1.0) return atan_unit(a);
  return (PIO2 - atan_unit(1.0 / a)) + PIO2_TAIL;
}

TW_DEV double atan(double x) {
  if (isnan_d(x)) return x;
  return __builtin_copysign(atan_pos(__builtin_fabs(x)), x);
}

TW_DEV double asin(double x) {
  if (isnan_d(x)) return x;
  const double a = __builtin_fabs(x);
  if (a > 1.0) return nan_d();
  return __builtin_copysign(atan_pos(a / __builtin_sqrt((1.0 - a) * (1.0 + a))), x);
}

TW_DEV double acos(double x) {
  if (isnan_d(x)) return x;
  if (__builtin_fabs(x) > 1.0) return nan_d();
  if (x == -1.0) return PI;
  return 2.0 * atan_pos(__builtin_sqrt((1.0 - x) / (1.0 + x)));
}

TW_DEV double atan2(double y, double x) {
  if (isnan_d(x) || isnan_d(y)) return x + y;
  const double ay = __builtin_fabs(y), ax = __builtin_fabs(x);
  const bool xneg = __builtin_signbit(x);
  double r;
  if (ay == 0.0) r = xneg ? PI : 0.0;  // atan2(±0, -0) = ±pi, atan2(±0, +0) = ±0
  else if (ax == inf_d()) r = ay == inf_d() ? (xneg ? 3 * PIO2 / 2 : PIO2 / 2) : (xneg ? PI : 0.0);
  else if (ax == 0.0 || ay == inf_d()) r = PIO2;
  else {
    const double t = atan_pos(ay / ax);
    r = xneg ? (PI - t) + PI_TAIL : t;
  }
  return __builtin_copysign(r, y);
}

TW_DEV double hypot(double x, double y) {
  double a = __builtin_fabs(x), b = __builtin_fabs(y);
  if (a == inf_d() || b == inf_d()) return inf_d();  // even with a NaN
  if (isnan_d(a) || isnan_d(b)) return a + b;
  if (a < b) {
    const double t = a;
    a = b;
    b = t;
  }
  if (b == 0.0) return a;
  // scale by a power of two so that the squares neither overflow nor underflow
  const int e = (int)((dbits(a) >> 52) & 0x7ff) - 1023;
  const int s = e > 500 ? -600 : (e < -500 ? 600 : 0);
  a = __builtin_ldexp(a, s);
  b = __builtin_ldexp(b, s);
  return __builtin_ldexp(__builtin_sqrt(a * a + b * b), -s);
}

TW_DEV double nextafter(double x, double y) {
  if (isnan_d(x) || isnan_d(y)) return x + y;
  if (x == y) return y;
  if (x == 0.0) return __builtin_copysign(dfrom(1), y);
  const uint64_t u = dbits(x);
  return dfrom((x < y) == (x > 0.0) ? u + 1 : u - 1);
}

TW_DEV float nextafter(float x, float y) {
  if (x != x || y != y) return x + y;
  if (x == y) return y;
  if (x == 0.0f) return __builtin_copysignf(ffrom(1), y);
  const uint32_t u = fbits(x);
  return ffrom((x < y) == (x > 0.0f) ? u + 1 : u - 1);
}

// erf in float arithmetic (the one function here not evaluated in double), within 2.5 ulp: it is
// inlined for each of a thread's accumulator values in a GELU epilogue (128 on gfx942), whose
// loop LLVM must still unroll to keep the accumulators in registers, so it is short and light on
// registers. Two polynomials fitted by tools/fit_erfcx_hip.py (Horner with fused multiply-adds):
// erf(x) / x of degree 6 in t = 2x^2 - 1 below 1, and erfc(x) e^(x^2) of degree 12 in
// t = (2x - 5) / 3 on [1, 4), times e^-x^2 (expf of x^2's rounded value, corrected by the
// rounding error: e^-(hi + lo) = e^-hi (1 - lo)); above 4 erf is 1 in float (erfc(4) < 2^-25).
TW_DEV float erf_float(float x) {
  const float a = __builtin_fabsf(x);
  float r;
  if (a < 1.0f) {
    const float t = __builtin_fmaf(2.0f * a, a, -1.0f);
    float p = 0x1.4a9dab0ed345cp-20f;
    p = __builtin_fmaf(p, t, -0x1.28701fce073b1p-16f);
    p = __builtin_fmaf(p, t, 0x1.c827dc3d70adap-13f);
    p = __builtin_fmaf(p, t, -0x1.2b8df444ba003p-9f);
    p = __builtin_fmaf(p, t, 0x1.4543691da5eb4p-6f);
    p = __builtin_fmaf(p, t, -0x1.1fd163adda797p-3f);
    p = __builtin_fmaf(p, t, 0x1.ee51eb23846e0p-1f);
    r = a * p;
  } else if (a < 4.0f) {
    const float t = __builtin_fmaf(2.0f / 3, a, -5.0f / 3);
    float p = 0x1.cfb11215829a7p-17f;
    p = __builtin_fmaf(p, t, -0x1.35c7d47c72906p-15f);
    p = __builtin_fmaf(p, t, 0x1.ccee512d3a46bp-15f);
    p = __builtin_fmaf(p, t, -0x1.2de1d0a552dcdp-13f);
    p = __builtin_fmaf(p, t, 0x1.b2a4ab9547e2ep-12f);
    p = __builtin_fmaf(p, t, -0x1.0aa19e4ebf732p-10f);
    p = __builtin_fmaf(p, t, 0x1.3acbbc7951ceap-9f);
    p = __builtin_fmaf(p, t, -0x1.6cdc58c5b7a35p-8f);
    p = __builtin_fmaf(p, t, 0x1.99433a671f008p-7f);
    p = __builtin_fmaf(p, t, -0x1.ba7638bb2610dp-6f);
    p = __builtin_fmaf(p, t, 0x1.cba83096cdc28p-5f);
    p = __builtin_fmaf(p, t, -0x1.c8ca3fbfbd594p-4f);
    p = __builtin_fmaf(p, t, 0x1.afbb3f42d4a4ap-3f);
    const float hi = a * a, lo = __builtin_fmaf(a, a, -hi);
    const float e = __builtin_expf(-hi);
    r = __builtin_fmaf(-__builtin_fmaf(-e, lo, e), p, 1.0f);
  } else {
    r = a == a ? 1.0f : a;  // NaN stays NaN
  }
  return __builtin_copysignf(r, x);
}

// ---------------------------------------------------------------- float trigonometry
// The bits of 2/pi after the binary point, behind one word of zeros (the integer part and the
// positions a small argument's window reaches before it)
TW_DEV uint32_t two_over_pi_word(int i) {
  switch (i) {
    case 0: return 0u;
    case 1: return 0xa2f9836eu;
    case 2: return 0x4e441529u;
    case 3: return 0xfc2757d1u;
    case 4: return 0xf534ddc0u;
    case 5: return 0xdb629599u;
    case 6: return 0x3c439041u;
    case 7: return 0xfe5163abu;
    default: return 0xdebbc561u;
  }
}

// finite float x = r + q pi/2 with |r| <= pi/4 (r in double, q mod 4)
TW_DEV double reduce_pio2(float x, int* q) {
  const double ax = __builtin_fabs((double)x);
  if (ax <= 0.78539816339744828) {
    *q = 0;
    return (double)x;
  }
  const uint32_t u = fbits(x) & 0x7fffffffu;
  const uint64_t m = (u & 0x7fffffu) | 0x800000u;  // |x| >= pi/4 is normal
  const int e = (int)(u >> 23) - 150;                // |x| = m 2^e, e >= -24
  // bits e-1 .. e+94 of 2/pi (bit i weighs 2^-i): those before give multiples of 4 in m 2^e 2/pi
  const int j = e + 30;  // the table position of bit e-1 (bit i is at i + 31: word 0 holds bits -31 .. 0)
  const int w = j >> 5, s = j & 31;
  uint32_t W[3];
  for (int k = 0; k < 3; ++k) {
    const uint64_t pair = ((uint64_t)two_over_pi_word(w + k) << 32) | two_over_pi_word(w + k + 1);
    W[k] = (uint32_t)(pair >> (32 - s));
  }
  // P = m * W (120 bits) = m 2^e 2/pi mod 4 scaled by 2^94
  const uint64_t p2 = m * W[2];
  const uint64_t p1 = m * W[1] + (p2 >> 32);
  const uint64_t p0 = m * W[0] + (p1 >> 32);
  int quadrant = (int)(p0 >> 30) & 3;
  // the 94-bit fraction: 64 bits in hi, 30 below it in lo; as signed, a fraction >= 1/2 is the
  // distance back from the next quadrant
  const uint64_t hi = (p0 << 34) | ((p1 & 0xffffffffu) << 2) | ((p2 & 0xffffffffu) >> 30);
  const uint64_t lo = p2 & 0x3fffffffu;
  if (hi >> 63) quadrant += 1;
  const double f = (double)(int64_t)hi * 0x1p-64 + (double)lo * 0x1p-94;
  const double r = f * PIO2 + f * PIO2_TAIL;
  *q = (x < 0.0f ? -quadrant : quadrant) & 3;
  return x < 0.0f ? -r : r;
}

// sin and cos on |r| <= pi/4: Taylor to r^17 and r^18 (the next terms below 2^-60 relative)
TW_DEV double sin_poly(double r) {
  const double z = r * r;
  double p = -1.0 / 121645100408832000;  // -1/19!
  p = 1.0 / 355687428096000 + z * p;
  p = -1.0 / 1307674368000 + z * p;
  p = 1.0 / 6227020800 + z * p;
  p = -1.0 / 39916800 + z * p;
  p = 1.0 / 362880 + z * p;
  p = -1.0 / 5040 + z * p;
  p = 1.0 / 120 + z * p;
  p = -1.0 / 6 + z * p;
  return r + r * (z * p);
}
TW_DEV double cos_poly(double r) {
  const double z = r * r;
  double p = -1.0 / 6402373705728000;  // -1/18!
  p = 1.0 / 20922789888000 + z * p;
  p = -1.0 / 87178291200 + z * p;
  p = 1.0 / 479001600 + z * p;
  p = -1.0 / 3628800 + z * p;
  p = 1.0 / 40320 + z * p;
  p = -1.0 / 720 + z * p;
  p = 1.0 / 24 + z * p;
  return 1.0 - 0.5 * z + z * (z * p);
}

TW_DEV float sinf(float x) {
  if (!(__builtin_fabsf(x) < __builtin_inff())) return x - x;  // NaN, and NaN for ±inf
  if (x == 0.0f) return x;  // ±0 (the polynomial's r + r * (-0) would lose the sign)
  int q;
  const double r = reduce_pio2(x, &q);
  const double v = (q & 1) ? cos_poly(r) : sin_poly(r);
  return (float)((q & 2) ? -v : v);
}
TW_DEV float cosf(float x) {
  if (!(__builtin_fabsf(x) < __builtin_inff())) return x - x;
  int q;
  const double r = reduce_pio2(x, &q);
  const double v = (q & 1) ? sin_poly(r) : cos_poly(r);
  return (float)(((q + 1) & 2) ? -v : v);
}
TW_DEV float tanf(float x) {
  if (!(__builtin_fabsf(x) < __builtin_inff())) return x - x;
  if (x == 0.0f) return x;
  int q;
  const double r = reduce_pio2(x, &q);
  const double s = sin_poly(r), c = cos_poly(r);
  return (float)((q & 1) ? -c / s : s / c);
}

// pow for double-evaluated float arguments (C's special values; |y log x| of a float result
// stays below 2^8, so log's double rounding leaves the float result correct)
TW_DEV double pow_via_double(double x, double y) {
  if (y == 0.0 || x == 1.0) return 1.0;  // even for a NaN
  if (isnan_d(x) || isnan_d(y)) return x + y;
  const double a = __builtin_fabs(x);
  if (a == 1.0 && __builtin_fabs(y) == inf_d()) return 1.0;  // (-1)^±inf
  const bool integer = __builtin_floor(y) == y;
  const bool odd = integer && __builtin_fabs(y) < 0x1p53 && __builtin_fmod(y, 2.0) != 0.0;
  if (__builtin_signbit(x) && !integer && a != 0.0 && a != inf_d()) return nan_d();
  double r;
  if (a == 0.0) r = y < 0.0 ? inf_d() : 0.0;
  else if (a == inf_d()) r = y < 0.0 ? 0.0 : inf_d();
  else r = exp(y * log(a));  // ±inf exponents give inf and 0
  return (__builtin_signbit(x) && odd) ? -r : r;
}

// integer pow as the other targets compute it (the double power, truncated and saturated):
// exact by squaring while the power stays below 2^53
TW_DEV double ipow(double a, long long b) {
  const bool neg = b < 0;
  unsigned long long n = neg ? 0ull - (unsigned long long)b : (unsigned long long)b;
  double r = 1.0, s = a;
  while (n) {
    if (n & 1) r *= s;
    s *= s;
    n >>= 1;
  }
  return neg ? 1.0 / r : r;
}

// sin(pi x) (cosine: cos(pi x)) for the Box-Muller angle of T.rng_rand_float(dist="normal")
// (backend/include/tw_philox.h): x = q / 2 + r with q = rint(2x) and |r| <= 1/4 exactly, then
// the polynomials above on pi r (within about an ulp of double)
TW_DEV double sincospi(double x, bool cosine) {
  if (!(__builtin_fabs(x) < __builtin_inf())) return x - x;
  const double q = __builtin_rint(2.0 * x);
  const double r = x - 0.5 * q;
  const double a = r * (2.0 * PIO2) + r * (2.0 * PIO2_TAIL);
  const int k = ((int)__builtin_fmod(q, 4.0) + (cosine ? 1 : 0)) & 3;
  const double v = (k & 1) ? cos_poly(a) : sin_poly(a);
  return (k & 2) ? -v : v;
}

}  // namespace hm

// ---------------------------------------------------------------- the tw:: functions
// float through the double versions above (trigonometry and pow have float-specific ones)
#define TW_HM_F32(name, expr)                                                                   \
  TW_DEV float name(float x) { return expr; }
TW_HM_F32(sin, hm::sinf(x)) TW_HM_F32(cos, hm::cosf(x)) TW_HM_F32(tan, hm::tanf(x))
TW_HM_F32(fast_sin, hm::sinf(x)) TW_HM_F32(fast_cos, hm::cosf(x)) TW_HM_F32(fast_tan, hm::tanf(x))
TW_HM_F32(asin, (float)hm::asin(x)) TW_HM_F32(acos, (float)hm::acos(x)) TW_HM_F32(atan, (float)hm::atan(x))
TW_HM_F32(sinh, (float)hm::sinh(x)) TW_HM_F32(cosh, (float)hm::cosh(x))
TW_HM_F32(asinh, (float)hm::asinh(x)) TW_HM_F32(acosh, (float)hm::acosh(x)) TW_HM_F32(atanh, (float)hm::atanh(x))
TW_HM_F32(erf, hm::erf_float(x)) TW_HM_F32(log1p, (float)hm::log1p(x)) TW_HM_F32(expm1, (float)hm::expm1(x))
#undef TW_HM_F32
TW_DEV float pow(float x, float y) { return (float)hm::pow_via_double(x, y); }
TW_DEV float atan2(float y, float x) { return (float)hm::atan2(y, x); }
TW_DEV float hypot(float x, float y) {  // exact squares in double
  if (__builtin_fabsf(x) == __builtin_inff() || __builtin_fabsf(y) == __builtin_inff()) return __builtin_inff();
  const double a = x, b = y;
  return (float)__builtin_sqrt(a * a + b * b);
}
TW_DEV float nextafter(float x, float y) { return hm::nextafter(x, y); }

#define TW_HM_F64(name)                                                                         \
  TW_DEV double name(double x) { return hm::name(x); }
TW_HM_F64(exp) TW_HM_F64(exp2) TW_HM_F64(exp10) TW_HM_F64(log) TW_HM_F64(log2) TW_HM_F64(log10)
TW_HM_F64(expm1) TW_HM_F64(log1p) TW_HM_F64(tanh) TW_HM_F64(sigmoid) TW_HM_F64(sinh) TW_HM_F64(cosh)
TW_HM_F64(asinh) TW_HM_F64(acosh) TW_HM_F64(atanh) TW_HM_F64(atan) TW_HM_F64(asin) TW_HM_F64(acos)
#undef TW_HM_F64
TW_DEV double fast_exp(double x) { return hm::exp(x); }
TW_DEV double fast_exp10(double x) { return hm::exp10(x); }
TW_DEV double fast_log(double x) { return hm::log(x); }
TW_DEV double fast_log2(double x) { return hm::log2(x); }
TW_DEV double fast_log10(double x) { return hm::log10(x); }
TW_DEV double atan2(double y, double x) { return hm::atan2(y, x); }
TW_DEV double hypot(double x, double y) { return hm::hypot(x, y); }
TW_DEV double nextafter(double x, double y) { return hm::nextafter(x, y); }

#ifndef TW_HIP_MATH_HOST
// half and bfloat16 through float (tw_hip.h's types)
#define TW_HM_LOWP1(name)                                                                       \
  template <typename T> TW_DEV typename enable_if<is_lowp<T>::value, T>::type name(T x) {      \
    return T(name((float)x));                                                                   \
  }
TW_HM_LOWP1(sin) TW_HM_LOWP1(cos) TW_HM_LOWP1(tan) TW_HM_LOWP1(fast_sin) TW_HM_LOWP1(fast_cos)
TW_HM_LOWP1(fast_tan) TW_HM_LOWP1(asin) TW_HM_LOWP1(acos) TW_HM_LOWP1(atan) TW_HM_LOWP1(sinh)
TW_HM_LOWP1(cosh) TW_HM_LOWP1(asinh) TW_HM_LOWP1(acosh) TW_HM_LOWP1(atanh) TW_HM_LOWP1(erf)
TW_HM_LOWP1(log1p) TW_HM_LOWP1(expm1)
#undef TW_HM_LOWP1
#define TW_HM_LOWP2(name)                                                                       \
  template <typename T> TW_DEV typename enable_if<is_lowp<T>::value, T>::type name(T a, T b) { \
    return T(name((float)a, (float)b));                                                         \
  }
TW_HM_LOWP2(atan2) TW_HM_LOWP2(hypot)
#undef TW_HM_LOWP2
// pow of half / bfloat16 through float; of integers the double power truncated and saturated
template <typename T> TW_DEV T pow(T a, T b) {
  if constexpr (is_lowp<T>::value) return T(pow((float)a, (float)b));
  else return to_int<T>(hm::ipow((double)a, (long long)b));
}
#endif

}  // namespace tw
