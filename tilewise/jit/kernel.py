"""JITKernel: a compiled kernel you call with numpy arrays or torch tensors."""
from __future__ import annotations

from ..ir.buffer import Buffer
from ..ir.stmt import PrimFunc
from .args import ArgBinder
from .fast_call import make_fast_call
from .target import Target


class JITKernel:
    def __init__(self, func: PrimFunc, out_idx=None, target: Target | str = "auto", backend: str | None = None,
                 artifact=None, pass_configs=None, *, execution_backend: str | None = None, verbose: bool = False,
                 **_tilelang_options):
        if artifact is None:
            # TileLang's `JITKernel(func, out_idx, ...)` compiles the function itself
            self._compile_from(func, out_idx, target, execution_backend or backend, pass_configs, verbose)
            return
        self.func = func
        self.prim_func = func
        self.out_idx = out_idx
        self.target = target
        self.execution_backend = backend
        self.artifact = artifact
        self.pass_configs = dict(pass_configs or {})
        self.params = list(func.params)
        device = "cuda" if backend == "nvrtc" else "cpu"
        self._binder = ArgBinder(self.params, out_idx, func.dynamic_vars(), device)
        self._fast = make_fast_call(self._binder, artifact)

    def _compile_from(self, func, out_idx, target, backend, pass_configs, verbose) -> None:
        from .compile import compile as _compile
        from .target import TILELANG_BACKENDS

        # TileLang's third positional parameter is the execution backend
        if isinstance(target, str) and (target in TILELANG_BACKENDS or target in ("nvrtc", "emulator")) and backend is None:
            target, backend = "auto", target
        k = _compile(func, out_idx=out_idx, target=target, execution_backend=backend or "auto",
                     pass_configs=pass_configs, verbose=verbose)
        self.__dict__.update(k.__dict__)

    def __call__(self, *args, **kwargs):
        if self._fast is not None and not kwargs:
            outputs = self._fast(args)
            if outputs is not None:
                if not outputs:
                    return None
                return outputs[0] if len(outputs) == 1 else outputs
        arrays, dims, outputs = self._binder.bind(self._binder.order_args(args, kwargs))
        self.artifact.run(arrays, dims)
        if not outputs:
            return None
        return outputs[0] if len(outputs) == 1 else outputs

    def get_kernel_source(self, kernel_only: bool = False) -> str:
        """The generated source (C++ for the CPU, CUDA C++ otherwise). `kernel_only` is
        accepted for TileLang compatibility: the source holds only the kernel either way."""
        return self.artifact.source

    @property
    def kernel_source(self) -> str:
        return self.artifact.source

    def get_host_source(self) -> str:
        return self.artifact.source

    def get_sass(self) -> str:
        """SASS of the compiled CUDA kernel (cuobjdump; no GPU needed)."""
        self._need_cuda("get_sass")
        return self.artifact.get_sass()

    def resource_usage(self) -> dict:
        """{"registers", "spill_bytes", "shared_bytes"} of the compiled CUDA kernel."""
        self._need_cuda("resource_usage")
        return self.artifact.resource_usage()

    def _need_cuda(self, what: str) -> None:
        if self.target.kind != "cuda":
            raise ValueError(f"{what}() needs a CUDA target; this kernel was compiled for {self.target}")

    def get_profiler(self, tensor_supply_type=None):
        from ..profiler import Profiler, TensorSupplyType

        return Profiler(self, tensor_supply_type if tensor_supply_type is not None else TensorSupplyType.Auto)

    def run_once(self, *args, **kwargs):
        """Run on the given arguments, or on random inputs (the profiler's) when none are given."""
        if not args and not kwargs:
            return self.get_profiler().run_once()
        return self(*args, **kwargs)

    @property
    def input_params(self) -> list:
        return [p for i, p in enumerate(self.params) if i not in self.out_idx]

    def __repr__(self) -> str:
        ps = ", ".join(p.name for p in self.params)
        outs = [self.params[i].name for i in self.out_idx]
        return f"JITKernel({self.func.name}({ps}) -> {outs}, target={self.target}, backend={self.execution_backend})"


def buffer_params(func: PrimFunc) -> list[Buffer]:
    return [p for p in func.params if isinstance(p, Buffer)]
