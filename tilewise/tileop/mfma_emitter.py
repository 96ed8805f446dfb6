"""Thread-level code for a tile GEMM on AMD MFMA (gfx942): the wavefronts of a block split the C
tile (a WarpGrid over 64-lane wavefronts, GemmWarpPolicy), each wavefront walks K in MFMA-sized
steps, loading its A and B items from LDS (or taking them from register fragments) and issuing
one MFMA per m x n tile of its share.

Register numbering follows layout/mfma_layouts.py (accumulator register (mi * tiles_n + ni) *
c_regs + v, A register (mi * tiles_k + ki) * kpack + v, B register (ki * tiles_n + ni) * kpack
+ v); the emulator runs the MFMA calls from its own tables (emulator/mfma.py). The calls are
`tw::mfma_*` (backend/hip/include/tw_mfma.h), one per instruction, taking the addresses of the
lane's register arrays."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import BufferLoad, Call, Const, Expr, Var
from ..ir.simplify import prove, simplify
from ..ir.stmt import Allocate, BufferStore, Evaluate, For, Stmt, seq
from ..layout.mfma_layouts import WAVE, MfmaInstr, mfma_for, wave_grid_for
from ..layout.mma import GemmWarpPolicy
from .cuda_common import address, layout_run
from .region import region_indices

# the OCP fp8 formats are not the FNUZ ones gfx942's MFMA reads
_FP8 = ("float8_e4m3", "float8_e4m3fn", "float8_e5m2")
_FNUZ = ("float8_e4m3fnuz", "float8_e5m2fnuz")


def mfma_instr_for(op, shape: str | None = None, arch: str = "gfx942") -> MfmaInstr | None:
    """The MFMA T.gemm `op` issues on `arch`, or None when its operand types have none (float32,
    float64: the FMA fallback). OCP float8 operands are an error (gfx942's fp8 MFMAs read the fnuz
    encodings), and so are int8 and fp8 on gfx90a (v_mfma_i32_16x16x32_i8 and the fp8 MFMAs are
    gfx940 instructions; clang-19's backend cannot select them for gfx90a)."""
    a, b, c = op.A.buffer.dtype.name, op.B.buffer.dtype.name, op.C.buffer.dtype.name
    if a in _FP8 or b in _FP8:
        raise CompileError(
            f"T.gemm on {arch}: {a} x {b} operands have no MFMA: gfx942's fp8 MFMAs "
            "(v_mfma_f32_16x16x32_fp8_fp8 and its bf8 variants) read the FNUZ encodings, not the OCP float8 "
            "types; store the tiles as float8_e4m3fnuz / float8_e5m2fnuz (T.float8_e4m3fnuz, T.float8_e5m2fnuz), "
            "or cast them to float16 or bfloat16")
    if arch == "gfx90a" and "int8" in (a, b):
        raise CompileError("T.gemm on gfx90a: tilewise's int8 MFMA is v_mfma_i32_16x16x32_i8, which gfx90a does not "
                           "have (it is a gfx940+ instruction); compile for gfx942, or cast the tiles to float16")
    if a in _FNUZ or b in _FNUZ:
        if arch != "gfx942":
            # gfx90a has no fp8 MFMA; gfx950's read the OCP encodings, not these
            raise CompileError(f"T.gemm on {arch}: {a} x {b} operands need gfx942's fp8 MFMAs "
                               "(v_mfma_f32_16x16x32_fp8_fp8 ..., reading the fnuz encodings), which "
                               f"{arch} does not have; compile for gfx942, or cast the tiles to float16")
        if a not in _FNUZ or b not in _FNUZ or c != "float32":
            raise CompileError(f"T.gemm on gfx942: the fp8 MFMAs multiply float8_e4m3fnuz / float8_e5m2fnuz A and "
                               f"B into a float32 accumulator; got A {a}, B {b}, C {c}")
        return mfma_for(a, b, c, shape)
    if (a, b, c) == ("float16", "float16", "float16"):
        raise CompileError("T.gemm on gfx942 accumulates float16 operands in float32 only (v_mfma_f32_*_f16); "
                           "make the accumulator float32")
    if a in ("uint8",) or b in ("uint8",):
        raise CompileError("T.gemm on gfx942: v_mfma_i32_16x16x32_i8 multiplies signed int8 only; "
                           f"got {a} x {b}")
    if (a, b, c) not in (("float16", "float16", "float32"), ("bfloat16", "bfloat16", "float32"),
                         ("int8", "int8", "int32")):
        return None
    return mfma_for(a, b, c, shape)


def _has_32x32(op) -> bool:
    """float16 / bfloat16 (32x32x8) and the fnuz fp8 types (32x32x16) have a 32x32 MFMA; int8 does
    not in tilewise."""
    a = op.A.buffer.dtype.name
    return a in ("float16", "bfloat16") or a in _FNUZ


def choose_shape(op, threads: int) -> str:
    """16x16 (TileLang's choice on gfx942) unless each wavefront's tile is a multiple of 32 x 32
    with float16 / bfloat16 / fnuz fp8 operands and K a multiple of the 32x32 instruction's k:
    v_mfma_f32_32x32x8 (x16 for fp8) then does twice the work per operand item read from LDS
    (32 x 32 x 8 products from 2 x 32 x 8 items, 16 x 16 x 16 from 2 x 16 x 16)."""
    M, N, K = op.mnk
    if not _has_32x32(op):
        return "16x16"
    names = (op.A.buffer.dtype.name, op.B.buffer.dtype.name, op.C.buffer.dtype.name)
    try:
        ins32 = mfma_for(*names, "32x32")
    except CompileError:
        return "16x16"
    if K % ins32.k:
        return "16x16"
    try:
        g = wave_grid_for(M, N, threads, GemmWarpPolicy(op.policy).name, ins32)
    except CompileError:
        return "16x16"
    g16 = wave_grid_for(M, N, threads, GemmWarpPolicy(op.policy).name, mfma_for(*names, "16x16"))
    # the same wave grid either way, so the layouts of other operators sharing the fragment agree
    return "32x32" if (g.warp_m, g.warp_n) == (g16.warp_m, g16.warp_n) else "16x16"


def choose_k_pack(op, ins: MfmaInstr) -> int:
    """T.gemm's k_pack when given (> 1), else 2 when the k steps pair up: a lane then reads its
    A (and K-contiguous B) items of two MFMAs as one 16-byte ds_read_b128, which the 16-byte XOR
    swizzle of the LDS tile keeps free of bank conflicts (gfx942's LDS serves 128 bytes, 8 lanes of
    16 bytes, per clock; the 8 lanes read 8 consecutive rows, which the swizzle puts in 8 distinct
    16-byte bank groups). Single 8-byte reads of 16 rows would collide 2 ways in that layout."""
    K = op.mnk[2]
    if op.k_pack > 1:
        if K % (ins.k * op.k_pack):
            raise CompileError(f"T.gemm(k_pack={op.k_pack}): K={K} is not a multiple of {op.k_pack} {ins.mnemonic} "
                               f"k steps of {ins.k}")
        return op.k_pack
    return 2 if (K // ins.k) % 2 == 0 else 1


class MfmaEmitter:
    """Emits T.gemm `op` as MFMA calls over the context's block (`ctx.thread`, `ctx.threads`)."""

    def __init__(self, op, ctx, ins: MfmaInstr):
        self.op, self.ctx, self.ins = op, ctx, ins
        self.M, self.N, self.K = op.mnk
        self.grid = wave_grid_for(self.M, self.N, ctx.threads, GemmWarpPolicy(op.policy).name, ins)
        self.WM = self.M // self.grid.warp_m
        self.WN = self.N // self.grid.warp_n
        self.tiles_m = self.WM // ins.m
        self.tiles_n = self.WN // ins.n
        if self.K % ins.k:
            raise CompileError(f"T.gemm: K={self.K} must be a multiple of {ins.k} for {ins.mnemonic}")
        self.tiles_k = self.K // ins.k
        self.k_pack = choose_k_pack(op, ins)
        self.run = self.k_pack * ins.kpack  # consecutive K elements of a lane per run of k_pack steps
        tid = ctx.thread
        self.lane = simplify(tid % WAVE, ctx.ranges)
        wave = tid // WAVE
        self.wm = simplify(wave // self.grid.warp_n, ctx.ranges)
        self.wn = simplify(wave % self.grid.warp_n, ctx.ranges)

    def _operand_index(self, region: BufferRegion, row: Expr, col: Expr, trans: bool) -> list[Expr]:
        """Buffer indices of logical element (row, col) of op(X) — for A (m, k), for B (k, n)."""
        tile = [col, row] if trans else [row, col]
        return region_indices(region, [simplify(t, self.ctx.ranges) for t in tile])

    def _vector_run(self, region: BufferRegion, k_contiguous: bool) -> bool:
        """Whether a lane's run of `run` K elements can be one LDS vector read: the operand is
        stored with K innermost, its tile starts at a multiple of the run along K, and its shared
        layout keeps aligned runs whole (the 16-byte XOR swizzle this lowering gives it does; a
        user's transposing layout does not)."""
        nbytes = self.run * region.buffer.dtype.bytes
        if not k_contiguous or nbytes not in (4, 8, 16) or not region.buffer.is_shared:
            return False
        start = region.region[-1][0]
        if prove(simplify(start % self.run, self.ctx.ranges) == 0, self.ctx.ranges) is not True:
            return False
        return layout_run(self.ctx, region, self.run) == self.run

    def _load_runs(self, regs: Buffer, region: BufferRegion, trans: bool, tiles: int, first, start=0) -> Stmt:
        """regs[t * run + e] = element first(t, e) of op(X) for tiles t = start .. start + tiles - 1,
        as one vector read per tile when _vector_run allows (clang's own merging of the element
        loads leaves byte shuffles for int8), else element by element."""
        t0, e = Var("t", _dt.int32), Var("e", _dt.int32)
        t = t0 + start if not (isinstance(start, int) and start == 0) else t0
        k_contiguous = not trans if region is self.op.A else trans
        if self._vector_run(region, k_contiguous):
            row, col = first(t, Const(0, _dt.int32))
            src = address(region.buffer, self._operand_index(region, row, col, trans))
            nbytes = self.run * region.buffer.dtype.bytes
            move = Evaluate(Call("copy_vec", [address(regs, [t * self.run]), src], _dt.handle, {"bytes": nbytes}))
            return For(t0, 0, tiles, "unroll", move)
        row, col = first(t, e)
        load = BufferLoad(region.buffer, self._operand_index(region, row, col, trans))
        return For(t0, 0, tiles, "unroll", For(e, 0, self.run, "unroll", BufferStore(regs, [t * self.run + e], load)))

    def load_a(self, regs: Buffer, j: Expr) -> Stmt:
        """This lane's A items of the j-th run of k_pack k steps for every m tile:
        regs[mi * run + e] holds A[wm * WM + mi * m + lane % m, j * k * k_pack + (lane // m) * run + e]
        (layout/mfma_layouts.py mfma_a_tv)."""
        ins, lane = self.ins, self.lane

        def first(mi, e):
            return (self.wm * self.WM + mi * ins.m + lane % ins.m,
                    j * (ins.k * self.k_pack) + (lane // ins.m) * self.run + e)

        return self._load_runs(regs, self.op.A, self.op.trans_A, self.tiles_m, first)

    def load_b(self, regs: Buffer, j: Expr, ni: Expr | None = None) -> Stmt:
        """regs[ni * run + e] holds B[j * k * k_pack + (lane // n) * run + e, wn * WN + ni * n + lane % n]
        (every n tile, or only tile `ni`)."""
        ins, lane = self.ins, self.lane

        def first(ni, e):
            return (j * (ins.k * self.k_pack) + (lane // ins.n) * self.run + e,
                    self.wn * self.WN + ni * ins.n + lane % ins.n)

        if ni is not None:
            return self._load_runs(regs, self.op.B, self.op.trans_B, 1, first, start=ni)
        return self._load_runs(regs, self.op.B, self.op.trans_B, self.tiles_n, first)

    def emit(self) -> Stmt:
        op, ctx, ins = self.op, self.ctx, self.ins
        c_loc = ctx.local_buffer(op.C.buffer)
        a_frag, b_frag = op.A.buffer.is_fragment, op.B.buffer.is_fragment
        stmts: list[Stmt] = []
        j, s = Var("kj", _dt.int32), Var("ks", _dt.int32)
        ki = j * self.k_pack + s  # the k step
        body: list[Stmt] = []
        mi, ni = Var("mi", _dt.int32), Var("ni", _dt.int32)
        if a_frag:
            a_addr = address(ctx.local_buffer(op.A.buffer), [(mi * self.tiles_k + ki) * ins.kpack])
        else:
            a_regs = Buffer(f"{op.A.buffer.name}_regs", (self.tiles_m * self.run,), op.A.buffer.dtype, "local")
            stmts.append(Allocate(a_regs))
            body.append(self.load_a(a_regs, j))
            a_addr = address(a_regs, [mi * self.run + s * ins.kpack])
        c_addr = address(c_loc, [(mi * self.tiles_n + ni) * ins.c_regs])
        if b_frag:
            b_addr = address(ctx.local_buffer(op.B.buffer), [(ki * self.tiles_n + ni) * ins.kpack])
            mfma = Evaluate(Call(ins.wrapper, [a_addr, b_addr, c_addr], _dt.handle))
            body.append(For(s, 0, self.k_pack, "unroll",
                            For(mi, 0, self.tiles_m, "unroll", For(ni, 0, self.tiles_n, "unroll", mfma))))
        else:
            # B tile by tile, each read just before its MFMAs: a wide wave tile (MLA's 64 x 512
            # output: 32 n tiles) would otherwise hold every tile's B items at once (128 VGPRs),
            # which spilled beside 128 accumulators and a query held in registers
            b_regs = Buffer(f"{op.B.buffer.name}_regs", (self.tiles_n * self.run,), op.B.buffer.dtype, "local")
            stmts.append(Allocate(b_regs))
            b_addr = address(b_regs, [ni * self.run + s * ins.kpack])
            mfma = Evaluate(Call(ins.wrapper, [a_addr, b_addr, c_addr], _dt.handle))
            body.append(For(ni, 0, self.tiles_n, "unroll", seq([
                self.load_b(b_regs, j, ni),
                For(s, 0, self.k_pack, "unroll", For(mi, 0, self.tiles_m, "unroll", mfma))])))
        # unrolled: register-array indices must be constants for clang to keep them in VGPRs
        stmts.append(For(j, 0, self.tiles_k // self.k_pack, "unroll", seq(body)))
        return seq(stmts)
