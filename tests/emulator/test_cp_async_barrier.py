"""A two-stage cp.async pipeline with a __syncthreads between each copy's issue and its wait
(the copy of tile i + 1 is issued, the block synchronises, and only in the next iteration does
wait_group 1 complete it): the thread-IR emulator and the PTX interpreter, on the PTX NVRTC
makes of the rendered kernel, both compute the right result and report no race; without the
barrier after the wait (a thread reading a neighbour's chunk that the neighbour's wait landed,
with nothing ordering that wait before the read) the emulator reports the race."""
import numpy as np
import pytest
from ir_builders import addr, intrin, kernel, located

from tilewise.backend.cuda.nvrtc import nvrtc_compile
from tilewise.backend.cuda.renderer import render_cuda
from tilewise.emulator import RaceError, run
from tilewise.ir import Allocate, Buffer, BufferLoad, BufferStore, For, IfThenElse, Var, seq
from tilewise.ir import dtype as dt
from tilewise.jit.runtimes import run_module_ptx

T = 32  # threads; each copies 4 floats (16 bytes) of a 128-float tile
TILES = 5
W = 4 * T


def _pipeline(barrier_after_wait: bool = True):
    A = Buffer("A", (TILES, W), "float32")
    O = Buffer("O", (T * 4,), "float32")

    def build(b, t):
        tx = t[0]
        S = Buffer("S", (2, W), "float32", scope="shared")
        acc = Buffer("acc", (4,), "float32", scope="local")
        i, j = Var("i", dt.int32), Var("j", dt.int32)

        def issue(tile):
            return seq([intrin("cp_async", addr(S, tile % 2, tx * 4), addr(A, tile, tx * 4), 16, bytes=16),
                        intrin("cp_async_commit")])

        nb = (tx + 1) % T  # the neighbour whose chunk this thread consumes
        consume = For(j, 0, 4, "serial", BufferStore(acc, [j], BufferLoad(acc, [j]) + BufferLoad(S, [i % 2, nb * 4 + j])))
        body = [IfThenElse(i + 1 < TILES, issue(i + 1)),
                intrin("syncthreads"),  # a barrier between the issue and its wait
                IfThenElse(i + 1 < TILES, intrin("cp_async_wait", n=1), intrin("cp_async_wait", n=0))]
        if barrier_after_wait:
            body.append(intrin("syncthreads"))  # every thread's copy of tile i has landed
        body += [located(consume), intrin("syncthreads")]  # before the stage is overwritten
        return [Allocate(S), Allocate(acc),
                For(j, 0, 4, "serial", BufferStore(acc, [j], dt.float32(0.0))),
                issue(dt.int32(0)),
                For(i, 0, TILES, "serial", seq(body)),
                For(j, 0, 4, "serial", BufferStore(O, [tx * 4 + j], BufferLoad(acc, [j])))]

    return kernel([A, O], [1], [T], build, name="pipeline")


def _expected(a):
    return np.roll(a.astype(np.float64).sum(axis=0), -4).astype(np.float32)


def test_barrier_between_cp_async_issue_and_wait():
    a = np.random.default_rng(0).standard_normal((TILES, W)).astype(np.float32)
    func = _pipeline()
    o = np.zeros(W, np.float32)
    run(func, [a, o])
    np.testing.assert_allclose(o, _expected(a), rtol=1e-6)
    # the PTX NVRTC makes of the rendered kernel, in the PTX interpreter: the same bits
    mod = render_cuda(func)
    text = nvrtc_compile(mod.source, "sm_80", ptx=True).ptx
    assert "cp.async.wait_group 1" in text and text.count("bar.sync") >= 3
    q = np.zeros(W, np.float32)
    run_module_ptx(text, mod, [a, q], [])
    np.testing.assert_array_equal(q, o)


def test_reading_a_neighbours_copy_before_the_barrier_is_reported():
    a = np.ones((TILES, W), np.float32)
    with pytest.raises(RaceError, match=r"S\[0, 4\].*thread \(1, 0, 0\).*cp.async write.*thread \(0, 0, 0\)"):
        run(_pipeline(barrier_after_wait=False), [a, np.zeros(W, np.float32)])
