"""What the compiler knows about the machine a kernel is compiled for: the facts passes and
operator lowerings consult (which lowerings apply, warp width, shared memory), as data. A target
(`jit/targets.py`) pairs a machine with its passes, renderer, compiler and runtimes."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Machine:
    name: str  # "cpu", the CUDA architecture ("sm_80", "sm_90a", ...) or the AMD one ("gfx942", ...)
    # the lowering keys tile operators are looked up by, most specific first (tileop/base.py)
    lowering_keys: tuple[str, ...]
    warp_size: int  # threads that execute in lockstep (1 on the CPU: a block is one thread)
    max_shared_bytes: int  # shared memory one block may use (0: no separate shared memory)
    # instruction families beyond the baseline: "cp_async" and "ldmatrix" (every CUDA GPU tilewise
    # targets), "mbarrier" (sm_80: init, arrive, the parity wait, cp.async arrivals), "tma" (sm_90:
    # also the mbarrier tx-count), "wgmma" (sm_90a); AMD GPUs have none of them.
    # And how a software pipeline overlaps its copies with compute without an asynchronous copy:
    # "register_staging" (AMD GPUs): the global loads of the next stage go into registers before
    # the compute of the current one, their stores into shared memory after it
    features: frozenset = frozenset()
    # threads one block may have, in total and per dimension (x, y, z); empty: no limit
    max_threads: int = 0
    max_block_dims: tuple[int, ...] = ()

    def has(self, feature: str) -> bool:
        return feature in self.features


CPU = Machine("cpu", ("loops",), 1, 0)

# opt-in dynamic shared memory per block (CUDA C programming guide, compute capabilities table)
_CUDA_SHARED = {"sm_80": 163 * 1024, "sm_86": 99 * 1024, "sm_89": 99 * 1024, "sm_90": 227 * 1024,
                "sm_90a": 227 * 1024}
CUDA_ARCHS = tuple(_CUDA_SHARED)
_CUDA_BLOCK = (1024, (1024, 1024, 64))  # threads per block, and per dimension
_CUDA_BASE = {"cp_async", "ldmatrix"}


def cuda_machine(arch: str) -> Machine:
    """Ampere and Ada lower with the "cuda" lowerings; Hopper tries its "sm90" ones first (TMA,
    mbarrier pipelines, and wgmma where the arch-specific sm_90a instruction set is targeted)."""
    if arch not in _CUDA_SHARED:
        raise ValueError(f"unsupported CUDA architecture {arch}; supported: {', '.join(CUDA_ARCHS)}")
    if arch.startswith("sm_90"):
        features = _CUDA_BASE | {"tma", "mbarrier"} | ({"wgmma"} if arch == "sm_90a" else set())
        return Machine(arch, ("sm90", "cuda"), 32, _CUDA_SHARED[arch], frozenset(features), *_CUDA_BLOCK)
    # mbarriers (without the tx-count, which needs sm_90) and cp.async arriving on them are sm_80's
    return Machine(arch, ("cuda",), 32, _CUDA_SHARED[arch], frozenset(_CUDA_BASE | {"mbarrier"}), *_CUDA_BLOCK)


# AMD Instinct GPUs clang-19's AMDGPU backend compiles for: 64-lane wavefronts, 64 KiB of LDS per
# workgroup (gfx950 has 160 KiB), at most 1024 work-items per workgroup (CDNA3 ISA, "LDS").
_HIP_LDS = {"gfx90a": 64 * 1024, "gfx942": 64 * 1024, "gfx950": 160 * 1024}
HIP_ARCHS = tuple(_HIP_LDS)


def hip_machine(arch: str) -> Machine:
    """AMD CDNA GPUs lower with their own "hip" lowerings first, then the CUDA ones: those are
    plain C++ over the thread IR (copies, loops, fills, atomics, shuffle reductions) that the HIP
    renderer spells for clang. No cp.async, ldmatrix, TMA, mbarrier or wgmma: T.Pipelined stages its
    copies through registers ("register_staging", transform/inject_pipeline.py)."""
    if arch not in _HIP_LDS:
        raise ValueError(f"unsupported AMD architecture {arch}; supported: {', '.join(HIP_ARCHS)}")
    return Machine(arch, ("hip", "cuda"), 64, _HIP_LDS[arch], frozenset({"register_staging"}), *_CUDA_BLOCK)
