"""The tile-operator contract (tileop/base.py): passes ask an operator what it reads and writes,
how its operands are remapped and how it lowers for a target, instead of guessing. An operator
defined here, outside the package, gets barriers, pipelining and lowering from that alone."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError
from tilewise.ir.buffer import Buffer, BufferRegion
from tilewise.ir.builder import emit
from tilewise.ir.expr import BufferLoad, Var
from tilewise.ir.stmt import BufferStore, For, Stmt
from tilewise.tileop import cuda_common as cc
from tilewise.tileop.base import LowerContext, TileOp, add_lowering, lowering
from tilewise.tileop.reduce import Reduce
from tilewise.tileop.region import as_region, corresponding_dim, region_indices


class Twice(TileOp):
    """out = 2 * inp over a 1-D tile; its write is under a field not called `dst`."""

    op_name = "twice"
    _fields = ("inp", "out")

    def __init__(self, inp: BufferRegion, out: BufferRegion):
        self._init()
        self.inp, self.out = inp, out

    def reads(self) -> list[BufferRegion]:
        return [self.inp]

    def writes(self) -> list[BufferRegion]:
        return [self.out]

    def _element(self, i) -> Stmt:
        return BufferStore(self.out.buffer, region_indices(self.out, [i]),
                           BufferLoad(self.inp.buffer, region_indices(self.inp, [i])) * 2)

    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        i = ctx.fresh("i")
        return For(i, 0, self.out.extents[0], "serial", self._element(i))

    @lowering("cuda")
    def lower_cuda(self, ctx) -> Stmt:
        # each thread takes some elements: the threads that read `out` afterwards read elements
        # other threads wrote, so a barrier is needed between
        return cc.chunk_loop(ctx, self.out.extents[0], self._element)


class WriteUndeclared(Twice):
    """The same operator, lying about its write."""

    def writes(self) -> list[BufferRegion]:
        return []


def _kernel(n: int = 64, op=Twice):
    def twice(inp, out) -> None:
        emit(op(as_region(inp, "twice"), as_region(out, "twice")))

    @T.prim_func
    def k(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32")):
        with T.Kernel(1, threads=32):
            s = T.alloc_shared((n,), "float32")
            t = T.alloc_shared((n,), "float32")
            T.copy(A, s)
            twice(s, t)
            for i in T.Parallel(n):
                B[n - 1 - i] = t[i]  # reversed: every thread reads what another wrote

    return k


def _syncs(func) -> int:
    return tilewise.lower(func, target="cuda").kernel_source.count("__syncthreads()")


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_an_operator_defined_outside_the_package_runs(target):
    a = np.arange(64, dtype=np.float32)
    k = tilewise.compile(_kernel(), out_idx=[1], target=target, execution_backend="auto")
    np.testing.assert_array_equal(k(a), (2 * a)[::-1])  # the emulator would report a missing barrier


def test_its_declared_write_gets_a_barrier():
    assert _syncs(_kernel()) == _syncs(_kernel(op=WriteUndeclared)) + 1
    # and without it the emulator sees the race the barrier prevents
    k = tilewise.compile(_kernel(op=WriteUndeclared), out_idx=[1], target="cuda", execution_backend="emulator")
    with pytest.raises(tilewise.emulator.RaceError):
        k(np.arange(64, dtype=np.float32))


def test_an_operator_without_declared_accesses_is_an_internal_error():
    class Undeclared(TileOp):
        _fields = ()

    with pytest.raises(tilewise.InternalError, match="Undeclared does not declare"):
        Undeclared().writes()


def test_lowerings_are_looked_up_by_key_most_specific_first():
    op = Twice(BufferRegion.full(Buffer("x", (4,), "float32", "shared")),
               BufferRegion.full(Buffer("y", (4,), "float32", "shared")))
    assert isinstance(op.lower(LowerContext(("loops",))), For)
    with pytest.raises(CompileError, match="T.twice has no lowering for this target"):
        op.lower(LowerContext(("hip",)))
    add_lowering(Twice, "hip", lambda self, ctx: "hip form")
    try:
        assert op.lower(LowerContext(("hip", "loops"))) == "hip form"
        assert isinstance(op.lower(LowerContext(("gfx", "loops"))), For)  # falls back to the next key
    finally:
        del Twice._lowerings["hip"]


def test_remapped_operands_keep_reduce_dim_pointing_at_the_same_tile_dimension():
    tile = Buffer("t", (4, 8), "float32", "shared")
    out = Buffer("o", (4,), "float32", "local.fragment")
    op = Reduce(BufferRegion.full(tile), BufferRegion.full(out), "sum", 1, True)
    # multi-buffered: a slot dimension in front
    slots = Buffer("t", (3, 4, 8), "float32", "shared")
    moved = op.with_fields(src=BufferRegion(slots, [(Var("s"), 1), (0, 4), (0, 8)]))
    assert moved.dim == 2 and op.dim == 1
    # placed inside a larger tensor whose unit dimension comes between
    g = Buffer("G", (2, 4, 5, 8), "float32", "global")
    inside = op.with_fields(src=BufferRegion(g, [(1, 1), (0, 4), (2, 1), (0, 8)]))
    assert inside.dim == 3
    assert corresponding_dim(op.src, inside.src, 0) == 1


def test_multi_buffered_reduce_in_a_pipeline_reduces_the_right_dimension():
    M, N, K = 16, 32, 4

    @T.prim_func
    def k(A: T.Tensor((K * M, N), "float32"), S: T.Tensor((K, M), "float32")):
        with T.Kernel(1, threads=64):
            a = T.alloc_shared((M, N), "float32")
            r = T.alloc_fragment((M,), "float32")
            for ko in T.Pipelined(K, num_stages=2):
                T.copy(A[ko * M, 0], a)
                T.reduce_sum(a, r, dim=1)
                T.copy(r, S[ko, 0])

    a = np.random.default_rng(0).standard_normal((K * M, N)).astype(np.float32)
    for target in ("cpu", "cuda"):
        s = tilewise.compile(k, out_idx=[1], target=target)(a)
        np.testing.assert_allclose(s, a.reshape(K, M, N).sum(axis=2), rtol=1e-5, atol=1e-5)
