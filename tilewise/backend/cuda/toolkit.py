"""Where the pip-installed CUDA pieces live: headers (nvidia-cuda-runtime), the cuobjdump and
nvdisasm binaries (nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm). Found through the installed
distributions' file lists, so that the cu12 and cu13 layouts (nvidia/cuda_runtime/include,
nvidia/cu13/include, ...) both work; CUDA_HOME / CUDA_PATH is the fallback."""
from __future__ import annotations

import functools
import os
import shutil
from importlib import metadata

INCLUDE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")
# headers the CUDA and HIP headers share (tw_philox.h: T.rng_*)
SHARED_INCLUDE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "include")

_RUNTIME_DISTS = ("nvidia-cuda-runtime", "nvidia-cuda-runtime-cu13", "nvidia-cuda-runtime-cu12")
_TOOL_DISTS = {
    "cuobjdump": ("nvidia-cuda-cuobjdump", "nvidia-cuda-cuobjdump-cu13", "nvidia-cuda-cuobjdump-cu12"),
    "nvdisasm": ("nvidia-cuda-nvdisasm", "nvidia-cuda-nvdisasm-cu13", "nvidia-cuda-nvdisasm-cu12"),
}


class ToolkitNotFound(RuntimeError):
    """A CUDA component that the CUDA backend needs is not installed."""


def _dist_file(dists, match) -> str | None:
    for name in dists:
        try:
            files = metadata.distribution(name).files or ()
        except metadata.PackageNotFoundError:
            continue
        for f in files:
            if match(f):
                path = str(f.locate())
                if os.path.exists(path):
                    return path
    return None


def _toolkit_roots() -> list[str]:
    roots = [os.environ.get(k) for k in ("CUDA_HOME", "CUDA_PATH")]
    return [r for r in roots if r] + ["/usr/local/cuda"]


@functools.cache
def cuda_include_dir() -> str:
    """The directory holding cuda_fp16.h and the other CUDA headers NVRTC needs."""
    hit = _dist_file(_RUNTIME_DISTS, lambda f: f.name == "cuda_fp16.h" and f.parent.name == "include")
    if hit:
        return os.path.dirname(hit)
    for root in _toolkit_roots():
        if os.path.exists(os.path.join(root, "include", "cuda_fp16.h")):
            return os.path.join(root, "include")
    raise ToolkitNotFound(
        "the CUDA headers (cuda_fp16.h) were not found; install them with "
        "`pip install nvidia-cuda-runtime` (part of tilewise's `cuda` extra) or set CUDA_HOME"
    )


@functools.cache
def tool_path(name: str) -> str:
    """The path of a CUDA binary tool (cuobjdump, nvdisasm)."""
    hit = _dist_file(_TOOL_DISTS.get(name, ()), lambda f: f.name == name and f.parent.name == "bin")
    if hit:
        if not os.access(hit, os.X_OK):
            raise ToolkitNotFound(f"{hit} is not executable")
        return hit
    for root in _toolkit_roots():
        p = os.path.join(root, "bin", name)
        if os.access(p, os.X_OK):
            return p
    found = shutil.which(name)
    if found:
        return found
    pkg = _TOOL_DISTS.get(name, (name,))[0]
    raise ToolkitNotFound(f"the CUDA tool {name} was not found; install it with `pip install {pkg}` or set CUDA_HOME")
