"""TileLang's control-flow and launch names (language/control.py, loop_continue.py, negative
indices): on the CPU, in the CUDA emulator (cross-checked by the PTX interpreter) and compiled by
NVRTC for sm_80, against Python references; shapes that do not divide the tiles."""
from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.emulator.assertions import DeviceAssertError

N, BN = 50, 32
GRID = -(-N // BN)
TARGETS = ("cpu", "emulator")


def _compile(func, target, out_idx=None):
    if target == "cpu":
        return tilewise.compile(func, out_idx=out_idx, target="cpu")
    return tilewise.compile(func, out_idx=out_idx, target="cuda", execution_backend="emulator")


# ---------------------------------------------------------------------------- extents


@functools.cache
def extents_kernel():
    @T.prim_func
    def extents(O: T.Tensor((6,), "int32")):
        with T.Kernel(3, 2, threads=(32, 4)) as (bx, by):
            tx = T.get_thread_extents()
            gx = T.get_block_extents()
            if bx == 0 and by == 0:
                O[0] = T.get_thread_extent()
                O[1] = tx[1] * 10 + tx[2]
                O[2] = T.get_thread_extent(1)
                O[3] = T.get_block_extent(0)
                O[4] = gx[1] * 10 + gx[2]
                O[5] = T.get_block_extent(2)

    return extents


def test_launch_extents(emu):
    expect = [32, 41, 4, 3, 21, 1]
    out = np.zeros(6, np.int32)
    emu(extents_kernel())(out)
    assert out.tolist() == expect


def test_dynamic_block_extent_is_its_expression():
    n = T.symbolic("n")

    @T.prim_func
    def k(A: T.Tensor((n,), "int32")):
        with T.Kernel(T.ceildiv(n, 4)) as bx:
            for i in T.Parallel(4):
                A[bx * 4 + i] = T.get_block_extent(0) + T.get_block_extent(1) * 100

    a = np.zeros(10, np.int32)
    tilewise.compile(k, target="cpu")(a)
    assert (a == 3 + 100).all()


# ---------------------------------------------------------------------------- loops


@functools.cache
def loops_kernel():
    """Per row: the sum of the leading non-negative elements (T.loop_break), the sum of the
    elements that are not multiples of 3 (continue at the top), the sum of odd elements doubled
    plus even ones (continue in one branch of an if / else), a count with a continue nested in
    two ifs (a flag), the same through a while loop, and aliases of the loop constructors."""
    W = 12

    @T.prim_func
    def loops(A: T.Tensor((N, W), "int32"), O: T.Tensor((N, 6), "int32")):
        with T.Kernel(GRID, threads=128) as bx:
            for i in T.Parallel(BN):
                r = bx * BN + i
                if r < N:
                    acc = T.alloc_var("int32", init=0)
                    for j in T.Serial(W):
                        if A[r, j] < 0:
                            T.loop_break()
                        acc += A[r, j]
                    O[r, 0] = acc
                    acc = 0
                    for j in T.serial(W):
                        if A[r, j] % 3 == 0:
                            T.continue_loop()
                        acc += A[r, j]
                    O[r, 1] = acc
                    acc = 0
                    for j in T.Unroll(W):
                        if A[r, j] % 2 == 1:
                            acc += 2 * A[r, j]
                            continue
                            acc += 1000  # dead
                        else:
                            acc += A[r, j]
                        acc += 0
                    O[r, 2] = acc
                    acc = 0
                    for j in T.serial(W):
                        if A[r, j] > 2:
                            if A[r, j] % 2 == 0:
                                continue
                            acc += 100
                        acc += 1
                    O[r, 3] = acc
                    acc = 0
                    k = T.alloc_var("int32", init=0)
                    while k < W:
                        k += 1
                        if A[r, k - 1] < 3:
                            continue
                        acc += A[r, k - 1]
                    O[r, 4] = acc
                    acc = 0
                    for j in T.Vectorized(4):
                        acc += A[r, j]
                    O[r, 5] = acc

    return loops


def _loops_reference(a):
    out = np.zeros((a.shape[0], 6), np.int64)
    for r, row in enumerate(a.tolist()):
        s = 0
        for x in row:
            if x < 0:
                break
            s += x
        out[r, 0] = s
        out[r, 1] = sum(x for x in row if x % 3 != 0)
        out[r, 2] = sum(2 * x if x % 2 == 1 else x for x in row)
        c = 0
        for x in row:
            if x > 2:
                if x % 2 == 0:
                    continue
                c += 100
            c += 1
        out[r, 3] = c
        out[r, 4] = sum(x for x in row if x >= 3)
        out[r, 5] = sum(row[:4])
    return out.astype(np.int32)


@pytest.mark.parametrize("target", TARGETS)
def test_break_continue_and_loop_aliases(target):
    a = np.random.default_rng(4).integers(-2, 9, (N, 12)).astype(np.int32)
    out = _compile(loops_kernel(), target, out_idx=[1])(a)
    np.testing.assert_array_equal(out, _loops_reference(a))


@functools.cache
def parallel_continue_kernel():
    @T.prim_func
    def pcont(A: T.Tensor((N,), "float32"), B: T.Tensor((N,), "float32")):
        with T.Kernel(GRID, threads=128) as bx:
            t = T.alloc_fragment((BN,), "float32")
            T.copy(A[bx * BN], t)
            for i in T.Parallel(BN):
                if t[i] < 0:
                    continue
                t[i] = t[i] * 2
            T.copy(t, B[bx * BN])

    return pcont


@pytest.mark.parametrize("target", TARGETS)
def test_continue_in_a_parallel_loop(target):
    a = np.random.default_rng(5).standard_normal(N).astype(np.float32)
    out = _compile(parallel_continue_kernel(), target, out_idx=[1])(a)
    np.testing.assert_array_equal(out, np.where(a < 0, a, 2 * a))


def test_continue_outside_loops_and_in_unrolled_loops_name_the_line():
    with pytest.raises(tilewise.CompileError, match="continue in a loop over a Python iterable") as info:

        @T.prim_func
        def bad(A: T.Tensor((4,), "int32")):
            with T.Kernel(1):
                for j in [0, 1]:
                    if A[j] > 0:
                        continue
                    A[j] = 1

    assert "test_control.py" in str(info.value)


# ---------------------------------------------------------------------------- negative indices


@functools.cache
def negative_index_kernel():
    n = T.symbolic("n")

    @T.prim_func
    def neg(A: T.Tensor((n, 8), "float32"), B: T.Tensor((n, 8), "float32")):
        with T.Kernel(T.ceildiv(n, 4), threads=128) as bx:
            s = T.alloc_shared((4, 8), "float32")
            last = T.alloc_shared((8,), "float32")
            T.copy(A[bx * 4, 0], s)
            T.copy(A[-1, :], last)  # the last row of the tensor (n - 1)
            for i, j in T.Parallel(4, 8):
                B[bx * 4 + i, j] = s[i, j] + last[j] * 0 + s[-1, -1] * 0 + last[-1]
            if bx == 0:  # every block writing it would race (the emulator reports that)
                B[0, -8] = s[-4, -8] * 0 + A[-1, 0]  # B[0, 0]

    return neg


@pytest.mark.parametrize("target", TARGETS)
def test_negative_indices_count_from_the_end(target):
    a = np.random.default_rng(6).standard_normal((10, 8)).astype(np.float32)
    b = np.zeros_like(a)
    _compile(negative_index_kernel(), target)(a, b)
    exp = a + a[-1, -1]
    exp[0, 0] = a[-1, 0]
    np.testing.assert_allclose(b, exp, rtol=1e-6)


@functools.cache
def provably_negative_kernel():
    @T.prim_func
    def tail(A: T.Tensor((12,), "int32"), B: T.Tensor((8,), "int32")):
        with T.Kernel(1, threads=32):
            s = T.alloc_shared((8,), "int32")
            for i in T.Parallel(8):
                s[i - 8] = A[i - 8] * 10  # s[i], A[i + 4]: both provably negative (A[i - 4] would not be)
            for i in T.serial(8):
                B[i] = s[i] + s[i - 8 - 0 * i]

    return tail


@pytest.mark.parametrize("target", TARGETS)
def test_provably_negative_indices_count_from_the_end(target):
    a = np.arange(12, dtype=np.int32)
    out = _compile(provably_negative_kernel(), target, out_idx=[1])(a)
    np.testing.assert_array_equal(out, 2 * 10 * a[4:12])


# ---------------------------------------------------------------------------- TVM script frames


@functools.cache
def frames_kernel():
    @T.prim_func
    def frames(A: T.Tensor((N,), "int32"), B: T.Tensor((N,), "int32")):
        with T.Kernel(GRID, threads=128) as bx:
            for i in T.Parallel(BN):
                with T.attr(0, "pragma_unroll_explicit", 1):
                    with T.If(A[bx * BN + i] > 3):
                        with T.Then():
                            B[bx * BN + i] = 1
                        with T.Else():
                            B[bx * BN + i] = 2
                with T.If(A[bx * BN + i] == 0), T.Then():
                    B[bx * BN + i] = 7
                with T.If(True):
                    with T.Then():
                        B[bx * BN + i] += 10

    return frames


@pytest.mark.parametrize("target", TARGETS)
def test_if_then_else_frames(target):
    a = np.random.default_rng(7).integers(0, 7, N).astype(np.int32)
    out = _compile(frames_kernel(), target, out_idx=[1])(a)
    np.testing.assert_array_equal(out, np.where(a == 0, 7, np.where(a > 3, 1, 2)) + 10)


def test_unknown_attr_warns_once_and_frames_check_their_shape():
    def build(key):
        @T.prim_func
        def k(A: T.Tensor((4,), "int32")):
            with T.Kernel(1):
                with T.attr(0, key, 1):
                    A[0] = 1

        return k

    with pytest.warns(UserWarning, match="'my_custom_attr'.* is ignored"):
        build("my_custom_attr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build("my_custom_attr")  # once
        build("pragma_auto_unroll_max_step")  # a known hint: silent
    with pytest.raises(tilewise.CompileError, match=r"`with T.If\(cond\):` holds `with T.Then\(\):`") as info:

        @T.prim_func
        def bad(A: T.Tensor((4,), "int32")):
            with T.Kernel(1):
                with T.If(A[0] > 0):
                    A[1] = 1

    assert "test_control.py" in str(info.value)
    with pytest.raises(tilewise.CompileError, match="T.Then can only be used inside"):

        @T.prim_func
        def bad2(A: T.Tensor((4,), "int32")):
            with T.Kernel(1):
                with T.Then():
                    A[1] = 1


# ---------------------------------------------------------------------------- device_assert


@functools.cache
def assert_kernel():
    @T.prim_func
    def checked(A: T.Tensor((N,), "float32"), B: T.Tensor((N,), "float32")):
        with T.Kernel(GRID, threads=128) as bx:
            T.device_assert(bx < GRID, "block index in range")
            for i in T.Parallel(BN):
                if bx * BN + i < N:
                    T.device_assert(T.isfinite(A[bx * BN + i]), "A must be finite")
                    B[bx * BN + i] = A[bx * BN + i] + 1

    return checked


@pytest.mark.parametrize("target", TARGETS)
def test_device_assert_passing(target):
    a = np.arange(N, dtype=np.float32)
    np.testing.assert_array_equal(_compile(assert_kernel(), target, out_idx=[1])(a), a + 1)


def test_device_assert_in_the_emulator_names_the_line_and_thread(emu):
    a = np.arange(N, dtype=np.float32)
    a[37] = np.nan  # block 1, element 5
    with pytest.raises(DeviceAssertError, match=r"test_control.py:\d+: T.device_assert failed: A must be finite, "
                                                r"in thread \(\d+, 0, 0\) of block \(1, 0, 0\)"):
        emu(assert_kernel(), out_idx=[1])(a)


def test_device_assert_on_the_cpu_aborts_with_the_message(tmp_path):
    script = tmp_path / "assert_cpu.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        import tilewise
        import tilewise.language as T

        @T.prim_func
        def checked(A: T.Tensor((8,), "float32")):
            with T.Kernel(2):
                for i in T.Parallel(4):
                    T.device_assert(A[i] >= 0, "A must be non-negative")

        k = tilewise.compile(checked, target="cpu")
        k(np.ones(8, np.float32))
        print("passed", flush=True)
        a = np.ones(8, np.float32)
        a[2] = -1
        k(a)
        print("not reached", flush=True)
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "passed" in r.stdout and "not reached" not in r.stdout
    assert "assert_cpu.py:10: T.device_assert failed: A must be non-negative" in r.stderr


def test_kernels_compile_with_nvrtc(nvrtc_check):
    for func in (loops_kernel(), frames_kernel(), assert_kernel(), negative_index_kernel(), extents_kernel(),
                 parallel_continue_kernel(), provably_negative_kernel()):
        nvrtc_check(func, archs=("sm_80",), allow_stack=func is assert_kernel())
