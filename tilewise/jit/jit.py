"""@tilewise.jit: on a factory `f(M, N, ...) -> prim_func`, calling it returns a compiled kernel,
cached per argument values; on a prim_func it compiles it directly."""
from __future__ import annotations

import functools
import inspect

from ..ir.stmt import PrimFunc
from .compile import compile as _compile


class JITFactory:
    def __init__(self, factory, compile_kwargs: dict):
        self.factory = factory
        self.compile_kwargs = compile_kwargs
        self._kernels: dict = {}
        functools.update_wrapper(self, factory)

    def _key(self, args, kwargs):
        # f(8, 4, 2.0), f(8, 4, factor=2.0) and f(8, 4, 2.0, "float32") with that default are one kernel
        try:
            bound = inspect.signature(self.factory).bind(*args, **kwargs)
            bound.apply_defaults()
            args, kwargs = bound.args, bound.kwargs
        except (TypeError, ValueError):
            pass  # let the factory call report the mismatch
        try:
            key = (args, tuple(sorted(kwargs.items())))
            hash(key)
            return key
        except TypeError:
            return repr((args, sorted(kwargs.items())))

    def get_tir(self, *args, **kwargs) -> PrimFunc:
        return self.factory(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        key = self._key(args, kwargs)
        k = self._kernels.get(key)
        if k is None:
            func = self.factory(*args, **kwargs)
            if not isinstance(func, PrimFunc):
                raise TypeError(
                    f"@tilewise.jit: {self.factory.__name__}(...) must return a @T.prim_func, "
                    f"got {type(func).__name__}"
                )
            k = _compile(func, **self.compile_kwargs)
            self._kernels[key] = k
        return k


def jit(func=None, *, out_idx=None, target="auto", execution_backend="auto", pass_configs=None,
        verbose: bool = False, debug_root_path=None, target_host=None):
    kwargs = dict(out_idx=out_idx, target=target, execution_backend=execution_backend,
                  pass_configs=pass_configs, verbose=verbose)

    def wrap(f):
        if isinstance(f, PrimFunc):
            return _compile(f, **kwargs)
        return JITFactory(f, kwargs)

    return wrap(func) if func is not None else wrap
