"""GPU targets: a prim_func written without T.Kernel (host code, which TileLang's CPU target runs
directly) has no launch to give a GPU. The parser made its body an implicit one-block, one-thread
kernel after parsing (language/parser.py `_host_kernel`), which the CPU target runs as written; here, on a
thread target, it is a CompileError naming why rather than a one-thread launch nobody asked for."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.stmt import Kernel, PrimFunc
from ..ir.visitor import walk


def check_host_kernel(func: PrimFunc) -> PrimFunc:
    found: list[Kernel] = []
    walk(func.body, lambda n: found.append(n) if isinstance(n, Kernel) and n.attrs.get("host_code") else None)
    if found:
        raise CompileError(
            f"{func.name} has no `with T.Kernel(...)`: a prim_func without one is host code, which only the CPU "
            "target runs; for a GPU target put its statements in a kernel (with T.Kernel(1, threads=...):)",
            func.span)
    return func
