"""TileLang's Layout / Fragment API (tilelang.layout, 0.1.15): constructors, the register index
derived from a thread map alone, repeat / replicate / inverse / get_thread_size /
map_forward_thread, the swizzle helpers, and the conversion of a user's T.Fragment into the
thread/value modes the CUDA target lowers; properties checked on random fragments."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise
import tilewise.language as T
from tilewise.ir.evaluate import evaluate
from tilewise.layout import (
    Fragment,
    Layout,
    make_fully_replicated_layout_fragment,
    make_gemm_fragment_8x8,
    make_gemm_fragment_8x8_transposed,
    make_linear_layout,
    make_swizzled_layout,
)
from tilewise.layout.tv import tv_from_fragment


def ev(e, env=None) -> int:
    return int(evaluate(e, env or {}))


# ---------------------------------------------------------------------------- constructors


def test_forward_fn_gives_thread_and_index():
    f = T.Fragment([4, 128], forward_fn=lambda i, j: (j, i))
    assert f.get_input_shape() == [4, 128] and f.get_output_shape() == [4]
    assert f.get_thread_size() == 128
    assert ev(f.map_forward_thread([3, 77])) == 77 and [ev(e) for e in f.map_forward_index([3, 77])] == [3]


def test_positional_arguments_follow_tilelang():
    # Fragment(shape, forward_fn, forward_thread_fn, replicate, forward_index_fn)
    f = T.Fragment([8], None, lambda i: i % 4, 1, lambda i: i // 4)
    assert f.get_thread_size() == 4 and f.get_output_shape() == [2]


@pytest.mark.parametrize("shape, thread, index", [
    ([128], lambda i: i, lambda i: 0),                      # one element per thread
    ([16, 32], lambda i, j: i, lambda i, j: j),              # a row per thread
    ([64], lambda i: i % 32, lambda i: i // 32),             # wraps around the threads
    ([16, 8], lambda i, j: i % 8 * 4 + j // 2, lambda i, j: j % 2 + i // 8 * 2),  # the mma C tile
])
def test_index_derived_from_the_thread_map(shape, thread, index):
    """Without forward_index_fn the register index is the part of the logical index the thread
    map leaves unused, row-major (TileLang's DivideUnusedIterators)."""
    f = T.Fragment(shape, forward_thread_fn=thread)
    g = T.Fragment(shape, forward_thread_fn=thread, forward_index_fn=index)
    assert np.array_equal(f.table(), g.table()), (f, g)
    assert f.covers_exactly_once()


def test_replicated_thread_fn_takes_the_replica():
    f = T.Fragment([32], forward_thread_fn=lambda i, r: r * 32 + i, replicate=4)
    assert f.replicate == 4 and f.get_thread_size() == 128
    assert ev(f.map_forward_thread([2, 5])) == 69  # replica first, as in TileLang's forward vars
    assert ev(f.map_forward_thread([5], rep=2)) == 69
    assert f.covers_exactly_once()


def test_bad_fragments_are_compile_errors():
    with pytest.raises(tilewise.CompileError, match="replicate"):
        T.Fragment([4], forward_thread_fn=lambda i: i, replicate=0)
    with pytest.raises(tilewise.CompileError, match="forward_fn"):
        T.Fragment([4])
    with pytest.raises(tilewise.CompileError, match="forward_index_fn"):
        T.Fragment([8], forward_thread_fn=lambda i: (i * 3) % 8 ^ 1)


# ---------------------------------------------------------------------------- repeat / replicate / inverse


def test_repeat_on_registers_and_on_threads():
    base = T.Fragment([8, 4], forward_thread_fn=lambda i, j: i * 4 + j)  # 32 threads, 1 register
    on_regs = base.repeat([2, 1])
    assert on_regs.get_input_shape() == [16, 4] and on_regs.get_thread_size() == 32
    assert on_regs.get_output_shape() == [2]
    assert ev(on_regs.map_forward_thread([9, 3])) == ev(base.map_forward_thread([1, 3]))
    assert [ev(e) for e in on_regs.map_forward_index([9, 3])] == [1]
    on_threads = base.repeat([2, 2], repeat_on_thread=True)
    assert on_threads.get_thread_size() == 128 and on_threads.get_output_shape() == [1]
    # lower_dim_first: the copy number counts the last dimension fastest
    assert ev(on_threads.map_forward_thread([0, 4])) == 32
    assert ev(on_threads.map_forward_thread([8, 0])) == 64
    upper = base.repeat([2, 2], repeat_on_thread=True, lower_dim_first=False)
    assert ev(upper.map_forward_thread([8, 0])) == 32
    assert on_regs.covers_exactly_once() and on_threads.covers_exactly_once()


def test_replicate_adds_threads():
    base = T.Fragment([16], forward_thread_fn=lambda i: i % 8)
    rep = base.replicate(4)
    assert rep.replicate == 4 and rep.get_thread_size() == 32
    assert sorted(ev(rep.map_forward_thread([r, 3])) for r in range(4)) == [3, 11, 19, 27]
    assert rep.covers_exactly_once()


def test_fragment_inverse_maps_register_and_thread_back():
    f = T.Fragment([4, 128], forward_fn=lambda i, j: (j, i))
    inv = f.inverse()
    assert inv.get_input_shape() == [4, 128]  # (register, thread)
    assert [ev(e) for e in inv.map_forward_index([3, 77])] == [3, 77, 0]  # (i, j, replica)


def test_layout_api():
    lay = T.Layout([4, 8], lambda i, j: (j, i))
    assert lay.get_input_shape() == [4, 8] and lay.get_output_shape() == [8, 4]
    assert ev(lay.get_linearized_forward_index(), {lay.vars[0]: 1, lay.vars[1]: 2}) == 2 * 4 + 1
    assert [ev(e) for e in lay(1, 2)] == [2, 1]
    inv = lay.inverse()
    assert [ev(e) for e in inv.map_forward_index([2, 1])] == [1, 2]
    rep = lay.repeat(0, 3)  # copy number becomes a new leading output dimension
    assert rep.get_input_shape() == [12, 8] and rep.get_output_shape() == [3, 8, 4]
    assert [ev(e) for e in rep(5, 2)] == [1, 2, 1]
    ex = lay.expand([2])
    assert ex.get_input_shape() == [2, 4, 8] and [ev(e) for e in ex(1, 3, 5)] == [1, 5, 3]
    assert lay.expand(np.int64(3)).get_input_shape() == [3, 4, 8]
    with pytest.raises(ValueError, match="positive"):  # TileLang: ValueError for 0 / negative extents
        lay.expand(0)
    with pytest.raises(ValueError, match="positive"):
        lay.expand([-1])
    with pytest.raises(TypeError, match="leading shape"):  # and TypeError for what is not an extent
        lay.expand("4")
    with pytest.raises(TypeError, match="positive integers"):
        lay.expand([2.5])
    assert lay.is_equal(T.Layout([4, 8], lambda i, j: [j, i])) and not lay.is_equal(rep)
    with pytest.raises(tilewise.CompileError, match="closed form"):
        make_swizzled_layout((8, 64), dtype="float16").inverse()


def test_swizzle_helpers():
    buf_shape = (16, 64)
    sw = make_swizzled_layout(buf_shape, dtype="float16")
    assert sw.is_bijective()
    lin = make_linear_layout(buf_shape)
    assert np.array_equal(lin.flat_table().ravel(), np.arange(16 * 64))
    g = make_gemm_fragment_8x8()
    assert g.get_thread_size() == 32 and g.get_output_shape() == [2] and g.covers_exactly_once()
    assert ev(g.map_forward_thread([1, 2])) == 5  # lane = row * 4 + col // 2
    gt = make_gemm_fragment_8x8_transposed()
    assert ev(gt.map_forward_thread([2, 1])) == 5 and gt.covers_exactly_once()
    from tilewise.layout import (
        make_full_bank_swizzled_layout,
        make_half_bank_swizzled_layout,
        make_quarter_bank_swizzled_layout,
        make_wgmma_swizzled_layout,
    )

    for shape, dtype in [((64, 64), "float16"), ((32, 128), "int8"), ((16, 32), "float32")]:
        assert make_full_bank_swizzled_layout(shape, dtype=dtype).is_bijective()
        assert make_wgmma_swizzled_layout(shape, dtype=dtype).is_bijective()
        assert make_half_bank_swizzled_layout(shape, dtype=dtype).is_bijective()
        assert make_quarter_bank_swizzled_layout(shape, dtype=dtype).is_bijective()
    with pytest.raises(tilewise.CompileError, match="continuity"):
        make_wgmma_swizzled_layout((64, 64), continuity=32, dtype="float16")
    rep = make_fully_replicated_layout_fragment((2, 3), 64)
    assert rep.replicate == 64 and rep.get_thread_size() == 64 and rep.get_output_shape() == [6]


# ---------------------------------------------------------------------------- random fragments


@st.composite
def digit_fragments(draw):
    """A random fragment whose thread and register indices are sums of digits of the logical
    indices (and of the replica index): each prime digit of each dimension goes to the thread
    or to the registers, at a random position."""
    ndim = draw(st.integers(1, 3))
    shape = [draw(st.sampled_from([1, 2, 3, 4, 6, 8, 12, 16])) for _ in range(ndim)]
    replicate = draw(st.sampled_from([1, 1, 2, 4]))
    digits = []  # (dim or None for the replica, stride, radix)
    for d, n in enumerate(shape):
        stride = 1
        for p in _primes(n):
            digits.append((d, stride, p))
            stride *= p
    stride = 1
    for p in _primes(replicate):
        digits.append((None, stride, p))
        stride *= p
    to_thread = [draw(st.booleans()) or g[0] is None for g in digits]
    thread = [g for g, t in zip(digits, to_thread) if t]
    regs = [g for g, t in zip(digits, to_thread) if not t]
    thread = draw(st.permutations(thread))
    regs = draw(st.permutations(regs))

    def sum_of(gs, idx, rep):
        out, place = 0, 1
        for d, s, r in gs:
            x = rep if d is None else idx[d]
            out = out + (x // s) % r * place
            place *= r
        return out

    frag = T.Fragment(shape, forward_thread_fn=lambda *a: sum_of(thread, a[:ndim], a[ndim] if len(a) > ndim else 0),
                      forward_index_fn=lambda *a: sum_of(regs, a, 0), replicate=replicate)
    return frag, math.prod(r for _, _, r in thread), math.prod(r for _, _, r in regs)


def _primes(n):
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


@settings(max_examples=60, deadline=None)
@given(digit_fragments())
def test_random_fragments_invert(case):
    frag, threads, regs = case
    assert frag.get_thread_size() == threads and frag.covers_exactly_once()
    inv = frag.inverse()
    assert inv.get_input_shape() == [max(regs, 1), threads]
    grid = frag.grid()
    shape = frag.shape
    for r in range(frag.replicate):
        env = dict(grid)
        env[frag.rep_var] = np.int64(r)
        t = np.broadcast_to(np.asarray(evaluate(frag.forward_thread, env), np.int64), shape)
        loc = np.broadcast_to(np.asarray(evaluate(frag.forward_index[0], env), np.int64), shape)
        back = [np.broadcast_to(np.asarray(evaluate(e, {inv.vars[0]: loc, inv.vars[1]: t}), np.int64), shape)
                for e in inv.forward_index]
        for k in range(len(shape)):
            assert np.array_equal(back[k], np.indices(shape)[k]), (frag, k)
        assert (back[-1] == r).all(), frag  # the replica comes back too


@settings(max_examples=60, deadline=None)
@given(digit_fragments(), st.lists(st.integers(1, 3), min_size=3, max_size=3), st.booleans(), st.integers(1, 4))
def test_random_repeat_and_replicate_counts(case, reps, on_thread, n):
    frag, threads, regs = case
    reps = reps[:frag.ndim]
    rep = frag.repeat(reps, repeat_on_thread=on_thread)
    k = math.prod(reps)
    assert rep.get_input_shape() == [d * r for d, r in zip(frag.shape, reps)]
    if on_thread:
        assert rep.get_thread_size() == threads * k and rep.get_output_shape() == frag.get_output_shape()
    else:
        assert rep.get_thread_size() == threads and rep.get_output_shape()[0] == frag.get_output_shape()[0] * k
    assert rep.covers_exactly_once(), rep
    more = frag.replicate(n)
    assert more.replicate == frag.replicate * n and more.get_thread_size() == threads * n
    assert more.covers_exactly_once(), more


@settings(max_examples=60, deadline=None)
@given(digit_fragments(), st.sampled_from([1, 2, 4]))
def test_random_fragments_convert_to_modes_exactly(case, extra):
    """The CUDA target's form of a user fragment holds every element in the same threads (a
    fragment over fewer threads than the block is replicated over the rest)."""
    frag, threads, _ = case
    tv = tv_from_fragment(frag, threads * extra)
    assert tv.num_threads == threads * extra and tv.covers_exactly_once(threads * extra)
    want = frag.thread_table()  # (replicate, *shape)
    got = tv.thread_table()
    for e in np.ndindex(*frag.shape):
        have = sorted(int(x) for x in got[(slice(None), *e)])
        expect = sorted(int(x) + threads * c for x in want[(slice(None), *e)] for c in range(extra))
        assert have == expect, (frag, tv, e)


def test_fragments_outside_the_digit_form_are_named():
    frag = T.Fragment([8], forward_thread_fn=lambda i: (i * 3) % 8, forward_index_fn=lambda i: 0)
    assert frag.covers_exactly_once()
    with pytest.raises(tilewise.CompileError, match="sum of digits"):
        tv_from_fragment(frag, 8)
    with pytest.raises(tilewise.CompileError, match="divisor"):
        tv_from_fragment(T.Fragment([3], forward_thread_fn=lambda i: i), 8)


def test_exports():
    import tilewise.layout as L

    assert T.Fragment is Fragment and T.Layout is Layout
    for name in ("make_swizzled_layout", "make_full_bank_swizzled_layout", "make_half_bank_swizzled_layout",
                 "make_quarter_bank_swizzled_layout", "make_linear_layout", "make_gemm_fragment_8x8",
                 "make_gemm_fragment_8x8_transposed", "make_fully_replicated_layout_fragment"):
        assert callable(getattr(L, name)), name
