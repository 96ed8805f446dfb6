"""A compiled CPU kernel: its shared library loaded, called with raw pointers and dimensions."""
from __future__ import annotations

import ctypes
from pathlib import Path

from .build import load_library
from .codegen import DIRECT_ENTRY, ENTRY


class CpuLibrary:
    def __init__(self, path: Path):
        self.path = path
        self.lib, self.fn = load_library(path, ENTRY)
        self._direct = None

    def run(self, ptrs: list[int], dims: list[int]) -> None:
        argv = (ctypes.c_void_p * max(len(ptrs), 1))(*ptrs)
        dimv = (ctypes.c_int64 * max(len(dims), 1))(*dims)
        check_status(self.fn(argv, dimv))

    def direct_entry(self, n_ptrs: int, n_dims: int):
        """The kernel as a ctypes function of `n_ptrs` pointers then `n_dims` int64 dimensions,
        or None if the library lacks that entry."""
        if self._direct is None:
            try:
                fn = getattr(self.lib, DIRECT_ENTRY)
            except AttributeError:
                return None
            fn.restype = ctypes.c_int32
            fn.argtypes = [ctypes.c_void_p] * n_ptrs + [ctypes.c_int64] * n_dims
            self._direct = fn
        return self._direct


def check_status(status: int) -> None:
    if status != 0:
        raise MemoryError(f"the kernel could not allocate its tile workspace (status {status})")
