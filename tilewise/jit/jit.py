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
            k = _compile(self._build(args, kwargs), **self.compile_kwargs)
            self._kernels[key] = k
        return k

    def _build(self, args, kwargs) -> PrimFunc:
        func = self.factory(*args, **kwargs)
        if not isinstance(func, PrimFunc):
            raise TypeError(
                f"@tilewise.jit: {self.factory.__name__}(...) must return a @T.prim_func, "
                f"got {type(func).__name__}"
            )
        return func

    def par_compile(self, configs, num_workers: int | None = None, ignore_error: bool = False) -> list:
        """Kernels for many argument sets at once (TileLang's par_compile): each config is a tuple
        of positional arguments or a dict of keyword arguments. The factories run here, one after
        another (parsing is not thread-safe); the compilations overlap in threads, since most of
        their time is spent in the C++ / NVRTC compiler. With ignore_error a failing config gives
        None instead of raising."""
        from concurrent.futures import ThreadPoolExecutor

        calls = [((), dict(c)) if isinstance(c, dict) else (tuple(c), {}) for c in configs]
        keys, jobs = [], {}
        for args, kwargs in calls:
            key = self._key(args, kwargs)
            keys.append(key)
            if key in self._kernels or key in jobs:
                continue
            try:
                jobs[key] = self._build(args, kwargs)
            except Exception as e:  # noqa: BLE001 - reported per config below
                if not ignore_error:
                    raise
                jobs[key] = e
        todo = {k: f for k, f in jobs.items() if isinstance(f, PrimFunc)}
        with ThreadPoolExecutor(max_workers=max(1, num_workers or 4)) as pool:
            futures = {k: pool.submit(_compile, f, **self.compile_kwargs) for k, f in todo.items()}
        for k, fut in futures.items():
            try:
                self._kernels[k] = fut.result()
            except Exception:
                if not ignore_error:
                    raise
        return [self._kernels.get(k) for k in keys]


def jit(func=None, *, out_idx=None, target="auto", execution_backend="auto", pass_configs=None,
        verbose: bool = False, debug_root_path=None, target_host=None):
    kwargs = dict(out_idx=out_idx, target=target, execution_backend=execution_backend,
                  pass_configs=pass_configs, verbose=verbose)

    def wrap(f):
        if isinstance(f, PrimFunc):
            return _compile(f, **kwargs)
        return JITFactory(f, kwargs)

    return wrap(func) if func is not None else wrap
