"""Layouts as data: T.Layout / T.Fragment maps, tables, bijectivity, swizzles and padding."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise
import tilewise.language as T
from tilewise.ir.buffer import Buffer
from tilewise.layout import Fragment, Layout, make_padded_layout, make_swizzled_layout


def test_layout_table_and_repr():
    lay = T.Layout((4, 8), lambda i, j: (j, i))
    tab = lay.table()
    assert tab.shape == (4, 8, 2)
    assert tuple(tab[1, 5]) == (5, 1)
    assert lay.output_shape() == (8, 4)
    assert lay.is_bijective()
    assert "Layout(shape=[4, 8]" in repr(lay)


def test_layout_inverse_table_round_trips():
    lay = T.Layout((8, 16), lambda i, j: (i, (j // 8 ^ i % 2) * 8 + j % 8))
    inv = lay.inverse_table()
    flat = lay.flat_table()
    assert (inv.ravel()[flat.ravel()] == np.arange(8 * 16)).all()


def test_non_injective_layout_is_detected():
    lay = T.Layout((4, 4), lambda i, j: (i // 2, j))
    assert not lay.is_bijective()
    assert not lay.is_injective()


def test_repeat_stacks_copies():
    # TileLang's Layout.repeat(dim, factor): the copy number is a new leading output dimension
    lay = T.Layout((2, 4), lambda i, j: (i, 3 - j))
    rep = lay.repeat(0, 3)
    assert rep.shape == (6, 4)
    assert rep.is_bijective()
    assert tuple(rep.table()[5, 0]) == (2, 1, 3)


def test_fragment_threads_locals_and_replication():
    frag = T.Fragment((16, 8), forward_thread_fn=lambda i, j: (i % 8) * 4 + j // 2,
                      forward_index_fn=lambda i, j: (i // 8) * 2 + j % 2)
    assert frag.num_threads() == 32
    assert frag.locals_per_thread() == 4
    assert frag.covers_exactly_once(32)
    rep = T.Fragment((8,), forward_thread_fn=lambda i, r: r * 8 + i, forward_index_fn=lambda i: 0 * i, replicate=2)
    assert rep.replicate == 2
    assert rep.thread_table().shape == (2, 8)
    assert rep.covers_exactly_once(16)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "int8"])
@pytest.mark.parametrize("rows,cols_bytes", [(16, 32), (32, 64), (64, 128), (128, 256), (8, 512)])
def test_swizzle_is_a_permutation_of_16_byte_chunks(dtype, rows, cols_bytes):
    bits = tilewise.ir.as_dtype(dtype).bits
    cols = cols_bytes * 8 // bits
    buf = Buffer("S", (rows, cols), dtype, "shared.dyn")
    lay = make_swizzled_layout(buf)
    assert lay.output_shape() == (rows, cols)
    assert lay.is_bijective()
    vec = 128 // bits
    tab = lay.table()
    # a 16-byte chunk stays contiguous and aligned, so vector copies and ldmatrix rows survive
    assert (tab[:, ::vec, 1] % vec == 0).all()
    for k in range(1, vec):
        assert (tab[:, k::vec, 1] == tab[:, ::vec, 1] + k).all()
    # eight consecutive rows reading the same logical chunk hit eight different bank groups
    if cols_bytes >= 128:
        chunks = tab[:8, 0, 1] // vec
        assert len(set((chunks % 8).tolist())) == 8


def test_rows_that_cannot_swizzle_get_padding():
    buf = Buffer("S", (64, 40), "float16", "shared.dyn")
    lay = make_swizzled_layout(buf)
    assert lay.output_shape() == (64, 48)
    assert lay.is_injective() and not lay.is_bijective()
    assert make_padded_layout(buf).output_shape() == (64, 48)


@settings(max_examples=40, deadline=None)
@given(rows=st.sampled_from([8, 16, 32, 64]), chunks=st.sampled_from([2, 4, 8, 16]),
       dtype=st.sampled_from(["float16", "float32"]), lead=st.sampled_from([1, 2, 3]))
def test_swizzle_property_bijective_in_range(rows, chunks, dtype, lead):
    bits = tilewise.ir.as_dtype(dtype).bits
    cols = chunks * 128 // bits
    shape = (lead, rows, cols) if lead > 1 else (rows, cols)
    lay = make_swizzled_layout(Buffer("S", shape, dtype, "shared.dyn"))
    tab = lay.table()
    assert lay.is_bijective()
    assert tab.min() >= 0
    assert (tab[..., -1] < cols).all()


def test_annotate_layout_checks_shapes_and_kinds():
    with pytest.raises(tilewise.CompileError, match="has shape"):
        @T.prim_func
        def bad(A: T.Tensor((16, 16), "float16")):
            with T.Kernel(1, threads=32):
                S = T.alloc_shared((16, 16), "float16")
                T.annotate_layout({S: Layout((8, 16), lambda i, j: (i, j))})
                T.copy(A, S)

    with pytest.raises(tilewise.CompileError, match="needs a T.Fragment"):
        @T.prim_func
        def bad2(A: T.Tensor((16, 16), "float32")):
            with T.Kernel(1, threads=32):
                F = T.alloc_fragment((16, 16), "float32")
                T.annotate_layout({F: Layout((16, 16), lambda i, j: (i, j))})
                T.copy(A, F)


def test_annotated_swizzle_runs_on_cpu_and_emulator():
    @T.prim_func
    def k(A: T.Tensor((32, 64), "float16"), B: T.Tensor((32, 64), "float16")):
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((32, 64), "float16")
            T.annotate_layout({S: make_swizzled_layout(S)})
            T.copy(A, S)
            T.copy(S, B)

    a = np.random.default_rng(0).standard_normal((32, 64)).astype(np.float16)
    for target, backend in (("cpu", "auto"), ("cuda", "emulator")):
        b = np.zeros_like(a)
        tilewise.compile(k, target=target, execution_backend=backend)(a, b)
        np.testing.assert_array_equal(a, b)


def test_fragment_class_is_exported():
    assert T.Fragment is Fragment and T.Layout is Layout


@settings(max_examples=60, deadline=None)
@given(m=st.sampled_from([1, 2, 4, 16, 24]), kb=st.sampled_from([1, 2, 8, 12, 32]), c=st.sampled_from([2, 4, 8]),
       threads=st.sampled_from([32, 64, 128]), vec=st.sampled_from([1, 2, 4, 8, 16]))
def test_layouts_through_packed_and_flattened_indices(m, kb, c, threads, vec):
    """Loop iteration (i, j) reads B[i, j // c] (or B[i * K + j]): whichever side's layout is
    derived from the other, the thread running an iteration holds the element it reads."""
    from tilewise.layout.tv import default_fragment
    from tilewise.transform.layout_inference import (
        fragment_from_divided,
        fragment_from_fused,
        loop_from_divided,
    )

    k = kb * c
    ii, jj = np.meshgrid(np.arange(m), np.arange(k), indexing="ij")

    def runs(loop):  # (replica, i, j) -> thread running iteration (i, j)
        return loop.thread_table()

    def holds(frag, idx):  # for each (i, j): the set of threads holding frag[idx(i, j)]
        tab = frag.thread_table()
        return tab[(slice(None), *idx)]

    loop = default_fragment((m, k), threads, vec)
    b = fragment_from_divided(loop, [(0, 1), (1, c)], (m, kb))
    if b is not None:
        held = holds(b, (ii, jj // c))
        assert all((held == t).any(axis=0).all() for t in runs(loop))
    b_known = default_fragment((m, kb), threads, vec)
    loop2 = loop_from_divided(b_known, [(0, 1), (1, c)], (m, k))
    held = holds(b_known, (ii, jj // c))
    assert all((held == t).any(axis=0).all() for t in runs(loop2))
    flat = fragment_from_fused(loop, [{0: k, 1: 1}], (m * k,))
    held = holds(flat, (ii * k + jj,))
    assert all((held == t).any(axis=0).all() for t in runs(loop))
