"""A PTX interpreter: executes the PTX that NVRTC produces for tilewise's CUDA kernels, for every
thread of every block, vectorised over threads with numpy.

It is the independent second check of a CUDA kernel: the thread-IR emulator (tilewise.emulator)
checks the lowering, this checks what the renderer, the tw_cuda.h header and NVVM made of it.
Instruction semantics and the warp-level fragment tables are written from the PTX ISA document,
not from tilewise's own lowering or emulator.

    from tilewise import ptx
    ptx.run(ptx_text, "main_kernel", grid=(2, 2), block=128, args=[a, b, c], dynamic_shared_bytes=49152)
    tilewise.compile(func, target="cuda", execution_backend="ptx")   # a kernel run through it

Modules: parser (text -> instructions), decode (instructions -> closures), executor (blocks,
divergence, batches), state / memory / asyncq (machine state), floats (exact rounding), ops_*
(semantics by family; Hopper: ops_mbarrier, ops_bulk, ops_wgmma over the state in hopper.py and
the tensor maps of tensor_map.py), launch (run). jit/runtimes.py (PtxRuntime) adapts compiled
kernels to it."""
from __future__ import annotations

from .errors import (
    AsyncAccessError,
    AsyncCopyError,
    DeadlockError,
    DivergenceError,
    EmulatorError,
    MisalignedAddressError,
    OutOfBoundsError,
    PtxLaunchError,
    PtxSyntaxError,
    PtxUnsupportedError,
    RaceError,
)
from .launch import RunResult, kernel_names, program, run
from .parser import parse
from .tensor_map import TensorMapDesc

__all__ = [
    "run", "parse", "program", "kernel_names", "RunResult", "TensorMapDesc",
    "EmulatorError", "OutOfBoundsError", "RaceError", "AsyncCopyError", "AsyncAccessError", "DeadlockError", "DivergenceError", "MisalignedAddressError",
    "PtxSyntaxError", "PtxUnsupportedError", "PtxLaunchError",
]  # fmt: skip
