"""The CUDA backend's toolchain: thread IR -> CUDA C++ (renderer), -> cubin (NVRTC), inspection
of the cubin without a GPU (SASS, resource usage), and the driver-API launch path."""
from .inspect import find_loops, get_sass, instruction_mix, parse_sass, resource_usage, steady_state_loop
from .launch import CudaLauncher, launch_plans, pack_params
from .nvrtc import NvrtcError, compile_cubin, compile_ptx, nvrtc_compile
from .renderer import CudaKernel, CudaModule, render_cuda

__all__ = [
    "CudaKernel", "CudaLauncher", "CudaModule", "NvrtcError", "compile_cubin", "compile_ptx", "find_loops",
    "get_sass", "instruction_mix", "launch_plans", "nvrtc_compile", "pack_params", "parse_sass", "render_cuda",
    "resource_usage", "steady_state_loop",
]  # fmt: skip
