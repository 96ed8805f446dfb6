"""Replace buffers everywhere they are referenced (loads, stores, allocations, regions),
optionally remapping the indices."""
from __future__ import annotations

from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import BufferLoad
from ..ir.stmt import Allocate, BufferStore
from ..ir.visitor import Mutator


class BufferRewriter(Mutator):
    """mapping: old Buffer -> (new Buffer, index_fn or None); index_fn(indices) -> new indices."""

    def __init__(self, mapping: dict):
        self.mapping = mapping

    def _map(self, buf: Buffer, indices):
        new, fn = self.mapping[buf]
        return new, (list(fn(list(indices))) if fn is not None else list(indices))

    def visit_BufferLoad(self, e: BufferLoad):
        e = self.generic_visit(e)
        if e.buffer in self.mapping:
            buf, idx = self._map(e.buffer, e.indices)
            out = BufferLoad(buf, idx, span=e.span)
            return out
        return e

    def visit_BufferStore(self, s: BufferStore):
        s = self.generic_visit(s)
        if s.buffer in self.mapping:
            buf, idx = self._map(s.buffer, s.indices)
            out = BufferStore(buf, idx, s.value, span=s.span)
            return out
        return s

    def visit_Allocate(self, s: Allocate):
        s = self.generic_visit(s)
        if s.buffer in self.mapping:
            out = Allocate(self.mapping[s.buffer][0], s.init, span=s.span)
            return out
        return s

    def visit_BufferRegion(self, r: BufferRegion):
        r = self.generic_visit(r)
        if r.buffer in self.mapping:
            new, fn = self.mapping[r.buffer]
            if fn is not None:
                raise NotImplementedError("index remapping of tile regions")
            return BufferRegion(new, r.region)
        return r


def rewrite_buffers(node, mapping: dict):
    if not mapping:
        return node
    return BufferRewriter(mapping).visit(node)
