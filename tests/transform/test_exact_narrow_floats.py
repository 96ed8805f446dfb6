"""exact_narrow_floats (CPU): float16/bfloat16 round trips of exact small integers are dropped,
results stay bit-identical to rounding after every operation (numpy's float16 and ml_dtypes'
bfloat16 arithmetic), and values that are not provably exact keep every rounding."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import tilewise
import tilewise.language as T

NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def _dequant(n, dtype, offset, mask, shift_src="uint8"):
    """Y[i, j] = ((X[i, j] >> 4 * (j % 2)) & mask).astype(dtype) - offset) * S[i], the
    dequantisation idiom of examples/dequantize_gemm."""

    @T.prim_func
    def main(X: T.Tensor((n, 64), shift_src), S: T.Tensor((n,), dtype), Y: T.Tensor((n, 64), dtype)):
        with T.Kernel(T.ceildiv(n, 32), threads=128) as bx:
            for i, j in T.Parallel(32, 64):
                v = (X[bx * 32 + i, j] >> ((j % 2) * 4)) & mask
                Y[bx * 32 + i, j] = (v.astype(dtype) - offset) * S[bx * 32 + i]

    return tilewise.compile(main, out_idx=[-1], target="cpu")


def _reference(x, s, dtype, offset, mask):
    nt = NP[dtype]
    j = np.arange(x.shape[1])
    v = (x.astype(np.int64) >> ((j % 2) * 4)) & mask
    # one rounding per operation, as the program says
    return ((v.astype(np.float32).astype(nt) - nt(offset)).astype(nt) * s[:, None].astype(nt)).astype(nt)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dequantise_rounds_once_bit_identical(dtype):
    k = _dequant(64, dtype, 8, 15)
    src = k.get_kernel_source()
    line = next(ln for ln in src.splitlines() if "Y[" in ln and "=" in ln)
    narrow = "tw::half" if dtype == "float16" else "tw::bf16"
    assert line.count(f"({narrow})") == 1, line  # only the product is rounded
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    s = torch.from_numpy(rng.standard_normal(64).astype(np.float32)).to(TORCH[dtype])
    out = k(torch.from_numpy(x), s)
    ref = _reference(x, s.float().numpy(), dtype, 8, 15)
    np.testing.assert_array_equal(out.view(torch.int16).numpy(), ref.view(np.int16))


@pytest.mark.parametrize("dtype,mask", [("float16", 4095), ("bfloat16", 511)])
def test_values_past_the_exact_range_keep_their_roundings(dtype, mask):
    # 12-bit (9-bit) values are not all exact in float16 (bfloat16): the cast must round them
    # before the subtraction, as numpy does
    k = _dequant(64, dtype, 3, mask, shift_src="int32")
    rng = np.random.default_rng(1)
    x = rng.integers(0, 1 << 16, (64, 64)).astype(np.int32)
    s = torch.from_numpy(rng.standard_normal(64).astype(np.float32)).to(TORCH[dtype])
    out = k(torch.from_numpy(x), s)
    ref = _reference(x, s.float().numpy(), dtype, 3, mask)
    np.testing.assert_array_equal(out.view(torch.int16).numpy(), ref.view(np.int16))
