"""What the compiler knows about the machine a kernel is compiled for: the facts passes and
operator lowerings consult (which lowerings apply, warp width, shared memory), as data. A target
(`jit/targets.py`) pairs a machine with its passes, renderer, compiler and runtimes."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Machine:
    name: str  # "cpu", or the CUDA architecture ("sm_80", "sm_90a", ...)
    # the lowering keys tile operators are looked up by, most specific first (tileop/base.py)
    lowering_keys: tuple[str, ...]
    warp_size: int  # threads that execute in lockstep (1 on the CPU: a block is one thread)
    max_shared_bytes: int  # shared memory one block may use (0: no separate shared memory)
    # instruction families beyond the baseline: "tma" and "mbarrier" (sm_90), "wgmma" (sm_90a)
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


def cuda_machine(arch: str) -> Machine:
    """Ampere and Ada lower with the "cuda" lowerings; Hopper tries its "sm90" ones first (TMA,
    mbarrier pipelines, and wgmma where the arch-specific sm_90a instruction set is targeted)."""
    if arch not in _CUDA_SHARED:
        raise ValueError(f"unsupported CUDA architecture {arch}; supported: {', '.join(CUDA_ARCHS)}")
    if arch.startswith("sm_90"):
        features = {"tma", "mbarrier"} | ({"wgmma"} if arch == "sm_90a" else set())
        return Machine(arch, ("sm90", "cuda"), 32, _CUDA_SHARED[arch], frozenset(features), *_CUDA_BLOCK)
    return Machine(arch, ("cuda",), 32, _CUDA_SHARED[arch], frozenset(), *_CUDA_BLOCK)
