"""T.wgmma_gemm(A, B, C, ...): TileLang 0.1.15's explicitly asynchronous Hopper gemm. It is a
T.gemm that must lower to wgmma.mma_async (sm_90a) and leaves its group in flight (wg_wait=-1):
the program calls T.wait_wgmma(n) before it touches C, or overwrites the shared operands. Where
wgmma cannot be used (another target, operand types or shapes wgmma has no form for, threads
that are not whole warpgroups) it is a CompileError saying why, never a silent mma.sync."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.builder import emit, require_kernel
from ..ir.stmt import Stmt
from ..layout.mma import GemmWarpPolicy
from .base import InferLevel, lowering
from .gemm import Gemm, build_gemm
from .wgmma_emitter import plan_wgmma

NAME = "T.wgmma_gemm"


class WgmmaGemm(Gemm):
    op_name = "wgmma_gemm"
    # TileLang's programs give it K ranges of shared tiles (`Q_shared[:, :D // 2]`): plan_wgmma
    # takes those for K-major operands (T.gemm keeps whole tiles, with mma.sync for the rest)
    wgmma_k_slices = True

    def _refuse(self, why: str) -> CompileError:
        M, N, K = self.mnk
        return CompileError(f"{NAME} {M}x{N}x{K} ({self.A.buffer.name}, {self.B.buffer.name} -> {self.C.buffer.name}) "
                            f"cannot use wgmma: {why}; use T.gemm, which chooses the target's instruction", self.span)

    def infer_layout(self, li, level: InferLevel) -> None:
        # refused here already: otherwise T.gemm's mma.sync layouts would be tried (and their
        # errors, naming T.gemm, reported) for a gemm that can never run on them
        if level == InferLevel.STRICT and li.machine is not None and li.machine.name != "cpu":
            plan = plan_wgmma(self, li.machine, li.threads, li.first_thread)
            if isinstance(plan, str):
                raise self._refuse(plan)
        super().infer_layout(li, level)

    @lowering("sm90")
    def lower_sm90(self, ctx) -> Stmt:
        first = ctx.thread_span[0] if ctx.thread_span is not None else 0
        plan = plan_wgmma(self, ctx.machine, ctx.threads, first)
        if isinstance(plan, str):
            raise self._refuse(plan)
        return super().lower_sm90(ctx)

    @lowering("cuda")
    def lower_cuda(self, ctx, why_not_wgmma: str | None = None) -> Stmt:
        raise self._refuse(why_not_wgmma or f"{ctx.machine.name} has no wgmma (it needs sm_90a)")

    @lowering("hip")
    def lower_hip(self, ctx) -> Stmt:
        raise self._refuse(f"{ctx.machine.name} is an AMD GPU (no wgmma: it needs sm_90a)")

    @lowering("loops")
    def lower_loops(self, ctx) -> Stmt:
        raise self._refuse("the CPU target has no wgmma (it needs sm_90a)")


def wgmma_gemm(A, B, C, transpose_A: bool = False, transpose_B: bool = False, policy=GemmWarpPolicy.Square,
               clear_accum: bool = False, annotations=None) -> None:
    """C (+)= op(A) @ op(B) by wgmma on sm_90a, with no implicit wait (TileLang's wg_wait=-1,
    which `annotations={"wg_wait": n}` may override as in TileLang)."""
    require_kernel(NAME)
    annotations = dict(annotations or {})
    wg_wait = annotations.pop("wg_wait", -1)
    emit(build_gemm(WgmmaGemm, NAME, A, B, C, transpose_A, transpose_B, policy, clear_accum, 1, wg_wait,
                    annotations))
