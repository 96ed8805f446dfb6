"""@tilewise.autotune, stacked on @tilewise.jit:

    @tilewise.autotune(configs=[{"block_M": 64}, {"block_M": 128}], warmup=25, rep=100)
    @tilewise.jit(out_idx=[-1])
    def matmul(M, N, K, block_M=128): ...

    kernel = matmul(1024, 1024, 1024)   # tuned once per argument tuple, then cached

Arguments the caller passes are fixed; the configurations set the rest. Passing every tuned
parameter skips tuning and compiles that kernel.

On a function in TileLang 0.1.8's eager style (jit/eager.py) the call takes tensors: the tuned
kernel for their shapes runs on them (they are also the tuning inputs unless
set_autotune_inputs gives others) and its outputs are returned; `.compile(...)` gives the tuned
kernel (T.const values by keyword). Under TileLang 0.1.4's `tilewise.autotuner.jit` the call
returns the AutotuneResult, as it did there."""
from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable

from ..ir.stmt import PrimFunc
from ..jit.jit import JITFactory
from ..profiler.supply import TensorSupplyType
from .candidates import PASS_CONFIGS
from .param import AutotuneResult
from .tuner import AutoTuner


class AutoTuneFactory:
    def __init__(self, jit_factory: JITFactory, configs, warmup: float, rep: float, timeout, profile: dict,
                 executor=None, early_stop: bool = False, early_stop_factor: float = 2.0,
                 do_not_specialize=None):
        self.do_not_specialize = frozenset(do_not_specialize or ())
        unknown = self.do_not_specialize - set(inspect.signature(jit_factory.factory).parameters)
        if unknown:
            raise ValueError(f"do_not_specialize names {sorted(unknown)}, not parameters of "
                             f"{jit_factory.factory.__name__}")
        self.early_stop = early_stop
        self.early_stop_factor = early_stop_factor
        self.jit_factory = jit_factory
        self.configs = configs
        self.warmup = warmup
        self.rep = rep
        self.timeout = timeout
        self.profile = profile
        self.executor = executor
        # tuning results by call key (TileLang's name: tests count and clear its entries); with
        # do_not_specialize the key leaves those parameters out
        self._tuner_cache: dict = {}
        self._lock = threading.Lock()
        functools.update_wrapper(self, jit_factory.factory)

    def get_tuner(self, *args, **kwargs) -> AutoTuner:
        """The AutoTuner this call would run (compile and profile arguments filled in)."""
        tuner = AutoTuner(self.jit_factory, self.configs)
        tuner.set_profile_args(warmup=self.warmup, rep=self.rep, timeout=self.timeout, **self.profile)
        tuner.set_kernel_parameters(args, kwargs)
        tuner.set_executor(self.executor)
        tuner.early_stop, tuner.early_stop_factor = self.early_stop, self.early_stop_factor
        return tuner

    def tune(self, *args, **kwargs) -> AutotuneResult:
        """Tune for these factory arguments (or fetch the cached result): the AutotuneResult."""
        kwargs.pop("__return_kernel", None)
        return self._tune(args, kwargs)[0]

    def _tune(self, args, kwargs) -> tuple[AutotuneResult, object]:
        """The result for this call and the full key of the call it was tuned for."""
        eager = self._eager(args, kwargs)
        full = eager[0] if eager is not None else self.jit_factory._key(args, kwargs)
        key = full if eager is not None else self._cache_key(args, kwargs, full)
        with self._lock:
            hit = self._tuner_cache.get(key)
        if hit is None:
            if eager is not None:
                hit = self._eager_tuner(*eager[1:]).run(), full
            else:
                hit = self.get_tuner(*args, **kwargs).run(), full
            with self._lock:
                self._tuner_cache[key] = hit
        return hit

    def _cache_key(self, args, kwargs, full):
        """TileLang's do_not_specialize: calls that differ only in those parameters share one
        tuning (positional or keyword alike)."""
        if not self.do_not_specialize:
            return full
        bound = inspect.signature(self.jit_factory.factory).bind(*args, **kwargs)
        bound.apply_defaults()
        kept = {k: v for k, v in bound.arguments.items() if k not in self.do_not_specialize}
        return self.jit_factory._key((), kept)

    def _retarget(self, result: AutotuneResult, args, kwargs):
        """The tuned configuration compiled for this call's arguments, when the result was tuned
        for other values of do_not_specialize parameters: the configuration is reused, the
        kernel is not (TileLang returns the first call's kernel, compiled for other shapes)."""
        config = dict(result.config or {})
        own_pass_configs = config.pop(PASS_CONFIGS, None)
        bound = inspect.signature(self.jit_factory.factory).bind_partial(*args, **kwargs)
        merged = {**config, **bound.arguments}  # what the caller passes wins, as while tuning
        if not own_pass_configs:
            return self.jit_factory(**merged)
        kw = dict(self.jit_factory.compile_kwargs)
        kw["pass_configs"] = {**(kw.get("pass_configs") or {}), **own_pass_configs}
        return self.jit_factory._compile_one(self.jit_factory._build((), merged), **kw)

    def __call__(self, *args, **kwargs):
        """The tuned kernel for these factory arguments (an eager function: run on its tensors).
        `__return_kernel=True` (TileLang's keyword) gives an eager function's kernel without
        running it."""
        return_kernel = kwargs.pop("__return_kernel", False)
        result, tuned_for = self._tune(args, kwargs)
        if self.do_not_specialize and self.jit_factory.mode != "eager" \
                and tuned_for != self.jit_factory._key(args, kwargs):
            return self._retarget(result, args, kwargs)
        if getattr(self.jit_factory, "returns_autotune_result", False):
            return result  # TileLang 0.1.4's autotuner.jit
        eager = self.jit_factory._eager if self.jit_factory.mode == "eager" else None
        if eager is not None and not return_kernel:
            tensors = eager.tensor_arguments(args, kwargs)
            if tensors is not None:
                return result.kernel(*tensors)
        return result.kernel

    def compile(self, *args, **kwargs):
        """The tuned kernel for these arguments, without running it."""
        return self(*args, **kwargs, __return_kernel=True)

    def _eager(self, args, kwargs):
        """For an eager-style function: (cache key, the function, fixed values, tensors, T.const
        values given), else None."""
        if self.jit_factory._style(args, kwargs) != "eager":
            return None
        eager = self.jit_factory._eager
        key = eager._func_and_key(args, kwargs)[0]
        given, tensors, consts = eager.split_given(args, kwargs)
        return ("eager", key), eager, given, tensors, consts

    def _eager_tuner(self, eager, given: dict, tensors: dict, consts: dict) -> AutoTuner:
        """The tuner of an eager function: its Python-valued parameters are the factory's."""
        factory = eager.factory_for(tensors, consts)
        tuner = AutoTuner(factory, self.configs)
        kw = self.jit_factory.compile_kwargs
        tuner.set_compile_args(out_idx=None, target=kw.get("target", "auto"),
                               execution_backend=kw.get("execution_backend", "auto"), verbose=kw.get("verbose", False),
                               pass_configs=kw.get("pass_configs"), compile_flags=kw.get("compile_flags"))
        tuner.set_profile_args(warmup=self.warmup, rep=self.rep, timeout=self.timeout, **self.profile)
        tuner.set_kernel_parameters((), given)
        tuner.set_executor(self.executor)
        tuner.early_stop, tuner.early_stop_factor = self.early_stop, self.early_stop_factor
        if tuner._inputs is None and all(n in tensors for n in eager.kernel_params):
            tuner._inputs = tuple(tensors[n] for n in eager.kernel_params)  # the call's tensors
        return tuner

    def get_tir(self, *args, **kwargs) -> PrimFunc:
        return self.jit_factory.get_tir(*args, **kwargs)


def autotune(func: Callable | None = None, *, configs, keys=None, warmup: float = 25, rep: float = 100,
             timeout: float = 100,
             supply_type: TensorSupplyType = TensorSupplyType.Auto, ref_prog: Callable | None = None,
             supply_prog: Callable | None = None, rtol: float = 1e-2, atol: float = 1e-2,
             max_mismatched_ratio: float = 0.01, skip_check: bool = False,
             manual_check_prog: Callable | None = None, cache_input_tensors: bool = False, executor=None,
             early_stop: bool = False, early_stop_factor: float = 2.0, do_not_specialize=None):
    """Tune a @tilewise.jit kernel factory over `configs`: a list of dicts of factory arguments,
    or a callable that takes the factory's call arguments and returns that list.

    `warmup` and `rep` are milliseconds of running each kernel before and while timing it;
    `timeout` is seconds per configuration for compiling, and again for checking and timing.
    With `ref_prog`, each configuration's output is compared with `ref_prog(*inputs)` within
    `atol`/`rtol` (or by `manual_check_prog(outputs, refs)`), and configurations that disagree
    are skipped. `early_stop` / `early_stop_factor`: see AutoTuner.run.

    `do_not_specialize`: names of factory parameters whose values do not start a new tuning:
    a call differing from a tuned one only in those reuses its best configuration (compiled for
    this call's values; TileLang hands back the first call's kernel itself).

    `executor` (tilewise's addition): anything with `submit(fn, *args) -> Future` — a
    concurrent.futures executor or tilewise.autotuner.RayExecutor — compiles (and, if its
    `measure` is true, times) each configuration as a task; see AutoTuner.set_executor."""
    profile = dict(supply_type=supply_type, ref_prog=ref_prog, supply_prog=supply_prog, rtol=rtol, atol=atol,
                   max_mismatched_ratio=max_mismatched_ratio, skip_check=skip_check,
                   manual_check_prog=manual_check_prog, cache_input_tensors=cache_input_tensors)
    defaults = dict(supply_type=TensorSupplyType.Auto, ref_prog=None, supply_prog=None, rtol=1e-2, atol=1e-2,
                    max_mismatched_ratio=0.01, skip_check=False, manual_check_prog=None, cache_input_tensors=False)
    configs = _with_keys(configs, keys)

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
        prof = dict(profile)
        for k, v in getattr(f, "autotune_profile", {}).items():  # TileLang 0.1.4: the checks were jit's
            if prof[k] is defaults[k] or prof[k] == defaults[k]:
                prof[k] = v
        if early_stop and early_stop_factor < 1.0:
            raise ValueError(f"early_stop_factor must be >= 1.0, got {early_stop_factor}")
        return AutoTuneFactory(f, configs, warmup, rep, timeout, prof, executor, early_stop, early_stop_factor,
                               do_not_specialize)

    return wrap(func) if func is not None else wrap


def _with_keys(configs, keys):
    """TileLang 0.1.4's `keys=`: the parameter names, for configurations given as tuples."""
    if keys is None or callable(configs):
        return configs
    keys = list(keys)
    out = []
    for c in configs:
        if isinstance(c, dict):
            extra = [k for k in c if k not in keys]
            if extra:
                raise ValueError(f"the configuration {c!r} sets {', '.join(extra)}, not among keys={keys}")
            out.append(dict(c))
        else:
            c = tuple(c)
            if len(c) != len(keys):
                raise ValueError(f"the configuration {c!r} has {len(c)} values for keys={keys}")
            out.append(dict(zip(keys, c)))
    return out
