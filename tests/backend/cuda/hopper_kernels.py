"""Hand-built Hopper thread IR (docs/THREAD_IR.md, "Hopper"): TMA boxes, mbarriers and wgmma,
shared by the CUDA toolchain tests and the PTX interpreter tests, plus the helpers that run a
rendered module through NVRTC and the PTX interpreter.

`wgmma_gemm` stages each operand in shared memory in one of wgmma's canonical layouts (K-major
or MN-major, swizzled or not) with TMA boxes chosen so that the box lands exactly in that
layout, and describes it with a matching descriptor; the descriptor arithmetic here follows the
PTX ISA's canonical layouts (see tilewise/ptx/ops_wgmma.py for the reading side)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tilewise.backend.cuda.nvrtc import nvrtc_compile
from tilewise.backend.cuda.renderer import render_cuda
from tilewise.ir import (
    Allocate,
    Buffer,
    BufferStore,
    Call,
    Evaluate,
    For,
    IfThenElse,
    Kernel,
    PrimFunc,
    Select,
    SeqStmt,
    Var,
    as_expr,
)
from tilewise.ir import dtype as dt
from tilewise.ir.tensor_map import TensorMap
from tilewise.jit.runtimes import run_module_ptx

THREADS = 128


def addr(load):
    return Call("address_of", [load], dt.handle)


def intrin(name, *args, **attrs):
    return Evaluate(Call(name, list(args), dt.handle, attrs))


def desc(buf, byte, swizzle, lbo, sbo):
    return Call("wgmma_desc", [addr(buf[byte])], dt.uint64, {"swizzle": swizzle, "lbo": lbo, "sbo": sbo})


def align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


# ---------------------------------------------------------------------------- operand staging


@dataclass
class Staging:
    """How one wgmma operand (rows = its M or N extent) sits in shared memory per K stage."""

    boxes: list  # (smem byte offset, coords(mn0, k0) -> coordinates outermost first)
    box: tuple  # the TMA box, outermost first (in the global tensor's dimension order)
    kstage: int  # K elements per stage
    nbytes: int  # bytes of the staged tile
    descs: list  # per wgmma of the stage: (start byte, lbo, sbo)
    swizzle: int


def staging(rows: int, e: int, kw: int, mn_major: bool, s: int) -> Staging:
    """The canonical layout of a rows x K operand with e-byte elements (kw = K per wgmma)."""
    t = 16 // e  # elements per 16 bytes
    if not mn_major:  # global tensor (rows, K), K contiguous
        if s:
            kst = s // e
            return Staging([(0, lambda mn, k: [mn, k])], (rows, kst), kst, rows * s,
                           [(kk * 32, 16, 8 * s) for kk in range(kst // kw)], s)
        # no swizzle: 16-byte columns of K, each its own box of rows x 16 bytes (core matrices)
        kst = kw
        boxes = [(j * rows * 16, (lambda j: lambda mn, k: [mn, k + j * t])(j)) for j in range(kw // t)]
        return Staging(boxes, (rows, t), kst, rows * kw * e, [(0, rows * 16, 128)], 0)
    # MN-major: global tensor (K, rows), rows contiguous
    if s:
        per = s // e
        kst = 64
        boxes = [(j * kst * s, (lambda j: lambda mn, k: [k, mn + j * per])(j)) for j in range(rows // per)]
        return Staging(boxes, (kst, per), kst, rows * kst * e, [(kk * kw * s, kst * s, 8 * s) for kk in range(kst // kw)], s)
    kst = kw
    boxes = [(j * kst * 16, (lambda j: lambda mn, k: [k, mn + j * t])(j)) for j in range(rows // t)]
    return Staging(boxes, (kst, t), kst, rows * kst * e, [(0, 128, kst * 16)], 0)


_KW = {1: 32, 2: 16, 4: 8}  # K per wgmma by element bytes


def d_position(tx, i):
    """(row, col) of accumulator element i of thread tx in the 64 x N tile (PTX's wgmma D)."""
    lane = tx % 32
    return (tx // 32) * 16 + lane // 4 + ((i // 2) % 2) * 8, (i // 4) * 8 + (lane % 4) * 2 + i % 2


def a_position(tx, j, e: int):
    """(row, col) of A-register element j of thread tx in the 64 x K tile (the mma.sync A fragment
    of the thread's warp, 16 rows per warp)."""
    lane = tx % 32
    g, q, w = lane // 4, lane % 4, tx // 32
    if e == 2:
        return w * 16 + g + ((j // 2) % 2) * 8, q * 2 + j % 2 + (j // 4) * 8
    if e == 4:
        return w * 16 + g + (j % 2) * 8, q + (j // 2) * 4
    return w * 16 + g + ((j // 4) % 2) * 8, q * 4 + j % 4 + (j // 8) * 16


def wgmma_gemm(a_t="float16", c_t="float32", n_tile=64, *, a_regs=False, trans_a=False, trans_b=False, swizzle=128,
               acc_init=0.0, tma_store=False, name=None) -> PrimFunc:
    """C[M, N] = A[M, K] B[N, K]^T (A stored K x M when trans_a, B stored K x N when trans_b) over
    dynamic M, N, K, one warpgroup per 64 x n_tile tile of C: per K stage one thread expects the
    bytes on an mbarrier and issues the TMA boxes, everyone waits for the phase, then a wgmma per
    K step (the first with scale-d 0 over an accumulator initialised to `acc_init`), commit and
    wait, and a barrier before the next stage overwrites the tiles. The epilogue stores the D
    fragment (or stages it in shared memory for a TMA store)."""
    M, N, K = Var("M"), Var("N"), Var("K")
    a_dt, c_dt = dt.as_dtype("float32" if a_t == "tfloat32" else a_t), dt.as_dtype(c_t)
    e = a_dt.bytes
    kw = _KW[e]
    A = Buffer("A", (K, M) if trans_a else (M, K), a_dt)
    B = Buffer("B", (K, N) if trans_b else (N, K), a_dt)
    C = Buffer("C", (M, N), c_dt)
    sb = staging(n_tile, e, kw, trans_b, swizzle)
    sa = None if a_regs else staging(64, e, kw, trans_a, swizzle)
    kst = sb.kstage
    if sa is not None and sa.kstage != kst:
        raise ValueError("A and B stage different K extents")
    a_off = 0
    b_off = align(sa.nbytes, 1024) if sa else 0
    c_off = align(b_off + sb.nbytes, 1024)
    c_bytes = 64 * n_tile * c_dt.bytes if tma_store else 0
    bar_off = align(c_off + c_bytes, 16)
    total = bar_off + 8
    smem = Buffer("smem", (total,), "uint8", scope="shared.dyn")
    At = Buffer("A_tile", (max(sa.nbytes if sa else 16, 16),), "uint8", scope="shared.dyn", base=smem)
    Bt = Buffer("B_tile", (sb.nbytes,), "uint8", scope="shared.dyn", base=smem)
    Bt.byte_offset = b_off
    At.byte_offset = a_off
    bar = Buffer("bar", (1,), "uint64", scope="shared.dyn", base=smem)
    bar.byte_offset = bar_off
    Ct = Buffer("C_tile", (64, n_tile), c_dt, scope="shared.dyn", base=smem)
    Ct.byte_offset = c_off
    nd = n_tile // 2
    acc = Buffer("acc", (nd,), c_dt, scope="local")
    nsteps = kst // kw
    npa = {1: 16, 2: 8, 4: 4}[e]
    afrag = Buffer("a_frag", (nsteps, npa), a_dt, scope="local")
    maps = []
    b_map = TensorMap("B_map", B, sb.box, sb.swizzle)
    maps.append(b_map)
    if sa is not None:
        a_map = TensorMap("A_map", A, sa.box, sa.swizzle)
        maps.append(a_map)
    stage_bytes = (len(sb.boxes) * math.prod(sb.box) + (len(sa.boxes) * math.prod(sa.box) if sa else 0)) * e
    shape = f"m64n{n_tile}k{kw}"
    attrs = {"shape": shape, "a_dtype": a_t, "b_dtype": a_t, "c_dtype": c_t, "a_regs": a_regs,
             "trans_a": int(trans_a), "trans_b": int(trans_b)}

    bx, by, tx = Var("bx"), Var("by"), Var("tx")
    ko, i = Var("ko"), Var("i")
    m0, n0 = by * 64, bx * n_tile
    issue = [intrin("mbarrier_arrive_expect_tx", addr(bar[0]), as_expr(stage_bytes))]
    for st_, buf, mp, mn0 in ((sa, At, maps[-1], m0), (sb, Bt, b_map, n0)):
        if st_ is None:
            continue
        for off, coords in st_.boxes:
            issue.append(intrin("tma_load", addr(buf[off]), addr(bar[0]), *coords(mn0, ko * kst), map=mp.name))
    step = []
    if a_regs:
        loads = []
        for s_ in range(nsteps):
            for jj in range(npa):
                r, c = a_position(tx, jj, e)
                row, col = m0 + r, ko * kst + s_ * kw + c
                val = A[col, row] if trans_a else A[row, col]
                loads.append(BufferStore(afrag, (s_, jj), Select((row < M) & (col < K), val, as_expr(0, a_dt))))
        step += loads
    step.append(intrin("wgmma_fence"))
    for s_ in range(nsteps):
        b_start, b_lbo, b_sbo = sb.descs[s_ if len(sb.descs) > 1 else 0]
        if a_regs:
            a_arg = addr(afrag[s_, 0])
        else:
            a_start, a_lbo, a_sbo = sa.descs[s_ if len(sa.descs) > 1 else 0]
            a_arg = desc(At, a_start, sa.swizzle, a_lbo, a_sbo)
        scale = Select(ko > 0, as_expr(1), as_expr(0)) if s_ == 0 else as_expr(1)
        step.append(intrin("wgmma", addr(acc[0]), a_arg, desc(Bt, b_start, sb.swizzle, b_lbo, b_sbo), scale, **attrs))
    step += [intrin("wgmma_commit"), intrin("wgmma_wait", n=0), intrin("syncthreads")]
    loop = SeqStmt([
        IfThenElse(tx == 0, SeqStmt(issue)),
        intrin("mbarrier_wait", addr(bar[0]), ko % 2),
        *step,
    ])
    r, c = d_position(tx, i)
    if tma_store:
        epilogue = [
            For(i, 0, nd, "unroll", BufferStore(Ct, (r, c), acc[i])),
            intrin("fence_proxy_async"),
            intrin("syncthreads"),
            IfThenElse(tx == 0, SeqStmt([intrin("tma_store", addr(Ct[0, 0]), m0, n0, map="C_map"),
                                         intrin("tma_store_commit"), intrin("tma_store_wait", n=0)])),
        ]
        maps.append(TensorMap("C_map", C, (64, n_tile), 0))
    else:
        epilogue = [For(i, 0, nd, "unroll",
                        IfThenElse((m0 + r < M) & (n0 + c < N), BufferStore(C, (m0 + r, n0 + c), acc[i])))]
    allocs = [Allocate(smem), Allocate(At), Allocate(Bt), Allocate(bar), Allocate(acc, as_expr(acc_init, c_dt))]
    allocs += [Allocate(Ct)] if tma_store else []
    allocs += [Allocate(afrag)] if a_regs else []
    body = SeqStmt([
        *allocs,
        IfThenElse(tx == 0, SeqStmt([intrin("mbarrier_init", addr(bar[0]), as_expr(1)), intrin("fence_barrier_init")])),
        intrin("syncthreads"),
        For(ko, 0, (K + kst - 1) // kst, "serial", loop),
        *epilogue,
    ])  # fmt: skip
    kernel = Kernel([bx, by], [(N + n_tile - 1) // n_tile, (M + 63) // 64], [THREADS], [tx], body,
                    attrs={"tensor_maps": maps})
    name = name or f"gemm_{a_t}_{c_t}_n{n_tile}{'_rs' if a_regs else ''}{'_ta' if trans_a else ''}" \
                   f"{'_tb' if trans_b else ''}_sw{swizzle}"
    return PrimFunc(name, [A, B, C], kernel)


def gemm_reference(A, B, trans_a, trans_b, c_t):
    a = A.T if trans_a else A
    b = B if trans_b else B.T
    if np.issubdtype(a.dtype, np.integer):
        return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    return a.astype(np.float64) @ b.astype(np.float64)


# ---------------------------------------------------------------------------- TMA boxes


def tma_roundtrip(rank: int, dtype: str, box: tuple, swizzle: int) -> PrimFunc:
    """Load the box at scalar coordinates c0.. (outermost first, possibly out of range) of X,
    dump the shared bytes it landed in to R, then TMA-store the box at the same coordinates into
    Y (elements outside Y are not written)."""
    dims = [Var(f"d{k}") for k in range(rank)]
    X = Buffer("X", tuple(dims), dtype)
    Y = Buffer("Y", tuple(dims), dtype)
    nbytes = math.prod(box) * dt.as_dtype(dtype).bytes
    R = Buffer("R", (nbytes,), "uint8")
    coords = [Var(f"c{k}") for k in range(rank)]
    smem = Buffer("smem", (align(nbytes, 128) + 8,), "uint8", scope="shared.dyn")
    S = Buffer("S", (nbytes,), "uint8", scope="shared.dyn", base=smem)
    bar = Buffer("bar", (1,), "uint64", scope="shared.dyn", base=smem)
    bar.byte_offset = align(nbytes, 128)
    tx, i = Var("tx"), Var("i")
    body = SeqStmt([
        Allocate(smem), Allocate(S), Allocate(bar),
        IfThenElse(tx == 0, SeqStmt([intrin("mbarrier_init", addr(bar[0]), as_expr(1)), intrin("fence_barrier_init")])),
        intrin("syncthreads"),
        IfThenElse(tx == 0, SeqStmt([
            intrin("mbarrier_arrive_expect_tx", addr(bar[0]), as_expr(nbytes)),
            intrin("tma_load", addr(S[0]), addr(bar[0]), *coords, map="X_map"),
        ])),
        intrin("mbarrier_wait", addr(bar[0]), as_expr(0)),
        For(i, 0, (nbytes + THREADS - 1) // THREADS, "serial",
            IfThenElse(i * THREADS + tx < nbytes, BufferStore(R, (i * THREADS + tx,), S[i * THREADS + tx]))),
        intrin("syncthreads"),
        IfThenElse(tx == 0, SeqStmt([intrin("tma_store", addr(S[0]), *coords, map="Y_map"),
                                     intrin("tma_store_commit"), intrin("tma_store_wait", n=0)])),
    ])  # fmt: skip
    maps = [TensorMap("X_map", X, box, swizzle), TensorMap("Y_map", Y, box, swizzle)]
    bx = Var("bx")
    k = Kernel([bx], [1], [THREADS], [tx], body, attrs={"tensor_maps": maps})
    return PrimFunc(f"tma_{rank}d_{dtype}_sw{swizzle}", [X, Y, R, *coords], k)


def swizzled_box(x: np.ndarray, coords, box, swizzle: int) -> np.ndarray:
    """The bytes a TMA load of `box` at `coords` (outermost first) leaves in 1024-aligned shared
    memory: the dense box (zeros outside x), then 16-byte chunks permuted within 128-byte lines."""
    out = np.zeros(box, dtype=x.dtype)
    src = tuple(slice(max(c, 0), max(min(c + b, n), 0)) for c, b, n in zip(coords, box, x.shape))
    dst = tuple(slice(s.start - c, s.stop - c) for s, c in zip(src, coords))
    if all(s.stop > s.start for s in src):
        out[dst] = x[src]
    raw = out.reshape(-1).view(np.uint8)
    if not swizzle:
        return raw
    a = np.arange(raw.size)
    chunk = (a >> 4) & 7
    line = (a >> 7) & (swizzle // 16 - 1)
    moved = (a & ~0x70) | ((chunk ^ line) << 4)
    res = np.empty_like(raw)
    res[moved] = raw
    return res


# ---------------------------------------------------------------------------- running


def run_ptx(func: PrimFunc, arrays: list, dims: dict, arch: str = "sm_90a", **options):
    """Render, compile to PTX with NVRTC and run every kernel in the PTX interpreter; `dims`
    gives the dynamic dimensions by name."""
    mod = render_cuda(func)
    ptx_text = nvrtc_compile(mod.source, arch, ptx=True).ptx
    return run_module_ptx(ptx_text, mod, arrays, [dims[v.name] for v in mod.dynamic_vars], **options)



# ---------------------------------------------------------------------------- seeded bugs


def without(func: PrimFunc, *names: str) -> PrimFunc:
    """func with every statement calling one of `names` removed (a seeded bug)."""
    from tilewise.ir.visitor import Mutator

    class Drop(Mutator):
        def visit_Evaluate(self, s):
            return SeqStmt([]) if isinstance(s.value, Call) and s.value.name in names else s

    return PrimFunc(func.name, func.params, Drop().visit(func.body))


def with_attrs(func: PrimFunc, name: str, **attrs) -> PrimFunc:
    """func with the attributes of every `name` call replaced (in place)."""
    from tilewise.ir.visitor import Visitor

    class Set(Visitor):
        def visit_Call(self, e):
            if e.name == name:
                e.attrs.update(attrs)
            self.generic_visit(e)

    Set().visit(func.body)
    return func
