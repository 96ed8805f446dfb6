"""CUDA: store each shared tile in its physical layout (swizzled or padded): every access goes
through the layout's forward map, and the buffer takes the layout's output shape."""
from __future__ import annotations

import numpy as np

from ..errors import CompileError
from ..ir.buffer import Buffer
from ..ir.stmt import Kernel, PrimFunc, seq
from ..ir.visitor import Mutator, Visitor
from .buffer_rewrite import rewrite_buffers


def _row_major(buf: Buffer, lay) -> bool:
    """Whether the layout puts every element at its row-major offset (`T.Layout(shape, lambda
    i, j: [i, j])`, or flattened to `[i * n + j]`): the storage of no layout at all."""
    shape = tuple(buf.shape)
    if not all(isinstance(d, int) for d in shape) or tuple(lay.shape) != shape:
        return False
    n = int(np.prod(shape))
    if n > 1 << 22 or int(np.prod(lay.output_shape())) != n:
        return False
    return bool(np.array_equal(lay.flat_table().ravel(), np.arange(n)))


class _Apply(Mutator):
    def visit_Kernel(self, k: Kernel):
        layouts = k.attrs.get("layouts")
        if layouts is None or not layouts.shared:
            return k
        # a row-major layout (an annotation restating the default) changes no address: such a
        # buffer is stored plainly, so views of it (a dtype-changing T.view too) stay views
        shared = {b: lay for b, lay in layouts.shared.items() if not _row_major(b, lay)}
        if not shared:
            return k
        views = _views_of_laid_out(k.body, shared)
        mapping = {}
        for buf, lay in shared.items():
            phys = Buffer(buf.name, lay.output_shape(), buf.dtype, buf.scope, span=buf.span)
            phys.base_align = lay.base_align
            mapping[buf] = (phys, lambda idx, lay=lay: lay.map(idx))
        for view, root in views.items():
            # the view's element -> the root's element at the same row-major position -> its place
            mapping[view] = (mapping[root][0], lambda idx, v=view, r=root, lay=shared[root]:
                             lay.map(_reindex(idx, v.shape, r.shape)))
        body = rewrite_buffers(_DropAllocations(set(views)).visit(k.body), mapping)
        return k.with_fields(body=body)


def _row_strides(shape) -> list[int]:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return out[::-1]


def _reindex(idx, shape, root_shape) -> list:
    """Indices into `root_shape` of the element at `idx` of a row-major reshape `shape`."""
    flat = None
    for i, st in zip(idx, _row_strides(shape)):
        term = i * st if st != 1 else i
        flat = term if flat is None else flat + term
    out = []
    for k, (st, n) in enumerate(zip(_row_strides(root_shape), root_shape)):
        e = flat // st if st != 1 else flat
        out.append(e % n if k else e)
    return out


class _DropAllocations(Mutator):
    """A view of a laid-out tile is an index map onto its root's storage: no allocation of its own."""

    def __init__(self, views: set):
        self.views = views

    def visit_Allocate(self, s):
        return seq([]) if s.buffer in self.views else s


def _views_of_laid_out(body, laid_out: dict) -> dict:
    """{view: root} for the T.reshape views of swizzled (or padded) shared tiles: a view reads and
    writes its root's elements in row-major order, so each access goes through the root's layout.
    Views changing the dtype, views of views that are themselves laid out, and laid-out views
    are refused: their bytes would not be the root's elements."""
    found = {}

    class _Views(Visitor):
        def visit_Allocate(self, s):
            b = s.buffer
            if b.base is not None:
                chain, x = [], b
                while x is not None:
                    chain.append(x)
                    x = x.base
                hits = [c for c in chain if c in laid_out]
                if hits:
                    root = chain[-1]
                    static = all(isinstance(d, int) for c in (b, root) for d in c.shape)
                    if hits != [root] or any(c.dtype != root.dtype for c in chain) or not static:
                        raise CompileError(
                            f"{b.name} is a view of the shared buffer {root.name}, and {hits[0].name} is stored "
                            "swizzled for T.gemm (or T.annotate_layout); only a T.reshape (same dtype, static "
                            "shape) of a swizzled tile is supported on the CUDA target: give the GEMM operand its "
                            "own T.alloc_shared buffer", s.span)
                    found[b] = root
            self.generic_visit(s)

    _Views().visit(body)
    return found


def apply_shared_layouts(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Apply().visit(func.body))
