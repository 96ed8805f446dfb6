"""A T.annotate_layout map of a shared buffer must be injective (TileLang 0.1.13, its issue 2632):
a many-to-one map would make elements alias. Injective maps, including ones whose codomain is
larger than the buffer, keep working."""
import re

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError
from tilewise.layout import Layout

N = 128


def _roundtrip(fwd):
    @T.prim_func
    def k(A: T.Tensor((N,), "int32"), Out: T.Tensor((N,), "int32")):
        with T.Kernel(1, threads=N):
            s = T.alloc_shared((N,), "int32")
            T.annotate_layout({s: Layout((N,), fwd)})
            for i in T.Parallel(N):
                s[i] = A[i]
            for i in T.Parallel(N):
                Out[i] = s[i]

    return k


@pytest.mark.parametrize("fwd,pair", [(lambda i: i % 64, "[0] and [64]"), (lambda i: i * 0, "[0] and [1]")])
def test_many_to_one_shared_layout_is_refused(fwd, pair):
    with pytest.raises(CompileError, match=r"shared buffer `s`.*must be injective.*" + re.escape(pair)):
        _roundtrip(fwd)


@pytest.mark.parametrize("fwd", [lambda i: i ^ 1, lambda i: i * 2, lambda i: i + 10])
def test_injective_shared_layouts_round_trip(fwd):
    k = tilewise.compile(_roundtrip(fwd), out_idx=[1], target="cpu")
    a = np.arange(N, dtype=np.int32) * 3
    np.testing.assert_array_equal(k(a), a)
