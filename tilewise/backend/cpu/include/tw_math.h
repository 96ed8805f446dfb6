// tilewise CPU math for float: exp, exp2, exp10, log, log2, log10, tanh, erf, sigmoid.
//
// libm's float functions are opaque calls that GCC cannot vectorise without -ffast-math, so one
// exp2 per element would make a T.Parallel loop scalar (in attention and softmax the exponentials
// cost more than the GEMMs). These are branch-free: every special case is a select, the scaling by
// 2^n is integer arithmetic on the exponent field, and the polynomials are Horner chains, which
// GCC turns into whole-vector code inside any loop. Accuracy is within 2 ulp of the correctly
// rounded result over the whole float range (tests/test_cpu_math.py checks it against numpy),
// including denormal inputs and results, overflow to inf, -inf, NaN and signed zero.
//
// The polynomial coefficients are minimax fits (iteratively reweighted least squares against
// 40-digit references) of the functions named next to them, rounded to float.
#pragma once
#include <cstdint>

namespace tw {
namespace fmath {

inline uint32_t as_u32(float x) { return __builtin_bit_cast(uint32_t, x); }
inline float as_f32(uint32_t u) { return __builtin_bit_cast(float, u); }
inline float fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
// c ? a : b, by masks: GCC turns a chain of ?: into branches (jump threading, or sinking a value
// used on one side only into that side), which stops vectorisation; bit operations stay put.
inline uint32_t select_u32(bool c, uint32_t a, uint32_t b) {
  uint32_t m = 0u - (uint32_t)c;
  return (a & m) | (b & ~m);
}
inline float select(bool c, float a, float b) { return as_f32(select_u32(c, as_u32(a), as_u32(b))); }
inline float copysign(float mag, float sgn) {
  return as_f32((as_u32(mag) & 0x7fffffffu) | (as_u32(sgn) & 0x80000000u));
}
inline float fabs(float x) { return as_f32(as_u32(x) & 0x7fffffffu); }

// Adding and subtracting 1.5 * 2^23 rounds |x| < 2^22 to the nearest integer (ties to even);
// the integer is also in the sum's low mantissa bits.
constexpr float kShifter = 12582912.0f;

// p * 2^n for n in [-252, 254], with one rounding: 2^n is split into two normal powers of two,
// the first product is exact and the second rounds, correctly also into the denormals.
inline float scale2(float p, uint32_t n) {
  uint32_t n1 = (uint32_t)((int32_t)n >> 1);
  uint32_t n2 = n - n1;
  return p * as_f32((n1 + 127u) << 23) * as_f32((n2 + 127u) << 23);
}

// e^r for |r| <= ln(2)/2: 1 + r * Q(r), Q a fit of (e^r - 1) / r.
inline float exp_poly(float r) {
  float q = 0.0013843627f;
  q = fma(q, r, 0.008374179f);
  q = fma(q, r, 0.041668005f);
  q = fma(q, r, 0.16666432f);
  q = fma(q, r, 0.49999994f);
  q = fma(q, r, 1.0f);
  return fma(q, r, 1.0f);
}

inline float exp2(float x) {
  // Outside [-151, 129] the result is 0 or inf anyway; NaN passes the clamps unchanged.
  float xc = select(x < -151.0f, -151.0f, x);
  xc = select(xc > 129.0f, 129.0f, xc);
  float t = xc + kShifter;
  float n = t - kShifter;
  float r = xc - n;  // exact, in [-0.5, 0.5]
  // 2^r = 1 + r * Q(r), Q a fit of (2^r - 1) / r.
  float q = 0.00015353362f;
  q = fma(q, r, 0.0013398874f);
  q = fma(q, r, 0.009618437f);
  q = fma(q, r, 0.055503324f);
  q = fma(q, r, 0.24022648f);
  q = fma(q, r, 0.6931472f);
  return scale2(fma(q, r, 1.0f), as_u32(t) - as_u32(kShifter));
}

// ln 2 and log10(2) split Cody-Waite style: n * hi is exact for |n| < 512.
constexpr float kLn2Hi = 0.693145751953125f, kLn2Lo = 1.42860682030941723212e-6f;
constexpr float kLog2e = 1.44269504088896340736f;

inline float exp(float x) {
  float xc = select(x < -105.0f, -105.0f, x);
  xc = select(xc > 90.0f, 90.0f, xc);
  float t = fma(xc, kLog2e, kShifter);
  float n = t - kShifter;
  float r = fma(-n, kLn2Hi, xc);
  r = fma(-n, kLn2Lo, r);
  return scale2(exp_poly(r), as_u32(t) - as_u32(kShifter));
}

inline float exp10(float x) {
  constexpr float kLog2_10 = 3.32192809488736234787f;
  constexpr float kLog10_2Hi = 0.30102920532226562500f, kLog10_2Lo = 7.9034155188e-7f;
  constexpr float kLn10 = 2.30258509299404568402f;
  float xc = select(x < -46.0f, -46.0f, x);
  xc = select(xc > 39.0f, 39.0f, xc);
  float t = fma(xc, kLog2_10, kShifter);
  float n = t - kShifter;
  float r = fma(-n, kLog10_2Hi, xc);
  r = fma(-n, kLog10_2Lo, r);  // x = n log10(2) + r, |r| <= log10(2)/2
  return scale2(exp_poly(r * kLn10), as_u32(t) - as_u32(kShifter));
}

// x = 2^k * m with m in [sqrt(1/2), sqrt(2)); log(m) = hi + lo, |lo| < |hi| / 10. x must be
// positive and finite (denormals included); the callers select the special cases.
inline void log_reduce(float x, float& k, float& hi, float& lo) {
  bool tiny = x < 1.17549435e-38f;
  float xs = x * select(tiny, 8388608.0f, 1.0f);  // denormals: scaled by 2^23 first
  uint32_t u = as_u32(xs) - 0x3f3504f3u;          // 0x3f3504f3 = sqrt(1/2)
  float m = as_f32((u & 0x007fffffu) + 0x3f3504f3u);
  k = (float)((int32_t)u >> 23) - select(tiny, 23.0f, 0.0f);
  // log(1 + f) = 2 atanh(s), s = f / (2 + f): with f = 2s + s f this is f - s (f - R),
  // R = 2s^2/3 + 2s^4/5 + ... (|s| < 0.172, so four terms reach float precision).
  float f = m - 1.0f;
  float s = f / (2.0f + f);
  float z = s * s;
  float R = fma(z, 2.0f / 9.0f, 2.0f / 7.0f);
  R = fma(R, z, 2.0f / 5.0f);
  R = fma(R, z, 2.0f / 3.0f);
  R = R * z;
  hi = f;
  lo = -s * (f - R);
}

inline float log_special(float x, float finite) {
  float r = select(x == 0.0f, -__builtin_inff(), finite);
  r = select(x < 0.0f, __builtin_nanf(""), r);
  r = select(x == __builtin_inff(), x, r);
  return select(x != x, x, r);
}

inline float log(float x) {
  float k, hi, lo;
  log_reduce(x, k, hi, lo);
  return log_special(x, fma(k, kLn2Hi, fma(k, kLn2Lo, lo) + hi));
}

// c * (hi + lo) for c = ch + cl, as a head and an error term.
inline float mul_split(float ch, float cl, float hi, float lo, float& err) {
  float p = hi * ch;
  err = fma(hi, ch, -p) + fma(hi, cl, lo * ch);
  return p;
}

inline float log2(float x) {
  float k, hi, lo, err;
  log_reduce(x, k, hi, lo);
  float p = mul_split(1.442695f, 1.925963e-08f, hi, lo, err);
  float sum = k + p;
  float sum_err = (k - sum) + p;  // exact: |k| >= 1 > |p| unless k = 0
  return log_special(x, sum + (sum_err + err));
}

inline float log10(float x) {
  constexpr float kLog10_2Hi = 0.30102920532226562500f, kLog10_2Lo = 7.9034155188e-7f;
  float k, hi, lo, err;
  log_reduce(x, k, hi, lo);
  float p = mul_split(0.4342945f, -1.010305e-08f, hi, lo, err);
  float a = k * kLog10_2Hi;  // exact
  float sum = a + p;
  float sum_err = (a - sum) + p;
  return log_special(x, sum + (sum_err + fma(k, kLog10_2Lo, err)));
}

inline float tanh(float x) {
  float a = fabs(x);
  // |x| < 0.625: x + x^3 P(x^2), P a fit of (tanh(x) - x) / x^3.
  float z = a * a;
  float p = 0.002142962f;
  p = fma(p, z, -0.008177399f);
  p = fma(p, z, 0.021700703f);
  p = fma(p, z, -0.053946763f);
  p = fma(p, z, 0.13333206f);
  p = fma(p, z, -0.3333333f);
  float small = fma(p * z, a, a);
  // otherwise 1 - 2 / (e^(2|x|) + 1), which is 1 once e^(2|x|) overflows.
  float large = 1.0f - 2.0f / (exp(2.0f * a) + 1.0f);
  return copysign(select(a < 0.625f, small, large), x);
}

inline float erf(float x) {
  float ax = fabs(x);
  // Past 3.95 the result is 1 (selected at the end), so both branches run on |x| capped at 4:
  // uncapped, e^(-x^2) is a denormal or zero for |x| > 9.4, 1 / |x| a denormal and x^2 inf for
  // huge |x|, and on x86 every vector with a denormal result takes a microcode assist (measured:
  // examples/gemm/example_gemm_epilogue.py's GELU of GEMM results, most |x| > 10, one thread,
  // 29.5-31.1 ms uncapped, 28.2-29.3 capped). The result is the same bit for bit (checked over
  // all 2^32 floats); NaN passes the compare unchanged.
  float a = select(ax > 4.0f, 4.0f, ax);
  float z = a * a;
  // |x| < 0.9: x P(x^2), P a fit of erf(x) / x. Its constant term 2/sqrt(pi) is split in two
  // floats and the leading product is the last rounding, for accuracy near 0.
  float p = 8.538868e-05f;
  p = fma(p, z, -0.0008181935f);
  p = fma(p, z, 0.005204437f);
  p = fma(p, z, -0.026860753f);
  p = fma(p, z, 0.112837195f);
  p = fma(p, z, -0.37612635f);
  p = fma(p, z, -5.8635383e-8f);  // 2/sqrt(pi) - 1.1283792f
  float small = fma(a, 1.1283792f, a * p);
  // otherwise 1 - e^(-x^2) h(1/x), h a fit of erfc(x) e^(x^2). x^2 = z + zl exactly, and
  // e^(-z - zl) = e^(-z) (1 - zl) to float precision, which keeps large x accurate.
  float u = 1.0f / a;
  float h = 0.0072227027f;
  h = fma(h, u, -0.06087588f);
  h = fma(h, u, 0.23010024f);
  h = fma(h, u, -0.5092159f);
  h = fma(h, u, 0.7094267f);
  h = fma(h, u, -0.577673f);
  h = fma(h, u, 0.07443148f);
  h = fma(h, u, 0.5534888f);
  h = fma(h, u, 0.0006784233f);
  float zl = fma(a, a, -z);
  float e = exp(-z);
  float large = 1.0f - fma(-e, zl, e) * h;
  float r = select(a < 0.9f, small, large);
  r = select(ax > 3.95f, 1.0f, r);  // erfc(3.95) < 2^-26: erf rounds to 1
  return copysign(r, x);
}

// 1 / (1 + e^-x), as e^x / (1 + e^x) for negative x so that the exponential stays <= 1 (it
// would overflow before the result reaches the denormals). The rounding error of 1 + e is
// exact (|e| <= 1) and corrects the quotient.
inline float sigmoid(float x) {
  float e = exp(-fabs(x));
  float d = 1.0f + e;
  float dl = (1.0f - d) + e;
  float q = select(x < 0.0f, e, 1.0f) / d;
  return fma(-q, dl / d, q);
}

}  // namespace fmath
}  // namespace tw

