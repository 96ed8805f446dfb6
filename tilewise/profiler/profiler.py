"""Profiler: checks a kernel against a reference program and times it."""
from __future__ import annotations

from ..testing import to_numpy, torch_assert_close
from .bench import do_bench as _do_bench
from .supply import TensorSupplyType, make_inputs


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

    def __call__(self, *args, **kwargs):
        """Run the kernel (TileLang 0.1.x: `profiler(a, b)` returns the outputs)."""
        return self.kernel(*args, **kwargs)

    def _inputs(self, input_tensors=None):
        return list(input_tensors) if input_tensors is not None else make_inputs(self.kernel, self.supply)

    def run_once(self, func=None):
        ins = self._inputs()
        return (func or self.kernel)(*ins)

    def do_bench(self, func=None, warmup: float = 25, rep: float = 100, n_warmup: int = 0, n_repeat: int = 0,
                 input_tensors=None, **_) -> float:
        ins = self._inputs(input_tensors)
        f = func or self.kernel
        return _do_bench(lambda: f(*ins), warmup=warmup, rep=rep, _n_warmup=n_warmup, _n_repeat=n_repeat)

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
