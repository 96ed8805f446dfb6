"""Warp and block votes the warp-vote intrinsics compile to (T.activemask, T.match_any_sync /
T.match_all_sync, T.syncthreads_count / _and / _or), with their semantics from the PTX ISA:

- `activemask.b32 d`: bit i of d is set when lane i of the warp is executing the instruction.
- `match.any.sync.b32/.b64 d, a, membermask`: d holds the lanes of the member mask whose `a` has
  the same bits as this lane's; `match.all.sync... d{|p}, a, membermask`: d is the member mask if
  every member lane has the same `a`, else 0 (p: whether they did).
- `bar{.cta}.red.popc.u32 d, a, {!}c` / `bar{.cta}.red.{and,or}.pred p, a, {!}c`: a barrier of the
  whole block (barrier a, which tilewise only uses as 0) that also reduces the predicate c over the
  block's threads: the count of threads where it holds, whether all / any do.

vote.sync itself (T.any_sync, T.all_sync, T.ballot_sync) is in ops_warp.py."""
from __future__ import annotations

import numpy as np

from .decode import Mods, opcode, unsupported
from .errors import DivergenceError
from .syntax import Imm, Not, Pair


@opcode("activemask")
def _activemask(ctx, instr):
    m = Mods(instr)
    m.take_type(("b32",))
    m.done()
    wd = ctx.dst(instr, instr.operands[0], "b32")

    def activemask(st):
        active = st.alive if st.mask is None else st.mask & st.alive
        bits = (active.reshape(-1, 32).astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(axis=1)
        wd(st, np.repeat(bits.astype(np.uint32), 32))

    return activemask


@opcode("match")
def _match(ctx, instr):
    from .ops_warp import _member_check

    m = Mods(instr)
    mode = m.take("any", "all")
    if not m.flag("sync") or mode is None:
        raise unsupported(instr, "match without .sync and .any/.all")
    t = m.take_type(("b32", "b64"))
    m.done()
    d, a, mm = instr.operands
    dp = None
    if isinstance(d, Pair):
        d, dp = d.first, d.second
    ra, rm = ctx.src(instr, a, t), ctx.src(instr, mm, "u32")
    wd = ctx.dst(instr, d, "b32")
    wp = ctx.dst(instr, dp, "pred") if dp is not None else None
    full = np.uint32(0xFFFFFFFF)

    def match(st):
        mmv = rm(st)
        _member_check(st, instr, mmv)
        if np.any(np.asarray(mmv) != full):
            raise unsupported(instr, "a member mask other than all 32 lanes")
        v = np.broadcast_to(np.asarray(ra(st)), (st.T,)).reshape(-1, 32)
        same = v[:, :, None] == v[:, None, :]  # [warp, lane, other lane]
        bits = (same.astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(axis=2).astype(np.uint32)
        if mode == "any":
            wd(st, bits.reshape(-1))
            return
        ok = np.repeat(same.all(axis=(1, 2)), 32)
        wd(st, np.where(ok, full, np.uint32(0)))
        if wp is not None:
            wp(st, ok)

    return match


def bar_red(ctx, instr):
    """`bar.red`: see the module doc (called by ops_warp's bar decoder)."""
    m = Mods(instr)
    m.take("cta")
    m.take("red")
    op = m.take("popc", "and", "or")
    m.take("aligned")
    t = m.take_type(("u32", "pred"))
    m.done()
    if op is None or (op == "popc") != (t == "u32"):
        raise unsupported(instr, "bar.red other than .popc.u32 / .and.pred / .or.pred")
    if ctx.kernel.uses_hopper:
        raise unsupported(instr, "bar.red in a kernel with named barriers or mbarriers")
    ops = instr.operands
    if len(ops) != 3 or not isinstance(ops[1], Imm) or ops[1].value != 0:
        raise unsupported(instr, "bar.red of a barrier other than 0 or of part of the block")
    c = ops[2]
    neg = isinstance(c, Not)
    rc = ctx.src(instr, c.operand if neg else c, "pred")
    wd = ctx.dst(instr, ops[0], t)

    def bar_red(st):
        active = np.ones(st.T, bool) if st.mask is None else st.mask
        missing = st.alive & ~active & np.isin(st.cta, st.cta[active])
        if missing.any():
            t_ = int(np.flatnonzero(missing)[0])
            raise DivergenceError(f"bar.red at {instr.where()} is not reached by {st.thread_name(t_)} while other "
                                  "threads of its block are there: a barrier in divergent code")
        if st.races is not None:
            st.races.barrier(np.unique(st.cta[active]))
        p = np.broadcast_to(np.asarray(rc(st), bool), (st.T,)) ^ neg
        on = p & st.alive
        count = np.bincount(st.cta[on], minlength=st.ncta)
        alive = np.bincount(st.cta[st.alive], minlength=st.ncta)
        if op == "popc":
            wd(st, count[st.cta].astype(np.uint32))
        elif op == "and":
            wd(st, (count == alive)[st.cta])
        else:
            wd(st, (count > 0)[st.cta])

    return bar_red
