"""Runtimes: what executes a Build when the kernel is called. A target record lists its runtimes
by execution-backend name ("native", "nvrtc", "emulator"); JITKernel only calls `run`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import env
from ..backend.cpu.library import CpuLibrary
from ..backend.cuda.launch import CudaLauncher
from ..emulator import run as emulate
from ..ir.buffer import Buffer
from .args import data_ptr, numpy_view
from .build import Build


class Runtime:
    device = "cpu"  # where the kernel's arguments must live

    def __init__(self, build: Build):
        self.build = build

    def run(self, arrays, dims: list[int]) -> None:
        raise NotImplementedError

    def direct_entry(self, n_ptrs: int, n_dims: int):
        """A native function taking the raw pointers and dimensions, for the fast call path."""
        return None


_libraries: dict[Path, CpuLibrary] = {}  # a library is loaded once per process


class NativeRuntime(Runtime):
    """The kernel compiled to a shared library and called on this CPU."""

    def __init__(self, build: Build):
        super().__init__(build)
        path = build.binary_path
        lib = _libraries.get(path)
        if lib is None:
            lib = _libraries[path] = CpuLibrary(path)
        self.library = lib

    def run(self, arrays, dims: list[int]) -> None:
        self.library.run([data_ptr(a) for a in arrays], dims)

    def direct_entry(self, n_ptrs: int, n_dims: int):
        return self.library.direct_entry(n_ptrs, n_dims)


class EmulatorRuntime(Runtime):
    """The thread IR executed by the thread-exact emulator (every thread of every block)."""

    def __init__(self, build: Build):
        super().__init__(build)
        self.lowered = build.lowered
        # rendered (and post-processed) at compile time even though the emulator runs the IR:
        # what would fail to build for a GPU fails here too
        _ = build.source

    def run(self, arrays, dims: list[int]) -> None:
        values = [_emulator_value(p, numpy_view(a)) for p, a in zip(self.lowered.params, arrays)]
        emulate(self.lowered, values, dims, check_races=env.flag("TILEWISE_EMULATOR_RACES"),
                check_uninit=env.flag("TILEWISE_EMULATOR_UNINIT"))


class GpuRuntime(Runtime):
    """The cubin launched on a CUDA GPU through the driver API."""

    device = "cuda"

    def __init__(self, build: Build):
        super().__init__(build)
        _ = build.binary  # compile now: a launch must not pay for it
        self._launcher = CudaLauncher(build.module, build.binary)

    def run(self, arrays, dims: list[int]) -> None:
        self._launcher(arrays, dims)


def _emulator_value(param, value):
    """Scalars of 16- and 8-bit float types arrive as their bit patterns (how a launch passes
    them); the emulator wants the number."""
    dt = getattr(param, "dtype", None)
    if isinstance(param, Buffer) or dt is None or not dt.is_float or dt.bits > 16 or not isinstance(value, int):
        return value
    return float(np.array(value, dtype=np.uint16 if dt.bits == 16 else np.uint8).view(dt.numpy))

