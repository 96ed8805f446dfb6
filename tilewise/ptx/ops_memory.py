"""Memory instructions: ld, ldu, st, atom, red, cp.async (+ commit_group / wait_group), prefetch.

Addresses are checked on every access: global ones against the table of kernel buffers, shared
ones against the block's shared memory size, local ones against the thread's frame; misaligned
accesses (a vector access must be aligned to its whole size) are reported too. Generic addresses
are split by window into global, shared and local accesses. Shared reads and writes also consult
the cp.async bookkeeping (asyncq.py). Loads from one uniform global address produce a uniform
value. Within one store instruction, threads writing the same bytes leave the highest-numbered
thread's value (any order is allowed by PTX). Atomics apply in thread order: each conflict round
sees the previous one's result, so the final value and every returned old value are those of a
sequential execution. `atom.add.f32` flushes subnormal inputs and results (PTX ISA);
`.noftz` f16/bf16 and f64 adds keep them."""
from __future__ import annotations

import numpy as np

from . import floats as fl
from . import types as ty
from .decode import Mods, opcode, unsupported
from .errors import MisalignedAddressError, OutOfBoundsError
from .memory import GLOBAL_BASE, LOCAL_WINDOW, PARAM_WINDOW, SHARED_WINDOW, WINDOW_SIZE
from .syntax import Reg

_IGNORED = ("weak", "relaxed", "acquire", "release", "volatile", "mmio", "cta", "cluster", "gpu", "sys", "nc",
            "ca", "cg", "cs", "lu", "cv", "wb", "wt", "L1::evict_normal", "L1::evict_unchanged", "L1::evict_first",
            "L1::evict_last", "L1::no_allocate", "L2::evict_normal", "L2::evict_first", "L2::evict_last",
            "L2::64B", "L2::128B", "L2::256B", "unified", "sync", "aligned")
_SPACES = ("global", "shared", "shared::cta", "local", "param", "const", "param::entry", "param::func")
_LOG2 = {1: 0, 2: 1, 4: 2, 8: 3}


# ---------------------------------------------------------------------------- address resolution

def _fail(st, instr, tids):
    def what(i, msg, exc):
        t = int(tids[i]) if tids is not None else i
        raise exc(f"{msg}: {st.thread_name(t)} at {instr.where()}")

    return what


def resolve(st, space: str, addr, nbytes: int, instr, tids):
    """(byte views, flat byte offsets) of `nbytes`-byte accesses at `addr` (one per thread in
    `tids`, None: all threads) in `space` ("global", "shared", "local" / "param_local")."""
    what = _fail(st, instr, tids)
    if space == "global":
        return st.mem.views, st.mem.offsets(addr, nbytes, what)
    a = np.asarray(addr).astype(np.int64)
    if space == "shared":
        limit = st.shared_size
        bad = (a < 0) | (a + nbytes > limit)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            sym = st.kernel.dynamic_start
            what(i, f"a {nbytes}-byte shared access at byte offset {int(a[i])} (smem + {int(a[i]) - sym}) is outside "
                    f"the block's {limit} bytes of shared memory", OutOfBoundsError)
        if nbytes > 1:
            mis = a & (nbytes - 1)
            if mis.any():
                i = int(np.flatnonzero(mis)[0])
                what(i, f"a {nbytes}-byte shared access at byte offset {int(a[i])} is not {nbytes}-byte aligned",
                     MisalignedAddressError)
        cta = st.cta if tids is None else st.cta[tids]
        return st.sviews, cta * st.shared_stride + a
    if space in ("local", "param_local"):
        limit = st.local_stride
        bad = (a < 0) | (a + nbytes > limit)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what(i, f"a {nbytes}-byte local access at byte offset {int(a[i])} is outside the thread's {limit}-byte "
                    "frame", OutOfBoundsError)
        if nbytes > 1:
            mis = a & (nbytes - 1)
            if mis.any():
                i = int(np.flatnonzero(mis)[0])
                what(i, f"a {nbytes}-byte local access at byte offset {int(a[i])} is not aligned", MisalignedAddressError)
        t = np.arange(st.T, dtype=np.int64) if tids is None else tids
        return st.lviews, t * st.local_stride + a
    if space == "param":  # kernel parameters read through generic addresses (__grid_constant__)
        limit = len(st.launch.params)
        bad = (a < 0) | (a + nbytes > limit)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what(i, f"a {nbytes}-byte access at kernel parameter byte {int(a[i])} is outside the {limit} bytes of "
                    "parameters", OutOfBoundsError)
        return st.launch.param_views, a
    raise unsupported(instr, f"the .{space} state space")


def split_generic(a):
    """[(space, selector, address in that space)] for generic addresses `a` (uint64 array)."""
    a = np.asarray(a, dtype=np.uint64)
    sh = (a >= np.uint64(SHARED_WINDOW)) & (a < np.uint64(SHARED_WINDOW + WINDOW_SIZE))
    lo = (a >= np.uint64(LOCAL_WINDOW)) & (a < np.uint64(LOCAL_WINDOW + WINDOW_SIZE))
    pa = (a >= np.uint64(PARAM_WINDOW)) & (a < np.uint64(PARAM_WINDOW + WINDOW_SIZE))
    if not sh.any() and not lo.any() and not pa.any():
        return [("global", None, a)]
    out = []
    gl = ~(sh | lo | pa)
    if gl.any():
        out.append(("global", gl, a[gl]))
    if sh.any():
        out.append(("shared", sh, a[sh] - np.uint64(SHARED_WINDOW)))
    if lo.any():
        out.append(("local", lo, a[lo] - np.uint64(LOCAL_WINDOW)))
    if pa.any():
        out.append(("param", pa, a[pa] - np.uint64(PARAM_WINDOW)))
    return out


def _parts(st, space, addr, nbytes, instr, idx):
    """[(selector within the executing threads, views, flat offsets, space)] of one access."""
    n = st.T if idx is None else len(idx)
    a = np.asarray(addr)
    if a.ndim == 0:
        a = np.full(n, a, dtype=a.dtype)
    if space == "generic":
        out = []
        for sp, sel, sa in split_generic(a):
            tids = idx if sel is None else (np.flatnonzero(sel) if idx is None else idx[sel])
            views, flat = resolve(st, sp, sa, nbytes, instr, tids)
            out.append((sel, views, flat, sp, tids))
        return out
    views, flat = resolve(st, space, a, nbytes, instr, idx)
    return [(None, views, flat, space, idx)]


def _space(m: Mods, instr, symbol_space):
    """The state space of a memory instruction: its modifier, else the space of the symbol it
    addresses, else generic. Function-level `.param` buffers (call sequences) live in local memory."""
    sp = m.take(*_SPACES)
    sp = {"shared::cta": "shared", "param::entry": "param", "param::func": "param_local"}.get(sp, sp)
    if sp is None:
        sp = symbol_space or "generic"
    if sp in ("param", "local") and symbol_space == "param_local":
        sp = "param_local"
    if sp == "const":
        raise unsupported(instr, "the .const state space")
    return sp


def _vec(m: Mods) -> int:
    v = m.take("v2", "v4", "v8")
    return int(v[1:]) if v else 1


# ---------------------------------------------------------------------------- ld / st

@opcode("ld", "ldu")
def _ld(ctx, instr):
    m = Mods(instr)
    d, a = instr.operands[:2]
    if len(instr.operands) > 2:
        m.take("L2::cache_hint")
    reader, sym_space = ctx.address(instr, a)
    space = _space(m, instr, sym_space)
    count = _vec(m)
    t = m.take_type()
    for x in _IGNORED:
        while m.take(x):
            pass
    m.take("L2::cache_hint")
    m.done()
    dt = ty.dtype(t)
    size = dt.itemsize
    dsts = ctx.regs(instr, d)
    if len(dsts) != count:
        raise unsupported(instr, f"{len(dsts)} destinations for .v{count}")
    writers = [ctx.dst_sel(instr, x, t) for x in dsts]
    if space == "param":
        # kernel parameters: uniform bytes of the launch
        def ld_param(st):
            off = int(reader(st))
            raw = st.launch.params[off : off + size * count]
            if len(raw) < size * count:
                raise OutOfBoundsError(f"ld.param past the kernel parameters at {instr.where()}")
            vals = np.frombuffer(raw, dtype=dt)
            idx = st.idx()
            for w, v in zip(writers, vals):
                if w is not None:
                    w(st, idx, v if idx is None else np.full(len(idx), v, dtype=dt))

        return ld_param
    nbytes = size * count
    log = _LOG2[size]
    ar = np.arange(count)

    def ld(st):
        idx = st.idx()
        addr = reader(st)
        if space == "global" and np.ndim(addr) == 0:
            views, flat = resolve(st, "global", np.asarray([addr], dtype=np.uint64), nbytes, instr,
                                  idx if idx is None else idx[:1])
            vals = views[size][(flat[0] >> log) + ar].view(dt)
            for w, v in zip(writers, vals):
                if w is not None:
                    w(st, idx, v if idx is None else np.full(len(idx), v, dtype=dt))
            return
        addr = st.take(addr, idx)
        n = st.T if idx is None else len(idx)
        out = np.empty((n, count), dtype=ty.UINT[size])
        for sel, views, flat, sp, tids in _parts(st, space, addr, nbytes, instr, idx):
            if sp == "shared":
                st.asyncq.check(flat, nbytes, tids, instr, "a read")
                if st.races is not None:
                    st.races.read(flat, nbytes, tids, instr)
            k = flat >> log
            got = views[size][k[:, None] + ar] if count > 1 else views[size][k][:, None]
            if sel is None:
                out = got
            else:
                out[sel] = got
        vals = out.view(dt)
        for j, w in enumerate(writers):
            if w is not None:
                w(st, idx, vals[:, j])

    return ld


@opcode("st")
def _st(ctx, instr):
    m = Mods(instr)
    a, s = instr.operands[:2]
    reader, sym_space = ctx.address(instr, a)
    space = _space(m, instr, sym_space)
    count = _vec(m)
    t = m.take_type()
    for x in _IGNORED:
        while m.take(x):
            pass
    m.take("L2::cache_hint")
    m.done()
    if space == "param":
        raise unsupported(instr, "stores to kernel parameters")
    dt = ty.dtype(t)
    size = dt.itemsize
    srcs = ctx.regs(instr, s)
    if len(srcs) != count:
        raise unsupported(instr, f"{len(srcs)} sources for .v{count}")
    readers = [ctx.src(instr, x, t) for x in srcs]
    nbytes = size * count
    log = _LOG2[size]
    ar = np.arange(count)
    udt = ty.UINT[size]

    def st_(st):
        idx = st.idx()
        addr = st.take(reader(st), idx)
        n = st.T if idx is None else len(idx)
        vals = np.empty((n, count), dtype=udt)
        for j, r in enumerate(readers):
            v = st.take(r(st), idx)
            vals[:, j] = np.asarray(v).view(udt) if np.ndim(v) else np.asarray(v, dtype=dt).view(udt)
        for sel, views, flat, sp, tids in _parts(st, space, addr, nbytes, instr, idx):
            if sp == "param":
                raise unsupported(instr, "stores to kernel parameters")
            if sp == "shared":
                st.asyncq.check(flat, nbytes, tids, instr, "a write", write=True)
                if st.races is not None:
                    st.races.write(flat, nbytes, tids, instr)
            k = flat >> log
            v = vals if sel is None else vals[sel]
            if count > 1:
                views[size][k[:, None] + ar] = v
            else:
                views[size][k] = v[:, 0]

    return st_


@opcode("prefetch", "prefetchu", "discard", "applypriority", "createpolicy")
def _prefetch(ctx, instr):
    if instr.parts[0] == "createpolicy":
        raise unsupported(instr, "createpolicy")
    return lambda st: None


# ---------------------------------------------------------------------------- atomics

_ATOM_OPS = ("add", "min", "max", "inc", "dec", "and", "or", "xor", "exch", "cas")


def _atom_fn(instr, op: str, t: str, noftz: bool):
    """f(old, b, c) -> new, all as numpy values of type t (16-bit floats as bits)."""
    dt = ty.dtype(t)
    if op == "add":
        if t == "f32":
            if noftz:
                return lambda o, b, c: o + b
            return lambda o, b, c: _flush(_flush(o) + _flush(b))
        if t == "f64":
            return lambda o, b, c: o + b
        if t in ("f16", "bf16"):
            fmt = fl.F16 if t == "f16" else fl.BF16
            return lambda o, b, c: fl.to_bits(fl.round_to(fl.from_bits(o, fmt) + fl.from_bits(b, fmt), fmt, "rn"), fmt)
        if t in ("f16x2", "bf16x2"):
            fmt = fl.F16 if t == "f16x2" else fl.BF16

            def add2(o, b, c):
                out = []
                for sh in (0, 16):
                    x = ((o >> np.uint32(sh)) & np.uint32(0xFFFF)).astype(np.uint16)
                    y = ((b >> np.uint32(sh)) & np.uint32(0xFFFF)).astype(np.uint16)
                    r = fl.to_bits(fl.round_to(fl.from_bits(x, fmt) + fl.from_bits(y, fmt), fmt, "rn"), fmt)
                    out.append(r.astype(np.uint32) << np.uint32(sh))
                return out[0] | out[1]

            return add2
        return lambda o, b, c: o + b
    if op in ("min", "max"):
        if t in ("f32", "f64"):
            f = np.fmin if op == "min" else np.fmax
        else:
            f = np.minimum if op == "min" else np.maximum
        return lambda o, b, c: f(o, b)
    if op == "inc":
        return lambda o, b, c: np.where(o >= b, dt.type(0), o + dt.type(1))
    if op == "dec":
        return lambda o, b, c: np.where((o == 0) | (o > b), b, o - dt.type(1))
    if op == "and":
        return lambda o, b, c: o & b
    if op == "or":
        return lambda o, b, c: o | b
    if op == "xor":
        return lambda o, b, c: o ^ b
    if op == "exch":
        return lambda o, b, c: np.broadcast_to(b, np.shape(o)).copy() if np.ndim(b) == 0 else b
    if op == "cas":
        return lambda o, b, c: np.where(o == b, c, o)
    raise unsupported(instr, f"atom.{op}")


def _flush(x):
    x = np.asarray(x, dtype=np.float32)
    return np.where((x != 0) & (np.abs(x) < np.float32(2.0**-126)), np.copysign(np.float32(0), x), x)


def _conflict_rounds(k: np.ndarray, order: np.ndarray):
    """Rank of each access among the accesses to the same word, in `order` (positions)."""
    ks = k[order]
    srt = np.argsort(ks, kind="stable")
    sk = ks[srt]
    n = len(k)
    start = np.ones(n, dtype=bool)
    start[1:] = sk[1:] != sk[:-1]
    first = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    rank_sorted = np.arange(n) - first
    rank = np.empty(n, dtype=np.int64)
    rank[srt] = rank_sorted
    return rank


def atomic_apply(st, space, addr, t, fn, bvals, cvals, instr):
    """Apply fn to each executing thread's word in thread order; returns (idx, old values)."""
    idx = st.idx()
    dt = ty.dtype(t)
    size = dt.itemsize
    log = _LOG2[size]
    addr = st.take(addr, idx)
    n = st.T if idx is None else len(idx)
    b = np.broadcast_to(st.take(bvals, idx), (n,)).astype(dt, copy=False)
    c = None if cvals is None else np.broadcast_to(st.take(cvals, idx), (n,)).astype(dt, copy=False)
    old = np.empty(n, dtype=dt)
    for sel, views, flat, sp, tids in _parts(st, space, addr, size, instr, idx):
        if sp == "shared":
            st.asyncq.check(flat, size, tids, instr, "an atomic", write=True)
        view = views[size].view(dt) if dt.kind != "u" else views[size]
        k = flat >> log
        pos = np.arange(len(k)) if sel is None else np.flatnonzero(sel)
        order = np.arange(len(k))
        perm = st.launch.atomic_order(len(k))
        if perm is not None:
            order = perm
        rank = _conflict_rounds(k, order)
        for r in range(int(rank.max()) + 1 if len(k) else 0):
            j = order[rank == r]
            kk = k[j]
            cur = view[kk]
            old[pos[j]] = cur
            new = fn(cur, b[pos[j]], None if c is None else c[pos[j]])
            view[kk] = np.asarray(new, dtype=dt)
    return idx, old


@opcode("atom", "red")
def _atom(ctx, instr):
    m = Mods(instr)
    is_red = instr.parts[0] == "red"
    ops = instr.operands
    if is_red:
        d, a, b, *rest = None, *ops
    else:
        d, a, b, *rest = ops
    reader, sym_space = ctx.address(instr, a)
    space = _space(m, instr, sym_space)
    op = m.take(*_ATOM_OPS)
    if op is None:
        raise unsupported(instr, "an atomic without an operation")
    noftz = m.flag("noftz")
    t = m.take_type()
    for x in ("relaxed", "acquire", "release", "acq_rel", "sem", "cta", "cluster", "gpu", "sys"):
        m.take(x)
    if m.take("L2::cache_hint"):
        rest = rest[:-1]
    if m.take("v2", "v4", "v8"):
        raise unsupported(instr, "vector atomics")
    m.done()
    if t == "b16" and op not in ("cas", "exch"):
        raise unsupported(instr, f".b16 with .{op}")
    fn = _atom_fn(instr, op, t, noftz)
    rb = ctx.src(instr, b, t)
    rc = ctx.src(instr, rest[0], t) if op == "cas" else None
    wd = ctx.dst_sel(instr, d, t) if d is not None else None

    def run(st):
        idx, old = atomic_apply(st, space, reader(st), t, fn, rb(st), rc(st) if rc else None, instr)
        if wd is not None:
            wd(st, idx, old)

    return run


# ---------------------------------------------------------------------------- cp.async


def _cp_async_mbarrier_arrive(ctx, instr, mods: list):
    """An arrival on the mbarrier triggered when every earlier cp.async of the executing thread
    has landed (without .noinc the pending count is incremented now, so it nets to nothing). The
    copies and the arrival complete in hopper.py, as late as TMA loads do."""
    from .hopper import hopper
    from .ops_mbarrier import shared_offsets

    m = Mods(instr)
    m.rest = list(mods)
    noinc = m.flag("noinc")
    space = m.take("shared", "shared::cta")
    m.take_type(("b64",))
    m.done()
    space = "shared" if space else "generic"
    raddr, _ = ctx.address(instr, instr.operands[0])
    what = "cp.async.mbarrier.arrive" + (".noinc" if noinc else "")

    def cp_async_mbarrier_arrive(st):
        idx = st.idx()
        hs = hopper(st)
        tids = np.arange(st.T) if idx is None else np.asarray(idx)
        bars = hs.bar_index(shared_offsets(st, instr, raddr, space, idx), instr, what)
        hs.cp_arrive(tids, bars, noinc, st.asyncq.issued, instr)

    return cp_async_mbarrier_arrive


@opcode("cp")
def _cp(ctx, instr):
    parts = instr.parts
    if len(parts) < 2 or parts[1] != "async":
        raise unsupported(instr, "cp without .async")
    rest = parts[2:]
    if rest[:1] == ["bulk"]:  # TMA (Hopper)
        from .ops_bulk import bulk

        return bulk(ctx, instr)
    if rest[:2] == ["mbarrier", "arrive"]:  # cp.async.mbarrier.arrive{.noinc}.shared{::cta}.b64 [bar]
        return _cp_async_mbarrier_arrive(ctx, instr, rest[2:])
    if rest == ["commit_group"]:
        return lambda st: st.asyncq.commit(st.idx())
    if rest == ["wait_group"]:
        from .syntax import Imm

        n = instr.operands[0]
        if not isinstance(n, Imm):
            raise unsupported(instr, "a non-immediate group count")
        k = n.value
        return lambda st: st.asyncq.wait(st.idx(), k)
    if rest == ["wait_all"]:
        def wait_all(st):
            idx = st.idx()
            st.asyncq.commit(idx)
            st.asyncq.wait(idx, 0)

        return wait_all
    m = Mods(instr)
    m.rest = list(rest)
    cache = m.take("ca", "cg")
    if cache is None:
        raise unsupported(instr, "cp.async forms other than .ca/.cg")
    dst_sp = m.take("shared", "shared::cta")
    src_sp = m.take("global")
    if dst_sp is None or src_sp is None:
        raise unsupported(instr, "cp.async between spaces other than .shared and .global")
    for x in ("L2::64B", "L2::128B", "L2::256B"):
        m.take(x)
    hint = m.flag("L2::cache_hint")
    m.done()
    ops = list(instr.operands)
    if hint:
        ops = ops[:-1]
    from .syntax import Imm

    dst, src, size_op, *extra = ops
    if not isinstance(size_op, Imm) or size_op.value not in (4, 8, 16):
        raise unsupported(instr, "a cp-size other than 4, 8 or 16")
    cp = size_op.value
    if cache == "cg" and cp != 16:
        raise unsupported(instr, "cp.async.cg with a size other than 16")
    rdst, _ = ctx.address(instr, dst)
    rsrc, _ = ctx.address(instr, src)
    src_size = ignore = None
    if extra:
        e = extra[0]
        if isinstance(e, Reg) and not e.special and e.decl.type == "pred":
            ignore = ctx.src(instr, e, "pred")
        else:
            src_size = ctx.src(instr, e, "u32")
    line = instr.line
    ar = np.arange(cp)

    def cp_async(st):
        idx = st.idx()
        n = st.T if idx is None else len(idx)
        tids = np.arange(st.T) if idx is None else idx
        da = np.broadcast_to(st.take(rdst(st), idx), (n,))
        sa = np.broadcast_to(st.take(rsrc(st), idx), (n,))
        if src_size is not None:
            nb = np.broadcast_to(st.take(src_size(st), idx), (n,)).astype(np.int64)
            if (nb > cp).any():
                i = int(np.flatnonzero(nb > cp)[0])
                raise OutOfBoundsError(f"cp.async src-size {int(nb[i])} exceeds cp-size {cp}: {st.thread_name(int(tids[i]))} "
                                       f"at {instr.where()}")
        elif ignore is not None:
            nb = np.where(np.broadcast_to(st.take(ignore(st), idx), (n,)), 0, cp).astype(np.int64)
        else:
            nb = None
        _, flat_d = resolve(st, "shared", da, cp, instr, idx)
        data = np.zeros((n, cp), dtype=np.uint8)
        if nb is None:
            _, off = resolve(st, "global", sa, cp, instr, idx)
            data[:] = st.mem.bytes[off[:, None] + ar]
        else:
            full = nb == cp
            if full.any():
                sel = np.flatnonzero(full)
                _, off = resolve(st, "global", sa[sel], cp, instr, tids[sel])
                data[sel] = st.mem.bytes[off[:, None] + ar]
            part = (nb > 0) & ~full
            if part.any():
                sel = np.flatnonzero(part)
                # only the first src-size bytes are read: check where they start and end (a copy
                # of src-size 0 reads nothing and its address is not checked)
                what = _fail(st, instr, tids[sel])
                mis = (sa[sel] & np.uint64(cp - 1)) != 0
                if mis.any():
                    i = int(np.flatnonzero(mis)[0])
                    what(i, f"a {cp}-byte cp.async from {st.mem.name_of(int(sa[sel][i]))} is not {cp}-byte aligned",
                         MisalignedAddressError)
                st.mem.offsets(sa[sel], 1, what)
                st.mem.offsets(sa[sel] + (nb[sel] - 1).astype(np.uint64), 1, what)
                off = (sa[sel] - np.uint64(GLOBAL_BASE)).astype(np.int64)
                got = st.mem.bytes[off[:, None] + np.minimum(ar, nb[sel, None] - 1)]
                data[sel] = np.where(ar < nb[sel, None], got, 0)
        st.asyncq.check(flat_d, cp, idx, instr, "a cp.async write", write=True)
        if st.races is not None:
            st.races.write(flat_d, cp, idx, instr, record=False)
        st.asyncq.issue(tids, flat_d, data, line)

    return cp_async
