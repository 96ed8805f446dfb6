"""CUDA: place every shared tile of a kernel in one dynamic shared allocation `smem` (uint8),
each tile becoming a typed view at a 128-byte aligned offset (the alignment swizzles assume);
T.view / T.reshape aliases of a tile become views at the same bytes.

Tiles whose lifetimes do not overlap share bytes, as in TileLang: an epilogue tile (O_shared
after the main loop) reuses the operand tiles of the loop, which is what lets kernels such as
MLA decoding fit at all. Lifetimes are measured in the statements at the top of the kernel
body, which every thread executes: a tile touched anywhere inside a loop or an `if` there is
live for the whole of it. Where a tile takes over bytes another tile used, a __syncthreads
goes before its first statement unless one is already between them, so that no thread writes
the new tile while another still reads the old one.

Reduction workspaces are bracketed by barriers inside their operator (write, sync, read,
sync), so all of them share one scratch area."""
from __future__ import annotations

import math

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import Call
from ..ir.machine import Machine
from ..ir.stmt import Allocate, Evaluate, Kernel, PrimFunc, SeqStmt, seq
from ..ir.visitor import Mutator, Visitor
from .buffer_rewrite import rewrite_buffers

ALIGN = 128


class _Shared(Visitor):
    def __init__(self):
        self.allocs: list[Allocate] = []

    def visit_Allocate(self, s: Allocate):
        if s.buffer.is_shared:
            self.allocs.append(s)


class _Touched(Visitor):
    """The root shared buffers a statement reads or writes."""

    def __init__(self):
        self.roots: set = set()

    def _add(self, b):
        if isinstance(b, Buffer) and b.is_shared:
            self.roots.add(b.root)

    def visit_BufferLoad(self, e):
        self._add(e.buffer)
        self.generic_visit(e)

    def visit_BufferStore(self, s):
        self._add(s.buffer)
        self.generic_visit(s)

    def visit_BufferRegion(self, r: BufferRegion):
        self._add(r.buffer)
        self.generic_visit(r)

    def visit_Call(self, e: Call):
        for a in e.args:
            self._add(a)
        self.generic_visit(e)

    def visit_Allocate(self, s: Allocate):
        self.generic_visit(s)  # declaring a tile is not a use of it


class _DropAllocs(Mutator):
    def __init__(self, drop):
        self.drop = drop

    def visit_SeqStmt(self, s: SeqStmt):
        s = self.generic_visit(s)
        kept = [x for x in s.stmts if not (isinstance(x, Allocate) and x.buffer in self.drop)]
        return seq(kept) if len(kept) != len(s.stmts) else s


def _flatten(s) -> list:
    if isinstance(s, SeqStmt):
        out = []
        for x in s.stmts:
            out.extend(_flatten(x))
        return out
    return [s]


def _is_sync(s) -> bool:
    return isinstance(s, Evaluate) and isinstance(s.value, Call) and s.value.name == "syncthreads"


def _bytes(b: Buffer) -> int:
    return b.dtype.bytes * math.prod(b.static_shape())


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


class _Plan(Mutator):
    def __init__(self, machine: Machine):
        self.machine = machine

    def visit_Kernel(self, k: Kernel):
        found = _Shared()
        found.visit(k.body)
        if not found.allocs:
            return k
        roots, aliases, scratch = [], [], []
        for a in found.allocs:
            b = a.buffer
            if b.base is not None:
                aliases.append(a)  # T.view / T.reshape: placed at its root's bytes below
                continue
            if b.static_shape() is None:
                raise CompileError(f"shared buffer {b.name} needs a static shape", a.span)
            (scratch if getattr(b, "self_synced", False) else roots).append(b)

        top = _flatten(k.body)
        live: dict = {}  # root (or the scratch area's key) -> [first, last] top-level statement
        scratch_key = object()
        scratch_set = set(scratch)
        for i, s in enumerate(top):
            t = _Touched()
            t.visit(s)
            for r in t.roots:
                key = scratch_key if r in scratch_set else r
                iv = live.setdefault(key, [i, i])
                iv[1] = i
        for b in roots:
            if getattr(b, "whole_kernel_lifetime", False):  # mbarriers: never handed to another tile
                live[b] = [0, len(top) - 1]
        items = [(b, _bytes(b)) for b in roots]
        align = {b: max(ALIGN, b.base_align) for b in roots}
        if scratch:
            items.append((scratch_key, max(_bytes(b) for b in scratch)))
            align[scratch_key] = ALIGN
        offsets, needs_sync = self._place(items, live, top, align)

        smem = Buffer("smem", (1,), _dt.uint8, "shared.dyn")
        # a tile nothing touches (a kernel variant that skips it) needs no bytes of its own
        total = max((offsets[key] + _aligned(n) for key, n in items if key in live), default=0)
        mapping, views = {}, []
        for b in roots + scratch:
            view = Buffer(b.name, b.shape, b.dtype, "shared.dyn", base=smem, span=b.span)
            view.byte_offset = offsets[scratch_key if b in scratch_set else b]
            view.packed_fp4 = b.packed_fp4
            mapping[b] = (view, None)
            views.append(view)
        for a in aliases:
            b = a.buffer
            placed = mapping.get(b.root)
            if placed is None:
                raise CompileError(
                    f"{b.name} is a view of the shared buffer {b.root.name}, which a pipelined loop multi-buffers; "
                    f"views of multi-buffered tiles are not supported on the CUDA target (use {b.root.name} itself)",
                    a.span)
            at = placed[0].byte_offset
            x = b
            while x.base is not None:
                at += x.byte_offset
                x = x.base
            view = Buffer(b.name, b.shape, b.dtype, "shared.dyn", base=smem, span=b.span)
            view.byte_offset = at
            view.packed_fp4 = b.packed_fp4
            mapping[b] = (view, None)
            views.append(view)
        limit = self.machine.max_shared_bytes
        if total > limit:
            names = ", ".join(f"{b.name} ({_bytes(b)} B)" for b in roots)
            if scratch:
                # one area: cross-warp reductions and copies exchanging fragments between layouts
                names += f", workspace of reductions / fragment layout exchanges ({dict(items)[scratch_key]} B)"
            raise CompileError(
                f"the kernel needs {total} bytes of shared memory but {self.machine.name} allows {limit} "
                f"(tiles with disjoint lifetimes already share bytes): {names}; "
                "use smaller tiles or fewer pipeline stages", k.span)
        smem.shape = (max(total, 1),)
        if needs_sync:
            top = [x for i, s in enumerate(top) for x in ((_sync(), s) if i in needs_sync else (s,))]
        body = _DropAllocs(set(roots) | set(scratch) | {a.buffer for a in aliases}).visit(seq(top))
        body = rewrite_buffers(body, mapping)
        body = seq([Allocate(smem)] + [Allocate(v) for v in views] + [body])
        return k.with_fields(body=body, attrs={**k.attrs, "shared_bytes": total})

    @staticmethod
    def _place(items, live, top, align) -> tuple[dict, set]:
        """First fit by first use: each tile takes the lowest offset whose bytes no tile with an
        overlapping lifetime holds. Returns the offsets and the top-level statements that need a
        barrier before them because their tile reuses bytes of a tile that died earlier."""
        never = [len(top), -1]  # allocated but never touched: overlaps nothing in time
        span_of = {key: live.get(key, never) for key, _ in items}
        order = sorted(items, key=lambda kv: (span_of[kv[0]][0], -kv[1]))
        placed: list = []  # (key, offset, size)
        offsets: dict = {}
        needs_sync: set = set()
        syncs = [i for i, s in enumerate(top) if _is_sync(s)]
        for key, size in order:
            lo, hi = span_of[key]
            busy = sorted((o, o + _aligned(n)) for k2, o, n in placed
                          if lo <= span_of[k2][1] and span_of[k2][0] <= hi)
            at = 0
            for b0, b1 in busy:
                if at + size <= b0:
                    break
                at = -(-max(at, b1) // align[key]) * align[key]
            offsets[key] = at
            for k2, o, n in placed:
                l2, h2 = span_of[k2]
                overlap = o < at + size and at < o + n
                if overlap and 0 <= h2 < lo and not any(h2 < p < lo for p in syncs):
                    needs_sync.add(lo)
                    syncs.append(lo - 0.5)  # the barrier added before statement lo
            placed.append((key, at, size))
        return offsets, needs_sync


def _sync() -> Evaluate:
    return Evaluate(Call("syncthreads", [], _dt.handle))


def plan_shared_memory(func: PrimFunc, machine: Machine) -> PrimFunc:
    return func.with_body(_Plan(machine).visit(func.body))
