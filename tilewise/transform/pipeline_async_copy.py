"""T.async_copy inside T.Pipelined: the copies become the pipeline's producers.

TileLang's pipeliner treats an explicit `T.async_copy(src, dst)` followed by
`T.ptx_wait_group(0)` in a `T.Pipelined` body like `T.copy(src, dst)`: the loop is software
pipelined (its own test `test_tilelang_language_async_copy_gemm_sm80` checks that the two forms
give the same CUDA source). So does tilewise: before staging, each top-level T.async_copy of the
body becomes a cp.async copy the pipeline issues num_stages - 1 iterations ahead, and the
body's `T.ptx_wait_group(0)` statements are dropped (the pipeline waits for each stage itself).

Only when that reading is unambiguous: every cp.async wait of the body is a top-level
`wait_group 0`, the body issues no cp.async of its own (T.ptx_cp_async, commits), and no
explicit `stage=` / `order=` schedule numbers its statements. Otherwise the body runs as written
(the copies and waits where the program put them; correct, without overlap) and a lowering note
says why. Only where the pipeline issues cp.async (not on the CPU, AMD GPUs, or with
"tir.use_async_copy": False): there T.async_copy keeps its own meaning (a synchronous copy on the
CPU, a CompileError on AMD GPUs)."""
from __future__ import annotations

from ..ir.expr import Call
from ..ir.stmt import Evaluate, For
from ..ir.visitor import walk
from ..tileop.async_copy import AsyncCopy
from ..tileop.copy import Copy


def _call_name(s) -> str | None:
    return s.value.name if isinstance(s, Evaluate) and isinstance(s.value, Call) else None


def absorb_async_copies(f: For, stmts: list) -> tuple[list, str | None]:
    """(statements, note): the body with its T.async_copy statements as pipeline producers and
    their waits dropped, or unchanged with the reason (None when there is no T.async_copy)."""
    if not any(isinstance(s, AsyncCopy) for s in stmts):
        return stmts, None
    why = None
    if any(k in f.annotations for k in ("stage", "order")):
        why = "the loop has an explicit stage= / order= schedule"
    top_waits = {id(s) for s in stmts if _call_name(s) == "cp_async_wait"}
    if why is None:
        for s in stmts:
            if _call_name(s) == "cp_async_wait" and int(s.value.attrs.get("n", 0)) != 0:
                why = "a T.ptx_wait_group(n) with n > 0 (the program pipelines its copies itself)"
                break
    if why is None:
        found = []

        def f_(n):
            if isinstance(n, Call) and n.name in ("cp_async", "cp_async_commit", "cp_async_wait",
                                                  "cp_async_mbarrier_arrive"):
                found.append(n.name)

        for s in stmts:
            if not isinstance(s, AsyncCopy) and id(s) not in top_waits:
                walk(s, f_)
        if found:
            why = "the body also issues or waits for cp.async copies of its own (T.ptx_cp_async / its groups)"
    if why is not None:
        return stmts, (f"T.Pipelined: its T.async_copy statements run where they are written, not pipelined: {why}")
    out = []
    for s in stmts:
        if isinstance(s, AsyncCopy):
            c = Copy(s.src, s.dst, disable_tma=True)  # cp.async, as T.async_copy (never the copy engine)
            c.span = s.span
            out.append(c)
        elif id(s) not in top_waits:
            out.append(s)
    return out, None
