"""128-bit global accesses on CUDA (issue 17; tileop/cuda_vectorize.py): element-wise nests and
fragment <-> global copies read and write a thread's run of consecutive elements as one vector
where it is provably contiguous and aligned; ragged shapes stay scalar (and correct);
tir.disable_vectorize turns it off."""
from __future__ import annotations

import re

import numpy as np
import pytest

import tilewise
import tilewise.language as T


def add(M, N, bm=32, bn=128, dtype="float32"):
    @T.prim_func
    def f(A: T.Tensor((M, N), dtype), B: T.Tensor((M, N), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            for i, j in T.Parallel(bm, bn):
                C[by * bm + i, bx * bn + j] = A[by * bm + i, bx * bn + j] * 2.0 + B[by * bm + i, bx * bn + j]

    return f


def _widths(sass: str) -> dict:
    out: dict = {}
    for m in re.finditer(r"\b(LDG|STG)\.E(\.(64|128))?", sass):
        key = m.group(1) + (m.group(3) or "32")
        out[key] = out.get(key, 0) + 1
    return out


@pytest.mark.parametrize("M,N,dtype,width", [(256, 512, "float32", "128"), (256, 512, "float16", "64"),
                                             (100, 200, "float32", None)])
def test_element_wise_vectors(M, N, dtype, width):
    k = tilewise.compile(add(M, N, dtype=dtype), target="cuda -arch=sm_80", execution_backend="emulator")
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((M, N)).astype(dtype) for _ in range(2))
    c = np.zeros_like(a)
    k(a, b, c)
    np.testing.assert_array_equal(c, (a * np.asarray(2, dtype) + b).astype(dtype))
    w = _widths(k.get_sass())
    if width is None:  # rows of 200 floats: not every run is aligned, scalar accesses
        assert set(w) <= {"LDG32", "STG32"}, w
    else:
        assert w.get("LDG" + width) and w.get("STG" + width) and not w.get("LDG32") and not w.get("STG32"), w


def test_disable_vectorize():
    k = tilewise.compile(add(256, 512), target="cuda -arch=sm_80", execution_backend="emulator",
                         pass_configs={"tir.disable_vectorize": True})
    assert set(_widths(k.get_sass())) == {"LDG32", "STG32"}


def test_fragment_copies_of_rms_norm_are_vectors():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "norm" / "example_rms_norm.py"
    spec = importlib.util.spec_from_file_location("rms_norm_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    k = tilewise.compile(mod.rms_norm(64, 1024), target="cuda -arch=sm_80", execution_backend="emulator")
    w = _widths(k.get_sass())
    # fp16 rows into an fp32 fragment: 8 elements per vector, 16 bytes of the global side
    assert set(w) == {"LDG128", "STG128"}, w
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 1024)).astype(np.float16)
    wt = rng.standard_normal(1024).astype(np.float16)
    y = np.zeros_like(x)
    k(x, wt, y)
    xf = x.astype(np.float32)
    ref = xf / np.sqrt((xf * xf).mean(-1, keepdims=True) + 1e-6) * wt.astype(np.float32)
    np.testing.assert_allclose(y.astype(np.float32), ref, rtol=2e-3, atol=2e-3)


def test_misaligned_tensor_views_are_refused_on_cuda_targets():
    k = tilewise.compile(add(32, 128), target="cuda -arch=sm_80", execution_backend="emulator")
    base = np.zeros(32 * 128 + 1, np.float32)
    view = base[1:].reshape(32, 128)  # contiguous, but 4 bytes past a 16-byte boundary
    with pytest.raises(ValueError, match="argument A: its data starts at an address that is not a multiple of 16"):
        k(view, np.zeros((32, 128), np.float32), np.zeros((32, 128), np.float32))
