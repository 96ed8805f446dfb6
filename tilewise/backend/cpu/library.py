"""A compiled CPU kernel: its shared library loaded, called with raw pointers and dimensions."""
from __future__ import annotations

import ctypes
from pathlib import Path

from .build import load_library
from .codegen import BOUNDS_ENTRY, DIRECT_ENTRY, EMPTY_GRID_ENTRY, ENTRY

BOUNDS_STATUS = 2  # tw_cpu.h: an on-chip tile was accessed out of bounds (transform/check_tile_bounds.py)
EMPTY_GRID_STATUS = 3  # tw_cpu.h: a kernel's grid has 0 blocks along a dimension (TileLang refuses it)


class CpuLibrary:
    def __init__(self, path: Path):
        self.path = path
        self.lib, self.fn = load_library(path, ENTRY)
        self._direct = None

    def run(self, ptrs: list[int], dims: list[int]) -> None:
        argv = (ctypes.c_void_p * max(len(ptrs), 1))(*ptrs)
        dimv = (ctypes.c_int64 * max(len(dims), 1))(*dims)
        self.check_status(self.fn(argv, dimv))

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


    def check_status(self, status: int) -> None:
        """Raise what a non-zero status of the entry means."""
        if status == EMPTY_GRID_STATUS:
            take = getattr(self.lib, EMPTY_GRID_ENTRY, None)
            if take is not None:
                from ...emulator.errors import EmptyGridError

                take.restype = ctypes.c_char_p
                take.argtypes = []
                raise EmptyGridError(take().decode(errors="replace"))
        if status == BOUNDS_STATUS:
            take = getattr(self.lib, BOUNDS_ENTRY, None)
            if take is not None:
                take.restype = ctypes.c_char_p
                take.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int32)]
                idx = (ctypes.c_int64 * 8)()
                ndim = ctypes.c_int32(0)
                msg = take(idx, ctypes.byref(ndim))
                if msg is not None:
                    from ...emulator.errors import OutOfBoundsError

                    at = ", ".join(str(idx[k]) for k in range(ndim.value))
                    text = msg.decode(errors="replace")
                    raise OutOfBoundsError(f"{text}: index [{at}] (the kernel ran to the end with that access "
                                           "skipped; its outputs are not valid)")
        check_status(status)


def check_status(status: int) -> None:
    if status != 0:
        raise MemoryError(f"the kernel could not allocate its tile workspace (status {status})")
