"""TileLang 0.1.15's `annotations=` on the reductions: nan_propagate and batch given as annotations
behave as the keywords; enable_fadd2 (SM100's packed float32x2 sums) changes nothing here; an
unknown key is a CompileError naming it."""
import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError


def _row_max(annotations, kind="max"):
    @T.prim_func
    def main(A: T.Tensor((4, 64), "float32"), B: T.Tensor((4,), "float32")):
        with T.Kernel(1, threads=128):
            a = T.alloc_fragment((4, 64), "float32")
            b = T.alloc_fragment((4,), "float32")
            T.copy(A, a)
            getattr(T, f"reduce_{kind}")(a, b, dim=1, annotations=annotations)
            T.copy(b, B)
    return main


@pytest.mark.parametrize("target", ["cpu", "emulator"])
def test_nan_propagate_annotation(target):
    a = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    a[1, 7] = np.nan
    kw = {"target": "cuda", "execution_backend": "emulator"} if target == "emulator" else {"target": "cpu"}
    ignored = tilewise.compile(_row_max(None), out_idx=[-1], **kw)(a)
    propagated = tilewise.compile(_row_max({"nan_propagate": True}), out_idx=[-1], **kw)(a)
    assert np.isnan(propagated[1]) and not np.isnan(ignored[1])
    np.testing.assert_array_equal(np.delete(propagated, 1), np.delete(np.max(a, axis=1), 1))
    np.testing.assert_array_equal(ignored[1], np.nanmax(a[1]))


def test_batch_and_enable_fadd2_annotations():
    a = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    k = tilewise.compile(_row_max({"batch": 2, "enable_fadd2": False}, kind="sum"), out_idx=[-1], target="cpu")
    np.testing.assert_allclose(k(a), a.sum(axis=1), rtol=1e-5)


@pytest.mark.parametrize("bad", [{"fast": True}, ["nan_propagate"], {"batch": 0}])
def test_bad_annotations(bad):
    with pytest.raises((CompileError, ValueError)):
        tilewise.compile(_row_max(bad), out_idx=[-1], target="cpu")
