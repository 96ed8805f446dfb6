"""T.gemm(A, B, C): C += op(A) @ op(B) on tiles; A and B in shared or fragment memory, C a
fragment accumulator."""
from __future__ import annotations

from ..errors import CompileError, warn_once
from ..ir import dtype as _dt
from ..ir.buffer import BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Call, Const
from ..ir.printer import shape_str
from ..ir.span import at
from ..ir.stmt import Evaluate, Stmt, seq
from ..layout.mma import GemmWarpPolicy
from ..layout.swizzle import make_padded_layout, make_swizzled_layout
from ..layout.tv import mma_a_tv, mma_b_tv, mma_c_tv
from ..layout.wgmma import wgmma_a_tv, wgmma_c_tv
from .base import InferLevel, LowerContext, TileOp, lowering
from .cuda_common import whole_fragment
from .fill import Fill
from .mma_emitter import MmaEmitter, SimtEmitter, has_mma, warp_grid_for
from .region import as_region, check_static_region, squeezed
from .wgmma_emitter import WgmmaPlan, emit_wgmma, plan_wgmma

_ALLOWED = {
    ("float16", "float16"): ("float32", "float16"),
    ("bfloat16", "bfloat16"): ("float32",),
    ("float32", "float32"): ("float32",),
    # TileLang's tfloat32 operands (a float32 operand is tf32 on the tensor cores anyway): the
    # m16n8k8 .tf32 mma.sync on CUDA; the CPU rounds each operand to tf32 as cvt.rna does
    ("tfloat32", "tfloat32"): ("float32",),
    ("tfloat32", "float32"): ("float32",),
    ("float32", "tfloat32"): ("float32",),
    ("float64", "float64"): ("float64",),
    ("int8", "int8"): ("int32",),
    ("uint8", "uint8"): ("int32",),
    ("int8", "uint8"): ("int32",),
    ("uint8", "int8"): ("int32",),
    # TileLang's int4 / uint4 tiles (one value per byte inside a kernel): FMAs on CUDA, exact int32
    **{(a, b): ("int32",) for a in ("int4", "uint4") for b in ("int4", "uint4")},
    ("float8_e4m3", "float8_e4m3"): ("float32",),
    ("float8_e5m2", "float8_e5m2"): ("float32",),
    ("float8_e4m3", "float8_e5m2"): ("float32",),
    ("float8_e5m2", "float8_e4m3"): ("float32",),
    # AMD's fnuz fp8 (gfx942's fp8 MFMAs, tileop/mfma_emitter.py; elsewhere the FMA fallback)
    **{(a, b): ("float32",) for a in ("float8_e4m3fnuz", "float8_e5m2fnuz") for b in ("float8_e4m3fnuz", "float8_e5m2fnuz")},
}


class Gemm(TileOp):
    op_name = "gemm"
    unroll_pipeline = True
    _fields = ("A", "B", "C")

    def __init__(self, A, B, C, trans_A: bool, trans_B: bool, policy: int, clear_accum: bool, k_pack: int = 1,
                 wg_wait: int = 0):
        self._init()
        self.A, self.B, self.C = A, B, C
        self.trans_A, self.trans_B = trans_A, trans_B
        self.policy = int(policy)
        self.clear_accum = clear_accum
        self.k_pack = k_pack
        # wgmma groups left in flight after the issue (sm_90a): 0 waits for this gemm's group,
        # n > 0 for all but the newest n, -1 not at all (the program calls T.wait_wgmma)
        self.wg_wait = wg_wait

    def attrs(self) -> dict:
        out = {
            "transpose_A": self.trans_A,
            "transpose_B": self.trans_B,
            "policy": GemmWarpPolicy(self.policy).name,
            "clear_accum": self.clear_accum,
        }
        if self.wg_wait:
            out["wg_wait"] = self.wg_wait
        return out

    def synchronous_mma(self, how: str) -> None:
        """The target lowers this gemm to a synchronous instruction (no wgmma): a wg_wait other
        than 0 cannot defer anything, which is said once rather than dropped silently."""
        if self.wg_wait:
            warn_once(("T.gemm", "wg_wait", how),
                      f"T.gemm(wg_wait={self.wg_wait}) has no effect here: the gemm lowers to {how}, which "
                      "completes before the next statement (only sm_90a's wgmma is asynchronous)")

    def reads(self) -> list[BufferRegion]:
        return [self.A, self.B] + ([] if self.clear_accum else [self.C])

    def writes(self) -> list[BufferRegion]:
        return [self.C]

    @property
    def mnk(self) -> tuple[int, int, int]:
        a, c = squeezed(self.A), squeezed(self.C)
        M, N = c
        K = a[0] if self.trans_A else a[1]
        return M, N, K

    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        # Shapes and leading dimensions are static, so they become template arguments of the
        # micro-kernel (tw_gemm.h) and all its addressing folds into constants.
        self.synchronous_mma("the CPU micro-kernel")
        M, N, K = self.mnk
        args = [Call("address_of", [BufferLoad(r.buffer, r.starts)], _dt.handle) for r in (self.A, self.B, self.C)]
        attrs = {
            "m": M, "n": N, "k": K, "trans_a": self.trans_A, "trans_b": self.trans_B,
            "lda": leading_dim(self.A), "ldb": leading_dim(self.B), "ldc": leading_dim(self.C),
        }
        stmts = []
        if self.clear_accum:
            stmts.append(Fill(self.C, Const(0, self.C.buffer.dtype)).lower_loops(ctx))
        stmts.append(Evaluate(Call("gemm", args, _dt.handle, attrs)))
        return seq(stmts)

    # ------------------------------------------------------------------ CUDA
    def infer_layout(self, li, level: InferLevel) -> None:
        """Strict: the accumulator takes the mma C layout of the warp grid, register operands
        the mma A/B layouts, shared operands a swizzled layout (unless annotated)."""
        if level != InferLevel.STRICT:
            return
        with at(self.span):
            for r, what in ((self.A, "A"), (self.B, "B"), (self.C, "C")):
                if r.buffer.scope == "local":
                    raise CompileError(
                        f"T.{self.op_name} on a GPU target: {what} ({r.buffer.name}) is a T.alloc_local tile, which "
                        "every thread holds a private copy of; the block's threads share one gemm, so use "
                        "T.alloc_fragment (or shared memory). Local tiles are accepted on the CPU target, where "
                        "a block is one thread")
        if li.machine is not None and "hip" in li.machine.lowering_keys:
            from .gemm_mfma import infer_layout_mfma  # AMD: MFMA layouts (its "hip" lowering is there too)

            return infer_layout_mfma(self, li, level)

        with at(self.span):
            for r in (self.A, self.B, self.C):
                if r.buffer.is_fragment:
                    whole_fragment(r, "T.gemm")
            if not has_mma(self.A.buffer.dtype, self.B.buffer.dtype):
                for r, what in ((self.A, "A"), (self.B, "B")):
                    if r.buffer.is_fragment:
                        raise CompileError(
                            f"T.gemm on the CUDA target: {r.buffer.dtype} operands have no tensor-core form, so "
                            f"{what} ({r.buffer.name}) must be in shared memory, not a fragment")
        M, N, K = self.mnk
        T = li.threads
        plan = (plan_wgmma(self, li.machine, T, li.first_thread, li.pass_configs) if li.machine is not None
                else "no machine")
        if isinstance(plan, WgmmaPlan):
            # Hopper: the wgmma accumulator and A-register fragments, shared operands in the
            # swizzled atoms the descriptors (and TMA) address
            li.set_fragment(self.C.buffer, wgmma_c_tv(M, N, plan.grid, T), self.span)
            if plan.a_layout is None:
                li.set_fragment(self.A.buffer, wgmma_a_tv(M, K, plan.grid, T, self.A.buffer.dtype.bits), self.span)
            else:
                li.set_shared(self.A.buffer, plan.a_layout.layout(self.A.buffer.shape))
            li.set_shared(self.B.buffer, plan.b_layout.layout(self.B.buffer.shape))
            return
        g = warp_grid_for(self, T)
        li.set_fragment(self.C.buffer, mma_c_tv(M, N, g.warp_m, g.warp_n, T), self.span)
        # A transposed register operand (stored K x M) holds the same registers as the plain one:
        # its layout is the mma layout with the two indices swapped (likewise B stored N x K).
        if self.A.buffer.is_fragment:
            tv = mma_a_tv(M, K, g.warp_m, g.warp_n, T, self.A.buffer.dtype.bits)
            if self.trans_A:
                tv = tv.remap((K, M), {0: 1, 1: 0})
            li.set_fragment(self.A.buffer, tv, self.span)
        else:
            li.set_shared(self.A.buffer, self._shared_layout(self.A, self.trans_A))
        if self.B.buffer.is_fragment:
            tv = mma_b_tv(K, N, g.warp_m, g.warp_n, T, self.B.buffer.dtype.bits)
            if self.trans_B:
                tv = tv.remap((N, K), {0: 1, 1: 0})
            li.set_fragment(self.B.buffer, tv, self.span)
        else:
            li.set_shared(self.B.buffer, self._shared_layout(self.B, not self.trans_B))

    @staticmethod
    def _shared_layout(r: BufferRegion, k_major_rows: bool):
        """Swizzled for ldmatrix; an 8-bit operand whose rows run along K (A stored K x M, B
        stored K x N) is read byte by byte instead, where padded rows keep the addressing
        simple (XOR-swizzled byte addresses cost registers, and spills on sm_80)."""
        if r.buffer.dtype.bits == 8 and k_major_rows:
            return make_padded_layout(r.buffer)
        return make_swizzled_layout(r.buffer)

    @lowering("sm90")
    def lower_sm90(self, ctx) -> Stmt:
        first = ctx.thread_span[0] if ctx.thread_span is not None else 0
        plan = plan_wgmma(self, ctx.machine, ctx.threads, first, ctx.pass_configs)
        if isinstance(plan, str):
            return self.lower_cuda(ctx, why_not_wgmma=plan)
        M, N, K = self.mnk
        ctx.note(self, f"T.{self.op_name} {M}x{N}x{K}: wgmma.m64n{plan.n_chunk}k{plan.k_step} on {plan.warpgroups} "
                       f"warpgroup(s) ({plan.grid.warp_m} x {plan.grid.warp_n}), A from "
                       f"{'registers' if plan.a_layout is None else 'shared memory'}"
                       + ("" if not self.wg_wait else "; no wgmma.wait_group (wg_wait=-1)" if self.wg_wait < 0
                          else f"; wgmma.wait_group {self.wg_wait} (wg_wait)"))
        stmts = []
        if self.clear_accum:
            stmts.append(Fill(self.C, Const(0, self.C.buffer.dtype)).lower_cuda(ctx))
        stmts.append(emit_wgmma(self, plan, ctx, wait=self.wg_wait))
        return seq(stmts)

    @lowering("cuda")
    def lower_cuda(self, ctx, why_not_wgmma: str | None = None) -> Stmt:
        whole_fragment(self.C, "T.gemm")
        for r in (self.A, self.B):
            if r.buffer.is_fragment:
                whole_fragment(r, "T.gemm")
        stmts = []
        if self.clear_accum:
            stmts.append(Fill(self.C, Const(0, self.C.buffer.dtype)).lower_cuda(ctx))
        mma = has_mma(self.A.buffer.dtype, self.B.buffer.dtype)
        M, N, K = self.mnk
        how = "mma.sync" if mma else f"FMA (no tensor-core instruction for {self.A.buffer.dtype} operands)"
        self.synchronous_mma("mma.sync" if mma else "FMA")
        ctx.note(self, f"T.gemm {M}x{N}x{K}: {how}" + (f"; not wgmma: {why_not_wgmma}" if why_not_wgmma else ""))
        emitter = MmaEmitter if mma else SimtEmitter
        stmts.append(emitter(self, ctx).emit())
        return seq(stmts)


def leading_dim(r: BufferRegion) -> int:
    """Row stride of a 2-D tile inside its buffer; the tile's last axis must be contiguous."""
    nonunit = [i for i, e in enumerate(r.extents) if e != 1]
    strides = r.buffer.strides()
    if len(nonunit) < 2:
        nonunit = ([r.buffer.ndim - 2] if r.buffer.ndim >= 2 else []) + [r.buffer.ndim - 1]
    row, col = nonunit[-2] if len(nonunit) >= 2 else None, nonunit[-1]
    if strides[col] != 1:
        raise CompileError(f"T.gemm: the last axis of the {r.buffer.name} tile must be the buffer's last axis")
    return strides[row] if row is not None else 1


def _operand(x, what, name: str = "T.gemm"):
    r = as_region(x, f"{name} {what}", allow_corner=False)
    if not isinstance(r, BufferRegion):
        r = BufferRegion(r.buffer, [(i, 1) for i in r.indices])
    check_static_region(r, f"{name} {what}")
    return r


def gemm(A, B, C, transpose_A: bool = False, transpose_B: bool = False, policy=GemmWarpPolicy.Square,
         clear_accum: bool = False, k_pack: int = 1, wg_wait: int = 0, annotations=None) -> None:
    require_kernel("T.gemm")
    emit(build_gemm(Gemm, "T.gemm", A, B, C, transpose_A, transpose_B, policy, clear_accum, k_pack, wg_wait,
                    annotations))


def build_gemm(cls, name: str, A, B, C, transpose_A, transpose_B, policy, clear_accum, k_pack, wg_wait,
               annotations) -> Gemm:
    """The checked operator `name` (T.gemm or a variant of it, class `cls`) for these arguments.
    TileLang 0.1.15 passes wg_wait in `annotations`; it is honoured there too."""
    annotations = dict(annotations or {})
    if "wg_wait" in annotations:
        in_annotations = annotations.pop("wg_wait")
        wg_wait = wg_wait if wg_wait else in_annotations
    wg_wait = wg_wait_arg(wg_wait, name)
    if annotations:
        warn_once((name, "annotations"), f"{name}(annotations={annotations!r}) has no effect in tilewise: the "
                  "target chooses the instruction (lowering_notes() says which and why)", stacklevel=4)
    a, b, c = _operand(A, "A", name), _operand(B, "B", name), _operand(C, "C", name)
    # a T.alloc_local tile is accepted here for the CPU target, where a block is one thread and so a
    # private tile holds the same data as a fragment; GPU targets refuse it in infer_layout
    for r, what, scopes in ((a, "A", ("shared", "shared.dyn", "local.fragment", "local")),
                            (b, "B", ("shared", "shared.dyn", "local.fragment", "local")),
                            (c, "C", ("local.fragment", "local"))):
        if r.buffer.scope not in scopes:
            raise CompileError(
                f"{name}: {what} ({r.buffer.name}) is in {r.buffer.scope} memory; it must be in "
                + " or ".join(sorted(set(s.replace('.dyn', '') for s in scopes if s != "local")))
                + " (or, on the CPU target only, a T.alloc_local tile)"
            )
    sa, sb, sc = squeezed(a), squeezed(b), squeezed(c)
    for s, what, r in ((sa, "A", a), (sb, "B", b), (sc, "C", c)):
        if len(s) != 2:
            raise CompileError(f"{name}: {what} ({r.buffer.name}) must be a 2-D tile, got shape {shape_str(s)}")
    M, Ka = (sa[1], sa[0]) if transpose_A else (sa[0], sa[1])
    Kb, N = (sb[1], sb[0]) if transpose_B else (sb[0], sb[1])
    if Ka != Kb:
        raise CompileError(
            f"{name}: the K extents differ: A ({a.buffer.name}{shape_str(sa)}{', transposed' if transpose_A else ''}) "
            f"has K={Ka}, B ({b.buffer.name}{shape_str(sb)}{', transposed' if transpose_B else ''}) has K={Kb}"
        )
    if (M, N) != tuple(sc):
        raise CompileError(
            f"{name}: C ({c.buffer.name}) has shape {shape_str(sc)} but op(A) @ op(B) is ({M}, {N})"
        )
    key = (a.buffer.dtype.name, b.buffer.dtype.name)
    allowed = _ALLOWED.get(key)
    if allowed is None or c.buffer.dtype.name not in allowed:
        # the OCP MX types have tensor-core forms only from sm_100 (tcgen05), which tilewise does not target
        mx = [r.buffer.dtype for r in (a, b) if r.buffer.dtype.kind in ("float4", "float6", "e8m0")]
        hint = f" ({mx[0]} has no T.gemm: cast the tile to float16 or bfloat16 first)" if mx else ""
        raise CompileError(
            f"{name}: unsupported types A ({a.buffer.name})={a.buffer.dtype}, B ({b.buffer.name})={b.buffer.dtype}, "
            f"C ({c.buffer.name})={c.buffer.dtype}; supported A/B -> C: float16 -> float32 or float16, "
            f"bfloat16/float8 (OCP or fnuz) -> float32, float32/tfloat32 -> float32, float64 -> float64, "
            f"int8/uint8 -> int32, int4/uint4 -> int32{hint}"
        )
    return cls(a, b, c, bool(transpose_A), bool(transpose_B), int(policy), bool(clear_accum), k_pack, wg_wait)


def wg_wait_arg(wg_wait, what: str) -> int:
    """TileLang's wg_wait: a compile-time integer, -1 (no wait) or the groups left in flight."""
    v = getattr(wg_wait, "value", wg_wait)  # a Const from the parser
    if isinstance(v, bool) or not isinstance(v, int) or v < -1:
        raise CompileError(f"{what}(wg_wait={wg_wait!r}): expected a compile-time integer, -1 (no wait: the program "
                           "calls T.wait_wgmma) or the number of wgmma groups left in flight (0: wait for this one)")
    return v


from . import gemm_mfma  # noqa: E402, F401  (registers T.gemm's "hip" lowering: MFMA on AMD GPUs)
