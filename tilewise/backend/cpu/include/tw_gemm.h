// tilewise CPU GEMM on tiles: C[M x N] += op(A)[M x K] * op(B)[K x N].
// Operands are row-major with leading dimensions; trans flags say whether A is stored K x M
// and B is stored N x K. Accumulation happens in TC.
#pragma once
#include "tw_cpu.h"

namespace tw {

template <bool TRANS_A, bool TRANS_B, typename TA, typename TB, typename TC>
inline void gemm(int M, int N, int K, const TA* __restrict__ A, int lda, const TB* __restrict__ B, int ldb,
                 TC* __restrict__ C, int ldc) {
  for (int i = 0; i < M; ++i)
    for (int k = 0; k < K; ++k) {
      TC a = (TC)(TRANS_A ? A[k * lda + i] : A[i * lda + k]);
      for (int j = 0; j < N; ++j) C[i * ldc + j] += a * (TC)(TRANS_B ? B[j * ldb + k] : B[k * ldb + j]);
    }
}

}  // namespace tw
