"""A program description as tilewise source text: the kernel a failure report prints and a
replay script runs. Several programs can share one prim_func (one `T.Kernel` each, names
prefixed) so that the CPU target compiles a batch with one g++ run."""
from __future__ import annotations

import re

from .program import (
    Abs,
    Assign,
    AtomicElem,
    AtomicTile,
    Bin,
    Cast,
    Const,
    Copy,
    CumSum,
    DCast,
    Fill,
    Gemm,
    Idx,
    If,
    Lane,
    Load,
    Loop,
    Neg,
    Parallel,
    Program,
    Reduce,
    Ref,
    Select,
)

_LOOP_VARS = ("i", "j")


def _lit(v) -> str:
    if isinstance(v, bool):
        return repr(v)
    if isinstance(v, float):
        if v != v:
            return 'T.float32("nan")'
        if v in (float("inf"), float("-inf")):
            return f"T.infinity('float32') * {1 if v > 0 else -1}"
    text = repr(v)
    return f"({text})" if text.startswith("-") else text


def cond_text(cond: tuple[str, ...]) -> str:
    return " and ".join(f"({c})" if " or " in c else c for c in cond) if cond else "True"


class _Emitter:
    def __init__(self, prog: Program, prefix: str = ""):
        self.prog = prog
        self.prefix = prefix
        self.lines: list[str] = []

    def name(self, buf: str) -> str:
        return self.prefix + buf

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    # ------------------------------------------------------------------ expressions
    def expr(self, e) -> str:
        if isinstance(e, Load):
            return f"{self.name(e.buf)}[{', '.join(self.sym(x) for x in e.idx)}]"
        if isinstance(e, Const):
            return _lit(e.value)
        if isinstance(e, Idx):
            return f"({self.sym(e.expr)})"
        if isinstance(e, Bin):
            a, b = self.expr(e.a), self.expr(e.b)
            if e.op in ("max", "min"):
                return f"T.{e.op}({a}, {b})"
            return f"({a} {e.op} {b})"
        if isinstance(e, Neg):
            return f"(-{self.expr(e.a)})"
        if isinstance(e, Abs):
            return f"T.abs({self.expr(e.a)})"
        if isinstance(e, Cast):
            return f'T.cast({self.expr(e.a)}, "{e.dtype}")'
        if isinstance(e, DCast):
            sat = "" if e.sat else ", sat=False"
            inner = f'T.cast({self.expr(e.a)}, "{e.via or e.dtype}", round="{e.mode}"{sat})'
            return f'T.cast({inner}, "{e.dtype}")' if e.via else inner
        if isinstance(e, Lane):
            idx = [self.sym(x) for x in e.load.idx]
            base = f"{idx[-1]} - {e.lane * e.stride}" if e.lane * e.stride else idx[-1]
            idx[-1] = f"T.Ramp({base}, {e.stride}, {e.lanes})"
            v = f"{self.name(e.load.buf)}[{', '.join(idx)}]"
            if e.op is not None:
                o = f"T.Broadcast({self.expr(e.other)}, {e.lanes})"
                v = f"T.{e.op}({v}, {o})" if e.op in ("max", "min") else f"({v} {e.op} {o})"
            return f"T.extract_lane({v}, {e.lane})"
        if isinstance(e, Select):
            return f"T.if_then_else({self.sym(cond_text(e.cond))}, {self.expr(e.a)}, {self.expr(e.b)})"
        raise TypeError(f"not an expression: {e!r}")

    def ref(self, r: Ref) -> str:
        n = self.name(r.buf)
        if r.kind == "whole":
            return n
        starts = [self.sym(s) for s in r.starts]
        if r.kind == "corner":
            return f"{n}[{', '.join(starts)}]"
        parts = [f"{s}:{s} + {e}" if _simple(s) else f"({s}):({s}) + {e}" for s, e in zip(starts, r.extents)]
        return f"{n}[{', '.join(parts)}]"

    # ------------------------------------------------------------------ statements
    def ops(self, ops: list, depth: int) -> None:
        if not ops:
            self.line(depth, "pass")
        for op in ops:
            self.op(op, depth)

    def op(self, op, depth: int) -> None:
        if isinstance(op, Fill):
            if op.clear:
                self.line(depth, f"T.clear({self.ref(op.dst)})")
            else:
                self.line(depth, f"T.fill({self.ref(op.dst)}, {_lit(op.value)})")
        elif isinstance(op, Copy):
            self.line(depth, f"T.copy({self.ref(op.src)}, {self.ref(op.dst)})")
        elif isinstance(op, Parallel):
            names = ", ".join(_LOOP_VARS[: len(op.extents)])
            self.line(depth, f"for {names} in T.Parallel({', '.join(str(e) for e in op.extents)}):")
            self.ops(op.body, depth + 1)
        elif isinstance(op, Assign):
            self.line(depth, f"{self.name(op.dst)}[{', '.join(self.sym(x) for x in op.idx)}] = {self.expr(op.value)}")
        elif isinstance(op, AtomicElem):
            idx = ", ".join(self.sym(x) for x in op.idx)
            val = self.expr(op.value)
            if op.op.startswith("addx"):
                val = f"T.Broadcast({val}, {op.op[4:]})"
            self.line(depth, f"T.atomic_{op.op}({self.name(op.dst)}[{idx}], {val})")
        elif isinstance(op, Reduce):
            self.line(depth, f"T.reduce_{op.kind}({self.name(op.src)}, {self.name(op.dst)}, dim={op.dim}, "
                             f"clear={op.clear})")
        elif isinstance(op, CumSum):
            dst = f", {self.name(op.dst)}" if op.dst is not None else ""
            self.line(depth, f"T.cumsum({self.name(op.src)}{dst}, dim={op.dim}, reverse={op.reverse})")
        elif isinstance(op, Gemm):
            policy = "" if op.policy == "Square" else f", policy=T.GemmWarpPolicy.{op.policy}"
            policy += ", clear_accum=True" if op.clear_accum else ""
            self.line(depth, f"T.gemm({self.name(op.a)}, {self.name(op.b)}, {self.name(op.c)}, "
                             f"transpose_A={op.trans_a}, transpose_B={op.trans_b}{policy})")
        elif isinstance(op, AtomicTile):
            self.line(depth, f"T.atomic_{op.op}({self.ref(op.dst)}, {self.name(op.src)})")
        elif isinstance(op, Loop):
            if op.kind == "pipelined":
                self.line(depth, f"for k in T.Pipelined({op.extent}, num_stages={op.stages}):")
            elif op.kind == "serial":
                self.line(depth, f"for k in T.serial({op.extent}):")
            else:
                self.line(depth, f"for k in range({op.extent}):")
            self.ops(op.body, depth + 1)
        elif isinstance(op, If):
            self.line(depth, f"if {self.sym(cond_text(op.cond))}:")
            self.ops(op.body, depth + 1)
            if op.orelse:
                self.line(depth, "else:")
                self.ops(op.orelse, depth + 1)
        else:
            raise TypeError(f"not an operation: {op!r}")

    def sym(self, text: str) -> str:
        """An index string with the dynamic dimensions' names as this program's symbols."""
        for d in self.prog.dims:
            text = re.sub(rf"\b{d}\b", self.prefix + d, text)
        return text

    def params(self) -> list[str]:
        out = []
        for t in self.prog.tensors:
            dims = [self.sym(d) if isinstance(d, str) else str(d) for d in t.shape]
            shape = f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"
            out.append(f'{self.name(t.name)}: T.Tensor({shape}, "{t.dtype}")')
        return out

    def symbols(self) -> list[str]:
        return [f'{self.prefix}{d} = T.symbolic("{self.prefix}{d}")' for d in self.prog.dims]

    def kernel(self, depth: int) -> None:
        g = self.prog.grid
        names = ("bx", "by")[: len(g)]
        bind = f"({', '.join(names)})" if len(names) > 1 else names[0]
        grid = ", ".join(self.sym(x) if isinstance(x, str) else str(x) for x in g)
        self.line(depth, f"with T.Kernel({grid}, threads={self.prog.threads}) as {bind}:")
        for t in self.prog.tiles:
            alloc = "alloc_shared" if t.scope == "shared" else "alloc_fragment"
            self.line(depth + 1, f'{self.name(t.name)} = T.{alloc}({tuple(t.shape)!r}, "{t.dtype}")')
        if self.prog.safe:
            pairs = ", ".join(f"{self.name(k)}: {_lit(v)}" for k, v in self.prog.safe.items())
            self.line(depth + 1, f"T.annotate_safe_value({{{pairs}}})")
        self.ops(self.prog.body, depth + 1)


def _simple(s: str) -> bool:
    return s.replace("_", "").isalnum()


def kernel_source(progs: list[Program], prefixed: bool | None = None, func_name: str = "main") -> str:
    """`def build():` returning one prim_func holding every program's kernel, in order."""
    prefixed = len(progs) > 1 if prefixed is None else prefixed
    emitters = [_Emitter(p, f"p{n}_" if prefixed else "") for n, p in enumerate(progs)]
    out = _Emitter(progs[0])
    out.line(0, "def build():")
    for e in emitters:
        for line in e.symbols():
            out.line(1, line)
    out.line(1, "@T.prim_func")
    params = [p for e in emitters for p in e.params()]
    out.line(1, f"def {func_name}(")
    for p in params:
        out.line(3, p + ",")
    out.line(1, "):")
    for e in emitters:
        e.kernel(2)
        out.lines += e.lines
    out.line(1, f"return {func_name}")
    return "import tilewise.language as T\n\n\n" + "\n".join(out.lines) + "\n"


def program_source(prog: Program) -> str:
    """A runnable script: the kernel, and a main that checks it on every target against the
    numpy oracle (python this_file.py)."""
    return (
        kernel_source([prog])
        + "\n\n# the description the kernel above was emitted from (the numpy oracle reads it)\n"
        + "from tilewise.testing.fuzz.program import *  # noqa: E402,F401,F403\n\n"
        + f"PROGRAM = {prog!r}\n\n\n"
        + 'if __name__ == "__main__":\n'
        + "    from tilewise.testing.fuzz.runner import replay_main\n\n"
        + "    replay_main(PROGRAM, build)\n"
    )
