"""transform/privatise_atomics.py: a tensor that a CPU kernel only ever atomically adds into is
accumulated in per-thread copies (plain adds) that are added into it after the blocks; a kernel
that reads the tensor, writes it otherwise or uses an atomic's old value keeps its atomics. The
blocks race for real on OpenMP threads, so every result is checked against numpy."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tilewise
import tilewise.language as T

ROOT = Path(__file__).resolve().parents[2]


def _privatised(kernel, name: str) -> bool:
    return f"{name}_private[" in kernel.get_kernel_source()


def split_k(M, N, K, bm=32, bn=32, bk=16, splits=4, out_dtype="float32", read_back=False, store_too=False):
    k_tiles = -(-K // (bk * splits))

    @T.prim_func
    def main(A: T.Tensor((M, K), "float32"), B: T.Tensor((K, N), "float32"), C: T.Tensor((M, N), out_dtype),
             D: T.Tensor((M, N), out_dtype)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), splits) as (bx, by, bz):
            a = T.alloc_shared((bm, bk), "float32")
            b = T.alloc_shared((bk, bn), "float32")
            c = T.alloc_fragment((bm, bn), "float32")
            T.clear(c)
            for k in T.serial(k_tiles):
                T.copy(A[by * bm, (bz * k_tiles + k) * bk], a)
                T.copy(B[(bz * k_tiles + k) * bk, bx * bn], b)
                T.gemm(a, b, c)
            T.atomic_add(C[by * bm, bx * bn], c)
            if read_back:
                # reads C (what it sees depends on the order of the blocks; D is not checked)
                T.copy(C[by * bm, bx * bn], D[by * bm, bx * bn])
            if store_too:
                if bz == 0:
                    for i, j in T.Parallel(bm, bn):
                        if by * bm + i < M and bx * bn + j < N:
                            D[by * bm + i, bx * bn + j] = c[i, j]

    return main


@pytest.mark.parametrize("M, N, K", [(65, 33, 200), (128, 96, 64)])
def test_split_k_privatised(M, N, K, rng):
    kernel = tilewise.compile(split_k(M, N, K), target="cpu")
    assert _privatised(kernel, "C")
    # the fallback branch (whole rows of the tile: one tw::atomic_add_run each, atomic_add_runs.py)
    assert "tw::atomic_add_run((&C[" in kernel.get_kernel_source()
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    c0 = rng.standard_normal((M, N)).astype(np.float32)
    c = c0.copy()
    d = np.zeros((M, N), np.float32)
    kernel(a, b, c, d)
    ref = c0.astype(np.float64) + a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_reading_the_target_keeps_atomics(rng):
    M, N, K = 65, 33, 200
    kernel = tilewise.compile(split_k(M, N, K, read_back=True), target="cpu")
    assert not _privatised(kernel, "C")
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    c = np.zeros((M, N), np.float32)
    kernel(a, b, c, np.zeros((M, N), np.float32))
    ref = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_other_tensor_written_is_privatised_target_stored_is_not(rng):
    # D is stored to (not privatised, no atomics); C is only atomically added into
    M, N, K = 40, 50, 64
    kernel = tilewise.compile(split_k(M, N, K, store_too=True), target="cpu")
    assert _privatised(kernel, "C") and not _privatised(kernel, "D")
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    c = np.zeros((M, N), np.float32)
    kernel(a, b, c, np.zeros((M, N), np.float32))
    ref = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def histogram(n, bins, per_block, int_dtype, stored=False):
    @T.prim_func
    def main(X: T.Tensor((n,), "int32"), H: T.Tensor((bins,), int_dtype)):
        with T.Kernel(T.ceildiv(n, per_block)) as bx:
            for i in T.Parallel(per_block):
                if bx * per_block + i < n:
                    T.atomic_add(H[X[bx * per_block + i]], 1)
            if stored:
                if bx == 0:
                    H[0] = 0

    return main


@pytest.mark.parametrize("int_dtype", ["int32", "int64", "int16"])
def test_histogram_exact(int_dtype, rng):
    n, bins = 100_003, 37
    kernel = tilewise.compile(histogram(n, bins, 256, int_dtype), target="cpu")
    assert _privatised(kernel, "H")
    x = rng.integers(0, bins, n).astype(np.int32)
    h = np.full(bins, 5, dtype=int_dtype)
    kernel(x, h)
    np.testing.assert_array_equal(h, 5 + np.bincount(x, minlength=bins).astype(int_dtype))


def test_store_into_target_keeps_atomics(rng):
    n, bins = 5000, 7
    kernel = tilewise.compile(histogram(n, bins, 256, "int32", stored=True), target="cpu")
    assert not _privatised(kernel, "H")


def test_few_updates_into_a_large_tensor_keep_atomics_at_run_time(rng):
    # 4 blocks x 8 updates into 1M elements: the copies would cost more than the atomics, so the
    # threads keep them (the private branch is compiled, but not taken); the result is the same
    n, per_block = 32, 8

    @T.prim_func
    def main(X: T.Tensor((n,), "int32"), V: T.Tensor((n,), "float32"), H: T.Tensor((1 << 20,), "float32")):
        with T.Kernel(n // per_block) as bx:
            for i in T.Parallel(per_block):
                T.atomic_add(H[X[bx * per_block + i]], V[bx * per_block + i])

    kernel = tilewise.compile(main, target="cpu")
    assert _privatised(kernel, "H")
    x = rng.integers(0, 1 << 20, n).astype(np.int32)
    x[:4] = 7  # some collide
    v = rng.standard_normal(n).astype(np.float32)
    h = rng.standard_normal(1 << 20).astype(np.float32)
    ref = h.astype(np.float64).copy()
    np.add.at(ref, x, v.astype(np.float64))
    kernel(x, v, h)
    np.testing.assert_allclose(h, ref, rtol=1e-6, atol=1e-6)


def test_return_prev_keeps_atomics(rng):
    n = 1024

    @T.prim_func
    def main(H: T.Tensor((4,), "int32"), Old: T.Tensor((n,), "int32")):
        with T.Kernel(n // 64) as bx:
            for i in T.Parallel(64):
                Old[bx * 64 + i] = T.atomic_add(H[i % 4], 1, return_prev=True)

    kernel = tilewise.compile(main, target="cpu")
    assert not _privatised(kernel, "H")
    h = np.zeros(4, np.int32)
    old = np.zeros(n, np.int32)
    kernel(h, old)
    np.testing.assert_array_equal(h, np.full(4, n // 4))
    for r in range(4):  # each counter handed out 0 .. n/4 - 1 exactly once
        np.testing.assert_array_equal(np.sort(old[r::4]), np.arange(n // 4))


def test_narrow_float_target_keeps_atomics():
    kernel = tilewise.compile(split_k(40, 40, 64, out_dtype="float16"), target="cpu")
    assert not _privatised(kernel, "C")


def test_flash_attention_backward():
    # the backward kernel alone (its lse and Delta inputs from torch): dQ, added into by every key
    # block, is privatised; dQ, dK, dV match torch autograd (the examples' tests run all four kernels)
    sys.path.insert(0, str(ROOT / "examples" / "flash_attention"))
    from example_mha_bwd_bshd import LOG2E, flashattn_bwd

    b, s, h, d, causal = 1, 100, 2, 64, True  # ragged: 64-row key blocks, 32-row query tiles
    kernel = tilewise.compile(flashattn_bwd(b, h, s, d, causal), out_idx=[7, 8], target="cpu")
    assert _privatised(kernel, "dQ")
    g = torch.Generator().manual_seed(0)
    q, k, v, do = (torch.randn((b, s, h, d), generator=g).half() for _ in range(4))
    qf, kf, vf = (x.float().transpose(1, 2).requires_grad_() for x in (q, k, v))
    scores = qf @ kf.transpose(-1, -2) / d**0.5
    scores = scores.masked_fill(torch.ones(s, s, dtype=torch.bool).triu(1), float("-inf"))
    o = torch.softmax(scores, -1) @ vf
    lse = (torch.logsumexp(scores, -1) * LOG2E).detach().contiguous()  # base 2, [b, h, s]
    dof = do.float().transpose(1, 2)
    delta = (o.detach() * dof).sum(-1).contiguous()
    rdq, rdk, rdv = torch.autograd.grad(o, (qf, kf, vf), dof)
    dq = torch.zeros((b, s, h, d))
    dk, dv = kernel(q, k, v, do, lse, delta, dq)
    for got, ref in ((dq, rdq), (dk, rdk), (dv, rdv)):
        torch.testing.assert_close(got.float(), ref.transpose(1, 2), rtol=1e-2, atol=1e-2)
