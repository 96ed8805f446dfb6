"""T.reshape of fragments on CUDA targets: the view's layout is its root's reshaped row-major
(TVFragment.reshape: each thread keeps the same elements in the same registers), so copies,
reductions and T.Parallel loops work on either name (TileLang's reshape::test_reshape_fragment
and test_reduce_after_reshape). Kernels run in the emulator against numpy."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.ir.expr import const
from tilewise.ir.simplify import simplify
from tilewise.layout.tv import Mode, TVFragment, default_fragment

EMU = dict(target="cuda -arch=sm_80", execution_backend="emulator")


def _owners(lay) -> dict:
    """row-major flat element -> (thread, register) of replica 0."""
    out = {}
    for idx in itertools.product(*[range(d) for d in lay.shape]):
        c = [const(i) for i in idx]
        out[int(np.ravel_multi_index(idx, lay.shape))] = (simplify(lay.thread_of(c)).value,
                                                          simplify(lay.local_of(c)).value)
    return out


@pytest.mark.parametrize("shape,new,threads,vec", [((32, 32), (1024,), 32, 4), ((1024,), (32, 32), 32, 4),
                                                   ((64, 32), (2048,), 32, 8), ((16, 32), (4, 4, 32), 64, 2),
                                                   ((8, 16), (2, 64), 128, 1)])
def test_reshape_keeps_every_element_in_place(shape, new, threads, vec):
    lay = default_fragment(shape, threads, vec)
    r = lay.reshape(new)
    assert r is not None and tuple(r.shape) == new
    assert _owners(r) == _owners(lay)
    assert r.reshape(shape).same_as(lay)


def test_a_digit_that_does_not_split_gives_none():
    # 6 elements: each of 2 threads holds 3 consecutive ones; as (3, 2) a thread's three
    # registers would straddle rows unevenly
    lay = TVFragment((6,), [Mode(2, 0, 3)], [Mode(3, 0, 1)])
    assert lay.reshape((3, 2)) is None
    assert _owners(lay.reshape((2, 3))) == _owners(lay)


def test_reshape_fragment_then_copy_and_reduce():
    N, M = 1024, 32

    @T.prim_func
    def k(A: T.Tensor((N // M, M), "float32"), B: T.Tensor((N,), "float32"), R: T.Tensor((N // M,), "float32")):
        with T.Kernel(1, threads=64):
            F = T.alloc_fragment((N // M, M), "float32")
            S = T.alloc_shared((N,), "float32")
            Rf = T.alloc_fragment((N // M,), "float32")
            T.copy(A, F)
            flat = T.reshape(F, [N])
            for i in T.Parallel(N):
                flat[i] = flat[i] * 2
            T.copy(flat, S)
            T.copy(S, B)
            back = T.reshape(flat, [N // M, M])
            T.reduce_max(back, Rf, dim=1)
            T.copy(Rf, R)

    a = np.random.default_rng(3).standard_normal((N // M, M)).astype(np.float32)
    b, r = tilewise.compile(k, out_idx=[1, 2], **EMU)(a)
    np.testing.assert_array_equal(b, (a * 2).ravel())
    np.testing.assert_array_equal(r, (a * 2).max(axis=1))


def test_reduce_on_a_reshaped_1d_fragment():
    N, M = 2048, 64

    @T.prim_func
    def k(A: T.Tensor((N,), "float16"), B: T.Tensor((N // M,), "float16")):
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((N,), "float16")
            F = T.alloc_fragment((N,), "float16")
            Bf = T.alloc_fragment((N // M,), "float16")
            T.copy(A, S)
            T.copy(S, F)
            T.reduce_sum(T.reshape(F, [N // M, M]), Bf, dim=1)
            T.copy(Bf, B)

    a = (np.random.default_rng(4).standard_normal(N) / 8).astype(np.float16)
    got = tilewise.compile(k, out_idx=[1], **EMU)(a)
    np.testing.assert_allclose(got.astype(np.float32), a.astype(np.float32).reshape(N // M, M).sum(1), atol=2e-2)
