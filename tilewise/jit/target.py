"""Target strings ("cpu", "cuda -arch=sm_90a", "auto") and execution backends."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..backend.cuda.device import gpu_present

CPU_ALIASES = ("cpu", "c", "llvm")
CUDA_ARCHS = ("sm_80", "sm_86", "sm_89", "sm_90", "sm_90a")
TILELANG_BACKENDS = ("cython", "ctypes", "dlpack", "tvm_ffi", "torch", "auto")


@dataclass(frozen=True)
class Target:
    kind: str  # "cpu" | "cuda"
    arch: str = ""

    def __str__(self) -> str:
        return self.kind if self.kind == "cpu" else f"cuda -arch={self.arch}"


def parse_target(target) -> Target:
    if isinstance(target, Target):
        return target
    if target is None:
        target = "auto"
    if not isinstance(target, str):
        target = str(getattr(target, "kind", target))
    env = os.environ.get("TILEWISE_TARGET")
    t = target.strip()
    if t == "auto" and env:
        t = env.strip()
    if t == "auto":
        t = "cuda" if gpu_present() else "cpu"
    head = t.split()[0].lower()
    if head in CPU_ALIASES:
        return Target("cpu")
    if head == "cuda":
        m = re.search(r"-arch=(sm_\w+)", t)
        arch = m.group(1) if m else "sm_80"
        if arch not in CUDA_ARCHS:
            raise ValueError(f"unsupported CUDA architecture {arch}; supported: {', '.join(CUDA_ARCHS)}")
        return Target("cuda", arch)
    raise ValueError(f"unknown target {target!r}; use 'cpu' (or 'c', 'llvm'), 'cuda', 'cuda -arch=sm_90a' or 'auto'")


def resolve_backend(target: Target, backend: str | None) -> str:
    b = (backend or "auto").strip()
    if target.kind == "cpu":
        if b in TILELANG_BACKENDS or b in ("cpu", "native"):
            return "native"
        raise ValueError(f"execution backend {b!r} does not apply to the CPU target; use 'auto'")
    env = os.environ.get("TILEWISE_EXECUTION_BACKEND")
    if b in TILELANG_BACKENDS and env:
        b = env.strip()
    if b in TILELANG_BACKENDS:
        return "nvrtc" if gpu_present() else "emulator"
    if b in ("nvrtc", "emulator"):
        return b
    raise ValueError(f"unknown execution backend {b!r}; for CUDA use 'nvrtc' or 'emulator'")
