// tw_mfma.h: T.gemm's matrix instructions on AMD CDNA3 (gfx942), as thin wrappers over clang's
// __builtin_amdgcn_mfma_* builtins. HIP C++ that clang compiles with -nogpuinc (no ROCm headers).
//
// Every wrapper takes the addresses of three register arrays of one lane: its items of A and of B
// (the element type only has to have the right size: the bits go to the instruction unchanged) and
// its accumulators, updated in place. Called with constant indices into fully unrolled local
// arrays, the copies below fold away and the arrays live in VGPRs / AGPRs. Which lane holds which
// matrix element is tilewise/layout/mfma_layouts.py; the emulator (tilewise/emulator/mfma.py)
// runs the same calls. cbsz / abid / blgp (broadcast controls) are 0: every block reads its own data.
#pragma once

#define TW_MFMA_DEVICE __attribute__((device, always_inline)) inline

namespace tw {
namespace mfma_detail {
typedef _Float16 f16x4 __attribute__((ext_vector_type(4)));
typedef short i16x4 __attribute__((ext_vector_type(4)));  // bfloat16 bits (the *_1k instructions)
typedef float f32x4 __attribute__((ext_vector_type(4)));
typedef float f32x16 __attribute__((ext_vector_type(16)));
typedef int i32x4 __attribute__((ext_vector_type(4)));
typedef long i8x8;  // eight 8-bit items in one 64-bit register pair

template <typename V, typename T>
TW_MFMA_DEVICE V load(const T* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V, typename T>
TW_MFMA_DEVICE void store(T* p, V v) {
  __builtin_memcpy(p, &v, sizeof(V));
}
}  // namespace mfma_detail

#define TW_MFMA(NAME, AV, CV, ITEMS_AB, ITEMS_C)                                                      \
  template <typename TA, typename TB, typename TC>                                                   \
  TW_MFMA_DEVICE void NAME(const TA* a, const TB* b, TC* c) {                                        \
    static_assert(sizeof(TA) * ITEMS_AB == sizeof(mfma_detail::AV), #NAME ": A items of the wrong size"); \
    static_assert(sizeof(TB) * ITEMS_AB == sizeof(mfma_detail::AV), #NAME ": B items of the wrong size"); \
    static_assert(sizeof(TC) * ITEMS_C == sizeof(mfma_detail::CV), #NAME ": accumulators of the wrong size"); \
    mfma_detail::CV d = __builtin_amdgcn_##NAME(mfma_detail::load<mfma_detail::AV>(a),                 \
                                                mfma_detail::load<mfma_detail::AV>(b),                 \
                                                mfma_detail::load<mfma_detail::CV>(c), 0, 0, 0);       \
    mfma_detail::store(c, d);                                                                         \
  }

// v_mfma_f32_16x16x16_f16 / _bf16: 4 A items, 4 B items, 4 float accumulators per lane
TW_MFMA(mfma_f32_16x16x16f16, f16x4, f32x4, 4, 4)
TW_MFMA(mfma_f32_16x16x16bf16_1k, i16x4, f32x4, 4, 4)
// v_mfma_f32_32x32x8_f16 / _bf16: 4 A items, 4 B items, 16 float accumulators per lane
TW_MFMA(mfma_f32_32x32x8f16, f16x4, f32x16, 4, 16)
TW_MFMA(mfma_f32_32x32x8bf16_1k, i16x4, f32x16, 4, 16)
// v_mfma_i32_16x16x32_i8 (gfx940+): 8 int8 items (one 64-bit register pair), 4 int accumulators
TW_MFMA(mfma_i32_16x16x32_i8, i8x8, i32x4, 8, 4)
// v_mfma_f32_{16x16x32,32x32x16}_{fp8,bf8}_{fp8,bf8} (gfx940+, target feature fp8-insts): gfx942
// reads the FNUZ encodings, fp8 = e4m3fnuz, bf8 = e5m2fnuz, the first for A, the second for B;
// 8 items of each per lane (one 64-bit register pair, clang's `long` operand), 4 / 16 float
// accumulators
TW_MFMA(mfma_f32_16x16x32_fp8_fp8, i8x8, f32x4, 8, 4)
TW_MFMA(mfma_f32_16x16x32_fp8_bf8, i8x8, f32x4, 8, 4)
TW_MFMA(mfma_f32_16x16x32_bf8_fp8, i8x8, f32x4, 8, 4)
TW_MFMA(mfma_f32_16x16x32_bf8_bf8, i8x8, f32x4, 8, 4)
TW_MFMA(mfma_f32_32x32x16_fp8_fp8, i8x8, f32x16, 8, 16)
TW_MFMA(mfma_f32_32x32x16_fp8_bf8, i8x8, f32x16, 8, 16)
TW_MFMA(mfma_f32_32x32x16_bf8_fp8, i8x8, f32x16, 8, 16)
TW_MFMA(mfma_f32_32x32x16_bf8_bf8, i8x8, f32x16, 8, 16)

#undef TW_MFMA
}  // namespace tw
