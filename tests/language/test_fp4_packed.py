"""fp4 (float4_e2m1fn) stored packed inside kernels, two values per byte, element 2i in byte i's
low nibble (transform/pack_fp4.py), on the CPU and in the emulator, checked against ml_dtypes."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import tilewise
import tilewise.language as T
from tilewise.emulator import RaceError
from tilewise.errors import CompileError

FP4 = np.dtype(ml_dtypes.float4_e2m1fn)
TARGETS = [("cpu", None), ("cuda -arch=sm_80", "emulator")]
# also what NVRTC compiles of it, run by the PTX interpreter
WITH_PTX = [*TARGETS, ("cuda -arch=sm_80", "ptx")]


def pack(codes: np.ndarray) -> np.ndarray:
    """(..., 2k) fp4 codes -> (..., k) bytes, the even element in the low nibble."""
    return (codes[..., 0::2] & 0xF) | ((codes[..., 1::2] & 0xF) << 4)


def unpack(packed: np.ndarray) -> np.ndarray:
    out = np.empty((*packed.shape[:-1], packed.shape[-1] * 2), np.uint8)
    out[..., 0::2], out[..., 1::2] = packed & 0xF, packed >> 4
    return out


def compile_(f, target, backend):
    if backend == "ptx":
        return tilewise.compile(f, target=target, execution_backend="emulator").with_execution_backend("ptx")
    return tilewise.compile(f, target=target, execution_backend=backend)


@pytest.mark.parametrize("target,backend", WITH_PTX)
def test_all_16_codes_round_trip_through_shared(target, backend):
    m, n = 4, 32

    @T.prim_func
    def rt(A: T.Tensor((m, n), "float4_e2m1fn"), B: T.Tensor((m, n), "float4_e2m1fn"),
           F: T.Tensor((m, n), "float32")):  # fmt: skip
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((m, n), "float4_e2m1fn")
            T.copy(A, S)
            T.copy(S, B)
            for i, j in T.Parallel(m, n):
                F[i, j] = T.Cast("float32", S[i, j])

    k = compile_(rt, target, backend)
    codes = np.tile(np.arange(16, dtype=np.uint8), (m, n // 16))
    codes[1] = codes[1][::-1]
    a = torch.from_numpy(pack(codes))
    b = torch.zeros((m, n // 2), dtype=torch.uint8)
    f = torch.zeros((m, n), dtype=torch.float32)
    k(a, b, f)
    assert torch.equal(a, b)
    want = codes.view(FP4).astype(np.float32)
    np.testing.assert_array_equal(f.numpy(), want)
    assert (np.signbit(f.numpy()) == np.signbit(want)).all()


@pytest.mark.parametrize("target,backend", TARGETS)
@pytest.mark.parametrize("dst", ["float16", "float32", "bfloat16"])
def test_casts_to_and_from_fp4(dst, target, backend):
    n = 256

    @T.prim_func
    def casts(X: T.Tensor((n,), dst), Q: T.Tensor((n,), "float4_e2m1fn"), Y: T.Tensor((n,), dst)):
        with T.Kernel(1, threads=64):
            Qs = T.alloc_shared((n,), "float4_e2m1fn")
            for i in T.Parallel(n):
                Qs[i] = T.Cast("float4_e2m1fn", X[i])
            T.copy(Qs, Q)
            for i in T.Parallel(n):
                Y[i] = T.Cast(dst, Qs[i])

    k = compile_(casts, target, backend)
    npdst = np.dtype(ml_dtypes.bfloat16) if dst == "bfloat16" else np.dtype(dst)
    rng = np.random.default_rng(1)
    grid = np.arange(-7.0, 7.0, 0.125)  # every rounding boundary between fp4 values, and saturation
    x = np.concatenate([grid, rng.normal(0, 3, n - grid.size)]).astype(np.float32).astype(npdst)
    xt = torch.from_numpy(x.view(np.uint16)).view(torch.bfloat16) if dst == "bfloat16" else torch.from_numpy(x)
    q = torch.zeros((n // 2,), dtype=torch.uint8)
    y = torch.zeros_like(xt)
    k(xt, q, y)
    want = x.astype(np.float32).astype(FP4)
    np.testing.assert_array_equal(unpack(q.numpy()), want.view(np.uint8) & 0xF)
    got = y.float().numpy()
    np.testing.assert_array_equal(got, want.astype(np.float32))


@pytest.mark.parametrize("target,backend", WITH_PTX)
def test_dequant_gemm_with_packed_fp4_b(target, backend):
    """C = A @ dequant(B).T with B (n, k) packed fp4 and a per-row float scale, against numpy."""
    m, n, kk, bk = 32, 32, 64, 32

    @T.prim_func
    def dq(A: T.Tensor((m, kk), "float16"), B: T.Tensor((n, kk), "float4_e2m1fn"),
           Sc: T.Tensor((n,), "float16"), C: T.Tensor((m, n), "float32")):  # fmt: skip
        with T.Kernel(1, threads=128):
            As = T.alloc_shared((m, bk), "float16")
            Bq = T.alloc_shared((n, bk), "float4_e2m1fn")
            Bh = T.alloc_shared((n, bk), "float16")
            Cf = T.alloc_fragment((m, n), "float32")
            T.clear(Cf)
            for ko in T.Pipelined(kk // bk, num_stages=1):
                T.copy(A[0, ko * bk], As)
                T.copy(B[0, ko * bk], Bq)
                for i, j in T.Parallel(n, bk):
                    Bh[i, j] = T.Cast("float16", Bq[i, j]) * Sc[i]
                T.gemm(As, Bh, Cf, transpose_B=True)
            T.copy(Cf, C)

    k = compile_(dq, target, backend)
    rng = np.random.default_rng(2)
    a = rng.normal(0, 1, (m, kk)).astype(np.float16)
    codes = rng.integers(0, 16, (n, kk), dtype=np.uint8)
    sc = rng.choice([0.5, 1.0, 2.0], n).astype(np.float16)
    c = torch.zeros((m, n), dtype=torch.float32)
    k(torch.from_numpy(a), torch.from_numpy(pack(codes)), torch.from_numpy(sc), c)
    b = codes.view(FP4).astype(np.float32) * sc.astype(np.float32)[:, None]
    np.testing.assert_allclose(c.numpy(), a.astype(np.float32) @ b.T, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("target,backend", TARGETS)
def test_odd_sizes_with_numpy_fp4_arrays(target, backend):
    """A (3, 5) fp4 tensor has 15 values: numpy ml_dtypes arrays carry it (packed for the call,
    one byte past the last value half used); torch byte tensors cannot (an error says why)."""
    m, n = 3, 5

    @T.prim_func
    def neg(A: T.Tensor((m, n), "float4_e2m1fn"), B: T.Tensor((m, n), "float4_e2m1fn")):
        with T.Kernel(1, threads=1):
            for i, j in T.Parallel(m, n):
                B[i, j] = T.Cast("float4_e2m1fn", -T.Cast("float32", A[i, j]))

    k = compile_(neg, target, backend)
    a = np.arange(15, dtype=np.uint8).reshape(m, n).view(FP4)
    b = np.zeros((m, n), FP4)
    k(a, b)
    np.testing.assert_array_equal(b.astype(np.float32), -a.astype(np.float32))
    with pytest.raises(ValueError, match="expected shape"):
        k(torch.zeros((m, 2), dtype=torch.uint8), torch.zeros((m, 2), dtype=torch.uint8))


def test_one_element_per_thread_stores_race_in_the_emulator():
    """Threads writing the two nibbles of one byte (a read-modify-write each) race: the emulator
    says so (TileLang's scalar fp4 stores race the same way)."""

    @T.prim_func
    def racy(A: T.Tensor((32,), "float32"), B: T.Tensor((32,), "float4_e2m1fn")):
        with T.Kernel(1, threads=32) as _:
            S = T.alloc_shared((32,), "float4_e2m1fn")
            T.clear(S)  # (written first: the read of each read-modify-write then reads set bytes)
            tx = T.get_thread_binding()
            S[tx] = T.Cast("float4_e2m1fn", A[tx])
            T.copy(S, B)

    k = compile_(racy, "cuda -arch=sm_80", "emulator")
    with pytest.raises(RaceError, match="stored two values per byte"):
        k(torch.ones(32), torch.zeros(16, dtype=torch.uint8))

    @T.prim_func
    def racy_global(A: T.Tensor((32,), "float32"), B: T.Tensor((32,), "float4_e2m1fn")):
        with T.Kernel(1, threads=32) as _:
            tx = T.get_thread_binding()
            B[tx] = T.Cast("float4_e2m1fn", A[tx])

    k = compile_(racy_global, "cuda -arch=sm_80", "emulator")
    with pytest.raises(RaceError, match=r"global-memory race on byte 0 of B.*stored two values per byte"):
        k(torch.ones(32), torch.zeros(16, dtype=torch.uint8))


@pytest.mark.parametrize("target,backend", TARGETS)
def test_view_of_fp4_tile_as_bytes(target, backend):
    """TileLang's T.view of an (r, k) fp4 shared tile as (r, k // 2) uint8: the packed bytes."""
    r, kd = 16, 32

    @T.prim_func
    def main(A: T.Tensor((r, kd), "bfloat16"), B: T.Tensor((r, kd // 2), "uint8")):
        with T.Kernel(1, threads=128) as _:
            A_frag = T.alloc_fragment((r, kd), "bfloat16")
            S = T.alloc_shared((r, kd), "float4_e2m1fn")
            S_u8 = T.view(S, (r, kd // 2), dtype="uint8")
            T.copy(A, A_frag)
            for i, j in T.Parallel(r, kd):
                S[i, j] = T.Cast("float4_e2m1fn", A_frag[i, j])
            T.copy(S_u8, B)

    k = compile_(main, target, backend)
    rng = np.random.default_rng(3)
    a = torch.from_numpy(rng.normal(0, 3, (r, kd)).astype(np.float32)).to(torch.bfloat16)
    b = torch.zeros((r, kd // 2), dtype=torch.uint8)
    k(a, b)
    want = a.float().numpy().astype(FP4).view(np.uint8) & 0xF
    np.testing.assert_array_equal(b.numpy(), pack(want))


def test_fp4_atomics_are_an_error():
    @T.prim_func
    def at(A: T.Tensor((4,), "float4_e2m1fn"), B: T.Tensor((4,), "float4_e2m1fn")):
        with T.Kernel(1, threads=32):
            T.atomic_add(B[1], A[0])

    with pytest.raises(CompileError, match="two values per byte"):
        compile_(at, "cuda -arch=sm_80", "emulator")


def test_ptx_interpreter_runs_packed_fp4_like_the_cpu():
    """What NVRTC compiles of the packed kernel (byte copies, nibble loads, paired stores), run by
    the PTX interpreter, gives the CPU's bytes."""
    m, n = 4, 32

    @T.prim_func
    def twice(A: T.Tensor((m, n), "float4_e2m1fn"), B: T.Tensor((m, n), "float4_e2m1fn"),
              F: T.Tensor((m, n), "float32")):  # fmt: skip
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((m, n), "float4_e2m1fn")
            T.copy(A, S)
            for i, j in T.Parallel(m, n):
                S[i, j] = T.Cast("float4_e2m1fn", T.Cast("float32", S[i, j]) * 2)
            T.copy(S, B)
            for i, j in T.Parallel(m, n):
                F[i, j] = T.Cast("float32", S[i, j])

    a = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (m, n // 2), dtype=np.uint8))
    outs = []
    for k in (compile_(twice, "cuda -arch=sm_80", "emulator").with_execution_backend("ptx"), compile_(twice, "cpu", None)):
        b, f = torch.zeros_like(a), torch.zeros((m, n))
        k(a, b, f)
        outs.append((b, f))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    want = (unpack(a.numpy()).view(FP4).astype(np.float32) * 2).astype(FP4)
    np.testing.assert_array_equal(unpack(outs[1][0].numpy()), want.view(np.uint8) & 0xF)


def test_float4_e2m1fnx2_is_the_packed_pair():
    d = T.float4_e2m1fnx2
    assert str(d) == "float4_e2m1fnx2" and d.bits == 8 and d.lanes == 2 and d.is_float4()
    assert d.as_torch() is torch.float4_e2m1fn_x2 and T.is_float4(d) and not T.is_float4_e2m1fn(d)
    assert T.float4_e2m1fn.as_torch() is torch.float4_e2m1fn_x2  # its storage dtype, as in TileLang
    with pytest.raises((ValueError, CompileError), match="float4_e2m1fnx2"):  # not an element type
        T.Tensor((4,), d)
    with pytest.raises(CompileError, match="float4_e2m1fnx2"):
        d(0)


def test_parallel_stores_give_threads_whole_bytes():
    """A T.Parallel storing fp4 gives each thread whole pairs (whole bytes): with as many threads
    as values, and with run-time extents (chunks of two iterations per thread), no two threads
    share a byte, so the emulator sees no race and the values are right."""
    n = 32

    @T.prim_func
    def small(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float4_e2m1fn")):
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((n,), "float4_e2m1fn")
            for i in T.Parallel(n):
                S[i] = T.Cast("float4_e2m1fn", A[i])
            for i in T.Parallel(n):
                B[i] = S[i]

    m, k = T.dynamic("m"), T.dynamic("k")

    @T.prim_func
    def dyn(A: T.Tensor((m, k), "float32"), B: T.Tensor((m, k), "float4_e2m1fn")):
        with T.Kernel(1, threads=64):
            for i, j in T.Parallel(m, k):
                B[i, j] = T.Cast("float4_e2m1fn", A[i, j])

    rng = np.random.default_rng(5)
    a = rng.normal(0, 3, n).astype(np.float32)
    b = torch.zeros(n // 2, dtype=torch.uint8)
    compile_(small, "cuda -arch=sm_80", "emulator")(torch.from_numpy(a), b)
    np.testing.assert_array_equal(b.numpy(), pack(a.astype(FP4).view(np.uint8) & 0xF))
    a2 = rng.normal(0, 3, (3, 10)).astype(np.float32)
    b2 = torch.zeros((3, 5), dtype=torch.uint8)
    compile_(dyn, "cuda -arch=sm_80", "emulator")(torch.from_numpy(a2), b2)
    np.testing.assert_array_equal(b2.numpy(), pack(a2.astype(FP4).view(np.uint8) & 0xF))


@pytest.mark.parametrize("target,backend", WITH_PTX)
def test_converting_copies_and_fill(target, backend):
    """T.copy converting fp4 -> float16 (global to shared) and float16 -> fp4 (fragment to global),
    and T.fill of an fp4 tile."""
    m, n = 16, 64

    @T.prim_func
    def conv(A: T.Tensor((m, n), "float4_e2m1fn"), H: T.Tensor((m, n), "float16"),
             B: T.Tensor((m, n), "float4_e2m1fn"), C: T.Tensor((m, n), "float4_e2m1fn")):  # fmt: skip
        with T.Kernel(1, threads=128):
            Sh = T.alloc_shared((m, n), "float16")
            F = T.alloc_fragment((m, n), "float16")
            Q = T.alloc_shared((m, n), "float4_e2m1fn")
            T.copy(A, Sh)
            T.copy(Sh, F)
            for i, j in T.Parallel(m, n):
                F[i, j] = F[i, j] * -0.5
            T.copy(F, H)
            T.copy(F, B)
            T.fill(Q, 1.5)
            T.copy(Q, C)

    k = compile_(conv, target, backend)
    codes = np.random.default_rng(6).integers(0, 16, (m, n), dtype=np.uint8)
    h = torch.zeros((m, n), dtype=torch.float16)
    b, c = torch.zeros((m, n // 2), dtype=torch.uint8), torch.zeros((m, n // 2), dtype=torch.uint8)
    k(torch.from_numpy(pack(codes)), h, b, c)
    want = (codes.view(FP4).astype(np.float32) * -0.5).astype(np.float16)
    np.testing.assert_array_equal(h.numpy(), want)
    np.testing.assert_array_equal(b.numpy(), pack(want.astype(np.float32).astype(FP4).view(np.uint8) & 0xF))
    np.testing.assert_array_equal(c.numpy(), np.full((m, n // 2), 0x33, np.uint8))  # 1.5 is code 3
