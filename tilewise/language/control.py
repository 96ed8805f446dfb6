"""Control-flow and launch names of TileLang's T namespace beyond loops and kernels:

- `T.get_thread_extent(dim=0)` / `T.get_thread_extents()` and `T.get_block_extent(dim=0)` /
  `T.get_block_extents()`: the kernel's launch extents (three each, 1 where the kernel has fewer
  dimensions), as Python ints (a dynamic grid extent is its expression);
- `T.loop_break()` (TVM's `T.break_loop()`): leaves the innermost loop, as `break` does;
  TVM's `T.continue_loop()` is `continue` (language/loop_continue.py);
- TVM's script frames `with T.If(c): with T.Then(): ... with T.Else(): ...` (also written
  `with T.If(c), T.Then():`), `with T.While(c):` and `with T.attr(node, key, value):`, which
  accepts the attributes that only steer TVM's own passes and warns once about any other;
- `T.device_assert(cond, msg="")`: a run-time check. The CPU target prints the message with the
  user's line and aborts the process; CUDA prints it with the block and thread and traps; the
  emulator raises `DeviceAssertError` naming the line and the first failing thread;
- `T.evaluate(x)` (an expression statement) and `T.index_to_coordinates(index, shape)`.

The `with` frames implement `parse_with(parser, node, body)`, which the parser calls for a
`with` statement over them."""
from __future__ import annotations

import ast
import warnings

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.builder import require, require_kernel
from ..ir.expr import Call, Cast, Const, Expr, Var, as_expr
from ..ir.span import current_span
from ..ir.stmt import Break, Evaluate, IfThenElse, LetStmt
from ..ir.stmt import While as WhileStmt
from ..ir.visitor import substitute
from ..tileop import thread_allreduce
from .math import _v
from .math import floordiv as _floordiv
from .math import floormod as _floormod

# ---------------------------------------------------------------------------- launch extents


def get_thread_extent(dim: int = 0) -> int:
    """The number of threads along `dim` (0: x, 1: y, 2: z) of the enclosing T.Kernel."""
    k = require_kernel("T.get_thread_extent")
    _check_dim(dim, "T.get_thread_extent")
    return k.threads[dim] if dim < len(k.threads) else 1


def get_thread_extents() -> list[int]:
    """[x, y, z] thread extents of the enclosing T.Kernel."""
    return [get_thread_extent(d) for d in range(3)]


def get_block_extent(dim: int = 0):
    """The grid extent along `dim` (0: x, 1: y, 2: z) of the enclosing T.Kernel: an int, or the
    extent's expression when it is dynamic."""
    k = require_kernel("T.get_block_extent")
    _check_dim(dim, "T.get_block_extent")
    if dim >= len(k.grid):
        return 1
    g = k.grid[dim]
    return g.value if isinstance(g, Const) else g


def get_block_extents() -> list:
    """[x, y, z] grid extents of the enclosing T.Kernel."""
    return [get_block_extent(d) for d in range(3)]


def _check_dim(dim, what: str) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or not 0 <= dim < 3:
        raise CompileError(f"{what}: dim must be 0, 1 or 2, got {dim!r}")


# ---------------------------------------------------------------------------- statements


def loop_break() -> None:
    """Leave the innermost enclosing loop (Python's `break`)."""
    require("T.loop_break").emit(Break())


break_loop = loop_break


def continue_loop() -> None:
    """TVM's spelling of `continue`; the parser rewrites it with the loop (loop_continue.py), so
    reaching this call means it is not directly in a loop body."""
    raise CompileError("T.continue_loop() outside a loop")


def device_assert(cond, msg: str = "") -> None:
    """Check `cond` at run time; a failure stops the kernel with `msg` and the user's line."""
    require_kernel("T.device_assert")
    if not isinstance(msg, str):
        raise CompileError(f"T.device_assert: msg must be a string, got {type(msg).__name__} {msg!r}")
    cond = _v(cond)
    if isinstance(cond, (bool, int)) and not isinstance(cond, Expr):
        if cond:
            return
        cond = Const(False, _dt.bool_)
    if not isinstance(cond, Expr):
        raise CompileError(f"T.device_assert: the condition must be a scalar expression, got {cond!r}")
    if not cond.dtype.is_bool:
        cond = cond != 0
    span = current_span()
    where = f"{span}: " if span is not None else ""
    text = f"{where}T.device_assert failed" + (f": {msg}" if msg else "")
    require("T.device_assert").emit(Evaluate(Call("device_assert", [cond], _dt.handle, {"msg": text})))


def let(var, value, body=None):
    """`T.let(v, value)` binds the variable `v` (e.g. `v = T.int32()`) to `value` for the
    statements that follow; `T.let(v, value, body)` is the expression `body` with `v` = `value`."""
    value = _v(value)
    if not isinstance(var, Var):
        raise CompileError(f"T.let: the first argument must be a variable (e.g. T.int32()), got {var!r}")
    if body is not None:
        return substitute(_v(body), {var: as_expr(value, var.dtype)})
    value = as_expr(value, var.dtype)
    if value.dtype != var.dtype:
        value = Cast(value, var.dtype)
    require("T.let").emit(LetStmt(var, value))
    return None


def evaluate(value):
    """`T.evaluate(x)`: x as a statement (an intrinsic call is emitted; a plain value is dropped)."""
    value = _v(value)
    if isinstance(value, Call):
        require("T.evaluate").emit(Evaluate(value))
    return None


def index_to_coordinates(index, shape) -> list:
    """The row-major coordinates of a flat `index` into `shape` (last dimension fastest)."""
    out = []
    for d in reversed(list(shape)):
        out.append(_floormod(index, d))
        index = _floordiv(index, d)
    return out[::-1]


# ---------------------------------------------------------------------------- TVM script frames


class _Frame:
    """A `with` frame: parse_with(parser, node, body) turns the with statement into IR."""

    label = ""

    def parse_with(self, parser, node, body) -> None:
        raise parser.error(node, f"{self.label} can only be used inside `with T.If(cond):`")


class _IfFrame(_Frame):
    label = "T.If"

    def __init__(self, cond):
        self.cond = cond

    def parse_with(self, parser, node, body) -> None:
        then_body = else_body = None
        for s in body:
            if isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)):
                continue
            frame = None
            if isinstance(s, ast.With) and len(s.items) >= 1:
                frame = parser.eval(s.items[0].context_expr)
            if not isinstance(frame, (_ThenFrame, _ElseFrame)):
                raise parser.error(s, "the body of `with T.If(cond):` holds `with T.Then():` and `with T.Else():` only")
            inner = s.body if len(s.items) == 1 else [ast.With(items=s.items[1:], body=s.body, lineno=s.lineno,
                                                               col_offset=s.col_offset)]
            if isinstance(frame, _ThenFrame):
                if then_body is not None or else_body is not None:
                    raise parser.error(s, "`with T.Then():` must come once, before `with T.Else():`")
                then_body = inner
            else:
                if then_body is None or else_body is not None:
                    raise parser.error(s, "`with T.Else():` must follow `with T.Then():`, once")
                else_body = inner
        if then_body is None:
            raise parser.error(node, "`with T.If(cond):` needs a `with T.Then():` block")
        emit_if(parser, node, self.cond, then_body, else_body)


def emit_if(parser, node, cond, then_body, else_body) -> None:
    """`if cond: then_body else: else_body` (AST statement lists), as the parser's `if`."""
    cond = _v(cond)
    if not isinstance(cond, Expr):
        parser.parse_scoped(then_body if cond else (else_body or []))
        return
    c = cond if cond.dtype.is_bool else cond != 0
    t = parser.parse_block(then_body)
    e = parser.parse_block(else_body) if else_body else None
    parser.emit(IfThenElse(c, t, e))


class _ThenFrame(_Frame):
    label = "T.Then"


class _ElseFrame(_Frame):
    label = "T.Else"


class _WhileFrame(_Frame):
    label = "T.While"

    def __init__(self, cond):
        self.cond = cond

    def parse_with(self, parser, node, body) -> None:
        cond = _v(self.cond)
        if not isinstance(cond, Expr):
            raise parser.error(node, "T.While needs a device condition")
        parser.emit(WhileStmt(cond if cond.dtype.is_bool else cond != 0, parser.parse_block(body)))


# Attributes that only steer TVM passes tilewise does not have (unrolling and vectorising hints,
# pass-local scopes): the body runs as it is.
IGNORED_ATTRS = frozenset({
    "pragma_unroll_explicit", "pragma_auto_unroll_max_step", "pragma_loop_partition_hint",
    "pragma_vectorize", "pragma_debug_skip_region", "pragma_fence", "pragma_scope",
    "lexical_alloc_scope", "storage_alignment", "compute_scope", "kWarpSpecializationScope",
    "buffer_bound", "loop_scope", "hand_threaded",
})  # fmt: skip
_warned: set[str] = set()


class _AttrFrame(_Frame):
    label = "T.attr"

    def __init__(self, node, key: str, value):
        self.node = node
        self.key = key

    def parse_with(self, parser, node, body) -> None:
        key = self.key
        if key == "reduce_scope" and isinstance(self.node, thread_allreduce.CommReducer):
            thread_allreduce._scope.append(self.node)  # for T.tvm_thread_allreduce inside
            try:
                parser.parse_scoped(body)
            finally:
                thread_allreduce._scope.pop()
            return
        if key not in IGNORED_ATTRS and not key.startswith("pragma_") and key not in _warned:
            _warned.add(key)
            warnings.warn(
                f"{parser.span(node)}: T.attr(..., {key!r}, ...) has no meaning in tilewise and is ignored; "
                "its body runs as written", stacklevel=2)
        parser.parse_scoped(body)


def If(cond) -> _IfFrame:  # noqa: N802 - TVM's script name
    """`with T.If(cond):` holding `with T.Then():` and optionally `with T.Else():`."""
    return _IfFrame(cond)


def Then() -> _ThenFrame:  # noqa: N802
    return _ThenFrame()


def Else() -> _ElseFrame:  # noqa: N802
    return _ElseFrame()


def While(cond) -> _WhileFrame:  # noqa: N802
    """`with T.While(cond):` (Python's `while cond:`)."""
    return _WhileFrame(cond)


def attr(node, attr_key: str, value=None) -> _AttrFrame:
    """`with T.attr(node, key, value):` TVM's attribute scope (see IGNORED_ATTRS)."""
    if not isinstance(attr_key, str):
        raise CompileError(f"T.attr: the key must be a string, got {attr_key!r}")
    return _AttrFrame(node, attr_key, value)
