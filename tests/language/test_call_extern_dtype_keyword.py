"""`T.call_extern(func_name, *args, dtype=...)`: TileLang forwards a keyword dtype to the front
(its `_dtype_forward`), and its dequantising GEMM examples call their lop3 helpers so, as a
statement whose dtype is the output element type."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError

CPU_SRC = ("static inline void twice4(const float* x, float* y, int n) { for (int i = 0; i < n; ++i) "
           "y[i] = 2.0f * x[i]; }\nstatic inline float add1(float x) { return x + 1.0f; }\n")


@T.prim_func
def calls(x: T.Tensor((64,), "float32"), z: T.Tensor((64,), "float32"), w: T.Tensor((64,), "float32")):
    T.import_source(CPU_SRC)
    with T.Kernel(16, threads=1) as bx:
        a = T.alloc_local((4,), "float32")
        b = T.alloc_local((4,), "float32")
        for v in T.serial(4):
            a[v] = x[bx * 4 + v]
        T.call_extern("twice4", T.access_ptr(a, "r"), T.access_ptr(b, "w"), 4, dtype=T.float32)
        for v in T.serial(4):
            z[bx * 4 + v] = b[v]
            w[bx * 4 + v] = T.call_extern("add1", x[bx * 4 + v], dtype="float32")


def test_keyword_dtype_on_the_cpu():
    x = np.random.default_rng(0).random(64).astype(np.float32)
    z, w = tilewise.compile(calls, out_idx=[1, 2], target="cpu")(x)
    np.testing.assert_array_equal(z, 2 * x)
    np.testing.assert_array_equal(w, x + 1)


def test_missing_name_is_an_error():
    with pytest.raises(CompileError, match="func_name"):
        @T.prim_func
        def bad(x: T.Tensor((4,), "float32")):
            with T.Kernel(1, threads=1) as _:
                x[0] = T.call_extern(dtype="float32")

        tilewise.compile(bad, target="cpu")
