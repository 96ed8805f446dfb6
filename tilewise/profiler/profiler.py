"""Profiler: checks a kernel against a reference program and times it."""
from __future__ import annotations

import logging

from ..testing import to_numpy, torch_assert_close
from .bench import _gpu_here as gpu_here
from .bench import clock_name, resolve_backend
from .bench import do_bench as _do_bench
from .supply import TensorSupplyType, make_inputs

logger = logging.getLogger("tilewise.profiler")


def timing_backend(kernel) -> str:
    """How a compiled kernel is timed: CUDA events for kernels launched on a GPU, the wall clock
    for CPU kernels and the emulator (their calls return when the work is done)."""
    runtime = getattr(kernel, "runtime", None)
    return "event" if getattr(runtime, "device", None) == "cuda" else "wall"


class Profiler:
    """`kernel.get_profiler()` builds one. TileLang 0.1.x's form, `Profiler(mod, params,
    result_idx, supply_type)` on what `tilewise.lower` returned, compiles that module for its
    target with `result_idx` as out_idx (its `to_kernel`); `.func` is then the compiled kernel."""

    def __init__(self, kernel, *legacy, supply: TensorSupplyType = TensorSupplyType.Auto, result_idx=None,
                 supply_type: TensorSupplyType | None = None, params=None):
        if supply_type is not None:
            supply = supply_type
        if hasattr(kernel, "to_kernel"):  # a lowered, not yet compiled module
            if len(legacy) > 3:
                raise TypeError("Profiler(mod, params, result_idx, supply_type): too many arguments")
            result_idx = legacy[1] if len(legacy) > 1 else result_idx
            supply = legacy[2] if len(legacy) > 2 else supply
            kernel = kernel.to_kernel(result_idx)
        elif len(legacy) == 1:
            supply = legacy[0]
        elif legacy:
            raise TypeError(f"Profiler(kernel, supply_type) takes a compiled kernel and a supply type, "
                            f"not {len(legacy) + 1} arguments (the 4-argument form takes tilewise.lower's result)")
        self.kernel = kernel
        self.func = kernel  # TileLang 0.1.x called the compiled kernel `func`
        self.mod = kernel  # TileLang's older name for the kernel under test
        self.supply = supply
        self.clock: str | None = None  # what the last do_bench timed with (bench.clock_name)

    def __call__(self, *args, **kwargs):
        """Run the kernel (TileLang 0.1.x: `profiler(a, b)` returns the outputs)."""
        return self.kernel(*args, **kwargs)

    def _inputs(self, input_tensors=None):
        return list(input_tensors) if input_tensors is not None else make_inputs(self.kernel, self.supply)

    def run_once(self, func=None):
        ins = self._inputs()
        return (func or self.kernel)(*ins)

    def do_bench(self, func=None, warmup: float = 25, rep: float = 100, n_warmup: int = 0, n_repeat: int = 0,
                 input_tensors=None, backend: str | None = None, quantiles=None, return_mode: str = "mean",
                 cache_size: float = 256, **_) -> float:
        """Milliseconds per call of `func` (default: the kernel) on its inputs. `backend` is
        do_bench's ("wall", "event", "cudagraph"); by default CUDA events for a kernel on a GPU
        and the wall clock otherwise. `self.clock` then says which clock was read."""
        ins = self._inputs(input_tensors)
        f = func or self.kernel
        backend = backend or timing_backend(self.kernel)
        self.clock = clock_name(backend)
        logger.info("profiler: timing %s with the %s", getattr(self.kernel, "__name__", "the kernel"), self.clock)
        kw = {}
        if resolve_backend(backend) != "wall" and gpu_here():  # without a GPU, do_bench times on the wall clock
            from ..backend.cuda.launch import cuda_device_of
            from .cuda_timing import current_stream

            # the stream tilewise launches on: torch's current stream of the inputs' device
            kw = {"cache_size": cache_size, "stream": current_stream(cuda_device_of(ins))}
        return _do_bench(lambda: f(*ins), warmup=warmup, rep=rep, _n_warmup=n_warmup, _n_repeat=n_repeat,
                         quantiles=quantiles, backend=backend, return_mode=return_mode, **kw)

    def assert_allclose(self, reference_program, input_tensors=None, atol: float = 1e-2, rtol: float = 1e-2,
                        max_mismatched_ratio: float = 0.01) -> None:
        ins = self._inputs(input_tensors)
        outs = self.kernel(*ins)
        refs = reference_program(*ins)
        if outs is None:  # in-place kernels: compare the written inputs
            outs = [ins[i] for i in range(len(ins))]
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        if not isinstance(refs, (list, tuple)):
            refs = [refs]
        if len(outs) != len(refs):
            raise AssertionError(f"the kernel returned {len(outs)} outputs but the reference {len(refs)}")
        for k, (o, r) in enumerate(zip(outs, refs)):
            torch_assert_close(o, r, atol=atol, rtol=rtol, max_mismatched_ratio=max_mismatched_ratio,
                               base_name=f"output {k}")

    def assert_consistent(self, repeat: int = 10) -> None:
        import numpy as np


        ins = self._inputs()
        first = self.kernel(*ins)
        for _ in range(repeat):
            again = self.kernel(*ins)
            a = first if isinstance(first, (list, tuple)) else [first]
            b = again if isinstance(again, (list, tuple)) else [again]
            for x, y in zip(a, b):
                if not np.array_equal(to_numpy(x), to_numpy(y)):
                    raise AssertionError("the kernel gave different results on identical inputs")
