"""T.PartialFragment (layout/partial_fragment.py, TileLang 0.1.15): the Fragment API with a
combine width; T.annotate_layout pins a reducer's layout with it (a plain Fragment is refused
there, as TileLang does; copy groups, combine < replicate, are refused by name), and the
reducer's results are numpy's on the CPU and in the emulator (re-run by the PTX interpreter)."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError
from tilewise.layout import Fragment, PartialFragment, make_fully_replicated_partial_fragment

M, K = 16, 32


def test_api():
    pf = T.PartialFragment((16,), forward_thread_fn=lambda i, rep: i * 8 + rep, replicate=8)
    assert isinstance(pf, Fragment) and pf.combine == pf.combine_size == 8
    assert pf.get_thread_size() == 128 and int(pf.replicate) == 8
    assert pf.map_forward_thread([3], 5).value == 29
    post = pf.as_post_collective()
    assert type(post) is Fragment and post.is_equal(pf.as_post_collective())
    assert not pf.is_equal(post) and not post.is_equal(pf)  # a partial never equals a Fragment
    back = PartialFragment.from_fragment(post)
    assert back.is_equal(pf) and back.combine == 8
    assert "combine=8" in repr(pf)
    two = PartialFragment((4,), forward_thread_fn=lambda i, rep: i + 4 * rep, replicate=4, combine=2)
    assert two.combine == 2 and not two.is_equal(PartialFragment.from_fragment(two.as_post_collective()))
    with pytest.raises(CompileError, match=r"combine \(3\) must be >= 1 and evenly divide replicate \(4\)"):
        PartialFragment((4,), forward_thread_fn=lambda i, rep: i + 4 * rep, replicate=4, combine=3)
    wide = make_fully_replicated_partial_fragment((4, 3), 32)
    assert wide.combine == 32 == int(wide.replicate)
    tt = wide.thread_table()
    assert (tt[:, 2, 1] == np.arange(32)).all() and wide.flat_table()[2, 1] == 7


def _gemv(layout: str):
    """O[r] = sum over k of A[r, k] * X[k] with the reducer's layout annotated."""

    @T.prim_func
    def gemv(A: T.Tensor((M, K), "float32"), X: T.Tensor((K,), "float32"), O: T.Tensor((M,), "float32")):
        with T.Kernel(1, threads=128) as _:
            acc = T.alloc_reducer((M,), "float32", op="sum")
            a = T.alloc_fragment((M, K), "float32")
            x = T.alloc_fragment((K,), "float32")
            if layout == "narrow":  # thread i * 8 + j // 4 runs (i, j) and holds a partial of row i
                T.annotate_layout({
                    a: T.Fragment((M, K), forward_thread_fn=lambda i, j: i * 8 + j // 4,
                                  forward_index_fn=lambda i, j: j % 4),
                    acc: T.PartialFragment((M,), forward_thread_fn=lambda i, rep: i * 8 + rep, replicate=8),
                })
            else:
                T.annotate_layout({acc: make_fully_replicated_partial_fragment((M,), 128)})
            T.clear(acc)
            T.copy(A, a)
            T.copy(X, x)
            for i, j in T.Parallel(M, K):
                acc[i] += a[i, j] * x[j]
            T.finalize_reducer(acc)
            T.copy(acc, O)

    return gemv


@pytest.mark.parametrize("layout", ["narrow", "wide"])
@pytest.mark.parametrize("target", ["cpu", "emulator"])
def test_annotated_reducer(layout, target):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((M, K)).astype(np.float32)
    x = rng.standard_normal(K).astype(np.float32)
    if target == "cpu":
        k = tilewise.compile(_gemv(layout), out_idx=[2], target="cpu")
    else:
        k = tilewise.compile(_gemv(layout), out_idx=[2], target="cuda", execution_backend="emulator")
    np.testing.assert_allclose(k(a, x), a.astype(np.float64) @ x.astype(np.float64), rtol=1e-5, atol=1e-5)


def _annotated(lay_fn):
    @T.prim_func
    def k(O: T.Tensor((M,), "float32")):
        with T.Kernel(1, threads=128) as _:
            acc = T.alloc_reducer((M,), "float32", op="sum")
            T.annotate_layout({acc: lay_fn()})
            T.clear(acc)
            T.finalize_reducer(acc)
            T.copy(acc, O)

    return k


def test_reducer_refusals():
    with pytest.raises(CompileError, match="the layout must be a PartialFragment describing the per-thread partials"):
        tilewise.compile(_annotated(lambda: T.Fragment((M,), forward_thread_fn=lambda i, rep: i * 8 + rep,
                                                       replicate=8)), target="cuda", execution_backend="emulator")
    with pytest.raises(CompileError, match="combine=4: groups of equal-value copies"):
        tilewise.compile(_annotated(lambda: T.PartialFragment((M,), forward_thread_fn=lambda i, rep: i * 8 + rep,
                                                              replicate=8, combine=4)),
                         target="cuda", execution_backend="emulator")


def test_partial_fragment_on_a_plain_fragment():
    """TileLang accepts a PartialFragment wherever a Fragment goes (it is one): its map is used."""

    @T.prim_func
    def k(A: T.Tensor((M, K), "float32"), B: T.Tensor((M, K), "float32")):
        with T.Kernel(1, threads=128) as _:
            a = T.alloc_fragment((M, K), "float32")
            T.annotate_layout({a: T.PartialFragment((M, K), forward_thread_fn=lambda i, j: i * 8 + j // 4,
                                                    forward_index_fn=lambda i, j: j % 4)})
            T.copy(A, a)
            for i, j in T.Parallel(M, K):
                a[i, j] = a[i, j] * 2
            T.copy(a, B)

    x = np.random.default_rng(2).standard_normal((M, K)).astype(np.float32)
    out = tilewise.compile(k, out_idx=[1], target="cuda", execution_backend="emulator")(x)
    np.testing.assert_array_equal(out, x * 2)
