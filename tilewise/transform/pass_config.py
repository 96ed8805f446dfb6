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
    TL_ENABLE_ASYNC_COPY = "tl.enable_async_copy"  # TileLang 0.1.15's name of the same switch
    TL_DISABLE_WGMMA = "tl.disable_wgmma"  # T.gemm on sm_90a uses mma.sync
    TL_DEVICE_COMPILE_FLAGS = "tl.device_compile_flags"  # appended to compile_flags=
    TL_ENABLE_DUMP_IR = "tl.enable_dump_ir"  # the IR after every pass, as TILEWISE_DUMP_IR
    TL_DUMP_IR_DIR = "tl.dump_ir_path"  # where (default ./dump_ir/)
    CUDA_KERNELS_OUTPUT_DIR = "cuda.kernels_output_dir"  # the kernel's source is written there
    TIR_ADD_LOWER_PASS = "tir.add_lower_pass"  # user TVM passes: an error unless empty
    # tilewise's own, CPU target: True runs a GEMM kernel's blocks one by one as written instead
    # of in bands (transform/gemm_bands.py; the results are the same bit for bit); a pair
    # (G, R) sets the bands' shape, G column blocks by R row blocks
    TW_CPU_DISABLE_GEMM_BANDS = "tw.cpu.disable_gemm_bands"
    TW_CPU_GEMM_BAND_SHAPE = "tw.cpu.gemm_band_shape"
    # Keys accepted for compatibility that change nothing here (NO_EFFECT below says why; a
    # value other than TileLang's default warns once).
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
    TL_SIMPLIFY_TRANSITIVELY_PROVE_INEQUALITIES = "transitively_prove_inequalities"
    TL_SIMPLIFY_CONVERT_BOOLEAN_TO_AND_OF_ORS = "convert_boolean_to_and_of_ors"
    TL_SIMPLIFY_APPLY_CONSTRAINTS_TO_BOOLEAN_BRANCHES = "apply_constraints_to_boolean_branches"
    TL_SIMPLIFY_PROPAGATE_KNOWNS_TO_PROVE_CONDITIONAL = "propagate_knowns_to_prove_conditional"
    TL_SIMPLIFY_PROPAGATE_KNOWNS_TO_SIMPLIFY_EXPRESSIONS = "propagate_knowns_to_simplify_expressions"
    TL_SIMPLIFY_ENABLE_LET_INLINE = "enable_simplify_let_inline"
    TL_FORCE_LET_INLINE = "tl.force_let_inline"
    TL_IF_STMT_BINDING_INLINE_REPLAYABLE_BINDS = "tl.if_stmt_binding_inline_replayable_binds"
    TL_DISABLE_BUFFER_INIT_CHECK = "tl.disable_buffer_init_check"
    TL_DISABLE_DATA_RACE_CHECK = "tl.disable_data_race_check"
    TL_DISABLE_PRELOWER_SEMANTIC_CHECK = "tl.disable_prelower_semantic_check"
    TL_DISABLE_OUT_OF_BOUND_WARNING = "tl.disable_out_of_bound_warning"
    TL_ENABLE_AUTO_SCHEDULE = "tl.enable_auto_schedule"
    TL_ENABLE_AUTO_WARP_SPECIALIZATION = "tl.enable_auto_warp_specialization"
    TL_LAYOUT_COST_MODEL = "tl.layout_cost_model"
    TL_REDUCER_FORCE_BASELINE = "tl.reducer_force_baseline"
    TL_ENABLE_REDUCER_PLAN_VERBOSE = "tl.enable_reducer_plan_verbose"
    TL_ENABLE_FP32X2_REDUCTION = "tl.enable_fp32x2_reduction"
    TL_ENABLE_LOWER_LDGSTG = "tl.enable_lower_ldgstg"
    TL_ENABLE_LOWER_LDGSTG_PREDICATED = "tl.enable_lower_ldgstg_predicated"
    TL_DISABLE_SHARED_MEMORY_REUSE = "tl.disable_shared_memory_reuse"
    TL_DISABLE_LOOP_UNSWITCHING = "tl.disable_loop_unswitching"
    TL_LOOP_UNSWITCHING_ALLOW_NON_TRIVIAL_ELSE = "tl.loop_unswitching_allow_non_trivial_else"
    TL_STORAGE_REWRITE_DETECT_INPLACE = "tl.storage_rewrite_detect_inplace"
    TL_EMIT_LINE_DIRECTIVES = "tl.emit_line_directives"
    TL_AST_PRINT_ENABLE = "tl.ast_print_enable"
    TL_LAYOUT_VISUALIZATION_ENABLE = "tl.layout_visualization_enable"
    TL_LAYOUT_VISUALIZATION_FORMATS = "tl.layout_visualization_formats"
    TL_PASS_PROFILE = "tl.pass_profile"
    TL_PASS_PROFILE_THRESHOLD_MS = "tl.pass_profile_threshold_ms"

    def __str__(self) -> str:
        return self.value


def plain_keys(configs: dict) -> dict:
    """The same configs keyed by plain strings (what the passes and the cache key see).
    TileLang 0.1.15 spells TVM's keys "tirx.*" (its TVM's renamed TIR): they are the "tir.*" keys."""
    out = {}
    for k, v in configs.items():
        k = k.value if isinstance(k, PassConfigKey) else k
        if isinstance(k, str) and k.startswith("tirx."):
            k = "tir." + k[len("tirx."):]
        out[k] = v
    return out


_TVM = "it steers a TVM pass tilewise's own lowering does not have"
_PRINT = "a TileLang debugging printout; kernel.lowering_notes() and kernel.report() show tilewise's decisions"
# Keys accepted so that TileLang programs run unchanged, which change nothing in tilewise: key ->
# (TileLang's default, why). A value other than the default warns once, naming the key.
NO_EFFECT: dict[str, tuple[object, str]] = {
    "tl.disable_dynamic_tail_split": (False, _TVM + " (tilewise guards ragged tiles itself)"),
    "tl.dynamic_alignment": (16, _TVM + " (tilewise proves alignment from the shapes)"),
    "tl.config_index_bitwidth": (32, "tilewise widens indices to 64 bits where a tensor needs it"),
    "tl.Simplify": (None, _TVM), "tir.Simplify": (None, _TVM),
    "tl.disable_shuffle_elect": (False, _TVM), "tl.disable_vectorize_256": (False, _TVM),
    "tl.enable_vectorize_planner_verbose": (False, _PRINT),
    "tl.enable_aggressive_shared_memory_merge": (False, "tilewise plans shared memory by liveness itself"),
    "tl.debug_merge_shared_memory_allocations": (False, _PRINT),
    "tl.ptxas_register_usage_level": (None, "tilewise compiles with NVRTC's defaults (compile_flags= takes ptxas "
                                            "options)"),
    "tl.enable_ptxas_verbose_output": (False, _PRINT + "; kernel.resource_usage() gives ptxas's numbers"),
    "tir.disable_cse_tir": (False, _TVM), "tir.enable_equiv_terms_in_cse_tir": (False, _TVM),
    "tir.disable_storage_rewrite": (False, _TVM), "tir.enable_debug": (False, _PRINT),
    "tir.merge_static_smem": (None, "tilewise always merges a kernel's shared tiles into one plan"),
    "tir.noalias": (True, "tensor parameters are __restrict__ unless T.annotate_restrict_buffers says otherwise"),
    "transitively_prove_inequalities": (False, _TVM), "convert_boolean_to_and_of_ors": (False, _TVM),
    "apply_constraints_to_boolean_branches": (False, _TVM), "propagate_knowns_to_prove_conditional": (False, _TVM),
    "propagate_knowns_to_simplify_expressions": (False, _TVM), "enable_simplify_let_inline": (True, _TVM),
    "tl.force_let_inline": (False, _TVM), "tl.if_stmt_binding_inline_replayable_binds": (True, _TVM),
    "tl.disable_buffer_init_check": (False, "tilewise has no compile-time buffer-initialisation check (the emulator "
                                            "reports reads of unwritten shared memory)"),
    "tl.disable_data_race_check": (True, "tilewise has no compile-time race check; the emulator checks every run"),
    "tl.disable_prelower_semantic_check": (False, "tilewise's checks are part of parsing and lowering"),
    "tl.disable_out_of_bound_warning": (True, "tilewise guards accesses it cannot prove in bounds, without warnings"),
    "tl.enable_auto_schedule": (True, "an Ascend scheduling switch; tilewise has no Ascend target"),
    "tl.enable_auto_warp_specialization": (None, "tilewise's sm_90a pipelines specialise warps when T.Pipelined "
                                                 "allows (tl.disable_warp_specialized turns it off)"),
    "tl.layout_cost_model": (None, "tilewise's layout inference has one fixed order of preferences"),
    "tl.reducer_force_baseline": (False, "tilewise has one reducer plan"),
    "tl.enable_reducer_plan_verbose": (False, _PRINT),
    "tl.enable_fp32x2_reduction": (False, "tilewise reduces float32 one value per lane"),
    "tl.enable_lower_ldgstg": (False, "tilewise's copies choose their own global load/store widths"),
    "tl.enable_lower_ldgstg_predicated": (False, "tilewise's copies choose their own global load/store widths"),
    "tl.disable_shared_memory_reuse": (False, "tilewise reuses shared memory of tiles whose lifetimes do not overlap"),
    "tl.disable_loop_unswitching": (False, _TVM), "tl.loop_unswitching_allow_non_trivial_else": (False, _TVM),
    "tl.storage_rewrite_detect_inplace": (False, _TVM),
    "tl.emit_line_directives": (False, "the source carries no #line directives; errors name the program's lines"),
    "tl.ast_print_enable": (False, _PRINT), "tl.layout_visualization_enable": (False, _PRINT),
    "tl.layout_visualization_formats": (None, _PRINT), "tl.pass_profile": (False, _PRINT),
    "tl.pass_profile_threshold_ms": (0, _PRINT),
}
