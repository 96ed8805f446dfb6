"""TileLang's `tilelang.utils.language`: questions about a buffer-like operand (a buffer, an
element `buf[i, j]` or a region `buf[a:b, c:d]`) that programs driving the emitters ask."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import BufferLoad


def _buffer(x) -> Buffer:
    if isinstance(x, (BufferRegion, BufferLoad)):
        return x.buffer
    if isinstance(x, Buffer):
        return x
    raise CompileError(f"expected a buffer, an element or a region of one, got {type(x).__name__}")


def to_buffer_region(obj, access_type: str = "rw", extents=None) -> BufferRegion:
    """The operand as a region: a whole buffer, an element (`buf[i, j]`: extent 1 in every
    dimension, or `extents` for the last dimensions) or a region itself (cut to `extents`).
    tilewise's regions carry no access type: `access_type` is accepted and not needed."""
    if isinstance(obj, Buffer):
        region = BufferRegion.full(obj)
    elif isinstance(obj, BufferLoad):
        region = BufferRegion(obj.buffer, [(i, 1) for i in obj.indices])
    elif isinstance(obj, BufferRegion):
        region = obj
    else:
        raise CompileError(f"to_buffer_region: expected a buffer, an element or a region, got {type(obj).__name__}")
    if extents is None:
        return region
    extents = list(extents)
    starts = [s for s, _ in region.region]
    old = [e for _, e in region.region]
    if len(extents) > len(old):
        raise CompileError(f"to_buffer_region: {len(extents)} extents for a {len(old)}-d region")
    if isinstance(obj, BufferLoad):  # the extents are those of the last dimensions
        new = old[: len(old) - len(extents)] + extents
    else:
        if len(extents) != len(old):
            raise CompileError(f"to_buffer_region: {len(extents)} extents for a {len(old)}-d region")
        new = [min(a, b) if isinstance(a, int) and isinstance(b, int) else b for a, b in zip(old, extents)]
    return BufferRegion(region.buffer, list(zip(starts, new)))


def is_global(buffer) -> bool:
    return _buffer(buffer).is_global


def is_shared(buffer, allow_dynamic: bool = True) -> bool:
    b = _buffer(buffer)
    return b.is_shared and (allow_dynamic or b.scope == "shared")


def is_shared_dynamic(buffer) -> bool:
    return _buffer(buffer).scope == "shared.dyn"


def is_local(buffer) -> bool:
    return _buffer(buffer).scope == "local"


def is_fragment(buffer) -> bool:
    return _buffer(buffer).is_fragment


def is_local_var(buffer) -> bool:
    return _buffer(buffer).scope == "local.var"


def is_reducer(buffer) -> bool:
    return getattr(_buffer(buffer).root, "reducer_op", None) is not None


__all__ = ["is_fragment", "is_global", "is_local", "is_local_var", "is_reducer", "is_shared", "is_shared_dynamic",
           "to_buffer_region"]
