"""@tilewise.autotune, stacked on @tilewise.jit:

    @tilewise.autotune(configs=[{"block_M": 64}, {"block_M": 128}], warmup=25, rep=100)
    @tilewise.jit(out_idx=[-1])
    def matmul(M, N, K, block_M=128): ...

    kernel = matmul(1024, 1024, 1024)   # tuned once per argument tuple, then cached

Arguments the caller passes are fixed; the configurations set the rest. Passing every tuned
parameter skips tuning and compiles that kernel."""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable

from ..ir.stmt import PrimFunc
from ..jit.jit import JITFactory
from ..profiler.supply import TensorSupplyType
from .param import AutotuneResult
from .tuner import AutoTuner


class AutoTuneFactory:
    def __init__(self, jit_factory: JITFactory, configs, warmup: float, rep: float, timeout, profile: dict):
        self.jit_factory = jit_factory
        self.configs = configs
        self.warmup = warmup
        self.rep = rep
        self.timeout = timeout
        self.profile = profile
        self._results: dict = {}
        self._lock = threading.Lock()
        functools.update_wrapper(self, jit_factory.factory)

    def get_tuner(self, *args, **kwargs) -> AutoTuner:
        """The AutoTuner this call would run (compile and profile arguments filled in)."""
        tuner = AutoTuner(self.jit_factory, self.configs)
        tuner.set_profile_args(warmup=self.warmup, rep=self.rep, timeout=self.timeout, **self.profile)
        tuner.set_kernel_parameters(args, kwargs)
        return tuner

    def tune(self, *args, **kwargs) -> AutotuneResult:
        """Tune for these factory arguments (or fetch the cached result): the AutotuneResult."""
        key = self.jit_factory._key(args, kwargs)
        with self._lock:
            hit = self._results.get(key)
        if hit is None:
            hit = self.get_tuner(*args, **kwargs).run()
            with self._lock:
                self._results[key] = hit
        return hit

    def __call__(self, *args, **kwargs):
        """The tuned kernel for these factory arguments."""
        return self.tune(*args, **kwargs).kernel

    compile = __call__

    def get_tir(self, *args, **kwargs) -> PrimFunc:
        return self.jit_factory.get_tir(*args, **kwargs)


def autotune(func: Callable | None = None, *, configs, warmup: float = 25, rep: float = 100, timeout: float = 100,
             supply_type: TensorSupplyType = TensorSupplyType.Auto, ref_prog: Callable | None = None,
             supply_prog: Callable | None = None, rtol: float = 1e-2, atol: float = 1e-2,
             max_mismatched_ratio: float = 0.01, skip_check: bool = False,
             manual_check_prog: Callable | None = None, cache_input_tensors: bool = False):
    """Tune a @tilewise.jit kernel factory over `configs`: a list of dicts of factory arguments,
    or a callable that takes the factory's call arguments and returns that list.

    `warmup` and `rep` are milliseconds of running each kernel before and while timing it;
    `timeout` is seconds per configuration for compiling, and again for checking and timing.
    With `ref_prog`, each configuration's output is compared with `ref_prog(*inputs)` within
    `atol`/`rtol` (or by `manual_check_prog(outputs, refs)`), and configurations that disagree
    are skipped."""
    profile = dict(supply_type=supply_type, ref_prog=ref_prog, supply_prog=supply_prog, rtol=rtol, atol=atol,
                   max_mismatched_ratio=max_mismatched_ratio, skip_check=skip_check,
                   manual_check_prog=manual_check_prog, cache_input_tensors=cache_input_tensors)

    def wrap(f):
        if isinstance(f, AutoTuneFactory):
            raise TypeError("@tilewise.autotune is applied twice")
        if isinstance(f, PrimFunc):
            raise TypeError(
                "@tilewise.autotune needs a kernel factory whose parameters the configs set, e.g. "
                "def matmul(M, N, K, block_M=128): ... returning a @T.prim_func; got a prim_func"
            )
        if not isinstance(f, JITFactory):
            if not callable(f):
                raise TypeError(f"@tilewise.autotune expects a @tilewise.jit kernel factory, got {f!r}")
            f = JITFactory(f, dict(out_idx=None, target="auto", execution_backend="auto", pass_configs=None,
                                   verbose=False))
        return AutoTuneFactory(f, configs, warmup, rep, timeout, profile)

    return wrap(func) if func is not None else wrap
