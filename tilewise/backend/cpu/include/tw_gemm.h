// tilewise CPU GEMM on tiles: C[M x N] += op(A)[M x K] * op(B)[K x N].
//
// Operands are row-major tiles with compile-time leading dimensions. TRANS_A means A is stored
// K x M, TRANS_B means B is stored N x K. Every shape and stride is a template parameter because
// each T.gemm in a kernel has static tile shapes; the compiler then folds all addressing into
// immediates and unrolls the register block completely.
//
// The micro-kernel keeps an MR x (NV vectors) block of C in registers and, per k, loads NV vectors
// of a B row and broadcasts MR elements of A into FMAs. It is written with GCC vector extensions
// rather than <immintrin.h>: that header alone costs ~0.4 s of g++ time per kernel, and the
// extensions give the same instructions (the FMAs through the builtins `madd` calls, since kernels
// are compiled with -ffp-contract=off).
//
// Operands are used in place when they already have the accumulator type and B's rows are
// contiguous (A may be transposed: its elements are broadcast one at a time anyway). Otherwise
// (transposed B, low-precision inputs, an N that is not a whole number of vectors) they are
// packed, converted to the accumulator type, into a per-thread scratch buffer inside the call.
// Accumulators: float for float16/bfloat16/float8 inputs, int32 for int8/uint8 (whose products
// go through tw_gemm_lowp.h), else the C type.
// A `tw::via<R>` operand (float32 values that the packing rounds through R: a dequantised tile,
// transform/fuse_gemm_producers.py, tw_gemm_via.h) is always packed.
#pragma once
#include <utility>

#include "tw_cpu.h"
#include "tw_gemm_via.h"  // operands rounded in the packing (tw::via)

#if defined(__GNUC__) && !defined(TW_GEMM_SCALAR)
#define TW_GEMM_VECTOR 1
#else
#define TW_GEMM_VECTOR 0
#endif

namespace tw {
namespace gemm_detail {

// The type the products are summed in, given the type of the C tile.
template <typename TC> struct Acc { typedef TC type; };
template <> struct Acc<half> { typedef float type; };
template <> struct Acc<bf16> { typedef float type; };

template <typename T> struct is_fp8 : std::false_type {};
template <> struct is_fp8<fp8_e4m3> : std::true_type {};
template <> struct is_fp8<fp8_e5m2> : std::true_type {};

// float8 decodes through a 256-entry table (the fp8 struct's own conversion calls ldexp).
template <typename F8> inline const float* fp8_table() {
  static const struct Table {
    float v[256];
    Table() {
      for (int i = 0; i < 256; ++i) {
        F8 x;
        x.bits = (uint8_t)i;
        v[i] = (float)x;
      }
    }
  } table;
  return table.v;
}

// Element conversion into the accumulator type.
template <typename T, typename S> struct Convert {
  const float* lut = nullptr;
  Convert() {
    if constexpr (is_fp8<S>::value) lut = fp8_table<S>();
  }
  inline T operator()(S x) const {
    if constexpr (is_fp8<S>::value) return (T)lut[x.bits];
    else if constexpr (is_via<S>::value) return (T)x.rounded();
    else if constexpr (std::is_same<S, bf16>::value) return (T)bitcast<float>((uint32_t)x.bits << 16);
    else if constexpr (std::is_same<S, half>::value) return (T)(float)x;
    // a tfloat32 operand reads with its low 13 bits ignored (tw_cpu.h), as the tensor cores read it
    else if constexpr (std::is_same<S, tf32>::value) return (T)(float)x;
    else return (T)x;
  }
};

// Per-thread scratch memory (slot 0: packed panels, slot 1: a float copy of a low-precision C
// tile); it grows on demand and is reused for the thread's lifetime.
struct Scratch {
  void* p = nullptr;
  size_t n = 0;
  ~Scratch() { free(p); }
};
template <int SLOT> inline void* scratch(size_t bytes) {
  static thread_local Scratch s;
  if (bytes > s.n) {
    free(s.p);
    s.p = nullptr;
    s.n = 0;
    if (posix_memalign(&s.p, 64, bytes) != 0) {
      std::fprintf(stderr, "tilewise: T.gemm could not allocate %zu bytes of scratch memory\n", bytes);
      std::abort();
    }
    s.n = bytes;
  }
  return s.p;
}

constexpr int cmin(int a, int b) { return a < b ? a : b; }
constexpr int cmax(int a, int b) { return a > b ? a : b; }
constexpr int cdiv(int a, int b) { return (a + b - 1) / b; }

#if TW_GEMM_VECTOR

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
constexpr int kVecRegs = 32;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
constexpr int kVecRegs = 16;
#else
constexpr int kVecBytes = 16;
constexpr int kVecRegs = 16;
#endif

// Vector types of N elements; class-scope typedefs, because g++ drops the vector attribute from
// a typedef that depends on a function template's parameters.
template <typename E, int N> struct Vec {
  typedef E V __attribute__((vector_size(N * sizeof(E))));
  typedef E U __attribute__((vector_size(N * sizeof(E)), aligned(sizeof(E)), may_alias));
};

template <typename T> struct Simd {
  typedef T V __attribute__((vector_size(kVecBytes)));
  // Element-aligned alias for unaligned vector loads and stores inside tiles.
  typedef T U __attribute__((vector_size(kVecBytes), aligned(sizeof(T)), may_alias));
  typedef typename std::conditional<sizeof(T) == 4, int32_t, int64_t>::type IT;
  typedef IT I __attribute__((vector_size(kVecBytes)));  // shuffle indices
  static constexpr int W = kVecBytes / (int)sizeof(T);
};

// Register block: MR rows x NV vectors of accumulators, leaving registers for the NV B vectors
// and a broadcast. 8 x 2 vectors on AVX-512 (16 of 32 registers: enough independent FMA chains
// to cover the FMA latency, and M = 128 or 64 tiles split without a remainder); the classic
// 6 x 2 with 16 registers (AVX2); 4 x 2 for 16-byte vectors.
template <typename T> struct Block {
  static constexpr int NV = 2;
  static constexpr int MR = kVecRegs >= 32 ? 8 : (kVecBytes >= 32 ? 6 : 4);
};

// acc + s * b in one fused multiply-add per lane. The CPU target compiles with -ffp-contract=off,
// so that g++ fuses only the fma the IR asks for (as NVRTC with --fmad=false does: one numerical
// model on every target, docs/API.md "Numbers"); a GEMM's summation order is its own, so its
// micro-kernel fuses explicitly, with the builtins <immintrin.h> would call (that header alone costs
// ~0.4 s of g++ time per kernel).
template <typename V, typename T>
static inline __attribute__((always_inline)) V madd(V acc, T s, V b) {
  const V sv = s - (V){};  // s broadcast (x - 0 is x for every x, -0 included, so g++ folds it)
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, float>::value && sizeof(V) == 64)
    return __builtin_ia32_vfmaddps512_mask(sv, b, acc, (unsigned short)-1, 4);
  if constexpr (std::is_same<T, double>::value && sizeof(V) == 64)
    return __builtin_ia32_vfmaddpd512_mask(sv, b, acc, (unsigned char)-1, 4);
#endif
#if defined(__FMA__)
  if constexpr (std::is_same<T, float>::value && sizeof(V) == 32) return __builtin_ia32_vfmaddps256(sv, b, acc);
  if constexpr (std::is_same<T, double>::value && sizeof(V) == 32) return __builtin_ia32_vfmaddpd256(sv, b, acc);
  if constexpr (std::is_same<T, float>::value && sizeof(V) == 16) return __builtin_ia32_vfmaddps(sv, b, acc);
  if constexpr (std::is_same<T, double>::value && sizeof(V) == 16) return __builtin_ia32_vfmaddpd(sv, b, acc);
#endif
  return acc + sv * b;
}

// C[MR x (NV vectors)] += A-panel * B-panel over KC steps. A element (r, k) is at a[r*AR + k*AK];
// B row k starts at b[k*LDB]. NLAST is the number of valid columns in the last vector; a partial
// last vector of C goes through a zero-padded temporary (its B columns are zero-padded by packing).
template <int MR, int NV, int NLAST, int KC, int AR, int AK, int LDB, int LDC, typename T>
static inline __attribute__((always_inline)) void micro(const T* __restrict__ a, const T* __restrict__ b,
                                                         T* __restrict__ c) {
  typedef typename Simd<T>::V V;
  typedef typename Simd<T>::U U;
  constexpr int W = Simd<T>::W;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      if (v == NV - 1 && NLAST != W) {
        V t = {};
        std::memcpy(&t, c + r * LDC + v * W, NLAST * sizeof(T));
        acc[r][v] = t;
      } else {
        acc[r][v] = *(const U*)(c + r * LDC + v * W);
      }
    }
  }
#pragma GCC unroll 4
  for (int k = 0; k < KC; ++k) {
    V bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = *(const U*)(b + k * LDB + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const T s = a[r * AR + k * AK];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = madd(acc[r][v], s, bv[v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      if (v == NV - 1 && NLAST != W) {
        V t = acc[r][v];
        std::memcpy(c + r * LDC + v * W, &t, NLAST * sizeof(T));
      } else {
        *(U*)(c + r * LDC + v * W) = acc[r][v];
      }
    }
  }
}

// Asks for the MR rows of the next register block of C (its first cache line per row) while this
// one runs. A tile's accumulator is reloaded by every call (64 KiB for 128 x 128 fp32: beyond L1,
// and in L3 when a band of 16 blocks is live, transform/gemm_bands.py); unprefetched, each register
// block began with MR cache misses that out-of-order execution only partly hid (the 4096^3 fp32
// GEMM gained 4-5 %, docs/PERFORMANCE.md "C prefetch"). Only for a C tile larger than half of L1:
// a smaller one stays in L1 between calls, and the prefetches cost a few % at small K (64 x 64 x
// 16). Prefetches never fault, so the one past the tile's end is harmless.
template <int MR, int LDC, typename T>
static inline __attribute__((always_inline)) void prefetch_c(const T* next) {
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) __builtin_prefetch(next + r * LDC, 1, 3);
}

// One block of MR rows against every column panel of the tile; PF_C: prefetch_c the next block.
template <int MR, int N, int KC, int AR, int AK, int LDB, int LDC, bool PF_C, typename T>
static inline __attribute__((always_inline)) void row_block(const T* a, const T* b, T* c) {
  constexpr int W = Simd<T>::W;
  constexpr int NV = Block<T>::NV;
  constexpr int NR = NV * W;
  constexpr int NFULL = N / NR;
  constexpr int NREM = N % NR;
  for (int j = 0; j < NFULL; ++j) {
    // the next block: the next panel (the remainder's included), else the next row block's first
    if constexpr (PF_C) prefetch_c<MR, LDC>(j + 1 < NFULL || NREM > 0 ? c + (j + 1) * NR : c + MR * LDC);
    micro<MR, NV, W, KC, AR, AK, LDB, LDC>(a, b + j * NR, c + j * NR);
  }
  if constexpr (NREM > 0) {
    constexpr int NV_LAST = cdiv(NREM, W);
    constexpr int NLAST = NREM - (NV_LAST - 1) * W;
    micro<MR, NV_LAST, NLAST, KC, AR, AK, LDB, LDC>(a, b + NFULL * NR, c + NFULL * NR);
  }
}

// Transposes a W x W block held as W row vectors, in place: log2(W) rounds; round H exchanges
// the off-diagonal H x H sub-blocks of every 2H x 2H block with two-source shuffles whose index
// vectors are compile-time constants (so g++ picks fixed shuffle instructions).
template <typename I, int W, int H, bool HI, int... J>
constexpr I stage_mask(std::integer_sequence<int, J...>) {
  return I{(HI ? ((J & H) ? W + J : J + H) : ((J & H) ? W + J - H : J))...};
}
template <typename T, int H>
static inline __attribute__((always_inline)) void transpose_rounds(typename Simd<T>::V* rows) {
  if constexpr (H >= 1) {
    typedef typename Simd<T>::V V;
    typedef typename Simd<T>::I I;
    constexpr int W = Simd<T>::W;
    constexpr I lo = stage_mask<I, W, H, false>(std::make_integer_sequence<int, W>());
    constexpr I hi = stage_mask<I, W, H, true>(std::make_integer_sequence<int, W>());
#pragma GCC unroll 64
    for (int r = 0; r < W; ++r)
      if (!(r & H)) {
        V x = rows[r], y = rows[r + H];
        rows[r] = __builtin_shuffle(x, y, lo);
        rows[r + H] = __builtin_shuffle(x, y, hi);
      }
    transpose_rounds<T, H / 2>(rows);
  }
}

#if defined(__F16C__) && defined(__AVX__) && !defined(__AVX512F__)
#define TW_GEMM_F16C 1
#else
#define TW_GEMM_F16C 0
#endif

// dst[0:n] = src[0:n] converted to T; whole vectors where the conversion has a vector form
// (float16 by exponent rebias, bfloat16 by shift, int8/uint8 by widening), scalars otherwise.
template <int n, typename T, typename S, typename Cvt>
static inline __attribute__((always_inline)) void convert_run(const S* __restrict__ src, T* __restrict__ dst,
                                                               const Cvt& cvt) {
  typedef typename Simd<T>::V V;
  typedef typename Simd<T>::U U;
  constexpr int W = Simd<T>::W;
  int j = 0;
  if constexpr (is_via<S>::value && std::is_same<T, float>::value) {
    via_run<n>(src, dst);
    return;
  } else if constexpr (std::is_same<S, T>::value) {
    std::memcpy(dst, src, n * sizeof(T));
    return;
  } else if constexpr (std::is_same<T, float>::value && (std::is_same<S, half>::value || std::is_same<S, bf16>::value)) {
    typedef typename Vec<uint16_t, W>::U H;
    typedef typename Vec<uint32_t, W>::V U32;
    for (; j + W <= n; j += W) {
      U32 u = __builtin_convertvector(*(const H*)(src + j), U32);
      if constexpr (std::is_same<S, bf16>::value) {
        *(U*)(dst + j) = (V)(u << 16);
      } else {
#if TW_GEMM_F16C
        // one vcvtph2ps (exact, as the rebias below); 256-bit vectors only: the AVX-512 form is
        // untested here (the development machine is a Zen3)
        *(U*)(dst + j) = __builtin_ia32_vcvtph2ps256((typename Vec<int16_t, W>::V)*(const H*)(src + j));
        continue;
#endif
        // Shift exponent and mantissa into place and rebias by 2^112 (exact, subnormals
        // included); infinities and NaNs keep an all-ones exponent.
        const U32 em = (u & 0x7fffu) << 13;
        U32 bits = (U32)((V)em * 0x1p112f);
        bits = em >= 0x0f800000u ? (em | 0x7f800000u) : bits;
        *(U*)(dst + j) = (V)(bits | ((u & 0x8000u) << 16));
      }
    }
  } else if constexpr (std::is_same<T, int32_t>::value && sizeof(S) == 1 && std::is_integral<S>::value) {
    typedef typename Vec<S, W>::U B8;
    for (; j + W <= n; j += W) *(U*)(dst + j) = __builtin_convertvector(*(const B8*)(src + j), V);
  }
  for (; j < n; ++j) dst[j] = cvt(src[j]);
}

// Packs op(B)[k0 : k0+KC, 0:N] into KC rows of NP (zero-padded past N), converted to T.
// A transposed B is read in W x W blocks (W contiguous k of W rows) and turned in registers.
template <int N, int KC, int NP, bool TRANS_B, int LDB, typename T, typename TB, typename CvtB>
inline void pack_b(const TB* B, int k0, T* out, const CvtB& cvt) {
  if constexpr (TRANS_B) {
    typedef typename Simd<T>::V V;
    typedef typename Simd<T>::U U;
    constexpr int W = Simd<T>::W;
    constexpr int NB = N / W, KB = KC / W;
    for (int jb = 0; jb < NB; ++jb)
      for (int kb = 0; kb < KB; ++kb) {
        V rows[W];
#pragma GCC unroll 64
        for (int r = 0; r < W; ++r) {
          const TB* src = B + (jb * W + r) * LDB + k0 + kb * W;
          if constexpr (std::is_same<TB, T>::value) {
            rows[r] = *(const U*)src;
          } else {
            T tmp[W];
            convert_run<W>(src, tmp, cvt);
            std::memcpy(&rows[r], tmp, sizeof(V));
          }
        }
        transpose_rounds<T, W / 2>(rows);
#pragma GCC unroll 64
        for (int q = 0; q < W; ++q) *(U*)(out + (kb * W + q) * NP + jb * W) = rows[q];
      }
    // Ragged edges: the last K rows of whole column blocks, then the last columns.
    for (int k = KB * W; k < KC; ++k)
      for (int j = 0; j < NB * W; ++j) out[k * NP + j] = cvt(B[j * LDB + k0 + k]);
    for (int k = 0; k < KC; ++k) {
      for (int j = NB * W; j < N; ++j) out[k * NP + j] = cvt(B[j * LDB + k0 + k]);
      for (int j = N; j < NP; ++j) out[k * NP + j] = T(0);
    }
  } else {
    for (int k = 0; k < KC; ++k) {
      T* row = out + k * NP;
      convert_run<N>(B + (k0 + k) * LDB, row, cvt);
      for (int j = N; j < NP; ++j) row[j] = T(0);
    }
  }
}

// Packs A's K chunk [k0, k0+KC) converted to T, keeping its orientation so that the runs are
// contiguous: KC rows of M when A is transposed, else M rows of KC.
template <int M, int KC, bool TRANS_A, int LDA, typename T, typename TA, typename CvtA>
inline void pack_a(const TA* A, int k0, T* out, const CvtA& cvt) {
  if constexpr (TRANS_A) {
    for (int k = 0; k < KC; ++k) convert_run<M>(A + (k0 + k) * LDA, out + k * M, cvt);
  } else {
    for (int i = 0; i < M; ++i) convert_run<KC>(A + i * LDA + k0, out + i * KC, cvt);
  }
}

// All row blocks for one K chunk: A element (i, k) is at a[i*AR + k*AK]; b holds KC rows of LDB.
template <int M, int N, int KC, int AR, int AK, int LDB, int LDC, typename T>
inline void k_chunk(const T* a, const T* b, T* C) {
  constexpr int MR = Block<T>::MR;
  constexpr int MFULL = M / MR;
  constexpr int MREM = M % MR;
  // A remainder of fewer than MR / 2 rows would run with too few independent FMA chains to
  // cover the FMA latency (2 rows x 2 vectors: half the rate); the last full block and the
  // remainder then split into two blocks of nearly equal height (M = 128 with MR = 6: 20 blocks
  // of 6, then 4 + 4).
  constexpr bool SPLIT = MFULL > 0 && MREM > 0 && 2 * MREM < MR;
  constexpr int MMAIN = SPLIT ? MFULL - 1 : MFULL;
  constexpr bool PF = (size_t)M * LDC * sizeof(T) > 16384;  // C beyond half of L1: prefetch_c
  for (int i = 0; i < MMAIN; ++i) row_block<MR, N, KC, AR, AK, LDB, LDC, PF>(a + i * MR * AR, b, C + i * MR * LDC);
  if constexpr (SPLIT) {
    constexpr int H1 = (MR + MREM + 1) / 2, H2 = MR + MREM - H1;
    row_block<H1, N, KC, AR, AK, LDB, LDC, PF>(a + MMAIN * MR * AR, b, C + MMAIN * MR * LDC);
    row_block<H2, N, KC, AR, AK, LDB, LDC, PF>(a + (MMAIN * MR + H1) * AR, b, C + (MMAIN * MR + H1) * LDC);
  } else if constexpr (MREM > 0) {
    row_block<MREM, N, KC, AR, AK, LDB, LDC, PF>(a + MFULL * MR * AR, b, C + MFULL * MR * LDC);
  }
}

template <int M, int N, int K, bool TRANS_A, bool TRANS_B, int LDA, int LDB, int LDC, typename T, typename TA,
          typename TB>
inline void gemm_acc(const TA* A, const TB* B, T* C) {
  constexpr int W = Simd<T>::W;
  constexpr bool PACK_A = !std::is_same<TA, T>::value;
  constexpr bool PACK_B = TRANS_B || !std::is_same<TB, T>::value || N % W != 0;
  constexpr int NP = cdiv(N, W) * W;
  // K chunks keep a packed B chunk within ~32 KB (every row block re-reads it) and a packed A
  // chunk within ~64 KB; operands used in place are not chunked.
  constexpr int KC_B = PACK_B ? cmax(W, 32768 / (NP * (int)sizeof(T)) / W * W) : K;
  constexpr int KC_A = PACK_A ? cmax(W, 65536 / (M * (int)sizeof(T)) / W * W) : K;
  constexpr int KC = cmin(K, (PACK_A || PACK_B) ? cmin(512, cmin(KC_A, KC_B)) : K);
  constexpr int NCH = K / KC;
  constexpr int KREM = K % KC;
  constexpr size_t BBYTES = PACK_B ? ((size_t)KC * NP * sizeof(T) + 63) / 64 * 64 : 0;
  constexpr size_t ABYTES = PACK_A ? (size_t)KC * M * sizeof(T) : 0;
  T* bpack = nullptr;
  T* apack = nullptr;
  if constexpr (PACK_A || PACK_B) {
    char* s = (char*)scratch<0>(BBYTES + ABYTES);
    bpack = (T*)s;
    apack = (T*)(s + BBYTES);
  }
  Convert<T, TA> cvta;
  Convert<T, TB> cvtb;
  auto chunk = [&](int k0, auto kc_tag) {
    constexpr int kc = decltype(kc_tag)::value;
    // A element (i, k): in place at A[i*AR + k*AK], packed at apack[i*PR + k*PK].
    constexpr int AR = TRANS_A ? 1 : LDA, AK = TRANS_A ? LDA : 1;
    constexpr int PR = TRANS_A ? 1 : kc, PK = TRANS_A ? M : 1;
    constexpr int LB = PACK_B ? NP : LDB;
    const T* b;
    if constexpr (PACK_B) {
      pack_b<N, kc, NP, TRANS_B, LDB>(B, k0, bpack, cvtb);
      b = bpack;
    } else {
      b = (const T*)B + k0 * LDB;
    }
    if constexpr (PACK_A) {
      pack_a<M, kc, TRANS_A, LDA>(A, k0, apack, cvta);
      k_chunk<M, N, kc, PR, PK, LB, LDC>(apack, b, C);
    } else {
      k_chunk<M, N, kc, AR, AK, LB, LDC>((const T*)A + k0 * AK, b, C);
    }
  };
  for (int ch = 0; ch < NCH; ++ch) chunk(ch * KC, std::integral_constant<int, KC>());
  if constexpr (KREM > 0) chunk(NCH * KC, std::integral_constant<int, KREM>());
}

#else  // portable scalar fallback

template <int M, int N, int K, bool TRANS_A, bool TRANS_B, int LDA, int LDB, int LDC, typename T, typename TA,
          typename TB>
inline void gemm_acc(const TA* A, const TB* B, T* C) {
  Convert<T, TA> cvta;
  Convert<T, TB> cvtb;
  for (int i = 0; i < M; ++i)
    for (int k = 0; k < K; ++k) {
      const T a = cvta(TRANS_A ? A[k * LDA + i] : A[i * LDA + k]);
      for (int j = 0; j < N; ++j) C[i * LDC + j] += a * cvtb(TRANS_B ? B[j * LDB + k] : B[k * LDB + j]);
    }
}

#endif  // TW_GEMM_VECTOR

}  // namespace gemm_detail
}  // namespace tw

#include "tw_gemm_lowp.h"  // 8-bit integer operands: int16 pairs into pmaddwd

namespace tw {

template <int M, int N, int K, bool TRANS_A, bool TRANS_B, int LDA, int LDB, int LDC, typename TA, typename TB,
          typename TC>
inline void gemm(const TA* __restrict__ A, const TB* __restrict__ B, TC* __restrict__ C) {
  typedef typename gemm_detail::Acc<TC>::type T;
  if constexpr (gemm_detail::use_lowp_int<TA, TB, TC>()) {
    gemm_detail::gemm_int8<M, N, K, TRANS_A, TRANS_B, LDA, LDB, LDC>(A, B, C);
  } else if constexpr (std::is_same<T, TC>::value) {
    gemm_detail::gemm_acc<M, N, K, TRANS_A, TRANS_B, LDA, LDB, LDC, T>(A, B, C);
  } else {
    // A low-precision C tile is accumulated in float for the call and rounded once at the end.
    T* c = (T*)gemm_detail::scratch<1>((size_t)M * N * sizeof(T));
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) c[i * N + j] = (T)(float)C[i * LDC + j];
    gemm_detail::gemm_acc<M, N, K, TRANS_A, TRANS_B, LDA, LDB, N, T>(A, B, c);
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) C[i * LDC + j] = TC(c[i * N + j]);
  }
}

}  // namespace tw
