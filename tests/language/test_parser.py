"""The parser: how names resolve, what Python runs at parse time and what becomes IR, scope
rules for names bound with `=`, and the forms of annotations and decorators.

No `from __future__ import annotations` here: annotations are evaluated when Python defines the
function, the path most user code takes (test_postponed_annotations_module covers the other)."""
import importlib.util
import sys
import textwrap

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.ir.stmt import LetStmt, PrimFunc
from tilewise.ir.visitor import walk


def cpu(func, **kw):
    return tilewise.compile(func, target="cpu", **kw)


# ------------------------------------------------------------------------------- name resolution


def test_names_used_only_in_annotations_resolve():
    def make(M, dtype):
        @T.prim_func
        def k(A: T.Tensor((M,), dtype), B: T.Tensor((M,), dtype)):
            with T.Kernel(1) as _:
                for i in T.serial(4):
                    B[i] = A[i] + 1

        return k

    f = make(4, "float16")
    assert f.params[0].shape == (4,) and f.params[0].dtype == "float16"
    b = cpu(f, out_idx=1)(np.arange(4, dtype=np.float16))
    np.testing.assert_array_equal(b, np.arange(4) + 1)


def test_postponed_annotations_module(tmp_path):
    src = textwrap.dedent(
        """
        from __future__ import annotations
        import tilewise.language as T

        def make(M, dtype):
            @T.prim_func
            def k(A: T.Tensor((M,), dtype), B: T.Buffer[(M,), dtype], n: T.int32):
                with T.Kernel(1) as _:
                    for i in T.serial(M):
                        B[i] = A[i] + n
            return k

        @T.macro
        def put(x: T.int32, A: T.Tensor((4,), "float32")):
            A[0] = x
        """
    )
    path = tmp_path / "postponed_mod.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("postponed_mod", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["postponed_mod"] = mod
    try:
        spec.loader.exec_module(mod)
        f = mod.make(4, "float32")
    finally:
        del sys.modules["postponed_mod"]
    b = cpu(f, out_idx=1)(np.ones(4, np.float32), 2)
    np.testing.assert_array_equal(b, np.full(4, 3.0))


GLOBAL_OFFSET = 5


def test_globals_closures_and_locals_resolve_in_order():
    seven = 7
    table = {"a": 1, "b": 2}

    @T.prim_func
    def k(A: T.Tensor((3,), "int32")):
        with T.Kernel(1) as _:
            A[0] = GLOBAL_OFFSET
            A[1] = seven + table["b"]
            A[2] = table["a"] * 100

    a = np.zeros(3, np.int32)
    cpu(k)(a)
    np.testing.assert_array_equal(a, [5, 9, 100])


def test_unknown_dtype_in_an_annotation_evaluated_by_python():
    with pytest.raises(tilewise.CompileError) as info:

        @T.prim_func
        def k(A: T.Tensor((4,), "float33")):
            with T.Kernel(1) as _:
                pass

    text = str(info.value)
    assert "unknown dtype 'float33'" in text and 'def k(A: T.Tensor((4,), "float33")):' in text
    assert __file__ in text


def test_annotation_forms():
    @T.prim_func
    def k(
        A: T.Tensor((4,), T.float16),
        B: T.Buffer((4,), "half"),
        C: T.Tensor[(4,), "float"],
        D: T.Tensor((2, 2), "bf16"),
        n: T.int32,
        x: "float32",  # noqa: F821 - a dtype name as the annotation
    ):
        with T.Kernel(1) as _:
            for i in T.serial(4):
                C[i] = T.cast(A[i], "float32") + T.cast(B[i], "float32") + n + x
            D[0, 0] = 1.0

    dts = [p.dtype.name for p in k.params]
    assert dts == ["float16", "float16", "float32", "bfloat16", "int32", "float32"]
    c = np.zeros(4, np.float32)
    import ml_dtypes

    cpu(k)(np.ones(4, np.float16), np.ones(4, np.float16), c, np.zeros((2, 2), ml_dtypes.bfloat16), 2, 0.5)
    np.testing.assert_array_equal(c, np.full(4, 4.5))


def test_decorator_forms():
    def body(A: T.Tensor((2,), "int32")):
        with T.Kernel(1) as _:
            A[0] = 1

    assert isinstance(T.prim_func(body), PrimFunc)
    assert isinstance(T.prim_func(private=True)(body), PrimFunc)

    @T.prim_func
    def with_doc(A: T.Tensor((2,), "int32")):
        """A docstring is ignored."""
        with T.Kernel(1) as _:
            """So is this string."""
            pass
            A[1] = 2

    a = np.zeros(2, np.int32)
    cpu(with_doc)(a)
    np.testing.assert_array_equal(a, [0, 2])


# ------------------------------------------------------------------------------- Python at parse time


def test_python_constructs_run_while_parsing():
    weights = [1.0, 2.0, 3.0]

    def twice(v):
        return v * 2

    @T.prim_func
    def k(A: T.Tensor((8,), "float32"), B: T.Tensor((8,), "float32")):
        with T.Kernel(1) as _:
            lo, hi = 1, 3  # tuple unpacking of Python values
            for idx, w in enumerate(weights):  # a Python loop, unrolled
                B[idx] = A[idx] * w
            parts = [A[j] for j in range(lo, hi + 1)]  # a comprehension of device values
            B[3] = sum(parts[1:], parts[0])
            sq = lambda v: v * v  # noqa: E731
            B[4] = sq(A[4]) + twice(1)
            B[5] = max(A[5], A[6], 0.0)  # builtin max on device values
            B[6] = abs(A[6]) + min(A[0], A[1])
            B[7] = float(int(A[7] * 10)) / 10 if len(weights) == 3 else 0.0

    text = str(k)
    assert "for" not in text, text
    a = np.array([1, -2, 3, 4, 5, -6, -7, 1.37], np.float32)
    b = cpu(k, out_idx=1)(a)
    ref = [1, -4, 9, a[1] + a[2] + a[3], 25 + 2, 0, 7 + -2, 1.3]
    np.testing.assert_allclose(b, np.array(ref, np.float32), rtol=1e-6)


def test_chained_comparisons_and_boolean_operators():
    LIMIT = 4
    STRICT = False

    @T.prim_func
    def k(A: T.Tensor((8,), "int32"), B: T.Tensor((8,), "int32")):
        with T.Kernel(1) as _:
            for i in T.serial(8):
                B[i] = 0
                if 1 <= A[i] < LIMIT:
                    B[i] = 1
                if (A[i] == 0 or A[i] > 6) and not STRICT:
                    B[i] = 2
                if STRICT and A[i] > 0:  # decided while parsing: never emitted
                    B[i] = 3
                if not (A[i] != 5):
                    B[i] = 4

    assert str(k).count("if ") == 3
    a = np.array([0, 1, 3, 4, 5, 6, 7, -1], np.int32)
    b = cpu(k, out_idx=1)(a)
    np.testing.assert_array_equal(b, [2, 1, 1, 0, 4, 0, 2, 0])


def test_annotated_assignment_makes_a_typed_binding():
    @T.prim_func
    def k(A: T.Tensor((2,), "float32")):
        with T.Kernel(1) as _:
            x: T.int32 = 7
            y: T.float32 = A[0] * 2
            A[0] = x / 2  # integer division of an int32 binding
            A[1] = y

    lets = []
    walk(k.body, lambda n: lets.append(n) if isinstance(n, LetStmt) else None)
    assert [lt.var.dtype.name for lt in lets] == ["int32", "float32"]
    a = np.array([1.5, 0], np.float32)
    cpu(k)(a)
    np.testing.assert_array_equal(a, [3, 3])


def test_buffers_are_named_after_their_variables():
    @T.prim_func
    def k(A: T.Tensor((4,), "float32")):
        with T.Kernel(1) as _:
            A_shared = T.alloc_shared((4,), "float32")
            acc_frag = T.alloc_fragment((4,), "float32")
            T.copy(A, A_shared)
            T.copy(A_shared, acc_frag)
            T.copy(acc_frag, A)

    assert "A_shared = T.alloc_shared((4,), 'float32')" in str(k)
    src = tilewise.lower(k, target="cpu").kernel_source
    assert "A_shared" in src and "acc_frag" in src


def test_kernel_grid_as_a_list_and_default_names():
    @T.prim_func
    def k(A: T.Tensor((2, 3), "int32")):
        with T.Kernel([3, 2]) as (bx, by):
            A[by, bx] = T.get_block_binding(0) + 10 * T.get_block_binding(1)

    a = np.zeros((2, 3), np.int32)
    cpu(k)(a)
    np.testing.assert_array_equal(a, [[0, 1, 2], [10, 11, 12]])


# ------------------------------------------------------------------------------- scope rules


def _parse_error(build) -> str:
    with pytest.raises(tilewise.CompileError) as info:
        build()
    return str(info.value)


def test_accumulating_into_a_let_binding_inside_a_loop_is_an_error():
    def build():
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as _:
                total = A[0]
                for i in T.serial(4):
                    total = total + A[i]
                A[0] = total

    msg = _parse_error(build)
    assert "'total' is re-assigned from its own value inside a device if/loop" in msg
    assert "total = T.alloc_var(dtype)" in msg and "total = total + A[i]" in msg


def test_python_counter_updated_in_a_device_loop_is_an_error():
    def build():
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as _:
                off = 0
                for i in T.serial(4):
                    off += 2
                    A[i] = off

    assert "'off' is re-assigned from its own value" in _parse_error(build)


def test_reading_a_name_reassigned_in_a_device_branch_is_an_error():
    def build():
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as _:
                x = A[0]
                if A[1] > 0:
                    x = A[2]
                A[0] = x

    msg = _parse_error(build)
    assert "'x' was re-assigned inside a device if/loop at" in msg and "A[0] = x" in msg


def test_a_name_bound_only_inside_a_branch_is_not_visible_after_it():
    def build():
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as _:
                if A[1] > 0:
                    y = A[2]
                A[0] = y

    assert "it is assigned only inside a device if/loop" in _parse_error(build)


def test_allowed_rebindings():
    @T.prim_func
    def k(A: T.Tensor((4,), "float32")):
        with T.Kernel(1) as _:
            x = A[0]
            if A[1] > 0:
                x = A[2]  # used only inside the branch
                A[3] = x
            x = A[1] * 3  # re-bound before the next read
            A[0] = x
            for i in T.serial(2):
                v = A[i]  # a fresh binding per iteration
                A[i] = v * 2
            for i in T.serial(2):
                v = A[i]
                A[i] = v + 1

    a = np.array([1, 2, 3, 0], np.float32)
    cpu(k)(a)
    np.testing.assert_array_equal(a, [2 * 6 + 1, 2 * 2 + 1, 3, 3])


def test_alloc_var_is_the_way_to_carry_values():
    @T.prim_func
    def k(A: T.Tensor((4,), "float32")):
        with T.Kernel(1) as _:
            total = T.alloc_var("float32", init=0)
            for i in T.serial(4):
                total = total + A[i]
                if A[i] > 2:
                    total += 100
            A[0] = total

    a = np.array([1, 2, 3, 4], np.float32)
    cpu(k)(a)
    assert a[0] == 210


# ------------------------------------------------------------------------------- macros


def test_macro_defaults_keywords_nesting_and_python_level_return():
    @T.macro
    def inner(buf, i, scale=2):
        buf[i] = buf[i] * scale

    @T.macro
    def outer(buf, i, mode="double"):
        if mode == "double":  # decided while parsing
            inner(buf, i)
            return 1
        inner(buf, i, scale=3)
        return 2

    @T.prim_func
    def k(A: T.Tensor((3,), "int32")):
        with T.Kernel(1) as _:
            r1 = outer(A, 0)
            r2 = outer(A, 1, mode="triple")
            A[2] = r1 * 10 + r2

    a = np.array([5, 5, 0], np.int32)
    cpu(k)(a)
    np.testing.assert_array_equal(a, [10, 15, 12])


def test_macro_outside_a_kernel_is_an_error():
    @T.macro
    def m(x):
        return x

    with pytest.raises(tilewise.CompileError, match="can only be called inside a @T.prim_func"):
        m(1)


def test_loop_specs_outside_kernels_are_errors():
    with pytest.raises(tilewise.CompileError, match="can only be used as `for ... in` inside a @T.prim_func"):
        for _ in T.Parallel(4):
            pass
    with pytest.raises(tilewise.CompileError, match="inside a @T.prim_func"):
        T.alloc_shared((4,), "float32")


def test_numpy_scalars_work_like_python_numbers():
    M, BM, factor = np.int64(16), np.int32(8), np.float32(2.5)

    @T.prim_func
    def k(A: T.Tensor((M,), "float32"), B: T.Tensor((M,), "float32")):
        with T.Kernel(T.ceildiv(M, BM), threads=np.int64(128)) as bx:
            s = T.alloc_shared((BM,), "float32")
            T.copy(A[bx * BM], s)
            for i in T.Parallel(BM):
                s[i] = s[i] * factor
            for i in T.serial(np.int64(2)):
                s[i] = s[i] + np.prod([1, 2])
            for i in T.Pipelined(np.int64(1), num_stages=np.int64(2)):
                s[i] = s[i] + 0
            T.copy(s, B[bx * BM])

    assert k.params[0].shape == (16,)
    b = cpu(k, out_idx=1)(np.ones(16, np.float32))
    ref = np.full(16, 2.5, np.float32)
    ref[[0, 1, 8, 9]] += 2
    np.testing.assert_array_equal(b, ref)


def test_alloc_var_as_a_loop_bound_and_index():
    @T.prim_func
    def k(A: T.Tensor((8,), "int32")):
        with T.Kernel(1) as _:
            n = T.alloc_var("int32", init=3)
            j = T.alloc_var("int32", init=7)
            for i in T.serial(n):
                A[i] = i + 1
            for i in range(n, 5):
                A[i] = 10
            A[j] = n
            n = 6
            A[j - 1] = n + 1

    a = np.zeros(8, np.int32)
    cpu(k)(a)
    np.testing.assert_array_equal(a, [1, 2, 3, 10, 10, 0, 7, 3])
