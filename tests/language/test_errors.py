"""Errors a user can cause: wrong call arguments name the parameter with expected vs found;
invalid programs raise tilewise.CompileError with the file:line and the source line."""
from __future__ import annotations

import functools
import inspect
import re

import numpy as np
import pytest
import torch

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError

THIS_FILE = inspect.getsourcefile(lambda: None)


@functools.cache
def _kernel():
    n = T.symbolic("n")

    @T.prim_func
    def add(A: T.Tensor((n, 4), "float32"), B: T.Tensor((n, 4), "float32"), s: T.int32, C: T.Tensor((n, 4), "float32")):
        with T.Kernel(T.ceildiv(n, 8)) as bx:
            for i, j in T.Parallel(8, 4):
                if bx * 8 + i < n:
                    C[bx * 8 + i, j] = A[bx * 8 + i, j] + B[bx * 8 + i, j] * s

    return tilewise.compile(add, out_idx=-1, target="cpu")


def _a(rows=5, dtype=np.float32):
    return np.ones((rows, 4), dtype)


# ------------------------------------------------------------------------------- call arguments


def test_a_correct_call_works():
    c = _kernel()(_a(), _a() * 2, 3)
    np.testing.assert_array_equal(c, np.full((5, 4), 7.0))


@pytest.mark.parametrize("args", [(), (1,), (_a(),), (_a(), _a(), 1, _a())])
def test_wrong_argument_count(args):
    with pytest.raises(TypeError, match=r"takes 3 argument\(s\) \(A, B, s\) \(C is allocated and returned\), but \d+ were given"):
        _kernel()(*args)


def test_wrong_shape_names_the_parameter():
    with pytest.raises(ValueError, match=r"argument B: expected shape \(n, 4\), found \(5, 3\)"):
        _kernel()(_a(), np.ones((5, 3), np.float32), 1)


def test_inconsistent_symbolic_dimension():
    with pytest.raises(ValueError, match=r"argument B: dimension 0 is n=5 from an earlier argument, found 6"):
        _kernel()(_a(5), _a(6), 1)


def test_wrong_rank():
    with pytest.raises(ValueError, match=r"argument A: expected 2 dimensions \(n, 4\), found shape \(20,\)"):
        _kernel()(np.ones(20, np.float32), _a(), 1)


@pytest.mark.parametrize("dtype,name", [(np.float64, "float64"), (np.int32, "int32"), (np.float16, "float16")])
def test_wrong_dtype(dtype, name):
    with pytest.raises(TypeError, match=f"argument A: expected dtype float32, found {name}"):
        _kernel()(_a(dtype=dtype), _a(), 1)


def test_wrong_torch_dtype():
    with pytest.raises(TypeError, match="argument B: expected dtype float32, found bfloat16"):
        _kernel()(torch.ones(5, 4), torch.ones(5, 4, dtype=torch.bfloat16), 1)


def test_tensor_on_another_device():
    with pytest.raises(ValueError, match="argument A: the tensor is on meta, but this kernel runs on the CPU"):
        _kernel()(torch.ones(5, 4, device="meta"), torch.ones(5, 4), 1)


@pytest.mark.parametrize(
    "arr", [np.ones((4, 5), np.float32).T, np.ones((10, 4), np.float32)[::2], torch.ones(4, 5).T],
    ids=["numpy-transposed", "numpy-strided", "torch-transposed"],
)
def test_non_contiguous_strides(arr):
    with pytest.raises(ValueError, match=r"argument A: the kernel needs a contiguous row-major array, found strides"):
        _kernel()(arr, _a(), 1)


@pytest.mark.parametrize("value", [[[1.0] * 4] * 5, 3.0, "A"])
def test_non_array_argument(value):
    with pytest.raises(TypeError, match=r"argument A: expected a numpy array or torch tensor of shape \(n, 4\) and dtype float32, found"):
        _kernel()(value, _a(), 1)


def test_none_for_a_tensor_the_kernel_reads():
    # None is TileLang's null pointer: accepted only for a tensor the kernel never touches
    with pytest.raises(TypeError, match=r"argument A is None, but the kernel accesses it"):
        _kernel()(None, _a(), 1)


@pytest.mark.parametrize(
    "value,exc,msg",
    [
        (1.5, TypeError, r"argument s: expected an integer \(int32\), found float 1.5"),
        ("3", TypeError, r"argument s: expected an integer \(int32\), found str '3'"),
        (True, TypeError, r"argument s: expected an integer \(int32\), found bool True"),
        (np.ones(2), TypeError, r"argument s: expected a int32 scalar, found an array"),
        (2**40, ValueError, r"argument s: expected a int32 in \[-2147483648, 2147483647\], found 1099511627776"),
    ],
)
def test_wrong_scalar_argument(value, exc, msg):
    with pytest.raises(exc, match=msg):
        _kernel()(_a(), _a(), value)


def test_numpy_and_torch_scalars_are_accepted():
    for s in (np.int64(2), np.int32(2), torch.tensor(2)):
        np.testing.assert_array_equal(_kernel()(_a(), _a(), s), np.full((5, 4), 3.0))


def test_keyword_arguments():
    k = _kernel()
    np.testing.assert_array_equal(k(_a(), s=2, B=_a()), np.full((5, 4), 3.0))
    with pytest.raises(TypeError, match=r"no input argument 'C' \(it is an output"):
        k(_a(), _a(), 1, C=_a())
    with pytest.raises(TypeError, match="missing argument"):
        k(_a(), s=1)
    with pytest.raises(TypeError, match="given twice"):
        k(_a(), _a(), 1, s=1)


def test_compile_rejects_bad_out_idx_and_configs():
    f = _kernel().func
    with pytest.raises(ValueError, match="out_idx 7 is out of range"):
        tilewise.compile(f, out_idx=7, target="cpu")
    with pytest.raises(ValueError, match="names the scalar parameter s"):
        tilewise.compile(f, out_idx=2, target="cpu")
    with pytest.raises(ValueError, match="twice"):
        tilewise.compile(f, out_idx=[3, -1], target="cpu")
    with pytest.raises(ValueError, match="unknown pass config"):
        tilewise.compile(f, pass_configs={"tl.no_such_thing": True}, target="cpu")
    with pytest.raises(TypeError, match="expected a @T.prim_func"):
        tilewise.compile(lambda: None, target="cpu")
    with pytest.raises(ValueError, match="unknown target"):
        tilewise.compile(f, target="tpu")


# ------------------------------------------------------------------------------- invalid programs


def _line_of(fn, needle: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    for k, text in enumerate(lines):  # a whole line first, then a line containing it
        if text.strip() == needle:
            return first + k
    for k, text in enumerate(lines):
        if needle in text:
            return first + k
    raise AssertionError(f"{needle!r} not in {fn.__name__}")


def _expect_compile_error(build, needle: str, message: str):
    """`build()` must raise a CompileError at the line containing `needle`, showing that line."""
    with pytest.raises(tilewise.CompileError) as info:
        build()
    err = info.value
    text = str(err)
    line = _line_of(build, needle)
    assert f"{THIS_FILE}:{line}" in text, text
    assert needle in text, text
    assert re.search(message, text), text
    assert err.span is not None and err.span.line == line


def test_copy_extent_mismatch():
    def build():
        @T.prim_func
        def k(A: T.Tensor((16, 16), "float32")):
            with T.Kernel(1) as _:
                s = T.alloc_shared((8, 8), "float32")
                T.copy(A[0:16, 0:8], s)

    # TileLang's rule: the copy covers the shared tile's extents, refused when they are provably
    # smaller than the source region's (a larger tile reads zeros past the tensor: tests/tileop/test_copy_extents.py)
    _expect_compile_error(build, "T.copy(A[0:16, 0:8], s)", r"destination s region has shape \(8, 8\), smaller than the source A region's \(16, 8\)")


def test_unknown_dtype_in_allocation():
    def build():
        @T.prim_func
        def k(A: T.Tensor((16,), "float32")):
            with T.Kernel(1) as _:
                T.alloc_shared((8,), "flaot32")

    _expect_compile_error(build, 'T.alloc_shared((8,), "flaot32")', r"unknown dtype 'flaot32'")


def test_unknown_dtype_in_annotation():
    def build():
        @T.prim_func
        def k(A: T.Tensor((16,), "float33")):
            with T.Kernel(1) as _:
                A[0] = 1.0

    _expect_compile_error(build, 'def k(A: T.Tensor((16,), "float33"))', r"unknown dtype 'float33'")


def test_non_constant_allocation_shape():
    def build():
        @T.prim_func
        def k(A: T.Tensor((16,), "float32"), n: T.int32):
            with T.Kernel(1) as _:
                T.alloc_fragment((n, 4), "float32")

    _expect_compile_error(build, 'T.alloc_fragment((n, 4), "float32")', r"the shape must be constant at compile time, but dimension n is not")


@pytest.mark.parametrize("op", ["fill", "copy", "alloc", "store"])
def test_tile_operator_outside_kernel(op):
    def build():
        @T.prim_func
        def k(A: T.Tensor((16,), "float32"), B: T.Tensor((16,), "float32")):
            if op == "fill":
                T.fill(A, 0)  # the offending line
            elif op == "copy":
                T.copy(A, B)  # the offending line
            elif op == "alloc":
                T.alloc_shared((4,), "float32")  # the offending line
            else:
                A[0] = 1.0  # the offending line
            with T.Kernel(1) as _:
                pass

    needle = {"fill": "T.fill(A, 0)", "copy": "T.copy(A, B)", "alloc": 'T.alloc_shared((4,), "float32")', "store": "A[0] = 1.0"}[op]
    _expect_compile_error(build, needle, r"inside `with T.Kernel|outside `with T.Kernel")


def test_undefined_name():
    def build():
        @T.prim_func
        def k(A: T.Tensor((16,), "float32")):
            with T.Kernel(1) as _:
                A[0] = undefined_thing  # noqa: F821

    _expect_compile_error(build, "A[0] = undefined_thing", r"name 'undefined_thing' is not defined")


@pytest.mark.parametrize("names", ["bx", "(bx, by, bz)"])
def test_kernel_binds_wrong_number_of_names(names):
    def build():
        @T.prim_func
        def k(A: T.Tensor((16,), "float32")):
            if names == "bx":
                with T.Kernel(2, 2) as bx:
                    A[bx] = 1.0
            else:
                with T.Kernel(2, 2) as (bx, by, bz):
                    A[bx] = 1.0

    needle = "with T.Kernel(2, 2) as bx:" if names == "bx" else "with T.Kernel(2, 2) as (bx, by, bz):"
    _expect_compile_error(build, needle, r"T.Kernel has 2 grid dimensions but binds [13] names")


def test_parallel_binds_wrong_number_of_names():
    def build():
        @T.prim_func
        def k(A: T.Tensor((4, 4), "float32")):
            with T.Kernel(1) as _:
                for i in T.Parallel(4, 4):
                    A[i, 0] = 1.0

    _expect_compile_error(build, "for i in T.Parallel(4, 4):", r"the loop has 2 dimensions but binds 1 names")


@pytest.mark.parametrize("needle", ["A[0] = 1.0", "A[0, 1, 2] = 1.0"])
def test_store_with_wrong_rank(needle):
    def build():
        @T.prim_func
        def k(A: T.Tensor((4, 4), "float32")):
            with T.Kernel(1) as _:
                if needle == "A[0] = 1.0":
                    A[0] = 1.0
                else:
                    A[0, 1, 2] = 1.0

    _expect_compile_error(build, needle, r"buffer A has 2 dimensions but is indexed with [13]")


def test_device_value_used_as_python_bool_in_a_helper():
    def absolute(v):
        if v > 0:  # a Python `if` on a device value
            return v
        return -v

    def build():
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as _:
                A[0] = absolute(A[1])

    _expect_compile_error(build, "A[0] = absolute(A[1])", r"cannot be used as a Python bool")


def test_device_value_in_python_assert():
    def build():
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as _:
                assert A[0] > 0

    _expect_compile_error(build, "assert A[0] > 0", r"assert on a device value")


def test_python_exception_in_a_helper_becomes_a_compile_error():
    def helper(x):
        return {"a": 1}["missing"]

    def build():
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as _:
                A[0] = helper(A[1])

    _expect_compile_error(build, "A[0] = helper(A[1])", r"KeyError: 'missing'")


def test_runaway_recursion_in_a_helper_becomes_a_compile_error():
    def forever(x):
        return forever(x)

    def build():
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as _:
                A[0] = forever(1)

    _expect_compile_error(build, "A[0] = forever(1)", r"RecursionError")


def test_float_index():
    def build():
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as _:
                A[0] = A[A[1]]

    _expect_compile_error(build, "A[0] = A[A[1]]", r"index A\[1\] has type float32; indices must be integers")


@pytest.mark.parametrize("needle", ["A[4] = 1.0", "A[0] = A[-5]"])
def test_constant_index_out_of_bounds(needle):
    def build():
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as _:
                if needle == "A[4] = 1.0":
                    A[4] = 1.0
                else:
                    A[0] = A[-5]

    _expect_compile_error(build, needle, r"out of bounds for dimension 0 of A \(size 4\)")


def test_return_inside_a_kernel():
    def build():
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as _:
                A[0] = 1.0
                return

    _expect_compile_error(build, "return", r"return is only allowed at the top level of the function")


def test_return_from_a_device_branch_of_a_macro():
    @T.macro
    def pick(x):
        if x > 0:
            return x
        return -x

    def build():
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as _:
                A[0] = pick(A[1])

    with pytest.raises(tilewise.CompileError, match="a macro can return only from its top level") as info:
        build()
    assert "return x" in str(info.value)


def test_macro_argument_checks():
    @T.macro
    def on_shared(x: T.SharedBuffer((8,), "float32")):
        x[0] = 1.0

    def build():
        @T.prim_func
        def k(A: T.Tensor((8,), "float32")):
            with T.Kernel(1) as _:
                on_shared(A)

    _expect_compile_error(build, "on_shared(A)", r"macro parameter x expects a shared buffer, got global buffer A")

    def build2():
        @T.prim_func
        def k(A: T.Tensor((8,), "float32")):
            with T.Kernel(1) as _:
                on_shared(A, 1)

    _expect_compile_error(build2, "on_shared(A, 1)", r"macro on_shared: too many positional arguments")


def test_nested_kernel_and_unsupported_statements():
    def build():
        @T.prim_func
        def k(A: T.Tensor((8,), "float32")):
            with T.Kernel(1) as _:
                with T.Kernel(1) as _:
                    pass

    with pytest.raises(tilewise.CompileError, match="T.Kernel cannot be nested"):
        build()

    def build2():
        @T.prim_func
        def k(A: T.Tensor((8,), "float32")):
            with T.Kernel(1) as _:
                try:
                    A[0] = 1.0
                finally:
                    pass

    _expect_compile_error(build2, "try:", r"Try statements are not supported in kernels")


def test_missing_annotation():
    def build():
        @T.prim_func
        def k(A):
            with T.Kernel(1) as _:
                pass

    _expect_compile_error(build, "def k(A):", r"parameter A needs an annotation")


def test_bad_grid_and_threads():
    def build():
        @T.prim_func
        def k(A: T.Tensor((8,), "float32")):
            with T.Kernel(2.5) as _:
                pass

    _expect_compile_error(build, "with T.Kernel(2.5) as _:", r"grid dimension must be an integer, got 2.5")

    def build2():
        @T.prim_func
        def k(A: T.Tensor((8,), "float32")):
            with T.Kernel(2, threads=0) as _:
                pass

    _expect_compile_error(build2, "with T.Kernel(2, threads=0) as _:", r"threads= must be positive integers")


def test_constant_division_by_zero():
    def build():
        @T.prim_func
        def k(A: T.Tensor((8,), "int32")):
            with T.Kernel(1) as _:
                A[0] = A[1] // 0

    _expect_compile_error(build, "A[0] = A[1] // 0", r"division by zero")


def test_loop_step_zero():
    def build():
        @T.prim_func
        def k(A: T.Tensor((8,), "int32")):
            with T.Kernel(1) as _:
                for i in range(0, 8, 0):
                    A[i] = 1

    _expect_compile_error(build, "for i in range(0, 8, 0):", r"step must not be zero")


def test_internal_errors_are_labelled_as_bugs():
    err = tilewise.InternalError("oops")
    assert "internal error in tilewise" in str(err) and "bug" in str(err)


def test_python_error_in_a_statement_becomes_a_compile_error():
    def build():
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as _:
                A[0:4] += 1

    _expect_compile_error(build, "A[0:4] += 1", r"TypeError: unsupported operand")


def test_infinity_of_an_integer_type():
    def build():
        @T.prim_func
        def k(A: T.Tensor((4,), "int32")):
            with T.Kernel(1) as _:
                A[0] = T.infinity("int32")

    _expect_compile_error(build, 'A[0] = T.infinity("int32")', r"int32 has no infinity")


def test_run_time_integer_division_by_zero_does_not_trap():
    @T.prim_func
    def k(A: T.Tensor((4,), "int32"), B: T.Tensor((4,), "int32"), C: T.Tensor((3, 4), "int32")):
        with T.Kernel(1) as _:
            for i in T.serial(4):
                C[0, i] = A[i] // B[i]
                C[1, i] = A[i] % B[i]
                C[2, i] = T.truncdiv(A[i], B[i]) + T.truncmod(A[i], B[i])

    kern = tilewise.compile(k, out_idx=-1, target="cpu")
    c = kern(np.array([7, 7, -(2**31), -7], np.int32), np.array([2, 0, -1, 2], np.int32))
    # defined where Python defines it; no trap (and a wrapped value) where it does not
    assert c[0, 0] == 3 and c[1, 0] == 1 and c[0, 3] == -4 and c[1, 3] == 1
    assert c[2, 0] == 3 + 1 and c[2, 3] == -3 + -1


def test_dimension_too_large_for_its_symbolic_type():
    n = T.symbolic("n")

    @T.prim_func
    def k(A: T.Tensor((n,), "int8")):
        with T.Kernel(1) as _:
            A[0] = 1

    kern = tilewise.compile(k, target="cpu")
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), shape=(2**31,), strides=(1,))
    with pytest.raises(ValueError, match=r"argument A: dimension 0 \(n\) is 2147483648, more than a int32 holds"):
        kern(big)


def test_an_output_whose_shape_no_input_determines():
    n, m = T.symbolic("n"), T.symbolic("m")

    @T.prim_func
    def k(A: T.Tensor((n,), "float32"), B: T.Tensor((n, m), "float32")):
        with T.Kernel(1) as _:
            B[0, 0] = A[0]

    with pytest.raises(ValueError, match="output B has the dimension m, but no input's shape determines m"):
        tilewise.compile(k, out_idx=-1, target="cpu")


def test_expression_dimensions_are_checked_after_every_input_is_bound():
    n = T.symbolic("n")

    @T.prim_func
    def pairs(A: T.Tensor((n * 2,), "float32"), B: T.Tensor((n,), "float32")):
        with T.Kernel(1) as _:
            for i in T.serial(n):
                B[i] = A[2 * i] + A[2 * i + 1]

    kern = tilewise.compile(pairs, target="cpu")
    b = np.zeros(3, np.float32)
    kern(np.arange(6, dtype=np.float32), b)
    np.testing.assert_array_equal(b, [1, 5, 9])
    with pytest.raises(ValueError, match=r"argument A: dimension 0 should be n \* 2 = 6, found 5"):
        kern(np.arange(5, dtype=np.float32), b)
    out = tilewise.compile(pairs, out_idx=[0], target="cpu")  # n * 2 is computable from B
    assert out(np.zeros(4, np.float32)).shape == (8,)
    with pytest.raises(ValueError, match="no input's shape determines n"):
        tilewise.compile(pairs, out_idx=[1], target="cpu")  # n cannot be solved from n * 2


def test_thread_binding_has_no_native_cpu_code():
    @T.prim_func
    def k(A: T.Tensor((128,), "float32")):
        with T.Kernel(1, threads=128) as _:
            tx = T.get_thread_binding()
            A[tx] = 1.0

    # no C++ for thread-level code: lower() says so and names the kernel's line ...
    with pytest.raises(tilewise.CompileError, match="not supported on the CPU target") as info:
        tilewise.lower(k, target="cpu")
    assert "with T.Kernel(1, threads=128) as _:" in str(info.value)
    # ... and compile() runs it thread-exactly in the emulator instead, with a warning
    with pytest.warns(UserWarning, match="emulator"):
        kernel = tilewise.compile(k, target="cpu")
    a = np.zeros(128, np.float32)
    kernel(a)
    assert (a == 1.0).all()


def test_pipelined_group_and_sync_are_not_ignored():
    def body(**kw):
        @T.prim_func
        def f(A: T.Tensor((64, 64), "float32"), B: T.Tensor((64, 64), "float32")):
            with T.Kernel(1, threads=128):
                s = T.alloc_shared((16, 64), "float32")
                for k in T.Pipelined(4, num_stages=2, **kw):
                    T.copy(A[k * 16, 0], s)
                    T.copy(s, B[k * 16, 0])

        return f

    with pytest.raises(CompileError, match="group= needs order="):
        body(group=[[0, 1]])
    with pytest.raises(CompileError, match="sync=.*never uses it"):
        body(sync=[[0, 1]])
    body(sync=[])  # an empty sync= says nothing
    body(group=[[0], [1]], order=[0, 1], stage=[0, 1])  # tests/transform/test_pipeline_groups.py runs schedules


def test_nothing_the_parser_cannot_honour_is_dropped():
    with pytest.raises(CompileError, match="while ... else"):
        @T.prim_func
        def f(A: T.Tensor((4,), "int32")):
            with T.Kernel(1, threads=32):
                i = T.alloc_var("int32", init=0)
                while i < 3:
                    i = i + 1
                else:
                    A[0] = 1

    with pytest.raises(CompileError, match=r"cannot take \*args"):
        @T.prim_func
        def g(*args):
            with T.Kernel(1, threads=32):
                pass

    with pytest.raises(CompileError, match="assignment expressions"):
        @T.prim_func
        def h(A: T.Tensor((4,), "int32")):
            with T.Kernel(1, threads=32):
                if (x := 3) > 2:
                    A[0] = x

    with pytest.raises(CompileError, match="dimension -4 must be non-negative"):
        @T.prim_func
        def neg(A: T.Tensor((-4,), "float32")):
            with T.Kernel(1, threads=32):
                pass


@pytest.mark.parametrize("target,backend", [("cpu", "auto"), ("cuda -arch=sm_80", "emulator")])
def test_a_2000_term_expression_compiles(target, backend, tmp_path):
    terms = " + ".join(f"A[{i % 64}] * {i % 7}.0" for i in range(2000))
    path = tmp_path / "deep_kernel.py"
    path.write_text(
        "import tilewise.language as T\n\n\n@T.prim_func\n"
        "def f(A: T.Tensor((64,), 'float32'), B: T.Tensor((1,), 'float32')):\n"
        "    with T.Kernel(1, threads=1):\n"
        f"        B[0] = {terms}\n")
    import importlib.util

    spec = importlib.util.spec_from_file_location("deep_kernel", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    a = np.random.default_rng(0).random(64).astype(np.float32)
    b = np.zeros(1, np.float32)
    tilewise.compile(mod.f, target=target, execution_backend=backend)(a, b)
    ref = sum(float(a[i % 64]) * (i % 7) for i in range(2000))
    np.testing.assert_allclose(b[0], ref, rtol=1e-4)


@pytest.mark.parametrize("threads", [2048, (32, 64), (1, 1, 128), 2**31])
def test_cuda_block_limits_are_checked_at_the_kernel_line(threads):
    @T.prim_func
    def f(A: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=threads):
            A[0] = 1.0

    with pytest.raises(CompileError, match="allows at most") as err:
        tilewise.compile(f, target="cuda -arch=sm_80", execution_backend="emulator")
    assert "T.Kernel(1, threads=threads)" in str(err.value)


def test_layout_errors_name_the_operator_line():
    @T.prim_func
    def f(A: T.Tensor((16, 16), "float16"), B: T.Tensor((16, 8), "float16"), C: T.Tensor((16, 8), "float32")):
        with T.Kernel(1, threads=256):
            a = T.alloc_shared((16, 16), "float16")
            b = T.alloc_shared((16, 8), "float16")
            c = T.alloc_fragment((16, 8), "float32")
            T.copy(A, a)
            T.copy(B, b)
            T.clear(c)
            T.gemm(a, b, c)
            T.copy(c, C)

    with pytest.raises(CompileError, match="cannot be split over 8 warps") as err:
        tilewise.compile(f, target="cuda -arch=sm_80", execution_backend="emulator")
    assert "T.gemm(a, b, c)" in str(err.value) and "functools" not in str(err.value)
    assert "No valid warp partition" in str(err.value)  # TileLang's words (its issue 2537)


@pytest.mark.parametrize("target,backend", [("cpu", "auto"), ("cuda -arch=sm_80", "emulator")])
def test_max_min_reductions_ignore_nan_on_every_target(target, backend):
    """docs/API.md: as CUDA's fmaxf/fminf, not numpy."""
    @T.prim_func
    def f(A: T.Tensor((4, 64), "float32"), B: T.Tensor((4,), "float32"), C: T.Tensor((4,), "float32")):
        with T.Kernel(1, threads=128):
            a = T.alloc_fragment((4, 64), "float32")
            b = T.alloc_fragment((4,), "float32")
            c = T.alloc_fragment((4,), "float32")
            T.copy(A, a)
            T.reduce_max(a, b, dim=1)
            T.reduce_min(a, c, dim=1)
            T.copy(b, B)
            T.copy(c, C)

    a = np.random.default_rng(0).random((4, 64)).astype(np.float32)
    a[0, 3] = np.nan
    a[1, :] = np.nan
    b, c = np.zeros(4, np.float32), np.zeros(4, np.float32)
    tilewise.compile(f, target=target, execution_backend=backend)(a, b, c)
    np.testing.assert_array_equal(b, [np.nanmax(a[0]), -np.inf, a[2].max(), a[3].max()])
    np.testing.assert_array_equal(c, [np.nanmin(a[0]), np.inf, a[2].min(), a[3].min()])
