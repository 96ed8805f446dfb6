"""Thread-level code for a tile GEMM with mma.sync: the warps split the C tile (a WarpGrid),
each warp walks K in mma-sized steps, loading A and B fragments from shared memory with
ldmatrix (or taking them from register fragments) and issuing one mma per m16 x n8 tile.

Register numbering follows layout/tv.py's mma_*_tv layouts, which the emulator's PTX tables
check independently."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import BufferLoad, Call, Cast, Const, Expr, Var, binary
from ..ir.simplify import simplify
from ..ir.stmt import Allocate, BufferStore, Evaluate, For, Stmt, seq
from ..layout.mma import GemmWarpPolicy, choose_warp_grid
from ..layout.tv import mma_c_tv
from .cuda_common import address
from .region import region_indices


@dataclass(frozen=True)
class MmaShape:
    m: int
    n: int
    k: int
    a_regs: int  # 32-bit registers per thread for one A tile
    b_regs: int

    @property
    def name(self) -> str:
        return f"m{self.m}n{self.n}k{self.k}"


def has_mma(a: _dt.DataType, b: _dt.DataType) -> bool:
    """Whether tilewise issues mma.sync for these operand types (else T.gemm falls back to FMAs).
    float8 has no mma before sm_89, and tilewise does not emit the sm_89+ form yet."""
    if "float8" in (a.kind, b.kind):
        return False
    return (a.bits, b.bits) in ((16, 16), (8, 8)) or {a.name, b.name} <= {"float32", "tfloat32"}


def mma_shape_for(a: _dt.DataType, b: _dt.DataType) -> MmaShape:
    if a.bits == 16 and b.bits == 16:
        return MmaShape(16, 8, 16, 4, 2)
    if a.bits == 8 and b.bits == 8:
        return MmaShape(16, 8, 32, 4, 2)
    if {a.name, b.name} <= {"float32", "tfloat32"}:
        return MmaShape(16, 8, 8, 4, 2)  # tf32: inputs rounded to a 10-bit mantissa
    raise CompileError(
        f"T.gemm on the CUDA target supports float16/bfloat16 (m16n8k16), int8/uint8 (m16n8k32) and float32 "
        f"(as tf32, m16n8k8) operands, got {a} x {b}; convert the operands to one of these first"
    )


# registers per thread the fragments and two k steps of gemm operands may take before the k loop
# stays rolled (255 less about 11 for addresses, indices and loop counters; FlashAttention d128 with
# 128 x 128 tiles over 256 threads estimates 242 and does not spill unrolled, MLA P @ V 248 does)
REGISTER_BUDGET = 244


def warp_grid_for(op, threads: int):
    M, N, _ = op.mnk
    if threads % 32:
        raise CompileError(f"T.gemm on the CUDA target needs a multiple of 32 threads, the kernel has {threads}")
    return choose_warp_grid(M, N, threads // 32, GemmWarpPolicy(op.policy).name)


class MmaEmitter:
    def __init__(self, op, ctx):
        self.op = op
        self.ctx = ctx
        self.M, self.N, self.K = op.mnk
        a, b = op.A.buffer.dtype, op.B.buffer.dtype
        self.shape = mma_shape_for(a, b)
        self.grid = warp_grid_for(op, ctx.threads)
        self.WM = self.M // self.grid.warp_m
        self.WN = self.N // self.grid.warp_n
        self.tiles_m = self.WM // 16
        self.tiles_n = self.WN // 8
        if self.K % self.shape.k:
            raise CompileError(f"T.gemm: K={self.K} must be a multiple of {self.shape.k} for mma.{self.shape.name}")
        tid = ctx.thread
        self.lane = simplify(tid % 32, ctx.ranges)
        warp = tid // 32
        self.wm = simplify(warp // self.grid.warp_n, ctx.ranges)
        self.wn = simplify(warp % self.grid.warp_n, ctx.ranges)

    # ------------------------------------------------------------------ operands
    def _operand_index(self, region: BufferRegion, row: Expr, col: Expr, trans: bool) -> list[Expr]:
        """Buffer indices of logical element (row, col) of op(X) — for A (m, k), for B (k, n)."""
        tile = [col, row] if trans else [row, col]
        return region_indices(region, [simplify(t, self.ctx.ranges) for t in tile])

    @property
    def tf32(self) -> bool:
        return self.shape.k == 8

    def _scalar_regs(self, regs: Buffer, base: Expr, region: BufferRegion, coords, trans: bool) -> Stmt:
        """32-bit (tf32) operands have no ldmatrix form: one shared load per register, rounded to
        tf32 with cvt.rna (the mma would otherwise drop the low mantissa bits: truncation)."""
        out = []
        for r, (row, col) in enumerate(coords):
            val = Call("tf32_round", [BufferLoad(region.buffer, self._operand_index(region, row, col, trans))],
                       _dt.uint32)
            out.append(BufferStore(regs, [base + r], val))
        return seq(out)

    def _packed_regs(self, regs: Buffer, base: Expr, region: BufferRegion, coords, trans: bool,
                     k_is_col: bool) -> Stmt:
        """8-bit operands that ldmatrix cannot deliver (it transposes 16-bit elements only): each
        register packs four consecutive k elements, loaded one by one from shared memory."""
        out = []
        for r, (row, col) in enumerate(coords):
            word = None
            for b in range(4):
                at = (row, col + b) if k_is_col else (row + b, col)
                byte = BufferLoad(region.buffer, self._operand_index(region, at[0], at[1], trans))
                if byte.dtype.is_signed:
                    byte = Call("reinterpret", [byte], _dt.uint8)
                part = Cast(byte, _dt.uint32)
                if b:
                    part = binary("shl", part, Const(8 * b, _dt.uint32))
                word = part if word is None else binary("bitor", word, part)
            out.append(BufferStore(regs, [base + r], word))
        return seq(out)

    def load_a(self, regs: Buffer, ki: Expr) -> Stmt:
        """ldmatrix.x4 of the warp's A tiles for k step ki into regs[mi * 4 ...]."""
        op, lane = self.op, self.lane
        if self.tf32:
            mi = Var("mi", _dt.int32)
            g, q = lane // 4, lane % 4
            row0 = self.wm * self.WM + mi * 16 + g
            col0 = ki * 8 + q
            coords = [(row0, col0), (row0 + 8, col0), (row0, col0 + 4), (row0 + 8, col0 + 4)]
            return For(mi, 0, self.tiles_m, "unroll", self._scalar_regs(regs, mi * 4, op.A, coords, op.trans_A))
        mi = Var("mi", _dt.int32)
        kk = ki * self.shape.k
        elems_per_reg = 32 // op.A.buffer.dtype.bits  # 2 for 16-bit, 4 for 8-bit
        col_block = 8 * (2 // elems_per_reg) * elems_per_reg // 2  # 8 elements of 16 bits = 16 bytes
        col_block = 16 // op.A.buffer.dtype.bytes
        mbase = self.wm * self.WM + mi * 16
        if not op.trans_A:
            row = mbase + lane % 16
            col = kk + (lane // 16) * col_block
            idx = self._operand_index(op.A, row, col, False)
            trans = False
        elif op.A.buffer.dtype.bits == 8:
            g, q = lane // 4, lane % 4
            row0 = mbase + g
            k0 = kk + q * 4
            coords = [(row0, k0), (row0 + 8, k0), (row0, k0 + 16), (row0 + 8, k0 + 16)]
            return For(mi, 0, self.tiles_m, "unroll", self._packed_regs(regs, mi * 4, op.A, coords, True, True))
        else:
            row = mbase + ((lane // 8) % 2) * 8
            col = kk + (lane // 16) * 8 + lane % 8
            idx = self._operand_index(op.A, row, col, True)
            trans = True
        call = Call("ldmatrix", [address(regs, [mi * 4]), address(op.A.buffer, idx)], _dt.handle,
                    {"num": 4, "trans": trans})
        return For(mi, 0, self.tiles_m, "unroll", Evaluate(call))

    def load_b(self, regs: Buffer, ki: Expr) -> Stmt:
        """ldmatrix of the warp's B tiles for k step ki into regs[ni * 2 ...], two n8 tiles per x4."""
        op, lane = self.op, self.lane
        if self.tf32:
            ni = Var("ni", _dt.int32)
            g, q = lane // 4, lane % 4
            n0 = self.wn * self.WN + ni * 8 + g
            k0 = ki * 8 + q
            coords = [(k0, n0), (k0 + 4, n0)]
            return For(ni, 0, self.tiles_n, "unroll", self._scalar_regs(regs, ni * 2, op.B, coords, op.trans_B))
        kk = ki * self.shape.k
        bits = op.B.buffer.dtype.bits
        col_block = 16 // op.B.buffer.dtype.bytes
        if bits == 8 and not op.trans_B:
            ni = Var("ni", _dt.int32)
            g, q = lane // 4, lane % 4
            n0 = self.wn * self.WN + ni * 8 + g
            k0 = kk + q * 4
            coords = [(k0, n0), (k0 + 16, n0)]
            return For(ni, 0, self.tiles_n, "unroll", self._packed_regs(regs, ni * 2, op.B, coords, False, False))
        stmts = []
        pairs, odd = divmod(self.tiles_n, 2)
        np_ = Var("np", _dt.int32)
        for count, num in ((pairs, 4), (odd, 2)):
            if count == 0:
                continue
            first = 0 if num == 4 else pairs * 2
            pi = np_ if num == 4 else Const(0, _dt.int32)
            nbase = self.wn * self.WN + (first + pi * 2) * 8
            mat = lane // 8 if num == 4 else (lane // 8) % 2
            if not op.trans_B:
                # B stored K x N: .trans delivers the col-major fragment
                krow = kk + (mat % 2) * 8 + lane % 8
                ncol = nbase + (mat // 2) * 8
                idx = self._operand_index(op.B, krow, ncol, False)
                trans = True
            else:
                # B stored N x K: rows are n
                nrow = nbase + (mat // 2) * 8 + lane % 8
                kcol = kk + (mat % 2) * col_block
                idx = self._operand_index(op.B, kcol, nrow, True)
                trans = False
            dst = address(regs, [(first + pi * 2) * 2])
            call = Evaluate(Call("ldmatrix", [dst, address(op.B.buffer, idx)], _dt.handle,
                                 {"num": num, "trans": trans}))
            stmts.append(For(np_, 0, count, "unroll", call) if num == 4 else call)
        return seq(stmts)

    # ------------------------------------------------------------------ the product
    def emit(self) -> Stmt:
        op, ctx = self.op, self.ctx
        c_loc = ctx.local_buffer(op.C.buffer)
        a_frag = op.A.buffer.is_fragment
        b_frag = op.B.buffer.is_fragment
        # A register operand goes to the mma as it is: the tensor cores ignore the low 13 bits of a
        # .tf32 register. A tfloat32 fragment holds tf32 values (conversions into it round), so that
        # is exact; a float32 one would be truncated, where shared float32 operands are rounded.
        for r, frag in ((op.A, a_frag), (op.B, b_frag)):
            if self.tf32 and frag and r.buffer.dtype.kind != "tfloat":
                raise CompileError(f"T.gemm with float32 (tf32) operands needs them in shared memory on the CUDA "
                                   f"target ({r.buffer.name} is a fragment); a T.tfloat32 fragment may be an operand")
        stmts: list[Stmt] = []
        a_regs = b_regs = None
        if not a_frag:
            a_regs = Buffer(f"{op.A.buffer.name}_regs", (self.tiles_m * self.shape.a_regs,), _dt.uint32, "local")
            stmts.append(Allocate(a_regs))
        if not b_frag:
            b_regs = Buffer(f"{op.B.buffer.name}_regs", (self.tiles_n * self.shape.b_regs,), _dt.uint32, "local")
            stmts.append(Allocate(b_regs))
        ki = Var("ki", _dt.int32)
        tiles_k = self.K // self.shape.k
        body: list[Stmt] = []
        if not a_frag:
            body.append(self.load_a(a_regs, ki))
        if not b_frag:
            body.append(self.load_b(b_regs, ki))
        mi, ni = Var("mi", _dt.int32), Var("ni", _dt.int32)
        if a_frag:
            a_loc = ctx.local_buffer(op.A.buffer)
            per = 32 // op.A.buffer.dtype.bits * self.shape.a_regs
            a_addr = address(a_loc, [(mi * tiles_k + ki) * per])
        else:
            a_addr = address(a_regs, [mi * self.shape.a_regs])
        if b_frag:
            b_loc = ctx.local_buffer(op.B.buffer)
            per = 32 // op.B.buffer.dtype.bits * self.shape.b_regs
            b_addr = address(b_loc, [(ki * self.tiles_n + ni) * per])
        else:
            b_addr = address(b_regs, [ni * self.shape.b_regs])
        c_addr = address(c_loc, [(mi * self.tiles_n + ni) * 4])
        mma = Evaluate(Call("mma_sync", [a_addr, b_addr, c_addr], _dt.handle, {
            "shape": self.shape.name, "a_dtype": op.A.buffer.dtype.name, "b_dtype": op.B.buffer.dtype.name,
            "c_dtype": op.C.buffer.dtype.name}))
        body.append(For(mi, 0, self.tiles_m, "unroll", For(ni, 0, self.tiles_n, "unroll", mma)))
        if a_frag or b_frag or not self._k_loop_spills(tiles_k):
            stmts.append(For(ki, 0, tiles_k, "unroll", seq(body)))
        else:
            stmts.append(For(ki, 0, tiles_k, "serial", seq(body), annotations={"unroll": 1}))
        return seq(stmts)

    def _k_loop_spills(self, tiles_k: int) -> bool:
        """Whether unrolling the k steps would spill. Unrolled, ptxas loads the operands of the
        next k step while the current one multiplies: two steps of operand registers live on
        top of every fragment of the kernel (accumulators, row statistics). When that passes
        REGISTER_BUDGET (255 minus what addresses and indices take) the k loop stays rolled: one
        step's operands at a time, a few loop instructions per k step instead of spilled registers
        (MLA decoding's P @ V on sm_80: 128 accumulator and 40 statistics registers per thread).
        Register operands are indexed by the k step, so their loop is always unrolled."""
        if tiles_k < 2:
            return False
        fragments = sum(-(-lay.num_values * buf.dtype.bits // 32)
                        for buf, lay in self.ctx.layouts.fragments.items())
        operands = self.tiles_m * self.shape.a_regs + self.tiles_n * self.shape.b_regs
        need = fragments + 2 * operands
        if need <= REGISTER_BUDGET:
            return False
        self.ctx.note(self.op, f"T.gemm {self.M}x{self.N}x{self.K}: k loop not unrolled (about {need} registers per "
                               f"thread unrolled: {fragments} in fragments, {operands} per k step of operands)")
        return True


class SimtEmitter(MmaEmitter):
    """T.gemm for operand types mma.sync does not take (float64, mixed types): every thread
    accumulates the C elements it owns in the mma accumulator layout with FMAs, reading A and B
    from shared memory. The operands must be in shared memory (a thread cannot read another
    thread's registers)."""

    def __init__(self, op, ctx):
        self.op = op
        self.ctx = ctx
        self.M, self.N, self.K = op.mnk
        self.grid = warp_grid_for(op, ctx.threads)
        self.WM = self.M // self.grid.warp_m
        self.WN = self.N // self.grid.warp_n
        self.tiles_m = self.WM // 16
        self.tiles_n = self.WN // 8
        for r, what in ((op.A, "A"), (op.B, "B")):
            if r.buffer.is_fragment:
                raise CompileError(
                    f"T.gemm on the CUDA target: {r.buffer.dtype} operands have no tensor-core form, so {what} "
                    f"({r.buffer.name}) must be in shared memory, not a fragment")
        tid = ctx.thread
        self.lane = simplify(tid % 32, ctx.ranges)
        warp = tid // 32
        self.wm = simplify(warp // self.grid.warp_n, ctx.ranges)
        self.wn = simplify(warp % self.grid.warp_n, ctx.ranges)

    def emit(self) -> Stmt:
        op, ctx = self.op, self.ctx
        c_loc = ctx.local_buffer(op.C.buffer)
        acc = op.C.buffer.dtype
        # the accumulator layout is the mma one (one definition, layout/tv.py): register `slot`
        # of this thread holds element inverse(thread, slot) of the C tile
        c_tv = mma_c_tv(self.M, self.N, self.grid.warp_m, self.grid.warp_n, ctx.threads)
        kv, mi, ni = Var("k", _dt.int32), Var("mi", _dt.int32), Var("ni", _dt.int32)
        updates = []
        for r in range(4):  # the four accumulators of one m16n8 tile
            slot = [(mi * self.tiles_n + ni) * 4 + r]
            row, col = (simplify(e, {**ctx.ranges, mi: (0, self.tiles_m - 1), ni: (0, self.tiles_n - 1)})
                        for e in c_tv.inverse(ctx.thread, slot[0]))
            a = BufferLoad(op.A.buffer, self._operand_index(op.A, row, kv, op.trans_A))
            b = BufferLoad(op.B.buffer, self._operand_index(op.B, kv, col, op.trans_B))
            prod = (a if a.dtype == acc else Cast(a, acc)) * (b if b.dtype == acc else Cast(b, acc))
            updates.append(BufferStore(c_loc, slot, BufferLoad(c_loc, slot) + prod))
        tiles = For(mi, 0, self.tiles_m, "unroll", For(ni, 0, self.tiles_n, "unroll", seq(updates)))
        return For(kv, 0, self.K, "serial", tiles)
