"""Layout inference for the CUDA target: decide how every fragment is spread over threads, how
every T.Parallel loop is partitioned, and how shared tiles are swizzled.

Order (as in TileLang): strict requirements first (T.gemm's mma layouts, T.annotate_layout),
then propagation (a loop that touches a fragment with a known layout is partitioned like it;
fragments touched by a partitioned loop, a copy or a reduction take the implied layout), then
free choices (remaining loops and fragments get the default vectorised partition), propagating
again after each choice. Conflicts are errors naming the buffer and both source lines."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ..errors import CompileError, InternalError
from ..ir.buffer import Buffer
from ..ir.evaluate import evaluate
from ..ir.expr import BinOp, BufferLoad, Const, Var
from ..ir.machine import Machine
from ..ir.simplify import simplify
from ..ir.span import at
from ..ir.stmt import Annotation, BufferStore, For, Kernel, PrimFunc, Stmt
from ..ir.visitor import Mutator, Visitor, uses_var
from ..layout.layout import Layout
from ..layout.tv import Mode, TVFragment, default_fragment, replicated_fragment, tv_from_fragment
from ..tileop.base import InferLevel, TileOp
from ..tileop.reducer import is_reducer
from .raw_tma_layouts import pin_raw_tma_layouts
from .thread_range import INEXACT, branch_threads, not_a_range

VECTOR_BITS = 128


@dataclass
class ParallelNest:
    """A maximal nest of T.Parallel loops, innermost body and the fragment accesses in it."""

    loops: list[For]
    body: Stmt
    reads: list = field(default_factory=list)  # (buffer, indices)
    writes: list = field(default_factory=list)
    writes_private: bool = False  # stores into a thread-private local buffer
    fp4_stores: list = field(default_factory=list)  # (buffer, indices) stored into packed fp4 memory
    thread_range: tuple | None = None  # (lo, hi) when an `if` on the thread index narrows who runs it
    # serial / unrolled loops inside the nest's body with constant bounds: Var -> (start, extent),
    # so accesses indexed by them (`acc[i, j]` in `for j in T.serial(N)`) are checked element by element
    inner: dict = field(default_factory=dict)

    @property
    def vars(self) -> list[Var]:
        return [f.var for f in self.loops]

    @property
    def extents(self) -> list[int]:
        out = []
        for f in self.loops:
            if not hasattr(f.extent, "value") or not hasattr(f.start, "value") or f.start.value != 0:
                raise CompileError("T.Parallel extents must be compile-time constants on the CUDA target", f.span)
            out.append(f.extent.value)
        return out

    @property
    def span(self):
        return self.loops[0].span


def view_layout(layout, view: Buffer, shape=None):
    """`layout` (of view's root) seen through the fragment view `view` (T.reshape / T.view, same
    dtype), or with `shape` the view's layout seen as its root's: a row-major reshape, every
    thread keeping the same registers. A CompileError where the layout does not reshape."""
    if layout is None:
        return None
    if view.dtype != view.root.dtype:
        raise CompileError(f"{view.name}: a view of fragment {view.root.name} with another dtype ({view.dtype}, not "
                           f"{view.root.dtype}) has no layout on the CUDA target; T.reshape keeps the dtype",
                           view.span)
    want = tuple(view.shape) if shape is None else tuple(shape)
    if any(not isinstance(d, int) for d in want):
        raise CompileError(f"{view.name}: a fragment view needs a static shape", view.span)
    out = layout.reshape(want) if isinstance(layout, TVFragment) else None
    if out is None:
        raise CompileError(f"fragment {view.root.name} is laid out as {layout}, which does not split into the shape "
                           f"{want} of its view {view.name}: reshape it through shared memory", view.span)
    return out


@dataclass
class LayoutMap:
    """The result: fragment layouts, loop partitions (keyed by the outermost loop) and shared
    memory layouts."""

    threads: int
    fragments: dict = field(default_factory=dict)  # Buffer -> TVFragment
    sources: dict = field(default_factory=dict)  # Buffer -> span that fixed the layout
    loops: dict = field(default_factory=dict)  # id(outer For) -> TVFragment
    shared: dict = field(default_factory=dict)  # Buffer -> Layout
    locals: dict = field(default_factory=dict)  # fragment Buffer -> its per-thread register Buffer
    loop_thread_lo: dict = field(default_factory=dict)  # id(outer For) -> first thread of a narrowed loop
    # fragment -> (lo, hi): the threads whose registers hold it, when only the operators inside an
    # `if` keeping threads lo..hi use it (e.g. `with T.ws(1):`); its layout is over those threads
    fragment_ranges: dict = field(default_factory=dict)
    # shared tiles T.tma_load / T.tma_store move: their layout is the descriptor's (raw_tma_layouts.py)
    raw_tma: set = field(default_factory=set)


def access_kind(nest: ParallelNest, indices) -> list[int] | None:
    """The loop dimension each index of an access is (F[i, j] -> [0, 1], F[j, i] -> [1, 0],
    F[i] -> [0]), when every index is a plain loop variable, each used once; None otherwise."""
    pos = []
    for e in indices:
        if not isinstance(e, Var):
            return None
        k = next((n for n, v in enumerate(nest.vars) if v is e), None)
        if k is None:
            return None
        pos.append(k)
    if len(set(pos)) != len(pos):
        return None
    return pos


def divided_access(nest: ParallelNest, indices) -> list[tuple[int, int]] | None:
    """(loop dimension, divisor) of each index of an access such as B[i, j // 2] (a dequantising
    loop reading packed values): every index a loop variable or a loop variable floor-divided
    by a constant, each variable used once, at least one divided; None otherwise."""
    out = []
    for e in indices:
        c = 1
        if isinstance(e, BinOp) and e.op == "floordiv" and isinstance(e.b, Const) and e.b.value > 1:
            e, c = e.a, e.b.value
        if not isinstance(e, Var):
            return None
        k = next((n for n, v in enumerate(nest.vars) if v is e), None)
        if k is None:
            return None
        out.append((k, c))
    if len({k for k, _ in out}) != len(out) or all(c == 1 for _, c in out):
        return None
    return out


def loop_from_divided(fl: TVFragment, access: list[tuple[int, int]], extents) -> TVFragment | None:
    """A loop layout under which B[.., j // c, ..] finds its elements: the thread holding B's
    element also runs the c iterations that read it (consecutive registers), which needs the
    loop to cover exactly c times B's extent along that dimension."""
    tm, vm, shape = list(fl.thread_modes), list(fl.value_modes), list(fl.shape)
    for d, (loop_dim, c) in enumerate(access):
        if c == 1:
            continue
        if extents[loop_dim] != c * fl.shape[d]:
            return None
        tm = [Mode(m.radix, m.dim, m.stride * c) if m.dim == d else m for m in tm]
        vm = [Mode(c, d, 1)] + [Mode(m.radix, m.dim, m.stride * c) if m.dim == d else m for m in vm]
        shape[d] *= c
    expanded = TVFragment(shape, tm, vm, name=fl.name)
    return loop_from_fragment(expanded, [k for k, _ in access], extents)


def _linear(e, nest: ParallelNest) -> dict | None:
    """{loop dimension: coefficient} of an index that is a sum of loop variables times constants."""
    if isinstance(e, Var):
        k = next((n for n, v in enumerate(nest.vars) if v is e), None)
        return None if k is None else {k: 1}
    if isinstance(e, BinOp) and e.op == "add":
        a, b = _linear(e.a, nest), _linear(e.b, nest)
        if a is None or b is None or set(a) & set(b):
            return None
        return {**a, **b}
    if isinstance(e, BinOp) and e.op == "mul":
        for x, c in ((e.a, e.b), (e.b, e.a)):
            if isinstance(c, Const) and c.value > 0:
                inner = _linear(x, nest)
                return None if inner is None else {k: v * c.value for k, v in inner.items()}
    return None


def fused_access(nest: ParallelNest, indices, shape) -> list[dict] | None:
    """For an access such as B[i * 64 + j] (a tile flattened by hand): per index of B, the loop
    dimensions it combines and their coefficients, when each index walks its extent exactly once
    as a mixed-radix number of distinct loop variables; None for anything else, or when every
    index is a single variable (the plain case)."""
    out, seen = [], set()
    ext = nest.extents
    for e, extent in zip(indices, shape):
        lin = _linear(e, nest)
        if lin is None or set(lin) & seen:
            return None
        seen |= set(lin)
        expect = 1
        for k, coef in sorted(lin.items(), key=lambda kv: kv[1]):
            if coef != expect:
                return None
            expect *= ext[k]
        if expect != extent:
            return None
        out.append(lin)
    if all(len(lin) == 1 for lin in out):
        return None
    return out


def fragment_from_fused(lay: TVFragment, access: list[dict], shape) -> TVFragment:
    """The layout of B for the access B[i * c + j] in a loop laid out as `lay`: each loop digit
    moves B's index by its stride times the variable's coefficient."""
    to_b = {k: (d, coef) for d, lin in enumerate(access) for k, coef in lin.items()}

    def conv(m: Mode, thread: bool):
        if m.dim is None:
            return m
        if m.dim not in to_b:
            return Mode(m.radix, None, 0) if thread else None
        d, coef = to_b[m.dim]
        return Mode(m.radix, d, m.stride * coef)

    tm = [conv(m, True) for m in lay.thread_modes]
    vm = [x for x in (conv(m, False) for m in lay.value_modes) if x is not None]
    return TVFragment(shape, tm, vm, name=lay.name)


def fragment_from_divided(lay: TVFragment, access: list[tuple[int, int]], shape) -> TVFragment | None:
    """The layout B must have for the access B[.., j // c, ..] in a loop laid out as `lay`: the
    loop's digits below c pick among the c iterations reading one element (value digits merge
    into one register, thread digits make the element replicated), the others move B's index
    c times slower. None when a digit straddles c or B's extent is not the loop's / c."""
    to_b = {loop_dim: (d, c) for d, (loop_dim, c) in enumerate(access)}
    for d, (loop_dim, c) in enumerate(access):
        if lay.shape[loop_dim] != c * shape[d]:
            return None

    def conv(m: Mode, thread: bool):
        if m.dim is None:
            return m
        if m.dim not in to_b:
            return Mode(m.radix, None, 0) if thread else None
        d, c = to_b[m.dim]
        if m.stride * m.radix <= c:
            if c % (m.stride * m.radix):
                raise _Straddle
            return Mode(m.radix, None, 0) if thread else None
        if m.stride % c:
            raise _Straddle
        return Mode(m.radix, d, m.stride // c)

    try:
        tm = [conv(m, True) for m in lay.thread_modes]
        vm = [x for x in (conv(m, False) for m in lay.value_modes) if x is not None]
        return TVFragment(shape, tm, vm, name=lay.name)
    except (_Straddle, CompileError):
        return None


class _Straddle(Exception):
    pass


def fragment_from_loop(lay: TVFragment, kind: list[int], shape) -> TVFragment:
    """The layout a fragment accessed as F[loop vars in `kind`] must have in a loop laid out as `lay`."""
    if kind == list(range(len(lay.shape))):
        return lay
    return lay.remap(shape, {loop_dim: d for d, loop_dim in enumerate(kind)})


def loop_from_fragment(fl: TVFragment, kind: list[int], extents) -> TVFragment:
    """A loop layout under which the access F[loop vars in `kind`] finds its elements: F's own
    distribution, each thread walking every loop dimension F does not index."""
    if kind == list(range(len(extents))):
        return fl
    # a loop shorter than the fragment along a dimension takes the fragment's distribution of
    # it whole; lower_parallel_cuda skips the registers past the loop's extent
    shape = list(extents)
    for d, loop_dim in enumerate(kind):
        shape[loop_dim] = max(shape[loop_dim], fl.shape[d])
    missing = [(d, e) for d, e in enumerate(extents) if d not in kind]
    return fl.remap(shape, {d: loop_dim for d, loop_dim in enumerate(kind)}, extra=missing)


class _Collect(Visitor):
    """Tile operators and parallel nests in program order."""

    def __init__(self, kernel: Kernel | None = None):
        self.kernel = kernel
        self.threads_now = (0, kernel.threads[0] - 1) if kernel is not None else None  # who runs this code
        self.items: list = []
        self.annotations: list[Annotation] = []
        self.serial_fragments: dict = {}  # fragment touched outside T.Parallel -> span
        self.allocated: dict = {}  # fragment -> span of its allocation
        self.viewed: set = set()  # buffers other buffers alias (T.view / T.reshape): stored plainly
        self.op_ranges: dict = {}  # id(tile operator) -> (lo, hi) of the threads running it, when narrowed
        self.fragment_uses: dict = {}  # fragment -> [(thread range or None for the block, span)]

    def visit_Allocate(self, s):
        if s.buffer.is_fragment:
            self.allocated.setdefault(s.buffer, s.span)
        if s.buffer.base is not None:
            self.viewed.add(s.buffer.root)
        self.generic_visit(s)

    def visit_BufferLoad(self, e: BufferLoad):
        if e.buffer.is_fragment:
            self.serial_fragments.setdefault(e.buffer, e.span)
        self.generic_visit(e)

    def visit_BufferStore(self, s: BufferStore):
        if s.buffer.is_fragment:
            self.serial_fragments.setdefault(s.buffer, s.span)
        self.generic_visit(s)

    def visit_For(self, f: For):
        if f.kind == "parallel":
            loops = [f]
            body = f.body
            while isinstance(body, For) and body.kind == "parallel":
                loops.append(body)
                body = body.body
            nest = ParallelNest(loops, body)
            _Accesses(nest).visit(body)
            self._check_threads("a T.Parallel loop", f.span)
            if self.kernel is not None and self.threads_now != (0, self.kernel.threads[0] - 1):
                nest.thread_range = self.threads_now
            for buf, _ in nest.reads + nest.writes:
                self._use(buf, nest.thread_range, f.span)
            self.items.append(nest)
            return
        self.generic_visit(f)

    def _use(self, buf, rng, span) -> None:
        self.fragment_uses.setdefault(buf.root if buf.base is not None else buf, []).append((rng, span))

    def _check_threads(self, what: str, span) -> None:
        if self.threads_now == INEXACT:
            raise not_a_range(what, span)

    def visit_IfThenElse(self, s):
        self.visit(s.cond)
        if self.kernel is None or self.threads_now == INEXACT:
            self.visit(s.then_body)
            self.visit(s.else_body)
            return
        saved = self.threads_now
        for body, truth in ((s.then_body, True), (s.else_body, False)):
            if body is None:
                continue
            self.threads_now = branch_threads(s.cond, truth, self.kernel, saved)
            self.visit(body)
        self.threads_now = saved

    def visit_Annotation(self, a: Annotation):
        self.annotations.append(a)

    def generic_visit(self, node):
        if isinstance(node, TileOp):
            self._check_threads(f"T.{type(node).__name__.lower()}", node.span)
            rng = None
            if self.kernel is not None and self.threads_now != (0, self.kernel.threads[0] - 1):
                rng = self.op_ranges[id(node)] = self.threads_now
            for b in node.buffers():
                if b.is_fragment:
                    self._use(b, rng, node.span)
            self.items.append(node)
            return
        return super().generic_visit(node)


class _Accesses(Visitor):
    def __init__(self, nest: ParallelNest):
        self.nest = nest

    def visit_BufferLoad(self, e: BufferLoad):
        if e.buffer.is_fragment:
            self.nest.reads.append((e.buffer, e.indices))
        self.generic_visit(e)

    def visit_BufferStore(self, s: BufferStore):
        if s.buffer.is_fragment:
            self.nest.writes.append((s.buffer, s.indices))
        elif s.buffer.is_local:
            self.nest.writes_private = True
        elif s.buffer.dtype.kind == "float4":
            self.nest.fp4_stores.append((s.buffer, s.indices))
        self.generic_visit(s)

    def visit_For(self, f: For):
        if f.kind == "parallel":
            raise CompileError("a T.Parallel loop nested inside another loop's body must directly follow it", f.span)
        if isinstance(f.start, Const) and isinstance(f.extent, Const):
            self.nest.inner[f.var] = (f.start.value, f.extent.value)
        self.generic_visit(f)


class LayoutInference:
    """State shared with the tile operators' `infer_layout(li, level)` hooks."""

    def __init__(self, kernel: Kernel, machine: Machine | None = None, pass_configs: dict | None = None):
        self.kernel = kernel
        self.machine = machine  # which instructions operators may plan layouts for
        self.pass_configs = dict(pass_configs or {})
        self.viewed: set = set()  # buffers that views alias: no layout may scramble them
        threads = 1
        for t in kernel.threads:
            threads *= t
        self.map = LayoutMap(threads)
        self.changed = False
        # (lo, hi) of the threads running the operator or loop being inferred, when an `if` on the
        # thread index narrows them: layouts it decides are spread over those threads
        self.current_range: tuple[int, int] | None = None
        self.annotated: set = set()  # fragments whose layout a T.annotate_layout fixed
        # the kernel's tile operators with the threads running each (None: the whole block), and
        # for each fragment the component of fragments whose layouts constrain each other
        # (linked_fragments): operators choosing among layouts consult the others in it
        self.operators: list = []
        self.operator_threads: dict = {}  # id(operator) -> thread count, when narrowed
        self.component: dict = {}  # fragment -> component id

    @property
    def threads(self) -> int:
        if self.current_range is not None:
            return self.current_range[1] - self.current_range[0] + 1
        return self.map.threads

    @property
    def first_thread(self) -> int:
        """The first thread of those running the operator being inferred."""
        return self.current_range[0] if self.current_range is not None else 0

    def threads_of(self, op) -> int:
        """The threads running tile operator `op` (those an `if` on the thread index keeps)."""
        return self.operator_threads.get(id(op), self.map.threads)

    def linked(self, a: Buffer, b: Buffer) -> bool:
        """Whether fragments a and b are used together (one T.Parallel loop or operator, directly
        or through other fragments), so that their layouts must agree on what they share: the
        rows of two accumulators a row vector scales, say."""
        ka, kb = _root(a), _root(b)
        return ka is kb or (ka in self.component and self.component.get(ka) == self.component.get(kb))

    def layout_of(self, buf: Buffer):
        if buf.base is not None:  # a T.reshape / T.view of a fragment: its root's layout, reshaped
            return view_layout(self.map.fragments.get(buf.root), buf)
        return self.map.fragments.get(buf)

    def fixed_by(self, buf: Buffer) -> str:
        what = "the T.annotate_layout" if buf in self.annotated else "the statement"
        return f"{what} at {self.map.sources.get(buf)}"

    def set_fragment(self, buf: Buffer, layout: TVFragment, span) -> None:
        if buf.base is not None:  # a view's layout is its root's (the same registers)
            root = buf.root
            layout = view_layout(layout, buf, root.shape)
            buf = root
        old = self.map.fragments.get(buf)
        if old is not None:
            if old.same_as(layout):
                return
            if buf in self.annotated and _same_threads(old, layout):
                # the annotation fixed which thread holds each element; the register order
                # inside a thread is the compiler's, so the operator's order is taken
                self.map.fragments[buf] = layout
                self.changed = True
                return
            raise CompileError(
                f"layout conflict for fragment {buf.name}: it is laid out as {old} by {self.fixed_by(buf)}, but "
                f"this statement needs {layout}; copy it through a shared buffer (T.copy into T.alloc_shared, then "
                "into a new fragment) to change layouts",
                span,
                extra_spans=(self.map.sources.get(buf),),
            )
        if tuple(layout.shape) != tuple(buf.shape):
            raise InternalError(f"a layout of shape {layout.shape} for {buf.name} of shape {buf.shape}", span)
        home = self.map.fragment_ranges.get(buf)
        want = home[1] - home[0] + 1 if home is not None else self.map.threads
        if getattr(layout, "num_threads", want) != want:
            raise InternalError(f"a layout over {layout.num_threads} threads for fragment {buf.name}, which lives in "
                                f"{want} threads", span)
        self.map.fragments[buf] = layout
        self.map.sources[buf] = span
        self.changed = True

    def set_shared(self, buf: Buffer, layout: Layout) -> None:
        if buf not in self.map.shared:
            self.map.shared[buf] = layout
            self.changed = True

    def vector_for(self, buffers) -> int:
        """Elements per thread vector for a default layout over `buffers`: 16 bytes of the widest
        element among the memory (global, shared) buffers, which alone need the vector accesses;
        registers impose no width, so an fp32 fragment filled from fp16 global memory takes 8
        elements (a 16-byte load), not 4 (as TileLang's loop vectoriser decides)."""
        memory = [b for b in buffers if b.is_global or b.is_shared]
        bits = max([b.dtype.bits for b in memory or buffers] or [32])
        return max(1, VECTOR_BITS // bits)

    # ------------------------------------------------------------------ parallel nests
    def nest_layout(self, nest: ParallelNest):
        return self.map.loops.get(id(nest.loops[0]))

    def infer_nest(self, nest: ParallelNest, level: InferLevel) -> None:
        ext = nest.extents
        lay = self.nest_layout(nest)
        if lay is None and nest.writes_private:
            # each thread has its own copy of a local buffer: a loop filling one must run every
            # iteration in every thread, or later code would read elements other threads wrote
            lay = replicated_fragment(ext, self.threads)
            self.map.loops[id(nest.loops[0])] = lay
            self.changed = True
        if level == InferLevel.STRICT:
            return
        accesses = nest.writes + nest.reads
        if lay is None:
            # a fragment indexed by all loop variables decides (in order, else permuted), then
            # one indexed by some of them (the loop walks the rest in every thread)
            # a reducer's replicas hold partial values: it follows the loop, never leads it
            known = [(buf, access_kind(nest, idx)) for buf, idx in accesses if not is_reducer(buf)]
            known = [(b, k) for b, k in known if k is not None and self.layout_of(b) is not None]
            full = [x for x in known if sorted(x[1]) == list(range(len(ext)))]
            in_order = [x for x in full if x[1] == list(range(len(ext)))]
            pick = (in_order or full or known or [None])[0]
            if pick is not None:
                lay = loop_from_fragment(self.layout_of(pick[0]), pick[1], ext)
            else:
                for buf, idx in accesses:
                    div = divided_access(nest, idx)
                    if div is not None and self.layout_of(buf) is not None and not is_reducer(buf):
                        lay = loop_from_divided(self.layout_of(buf), div, ext)
                        if lay is not None:
                            break
            if lay is None and level == InferLevel.FREE:
                part = self._part_of_fragment(nest, accesses)
                if part is not None:
                    # the loop covers a part of a fragment not laid out yet: the fragment gets the
                    # default layout of its whole shape, and the loop follows it
                    buf, kind = part
                    self.set_fragment(buf, default_fragment(buf.shape, self.threads, self.vector_for([buf])),
                                      nest.span)
                    lay = loop_from_fragment(self.layout_of(buf), kind, ext)
                else:
                    lay = default_fragment(ext, self.threads, self.vector_for([b for b, _ in accesses]),
                                           min_vector=_fp4_pairs(nest, ext))
            if lay is not None:
                self.map.loops[id(nest.loops[0])] = lay
                self.changed = True
        if lay is None:
            return
        for buf, idx in accesses:
            if self.layout_of(buf) is not None:
                continue
            kind = access_kind(nest, idx)
            if kind is not None:
                if any(lay.shape[k] < d for k, d in zip(kind, buf.shape)):
                    continue  # the loop covers a part of the fragment: a whole-tile use lays it out
                self.set_fragment(buf, fragment_from_loop(lay, kind, buf.shape), nest.span)
                continue
            div = divided_access(nest, idx)
            if div is not None:
                fl = fragment_from_divided(lay, div, buf.shape)
                if fl is not None:
                    self.set_fragment(buf, fl, nest.span)
                continue
            fused = fused_access(nest, idx, buf.shape)
            if fused is not None:
                self.set_fragment(buf, fragment_from_fused(lay, fused, buf.shape), nest.span)

    def _part_of_fragment(self, nest: ParallelNest, accesses):
        """(fragment, access kind) of a fragment without a layout that the nest indexes by plain
        loop variables over less than its extent, or None."""
        ext = nest.extents
        for buf, idx in accesses:
            if not buf.is_fragment or is_reducer(buf) or self.layout_of(buf) is not None:
                continue
            kind = access_kind(nest, idx)
            if kind is not None and any(ext[k] < d for k, d in zip(kind, buf.shape)):
                return buf, kind
        return None

    def check_nest(self, nest: ParallelNest) -> None:
        """Every fragment element a thread touches in the loop must be one it holds; a loop that
        writes a fragment must write every replica."""
        lay = self.nest_layout(nest)
        T = self.threads
        tt, vv = np.meshgrid(np.arange(T), np.arange(lay.num_values), indexing="ij")
        t, v = Var("t"), Var("v")

        coords = [np.broadcast_to(evaluate(e, {t: tt, v: vv}), tt.shape) for e in lay.inverse(t, v)]
        env = dict(zip(nest.vars, coords))
        for accesses, is_write in ((nest.reads, False), (nest.writes, True)):
            for buf, idx in accesses:
                fl = self.layout_of(buf)
                if fl is None:
                    continue
                _refuse_loaded_index(buf, fl, idx, is_write, nest)
                used = {id(x) for e in idx for x in walk_exprs(e) if isinstance(x, Var)}
                inner = [(var, rng) for var, rng in nest.inner.items() if id(var) in used]
                combos = 1
                for _, (_, n) in inner:
                    combos *= max(n, 0)
                if combos > _MAX_INNER_COMBOS:
                    continue  # too many to enumerate; such accesses are left unchecked, as before
                for values in itertools.product(*(range(a, a + n) for _, (a, n) in inner)):
                    env_k = {**env, **{var: val for (var, _), val in zip(inner, values)}}
                    self._check_access(nest, lay, buf, fl, idx, is_write, env_k, tt, [var for var, _ in inner])

    def _check_access(self, nest, lay, buf, fl, idx, is_write, env, tt, inner_vars) -> None:
        """One access of the nest under `env` (its loop variables over (thread, value) and any
        inner serial loop variables at one value each): every element must be the thread's."""
        try:
            elem = [np.broadcast_to(evaluate(e, env), tt.shape) for e in idx]
        except Exception:  # noqa: BLE001 - indices the table cannot evaluate are checked at run time
            return
        held = _held_threads(fl)  # [elements, replicate]
        shape = fl.shape
        inside = np.ones(tt.shape, dtype=bool)
        for c, d in zip(elem, shape):
            inside &= (c >= 0) & (c < d)
        flat = np.zeros(tt.shape, dtype=np.int64)
        for c, d in zip(elem, shape):
            flat = flat * d + np.clip(c, 0, d - 1)
        ok = (held[flat] == tt[..., None]).any(axis=-1) | ~inside
        if not ok.all():
            bad_t, bad_v = np.argwhere(~ok)[0]
            where = tuple(int(c[bad_t, bad_v]) for c in elem)
            hint = ""
            if {fl.name, lay.name} == {"mfma_a", "mfma_c"}:
                hint = ("; on AMD GPUs an MFMA's register A operand holds a row per lane and its "
                        "accumulator a column, so compute in the accumulator's layout and T.copy the "
                        "result into the operand fragment (the copy exchanges them), and keep separate "
                        "row vectors for the two")
            if inner_vars:
                # TileLang's words (its issue 2393): a serial loop over a distributed fragment's
                # dimension reads elements held by other threads; the reduction operators exchange them
                raise CompileError(
                    f"fragment {buf.name} is a thread-distributed fragment: the serial loop over "
                    f"{', '.join(v.name for v in inner_vars)} inside the T.Parallel loop makes thread {bad_t} "
                    f"{'write' if is_write else 'read'} {buf.name}{list(where)}, which that thread does not hold "
                    f"(its layout was fixed by {self.fixed_by(buf)}); reduce over a dimension with "
                    f"T.reduce_sum / T.reduce_max / ..., or copy the fragment through shared memory first",
                    nest.span,
                    extra_spans=(self.map.sources.get(buf),),
                )
            raise CompileError(
                f"layout conflict for fragment {buf.name}: the T.Parallel loop makes thread {bad_t} "
                f"{'write' if is_write else 'read'} {buf.name}{list(where)}, which that thread does not "
                f"hold (its layout was fixed by {self.fixed_by(buf)}); copy the fragment through "
                f"shared memory (T.copy to a T.alloc_shared buffer) to use it with another layout{hint}",
                nest.span,
                extra_spans=(self.map.sources.get(buf),),
            )
        if is_write and fl.replicate > 1 and lay.replicate < fl.replicate and not is_reducer(buf):
            raise CompileError(
                f"the T.Parallel loop writes fragment {buf.name}, which is replicated over "
                f"{fl.replicate} threads, but only {lay.replicate} of them run the loop",
                nest.span,
            )


_MAX_INNER_COMBOS = 4096  # values of a nest's inner serial loop variables checked per access


def _refuse_loaded_index(buf: Buffer, fl: TVFragment, idx, is_write: bool, nest) -> None:
    """A fragment spread over threads indexed by a value read from memory (`F[I[i]]`): which
    thread holds the element is known only at run time, and a thread reaches only its own
    registers, so the access would silently use the element the thread happens to hold."""
    if fl.replicate >= fl.num_threads:
        return  # every thread holds the whole fragment
    for e in idx:
        loads = [x for x in walk_exprs(e) if isinstance(x, BufferLoad)]
        if loads:
            raise CompileError(
                f"fragment {buf.name} is {'written' if is_write else 'read'} at an index read from memory "
                f"({loads[0].buffer.name}[...]) in a T.Parallel loop: its elements live in the registers of "
                "different threads and a thread can reach only its own, so the element must follow from the "
                "loop indices; gather or scatter through shared memory (T.alloc_shared) instead",
                nest.span)


def walk_exprs(e):
    """`e` and every expression inside it."""
    yield e
    for c in e.children():
        yield from walk_exprs(c)


def _same_threads(a: TVFragment, b: TVFragment) -> bool:
    """Same thread modes and the same value digits, in any register order."""
    def digits(modes):
        out = set()
        for m in modes:
            stride, r = m.stride, m.radix
            p = 2
            while r > 1:
                while r % p == 0:
                    out.add((m.dim, stride, p))
                    stride *= p
                    r //= p
                p += 1
        return out

    return (tuple(a.shape) == tuple(b.shape) and a.thread_modes == b.thread_modes
            and digits(a.value_modes) == digits(b.value_modes))


def _held_threads(fl: TVFragment) -> np.ndarray:
    """[element (row-major), replica] -> thread holding it."""
    tab = fl.thread_table()  # (replicate, *shape)
    return tab.reshape(fl.replicate, -1).T


def infer_kernel_layouts(kernel: Kernel, machine: Machine | None = None, pass_configs: dict | None = None) -> LayoutMap:
    li = LayoutInference(kernel, machine, pass_configs)
    c = _Collect(kernel)
    c.visit(kernel.body)
    li.viewed = c.viewed
    li.map.fragment_ranges = _fragment_ranges(c.fragment_uses, li.map.threads)
    for a in c.annotations:
        if a.kind == "layout":
            for buf, lay in a.payload.items():
                if buf.is_fragment:
                    home = li.map.fragment_ranges.get(buf)
                    n = home[1] - home[0] + 1 if home is not None else li.map.threads
                    with at(a.span):
                        tv = tv_from_fragment(lay, n)
                    li.set_fragment(buf, tv, a.span)
                    li.annotated.add(buf)
                else:
                    li.set_shared(buf, lay)
    pin_raw_tma_layouts(kernel, li)  # T.tma_load / T.tma_store tiles hold what the copy engine writes
    for buf, span in c.serial_fragments.items():
        # touched element by element outside T.Parallel: every thread keeps the whole tile
        if buf in li.annotated and li.map.fragments[buf].replicate < li.map.fragments[buf].num_threads:
            # TileLang would read register forward_index(i) of whichever thread runs the code,
            # an element other than F[i] in most threads; tilewise keeps F[i] meaning F[i]
            raise CompileError(
                f"fragment {buf.name} is used element by element outside T.Parallel here, which needs every thread "
                f"to hold all of it, but {li.fixed_by(buf)} spreads it over threads; read it inside a T.Parallel loop, "
                "or annotate a fully replicated layout (make_fully_replicated_layout_fragment)",
                span, extra_spans=(li.map.sources.get(buf),))
        home = li.map.fragment_ranges.get(buf)
        n = home[1] - home[0] + 1 if home is not None else li.map.threads
        li.set_fragment(buf, replicated_fragment(buf.shape, n), span)
    items = c.items
    li.operators = [it for it in items if not isinstance(it, ParallelNest)]
    li.operator_threads = {k: hi - lo + 1 for k, (lo, hi) in c.op_ranges.items()}
    li.component = _linked_fragments(items)

    def item_range(it):
        return it.thread_range if isinstance(it, ParallelNest) else c.op_ranges.get(id(it))

    def sweep(level: InferLevel, stop_at_first: bool = False) -> bool:
        li.changed = False
        for it in items:
            li.current_range = item_range(it)
            try:
                with at(getattr(it, "span", None)):  # an error names the operator's line
                    if isinstance(it, ParallelNest):
                        li.infer_nest(it, level)
                    else:
                        it.infer_layout(li, level)
            finally:
                li.current_range = None
            if stop_at_first and li.changed:
                return True
        return li.changed

    sweep(InferLevel.REQUIRED)
    while sweep(InferLevel.STRICT):
        pass
    while sweep(InferLevel.COMMON):
        pass
    # free choices one at a time, each followed by full propagation
    while sweep(InferLevel.FREE, stop_at_first=True):
        while sweep(InferLevel.COMMON):
            pass
    # last resort for fragments only filled/cleared so far: a fill carries no information about
    # how the fragment is used, so it decides only when nothing else did
    while sweep(InferLevel.FALLBACK, stop_at_first=True):
        while sweep(InferLevel.COMMON):
            pass
    for buf, span in c.allocated.items():
        # allocated but never used (e.g. a kernel variant that skips it): any layout will do
        if li.layout_of(buf) is None:
            li.set_fragment(buf, default_fragment(buf.shape, li.threads, 1), span)
    for it in items:
        if isinstance(it, ParallelNest):
            if li.nest_layout(it) is None:
                raise InternalError("a T.Parallel loop got no layout", it.span)
            if it.thread_range is not None:
                li.map.loop_thread_lo[id(it.loops[0])] = it.thread_range[0]
            li.current_range = it.thread_range
            try:
                li.check_nest(it)
            finally:
                li.current_range = None
    return li.map


def _root(buf: Buffer) -> Buffer:
    return buf.root if buf.base is not None else buf


def _linked_fragments(items) -> dict:
    """fragment -> component id: fragments one T.Parallel loop or one tile operator touches are in
    one component (union-find over the kernel's items)."""
    parent: dict = {}

    def find(b):
        while parent[b] is not b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        return b

    for it in items:
        if isinstance(it, ParallelNest):
            bufs = [b for b, _ in it.reads + it.writes]
        else:
            bufs = [b for b in it.buffers() if b.is_fragment]
        roots = [_root(b) for b in bufs]
        for r in roots:
            parent.setdefault(r, r)
        for r in roots[1:]:
            a, b = find(roots[0]), find(r)
            if a is not b:
                parent[b] = a
    ids: dict = {}
    return {b: ids.setdefault(id(find(b)), len(ids)) for b in parent}


def _fragment_ranges(uses: dict, block_threads: int) -> dict:
    """The threads holding each fragment: those of the one `if` on the thread index every
    operator and T.Parallel loop using it is in (whole warps), or the block."""
    out = {}
    for buf, entries in uses.items():
        first_rng, first_span = entries[0]
        for rng, span in entries[1:]:
            if rng != first_rng:
                def say(r):
                    return "all threads of the block" if r is None else f"threads {r[0]}-{r[1]}"
                raise CompileError(
                    f"fragment {buf.name} is used by {say(rng)} here but by {say(first_rng)} at {first_span}; a "
                    "fragment lives in the registers of the threads that use it, so use it inside one `with T.ws(...)` "
                    "(or one `if` on the thread index) only, or copy it through shared memory",
                    span, extra_spans=(first_span,))
        if first_rng is None:
            continue
        lo, hi = first_rng
        if lo % 32 or (hi + 1) % 32:
            raise CompileError(
                f"fragment {buf.name} is used inside an `if` that keeps threads {lo}-{hi}, which are not whole warps; "
                "its operators work warp by warp, so keep whole warps (e.g. `with T.ws(i):`, `tx < 128`)",
                first_span)
        if (lo, hi) != (0, block_threads - 1):
            out[buf] = (lo, hi)
    return out


class _Attach(Mutator):
    """Returns a new tree whose kernels carry their LayoutMap (attrs["layouts"]) and whose
    outermost T.Parallel loops carry their partition (annotations["layout"])."""

    def __init__(self, machine: Machine | None = None, pass_configs: dict | None = None):
        self.map: LayoutMap | None = None
        self.machine = machine
        self.pass_configs = pass_configs

    def visit_Kernel(self, k: Kernel):
        self.map = infer_kernel_layouts(k, self.machine, self.pass_configs)
        body = self.visit(k.body)
        return k.with_fields(body=body, attrs={**k.attrs, "layouts": self.map})

    def visit_For(self, f: For):
        if f.kind == "parallel" and self.map is not None:
            lay = self.map.loops[id(f)]
            ann = {**f.annotations, "layout": lay}
            if id(f) in self.map.loop_thread_lo:
                ann["thread_lo"] = self.map.loop_thread_lo[id(f)]
            out = For(f.var, f.start, f.extent, f.kind, f.body, ann, span=f.span)
            return out
        return self.generic_visit(f)


def infer_layouts(func: PrimFunc, machine: Machine | None = None, pass_configs: dict | None = None) -> PrimFunc:
    return func.with_body(_Attach(machine, pass_configs).visit(func.body))


def _fp4_pairs(nest: ParallelNest, ext) -> int:
    """2 when the nest stores into fp4 memory (global or shared) along its innermost variable and
    that extent is even: fp4 is stored two values per byte (transform/pack_fp4.py), so a thread
    owning whole pairs writes whole bytes, where two threads writing the two values of one byte
    would race. 1 otherwise."""
    if not ext or ext[-1] % 2:
        return 1
    if nest.loops[0].annotations.get("min_vector"):  # set by dynamic_parallel for its chunks
        return int(nest.loops[0].annotations["min_vector"])
    inner = nest.loops[-1].var
    for buf, idx in nest.fp4_stores:
        if (buf.is_global or buf.is_shared) and idx and \
                uses_var(idx[-1], inner) and not uses_var(simplify(idx[-1] - inner), inner):
            return 2  # the innermost variable walks the buffer's last dimension, one by one
    return 1
