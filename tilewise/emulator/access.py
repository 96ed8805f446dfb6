"""A compiled buffer access of the emulator: which root storage, and the element offset of
each lane's index (what loads, stores and intrinsic calls share)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ir.buffer import SHARED_SCOPES, Buffer
from ..ir.expr import as_expr
from . import arith
from .errors import UnsupportedError
from .memory import flat_index, strides_of

LOCAL_SCOPES = ("local", "local.var", "local.fragment")

if TYPE_CHECKING:  # annotations only: the compiler builds accesses and imports this module
    from .compiler import Compiler


def scope_kind(buf: Buffer) -> str:
    s = buf.root.scope
    if s == "global" and buf.root.address is not None:
        return "pointer"  # a tensor at an address read at run time (T.make_tensor from a pointer table)
    if s == "global":
        return "global"
    if s in SHARED_SCOPES:
        return "shared"
    if s in LOCAL_SCOPES:
        return "local"
    raise UnsupportedError(f"buffer {buf.name} has scope {s}, which thread IR does not use")


class Access:
    """A compiled buffer access: how to find the root storage and the element offset."""

    def __init__(self, comp: Compiler, buf: Buffer, indices, what: str):
        self.buf = buf
        self.kind = scope_kind(buf)
        self.root = buf.root
        self.slot = comp.buf_slot(self.root)
        self.npdt = arith.np_dtype(buf.dtype)
        self.esize = buf.dtype.bytes
        if buf.byte_offset % self.esize:
            raise UnsupportedError(f"view {buf.name} starts at byte {buf.byte_offset}, not a multiple of its element size")
        self.base = buf.byte_offset // self.esize  # element offset of the view in its root
        self.site = comp.site(buf, what)
        self.faddr = comp.expr(self.root.address) if self.kind == "pointer" else None
        self.fidx = [comp.expr(i) for i in indices]
        shape = buf.static_shape()
        # a pointer table's tensor: dimensions may be scalar parameters, evaluated at each access
        self.fshape = [comp.expr(as_expr(d)) for d in buf.shape] if shape is None and self.kind == "pointer" else None
        if shape is None and self.kind not in ("global", "pointer"):
            raise UnsupportedError(f"{buf.scope} buffer {buf.name} has a dynamic shape {buf.shape}")
        self.static = shape is not None
        self.shape = shape
        self.strides = strides_of(shape) if shape is not None else None
        # a view of a global tensor with a dynamic shape (the bytes of a packed fp4 parameter,
        # transform/pack_fp4.py): its extents are expressions of the dynamic dimensions
        self.dyn_shape = None if self.static or buf.base is None else \
            [comp.expr(d) if not isinstance(d, int) else d for d in buf.shape]

    def shape_strides(self, st):
        if self.static:
            return self.shape, self.strides
        if self.fshape is not None:
            shp = tuple(int(np.asarray(f(st)).reshape(-1)[0]) for f in self.fshape)
            return shp, strides_of(shp)
        if self.dyn_shape is not None:
            shp = tuple(d if isinstance(d, int) else int(d(st)) for d in self.dyn_shape)
            return shp, strides_of(shp)
        shp = st.shapes[self.buf]
        return shp, strides_of(shp)

    def offset(self, st):
        """Element offset in the view (checked on active lanes; 0 on inactive out-of-range lanes)."""
        shape, strides = self.shape_strides(st)
        return flat_index(st, self.site, [f(st) for f in self.fidx], shape, strides)

    def byte_offset(self, st):
        """Byte offset of the element inside the root storage."""
        off = self.offset(st)
        return (self.base + off) * self.esize
