"""The intrinsic calls of thread IR (docs/THREAD_IR.md): barriers, vector moves, cp.async,
ldmatrix, mma.sync, warp shuffles, elect_one, atomics, printing, bit casts. Warp-level semantics
come from `ptx.py`; named barriers and scheduled `__syncthreads` from named_barriers.py,
setmaxnreg from registers.py, the Hopper intrinsics from mbarrier.py, tma.py and wgmma.py."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ir.expr import BufferLoad, Call
from ..ir.stochastic_round import stochastic_round
from . import arith, assertions, async_regs, mbarrier, named_barriers, ptx, races, registers, tma, wavefront, wgmma
from . import extern as _extern
from . import grid_sync as _grid_sync
from . import mfma as _mfma
from . import rng as _rng
from . import warp_sync as _warp_sync
from . import warp_vote as _warp_vote
from .access import Access
from .asyncq import Chunk
from .errors import DivergenceError, MisalignedAddressError, UnsupportedError, element_str, where
from .memory import check_byte_range, check_init

if TYPE_CHECKING:  # annotations only: the compiler calls into this module
    from .compiler import Compiler

# ------------------------------------------------------------------------------ helpers


def _addr(comp: Compiler, e, what: str) -> Access:
    """The access behind `address_of(buf[idx])`."""
    if not (isinstance(e, Call) and e.name == "address_of" and len(e.args) == 1 and isinstance(e.args[0], BufferLoad)):
        raise UnsupportedError(f"expected address_of(buffer[index]) as an address, got {e!r} at {where(comp.span)}")
    load = e.args[0]
    acc = Access(comp, load.buffer, load.indices, what)
    if acc.kind == "pointer":
        raise UnsupportedError(f"{what} of {load.buffer.name}, a tensor at an address read at run time (T.make_tensor "
                               f"from a pointer table), at {where(comp.span)}: the emulator runs element loads and "
                               "stores of such tensors only")
    return acc


def _lanes(st) -> np.ndarray:
    m = st.mask
    return st.lanes if m is None else np.flatnonzero(m)


def _flat(st, acc: Access, storage, off, n: int, lanes: np.ndarray) -> np.ndarray:
    """Flat byte indices [lanes, n] into storage.data of the n bytes at root offset `off`."""
    o = off if np.ndim(off) == 0 else off[lanes]
    if acc.kind == "global":
        base = np.broadcast_to(np.asarray(o, np.int64), lanes.shape)
    elif acc.kind == "shared":
        base = st.lane_block[lanes] * storage.data.shape[1] + o
    else:
        base = lanes * storage.data.shape[1] + o
    return base[:, None] + np.arange(n)


def read_bytes(st, acc: Access, off, n: int, lanes: np.ndarray, shape) -> np.ndarray:
    """The n bytes at `off` for each lane of `lanes`: [lanes, n] uint8 (recorded as reads)."""
    storage = st.store[acc.slot]
    if storage.busy is not None:
        async_regs.check(st, storage, acc.site, off, n, "reads", lanes)
    if acc.kind == "local" and np.ndim(off) == 0 and lanes is st.lanes and storage.init is None:
        return storage.data[:, off:off + n]
    if acc.kind == "global" and storage.shadow is not None:
        races.global_access(st, storage, off if np.ndim(off) == 0 else off[lanes], n, lanes, acc.site.sid, False)
    flat = _flat(st, acc, storage, off, n, lanes)
    if storage.init is not None:
        check_init(st, storage, acc.site, flat, lanes, shape)
    if storage.shadow is not None and acc.kind != "global":
        races.on_read(st, storage, flat.reshape(-1), np.repeat(st.lane_tid[lanes], n), acc.site.sid)
    return storage.data.reshape(-1)[flat]


def write_bytes(st, acc: Access, off, data: np.ndarray, lanes: np.ndarray):
    storage = st.store[acc.slot]
    n = data.shape[1]
    if storage.busy is not None:
        async_regs.check(st, storage, acc.site, off, n, "writes", lanes)
    if acc.kind == "local" and np.ndim(off) == 0 and lanes is st.lanes:
        storage.data[:, off:off + n] = data
        if storage.init is not None:
            storage.init[:, off:off + n] = True
        return
    if acc.kind == "global" and storage.shadow is not None:
        races.global_access(st, storage, off if np.ndim(off) == 0 else off[lanes], n, lanes, acc.site.sid, True,
                            data=data)
    flat = _flat(st, acc, storage, off, n, lanes)
    if storage.shadow is not None and acc.kind != "global":
        races.on_write(st, storage, flat.reshape(-1), np.repeat(st.lane_tid[lanes], n), acc.site.sid)
    storage.data.reshape(-1)[flat] = data
    if storage.init is not None:
        storage.init.reshape(-1)[flat] = True


def check_align(st, acc: Access, off, align: int, lanes: np.ndarray, what: str):
    if np.ndim(off) == 0:
        if off % align == 0 or lanes.size == 0:
            return
        lane = int(lanes[0])
        o = int(off)
    else:
        bad = off[lanes] % align != 0
        if not bad.any():
            return
        k = int(np.flatnonzero(bad)[0])
        lane, o = int(lanes[k]), int(off[lanes][k])
    b = acc.buf
    shape = acc.shape_strides(st)[0]
    elem = (o - b.byte_offset) // b.dtype.bytes
    raise MisalignedAddressError(
        f"misaligned {what}: {element_str(b.name, shape, elem)} ({b.scope} byte offset {o}) is not aligned to "
        f"{align} bytes, by {st.thread_of_lane(lane)} at {where(acc.site.span)}"
    )


def full_warps(st, what: str, span, missing_ok: bool = False) -> np.ndarray | None:
    """Warps with an active lane (bool [warps]) or None for all; raises if a warp that executes a
    warp-wide (.sync.aligned) instruction is only partly active. `missing_ok`: lanes past the
    block's last thread do not count (an AMD wavefront the block fills only partly runs with
    those lanes off, which its wave barrier allows)."""
    m = st.mask
    if m is None and st.full_warps:
        return None
    active = np.ones(st.L, bool) if m is None else m
    mw = st.to_warps(active, fill=False)
    anyw = mw.any(axis=1)
    if missing_ok:
        mw = st.to_warps(active, fill=True)
    partial = anyw & ~mw.all(axis=1)
    if partial.any():
        w = int(np.flatnonzero(partial)[0])
        on = int(np.flatnonzero(mw[w])[0])
        off = int(np.flatnonzero(~mw[w])[0])
        b, wib = divmod(w, st.warps_per_block)
        W = st.warp
        t_on, t_off = wib * W + on, wib * W + off
        missing = (f"{st.describe(b, t_off)} does not" if t_off < st.T
                   else f"the warp has only {st.T - wib * W} threads (threads={list(st.threads)}); lane {off} does not exist and")
        raise DivergenceError(
            f"{what} needs all {W} lanes of a warp, but in warp {wib} {st.describe(b, t_on)} executes it at "
            f"{where(span)} and {missing} execute it"
        )
    return anyw


# ------------------------------------------------------------------------------ dispatch


def compile_call(comp: Compiler, e: Call):
    fn = _HANDLERS.get(e.name)
    if fn is None:
        if e.name.startswith("shfl_"):
            return _shfl(comp, e)
        raise UnsupportedError(f"the emulator does not know the intrinsic {e.name}() at {where(comp.span)}")
    return fn(comp, e)


def _syncthreads(comp: Compiler, e: Call):
    span = comp.span
    sid = comp.prog.new_site(None, span, "__syncthreads").sid

    def sync(st):
        if st.unit is not None:  # warps are scheduled: barrier 0 for the block's threads
            named_barriers.syncthreads_units(st, sid, span)
            return
        m = st.mask
        if m is None:
            blocks = None
        else:
            cnt = m.reshape(st.nb, st.T).sum(axis=1)
            partial = (cnt > 0) & (cnt < st.T)
            if partial.any():
                b = int(np.flatnonzero(partial)[0])
                row = m.reshape(st.nb, st.T)[b]
                t_on, t_off = int(np.flatnonzero(row)[0]), int(np.flatnonzero(~row)[0])
                raise DivergenceError(
                    f"__syncthreads() at {where(span)} is reached by {st.describe(b, t_on)} but not by "
                    f"{st.describe(b, t_off)}: a barrier in divergent code deadlocks or misbehaves on the GPU"
                )
            blocks = np.flatnonzero(cnt == st.T)
            if blocks.size == 0:
                return
        races.block_barrier(st, blocks)

    return sync


def _copy_vec(comp: Compiler, e: Call):
    n = int(e.attrs.get("bytes", 16))
    if n not in (1, 2, 4, 8, 16):
        raise UnsupportedError(f"copy_vec of {n} bytes at {where(comp.span)}")
    dst = _addr(comp, e.args[0], f"{n}-byte vector write")
    src = _addr(comp, e.args[1], f"{n}-byte vector read")
    comp.writes_global(dst)

    def copy_vec(st):
        lanes = _lanes(st)
        if lanes.size == 0:
            return
        soff = src.byte_offset(st)
        doff = dst.byte_offset(st)
        sshape, dshape = src.shape_strides(st)[0], dst.shape_strides(st)[0]
        act = None if st.mask is None else lanes
        check_byte_range(st, src.site, soff, n, act, sshape)
        check_byte_range(st, dst.site, doff, n, act, dshape)
        check_align(st, src, soff, n, lanes, "vector read")
        check_align(st, dst, doff, n, lanes, "vector write")
        data = read_bytes(st, src, soff, n, lanes, sshape)
        write_bytes(st, dst, doff, np.array(data), lanes)
        if st.banks is not None:
            if src.kind == "shared":
                st.banks.record(st, src.site, "ld", soff, n, lanes)
            if dst.kind == "shared":
                st.banks.record(st, dst.site, "st", doff, n, lanes)

    return copy_vec


def _store_vec(comp: Compiler, e: Call):
    """store_vec(dst, v0, ..., vN-1): the N values (of one dtype) into consecutive elements, one
    aligned vector write."""
    dt = e.args[1].dtype
    n = dt.bytes * (len(e.args) - 1)
    if n not in (2, 4, 8, 16) or any(a.dtype != dt for a in e.args[1:]):
        raise UnsupportedError(f"store_vec of {len(e.args) - 1} {dt} values at {where(comp.span)}")
    dst = _addr(comp, e.args[0], f"{n}-byte vector write")
    comp.writes_global(dst)
    fvals = [comp.expr(a) for a in e.args[1:]]
    npdt = arith.np_dtype(dt)

    def store_vec(st):
        lanes = _lanes(st)
        if lanes.size == 0:
            return
        doff = dst.byte_offset(st)
        act = None if st.mask is None else lanes
        check_byte_range(st, dst.site, doff, n, act, dst.shape_strides(st)[0])
        check_align(st, dst, doff, n, lanes, "vector write")
        vals = np.stack([np.broadcast_to(np.asarray(f(st), dtype=npdt), (st.L,))[lanes] for f in fvals], axis=1)
        write_bytes(st, dst, doff, np.ascontiguousarray(vals).view(np.uint8).reshape(lanes.size, n), lanes)
        if st.banks is not None and dst.kind == "shared":
            st.banks.record(st, dst.site, "st", doff, n, lanes)

    return store_vec


# ------------------------------------------------------------------------------ cp.async


def _cp_async(comp: Compiler, e: Call):
    n = int(e.attrs.get("bytes", 16))
    if n not in (4, 8, 16):
        raise UnsupportedError(f"cp_async of {n} bytes at {where(comp.span)} (cp.async copies 4, 8 or 16)")
    dst = _addr(comp, e.args[0], "cp.async write")
    src = _addr(comp, e.args[1], "cp.async read")
    if dst.kind != "shared" or src.kind != "global":
        raise UnsupportedError(f"cp_async copies global to shared memory, got {src.kind} to {dst.kind} at {where(comp.span)}")
    fsize = comp.expr(e.args[2]) if len(e.args) > 2 else (lambda st: n)
    sid = dst.site.sid
    arange = np.arange(n)

    def cp_async(st):
        lanes = _lanes(st)
        if lanes.size == 0:
            return
        act = None if st.mask is None else lanes
        doff = dst.byte_offset(st)
        dshape = dst.shape_strides(st)[0]
        check_byte_range(st, dst.site, doff, n, act, dshape)
        check_align(st, dst, doff, n, lanes, "cp.async destination")
        size = fsize(st)
        size = np.clip(np.broadcast_to(np.asarray(size, np.int64), (st.L,))[lanes], 0, n)
        # only src_bytes bytes are read: a zero-fill copy (src_bytes 0) may point anywhere
        reading = size > 0
        rlanes = lanes[reading]
        st_mask = st.mask
        if rlanes.size != lanes.size:
            m = np.zeros(st.L, bool)
            m[rlanes] = True
            st.mask = m
        try:
            soff = src.byte_offset(st)
        finally:
            st.mask = st_mask
        sshape = src.shape_strides(st)[0]
        data = np.zeros((lanes.size, n), np.uint8)
        if rlanes.size:
            so = soff if np.ndim(soff) == 0 else soff[rlanes]
            rs = size[reading]
            if np.ndim(so) == 0:
                check_byte_range(st, src.site, so, int(rs.max()), rlanes, sshape)
            else:
                _check_src(st, src, so, rs, rlanes, sshape)
            check_align(st, src, soff, n, rlanes, "cp.async source")
            gstore = st.store[src.slot]
            gflat = gstore.data.reshape(-1)
            idx = np.asarray(so, np.int64).reshape(-1, 1) + arange
            valid = arange < rs[:, None]
            data[reading] = np.where(valid, gflat[np.clip(idx, 0, gflat.size - 1)], 0)
            if gstore.shadow is not None:
                races.global_access(st, gstore, so, n, rlanes, src.site.sid, False)
        storage = st.store[dst.slot]
        first = st.lane_block[lanes] * storage.data.shape[1] + (doff if np.ndim(doff) == 0 else doff[lanes])
        if storage.shadow is not None:
            flat = (first[:, None] + arange).reshape(-1)
            races.on_write(st, storage, flat, np.repeat(st.lane_tid[lanes], n), sid, pending=True)
        st.asyncq.issue(Chunk(storage, np.array(lanes), np.asarray(first, np.int64), data, sid))
        if st.banks is not None:
            st.banks.record(st, dst.site, "cp.async", doff, n, lanes)

    return cp_async


def _check_src(st, src: Access, so: np.ndarray, sizes: np.ndarray, rlanes: np.ndarray, shape):
    lo = src.buf.byte_offset
    total = src.buf.dtype.bytes * int(np.prod(shape, dtype=np.int64))
    bad = (so < lo) | (so + sizes > lo + total)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        check_byte_range(st, src.site, int(so[k]), int(sizes[k]), rlanes[k:k + 1], shape)


def _cp_async_commit(comp: Compiler, e: Call):
    def commit(st):
        st.asyncq.commit(st.mask)

    return commit


def _cp_async_wait(comp: Compiler, e: Call):
    n = int(e.attrs.get("n", 0))

    def wait(st):
        st.asyncq.wait(st, n, st.mask)

    return wait


# ------------------------------------------------------------------------------ ldmatrix


def _ldmatrix(comp: Compiler, e: Call):
    num = int(e.attrs.get("num", 4))
    trans = bool(e.attrs.get("trans", False))
    if num not in (1, 2, 4):
        raise UnsupportedError(f"ldmatrix.x{num} at {where(comp.span)}")
    dst = _addr(comp, e.args[0], "ldmatrix register write")
    src = _addr(comp, e.args[1], "ldmatrix read")
    if dst.kind != "local" or src.kind != "shared":
        raise UnsupportedError(f"ldmatrix loads shared memory into registers, got {src.kind} to {dst.kind} at {where(comp.span)}")
    span = comp.span
    src_lane, col = ptx.ldmatrix_sources(num, trans)
    what = f"ldmatrix.x{num}{'.trans' if trans else ''}"

    def ldmatrix(st):
        anyw = full_warps(st, what, span)
        lanes = _lanes(st)
        if lanes.size == 0:
            return
        saved = st.mask
        supply = st.lane_in_warp < 8 * num
        if saved is not None:
            supply = supply & saved
        slanes = np.flatnonzero(supply)
        st.mask = supply
        try:
            soff = src.byte_offset(st)
        finally:
            st.mask = saved
        sshape = src.shape_strides(st)[0]
        check_byte_range(st, src.site, soff, 16, slanes, sshape)
        check_align(st, src, soff, 16, slanes, "ldmatrix row address")
        rows = np.zeros((st.L, 16), np.uint8)
        rows[slanes] = read_bytes(st, src, soff, 16, slanes, sshape)
        if st.banks is not None:  # one phase per 8 x 16-byte matrix: the quarter-warp rule
            st.banks.record(st, src.site, "ldmatrix", soff, 16, slanes)
        rw = st.to_warps(rows.view(np.uint16))  # [warps, 32, 8]
        if anyw is not None:
            rw = rw[anyw]
        out = rw[:, src_lane, col].reshape(rw.shape[0], 32, 2 * num)
        if anyw is not None:
            full = np.zeros((st.num_warps, 32, 2 * num), np.uint16)
            full[anyw] = out
            out = full
        regs = st.from_warps(out).view(np.uint8)  # [L, 4 * num]
        doff = dst.byte_offset(st)
        act = None if saved is None else lanes
        check_byte_range(st, dst.site, doff, 4 * num, act, dst.shape_strides(st)[0])
        check_align(st, dst, doff, 4, lanes, "ldmatrix destination register")
        write_bytes(st, dst, doff, regs if lanes is st.lanes else regs[lanes], lanes)

    return ldmatrix


# ------------------------------------------------------------------------------ mma.sync

_STORAGE_TYPES = {"float16": np.float16, "float32": np.float32, "tfloat32": np.float32, "int8": np.int8,
                  "uint8": np.uint8, "int32": np.int32, "int4": np.uint8, "uint4": np.uint8}  # fmt: skip


def _np_type(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(_STORAGE_TYPES[name])


def _mma(comp: Compiler, e: Call):
    shape = str(e.attrs.get("shape", "m16n8k16"))
    at = ptx.mma_type(e.attrs.get("a_dtype", "float16"))
    bt = ptx.mma_type(e.attrs.get("b_dtype", at))
    ct = ptx.mma_type(e.attrs.get("c_dtype", "float32"))
    if shape not in ptx.MMA_SHAPES:
        raise UnsupportedError(f"mma shape {shape} at {where(comp.span)}")
    ab_ok, c_ok = ptx.MMA_OPERAND_TYPES[shape]
    if at not in ab_ok or bt not in ab_ok or ct not in c_ok or (at in ("float16", "bfloat16") and at != bt):
        raise UnsupportedError(f"mma.{shape} with A {at}, B {bt}, C {ct} at {where(comp.span)}")
    if ct == "float16" and at != "float16":
        raise UnsupportedError(f"mma.{shape} accumulates {at} in float32 only, got C {ct} at {where(comp.span)}")
    ms = ptx.MMA_SHAPES[shape]
    ra, ca = ptx.mma_a_coords(shape, at)
    rb, cb = ptx.mma_b_coords(shape, bt)
    rc, cc = ptx.mma_c_coords(shape)
    a_np, b_np, c_np = _np_type(at), _np_type(bt), _np_type(ct)
    a_from = _inverse(ra * ms.k + ca)  # flat matrix position -> flat (lane, register) index
    b_from = _inverse(rb * ms.n + cb)
    c_to = (rc * ms.n + cc).reshape(-1)
    c_from = _inverse(c_to)
    na, nbv = ra.shape[1], rb.shape[1]
    a_bytes, b_bytes, c_bytes = _operand_bytes(na, at, a_np), _operand_bytes(nbv, bt, b_np), 4 * c_np.itemsize
    A = _addr(comp, e.args[0], f"mma A operand read ({na} x {at})")
    B = _addr(comp, e.args[1], f"mma B operand read ({nbv} x {bt})")
    C = _addr(comp, e.args[2], f"mma accumulator ({4} x {ct})")
    for acc in (A, B, C):
        if acc.kind != "local":
            raise UnsupportedError(f"mma operands live in registers; {acc.buf.name} is {acc.buf.scope} at {where(comp.span)}")
    integer = ct == "int32"
    tf32 = at == "tfloat32" or (shape == "m16n8k8" and at == "float32")
    work = np.int64 if integer else np.float64
    span = comp.span
    what = f"mma.sync.{shape}"

    def mma(st):
        anyw = full_warps(st, what, span)
        lanes = _lanes(st)
        if lanes.size == 0:
            return
        act = None if st.mask is None else lanes
        offs = []
        for acc, nbytes in ((A, a_bytes), (B, b_bytes), (C, c_bytes)):
            off = acc.byte_offset(st)
            check_byte_range(st, acc.site, off, nbytes, act, acc.shape_strides(st)[0])
            offs.append(off)
        av = _unpack4(_read_regs(st, A, offs[0], a_bytes, a_np), at)
        bv = _unpack4(_read_regs(st, B, offs[1], b_bytes, b_np), bt)
        cv = _read_regs(st, C, offs[2], c_bytes, c_np)
        aw, bw, cw = st.to_warps(av), st.to_warps(bv), st.to_warps(cv)
        if anyw is not None:
            aw, bw, cw = aw[anyw], bw[anyw], cw[anyw]
        nw = aw.shape[0]
        if tf32:
            aw, bw = ptx.to_tf32(aw), ptx.to_tf32(bw)
        # the fragment tables are bijections: gather each warp's matrices from its lanes' registers
        am = aw.reshape(nw, -1)[:, a_from].reshape(nw, ms.m, ms.k).astype(work)
        bm = bw.reshape(nw, -1)[:, b_from].reshape(nw, ms.k, ms.n).astype(work)
        cm = cw.reshape(nw, -1)[:, c_from].reshape(nw, ms.m, ms.n).astype(work)
        d = np.matmul(am, bm) + cm
        dw = d.reshape(nw, -1)[:, c_to].reshape(nw, 32, 4).astype(c_np)  # int32 accumulation wraps like the hardware
        if anyw is not None:
            full = np.zeros((st.num_warps, 32, 4), c_np)
            full[anyw] = dw
            dw = full
        out = st.from_warps(dw).view(np.uint8)
        write_bytes(st, C, offs[2], out if lanes is st.lanes else out[lanes], lanes)

    return mma


def _operand_bytes(n: int, typ: str, npdt: np.dtype) -> int:
    """Bytes of n operand elements (int4 / uint4: two per byte)."""
    return n // 2 if typ in ("int4", "uint4") else n * npdt.itemsize


def _unpack4(v: np.ndarray, typ: str) -> np.ndarray:
    """Packed int4 / uint4 registers [L, bytes] -> [L, 2 * bytes] values, the low nibble first
    (PTX: the lowest element in the lowest bits); other types pass through."""
    if typ not in ("int4", "uint4"):
        return v
    b = v.view(np.uint8)
    out = np.stack([b & 0xF, b >> 4], axis=-1).reshape(b.shape[0], -1).astype(np.int8)
    return np.where(out >= 8, out - 16, out).astype(np.int8) if typ == "int4" else out


def _inverse(pos: np.ndarray) -> np.ndarray:
    flat = pos.reshape(-1)
    inv = np.empty(flat.size, np.intp)
    inv[flat] = np.arange(flat.size)
    return inv


def _read_regs(st, acc: Access, off, nbytes: int, npdt: np.dtype) -> np.ndarray:
    """Every lane's registers at `off` as [L, n] of npdt (inactive lanes read too: their warps'
    results are discarded)."""
    storage = st.store[acc.slot]
    if storage.busy is not None:
        async_regs.check(st, storage, acc.site, off, nbytes, "reads")
    if storage.init is not None:
        lanes = _lanes(st)
        flat = _flat(st, acc, storage, off, nbytes, lanes)
        check_init(st, storage, acc.site, flat, lanes, acc.shape_strides(st)[0])
    if np.ndim(off) == 0:
        raw = storage.data[:, off:off + nbytes]
    else:
        safe = np.where(st.mask if st.mask is not None else True, off, acc.buf.byte_offset)
        raw = storage.data[st.lanes[:, None], safe[:, None] + np.arange(nbytes)]
    return np.ascontiguousarray(raw).view(npdt)


# ------------------------------------------------------------------------------ shuffles


def _shfl(comp: Compiler, e: Call):
    mode = ptx.SHFL_MODES.get(e.name)
    if mode is None:
        raise UnsupportedError(f"unknown shuffle {e.name} at {where(comp.span)}")
    width = int(e.attrs.get("width", 32))
    c = ptx.cuda_shfl_c(mode, width) if width <= ptx.WARP else None  # wider: only a 64-lane wavefront has it
    fv = comp.expr(e.args[0])
    fb = comp.expr(e.args[1])
    span = comp.span
    what = f"__{e.name}_sync"

    def shfl(st):
        v = fv(st)
        b = fb(st)
        amd = st.warp != ptx.WARP
        # a wavefront a short block fills only partly runs with the other lanes off: allowed, as
        # long as no lane reads one of them (below)
        full_warps(st, what, span, missing_ok=amd)
        if np.ndim(v) == 0:
            return v
        if amd:  # an AMD wavefront: HIP's __shfl_* definitions
            j = wavefront.shfl_source(e.name, st.lane_in_warp, b, width, st.warp)
            src_tid = st.lane_tid - st.lane_in_warp + j
            bad = (src_tid >= st.T) & (st.mask if st.mask is not None else True)
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise DivergenceError(f"{what} at {where(span)}: {st.thread_of_lane(k)} reads lane "
                                      f"{int(j[k])} of its wavefront, past the block's {st.T} threads")
        elif c is None:
            raise UnsupportedError(f"{what} with width {width} at {where(span)}: a CUDA warp has 32 lanes")
        else:
            j, _ = ptx.shfl_source(mode, st.lane_in_warp, b, c)
        src = np.clip(st.lanes - st.lane_in_warp + j, 0, st.L - 1)
        return v[src]

    return shfl


def _elect_one(comp: Compiler, e: Call):
    """`elect.sync`: true on one active lane of each warp, the lowest."""

    def elect_one(st):
        out = np.zeros(st.L, bool)
        lanes = _lanes(st)
        if lanes.size:
            _, first = np.unique(st.lane_warp[lanes], return_index=True)
            out[lanes[first]] = True
        return out

    return elect_one


# ------------------------------------------------------------------------------ atomics


def _atomic(comp: Compiler, e: Call):
    kind = e.name[len("atomic_"):]
    acc = _addr(comp, e.args[0], f"atomic_{kind}")
    if acc.kind == "local":
        raise UnsupportedError(f"atomic on register buffer {acc.buf.name} at {where(comp.span)}")
    fv = comp.expr(e.args[1])  # atomic_load(addr, order): the order, which the update ignores
    dt = acc.buf.dtype
    if kind in ("load", "store"):  # one memory transaction, in lane order like the updates
        op = (lambda cur, v: cur) if kind == "load" else (lambda cur, v: v)
    else:
        op = arith.binary_fn({"add": "add", "max": "max", "min": "min", "or": "bitor"}[kind], dt)
        if kind in ("max", "min") and dt.is_float and getattr(comp, "warp_size", 32) == 32:
            op = _float_atomic_minmax(kind)
    npdt = acc.npdt
    esize = acc.esize
    if kind != "load":
        comp.writes_global(acc)

    def atomic(st):
        lanes = _lanes(st)
        if lanes.size == 0:
            return arith.const(0, dt)
        off = acc.byte_offset(st)
        act = None if st.mask is None else lanes
        shape = acc.shape_strides(st)[0]
        check_byte_range(st, acc.site, off, esize, act, shape)
        check_align(st, acc, off, esize, lanes, f"atomic_{kind}")
        v = fv(st)
        vals = np.broadcast_to(np.asarray(v, npdt), (st.L,))[lanes]
        storage = st.store[acc.slot]
        o = np.broadcast_to(np.asarray(off, np.int64), (st.L,))[lanes]
        if acc.kind == "shared":
            o = st.lane_block[lanes] * storage.data.shape[1] + o
            flat = (o[:, None] + np.arange(esize)).reshape(-1)
            if storage.shadow is not None and kind == "load":  # a read: races only with plain writes
                races.on_read(st, storage, flat, np.repeat(st.lane_tid[lanes], esize), acc.site.sid)
            elif storage.shadow is not None:
                races.on_write(st, storage, flat, np.repeat(st.lane_tid[lanes], esize), acc.site.sid, atomic=True)
            if storage.init is not None and kind != "load":
                storage.init.reshape(-1)[flat] = True
        elif storage.shadow is not None:
            races.global_access(st, storage, o, esize, lanes, acc.site.sid, kind != "load", atomic=True)
        mem = storage.typed(npdt).reshape(-1)
        # PTX's atom/red.add.f32 flushes subnormal inputs and results to sign-preserving zero
        # (an AMD wavefront's float atomics do not)
        upd = _ftz_add if kind == "add" and dt.name == "float32" and st.warp == ptx.WARP else op
        old = serialised_update(mem, o // esize, vals, upd, st.atomic_rng)
        out = np.zeros(st.L, npdt)
        out[lanes] = old
        return out

    return atomic


def _float_atomic_minmax(kind: str):
    """TileLang's float atomic_max / atomic_min on CUDA (its atomic.h: a compare-and-swap loop
    for float16 / bfloat16, libcu++'s fetch_max / fetch_min for the others, both the same rule):
    the value is stored only when it is strictly greater (smaller) than the stored one. So -0
    does not replace +0 nor +0 -0, a NaN value never stores, and a stored NaN stays (no value
    compares greater or smaller than it)."""
    if kind == "min":
        return lambda cur, v: np.where(v < cur, v, cur)
    return lambda cur, v: np.where(cur < v, v, cur)


def _cvt_rs(comp: Compiler, e: Call):
    """T.cast(x, round="rs", rbits=r): stochastic rounding (ir/stochastic_round.py)."""
    fx, fr = comp.expr(e.args[0]), comp.expr(e.args[1])
    dt = e.dtype

    def cvt_rs(st):
        return stochastic_round(fx(st), fr(st), dt)

    return cvt_rs


def _flush(x: np.ndarray) -> np.ndarray:
    """float32 subnormals to zero of the same sign."""
    x = np.asarray(x, np.float32)
    return np.where(np.abs(x) < np.finfo(np.float32).tiny, np.copysign(np.float32(0), x), x).astype(np.float32)


def _ftz_add(cur: np.ndarray, v: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return _flush(_flush(cur) + _flush(v))


def serialised_update(mem: np.ndarray, pos: np.ndarray, vals: np.ndarray, op, rng=None) -> np.ndarray:
    """mem[pos[i]] = op(mem[pos[i]], vals[i]) one lane after another, each seeing the previous
    result; returns each lane's old value. Lanes hitting one address apply in lane order, or
    with `rng` in a random order (a GPU does not define it: float sums differ in their last bits)."""
    n = pos.size
    if rng is None:
        order = np.argsort(pos, kind="stable")
    else:
        order = np.lexsort((rng.random(n), pos))
    ps = pos[order]
    first = np.ones(n, bool)
    first[1:] = ps[1:] != ps[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - start
    old = np.empty(n, mem.dtype)
    for r in range(int(rank.max()) + 1 if n else 0):
        sel = np.flatnonzero(rank == r)
        p = pos[sel]
        cur = mem[p]
        old[sel] = cur
        mem[p] = op(cur, vals[sel])
    return old


# ------------------------------------------------------------------------------ misc


def _reinterpret(comp: Compiler, e: Call):
    fv = comp.expr(e.args[0])
    src, dst = e.args[0].dtype, e.dtype
    if src.bytes != dst.bytes:
        raise UnsupportedError(f"reinterpret of {src} as {dst} (different sizes) at {where(comp.span)}")
    npdt = arith.np_dtype(dst)
    src_np = arith.np_dtype(src)

    def reinterpret(st):
        v = fv(st)
        if np.ndim(v) == 0:
            return np.asarray(v, src_np).reshape(1).view(npdt)[0]
        return np.ascontiguousarray(v, src_np).view(npdt)

    return reinterpret


def _fma(comp: Compiler, e: Call):
    """a * b + c rounded once (float32: the product is exact in float64, the sum an exact pair)."""
    fa, fb, fc = (comp.expr(x) for x in e.args)
    npdt = arith.np_dtype(e.dtype)
    fn = arith.fma
    if comp.ftz and npdt == np.float32:
        from .compiler import _ftz

        fn = _ftz(arith.fma)
    return lambda st: fn(fa(st), fb(st), fc(st), npdt)


def _tf32_round(comp: Compiler, e: Call):
    fv = comp.expr(e.args[0])
    return lambda st: ptx.round_tf32_rna(fv(st))


def _dp4a(comp: Compiler, e: Call):
    fa, fb, fc = (comp.expr(a) for a in e.args)
    return lambda st: arith.dp4a(fa(st), fb(st), fc(st))


def _address_of(comp: Compiler, e: Call):
    raise UnsupportedError(f"address_of used as a value at {where(comp.span)}; only intrinsics take addresses")


def _print(comp: Compiler, e: Call):
    msg = e.attrs.get("msg", "")
    label = e.attrs.get("label", "")
    fblock = [comp.expr(a) for a in e.args[:3]]
    prefix = f"{msg}: " if msg else ""
    if e.attrs.get("kind") == "msg":

        def print_msg(st):
            bs = [np.broadcast_to(np.asarray(f(st)), (st.L,)) for f in fblock]
            for lane in _lanes(st):
                print(f"{msg}: block ({int(bs[0][lane])}, {int(bs[1][lane])}, {int(bs[2][lane])})", flush=True)

        return print_msg
    if e.attrs.get("kind", "scalar") == "scalar":
        fv = comp.expr(e.args[3])

        def print_scalar(st):
            lanes = _lanes(st)
            v = np.broadcast_to(np.asarray(fv(st)), (st.L,))
            bs = [np.broadcast_to(np.asarray(f(st)), (st.L,)) for f in fblock]
            for lane in lanes:
                line = f"{prefix}block ({int(bs[0][lane])}, {int(bs[1][lane])}, {int(bs[2][lane])}) {label} = {_fmt(v[lane])}"
                print(line, flush=True)

        return print_scalar
    ndim = int(e.attrs["ndim"])
    acc = _addr(comp, e.args[3], "print read")
    fdims = [comp.expr(a) for a in e.args[4:4 + 3 * ndim]]

    def print_tile(st):
        lanes = _lanes(st)
        base = np.broadcast_to(np.asarray(acc.byte_offset(st), np.int64), (st.L,))
        bs = [np.broadcast_to(np.asarray(f(st)), (st.L,)) for f in fblock]
        dims = [np.broadcast_to(np.asarray(f(st)), (st.L,)) for f in fdims]
        storage = st.store[acc.slot]
        for lane in lanes:
            ext = [int(d[lane]) for d in dims[:ndim]]
            strides = [int(d[lane]) for d in dims[ndim:2 * ndim]]
            starts = [int(d[lane]) for d in dims[2 * ndim:]]
            head = f"{prefix}block ({int(bs[0][lane])}, {int(bs[1][lane])}, {int(bs[2][lane])}) "
            for idx in np.ndindex(*ext):
                off = int(base[lane]) + sum(i * s for i, s in zip(idx, strides)) * acc.esize
                row = 0 if acc.kind == "global" else (int(st.lane_block[lane]) if acc.kind == "shared" else int(lane))
                v = storage.data[row, off:off + acc.esize].view(acc.npdt)[0]
                pos = ", ".join(str(s + i) for s, i in zip(starts, idx))
                print(f"{head}{label}[{pos}] = {_fmt(v)}", flush=True)

    return print_tile


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (np.integer, int)):
        return str(int(v))
    return f"{float(v):g}"


_HANDLERS = {
    "syncthreads": _syncthreads,
    "copy_vec": _copy_vec,
    "cp_async": _cp_async,
    "cp_async_commit": _cp_async_commit,
    "cp_async_wait": _cp_async_wait,
    "ldmatrix": _ldmatrix,
    "mma_sync": _mma,
    "atomic_add": _atomic,
    "atomic_max": _atomic,
    "atomic_min": _atomic,
    "cvt_rs": _cvt_rs,
    "atomic_or": _atomic,
    "atomic_load": _atomic,
    "atomic_store": _atomic,
    "reinterpret": _reinterpret,
    "dp4a": _dp4a,
    "tf32_round": _tf32_round,
    "fma": _fma,
    "store_vec": _store_vec,
    "address_of": _address_of,
    "print": _print,
    **assertions.HANDLERS,
    "elect_one": _elect_one,
    **named_barriers.HANDLERS,
    **registers.HANDLERS,
    **mbarrier.HANDLERS,
    **tma.HANDLERS,
    **wgmma.HANDLERS,
    **_mfma.HANDLERS,  # AMD MFMA over 64-lane wavefronts (emulator/mfma.py)
    **_extern.HANDLERS,  # T.call_extern of the CUDA math functions
    **_warp_sync.HANDLERS,  # T.sync_warp
    **_warp_vote.HANDLERS,  # T.any_sync, T.ballot, T.match_any_sync, T.syncthreads_count, ...
    **_grid_sync.HANDLERS,  # T.sync_grid, T.pdl_trigger, T.pdl_sync
    **_rng.HANDLERS,  # T.rng_init, T.rng_rand, T.rng_rand_float
}
