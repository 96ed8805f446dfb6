"""`T.annotate_restrict_buffers(*buffers)` (TileLang 0.1.15): despite its name, it marks tensor
parameters as possibly aliasing, so that the generated code does not declare them `__restrict__`
(TileLang's use: overlapping slices of one tensor passed as two parameters). tilewise declares
every tensor parameter `__restrict__` on CUDA and the CPU, which lets the compilers reorder
accesses across parameters; the named ones lose it (PrimFunc.attrs["tilewise_non_restrict"], read
by backend/cuda/renderer.py and backend/cpu/codegen.py). The emulator reads and writes each
parameter's own memory in program order either way."""
from __future__ import annotations

from ..errors import CompileError, OutsideKernelError
from ..ir import builder as _builder
from ..ir.buffer import Buffer

NON_RESTRICT = "tilewise_non_restrict"


def annotate_restrict_buffers(*buffers) -> None:
    """Tensor parameters that may alias: no `__restrict__` on them in the generated code."""
    b = _builder.current()
    if b is None:
        raise OutsideKernelError("T.annotate_restrict_buffers can only be used in a @T.prim_func body")
    names = set(b.func_attrs.get(NON_RESTRICT, ()))
    for buf in buffers:
        if not isinstance(buf, Buffer) or not buf.is_global:
            raise CompileError(f"T.annotate_restrict_buffers expects tensor parameters, got {buf!r}")
        names.add(buf.name)
    if names:
        b.func_attrs[NON_RESTRICT] = sorted(names)
