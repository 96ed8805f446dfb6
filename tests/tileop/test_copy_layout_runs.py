"""T.copy into and out of a shared tile whose layout (T.annotate_layout) does not keep 16-byte
runs of a row together: the vector moves shrink to what the layout keeps contiguous and aligned
(tileop/cuda_common.py layout_run), on CUDA and on the HIP target, instead of moving 16 bytes
from where the first element of the run lands."""
import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.layout.layout import Layout
from tilewise.layout.swizzle import make_swizzled_layout
from tilewise.tileop.cuda_common import layout_run

M = N = 32

LAYOUTS = {
    "transposed": lambda i, j: (j, i),
    "reversed_quads": lambda i, j: (i, (j // 4) * 4 + 3 - j % 4),  # aligned runs of 1 only
    "pairs_swapped": lambda i, j: (i, (j // 8) * 8 + (((j % 8) // 4) ^ 1) * 4 + j % 4),  # runs of 4 (8 bytes)
}


def _kernel(fwd):
    @T.prim_func
    def f(A: T.Tensor((M, N), "float16"), B: T.Tensor((M, N), "float16")):
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((M, N), "float16")
            T.annotate_layout({S: T.Layout((M, N), fwd)})
            T.copy(A, S)
            T.copy(S, B)

    return f


@pytest.mark.parametrize("name", sorted(LAYOUTS))
@pytest.mark.parametrize("target", ["cuda", "hip -arch=gfx942"])
def test_copy_through_a_layout_that_splits_runs(name, target):
    k = tilewise.compile(_kernel(LAYOUTS[name]), target=target, execution_backend="emulator")
    A = np.arange(M * N).reshape(M, N).astype(np.float16)
    B = np.zeros_like(A)
    k(A, B)
    np.testing.assert_array_equal(A, B)


class _Ctx:
    def __init__(self, lay):
        self.lay = lay

    def shared_layout(self, buf):
        return self.lay


def test_layout_run():
    from tilewise.ir import dtype as _dt
    from tilewise.ir.buffer import Buffer, BufferRegion

    buf = Buffer("S", (M, N), _dt.float16, "shared")
    r = BufferRegion(buf, [(0, M), (0, N)])
    assert layout_run(_Ctx(None), r, 8) == 8
    assert layout_run(_Ctx(make_swizzled_layout(buf)), r, 8) == 8  # 16-byte chunks stay whole
    assert layout_run(_Ctx(Layout((M, N), LAYOUTS["transposed"])), r, 8) == 1
    assert layout_run(_Ctx(Layout((M, N), LAYOUTS["reversed_quads"])), r, 8) == 1
    assert layout_run(_Ctx(Layout((M, N), LAYOUTS["pairs_swapped"])), r, 8) == 4
