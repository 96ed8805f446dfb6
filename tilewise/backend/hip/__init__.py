"""The HIP backend for AMD GPUs: thread IR -> HIP C++ (renderer, include/tw_hip.h), -> code
object with clang-19 (clang.py), inspection without a GPU (inspect.py: ISA, resources), and the
launch path through hip-python (launch.py)."""
from .clang import ClangError, compile_asm, compile_hsaco
from .inspect import get_isa, kernel_resources, resource_usage
from .renderer import HipRenderer, render_hip

__all__ = ["ClangError", "HipRenderer", "compile_asm", "compile_hsaco", "get_isa", "kernel_resources", "render_hip",
           "resource_usage"]
