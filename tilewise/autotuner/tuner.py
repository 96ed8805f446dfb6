"""AutoTuner: compile every configuration of a kernel factory, check and time each one, keep
the fastest, and cache the answer on disk.

    result = (AutoTuner.from_kernel(factory, configs)
              .set_compile_args(out_idx=[-1], target="cpu", ref_prog=ref, atol=1e-2, rtol=1e-2)
              .run(warmup=25, rep=100))
    result.latency, result.config, result.kernel
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

from ..errors import warn_once
from ..jit.compile import compile as tw_compile
from ..jit.jit import JITFactory
from ..jit.options import function_out_idx, normalize_out_idx
from ..jit.target import parse_target, resolve_backend
from . import result_cache
from .candidates import Binding, Candidate, bind_configs, build_funcs, compile_kwargs_for
from .measure import Measurer, get_autotune_inputs, needs_supplied_inputs
from .parallel import compile_all
from .param import AutotuneError, AutotuneResult, CompileArgs, ProfileArgs
from .progress import Progress

logger = logging.getLogger("tilewise.autotuner")

_UNSET = object()
_PROFILE_FIELDS = {f.name for f in dataclasses.fields(ProfileArgs)}


class AutoTuner:
    """Tunes `fn`, a factory whose keyword parameters the configurations set."""

    _memory: dict[str, AutotuneResult] = {}  # per process, by tuning key
    _lock = threading.Lock()

    def __init__(self, fn: Callable, configs):
        compile_args = CompileArgs()
        inner = getattr(fn, "jit_factory", None)  # an @autotune-decorated factory
        if inner is not None:
            fn = inner
        if isinstance(fn, JITFactory):
            kw = fn.compile_kwargs
            compile_args = CompileArgs(out_idx=kw.get("out_idx"), target=kw.get("target", "auto"),
                                       execution_backend=kw.get("execution_backend", "auto"),
                                       verbose=kw.get("verbose", False), pass_configs=kw.get("pass_configs"),
                                       compile_flags=kw.get("compile_flags"))
            fn = fn.factory
        if not callable(fn):
            raise TypeError(f"AutoTuner needs a kernel factory (a function returning a @T.prim_func), got {fn!r}")
        self.fn = fn
        self.configs = configs
        self.compile_args = compile_args
        self.profile_args = ProfileArgs()
        self._call_args: tuple = ()
        self._call_kwargs: dict = {}
        self._inputs = get_autotune_inputs()
        self.executor = None
        # TileLang's early stop: a configuration whose quick estimate is over `factor` times the
        # best latency so far is not timed in full (run() and @autotune take both)
        self.early_stop = False
        self.early_stop_factor = 2.0

    @classmethod
    def from_kernel(cls, kernel: Callable, configs) -> AutoTuner:
        return cls(kernel, configs)

    def set_compile_args(self, out_idx=None, target="auto", execution_backend="auto", target_host=None,
                         verbose: bool = False, pass_configs: dict | None = None, compile_flags=None,
                         executor=_UNSET, **profile) -> AutoTuner:
        """The compile arguments; profile arguments (ref_prog, atol, rtol, supply_type, skip_check,
        ...) are accepted here too, as in TileLang 0.1.4. `executor`: see set_executor."""
        if executor is not _UNSET:
            self.set_executor(executor)
        self.compile_args = CompileArgs(out_idx=out_idx, target=target if target is not None else "auto",
                                        execution_backend=execution_backend or "auto", target_host=target_host,
                                        verbose=bool(verbose), pass_configs=pass_configs,
                                        compile_flags=compile_flags)
        if profile:
            self.set_profile_args(**profile)
        self._inputs = get_autotune_inputs() or self._inputs
        return self

    def set_executor(self, executor) -> AutoTuner:
        """Compile each configuration as a task of `executor` (anything with
        `submit(fn, *args) -> Future`: a concurrent.futures executor, tilewise.autotuner.RayExecutor),
        or in tilewise's own worker processes when None. If `executor.measure` is true the tasks
        also check and time their configuration (on the executor's workers, which must have the
        target hardware); otherwise timing happens here, one configuration at a time."""
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise TypeError(f"executor must have a submit(fn, *args) method returning a Future, got {executor!r}")
        self.executor = executor
        return self

    def set_profile_args(self, warmup=_UNSET, rep=_UNSET, timeout=_UNSET, supply_type=_UNSET, ref_prog=_UNSET,
                         supply_prog=_UNSET, rtol=_UNSET, atol=_UNSET, max_mismatched_ratio=_UNSET,
                         skip_check=_UNSET, manual_check_prog=_UNSET, cache_input_tensors=_UNSET,
                         **unknown) -> AutoTuner:
        """Update how configurations are checked and timed; arguments not given keep their value."""
        if unknown:
            raise TypeError(f"unknown autotuner argument(s): {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(sorted(_PROFILE_FIELDS))}")
        given = {k: v for k, v in dict(
            warmup=warmup, rep=rep, timeout=timeout, supply_type=supply_type, ref_prog=ref_prog,
            supply_prog=supply_prog, rtol=rtol, atol=atol, max_mismatched_ratio=max_mismatched_ratio,
            skip_check=skip_check, manual_check_prog=manual_check_prog, cache_input_tensors=cache_input_tensors,
        ).items() if v is not _UNSET}
        self.profile_args = dataclasses.replace(self.profile_args, **given)
        self._inputs = get_autotune_inputs() or self._inputs
        return self

    def set_kernel_parameters(self, args: tuple = (), kwargs: dict | None = None) -> AutoTuner:
        """The factory arguments the caller gives (the shape, dtypes...): fixed while tuning."""
        self._call_args = tuple(args)
        self._call_kwargs = dict(kwargs or {})
        return self

    # ------------------------------------------------------------------------------------
    def run(self, warmup: float | None = None, rep: float | None = None, timeout: float | None = None,
            enable_grouped_compile: bool = False, group_compile_size: int = 2, early_stop: bool | None = None,
            early_stop_factor: float | None = None) -> AutotuneResult:
        """Tune (or fetch the cached result). `warmup` and `rep` are milliseconds of running the
        kernel before and while timing it; `timeout` is seconds per configuration and phase.

        `early_stop`: a configuration is first timed on a few calls, and when that estimate is
        over `early_stop_factor` (>= 1) times the best latency so far, the estimate is its
        latency and it is not timed in full. `enable_grouped_compile` / `group_compile_size`
        (TileLang builds several configurations as one TVM module) do not apply: tilewise
        compiles each configuration on its own, in parallel (a one-time warning says so)."""
        if early_stop is not None:
            self.early_stop = bool(early_stop)
        if early_stop_factor is not None:
            self.early_stop_factor = float(early_stop_factor)
        if self.early_stop and self.early_stop_factor < 1.0:
            raise ValueError(f"early_stop_factor must be >= 1.0, got {self.early_stop_factor}")
        if enable_grouped_compile and group_compile_size > 1:
            warn_once("autotune:grouped_compile", "AutoTuner.run(enable_grouped_compile=True) has no effect in "
                      "tilewise: each configuration is compiled on its own (in parallel)")
        p = self.profile_args
        warmup = p.warmup if warmup is None else warmup
        rep = p.rep if rep is None else rep
        timeout = p.timeout if timeout is None else timeout
        ca = self.compile_args
        target = parse_target(ca.target)
        backend = resolve_backend(target, ca.execution_backend)
        compile_kwargs = dict(target=target, execution_backend=backend, pass_configs=ca.pass_configs,
                              verbose=ca.verbose)
        if ca.compile_flags:
            compile_kwargs["compile_flags"] = ca.compile_flags

        configs = self.configs
        if callable(configs):
            configs = configs(*self._call_args, **self._call_kwargs)
        binding = bind_configs(self.fn, list(configs), self._call_args, self._call_kwargs)
        cands = binding.candidates
        build_funcs(self.fn, cands)
        first = next((c for c in cands if c.ok), None)
        if first is None:
            raise AutotuneError(self._failure_report(cands, "no configuration gives a kernel"))
        own = function_out_idx(first.func, ca.out_idx) if first.func.attrs.get("tilelang_out_idx") else None
        out_idx = normalize_out_idx(first.func, own if own is not None else ca.out_idx)
        # a function returning T.empty outputs names them itself; compile() must not be told again
        compile_kwargs["out_idx"] = None if own is not None else out_idx
        if binding.all_fixed:
            # the caller gave every tuned parameter: nothing to tune, so no GPU is needed either
            return self._direct(first, compile_kwargs)
        if target.kind in ("cuda", "hip") and backend == "emulator" and not self._measured_remotely():
            gpu = "a CUDA GPU" if target.kind == "cuda" else "an AMD GPU"
            raise AutotuneError(
                f"autotuning {self._name()} for {target} needs {gpu}, and none is present: the "
                "emulator's run time says nothing about the GPU's, so tuning on it would pick an "
                "arbitrary configuration. Tune on a machine with a GPU, on GPU workers (an executor with "
                "measure=True, e.g. RayExecutor(measure=True, task_options={'num_gpus': 1})), use "
                "target='cpu', or pass every "
                f"tuned parameter ({', '.join(sorted(binding.tuned))}) to compile that configuration without tuning."
            )

        inputs = get_autotune_inputs() or self._inputs
        if inputs is None and p.supply_prog is None:
            why = needs_supplied_inputs(first.func, out_idx)
            if why is not None:
                raise ValueError(
                    f"autotuning {self._name()}: {why}, so random inputs cannot be made up; pass the "
                    "inputs with `with tilewise.autotuner.set_autotune_inputs(*tensors):` or a supply_prog"
                )

        key_configs = ca.pass_configs if not ca.compile_flags else {**(ca.pass_configs or {}),
                                                                    "compile_flags": repr(ca.compile_flags)}
        key = result_cache.tuning_key(cands, binding.static, target, backend, out_idx, key_configs, p,
                                      warmup, rep)
        caching = result_cache.enabled()
        if caching:
            with self._lock:
                hit = self._memory.get(key)
            if hit is not None:
                return hit
        result = self._from_disk(key, cands, compile_kwargs) if caching else None
        if result is None:
            result = self._tune(binding, compile_kwargs, warmup, rep, timeout, inputs)
            infra = [c for c in cands if c.extra.get("infrastructure")]
            if caching and infra:
                # a killed worker or a timeout is not that configuration's verdict: tune again next time
                logger.info("autotune %s: not caching the result: %d configuration(s) failed for reasons of the "
                            "machine (%s)", self._name(), len(infra), infra[0].error)
            elif caching:
                best = next(c for c in cands if c.kernel is result.kernel)
                result_cache.save(key, best, result.ref_latency, cands, self._name())
        if caching:
            with self._lock:
                self._memory[key] = result
        return result

    __call__ = run

    def _measured_remotely(self) -> bool:
        return self.executor is not None and bool(getattr(self.executor, "measure", False))

    def _name(self) -> str:
        return getattr(self.fn, "__name__", "kernel")

    def _direct(self, cand: Candidate, compile_kwargs: dict) -> AutotuneResult:
        # every tuned parameter was given by the caller: compile that one kernel, time nothing
        logger.info("autotune %s: every tuned parameter is given (%r): compiling that configuration without "
                    "tuning", self._name(), cand.config)
        kernel = tw_compile(cand.func, **compile_kwargs_for(cand, compile_kwargs))
        return AutotuneResult(config=dict(cand.config), libcode=kernel.get_kernel_source(), func=cand.func,
                              kernel=kernel)

    def _from_disk(self, key: str, cands: list[Candidate], compile_kwargs: dict) -> AutotuneResult | None:
        meta = result_cache.load(key, cands)
        if meta is None:
            return None
        best = cands[int(meta["index"])]
        try:
            # the kernel cache has the tuned kernel: this loads it without compiling
            kernel = tw_compile(best.func, **compile_kwargs_for(best, compile_kwargs))
        except Exception as e:  # noqa: BLE001 - a stale entry is re-tuned rather than trusted
            logger.warning("autotune %s: the cached winner %r no longer compiles (%s); tuning again",
                           self._name(), best.config, e)
            return None
        logger.info("autotune %s: using the cached result, config %r (%.4g ms)", self._name(), best.config,
                    meta["latency"])
        return self._result(kernel, best, meta["latency"], meta.get("ref_latency"), cache_hit=True, skipped=[])

    def _result(self, kernel, best: Candidate, latency, ref_latency, cache_hit: bool, skipped) -> AutotuneResult:
        # TileLang puts the tuning outcome on the kernel too
        kernel.latency = latency
        kernel.config = dict(best.config)
        kernel.ref_latency = ref_latency
        return AutotuneResult(latency=latency, config=dict(best.config), ref_latency=ref_latency,
                              libcode=kernel.get_kernel_source(), func=best.func, kernel=kernel,
                              cache_hit=cache_hit, skipped=skipped)

    def _tune(self, binding: Binding, compile_kwargs: dict, warmup, rep, timeout, inputs) -> AutotuneResult:
        cands = binding.candidates
        name = self._name()
        reported = self._log_skipped(cands, set())  # configurations the factory rejected
        measurer = Measurer(self.profile_args, warmup, rep, timeout, inputs)
        remote = measurer if self._measured_remotely() else None
        task_kwargs = None
        if remote is not None:
            # the workers pick the execution backend for their own hardware (a GPU worker: the
            # GPU, where this process may only have the emulator); the build is the same
            task_kwargs = dict(compile_kwargs, execution_backend=self.compile_args.execution_backend)
        compile_all(cands, compile_kwargs, timeout, f"autotune {name}", executor=self.executor, measurer=remote,
                    task_kwargs=task_kwargs)
        self._log_skipped(cands, reported)

        # timed one at a time, after every compile has finished: on the CPU target anything
        # running alongside would distort the times (the executor's workers may have timed some)
        best: Candidate | None = None
        for c in cands:
            if c.ok and c.latency is not None and (best is None or c.latency < best.latency):
                best = c
        ready = [c for c in cands if c.ok and c.latency is None]
        progress = Progress(len(ready), f"autotune {name}: measuring")
        try:
            for c in ready:
                baseline = best.latency * self.early_stop_factor if self.early_stop and best is not None else None
                measurer.measure(c, early_stop_baseline=baseline)
                if c.ok and (best is None or c.latency < best.latency):
                    best = c
                progress.update(1, f"best {best.latency:.4g} ms" if best is not None else None)
        finally:
            progress.close()
        self._log_skipped(cands, reported)
        for c in cands:
            if c.ok:
                logger.debug("autotune %s: config %r: %.4g ms", name, c.config, c.latency)
        if best is None:
            raise AutotuneError(self._failure_report(cands, "no configuration compiled and passed the check"))
        logger.info("autotune %s: best config %r, %.4g ms", name, best.config, best.latency)
        skipped = [(dict(c.config), c.error) for c in cands if not c.ok]
        return self._result(best.kernel, best, best.latency, measurer.ref_latency, cache_hit=False, skipped=skipped)

    def _log_skipped(self, cands: list[Candidate], already: set[int]) -> set[int]:
        for c in cands:
            if not c.ok and c.index not in already:
                logger.warning("autotune %s: skipped config %r: %s", self._name(), c.config, c.error)
                already.add(c.index)
        return already

    def _failure_report(self, cands: list[Candidate], what: str) -> str:
        lines = [f"autotuning {self._name()} failed: {what} ({len(cands)} tried)"]
        for c in cands:
            lines.append(f"  {c.config!r}: {c.error}")
        return "\n".join(lines)
