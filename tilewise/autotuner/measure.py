"""Checking a compiled configuration against the reference program and timing it."""
from __future__ import annotations

import contextlib
import contextvars

from ..engine.param import KernelParam
from ..ir.buffer import Buffer
from ..profiler import Profiler, make_inputs, timing_backend
from ..profiler.bench import clock_name, do_bench
from .candidates import Candidate, describe_error
from .deadline import ConfigTimeout, deadline
from .param import ProfileArgs
from .sandbox import ProbeFailure, needs_probe, probe

_autotune_inputs: contextvars.ContextVar = contextvars.ContextVar("tilewise_autotune_inputs", default=None)


@contextlib.contextmanager
def set_autotune_inputs(*tensors):
    """Tune on these inputs (the kernel's inputs; a kernel's outputs may be included too, and
    are then dropped). Needed for kernels with dynamic shapes or scalar parameters."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    token = _autotune_inputs.set(tuple(tensors))
    try:
        yield
    finally:
        _autotune_inputs.reset(token)


def get_autotune_inputs():
    return _autotune_inputs.get()


def needs_supplied_inputs(func, out_idx: list[int]) -> str | None:
    """Why the profiler cannot make up inputs for this kernel, or None when it can."""
    for i, p in enumerate(func.params):
        if i in out_idx:
            continue
        if not isinstance(p, Buffer):
            return f"the kernel has the scalar parameter {p.name}"
        if not all(isinstance(d, int) for d in p.shape):
            return f"the input {p.name} has the dynamic shape ({', '.join(str(d) for d in p.shape)})"
    return None


class Measurer:
    """Times candidates one after another on the same settings; the reference program is
    timed once, on the first inputs."""

    def __init__(self, profile: ProfileArgs, warmup: float, rep: float, timeout, captured_inputs=None):
        self.profile = profile
        self.warmup = warmup
        self.rep = rep
        self.timeout = timeout
        self.captured = captured_inputs
        self.ref_latency: float | None = None
        self._cached_inputs = None
        self._cached_for = None

    def _inputs(self, kernel) -> list:
        if self.captured is not None:
            ins = list(self.captured)
            if kernel.out_idx and len(ins) == len(kernel.params):
                ins = [a for i, a in enumerate(ins) if i not in kernel.out_idx]
            return ins
        signature = [(tuple(str(d) for d in p.shape), str(p.dtype)) if isinstance(p, Buffer) else (p.name,)
                     for p in kernel.input_params]
        if self.profile.cache_input_tensors and self._cached_for == signature:
            return self._cached_inputs
        if self.profile.supply_prog is not None:
            # TileLang's supply programs take engine.param.KernelParam (torch dtypes)
            ins = list(self.profile.supply_prog([KernelParam.from_buffer(p) if isinstance(p, Buffer)
                                                 else KernelParam.from_var(p) for p in kernel.input_params]))
        else:
            ins = make_inputs(kernel, self.profile.supply_type)
        self._cached_inputs, self._cached_for = ins, signature
        return ins

    def measure(self, c: Candidate, early_stop_baseline: float | None = None) -> None:
        """Sets `c.latency`, or `c.error` when the configuration fails or gives wrong results.
        With `early_stop_baseline` (ms), a quick estimate over it is the latency (not timed in full)."""
        p = self.profile
        kernel = c.kernel
        try:
            with deadline(self.timeout, "checking and timing"):
                ins = self._inputs(kernel)
                if needs_probe(kernel):
                    try:
                        probe(kernel, ins, self.timeout)
                    except ProbeFailure as e:
                        c.error = str(e)
                        c.extra["infrastructure"] = e.infrastructure
                        return
                if p.ref_prog is not None and not p.skip_check:
                    try:
                        self._check(kernel, ins)
                    except AssertionError as e:
                        c.error = f"wrong result: {describe_error(e)}"
                        return
                # the median: on a busy machine a few calls wait for a core, which a mean would count
                # CUDA events on a GPU, the wall clock for CPU kernels and the emulator
                backend = timing_backend(kernel)
                c.extra["clock"] = clock_name(backend)
                if early_stop_baseline is not None:
                    estimate = do_bench(lambda: kernel(*ins), _n_warmup=1, _n_repeat=3, return_mode="median",
                                        backend=backend)
                    if estimate > early_stop_baseline:
                        c.latency = estimate
                        c.extra["early_stopped"] = True
                        return
                c.latency = do_bench(lambda: kernel(*ins), warmup=self.warmup, rep=self.rep, return_mode="median",
                                     backend=backend)
                if self.ref_latency is None and p.ref_prog is not None:
                    self.ref_latency = do_bench(lambda: p.ref_prog(*ins), warmup=self.warmup, rep=self.rep,
                                                return_mode="median", backend=backend)
        except ConfigTimeout as e:  # the deadline: says as much about the machine as the configuration
            c.error = describe_error(e)
            c.extra["infrastructure"] = True
        except Exception as e:  # noqa: BLE001 - a configuration that fails to run is skipped
            c.error = describe_error(e)

    def _check(self, kernel, ins) -> None:
        p = self.profile
        if p.manual_check_prog is not None:
            outs = kernel(*ins)
            refs = p.ref_prog(*ins)
            if p.manual_check_prog(outs, refs) is False:
                raise AssertionError("manual_check_prog rejected the output")
            return
        Profiler(kernel).assert_allclose(p.ref_prog, input_tensors=ins, atol=p.atol, rtol=p.rtol,
                                         max_mismatched_ratio=p.max_mismatched_ratio)
