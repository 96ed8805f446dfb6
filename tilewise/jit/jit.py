"""@tilewise.jit, in TileLang's two styles (told apart on the first call, as TileLang does):

- a factory `f(M, N, ...) -> prim_func` ("lazy"): calling it returns a compiled kernel, cached
  per argument values;
- a function that is the kernel itself ("eager", TileLang 0.1.8's default: `T.const`,
  `A: T.Tensor(...)` in the body, `T.empty` outputs): calling it with tensors compiles for
  their shapes (cached), runs, and returns the outputs (jit/eager.py).

On a prim_func, @jit compiles it directly."""
from __future__ import annotations

import functools
import inspect
import os
import sys

from ..ir.stmt import PrimFunc
from .compile import compile as _compile
from .eager import EagerFunction, decide_style


class JITFactory:
    def __init__(self, factory, compile_kwargs: dict, outer: dict | None = None, debug_root_path=None):
        self.factory = factory
        self.compile_kwargs = compile_kwargs
        self.outer = outer
        self.debug_root_path = debug_root_path
        self.mode = "auto"  # "lazy" or "eager" once the first call has told
        self._eager: EagerFunction | None = None
        self._probed = None  # (key, prim_func) the call that told the style returned
        self._kernels: dict = {}
        functools.update_wrapper(self, factory)

    @property
    def func(self):
        return self.factory

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

    def _style(self, args=(), kwargs=None) -> str:
        if self.mode == "auto":
            mode, func = decide_style(self.factory, args, kwargs or {})
            if func is not None:
                self._probed = (self._key(args, kwargs or {}), func)
            self.mode = mode
        if self.mode == "eager" and self._eager is None:
            self._eager = EagerFunction(self.factory, self.compile_kwargs, self.outer, self._compile_one)
        return self.mode

    def get_tir(self, *args, **kwargs) -> PrimFunc:
        if self._style(args, kwargs) == "eager":
            return self._eager.get_tir(*args, **kwargs)
        return self._build(args, kwargs)

    def __call__(self, *args, **kwargs):
        if self._style(args, kwargs) == "eager":
            return self._eager(*args, **kwargs)
        key = self._key(args, kwargs)
        k = self._kernels.get(key)
        if k is None:
            k = self._compile_one(self._build(args, kwargs), **self.compile_kwargs)
            self._kernels[key] = k
        return k

    def compile(self, *args, **kwargs):
        """The compiled kernel for these arguments (for an eager function, without running it:
        `f.compile(M=1024, N=1024, block_M=64)` gives its T.const values by keyword)."""
        if self._style(args, kwargs) == "eager":
            return self._eager.compile(*args, **kwargs)
        return self(*args, **kwargs)

    def get_kernel_source(self, *args, **kwargs) -> str:
        return self.compile(*args, **kwargs).get_kernel_source()

    def _compile_one(self, func: PrimFunc, **compile_kwargs):
        kernel = _compile(func, **compile_kwargs)
        if self.debug_root_path:
            _dump(self.debug_root_path, func, kernel)
        return kernel

    def _build(self, args, kwargs) -> PrimFunc:
        if self._probed is not None:
            key, func = self._probed
            self._probed = None
            if key == self._key(args, kwargs):
                return func
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

        configs = list(configs)
        if configs:
            first = configs[0]
            a, kw = ((), dict(first)) if isinstance(first, dict) else (tuple(first), {})
            if self._style(a, kw) == "eager":
                return self._eager.par_compile(configs, num_workers, ignore_error)
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
            futures = {k: pool.submit(self._compile_one, f, **self.compile_kwargs) for k, f in todo.items()}
        for k, fut in futures.items():
            try:
                self._kernels[k] = fut.result()
            except Exception:
                if not ignore_error:
                    raise
        return [self._kernels.get(k) for k in keys]


def _dump(root: str, func: PrimFunc, kernel) -> None:
    """debug_root_path=: the generated source and the program's IR of every compiled kernel."""
    os.makedirs(root, exist_ok=True)
    ext = {"cuda": "cu", "hip": "hip"}.get(kernel.target.kind, "cpp")
    with open(os.path.join(root, f"tilewise_jit_kernel_{func.name}.{ext}"), "w") as f:
        f.write(kernel.get_kernel_source())
    with open(os.path.join(root, f"tilewise_jit_program_{func.name}.py"), "w") as f:
        f.write(func.script())


def _caller_locals(depth: int) -> dict | None:
    """The locals of the frame applying the decorator (names only annotations use)."""
    try:
        frame = sys._getframe(depth)
    except ValueError:
        return None
    return None if frame.f_locals is frame.f_globals else dict(frame.f_locals)


def jit(func=None, *, out_idx=None, target="auto", execution_backend="auto", pass_configs=None,
        verbose: bool = False, debug_root_path=None, target_host=None, compile_flags=None):
    kwargs = dict(out_idx=out_idx, target=target if target is not None else "auto",
                  execution_backend=execution_backend or "auto", pass_configs=pass_configs, verbose=bool(verbose))
    if target_host is not None:
        kwargs["target_host"] = target_host
    if compile_flags is not None:
        kwargs["compile_flags"] = compile_flags

    def wrap(f, outer):
        if isinstance(f, PrimFunc):
            kernel = _compile(f, **kwargs)
            if debug_root_path:
                _dump(debug_root_path, f, kernel)
            return kernel
        return JITFactory(f, kwargs, outer, debug_root_path)

    if func is not None:
        return wrap(func, _caller_locals(2))
    outer = _caller_locals(2)
    return lambda f: wrap(f, outer)
