"""T.dp4a's operand types, checked as TileLang 0.1.13 checks them (its issue 2600): signed 8-bit
a and b (or int32 words of four) of one type, an int32 accumulator."""
import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError


def _kernel(a_dtype: str, b_dtype: str, c_dtype: str):
    @T.prim_func
    def k(A: T.Tensor((4,), a_dtype), B: T.Tensor((4,), b_dtype), C: T.Tensor((1,), c_dtype)):
        with T.Kernel(1, threads=1):
            C[0] = T.dp4a(A[0], B[0], C[0])

    return k


def test_int8_operands_run():
    k = tilewise.compile(_kernel("int8", "int8", "int32"), target="cpu")
    a = np.array([1, -2, 3, -4], np.int8)
    b = np.array([5, 6, -7, 8], np.int8)
    c = np.array([10], np.int32)
    k(a, b, c)
    assert c[0] == 10 + int(np.dot(a.astype(np.int32), b.astype(np.int32)))


@pytest.mark.parametrize("a_dtype,b_dtype,c_dtype", [
    ("float16", "float16", "int32"), ("int8", "int8", "float32"), ("uint8", "uint8", "int32"),
    ("int8", "float16", "int32")])
def test_wrong_types_are_refused(a_dtype, b_dtype, c_dtype):
    with pytest.raises(CompileError, match="dp4a requires") as e:
        _kernel(a_dtype, b_dtype, c_dtype)
    assert isinstance(e.value, ValueError)  # TileLang raises a ValueError


def test_whole_buffers_and_regions_are_their_first_element():
    # TileLang passes every operand as a pointer to its start: T.dp4a(A, B, C) is
    # T.dp4a(A[0], B[0], C[0]) as a statement, and a region A[4:8] starts at A[4]
    @T.prim_func
    def k(A: T.Tensor((8,), "int8"), B: T.Tensor((8,), "int8"), C: T.Tensor((2,), "int32")):
        with T.Kernel(1, threads=1):
            T.dp4a(A, B, C)
            T.dp4a(A[4:8], B[4:8], C[1:2])

    kern = tilewise.compile(k, target="cpu")
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, 8).astype(np.int8)
    b = rng.integers(-128, 128, 8).astype(np.int8)
    c = np.array([7, -3], np.int32)
    want = c + np.array([np.dot(a[:4].astype(np.int32), b[:4]), np.dot(a[4:].astype(np.int32), b[4:])])
    kern(a, b, c)
    np.testing.assert_array_equal(c, want)


def test_whole_buffers_are_type_checked():
    with pytest.raises(CompileError, match="dp4a requires"):
        @T.prim_func
        def k(A: T.Tensor((4,), "uint8"), B: T.Tensor((4,), "uint8"), C: T.Tensor((1,), "int32")):
            with T.Kernel(1, threads=1):
                T.dp4a(A, B, C)
