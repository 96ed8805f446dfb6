"""@jit on a function written in TileLang 0.1.8's eager style (language/eager.py): calling it
with tensors compiles a kernel specialised to the Python-valued arguments and to the `T.const`
dimensions the tensors have (cached per signature), runs it, and returns the T.empty outputs.

The parser lives in the language layer, above this one; it registers itself here."""
from __future__ import annotations

import inspect
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import InternalError, OutsideKernelError
from ..ir.expr import Var
from ..ir.stmt import PrimFunc
from .packed_fp4 import PACK, is_packed_fp4

_frontend = None
_parse_lock = threading.RLock()  # parsing uses a module-level builder stack


def register_frontend(module) -> None:
    """language/eager.py: style(func), kernel_params(func), template(func, outer, values),
    build(func, outer, values, consts)."""
    global _frontend
    _frontend = module


def frontend():
    if _frontend is None:
        raise InternalError("the eager-style frontend (tilewise.language.eager) is not loaded")
    return _frontend


def decide_style(func, args, kwargs):
    """("lazy", prim_func or None) or ("eager", None): from the source when it says, else by
    calling the function as a factory, as TileLang does (an eager body fails outside a parse)."""
    s = frontend().style(func)
    if s is not None:
        return s, None
    try:
        inspect.signature(func).bind(*args, **kwargs)
    except TypeError:
        return "lazy", None  # a factory called with some parameters left to the autotuner
    try:
        out = func(*args, **kwargs)
    except OutsideKernelError:
        return "eager", None
    except Exception:  # noqa: BLE001 - a factory failing on these arguments: its own call reports it
        return "lazy", None
    if isinstance(out, PrimFunc):
        return "lazy", out
    raise TypeError(f"@tilewise.jit: {func.__name__}(...) must return a @T.prim_func, got {type(out).__name__} (a "
                    "kernel written in the function itself instead declares its tensors: `A: T.Tensor(shape, dtype)`)")


def _key(items):
    try:
        hash(items)
        return items
    except TypeError:
        return repr(items)


def _extent(value, name: str, kind: str, i: int) -> int:
    """Dimension or element stride i of an argument (array, tensor, or T.Tensor annotation)."""
    if kind == "shape":
        return int(value.shape[i])
    stride = getattr(value, "stride", None)
    if callable(stride):  # torch
        return int(stride(i))
    if isinstance(value, np.ndarray):
        return value.strides[i] // value.itemsize
    strides = getattr(value, "strides", None)
    if strides is None:  # an annotation without strides: row-major
        out = 1
        for d in value.shape[i + 1:]:
            out *= int(d)
        return out
    return int(strides[i])


class EagerFunction:
    """What @jit makes of an eager-style function (JITFactory delegates to it)."""

    def __init__(self, func, compile_kwargs: dict, outer: dict | None, compile_fn):
        if compile_kwargs.get("out_idx") is not None:
            raise ValueError(f"@jit(out_idx=...) on {func.__name__}: out_idx is for kernel factories; a kernel written "
                             "in the function declares its outputs with T.empty and returns them")
        self.func = func
        self.compile_kwargs = compile_kwargs
        self.outer = outer
        self._compile = compile_fn
        self.signature = inspect.signature(func)
        self.kernel_params = frontend().kernel_params(func)
        self._templates: dict = {}
        self._kernels: dict = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- arguments
    def _split(self, args, kwargs):
        """(Python values, kernel arguments given, T.const values given by keyword)."""
        names = self.signature.parameters
        consts = {k: v for k, v in kwargs.items() if k not in names}
        try:
            bound = self.signature.bind_partial(*args, **{k: v for k, v in kwargs.items() if k in names})
        except TypeError as e:
            raise TypeError(f"{self.func.__name__}{self.signature}: {e}") from None
        bound.apply_defaults()
        tensors = {n: bound.arguments[n] for n in self.kernel_params if n in bound.arguments}
        values = {n: v for n, v in bound.arguments.items() if n not in self.kernel_params}
        missing = [n for n in names if n not in bound.arguments and n not in self.kernel_params]
        if missing:
            raise TypeError(f"{self.func.__name__}: missing argument(s) {', '.join(missing)}")
        return values, tensors, consts

    def split_given(self, args, kwargs):
        """(the Python values the caller gave, defaults not applied; tensors; T.const values)."""
        names = self.signature.parameters
        bound = self.signature.bind_partial(*args, **{k: v for k, v in kwargs.items() if k in names})
        _, tensors, consts = self._split(args, kwargs)
        given = {n: v for n, v in bound.arguments.items() if n not in self.kernel_params}
        return given, tensors, consts

    def tensor_arguments(self, args, kwargs):
        """The kernel's arguments of this call, in order, or None when some are not given."""
        _, tensors, _ = self._split(args, kwargs)
        if not all(n in tensors for n in self.kernel_params):
            return None
        return [tensors[n] for n in self.kernel_params]

    def factory_for(self, tensors: dict, consts: dict):
        """A kernel factory over the Python-valued parameters (what the autotuner tunes), with
        the T.const values these tensors (or keywords) give."""
        sig = inspect.Signature([p for n, p in self.signature.parameters.items() if n not in self.kernel_params])

        def factory(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            values = dict(bound.arguments)
            _, template = self._template(values)
            return self._build(values, self._consts(template, tensors, consts))

        factory.__signature__ = sig
        factory.__name__ = self.func.__name__
        factory.__qualname__ = self.func.__qualname__
        return factory

    def _template(self, values: dict):
        key = _key(tuple(sorted(values.items())))
        t = self._templates.get(key)
        if t is None:
            with _parse_lock:
                t = frontend().template(self.func, self.outer, values)
            self._templates[key] = t
        return key, t

    def _consts(self, template, tensors: dict, given: dict) -> dict:
        unknown = [k for k in given if k not in template.consts]
        if unknown:
            raise TypeError(f"{self.func.__name__} has no parameter or T.const named {', '.join(map(repr, unknown))}")
        out = {}
        for name in template.consts:
            if name in given:
                v = given[name]
                out[name] = v if isinstance(v, Var) else int(v)
                continue
            where = template.matcher.get(name)
            if where is None:
                raise TypeError(f"{self.func.__name__}: T.const {name!r} is not a dimension of any tensor parameter, so "
                                f"no argument gives its value; pass {name}=... (or use it directly as a dimension in a "
                                "T.Tensor declaration)")
            param, kind, i = where
            if param not in tensors:
                raise TypeError(f"{self.func.__name__}: T.const {name!r} is read from argument {param}, which is not "
                                f"given; pass {param} or {name}=...")
            try:
                out[name] = _extent(tensors[param], param, kind, i)
                dt = template.dtypes.get(param)
                if dt is not None and is_packed_fp4(dt, tensors[param]):
                    # TileLang's packed fp4 / int4 tensor holds two values per byte: the constant
                    # is the logical extent (last dimension x2, the other dimensions' strides x2)
                    ndim = len(tensors[param].shape)
                    if (kind == "shape") == (i == ndim - 1):
                        out[name] *= PACK
            except (AttributeError, IndexError, TypeError):
                raise TypeError(f"{self.func.__name__}: argument {param} should be a tensor with a dimension {i} "
                                f"(it gives T.const {name!r}), got {type(tensors[param]).__name__}") from None
        return out

    def _func_and_key(self, args, kwargs):
        values, tensors, given = self._split(args, kwargs)
        vkey, template = self._template(values)
        consts = self._consts(template, tensors, given)
        ckey = tuple((k, ("dynamic", v.name, str(v.dtype)) if isinstance(v, Var) else v) for k, v in consts.items())
        return (vkey, ckey), values, consts, tensors

    # ---------------------------------------------------------------- the API
    def get_tir(self, *args, **kwargs) -> PrimFunc:
        """The kernel's IR for these arguments (tensors, T.Tensor annotations, or T.const values
        by keyword)."""
        _, values, consts, _ = self._func_and_key(args, kwargs)
        return self._build(values, consts)

    def _build(self, values, consts) -> PrimFunc:
        with _parse_lock:
            return frontend().build(self.func, self.outer, values, consts)

    def compile(self, *args, **kwargs):
        """The compiled kernel for these arguments, e.g. `f.compile(M=1024, N=1024, block_M=64)`."""
        key, values, consts, _ = self._func_and_key(args, kwargs)
        return self._kernel(key, values, consts)

    def _kernel(self, key, values, consts, func: PrimFunc | None = None):
        with self._lock:
            k = self._kernels.get(key)
        if k is None:
            k = self._compile(func if func is not None else self._build(values, consts), **self.compile_kwargs)
            with self._lock:
                k = self._kernels.setdefault(key, k)
        return k

    def __call__(self, *args, **kwargs):
        key, values, consts, tensors = self._func_and_key(args, kwargs)
        missing = [n for n in self.kernel_params if n not in tensors]
        if missing:
            raise TypeError(f"{self.func.__name__}: missing tensor argument(s) {', '.join(missing)}")
        kernel = self._kernel(key, values, consts)
        return kernel(*[tensors[n] for n in self.kernel_params])

    def par_compile(self, configs, num_workers: int | None = None, ignore_error: bool = False) -> list:
        """Kernels for many argument sets (tuples of positional or dicts of keyword arguments):
        parsed here one after another, compiled in threads."""
        jobs = []
        for c in configs:
            args, kwargs = ((), dict(c)) if isinstance(c, dict) else (tuple(c), {})
            try:
                key, values, consts, _ = self._func_and_key(args, kwargs)
                jobs.append((key, values, consts, None if key in self._kernels else self._build(values, consts)))
            except Exception as e:  # noqa: BLE001 - reported per config
                if not ignore_error:
                    raise
                jobs.append(e)

        def one(job):
            if isinstance(job, Exception):
                return None
            try:
                return self._kernel(*job)
            except Exception:
                if not ignore_error:
                    raise
                return None

        with ThreadPoolExecutor(max_workers=max(1, num_workers or 4)) as pool:
            return list(pool.map(one, jobs))
