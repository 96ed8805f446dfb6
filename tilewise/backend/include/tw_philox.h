// T.rng_init / T.rng_rand / T.rng_rand_float (language/rng.py): Philox4x32-10 with a thread's
// uint32_t[16] state (docs/THREAD_IR.md, "rng_init"; the emulator's numpy twin is emulator/rng.py).
// Only constant indices into the state, so it stays in registers.
//
// Target-neutral: included by tw_cuda.h (NVRTC) and tw_hip.h (clang for AMD GPUs), so that both
// give the same numbers bit for bit. The including header defines TW_DEV, uint32_t and, in
// namespace tw, the operations whose spelling differs between the two (CUDA's intrinsics, plain
// C++ for clang, which compiles with -ffp-contract=off):
//   rng_mulhi(a, b)                  the high 32 bits of the 64-bit product a * b
//   rng_fmul / rng_fadd              float multiply / add rounded to nearest, never fused
//   rng_dmul / rng_dadd              the same for double
//   rng_u2f(x)                       uint32 -> float rounded to nearest
//   rng_f_as_u / rng_u_as_f          float <-> its bits
//   rng_d_from_words(hi, lo) / rng_d_hi / rng_d_lo   double <-> its two 32-bit words
//   rng_logf rng_sqrtf rng_sinpif rng_cospif, rng_log rng_sqrt rng_sinpi rng_cospi   (float, double)
#pragma once

namespace tw {
TW_DEV void philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                          uint32_t* out) {
#pragma unroll
  for (int r = 0; r < 10; ++r) {
    if (r) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const uint32_t hi0 = rng_mulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint32_t hi1 = rng_mulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

TW_DEV void rng_block(uint32_t* s) { philox4x32_10(s[0], s[1], s[2], s[3], s[4], s[5], s + 7); }

// the 128-bit counter s[0..3] += n << (32 * word), word 0 or 2
TW_DEV void rng_add(uint32_t* s, unsigned long long n, int word) {
  unsigned long long t = 0;
  uint32_t carry = 0;
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    const unsigned long long add = w == word ? (n & 0xffffffffull) : w == word + 1 ? (n >> 32) : 0ull;
    t = (unsigned long long)s[w] + add + carry;
    s[w] = (uint32_t)t;
    carry = (uint32_t)(t >> 32);
  }
}

TW_DEV void rng_init(uint32_t* s, unsigned long long seed, unsigned long long seq, unsigned long long off) {
#pragma unroll
  for (int i = 0; i < 16; ++i) s[i] = 0u;
  s[4] = (uint32_t)seed;
  s[5] = (uint32_t)(seed >> 32);
  rng_add(s, seq, 2);
  rng_add(s, off >> 2, 0);
  s[6] = (uint32_t)(off & 3ull);
  rng_block(s);
}

TW_DEV uint32_t rng_rand(uint32_t* s) {
  const uint32_t i = s[6];
  const uint32_t x = i == 0 ? s[7] : i == 1 ? s[8] : i == 2 ? s[9] : s[10];
  if (i == 3) {
    rng_add(s, 1ull, 0);
    rng_block(s);
    s[6] = 0u;
  } else {
    s[6] = i + 1;
  }
  return x;
}

TW_DEV float rng_uniform32(uint32_t x) { return rng_fadd(rng_fmul(rng_u2f(x), 2.3283064365386963e-10f), 1.1641532182693481e-10f); }

TW_DEV double rng_uniform64(uint32_t x, uint32_t y) {
  const unsigned long long z = (unsigned long long)x ^ ((unsigned long long)y << 21);
  return rng_dadd(rng_dmul((double)z, 1.1102230246251565e-16), 5.551115123125783e-17);
}

TW_DEV float rng_rand_float(uint32_t* s) { return rng_uniform32(rng_rand(s)); }

TW_DEV double rng_rand_double(uint32_t* s) {
  const uint32_t x = rng_rand(s);
  return rng_uniform64(x, rng_rand(s));
}

// Box-Muller on two uniforms (shared with tw_curand.h); the second value of the pair waits in the
// state for the next call
TW_DEV float rng_box_muller_float(uint32_t* s, float u, float v) {
  const float rad = rng_sqrtf(rng_fmul(-2.0f, rng_logf(u)));
  const float turns = rng_fmul(v, 2.0f);  // the angle 2 pi v, in half turns (no range reduction)
  s[11] = 1u;
  s[12] = rng_f_as_u(rng_fmul(rad, rng_cospif(turns)));
  return rng_fmul(rad, rng_sinpif(turns));
}

TW_DEV double rng_box_muller_double(uint32_t* s, double u, double v) {
  const double rad = rng_sqrt(rng_dmul(-2.0, rng_log(u)));
  const double turns = rng_dmul(2.0, v);
  const double second = rng_dmul(rad, rng_cospi(turns));
  s[13] = 1u;
  s[14] = rng_d_lo(second);
  s[15] = rng_d_hi(second);
  return rng_dmul(rad, rng_sinpi(turns));
}

TW_DEV float rng_normal_float(uint32_t* s) {
  if (s[11]) {
    s[11] = 0u;
    return rng_u_as_f(s[12]);
  }
  const float u = rng_uniform32(rng_rand(s));
  return rng_box_muller_float(s, u, rng_uniform32(rng_rand(s)));
}

TW_DEV double rng_normal_double(uint32_t* s) {
  if (s[13]) {
    s[13] = 0u;
    return rng_d_from_words(s[15], s[14]);
  }
  const double u = rng_rand_double(s);
  return rng_box_muller_double(s, u, rng_rand_double(s));
}
}  // namespace tw
