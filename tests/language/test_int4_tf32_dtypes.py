"""TileLang's int4 / uint4 and tfloat32 dtypes (issue #14; TileLang 0.1.15's `T.int4`, `T.uint4`,
`T.tfloat32`). int4 / uint4 are 4-bit integers: one value per byte inside a kernel (the low
nibble, as ml_dtypes stores them), wrapping at four bits; TileLang's tensors pack two per byte
(torch.int8 / uint8, the even element in the low nibble), which the call boundary unpacks and packs
back. tfloat32 is a float32 holding a 10-bit mantissa: conversions into it round to nearest, ties
away (cvt.rna.tf32.f32); T.gemm on tfloat32 operands is the tf32 tensor-core product. Checked on the
CPU and in the emulator against numpy, and the CUDA code through NVRTC."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.ir import scalar_ops
from tilewise.ir.dtype import as_dtype

torch = pytest.importorskip("torch")

TARGETS = [pytest.param({}, id="cpu"), pytest.param({"target": "cuda", "execution_backend": "emulator"}, id="emulator")]


def _pack(v: np.ndarray, storage) -> np.ndarray:
    """Two 4-bit values per byte along the last axis, the even one in the low nibble (TileLang's)."""
    u = v.astype(np.int64) & 15
    return ((u[..., 0::2] | (u[..., 1::2] << 4)) & 0xFF).astype(np.uint8).view(storage)


def _unpack(p: np.ndarray, signed: bool) -> np.ndarray:
    b = p.view(np.uint8).astype(np.int64)
    out = np.empty((*b.shape[:-1], b.shape[-1] * 2), np.int64)
    out[..., 0::2], out[..., 1::2] = b & 15, b >> 4
    return np.where(out > 7, out - 16, out) if signed else out


def _wrap4(v, signed: bool):
    v = np.asarray(v, np.int64) & 15
    return np.where(v > 7, v - 16, v) if signed else v


def _tf32(x: np.ndarray) -> np.ndarray:
    """numpy's own tf32 rounding for the reference: nearest, ties away (written independently)."""
    x = np.asarray(x, np.float32)
    mant = np.frexp(x)[0]
    ex = np.frexp(x)[1]
    scaled = np.abs(mant.astype(np.float64)) * 2.0**11  # 11 significant bits
    r = np.floor(scaled + 0.5) * np.sign(mant)
    return np.ldexp(r / 2.0**11, ex).astype(np.float32)


def test_names_and_strings():
    assert T.int4 == "int4" and T.uint4 == "uint4" and as_dtype("int4") is T.int4
    assert T.int4.bits == 4 and T.int4.is_signed and not T.uint4.is_signed and T.int4.is_int
    assert as_dtype("custom[tfloat32]") is T.tfloat32 and as_dtype("tfloat32") is T.tfloat32
    assert T.tfloat32.is_float and T.tfloat32.bits == 32
    # TileLang's torch storage types
    assert T.int4.torch is torch.int8 and T.uint4.torch is torch.uint8 and T.tfloat32.torch is torch.float32
    # the examples' lop3.py uses them as dictionary keys next to the other dtypes
    assert {T.float16: "f16", T.int4: "i4", T.int8: "i8"}[T.int4] == "i4"


def test_scalar_rules():
    i4, u4 = as_dtype("int4"), as_dtype("uint4")
    np.testing.assert_array_equal(scalar_ops.cast(as_dtype("int32"), i4)(np.array([7, 8, -9, 15, 16], np.int32))
                                  .astype(np.int64), [7, -8, 7, -1, 0])
    np.testing.assert_array_equal(scalar_ops.cast(as_dtype("float32"), i4)(np.array([7.9, -9.5, np.nan, -3.7], np.float32))
                                  .astype(np.int64), [7, -8, 0, -3])
    np.testing.assert_array_equal(scalar_ops.cast(as_dtype("float32"), u4)(np.array([15.5, -1.0, 3.2], np.float32))
                                  .astype(np.int64), [15, 0, 3])
    assert int(scalar_ops.value(20, u4)) == 4 and int(scalar_ops.value(-9, i4)) == 7
    x = np.random.default_rng(0).standard_normal(4096).astype(np.float32) * 1e3
    np.testing.assert_array_equal(scalar_ops.cast(as_dtype("float32"), T.tfloat32)(x), _tf32(x))
    # ties go away from zero: 1 + 2^-11 is half a tf32 unit above 1
    ties = np.array([1 + 2**-11, -(1 + 2**-11), 1 + 3 * 2**-11], np.float32)
    np.testing.assert_array_equal(scalar_ops.cast(as_dtype("float32"), T.tfloat32)(ties),
                                  np.array([1 + 2**-10, -(1 + 2**-10), 1 + 2**-9], np.float32))


def elementwise(M, N):
    @T.prim_func
    def main(A: T.Tensor((M, N), "int32"), B: T.Tensor((M, N), T.int4), F: T.Tensor((M, N), "float32"),
             U: T.Tensor((M, N), T.uint4), C: T.Tensor((M, N), T.int4), D: T.Tensor((M, N), "int32"),
             E: T.Tensor((M, N), T.uint4), G: T.Tensor((M, N), T.tfloat32), H: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(M, 16), threads=128) as bx:
            t = T.alloc_fragment((16, N), T.tfloat32)
            for i, j in T.Parallel(16, N):
                r = bx * 16 + i
                C[r, j] = T.Cast(T.int4, A[r, j]) + B[r, j]  # wraps at four bits
                D[r, j] = T.Cast("int32", T.Cast(T.int4, F[r, j])) * 100 + T.Cast("int32", U[r, j])
                E[r, j] = U[r, j] * 3
                t[i, j] = F[r, j]  # rounded to tf32
            for i, j in T.Parallel(16, N):
                r = bx * 16 + i
                G[r, j] = t[i, j] * t[i, j]  # computed in float32, rounded to tf32
                H[r, j] = t[i, j]

    return main


@pytest.mark.parametrize("kw", TARGETS)
def test_elementwise_int4_uint4_tf32(kw):
    M, N = 32, 16
    kernel = tilewise.compile(elementwise(M, N), out_idx=[4, 5, 6, 7, 8], **kw)
    rng = np.random.default_rng(1)
    A = rng.integers(-100, 100, (M, N)).astype(np.int32)
    B = rng.integers(-8, 8, (M, N))
    U = rng.integers(0, 16, (M, N))
    F = (rng.standard_normal((M, N)) * 6).astype(np.float32)
    C, D, E, G, H = kernel(torch.from_numpy(A), torch.from_numpy(_pack(B, np.int8)), torch.from_numpy(F),
                           torch.from_numpy(_pack(U, np.uint8)))
    assert C.dtype == torch.int8 and C.shape == (M, N // 2) and E.dtype == torch.uint8 and G.dtype == torch.float32
    np.testing.assert_array_equal(_unpack(C.numpy(), True), _wrap4(A + B, True))
    f4 = np.clip(np.trunc(F), -8, 7).astype(np.int64)
    np.testing.assert_array_equal(D.numpy(), f4 * 100 + U)
    np.testing.assert_array_equal(_unpack(E.numpy(), False), _wrap4(U * 3, False))
    t = _tf32(F)
    np.testing.assert_array_equal(H.numpy(), t)
    np.testing.assert_array_equal(G.numpy(), _tf32(t * t))


def int4_gemm(M, N, K, bm, bn, bk, a_dtype=T.int4, b_dtype=T.int4):
    """The form of TileLang's examples/gemm_int4: int4 tensors, T.gemm straight on int4 tiles."""

    @T.prim_func
    def main(A: T.Tensor((M, K), a_dtype), B: T.Tensor((N, K), b_dtype), C: T.Tensor((M, N), T.int32)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared((bm, bk), a_dtype)
            B_s = T.alloc_shared((bn, bk), b_dtype)
            C_l = T.alloc_fragment((bm, bn), T.int32)
            T.clear(C_l)
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=2):
                T.copy(A[by * bm, ko * bk], A_s)
                T.copy(B[bx * bn, ko * bk], B_s)
                T.gemm(A_s, B_s, C_l, transpose_B=True)
            T.copy(C_l, C[by * bm, bx * bn])

    return main


@pytest.mark.parametrize("kw", TARGETS)
@pytest.mark.parametrize("types", [("int4", "int4"), ("uint4", "int4")])
def test_int4_gemm(kw, types):
    M, N, K = 32, 32, 64
    a_t, b_t = (as_dtype(t) for t in types)
    kernel = tilewise.compile(int4_gemm(M, N, K, 32, 32, 32, a_t, b_t), out_idx=-1, **kw)
    rng = np.random.default_rng(2)
    lo = {"int4": -8, "uint4": 0}
    A = rng.integers(lo[types[0]], lo[types[0]] + 16, (M, K))
    B = rng.integers(lo[types[1]], lo[types[1]] + 16, (N, K))
    st = {"int4": np.int8, "uint4": np.uint8}
    C = kernel(torch.from_numpy(_pack(A, st[types[0]])), torch.from_numpy(_pack(B, st[types[1]])))
    np.testing.assert_array_equal(C.numpy(), A @ B.T)


def test_int4_numpy_one_value_per_byte():
    """numpy arrays of ml_dtypes.int4 are tilewise's own form (one value per element)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    M, N, K = 16, 16, 32
    kernel = tilewise.compile(int4_gemm(M, N, K, 16, 16, 32), out_idx=-1)
    rng = np.random.default_rng(3)
    A, B = rng.integers(-8, 8, (M, K)), rng.integers(-8, 8, (N, K))
    C = kernel(A.astype(ml_dtypes.int4), B.astype(ml_dtypes.int4))
    np.testing.assert_array_equal(C, A @ B.T)


def tf32_gemm(M, N, K, a_dtype):
    """The form of TileLang's gdn / deepseek_mhc programs: tfloat32 tiles into T.gemm."""

    @T.prim_func
    def main(A: T.Tensor((M, K), "float32"), B: T.Tensor((N, K), a_dtype), C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=128) as _:
            A_s = T.alloc_shared((M, K), T.tfloat32)
            B_s = T.alloc_shared((N, K), a_dtype)
            C_l = T.alloc_fragment((M, N), "float32")
            T.copy(A, A_s)  # float32 -> tfloat32: rounded
            T.copy(B, B_s)
            T.gemm(A_s, B_s, C_l, transpose_B=True, clear_accum=True)
            T.copy(C_l, C)

    return main


@pytest.mark.parametrize("kw", TARGETS)
@pytest.mark.parametrize("b_dtype", ["tfloat32", "float32"])
def test_tf32_gemm(kw, b_dtype):
    M, N, K = 32, 32, 64
    kernel = tilewise.compile(tf32_gemm(M, N, K, as_dtype(b_dtype)), out_idx=-1, **kw)
    rng = np.random.default_rng(4)
    A = rng.standard_normal((M, K)).astype(np.float32)
    B = rng.standard_normal((N, K)).astype(np.float32)
    C = kernel(torch.from_numpy(A), torch.from_numpy(B)).numpy()
    # the products of tf32 operands are exact in float32; only the sums' order differs. A is
    # rounded into its tfloat32 tile (rna). A float32 tensor passed for a tfloat32 parameter reads
    # truncated (the low 13 bits ignored); a float32 B operand is rounded by the tensor cores' path
    # (the emulator) but full float32 in the CPU's T.gemm (tilewise's float32 GEMM on the CPU)
    if b_dtype == "tfloat32":
        b = (B.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)
    else:
        b = _tf32(B) if kw else B
    ref = _tf32(A).astype(np.float64) @ b.astype(np.float64).T
    np.testing.assert_allclose(C, ref, rtol=1e-5, atol=1e-5)
    # ... and the float32 product differs by the tf32 rounding (relative 2^-11 per operand)
    full = A.astype(np.float64) @ B.astype(np.float64).T
    assert np.abs(C - full).max() > 1e-4
    np.testing.assert_allclose(C, full, rtol=0, atol=K * 2 * 2**-11 * np.abs(A).max() * np.abs(B).max())


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
def test_cuda_code_compiles(arch):
    """The CUDA renderer's int4 / tf32 types and the tf32 mma compile with NVRTC."""
    pytest.importorskip("tilewise.backend.cuda.nvrtc")
    try:
        k = tilewise.compile(tf32_gemm(32, 32, 64, T.tfloat32), target=f"cuda -arch={arch}",
                             execution_backend="emulator")
        k2 = tilewise.compile(elementwise(32, 16), target=f"cuda -arch={arch}", execution_backend="emulator")
        k3 = tilewise.compile(int4_gemm(32, 32, 64, 32, 32, 32), target=f"cuda -arch={arch}",
                              execution_backend="emulator")
    except Exception as e:  # noqa: BLE001
        if "nvrtc" in str(e).lower() and "not found" in str(e).lower():
            pytest.skip(f"no NVRTC: {e}")
        raise
    src = k.get_kernel_source()
    assert "mma" in src and "tf32" in src
    for kk in (k, k2, k3):
        assert kk.build.binary


@pytest.mark.parametrize("factory", [lambda: elementwise(32, 16), lambda: tf32_gemm(32, 32, 64, T.tfloat32)],
                         ids=["int4", "tf32"])
def test_hip_refuses_them_by_name(factory):
    with pytest.raises(tilewise.errors.CompileError, match="HIP target"):
        tilewise.compile(factory(), target="hip", execution_backend="emulator")


def tf32_fragment_gemm(M, N, K):
    """deepseek_mhc's mhc_pre form: a bfloat16 tile copied into a tfloat32 *fragment* (exact), the
    float32 weights into a tfloat32 shared tile, and T.gemm with A in registers."""

    @T.prim_func
    def main(X: T.Tensor((M, K), "bfloat16"), W: T.Tensor((N, K), T.tfloat32), C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=128) as _:
            x_s = T.alloc_shared((M, K), "bfloat16")
            w_s = T.alloc_shared((N, K), T.tfloat32)
            x_f16 = T.alloc_fragment((M, K), "bfloat16")
            x_f = T.alloc_fragment((M, K), T.tfloat32)
            c = T.alloc_fragment((M, N), "float32")
            T.copy(X, x_s)
            T.copy(W, w_s)
            T.copy(x_s, x_f16)
            T.copy(x_f16, x_f)
            T.gemm(x_f, w_s, c, transpose_B=True, clear_accum=True)
            T.copy(c, C)

    return main


@pytest.mark.parametrize("kw", TARGETS + [pytest.param({"target": "cuda -arch=sm_90a", "execution_backend": "emulator"},
                                                       id="emulator-sm90a")])
def test_tf32_gemm_with_a_register_operand(kw):
    M, N, K = 32, 32, 64
    kernel = tilewise.compile(tf32_fragment_gemm(M, N, K), out_idx=-1, **kw)
    rng = np.random.default_rng(5)
    X = torch.from_numpy(rng.standard_normal((M, K)).astype(np.float32)).bfloat16()
    W = rng.standard_normal((N, K)).astype(np.float32)  # a float32 tensor for a tfloat32 parameter
    C = kernel(X, torch.from_numpy(W)).numpy()
    w_read = (W.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)  # tf32 reads ignore 13 bits
    ref = X.float().numpy().astype(np.float64) @ w_read.astype(np.float64).T
    np.testing.assert_allclose(C, ref, rtol=1e-5, atol=1e-5)
    if kw:
        assert "tf32" in kernel.get_kernel_source()


def test_int4_gemm_sm90a_emulator():
    """On sm_90a the tiles arrive by TMA (int4 one value per byte: UINT8 elements)."""
    M, N, K = 64, 64, 64
    kernel = tilewise.compile(int4_gemm(M, N, K, 64, 64, 64), out_idx=-1, target="cuda -arch=sm_90a",
                              execution_backend="emulator")
    rng = np.random.default_rng(6)
    A, B = rng.integers(-8, 8, (M, K)), rng.integers(-8, 8, (N, K))
    C = kernel(torch.from_numpy(_pack(A, np.int8)), torch.from_numpy(_pack(B, np.int8)))
    np.testing.assert_array_equal(C.numpy(), A @ B.T)
