"""T.cast(x, dtype, round="rz" | "rp" | "rm") and sat=False into float8, bit for bit against a
reference that picks the neighbouring representable values by search (no arithmetic shared with
the implementation), on the CPU and in the emulator; CUDA compiles it."""
import ml_dtypes
import numpy as np
import pytest
from conftest import nvrtc_check

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError

DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float8_e4m3fn": ml_dtypes.float8_e4m3fn,
          "float8_e5m2": ml_dtypes.float8_e5m2}
N = 512


def _reference(x: np.ndarray, dtype: str, mode: str, sat: bool) -> np.ndarray:
    nt = DTYPES[dtype]
    bits = np.arange(1 << (8 * np.dtype(nt).itemsize), dtype=np.uint16 if np.dtype(nt).itemsize == 2 else np.uint8)
    vals = bits.view(nt).astype(np.float64)
    mags = np.unique(vals[np.isfinite(vals) & (vals >= 0)])  # sorted finite magnitudes, 0 first
    top = mags[-1]
    has_inf = np.isinf(vals).any()
    out = np.empty(x.shape, np.float64)
    for i, v in enumerate(x.astype(np.float64)):
        if np.isnan(v):
            out[i] = np.nan
            continue
        a = abs(v)
        up = (mode == "rp" and v > 0) or (mode == "rm" and v < 0)
        if np.isinf(a) or (up and a > top):
            over = top if sat and dtype.startswith("float8") else (np.inf if has_inf else np.nan)
            out[i] = np.copysign(over, v)
            continue
        if a > top:
            m = top
        else:
            k = np.searchsorted(mags, a, side="right") - 1  # largest magnitude <= a
            m = mags[k] if (mags[k] == a or not up) else mags[k + 1]
        out[i] = np.copysign(m, v)
    return out.astype(nt)


def _inputs(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    nt = DTYPES[dtype]
    top = float(np.finfo(nt).max)
    tiny = float(np.finfo(nt).smallest_subnormal)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, top, -top, top * 1.01, -top * 1.01, top * 1.2, tiny,
               -tiny, tiny / 3, -tiny / 3, tiny * 1.5, 1.0, -1.0, 1.0 + 2**-20, -1.0 - 2**-20, 3e38, -3e38]
    rand = rng.standard_normal(N - len(special)) * np.exp2(rng.integers(-20, 18, N - len(special)))
    # exact representable values and midpoints of the type (ties) too
    exact = rng.standard_normal(64).astype(nt).astype(np.float32)
    x = np.concatenate([special, rand]).astype(np.float32)
    x[-64:] = exact
    return x


def _kernel(dtype, mode, sat):
    @T.prim_func
    def main(X: T.Tensor((N,), "float32"), Y: T.Tensor((N,), dtype)):
        with T.Kernel(1, threads=128):
            for i in T.Parallel(N):
                Y[i] = T.cast(X[i], dtype, round=mode, sat=sat)
    return main


CASES = [(d, m, True) for d in DTYPES for m in ("rz", "rp", "rm")] + [
    ("float8_e4m3fn", "rp", False), ("float8_e5m2", "rm", False), ("float8_e4m3fn", "", False),
    ("float8_e5m2", "rn", False)]


@pytest.mark.parametrize("target", ["cpu", "emulator"])
@pytest.mark.parametrize("dtype,mode,sat", CASES)
def test_directed_cast_matches_reference(dtype, mode, sat, target):
    x = _inputs(dtype)
    kw = {"target": "cuda", "execution_backend": "emulator"} if target == "emulator" else {"target": "cpu"}
    y = tilewise.compile(_kernel(dtype, mode, sat), out_idx=[-1], **kw)(x)
    y = np.asarray(y).view(DTYPES[dtype]) if np.asarray(y).dtype != DTYPES[dtype] else np.asarray(y)
    if mode in ("", "rn"):
        ref = x.astype(DTYPES[dtype])  # ml_dtypes: nearest even, overflow to inf / NaN
        ref = np.where(np.isinf(x) & (dtype == "float8_e4m3fn"), np.nan, ref).astype(DTYPES[dtype])
    else:
        ref = _reference(x, dtype, mode, sat)
    got, want = y.astype(np.float64), ref.astype(np.float64)
    same = (got == want) & (np.signbit(got) == np.signbit(want)) | (np.isnan(got) & np.isnan(want))
    assert same.all(), [(x[i], got[i], want[i]) for i in np.flatnonzero(~same)[:8]]


@pytest.mark.parametrize("dtype,mode", [("float16", "rz"), ("bfloat16", "rp"), ("float8_e4m3fn", "rm")])
def test_directed_cast_compiles_for_cuda(dtype, mode):
    nvrtc_check(_kernel(dtype, mode, True))


def test_integer_destinations_and_widening():
    @T.prim_func
    def main(X: T.Tensor((8,), "float32"), Y: T.Tensor((8,), "int32"), Z: T.Tensor((8,), "int32"),
             W: T.Tensor((8,), "float64")):
        with T.Kernel(1, threads=32):
            for i in T.Parallel(8):
                Y[i] = T.cast(X[i], "int32", round="rp")
                Z[i] = T.cast(X[i], "int32", round="rm")
                W[i] = T.cast(X[i], "float64", round="rz")
    x = np.array([1.5, -1.5, 2.0, -2.0, 0.25, -0.25, 7.9, -7.9], np.float32)
    y, z, w = tilewise.compile(main, out_idx=[1, 2, 3], target="cpu")(x)
    np.testing.assert_array_equal(y, np.ceil(x).astype(np.int32))
    np.testing.assert_array_equal(z, np.floor(x).astype(np.int32))
    np.testing.assert_array_equal(w, x.astype(np.float64))


def test_directed_cast_errors():
    with pytest.raises(ValueError):
        T.cast(T.float32(1.0), "float16", round="ru")
    with pytest.raises(CompileError, match="integer to float64"):
        T.cast(T.int32(1), "float16", round="rz")
    # TileLang's front-end checks accept every mode and sat=False on constants
    for mode in ("rn", "rz", "rp", "rm"):
        T.cast(T.float32(1.0), "float8_e4m3fn", round=mode)
    T.cast(T.float32(1.0), "float8_e4m3fn", sat=False)
