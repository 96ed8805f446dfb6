"""Renders the thread IR (docs/THREAD_IR.md) to HIP C++ for AMD GPUs, compiled by clang's AMDGPU
backend without ROCm (clang.py). The kernel structure, buffers, loops and expressions are the
CUDA renderer's; what differs is spelled here and in include/tw_hip.h: work-item and workgroup
ids through clang builtins, the LDS tile as a static `__shared__` array (its size then shows in
the code object's group segment), barriers, and wavefront shuffles of up to 64 lanes. The
instructions AMD GPUs do not have (cp.async, ldmatrix, mma.sync, TMA, mbarriers, wgmma, named
barriers) and the few double math functions include/tw_hip_math.h does not have are a
CompileError naming them."""
from __future__ import annotations

from ...errors import CompileError
from ...ir import directed64
from ...ir.expr import Call, Const
from ...ir.stmt import PrimFunc
from ...ir.visitor import walk
from ..cuda.renderer import CudaModule, CudaRenderer

# thread-IR intrinsics with no AMD counterpart, and what they are
NVIDIA_ONLY = {
    "cp_async": "cp.async", "cp_async_commit": "cp.async", "cp_async_wait": "cp.async", "ldmatrix": "ldmatrix",
    "mma_sync": "mma.sync (NVIDIA's tensor-core instruction; T.gemm on AMD lowers to MFMA)", "tf32_round": "tf32 conversion",
    "mbarrier_init": "mbarriers", "mbarrier_arrive": "mbarriers", "mbarrier_arrive_expect_tx": "mbarriers",
    "mbarrier_expect_tx": "mbarriers", "mbarrier_wait": "mbarriers", "named_barrier": "named barriers (bar.sync id)",
    "named_barrier_arrive": "named barriers (bar.arrive id)", "setmaxnreg": "setmaxnreg", "elect_one": "elect.sync",
    "fence_barrier_init": "mbarriers", "fence_proxy_async": "the asynchronous proxy (TMA, wgmma)",
    "tma_load": "TMA", "tma_store": "TMA", "tma_store_commit": "TMA", "tma_store_wait": "TMA",
    "wgmma": "wgmma", "wgmma_fence": "wgmma", "wgmma_commit": "wgmma", "wgmma_wait": "wgmma", "wgmma_desc": "wgmma",
    "print": "printf (T.print needs ROCm's device library, which clang -nogpulib does not link)",
}  # fmt: skip

# math include/tw_hip_math.h does not have (clang's AMDGPU backend has no lowering of its own
# without ROCm's ocml): for double the trigonometric functions (their Payne-Hanek reduction is
# written for float's 24-bit significand), pow (exp(y log x) needs a double-double log in double)
# and erf (its series is ~10 ulp in double). float and the 16-bit types have every math function.
UNSUPPORTED_F64_MATH = {"sin", "cos", "tan", "fast_sin", "fast_cos", "fast_tan", "pow", "erf"}
# the types tw_hip.h does not have: of the float8 types only AMD's fnuz ones (what gfx942's fp8
# instructions read); the OCP float8 / float6 / float4 types are not gfx942's
_UNSUPPORTED_TYPES = ("float8_", "float6_", "float4_")
_FNUZ_TYPES = ("float8_e4m3fnuz", "float8_e5m2fnuz")


# TileLang's 4-bit integers and tfloat32 (NVIDIA tensor-core operand types): not in tw_hip.h either
_NVIDIA_ONLY_TYPES = ("int4", "uint4", "tfloat32")


def _unsupported(name: str) -> bool:
    return (name.startswith(_UNSUPPORTED_TYPES) and name not in _FNUZ_TYPES) or name in _NVIDIA_ONLY_TYPES


def _refuse(what: str, func: PrimFunc, span=None):
    raise CompileError(f"{func.name}: {what}; the HIP target (AMD GPUs) does not have it", span)


class HipRenderer(CudaRenderer):
    language = "HIP"
    header = "tw_hip.h"
    native_f16 = False  # tw_hip.h's half arithmetic goes through float (no PTX helpers)
    warp_size = 64
    block_index = "__builtin_amdgcn_workgroup_id_{}()"
    thread_index = "__builtin_amdgcn_workitem_id_{}()"
    barrier = "tw::syncthreads()"
    warp_barrier = "tw::syncwarp()"

    def render(self) -> CudaModule:
        self._check_supported()
        return super().render()

    def _check_supported(self):
        f = self.func

        def visit(n):
            dt = getattr(n, "dtype", None)
            name = getattr(dt, "name", "")
            if _unsupported(name):
                _refuse(f"the type {name}", f, getattr(n, "span", None))

        walk(f.body, visit)
        for p in f.params:
            if _unsupported(p.dtype.name):
                _refuse(f"the type {p.dtype.name} (parameter {p.name})", f)

    def dynamic_shared(self, name: str, nbytes: int) -> str:
        # static LDS: the size is known when rendering, and the code object then declares it
        # (.group_segment_fixed_size), which resource_usage() reports
        return f"__shared__ __align__({self.smem_align}) uint8_t {name}[{nbytes}];"

    def expr_Call(self, e: Call) -> str:
        if e.name in NVIDIA_ONLY:
            raise CompileError(f"{self.func.name}: {e.name} needs {NVIDIA_ONLY[e.name]}, which AMD GPUs do not have "
                               "(the HIP target)")
        if directed64.split_name(e.name) is not None:
            raise CompileError(f"{self.func.name}: float64 {e.name} (a T.ieee_* operation rounded toward zero, up or "
                               "down) is not available for the HIP target: AMD GPUs round by a mode register, not "
                               "per instruction, and tw_hip.h does not switch it")
        if e.name in UNSUPPORTED_F64_MATH and e.dtype.name == "float64":
            raise CompileError(f"{self.func.name}: {e.name} on float64 is not available for the HIP target: "
                               "clang compiles without ROCm's device math library (ocml), its AMDGPU backend "
                               "has no lowering of its own for it and tw_hip_math.h has only the float version "
                               "(cast to float32 if that precision is enough)")
        return super().expr_Call(e)

    def _shfl(self, e: Call, args) -> str:
        width = int(e.attrs.get("width", 32))
        super()._shfl(e, args)  # checks the width
        mask = e.args[1]
        if e.name == "shfl_xor" and isinstance(mask, Const) and 0 < mask.value < min(width, 32) \
                and mask.value & (mask.value - 1) == 0:
            # the butterfly stays inside each 32-lane half: DPP or ds_swizzle, no address (tw_hip.h)
            return f"tw::shfl_xor_const<{mask.value}>({args[0]})"
        return f"tw::{e.name}({args[0]}, {args[1]}, {width})"

    call_shfl_xor = call_shfl_down = call_shfl_up = call_shfl_idx = _shfl

    # -- warp votes over the 64-lane wavefront (language/warp_vote.py): clang's AMDGPU builtins
    def call_vote_any(self, e: Call, args) -> str:
        return f"(__builtin_amdgcn_ballot_w64(({args[0]}) != 0) != 0 ? 1 : 0)"

    def call_vote_all(self, e: Call, args) -> str:
        return f"(__builtin_amdgcn_ballot_w64(({args[0]}) != 0) == __builtin_amdgcn_read_exec() ? 1 : 0)"

    def call_vote_ballot(self, e: Call, args) -> str:
        return f"((uint64_t)__builtin_amdgcn_ballot_w64(({args[0]}) != 0))"

    def call_activemask(self, e: Call, args) -> str:
        return "((uint64_t)__builtin_amdgcn_read_exec())"

    def _no_hip(self, e: Call, args) -> str:
        what = {"match_any": "T.match_any_sync", "match_all": "T.match_all_sync"}.get(e.name, f"T.{e.name}")
        why = ("AMD GPUs have no warp match instruction" if e.name.startswith("match") else
               "AMD GPUs have no barrier that reduces a predicate (CUDA's bar.red)")
        raise CompileError(f"{self.func.name}: {what} is not available for the HIP target: {why}")

    call_match_any = call_match_all = _no_hip
    call_syncthreads_count = call_syncthreads_and = call_syncthreads_or = _no_hip


def render_hip(func: PrimFunc) -> CudaModule:
    """Render a thread-level PrimFunc lowered for an AMD machine (ir/machine.py hip_machine)."""
    return HipRenderer(func).render()
