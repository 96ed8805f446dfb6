// tilewise CPU: copies of T.gemm operand tiles that transpose on the way in
// (transform/transpose_gemm_operands.py). A transposed operand (B stored N x K, A stored K x M)
// copied this way lands in the tile the way the NN micro-kernel reads it, so T.gemm neither packs
// (B) nor broadcasts along strided columns (A): one pass over the data instead of a copy and then a
// transposing pack inside every T.gemm call.
#pragma once

#include "tw_gemm.h"

namespace tw {
namespace pack_detail {

#if TW_GEMM_VECTOR
// Turns W rows of W elements. For 8 floats (AVX2) the classic 24 shuffles, each one instruction
// (unpcklps / unpckhps, shufps, vperm2f128): gemm_detail::transpose_rounds's generic two-source
// masks compile to 64 there, a third of the copy's time.
template <typename T>
static inline __attribute__((always_inline)) void transpose_block(typename gemm_detail::Simd<T>::V* r) {
  typedef typename gemm_detail::Simd<T>::V V;
  typedef typename gemm_detail::Simd<T>::I I;
  if constexpr (sizeof(T) == 4 && gemm_detail::Simd<T>::W == 8) {
    constexpr I lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
    constexpr I s44 = {0, 1, 8, 9, 4, 5, 12, 13}, see = {2, 3, 10, 11, 6, 7, 14, 15};
    constexpr I p20 = {0, 1, 2, 3, 8, 9, 10, 11}, p31 = {4, 5, 6, 7, 12, 13, 14, 15};
    V t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = __builtin_shuffle(r[2 * i], r[2 * i + 1], lo);
      t[2 * i + 1] = __builtin_shuffle(r[2 * i], r[2 * i + 1], hi);
    }
    // u[0..3]: columns 0, 1, 2, 3 of rows 0-3 (low halves) and 4-7 (high halves)
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      u[4 * h + 0] = __builtin_shuffle(t[4 * h + 0], t[4 * h + 2], s44);
      u[4 * h + 1] = __builtin_shuffle(t[4 * h + 0], t[4 * h + 2], see);
      u[4 * h + 2] = __builtin_shuffle(t[4 * h + 1], t[4 * h + 3], s44);
      u[4 * h + 3] = __builtin_shuffle(t[4 * h + 1], t[4 * h + 3], see);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      r[i] = __builtin_shuffle(u[i], u[4 + i], p20);
      r[4 + i] = __builtin_shuffle(u[i], u[4 + i], p31);
    }
  } else {
    gemm_detail::transpose_rounds<T, gemm_detail::Simd<T>::W / 2>(r);
  }
}
#endif

// The whole R x C tile inside the tensor: every trip count a constant, so that the blocks unroll.
template <int R, int C, int LDD, typename T>
static inline __attribute__((always_inline)) void transpose_whole(const T* __restrict__ src, int64_t lds,
                                                                  T* __restrict__ dst) {
  int rv = 0, cv = 0;
#if TW_GEMM_VECTOR
  if constexpr (sizeof(T) == 4 || sizeof(T) == 8) {
    typedef typename gemm_detail::Simd<T>::V V;
    typedef typename gemm_detail::Simd<T>::U U;
    constexpr int W = gemm_detail::Simd<T>::W;
    rv = R / W * W;
    cv = C / W * W;
    for (int r = 0; r < R / W * W; r += W)
      for (int c = 0; c < C / W * W; c += W) {
        V rows[W];
#pragma GCC unroll 64
        for (int i = 0; i < W; ++i) rows[i] = *(const U*)(src + (r + i) * lds + c);
        transpose_block<T>(rows);
#pragma GCC unroll 64
        for (int q = 0; q < W; ++q) *(U*)(dst + (c + q) * LDD + r) = rows[q];
      }
  }
#endif
  for (int r = rv; r < R; ++r)
    for (int c = 0; c < C; ++c) dst[c * LDD + r] = src[r * lds + c];
  for (int r = 0; r < rv; ++r)
    for (int c = cv; c < C; ++c) dst[c * LDD + r] = src[r * lds + c];
}

}  // namespace pack_detail

// dst[c * LDD + r] = src[r * lds + c] for the R x C tile at src, whose row r is row rs + r of a
// tensor of nrows rows and whose column c is column cs + c of ncols columns; elements outside the
// tensor (or every element when `inside` is false: an index of a leading dimension is out of
// range) read as zero, as T.copy's do. W x W blocks go through registers
// (pack_detail::transpose_block); ragged edges element by element.
template <int R, int C, int LDD, typename T>
inline void copy_transposed(const T* __restrict__ src, int64_t lds, T* __restrict__ dst, int64_t rs, int64_t nrows,
                            int64_t cs, int64_t ncols, bool inside) {
  const int64_t r0 = rs < 0 ? -rs : 0, c0 = cs < 0 ? -cs : 0;
  int64_t r1 = nrows - rs, c1 = ncols - cs;
  r1 = r1 > R ? R : r1;
  c1 = c1 > C ? C : c1;
  if (inside && r0 == 0 && c0 == 0 && r1 == R && c1 == C) {
    pack_detail::transpose_whole<R, C, LDD>(src, lds, dst);
    return;
  }
  if (!inside || r0 >= r1 || c0 >= c1) {
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r) dst[c * LDD + r] = T(0);
    return;
  }
  if (r0 > 0 || c0 > 0 || r1 < R || c1 < C) {
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r)
        if (r < r0 || r >= r1 || c < c0 || c >= c1) dst[c * LDD + r] = T(0);
  }
  int64_t rv = r0, cv = c0;  // the vector blocks cover [r0, rv) x [c0, cv)
#if TW_GEMM_VECTOR
  if constexpr (sizeof(T) == 4 || sizeof(T) == 8) {
    typedef typename gemm_detail::Simd<T>::V V;
    typedef typename gemm_detail::Simd<T>::U U;
    constexpr int W = gemm_detail::Simd<T>::W;
    rv = r0 + (r1 - r0) / W * W;
    cv = c0 + (c1 - c0) / W * W;
    for (int64_t r = r0; r < rv; r += W)
      for (int64_t c = c0; c < cv; c += W) {
        V rows[W];
#pragma GCC unroll 64
        for (int i = 0; i < W; ++i) rows[i] = *(const U*)(src + (r + i) * lds + c);
        pack_detail::transpose_block<T>(rows);
#pragma GCC unroll 64
        for (int q = 0; q < W; ++q) *(U*)(dst + (c + q) * LDD + r) = rows[q];
      }
  }
#endif
  // the rows below the vector blocks, then the columns right of them
  for (int64_t r = rv; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) dst[c * LDD + r] = src[r * lds + c];
  for (int64_t r = r0; r < rv; ++r)
    for (int64_t c = cv; c < c1; ++c) dst[c * LDD + r] = src[r * lds + c];
}

}  // namespace tw
