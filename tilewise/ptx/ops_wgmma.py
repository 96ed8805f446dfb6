"""wgmma (sm_90a): warpgroup matrix multiply-accumulate with operands in shared memory described
by matrix descriptors, written from the PTX ISA ("Asynchronous Warpgroup Level Matrix Multiply-
Accumulate Instructions"), independently of tilewise's lowering and thread-IR emulator.

    wgmma.fence.sync.aligned;  wgmma.commit_group.sync.aligned;  wgmma.wait_group.sync.aligned N;
    wgmma.mma_async.sync.aligned.m64nNkK{.satfinite}.dtype.atype.btype d, a-desc | {a}, b-desc, scale-d
        {, imm-scale-a, imm-scale-b{, imm-trans-a}, imm-trans-b};

A warpgroup is four consecutive warps (128 threads from a multiple of 128); every thread of it
executes these together. D = (scale-a A)(scale-b B) + (scale-d ? D : 0) for a 64 x N tile: A is
64 x K, B is K x N.

**Descriptors** (ISA "Matrix Descriptor Format"): start address >> 4 in bits 0-13, leading-
dimension byte offset (LBO) >> 4 in bits 16-29, stride-dimension byte offset (SBO) >> 4 in bits
32-45, matrix base offset in bits 49-51 (only 0 is supported), swizzle in bits 62-63 (0 none,
1 128-byte, 2 64-byte, 3 32-byte). The operand is read through the ISA's canonical layouts, with
T = 16 bytes of elements and S the swizzle's row bytes; "K-major" means K is the contiguous
dimension (imm-trans 0), "MN-major" the transposed form (imm-trans 1, f16 / bf16 only):
- K-major, no swizzle: 8 x 16-byte core matrices; row r of a core matrix at 16 r, core
  matrices adjacent in K at LBO, adjacent in M/N (8-row groups) at SBO.
- K-major, S-byte swizzle: rows at S bytes, the K extent (32 bytes) within a row, 8-row groups
  at SBO (LBO unused).
- MN-major, no swizzle: core matrices of 8 K-rows x 16 bytes of M/N; K-rows at 16 bytes, core
  matrices adjacent in M/N at SBO, adjacent in K (8-row groups) at LBO.
- MN-major, S-byte swizzle: S bytes of M/N contiguous, K-rows at S bytes, groups of S bytes of
  M/N at LBO, 8-row groups of K at SBO.
Then the swizzle permutes 16-byte chunks by the absolute shared address, as TMA writes them:
a -> a ^ (((a >> 7) mod S/16) << 4).

**Fragments** (ISA figures for wgmma .m64nNk* D and register A): in warp w of the warpgroup,
lane l, g = l >> 2, q = l % 4: accumulator element i (two per 32-bit register for f16) is
D[16 w + g + 8 ((i >> 1) & 1), 8 (i >> 2) + 2 q + (i & 1)]; the A registers hold the mma.sync
A fragment of rows 16 w .. 16 w + 15 (m16n8k16 for 16-bit types, m16n8k8 for tf32, m16n8k32 for
8-bit types).

**Numerics** as for mma.sync (ops_warp.py): exact products summed in float64 and rounded once to
the accumulator type; integer accumulation wraps unless .satfinite. The results are written when
the instruction issues; hopper.py keeps its registers and shared memory reserved until its group
is waited for."""
from __future__ import annotations

import re

import numpy as np

from . import floats as fl
from .decode import opcode, unsupported
from .errors import DivergenceError, EmulatorError, OutOfBoundsError
from .hopper import hopper
from .ops_warp import fragment_tables
from .syntax import Imm, Reg, Vec
from .tensor_map import swizzle

_TYPES = {  # (a, b) -> (K, accumulator types, transposes allowed)
    ("f16", "f16"): (16, ("f32", "f16"), True),
    ("bf16", "bf16"): (16, ("f32",), True),
    ("tf32", "tf32"): (8, ("f32",), False),
    **{(a, b): (32, ("f32", "f16"), False) for a in ("e4m3", "e5m2") for b in ("e4m3", "e5m2")},
    **{(a, b): (32, ("s32",), False) for a in ("s8", "u8") for b in ("s8", "u8")},
}
_BYTES = {"f16": 2, "bf16": 2, "tf32": 4, "e4m3": 1, "e5m2": 1, "s8": 1, "u8": 1}
_SWIZZLE = {0: 0, 1: 128, 2: 64, 3: 32}
_TABLE = {"f16": ("m16n8k16", "f16"), "bf16": ("m16n8k16", "bf16"), "tf32": ("m16n8k8", "tf32"),
          "e4m3": ("m16n8k32", "s8"), "e5m2": ("m16n8k32", "s8"), "s8": ("m16n8k32", "s8"), "u8": ("m16n8k32", "u8")}


def warpgroups(st, instr) -> np.ndarray:
    """Batch indices of the executing warpgroups; each must execute with all 128 threads."""
    if st.tpb % 128:
        raise EmulatorError(f"{instr.where()}: a warpgroup instruction in a block of {st.launch.threads_per_block} "
                            "threads (warpgroups are 128 threads)")
    m = st.mask
    if m is None:
        return np.arange(st.T // 128)
    w = m.reshape(-1, 128)
    anyw = w.any(axis=1)
    bad = anyw & ~w.all(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        lanes = np.flatnonzero(w[k])
        raise DivergenceError(
            f"{instr.where()} is a warpgroup instruction, executed by only {len(lanes)} of the 128 threads of warpgroup "
            f"{k % (st.tpb // 128)} of block {int(st.cta_ids[k * 128 // st.tpb])}: the others diverged or exited")
    return np.flatnonzero(anyw)


def _uniform(values: np.ndarray, what: str, instr) -> np.ndarray:
    """values (warpgroups, 128) -> one per warpgroup; the ISA wants them equal across it."""
    if (values != values[:, :1]).any():
        k = int(np.flatnonzero((values != values[:, :1]).any(axis=1))[0])
        raise EmulatorError(f"{instr.where()}: the {what} differs between the threads of warpgroup {k}")
    return values[:, 0]


def operand_offsets(rows: int, k: int, ebytes: int, mn_major: bool, s: int, lbo: int, sbo: int) -> np.ndarray:
    """(rows, k) byte offsets from the start address, before the swizzle (module doc)."""
    r = np.arange(rows, dtype=np.int64)[:, None]
    c = np.arange(k, dtype=np.int64)[None, :]
    t = 16 // ebytes  # elements per 16 bytes
    if not mn_major:
        if s == 0:
            return (r % 8) * 16 + (r // 8) * sbo + (c % t) * ebytes + (c // t) * lbo
        return (r % 8) * s + (r // 8) * sbo + c * ebytes
    if s == 0:
        return (r % t) * ebytes + (r // t) * sbo + (c % 8) * 16 + (c // 8) * lbo
    per_row = s // ebytes
    return (r % per_row) * ebytes + (r // per_row) * lbo + (c % 8) * s + (c // 8) * sbo


def decode_descriptor(desc: int) -> tuple[int, int, int, int, int]:
    """(start address, LBO, SBO, base offset, swizzle bytes) of a matrix descriptor."""
    desc = int(desc)
    return ((desc & 0x3FFF) << 4, ((desc >> 16) & 0x3FFF) << 4, ((desc >> 32) & 0x3FFF) << 4, (desc >> 49) & 7,
            _SWIZZLE[(desc >> 62) & 3])


def _values(raw: np.ndarray, typ: str) -> np.ndarray:
    """Little-endian element bytes (..., e) -> float64 / int64 values."""
    raw = np.ascontiguousarray(raw)
    shape = raw.shape[:-1]
    if typ == "f16":
        return raw.view(np.float16).reshape(shape).astype(np.float64)
    if typ == "bf16":
        return fl.from_bits(raw.view(np.uint16).reshape(shape), fl.BF16)
    if typ == "tf32":  # the low 13 mantissa bits are ignored
        return (raw.view(np.uint32).reshape(shape) & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64)
    if typ in ("e4m3", "e5m2"):
        return fl.from_bits(raw.reshape(shape), fl.E4M3 if typ == "e4m3" else fl.E5M2)
    if typ == "s8":
        return raw.view(np.int8).reshape(shape).astype(np.int64)
    return raw.reshape(shape).astype(np.int64)  # u8


def _smem_operand(st, hs, instr, wgs, descs, rows, k, typ, mn_major, who):
    """(values (wgs, rows, k), batch words read (wgs, n)) of a descriptor operand."""
    e = _BYTES[typ]
    out_raw = np.empty((len(wgs), rows, k, e), dtype=np.uint8)
    words = []
    for j, (wg, d) in enumerate(zip(wgs.tolist(), descs.tolist())):
        start, lbo, sbo, base, s = decode_descriptor(d)
        if base:
            raise unsupported(instr, f"a {who} descriptor with matrix base offset {base}")
        addr = swizzle(start + operand_offsets(rows, k, e, mn_major, s, lbo, sbo), s)
        cta = wg * 128 // st.tpb
        limit = st.shared_size
        if addr.min() < 0 or addr.max() + e > limit:
            bad = int(addr.max()) if addr.max() + e > limit else int(addr.min())
            raise OutOfBoundsError(
                f"{instr.where()}: the {who} descriptor {d:#018x} (start {start}, LBO {lbo}, SBO {sbo}, swizzle {s}) "
                f"of warpgroup {wg % (st.tpb // 128)} of block {int(st.cta_ids[cta])} reaches shared byte {bad}, "
                f"outside the block's {limit} bytes")
        if (addr % e).any():
            raise EmulatorError(f"{instr.where()}: the {who} descriptor {d:#018x} addresses unaligned elements")
        flat = cta * st.shared_stride + addr
        out_raw[j] = st.shared[flat[..., None] + np.arange(e)]
        w = np.unique(flat.reshape(-1) >> 2)
        hs.async_read(w, f"the wgmma ({who} operand)", instr, wg * 128)
        if st.races is not None:
            b = (flat[..., None] + np.arange(e)).reshape(-1)
            st.races.read(b, 1, np.full(b.size, wg * 128), instr)
        words.append(w)
    n = max(len(w) for w in words)
    padded = np.stack([np.pad(w, (0, n - len(w)), mode="edge") for w in words])
    return _values(out_raw, typ), padded


def _d_positions(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of accumulator element i of warpgroup thread r: arrays (128, n / 2)."""
    r = np.arange(128)[:, None]
    i = np.arange(n // 2)[None, :]
    w, lane = r // 32, r % 32
    g, q = lane >> 2, lane & 3
    return 16 * w + g + 8 * ((i >> 1) & 1), 8 * (i >> 2) + 2 * q + (i & 1)


def _a_positions(typ: str) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of A-register element i of warpgroup thread r (64 x K tile)."""
    (ar, ac), _, _ = fragment_tables(*_TABLE[typ])
    w = np.arange(4)[:, None, None]
    rows = (ar[None] + 16 * w).reshape(128, -1)
    cols = np.broadcast_to(ac[None], (4, *ac.shape)).reshape(128, -1)
    return rows, cols


@opcode("wgmma")
def _wgmma(ctx, instr):
    parts = instr.parts
    op = parts[1] if len(parts) > 1 else ""
    if op in ("fence", "commit_group", "wait_group"):
        if parts[2:] != ["sync", "aligned"]:
            raise unsupported(instr, f"wgmma.{op} without .sync.aligned")
        if op == "fence":  # orders register writes before the wgmma reads them: nothing to do in lockstep
            def fence(st):
                warpgroups(st, instr)

            return fence
        if op == "commit_group":
            return lambda st: hopper(st).wgmma_commit(warpgroups(st, instr))
        n = instr.operands[0] if instr.operands else None
        if not isinstance(n, Imm):
            raise unsupported(instr, "a non-immediate group count")
        k = n.value
        return lambda st: hopper(st).wgmma_wait(warpgroups(st, instr), k)
    if op != "mma_async":
        raise unsupported(instr, f"wgmma.{op}")
    return _mma_async(ctx, instr)


@opcode("setmaxnreg")
def _setmaxnreg(ctx, instr):
    """setmaxnreg.{inc,dec}.sync.aligned.u32 n: a warpgroup's register budget, which changes no
    value (the interpreter's registers are unbounded); checked for warpgroup convergence."""
    if instr.parts[1:] not in (["inc", "sync", "aligned", "u32"], ["dec", "sync", "aligned", "u32"]):
        raise unsupported(instr, "this setmaxnreg form")
    n = instr.operands[0] if instr.operands else None
    if not isinstance(n, Imm) or not 24 <= n.value <= 256 or n.value % 8:
        raise unsupported(instr, "a register count that is not a multiple of 8 from 24 to 256")

    def setmaxnreg(st):
        warpgroups(st, instr)

    return setmaxnreg


def _mma_async(ctx, instr):
    rest = instr.parts[2:]
    if rest[:2] != ["sync", "aligned"]:
        raise unsupported(instr, "wgmma.mma_async without .sync.aligned (or the sparse form)")
    rest = rest[2:]
    sat = "satfinite" in rest
    rest = [x for x in rest if x != "satfinite"]
    if len(rest) != 4:
        raise unsupported(instr, "wgmma.mma_async forms other than .<shape>.<d>.<a>.<b>")
    shape, dt, at, bt = rest
    spec = _TYPES.get((at, bt))
    sm = re.fullmatch(r"m64n(\d+)k(\d+)", shape)
    if spec is None or sm is None:
        raise unsupported(instr, f"wgmma.{shape} with A .{at} and B .{bt}")
    n, k = int(sm.group(1)), int(sm.group(2))
    want_k, accs, transposable = spec
    integer = dt == "s32"
    if k != want_k or dt not in accs or not 8 <= n <= 256 or n % 8 or (sat and not integer):
        raise unsupported(instr, f"wgmma.{shape}{'.satfinite' if sat else ''}.{dt}.{at}.{bt}")
    ops = list(instr.operands)
    d, a, b, sd, *imms = ops
    a_regs = isinstance(a, Vec)
    n_imms = 0 if integer else 2 + (int(not a_regs) + 1 if transposable else 0)
    if len(imms) != n_imms or any(not isinstance(x, Imm) for x in imms):
        raise unsupported(instr, f"{len(imms)} immediate operands (expected {n_imms})")
    scale_a = scale_b = 1
    trans_a = trans_b = 0
    if not integer:
        scale_a, scale_b = imms[0].value, imms[1].value
        if scale_a not in (1, -1) or scale_b not in (1, -1):
            raise unsupported(instr, "imm-scale values other than 1 and -1")
        if transposable:
            trans_b = imms[-1].value
            trans_a = 0 if a_regs else imms[2].value
    if trans_a not in (0, 1) or trans_b not in (0, 1):
        raise unsupported(instr, "imm-trans values other than 0 and 1")
    dregs = ctx.regs(instr, d)
    nd = n // 4 if dt == "f16" else n // 2
    if len(dregs) != nd:
        raise unsupported(instr, f"{len(dregs)} accumulator registers for m64n{n} .{dt} (expected {nd})")
    c_t = {"f32": "f32", "s32": "s32", "f16": "b32"}[dt]
    rd = [ctx.src(instr, x, c_t) for x in dregs]
    wd = [ctx.dst_sel(instr, x, c_t) for x in dregs]
    if a_regs:
        aregs = ctx.regs(instr, a)
        if len(aregs) != 4:
            raise unsupported(instr, f"{len(aregs)} A registers (expected 4)")
        ra = [ctx.src(instr, x, "b32") for x in aregs]
        a_rows, a_cols = _a_positions(at)
    else:
        ra = ctx.src(instr, a, "b64")
    rb = ctx.src(instr, b, "b64")
    if isinstance(sd, Imm):
        rsd = (lambda v: (lambda st: v))(np.bool_(sd.value != 0))
    elif isinstance(sd, Reg) and not sd.special and sd.decl.type == "pred":
        rsd = ctx.src(instr, sd, "pred")
    else:
        raise unsupported(instr, "a scale-d operand that is not a predicate or an immediate")
    uids = frozenset(x.decl.uid for x in dregs + (ctx.regs(instr, a) if a_regs else []) if isinstance(x, Reg) and x.decl)
    d_rows, d_cols = _d_positions(n)
    line = instr.line

    def per_thread(st, reader, dtype):
        v = reader(st)
        return np.broadcast_to(v, (st.T,)) if np.ndim(v) == 0 else v

    def mma(st):
        wgs = warpgroups(st, instr)
        if len(wgs) == 0:
            return
        hs = hopper(st)
        idx = st.idx()
        rows_of = (wgs[:, None] * 128 + np.arange(128)).reshape(-1)  # the executing threads, in order
        nw = len(wgs)
        bdesc = _uniform(per_thread(st, rb, None)[rows_of].reshape(nw, 128), "B descriptor", instr)
        Bv, bwords = _smem_operand(st, hs, instr, wgs, bdesc, n, k, bt, bool(trans_b), "B")
        if a_regs:
            words_a = np.stack([per_thread(st, r, None)[rows_of] for r in ra], axis=1).astype(np.uint32)
            e = _BYTES[at]
            elems = np.ascontiguousarray(words_a).view(np.uint8).reshape(nw, 128, -1, e)
            Av = np.zeros((nw, 64, k), dtype=np.int64 if integer else np.float64)
            Av[:, a_rows, a_cols] = _values(elems, at)
            words = bwords
        else:
            adesc = _uniform(per_thread(st, ra, None)[rows_of].reshape(nw, 128), "A descriptor", instr)
            Av, awords = _smem_operand(st, hs, instr, wgs, adesc, 64, k, at, bool(trans_a), "A")
            words = np.concatenate([awords, bwords], axis=1)
        keep = _uniform(np.asarray(per_thread(st, rsd, None))[rows_of].reshape(nw, 128), "scale-d predicate", instr)
        D = np.matmul(Av * scale_a, np.swapaxes(Bv * scale_b, 1, 2))  # (nw, 64, n)
        old = np.stack([per_thread(st, r, None)[rows_of] for r in rd], axis=1)
        if dt == "f16":
            old_v = np.ascontiguousarray(old.astype(np.uint32)).view(np.float16).astype(np.float64)
        else:
            old_v = old.astype(np.int64 if integer else np.float64)
        old_v = old_v.reshape(nw, 128, -1)
        frag = D[:, d_rows, d_cols] + np.where(keep[:, None, None], old_v, 0)  # (nw, 128, n / 2)
        frag = frag.reshape(nw * 128, -1)
        if dt == "f32":
            outs = frag.astype(np.float32)
        elif dt == "s32":
            if sat:
                frag = np.clip(frag, -(2**31), 2**31 - 1)
            outs = (frag & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
        else:
            h = frag.astype(np.float16).view(np.uint16).astype(np.uint32)
            outs = h[:, 0::2] | (h[:, 1::2] << np.uint32(16))
        sel = rows_of if idx is not None else None
        for j, w in enumerate(wd):
            if w is not None:
                w(st, sel, outs[:, j])
        hs.wgmma_issue(wgs, words, uids, line)

    return mma
