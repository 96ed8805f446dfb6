"""The passes each kind of target runs, in order (a target record in jit/targets.py names its
list). TILEWISE_DUMP_IR=dir writes the IR after each."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .. import env
from ..ir.machine import Machine
from ..ir.stmt import PrimFunc
from ..tileop.base import LowerContext
from .apply_shared_layouts import apply_shared_layouts
from .atomic_add_runs import atomic_add_runs
from .check_host_kernel import check_host_kernel
from .check_launch_limits import check_launch_limits
from .check_loop_nesting import check_loop_nesting
from .check_tile_bounds import check_tile_bounds
from .contract_fma import contract_fma
from .cuda_context import CudaLowerContext
from .dynamic_parallel import dynamic_parallel
from .elide_gemm_operand_copies import elide_gemm_operand_copies
from .elide_output_tiles import elide_output_tiles
from .exact_narrow_floats import exact_narrow_floats
from .explicit_sync import explicit_sync
from .fuse_gemm_producers import fuse_gemm_producers
from .fuse_loops import fuse_loops
from .gemm_bands import gemm_bands
from .guard_block_effects import guard_block_effects
from .inject_pipeline import inject_pipeline, inject_pipeline_cpu
from .insert_barriers import insert_barriers
from .launch_sync import launch_sync
from .layout_inference import infer_layouts
from .legalize_safe_access import legalize_safe_access
from .lower_parallel_cuda import lower_parallel_cuda
from .lower_tile_ops import lower_tile_ops
from .merge_gemm_k_steps import merge_gemm_k_steps
from .pack_fp4 import pack_fp4
from .plan_shared_memory import plan_shared_memory
from .privatise_atomics import privatise_atomics
from .range_barriers import range_barriers
from .rasterize_blocks import rasterize_blocks
from .simplify_indices import simplify_indices
from .sink_global_views import sink_global_views
from .sink_register_loads import sink_register_loads
from .sink_register_updates import sink_register_updates
from .split_div_loops import split_div_loops
from .split_guarded_loops import split_guarded_loops
from .transpose_gemm_operands import transpose_gemm_operands
from .warp_specialize import warp_specialize
from .widen_indices import widen_indices

Pass = tuple[str, Callable[[PrimFunc], PrimFunc]]


def loop_passes(machine: Machine, pass_configs: dict | None = None) -> list[Pass]:
    """A block runs as one thread (the CPU): tile operators become loops over whole tiles."""
    configs = dict(pass_configs or {})
    return [
        ("check_loop_nesting", check_loop_nesting),
        ("legalize_safe_access", lambda f: legalize_safe_access(f, configs)),
        ("check_tile_bounds", lambda f: check_tile_bounds(f, configs)),
        ("rasterize_blocks", rasterize_blocks),
        ("inject_pipeline", inject_pipeline_cpu),
        ("merge_gemm_k_steps", merge_gemm_k_steps),
        ("transpose_gemm_operands", transpose_gemm_operands),
        ("elide_output_tiles", elide_output_tiles),
        ("lower_tile_ops", lambda f: lower_tile_ops(f, lambda k, r: LowerContext(machine.lowering_keys, r))),
        ("split_div_loops", split_div_loops),
        ("simplify_indices", simplify_indices),
        ("fuse_loops", fuse_loops),
        ("widen_indices", widen_indices),
        ("contract_fma", contract_fma),
        ("exact_narrow_floats", exact_narrow_floats),
        ("fuse_gemm_producers", fuse_gemm_producers),
        ("elide_gemm_operand_copies", elide_gemm_operand_copies),
        ("split_guarded_loops", split_guarded_loops),
        ("privatise_atomics", privatise_atomics),
        ("atomic_add_runs", atomic_add_runs),
        ("gemm_bands", lambda f: gemm_bands(f, configs)),
        ("pack_fp4", pack_fp4),
    ]


def thread_passes(machine: Machine, pass_configs: dict | None = None) -> list[Pass]:
    """A block is many threads (CUDA): layouts are inferred and every operator is spread over
    the threads; the result is the thread IR of docs/THREAD_IR.md."""
    configs = dict(pass_configs or {})

    def context(k, ranges) -> CudaLowerContext:
        return CudaLowerContext(k, k.attrs["layouts"], ranges, machine, configs)

    return [
        ("check_host_kernel", check_host_kernel),
        ("check_launch_limits", lambda f: check_launch_limits(f, machine)),
        ("launch_sync", lambda f: launch_sync(f, machine)),
        ("check_loop_nesting", check_loop_nesting),
        ("dynamic_parallel", dynamic_parallel),
        ("sink_global_views", sink_global_views),
        ("legalize_safe_access", lambda f: legalize_safe_access(f, configs)),
        ("rasterize_blocks", rasterize_blocks),
        ("explicit_sync", lambda f: explicit_sync(f, machine, configs)),
        ("inject_pipeline", lambda f: inject_pipeline(f, machine, configs)),
        ("insert_barriers", lambda f: insert_barriers(f, configs)),
        ("guard_block_effects", guard_block_effects),
        ("infer_layouts", lambda f: infer_layouts(f, machine, configs)),
        ("lower_tile_ops", lambda f: lower_tile_ops(f, context)),
        ("lower_parallel", lambda f: lower_parallel_cuda(f, machine, configs)),
        ("apply_shared_layouts", apply_shared_layouts),
        # fp4 two values per byte: after layouts (element offsets are final), before planning
        ("pack_fp4", pack_fp4),
        ("plan_shared_memory", lambda f: plan_shared_memory(f, machine)),
        # the automatic producer warpgroup first: range_barriers then sees its named barriers
        # (ids 1 and 2) and gives barriers left inside thread ranges other ids
        ("warp_specialize", warp_specialize),
        ("range_barriers", range_barriers),
        ("simplify_indices", simplify_indices),
        ("widen_indices", widen_indices),
        ("contract_fma", contract_fma),
        # after contract_fma: moving an update next to its consumer must not fuse a multiply-add
        ("sink_register_updates", sink_register_updates),
        ("sink_register_loads", sink_register_loads),
    ]


def run_passes(func: PrimFunc, passes: list[Pass], dump_dir: str | None = None,
               after_each: Callable[[str, PrimFunc], None] | None = None) -> PrimFunc:
    """`after_each(name, func)` sees the input (name "input") and the result of every pass: how
    kernel.report() shows the IR pass by pass (ordinary compiles pass none)."""
    dump_dir = dump_dir if dump_dir is not None else env.get("TILEWISE_DUMP_IR")
    if after_each is not None:
        after_each("input", func)
    if dump_dir:
        d = Path(dump_dir)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{func.name}.00_input.py").write_text(func.script() + "\n")
    for i, (name, p) in enumerate(passes, 1):
        func = p(func)
        if after_each is not None:
            after_each(name, func)
        if dump_dir:
            (Path(dump_dir) / f"{func.name}.{i:02d}_{name}.py").write_text(func.script() + "\n")
    return func
