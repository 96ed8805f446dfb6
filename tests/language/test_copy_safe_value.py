"""T.annotate_safe_value({A: v}) honoured by T.copy, as TileLang 0.1.15 defines it: a copy whose
global source region reaches past A's edge reads v there (cast to the destination's type) instead
of 0; without the annotation it reads 0. Global to global, global to shared (thread copies, the
TMA-capable sm_90a target, a software pipeline) and global to fragment, against numpy on the CPU
target, the emulator and the PTX interpreter. Other tile operators reading past the edge of such
a tensor stay a CompileError (not implemented for them)."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T

TARGETS = [("cpu", None), ("cuda", "emulator"), ("cuda -arch=sm_80", "ptx"), ("cuda -arch=sm_90a", "emulator")]
IDS = ["cpu", "emulator", "ptx", "sm90-emulator"]


def _compile(func, target, backend, out_idx=None):
    extra = {} if backend is None else {"execution_backend": backend}
    return tilewise.compile(func, target=target, out_idx=out_idx, **extra)


def _expect(a: np.ndarray, shape, pad, dtype) -> np.ndarray:
    ref = np.full(shape, 0 if pad is None else pad, dtype=dtype)
    ref[:a.shape[0], :a.shape[1]] = a.astype(dtype)
    return ref


def _global_to_global(M, N, PM, PN, src, dst, pad, bm=32, bn=32):
    @T.prim_func
    def main(A: T.Tensor((M, N), src), B: T.Tensor((PM, PN), dst)):
        with T.Kernel(T.ceildiv(PN, bn), T.ceildiv(PM, bm), threads=128) as (bx, by):
            if pad is not None:
                T.annotate_safe_value({A: pad})
            T.copy(A[by * bm:(by + 1) * bm, bx * bn:(bx + 1) * bn], B[by * bm:(by + 1) * bm, bx * bn:(bx + 1) * bn])

    return main


@pytest.mark.parametrize("target,backend", TARGETS, ids=IDS)
@pytest.mark.parametrize("src,dst,pad", [("float32", "float32", -99), ("float32", "float16", -99),
                                         ("float32", "float32", None), ("int32", "int32", 7)])
def test_global_to_global(target, backend, src, dst, pad):
    """TileLang's own test (language/copy oob_safe_value): a 70 x 75 tensor copied by 32 x 32
    tiles into a 96 x 96 one."""
    k = _compile(_global_to_global(70, 75, 96, 96, src, dst, pad), target, backend, [1])
    a = (np.random.default_rng(0).standard_normal((70, 75)) * 10).astype(src)
    np.testing.assert_array_equal(np.asarray(k(a)), _expect(a, (96, 96), pad, dst))


@pytest.mark.parametrize("target,backend", TARGETS, ids=IDS)
def test_global_to_shared_and_fragment(target, backend):
    """Rows past the end of a 16-byte-aligned tensor (sm_90a would copy it by TMA, which fills
    zeros: the annotated copy stays a thread copy there) into shared memory, and columns past
    the end into a fragment."""
    M, N, bm, bn = 50, 64, 32, 64

    @T.prim_func
    def main(A: T.Tensor((M, N), "float16"), B: T.Tensor((64, 64), "float16"), C: T.Tensor((32, 32), "float16")):
        with T.Kernel(2, threads=128) as by:
            T.annotate_safe_value({A: -3.5})
            S = T.alloc_shared((bm, bn), "float16")
            F = T.alloc_fragment((32, 32), "float16")
            T.copy(A[by * bm, 0], S)
            T.copy(S, B[by * bm, 0])
            if by == 0:
                T.copy(A[18:50, 48:80], F)
                T.copy(F, C)

    a = np.random.default_rng(1).standard_normal((M, N)).astype(np.float16)
    b, c = _compile(main, target, backend, [1, 2])(a)
    np.testing.assert_array_equal(np.asarray(b), _expect(a, (64, 64), -3.5, np.float16))
    want_c = np.full((32, 32), -3.5, np.float16)
    want_c[:, :16] = a[18:50, 48:64]
    np.testing.assert_array_equal(np.asarray(c), want_c)


@pytest.mark.parametrize("target,backend", TARGETS, ids=IDS)
def test_pipelined(target, backend):
    """A software-pipelined global -> shared copy (cp.async or TMA when unannotated) with a K
    that is not a multiple of the tile: the padding enters a sum."""
    M, K, bk = 32, 100, 32

    @T.prim_func
    def main(A: T.Tensor((M, K), "float32"), Out: T.Tensor((M,), "float32")):
        with T.Kernel(1, threads=128) as _:
            T.annotate_safe_value({A: 1.0})
            S = T.alloc_shared((M, bk), "float32")
            F = T.alloc_fragment((M, bk), "float32")
            acc = T.alloc_fragment((M,), "float32")
            part = T.alloc_fragment((M,), "float32")
            T.clear(acc)
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=2):
                T.copy(A[0, ko * bk], S)
                T.copy(S, F)
                T.reduce_sum(F, part, dim=1)
                for i in T.Parallel(M):
                    acc[i] += part[i]
            T.copy(acc, Out)

    a = np.random.default_rng(2).standard_normal((M, K)).astype(np.float32)
    out = _compile(main, target, backend, [1])(a)
    padded = 4 * bk - K  # elements of the last tile past the end, each 1.0
    np.testing.assert_allclose(out, a.sum(axis=1) + padded, rtol=1e-5, atol=1e-4)


def test_other_operators_still_refused():
    with pytest.raises(tilewise.CompileError, match="T.atomic_add reads A possibly outside its bounds"):
        @T.prim_func
        def main(A: T.Tensor((70,), "float32"), B: T.Tensor((96,), "float32")):
            with T.Kernel(3, threads=32) as bx:
                T.annotate_safe_value({A: 5.0})
                T.atomic_add(B[bx * 32:(bx + 1) * 32], A[bx * 32:(bx + 1) * 32])

        tilewise.compile(main, target="cpu")
