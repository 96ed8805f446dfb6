"""Source post-processing hooks (TileLang's tilelang.engine.callback).

A callback registered with `register_cuda_postproc_callback` (or `register_cuda_postproc(f)`)
receives the generated CUDA source and the target, and returns the source to compile; the last
one registered wins. It applies to kernels compiled for the CUDA target afterwards (what NVRTC
compiles and get_kernel_source() returns); the emulator runs the lowered program, which a source
edit does not change. `register_c_postproc` does the same for the C++ of the CPU target and
`register_hip_postproc` for the HIP C++ of the "hip" target (what clang compiles)."""
from __future__ import annotations

from collections.abc import Callable

_callbacks: dict[str, Callable | None] = {"cuda": None, "hip": None, "c": None}


def _register(kind: str, func, override: bool):
    def register(f: Callable) -> Callable:
        if not callable(f):
            raise TypeError(f"a {kind} post-processing callback must be callable, got {type(f).__name__}")
        if _callbacks[kind] is not None and not override:
            raise ValueError(f"a {kind} post-processing callback is already registered (pass override=True)")
        _callbacks[kind] = f
        return f

    if func is None or isinstance(func, bool):
        if isinstance(func, bool):
            override = func
        return register
    return register(func)


def register_cuda_postproc_callback(func: Callable | bool | None = None, override: bool = True):
    """Use as `@register_cuda_postproc_callback` or call with the function: f(code, target) -> code."""
    return _register("cuda", func, override)


def register_hip_postproc_callback(func: Callable | bool | None = None, override: bool = True):
    """f(code, target) -> code for the HIP C++ of the "hip" target."""
    return _register("hip", func, override)


def register_c_postproc_callback(func: Callable | bool | None = None, override: bool = True):
    """f(code, target) -> code for the C++ of the CPU target."""
    return _register("c", func, override)


def register_cuda_postproc(func: Callable, override: bool = True):
    """TileLang's call form: register_cuda_postproc(lambda code, target: code)."""
    return _register("cuda", func, override)


def register_hip_postproc(func: Callable, override: bool = True):
    return _register("hip", func, override)


def register_c_postproc(func: Callable, override: bool = True):
    return _register("c", func, override)


def unregister_cuda_postproc_callback() -> None:
    _callbacks["cuda"] = None


def unregister_hip_postproc_callback() -> None:
    _callbacks["hip"] = None


def unregister_c_postproc_callback() -> None:
    _callbacks["c"] = None


def has_c_postproc() -> bool:
    return _callbacks["c"] is not None


def has_cuda_postproc() -> bool:
    return _callbacks["cuda"] is not None


def has_hip_postproc() -> bool:
    return _callbacks["hip"] is not None


def _postprocess(kind: str, source: str, target) -> str:
    f = _callbacks[kind]
    if f is None:
        return source
    out = f(source, target)
    if not isinstance(out, str):
        raise TypeError(f"the {kind.upper() if kind != 'hip' else 'HIP'} post-processing callback {f.__name__} "
                        f"returned {type(out).__name__}, not the source")
    return out


def postprocess_c_source(source: str, target) -> str:
    return _postprocess("c", source, target)


def postprocess_cuda_source(source: str, target) -> str:
    return _postprocess("cuda", source, target)


def postprocess_hip_source(source: str, target) -> str:
    return _postprocess("hip", source, target)
