"""`continue` (TVM's `T.continue_loop()`) in kernel loops, rewritten into structured control flow before the loop body is
parsed (the IR has `break` but no `continue`):

- statements after a `continue` in the same block are dead and dropped;
- `if c: ...; continue` followed by more statements moves those statements into the branch that
  does not continue: `if c: ... else: rest` (no copy, no flag), recursively;
- where a branch only sometimes continues and statements follow it, a per-iteration flag is set
  by every `continue` and those statements run under `if not flag`.

A `continue` inside a nested loop belongs to that loop, which is rewritten when it is parsed."""
from __future__ import annotations

import ast

NEVER, ALWAYS, MAYBE = "never", "always", "maybe"


def is_continue(s) -> bool:
    """`continue`, or TVM's spelling `T.continue_loop()` as a statement."""
    if isinstance(s, ast.Continue):
        return True
    return (isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and not s.value.args
            and isinstance(s.value.func, ast.Attribute) and s.value.func.attr == "continue_loop")


class NeedsFlag(Exception):
    """A branch that sometimes continues is followed by more statements."""


def contains_continue(stmts) -> bool:
    """A `continue` of the loop these statements are the body of (not of a nested loop)."""
    for s in stmts:
        if is_continue(s):
            return True
        if isinstance(s, (ast.For, ast.While, ast.AsyncFor, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody"):
            sub = getattr(s, field, None)
            if isinstance(sub, list) and contains_continue(sub):
                return True
        for h in getattr(s, "handlers", []) or []:
            if contains_continue(h.body):
                return True
    return False


def rewrite(stmts: list, flag: str | None) -> tuple[list, str]:
    """(statements without `continue`, whether running them ends in a continue: NEVER, ALWAYS or
    MAYBE). With flag=None, raises NeedsFlag where a flag is needed."""
    out: list = []
    for i, s in enumerate(stmts):
        if is_continue(s):
            if flag is not None:
                out.append(_set(flag, True, s))
            return out, ALWAYS
        if not contains_continue([s]):
            out.append(s)
            continue
        rest = stmts[i + 1:]
        if isinstance(s, ast.If):
            body, sb = rewrite(s.body, flag)
            orelse, so = rewrite(s.orelse, flag)
            if sb == ALWAYS and so == ALWAYS:
                out.append(_if(s, body, orelse))
                return out, ALWAYS
            if {sb, so} == {ALWAYS, NEVER}:
                # the rest runs exactly when the branch that never continues ran
                if sb == NEVER:
                    body, sr = rewrite(s.body + rest, flag)
                else:
                    orelse, sr = rewrite(s.orelse + rest, flag)
                out.append(_if(s, body, orelse))
                return out, MAYBE
            out.append(_if(s, body, orelse))  # MAYBE in a branch
        else:
            raise SyntaxError(f"`continue` inside a {type(s).__name__.lower()} statement is not supported; "
                              "write the condition as an `if`")
        if not rest or all(isinstance(r, ast.Pass) for r in rest):
            return out, MAYBE
        if flag is None:
            raise NeedsFlag
        guarded, _ = rewrite(rest, flag)
        out.append(ast.If(test=ast.UnaryOp(op=ast.Not(), operand=_name(flag, s)), body=guarded, orelse=[],
                          lineno=rest[0].lineno, col_offset=rest[0].col_offset))
        return out, MAYBE
    return out, NEVER


def _if(s: ast.If, body: list, orelse: list) -> ast.If:
    return ast.If(test=s.test, body=body or [ast.Pass(lineno=s.lineno, col_offset=s.col_offset)], orelse=orelse,
                  lineno=s.lineno, col_offset=s.col_offset)


def _name(flag: str, at) -> ast.Name:
    return ast.Name(id=flag, ctx=ast.Load(), lineno=at.lineno, col_offset=at.col_offset)


def _set(flag: str, value: bool, at) -> ast.Assign:
    return ast.Assign(targets=[ast.Name(id=flag, ctx=ast.Store(), lineno=at.lineno, col_offset=at.col_offset)],
                      value=ast.Constant(value=value, lineno=at.lineno, col_offset=at.col_offset),
                      lineno=at.lineno, col_offset=at.col_offset)


def loop_body(stmts: list, flag: str) -> tuple[list, bool]:
    """The loop body without `continue`, and whether it uses the flag `flag` (which the caller
    then binds to a bool that is false at the start of every iteration)."""
    if not contains_continue(stmts):
        return stmts, False
    try:
        return rewrite(stmts, None)[0], False
    except NeedsFlag:
        return rewrite(stmts, flag)[0], True
