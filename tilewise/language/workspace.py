"""`T.alloc_global(shape, dtype)`: TileLang's global scratch buffer, allocated for each launch.

The buffer becomes a parameter of the function that callers never see: every call of the
compiled kernel allocates it (like an output, with unspecified contents, as cudaMalloc leaves
them), passes it to the kernel and drops it afterwards (jit/kernel.py). All blocks of the launch
(and all kernels of the function) share it, so the CUDA code, the emulator's race and bounds
checks, the PTX interpreter and the CPU target treat it exactly like a tensor argument.
The PrimFunc's attribute `tilewise_workspaces` counts these trailing parameters."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.buffer import Buffer
from ..ir.builder import require
from .alloc import _dtype, _shape


def alloc_global(shape, dtype, scope: str = "global") -> Buffer:
    what = "T.alloc_global"
    if scope != "global":
        raise CompileError(f"{what}: scope must be 'global', got {scope!r} (use T.alloc_shared / T.alloc_local)")
    b = require(what)
    buf = Buffer("workspace", _shape(shape, what, static=False), _dtype(dtype, what), "global")
    buf.auto_named = True  # the parser names it after the variable it is assigned to
    b.workspaces.append(buf)
    return buf
