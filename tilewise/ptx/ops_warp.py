"""Block- and warp-level instructions: bar.sync / barrier.sync, shfl.sync, vote.sync, elect.sync,
ldmatrix and mma.sync. Fragment layouts are transcribed from the PTX ISA's figures ("Matrix Fragments for
mma.m16n8k16 / m16n8k8 / m16n8k32", "ldmatrix"), with groupID = laneid >> 2 and
threadID_in_group = laneid % 4; they are written here as (row, col) tables per lane and element,
independently of tilewise's own layout code and of its thread-IR emulator.

`.sync.aligned` instructions need every lane of each participating warp in the executing group;
otherwise (or a shfl.sync whose member mask names lanes that are not executing it) the
interpreter raises `DivergenceError`, since a GPU would hang or produce undefined values.

mma numerics: products are exact, the k products and the accumulator are summed in float64 (exact
for the magnitudes of fp16/bf16/tf32 data in tests; the hardware's internal accumulation order is
not specified by PTX) and rounded once to the accumulator type (nearest even). tf32 operands use
the top 19 bits of their .b32 registers (the low 13 mantissa bits are ignored, as the tensor cores
do); integer mma wraps in 32 bits unless `.satfinite`."""
from __future__ import annotations

import numpy as np

from . import floats as fl
from .decode import Mods, opcode, unsupported
from .errors import DivergenceError
from .hopper import hopper
from .ops_memory import resolve
from .syntax import Imm, Pair

_LANE = np.arange(32)
_G = _LANE >> 2
_T = _LANE % 4


def active_warps(st, instr):
    """Indices of the warps executing `instr` (None: all); every lane of each must execute."""
    m = st.mask
    if m is None:
        return None
    w = m.reshape(-1, 32)
    anyw = w.any(axis=1)
    bad = anyw & ~w.all(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        lanes = np.flatnonzero(w[k])
        raise DivergenceError(
            f"{instr.where()} is a warp-synchronous instruction, executed by only {len(lanes)} of the 32 lanes of warp "
            f"{k % (st.tpb // 32)} of block {int(st.cta_ids[k * 32 // st.tpb])} (lanes {lanes.tolist()[:8]}...): the "
            "others diverged or exited"
        )
    return np.flatnonzero(anyw)


# ---------------------------------------------------------------------------- barriers

@opcode("bar", "barrier")
def _bar(ctx, instr):
    m = Mods(instr)
    if m.take("warp"):  # bar.warp.sync membermask (__syncwarp): the named lanes must all be here
        m.take("sync")
        m.done()
        rm = ctx.src(instr, instr.operands[0], "u32")

        def syncwarp(st):
            _member_check(st, instr, rm(st))
            if st.races is not None:  # it orders the memory accesses of the warp's lanes (races.py)
                lanes = np.arange(st.T) if st.mask is None else np.flatnonzero(st.mask)
                st.races.warp_sync(np.unique(lanes // 32))

        return syncwarp
    if "red" in instr.parts:  # bar.red (__syncthreads_count / _and / _or): ops_vote.py
        from .ops_vote import bar_red

        return bar_red(ctx, instr)
    kind = m.take("sync", "arrive")
    m.take("aligned")
    m.done()
    ops = instr.operands
    if is_named_barrier(instr) or (ctx.kernel.uses_hopper and is_block_barrier(instr)):
        return _named_bar(ctx, instr, kind)
    count = ops[1] if len(ops) > 1 else None

    def bar(st):
        if count is not None:
            if not isinstance(count, Imm) or count.value != st.launch.threads_per_block:
                raise unsupported(instr, "a barrier for part of the block")
        m_ = st.mask
        if m_ is None:
            if st.races is not None:
                st.races.barrier(np.arange(st.ncta))
            return
        ctas = np.zeros(st.ncta, dtype=bool)
        ctas[st.cta[m_]] = True
        missing = st.alive & ~m_ & ctas[st.cta]
        if missing.any():
            t = int(np.flatnonzero(missing)[0])
            here = int(np.flatnonzero(m_ & (st.cta == st.cta[t]))[0])
            hs = st.hopper
            why = ""
            if hs is not None and hs.blocked[t] and t in hs.waits:
                why = f" (suspended in the mbarrier wait at PTX line {hs.waits[t][2]})"
            raise DivergenceError(
                f"bar.sync at {instr.where()} is reached by {st.thread_name(here)} while {st.thread_name(t)} of the same "
                f"block is elsewhere{why}: a barrier in divergent code"
            )
        if st.races is not None:
            st.races.barrier(np.flatnonzero(ctas))

    return bar


def is_named_barrier(instr) -> bool:
    """A bar.sync / bar.arrive that may name a barrier other than 0 or part of the block: it runs
    in a basic block of its own, so that its threads can wait there (executor.py)."""
    if instr.parts[0] not in ("bar", "barrier") or "warp" in instr.parts or "red" in instr.parts:
        return False
    ops = instr.operands
    return "arrive" in instr.parts or not ops or not isinstance(ops[0], Imm) or ops[0].value != 0 or len(ops) > 1


def is_block_barrier(instr) -> bool:
    """`bar.sync 0` / `barrier.sync 0` (__syncthreads). In a kernel with mbarriers, threads may be
    suspended in a wait when others reach it, so there it waits like a named barrier."""
    return instr.parts[0] in ("bar", "barrier") and "warp" not in instr.parts and not is_named_barrier(instr)


def _named_bar(ctx, instr, kind: str):
    """`bar.sync id, count` / `bar.arrive id, count`: the executing threads arrive at barrier id of
    their block (counted per thread; count is a multiple of the warp size, so whole warps count as
    32); when `count` threads have arrived the barrier completes and its waiting threads pass
    (hopper.NamedBarriers). Without a count, the whole block is expected."""
    ops = instr.operands
    if kind == "arrive" and len(ops) < 2:
        raise unsupported(instr, "bar.arrive without a thread count")
    rid = ctx.src(instr, ops[0], "u32")
    rcount = ctx.src(instr, ops[1], "u32") if len(ops) > 1 else None

    def named_bar(st):
        hs = hopper(st)
        tids = np.arange(st.T) if st.mask is None else np.flatnonzero(st.mask)
        ids = np.broadcast_to(np.asarray(rid(st), dtype=np.int64), (st.T,))[tids]
        if rcount is None:  # the block's threads that have not exited
            count = np.bincount(st.cta[st.alive], minlength=st.ncta).astype(np.int64)[st.cta[tids]]
        else:
            count = np.broadcast_to(np.asarray(rcount(st), dtype=np.int64), (st.T,))[tids]
        hs.named.arrive(tids, ids, count, wait=kind == "sync", instr=instr, whole_block=rcount is None)

    return named_bar


# ---------------------------------------------------------------------------- shuffles and votes

def _member_check(st, instr, membermask):
    """Every lane named in the member mask of an executing thread must execute too."""
    m = st.mask
    active = np.ones(st.T, dtype=bool) if m is None else m
    bits = (active.reshape(-1, 32).astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(axis=1).astype(np.uint32)
    per_thread = np.repeat(bits, 32)
    mm = np.broadcast_to(np.asarray(membermask, dtype=np.uint32), (st.T,))
    lane_bit = (np.uint32(1) << st.lane).astype(np.uint32)
    bad = active & (((mm & ~per_thread) != 0) | ((mm & lane_bit) == 0))
    if bad.any():
        t = int(np.flatnonzero(bad)[0])
        raise DivergenceError(
            f"{instr.opcode} at {instr.where()}: {st.thread_name(t)} names member mask {int(mm[t]):#010x} but the "
            f"executing lanes of its warp are {int(per_thread[t]):#010x}"
        )


@opcode("shfl")
def _shfl(ctx, instr):
    m = Mods(instr)
    if not m.flag("sync"):
        raise unsupported(instr, "shfl without .sync")
    mode = m.take("up", "down", "bfly", "idx")
    t = m.take_type(("b32",))
    m.done()
    d, a, b, c, mm = instr.operands
    dp = None
    if isinstance(d, Pair):
        d, dp = d.first, d.second
    ra, rb, rc, rm = (ctx.src(instr, a, t), ctx.src(instr, b, "u32"), ctx.src(instr, c, "u32"),
                      ctx.src(instr, mm, "u32"))
    wd = ctx.dst(instr, d, t)
    wp = ctx.dst(instr, dp, "pred") if dp is not None else None

    def shfl(st):
        _member_check(st, instr, rm(st))
        lane = st.lane.astype(np.int64)
        bval = (np.asarray(rb(st)) & np.uint32(31)).astype(np.int64)
        cv = np.asarray(rc(st)).astype(np.int64)
        cval = cv & 31
        seg = (cv >> 8) & 31
        max_lane = (lane & seg) | (cval & ~seg)
        min_lane = lane & seg
        if mode == "up":
            j = lane - bval
            ok = j >= max_lane
        elif mode == "down":
            j = lane + bval
            ok = j <= max_lane
        elif mode == "bfly":
            j = lane ^ bval
            ok = j <= max_lane
        else:
            j = min_lane | (bval & ~seg)
            ok = j <= max_lane
        j = np.where(ok, j, lane)
        src = st.warp_base + j
        av = ra(st)
        if np.ndim(av) == 0:
            out = av
        else:
            out = av[src]
        wd(st, out)
        if wp is not None:
            wp(st, ok)

    return shfl


@opcode("vote")
def _vote(ctx, instr):
    m = Mods(instr)
    if not m.flag("sync"):
        raise unsupported(instr, "vote without .sync")
    mode = m.take("all", "any", "uni", "ballot")
    t = m.take_type(("pred", "b32"))
    m.done()
    d, a, mm = instr.operands
    ra, rm = ctx.src(instr, a, "pred"), ctx.src(instr, mm, "u32")
    wd = ctx.dst(instr, d, t)

    def vote(st):
        mmv = rm(st)
        _member_check(st, instr, mmv)
        p = np.broadcast_to(ra(st), (st.T,))
        mmf = np.broadcast_to(np.asarray(mmv, dtype=np.uint32), (st.T,))
        member = (mmf >> st.lane) & np.uint32(1) != 0
        bits = ((p & member).reshape(-1, 32).astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(axis=1)
        bits = np.repeat(bits.astype(np.uint32), 32)
        if mode == "ballot":
            wd(st, bits)
        elif mode == "any":
            wd(st, bits != 0)
        elif mode == "all":
            wd(st, (bits & mmf) == mmf)
        else:
            wd(st, (bits == 0) | ((bits & mmf) == mmf))

    return vote


# ---------------------------------------------------------------------------- ldmatrix

@opcode("ldmatrix")
def _ldmatrix(ctx, instr):
    m = Mods(instr)
    if not (m.flag("sync") and m.flag("aligned")):
        raise unsupported(instr, "ldmatrix without .sync.aligned")
    shape = m.take("m8n8")
    if shape is None:
        raise unsupported(instr, "ldmatrix shapes other than .m8n8")
    num = m.take("x1", "x2", "x4")
    trans = m.flag("trans")
    space = m.take("shared", "shared::cta")
    m.take_type(("b16",))
    m.done()
    if space is None:
        raise unsupported(instr, "ldmatrix with a generic address")
    n = int(num[1:])
    d, a = instr.operands
    dsts = ctx.regs(instr, d)
    if len(dsts) != n:
        raise unsupported(instr, f"{len(dsts)} destination registers for .x{n}")
    reader, _ = ctx.address(instr, a)
    writers = [ctx.dst_sel(instr, x, "b32") for x in dsts]
    cols = np.arange(8)

    def ldmatrix(st):
        warps = active_warps(st, instr)
        idx = st.idx()
        addr = np.broadcast_to(reader(st), (st.T,))
        if warps is None:
            warps = np.arange(st.nwarps)
        # lanes 8i..8i+7 give the row addresses of matrix i
        lanes = (warps[:, None] * 32 + np.arange(8 * n)[None, :]).reshape(-1)
        _, flat = resolve(st, "shared", addr[lanes], 16, instr, lanes)
        st.asyncq.check(flat, 16, lanes, instr, "an ldmatrix read")
        if st.races is not None:
            st.races.read(flat, 16, lanes, instr)
        rows = st.sviews[2][(flat >> 1)[:, None] + cols]  # (warps * 8n, 8) 16-bit elements
        mats = rows.reshape(len(warps), n, 8, 8)
        if trans:
            mats = mats.transpose(0, 1, 3, 2)
        # lane l receives elements (l // 4, 2 (l % 4) + {0, 1}) of each matrix: row-major pairs
        regs = np.ascontiguousarray(mats).reshape(len(warps), n, 32, 2).view(np.uint32)[..., 0]
        for i, w in enumerate(writers):
            if w is not None:
                w(st, idx, regs[:, i, :].reshape(-1))

    return ldmatrix


# ---------------------------------------------------------------------------- mma.sync

def _table(rows, cols):
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)


def fragment_tables(shape: str, atype: str):
    """(A, B, C) position tables: for operand X, (row[lane, e], col[lane, e]) of element e held
    by `lane` (elements numbered low to high through the registers), from the PTX ISA figures."""
    g, t = _G[:, None], _T[:, None]
    if shape == "m16n8k16" and atype in ("f16", "bf16"):
        i = np.arange(8)[None, :]
        a = _table(g + 8 * ((i % 4) >= 2), t * 2 + (i & 1) + 8 * (i >= 4))
        i = np.arange(4)[None, :]
        b = _table(t * 2 + (i & 1) + 8 * (i >= 2), g + 0 * i)
    elif shape == "m16n8k8" and atype in ("f16", "bf16"):
        i = np.arange(4)[None, :]
        a = _table(g + 8 * (i >= 2), t * 2 + (i & 1))
        i = np.arange(2)[None, :]
        b = _table(t * 2 + (i & 1), g + 0 * i)
    elif shape == "m16n8k8" and atype == "tf32":
        i = np.arange(4)[None, :]
        a = _table(g + 8 * (i % 2), t + 4 * (i >= 2))
        i = np.arange(2)[None, :]
        b = _table(t + 4 * i, g + 0 * i)
    elif shape == "m16n8k32" and atype in ("s8", "u8"):
        i = np.arange(16)[None, :]
        a = _table(g + 8 * ((i % 8) >= 4), t * 4 + (i & 3) + 16 * (i >= 8))
        i = np.arange(8)[None, :]
        b = _table(t * 4 + (i & 3) + 16 * (i >= 4), g + 0 * i)
    elif shape == "m16n8k64" and atype in ("s4", "u4"):
        i = np.arange(32)[None, :]
        a = _table(g + 8 * ((i % 16) >= 8), t * 8 + (i & 7) + 32 * (i >= 16))
        i = np.arange(16)[None, :]
        b = _table(t * 8 + (i & 7) + 32 * (i >= 8), g + 0 * i)
    elif shape == "m16n8k16" and atype in ("s8", "u8"):
        i = np.arange(8)[None, :]
        a = _table(g + 8 * (i >= 4), t * 4 + (i & 3))
        i = np.arange(4)[None, :]
        b = _table(t * 4 + i, g + 0 * i)
    else:
        raise KeyError((shape, atype))
    i = np.arange(4)[None, :]
    c = _table(g + 8 * (i >= 2), t * 2 + (i & 1))
    return a, b, c


_SHAPES = {"m16n8k16": (16, 8, 16), "m16n8k8": (16, 8, 8), "m16n8k32": (16, 8, 32), "m16n8k64": (16, 8, 64)}
_ELEM_BITS = {"f16": 16, "bf16": 16, "tf32": 32, "s8": 8, "u8": 8, "f32": 32, "s32": 32, "s4": 4, "u4": 4}


def _operand_values(words: np.ndarray, typ: str) -> np.ndarray:
    """(warps, 32, registers) uint32 words -> (warps, 32, elements) float64 / int64 values."""
    w = np.ascontiguousarray(words, dtype=np.uint32)
    nw = w.shape[0]
    if typ == "f16":
        return w.view(np.float16).reshape(nw, 32, -1).astype(np.float64)
    if typ == "bf16":
        return fl.from_bits(w.view(np.uint16), fl.BF16).reshape(nw, 32, -1)
    if typ == "tf32":
        return (w & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64)
    if typ == "s8":
        return w.view(np.int8).reshape(nw, 32, -1).astype(np.int64)
    if typ == "u8":
        return w.view(np.uint8).reshape(nw, 32, -1).astype(np.int64)
    if typ in ("s4", "u4"):  # eight per register, the lowest element in the lowest bits
        b = w.view(np.uint8).reshape(nw, 32, -1)
        v = np.stack([b & 0xF, b >> 4], axis=-1).reshape(nw, 32, -1).astype(np.int64)
        return np.where(v >= 8, v - 16, v) if typ == "s4" else v
    if typ == "f32":
        return w.view(np.float32).astype(np.float64)
    if typ == "s32":
        return w.view(np.int32).astype(np.int64)
    raise KeyError(typ)


@opcode("mma")
def _mma(ctx, instr):
    parts = instr.parts
    if parts[1:3] != ["sync", "aligned"]:
        raise unsupported(instr, "mma without .sync.aligned")
    rest = parts[3:]
    sat = False
    if "satfinite" in rest:
        sat = True
        rest = [x for x in rest if x != "satfinite"]
    if len(rest) != 7 or rest[0] not in _SHAPES or rest[1:3] != ["row", "col"]:
        raise unsupported(instr, "mma forms other than <m16n8k*>.row.col.<d>.<a>.<b>.<c>")
    shape, _, _, dt, at, bt, ct = rest
    combos = {
        ("m16n8k16", "f16"): ("f32", "f16"), ("m16n8k16", "bf16"): ("f32",), ("m16n8k8", "f16"): ("f32", "f16"),
        ("m16n8k8", "bf16"): ("f32",), ("m16n8k8", "tf32"): ("f32",), ("m16n8k32", "s8"): ("s32",),
        ("m16n8k32", "u8"): ("s32",), ("m16n8k16", "s8"): ("s32",), ("m16n8k16", "u8"): ("s32",),
        ("m16n8k64", "s4"): ("s32",), ("m16n8k64", "u4"): ("s32",),
    }  # fmt: skip
    okd = combos.get((shape, at))
    integer = at in ("s8", "u8", "s4", "u4")
    same_width = {"s8": "u8", "u8": "s8", "s4": "u4", "u4": "s4"}
    if okd is None or dt not in okd or ct != dt or (bt != at and not (integer and bt == same_width.get(at))):
        raise unsupported(instr, f"mma.{shape} with types d={dt} a={at} b={bt} c={ct}")
    if sat and not integer:
        raise unsupported(instr, ".satfinite on a float mma")
    M, N, K = _SHAPES[shape]
    (ar, ac), (br, bc), (cr, cc) = fragment_tables(shape, at)
    pos_a = (ar * K + ac).reshape(-1)
    pos_b = (br * N + bc).reshape(-1)
    pos_c = (cr * N + cc).reshape(-1)
    d, a, b, c = instr.operands
    regs_a, regs_b, regs_c, regs_d = (ctx.regs(instr, x) for x in (a, b, c, d))
    ebits = _ELEM_BITS[at]
    need_a = M * K * ebits // 32 // 32
    need_b = K * N * ebits // 32 // 32
    need_c = M * N * (16 if dt == "f16" else 32) // 32 // 32
    if (len(regs_a), len(regs_b), len(regs_c), len(regs_d)) != (need_a, need_b, need_c, need_c):
        raise unsupported(instr, f"operand counts {len(regs_a)}/{len(regs_b)}/{len(regs_c)}/{len(regs_d)}")
    ra = [ctx.src(instr, x, "b32") for x in regs_a]
    rb = [ctx.src(instr, x, "b32") for x in regs_b]
    c_t = "f32" if dt == "f32" else ("s32" if dt == "s32" else "b32")
    rc = [ctx.src(instr, x, c_t) for x in regs_c]
    wds = [ctx.dst_sel(instr, x, c_t) for x in regs_d]

    def gather(st, readers, warps):
        cols = [r(st) for r in readers]
        w = np.stack([c if np.ndim(c) else np.broadcast_to(c, (st.T,)) for c in cols], axis=1)
        w = w.view(np.uint32).reshape(-1, 32, len(readers))
        return w if warps is None else w[warps]

    def mma(st):
        warps = active_warps(st, instr)
        idx = st.idx()
        A = _operand_values(gather(st, ra, warps), at)
        B = _operand_values(gather(st, rb, warps), bt)
        nw = A.shape[0]
        cw = gather(st, rc, warps)
        if dt == "f16":
            C = cw.view(np.float16).reshape(nw, 32, -1).astype(np.float64)
        else:
            C = _operand_values(cw, dt)
        work = np.int64 if integer else np.float64
        Am = np.zeros((nw, M * K), dtype=work)
        Am[:, pos_a] = A.reshape(nw, -1)
        Bm = np.zeros((nw, K * N), dtype=work)
        Bm[:, pos_b] = B.reshape(nw, -1)
        Cm = np.zeros((nw, M * N), dtype=work)
        Cm[:, pos_c] = C.reshape(nw, -1)
        D = np.matmul(Am.reshape(nw, M, K), Bm.reshape(nw, K, N)).reshape(nw, M * N) + Cm
        frag = D[:, pos_c].reshape(nw * 32, -1)
        if dt == "f32":
            out = frag.astype(np.float32)
            for j, w in enumerate(wds):
                if w is not None:
                    w(st, idx, out[:, j])
        elif dt == "s32":
            if sat:
                frag = np.clip(frag, -(2**31), 2**31 - 1)
            out = (frag & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
            for j, w in enumerate(wds):
                if w is not None:
                    w(st, idx, out[:, j])
        else:
            h = frag.astype(np.float16).view(np.uint16).astype(np.uint32)
            for j, w in enumerate(wds):
                if w is not None:
                    w(st, idx, h[:, 2 * j] | (h[:, 2 * j + 1] << np.uint32(16)))

    return mma



# ---------------------------------------------------------------------------- elect.sync

@opcode("elect")
def _elect(ctx, instr):
    """elect.sync d|p, membermask (sm_90): the lowest executing lane named in membermask is the
    leader; every member gets its lane number in d, and p is true for the leader only."""
    m = Mods(instr)
    if not m.flag("sync"):
        raise unsupported(instr, "elect without .sync")
    m.done()
    dp, mm = instr.operands
    if not isinstance(dp, Pair):
        raise unsupported(instr, "elect without a d|p destination pair")
    wd = ctx.dst(instr, dp.first, "b32")
    wp = ctx.dst(instr, dp.second, "pred")
    rm = ctx.src(instr, mm, "u32")

    def elect(st):
        _member_check(st, instr, rm(st))
        mmf = np.broadcast_to(np.asarray(rm(st), dtype=np.uint32), (st.T,))
        member = ((mmf >> st.lane) & np.uint32(1)) != 0
        if st.mask is not None:
            member = member & st.mask
        lanes = np.where(member, st.lane, 32).reshape(-1, 32)
        leader = np.repeat(lanes.min(axis=1), 32).astype(np.uint32)
        if wd is not None:
            wd(st, leader)
        if wp is not None:
            wp(st, st.lane == leader)

    return elect
