"""T.cumsum / T.cummax on CUDA scan across threads with warp shuffles (tileop/scan_shuffle.py):
lines of every length class (a part of a warp, a warp, longer lines a warp takes segment by
segment), ragged shapes, both dimensions, forward and reverse, in place, between tiles and from
fragments, in the emulator (and the PTX interpreter, which conftest makes re-run every emulator
run) against numpy; SHFL.UP (SHFL.DOWN in reverse) in the SASS of the cumsum example. The exact
order of the float additions (TileLang's): test_cumsum_order.py."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.tileop.scan_shuffle import group_size

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def np_scan(x, dim, reverse, op=np.cumsum):
    f = np.maximum.accumulate if op == "max" else np.cumsum
    if reverse:
        return np.flip(f(np.flip(x, dim), axis=dim), dim)
    return f(x, axis=dim)


def test_group_size():
    assert group_size(128, 37, 5) == 8  # short lines: 8-lane segments, 4 lines per warp
    assert group_size(128, 32, 256) == 32  # a warp per line
    assert group_size(128, 2, 1000) == 32  # a line never spans warps (TileLang's order of the sums)
    assert group_size(128, 1, 333) == 32
    assert group_size(128, 1, 333, warp=64) == 64  # an AMD wavefront


def _kernel(shape, dim, reverse, threads, dtype, kind, op):
    scan = T.cummax if op == "max" else T.cumsum

    @T.prim_func
    def main(A: T.Tensor(shape, dtype), B: T.Tensor(shape, dtype)):
        with T.Kernel(1, threads=threads):
            if kind == "shared_in_place":
                s = T.alloc_shared(shape, dtype)
                T.copy(A, s)
                scan(s, dim=dim, reverse=reverse)
                T.copy(s, B)
            elif kind == "shared":
                s = T.alloc_shared(shape, dtype)
                d = T.alloc_shared(shape, dtype)
                T.copy(A, s)
                scan(s, d, dim=dim, reverse=reverse)
                T.copy(d, B)
            else:  # fragment -> fragment, through the shared scratch tiles
                a = T.alloc_fragment(shape, dtype)
                b = T.alloc_fragment(shape, dtype)
                T.copy(A, a)
                scan(a, b, dim=dim, reverse=reverse)
                T.copy(b, B)

    return main


CASES = [
    # shape, dim, reverse, threads, dtype, kind, op
    ((37, 5), 1, False, 128, "float32", "shared_in_place", "sum"),  # 8-lane segments
    ((37, 5), 0, True, 128, "int32", "shared", "sum"),  # lines of 37 down the columns
    ((6, 300), 1, True, 128, "float32", "shared", "sum"),  # a warp per line, ragged chunks
    ((2, 1000), 1, False, 128, "float32", "shared_in_place", "sum"),  # 32 segments per line
    ((333,), 0, True, 128, "int32", "shared_in_place", "sum"),  # one line: one warp of four
    ((333,), 0, False, 96, "float32", "shared", "sum"),  # 64 of 96 threads scan
    ((3, 200), 0, False, 64, "float32", "fragment", "sum"),
    ((9, 70), 1, True, 128, "float32", "fragment", "max"),
    ((1, 257), 1, False, 128, "int32", "shared", "max"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, (*c[0], *c[1:]))))
def test_shuffle_scan_against_numpy(case, emu, rng):
    shape, dim, reverse, threads, dtype, kind, op = case
    if dtype == "int32":
        a = rng.integers(-1000, 1000, size=shape).astype(np.int32)
    else:
        a = rng.standard_normal(shape).astype(np.float32)
    b = emu(_kernel(shape, dim, reverse, threads, dtype, kind, op), out_idx=[1])(a)
    ref = np_scan(a.astype(np.float64) if dtype == "float32" else a, dim, reverse, op)
    if dtype == "int32":
        np.testing.assert_array_equal(b, ref)
    else:
        np.testing.assert_allclose(b, ref, rtol=1e-5, atol=1e-4)


def test_cumsum_example_uses_shfl_up_or_down():
    spec = importlib.util.spec_from_file_location("ex_cumsum", EXAMPLES / "cumsum/example_cumsum.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    for reverse in (False, True):
        k = tilewise.compile(m.cumsum(37, 1000, reverse=reverse), out_idx=[1], target="cuda -arch=sm_80",
                             execution_backend="emulator")
        sass = k.get_sass()
        assert sass.count("SHFL.DOWN" if reverse else "SHFL.UP") >= 5  # log2(32) Hillis-Steele steps
        assert k.resource_usage()["spill_bytes"] == 0
        x = np.random.default_rng(3).standard_normal((37, 1000)).astype(np.float32)
        np.testing.assert_allclose(k(x), np_scan(x.astype(np.float64), 1, reverse), rtol=1e-4, atol=1e-3)
