// tilewise CPU GEMM on 8-bit integer tiles: C[int32] += op(A)[int8|uint8] * op(B)[int8|uint8],
// exact (int32 with wrap-around, as numpy's int64 product cast to int32).
//
// Included from tw_gemm.h, whose `gemm` entry sends int8/uint8 operands with an int32 C here
// (`use_lowp_int`). The fp32 path would convert every element to int32 and multiply lane by lane
// (8 products per 256-bit instruction); here both operands are widened to int16 and packed as
// PAIRS along k, one pair per 32-bit lane, so that one multiply-add-pairs instruction (`pmaddwd`:
// lo*lo + hi*hi into int32) does 16 products per 256-bit vector. int16 products of 8-bit values
// and their pair sums (at most 2 * 255 * 255) fit int32 exactly, signed or unsigned, so no bias
// or correction term is needed and int8 x uint8 mixes work alike.
//
// Why not `vpmaddubsw` (32 u8 x s8 products per instruction): its int16 pair sums saturate
// (2 * 255 * 127 > 32767), so it is not exact on general inputs. Why not `vpdpbusd` (AVX512-VNNI,
// 4 products per lane, the +128 bias on A and -128 * colsum(B) correction): this code is built and
// tested on the development machine, a Zen3 (AVX2, no AVX-512, no VNNI), where that instruction
// does not exist; `vpdpwssd` (the same pairs as `pmaddwd` with the add fused) is used when the
// compiler targets AVX512-VNNI or AVX-VNNI, with the same packing.
//
// float16 and bfloat16 operands stay in tw_gemm.h: converted to float32 in the packing (bfloat16
// by a shift, float16 by F16C's vcvtph2ps) and multiplied by the fp32 micro-kernel. Measured on
// the Zen3 (1 thread, 1024^3, canonical 128x128x32 tiles): fp16 29.1-29.6 ms, bf16 29.3-29.6 ms,
// fp32 30.3-31.8 ms, i.e. both at the fp32 rate; the integer rebias that F16C replaced cost 8 %.
// Converting float16 to bfloat16 instead would drop 3 of its 11 significand bits (not the
// product the program asked for), and even with vdpbf16ps (Zen4, 2x the fp32 FMA rate) an exact
// float16 product needs each operand split into two bfloat16 (hi + lo, exact: 8 + 8 bits >= 11)
// and 3-4 bfloat16 products per float16 product: 0.5-0.67x the fp32 rate, besides vdpbf16ps
// flushing denormals. So float16 goes through float32, on every x86 CPU.
// bfloat16 itself would gain from vdpbf16ps (pairs along k, as here) on an avx512_bf16 CPU;
// without one to test on, it is not written.
//
// Layouts, per K chunk of KC (even, the last chunk's odd k padded with zeros):
//   B packed: KC/2 rows of NP 32-bit pairs, pair (p, j) = (B[2p][j], B[2p+1][j]) as int16 lo/hi;
//   A packed: M rows of KC/2 pairs when A is M x K, KC/2 rows of M pairs when A is transposed;
//   the micro-kernel broadcasts A's pair (r, p) and multiplies it into NV vectors of B's row p.
// Written with GCC vector extensions and __builtin_ia32_* for the reason tw_gemm.h gives.
#pragma once

namespace tw {
namespace gemm_detail {

template <typename T> struct is_int8 : std::integral_constant<bool, std::is_same<T, int8_t>::value ||
                                                                     std::is_same<T, uint8_t>::value> {};

#if TW_GEMM_VECTOR && (defined(__x86_64__) || defined(__i386__)) && defined(__SSE2__)

template <typename TA, typename TB, typename TC> constexpr bool use_lowp_int() {
  return is_int8<TA>::value && is_int8<TB>::value && std::is_same<TC, int32_t>::value;
}

namespace lowp {

constexpr int W = kVecBytes / 4;  // int32 lanes (= k pairs) per vector
typedef Simd<int32_t>::V V;
typedef Simd<int32_t>::U U;
typedef Vec<int16_t, 2 * W>::V H;  // the same bytes as int16 lanes

// Register block: accumulators plus NV B vectors, a broadcast and (without VNNI) the product.
constexpr int NV = 2;
constexpr int MR = kVecRegs >= 32 ? 8 : 6;

// acc + (a.lo * b.lo + a.hi * b.hi) per 32-bit lane, for int16 pairs.
// (The branches follow kVecBytes's own conditions in tw_gemm.h.)
static inline __attribute__((always_inline)) V dot2(V acc, V a, V b) {
#if defined(__AVX512F__) && defined(__AVX512VNNI__)
  return __builtin_ia32_vpdpwssd_v16si(acc, a, b);
#elif defined(__AVX512F__) && defined(__AVX512BW__)
  return acc + __builtin_ia32_pmaddwd512_mask((H)a, (H)b, (V){}, (unsigned short)-1);
#elif !defined(__AVX512F__) && defined(__AVX__) && (defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__)))
  return __builtin_ia32_vpdpwssd_v8si(acc, a, b);
#elif !defined(__AVX512F__) && defined(__AVX2__)
  return acc + __builtin_ia32_pmaddwd256((H)a, (H)b);
#elif !defined(__AVX__)
  return acc + __builtin_ia32_pmaddwd128((H)a, (H)b);
#else
  // AVX-512 without BW, or AVX without AVX2 (no -march=native x86 CPU of the last decade): lane
  // by lane.
  const H x = (H)a, y = (H)b;
  V r = acc;
  for (int i = 0; i < W; ++i) r[i] += (int32_t)x[2 * i] * y[2 * i] + (int32_t)x[2 * i + 1] * y[2 * i + 1];
  return r;
#endif
}

// The 32-bit pair (lo, hi) of two 8-bit values widened to int16.
template <typename S> static inline int32_t pair(S lo, S hi) {
  return (int32_t)((uint32_t)(uint16_t)(int16_t)lo | ((uint32_t)(uint16_t)(int16_t)hi << 16));
}

// Shuffle indices interleaving the int16 lanes of x and y: the first (HI: second) halves, as
// x0 y0 x1 y1 ... (index 2W + i is y's lane i).
template <bool HI, int... E> constexpr H interleave_mask(std::integer_sequence<int, E...>) {
  return H{(short)((E % 2 ? 2 * W : 0) + (HI ? W : 0) + E / 2)...};
}

// out[0:NOUT] = pairs (r0[j], r1[j]) for j < n, zero beyond; r1 == nullptr stands for a row of
// zeros (the padding of an odd K). Whole vectors widen 2W bytes of each row and interleave them.
template <int n, int NOUT, typename S>
static inline __attribute__((always_inline)) void pack_pair_rows(const S* __restrict__ r0, const S* __restrict__ r1,
                                                                   int32_t* __restrict__ out) {
  typedef typename Vec<S, 2 * W>::U B8;
  typedef typename Vec<int16_t, 2 * W>::U HU;
  const H lo = interleave_mask<false>(std::make_integer_sequence<int, 2 * W>());
  const H hi = interleave_mask<true>(std::make_integer_sequence<int, 2 * W>());
  int j = 0;
  for (; j + 2 * W <= n; j += 2 * W) {
    const H x = __builtin_convertvector(*(const B8*)(r0 + j), H);
    const H y = r1 ? __builtin_convertvector(*(const B8*)(r1 + j), H) : (H){};
    *(HU*)(out + j) = __builtin_shuffle(x, y, lo);
    *(HU*)(out + j + W) = __builtin_shuffle(x, y, hi);
  }
  for (; j < n; ++j) out[j] = pair(r0[j], r1 ? r1[j] : S(0));
  for (; j < NOUT; ++j) out[j] = 0;
}

// out[0:NOUT] (int32 pairs) = row[0:n] widened to int16, zero-padded: one row of M x K A.
template <int n, int NOUT, typename S>
static inline __attribute__((always_inline)) void pack_row(const S* __restrict__ row, int32_t* __restrict__ out) {
  typedef typename Vec<S, 2 * W>::U B8;
  typedef typename Vec<int16_t, 2 * W>::U HU;
  int16_t* o = (int16_t*)out;
  int j = 0;
  for (; j + 2 * W <= n; j += 2 * W) *(HU*)(o + j) = __builtin_convertvector(*(const B8*)(row + j), H);
  for (; j < n; ++j) o[j] = (int16_t)row[j];
  for (; j < 2 * NOUT; ++j) o[j] = 0;
}

// Packs op(B)[k0 : k0+KC, 0:N] into KC/2 rows of NP pairs. A transposed B (N x K) already holds
// the pairs of a column next to each other: W rows of 2W k widen into W vectors of W pairs, and a
// 32-bit W x W transpose in registers turns them into pair rows.
template <int N, int KC, int NP, bool TRANS_B, int LDB, typename TB>
inline void pack_b(const TB* B, int k0, int32_t* out) {
  constexpr int KP = cdiv(KC, 2);
  if constexpr (TRANS_B) {
    typedef typename Vec<TB, 2 * W>::U B8;
    constexpr int NB = N / W, PB = (KC / 2) / W;
    for (int jb = 0; jb < NB; ++jb)
      for (int pb = 0; pb < PB; ++pb) {
        V rows[W];
#pragma GCC unroll 64
        for (int r = 0; r < W; ++r)
          rows[r] = (V)__builtin_convertvector(*(const B8*)(B + (jb * W + r) * LDB + k0 + pb * 2 * W), H);
        transpose_rounds<int32_t, W / 2>(rows);
#pragma GCC unroll 64
        for (int q = 0; q < W; ++q) *(U*)(out + (pb * W + q) * NP + jb * W) = rows[q];
      }
    // Ragged edges: the pairs past the whole blocks for whole column blocks, then the last columns.
    const TB* b = B + k0;
    for (int p = PB * W; p < KP; ++p)
      for (int j = 0; j < NB * W; ++j)
        out[p * NP + j] = pair(b[j * LDB + 2 * p], 2 * p + 1 < KC ? b[j * LDB + 2 * p + 1] : TB(0));
    for (int p = 0; p < KP; ++p) {
      for (int j = NB * W; j < N; ++j)
        out[p * NP + j] = pair(b[j * LDB + 2 * p], 2 * p + 1 < KC ? b[j * LDB + 2 * p + 1] : TB(0));
      for (int j = N; j < NP; ++j) out[p * NP + j] = 0;
    }
  } else {
    for (int p = 0; p < KP; ++p) {
      const TB* r0 = B + (k0 + 2 * p) * LDB;
      pack_pair_rows<N, NP>(r0, 2 * p + 1 < KC ? r0 + LDB : nullptr, out + p * NP);
    }
  }
}

// Packs op(A)'s K chunk: M rows of KC/2 pairs (A is M x K), or KC/2 rows of M pairs (transposed).
template <int M, int KC, bool TRANS_A, int LDA, typename TA>
inline void pack_a(const TA* A, int k0, int32_t* out) {
  constexpr int KP = cdiv(KC, 2);
  if constexpr (TRANS_A) {
    for (int p = 0; p < KP; ++p) {
      const TA* r0 = A + (k0 + 2 * p) * LDA;
      pack_pair_rows<M, M>(r0, 2 * p + 1 < KC ? r0 + LDA : nullptr, out + p * M);
    }
  } else {
    for (int i = 0; i < M; ++i) pack_row<KC, KP>(A + i * LDA + k0, out + i * KP);
  }
}

// C[MR x (NV vectors)] += A pairs * B pairs over KP pair steps; A pair (r, p) at a[r*AR + p*AP],
// B pair row p at b[p*LDB]. NLAST valid columns in the last vector (B is zero-padded past N).
template <int MR, int NVB, int NLAST, int KP, int AR, int AP, int LDB, int LDC>
static inline __attribute__((always_inline)) void micro(const int32_t* __restrict__ a, const int32_t* __restrict__ b,
                                                         int32_t* __restrict__ c) {
  V acc[MR][NVB];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NVB; ++v) {
      if (v == NVB - 1 && NLAST != W) {
        V t = {};
        std::memcpy(&t, c + r * LDC + v * W, NLAST * sizeof(int32_t));
        acc[r][v] = t;
      } else {
        acc[r][v] = *(const U*)(c + r * LDC + v * W);
      }
    }
  }
#pragma GCC unroll 4
  for (int p = 0; p < KP; ++p) {
    V bv[NVB];
#pragma GCC unroll 8
    for (int v = 0; v < NVB; ++v) bv[v] = *(const U*)(b + p * LDB + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const V s = a[r * AR + p * AP] - (V){};  // the pair broadcast
#pragma GCC unroll 8
      for (int v = 0; v < NVB; ++v) acc[r][v] = dot2(acc[r][v], s, bv[v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NVB; ++v) {
      if (v == NVB - 1 && NLAST != W) {
        V t = acc[r][v];
        std::memcpy(c + r * LDC + v * W, &t, NLAST * sizeof(int32_t));
      } else {
        *(U*)(c + r * LDC + v * W) = acc[r][v];
      }
    }
  }
}

template <int R, int N, int KP, int AR, int AP, int LDB, int LDC>
static inline __attribute__((always_inline)) void row_block(const int32_t* a, const int32_t* b, int32_t* c) {
  constexpr int NR = NV * W;
  constexpr int NFULL = N / NR;
  constexpr int NREM = N % NR;
  for (int j = 0; j < NFULL; ++j) micro<R, NV, W, KP, AR, AP, LDB, LDC>(a, b + j * NR, c + j * NR);
  if constexpr (NREM > 0) {
    constexpr int NV_LAST = cdiv(NREM, W);
    constexpr int NLAST = NREM - (NV_LAST - 1) * W;
    micro<R, NV_LAST, NLAST, KP, AR, AP, LDB, LDC>(a, b + NFULL * NR, c + NFULL * NR);
  }
}

}  // namespace lowp

template <int M, int N, int K, bool TRANS_A, bool TRANS_B, int LDA, int LDB, int LDC, typename TA, typename TB>
inline void gemm_int8(const TA* A, const TB* B, int32_t* C) {
  using namespace lowp;
  constexpr int NP = cdiv(N, W) * W;
  // K chunks (even) keep the packed B chunk within ~32 KB (every row block re-reads it) and the
  // packed A chunk within ~64 KB.
  constexpr int KC_B = cmax(2 * W, 32768 / (NP * 4) * 2 / (2 * W) * (2 * W));
  constexpr int KC_A = cmax(2 * W, 65536 / (M * 4) * 2 / (2 * W) * (2 * W));
  constexpr int KC = cmin(K, cmin(1024, cmin(KC_A, KC_B)));
  static_assert(KC == K || KC % 2 == 0, "K chunks are whole pairs");
  constexpr int NCH = K / KC;
  constexpr int KREM = K % KC;
  constexpr int KPC = cdiv(KC, 2);
  constexpr size_t BBYTES = ((size_t)KPC * NP * 4 + 63) / 64 * 64;
  char* s = (char*)scratch<0>(BBYTES + (size_t)KPC * M * 4);
  int32_t* bpack = (int32_t*)s;
  int32_t* apack = (int32_t*)(s + BBYTES);
  auto chunk = [&](int k0, auto kc_tag) {
    constexpr int kc = decltype(kc_tag)::value;
    constexpr int kp = cdiv(kc, 2);
    constexpr int AR = TRANS_A ? 1 : kp, AP = TRANS_A ? M : 1;
    pack_b<N, kc, NP, TRANS_B, LDB>(B, k0, bpack);
    pack_a<M, kc, TRANS_A, LDA>(A, k0, apack);
    constexpr int MFULL = M / MR;
    constexpr int MREM = M % MR;
    for (int i = 0; i < MFULL; ++i)
      row_block<MR, N, kp, AR, AP, NP, LDC>(apack + i * MR * AR, bpack, C + i * MR * LDC);
    if constexpr (MREM > 0)
      row_block<MREM, N, kp, AR, AP, NP, LDC>(apack + MFULL * MR * AR, bpack, C + MFULL * MR * LDC);
  };
  for (int ch = 0; ch < NCH; ++ch) chunk(ch * KC, std::integral_constant<int, KC>());
  if constexpr (KREM > 0) chunk(NCH * KC, std::integral_constant<int, KREM>());
}

#else  // no x86 vector builtins: tw_gemm.h's generic path

template <typename TA, typename TB, typename TC> constexpr bool use_lowp_int() { return false; }
template <int M, int N, int K, bool TRANS_A, bool TRANS_B, int LDA, int LDB, int LDC, typename TA, typename TB>
inline void gemm_int8(const TA*, const TB*, int32_t*) {}

#endif

}  // namespace gemm_detail
}  // namespace tw
