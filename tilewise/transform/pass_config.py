"""PassConfigKey: TileLang's names for the `pass_configs` keys of tilewise.compile / @tilewise.jit.

Members are strings, so `{PassConfigKey.TL_DISABLE_TMA_LOWER: True}` and
`{"tl.disable_tma_lower": True}` are the same configuration (and the same cache key)."""
from __future__ import annotations

from enum import Enum


class PassConfigKey(str, Enum):
    # Keys tilewise acts on.
    TL_DISABLE_THREAD_STORAGE_SYNC = "tl.disable_thread_storage_sync"
    TL_DISABLE_SAFE_MEMORY_ACCESS = "tl.disable_safe_memory_legalize"
    TL_ENABLE_FAST_MATH = "tl.enable_fast_math"
    TL_DISABLE_FAST_MATH = "tl.disable_fast_math"
    TIR_DISABLE_VECTORIZE = "tir.disable_vectorize"
    TL_DISABLE_TMA_LOWER = "tl.disable_tma_lower"
    TL_DISABLE_WARP_SPECIALIZED = "tl.disable_warp_specialized"
    # the pass-config spelling of T.disable_warp_group_reg_alloc(): no setmaxnreg
    TL_DISABLE_WARP_GROUP_REG_ALLOC = "tl.disable_warp_group_reg_alloc"
    # False: T.Pipelined issues its copies synchronously (no cp.async or TMA pipeline on CUDA, no
    # register staging on AMD GPUs); the multi-buffered schedule stays
    TIR_USE_ASYNC_COPY = "tir.use_async_copy"
    # tilewise's own (TileLang has no such key): no register-capped second ptxas run on CUDA
    # (backend/cuda/register_fit.py)
    TL_DISABLE_REGISTER_FIT = "tl.disable_register_fit"
    # Keys accepted for compatibility: they steer TVM's own passes, which tilewise's lowering does
    # not have, so they change nothing here.
    TL_DISABLE_DYNAMIC_TAIL_SPLIT = "tl.disable_dynamic_tail_split"
    TL_DYNAMIC_ALIGNMENT = "tl.dynamic_alignment"
    TL_CONFIG_INDEX_BITWIDTH = "tl.config_index_bitwidth"
    TL_SIMPLIFY = "tl.Simplify"
    TL_DISABLE_SHUFFLE_ELECT = "tl.disable_shuffle_elect"
    TL_DISABLE_VECTORIZE_256 = "tl.disable_vectorize_256"
    # TileLang's vectorize planner prints its choices; tilewise's are in kernel.lowering_notes()
    TL_ENABLE_VECTORIZE_PLANNER_VERBOSE = "tl.enable_vectorize_planner_verbose"
    TL_ENABLE_AGGRESSIVE_SHARED_MEMORY_MERGE = "tl.enable_aggressive_shared_memory_merge"
    TL_DEBUG_MERGE_SHARED_MEMORY_ALLOCATIONS = "tl.debug_merge_shared_memory_allocations"
    TL_PTXAS_REGISTER_USAGE_LEVEL = "tl.ptxas_register_usage_level"
    TL_ENABLE_PTXAS_VERBOSE_OUTPUT = "tl.enable_ptxas_verbose_output"
    TIR_SIMPLIFY = "tir.Simplify"
    TIR_DISABLE_CSE = "tir.disable_cse_tir"
    TIR_ENABLE_EQUIV_TERMS_IN_CSE = "tir.enable_equiv_terms_in_cse_tir"
    TIR_DISABLE_STORAGE_REWRITE = "tir.disable_storage_rewrite"
    TIR_ENABLE_DEBUG = "tir.enable_debug"
    TIR_MERGE_STATIC_SMEM = "tir.merge_static_smem"
    TIR_NOALIAS = "tir.noalias"

    def __str__(self) -> str:
        return self.value


def plain_keys(configs: dict) -> dict:
    """The same configs keyed by plain strings (what the passes and the cache key see)."""
    return {(k.value if isinstance(k, PassConfigKey) else k): v for k, v in configs.items()}
