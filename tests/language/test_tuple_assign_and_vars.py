"""Python assignment semantics TileLang programs rely on: a tuple assignment reads every
right-hand value before it stores any (`a, b = b, a`, `A[0], A[1] = A[1], A[0]`), and
`T.alloc_var` starts at zero without an initialiser and takes TileLang's argument forms. On the
CPU and in the CUDA emulator, against Python references."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError

TARGETS = ("cpu", "emulator")


def _compile(func, target, out_idx=None):
    if target == "cpu":
        return tilewise.compile(func, out_idx=out_idx, target="cpu")
    return tilewise.compile(func, out_idx=out_idx, target="cuda", execution_backend="emulator")


@T.prim_func
def swap_vars(A: T.Tensor((2,), "float32")):
    with T.Kernel(1, threads=1):
        a = T.alloc_var("float32", A[0])
        b = T.alloc_var("float32", A[1])
        a, b = b, a
        A[0], A[1] = a, b


@T.prim_func
def swap_elements(A: T.Tensor((3,), "float32")):
    with T.Kernel(1, threads=1):
        A[0], A[1], A[2] = A[2], A[0], A[1]


@pytest.mark.parametrize("target", TARGETS)
def test_tuple_assignment_reads_before_it_stores(target):
    a = np.array([1.0, 2.0], np.float32)
    _compile(swap_vars, target)(a)
    np.testing.assert_array_equal(a, [2.0, 1.0])
    b = np.array([1.0, 2.0, 3.0], np.float32)
    _compile(swap_elements, target)(b)
    np.testing.assert_array_equal(b, [3.0, 1.0, 2.0])


@T.prim_func
def var_forms(O: T.Tensor((4,), "int32")):
    with T.Kernel(1, threads=1):
        total = T.alloc_var("int32")  # no initialiser: zero
        i = T.alloc_var("int32", 0)
        j = T.alloc_var("int32", "local.var")  # a lone string is the scope
        k = T.alloc_var("int32", 7, "local.var")
        m = T.alloc_var("int32", init=5)
        while i < 10:
            total += i
            i += 1
        O[0] = total
        O[1] = j
        O[2] = k
        O[3] = m


@pytest.mark.parametrize("target", TARGETS)
def test_alloc_var_starts_at_zero_and_takes_tilelang_forms(target):
    out = np.full(4, -1, np.int32)
    _compile(var_forms, target)(out)
    np.testing.assert_array_equal(out, [45, 0, 7, 5])


def test_alloc_var_initialiser_given_twice_is_an_error():
    with pytest.raises(CompileError, match="given twice"):
        @T.prim_func
        def bad(O: T.Tensor((1,), "int32")):
            with T.Kernel(1, threads=1):
                x = T.alloc_var("int32", 1, init=2)
                O[0] = x


def test_c_style_dtype_names():
    assert T.short == T.int16 and T.long == T.int64 and T.uint == T.uint32 and T.ulong == T.uint64
    assert tilewise.DataType("long") == T.int64


def test_cache_hints_warn_and_change_nothing():
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")

        @T.prim_func
        def add_with_l2_hint(A: T.Tensor((64,), "float32"), B: T.Tensor((64,), "float32"),
                             C: T.Tensor((64,), "float32")):
            with T.Kernel(2, threads=32) as bx:
                T.annotate_l2_hit_ratio({B: 0.8})
                T.annotate_min_blocks_per_sm(2)
                for i in T.Parallel(32):
                    C[bx * 32 + i] = A[bx * 32 + i] + B[bx * 32 + i]

    a, b = np.arange(64, dtype=np.float32), np.ones(64, np.float32)
    c = np.zeros(64, np.float32)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        _compile(add_with_l2_hint, "cpu")(a, b, c)
    np.testing.assert_array_equal(c, a + b)


def test_l2_hit_ratio_needs_a_global_tensor_and_a_ratio():
    with pytest.raises(CompileError, match="global tensors only"):
        @T.prim_func
        def shared_key(A: T.Tensor((32,), "float32")):
            with T.Kernel(1, threads=32):
                S = T.alloc_shared((32,), "float32")
                T.annotate_l2_hit_ratio({S: 0.5})
                T.copy(A, S)
    with pytest.raises(CompileError, match=r"in \[0, 1\]"):
        @T.prim_func
        def bad_ratio(A: T.Tensor((32,), "float32")):
            with T.Kernel(1, threads=32):
                T.annotate_l2_hit_ratio({A: 1.5})


@T.prim_func
def lower_case_parallel(A: T.Tensor((64,), "float32"), B: T.Tensor((64,), "float32")):
    with T.Kernel(1, threads=32):
        for i in T.parallel(64):  # TIR's name, re-exported by TileLang: the same loop as T.Parallel
            B[i] = A[i] * 2.0


@pytest.mark.parametrize("target", TARGETS)
def test_lower_case_parallel(target):
    a = np.arange(64, dtype=np.float32)
    b = np.zeros(64, np.float32)
    _compile(lower_case_parallel, target)(a, b)
    np.testing.assert_array_equal(b, a * 2.0)


def test_lower_case_parallel_must_start_at_zero():
    with pytest.raises(CompileError, match="must start at 0"):
        @T.prim_func
        def offset(A: T.Tensor((64,), "float32")):
            with T.Kernel(1, threads=32):
                for i in T.parallel(4, 64):
                    A[i] = 0.0


@T.prim_func
def ldg_add(x: T.Tensor((32,), "float32"), y: T.Tensor((32,), "float32")):
    with T.Kernel(32, threads=32) as pid:
        y[pid] = T.__ldg(x[pid]) + 1.0


@pytest.mark.parametrize("target", TARGETS)
def test_ldg_is_the_element(target):
    x = np.arange(32, dtype=np.float32)
    y = np.zeros(32, np.float32)
    _compile(ldg_add, target)(x, y)
    np.testing.assert_array_equal(y, x + 1.0)


def test_ldg_needs_a_global_element():
    with pytest.raises(CompileError, match="T.__ldg takes one element of a global tensor"):
        @T.prim_func
        def shared_ldg(x: T.Tensor((32,), "float32")):
            with T.Kernel(1, threads=32):
                S = T.alloc_shared((32,), "float32")
                x[0] = T.__ldg(S[0])


def test_t_dtype_builds_from_a_name():
    assert T.dtype("float16") == T.float16
    assert T.dtype("bfloat16").as_torch() is __import__("torch").bfloat16
    assert isinstance(T.float32, T.dtype) and not isinstance("float32", T.dtype)


@T.prim_func
def shifted_with_padding(A: T.Tensor((64, 8), "float32"), B: T.Tensor((64, 8), "float32")):
    with T.Kernel(2, threads=32) as bx:
        S = T.alloc_shared((32, 8), "float32")
        T.annotate_padding({S: 7.0})
        for i, j in T.Parallel(32, 8):
            S[i, j] = A[bx * 32 + i - 3, j]  # rows -3..-1 are outside A: they read the padding
        for i, j in T.Parallel(32, 8):
            B[bx * 32 + i, j] = S[i, j] + A[bx * 32 + i + 70, j]  # not a store into S: reads 0


@pytest.mark.parametrize("target", TARGETS)
def test_annotate_padding_fills_out_of_bounds_reads_of_stores_into_the_buffer(target):
    a = np.arange(64 * 8, dtype=np.float32).reshape(64, 8)
    b = np.zeros_like(a)
    _compile(shifted_with_padding, target)(a, b)
    ref = np.full_like(a, 7.0)
    ref[3:] = a[:-3]
    np.testing.assert_array_equal(b, ref)


def test_annotate_padding_needs_an_on_chip_buffer():
    with pytest.raises(CompileError, match="keys must be shared or local buffers"):
        @T.prim_func
        def bad(A: T.Tensor((32,), "float32")):
            with T.Kernel(1, threads=32):
                T.annotate_padding({A: 1.0})
