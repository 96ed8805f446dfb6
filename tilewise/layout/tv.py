"""Thread/value fragments: a register tile described by how the digits of the thread index and
of the register (value) index map to logical coordinates.

A mode is (radix, dim, stride): the mode's digit d contributes d * stride to logical dimension
`dim` (dim None: the mode does not move the element, i.e. it replicates it). The thread index is
the mixed-radix number of the thread modes (first mode fastest), the register index likewise of
the value modes. Because every mode moves one dimension by a fixed stride, the inverse
(thread, register) -> element is a closed form, the forward map is a digit extraction, and
dropping a dimension (the result of a reduction, a row vector) just turns its thread modes
into replication and removes its value modes."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.expr import Const, Expr, Var, as_expr
from ..ir.simplify import simplify
from .fragment import Fragment


@dataclass(frozen=True)
class Mode:
    radix: int
    dim: int | None  # logical dimension moved by this digit, None for replication
    stride: int = 0


def _canonical(modes) -> tuple[Mode, ...]:
    """Drop radix-1 modes and merge consecutive modes that continue each other (same dimension,
    stride picking up where the previous mode ends): equal layouts then have equal mode lists."""
    out: list[Mode] = []
    for m in modes:
        if m.radix == 1:
            continue
        if out:
            p = out[-1]
            if p.dim == m.dim and (m.dim is None or m.stride == p.stride * p.radix):
                out[-1] = Mode(p.radix * m.radix, p.dim, p.stride)
                continue
        out.append(m)
    return tuple(out)


def _places(modes) -> list[int]:
    out, p = [], 1
    for m in modes:
        out.append(p)
        p *= m.radix
    return out



def _digit(x: Expr, place: int, radix: int, total: int) -> Expr:
    e = x
    if place > 1:
        e = e // place
    if place * radix < total or radix == 1:
        e = e % radix
    return e


class TVFragment(Fragment):
    """A fragment built from thread modes and value modes (see the module docstring)."""

    def __init__(self, shape, thread_modes, value_modes, name: str = ""):
        self.shape = tuple(int(d) for d in shape)
        # radix-1 modes carry no digit: dropping them makes equal layouts print (and compare) equal
        self.thread_modes = _canonical(thread_modes)
        self.value_modes = _canonical(value_modes)
        self.name = name
        self._check()
        t, v = Var("_t", _dt.int32), Var("_v", _dt.int32)
        self._tvar, self._vvar = t, v
        self.vars = [Var(f"_i{k}", _dt.int32) for k in range(len(self.shape))]
        self._output_shape = (self.num_values,)
        self.rep_var = Var("_rep", _dt.int32)
        self.replicate = math.prod(m.radix for m in self.thread_modes if m.dim is None)
        self.forward_index = [self.local_of(self.vars)]
        self.forward_thread = self._thread_expr(self.vars, self.rep_var)

    # ------------------------------------------------------------------ structure
    def _check(self):
        for m in self.thread_modes + self.value_modes:
            if m.radix < 1:
                raise CompileError(f"layout mode with radix {m.radix}")
            if m.dim is not None and not 0 <= m.dim < len(self.shape):
                raise CompileError(f"layout mode moves dimension {m.dim} of a {len(self.shape)}-d tile")
        for d, extent in enumerate(self.shape):
            ms = sorted((m for m in self.thread_modes + self.value_modes if m.dim == d and m.radix > 1),
                        key=lambda m: m.stride)
            expect = 1
            for m in ms:
                if m.stride != expect:
                    raise CompileError(f"layout modes of dimension {d} do not tile it exactly: {ms}")
                expect *= m.radix
            if expect != extent:
                raise CompileError(f"layout modes of dimension {d} cover {expect} of {extent} elements")

    @property
    def num_threads(self) -> int:
        return math.prod(m.radix for m in self.thread_modes)

    @property
    def num_values(self) -> int:
        return math.prod(m.radix for m in self.value_modes)

    def num_threads_fn(self) -> int:
        return self.num_threads

    def locals_per_thread(self) -> int:
        return self.num_values

    def output_shape(self):
        return (self.num_values,)

    def key(self) -> str:
        tm = ",".join(f"{m.radix}:{m.dim}:{m.stride}" for m in self.thread_modes)
        vm = ",".join(f"{m.radix}:{m.dim}:{m.stride}" for m in self.value_modes)
        return f"TV({list(self.shape)}; t[{tm}]; v[{vm}])"

    def __repr__(self) -> str:
        return self.key()

    def same_as(self, other) -> bool:
        return isinstance(other, TVFragment) and self.key() == other.key()

    # ------------------------------------------------------------------ maps
    def inverse(self, thread: Expr, value: Expr) -> list[Expr]:
        """Logical indices of register `value` of thread `thread` (closed form)."""
        idx = [Const(0, _dt.int32) for _ in self.shape]
        for modes, x, total in ((self.thread_modes, thread, self.num_threads), (self.value_modes, value, self.num_values)):
            for m, p in zip(modes, _places(modes)):
                if m.dim is None or m.radix == 1:
                    continue
                idx[m.dim] = idx[m.dim] + _digit(as_expr(x), p, m.radix, total) * m.stride
        ranges = {}
        if isinstance(thread, Var):
            ranges[thread] = (0, self.num_threads - 1)
        if isinstance(value, Var):
            ranges[value] = (0, self.num_values - 1)
        return [simplify(e, ranges) for e in idx]

    def local_of(self, indices) -> Expr:
        """Register index holding the element at `indices` (same in every replica)."""
        out = Const(0, _dt.int32)
        for m, p in zip(self.value_modes, _places(self.value_modes)):
            if m.dim is None or m.radix == 1:
                continue
            out = out + _digit(as_expr(indices[m.dim]), m.stride, m.radix, self.shape[m.dim]) * p
        return out

    def _thread_expr(self, indices, rep: Expr) -> Expr:
        out = Const(0, _dt.int32)
        rep_place = 1
        for m, p in zip(self.thread_modes, _places(self.thread_modes)):
            if m.radix == 1:
                continue
            if m.dim is None:
                d = _digit(as_expr(rep), rep_place, m.radix, self.replicate)
                rep_place *= m.radix
            else:
                d = _digit(as_expr(indices[m.dim]), m.stride, m.radix, self.shape[m.dim])
            out = out + d * p
        return out

    def thread_of(self, indices, rep=0) -> Expr:
        return self._thread_expr(indices, as_expr(rep))

    def replica_index(self, thread: Expr) -> Expr:
        """Which replica a thread holds (0 for the thread that writes results out)."""
        out = Const(0, _dt.int32)
        rep_place = 1
        for m, p in zip(self.thread_modes, _places(self.thread_modes)):
            if m.dim is None and m.radix > 1:
                out = out + _digit(as_expr(thread), p, m.radix, self.num_threads) * rep_place
                rep_place *= m.radix
        return out

    # ------------------------------------------------------------------ derived layouts
    def project(self, keep: list[int]) -> TVFragment:
        """The layout of a tile indexed by the dimensions in `keep` only: dropped thread modes
        become replication, dropped value modes disappear."""
        new_dim = {d: k for k, d in enumerate(keep)}
        tm = [Mode(m.radix, new_dim.get(m.dim), m.stride if m.dim in new_dim else 0) for m in self.thread_modes]
        vm = [Mode(m.radix, new_dim[m.dim], m.stride) for m in self.value_modes if m.dim in new_dim]
        return TVFragment([self.shape[d] for d in keep], tm, vm, name=self.name + "/proj")

    def remap(self, shape, dim_map: dict, extra=()) -> TVFragment:
        """The layout seen through another indexing: dimension d of this tile becomes dimension
        dim_map[d] of a tile of `shape` (None: dropped — its thread modes turn into replication,
        its value modes disappear); `extra` (dim, extent) pairs add dimensions every thread
        walks entirely."""
        def conv(m: Mode, thread: bool):
            if m.dim is None:
                return m
            nd = dim_map.get(m.dim)
            if nd is None:
                return Mode(m.radix, None, 0) if thread else None
            return Mode(m.radix, nd, m.stride)

        tm = [conv(m, True) for m in self.thread_modes]
        vm = [x for x in (conv(m, False) for m in self.value_modes) if x is not None]
        vm += [Mode(e, d, 1) for d, e in extra if e > 1]
        return TVFragment(shape, tm, vm, name=self.name)

    def reshape(self, shape) -> TVFragment | None:
        """The same layout seen through a row-major reshape of the tile (T.reshape / T.view of a
        fragment): every thread keeps the same elements in the same registers. A digit that
        crosses a boundary of the new shape splits into one digit per new dimension; None when
        a digit does not split evenly (the layout is no sum of digits of the new indices)."""
        shape = tuple(int(d) for d in shape)
        if math.prod(shape) != math.prod(self.shape):
            return None
        if shape == self.shape:
            return self

        def row_strides(sh):
            out, acc = [], 1
            for d in reversed(sh):
                out.append(acc)
                acc *= d
            return out[::-1]

        old_rs, new_rs = row_strides(self.shape), row_strides(shape)

        def split(m: Mode):
            if m.dim is None or m.radix == 1:
                return [m]
            r, fs, out = m.radix, m.stride * old_rs[m.dim], []
            while r > 1:
                k = next((k for k in range(len(shape)) if shape[k] > 1 and new_rs[k] <= fs < new_rs[k] * shape[k]), None)
                if k is None or fs % new_rs[k]:
                    return None
                stride = fs // new_rs[k]
                cap = shape[k] // stride if shape[k] % stride == 0 else 0
                if cap < 2 or (r > cap and r % cap):
                    return None
                take = min(r, cap)
                if take < cap and cap % take:
                    return None
                out.append(Mode(take, k, stride))
                r //= take
                fs *= take
            return out

        tm, vm = [], []
        for src, dst in ((self.thread_modes, tm), (self.value_modes, vm)):
            for m in src:
                parts = split(m)
                if parts is None:
                    return None
                dst.extend(parts)
        return TVFragment(shape, tm, vm, name=self.name)

    def insert_unit_dim(self, dim: int) -> TVFragment:
        """The same layout for a tile with an extra extent-1 dimension at `dim`."""
        def remap(m: Mode) -> Mode:
            return m if m.dim is None else Mode(m.radix, m.dim + (1 if m.dim >= dim else 0), m.stride)

        shape = list(self.shape)
        shape.insert(dim, 1)
        return TVFragment(shape, [remap(m) for m in self.thread_modes], [remap(m) for m in self.value_modes],
                          name=self.name)

    def reduced_thread_modes(self, dim: int) -> list[tuple[int, int]]:
        """(place, radix) of the thread modes that move `dim`: the threads a reduction over
        `dim` must combine."""
        return [(p, m.radix) for m, p in zip(self.thread_modes, _places(self.thread_modes))
                if m.dim == dim and m.radix > 1]


# ---------------------------------------------------------------------------- constructors


def _largest_factor(n: int, limit_divisor: int) -> int:
    """Largest divisor of `limit_divisor` that also divides `n`."""
    f = 1
    for k in range(1, limit_divisor + 1):
        if limit_divisor % k == 0 and n % k == 0:
            f = k
    return f


def default_fragment(shape, threads: int, vector: int = 1, min_vector: int = 1) -> TVFragment:
    """Consecutive threads own consecutive `vector`-element chunks of the innermost dimension,
    then move to outer dimensions; what a dimension cannot absorb evenly stays in registers, and
    left-over threads replicate. Used for T.Parallel loops and unconstrained fragments.

    When chunks of `vector` elements leave threads replicating work (a 24 x 40 tile over 64
    threads in 8-element chunks is 8 copies of 120 registers each), narrower chunks that spread
    the tile over more threads are taken instead: replication costs registers in every copy, but
    no narrower than `min_vector` (a divisor of the innermost extent): a loop storing packed fp4
    gives every thread whole pairs of values, whole bytes (transform/layout_inference.py)."""
    shape = tuple(int(d) for d in shape)
    best = None
    vector = max(1, vector, min_vector)
    for v in range(vector, max(1, min_vector) - 1, -1):
        if vector % v or shape[-1] % v:
            continue
        cand = _default_fragment(shape, threads, v)
        if best is None or cand.replicate < best.replicate:
            best = cand
        if best.replicate == 1:
            break
    return best


def _default_fragment(shape, threads: int, vector: int) -> TVFragment:
    shape = tuple(int(d) for d in shape)
    nd = len(shape)
    ext = list(shape)
    stride = [1] * nd
    value_modes: list[Mode] = []
    thread_modes: list[Mode] = []
    vector = _largest_factor(shape[-1], max(1, vector))
    if vector > 1:
        value_modes.append(Mode(vector, nd - 1, 1))
        ext[-1] //= vector
        stride[-1] = vector
    left = threads
    for d in reversed(range(nd)):
        if left == 1:
            break
        f = _largest_factor(ext[d], left)
        if f > 1:
            thread_modes.append(Mode(f, d, stride[d]))
            stride[d] *= f
            ext[d] //= f
            left //= f
    if left > 1:
        thread_modes.append(Mode(left, None, 0))
    for d in reversed(range(nd)):
        if ext[d] > 1:
            value_modes.append(Mode(ext[d], d, stride[d]))
    return TVFragment(shape, thread_modes, value_modes, name="default")


def replicated_fragment(shape, threads: int) -> TVFragment:
    """Every thread holds the whole tile (the fallback for tiles nothing else fits)."""
    shape = tuple(int(d) for d in shape)
    vm = [Mode(shape[d], d, 1) for d in reversed(range(len(shape))) if shape[d] > 1]
    return TVFragment(shape, [Mode(threads, None, 0)], vm, name="replicated")


def mma_c_tv(M: int, N: int, warp_m: int, warp_n: int, threads: int) -> TVFragment:
    """The mma.sync m16n8 accumulator layout tiled over a warp grid: warp = wm * warp_n + wn;
    inside a warp m16n8 tiles row-major. Within one m16n8 tile element (r, c) belongs to lane
    (r % 8) * 4 + c // 2, register (r // 8) * 2 + c % 2. This is the one definition of the C
    fragment: the mma lowering, the SIMT gemm emitter and the layout inference all use it."""
    WM, WN = M // warp_m, N // warp_n
    tm = [Mode(4, 1, 2), Mode(8, 0, 1), Mode(warp_n, 1, WN), Mode(warp_m, 0, WM)]
    extra = threads // (32 * warp_m * warp_n)
    if extra > 1:
        tm.append(Mode(extra, None, 0))
    vm = [Mode(2, 1, 1), Mode(2, 0, 8), Mode(WN // 8, 1, 8), Mode(WM // 16, 0, 16)]
    return TVFragment((M, N), tm, vm, name="mma_c")


def mma_a_tv(M: int, K: int, warp_m: int, warp_n: int, threads: int, bits: int = 16) -> TVFragment:
    """mma.sync A operand (M x K) in registers for `bits`-wide elements (16: m16n8k16, 8:
    m16n8k32, 32: tf32 m16n8k8); warps of one warp row replicate it. A lane holds p = 32 / bits
    consecutive k elements per register; the k tile is 8p wide."""
    WM = M // warp_m
    p = 32 // bits
    tm = [Mode(4, 1, p), Mode(8, 0, 1), Mode(warp_n, None, 0), Mode(warp_m, 0, WM)]
    extra = threads // (32 * warp_m * warp_n)
    if extra > 1:
        tm.append(Mode(extra, None, 0))
    vm = [Mode(p, 1, 1), Mode(2, 0, 8), Mode(2, 1, 4 * p), Mode(K // (8 * p), 1, 8 * p), Mode(WM // 16, 0, 16)]
    return TVFragment((M, K), tm, vm, name="mma_a")


def mma_b_tv(K: int, N: int, warp_m: int, warp_n: int, threads: int, bits: int = 16) -> TVFragment:
    """mma.sync B operand (K x N) in registers for `bits`-wide elements (see mma_a_tv); warps of
    one warp column replicate it."""
    WN = N // warp_n
    p = 32 // bits
    tm = [Mode(4, 0, p), Mode(8, 1, 1), Mode(warp_n, 1, WN), Mode(warp_m, None, 0)]
    extra = threads // (32 * warp_m * warp_n)
    if extra > 1:
        tm.append(Mode(extra, None, 0))
    vm = [Mode(p, 0, 1), Mode(2, 0, 4 * p), Mode(WN // 8, 1, 8), Mode(K // (8 * p), 0, 8 * p)]
    return TVFragment((K, N), tm, vm, name="mma_b")


def tv_from_fragment(frag: Fragment, threads: int) -> TVFragment:
    """The thread/value-mode form of a user's T.Fragment, for a block (or thread range) of
    `threads` threads. Exact when the thread map is a sum of digits of the logical indices and
    of the replica index numbering its threads 0 .. n-1 once each (every layout TileLang's
    examples and the mma tables use); a fragment over fewer threads than the block is
    replicated over the rest, as every thread of the block runs the code that uses it. The
    register numbering inside a thread is the compiler's choice (TileLang's `forward_index` is
    storage order, invisible to the program's results)."""
    shape = tuple(frag.shape)
    if isinstance(frag, TVFragment):
        tm, vm = list(frag.thread_modes), list(frag.value_modes)
        n = frag.num_threads
        if n == threads:
            return frag
    else:
        tm, vm, n = _modes_of(frag)
    if n > threads or threads % n:
        raise CompileError(f"T.Fragment {frag!r} spans {n} threads, but the code using it runs in {threads} threads; "
                           f"a fragment must span a divisor of the thread count")
    if threads > n:
        tm.append(Mode(threads // n, None, 0))
    return TVFragment(shape, tm, vm, name="annotated")


def _modes_of(frag: Fragment):
    """(thread modes, value modes, thread count) of a user fragment, read from its tables."""
    from .digits import digits_of, is_mixed_radix

    shape = tuple(frag.shape)
    if not frag.covers_exactly_once():
        raise CompileError(f"T.Fragment {frag!r} puts two elements in one register of a thread, or two replicas of an "
                           "element in one thread")
    table = np.moveaxis(frag.thread_table(), 0, -1)  # (*shape, replicate)
    digits = digits_of(table)
    if digits is None or not is_mixed_radix(digits):
        raise CompileError(
            f"T.Fragment {frag!r}: its thread map is not a sum of digits (x // stride) % radix * place of the logical "
            "indices numbering threads 0..n-1 exactly once, which the CUDA target needs to lower it; "
            "write it as such a sum (e.g. i % 8 * 4 + j // 2)")
    rep_dim = len(shape)
    tm = [Mode(g.radix, None if g.dim == rep_dim else g.dim, 0 if g.dim == rep_dim else g.stride)
          for g in sorted((g for g in digits if g.place), key=lambda g: g.place)]
    if any(g.dim == rep_dim and not g.place for g in digits):
        raise CompileError(f"T.Fragment {frag!r}: two replicas of an element share a thread")
    vm = [Mode(g.radix, g.dim, g.stride) for g in sorted((g for g in digits if not g.place),
                                                        key=lambda g: (-g.dim, g.stride))]
    return tm, vm, math.prod(m.radix for m in tm)
