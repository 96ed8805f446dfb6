"""TileLang 0.1.4's `tilelang.autotuner.jit`: the check and supply arguments given to the
factory's decorator instead of to @autotune.

    @autotune(configs=get_configs(), keys=["block_M", "block_N"], warmup=10, rep=10)
    @jit(out_idx=[3], supply_type=tilewise.TensorSupplyType.Integer, ref_prog=None)
    def kernel(block_M=None, block_N=None):
        return kernel_func(block_M, block_N)

    result = kernel()          # the AutotuneResult (.latency, .config, .kernel), as in 0.1.4"""
from __future__ import annotations

from collections.abc import Callable

from ..jit.jit import JITFactory
from ..profiler.supply import TensorSupplyType


def jit(out_idx=None, supply_type: TensorSupplyType = TensorSupplyType.Auto, ref_prog: Callable | None = None,
        supply_prog: Callable | None = None, rtol: float = 1e-2, atol: float = 1e-2,
        max_mismatched_ratio: float = 0.01, skip_check: bool = False, cache_input_tensors: bool = True,
        target="auto", execution_backend="auto", pass_configs=None):
    """A kernel factory for @autotune carrying how its configurations are checked."""

    def wrap(fn) -> JITFactory:
        f = JITFactory(fn, dict(out_idx=out_idx, target=target, execution_backend=execution_backend,
                                pass_configs=pass_configs, verbose=False))
        f.autotune_profile = dict(supply_type=supply_type, ref_prog=ref_prog, supply_prog=supply_prog, rtol=rtol,
                                  atol=atol, max_mismatched_ratio=max_mismatched_ratio, skip_check=skip_check,
                                  cache_input_tensors=cache_input_tensors)
        f.returns_autotune_result = True
        return f

    return wrap
