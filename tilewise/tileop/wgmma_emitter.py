"""T.gemm with Hopper's wgmma.mma_async (sm_90a): whether a gemm can use it (`plan_wgmma`) and
the thread IR it becomes (`emit_wgmma`), following docs/THREAD_IR.md ("Hopper").

Each warpgroup (128 threads) owns a WM x WN part of C (layout/wgmma.py: the grid and the register
layouts) and, per K step, issues one m64nNk instruction per m64 atom of its rows (and per 256
columns when WN is wider). Shared operands are described by matrix descriptors built from the
tile's swizzled layout (layout/wgmma.OperandLayout): a K-major operand (its K dimension
contiguous) walks K inside a swizzled 128-byte row by moving the start address, and the next
8-row group is SBO = 8 * S bytes away; an MN-major operand (MN contiguous, wgmma's transpose
flag) has its column blocks LBO = block bytes apart and its 8-row K groups SBO = 8 * S apart.
The group is committed and, unless T.gemm's wg_wait defers it, waited for at once, so the
accumulators are read, and the shared tiles overwritten, only after the instructions completed;
with wg_wait the program's own T.wait_wgmma must come first (the emulator checks it)."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import dtype as _dt
from ..ir.buffer import BufferRegion
from ..ir.expr import Call, Const, as_expr
from ..ir.machine import Machine
from ..ir.simplify import simplify
from ..ir.stmt import Evaluate, Stmt, seq
from ..layout.mma import GemmWarpPolicy, WarpGrid
from ..layout.wgmma import MAX_N, OperandLayout, operand_layout, wgmma_grid
from .cuda_common import address

# (A, B) element types -> accumulator types wgmma takes, and the K of one instruction
_TYPES = {
    ("float16", "float16"): (("float32", "float16"), 16),
    ("bfloat16", "bfloat16"): (("float32",), 16),
    ("float32", "float32"): (("float32",), 8),  # as tf32
    **{(a, b): (("float32",), 32) for a in ("float8_e4m3", "float8_e5m2") for b in ("float8_e4m3", "float8_e5m2")},
    **{(a, b): (("int32",), 32) for a in ("int8", "uint8") for b in ("int8", "uint8")},
}


@dataclass(frozen=True)
class WgmmaPlan:
    grid: WarpGrid
    k_step: int
    n_chunk: int  # columns per instruction
    a_layout: OperandLayout | None  # None: A from registers
    b_layout: OperandLayout

    @property
    def warpgroups(self) -> int:
        return self.grid.warp_m * self.grid.warp_n


def plan_wgmma(op, machine: Machine, threads: int, first_thread: int = 0,
               pass_configs: dict | None = None) -> WgmmaPlan | str:
    """How `op` (a T.gemm) runs on wgmma, or why it cannot (the reason becomes a lowering note).
    `threads` run it, starting at `first_thread` (an `if` on the thread index may narrow them).
    T.gemm passes the kernel's pass configs: `tl.disable_wgmma` (TileLang's) keeps it on mma.sync."""
    if not machine.has("wgmma"):
        return f"{machine.name} has no wgmma (it needs sm_90a)"
    if (pass_configs or {}).get("tl.disable_wgmma"):
        return "the pass config tl.disable_wgmma asks for mma.sync"
    if first_thread % 128:
        return f"the threads running it start at thread {first_thread}, inside a warpgroup"
    a, b, c = op.A.buffer.dtype.name, op.B.buffer.dtype.name, op.C.buffer.dtype.name
    accs, k_step = _TYPES.get((a, b), ((), 0))
    if c not in accs:
        return f"wgmma has no {a} x {b} -> {c} form"
    M, N, K = op.mnk
    if K % k_step:
        return f"K = {K} is not a multiple of the instruction's {k_step}"
    if threads % 128:
        return f"the {threads} threads running it are not whole warpgroups of 128"
    grid = wgmma_grid(M, N, threads, GemmWarpPolicy(op.policy).name)
    if grid is None:
        return f"the {M}x{N} tile does not split over {threads // 128} warpgroup(s) of 128 threads in rows of 64"
    WN = N // grid.warp_n
    n_chunk = WN
    while n_chunk > MAX_N or WN % n_chunk:
        n_chunk //= 2
    if n_chunk % 8 or WN % n_chunk:
        return f"a warpgroup's {WN} columns do not split into instructions of at most {MAX_N}"
    k_major = {id(op.A): not op.trans_A and not op.A.buffer.is_fragment, id(op.B): bool(op.trans_B)}
    for r in (op.A, op.B, op.C):
        if _whole(r):
            continue
        if getattr(op, "wgmma_k_slices", False) and k_major.get(id(r)) and _k_slice(r, k_step):
            continue  # T.wgmma_gemm: a K range of a K-major shared tile (its descriptors start inside it)
        return f"{r.buffer.name} is a part of its buffer (wgmma operands must be whole tiles)"
    wide = a in ("float16", "bfloat16")  # only 16-bit operands may be MN-major (transposed)
    if op.A.buffer.is_fragment:
        if op.trans_A:
            return "A in registers must not be transposed"
        a_layout = None
    else:
        a_mn_major = op.trans_A
        if a_mn_major and not wide:
            return f"{a} operands must be K-major: store A as M x K"
        a_layout = operand_layout(op.A.buffer.shape, op.A.buffer.dtype)
        if a_layout is None:
            return f"no wgmma shared layout fits {op.A.buffer.name}{list(op.A.buffer.shape)}"
    if op.B.buffer.is_fragment:
        return "B must be in shared memory"
    b_mn_major = not op.trans_B
    if b_mn_major and not wide:
        return f"{b} operands must be K-major: store B as N x K (transpose_B=True)"
    b_layout = operand_layout(op.B.buffer.shape, op.B.buffer.dtype)
    if b_layout is None:
        return f"no wgmma shared layout fits {op.B.buffer.name}{list(op.B.buffer.shape)}"
    # an MN-major operand's warpgroup or instruction columns must start on a column block
    if b_mn_major and (grid.warp_n > 1 or n_chunk < WN) and n_chunk % b_layout.block_cols:
        return f"instructions of {n_chunk} columns do not start on {op.B.buffer.name}'s column blocks"
    if a_layout is not None and op.trans_A and grid.warp_m > 1 and (M // grid.warp_m) % a_layout.block_cols:
        return f"warpgroup rows do not start on {op.A.buffer.name}'s column blocks"
    return WgmmaPlan(grid, k_step, n_chunk, a_layout, b_layout)


def _whole(r: BufferRegion) -> bool:
    """The region is whole 2-D tiles: its last two dimensions complete, unit extents before
    (a pipeline slot)."""
    (s0, e0), (s1, e1) = r.region[-2:]
    zero = all(isinstance(s, int) and s == 0 or getattr(s, "value", None) == 0 for s in (s0, s1))
    return zero and (e0, e1) == tuple(r.buffer.shape[-2:]) and all(e == 1 for _, e in r.region[:-2])


def _k_slice(r: BufferRegion, k_step: int) -> bool:
    """The region is whole rows of a 2-D tile (unit extents before: a pipeline slot) and a
    range of its columns starting at a constant multiple of the instruction's K."""
    (s0, e0), (s1, e1) = r.region[-2:]
    start = getattr(s1, "value", s1)
    return (getattr(s0, "value", s0) == 0 and e0 == r.buffer.shape[-2] and isinstance(start, int)
            and start % k_step == 0 and all(e == 1 for _, e in r.region[:-2]))


def _desc(region: BufferRegion, lay: OperandLayout, row, col, mn_major: bool) -> Call:
    """The matrix descriptor of the operand tile starting at stored element (row, col) of the
    region (which may start inside its buffer: T.wgmma_gemm's K slices)."""
    S = lay.swizzle
    lbo, sbo = (lay.block_bytes, 8 * S) if mn_major else (16, 8 * S)
    (r0, _), (c0, _) = region.region[-2:]
    idx = [as_expr(s) for s, _ in region.region[:-2]] + [simplify(as_expr(row) + r0), simplify(as_expr(col) + c0)]
    return Call("wgmma_desc", [address(region.buffer, idx)], _dt.uint64, {"swizzle": S, "lbo": lbo, "sbo": sbo})


def emit_wgmma(op, plan: WgmmaPlan, ctx, wait: int = 0) -> Stmt:
    """The gemm's wgmma group, committed and then waited for with `wgmma.wait_group wait`
    (T.gemm's wg_wait; -1: no wait, the program calls T.wait_wgmma before touching C)."""
    M, N, K = op.mnk
    g = plan.grid
    WM, WN = M // g.warp_m, N // g.warp_n
    wg = simplify(ctx.thread // 128, ctx.ranges)
    wm = simplify(wg // g.warp_n, ctx.ranges) if g.warp_n > 1 else wg
    wn = simplify(wg % g.warp_n, ctx.ranges)
    c_loc = ctx.local_buffer(op.C.buffer)
    a_loc = ctx.local_buffer(op.A.buffer) if plan.a_layout is None else None
    a_mn, b_mn = bool(op.trans_A), not op.trans_B
    bits = op.A.buffer.dtype.bits
    p = 32 // bits  # elements per 32-bit register of A
    attrs = {"shape": None, "a_dtype": op.A.buffer.dtype.name, "b_dtype": op.B.buffer.dtype.name,
             "c_dtype": op.C.buffer.dtype.name, "a_regs": a_loc is not None, "trans_a": int(a_mn),
             "trans_b": int(b_mn)}
    # shared operands stored by threads (not TMA) must be made visible to the async proxy wgmma
    # reads through; registers written before must be fenced for it
    body: list[Stmt] = [Evaluate(Call("fence_proxy_async", [], _dt.handle)), Evaluate(Call("wgmma_fence", [], _dt.handle))]
    steps = K // plan.k_step
    for s in range(steps):
        k0 = s * plan.k_step
        for a in range(WM // 64):
            row = simplify(wm * WM + a * 64, ctx.ranges)
            if a_loc is not None:
                a_arg = address(a_loc, [Const(4 * p * (s + steps * a), _dt.int32)])
            else:
                a_arg = _desc(op.A, plan.a_layout, *((k0, row) if a_mn else (row, k0)), a_mn)
            for c in range(WN // plan.n_chunk):
                col = simplify(wn * WN + c * plan.n_chunk, ctx.ranges)
                b_arg = _desc(op.B, plan.b_layout, *((k0, col) if b_mn else (col, k0)), b_mn)
                acc = address(c_loc, [Const(c * plan.n_chunk // 2 + a * WN // 2, _dt.int32)])
                call_attrs = {**attrs, "shape": f"m64n{plan.n_chunk}k{plan.k_step}"}
                body.append(Evaluate(Call("wgmma", [acc, a_arg, b_arg, Const(1, _dt.int32)], _dt.handle, call_attrs)))
    body.append(Evaluate(Call("wgmma_commit", [], _dt.handle)))
    if wait >= 0:
        body.append(Evaluate(Call("wgmma_wait", [], _dt.handle, {"n": wait})))
    return seq(body)

