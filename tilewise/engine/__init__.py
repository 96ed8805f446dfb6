"""Compilation hooks TileLang exposes as tilelang.engine."""
from .callback import (  # noqa: F401
    register_c_postproc,
    register_c_postproc_callback,
    register_cuda_postproc,
    register_cuda_postproc_callback,
    register_hip_postproc,
    register_hip_postproc_callback,
)
from .param import KernelParam  # noqa: F401
