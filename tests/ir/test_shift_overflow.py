"""`x << c` becomes a multiplication in the simplifier only where the product cannot overflow:
a signed product that does is undefined in C and NVVM folds `(x << 28) >> 28` back to `x`, while
the shift wraps (the scalar rules of docs/API.md "Numbers")."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.ir import dtype as dt
from tilewise.ir.expr import BinOp, Const, Var
from tilewise.ir.simplify import simplify


def test_only_bounded_shifts_become_products():
    x = Var("x", dt.int32)
    wide = simplify(BinOp("shl", x, Const(28, dt.int32), dt.int32))
    assert isinstance(wide, BinOp) and wide.op == "shl"
    small = simplify(BinOp("shl", x, Const(2, dt.int32), dt.int32), {x: (0, 127)})
    assert isinstance(small, BinOp) and small.op == "mul"


@pytest.mark.parametrize("target,backend", [("cpu", "auto"), ("cuda -arch=sm_80", "emulator"),
                                            ("cuda -arch=sm_80", "ptx")])
def test_sign_extension_by_shifts(target, backend):
    @T.prim_func
    def f(A: T.Tensor((64,), "int32"), B: T.Tensor((64,), "int32")):
        with T.Kernel(1, threads=64):
            for i in T.Parallel(64):
                B[i] = (A[i] << 28) >> 28

    a = np.arange(-32, 32, dtype=np.int32)
    b = np.zeros(64, np.int32)
    tilewise.compile(f, target=target, execution_backend=backend)(a, b)
    np.testing.assert_array_equal(b, (a.astype(np.int64) << 28).astype(np.int32) >> 28)
