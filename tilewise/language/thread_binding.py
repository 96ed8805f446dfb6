"""`T.thread_binding(start, stop, thread="threadIdx.x")` as TileLang programs use it inside a
`T.Kernel`: `kr = T.thread_binding(0, reduce_thread, thread="threadIdx.x")`. In TVM this opens a
loop bound to that hardware index, which merges with the kernel's own launch of the same index;
the value is the kernel's thread (or block) index on that axis. tilewise gives that index when
the range is the kernel's whole extent on the axis, and a CompileError naming both otherwise (a
sub-range or another extent would be a different launch, which TVM would not merge either)."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.builder import require_kernel
from ..ir.expr import Var
from .loops import get_block_binding, get_thread_binding

_AXES = {"x": 0, "y": 1, "z": 2}


def _const(v, what: str) -> int:
    try:
        return int(getattr(v, "value", v))
    except (TypeError, ValueError):
        raise CompileError(f"T.thread_binding: the {what} must be a constant, got {v!r}") from None


def thread_binding(start, stop=None, thread: str | None = None, *, annotations=None) -> Var:
    """The kernel's `threadIdx.*` / `blockIdx.*` index named by `thread`, over [start, stop)
    (TileLang's argument forms: (extent, thread), (start, stop, thread))."""
    if thread is None and isinstance(stop, str):
        start, stop, thread = 0, start, stop
    elif stop is None:
        start, stop = 0, start
    if not isinstance(thread, str):
        raise CompileError("T.thread_binding: the thread tag (\"threadIdx.x\", \"blockIdx.y\", ...) is required")
    kind, _, axis = thread.partition(".")
    if kind not in ("threadIdx", "blockIdx") or axis not in _AXES:
        raise CompileError(f"T.thread_binding: unknown thread tag {thread!r}; expected threadIdx.x/y/z or blockIdx.x/y/z")
    k = require_kernel("T.thread_binding")
    dim = _AXES[axis]
    lo, hi = _const(start, "start"), _const(stop, "stop")
    if kind == "threadIdx":
        extents = list(k.threads)
        index = get_thread_binding
    else:
        extents = [getattr(d, "value", d) for d in k.grid]
        index = get_block_binding
    if dim >= len(extents):
        raise CompileError(f"T.thread_binding({thread!r}): the kernel has no {thread} (its extents: {extents})")
    whole = extents[dim]
    if lo != 0 or (isinstance(whole, int) and hi != whole):
        raise CompileError(f"T.thread_binding({start}, {stop}, {thread!r}): the kernel launches {thread} over "
                           f"[0, {whole}); a binding must cover exactly that range (it is the kernel's own index)")
    return index(dim)
