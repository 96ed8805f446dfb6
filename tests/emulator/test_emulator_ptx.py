"""The emulator's PTX tables: against the compiler's own mma layouts (written independently, so
agreement is evidence for both), against facts quoted from the PTX ISA, and for coverage."""
import numpy as np
import pytest

from tilewise.emulator import ptx
from tilewise.layout.tv import mma_a_tv, mma_b_tv, mma_c_tv


def _coords_to_table(rows, cols, shape):
    """(lane, register) of every element of a (rows x cols) matrix from the PTX coordinate table."""
    lane = np.full(shape, -1)
    reg = np.full(shape, -1)
    for l_ in range(32):
        for i in range(rows.shape[1]):
            r, c = rows[l_, i], cols[l_, i]
            assert lane[r, c] == -1, "two lanes hold one element"
            lane[r, c], reg[r, c] = l_, i
    assert (lane >= 0).all(), "an element is held by no lane"
    return lane, reg


def test_c_fragment_matches_compiler_layout():
    lane, reg = _coords_to_table(*ptx.mma_c_coords("m16n8k16"), (16, 8))
    frag = mma_c_tv(16, 8, 1, 1, 32)
    np.testing.assert_array_equal(frag.thread_table()[0], lane)
    np.testing.assert_array_equal(frag.flat_table(), reg)


def test_a_fragment_matches_compiler_layout():
    lane, reg = _coords_to_table(*ptx.mma_a_coords("m16n8k16", "float16"), (16, 16))
    frag = mma_a_tv(16, 16, 1, 1, 32)
    np.testing.assert_array_equal(frag.thread_table()[0], lane)
    np.testing.assert_array_equal(frag.flat_table(), reg)


def test_b_fragment_matches_compiler_layout():
    lane, reg = _coords_to_table(*ptx.mma_b_coords("m16n8k16", "float16"), (16, 8))
    frag = mma_b_tv(16, 8, 1, 1, 32)
    np.testing.assert_array_equal(frag.thread_table()[0], lane)
    np.testing.assert_array_equal(frag.flat_table(), reg)


@pytest.mark.parametrize(
    "shape,a,b",
    [("m16n8k16", "float16", "float16"), ("m16n8k16", "bfloat16", "bfloat16"), ("m16n8k8", "float16", "float16"),
     ("m16n8k8", "tf32", "tf32"), ("m16n8k32", "int8", "uint8")],
)
def test_every_element_held_once(shape, a, b):
    s = ptx.MMA_SHAPES[shape]
    _coords_to_table(*ptx.mma_a_coords(shape, ptx.mma_type(a)), (s.m, s.k))
    _coords_to_table(*ptx.mma_b_coords(shape, ptx.mma_type(b)), (s.k, s.n))
    _coords_to_table(*ptx.mma_c_coords(shape), (s.m, s.n))


def test_quoted_fragment_facts():
    # lane 5: groupID 1, threadID_in_group 1
    r, c = ptx.mma_a_coords("m16n8k16", "float16")
    assert [(int(r[5, i]), int(c[5, i])) for i in range(8)] == [(1, 2), (1, 3), (9, 2), (9, 3), (1, 10), (1, 11), (9, 10), (9, 11)]
    r, c = ptx.mma_b_coords("m16n8k16", "float16")
    assert [(int(r[5, i]), int(c[5, i])) for i in range(4)] == [(2, 1), (3, 1), (10, 1), (11, 1)]
    r, c = ptx.mma_a_coords("m16n8k8", "tfloat32")
    assert [(int(r[5, i]), int(c[5, i])) for i in range(4)] == [(1, 1), (9, 1), (1, 5), (9, 5)]
    r, c = ptx.mma_b_coords("m16n8k8", "tfloat32")
    assert [(int(r[5, i]), int(c[5, i])) for i in range(2)] == [(1, 1), (5, 1)]
    r, c = ptx.mma_a_coords("m16n8k32", "int8")
    assert (int(r[5, 0]), int(c[5, 0])) == (1, 4) and (int(r[5, 4]), int(c[5, 4])) == (9, 4)
    assert (int(r[5, 8]), int(c[5, 8])) == (1, 20) and (int(r[5, 15]), int(c[5, 15])) == (9, 23)
    r, c = ptx.mma_b_coords("m16n8k32", "int8")
    assert [int(x) for x in r[5]] == [4, 5, 6, 7, 20, 21, 22, 23] and (c[5] == 1).all()


def test_ldmatrix_sources():
    src, col = ptx.ldmatrix_sources(4, False)
    # lane 9 (row 2, columns 2 and 3) of every matrix: matrix j's row 2 comes from lane 8 * j + 2
    assert [int(x) for x in src[9, :, 0]] == [2, 10, 18, 26] and list(col[9, 0]) == [2, 3]
    src, col = ptx.ldmatrix_sources(2, True)
    # transposed: lane 9 gets column 2, rows 2 and 3
    assert [int(x) for x in src[9, 1]] == [10, 11] and list(col[9, 1]) == [2, 2]


@pytest.mark.parametrize("width", [32, 16, 8, 4, 2, 1])
def test_shuffle_sources_follow_cuda_width_rules(width):
    lane = np.arange(32)
    seg = lane - lane % width
    for delta in (1, 3, width // 2):
        j, _ = ptx.shfl_source("down", lane, delta, ptx.cuda_shfl_c("down", width))
        want = np.where(lane % width + delta < width, lane + delta, lane)
        np.testing.assert_array_equal(j, want)
        j, _ = ptx.shfl_source("up", lane, delta, ptx.cuda_shfl_c("up", width))
        want = np.where(lane % width >= delta, lane - delta, lane)
        np.testing.assert_array_equal(j, want)
    for src in (0, 5, 31, 40):
        j, _ = ptx.shfl_source("idx", lane, src, ptx.cuda_shfl_c("idx", width))
        np.testing.assert_array_equal(j, seg + src % width)
    for mask in range(32):
        j, _ = ptx.shfl_source("bfly", lane, mask, ptx.cuda_shfl_c("bfly", width))
        # "able to access elements from earlier groups": a partner beyond the lane's own segment
        # end keeps the lane's value, one in an earlier segment is read
        partner = lane ^ mask
        want = np.where(partner < seg + width, partner, lane)
        np.testing.assert_array_equal(j, want)


def test_tf32_drops_low_mantissa_bits():
    x = np.array([1.0 + 2.0**-10, 1.0 + 2.0**-11, -3.0 - 2.0**-12], np.float32)
    np.testing.assert_array_equal(ptx.to_tf32(x), np.array([1.0 + 2.0**-10, 1.0, -3.0], np.float32))
