"""Property tests of the register (TV fragment) layouts CUDA layout inference produces: default
partitions of T.Parallel loops over random shapes and thread counts, mma layouts over warp
grids, projections and remappings (row vectors, reductions, permuted accesses) hold every
element exactly once per replica, with consistent forward and inverse maps; and the mma layouts
agree with the emulator's PTX fragment tables, which are written independently."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilewise.emulator import ptx
from tilewise.ir.evaluate import evaluate
from tilewise.ir.expr import Var
from tilewise.layout.mma import choose_warp_grid
from tilewise.layout.tv import (
    TVFragment,
    default_fragment,
    mma_a_tv,
    mma_b_tv,
    mma_c_tv,
    replicated_fragment,
)
from tilewise.transform.layout_inference import fragment_from_loop, loop_from_fragment

THREADS = [32, 64, 96, 128, 160, 256]


def check_layout(lay: TVFragment, threads: int) -> None:
    """Every (thread, register) pair names one element; every element is held by exactly
    `replicate` distinct threads, at the same register in each; forward maps invert the inverse."""
    assert lay.num_threads == threads, (lay, threads)
    T, V = threads, lay.num_values
    tt, vv = np.meshgrid(np.arange(T), np.arange(V), indexing="ij")
    t, v = Var("t"), Var("v")
    coords = [np.broadcast_to(np.asarray(evaluate(e, {t: tt, v: vv}), np.int64), tt.shape) for e in lay.inverse(t, v)]
    for c, d in zip(coords, lay.shape):
        assert c.min() >= 0 and c.max() < d, (lay, "inverse leaves the tile")
    flat = np.zeros(tt.shape, np.int64)
    for c, d in zip(coords, lay.shape):
        flat = flat * d + c
    counts = np.bincount(flat.ravel(), minlength=int(np.prod(lay.shape)))
    assert (counts == lay.replicate).all(), (lay, "elements not held exactly once per replica", counts)
    # the replicas of an element live in distinct threads
    pairs = np.unique(np.stack([flat.ravel(), tt.ravel()]), axis=1)
    assert pairs.shape[1] == flat.size, (lay, "a thread holds one element twice")
    env = dict(zip(lay.vars, coords))
    local = np.broadcast_to(np.asarray(evaluate(lay.local_of(lay.vars), env), np.int64), tt.shape)
    assert (local == vv).all(), (lay, "local_of does not invert inverse")
    rep = np.broadcast_to(np.asarray(evaluate(lay.replica_index(t), {t: tt}), np.int64), tt.shape)
    assert rep.min() >= 0 and rep.max() < lay.replicate
    env[lay.rep_var] = rep
    thr = np.broadcast_to(np.asarray(evaluate(lay.forward_thread, env), np.int64), tt.shape)
    assert (thr == tt).all(), (lay, "thread_of does not invert inverse")
    assert lay.covers_exactly_once(threads), lay
    assert lay.thread_table().shape == (lay.replicate, *lay.shape)


shapes = st.lists(st.integers(1, 48), min_size=1, max_size=3).filter(lambda s: int(np.prod(s)) <= 2048)


@settings(max_examples=50, deadline=None)
@given(shape=shapes, threads=st.sampled_from(THREADS), vector=st.sampled_from([1, 2, 4, 8, 16]))
def test_default_partitions(shape, threads, vector):
    check_layout(default_fragment(shape, threads, vector), threads)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, threads=st.sampled_from(THREADS), vector=st.sampled_from([1, 4, 8]), data=st.data())
def test_projections_and_unit_dims(shape, threads, vector, data):
    lay = default_fragment(shape, threads, vector)
    keep = sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1)))
    proj = lay.project(keep)
    check_layout(proj, threads)
    check_layout(proj.insert_unit_dim(data.draw(st.integers(0, len(keep)))), threads)
    check_layout(replicated_fragment(keep and [shape[d] for d in keep], 32), 32)


@settings(max_examples=20, deadline=None)
@given(shape=st.lists(st.integers(1, 24), min_size=2, max_size=3).filter(lambda s: int(np.prod(s)) <= 2048), threads=st.sampled_from(THREADS),
       data=st.data())
def test_loop_and_fragment_remaps(shape, threads, data):
    """A fragment accessed with its indices permuted, or by only some of a loop's variables: the
    loop layout derived from the fragment, and the fragment layout derived from a loop."""
    nd = len(shape)
    perm = data.draw(st.permutations(range(nd)))
    frag = default_fragment([shape[p] for p in perm], threads, data.draw(st.sampled_from([1, 4])))
    loop = loop_from_fragment(frag, list(perm), shape)
    check_layout(loop, threads)
    # F[vars in perm order] under that loop is F's own layout again
    assert fragment_from_loop(loop, list(perm), frag.shape).same_as(frag)
    sub = sorted(data.draw(st.sets(st.integers(0, nd - 1), min_size=1, max_size=nd - 1)))
    part = default_fragment([shape[d] for d in sub], threads, 1)
    check_layout(loop_from_fragment(part, sub, shape), threads)
    check_layout(fragment_from_loop(default_fragment(shape, threads, 4), sub, [shape[d] for d in sub]), threads)


# (M, N, K, warps, policy) for the mma layouts
warp_cases = st.tuples(
    st.sampled_from([16, 32, 48, 64, 128]), st.sampled_from([8, 16, 32, 64, 96, 128]),
    st.sampled_from([32, 64, 128]), st.sampled_from([1, 2, 4, 8]), st.sampled_from(["Square", "FullRow", "FullCol"]),
)


@settings(max_examples=60, deadline=None)
@given(case=warp_cases, bits=st.sampled_from([16, 8, 32]))
def test_mma_layouts_cover_their_tiles(case, bits):
    M, N, K, warps, policy = case
    try:
        g = choose_warp_grid(M, N, warps, policy)
    except Exception:  # noqa: BLE001 - the tile does not split over this many warps
        return
    T = 32 * warps
    check_layout(mma_c_tv(M, N, g.warp_m, g.warp_n, T), T)
    k = K if K % (32 // bits * 8) == 0 else 64
    check_layout(mma_a_tv(M, k, g.warp_m, g.warp_n, T, bits), T)
    check_layout(mma_b_tv(k, N, g.warp_m, g.warp_n, T, bits), T)
    # the reductions of an accumulator over rows / columns (FlashAttention's row max)
    c = mma_c_tv(M, N, g.warp_m, g.warp_n, T)
    check_layout(c.project([0]), T)
    check_layout(c.project([1]).insert_unit_dim(0), T)


# ------------------------------------------------------------------------------- against PTX

# (M, N, K, warp_m, warp_n); the emitter numbers registers as the TV layouts do: accumulator
# register (mi * tiles_n + ni) * 4 + i, A (mi * tiles_k + ki) * elems + i, B (ki * tiles_n + ni) * elems + i
GRIDS = [(16, 8, 16, 1, 1), (64, 64, 32, 2, 2), (128, 64, 64, 4, 1), (64, 128, 32, 1, 4), (32, 96, 64, 2, 4),
         (128, 128, 32, 2, 2)]
OPERANDS = [("m16n8k16", "float16", 16), ("m16n8k16", "bfloat16", 16), ("m16n8k32", "int8", 8),
            ("m16n8k8", "float32", 32)]


def _tv_coords(lay: TVFragment, threads: int):
    tt, vv = np.meshgrid(np.arange(threads), np.arange(lay.num_values), indexing="ij")
    t, v = Var("t"), Var("v")
    return [np.broadcast_to(np.asarray(evaluate(e, {t: tt, v: vv}), np.int64), tt.shape) for e in lay.inverse(t, v)]


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: "x".join(map(str, g)))
@pytest.mark.parametrize("shape,dtype,bits", OPERANDS, ids=[o[1] for o in OPERANDS])
def test_mma_layouts_match_the_ptx_tables(grid, shape, dtype, bits):
    M, N, K, wm_n, wn_n = grid
    T = 32 * wm_n * wn_n
    WM, WN = M // wm_n, N // wn_n
    mk = ptx.MMA_SHAPES[shape].k
    if K % mk:
        K = mk
    tiles_m, tiles_n, tiles_k = WM // 16, WN // 8, K // mk
    lane = np.arange(T) % 32
    warp = np.arange(T) // 32
    wm, wn = warp // wn_n, warp % wn_n

    # accumulator
    r, c = _tv_coords(mma_c_tv(M, N, wm_n, wn_n, T), T)
    pr, pc = ptx.mma_c_coords(shape)
    for mi in range(tiles_m):
        for ni in range(tiles_n):
            for i in range(4):
                v = (mi * tiles_n + ni) * 4 + i
                np.testing.assert_array_equal(r[:, v], wm * WM + mi * 16 + pr[lane, i])
                np.testing.assert_array_equal(c[:, v], wn * WN + ni * 8 + pc[lane, i])
    # A operand (M x K) and B operand (K x N) in registers
    ar, ac = _tv_coords(mma_a_tv(M, K, wm_n, wn_n, T, bits), T)
    par, pac = ptx.mma_a_coords(shape, dtype)
    na = par.shape[1]
    br, bc = _tv_coords(mma_b_tv(K, N, wm_n, wn_n, T, bits), T)
    pbr, pbc = ptx.mma_b_coords(shape, dtype)
    nb = pbr.shape[1]
    for ki in range(tiles_k):
        for mi in range(tiles_m):
            for i in range(na):
                v = (mi * tiles_k + ki) * na + i
                np.testing.assert_array_equal(ar[:, v], wm * WM + mi * 16 + par[lane, i])
                np.testing.assert_array_equal(ac[:, v], ki * mk + pac[lane, i])
        for ni in range(tiles_n):
            for i in range(nb):
                v = (ki * tiles_n + ni) * nb + i
                np.testing.assert_array_equal(br[:, v], ki * mk + pbr[lane, i])
                np.testing.assert_array_equal(bc[:, v], wn * WN + ni * 8 + pbc[lane, i])


def test_default_partitions_prefer_narrower_chunks_to_replication():
    """8-wide chunks of a 24 x 40 tile occupy 8 of 64 threads (8 copies of 120 registers);
    single elements spread it over all 64 threads. Full-width chunks stay when they fit."""
    assert default_fragment((24, 40), 64, 8).replicate == 1
    assert default_fragment((8, 64), 256, 4).replicate == 1
    lay = default_fragment((64, 64), 128, 4)
    assert lay.replicate == 1 and lay.value_modes[0].radix == 4 and lay.value_modes[0].dim == 1
    assert default_fragment((4,), 128, 4).replicate == 32  # too small for the block either way
