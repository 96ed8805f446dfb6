"""`for i, j in T.Persistent(domain, wave_size, index, group_size=8):` TileLang's persistent-block
loop: a block with `index` (0 <= index < wave_size, usually its block index in a grid of
wave_size blocks) visits the tiles of `domain` (extents d0, ..., dn) number index, index +
wave_size, index + 2 * wave_size, ... in a grouped order: the last dimension is cut into groups
of `group_size`, and the tile number counts fastest within a group, then along the other
dimensions in order, then over the groups (neighbouring blocks share rows or columns of the
operands, as T.use_swizzle arranges for ordinary grids). Tiles past the domain are skipped:

    w in [0, ceil(padded / wave_size)):  t = w * wave_size + index
        (group, i0, ..., g) = t as a mixed-radix number over (ceil(dn / G), d0, ..., G)
        i_last = group * G + g; the other indices are i0, ...
        break when t >= padded; run the body when i_last < dn.

The loop is serial; T.Pipelined or T.Parallel loops go inside it as usual."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import builder as _builder
from ..ir import dtype as _dt
from ..ir.expr import Const, Expr, Var, as_expr
from ..ir.simplify import simplify
from ..ir.stmt import Break, For, IfThenElse, seq
from .loops import py_scalar
from .math import ceildiv
from .math import max as tmax
from .math import min as tmin


def _prod(xs):
    out = 1
    for x in xs:
        out = out * x
    return out


class PersistentSpec:
    """What `T.Persistent(...)` returns; the parser calls parse_for on a `for` over it."""

    def __init__(self, domain, wave_size, index, group_size):
        self.domain = domain
        self.wave_size = wave_size
        self.index = index
        self.group_size = group_size

    def __iter__(self):
        raise CompileError("T.Persistent can only be used as `for ... in` inside a @T.prim_func")

    def parse_for(self, parser, node) -> None:
        target = node.target
        names = [target] if not hasattr(target, "elts") else list(target.elts)
        if not all(hasattr(n, "id") for n in names):
            raise parser.error(node, "loop targets must be names")
        if len(names) != len(self.domain):
            raise parser.error(node, f"T.Persistent has {len(self.domain)} dimensions but binds {len(names)} names")
        d = self.domain
        last = d[-1]
        g = self.group_size
        g = max(1, min(g, last)) if isinstance(g, int) and isinstance(last, int) else tmax(1, tmin(g, last))
        grouped = [ceildiv(last, g), *d[:-1], g]
        padded = _prod(grouped)
        waves = ceildiv(padded, self.wave_size)
        w = Var(parser.unique("w"), _dt.int32)
        rem = w * self.wave_size + self.index
        idxs = [None] * len(grouped)
        for k in range(len(grouped) - 1, 0, -1):
            idxs[k] = rem % grouped[k]
            rem = rem // grouped[k]
        idxs[0] = rem
        last_coord = idxs[0] * g + idxs[-1]
        values = [*idxs[1:len(d)], last_coord]
        b = _builder.require("T.Persistent")
        with b.frame() as body, parser.scope(block=True):
            b.loops.append("serial")
            try:
                for n, v in zip(names, values):
                    parser.bind(n.id, simplify(as_expr(v)))
                parser.parse_loop_body(node, node.body)
            finally:
                b.loops.pop()
        stmt = IfThenElse(as_expr(last_coord) < last, seq(body))
        if not (isinstance(waves, int) and waves <= 1):
            stmt = seq([IfThenElse(as_expr(padded) <= w * self.wave_size + self.index, Break()), stmt])
        parser.emit(For(w, 0, waves, "serial", stmt))


def _int_or_expr(x, what: str):
    x = py_scalar(x)
    if isinstance(x, Expr):
        if not x.dtype.is_int:
            raise CompileError(f"T.Persistent: {what} must be an integer, got {x} of type {x.dtype}")
        c = simplify(x)
        return c.value if isinstance(c, Const) else x
    if isinstance(x, bool) or not isinstance(x, int):
        raise CompileError(f"T.Persistent: {what} must be an integer, got {x!r}")
    return x


def Persistent(domain, wave_size, index, group_size=8) -> PersistentSpec:  # noqa: N802 - TileLang's name
    """Persistent-block iteration over `domain` (see the module docstring)."""
    if not isinstance(domain, (list, tuple)) or not domain:
        raise CompileError(f"T.Persistent: the domain must be a non-empty list of extents, got {domain!r}")
    dom = [_int_or_expr(x, "a domain extent") for x in domain]
    for x in dom:
        if isinstance(x, int) and x <= 0:
            raise CompileError(f"T.Persistent: domain extents must be positive, got {domain!r}")
    wave = _int_or_expr(wave_size, "wave_size")
    if isinstance(wave, int) and wave <= 0:
        raise CompileError(f"T.Persistent: wave_size must be positive, got {wave}")
    idx = _int_or_expr(index, "index")
    gs = _int_or_expr(group_size if group_size is not None else 1, "group_size")
    if isinstance(gs, int) and gs <= 0:
        raise CompileError(f"T.Persistent: group_size must be positive, got {gs}")
    return PersistentSpec(dom, wave, idx, gs)
