"""TileLang 0.1.13's T.reduce_*(..., batch=, nan_propagate=) on the CPU, the CUDA emulator (and
NVRTC) and the HIP emulator, against numpy: NaN rows ignored by default (maxNum, as __hmax /
fmaxf), NaN in the result with nan_propagate=True (also through clear=False's old value), and
batch= (a barrier-count hint) giving the same results on ragged shapes."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError

TARGETS = {
    "cpu": dict(target="cpu"),
    "cuda": dict(target="cuda -arch=sm_80", execution_backend="emulator"),
    "hip": dict(target="hip -arch=gfx942", execution_backend="emulator"),
}
M, N = 8, 64
KINDS = {"max": T.reduce_max, "min": T.reduce_min, "absmax": T.reduce_absmax}


@functools.cache
def nan_kernel(kind: str, dtype: str, nan_propagate: bool, clear: bool, src_scope: str, threads: int = 64):
    fn = KINDS[kind]

    @T.prim_func
    def main(A: T.Tensor((M, N), dtype), O: T.Tensor((M,), dtype)):
        with T.Kernel(1, threads=threads):
            a = T.alloc_shared((M, N), dtype) if src_scope == "shared" else T.alloc_fragment((M, N), dtype)
            o = T.alloc_fragment((M,), dtype)
            T.copy(A, a)
            if not clear:
                T.fill(o, -1.0)
            fn(a, o, dim=1, clear=clear, nan_propagate=nan_propagate)
            T.copy(o, O)

    return main


def _reference(a: np.ndarray, kind: str, nan_propagate: bool, clear: bool) -> np.ndarray:
    x = a.astype(np.float64)
    if kind == "absmax":
        x = np.abs(x)
    if not clear:
        # TileLang reduces into a cleared copy (absmax's starts at 0), then dst = op(dst, copy):
        # dst as it is, not |dst|, so an all-NaN row leaves max(-1, 0) = 0 for absmax
        old = np.full((x.shape[0], 1), -1.0)
        x = np.concatenate([x, old] + ([np.zeros_like(old)] if kind == "absmax" and not nan_propagate else []),
                           axis=1)
    elif not nan_propagate:
        # maxNum ignores NaN against the reduction's start value: an all-NaN row gives it
        start = {"max": -np.inf, "min": np.inf, "absmax": 0.0}[kind]
        x = np.concatenate([x, np.full((x.shape[0], 1), start)], axis=1)
    red = {"max": np.max, "min": np.min, "absmax": np.max}[kind] if nan_propagate else \
        {"max": np.nanmax, "min": np.nanmin, "absmax": np.nanmax}[kind]
    return red(x, axis=1)


def _input(dtype: str, rng) -> np.ndarray:
    a = rng.standard_normal((M, N)).astype(np.float32)
    a[1, 7] = np.nan  # one NaN in a row
    a[3, :] = np.nan  # a whole row of NaN: the start value (-inf for max) unless propagated
    a[5, 0] = a[5, N - 1] = np.nan
    return a.astype({"float32": np.float32, "float16": np.float16}[dtype])


def _check(got, a, kind, nan_propagate, clear):
    want = _reference(a.astype(np.float32), kind, nan_propagate, clear)
    got = np.asarray(got, np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], rtol=1e-3)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("nan_propagate", [False, True])
def test_nan_rows(target, kind, nan_propagate, rng):
    dtype = "float32" if kind != "min" else "float16"
    k = tilewise.compile(nan_kernel(kind, dtype, nan_propagate, True, "fragment"), out_idx=[1], **TARGETS[target])
    a = _input(dtype, rng)
    _check(k(a), a, kind, nan_propagate, True)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("target", ["cpu", "cuda"])
@pytest.mark.parametrize("src_scope", ["shared", "fragment"])
@pytest.mark.parametrize("nan_propagate", [False, True])
def test_nan_with_clear_false(target, src_scope, nan_propagate, rng):
    """clear=False combines dst's old value with the same NaN rule (TileLang GH-2697)."""
    for kind in ("max", "absmax"):
        k = tilewise.compile(nan_kernel(kind, "float16", nan_propagate, False, src_scope), out_idx=[1],
                             **TARGETS[target])
        a = _input("float16", rng)
        _check(k(a), a, kind, nan_propagate, False)


def test_nan_propagate_compiles_with_nvrtc(nvrtc_check):
    nvrtc_check(nan_kernel("max", "float16", True, True, "fragment"), archs=("sm_80",))


@functools.cache
def batch_kernel(kind: str, rows: int, cols: int, batch: int, threads: int, src_scope: str):
    fn = getattr(T, f"reduce_{kind}")

    @T.prim_func
    def main(A: T.Tensor((rows, cols), "float32"), O: T.Tensor((rows,), "float32")):
        with T.Kernel(1, threads=threads):
            a = T.alloc_shared((rows, cols), "float32") if src_scope == "shared" else \
                T.alloc_fragment((rows, cols), "float32")
            o = T.alloc_fragment((rows,), "float32")
            T.copy(A, a)
            fn(a, o, dim=1, batch=batch)
            T.copy(o, O)

    return main


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("kind,rows,cols,batch,threads,src_scope", [
    ("sum", 128, 64, 4, 256, "shared"),
    ("max", 24, 40, 3, 128, "fragment"),   # ragged: 3 divides no count here (accepted: a hint)
    ("abssum", 10, 33, 7, 64, "fragment"),
    ("min", 12, 20, 5, 32, "shared"),
])
def test_batch_same_results(target, kind, rows, cols, batch, threads, src_scope, rng):
    k = tilewise.compile(batch_kernel(kind, rows, cols, batch, threads, src_scope), out_idx=[1], **TARGETS[target])
    a = rng.standard_normal((rows, cols)).astype(np.float32)
    x = np.abs(a) if kind.startswith("abs") else a
    want = {"sum": np.sum, "abssum": np.sum, "max": np.max, "min": np.min}[kind](x.astype(np.float64), axis=1)
    np.testing.assert_allclose(k(a), want, rtol=1e-5, atol=1e-5)


def test_batch_must_be_positive():
    with pytest.raises(ValueError, match="batch must be >= 1"):
        batch_kernel("sum", 8, 8, 0, 32, "shared")
    with pytest.raises(CompileError, match="batch must be a compile-time integer"):
        batch_kernel("sum", 8, 8, 2.5, 32, "shared")


def test_sum_has_no_nan_propagate():
    """As in TileLang, only max / min / absmax take nan_propagate=."""
    with pytest.raises(CompileError, match="unexpected keyword argument 'nan_propagate'"):
        @T.prim_func
        def main(A: T.Tensor((8, 8), "float32"), O: T.Tensor((8,), "float32")):
            with T.Kernel(1, threads=32):
                a = T.alloc_fragment((8, 8), "float32")
                o = T.alloc_fragment((8,), "float32")
                T.copy(A, a)
                T.reduce_sum(a, o, dim=1, nan_propagate=True)
                T.copy(o, O)


@pytest.mark.parametrize("batch,match", [
    (0, "batch must be >= 1"),
    (128, r"batch \(128\) exceeds total output elements \(64\)"),
    (3, r"batch \(3\) must evenly divide total output elements \(64\)"),
])
def test_finalize_reducer_batch_checks(batch, match):
    """TileLang 0.1.13's finalize_reducer(batch=) rejections, with its wording."""
    with pytest.raises(CompileError, match=match):
        @T.prim_func
        def main(A: T.Tensor((64, 16), "float32"), B: T.Tensor((64,), "float32")):
            with T.Kernel(1, threads=128):
                r = T.alloc_reducer(64, "float32", op="sum", replication="all")
                T.clear(r)
                a = T.alloc_fragment((64, 16), "float32")
                T.copy(A, a)
                for i, j in T.Parallel(64, 16):
                    r[i] += a[i, j]
                T.finalize_reducer(r, batch=batch)
                T.copy(r, B)


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_finalize_reducer_with_batch(target, rng):
    @T.prim_func
    def main(A: T.Tensor((64, 16), "float32"), B: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=128):
            r = T.alloc_reducer(64, "float32", op="sum", replication="all")
            T.clear(r)
            a = T.alloc_fragment((64, 16), "float32")
            T.copy(A, a)
            for i, j in T.Parallel(64, 16):
                r[i] += a[i, j]
            T.finalize_reducer(r, batch=4)
            T.copy(r, B)

    k = tilewise.compile(main, out_idx=[1], **TARGETS[target])
    a = rng.standard_normal((64, 16)).astype(np.float32)
    np.testing.assert_allclose(k(a), a.sum(axis=1), rtol=1e-5, atol=1e-5)
