"""Language spellings TileLang programs use: T.clamp's keyword bounds, T.any_of on a slice of a
global tensor, `T.Tensor(shape, dtype, buf.data)` views, hint-only calls, and float16 row sums
that stay close to the exact sum on long rows."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T


def test_clamp_keyword_and_open_bounds():
    @T.prim_func
    def main(A: T.Tensor((3, 16), "float32"), B: T.Tensor((3, 16), "float32")):
        with T.Kernel(1):
            for j in T.Parallel(16):
                B[0, j] = T.clamp(A[0, j], min_val=-0.5, max_val=0.25)
                B[1, j] = T.clamp(A[1, j], min_val=0.0)
                B[2, j] = T.clamp(A[2, j], -1.0, max_val=None)

    k = tilewise.compile(main, out_idx=[1], target="cpu")
    a = np.linspace(-2, 2, 48, dtype=np.float32).reshape(3, 16)
    b = k(a)
    np.testing.assert_array_equal(b[0], np.clip(a[0], -0.5, 0.25))
    np.testing.assert_array_equal(b[1], np.maximum(a[1], 0.0))
    np.testing.assert_array_equal(b[2], np.maximum(a[2], -1.0))


def test_any_of_and_all_of_on_a_global_slice():
    @T.prim_func
    def main(Mask: T.Tensor((5, 4), "bool"), Out: T.Tensor((5, 2), "int32")):
        with T.Kernel(5) as bx:
            Out[bx, 0] = T.if_then_else(T.any_of(Mask[bx, :]), 1, 0)
            Out[bx, 1] = T.if_then_else(T.all_of(Mask[bx, 1:3]), 1, 0)

    k = tilewise.compile(main, out_idx=[1], target="cpu")
    m = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [1, 0, 0, 0], [0, 1, 0, 1], [1, 1, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(k(m), np.stack([m.any(1), m[:, 1:3].all(1)], 1).astype(np.int32))


def test_tensor_over_another_buffers_data_is_a_view():
    @T.prim_func
    def main(A: T.Tensor((2, 3, 4), "float32"), B: T.Tensor((6, 4), "float32")):
        with T.Kernel(1):
            flat = T.Tensor((6, 4), "float32", A.data)
            out = T.Tensor((24,), "float32", B.data)
            for i in T.Parallel(24):
                out[i] = flat[i // 4, i % 4] * 2

    k = tilewise.compile(main, out_idx=[1], target="cpu")
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(k(a), (a * 2).reshape(6, 4))


def test_hint_only_calls_compile():
    @T.prim_func
    def main(A: T.Tensor((8,), "float32"), B: T.Tensor((8,), "float32")):
        with T.Kernel(1):
            T.disable_warp_group_reg_alloc()
            for i in T.Parallel(8):
                B[i] = A[i]

    k = tilewise.compile(main, out_idx=[1], target="cpu")
    a = np.arange(8, dtype=np.float32)
    np.testing.assert_array_equal(k(a), a)


def _sequential_f16_sum(row) -> float:
    acc = np.float16(0)
    for v in row:
        acc = np.float16(np.float32(acc) + np.float32(v))
    return float(acc)


@pytest.mark.parametrize("n", [24, 300])
def test_float16_row_sums_stay_close_on_long_rows(n):
    @T.prim_func
    def main(A: T.Tensor((64, n), "float16"), S: T.Tensor((64,), "float16")):
        with T.Kernel(1):
            a = T.alloc_fragment((64, n), "float16")
            s = T.alloc_fragment((64,), "float16")
            T.copy(A, a)
            T.reduce_sum(a, s, dim=1)
            T.copy(s, S)

    k = tilewise.compile(main, out_idx=[1], target="cpu")
    a = np.random.default_rng(n).standard_normal((64, n)).astype(np.float16)
    exact = a.astype(np.float64).sum(1)
    got = k(a).astype(np.float64)
    sequential = np.array([_sequential_f16_sum(r) for r in a])
    if n <= 32:  # one warp's worth: summed in order, rounding after every step
        np.testing.assert_array_equal(got, sequential)
    else:  # folded across 32 lanes: well under the drift of a sequential float16 sum
        assert np.abs(got - exact).mean() < 0.5 * np.abs(sequential - exact).mean()
        assert np.abs(got - exact).max() < 0.06


def _nest_kernel(shape: str):
    """A 64-element copy written with one of several loop nestings."""

    @T.prim_func
    def main(A: T.Tensor((64,), "float32"), B: T.Tensor((64,), "float32")):
        with T.Kernel(1):
            if shape == "PP":
                for i in T.Parallel(8):
                    for j in T.Parallel(8):
                        B[i * 8 + j] = A[i * 8 + j]
            elif shape == "SP":
                for i in T.serial(8):
                    for j in T.Parallel(8):
                        B[i * 8 + j] = A[i * 8 + j]
            elif shape == "PS":
                for i in T.Parallel(8):
                    for j in T.serial(8):
                        B[i * 8 + j] = A[i * 8 + j]
            elif shape == "P;P":
                for i in T.Parallel(8):
                    B[i * 8] = 0
                    for j in T.Parallel(8):
                        B[i * 8 + j] = A[i * 8 + j]
            elif shape == "PSP":
                for i in T.Parallel(4):
                    for j in T.serial(4):
                        for k in T.Parallel(4):
                            B[i * 16 + j * 4 + k] = A[i * 16 + j * 4 + k]
            else:  # a pipeline inside a parallel loop
                for i in T.Parallel(1):
                    for k in T.Pipelined(64, num_stages=2):
                        B[k] = A[k] + i

    return main


@pytest.mark.parametrize("shape", ["PP", "SP", "PS"])
def test_allowed_loop_nestings_run(shape):
    k = tilewise.compile(_nest_kernel(shape), out_idx=[1], target="cpu")
    a = np.arange(64, dtype=np.float32)
    np.testing.assert_array_equal(k(a), a)


@pytest.mark.parametrize("shape,message", [
    ("P;P", "must be its whole body"), ("PSP", "must be its whole body"), ("PPi", "cannot run inside a T.Parallel"),
])
@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_forbidden_loop_nestings_are_value_errors(shape, message, target):
    # a CompileError is a ValueError, which is what TileLang raises for these
    with pytest.raises(ValueError, match=message) as info:
        tilewise.compile(_nest_kernel(shape), out_idx=[1], target=target, execution_backend="auto")
    assert isinstance(info.value, tilewise.CompileError)


def _column_slice_copy(stride):
    @T.prim_func
    def main(A: T.StridedTensor((20, 12), (stride, 1), "float32"), B: T.Tensor((20, 12), "float32")):
        with T.Kernel(2, 3) as (bx, by):
            for i, j in T.Parallel(8, 8):
                B[by * 8 + i, bx * 8 + j] = A[by * 8 + i, bx * 8 + j] * 2

    return main


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_strided_tensor_reads_a_slice_in_place(target):
    wide = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    for stride in (30, T.dynamic("ld")):
        k = tilewise.compile(_column_slice_copy(stride), out_idx=[1], target=target)
        np.testing.assert_array_equal(k(wide[:, 5:17]), wide[:, 5:17] * 2)
    k = tilewise.compile(_column_slice_copy(30), out_idx=[1], target=target)
    with pytest.raises(ValueError, match=r"expected strides \(30, 1\), found \(31, 1\)"):
        k(np.zeros((20, 31), np.float32)[:, :12])


def test_strided_tensor_subscript_form_and_errors():
    ann = T.StridedTensor[(4, 6), (8, 1), "float16"]
    assert ann.strides == (8, 1) and ann.shape == (4, 6)
    assert T.StridedTensor((4, 6), (6, 1), "float16").strides is None  # row-major: a plain tensor
    with pytest.raises(tilewise.CompileError, match="2 strides for 3 dimensions"):
        T.StridedTensor((2, 3, 4), (4, 1), "float32")


def test_strided_and_plain_parameters_are_different_programs(tmp_path, monkeypatch):
    # the disk cache keys kernels by their IR text: the strides must be part of it
    from tilewise.ir.printer import structural_text

    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))

    def copy(ann):
        @T.prim_func
        def main(A: ann, B: T.Tensor((4, 6), "float32")):
            with T.Kernel(1):
                for i, j in T.Parallel(4, 6):
                    B[i, j] = A[i, j]

        return main

    plain, strided = copy(T.Tensor((4, 6), "float32")), copy(T.StridedTensor((4, 6), (8, 1), "float32"))
    assert "T.StridedTensor((4, 6), (8, 1)" in structural_text(strided)
    assert structural_text(plain) != structural_text(strided)
    wide = np.arange(32, dtype=np.float32).reshape(4, 8)
    np.testing.assert_array_equal(tilewise.compile(plain, out_idx=[1], target="cpu")(wide[:, :6].copy()), wide[:, :6])
    np.testing.assert_array_equal(tilewise.compile(strided, out_idx=[1], target="cpu")(wide[:, :6]), wide[:, :6])


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_layout_annotation_on_a_global_tensor_is_ignored(target):
    @T.prim_func
    def main(A: T.Tensor((8, 16), "float32"), B: T.Tensor((8, 16), "float32")):
        with T.Kernel(1, threads=32):
            T.annotate_layout({B: T.Layout((8, 16), lambda i, j: (j // 2, i * 2 + j % 2))})
            for i, j in T.Parallel(8, 16):
                B[i, j] = A[i, j] + 1

    k = tilewise.compile(main, out_idx=[1], target=target)
    a = np.arange(128, dtype=np.float32).reshape(8, 16)
    np.testing.assert_array_equal(k(a), a + 1)
