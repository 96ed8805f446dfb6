"""Runtimes: what executes a Build when the kernel is called. A target record lists its runtimes
by execution-backend name ("native", "nvrtc", "emulator"); JITKernel only calls `run`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import env
from ..backend.cpu.library import CpuLibrary
from ..backend.cuda.launch import CudaLauncher, iter_launch_plans, tensor_map_args
from ..backend.cuda.nvrtc import nvrtc_compile
from ..backend.hip.launch import HipLauncher
from ..emulator import EmulatorError, compile_program
from ..emulator import run as emulate
from ..emulator.banks import BankCounter, EmulateStats
from ..ir.buffer import Buffer
from ..ptx import TensorMapDesc
from ..ptx import run as run_ptx
from . import crosscheck
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


@dataclass(frozen=True)
class EmulatorRun:
    """One run of the emulator: which optional checks were on, and the error it found (None: the
    run was clean; out-of-bounds, divergence and barrier checks are always on) with its message."""

    checks: dict
    error: str | None  # the error's class name (RaceError, ...); not the exception, whose traceback
    message: str = ""  # would keep the emulator's memory alive


RUNS_KEPT = 16


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

    def check_status(self, status: int) -> None:
        self.library.check_status(status)


class EmulatorRuntime(Runtime):
    """The thread IR executed by the thread-exact emulator (every thread of every block)."""

    def __init__(self, build: Build):
        super().__init__(build)
        self.lowered = build.lowered
        # rendered (and post-processed) at compile time even though the emulator runs the IR:
        # what would fail to build for a GPU fails here too
        _ = build.source
        self._second: Runtime | None = None  # the PTX interpreter, when cross-checking
        self.runs: list[EmulatorRun] = []  # the latest runs, oldest first
        self.last_stats: EmulateStats | None = None  # of the latest run, if it counted
        # what the CUDA build's --use_fast_math changes that the emulator can model (.ftz)
        self.fast_math = bool(build.pass_configs.get("tl.enable_fast_math")) or any(
            f in ("--use_fast_math", "-use_fast_math") for f in build.compile_flags)

    crosscheckable = True  # NVRTC can compile the source for the PTX interpreter

    def run(self, arrays, dims: list[int]) -> None:
        views = [numpy_view(a) for a in arrays]
        check = env.get("TILEWISE_EMULATOR_CROSSCHECK")
        if check not in ("", "ptx"):
            raise ValueError(f"TILEWISE_EMULATOR_CROSSCHECK={check!r}: the only second executor is 'ptx'")
        if not self.crosscheckable or any(isinstance(p, Buffer) and p.pointer_table for p in self.lowered.params):
            check = ""  # pointer tables hold the caller's addresses, not those of the snapshot's copies
        before = crosscheck.snapshot(self.lowered.params, views) if check else None
        values = [_emulator_value(p, v) for p, v in zip(self.lowered.params, views)]
        checks = {"races": env.flag("TILEWISE_EMULATOR_RACES"), "uninit": env.flag("TILEWISE_EMULATOR_UNINIT")}
        counter = BankCounter() if env.flag("TILEWISE_EMULATOR_STATS") else None
        self.last_stats = None
        try:
            emulate(self.lowered, values, dims, check_races=checks["races"], check_uninit=checks["uninit"],
                    stats=counter, fast_math=self.fast_math,
                    # the PTX interpreter applies conflicting atomics in thread order: the same order
                    # here, or order-dependent results (atomic tickets) could not be compared
                    atomic_lane_order=bool(check))
        except EmulatorError as e:
            self.runs.append(EmulatorRun(dict(checks), type(e).__name__, str(e)))  # for kernel.report()
            raise
        self.runs.append(EmulatorRun(dict(checks), None))
        del self.runs[:-RUNS_KEPT]
        if counter is not None:
            self.last_stats = counter.stats(compile_program(self.lowered).sites)
        if before is not None:
            if self._second is None:
                self._second = PtxRuntime(self.build)
            crosscheck.run_quietly(self._second, before, dims)
            crosscheck.compare(self.lowered.name, self.lowered.params, views, before)


class HipEmulatorRuntime(EmulatorRuntime):
    """The HIP thread IR (64-lane wavefronts) in the emulator. The source is compiled by clang
    as well (cached), so that what would not build for the GPU fails here too. The PTX
    interpreter cannot repeat the run (the source is HIP C++), so TILEWISE_EMULATOR_CROSSCHECK
    does not apply."""

    crosscheckable = False

    def __init__(self, build: Build):
        super().__init__(build)
        _ = build.binary


class HipRuntime(Runtime):
    """The code object launched on an AMD GPU through hip-python."""

    device = "cuda"  # ROCm builds of torch name AMD GPUs "cuda"

    def __init__(self, build: Build):
        super().__init__(build)
        self._launcher = HipLauncher(build.module, build.binary)

    def run(self, arrays, dims: list[int]) -> None:
        self._launcher(arrays, dims)


class GpuRuntime(Runtime):
    """The cubin launched on a CUDA GPU through the driver API."""

    device = "cuda"

    def __init__(self, build: Build):
        super().__init__(build)
        _ = build.binary  # compile now: a launch must not pay for it
        self._launcher = CudaLauncher(build.module, build.binary)

    def run(self, arrays, dims: list[int]) -> None:
        self._launcher(arrays, dims)


class PtxRuntime(Runtime):
    """The PTX NVRTC makes of the kernel's exact source (and options, plus -lineinfo, which adds
    .loc directives and changes no instruction), executed by the PTX interpreter: what the
    renderer, tw_cuda.h and NVVM made of the kernel, independently of the thread-IR emulator."""

    def __init__(self, build: Build):
        super().__init__(build)
        fast = bool(build.pass_configs.get("tl.enable_fast_math"))
        self.ptx = nvrtc_compile(build.source, build.machine.name, fast_math=fast, ptx=True,
                                 options=(*build.compile_flags, "-lineinfo")).ptx
        self.module = build.module
        self.atomic_seed: int | None = None  # set to shuffle conflicting atomics (GPU-like order)

    def line_info(self, loc) -> str:
        """The generated CUDA line, and the user's, of a PTX `.loc` (file 1 is the kernel source)."""
        if loc is None or loc[0] != 1:
            return ""
        n = loc[1]
        lines = self.build.source.splitlines()
        out = f"generated CUDA line {n}: `{lines[n - 1].strip() if 0 < n <= len(lines) else ''}`"
        span = self.module.line_spans.get(n) if self.build.source == self.module.source else None
        if span is not None:
            src = (span.source or "").strip()
            out += f"\n  user source {span}" + (f": `{src}`" if src else "")
        return out

    def run(self, arrays, dims: list[int]) -> None:
        printed = run_module_ptx(self.ptx, self.module, [numpy_view(a) for a in arrays], dims,
                                 line_info=self.line_info, atomic_seed=self.atomic_seed,
                                 check_races=env.flag("TILEWISE_EMULATOR_RACES"))
        for line in printed:
            print(line)


def run_module_ptx(ptx: str, module, views: list, dims: list[int], **options) -> list[str]:
    """Run every kernel of a rendered CudaModule, compiled to `ptx`, in the PTX interpreter on
    numpy arrays (updated in place); returns what they printed. TMA tensor maps are passed as
    the arguments cuTensorMapEncodeTiled would get on a GPU (ptx.TensorMapDesc)."""
    args = [v if isinstance(p, Buffer) else _ptx_scalar(p, v) for p, v in zip(module.params, views)]
    args += [int(d) for d in dims]
    printed: list[str] = []
    # arrays of host addresses (T.make_tensor from a pointer table): the interpreter maps them
    tables = [i for i, p in enumerate(module.params) if isinstance(p, Buffer) and p.pointer_table]
    for plan, kernel in zip(iter_launch_plans(module, views, dims), module.kernels):
        maps = _tensor_maps(module, kernel, views, dims)
        printed += run_ptx(ptx, plan.kernel, plan.grid, plan.block, args + maps, plan.shared_bytes,
                           pointer_tables=tables, **options).printed
    return printed


def _tensor_maps(module, kernel, views, dims) -> list:
    """A kernel's TMA tensor maps for the PTX interpreter: the arguments cuTensorMapEncodeTiled
    would be given on a GPU (the same computation), with the buffer's array for its address."""
    encoded = tensor_map_args(module, kernel, views, dims, address=lambda name, a: a.__array_interface__["data"][0])
    where = {p.uid: k for k, p in enumerate(module.params)}
    return [TensorMapDesc(views[where[m.buffer.uid]], a.element_bytes, a.global_dims, a.global_strides, a.box,
                          a.swizzle_bytes)
            for (_, m), a in zip(kernel.tensor_maps, encoded)]


def _ptx_scalar(param, value):
    """A scalar parameter as the interpreter takes it: 16- and 8-bit floats as their bits."""
    dt = param.dtype
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()
    if dt.is_float and dt.bits <= 16:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)  # the bits already (how the argument binder passes them)
        return int(np.asarray(value, dtype=dt.numpy).view(np.uint16 if dt.bits == 16 else np.uint8))
    return float(value) if dt.is_float else int(value)


def _emulator_value(param, value):
    """Scalars of 16- and 8-bit float types arrive as their bit patterns (how a launch passes
    them); the emulator wants the number."""
    dt = getattr(param, "dtype", None)
    if isinstance(param, Buffer) or dt is None or not dt.is_float or dt.bits > 16 or not isinstance(value, int):
        return value
    return float(np.array(value, dtype=np.uint16 if dt.bits == 16 else np.uint8).view(dt.numpy))

