"""Layout: a map from a logical n-d index to a physical index, as IR expressions over
placeholder variables with constant extents."""
from __future__ import annotations

import inspect

import numpy as np

from ..errors import CompileError, DtypeError
from ..ir import dtype as _dt
from ..ir.evaluate import evaluate
from ..ir.expr import Expr, Var, as_expr
from ..ir.printer import _namers, _UniqueNamer, expr_str
from ..ir.simplify import bound, simplify
from ..ir.visitor import substitute


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _static_shape(shape, what: str) -> tuple[int, ...]:
    shape = _as_list(shape)
    out = []
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):  # a TypeError too, as TileLang's
            raise DtypeError(f"{what}: the shape must be positive integers, got {shape}")
        if d <= 0:
            raise CompileError(f"{what}: the shape must be positive integers, got {shape}")
        out.append(d)
    return tuple(out)


def call_with_vars(fn, vars_):
    """Call a user lambda with placeholder variables (it may take them unpacked or as one list)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return fn(*vars_)
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return fn(*vars_)
    n = len(params)
    if n == len(vars_):
        return fn(*vars_)
    if n == 1:
        return fn(vars_)
    raise CompileError(f"layout function takes {n} arguments but the layout has {len(vars_)} dimensions")


class Layout:
    """`T.Layout(shape, lambda i, j: (i, j ^ (i % 8)))`."""

    def __init__(self, shape, forward_fn=None, *, forward_index=None, vars_=None, output_shape=None):
        self._output_shape = tuple(output_shape) if output_shape is not None else None
        self.shape = _static_shape(shape, "T.Layout")
        self.vars = list(vars_) if vars_ is not None else [Var(f"_i{k}", _dt.int32) for k in range(len(self.shape))]
        if forward_index is None:
            if forward_fn is None:
                forward_index = list(self.vars)
            else:
                forward_index = _as_list(call_with_vars(forward_fn, self.vars))
        self.forward_index = [simplify(as_expr(e), self.ranges()) for e in forward_index]
        # bytes the storage must start at a multiple of: swizzles that hardware applies to
        # address bits (wgmma, TMA) need their atoms aligned, 16 is enough otherwise
        self.base_align = 16

    def ranges(self) -> dict:
        return {v: (0, d - 1) for v, d in zip(self.vars, self.shape)}

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def output_shape(self) -> tuple[int, ...]:
        if self._output_shape is not None:
            return self._output_shape
        out = []
        for e in self.forward_index:
            lo, hi = bound(e, self.ranges())
            if hi is None or lo is None or lo < 0:
                # fall back to the table: exact for any expression
                hi = int(self._table_of(e).max())
            out.append(hi + 1)
        return tuple(out)

    def map(self, indices) -> list[Expr]:
        """Physical index of the logical index `indices` (expressions)."""
        if len(indices) != len(self.vars):
            raise CompileError(f"layout of rank {len(self.vars)} applied to {len(indices)} indices")
        m = {v: as_expr(i) for v, i in zip(self.vars, indices)}
        return [substitute(e, m) for e in self.forward_index]

    def grid(self) -> dict:
        axes = np.meshgrid(*[np.arange(d, dtype=np.int64) for d in self.shape], indexing="ij")
        return dict(zip(self.vars, axes))

    def _table_of(self, e) -> np.ndarray:
        v = evaluate(e, self.grid())
        return np.broadcast_to(np.asarray(v, dtype=np.int64), self.shape)

    def table(self) -> np.ndarray:
        """Array of shape (*shape, n_out): the physical index of every logical index."""
        return np.stack([self._table_of(e) for e in self.forward_index], axis=-1)

    def flat_table(self) -> np.ndarray:
        """Physical offsets (row-major over the output shape) of every logical index."""
        t = self.table()
        out_shape = self.output_shape()
        return np.ravel_multi_index(tuple(np.moveaxis(t, -1, 0)), out_shape)

    def is_bijective(self) -> bool:
        """Every logical index maps to a distinct physical index, covering the output exactly."""
        flat = self.flat_table().ravel()
        size = int(np.prod(self.output_shape()))
        return flat.size == size and np.unique(flat).size == size

    def is_injective(self) -> bool:
        flat = self.flat_table().ravel()
        return np.unique(flat).size == flat.size

    def inverse_table(self) -> np.ndarray:
        """For a bijective layout: the logical (flat) index stored at each physical offset."""
        flat = self.flat_table().ravel()
        inv = np.full(flat.size, -1, dtype=np.int64)
        inv[flat] = np.arange(flat.size)
        return inv.reshape(self.output_shape())

    # ------------------------------------------------------------------ TileLang's Layout API
    def get_input_shape(self) -> list[int]:
        return list(self.shape)

    def get_output_shape(self) -> list[int]:
        return list(self.output_shape())

    def get_forward_vars(self) -> list[Var]:
        return list(self.vars)

    def get_forward_index(self) -> list[Expr]:
        return list(self.forward_index)

    @property
    def index(self) -> list[Expr]:
        return list(self.forward_index)

    def get_linearized_forward_index(self) -> Expr:
        """The row-major offset of the physical index."""
        flat = as_expr(0)
        for e, d in zip(self.forward_index, self.output_shape()):
            flat = flat * d + e
        return simplify(flat, self.ranges())

    def map_forward_index(self, indices) -> list[Expr]:
        """The physical index of `indices` (ints or expressions), simplified."""
        return [simplify(e) for e in self.map(list(indices))]

    def __call__(self, *indices) -> list[Expr]:
        if len(indices) == 1 and isinstance(indices[0], (list, tuple)):
            indices = tuple(indices[0])
        return self.map_forward_index(indices)

    def is_equal(self, other: Layout) -> bool:
        """Same input shape, same output shape, same physical index for every logical index."""
        return (isinstance(other, Layout) and tuple(self.shape) == tuple(other.shape)
                and tuple(self.output_shape()) == tuple(other.output_shape())
                and np.array_equal(self.table(), other.table()))

    def repeat(self, dim: int, factor: int) -> Layout:
        """TileLang's `Layout.repeat(dim, factor)`: `factor` copies of this layout along input
        dimension `dim`; the copy number becomes a new leading output dimension."""
        if isinstance(dim, bool) or not isinstance(dim, int) or isinstance(factor, bool) or not isinstance(factor, int):
            raise CompileError(f"Layout.repeat(dim, factor) takes two ints, got {dim!r}, {factor!r}")
        if factor < 1:
            raise CompileError(f"Layout.repeat: factor must be >= 1, got {factor}")
        if dim < 0:
            dim += self.ndim
        if not 0 <= dim < self.ndim:
            raise CompileError(f"Layout.repeat: dim {dim} out of range for a {self.ndim}-d layout")
        if factor == 1:
            return self
        shape = list(self.shape)
        inner = shape[dim]
        shape[dim] *= factor
        vars_ = [Var(f"_i{k}", _dt.int32) for k in range(len(shape))]
        sub = dict(zip(self.vars, vars_))
        sub[self.vars[dim]] = vars_[dim] % inner
        fwd = [vars_[dim] // inner] + [substitute(e, sub) for e in self.forward_index]
        out = None if self._output_shape is None else (factor, *self._output_shape)
        return Layout(shape, forward_index=fwd, vars_=vars_, output_shape=out)

    def expand(self, leading_shape) -> Layout:
        """`[i, *rest] -> [i, *L(rest)]`: new leading input dimensions passed through unchanged."""
        if not isinstance(leading_shape, (int, np.integer, list, tuple)):  # a str is not a list of extents
            raise DtypeError(f"Layout.expand: the leading shape must be an int or a list of ints, got {leading_shape!r}")
        lead = [leading_shape] if isinstance(leading_shape, (int, np.integer)) else list(leading_shape)
        if not lead:
            return self
        shape = _static_shape([*lead, *self.shape], "Layout.expand")
        vars_ = [Var(f"_i{k}", _dt.int32) for k in range(len(shape))]
        sub = dict(zip(self.vars, vars_[len(lead):]))
        fwd = list(vars_[:len(lead)]) + [substitute(e, sub) for e in self.forward_index]
        out = None if self._output_shape is None else (*lead, *self._output_shape)
        return Layout(shape, forward_index=fwd, vars_=vars_, output_shape=out)

    def inverse(self) -> Layout:
        """The layout from physical index back to logical index, for a bijective layout whose
        physical offset is a sum of digits of the logical indices (any permutation, tiling or
        transpose; not an XOR swizzle, whose inverse TileLang cannot form either)."""
        from .digits import digits_of, is_mixed_radix

        out_shape = self.output_shape()
        if not self.is_bijective():
            raise CompileError(f"Layout.inverse: {self!r} is not a bijection onto {list(out_shape)}")
        digits = digits_of(self.flat_table())
        if digits is None or not is_mixed_radix(digits):
            raise CompileError(f"Layout.inverse: cannot invert {self!r} in closed form: its physical offset is not "
                               "a sum of digits (x // stride) % radix * place of the logical indices")
        vars_ = [Var(f"_o{k}", _dt.int32) for k in range(len(out_shape))]
        flat = as_expr(0)
        for v, d in zip(vars_, out_shape):
            flat = flat * d + v
        idx = [as_expr(0) for _ in self.shape]
        total = int(np.prod(out_shape))
        for g in digits:
            x = flat // g.place if g.place > 1 else flat
            if g.place * g.radix < total:
                x = x % g.radix
            idx[g.dim] = idx[g.dim] + x * g.stride
        ranges = {v: (0, d - 1) for v, d in zip(vars_, out_shape)}
        return Layout(out_shape, forward_index=[simplify(e, ranges) for e in idx], vars_=vars_,
                      output_shape=tuple(self.shape))

    def __repr__(self) -> str:
        args = ", ".join(v.name for v in self.vars)
        outs = ", ".join(expr_str(e) for e in self.forward_index)
        pad = f", output_shape={list(self._output_shape)}" if self._output_shape is not None else ""
        return f"Layout(shape={list(self.shape)}, ({args}) -> ({outs}){pad})"

    def key(self) -> str:
        _namers.append(_UniqueNamer())
        try:
            return repr(self)
        finally:
            _namers.pop()
