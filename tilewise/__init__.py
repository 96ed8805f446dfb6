"""tilewise: the TileLang tiled programming model in Python, for CPUs and CUDA GPUs."""
from . import (
    language,  # noqa: E402
    math,  # noqa: E402
    testing,  # noqa: E402
    utils,  # noqa: E402
)
from .autotuner import autotune  # noqa: E402
from .errors import CompileError, InternalError  # noqa: E402
from .jit import JITKernel, cached, compile, jit, lower, par_compile  # noqa: E402
from .math import cdiv  # noqa: E402
from .profiler import Profiler, TensorSupplyType  # noqa: E402
from .transform import PassConfigKey  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = [
    "CompileError", "InternalError", "JITKernel", "PassConfigKey", "Profiler", "TensorSupplyType",
    "__version__", "autotune", "cached", "cdiv", "compile", "jit", "language", "lower", "math", "par_compile", "testing",
    "utils",
]  # fmt: skip
