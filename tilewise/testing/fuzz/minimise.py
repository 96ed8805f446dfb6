"""Shrinking a failing program: greedy passes over smaller variants of the description (an
operation removed, a condition or loop unwrapped, a subexpression replaced by an operand, fewer
blocks or threads, smaller tensors, unused buffers dropped), keeping a variant when the oracle
still accepts it and the target still fails the same way, until no variant is kept."""
from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable, Iterator

from .oracle import Degenerate, GeneratorBug
from .program import Abs, Assign, AtomicElem, Bin, Cast, If, Load, Loop, Neg, Parallel, Program, Reduce, Select, walk
from .runner import Failure, Runner


def _lists(prog: Program) -> Iterator[list]:
    """Every statement list of the program (the body, loop and if bodies, T.Parallel bodies)."""
    def rec(ops):
        yield ops
        for op in ops:
            if isinstance(op, (Loop, Parallel)):
                yield from rec(op.body)
            elif isinstance(op, If):
                yield from rec(op.body)
                yield from rec(op.orelse)

    yield from rec(prog.body)


def _variants(prog: Program) -> Iterator[Program]:
    # one statement fewer (later ones first: sinks, then transforms)
    n_lists = len(list(_lists(prog)))
    for li in range(n_lists):
        size = len(list(_lists(prog))[li])
        for k in reversed(range(size)):
            p = copy.deepcopy(prog)
            ops = list(_lists(p))[li]
            if len(ops) == 1 and li > 0:
                continue  # an empty loop or T.Parallel: removed as a whole instead
            del ops[k]
            yield p
    # unwrap conditions and loops, simplify loops
    for li in range(n_lists):
        size = len(list(_lists(prog))[li])
        for k in range(size):
            op = list(_lists(prog))[li][k]
            if isinstance(op, If):
                for branch in ("body", "orelse"):
                    p = copy.deepcopy(prog)
                    ops = list(_lists(p))[li]
                    ops[k:k + 1] = getattr(ops[k], branch)
                    yield p
            elif isinstance(op, Loop):
                p = copy.deepcopy(prog)
                ops = list(_lists(p))[li]
                ops[k:k + 1] = _substitute(ops[k].body, "k", "0")  # the loop's first iteration alone
                yield p
                for change in ({"extent": 1}, {"extent": op.extent - 1}, {"kind": "serial", "stages": 0},
                               {"stages": 1}):
                    if all(getattr(op, a) == v for a, v in change.items()) or change.get("extent", 1) < 1:
                        continue
                    p = copy.deepcopy(prog)
                    target = list(_lists(p))[li][k]
                    for a, v in change.items():
                        setattr(target, a, v)
                    yield p
            elif isinstance(op, Reduce) and not op.clear:
                p = copy.deepcopy(prog)
                list(_lists(p))[li][k].clear = True
                yield p
    # simpler expressions
    for n, op in enumerate(walk(prog.body)):
        if isinstance(op, (Assign, AtomicElem)):
            for simpler in _smaller_exprs(op.value):
                p = copy.deepcopy(prog)
                list(walk(p.body))[n].value = simpler
                yield p
    # fewer blocks, threads, special values
    for d, g in enumerate(prog.grid):
        if isinstance(g, str):
            continue
        for smaller in sorted({1, g // 2, g - 1}):
            if 1 <= smaller < g:
                p = copy.deepcopy(prog)
                p.grid = tuple(smaller if i == d else x for i, x in enumerate(prog.grid))
                yield p
    for t in (32, 64, 128):
        if t < prog.threads:
            p = copy.deepcopy(prog)
            p.threads = t
            yield p
    if prog.special_values:
        p = copy.deepcopy(prog)
        p.special_values = False
        yield p
    # smaller tensors
    for name, size in prog.dims.items():
        for smaller in sorted({0, 1, size // 2, size - 1}):
            if 0 <= smaller < size:
                p = copy.deepcopy(prog)
                p.dims[name] = smaller
                yield p
    for n, t in enumerate(prog.tensors):
        for d, size in enumerate(t.shape):
            if isinstance(size, str):
                continue
            for smaller in sorted({1, size // 2, size - 1}):
                if 1 <= smaller < size:
                    p = copy.deepcopy(prog)
                    p.tensors[n].shape = tuple(smaller if i == d else x for i, x in enumerate(t.shape))
                    yield p


def _substitute(obj, name: str, value: str):
    """obj with the index variable `name` replaced by `value` in every index string."""
    if isinstance(obj, str):
        return re.sub(rf"\b{name}\b", value, obj)
    if isinstance(obj, list):
        return [_substitute(x, name, value) for x in obj]
    if isinstance(obj, tuple):
        return tuple(_substitute(x, name, value) for x in obj)
    if dataclasses.is_dataclass(obj):
        out = copy.copy(obj)
        for f in dataclasses.fields(obj):
            if f.name not in ("buf", "dst", "src", "a", "b", "c", "dtype", "op", "kind"):
                setattr(out, f.name, _substitute(getattr(obj, f.name), name, value))
            elif not isinstance(getattr(obj, f.name), str):
                setattr(out, f.name, _substitute(getattr(obj, f.name), name, value))
        return out
    return obj


def _smaller_exprs(e) -> Iterator[object]:
    """Expressions of the same type made of fewer nodes: an operand in place of the node, or the
    node with a smaller operand."""
    if isinstance(e, (Bin, Select)):
        for child in (e.a, e.b):
            if _typed_like(child, e):
                yield child
        for field in ("a", "b"):
            for s in _smaller_exprs(getattr(e, field)):
                p = copy.copy(e)
                setattr(p, field, s)
                yield p
    elif isinstance(e, (Neg, Abs)):
        yield e.a
        for s in _smaller_exprs(e.a):
            yield type(e)(s)
    elif isinstance(e, Cast):
        for s in _smaller_exprs(e.a):
            yield Cast(e.dtype, s)


def _typed_like(child, parent) -> bool:
    from .generate import typed

    return typed(child) and not isinstance(child, Cast) or isinstance(parent, Cast)


def _drop_unused(prog: Program) -> Program:
    used = set()
    for op in walk(prog.body):
        for f in ("src", "dst", "a", "b", "c"):
            v = getattr(op, f, None)
            if isinstance(v, str):
                used.add(v)
            elif v is not None and hasattr(v, "buf"):
                used.add(v.buf)
        if isinstance(op, (Assign, AtomicElem)):
            used.add(op.dst)
            _loads(op.value, used)
    p = copy.deepcopy(prog)
    p.tensors = [t for t in p.tensors if t.name in used]
    p.tiles = [t for t in p.tiles if t.name in used]
    return p


def _loads(e, used: set) -> None:
    if isinstance(e, Load):
        used.add(e.buf)
    for f in ("a", "b"):
        if hasattr(e, f):
            _loads(getattr(e, f), used)


def same_failure(a: Failure, b: Failure) -> bool:
    if a.kind != b.kind or a.target != b.target:
        return False
    if a.kind == "mismatch":
        return True
    return a.message.split(":")[0] == b.message.split(":")[0]


def minimise(failure: Failure, runner: Runner | None = None, log: Callable[[str], None] = lambda s: None,
             max_checks: int = 400) -> Failure:
    """The smallest variant found that fails on `failure.target` like `failure` does."""
    own = runner is None
    runner = runner or Runner((failure.target,), batch=1)
    best = failure
    checks = 0

    def still_fails(p: Program) -> Failure | None:
        nonlocal checks
        try:
            prep = runner.prepare(p)
        except (GeneratorBug, Degenerate, KeyError, IndexError, ValueError):
            return None
        if prep is None:
            return None
        checks += 1
        res = runner.check_one(p, failure.target, prep)
        return res if isinstance(res, Failure) and same_failure(res, failure) else None

    try:
        cand = _drop_unused(best.program)
        res = still_fails(cand)
        if res is not None:
            best = res
        changed = True
        while changed and checks < max_checks:
            changed = False
            for cand in _variants(best.program):
                if checks >= max_checks:
                    break
                cand = _drop_unused(cand)
                res = still_fails(cand)
                if res is not None:
                    best = res
                    changed = True
                    log(f"minimise: {_size(best.program)} nodes after {checks} checks")
                    break
    finally:
        if own:
            runner.close()
    return best


def _size(prog: Program) -> int:
    return sum(1 for _ in walk(prog.body))

