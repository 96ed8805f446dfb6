"""T.gemm on the CPU target against numpy: transposes, operand scopes, clear_accum, dtypes,
ragged shapes, and the errors for misuse.

Kernels take M, N, K as T.symbolic dimensions, so one compiled kernel serves every shape of a
block configuration; kernels are compiled once per module and cached by configuration."""
from __future__ import annotations

import functools
import platform
import subprocess

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise
import tilewise.language as T
from tilewise.backend.cpu.build import INCLUDE_DIR, compiler

# Most kernels use (32, 48, 24) blocks: K = 24 is one and a half AVX-512 fp32 vectors, so the
# transposed packing meets both whole and ragged vector blocks. These shapes include ones that
# do not divide the blocks and ones smaller than a block.
BLOCK = (32, 48, 24)
RAGGED = [(32, 48, 24), (70, 100, 37), (5, 7, 3), (33, 130, 50)]


def _gemm_func(bm, bn, bk, in_a, in_b, accum, out, trans_A=False, trans_B=False, a_frag=False, b_frag=False,
               clear_accum=False, stages=2):
    M, N, K = T.symbolic("M"), T.symbolic("N"), T.symbolic("K")
    a_shape, a_tile = ((K, M), (bk, bm)) if trans_A else ((M, K), (bm, bk))
    b_shape, b_tile = ((N, K), (bn, bk)) if trans_B else ((K, N), (bk, bn))

    @T.prim_func
    def main(A: T.Tensor(a_shape, in_a), B: T.Tensor(b_shape, in_b), C: T.Tensor((M, N), out)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared(a_tile, in_a)
            B_s = T.alloc_shared(b_tile, in_b)
            A_f = T.alloc_fragment(a_tile, in_a)
            B_f = T.alloc_fragment(b_tile, in_b)
            C_l = T.alloc_fragment((bm, bn), accum)
            if clear_accum:
                T.fill(C_l, 7)  # must be discarded by clear_accum
            else:
                T.clear(C_l)
            for k in T.Pipelined(T.ceildiv(K, bk), num_stages=stages):
                if trans_A:
                    T.copy(A[k * bk, by * bm], A_s)
                else:
                    T.copy(A[by * bm, k * bk], A_s)
                if trans_B:
                    T.copy(B[bx * bn, k * bk], B_s)
                else:
                    T.copy(B[k * bk, bx * bn], B_s)
                if a_frag:
                    T.copy(A_s, A_f)
                if b_frag:
                    T.copy(B_s, B_f)
                T.gemm(A_f if a_frag else A_s, B_f if b_frag else B_s, C_l, transpose_A=trans_A,
                       transpose_B=trans_B, clear_accum=clear_accum)
            T.copy(C_l, C[by * bm, bx * bn])

    return main


@functools.cache
def _kernel(*args, **kw):
    return tilewise.compile(_gemm_func(*args, **kw), out_idx=[-1], target="cpu")


def _rand(rng, shape, dtype):
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dt)
    return rng.standard_normal(shape).astype(np.float32).astype(dt)


def _ref(a, b, trans_A, trans_B, acc):
    a = a.astype(acc)
    b = b.astype(acc)
    return (a.T if trans_A else a) @ (b.T if trans_B else b)


def _run(kernel, rng, M, N, K, in_a, in_b, trans_A=False, trans_B=False):
    a = _rand(rng, (K, M) if trans_A else (M, K), in_a)
    b = _rand(rng, (N, K) if trans_B else (K, N), in_b)
    return a, b, kernel(a, b)


@pytest.mark.parametrize("trans_A", [False, True])
@pytest.mark.parametrize("trans_B", [False, True])
@pytest.mark.parametrize("frag", ["shared", "fragment"])
def test_transposes_and_scopes(rng, trans_A, trans_B, frag):
    f = frag == "fragment"
    k = _kernel(*BLOCK, "float32", "float32", "float32", "float32", trans_A, trans_B, f, f)
    for M, N, K in RAGGED:
        a, b, c = _run(k, rng, M, N, K, "float32", "float32", trans_A, trans_B)
        np.testing.assert_allclose(c, _ref(a, b, trans_A, trans_B, np.float64), rtol=1e-4, atol=1e-4)


def test_mixed_scopes(rng):
    """A from a fragment, B from shared memory, and the other way round."""
    for a_frag, b_frag in ((True, False), (False, True)):
        k = _kernel(*BLOCK, "float32", "float32", "float32", "float32", False, True, a_frag, b_frag)
        a, b, c = _run(k, rng, 70, 100, 37, "float32", "float32", False, True)
        np.testing.assert_allclose(c, _ref(a, b, False, True, np.float64), rtol=1e-4, atol=1e-4)


def test_clear_accum(rng):
    """clear_accum zeroes C before each call: the result is the last K tile's product only."""
    k = _kernel(*BLOCK, "float32", "float32", "float32", "float32", clear_accum=True)
    for M, N, K in ((40, 50, 24), (40, 50, 60)):
        a, b, c = _run(k, rng, M, N, K, "float32", "float32")
        k0 = (K - 1) // BLOCK[2] * BLOCK[2]
        np.testing.assert_allclose(c, a[:, k0:].astype(np.float64) @ b[k0:], rtol=1e-4, atol=1e-4)


@functools.cache
def _sub_tile_kernel():
    """Operands that are slices of bigger tiles: a stage of a 3-D shared buffer, half of its K
    columns, and the right half of a wider C fragment (leading dimensions wider than the tile)."""
    M, N, K = T.symbolic("M"), T.symbolic("N"), T.symbolic("K")
    bm, bn, bk = 32, 48, 16

    @T.prim_func
    def main(A: T.Tensor((M, K), "float32"), B: T.Tensor((K, N), "float32"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared((2, bm, 2 * bk), "float32")
            B_s = T.alloc_shared((2, 2 * bk, bn), "float32")
            C_l = T.alloc_fragment((bm, 2 * bn), "float32")
            T.fill(C_l, 5)
            T.clear(C_l[:, bn:2 * bn])
            for k in T.Pipelined(T.ceildiv(K, 2 * bk), num_stages=2):
                T.copy(A[by * bm, k * 2 * bk], A_s[k % 2, :, :])
                T.copy(B[k * 2 * bk, bx * bn], B_s[k % 2, :, :])
                T.gemm(A_s[k % 2, :, 0:bk], B_s[k % 2, 0:bk, :], C_l[:, bn:2 * bn])
                T.gemm(A_s[k % 2, :, bk:2 * bk], B_s[k % 2, bk:2 * bk, :], C_l[:, bn:2 * bn])
            for i, j in T.Parallel(bm, bn):
                C_l[i, bn + j] += C_l[i, j] - 5  # the left half must be untouched
            T.copy(C_l[:, bn:2 * bn], C[by * bm, bx * bn])

    return tilewise.compile(main, out_idx=[-1], target="cpu")


def test_sub_tiles(rng):
    k = _sub_tile_kernel()
    for M, N, K in RAGGED:
        a, b, c = _run(k, rng, M, N, K, "float32", "float32")
        np.testing.assert_allclose(c, _ref(a, b, False, False, np.float64), rtol=1e-4, atol=1e-4)


BF16 = ml_dtypes.bfloat16
E4M3 = ml_dtypes.float8_e4m3fn
E5M2 = ml_dtypes.float8_e5m2

# (A dtype, B dtype, C dtype, numpy input types, reference accumulation type, tolerance)
DTYPES = [
    ("float16", "float16", "float32", np.float16, np.float16, np.float32, 1e-4),
    ("bfloat16", "bfloat16", "float32", BF16, BF16, np.float32, 1e-4),
    ("float64", "float64", "float64", np.float64, np.float64, np.float64, 1e-12),
    ("int8", "int8", "int32", np.int8, np.int8, np.int64, 0),
    ("uint8", "uint8", "int32", np.uint8, np.uint8, np.int64, 0),
    ("int8", "uint8", "int32", np.int8, np.uint8, np.int64, 0),
    ("float8_e4m3", "float8_e4m3", "float32", E4M3, E4M3, np.float32, 1e-4),
    ("float8_e5m2", "float8_e4m3", "float32", E5M2, E4M3, np.float32, 1e-4),
]


@functools.cache
def _dtype_kernel(in_a, in_b, acc):
    """C = A1 @ B1 + A2^T @ B2^T: the plain and the transposed packing paths in one kernel."""
    M, N, K = T.symbolic("M"), T.symbolic("N"), T.symbolic("K")
    bm, bn, bk = BLOCK

    @T.prim_func
    def main(A1: T.Tensor((M, K), in_a), B1: T.Tensor((K, N), in_b), A2: T.Tensor((K, M), in_a),
             B2: T.Tensor((N, K), in_b), C: T.Tensor((M, N), acc)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A1_s = T.alloc_shared((bm, bk), in_a)
            B1_s = T.alloc_shared((bk, bn), in_b)
            A2_s = T.alloc_shared((bk, bm), in_a)
            B2_s = T.alloc_shared((bn, bk), in_b)
            C_l = T.alloc_fragment((bm, bn), acc)
            T.clear(C_l)
            for k in T.Pipelined(T.ceildiv(K, bk), num_stages=2):
                T.copy(A1[by * bm, k * bk], A1_s)
                T.copy(B1[k * bk, bx * bn], B1_s)
                T.copy(A2[k * bk, by * bm], A2_s)
                T.copy(B2[bx * bn, k * bk], B2_s)
                T.gemm(A1_s, B1_s, C_l)
                T.gemm(A2_s, B2_s, C_l, transpose_A=True, transpose_B=True)
            T.copy(C_l, C[by * bm, bx * bn])

    return tilewise.compile(main, out_idx=[-1], target="cpu")


@pytest.mark.parametrize("in_a, in_b, acc, np_a, np_b, ref_t, tol", DTYPES, ids=[f"{d[0]}x{d[1]}" for d in DTYPES])
def test_dtypes(rng, in_a, in_b, acc, np_a, np_b, ref_t, tol):
    k = _dtype_kernel(in_a, in_b, acc)
    M, N, K = 70, 100, 37
    a1, a2 = _rand(rng, (M, K), np_a), _rand(rng, (K, M), np_a)
    b1, b2 = _rand(rng, (K, N), np_b), _rand(rng, (N, K), np_b)
    c = k(a1, b1, a2, b2)
    # fp16/bf16/fp8 inputs are exact in float32, so the reference sums the rounded inputs in float32
    ref = _ref(a1, b1, False, False, ref_t) + _ref(a2, b2, True, True, ref_t)
    if tol == 0:
        np.testing.assert_array_equal(c, ref.astype(np.int32))
    else:
        np.testing.assert_allclose(c, ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_float16_accumulator(rng):
    """A float16 C tile: each call sums in float32 and rounds once into the tile."""
    k = _kernel(*BLOCK, "float16", "float16", "float16", "float32")
    M, N, K = 40, 60, 24
    a = _rand(rng, (M, K), np.float16)
    b = _rand(rng, (K, N), np.float16)
    c = k(a, b)
    ref = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(c, ref)


BLOCKS = [(16, 16, 8), (32, 48, 16), (24, 40, 24), (64, 20, 32), (8, 130, 72)]  # the last one splits K in the call


@settings(max_examples=12, deadline=None)
@given(
    block=st.sampled_from(BLOCKS),
    trans=st.tuples(st.booleans(), st.booleans()),
    M=st.integers(1, 150),
    N=st.integers(1, 150),
    K=st.integers(1, 100),
    seed=st.integers(0, 2**16),
)
def test_random_shapes(block, trans, M, N, K, seed):
    rng = np.random.default_rng(seed)
    k = _kernel(*block, "float32", "float32", "float32", "float32", *trans)
    a, b, c = _run(k, rng, M, N, K, "float32", "float32", *trans)
    np.testing.assert_allclose(c, _ref(a, b, *trans, np.float64), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------- misuse


def _build(body, a_shape=(64, 32), b_shape=(32, 64), c_shape=(64, 64), a_dt="float16", b_dt="float16",
           c_dt="float32", a_scope="shared", b_scope="shared", c_scope="fragment", **kw):
    alloc = {"shared": T.alloc_shared, "fragment": T.alloc_fragment, "local": T.alloc_local}

    @T.prim_func
    def main(A: T.Tensor((64, 64), "float16"), C: T.Tensor((64, 64), "float32")):
        with T.Kernel(1, threads=128):
            X = alloc[a_scope](a_shape, a_dt)
            Y = alloc[b_scope](b_shape, b_dt)
            Z = alloc[c_scope](c_shape, c_dt)
            body(A, X, Y, Z)

    return main


def _gemm(A, X, Y, Z):
    T.gemm(X, Y, Z)


@pytest.mark.parametrize(
    "kw, pattern",
    [
        ({"b_shape": (16, 64)}, r"K extents differ.*X.*K=32.*Y.*K=16"),
        ({"c_shape": (64, 32)}, r"C \(Z\) has shape \(64, 32\).*\(64, 64\)"),
        ({"c_scope": "shared"}, r"C \(Z\) is in shared.* must be in local.fragment"),
        ({"a_dt": "float32"}, r"unsupported types A \(X\)=float32, B \(Y\)=float16"),
        ({"c_dt": "int32"}, r"unsupported types .*C \(Z\)=int32"),
        ({"a_dt": "int8", "b_dt": "int8", "c_dt": "float32"}, r"unsupported types A \(X\)=int8.*C \(Z\)=float32"),
        ({"a_dt": "float64", "b_dt": "float64", "c_dt": "float32"}, r"A \(X\)=float64.*C \(Z\)=float32"),
        ({"a_shape": (64, 32, 2)}, r"A \(X\) must be a 2-D tile"),
    ],
)
def test_misuse(kw, pattern):
    with pytest.raises(tilewise.CompileError, match=pattern):
        _build(_gemm, **kw)


def test_misuse_global_operand():
    def body(A, X, Y, Z):
        T.gemm(A, Y, Z)

    with pytest.raises(tilewise.CompileError, match=r"A \(A\) is in global memory"):
        _build(body)


def test_misuse_transposed_k_mismatch():
    def body(A, X, Y, Z):
        T.gemm(X, Y, Z, transpose_A=True)

    with pytest.raises(tilewise.CompileError, match=r"X\(64, 32\), transposed\) has K=64"):
        _build(body)


def test_misuse_points_at_the_line():
    with pytest.raises(tilewise.CompileError) as info:

        @T.prim_func
        def main(A: T.Tensor((64, 64), "float32")):
            with T.Kernel(1, threads=128):
                A_s = T.alloc_shared((64, 32), "float32")
                B_s = T.alloc_shared((16, 64), "float32")
                C_l = T.alloc_fragment((64, 64), "float32")
                T.gemm(A_s, B_s, C_l)  # the line the error names

    msg = str(info.value)
    assert "A (A_s(64, 32)) has K=32, B (B_s(16, 64)) has K=16" in msg
    assert "T.gemm(A_s, B_s, C_l)  # the line the error names" in msg


# ------------------------------------------------------------------------ other instruction sets

# The kernels above run the widest vector code of this machine. This program checks the header
# directly, also on its narrower paths (AVX2+FMA, SSE2, no vector extensions): products of small
# integers, exact in every type, with leading dimensions wider than the tiles (the padding must
# stay untouched), and the float16/bfloat16 conversions on every bit pattern.
_ISA_CHECK = r"""
#include "tw_gemm.h"
static int failures = 0;
template <typename T> T val(int v) { if constexpr (std::is_integral<T>::value) return (T)v; else return T((float)v); }
template <typename T> double dbl(T x) { return tw::to_double(x); }
template <int M, int N, int K, bool TA, bool TB, typename XA, typename XB, typename XC>
void check(const char* name) {
  constexpr int LDA = (TA ? M : K) + 3, LDB = (TB ? K : N) + 1, LDC = N + 2;
  constexpr int RA = TA ? K : M, RB = TB ? N : K;
  XA* A = new XA[RA * LDA];
  XB* B = new XB[RB * LDB];
  XC* C = new XC[M * LDC];
  double* ref = new double[M * LDC];
  for (int i = 0; i < RA * LDA; ++i) A[i] = val<XA>(std::is_unsigned<XA>::value ? (i * 7 + 3) % 5 : (i * 7 + 3) % 7 - 3);
  for (int i = 0; i < RB * LDB; ++i) B[i] = val<XB>(std::is_unsigned<XB>::value ? (i * 5 + 1) % 4 : (i * 5 + 1) % 5 - 2);
  for (int i = 0; i < M * LDC; ++i) C[i] = val<XC>(i % 9 - 4);
  for (int i = 0; i < M * LDC; ++i) ref[i] = dbl(C[i]);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j)
      for (int k = 0; k < K; ++k)
        ref[i * LDC + j] += dbl(TA ? A[k * LDA + i] : A[i * LDA + k]) * dbl(TB ? B[j * LDB + k] : B[k * LDB + j]);
  // Poison the packing scratch so that stale panels from an earlier call cannot pass for new ones.
  std::memset(tw::gemm_detail::scratch<0>(1 << 22), 0xff, 1 << 22);
  tw::gemm<M, N, K, TA, TB, LDA, LDB, LDC>(A, B, C);
  int bad = 0;
  for (int i = 0; i < M * LDC; ++i) bad += dbl(C[i]) != ref[i];
  if (bad) { ++failures; std::printf("FAIL %s M=%d N=%d K=%d ta=%d tb=%d: %d wrong\n", name, M, N, K, TA, TB, bad); }
  delete[] A; delete[] B; delete[] C; delete[] ref;
}
template <int M, int N, int K, typename XA, typename XB, typename XC> void all4(const char* name) {
  check<M, N, K, false, false, XA, XB, XC>(name);
  check<M, N, K, false, true, XA, XB, XC>(name);
  check<M, N, K, true, false, XA, XB, XC>(name);
  check<M, N, K, true, true, XA, XB, XC>(name);
}
// Every float16 and bfloat16 bit pattern through the packing conversion (NaNs stay NaN).
template <typename S> void conversions(const char* name) {
  static S h[65536];
  static float f[65536];
  for (int i = 0; i < 65536; ++i) { uint16_t b = (uint16_t)i; std::memcpy(&h[i], &b, 2); }
  tw::gemm_detail::Convert<float, S> cvt;
#if TW_GEMM_VECTOR
  tw::gemm_detail::convert_run<65536>(h, f, cvt);
#else
  for (int i = 0; i < 65536; ++i) f[i] = cvt(h[i]);
#endif
  int bad = 0;
  for (int i = 0; i < 65536; ++i) {
    float r = (float)h[i];
    bad += std::isnan(r) ? !std::isnan(f[i]) : std::memcmp(&r, &f[i], 4) != 0;
  }
  if (bad) { ++failures; std::printf("FAIL %s conversion: %d wrong\n", name, bad); }
}
int main() {
  conversions<tw::half>("f16");
  conversions<tw::bf16>("bf16");
#ifndef CONVERSIONS_ONLY
  all4<7, 5, 3, float, float, float>("f32");
  all4<13, 33, 17, float, float, float>("f32");
  all4<16, 64, 32, float, float, float>("f32");
  all4<9, 130, 600, float, float, float>("f32");
  all4<13, 33, 17, double, double, double>("f64");
  all4<13, 33, 17, tw::bf16, tw::half, float>("bf16/f16");
  all4<13, 33, 17, tw::fp8_e4m3, tw::fp8_e5m2, float>("fp8");
  all4<13, 33, 17, int8_t, uint8_t, int32_t>("i8/u8");
  all4<13, 33, 17, tw::half, tw::half, tw::half>("f16 acc");
#endif
  std::printf(failures ? "%d failures\n" : "ok\n", failures);
  return failures != 0;
}
"""

# The native gemm paths run in the kernels above; here only its conversions, exhaustively.
_ISA_FLAGS = {"native": ["-march=native", "-DCONVERSIONS_ONLY"], "scalar": ["-DTW_GEMM_SCALAR"]}
if platform.machine().lower() in ("x86_64", "amd64"):
    _ISA_FLAGS.update({"avx2": ["-march=x86-64-v3"], "sse2": ["-march=x86-64"]})


def test_narrower_instruction_sets(tmp_path):
    src = tmp_path / "check.cpp"
    src.write_text(_ISA_CHECK)
    procs = {}
    for name, flags in _ISA_FLAGS.items():
        exe = tmp_path / name
        cmd = [compiler(), "-O1", "-std=c++17", *flags, f"-I{INCLUDE_DIR}", str(src), "-o", str(exe)]
        procs[name] = (exe, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for name, (exe, proc) in procs.items():
        out, _ = proc.communicate()
        assert proc.returncode == 0, f"{name}: g++ failed:\n{out[-3000:]}"
        run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and run.stdout.strip() == "ok", f"{name}: {run.stdout[-3000:]}"

