"""Layout: a map from a logical n-d index to a physical index, as IR expressions over
placeholder variables with constant extents."""
from __future__ import annotations

import inspect

import numpy as np

from ..errors import CompileError
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
        if isinstance(d, bool) or not isinstance(d, int) or d <= 0:
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

    def repeat(self, times: int, axis: int = 0) -> Layout:
        """Stack `times` copies along `axis`; each copy's output is offset along output axis 0."""
        shape = list(self.shape)
        inner = shape[axis]
        shape[axis] *= times
        vars_ = [Var(f"_i{k}", _dt.int32) for k in range(len(shape))]
        sub = dict(zip(self.vars, vars_))
        sub[self.vars[axis]] = vars_[axis] % inner
        fwd = [substitute(e, sub) for e in self.forward_index]
        extent0 = self.output_shape()[0]
        fwd[0] = fwd[0] + (vars_[axis] // inner) * extent0
        return Layout(shape, forward_index=fwd, vars_=vars_)

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
