"""TileLang 0.1.15's warp votes, matches and block votes (language/warp_vote.py) and the shared
vector moves T.lds* / T.sts* (language/shared_vector.py): in the emulator against numpy (the PTX
interpreter repeats each run, conftest.py), on the CPU target, through NVRTC (SASS) and, for the
votes that AMD GPUs have, through clang for gfx942."""
import numpy as np
import pytest
from conftest import emu, nvrtc_check

import tilewise
import tilewise.language as T
from tilewise.emulator.errors import DivergenceError
from tilewise.errors import CompileError

pytestmark = pytest.mark.filterwarnings("ignore:.*programs its threads:UserWarning")
THREADS = 96  # three warps


def _warp_bits(p: np.ndarray, width: int = 32) -> np.ndarray:
    """Per lane: the bit mask of its warp's lanes where p holds."""
    w = p.reshape(-1, width).astype(np.uint64) << np.arange(width, dtype=np.uint64)
    return np.repeat(w.sum(axis=1, dtype=np.uint64), width)


def _expected_votes(x, b):
    v = x + b
    o = np.zeros((6, THREADS), np.int64)
    o[0] = _warp_bits(v > 0).astype(np.int64)
    o[1] = _warp_bits(v % 2 == 0).astype(np.int64)
    o[2] = (_warp_bits(v > 8) != 0) + 2 * (_warp_bits(v > -9) == 0xFFFFFFFF)
    o[3] = (v > 0).sum()
    o[4] = int((v > -9).all()) + 2 * int((v > 9).any())
    o[5] = 0xFFFFFFFF
    o[5, 32:40] = 0xFF
    rem = v % 3  # Python's % on the int32 values (T's % on int32 is floormod, as TVM's)
    m = np.zeros((2, THREADS), np.uint32)
    for w in range(THREADS // 32):
        r = rem[w * 32:(w + 1) * 32]
        for lane in range(32):
            m[0, w * 32 + lane] = int(((r == r[lane]).astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum())
    m[1] = 0xFFFFFFFF  # every warp's lanes share tx // 32
    return o, m


def _votes_one_block():
    @T.prim_func
    def k(X: T.Tensor((THREADS,), "int32"), O: T.Tensor((6, THREADS), "int64"), M: T.Tensor((2, THREADS), "uint32")):
        with T.Kernel(1, threads=THREADS):
            tx = T.get_thread_binding()
            v = X[tx]
            O[0, tx] = T.cast(T.ballot_sync(v > 0), "int64")
            O[1, tx] = T.cast(T.ballot(v % 2 == 0), "int64")
            O[2, tx] = T.any_sync(v > 8) + 2 * T.all_sync(v > -9)
            O[3, tx] = T.syncthreads_count(v > 0)
            O[4, tx] = T.syncthreads_and(v > -9) + 2 * T.syncthreads_or(v > 9)
            O[5, tx] = T.cast(T.activemask(), "int64")
            if tx >= 32 and tx < 40:
                O[5, tx] = T.cast(T.activemask(), "int64")
            M[0, tx] = T.match_any_sync(v % 3)
            M[1, tx] = T.match_all_sync(tx // 32)

    return k


@pytest.mark.parametrize("target,backend", [("cuda", "emulator"), ("cpu", None)])
def test_votes_against_numpy(target, backend, rng):
    for x in (rng.integers(-10, 10, THREADS).astype(np.int32), np.full(THREADS, 3, np.int32)):
        o, m = tilewise.compile(_votes_one_block(), out_idx=[1, 2], target=target, execution_backend=backend)(x)
        want_o, want_m = _expected_votes(x, 0)
        np.testing.assert_array_equal(o, want_o)
        np.testing.assert_array_equal(m, want_m)


def test_votes_compile_to_the_vote_instructions():
    nvrtc_check(_votes_one_block(), expect=["VOTE", "MATCH", ("BAR", "BAR.RED")])
    src = emu(_votes_one_block(), out_idx=[1, 2]).get_kernel_source()
    for name in ("__ballot_sync", "__any_sync", "__all_sync", "__activemask", "__match_any_sync",
                 "__match_all_sync", "__syncthreads_count", "__syncthreads_and", "__syncthreads_or"):
        assert name in src, name


def test_a_vote_in_divergent_code_is_reported():
    @T.prim_func
    def k(X: T.Tensor((64,), "int32"), O: T.Tensor((64,), "int64")):
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding()
            if tx < 16:
                O[tx] = T.cast(T.ballot_sync(X[tx] > 0), "int64")

    with pytest.raises(DivergenceError, match="__ballot_sync"):
        emu(k, out_idx=[1])(np.ones(64, np.int32))


def test_vote_arguments_are_checked():
    with pytest.raises(CompileError, match="integer or boolean predicate"):
        @T.prim_func
        def k(X: T.Tensor((32,), "float32"), O: T.Tensor((32,), "int32")):
            with T.Kernel(1, threads=32):
                tx = T.get_thread_binding()
                O[tx] = T.any_sync(X[tx])


@pytest.mark.parametrize("vote", ["any_sync", "all_sync", "ballot_sync", "ballot", "syncthreads_count",
                                  "syncthreads_and", "syncthreads_or"])
def test_vote_float_predicate_is_a_type_error(vote):
    # TileLang raises a TypeError for a float predicate, wherever the call is written
    with pytest.raises(TypeError, match="integer or boolean predicate"):
        getattr(T, vote)(T.float32(0.5))
    with pytest.raises(TypeError, match="integer or boolean predicate"):
        @T.prim_func
        def k(X: T.Tensor((32,), "float32"), O: T.Tensor((32,), "int32")):
            with T.Kernel(1, threads=32):
                tx = T.get_thread_binding()
                O[tx] = T.cast(getattr(T, vote)(X[tx]), "int32")
    with pytest.raises(CompileError, match="only part of the warp"):
        @T.prim_func
        def k2(X: T.Tensor((32,), "int32"), O: T.Tensor((32,), "int32")):
            with T.Kernel(1, threads=32):
                tx = T.get_thread_binding()
                O[tx] = T.all_sync(X[tx], 0xFFFF)


def test_votes_on_the_hip_target(clang19, rng):
    """A 64-lane wavefront: the ballot fills 64 bits; match and the block votes are clear errors."""
    @T.prim_func
    def k(X: T.Tensor((128,), "int32"), O: T.Tensor((3, 128), "int64")):
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding()
            O[0, tx] = T.cast(T.ballot(X[tx] > 0), "int64")
            O[1, tx] = T.any_sync(X[tx] > 8) + 2 * T.all_sync(X[tx] > -9)
            O[2, tx] = T.cast(T.activemask(), "int64")

    x = rng.integers(-10, 10, 128).astype(np.int32)
    o = tilewise.compile(k, out_idx=[1], target="hip", execution_backend="emulator")(x)
    np.testing.assert_array_equal(o[0].astype(np.uint64), _warp_bits(x > 0, 64))
    np.testing.assert_array_equal(o[1], (_warp_bits(x > 8, 64) != 0) + 2 * (_warp_bits(x > -9, 64) == 2**64 - 1))
    np.testing.assert_array_equal(o[2].astype(np.uint64), np.full(128, 2**64 - 1, np.uint64))

    @T.prim_func
    def m(X: T.Tensor((64,), "int32"), O: T.Tensor((64,), "uint32")):
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding()
            O[tx] = T.match_any_sync(X[tx])

    with pytest.raises(CompileError, match="no warp match instruction"):
        tilewise.compile(m, target="hip", execution_backend="emulator")


# ------------------------------------------------------------------ T.lds* / T.sts*


def _shared_moves():
    N = 128

    @T.prim_func
    def k(X: T.Tensor((N, 4), "float32"), Y: T.Tensor((N, 4), "float32"), Z: T.Tensor((N,), "float32")):
        with T.Kernel(1, threads=N):
            s = T.alloc_shared((N, 4), "float32")
            t = T.alloc_shared((N, 4), "float32")
            tx = T.get_thread_binding()
            for j in T.serial(4):
                s[tx, j] = X[tx, j]
            v = T.lds128(s[(tx + 1) % N, 0:4])  # the neighbour's row: after the barrier
            T.sts128(t[tx, 0:4], v)
            Z[tx] = T.reinterpret(T.lds32(s[tx, 2]), "float32")
            T.stg64(Y[tx, 0:2], T.lds64(s[tx, 0:2]))
            T.sts32(t[tx, 3], T.reinterpret(X[tx, 0], "uint32"))
            for j in T.serial(2):
                Y[tx, 2 + j] = t[tx, 2 * j + 1]

    return k


@pytest.mark.parametrize("target,backend", [("cuda", "emulator"), ("cpu", None)])
def test_lds_sts(target, backend, rng):
    x = rng.standard_normal((128, 4)).astype(np.float32)
    y, z = tilewise.compile(_shared_moves(), out_idx=[1, 2], target=target, execution_backend=backend)(x)
    nxt = np.roll(x, -1, axis=0)
    np.testing.assert_array_equal(y[:, :2], x[:, :2])
    np.testing.assert_array_equal(y[:, 2], nxt[:, 1])
    np.testing.assert_array_equal(y[:, 3], x[:, 0])
    np.testing.assert_array_equal(z, x[:, 2])


def test_lds_sts_are_vector_shared_accesses(archs):
    nvrtc_check(_shared_moves(), expect=["LDS", "STS"])
    for arch in archs:
        sass = tilewise.compile(_shared_moves(), target=f"cuda -arch={arch}", execution_backend="emulator").get_sass()
        assert "LDS.128" in sass and "STS.128" in sass, arch


def test_lds_refuses_global_and_wrong_widths():
    with pytest.raises(CompileError, match="moves shared memory"):
        @T.prim_func
        def k(X: T.Tensor((4,), "float32"), Y: T.Tensor((4,), "uint32")):
            with T.Kernel(1, threads=1):
                Y[0] = T.lds32(X[0])
    with pytest.raises(CompileError, match="holds 96 bits, not 128"):
        @T.prim_func
        def k2(X: T.Tensor((4,), "float32"), Y: T.Tensor((4,), "float32")):
            with T.Kernel(1, threads=1):
                s = T.alloc_shared((4,), "float32")
                T.stg128(Y[0:4], T.lds128(s[0:3]))
