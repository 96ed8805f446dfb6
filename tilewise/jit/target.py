"""Targets as data. A target string ("cpu", "cuda -arch=sm_90a", "auto") names a record; the record
says which machine facts apply, which passes run, which renderer prints the result, which
toolchain compiles it, and which runtimes (execution backends) can run it. compile(), lower()
and JITKernel only read records: adding a target is one record here (see docs/DESIGN.md)."""
from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import env
from ..backend.cpu.build import build_shared_library, compiler_id
from ..backend.cpu.codegen import render_cpu
from ..backend.cuda import register_fit
from ..backend.cuda.device import gpu_present
from ..backend.cuda.inspect import get_sass, resource_usage
from ..backend.cuda.nvrtc import compile_cubin, toolchain_fingerprint
from ..backend.cuda.renderer import render_cuda
from ..backend.hip.clang import compile_hsaco
from ..backend.hip.clang import toolchain_fingerprint as hip_fingerprint
from ..backend.hip.device import amd_gpu_present
from ..backend.hip.inspect import get_isa as hip_isa
from ..backend.hip.inspect import kernel_resources as hip_resources
from ..backend.hip.renderer import render_hip
from ..engine.callback import (
    has_c_postproc,
    has_cuda_postproc,
    has_hip_postproc,
    postprocess_c_source,
    postprocess_cuda_source,
    postprocess_hip_source,
)
from ..ir.machine import CPU, CUDA_ARCHS, HIP_ARCHS, Machine, cuda_machine, hip_machine
from ..transform.pipeline import loop_passes, thread_passes
from . import cache as kernel_cache
from . import compile_flags
from .runtimes import EmulatorRuntime, GpuRuntime, HipEmulatorRuntime, HipRuntime, NativeRuntime, PtxRuntime, Runtime

CPU_ALIASES = ("cpu", "c", "llvm")
TILELANG_BACKENDS = ("cython", "ctypes", "dlpack", "tvm_ffi", "torch", "auto")


@dataclass(frozen=True)
class Target:
    """What the user asked for: a kind ("cpu" | "cuda" | "hip") and, for a GPU, an architecture."""

    kind: str
    arch: str = ""

    def __str__(self) -> str:
        return self.kind if self.kind == "cpu" else f"{self.kind} -arch={self.arch}"


@dataclass(frozen=True)
class Toolchain:
    """How a rendered source becomes the binary in a cache entry."""

    source_name: str
    binary_name: str
    compile: Callable[[str, Machine, dict, Path, tuple], None]  # (source, machine, pass configs, out path, flags)
    fingerprint: Callable[[], str]  # what besides the source decides the binary
    # compile_flags= -> the flags this toolchain takes (the others warn once: jit/compile_flags.py)
    flags: Callable[[tuple, Machine], tuple] = lambda flags, machine: flags


@dataclass(frozen=True)
class TargetRecord:
    name: str
    kind: str  # the Target.kind it serves
    archs: tuple[str, ...]  # architectures of that kind it covers ("" for none)
    machine: Callable[[str], Machine]
    passes: Callable[[Machine, dict], list]  # transform/pipeline.py
    render: Callable  # lowered PrimFunc -> module with `.source`
    toolchain: Toolchain
    runtimes: Mapping[str, type[Runtime]]  # execution backend -> runtime
    auto_runtime: Callable[[], str]  # what execution_backend="auto" picks
    postprocess: Callable[[str, Machine], str] = lambda source, machine: source
    key_on_source: bool = False  # cache key from the final source instead of the program (jit/build.py)
    source_hooked: Callable[[], bool] = lambda: False  # a user callback edits the source now: key on it too
    # the record that runs kernels this one cannot: a block of a "loops" target is one thread,
    # so kernels that program threads themselves (T.get_thread_binding) run there instead
    thread_exact: tuple[str, str, str] | None = None  # (record, arch, runtime)
    disassemble: Callable[[bytes], str] | None = None  # binary -> machine code text
    resources: Callable[[bytes], dict] | None = None  # binary -> registers, spills, shared memory


def _compile_cubin(source: str, machine: Machine, configs: dict, out: Path, flags: tuple = ()) -> None:
    def compile_source(text: str) -> bytes:
        return compile_cubin(text, machine.name, fast_math=bool(configs.get("tl.enable_fast_math")),
                             options=tuple(flags))

    if not register_fit.enabled(configs, tuple(flags)):
        out.write_bytes(compile_source(source))
        return
    # a second, register-capped compile where ptxas left a gap (backend/cuda/register_fit.py);
    # what was tried and kept is recorded next to the cubin
    cubin, facts = register_fit.fit(source, compile_source)
    kernel_cache.write_json(out.parent / register_fit.FACTS_FILE, facts)
    out.write_bytes(cubin)


def _cuda_record(name: str, archs: tuple[str, ...]) -> TargetRecord:
    return TargetRecord(
        name=name, kind="cuda", archs=archs, machine=cuda_machine, passes=thread_passes, render=render_cuda,
        toolchain=Toolchain("kernel.cu", "kernel.cubin", _compile_cubin,
                            lambda: toolchain_fingerprint() + register_fit.fingerprint(),
                            lambda flags, machine: compile_flags.for_nvrtc(flags, machine.name)),
        runtimes={"nvrtc": GpuRuntime, "emulator": EmulatorRuntime, "ptx": PtxRuntime},
        auto_runtime=lambda: "nvrtc" if gpu_present() else "emulator",
        postprocess=lambda source, machine: postprocess_cuda_source(source, f"cuda -arch={machine.name}"),
        source_hooked=has_cuda_postproc, disassemble=get_sass, resources=resource_usage,
    )


def _compile_hsaco(source: str, machine: Machine, configs: dict, out: Path, flags: tuple = ()) -> None:
    # tl.enable_fast_math: float32 subnormals flush to zero (the kernel's denormal mode), which is
    # what the emulator models of fast math; the math functions stay the accurate expansions
    ftz = ("-fgpu-flush-denormals-to-zero",) if configs.get("tl.enable_fast_math") else ()
    compile_hsaco(source, machine.name, out, ftz + tuple(flags))


# AMD Instinct GPUs through clang-19 (no ROCm needed to compile); the thread-IR emulator runs the
# kernels where no AMD GPU is present (there is no second executor like the PTX interpreter)
_HIP = TargetRecord(
    name="hip", kind="hip", archs=HIP_ARCHS, machine=hip_machine, passes=thread_passes, render=render_hip,
    toolchain=Toolchain("kernel.hip", "kernel.hsaco", _compile_hsaco, hip_fingerprint,
                        lambda flags, machine: compile_flags.for_clang(flags)),
    runtimes={"hip": HipRuntime, "emulator": HipEmulatorRuntime},
    auto_runtime=lambda: "hip" if amd_gpu_present() else "emulator",
    postprocess=lambda source, machine: postprocess_hip_source(source, f"hip -arch={machine.name}"),
    source_hooked=has_hip_postproc, disassemble=hip_isa, resources=hip_resources,
)

RECORDS: dict[str, TargetRecord] = {r.name: r for r in (
    TargetRecord(
        name="cpu", kind="cpu", archs=("",), machine=lambda arch: CPU, passes=loop_passes, render=render_cpu,
        toolchain=Toolchain("kernel.cpp", "kernel.so", lambda src, m, c, out, flags=(): build_shared_library(
            src, out, flags, kernel_cache), compiler_id, lambda flags, machine: compile_flags.for_gcc(flags)),
        runtimes={"native": NativeRuntime}, auto_runtime=lambda: "native",
        postprocess=lambda source, machine: postprocess_c_source(source, "c"), source_hooked=has_c_postproc,
        thread_exact=("cuda-sm80", "sm_80", "emulator"),
    ),
    _cuda_record("cuda-sm80", ("sm_80", "sm_86", "sm_89")),
    _cuda_record("cuda-sm90", ("sm_90", "sm_90a")),
    _HIP,
)}

# Blackwell and later: tilewise has no lowering of their own (tcgen05, tensor memory); the Hopper
# subset these GPUs also have (TMA, mbarrier pipelines, mma.sync; not wgmma, which is sm_90a's
# alone) compiles for them, NVRTC generating code for the real architecture. Shared memory per
# block: the opt-in maximum of each (CUDA C programming guide, compute capabilities table).
NEWER_CUDA_ARCHS = {"sm_100": 227, "sm_100a": 227, "sm_100f": 227, "sm_103": 227, "sm_103a": 227, "sm_103f": 227,
                    "sm_110": 227, "sm_110a": 227, "sm_110f": 227, "sm_120": 99, "sm_120a": 99, "sm_120f": 99,
                    "sm_121": 99, "sm_121a": 99, "sm_121f": 99}
_OLD_CUDA = re.compile(r"sm_([1-7]\d)[a-z]?")


def _newer_machine(arch: str) -> Machine:
    hopper = cuda_machine("sm_90")
    compile_flags.warn_once(("arch", arch), f"target {arch}: tilewise has no lowering for this GPU's own instructions "
                                            "(tcgen05, tensor memory); kernels are compiled for it with the Hopper "
                                            "subset it also has (TMA, mbarrier pipelines, mma.sync; no wgmma, which "
                                            "only sm_90a has)", stacklevel=6)
    return Machine(arch, hopper.lowering_keys, hopper.warp_size, NEWER_CUDA_ARCHS[arch] * 1024, hopper.features,
                   hopper.max_threads, hopper.max_block_dims)


_newer = _cuda_record("cuda-newer", tuple(NEWER_CUDA_ARCHS))
RECORDS[_newer.name] = dataclasses.replace(_newer, machine=_newer_machine)


def record_for(target: Target) -> TargetRecord:
    for r in RECORDS.values():
        if r.kind == target.kind and (target.arch or "") in r.archs:
            return r
    raise ValueError(f"no target record serves {target}")


def _target_string(target) -> str:
    """TileLang's other target forms: a dict {"kind": "cuda", "arch": "sm_90"} and TVM Target
    objects (kind and arch attributes) become the string form."""
    if isinstance(target, dict):
        kind = target.get("kind")
        if not isinstance(kind, str):
            raise ValueError(f"a target dict needs a 'kind' such as 'cuda' or 'c', got {target!r}")
        arch = target.get("arch")
        if arch is None and "-arch=" not in " ".join(target.get("keys", ())):
            return kind
        return f"{kind} -arch={arch}" if arch else kind
    kind = getattr(target, "kind", None)
    if kind is not None:
        kind = getattr(kind, "name", kind)
        arch = getattr(target, "arch", None)
        return f"{kind} -arch={arch}" if arch else str(kind)
    return str(target)


_SCOPES = threading.local()


def scoped_targets() -> list:
    """This thread's stack of `with tvm.target.Target(...):` scopes (tilewise/tvm/target.py pushes
    them); a compile for "auto" inside one uses the innermost, as TileLang's determine_target does."""
    if not hasattr(_SCOPES, "stack"):
        _SCOPES.stack = []
    return _SCOPES.stack


def parse_target(target) -> Target:
    if isinstance(target, Target):
        return target
    if target is None:
        target = "auto"
    if not isinstance(target, str):
        target = _target_string(target)
    t = target.strip()
    if t == "auto" and scoped_targets():  # inside `with tvm.target.Target(...):` that target, as in TileLang
        t = _target_string(scoped_targets()[-1])
    if t == "auto" and env.get("TILEWISE_TARGET"):
        t = env.get("TILEWISE_TARGET")
    if t == "auto":
        t = "cuda" if gpu_present() else "hip" if amd_gpu_present() else "cpu"
    head = t.split()[0].lower()
    if head in CPU_ALIASES:
        return Target("cpu")
    if head == "cuda":
        m = re.search(r"-arch=(sm_\w+)", t)
        arch = m.group(1) if m else "sm_80"
        if arch not in CUDA_ARCHS and arch not in NEWER_CUDA_ARCHS:
            why = ("tilewise needs sm_80 (Ampere) or newer: its kernels use cp.async, ldmatrix and bf16 mma.sync"
                   if _OLD_CUDA.fullmatch(arch) else "not an architecture tilewise knows")
            raise ValueError(f"unsupported CUDA architecture {arch} ({why}); supported: {', '.join(CUDA_ARCHS)}, and "
                             f"with the Hopper subset {', '.join(NEWER_CUDA_ARCHS)}")
        return Target("cuda", arch)
    if head in ("hip", "rocm"):
        m = re.search(r"-(?:arch|mcpu)=(gfx\w+)", t)
        arch = m.group(1) if m else "gfx942"
        if arch not in HIP_ARCHS:
            raise ValueError(f"unsupported AMD architecture {arch}; supported: {', '.join(HIP_ARCHS)}")
        return Target("hip", arch)
    raise ValueError(f"unknown target {target!r}; use 'cpu' (or 'c', 'llvm'), 'cuda', 'cuda -arch=sm_90a', 'hip', "
                     "'hip -arch=gfx942' or 'auto'")


def resolve_backend(target: Target, backend: str | None) -> str:
    """The runtime name for an execution_backend argument (TileLang's names mean "auto")."""
    record = record_for(target)
    b = (backend or "auto").strip()
    if b in TILELANG_BACKENDS and target.kind != "cpu" and env.get("TILEWISE_EXECUTION_BACKEND"):
        b = env.get("TILEWISE_EXECUTION_BACKEND")
    if b in TILELANG_BACKENDS or (target.kind == "cpu" and b in ("cpu", "native")):
        return record.auto_runtime()
    if b in record.runtimes:
        return b
    if target.kind == "cpu":
        raise ValueError(f"execution backend {b!r} does not apply to the CPU target; use 'auto'")
    raise ValueError(f"unknown execution backend {b!r}; for {target.kind.upper()} use "
                     f"{' or '.join(repr(n) for n in record.runtimes)}")
