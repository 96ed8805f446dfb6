"""Turns a Python function's AST into tile IR.

Statements are walked here; expressions are evaluated (Python operators on IR values build IR),
so closure constants, helper functions and Python control flow on constants all work as in
plain Python, and device values become IR."""
from __future__ import annotations

import ast
import builtins
import contextlib
import inspect
import operator
import sys
import textwrap

import numpy as np

from ..errors import CompileError
from ..ir import builder as _builder
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion, from_end
from ..ir.builder import KernelFrame
from ..ir.dtype import DataType, ScalarAnnotation, as_dtype
from ..ir.expr import (
    BufferLoad,
    Call,
    Const,
    Expr,
    Var,
    as_expr,
    cast,
    const_value,
    logical_and,
    logical_not,
    logical_or,
)
from ..ir.literal_range import check_literal
from ..ir.recursion import deep_recursion
from ..ir.simplify import simplify
from ..ir.span import Span, at, current_span
from ..ir.stmt import (
    Allocate,
    Annotation,
    Break,
    BufferStore,
    Evaluate,
    For,
    IfThenElse,
    Kernel,
    LetStmt,
    PrimFunc,
    SeqStmt,
    While,
    seq,
)
from ..ir.vector import has_effects, is_vector, snapshot
from ..ir.visitor import collect_loads, walk
from . import eager as _eager
from . import global_vector as _global_vector
from . import loop_continue
from . import math as tm
from . import vector_values as _vv
from .alloc import TensorAnnotation
from .loops import KernelSpec, LoopSpec, py_scalar, serial
from .math import abs as tabs
from .math import check_divisor, if_then_else

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
    ast.BitAnd: operator.and_,
    ast.MatMult: operator.matmul,
}
_CMPOPS = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


class _Stale:
    """Marks an outer name re-assigned inside a finished device block: reading it is an error."""

    def __init__(self, span):
        self.span = span


class _Return(Exception):
    def __init__(self, value):
        self.value = value


class _PendingParam:
    """A parameter declared in the body (`A: T.Tensor(...)`) before that line is reached."""

    def __init__(self, name: str, index: int):
        self.name = name
        self.index = index


def _is_device(v) -> bool:
    return isinstance(v, Expr) or (isinstance(v, Buffer) and v.is_var)


def _dev(v):
    if isinstance(v, Buffer) and v.is_var:
        return v.load_var()
    if isinstance(v, _vv.VectorVar):
        return v.value()
    if isinstance(v, _eager.Ref):
        return v.load()
    return v


def _builtin_minmax(name, pyfn):
    def f(*args, **kwargs):
        vals = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
        if any(_is_device(v) for v in vals) and not kwargs:
            return getattr(tm, name)(*vals)
        return pyfn(*args, **kwargs)

    return f


_DEVICE_BUILTINS = {
    "min": _builtin_minmax("min", builtins.min),
    "max": _builtin_minmax("max", builtins.max),
}


class Parser:
    def __init__(self, func, file: str, line_offset: int, globals_: dict, closure: dict):
        self.func = func
        self.file = file
        self.line_offset = line_offset
        self.globals = globals_
        self.closure = closure
        self.scopes: list[dict] = [{}]
        self.scope_is_block: list[bool] = [False]  # True for the body of a device if / loop
        self.shadowed: list[dict] = [{}]  # per scope: outer names re-assigned in it -> span
        self.block_only: dict[str, Span] = {}  # names last bound inside a finished device block
        self.names_used: dict[str, int] = {}
        self._bound_at: dict[str, Span | None] = {}
        self.is_macro = False
        self.param_slots: list = []  # the function's parameters in order (_PendingParam until declared)
        self.return_depth = 0  # builder frame depth at which a macro's `return` is allowed

    # ------------------------------------------------------------------ helpers
    def span(self, node) -> Span:
        return Span(self.file, getattr(node, "lineno", 1) + self.line_offset, getattr(node, "col_offset", 0))

    def error(self, node, msg: str) -> CompileError:
        return CompileError(msg, self.span(node))

    def lookup(self, name: str, node):
        for scope in reversed(self.scopes):
            if name in scope:
                v = scope[name]
                if isinstance(v, _Stale):
                    raise self.error(
                        node,
                        f"{name!r} was re-assigned inside a device if/loop at {v.span}, so its value here "
                        "depends on run-time control flow; a name bound with `=` is a fixed value. "
                        f"For a value that changes use {name} = T.alloc_var(dtype) before the block",
                    )
                if isinstance(v, _PendingParam):
                    raise self.error(node, f"parameter {name} is used before its declaration `{name}: T.Tensor(shape, "
                                           "dtype)` in the body; declare it first")
                return v
        if name in self.closure:
            return py_scalar(self.closure[name])
        if name in self.globals:
            return py_scalar(self.globals[name])
        if name in _DEVICE_BUILTINS:
            return _DEVICE_BUILTINS[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        if name in self.block_only:
            raise self.error(
                node,
                f"name {name!r} is not defined here: it is assigned only inside a device if/loop "
                f"(at {self.block_only[name]}); bind it before the block (T.alloc_var for a value that "
                "changes) or choose the value with T.if_then_else",
            )
        raise self.error(node, f"name {name!r} is not defined")

    @contextlib.contextmanager
    def scope(self, block: bool):
        """A nested name scope; `block` for the body of a device if / while / loop."""
        self.scopes.append({})
        self.scope_is_block.append(block)
        self.shadowed.append({})
        try:
            yield
        finally:
            inner = self.scopes.pop()
            self.scope_is_block.pop()
            shadowed = self.shadowed.pop()
            if block:
                for name, span in shadowed.items():
                    for outer in reversed(self.scopes):
                        if name in outer:
                            outer[name] = _Stale(span)
                            break
                for name, v in inner.items():
                    if name not in shadowed and not isinstance(v, _Stale):
                        self.block_only[name] = self._bound_at.get(name, self.span(None))

    def check_rebinding(self, name: str, node) -> None:
        """A name bound outside a device if/loop and re-assigned inside it would, in Python, carry
        the new value out of the block (or into the next iteration); an IR let-binding cannot."""
        depth = next((k for k in range(len(self.scopes) - 1, -1, -1) if name in self.scopes[k]), None)
        if depth is None or depth == len(self.scopes) - 1:
            return
        old = self.scopes[depth][name]
        if isinstance(old, (Buffer, _Stale)) or not any(self.scope_is_block[depth + 1 :]):
            return
        value = getattr(node, "value", None)
        reads_self = isinstance(node, ast.AugAssign) or (
            value is not None
            and any(isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load) for n in ast.walk(value))
        )
        if reads_self:
            raise self.error(
                node,
                f"{name!r} is re-assigned from its own value inside a device if/loop; a name bound with `=` "
                f"is a fixed value, so the update would not carry over. Use {name} = T.alloc_var(dtype) "
                "before the block for a value that changes",
            )
        self.shadowed[-1].setdefault(name, self.span(node))

    def bind(self, name: str, value):
        self.scopes[-1][name] = value
        self.block_only.pop(name, None)
        self._bound_at[name] = current_span()

    def unique(self, name: str) -> str:
        n = self.names_used.get(name, 0)
        self.names_used[name] = n + 1
        return name if n == 0 else f"{name}_{n}"

    # ------------------------------------------------------------------ expressions
    def eval(self, node):
        with at(self.span(node)):
            try:
                m = getattr(self, "eval_" + type(node).__name__, None)
                if m is None:
                    return self.eval_fallback(node)
                return m(node)
            except (CompileError, _Return):
                raise
            except Exception as e:  # user helper code failing: name the line
                raise CompileError(f"{type(e).__name__}: {e}", self.span(node)) from e

    def eval_fallback(self, node):
        ns = dict(builtins.__dict__)
        ns.update(self.globals)
        ns.update(self.closure)
        for s in self.scopes:
            ns.update({k: v for k, v in s.items() if not isinstance(v, _Stale)})
        code = compile(ast.fix_missing_locations(ast.Expression(node)), self.file, "eval")
        return eval(code, ns)  # noqa: S307 - the user's own kernel code

    def eval_NamedExpr(self, node):
        raise self.error(node, "assignment expressions (:=) are not supported in kernels; assign on a line of "
                               "its own")

    def eval_Constant(self, node):
        return node.value

    def eval_Name(self, node):
        v = self.lookup(node.id, node)
        if isinstance(v, _vv.VectorVar):
            return v.value()
        return v.load() if isinstance(v, _eager.Ref) else v

    def eval_Attribute(self, node):
        obj = self.eval(node.value)
        try:
            return getattr(obj, node.attr)
        except AttributeError:
            raise self.error(node, f"{type(obj).__name__} has no attribute {node.attr!r}") from None

    def eval_Tuple(self, node):
        return tuple(self._eval_elts(node.elts))

    def eval_List(self, node):
        return list(self._eval_elts(node.elts))

    def _eval_elts(self, elts):
        out = []
        for e in elts:
            if isinstance(e, ast.Starred):
                out.extend(self.eval(e.value))
            else:
                out.append(self.eval(e))
        return out

    def eval_Dict(self, node):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                out.update(self.eval(v))
            else:
                out[self.eval(k)] = self.eval(v)
        return out

    def eval_Slice(self, node):
        lo = self.eval(node.lower) if node.lower else None
        hi = self.eval(node.upper) if node.upper else None
        st = self.eval(node.step) if node.step else None
        return slice(lo, hi, st)

    def eval_Subscript(self, node):
        obj = self.eval(node.value)
        idx = self.eval(node.slice)
        out = obj[idx]
        if isinstance(out, BufferLoad):
            _check_constant_indices(out.buffer, out.indices)
        return out

    def eval_BinOp(self, node):
        a = _dev(self.eval(node.left))
        b = _dev(self.eval(node.right))
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and (_is_device(a) or _is_device(b)):
            check_divisor(a, b)
        return _BINOPS[type(node.op)](a, b)

    def eval_UnaryOp(self, node):
        v = _dev(self.eval(node.operand))
        if isinstance(node.op, ast.Not):
            return logical_not(v) if isinstance(v, Expr) else (not v)
        if isinstance(node.op, ast.USub):
            return -v
        if isinstance(node.op, ast.UAdd):
            return +v
        return ~v

    def eval_BoolOp(self, node):
        is_and = isinstance(node.op, ast.And)
        acc = None
        for v_node in node.values:
            v = _dev(self.eval(v_node))
            if not isinstance(v, Expr):
                # Python value: short-circuit at parse time
                if is_and and not v:
                    return v if acc is None else False
                if not is_and and v:
                    return v if acc is None else True
                if acc is None and v_node is node.values[-1]:
                    return v
                continue
            acc = v if acc is None else (logical_and(acc, v) if is_and else logical_or(acc, v))
        if acc is None:
            return is_and
        return acc

    def eval_Compare(self, node):
        left = _dev(self.eval(node.left))
        result = None
        for op, right_node in zip(node.ops, node.comparators):
            right = _dev(self.eval(right_node))
            r = _CMPOPS[type(op)](left, right)
            if is_vector(r):  # lane-wise (a chain: each lane's comparisons and-ed)
                result = r if result is None else _lanes_and(result, r)
            elif isinstance(r, Expr):
                result = r if result is None else logical_and(result, r)
            elif not r:
                return False
            left = right
        return True if result is None else result

    def eval_IfExp(self, node):
        cond = _dev(self.eval(node.test))
        if not isinstance(cond, Expr):
            return self.eval(node.body) if cond else self.eval(node.orelse)

        return if_then_else(cond, _dev(self.eval(node.body)), _dev(self.eval(node.orelse)))

    def eval_Call(self, node):
        fn = self.eval(node.func)
        args = self._eval_elts(node.args)
        kwargs = {}
        for kw in node.keywords:
            if kw.arg is None:
                kwargs.update(self.eval(kw.value))
            else:
                kwargs[kw.arg] = self.eval(kw.value)
        if isinstance(fn, Macro):
            return fn.expand(args, kwargs, self.span(node))
        if fn is builtins.range:
            raise self.error(node, "range(...) is only supported as the iterable of a for loop in a kernel")
        if fn in (builtins.int, builtins.float, builtins.bool) and args and _is_device(args[0]):
            return cast(_dev(args[0]), {builtins.int: _dt.int32, builtins.float: _dt.float32, builtins.bool: _dt.bool_}[fn])
        if fn is builtins.abs and args and _is_device(args[0]):
            return tabs(args[0])
        out = fn(*args, **kwargs)
        return out.item() if isinstance(out, np.generic) else out

    def eval_JoinedStr(self, node):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
            else:
                val = self.eval(v.value)
                spec = self.eval(v.format_spec) if v.format_spec else ""
                parts.append(format(val, spec) if spec else str(val))
        return "".join(parts)

    # ------------------------------------------------------------------ statements
    def parse_body(self, stmts):
        for s in stmts:
            self.parse_stmt(s)

    def parse_stmt(self, node):
        with at(self.span(node)):
            m = getattr(self, "stmt_" + type(node).__name__, None)
            if m is None:
                raise self.error(node, f"{type(node).__name__} statements are not supported in kernels")
            try:
                m(node)
            except (CompileError, _Return):
                raise
            except RecursionError as e:
                raise CompileError(f"RecursionError: {e}", self.span(node)) from None
            except Exception as e:  # e.g. an operator applied to a value it does not support
                raise CompileError(f"{type(e).__name__}: {e}", self.span(node)) from e

    def emit(self, stmt):
        _builder.require("statement").emit(stmt)

    def stmt_Pass(self, node):
        pass

    def stmt_Expr(self, node):
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # docstring
        v = self.eval(node.value)
        if isinstance(v, Call) and v.name == "dp4a" and isinstance(v.args[2], BufferLoad):
            # TileLang's statement form accumulates into its third argument
            acc = v.args[2]
            self.emit(BufferStore(acc.buffer, acc.indices, v))
        elif isinstance(v, Call):
            self.emit(Evaluate(v))
        elif has_effects(v):  # `T.atomic_addx2(..., return_prev=True)` as a statement: the updates still run
            for e in v.values:
                self.emit(Evaluate(Call(e.name, e.args, _dt.handle, e.attrs)))

    def stmt_Return(self, node):
        if not self.is_macro:
            b = _builder.current()
            if b is None or len(b.frames) > 1 or b.kernels:
                raise self.error(node, "return is only allowed at the top level of the function, after the kernels, to "
                                       "return the outputs made with T.empty")
            raise _Return(self.eval(node.value) if node.value is not None else None)
        b = _builder.current()
        if b is not None and len(b.frames) > self.return_depth:
            raise self.error(
                node,
                "a macro can return only from its top level, not from inside a kernel, device if or loop; "
                "compute the value with T.if_then_else or write it into a buffer",
            )
        value = self.eval(node.value) if node.value is not None else None
        raise _Return(value)

    def stmt_Assert(self, node):
        cond = _dev(self.eval(node.test))
        if isinstance(cond, Expr):
            folded = simplify(cond)  # `M == M_` of one dynamic dimension read twice is true
            if isinstance(folded, Const):
                cond = bool(folded.value)
        if isinstance(cond, Expr) and _phase1():
            return  # T.const values are symbolic while the parameters are being found
        if isinstance(cond, Expr):
            raise self.error(node, "assert on a device value is not supported; use T.device_assert or an if")
        if not cond:
            msg = self.eval(node.msg) if node.msg is not None else "assertion failed"
            raise self.error(node, str(msg))

    def stmt_Break(self, node):
        self.emit(Break())

    def stmt_Continue(self, node):
        raise self.error(node, "continue outside a loop")

    def parse_loop_body(self, node, stmts):
        """A loop body, with `continue` rewritten into structured control flow (loop_continue.py)."""
        flag = f"__tw_continue_{id(node)}"
        try:
            stmts, uses_flag = loop_continue.loop_body(stmts, flag)
        except SyntaxError as e:
            raise self.error(node, str(e)) from None
        if uses_flag:  # false at the start of every iteration: allocated inside the body
            buf = Buffer(self.unique("continued"), (1,), _dt.bool_, "local.var")
            self.emit(Allocate(buf, Const(False, _dt.bool_)))
            self.bind(flag, buf)
        self.parse_body(stmts)

    def stmt_Global(self, node):
        raise self.error(node, "global statements are not supported in kernels")

    stmt_Nonlocal = stmt_Global

    def stmt_FunctionDef(self, node):
        raise self.error(node, "nested function definitions are not supported in kernels; define a @T.macro outside")

    def stmt_Import(self, node):
        raise self.error(node, "import statements are not supported in kernels; import at module level")

    stmt_ImportFrom = stmt_Import

    # assignment ------------------------------------------------------------
    def stmt_Assign(self, node):
        value = self.eval(node.value)
        for target in node.targets:
            self.assign(target, value, node)

    def stmt_AnnAssign(self, node):
        if node.value is None and isinstance(node.target, ast.Name) and not self.is_macro \
                and isinstance(self.scopes[0].get(node.target.id), _PendingParam):
            self.declare_param(node)
            return
        ann = self.eval(node.annotation)
        if node.value is None:
            raise self.error(node, "annotated declarations need a value")
        value = self.eval(node.value)
        if _vector_dtype(ann) and (is_vector(_dev(value)) or _is_device(value) or isinstance(value, (int, float))):
            value = _vv.make_vector(ann, _dev(value))  # `v: T.float32x4 = ...`: the lanes in that type
            ann = None
        try:
            dt = as_dtype(ann) if ann is not None else None
        except (TypeError, ValueError):
            dt = None
        if dt is not None and _is_device(value):
            value = cast(_dev(value), dt)
        elif dt is not None and isinstance(value, (int, float, bool)):
            value = as_expr(value, dt)
            if isinstance(node.target, ast.Name):
                v = Var(self.unique(node.target.id), dt)
                self.emit(LetStmt(v, value))
                self.bind(node.target.id, v)
                return
        self.assign(node.target, value, node)

    def declare_param(self, node):
        """`A: T.Tensor((M, K), dtype)` in the body declares parameter A (TileLang 0.1.8)."""
        name = node.target.id
        pending = self.scopes[0][name]
        if len(self.scopes) > 1 or _builder.require("a parameter declaration").kernels:
            raise self.error(node, f"declare parameter {name} at the top of the function, before `with T.Kernel`")
        ann = self.eval(node.annotation)
        with at(self.span(node)):
            param = _make_param(name, ann, self.span(node))
        self.param_slots[pending.index] = param
        self.scopes[0][name] = param
        self.names_used[name] = max(self.names_used.get(name, 0), 1)

    def assign(self, target, value, node):
        if isinstance(target, ast.Name):
            self.assign_name(target.id, value, node)
        elif isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, Expr):
                raise self.error(node, "cannot unpack a device value")
            vals = list(value)
            if len(vals) != len(target.elts):
                raise self.error(node, f"cannot unpack {len(vals)} values into {len(target.elts)} names")
            if len(vals) > 1:  # Python reads every right-hand value before the first store (`a, b = b, a`)
                vals = [self.snapshot(v) for v in vals]
            for t, v in zip(target.elts, vals):
                self.assign(t, v, node)
        elif isinstance(target, ast.Subscript):
            buf = self.eval(target.value)
            idx = self.eval(target.slice)
            self.store(buf, idx, value, node)
        else:
            raise self.error(node, f"cannot assign to {type(target).__name__}")

    def snapshot(self, value):
        """`value` with any memory it reads taken now, into a let-bound variable."""
        if isinstance(value, _eager.Ref):
            value = value.load()
        if isinstance(value, Expr) and (collect_loads(value) or _has_call(value)):
            v = Var(self.unique("tuple_value"), value.dtype)
            self.emit(LetStmt(v, value))
            return v
        return value

    def assign_name(self, name, value, node):
        try:
            old = self.lookup(name, node)
        except CompileError:
            old = None
        in_scope = any(name in s for s in self.scopes)
        if in_scope and isinstance(old, Buffer) and old.is_var and not isinstance(value, Buffer):
            self.store(old, (0,), value, node)
            return
        if in_scope and isinstance(old, _eager.Ref) and not isinstance(value, Buffer):
            self.store(old.buffer, old.indices, value, node)
            return
        if in_scope and isinstance(old, _vv.VectorVar) and not isinstance(value, _vv.VectorVar):
            old.assign(value)
            return
        if isinstance(value, _vv.VectorVar):  # T.alloc_var(T.float16x2): name the registers
            if value.regs.auto_named:
                value.regs.name = self.unique(name)
                value.regs.auto_named = False
            self.bind(name, value)
            return
        if is_vector(value):  # like a scalar: lanes that read memory are evaluated here
            self.check_rebinding(name, node)
            self.bind(name, snapshot(value, self.unique(name)))
            return
        if not isinstance(value, Buffer):
            self.check_rebinding(name, node)
        if isinstance(value, Buffer):
            if value.auto_named:  # name allocations after the user's variable
                value.name = self.unique(name)
                value.auto_named = False
            self.bind(name, value)
            return
        if isinstance(value, Expr):
            if not collect_loads(value) and not _has_call(value):
                self.bind(name, value)  # a pure index expression: inline it
                return
            v = Var(self.unique(name), value.dtype)
            self.emit(LetStmt(v, value))
            self.bind(name, v)
            return
        self.bind(name, value)

    def store(self, buf, idx, value, node):
        if not isinstance(buf, Buffer):
            raise self.error(node, f"cannot assign into {type(buf).__name__}; only buffer elements can be assigned")
        if not isinstance(idx, tuple):
            idx = (idx,)
        if any(is_vector(_dev(i)) for i in idx):  # A[T.Ramp(i, 1, 4)] = v: one store per lane
            _vv.store_lanes(buf, tuple(_dev(i) for i in idx), value)
            return
        if any(isinstance(i, slice) for i in idx):
            if is_vector(value):  # Y[i:i+2] = T.reinterpret(T.ldg64(...), ...), T.Broadcast(x, 2), ...
                _global_vector.store_vector(buf[idx], value)
                return
            raise self.error(node, f"assignment to a slice of {buf.name}: use T.fill or a T.Parallel loop")
        if buf.is_var and len(idx) == 1:
            pass
        elif len(idx) != buf.ndim:
            raise self.error(node, f"buffer {buf.name} has {buf.ndim} dimensions but is indexed with {len(idx)}")
        indices = []
        for i, dim in zip(idx, buf.shape if not (buf.is_var and len(idx) == 1) else (1,)):
            e = as_expr(from_end(_dev(i), dim))
            if not e.dtype.is_int:
                raise self.error(node, f"index {e} into {buf.name} has type {e.dtype}; indices must be integers")
            indices.append(e)
        _check_constant_indices(buf, indices)
        value = _dev(value)
        if isinstance(value, (Buffer, BufferRegion)):
            raise self.error(node, f"cannot store a buffer into an element of {buf.name}; use T.copy")
        # a Python literal the element type cannot hold is refused (TVM's ValueError), not wrapped
        check_literal(value, buf.dtype, f"store into {buf.name}")
        value = as_expr(value, buf.dtype)
        if value.dtype != buf.dtype:
            value = cast(value, buf.dtype)
        self.emit(BufferStore(buf, indices, value))

    def stmt_AugAssign(self, node):
        op = _BINOPS[type(node.op)]
        rhs = _dev(self.eval(node.value))
        t = node.target
        if isinstance(t, ast.Subscript):
            buf = self.eval(t.value)
            idx = self.eval(t.slice)
            if not isinstance(buf, Buffer):
                raise self.error(node, "augmented assignment needs a buffer element")
            cur = buf[idx] if not (buf.is_var) else buf.load_var()
            self.store(buf, idx, op(cur, rhs), node)
        elif isinstance(t, ast.Name):
            cur = self.lookup(t.id, node)
            if isinstance(cur, _eager.Ref):
                self.store(cur.buffer, cur.indices, op(cur.load(), rhs), node)
            elif isinstance(cur, Buffer) and cur.is_var:
                self.store(cur, (0,), op(cur.load_var(), rhs), node)
            elif isinstance(cur, _vv.VectorVar):
                cur.assign(op(cur.value(), rhs))
            elif isinstance(cur, Buffer):
                raise self.error(node, f"augmented assignment to buffer {cur.name}: index it")
            else:
                self.assign_name(t.id, op(cur, rhs), node)
        else:
            raise self.error(node, "unsupported augmented assignment target")

    # control flow ------------------------------------------------------------
    def stmt_If(self, node):
        cond = _dev(self.eval(node.test))
        if not isinstance(cond, Expr):
            self.parse_scoped(node.body if cond else node.orelse)
            return
        c = cond if cond.dtype.is_bool else cond != 0
        then_body = self.parse_block(node.body)
        else_body = self.parse_block(node.orelse) if node.orelse else None
        self.emit(IfThenElse(c, then_body, else_body))

    def parse_scoped(self, stmts):
        # Python-level branches share the enclosing scope (names bound there stay visible).
        self.parse_body(stmts)

    def parse_block(self, stmts):
        b = _builder.require("block")
        with b.frame() as body, self.scope(block=True):
            self.parse_body(stmts)
        return seq(body)

    def stmt_While(self, node):
        if node.orelse:
            raise self.error(node, "while ... else is not supported in kernels")
        cond = _dev(self.eval(node.test))
        if not isinstance(cond, Expr):
            raise self.error(node, "while loops need a device condition; use a for loop for Python-level iteration")
        b = _builder.require("block")
        with b.frame() as frame, self.scope(block=True):
            self.parse_loop_body(node, node.body)
        self.emit(While(cond, seq(frame)))

    def stmt_For(self, node):
        if node.orelse:
            raise self.error(node, "for ... else is not supported in kernels")
        it = node.iter
        if isinstance(it, ast.Call) and self._is_builtin_range(it.func):
            args = [_dev(self.eval(a)) for a in it.args]
            if not 1 <= len(args) <= 3 or it.keywords:
                raise self.error(node, "range() takes 1 to 3 positional arguments")
            spec = serial(*args)
        else:
            spec = self.eval(it)
        if hasattr(spec, "parse_for"):  # loops that bind their names themselves (T.Persistent)
            spec.parse_for(self, node)
            return
        if isinstance(spec, LoopSpec):
            self.parse_loop(node, spec)
            return
        if isinstance(spec, Expr):
            raise self.error(node, "cannot iterate over a device value; use T.serial(n)")
        try:
            items = list(spec)
        except TypeError:
            raise self.error(node, f"cannot iterate over {type(spec).__name__} in a kernel") from None
        if loop_continue.contains_continue(node.body):
            raise self.error(node, "continue in a loop over a Python iterable (unrolled while parsing) is not "
                                   "supported; guard the rest of the body with an if")
        for item in items:  # a Python iterable: unrolled while parsing
            self.assign(node.target, item, node)
            self.parse_body(node.body)

    def _is_builtin_range(self, fnode) -> bool:
        if not isinstance(fnode, ast.Name) or fnode.id != "range":
            return False
        try:
            return self.lookup("range", fnode) is builtins.range
        except CompileError:
            return False

    def parse_loop(self, node, spec: LoopSpec):
        target = node.target
        names = [target] if isinstance(target, ast.Name) else list(getattr(target, "elts", []))
        if not names or not all(isinstance(n, ast.Name) for n in names):
            raise self.error(node, "loop targets must be names")
        if len(names) != len(spec.ranges):
            raise self.error(
                node, f"the loop has {len(spec.ranges)} dimensions but binds {len(names)} names"
            )
        b = _builder.require("loop")
        loop_vars = [Var(self.unique(n.id), _dt.int32) for n in names]
        for v, (start, ext) in zip(loop_vars, spec.ranges):  # what a vector index's lanes can be (ir/vector.py)
            lo = 0 if spec.step is not None else const_value(as_expr(start))
            n = const_value(as_expr(ext))
            b.index_ranges[v] = (lo, lo + n - 1 if lo is not None and n is not None else None)
        with b.frame() as body, self.scope(block=True):
            b.loops.append(spec.kind)
            try:
                for n, v, (start, _) in zip(names, loop_vars, spec.ranges):
                    if spec.step is not None:
                        self.bind(n.id, as_expr(start) + v * spec.step)
                    else:
                        self.bind(n.id, v)
                self.parse_loop_body(node, node.body)
            finally:
                b.loops.pop()
        if any(isinstance(ext, int) and ext <= 0 for _, ext in spec.ranges):
            # range(0) / range(-4): no iteration, as in Python. The body was parsed (its errors
            # are still reported) but is not emitted: layout inference cannot lay out a loop of
            # no elements, and nothing of it runs on any target.
            return
        stmt = seq(body)
        for v, (start, ext) in reversed(list(zip(loop_vars, spec.ranges))):
            s = 0 if spec.step is not None else start
            stmt = For(v, s, ext, spec.kind, stmt, spec.annotations)
        self.emit(stmt)

    def stmt_With(self, node):
        item = node.items[0]
        spec = self.eval(item.context_expr)
        if hasattr(spec, "parse_with"):  # TVM script frames: T.If / T.Then / T.While / T.attr (control.py)
            if item.optional_vars is not None:
                raise self.error(node, f"{type(spec).__name__.strip('_').replace('Frame', '')} binds no names")
            body = node.body if len(node.items) == 1 else [
                ast.With(items=node.items[1:], body=node.body, lineno=node.lineno, col_offset=node.col_offset)]
            spec.parse_with(self, node, body)
            return
        if len(node.items) != 1:
            raise self.error(node, "use one context manager per with statement")
        if not isinstance(spec, KernelSpec):
            raise self.error(node, f"unsupported with-statement context {type(spec).__name__}; expected T.Kernel")
        b = _builder.require("T.Kernel")
        if _phase1():
            return  # finding the parameters of an eager function: the kernel body does not decide them
        if b.kernels:
            raise self.error(node, "T.Kernel cannot be nested")
        var_names = ["bx", "by", "bz"]
        targets = []
        if item.optional_vars is not None:
            ov = item.optional_vars
            targets = [ov] if isinstance(ov, ast.Name) else list(getattr(ov, "elts", []))
            if not all(isinstance(t, ast.Name) for t in targets):
                raise self.error(node, "T.Kernel binds block indices to plain names")
            if len(targets) != len(spec.grid):
                raise self.error(
                    node,
                    f"T.Kernel has {len(spec.grid)} grid dimensions but binds {len(targets)} names",
                )
        block_vars = []
        for i in range(len(spec.grid)):
            name = targets[i].id if i < len(targets) else var_names[i]
            block_vars.append(Var(self.unique(name), _dt.int32))
        thread_vars = [Var(self.unique(n), _dt.int32) for n in ("tx", "ty", "tz")[: len(spec.threads)]]
        frame = KernelFrame(block_vars, spec.grid, spec.threads, thread_vars)
        b.kernels.append(frame)
        with b.frame() as body, self.scope(block=False):
            frame.body_frame = body
            try:
                for t, v in zip(targets, block_vars):
                    self.bind(t.id, v)
                self.parse_body(node.body)
            finally:
                b.kernels.pop()
        attrs = dict(spec.attrs)
        attrs["uses_thread_binding"] = frame.thread_binding_used
        if frame.tensor_maps:
            attrs["tensor_maps"] = list(frame.tensor_maps)  # T.create_tma_descriptor's
        self.emit(Kernel(block_vars, spec.grid, spec.threads, thread_vars, seq(body), attrs))


def _check_constant_indices(buf: Buffer, indices) -> None:
    """Constant indices outside a static dimension are certain out-of-bounds accesses."""
    if buf.is_var:
        return
    for k, (i, dim) in enumerate(zip(indices, buf.shape)):
        v = i.value if isinstance(i, Const) else None
        if v is None or not isinstance(dim, int):
            continue
        if v < 0 or v >= dim:
            raise CompileError(f"index {v} is out of bounds for dimension {k} of {buf.name} (size {dim})")


def _phase1() -> bool:
    """Parsing an eager function to find its parameters (language/eager.py)."""
    b = _builder.current()
    return b is not None and b.eager is not None and b.eager.phase == 1


def _lanes_and(a, b):
    from ..ir.vector import Vector

    if is_vector(a) and is_vector(b) and a.lanes != b.lanes:
        raise CompileError(f"chained comparison: lanes mismatch between {a.type_name} and {b.type_name}")
    n = a.lanes if is_vector(a) else b.lanes
    return Vector([logical_and(a.values[k] if is_vector(a) else a, b.values[k] if is_vector(b) else b)
                   for k in range(n)])


def _vector_dtype(ann) -> bool:
    from ..ir.vector import is_vector_dtype, split_vector_dtype

    if is_vector_dtype(ann):
        return True
    if isinstance(ann, str):
        try:
            return split_vector_dtype(ann)[1] is not None
        except (TypeError, ValueError):
            return False
    return False


def _has_call(e) -> bool:
    found = []


    walk(e, lambda n: found.append(1) if isinstance(n, Call) else None)
    return bool(found)


# ---------------------------------------------------------------------------- entry points


def _source_info(func):
    try:
        lines, first = inspect.getsourcelines(func)
        file = inspect.getsourcefile(func) or func.__code__.co_filename
    except (OSError, TypeError) as e:
        raise CompileError(f"cannot read the source of {func.__name__}: {e}") from None
    src = textwrap.dedent("".join(lines))
    tree = ast.parse(src)
    fdef = tree.body[0]
    if not isinstance(fdef, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise CompileError(f"{func.__name__} is not a function definition")
    return fdef, file, first - 1


def _closure(func, outer: dict | None = None) -> dict:
    """Names the kernel body can see beyond globals: the decorating frame's locals (for names
    used only in annotations, which Python does not capture), then the function's own cells."""
    out = dict(outer) if outer else {}
    if func.__closure__:
        for name, cell in zip(func.__code__.co_freevars, func.__closure__):
            try:
                out[name] = cell.cell_contents
            except ValueError:
                pass
    return out


def _caller_locals(depth: int = 2) -> dict | None:
    """The locals of the frame that applied the decorator (None at module level)."""
    try:
        frame = sys._getframe(depth)
    except ValueError:
        return None
    if frame.f_locals is frame.f_globals:
        return None
    return dict(frame.f_locals)


def _annotation(p: Parser, func, arg):
    """A parameter's annotation: the object Python evaluated at definition time when there is
    one (it saw the enclosing scope), else the annotation's source evaluated here."""
    ann = getattr(func, "__annotations__", {}).get(arg.arg)
    if ann is not None and not isinstance(ann, str):
        return ann
    return p.eval(arg.annotation)


def parse_prim_func(func, outer: dict | None = None, eager=None, values: dict | None = None) -> PrimFunc:
    """`eager` (language/eager.py's EagerContext) parses a @jit function written without an inner
    prim_func; `values` are then its Python-valued parameters."""
    with deep_recursion():
        return _parse_prim_func(func, outer, eager, values or {})


def _parse_prim_func(func, outer: dict | None, eager, values: dict) -> PrimFunc:
    fdef, file, offset = _source_info(func)
    p = Parser(func, file, offset, func.__globals__, _closure(func, outer))
    declared = set(_eager.declared_in_body(fdef))
    with _builder.building() as b:
        b.eager = eager
        a = fdef.args
        for extra, form in ((a.vararg, "*"), (a.kwarg, "**")):
            if extra is not None:
                raise p.error(extra, f"a kernel cannot take {form}{extra.arg}: every parameter needs its own "
                                     "annotation such as T.Tensor((M, N), 'float16')")
        for arg in a.posonlyargs + ([] if eager is not None else a.kwonlyargs):
            raise p.error(arg, f"parameter {arg.arg}: positional-only and keyword-only parameters are not supported "
                               "in kernels")
        for arg in a.args + (a.kwonlyargs if eager is not None else []):
            name = arg.arg
            ann = _annotation(p, func, arg) if arg.annotation is not None and name not in declared else None
            if name in declared:
                pending = _PendingParam(name, len(p.param_slots))
                p.param_slots.append(pending)
                p.bind(name, pending)
                continue
            if eager is not None and not _eager.is_kernel_annotation(ann):
                if name not in values:
                    raise p.error(arg, f"{func.__name__}: missing argument {name!r}")
                p.bind(name, py_scalar(values[name]))  # a Python value, fixed at compile time
                continue
            if ann is None:
                raise p.error(arg, f"parameter {name} needs an annotation such as T.Tensor((M, N), 'float16'), "
                                   f"in the signature or as `{name}: T.Tensor(...)` at the top of the body")
            with at(p.span(arg)):
                param = _make_param(name, ann, p.span(arg))
            p.param_slots.append(param)
            p.bind(name, param)
            p.names_used[name] = 1
        # a prim_func body is a sequence of kernels; anything else must be inside one
        body_nodes = [s for s in fdef.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        try:
            p.parse_body(body_nodes)
            returned, has_return = None, False
        except _Return as r:
            returned, has_return = r.value, True
        for slot in p.param_slots:
            if isinstance(slot, _PendingParam):
                raise p.error(fdef, f"parameter {slot.name} is never declared: its `{slot.name}: T.Tensor(...)` line "
                                    "was not reached")
        body = seq(b.frames[0])
        # a T.ptr parameter stands for the tensor T.make_tensor made of it
        params = [b.pointer_tensors.get(x, x) if isinstance(x, Var) else x for x in p.param_slots]
        attrs = dict(b.func_attrs)
        out_idx = _returned_outputs(p, fdef, b.outputs, returned, has_return)
        if b.outputs:
            attrs["tilelang_out_idx"] = out_idx
            params += b.outputs
        if b.workspaces:  # T.alloc_global: hidden parameters after all others (jit/kernel.py)
            attrs["tilewise_workspaces"] = len(b.workspaces)
            params += b.workspaces
    if eager is None or eager.phase == 2:
        body = _host_kernel(body)
        _check_top_level(body)
    return PrimFunc(fdef.name, params, body, attrs=attrs, span=p.span(fdef))


def _returned_outputs(p: Parser, fdef, outputs: list, returned, has_return: bool) -> list[int]:
    """out_idx of the T.empty outputs, in the order `return` lists them (negative indices)."""
    if not has_return or returned is None:
        if outputs:
            names = ", ".join(o.name for o in outputs)
            raise p.error(fdef, f"{fdef.name} makes output(s) {names} with T.empty but does not return them: end the "
                                f"function with `return {names}`")
        return []
    items = list(returned) if isinstance(returned, (tuple, list)) else [returned]
    out = []
    for v in items:
        k = next((i for i, o in enumerate(outputs) if o is v), None)
        if k is None:
            what = v.name if isinstance(v, Buffer) else repr(v)
            raise p.error(fdef, f"{fdef.name} returns {what}, but a kernel function returns only tensors made with "
                                "T.empty (the call allocates them)")
        if k - len(outputs) in out:
            raise p.error(fdef, f"{fdef.name} returns {outputs[k].name} twice")
        out.append(k - len(outputs))
    missing = [o.name for i, o in enumerate(outputs) if i - len(outputs) not in out]
    if missing:
        raise p.error(fdef, f"{fdef.name} makes {', '.join(missing)} with T.empty but does not return it; every "
                            "T.empty tensor is an output and must be returned")
    return out


def _make_param(name, ann, span):
    if isinstance(ann, TensorAnnotation):
        if ann.scope != "global":
            raise CompileError(f"parameter {name}: kernel parameters are global tensors (T.Tensor)", span)
        buf = Buffer(name, ann.shape, ann.dtype, "global", span=span)
        buf.explicit_strides = ann.strides
        return buf
    if isinstance(ann, (DataType, ScalarAnnotation)):
        return Var(name, as_dtype(ann))
    if isinstance(ann, Var):
        return ann
    if isinstance(ann, str):
        try:
            return Var(name, as_dtype(ann))
        except ValueError:
            pass
    raise CompileError(
        f"parameter {name}: unsupported annotation {ann!r}; use T.Tensor(shape, dtype) or a scalar type like T.int32",
        span,
    )


def _host_kernel(body):
    """A prim_func with no T.Kernel anywhere is host code in TileLang (its CPU target runs the
    statements directly): here it becomes the body of an implicit kernel of one block and one
    thread, which the CPU target runs as written and GPU targets refuse
    (transform/check_host_kernel.py). Bodies with a kernel are left to _check_top_level."""
    stmts = body.stmts if isinstance(body, SeqStmt) else [body]
    found: list = []
    walk(body, lambda n: found.append(n) if isinstance(n, Kernel) else None)
    if found or not [s for s in stmts if not isinstance(s, (LetStmt, Allocate, Annotation))]:
        return body
    bx, tx = Var("bx", _dt.int32), Var("tx", _dt.int32)
    attrs = {"host_code": True, "uses_thread_binding": False}
    return Kernel([bx], [1], [1], [tx], body, attrs, span=stmts[0].span)


def _check_top_level(body):
    stmts = body.stmts if isinstance(body, SeqStmt) else [body]
    for s in stmts:
        if isinstance(s, (Kernel, LetStmt)):
            continue
        if isinstance(s, Allocate) and s.buffer.is_global:
            continue
        if isinstance(s, Annotation) and s.kind == "import_source":  # T.import_source: file-level text
            continue
        raise CompileError(
            f"{type(s).__name__} outside `with T.Kernel(...)`: every statement of a prim_func must be inside a kernel",
            s.span,
        )


class Macro:
    """`@T.macro`: a helper whose body is inlined where it is called inside a kernel."""

    def __init__(self, func, outer: dict | None = None):
        self.func = func
        self.outer = outer
        self.__name__ = func.__name__
        self.__doc__ = func.__doc__
        self._parsed = None

    def __call__(self, *args, **kwargs):
        if _builder.current() is None:
            raise CompileError(f"macro {self.__name__} can only be called inside a @T.prim_func")
        return self.expand(args, kwargs, None)

    def expand(self, args, kwargs, span):
        if self._parsed is None:
            self._parsed = _source_info(self.func)
        fdef, file, offset = self._parsed
        p = Parser(self.func, file, offset, self.func.__globals__, _closure(self.func, self.outer))
        p.is_macro = True
        p.return_depth = len(_builder.require(f"macro {self.__name__}").frames)
        sig = inspect.signature(self.func)
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            raise CompileError(f"macro {self.__name__}: {e}", span) from None
        bound.apply_defaults()
        anns = {a.arg: a for a in fdef.args.args + fdef.args.kwonlyargs if a.annotation is not None}
        for name, value in bound.arguments.items():
            arg = anns.get(name)
            if arg is not None:
                ann = _annotation(p, self.func, arg)
                value = _check_macro_arg(self.__name__, name, ann, value, span)
            p.bind(name, value)
        try:
            p.parse_body(fdef.body)
        except _Return as r:
            return r.value
        return None


def _check_macro_arg(macro, name, ann, value, span):
    if ann is _eager.Ref or ann is Var:
        with at(span):
            return _eager.Ref.of(name, value)
    if isinstance(ann, TensorAnnotation):
        with at(span):
            ann.check(name, value)
        return value
    dt = None
    if isinstance(ann, (DataType, ScalarAnnotation)):
        dt = as_dtype(ann)
    if dt is not None:
        if isinstance(value, Buffer) and not value.is_var:
            raise CompileError(f"macro {macro}: parameter {name} expects a {dt} scalar, got buffer {value.name}", span)
        v = _dev(value)
        if isinstance(v, Expr):
            return cast(v, dt) if v.dtype != dt else v
        if isinstance(v, (int, float, bool)):
            return v
        raise CompileError(f"macro {macro}: parameter {name} expects a {dt} scalar, got {v!r}", span)
    return value


def prim_func(func=None, *, private: bool = False):
    """Decorator: parse a kernel function into a PrimFunc."""
    outer = _caller_locals()
    if func is None:
        return lambda f: parse_prim_func(f, outer)
    return parse_prim_func(func, outer)


def macro(func=None, *, hygienic: bool = True):
    """Decorator: a helper inlined where a kernel calls it."""
    outer = _caller_locals()
    if func is None:
        return lambda f: Macro(f, outer)
    return Macro(func, outer)

