"""tilewise: the TileLang tiled programming model in Python, for CPUs and CUDA GPUs."""
import logging as _logging

from . import (  # noqa: E402
    engine,
    env,
    language,  # noqa: E402
    math,  # noqa: E402
    testing,  # noqa: E402
    tools,
    tvm,
    utils,  # noqa: E402
)
from . import intrinsics as _intrinsics  # noqa: E402
from .autotuner import autotune  # noqa: E402
from .cache import clear_cache  # noqa: E402
from .engine import register_c_postproc, register_cuda_postproc, register_hip_postproc  # noqa: E402
from .env import disable_cache, enable_cache, is_cache_enabled  # noqa: E402
from .errors import CompileError, InternalError  # noqa: E402
from .jit import JITKernel, cached, compile, jit, lower, par_compile  # noqa: E402
from .layout import Fragment, Layout  # noqa: E402
from .math import cdiv, next_power_of_2  # noqa: E402
from .profiler import Profiler, TensorSupplyType  # noqa: E402
from .transform import PassConfigKey  # noqa: E402
from .tvm import DataType  # noqa: E402
from .version import __version__  # noqa: E402

# TileLang's T also exports the expert tier's emitter and layout helpers; tilewise.intrinsics sits
# above tilewise.language in the layer order, so the package puts them there once both are loaded
for _name, _value in _intrinsics.T_EXPORTS.items():
    setattr(language, _name, _value)
del _name, _value


def set_log_level(level) -> None:
    """The level of tilewise's log messages (the autotuner's, ...): a logging level or its name
    ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")."""
    if isinstance(level, str):
        name = level.upper()
        if not isinstance(getattr(_logging, name, None), int):
            raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        level = getattr(_logging, name)
    _logging.getLogger("tilewise").setLevel(level)


__all__ = [
    "CompileError", "DataType", "Fragment", "InternalError", "JITKernel", "Layout", "PassConfigKey", "Profiler",
    "TensorSupplyType", "__version__", "autotune", "cached", "cdiv", "clear_cache", "compile", "disable_cache",
    "enable_cache", "engine", "env", "is_cache_enabled", "jit", "language", "lower", "math", "next_power_of_2",
    "par_compile", "register_c_postproc", "register_cuda_postproc", "register_hip_postproc", "set_log_level",
    "testing", "tools", "tvm", "utils",
]  # fmt: skip
