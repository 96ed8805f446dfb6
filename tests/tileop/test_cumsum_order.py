"""The order T.cumsum adds floats in is TileLang's (tl_templates/cuda/scan.h InclusiveScanLine,
tileop/scan_shuffle.py, cumsum.py `_segmented`): segments of 32 elements aligned at element 0,
taken from the first (from the last with reverse=True); a Hillis-Steele scan inside each segment
(elements past the end are 0), then the carry added. With cancelling values ([1e30, 1, -1e30,
...]) every other order gives other bits, so the CPU, the emulator and the PTX interpreter
(conftest's re-run of emulator runs) are compared bit for bit with a numpy model of that order.
tools/tl_differential.py checks the same programs against TileLang's own CUDA code."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T

SEG = 32


def tilelang_scan_line(x: np.ndarray, reverse: bool) -> np.ndarray:
    """TileLang's inclusive scan of one line, in x's dtype, operation for operation."""
    n = len(x)
    zero = x.dtype.type(0)
    out = np.empty_like(x)
    carry = zero
    segments = -(-n // SEG)
    for seg in (range(segments - 1, -1, -1) if reverse else range(segments)):
        idx = seg * SEG + np.arange(SEG)
        val = np.where(idx < n, x[np.minimum(idx, n - 1)], zero).astype(x.dtype)
        off = 1
        while off < SEG:
            if reverse:  # lane l adds lane l + off (shfl_down) for l < SEG - off
                nb = np.concatenate([val[off:], np.full(off, zero, x.dtype)])
                val = np.where(np.arange(SEG) < SEG - off, val + nb, val).astype(x.dtype)
            else:  # lane l adds lane l - off (shfl_up) for l >= off
                nb = np.concatenate([np.full(off, zero, x.dtype), val[:-off]])
                val = np.where(np.arange(SEG) >= off, val + nb, val).astype(x.dtype)
            off *= 2
        val = (val + carry).astype(x.dtype)
        ok = idx < n
        out[idx[ok]] = val[ok]
        carry = val[0] if reverse else val[SEG - 1]
    return out


def tilelang_scan(x: np.ndarray, dim: int, reverse: bool) -> np.ndarray:
    return np.apply_along_axis(tilelang_scan_line, dim, x, reverse)


def cancelling(shape, dtype, seed):
    """+-1e30-sized, unit and tiny terms mixed (float16: +-1e3, unit, 1e-3)."""
    rng = np.random.default_rng(seed)
    big_v, tiny_v = (1e3, 1e-3) if dtype == "float16" else (1e30, 1e-7)
    big = np.where(rng.random(shape) < 0.5, big_v, -big_v) * rng.integers(1, 4, shape)
    pick = rng.integers(0, 3, shape)
    return np.choose(pick, [big, rng.standard_normal(shape), rng.standard_normal(shape) * tiny_v]).astype(dtype)


def _kernel(shape, dim, reverse, threads, dtype, kind):
    @T.prim_func
    def main(A: T.Tensor(shape, dtype), B: T.Tensor(shape, dtype)):
        with T.Kernel(1, threads=threads):
            if kind == "shared_in_place":
                s = T.alloc_shared(shape, dtype)
                T.copy(A, s)
                T.cumsum(s, dim=dim, reverse=reverse)
                T.copy(s, B)
            else:  # fragment -> fragment
                a = T.alloc_fragment(shape, dtype)
                b = T.alloc_fragment(shape, dtype)
                T.copy(A, a)
                T.cumsum(a, b, dim=dim, reverse=reverse)
                T.copy(b, B)

    return main


def test_model_is_not_the_serial_order():
    """The inputs make the order show: the model differs from numpy's serial cumsum."""
    x = cancelling((200,), "float32", 0)
    assert not np.array_equal(tilelang_scan_line(x, False), np.cumsum(x, dtype=np.float32))
    flip = np.flip(np.cumsum(np.flip(x), dtype=np.float32))
    assert not np.array_equal(tilelang_scan_line(x, True), flip)


CASES = [
    # shape, dim, threads, dtype, kind
    ((5,), 0, 32, "float32", "shared_in_place"),
    ((64,), 0, 64, "float32", "shared_in_place"),
    ((80,), 0, 64, "float32", "shared_in_place"),  # a partial last segment
    ((1000,), 0, 128, "float32", "shared_in_place"),
    ((8, 80), 1, 128, "float32", "shared_in_place"),
    ((80, 8), 0, 128, "float32", "shared_in_place"),  # the scan over the outer dimension
    ((6, 70), 1, 96, "float64", "fragment"),
    ((70,), 0, 100, "float32", "shared_in_place"),  # 100 threads: one thread per line on CUDA
    ((3, 45), 1, 64, "float16", "shared_in_place"),
]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, (*c[0], *c[1:]))))
@pytest.mark.parametrize("target", ["cpu", "emulator", "ptx"])
def test_cumsum_order_is_tilelangs(case, reverse, target):
    shape, dim, threads, dtype, kind = case
    x = cancelling(shape, dtype, seed=len(shape) * 7 + shape[0])
    if target == "cpu":
        k = tilewise.compile(_kernel(shape, dim, reverse, threads, dtype, kind), out_idx=[1], target="cpu")
    else:  # the thread IR in the emulator, NVRTC's code in the PTX interpreter
        k = tilewise.compile(_kernel(shape, dim, reverse, threads, dtype, kind), out_idx=[1], target="cuda",
                             execution_backend=target)
    got = np.asarray(k(x))
    want = tilelang_scan(x, dim, reverse)
    np.testing.assert_array_equal(got.view(f"uint{got.itemsize * 8}"), want.view(f"uint{want.itemsize * 8}"))
