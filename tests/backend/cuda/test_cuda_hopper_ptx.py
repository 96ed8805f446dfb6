"""Hand-built Hopper thread IR rendered, compiled by NVRTC for sm_90a and executed by the PTX
interpreter: wgmma GEMMs over TMA-staged operands in every canonical layout against numpy
(ragged shapes, K loops of 0 and of less than a stage), TMA boxes of rank 1 to 5 with every
swizzle at in- and out-of-range coordinates, and seeded bugs, each reported by name."""
from __future__ import annotations

import functools

import ml_dtypes
import numpy as np
import pytest
from hopper_kernels import (
    gemm_reference,
    run_ptx,
    swizzled_box,
    tma_roundtrip,
    wgmma_gemm,
    with_attrs,
    without,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tilewise.ir import dtype as dt
from tilewise.ptx import AsyncAccessError, AsyncCopyError, DeadlockError, RaceError


def operand(rng, a_t: str, shape) -> np.ndarray:
    """Small integers, exact in every input type (a wrong element position changes the sum)."""
    npdt = dt.as_dtype("float32" if a_t == "tfloat32" else a_t).numpy
    lo, hi = {"uint8": (0, 16), "int8": (-8, 8)}.get(a_t, (-4, 5))
    return rng.integers(lo, hi, size=shape).astype(npdt)


def gemm_case(rng, a_t, c_t, n_tile, M, N, K, **kw):
    func = wgmma_gemm(a_t, c_t, n_tile, **kw)
    A = operand(rng, a_t, (K, M) if kw.get("trans_a") else (M, K))
    B = operand(rng, a_t, (K, N) if kw.get("trans_b") else (N, K))
    C = np.full((M, N), -1, dtype=dt.as_dtype(c_t).numpy)
    run_ptx(func, [A, B, C], {"M": M, "N": N, "K": K})
    return C, gemm_reference(A, B, kw.get("trans_a", False), kw.get("trans_b", False), c_t)


GEMMS = [
    # (A type, C type, N tile, options, M, N, K): ragged M / N, K not a multiple of the stage
    ("float16", "float32", 64, {}, 100, 70, 200),
    ("float16", "float32", 128, {"trans_b": True}, 100, 136, 200),
    ("float16", "float32", 64, {"trans_a": True, "trans_b": True}, 104, 72, 136),
    ("float16", "float32", 64, {"trans_a": True, "trans_b": True, "swizzle": 0}, 104, 72, 40),
    ("float16", "float32", 64, {"swizzle": 0}, 70, 64, 72),
    ("float16", "float32", 64, {"swizzle": 64}, 64, 64, 96),
    ("float16", "float32", 24, {"swizzle": 32}, 64, 40, 48),
    ("float16", "float32", 64, {"a_regs": True}, 100, 70, 200),
    ("float16", "float16", 64, {}, 64, 64, 128),
    ("bfloat16", "float32", 64, {"a_regs": True, "trans_b": True}, 64, 64, 128),
    ("tfloat32", "float32", 32, {}, 64, 40, 72),
    ("tfloat32", "float32", 32, {"a_regs": True}, 64, 32, 64),
    ("float8_e4m3", "float32", 64, {}, 64, 64, 160),
    ("float8_e5m2", "float16", 32, {"a_regs": True}, 64, 32, 128),
    ("int8", "int32", 64, {}, 64, 64, 144),
    ("uint8", "int32", 256, {"a_regs": True}, 64, 200, 128),
    ("float16", "float32", 8, {}, 64, 8, 16),
]


@pytest.mark.parametrize("case", GEMMS, ids=lambda c: f"{c[0]}-{c[1]}-n{c[2]}-" + "-".join(c[3]) + f"-{c[4]}x{c[5]}x{c[6]}")
def test_wgmma_gemm(case):
    a_t, c_t, n_tile, kw, M, N, K = case
    got, ref = gemm_case(np.random.default_rng(1), a_t, c_t, n_tile, M, N, K, **kw)
    np.testing.assert_array_equal(got.astype(np.float64), ref)


def test_k_loops_shorter_than_a_stage_and_empty():
    rng = np.random.default_rng(2)
    got, ref = gemm_case(rng, "float16", "float32", 64, 64, 64, 24)  # one stage, mostly out of bounds
    np.testing.assert_array_equal(got, ref)
    got, _ = gemm_case(rng, "float16", "float32", 64, 64, 64, 0)  # no stage: the accumulator's zeros
    np.testing.assert_array_equal(got, 0)


def test_scale_d_drops_the_old_accumulator():
    rng = np.random.default_rng(3)
    func = wgmma_gemm(acc_init=7.0)  # scale-d is 0 on the first wgmma: the 7s must not survive
    A, B = operand(rng, "float16", (64, 64)), operand(rng, "float16", (64, 64))
    C = np.zeros((64, 64), np.float32)
    run_ptx(func, [A, B, C], {"M": 64, "N": 64, "K": 64})
    np.testing.assert_array_equal(C, gemm_reference(A, B, False, False, "float32"))
    run_ptx(func, [A, B, C], {"M": 64, "N": 64, "K": 0})
    np.testing.assert_array_equal(C, 7.0)


def test_rounding_of_random_inputs():
    rng = np.random.default_rng(4)
    M = N = 64
    K = 192
    A = rng.standard_normal((M, K)).astype(np.float16)
    B = rng.standard_normal((N, K)).astype(ml_dtypes.bfloat16).astype(np.float16)
    C = np.zeros((M, N), np.float32)
    run_ptx(wgmma_gemm(tma_store=True), [A, B, C], {"M": M, "N": N, "K": K})
    # each wgmma rounds once to float32 (12 of them): within a few float32 ulps of the exact sum
    np.testing.assert_allclose(C, A.astype(np.float64) @ B.astype(np.float64).T, rtol=2e-6, atol=1e-5)


def test_tma_store_epilogue_clips_ragged_tiles():
    rng = np.random.default_rng(5)
    func = wgmma_gemm(tma_store=True)
    A, B = operand(rng, "float16", (100, 64)), operand(rng, "float16", (72, 64))
    C = np.full((100, 72), -1, np.float32)
    run_ptx(func, [A, B, C], {"M": 100, "N": 72, "K": 64})
    np.testing.assert_array_equal(C, gemm_reference(A, B, False, False, "float32"))


# ---------------------------------------------------------------------------- TMA boxes

BOXES = [  # rank, dtype, box (outermost first), swizzle
    (1, "float32", (64,), 0),
    (2, "float16", (16, 64), 128),
    (2, "float16", (8, 32), 64),
    (3, "int8", (2, 4, 32), 32),
    (4, "bfloat16", (2, 2, 4, 32), 64),
    (5, "float32", (2, 2, 2, 2, 8), 32),
]


@functools.cache
def _roundtrip(case):
    return tma_roundtrip(*case)


def roundtrip(case, shape, coords):
    rank, dtype, box, swizzle = case
    npdt = dt.as_dtype(dtype).numpy
    X = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape).astype(npdt)
    Y = np.full(shape, 99, dtype=npdt)
    R = np.zeros(int(np.prod(box)) * X.itemsize, np.uint8)
    run_ptx(_roundtrip(case), [X, Y, R, *coords], {f"d{k}": n for k, n in enumerate(shape)})
    np.testing.assert_array_equal(R, swizzled_box(X, coords, box, swizzle))
    want = np.full(shape, 99, dtype=npdt)
    src = tuple(slice(max(c, 0), max(min(c + b, n), 0)) for c, b, n in zip(coords, box, shape))
    want[src] = X[src]  # the store writes the box's elements inside Y only
    np.testing.assert_array_equal(Y, want)


@pytest.mark.parametrize("case", BOXES, ids=lambda c: f"{c[0]}d-{c[1]}-sw{c[3]}")
def test_tma_box_round_trip(case):
    rank, dtype, box, swizzle = case
    inner = 16 // dt.as_dtype(dtype).bytes
    shape = tuple(b + 3 for b in box[:-1]) + (box[-1] + inner,)
    roundtrip(case, shape, [1] * (rank - 1) + [inner])  # inside
    roundtrip(case, shape, [-1] * (rank - 1) + [-inner])  # hanging off the start
    roundtrip(case, shape, [n - b // 2 for n, b in zip(shape, box)])  # hanging off the end


@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_tma_box_coordinates_property(data):
    case = BOXES[1]
    rows = data.draw(st.integers(1, 40))
    cols = data.draw(st.sampled_from([8, 64, 72, 136]))
    c0 = data.draw(st.integers(-20, rows + 4))
    c1 = data.draw(st.integers(-80, cols + 8))
    roundtrip(case, (rows, cols), [c0, c1])


# ---------------------------------------------------------------------------- seeded bugs


def _run(func, M=64, N=64, K=128, a_t="float16"):
    rng = np.random.default_rng(6)
    A, B = operand(rng, a_t, (M, K)), operand(rng, a_t, (N, K))
    C = np.zeros((M, N), np.float32)
    run_ptx(func, [A, B, C], {"M": M, "N": N, "K": K})
    return C, gemm_reference(A, B, False, False, "float32")


def test_bug_no_barrier_wait():
    with pytest.raises(AsyncCopyError, match=r"before the TMA load at PTX line \d+ writing it has landed"):
        _run(without(wgmma_gemm(), "mbarrier_wait"))


def test_bug_missing_arrival_deadlocks():
    with pytest.raises(DeadlockError, match=r"wait at PTX line \d+ for the phase of parity 0 of the mbarrier at "
                                            r"shared byte 16384 of block 0 .*phase 0 .*1 of 1 arrivals"):
        _run(without(wgmma_gemm(), "mbarrier_arrive_expect_tx"))


def test_bug_accumulator_read_before_wait():
    with pytest.raises(AsyncAccessError, match=r"touches %f\d+.*registers of the wgmma at PTX line \d+ that no "
                                               r"wgmma.wait_group has completed"):
        _run(without(wgmma_gemm(), "wgmma_wait"), K=64)  # one stage: the epilogue reads the accumulator
    with pytest.raises(AsyncAccessError, match=r"TMA load's write of shared byte 0 .* while the wgmma at PTX line "
                                               r"\d+ that reads it is in flight"):
        _run(without(wgmma_gemm(), "wgmma_wait"), K=128)  # two: the next stage overwrites what it reads


def test_bug_tma_store_without_proxy_fence():
    with pytest.raises(AsyncAccessError, match="with no fence.proxy.async by that thread"):
        _run(without(wgmma_gemm(tma_store=True), "fence_proxy_async"))


def test_bug_tma_store_without_barrier():
    with pytest.raises(RaceError, match="shared-memory race"):
        _run(without(wgmma_gemm(tma_store=True), "syncthreads"))


@pytest.mark.parametrize("attrs", [{"sbo": 512}, {"swizzle": 64}, {"swizzle": 0}])
def test_bug_wrong_descriptor_gives_wrong_numbers(attrs):
    got, ref = _run(with_attrs(wgmma_gemm(), "wgmma_desc", **attrs))
    assert not np.array_equal(got, ref)


def test_bug_wrong_tma_swizzle_gives_wrong_numbers():
    f = wgmma_gemm()
    f.body.attrs["tensor_maps"][1].swizzle = 0  # A lands unswizzled; wgmma reads a 128-byte swizzle
    got, ref = _run(f)
    assert not np.array_equal(got, ref)
