"""Which global tensors a kernel writes: the parameters a call must be able to modify (a
read-only numpy array or a tensor that requires grad is refused before the kernel runs, rather
than written behind the caller's back or faulting). Read from the tile-level program, so that
every target agrees: stores, the regions tile operators declare they write (TileOp.writes), and
the destination of element-wise atomics. Also which ones the CUDA thread IR moves in vectors."""
from __future__ import annotations

from ..ir.buffer import Buffer
from ..ir.expr import BufferLoad, Call
from ..ir.stmt import BufferStore, PrimFunc
from ..ir.visitor import walk
from ..tileop.base import TileOp

# atomics that only read their destination
_READ_ONLY_ATOMICS = ("atomic_load",)


def written_globals(func: PrimFunc) -> set[Buffer]:
    """The root global buffers func may write."""
    out: set[Buffer] = set()

    def add(b: Buffer):
        root = b.root
        if root.is_global:
            out.add(root)

    def see(n):
        if isinstance(n, BufferStore):
            add(n.buffer)
        elif isinstance(n, TileOp):
            for r in n.writes():
                add(r.buffer)
        elif isinstance(n, Call) and n.name.startswith("atomic") and n.name not in _READ_ONLY_ATOMICS and n.args:
            dst = n.args[0]
            if isinstance(dst, Call) and dst.name == "address_of" and dst.args:
                dst = dst.args[0]
            if isinstance(dst, BufferLoad):
                add(dst.buffer)

    walk(func.body, see)
    return out


def accessed_globals(func: PrimFunc) -> set[Buffer]:
    """The root global buffers func reads or writes at all. A tensor parameter outside this set
    may be passed as None (TileLang passes a null pointer: an optional bias the kernel was
    specialised without)."""
    out: set[Buffer] = set()

    def add(b):
        root = getattr(b, "root", None)
        if isinstance(root, Buffer) and root.is_global:
            out.add(root)

    def see(n):
        if isinstance(n, (BufferStore, BufferLoad)):
            add(n.buffer)
        elif isinstance(n, TileOp):
            for r in (*n.reads(), *n.writes()):
                add(r.buffer)

    walk(func.body, see)
    return out


_VECTOR_CALLS = ("copy_vec", "store_vec", "cp_async")


def vector_accessed_globals(func: PrimFunc) -> set[Buffer]:
    """The root global buffers the thread IR moves in vectors (copy_vec, store_vec, cp.async):
    their data must start aligned to the vector."""
    out: set[Buffer] = set()

    def see(n):
        if isinstance(n, Call) and n.name in _VECTOR_CALLS:
            for a in n.args[:2]:
                if isinstance(a, Call) and a.name == "address_of" and a.args and isinstance(a.args[0], BufferLoad):
                    root = a.args[0].buffer.root
                    if root.is_global:
                        out.add(root)

    walk(func.body, see)
    return out
