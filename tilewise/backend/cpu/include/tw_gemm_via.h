// tilewise CPU GEMM: operands that the packing rounds (transform/fuse_gemm_producers.py).
//
// A float16 / bfloat16 operand tile computed by element-wise code (a dequantisation) is kept in
// float32, unrounded; the GEMM receives it as `tw::via<R>` and its packing rounds each element to
// R and widens it back, the value the micro-kernel would have read from an R tile. The F16C pair
// vcvtps2ph / vcvtph2ps does 8 at a time (round to nearest even, NaNs quietened: tw::half's
// conversion, bit for bit) where tw::half's portable rounding is a dozen integer instructions.
#pragma once

#include "tw_cpu.h"

namespace tw {

template <typename R> struct via {
  float v;
  inline float rounded() const { return (float)R(v); }
};

namespace gemm_detail {

template <typename T> struct is_via : std::false_type {};
template <typename R> struct is_via<via<R>> : std::true_type {};

// dst[0:n] = src[0:n] rounded through R, as float.
template <int n, typename R>
static inline __attribute__((always_inline)) void via_run(const via<R>* __restrict__ src, float* __restrict__ dst) {
  int j = 0;
#if defined(__F16C__) && defined(__AVX__)
  if constexpr (std::is_same<R, half>::value) {
    typedef float F8 __attribute__((vector_size(32), aligned(4), may_alias));
    typedef float V8 __attribute__((vector_size(32)));
    for (; j + 8 <= n; j += 8) {
      const V8 x = *(const F8*)(src + j);
      *(F8*)(dst + j) = __builtin_ia32_vcvtph2ps256(__builtin_ia32_vcvtps2ph256(x, 0));  // 0: nearest even
    }
  }
#endif
  for (; j < n; ++j) dst[j] = src[j].rounded();
}

}  // namespace gemm_detail
}  // namespace tw
