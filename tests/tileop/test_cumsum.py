"""T.cumsum on the CPU against numpy: every dim of 1-D, 2-D and 3-D tiles, forward and reverse,
in place on shared memory and into another fragment, integer and mixed types, and the errors."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise import CompileError

SHAPES = [(65,), (7, 33), (3, 5, 7)]


def variants(ndim: int):
    """(dim, reverse, in place) triples; for 3-D tiles fewer (each dim, both directions, both
    placements), to keep the kernel small: g++ -O3 is slow on many tiny loops."""
    vs = list(itertools.product(range(-1, ndim), (False, True), (False, True)))
    return vs if ndim < 3 else [v for v in vs if v[0] >= 0 and v[2] == ((v[0] + v[1]) % 2 == 0)]


def np_cumsum(x: np.ndarray, dim: int, reverse: bool) -> np.ndarray:
    if reverse:
        return np.flip(np.cumsum(np.flip(x, dim), dim), dim)
    return np.cumsum(x, dim)


def all_cumsums(shape):
    """One kernel computing every variant into Out[v]."""
    vs = variants(len(shape))

    @T.prim_func
    def main(A: T.Tensor(shape, "float32"), Out: T.Tensor((len(vs), *shape), "float32")):
        with T.Kernel(1):
            a = T.alloc_fragment(shape, "float32")
            b = T.alloc_fragment(shape, "float32")
            s = T.alloc_shared(shape, "float32")
            T.copy(A, a)
            for v, (dim, reverse, in_place) in enumerate(vs):
                if in_place:
                    T.copy(A, s)
                    T.cumsum(s, dim=dim, reverse=reverse)
                    T.copy(s, Out[v])
                else:
                    T.cumsum(a, b, dim=dim, reverse=reverse)
                    T.copy(b, Out[v])

    return main


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cumsum_all_variants(shape, rng):
    kernel = tilewise.compile(all_cumsums(shape), target="cpu", out_idx=[1])
    a = rng.standard_normal(shape).astype(np.float32)
    out = kernel(a)
    for v, (dim, reverse, in_place) in enumerate(variants(len(shape))):
        np.testing.assert_allclose(
            out[v], np_cumsum(a, dim, reverse), rtol=1e-5, atol=1e-5,
            err_msg=f"dim={dim} reverse={reverse} in_place={in_place}",
        )


def test_cumsum_types_and_slices(rng):
    """int32 in place, float16 into float32 (the running sum is kept in dst's type), and a slice."""

    @T.prim_func
    def main(
        X: T.Tensor((6, 9), "int32"),
        H: T.Tensor((4, 40), "float16"),
        RX: T.Tensor((6, 9), "int32"),
        RH: T.Tensor((4, 40), "float32"),
        RS: T.Tensor((2, 9), "int32"),
    ):
        with T.Kernel(1):
            x = T.alloc_shared((6, 9), "int32")
            h = T.alloc_shared((4, 40), "float16")
            rh = T.alloc_fragment((4, 40), "float32")
            rs = T.alloc_fragment((2, 9), "int32")
            T.copy(X, x)
            T.copy(H, h)
            T.cumsum(x[1:3, :], rs, dim=1)
            T.cumsum(x, dim=0)
            T.cumsum(h, rh, dim=-1, reverse=True)
            T.copy(x, RX)
            T.copy(rh, RH)
            T.copy(rs, RS)

    kernel = tilewise.compile(main, target="cpu", out_idx=[2, 3, 4])
    x = rng.integers(-1000, 1000, size=(6, 9)).astype(np.int32)
    h = rng.uniform(-2, 2, size=(4, 40)).astype(np.float16)
    rx, rh, rs = kernel(x, h)
    np.testing.assert_array_equal(rx, np.cumsum(x, 0))
    np.testing.assert_allclose(rh, np_cumsum(h.astype(np.float32), 1, True), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(rs, np.cumsum(x[1:3], 1))


def test_cumsum_scan_dim_vectorises():
    """Scanning an outer dim adds whole rows: the innermost loop runs over the contiguous dim
    (the rows of the Hillis-Steele steps, cumsum.py `_segmented`)."""

    @T.prim_func
    def main(A: T.Tensor((8, 64), "float32")):
        with T.Kernel(1):
            s = T.alloc_shared((8, 64), "float32")
            T.copy(A, s)
            T.cumsum(s, dim=0)
            T.copy(s, A)

    lines = tilewise.lower(main, target="cpu").kernel_source.splitlines()
    k = next(i for i, s in enumerate(lines) if "scan_seg[" in s and "] + scan_seg[" in s)
    assert "#pragma GCC ivdep" in lines[k - 2] and "< 64" in lines[k - 1], "\n".join(lines[k - 6 : k + 1])


def _parse(body):
    @T.prim_func
    def main(A: T.Tensor((8, 16), "float32")):
        with T.Kernel(1):
            a = T.alloc_fragment((8, 16), "float32")
            b = T.alloc_fragment((16, 8), "float32")
            m = T.alloc_fragment((8, 16), "bool")
            body(A, a, b, m)

    return main


@pytest.mark.parametrize(
    "body, match",
    [
        (lambda A, a, b, m: T.cumsum(a, b), r"source a has shape \(8, 16\) but the destination b has shape \(16, 8\)"),
        (lambda A, a, b, m: T.cumsum(A), r"A is a global buffer"),
        (lambda A, a, b, m: T.cumsum(a, dim=2), r"dim=2 is out of range for the 2-D tile a"),
        (lambda A, a, b, m: T.cumsum(a, dim=-3), r"dim=-3 is out of range"),
        (lambda A, a, b, m: T.cumsum(m), r"source m has type bool"),
        (lambda A, a, b, m: T.cumsum(a, reverse=a[0, 0] > 0), r"reverse must be a Python bool"),
    ],
)
def test_cumsum_errors(body, match):
    with pytest.raises(CompileError, match=match):
        _parse(body)
