"""TMA: cp.async.bulk.tensor loads and stores, and the bulk groups of stores (PTX ISA,
"cp.async.bulk.tensor", "cp.async.bulk.commit_group", "cp.async.bulk.wait_group"):

    cp.async.bulk.tensor.Nd.shared::cluster.global{.tile}.mbarrier::complete_tx::bytes{.L2::cache_hint}
        [dst], [map, {c0, ..., cN-1}], [mbar]{, policy};
    cp.async.bulk.tensor.Nd.global.shared::cta{.tile}.bulk_group{.L2::cache_hint} [map, {c...}], [src]{, policy};
    cp.async.bulk.commit_group;  cp.async.bulk.wait_group{.read} n;

The map operand is the generic address of a `__grid_constant__` kernel parameter (or the
parameter itself); its 128 bytes name a TensorMapDesc of the launch (tensor_map.py). What happens
when is in hopper.py. The issuing threads run one after another, in thread order."""
from __future__ import annotations

import numpy as np

from .decode import Mods, unsupported
from .errors import EmulatorError, MisalignedAddressError
from .hopper import hopper
from .memory import PARAM_WINDOW, WINDOW_SIZE
from .ops_memory import resolve
from .syntax import Imm, Mem, MemList, Reg, Sym, Vec
from .tensor_map import PARAM_BYTES, decode_param, global_offsets, shared_offsets


def bulk(ctx, instr):
    """Decoder for every `cp.async.bulk.*` instruction (called from ops_memory's `cp`)."""
    rest = instr.parts[3:]
    if instr.parts[3:4] == ["commit_group"] and len(rest) == 1:
        return lambda st: hopper(st).bulk_commit(st.idx())
    if instr.parts[3:4] == ["wait_group"]:
        if rest[1:] not in ([], ["read"]):
            raise unsupported(instr, "this cp.async.bulk.wait_group form")
        n = instr.operands[0]
        if not isinstance(n, Imm):
            raise unsupported(instr, "a non-immediate group count")
        k = n.value
        return lambda st: hopper(st).bulk_wait(st.idx(), k)
    if instr.parts[3:4] != ["tensor"]:
        raise unsupported(instr, "bulk copies other than cp.async.bulk.tensor")
    m = Mods(instr)
    m.rest = list(instr.parts[4:])
    rank_mod = m.take("1d", "2d", "3d", "4d", "5d")
    if rank_mod is None:
        raise unsupported(instr, "a tensor copy without a dimension count")
    rank = int(rank_mod[0])
    m.take("tile")
    hint = m.flag("L2::cache_hint")
    if m.take("multicast::cluster"):
        raise unsupported(instr, "multicast to a cluster")
    if m.take("shared::cluster"):
        if not (m.flag("global") and m.flag("mbarrier::complete_tx::bytes")):
            raise unsupported(instr, "this tensor load form")
        m.done()
        return _load(ctx, instr, rank, hint)
    if m.take("global") and m.take("shared::cta") and m.flag("bulk_group"):
        m.done()
        return _store(ctx, instr, rank, hint)
    raise unsupported(instr, "this cp.async.bulk.tensor form")


def _map_operand(ctx, instr, op, rank: int):
    """(reader of the map's parameter offset, coordinate readers) of `[map, {c...}]`."""
    if not isinstance(op, MemList) or len(op.items) != 2 or not isinstance(op.items[1], Vec):
        raise unsupported(instr, "a tensor-map operand that is not [map, {coordinates}]")
    base, coords = op.items
    if len(coords.items) != rank:
        raise unsupported(instr, f"{len(coords.items)} coordinates for a {rank}d copy")
    creaders = [ctx.src(instr, c, "s32") for c in coords.items]
    if isinstance(base, Sym):
        space, off = ctx.symbol(instr, base.name)
        if space != "param":
            raise unsupported(instr, f"a tensor map in .{space} memory")
        return (lambda st: np.uint64(PARAM_WINDOW + off)), creaders
    if isinstance(base, Reg):
        return ctx.src(instr, base, "u64"), creaders
    raise unsupported(instr, f"tensor-map address {base!r}")


def _desc(st, instr, addr: int):
    """The launch's TensorMapDesc (and its global address) at a generic parameter address."""
    off = addr - PARAM_WINDOW
    if not 0 <= off < WINDOW_SIZE:
        raise EmulatorError(f"{instr.where()}: the tensor map at {addr:#x} is not a kernel parameter (the interpreter "
                            "takes tensor maps as __grid_constant__ parameters only)")
    raw = st.launch.params[off : off + PARAM_BYTES]
    k = decode_param(raw)
    if k is None or k >= len(st.launch.tensor_maps):
        raise EmulatorError(f"{instr.where()}: kernel parameter byte {off} does not hold a tensor map (pass a "
                            "tilewise.ptx.TensorMapDesc for that parameter)")
    desc, base, name = st.launch.tensor_maps[k]
    if 0 in desc.dims:
        raise EmulatorError(f"{instr.where()}: a TMA copy through the tensor map {name} of a tensor without elements "
                            f"(dimensions {desc.dims}), which cuTensorMapEncodeTiled cannot encode")
    return desc, base, name


def _coords(st, readers, t: int):
    out = []
    for r in readers:
        v = r(st)
        out.append(int(v) if np.ndim(v) == 0 else int(v[t]))
    return out


def _shared(st, instr, t: int, addr: np.ndarray, nbytes: int) -> np.ndarray:
    """Batch byte offsets of shared addresses `addr` of thread t (checked against its block)."""
    tids = np.full(addr.shape[0], t)
    _, flat = resolve(st, "shared", addr.astype(np.int64), nbytes, instr, tids)
    return flat


def _global_check(st, instr, t: int, addrs: np.ndarray, e: int, name: str):
    def what(i, msg, exc):
        raise exc(f"{msg}: the tensor map {name} describes memory outside its tensor ({st.thread_name(t)} at "
                  f"{instr.where()})")

    return st.mem.offsets(addrs.astype(np.uint64), e, what)


def _load(ctx, instr, rank: int, hint: bool):
    ops = list(instr.operands)
    if hint:
        ops = ops[:-1]
    dst, mp, bar = ops
    if not isinstance(dst, Mem) or not isinstance(bar, Mem):
        raise unsupported(instr, "tensor load operands")
    rdst, _ = ctx.address(instr, dst)
    rbar, _ = ctx.address(instr, bar)
    rmap, rcoords = _map_operand(ctx, instr, mp, rank)
    line = instr.line

    def tma_load(st):
        hs = hopper(st)
        idx = st.idx()
        tids = np.arange(st.T) if idx is None else idx
        maps = np.broadcast_to(rmap(st), (st.T,))
        dsts = np.broadcast_to(rdst(st), (st.T,))
        bars = np.broadcast_to(rbar(st), (st.T,))
        for t in tids.tolist():
            desc, base, name = _desc(st, instr, int(maps[t]))
            if desc.rank != rank:
                raise EmulatorError(f"{instr.where()}: a {rank}d copy with the {desc.rank}-d tensor map {name}")
            d = int(dsts[t])
            if d % 128:
                raise MisalignedAddressError(f"{instr.where()}: the TMA destination at shared byte {d} of "
                                             f"{st.thread_name(t)} is not 128-byte aligned")
            coords = _coords(st, rcoords, t)
            off, ok = global_offsets(desc, coords)
            e = desc.element_bytes
            data = np.zeros((len(off), e), dtype=np.uint8)
            if ok.any():
                heap = _global_check(st, instr, t, base + off[ok], e, name)
                data[ok] = st.mem.bytes[heap[:, None] + np.arange(e)]
            sh = shared_offsets(desc, d)
            flat = _shared(st, instr, t, sh.reshape(-1), 1).reshape(sh.shape)
            chunks = np.unique(flat.reshape(-1) >> 4) << 4
            st.asyncq.check(chunks, 16, np.full(len(chunks), t), instr, "a TMA load's write", write=True, track=False)
            b = hs.bar_index(_shared(st, instr, t, np.asarray([int(bars[t])]), 8), instr, "a TMA load")
            hs.issue_load(flat, data, int(b[0]), line)

    return tma_load


def _store(ctx, instr, rank: int, hint: bool):
    ops = list(instr.operands)
    if hint:
        ops = ops[:-1]
    mp, src = ops
    if not isinstance(src, Mem):
        raise unsupported(instr, "tensor store operands")
    rsrc, _ = ctx.address(instr, src)
    rmap, rcoords = _map_operand(ctx, instr, mp, rank)
    line = instr.line

    def tma_store(st):
        hs = hopper(st)
        idx = st.idx()
        tids = np.arange(st.T) if idx is None else idx
        maps = np.broadcast_to(rmap(st), (st.T,))
        srcs = np.broadcast_to(rsrc(st), (st.T,))
        for t in tids.tolist():
            desc, base, name = _desc(st, instr, int(maps[t]))
            if desc.rank != rank:
                raise EmulatorError(f"{instr.where()}: a {rank}d copy with the {desc.rank}-d tensor map {name}")
            s = int(srcs[t])
            if s % 128:
                raise MisalignedAddressError(f"{instr.where()}: the TMA source at shared byte {s} of "
                                             f"{st.thread_name(t)} is not 128-byte aligned")
            sh = shared_offsets(desc, s)
            flat = _shared(st, instr, t, sh.reshape(-1), 1).reshape(sh.shape)
            words = np.unique(flat.reshape(-1) >> 2)
            hs.async_read(words, "the TMA store", instr, t)
            chunks = np.unique(flat.reshape(-1) >> 4) << 4
            st.asyncq.check(chunks, 16, np.full(len(chunks), t), instr, "a TMA store's read", track=False)
            if st.races is not None:
                st.races.read(flat.reshape(-1), 1, np.full(flat.size, t), instr)
            data = st.shared[flat]
            off, ok = global_offsets(desc, _coords(st, rcoords, t))
            if ok.any():
                e = desc.element_bytes
                heap = _global_check(st, instr, t, base + off[ok], e, name)
                st.mem.bytes[heap[:, None] + np.arange(e)] = data[ok]
            hs.issue_store(t, words, line)

    return tma_store

