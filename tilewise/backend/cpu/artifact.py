"""A compiled CPU kernel: the shared library in the cache, loaded once per process."""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

from ...ir.printer import structural_text
from ...ir.stmt import PrimFunc
from ...jit import cache
from .build import build_shared_library, compiler_id, load_library
from .codegen import DIRECT_ENTRY, ENTRY, render_cpu

_loaded: dict[str, CpuArtifact] = {}


class CpuArtifact:
    def __init__(self, entry_dir: Path, source: str):
        self.entry_dir = entry_dir
        self.source = source
        self.lib, self.fn = load_library(entry_dir / "kernel.so", ENTRY)

    def run(self, arrays, dims: list[int]) -> None:
        from ...jit.args import data_ptr

        ptrs = [data_ptr(a) for a in arrays]
        n = len(ptrs)
        argv = (ctypes.c_void_p * max(n, 1))(*ptrs)
        dimv = (ctypes.c_int64 * max(len(dims), 1))(*dims)
        self.check_status(self.fn(argv, dimv))

    def direct_entry(self, n_ptrs: int, n_dims: int):
        """The kernel as a ctypes function of `n_ptrs` pointers then `n_dims` int64 dimensions,
        or None if the library lacks that entry."""
        fn = getattr(self, "_direct", None)
        if fn is None:
            try:
                fn = getattr(self.lib, DIRECT_ENTRY)
            except AttributeError:
                return None
            fn.restype = ctypes.c_int32
            fn.argtypes = [ctypes.c_void_p] * n_ptrs + [ctypes.c_int64] * n_dims
            self._direct = fn
        return fn

    @staticmethod
    def check_status(status: int) -> None:
        if status != 0:
            raise MemoryError(f"the kernel could not allocate its tile workspace (status {status})")


def lower_cpu(func: PrimFunc, pass_configs: dict | None = None):
    from ...transform.pipeline import cpu_passes, run_passes

    lowered = run_passes(func, cpu_passes(pass_configs))
    return lowered, render_cpu(lowered)


def build_cpu(func: PrimFunc, pass_configs: dict | None = None) -> CpuArtifact:
    if os.environ.get("TILEWISE_DUMP_IR"):
        lower_cpu(func, pass_configs)  # the IR dump is wanted even when the kernel is cached
    configs = sorted((pass_configs or {}).items())
    key = cache.make_key("cpu", structural_text(func), configs, compiler_id())
    hit = _loaded.get(key)
    if hit is not None:
        return hit
    entry = cache.lookup(key)
    if entry is not None:
        try:
            art = CpuArtifact(entry, (entry / "kernel.cpp").read_text())
            _loaded[key] = art
            return art
        except OSError:
            pass  # a damaged entry: rebuild below
    _, module = lower_cpu(func, pass_configs)

    def fill(d: Path):
        (d / "kernel.cpp").write_text(module.source)
        build_shared_library(module.source, d / "kernel.so")
        cache.write_json(d / "meta.json", {"entry": ENTRY, "name": func.name, "target": "cpu"})

    entry = cache.publish(key, fill)
    art = CpuArtifact(entry, module.source)
    _loaded[key] = art
    return art


