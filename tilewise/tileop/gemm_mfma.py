"""T.gemm on AMD GPUs (the "hip" lowering key, gfx942): layout rules and lowering onto MFMA.

Layout inference (strict level): the accumulator takes the MFMA C layout repeated over the wave
tile and the wave grid (layout/mfma_layouts.py mfma_c_tv); a register operand the MFMA A / B
layout (with the k_pack order of mfma_emitter.choose_k_pack); a shared operand the LDS swizzle
of layout/lds_swizzle.py (unless annotated): 16-byte chunks XORed by a row phase, as on NVIDIA
GPUs, whose phase also changes every 8th row. gfx942's LDS (32 banks of 4 bytes) serves 8 lanes
of a 16-byte read per phase: with k_pack 2 a lane reads its A items (and B's when B is stored
N x K) of two MFMAs as one ds_read_b128, and the 8 lanes of a phase read 8 consecutive rows that
the swizzle puts in 8 different chunks. A B tile stored K x N is read along K by 2-byte items, 32
lanes per phase on two rows 8 apart (16x16 MFMAs), which the every-8th-row term separates. Chunks
stay whole, so the copies filling the tile store 16 bytes per lane. The emulator's bank counter
checks both (tests/hip/test_gemm_mfma.py); only single-step runs (k_pack 1, 8-byte reads of 16
rows) keep a 2-way conflict that no chunk-preserving layout avoids.

Operand types without an MFMA (float32, float64) take the CUDA FMA fallback (SimtEmitter): its
accumulator layout (mma_c_tv) is a plain distribution over the threads, and its operands stay
in shared memory."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.expr import Const
from ..ir.span import at
from ..ir.stmt import Stmt, seq
from ..layout.lds_swizzle import make_mfma_swizzled_layout
from ..layout.mfma_layouts import mfma_a_tv, mfma_b_tv, mfma_c_tv, wave_grid_for
from ..layout.mma import GemmWarpPolicy
from ..layout.swizzle import make_padded_layout
from ..layout.tv import mma_c_tv
from .base import InferLevel, add_lowering
from .cuda_common import whole_fragment
from .fill import Fill
from .gemm import Gemm
from .mfma_emitter import MfmaEmitter, choose_k_pack, choose_shape, mfma_instr_for
from .mma_emitter import SimtEmitter, warp_grid_for


def is_amd(machine) -> bool:
    return machine is not None and "hip" in machine.lowering_keys


def _instr(op, threads: int, machine, shape: str | None = None):
    arch = machine.name if machine is not None else "gfx942"
    ins = mfma_instr_for(op, arch=arch)
    if ins is None:
        return None
    return mfma_instr_for(op, shape or choose_shape(op, threads), arch)


def _kernel_shape(op: Gemm, li) -> str:
    """The MFMA shape of `op` in its kernel: choose_shape's, except that 32x32 is taken only when
    every MFMA T.gemm whose accumulator is linked to this one (used in one T.Parallel loop or
    operator with it, directly or through other fragments) can take it too. The two C layouts
    spread rows differently (16x16: a row over 16 lanes, 4 row groups; 32x32: over 32 lanes, 2
    groups), so a row vector reduced from one accumulator could not scale the other
    (FlashAttention / MLA decoding: scores_scale from the score tile, applied to the output)."""
    shape = choose_shape(op, li.threads)
    if shape != "32x32":
        return shape
    arch = li.machine.name if li.machine is not None else "gfx942"
    for other in li.operators:
        if other is op or not isinstance(other, Gemm) or not li.linked(other.C.buffer, op.C.buffer):
            continue
        if mfma_instr_for(other, arch=arch) is not None and choose_shape(other, li.threads_of(other)) != "32x32":
            return "16x16"
    return shape


def _shape_of_accumulator(op: Gemm, ctx) -> str | None:
    """The shape layout inference chose for `op` (_kernel_shape), read back from its accumulator's
    layout: the 32x32 C layout, or else 16x16."""
    M, N, _ = op.mnk
    try:
        ins32 = _instr(op, ctx.threads, ctx.machine, "32x32")
        grid = wave_grid_for(M, N, ctx.threads, GemmWarpPolicy(op.policy).name, ins32)
        want = mfma_c_tv(M, N, grid, ctx.threads, ins32)
    except CompileError:
        return "16x16"
    return "32x32" if ctx.fragment_layout(op.C.buffer).same_as(want) else "16x16"


def infer_layout_mfma(op: Gemm, li, level: InferLevel) -> None:
    if level != InferLevel.STRICT:
        return
    with at(op.span):
        for r in (op.A, op.B, op.C):
            if r.buffer.is_fragment:
                whole_fragment(r, "T.gemm")
        M, N, K = op.mnk
        T = li.threads
        ins = _instr(op, T, li.machine)
        if ins is not None:
            ins = _instr(op, T, li.machine, _kernel_shape(op, li))
        if ins is None:
            for r, what in ((op.A, "A"), (op.B, "B")):
                if r.buffer.is_fragment:
                    raise CompileError(
                        f"T.gemm on an AMD target: {r.buffer.dtype} operands have no MFMA form in tilewise, so {what} "
                        f"({r.buffer.name}) must be in shared memory, not a fragment")
            g = warp_grid_for(op, T)
            li.set_fragment(op.C.buffer, mma_c_tv(M, N, g.warp_m, g.warp_n, T), op.span)
            for r in (op.A, op.B):
                li.set_shared(r.buffer, make_padded_layout(r.buffer))
            return
        grid = wave_grid_for(M, N, T, GemmWarpPolicy(op.policy).name, ins)
        kp = choose_k_pack(op, ins)
    li.set_fragment(op.C.buffer, mfma_c_tv(M, N, grid, T, ins), op.span)
    # a transposed register operand (A stored K x M, B stored N x K) holds the same registers
    if op.A.buffer.is_fragment:
        tv = mfma_a_tv(M, K, grid, T, ins, kp)
        li.set_fragment(op.A.buffer, tv.remap((K, M), {0: 1, 1: 0}) if op.trans_A else tv, op.span)
    else:
        li.set_shared(op.A.buffer, make_mfma_swizzled_layout(op.A.buffer, row_groups=op.trans_A and ins.m == 16))
    if op.B.buffer.is_fragment:
        tv = mfma_b_tv(K, N, grid, T, ins, kp)
        li.set_fragment(op.B.buffer, tv.remap((N, K), {0: 1, 1: 0}) if op.trans_B else tv, op.span)
    else:
        # B stored K x N is read along K: 2-byte (1-byte) items of rows 8 (16) apart in one phase,
        # which only 16x16 MFMAs put in one phase (32x32: the 32 lanes read one row)
        across = not op.trans_B and ins.n == 16
        li.set_shared(op.B.buffer, make_mfma_swizzled_layout(op.B.buffer, row_groups=across))


def lower_hip(op: Gemm, ctx) -> Stmt:
    op.synchronous_mma("MFMA or FMA on an AMD GPU")
    whole_fragment(op.C, "T.gemm")
    for r in (op.A, op.B):
        if r.buffer.is_fragment:
            whole_fragment(r, "T.gemm")
    stmts = []
    if op.clear_accum:
        stmts.append(Fill(op.C, Const(0, op.C.buffer.dtype)).lower_cuda(ctx))
    M, N, K = op.mnk
    ins = _instr(op, ctx.threads, ctx.machine)
    if ins is not None:
        ins = _instr(op, ctx.threads, ctx.machine, _shape_of_accumulator(op, ctx))
    if ins is None:
        ctx.note(op, f"T.gemm {M}x{N}x{K}: FMA ({op.A.buffer.dtype} operands have no MFMA in tilewise)")
        stmts.append(SimtEmitter(op, ctx).emit())
        return seq(stmts)
    em = MfmaEmitter(op, ctx, ins)
    ctx.note(op, f"T.gemm {M}x{N}x{K}: {ins.mnemonic} on {em.grid.num_warps} wavefront(s) "
                 f"({em.grid.warp_m} x {em.grid.warp_n}), {em.tiles_m * em.tiles_n} MFMA tile(s) per wavefront "
                 f"and k step; A from {'registers' if op.A.buffer.is_fragment else 'LDS'}, "
                 f"B from {'registers' if op.B.buffer.is_fragment else 'LDS'}")
    stmts.append(em.emit())
    return seq(stmts)


add_lowering(Gemm, "hip", lower_hip)
