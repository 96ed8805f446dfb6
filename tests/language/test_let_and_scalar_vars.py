"""`T.int32()` is a fresh scalar variable (TVM's meaning) that still reads as an annotation, and
`T.let` binds one: the statement form for what follows, the expression form for one body."""
import numpy as np
import pytest

import tilewise as tl
import tilewise.language as T
from tilewise.errors import CompileError


def test_scalar_type_call_is_a_variable():
    a = T.int32()
    assert (a & 0x7FFFFFFF).dtype == "int32"
    b = T.uint64()
    assert (b & T.uint64(0xFFFFFFFFFFFFFFFF)).dtype == "uint64"
    assert T.int64(-0x7FFFFFFFFFFFFFFF - 1).value == -(2**63)


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_let_statement_and_expression(target):
    @T.prim_func
    def main(A: T.Tensor((64,), "float32"), B: T.Tensor((64,), "float32"), x: T.int32()):
        with T.Kernel(2, threads=32) as bx:
            off = T.int32()
            T.let(off, bx * 32)
            o2 = T.int32()
            T.let(o2, off + x)
            for i in T.Parallel(32):
                B[off + i] = A[o2 + i - x] * 2 + T.let(o2, 3, o2 * 1.0)

    k = tl.compile(main, out_idx=[1], target=target)
    a = np.arange(64, dtype=np.float32)
    np.testing.assert_array_equal(k(a, 5), a * 2 + 3)
    assert [p.name for p in k.params] == ["A", "B", "x"]


def test_let_needs_a_variable():
    with pytest.raises(CompileError, match="T.let: the first argument must be a variable"):
        @T.prim_func
        def main(A: T.Tensor((4,), "float32")):
            with T.Kernel(1, threads=4):
                T.let(3, 4)
