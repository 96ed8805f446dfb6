"""Vector values (issue #14; ir/vector.py, language/vector_values.py): T.Ramp / T.Broadcast as
values and as buffer indices, vector dtypes (T.float16x2(a, b), T.alloc_var(T.float32x4)),
T.extract_lane, lane-wise arithmetic / comparisons / casts, and the previous values of
T.atomic_addx2 / x4(..., return_prev=True). TileLang's own programs (0.1.15's
test_tilelang_language_extract_lane.py, issue_2480 / issue_2554, test_cuda_f32x2_intrinsics.py,
amd/test_tilelang_hip_atomic_return_prev.py) and tilewise's, against numpy on the CPU, in the
emulator (sm_80) and in the PTX interpreter (the NVRTC build of the same kernel); the AMD program on
the "hip" target too."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError
from tilewise.ir.simplify import simplify

TARGETS = ["cpu", "emulator", "ptx"]


def run(func, target, *args, out_idx=None):
    """Compile for `target` and call; returns the outputs (out_idx) or None."""
    if target == "cpu":
        k = tilewise.compile(func, out_idx=out_idx, target="cpu")
    else:
        k = tilewise.compile(func, out_idx=out_idx, target="cuda -arch=sm_80", execution_backend="emulator")
        if target == "ptx":
            k = k.with_execution_backend("ptx")
    return k(*args)


# ------------------------------------------------------------------ TileLang's programs


def extract_lane_kernel(dtype, vector_dtype):
    """0.1.15 test_tilelang_language_extract_lane.py::_make_extract_lane_kernel."""

    @T.prim_func
    def kernel(A: T.Tensor((2,), dtype), B: T.Tensor((2,), dtype)):
        with T.Kernel(1, threads=1):
            packed = T.alloc_var(vector_dtype)
            packed = vector_dtype(A[0], A[1])
            B[0] = T.extract_lane(packed, 0)
            B[1] = T.extract_lane(packed, 1)

    return kernel


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype,vector_dtype", [("bfloat16", "bfloat16x2"), ("float16", "float16x2")])
def test_extract_lane_program(target, dtype, vector_dtype):
    import torch

    a = torch.tensor([1.25, -2.5], dtype=getattr(torch, dtype))
    out = run(extract_lane_kernel(getattr(T, dtype), getattr(T, vector_dtype)), target, a, out_idx=-1)
    assert torch.equal(out, a)


def broadcast_32_kernel(dtype, runtime: bool):
    """issue_2480: a 32-lane broadcast of a run-time or constant int8 into a local buffer."""
    lanes = 32
    if runtime:
        @T.prim_func
        def main(src: T.Tensor((1,), dtype), out: T.Tensor((lanes,), dtype)):
            with T.Kernel(1, threads=1) as _:
                packed = T.alloc_local((lanes,), dtype)
                packed[0:lanes] = T.Broadcast(src[0], lanes)
                for i in T.serial(lanes):
                    out[i] = packed[i]
    else:
        @T.prim_func
        def main(out: T.Tensor((lanes,), dtype)):
            with T.Kernel(1, threads=1) as _:
                packed = T.alloc_local((lanes,), dtype)
                packed[0:lanes] = T.Broadcast(T.cast(-37 if dtype == "int8" else 213, dtype), lanes)
                for i in T.serial(lanes):
                    out[i] = packed[i]
    return main


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype,value", [("int8", -37), ("uint8", 213)])
def test_broadcast_to_32_lanes(target, dtype, value):
    out = np.zeros(32, dtype)
    run(broadcast_32_kernel(dtype, True), target, np.array([value], dtype), out)
    np.testing.assert_array_equal(out, np.full(32, value, dtype))
    out = np.zeros(32, dtype)
    run(broadcast_32_kernel(dtype, False), target, out)
    np.testing.assert_array_equal(out, np.full(32, value, dtype))


def ramp_negative_load():
    """issue_2554: the lanes of a Ramp index of unknown sign wrap from the end at run time."""

    @T.prim_func
    def main(A: T.Tensor((1024,), T.float32), B: T.Tensor((4, 4), T.float32)):
        with T.Kernel(1, threads=1) as _:
            for t in T.serial(4):
                B[t, T.Ramp(0, 1, 4)] = A[T.Ramp(t - 2, 1, 4)]

    return main


def ramp_negative_store():
    @T.prim_func
    def main(B: T.Tensor((4, 4), T.float32), A: T.Tensor((1024,), T.float32)):
        with T.Kernel(1, threads=1) as _:
            for i in T.serial(1024):
                A[i] = T.float32(-1)
            for t in T.serial(4):
                A[T.Ramp(t - 2, 1, 4)] = B[t, T.Ramp(0, 1, 4)]

    return main


@pytest.mark.parametrize("target", TARGETS)
def test_ramp_index_with_negative_lanes(target):
    a = np.arange(1024, dtype=np.float32)
    b = run(ramp_negative_load(), target, a, out_idx=[1])
    ref = np.array([[1022, 1023, 0, 1], [1023, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 4]], np.float32)
    np.testing.assert_array_equal(b, ref)

    b = np.arange(16, dtype=np.float32).reshape(4, 4)
    a = run(ramp_negative_store(), target, b, out_idx=[1])
    ref = np.full(1024, -1, np.float32)
    ref[0], ref[1], ref[2], ref[3], ref[4] = b[2, 0], b[3, 0], b[3, 1], b[3, 2], b[3, 3]
    ref[1022], ref[1023] = b[0, 0], b[1, 0]
    np.testing.assert_array_equal(a, ref)


M = 128


def packed_kernel(op, dtype, arity: int):
    """test_cuda_f32x2_intrinsics.py's builders: D[idx] = op(A[idx], ...) with idx = T.Ramp(tid * 2, 1, 2)."""
    if arity == 1:
        @T.prim_func
        def main(A: T.Tensor((M * 2,), dtype), C: T.Tensor((M * 2,), dtype)):
            with T.Kernel(1, 1, threads=M) as (bx, by):
                tid = T.get_thread_binding()
                idx = T.Ramp(tid * 2, 1, 2)
                C[idx] = op(A[idx])
    elif arity == 2:
        @T.prim_func
        def main(A: T.Tensor((M * 2,), dtype), B: T.Tensor((M * 2,), dtype), C: T.Tensor((M * 2,), dtype)):
            with T.Kernel(1, 1, threads=M) as (bx, by):
                tid = T.get_thread_binding()
                idx = T.Ramp(tid * 2, 1, 2)
                C[idx] = op(A[idx], B[idx])
    else:
        @T.prim_func
        def main(A: T.Tensor((M * 2,), dtype), B: T.Tensor((M * 2,), dtype), C: T.Tensor((M * 2,), dtype),
                 D: T.Tensor((M * 2,), dtype)):
            with T.Kernel(1, 1, threads=M) as (bx, by):
                tid = T.get_thread_binding()
                idx = T.Ramp(tid * 2, 1, 2)
                D[idx] = op(A[idx], B[idx], C[idx])
    return main


@pytest.mark.parametrize("target", ["emulator", "ptx"])
@pytest.mark.parametrize("name,arity,ref", [
    ("add2", 2, lambda a, b: a + b), ("mul2", 2, lambda a, b: a * b), ("max2", 2, np.maximum),
    ("fma2", 3, lambda a, b, c: a * b + c), ("abs2", 1, np.abs),
])  # fmt: skip
def test_packed_ops_on_ramp_loads(target, name, arity, ref, rng):
    ins = [rng.standard_normal(M * 2).astype(np.float32) for _ in range(arity)]
    out = np.zeros(M * 2, np.float32)
    run(packed_kernel(getattr(T, name), "float32", arity), target, *ins, out)
    np.testing.assert_allclose(out, ref(*ins).astype(np.float32), rtol=1e-6, atol=1e-6)


def atomic_prev_kernel(lanes: int):
    """amd/test_tilelang_hip_atomic_return_prev.py's program."""
    atomic_add = T.atomic_addx2 if lanes == 2 else T.atomic_addx4

    @T.prim_func
    def main(Dst: T.Tensor((lanes,), T.float32), Val: T.Tensor((lanes,), T.float32),
             Prev: T.Tensor((lanes,), T.float32)):
        with T.Kernel(1, threads=1):
            Prev[0:lanes] = atomic_add(Dst[0], Val[0], return_prev=True)

    return main


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("lanes", [2, 4])
def test_vector_atomic_return_prev_program(target, lanes):
    dst = np.arange(1, lanes + 1, dtype=np.float32)
    val = np.arange(10, 10 + lanes, dtype=np.float32)
    prev = np.zeros(lanes, np.float32)
    run(atomic_prev_kernel(lanes), target, dst, val, prev)
    np.testing.assert_array_equal(prev, np.arange(1, lanes + 1, dtype=np.float32))
    np.testing.assert_array_equal(dst, np.arange(1, lanes + 1) + np.arange(10, 10 + lanes))


def atomic_prev_ramp_kernel(dtype):
    """test_tilelang_language_atomic.py::atomic_addx2_return_prev_ramp_program (and the let-bound
    slice form): the destination and the value as vector loads."""

    @T.prim_func
    def main(Dst: T.Tensor((2,), dtype), Val: T.Tensor((2,), dtype), Prev: T.Tensor((2,), dtype)):
        with T.Kernel(1, threads=1):
            Prev[0:2] = T.atomic_addx2(Dst[T.Ramp(0, 1, 2)], Val[T.Ramp(0, 1, 2)], return_prev=True)
            dst = Dst[0:2]
            val = Val[0:2]
            T.atomic_addx2(dst, val)

    return main


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_vector_atomic_with_ramp_operands(target, dtype):
    import torch

    dst = torch.tensor([1.0, 2.0], dtype=getattr(torch, dtype))
    val = torch.tensor([10.0, 20.0], dtype=getattr(torch, dtype))
    prev = torch.zeros(2, dtype=getattr(torch, dtype))
    run(atomic_prev_ramp_kernel(dtype), target, dst, val, prev)
    assert prev.tolist() == [1.0, 2.0] and dst.tolist() == [21.0, 42.0]


# ------------------------------------------------------------------ tilewise's programs


@pytest.mark.parametrize("target", ["emulator", "ptx"])
def test_unused_previous_values_still_update(target):
    """The previous values as an expression statement, or one lane of them taken: every lane's
    update runs once all the same (per-thread code: a lane kept in a register at block level is
    refused on GPU targets, as for the scalar form)."""

    @T.prim_func
    def main(Dst: T.Tensor((4,), "float32"), Prev: T.Tensor((1,), "float32")):
        with T.Kernel(1, threads=32):
            if T.get_thread_binding() == 0:
                T.atomic_addx4(Dst[0], T.float32x4(1, 2, 3, 4), return_prev=True)
                Prev[0] = T.extract_lane(T.atomic_addx2(Dst[2], T.Broadcast(T.float32(10), 2), return_prev=True), 1)

    dst = np.zeros(4, np.float32)
    prev = np.zeros(1, np.float32)
    run(main, target, dst, prev)
    np.testing.assert_array_equal(dst, [1, 2, 13, 14])
    assert prev[0] == 4


def contended_tickets_kernel(lanes: int, dtype: str, blocks: int = 4, threads: int = 64):
    """Every thread adds (1, 2, ...) to the same `lanes` counters and keeps the previous values:
    per lane they are the multiples of its increment in some order (each lane's update is atomic)."""
    atomic_add = T.atomic_addx2 if lanes == 2 else T.atomic_addx4
    n = blocks * threads

    @T.prim_func
    def main(Counter: T.Tensor((lanes,), dtype), Prev: T.Tensor((n, lanes), dtype)):
        with T.Kernel(blocks, threads=threads) as bx:
            for t in T.Parallel(threads):
                inc = T.Ramp(T.cast(1, dtype), T.cast(1, dtype), lanes)
                old = atomic_add(Counter[0], inc, return_prev=True)
                Prev[bx * threads + t, T.Ramp(0, 1, lanes)] = old

    return main


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("lanes,dtype", [(2, "int32"), (4, "float32"), (2, "float16")])
def test_vector_atomic_return_prev_under_contention(target, lanes, dtype):
    n = 4 * 64
    counter = np.zeros(lanes, dtype)
    prev = np.zeros((n, lanes), dtype)
    run(contended_tickets_kernel(lanes, dtype), target, counter, prev)
    inc = np.arange(1, lanes + 1)
    np.testing.assert_array_equal(counter, n * inc)
    for k in range(lanes):
        np.testing.assert_array_equal(np.sort(prev[:, k]), np.arange(n) * inc[k])


N = 64


def arithmetic_kernel():
    """Lane-wise operators with scalar broadcast, comparisons into T.if_then_else, T.max, a cast
    between vector types of 4 lanes, a vector variable updated in a loop and an annotated one."""

    @T.prim_func
    def main(A: T.Tensor((N,), "float32"), B: T.Tensor((N,), "float32"), C: T.Tensor((N,), "float16"),
             D: T.Tensor((N,), "float32"), E: T.Tensor((N,), "int32")):
        with T.Kernel(N // 4, threads=1) as bx:
            idx = T.Ramp(bx * 4, 1, 4)
            a = A[idx]
            b = B[idx]
            s = a * 2.0 + b - 1.0
            C[idx] = T.cast(T.if_then_else(s > b, s, T.max(a, b)), "float16x4")
            acc = T.alloc_var(T.float32x4)
            for r in T.serial(3):
                acc += a * T.cast(r + 1, "float32")
            w: T.float32x4 = T.Broadcast(bx, 4)
            D[idx] = acc + w
            E[idx] = T.cast(a < b, "int32x4") + T.Ramp(0, 10, 4)

    return main


@pytest.mark.parametrize("target", TARGETS)
def test_lanewise_arithmetic(target, rng):
    a = rng.standard_normal(N).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    c = np.zeros(N, np.float16)
    d = np.zeros(N, np.float32)
    e = np.zeros(N, np.int32)
    run(arithmetic_kernel(), target, a, b, c, d, e)
    s = (a * np.float32(2) + b) - np.float32(1)
    np.testing.assert_array_equal(c, np.where(s > b, s, np.maximum(a, b)).astype(np.float16))
    np.testing.assert_allclose(d, a * 6 + np.repeat(np.arange(N // 4), 4), rtol=1e-6)
    np.testing.assert_array_equal(e, (a < b).astype(np.int32) + np.tile(np.arange(0, 40, 10), N // 4))


def parallel_ramp_kernel():
    """Ramp loads and stores inside T.Parallel, with a strided ramp and a vector read of the
    buffer being written (every lane is read before the first store)."""

    @T.prim_func
    def main(A: T.Tensor((N,), "float32"), B: T.Tensor((N,), "float32")):
        with T.Kernel(1, threads=16) as _:
            for i in T.Parallel(N // 4):
                B[T.Ramp(i, N // 4, 4)] = A[T.Ramp(i * 4, 1, 4)] + T.float32(1)
        with T.Kernel(1, threads=1) as _:  # a second launch: ordered after the first
            for i in T.serial(N // 2):
                if i % 2 == 0:
                    B[T.Ramp(i, 1, 2)] = B[T.Ramp(i + 1, -1, 2)]

    return main


@pytest.mark.parametrize("target", ["cpu", "emulator"])
def test_ramp_in_parallel_and_swap(target, rng):
    a = rng.standard_normal(N).astype(np.float32)
    b = np.zeros(N, np.float32)
    run(parallel_ramp_kernel(), target, a, b)
    ref = (a.reshape(N // 4, 4) + 1).T.reshape(-1).copy()
    for i in range(0, N // 2, 2):
        ref[i], ref[i + 1] = ref[i + 1], ref[i]
    np.testing.assert_array_equal(b, ref)


def variable_kernel():
    """A vector variable with an initialiser; a name bound to its value keeps that value after
    the variable changes (as a scalar's does); swapping its lanes reads both before writing."""

    @T.prim_func
    def main(A: T.Tensor((4,), "int32"), B: T.Tensor((4,), "int32"), C: T.Tensor((4,), "int32")):
        with T.Kernel(1, threads=1):
            v = T.alloc_var("int32x4", T.Ramp(10, 10, 4))
            before = v
            v = v + A[T.Ramp(0, 1, 4)]
            v = T.int32x4(T.extract_lane(v, 3), T.extract_lane(v, 2), T.extract_lane(v, 1), T.extract_lane(v, 0))
            B[T.Ramp(0, 1, 4)] = before
            C[0:4] = v

    return main


@pytest.mark.parametrize("target", ["cpu", "emulator"])
def test_vector_variable(target):
    a = np.array([1, 2, 3, 4], np.int32)
    b = np.zeros(4, np.int32)
    c = np.zeros(4, np.int32)
    run(variable_kernel(), target, a, b, c)
    np.testing.assert_array_equal(b, [10, 20, 30, 40])
    np.testing.assert_array_equal(c, [44, 33, 22, 11])


def test_vector_buffers_are_refused():
    with pytest.raises(CompileError, match="not a buffer element type"):
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1, threads=1):
                buf = T.alloc_local((2,), "float32x4")
                A[0] = buf[0]


def test_compiles_for_cuda(nvrtc_check):
    nvrtc_check(contended_tickets_kernel(4, "float32"), expect=(("ATOM", "ATOMG"),), archs=("sm_80", "sm_90a"))
    nvrtc_check(arithmetic_kernel(), archs=("sm_80",))


def test_node_classes():
    assert isinstance(T.Ramp(0, 1, 4), T.Ramp) and not isinstance(T.Ramp(0, 1, 4), T.Broadcast)
    assert isinstance(T.Broadcast(1.5, 2), T.Broadcast) and T.Broadcast(1.5, 2).lanes == 2
    assert not isinstance(T.int32(1), T.Ramp)
    assert simplify(T.extract_lane(T.Ramp(3, 2, 4), 2)).value == 7
    assert T.float16x2(1, 2).type_name == "float16x2"
    assert isinstance(T.Broadcast(T.float16(1), 8), T.PrimExpr)


# ------------------------------------------------------------------ wrong input


def test_extract_lane_errors():
    v = T.Ramp(0, 1, 4)
    with pytest.raises(IndexError, match="out of bounds"):
        T.extract_lane(v, 4)
    with pytest.raises(IndexError, match="out of bounds"):
        T.extract_lane(v, -1)
    with pytest.raises(CompileError, match="expects a vector expression"):
        T.extract_lane(T.int32(1), 0)
    with pytest.raises(TypeError, match="expects a PrimExpr"):
        T.extract_lane(1, 0)
    with pytest.raises(TypeError, match="compile-time integer"):
        T.extract_lane(v, T.int32())
    assert issubclass(type(_raised(lambda: T.extract_lane(v, 9))), CompileError)


def _raised(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - returned to the caller to inspect
        return e
    raise AssertionError("no error")


@pytest.mark.parametrize("body,match", [
    (lambda A: A[T.Ramp(0, 1, 4)] + A[T.Ramp(0, 1, 2)], r"lanes mismatch between float32x4 .* and float32x2"),
    (lambda A: T.if_then_else(A[T.Ramp(0, 1, 4)] > 0, A[T.Ramp(0, 1, 2)], 0.0), "lanes mismatch"),
    (lambda A: T.cast(A[T.Ramp(0, 1, 4)], "float16x2"), "lanes mismatch"),
    (lambda A: T.extract_lane(A[T.Ramp(0, 1, 4)], 5), "out of bounds"),
    (lambda A: A[T.Ramp(0.5, 1, 4)], "indices must be integers"),
    (lambda A: T.Broadcast(1, 1), "at least 2"),
    (lambda A: T.float32x4(1, 2), "takes 4 lane values"),
    (lambda A: T.atomic_addx2(A[0], T.float32x4(1, 2, 3, 4), return_prev=True), "has 4 lanes, not 2"),
    (lambda A: T.atomic_addx2(A[T.Ramp(0, 2, 2)], A[4:6], return_prev=True), "2 consecutive elements"),
])  # fmt: skip
def test_wrong_vectors_are_compile_errors(body, match):
    with pytest.raises(CompileError, match=match):
        @T.prim_func
        def k(A: T.Tensor((8,), "float32")):
            with T.Kernel(1, threads=1):
                x = body(A)  # noqa: F841


def test_vector_indices_of_different_lanes():
    with pytest.raises(CompileError, match="different lanes"):
        @T.prim_func
        def k(A: T.Tensor((8, 8), "float32")):
            with T.Kernel(1, threads=1):
                A[0, 0] = T.extract_lane(A[T.Ramp(0, 1, 4), T.Ramp(0, 1, 2)], 0)


@pytest.mark.parametrize("stmt,match", [
    ("store_mismatch", r"lanes mismatch \(2 vs 4\)"),
    ("scalar_store", "vector value .* is used where a scalar is expected"),
    ("var_mismatch", r"lanes mismatch \(2 vs 4\)"),
    ("condition", "cannot be used as a Python bool or a condition"),
])  # fmt: skip
def test_wrong_stores_name_the_line(stmt, match):
    with pytest.raises(CompileError, match=match) as info:
        @T.prim_func
        def k(A: T.Tensor((8,), "float32")):
            with T.Kernel(1, threads=1):
                if stmt == "store_mismatch":
                    A[T.Ramp(0, 1, 4)] = A[T.Ramp(0, 1, 2)]
                elif stmt == "scalar_store":
                    A[0] = A[T.Ramp(0, 1, 4)]
                elif stmt == "var_mismatch":
                    v = T.alloc_var("float32x4")
                    v = T.float32x2(1, 2)  # noqa: F841
                else:
                    if A[T.Ramp(0, 1, 4)] > 0:
                        A[0] = 1
    assert "test_vector_values.py" in str(info.value)


@pytest.mark.parametrize("lanes", [2, 4])
def test_vector_atomic_return_prev_on_hip(clang19, lanes):
    """TileLang's program is an AMD test: the "hip" target (clang-19 build, run by the emulator)."""
    dst = np.arange(1, lanes + 1, dtype=np.float32)
    val = np.full(lanes, 0.5, np.float32)
    prev = np.zeros(lanes, np.float32)
    tilewise.compile(atomic_prev_kernel(lanes), target="hip", execution_backend="emulator")(dst, val, prev)
    np.testing.assert_array_equal(prev, np.arange(1, lanes + 1, dtype=np.float32))
    np.testing.assert_array_equal(dst, np.arange(1, lanes + 1) + 0.5)


@pytest.mark.parametrize("target", ["cpu", "emulator"])
def test_vector_atomic_of_a_broadcast_load(target):
    """Found by the fuzzer: T.atomic_addx2(dst, T.Broadcast(X[i, j], 2)) adds X[i, j] to both
    elements. The broadcast's lanes all load one element; it was taken for a vector load of two
    consecutive elements and refused (T.Broadcast(T.cast(X[i, j], ...), 2) was accepted)."""

    @T.prim_func
    def kernel(X: T.Tensor((4, 3), "float32"), S: T.Tensor((6,), "float32")):
        with T.Kernel(1, threads=32):
            for i, j in T.Parallel(4, 3):
                T.atomic_addx2(S[j * 2], T.Broadcast(X[i, j], 2))

    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    s = np.ones(6, np.float32)
    run(kernel, target, x, s)
    assert s.tolist() == np.repeat(1 + x.sum(0), 2).tolist()
