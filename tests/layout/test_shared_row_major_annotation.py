"""A T.annotate_layout restating the row-major storage of a shared buffer changes no address, so a
dtype-changing T.view annotated that way stays a view (TileLang 0.1.13's
test_annotated_layout_on_dtype_changing_view_compile; the CUDA target refused it as a view of a
swizzled tile)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tilewise
import tilewise.language as T

HOW = [dict(target="cpu"), dict(target="cuda", execution_backend="emulator")]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("flat", [False, True])
def test_row_major_annotation_on_a_dtype_changing_view(how, flat):
    @T.prim_func
    def main(A: T.Tensor((64, 64), T.float16), B: T.Tensor((64, 128), T.int8)):
        with T.Kernel(1, threads=128):
            A_stage = T.alloc_shared((2, 64, 64), T.float16)
            A_i8 = T.view(A_stage, (2, 64, 128), dtype=T.int8)
            if flat:
                T.annotate_layout({A_i8: T.Layout((2, 64, 128), lambda s, i, j: [s * 8192 + i * 128 + j])})
            else:
                T.annotate_layout({A_i8: T.Layout((2, 64, 128), lambda s, i, j: [s, i, j])})
            for i, j in T.Parallel(64, 64):
                A_stage[0, i, j] = A[i, j]
            for i, j in T.Parallel(64, 128):
                B[i, j] = A_i8[0, i, j]

    a = torch.randn(64, 64).half()
    b = torch.zeros(64, 128, dtype=torch.int8)
    tilewise.compile(main, **how)(a, b)
    assert np.array_equal(b.numpy(), a.numpy().view(np.int8))
