"""T.make_tensor(ptrs[i], shape, dtype) inside a kernel: a tensor at an address read at run time
from a table of pointers (`ptrs: T.Tensor((G,), T.ptr)`, an int64 tensor as in TileLang, or a
uint64 one), TileLang's grouped-GEMM idiom (its language/ptr tests). The CPU dereferences the
host addresses (`t.data_ptr()`); CUDA code casts them; the emulator and the PTX interpreter map
each address onto the argument tensor it lies in (so the tensors the table points into are
passed too) and raise naming an address that lies in none. Accesses are bounds-checked against
the made tensor's shape like any tensor's."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tilewise
import tilewise.language as T
from tilewise.emulator.errors import OutOfBoundsError
from tilewise.ptx.errors import OutOfBoundsError as PtxOutOfBounds

TARGETS = [("cpu", None), ("cuda", "emulator"), ("cuda -arch=sm_80", "ptx")]
IDS = ["cpu", "emulator", "ptx"]


def _compile(func, target, backend, out_idx=None):
    extra = {} if backend is None else {"execution_backend": backend}
    return tilewise.compile(func, target=target, out_idx=out_idx, **extra)


def test_a_ptr_table_is_int64():
    @T.prim_func
    def main(src_ptrs: T.Tensor([4], T.ptr), out: T.Tensor([4, 8], "float16")):
        with T.Kernel(4, threads=1) as bx:
            Src = T.make_tensor(src_ptrs[bx], (8,), "float16")
            for i in T.serial(8):
                out[bx, i] = Src[i]

    assert str(main.params[0].dtype) == "int64" and tuple(main.params[0].shape) == (4,)


def test_table_copy_cpu_any_host_memory():
    """TileLang's pointer_table_copy: on the CPU the table may point anywhere in host memory."""
    N = 64

    @T.prim_func
    def main(src_ptrs: T.Tensor([1], T.ptr), out: T.Tensor([N], "float16")):
        with T.Kernel(1, threads=1) as _:
            Src = T.make_tensor(src_ptrs[0], (N,), "float16")
            for i in T.serial(N):
                out[i] = Src[i]

    src = torch.randn(N, dtype=torch.float16)
    out = _compile(main, "cpu", None, [1])(torch.tensor([src.data_ptr()], dtype=torch.int64))
    assert torch.equal(out, src)


def _multi(G, N, table_dtype):
    @T.prim_func
    def main(src_ptrs: T.Tensor([G], table_dtype), dst_ptrs: T.Tensor([G], table_dtype), S: T.Tensor([G, N], "float32"),
             D: T.Tensor([G, N], "float32"), out: T.Tensor([G, N], "float32")):
        with T.Kernel(G, threads=32) as bx:
            Src = T.make_tensor(src_ptrs[bx], (N,), "float32")
            Dst = T.make_tensor(dst_ptrs[bx], (N,), "float32")
            for i in T.Parallel(N):
                out[bx, i] = Src[i] * 2.0
                Dst[i] = Src[i] + 1.0

    return main


def _rows(a: np.ndarray, order, dtype) -> np.ndarray:
    base = a.__array_interface__["data"][0]
    return np.array([base + g * a.strides[0] for g in order], dtype=dtype)


@pytest.mark.parametrize("target,backend", TARGETS, ids=IDS)
@pytest.mark.parametrize("table_dtype", [T.ptr, "uint64"], ids=["ptr", "uint64"])
def test_loads_and_stores_through_tables(target, backend, table_dtype):
    """Block g reads row g of S and writes row G-1-g of D, both through tables."""
    G, N = 3, 40
    npdt = np.int64 if table_dtype is T.ptr else np.uint64
    s = np.arange(G * N, dtype=np.float32).reshape(G, N) / 7
    d = np.zeros((G, N), np.float32)
    out = _compile(_multi(G, N, table_dtype), target, backend, [4])(
        _rows(s, range(G), npdt), _rows(d, reversed(range(G)), npdt), s, d)
    np.testing.assert_array_equal(np.asarray(out), s * 2)
    np.testing.assert_array_equal(d, (s + 1)[::-1])


def _grouped_gemm(sizes, N, K, bm, bn, bk, dtype="float16"):
    """TileLang's pointer_table_grouped_matmul, with the three stacks the tables point into as
    parameters too (the emulator and the PTX interpreter know memory by the tensors passed)."""
    G, max_m = len(sizes), max(sizes)
    blocks = sum(math.ceil(s / bm) for s in sizes)

    @T.prim_func
    def main(a_ptrs: T.Tensor([G], T.ptr), b_ptrs: T.Tensor([G], T.ptr), c_ptrs: T.Tensor([G], T.ptr),
             offsets: T.Tensor([G], T.int32), As: T.Tensor([G, max_m, K], dtype), Bs: T.Tensor([G, K, N], dtype),
             Cs: T.Tensor([G, max_m, N], dtype)):
        with T.Kernel(blocks, T.ceildiv(N, bn), threads=32) as (bx, by):
            A_shared = T.alloc_shared((bm, bk), dtype)
            B_shared = T.alloc_shared((bk, bn), dtype)
            C_local = T.alloc_fragment((bm, bn), "float32")
            g = T.alloc_var(dtype=T.int32)
            first = T.alloc_var(dtype=T.int32)
            g = 0
            first = 0
            for i in range(G):
                mine = bx >= offsets[i]
                g = T.if_then_else(mine, i, g)
                first = T.if_then_else(mine, offsets[i], first)
            m0 = (bx - first) * bm
            A = T.make_tensor(a_ptrs[g], (max_m, K), dtype)
            B = T.make_tensor(b_ptrs[g], (K, N), dtype)
            C = T.make_tensor(c_ptrs[g], (max_m, N), dtype)
            T.clear(C_local)
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=2):
                T.copy(A[m0, ko * bk], A_shared)
                T.copy(B[ko * bk, by * bn], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.copy(C_local, C[m0, by * bn])

    return main


@pytest.mark.parametrize("target,backend", TARGETS + [("cuda -arch=sm_90a", "emulator")],
                         ids=IDS + ["sm90-emulator"])
def test_grouped_gemm(target, backend):
    sizes, N, K, bm = [8, 12, 17], 32, 32, 16
    G, max_m = len(sizes), max(sizes)
    gen = torch.Generator().manual_seed(0)
    As = torch.zeros(G, max_m, K, dtype=torch.float16)
    for g, s in enumerate(sizes):
        As[g, :s] = torch.randn(s, K, generator=gen).half()
    Bs = torch.randn(G, K, N, generator=gen).half()
    Cs = torch.zeros(G, max_m, N, dtype=torch.float16)
    offsets = [0]
    for s in sizes[:-1]:
        offsets.append(offsets[-1] + math.ceil(s / bm))

    def table(x):
        return torch.tensor([x[g].data_ptr() for g in range(G)], dtype=torch.int64)

    k = _compile(_grouped_gemm(sizes, N, K, bm, 16, 16), target, backend)
    k(table(As), table(Bs), table(Cs), torch.tensor(offsets, dtype=torch.int32), As, Bs, Cs)
    for g, s in enumerate(sizes):
        ref = As[g, :s].float() @ Bs[g].float()
        torch.testing.assert_close(Cs[g, :s].float(), ref, atol=1e-2, rtol=1e-2)


def _copy_one(N):
    @T.prim_func
    def main(src_ptrs: T.Tensor([1], T.ptr), out: T.Tensor([N], "float32")):
        with T.Kernel(1, threads=32) as _:
            Src = T.make_tensor(src_ptrs[0], (N,), "float32")
            for i in T.Parallel(N):
                out[i] = Src[i]

    return main


@pytest.mark.parametrize("target,backend,error", [("cuda", "emulator", OutOfBoundsError),
                                                  ("cuda -arch=sm_80", "ptx", PtxOutOfBounds)],
                         ids=["emulator", "ptx"])
def test_address_outside_every_argument_is_named(target, backend, error):
    src = np.arange(32, dtype=np.float32)
    addr = src.__array_interface__["data"][0]
    k = _compile(_copy_one(32), target, backend, [1])
    with pytest.raises(error, match=f"{addr:#x}"):
        k(np.array([addr], np.int64))


@pytest.mark.parametrize("target,backend", TARGETS, ids=IDS)
def test_bounds_of_the_made_tensor(target, backend):
    """An index past the made tensor's shape (not proven inside) reads 0 and a store there is
    skipped, as for a tensor parameter, even though the memory behind it continues."""
    N = 24

    @T.prim_func
    def main(ptrs: T.Tensor([1], T.ptr), Big: T.Tensor([64], "float32"), out: T.Tensor([32], "float32")):
        with T.Kernel(1, threads=32) as _:
            Src = T.make_tensor(ptrs[0], (N,), "float32")
            for i in T.Parallel(32):
                out[i] = Src[i]
                Src[i] = -1.0

    big = np.arange(64, dtype=np.float32) + 1
    want_out = np.concatenate([big[:N], np.zeros(32 - N, np.float32)])
    want_big = np.concatenate([np.full(N, -1.0, np.float32), big[N:]])
    out = _compile(main, target, backend, [2])(np.array([big.__array_interface__["data"][0]], np.int64), big)
    np.testing.assert_array_equal(np.asarray(out), want_out)
    np.testing.assert_array_equal(big, want_big)


@pytest.mark.parametrize("target,backend", TARGETS, ids=IDS)
def test_shape_from_scalar_parameters(target, backend):
    @T.prim_func
    def main(ptrs: T.Tensor([2], T.ptr), m: T.int32, S: T.Tensor([2, 6, 10], "float32"),
             out: T.Tensor([2, 4, 8], "float32")):
        with T.Kernel(2, threads=32) as bx:
            A = T.make_tensor(ptrs[bx], (m, 10), "float32")
            for i, j in T.Parallel(4, 8):
                out[bx, i, j] = A[i + 1, j + 2]

    s = np.arange(120, dtype=np.float32).reshape(2, 6, 10)
    out = _compile(main, target, backend, [3])(_rows(s, range(2), np.int64), 6, s)
    np.testing.assert_array_equal(np.asarray(out), s[:, 1:5, 2:10])
