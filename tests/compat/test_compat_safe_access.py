"""Element accesses to global tensors that the compiler cannot prove in range are guarded, as
TileLang's LegalizeSafeMemoryAccess does: such loads read 0 (or the T.annotate_safe_value value)
outside the tensor, such stores are dropped; accesses proven in range carry no guard."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise
import tilewise.language as T
from tilewise import CompileError

TILE = 16


def shifted_copy(shift: int, pad=None, configs=None, target="cpu"):
    """Out[r, c] = A[r - shift, c] over whole tiles, with symbolic sizes (nothing provable)."""
    m, n = T.symbolic("m"), T.symbolic("n")

    @T.prim_func
    def main(A: T.Tensor((m, n), "float32"), Out: T.Tensor((m, n), "float32")):
        with T.Kernel(T.ceildiv(n, TILE), T.ceildiv(m, TILE)) as (bx, by):
            if pad is not None:
                T.annotate_safe_value({A: pad})
            tile = T.alloc_shared((TILE, TILE), "float32")
            for i, j in T.Parallel(TILE, TILE):
                tile[i, j] = A[by * TILE + i - shift, bx * TILE + j]
            for i, j in T.Parallel(TILE, TILE):
                Out[by * TILE + i, bx * TILE + j] = tile[i, j]

    return tilewise.compile(main, out_idx=[1], target=target, pass_configs=configs)


@pytest.fixture(scope="module")
def shifted_kernel():
    return shifted_copy(3)


def reference(a: np.ndarray, shift: int, pad: float = 0.0) -> np.ndarray:
    out = np.full_like(a, pad)
    if shift < a.shape[0]:
        out[shift:] = a[: a.shape[0] - shift]
    return out


@settings(max_examples=8, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40))
def test_out_of_range_loads_read_zero_and_stores_are_dropped(shifted_kernel, rows, cols):
    # shapes that do not divide the tile: the last tiles reach past both edges of A and Out
    a = np.random.default_rng(rows * 41 + cols).standard_normal((rows, cols)).astype(np.float32)
    np.testing.assert_array_equal(shifted_kernel(a), reference(a, 3))


def test_annotated_safe_value_replaces_zero():
    k = shifted_copy(5, pad=-7.5)
    a = np.arange(18 * 21, dtype=np.float32).reshape(18, 21)
    np.testing.assert_array_equal(k(a), reference(a, 5, -7.5))


def test_proven_accesses_carry_no_guard():
    @T.prim_func
    def aligned(A: T.Tensor((64, 32), "float16"), B: T.Tensor((64, 32), "float16")):
        with T.Kernel(2, 4) as (bx, by):
            for i, j in T.Parallel(16, 16):
                B[by * 16 + i, bx * 16 + j] = A[by * 16 + i, bx * 16 + j] + 1

    src = tilewise.lower(aligned, target="cpu").kernel_source
    assert "?" not in src and ">= 0" not in src, src


def test_only_the_unproven_side_is_checked():
    @T.prim_func
    def lookback(A: T.Tensor((64,), "int32"), B: T.Tensor((64,), "int32")):
        with T.Kernel(4) as bx:
            for i in T.Parallel(16):
                B[bx * 16 + i] = A[bx * 16 + i - 1]

    k = tilewise.compile(lookback, out_idx=[1], target="cpu")
    a = np.arange(1, 65, dtype=np.int32)
    np.testing.assert_array_equal(k(a), np.concatenate([[0], a[:-1]]))
    src = k.get_kernel_source()
    # the lower side is tested (a guard, or the loop split at it: transform/split_guarded_loops.py);
    # the upper side is proven and costs nothing
    assert (">= 0" in src or "tw::max(" in src) and "< 64" not in src, src


def test_the_pass_config_turns_the_guards_off():
    guarded = tilewise.lower(shifted_copy(1).func, target="cpu").kernel_source
    plain = tilewise.lower(shifted_copy(1).func, target="cpu",
                           pass_configs={tilewise.PassConfigKey.TL_DISABLE_SAFE_MEMORY_ACCESS: True}).kernel_source
    assert ">= 0" in guarded and ">= 0" not in plain


def test_safe_value_needs_a_global_tensor_and_a_constant():
    with pytest.raises(CompileError, match="keys must be global tensors"):

        @T.prim_func
        def on_shared(A: T.Tensor((8,), "float32")):
            with T.Kernel(1):
                s = T.alloc_shared((8,), "float32")
                T.annotate_safe_value({s: 1.0})
                T.copy(A, s)

    with pytest.raises(CompileError, match="must be a constant"):

        @T.prim_func
        def not_constant(A: T.Tensor((8,), "float32"), B: T.Tensor((8,), "float32")):
            with T.Kernel(1):
                T.annotate_safe_value({A: B[0]})
                B[0] = A[0]


def test_the_emulator_guards_the_same_way():
    k = shifted_copy(2, target="cuda")
    if k.execution_backend != "emulator":
        pytest.skip("a GPU is present; the emulator path is what this checks")
    a = np.random.default_rng(1).standard_normal((20, 9)).astype(np.float32)
    np.testing.assert_array_equal(k(a), reference(a, 2))


def test_copy_reads_a_nonzero_safe_value_past_the_edge():
    """T.copy reads the safe value outside a tensor (as TileLang's copy does; more cases in
    tests/language/test_copy_safe_value.py), a region inside the tensor is copied as it is."""

    @T.prim_func
    def past(A: T.Tensor((5, 6), "float32"), B: T.Tensor((8, 8), "float32")):
        with T.Kernel(1, threads=32):
            T.annotate_safe_value({A: -99})
            T.copy(A[0:8, 0:8], B)

    a = np.arange(30, dtype=np.float32).reshape(5, 6)
    b = np.zeros((8, 8), np.float32)
    tilewise.compile(past, target="cpu")(a, b)
    want = np.full((8, 8), -99, np.float32)
    want[:5, :6] = a
    np.testing.assert_array_equal(b, want)

    @T.prim_func
    def inside(A: T.Tensor((8, 8), "float32"), B: T.Tensor((4, 8), "float32")):
        with T.Kernel(1, threads=32):
            T.annotate_safe_value({A: -99})
            T.copy(A[2:6, 0:8], B)

    a = np.arange(64, dtype=np.float32).reshape(8, 8)
    b = np.zeros((4, 8), np.float32)
    tilewise.compile(inside, target="cpu")(a, b)
    np.testing.assert_array_equal(b, a[2:6])
