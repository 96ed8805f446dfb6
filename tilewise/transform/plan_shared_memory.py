"""CUDA: place every shared tile of a kernel in one dynamic shared allocation `smem` (uint8),
each tile becoming a typed view at a 128-byte aligned offset (the alignment swizzles assume);
T.view / T.reshape aliases of a tile become views at the same bytes."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer
from ..ir.stmt import Allocate, Kernel, PrimFunc, SeqStmt, seq
from ..ir.visitor import Mutator, Visitor
from .buffer_rewrite import rewrite_buffers

ALIGN = 128
MAX_SHARED_BYTES = {"sm_80": 163 * 1024, "sm_86": 99 * 1024, "sm_89": 99 * 1024, "sm_90": 227 * 1024,
                    "sm_90a": 227 * 1024}


class _Shared(Visitor):
    def __init__(self):
        self.allocs: list[Allocate] = []

    def visit_Allocate(self, s: Allocate):
        if s.buffer.scope in ("shared", "shared.dyn"):
            self.allocs.append(s)


class _DropAllocs(Mutator):
    def __init__(self, drop):
        self.drop = drop

    def visit_SeqStmt(self, s: SeqStmt):
        s = self.generic_visit(s)
        kept = [x for x in s.stmts if not (isinstance(x, Allocate) and x.buffer in self.drop)]
        return seq(kept) if len(kept) != len(s.stmts) else s


class _Plan(Mutator):
    def __init__(self, arch: str):
        self.arch = arch

    def visit_Kernel(self, k: Kernel):
        found = _Shared()
        found.visit(k.body)
        if not found.allocs:
            return k
        roots, aliases = [], []
        for a in found.allocs:
            b = a.buffer
            if b.base is not None:
                aliases.append(a)  # T.view / T.reshape: placed at its root's bytes below
                continue
            if b.static_shape() is None:
                raise CompileError(f"shared buffer {b.name} needs a static shape", a.span)
            roots.append(b)
        smem = Buffer("smem", (1,), _dt.uint8, "shared.dyn")
        offset = 0
        mapping = {}
        views = []
        for b in roots:
            size = b.dtype.bytes * _prod(b.static_shape())
            view = Buffer(b.name, b.shape, b.dtype, "shared.dyn", base=smem, span=b.span)
            view.byte_offset = offset
            mapping[b] = (view, None)
            views.append(view)
            offset += -(-size // ALIGN) * ALIGN
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
            mapping[b] = (view, None)
            views.append(view)
        limit = MAX_SHARED_BYTES.get(self.arch, 99 * 1024)
        if offset > limit:
            names = ", ".join(f"{b.name} ({b.dtype.bytes * _prod(b.static_shape())} B)" for b in roots)
            raise CompileError(
                f"the kernel needs {offset} bytes of shared memory but {self.arch} allows {limit}: {names}; "
                "use smaller tiles or fewer pipeline stages", k.span)
        smem.shape = (max(offset, 1),)
        body = _DropAllocs(set(roots) | {a.buffer for a in aliases}).visit(k.body)
        body = rewrite_buffers(body, mapping)
        body = seq([Allocate(smem)] + [Allocate(v) for v in views] + [body])
        out = Kernel(k.block_vars, k.grid, k.threads, k.thread_vars, body, {**k.attrs, "shared_bytes": offset})
        out.span = k.span
        return out


def _prod(xs) -> int:
    n = 1
    for x in xs:
        n *= x
    return n


def plan_shared_memory(func: PrimFunc, arch: str = "sm_80") -> PrimFunc:
    return func.with_body(_Plan(arch).visit(func.body))
