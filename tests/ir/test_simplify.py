"""Property tests of the index simplifier: simplify() keeps values, bound() is sound, prove()
is never wrong, on random integer expressions and random variable values inside the ranges."""
from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tilewise.ir import dtype as dt
from tilewise.ir.expr import BinOp, Cast, Compare, Const, Expr, Select, UnaryOp, Var
from tilewise.ir.simplify import bound, prove, simplify

X, Y, Z = Var("x"), Var("y"), Var("z")
VARS = (X, Y, Z)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def evaluate(e: Expr, env: dict):
    """Reference semantics of the integer IR (no overflow at these magnitudes)."""
    if isinstance(e, Const):
        return e.value
    if isinstance(e, Var):
        return env[e]
    if isinstance(e, Cast):
        v = evaluate(e.value, env)
        if e.dtype.is_int:
            bits = e.dtype.bits
            v = int(v) & ((1 << bits) - 1)
            return v - (1 << bits) if e.dtype.is_signed and v >= 1 << (bits - 1) else v
        return bool(v) if e.dtype.is_bool else float(v)
    if isinstance(e, UnaryOp):
        v = evaluate(e.a, env)
        return {"neg": lambda: -v, "not": lambda: not v, "bitnot": lambda: ~v}[e.op]()
    if isinstance(e, Select):
        return evaluate(e.a, env) if evaluate(e.cond, env) else evaluate(e.b, env)
    if isinstance(e, Compare):
        a, b = evaluate(e.a, env), evaluate(e.b, env)
        return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b, "eq": a == b, "ne": a != b}[e.op]
    if isinstance(e, BinOp):
        a, b = evaluate(e.a, env), evaluate(e.b, env)
        op = e.op
        if op == "add":
            return a + b
        if op == "sub":
            return a - b
        if op == "mul":
            return a * b
        if op == "floordiv":
            return a // b
        if op == "floormod":
            return a % b
        if op == "div":
            return _trunc_div(a, b)
        if op == "truncmod":
            return a - _trunc_div(a, b) * b
        if op == "min":
            return min(a, b)
        if op == "max":
            return max(a, b)
        if op == "and":
            return bool(a) and bool(b)
        if op == "or":
            return bool(a) or bool(b)
        if op == "bitand":
            return a & b
        if op == "bitor":
            return a | b
        if op == "bitxor":
            return a ^ b
        if op == "shl":
            return a << b
        if op == "shr":
            return a >> b
    raise AssertionError(f"cannot evaluate {type(e).__name__} {e!r}")


def _i(v: int) -> Const:
    return Const(v, dt.int32)


leaves = st.one_of(
    st.sampled_from(VARS),
    st.integers(-20, 20).map(_i),
)
nonzero = st.one_of(st.integers(1, 9), st.integers(-9, -1))


def _extend(children):
    binop = st.tuples(st.sampled_from(["add", "sub", "mul", "min", "max"]), children, children).map(
        lambda t: BinOp(t[0], t[1], t[2], dt.int32)
    )
    divmod_ = st.tuples(
        st.sampled_from(["floordiv", "floormod", "div", "truncmod"]), children, st.one_of(st.integers(1, 9), nonzero)
    ).map(lambda t: BinOp(t[0], t[1], _i(t[2]), dt.int32))
    nested = st.tuples(
        st.sampled_from(["floordiv", "floormod"]),
        st.sampled_from(["floordiv", "floormod"]),
        children,
        st.integers(1, 8),
        st.integers(1, 8),
    ).map(lambda t: BinOp(t[0], BinOp(t[1], t[2], _i(t[3]), dt.int32), _i(t[4]), dt.int32))
    select = st.tuples(
        st.sampled_from(["lt", "le", "gt", "ge", "eq", "ne"]), children, children, children, children
    ).map(lambda t: Select(Compare(t[0], t[1], t[2]), t[3], t[4]))
    neg = children.map(lambda c: UnaryOp("neg", c))
    bits = st.tuples(st.sampled_from(["bitand", "shr", "shl"]), children, st.integers(0, 5)).map(
        lambda t: BinOp(t[0], t[1], _i(t[2] if t[0] != "bitand" else 2 ** t[2] - 1), dt.int32)
    )
    # casts: narrowing ones wrap, and come back to int32 so that the operands keep one type
    casts = st.tuples(st.sampled_from([dt.int8, dt.uint8, dt.int16, dt.int64]), children).map(
        lambda t: Cast(Cast(t[1], t[0]), dt.int32)
    )
    return st.one_of(binop, divmod_, nested, select, neg, bits, casts)


int_exprs = st.recursive(leaves, _extend, max_leaves=10)
cmp_exprs = st.tuples(st.sampled_from(["lt", "le", "gt", "ge", "eq", "ne"]), int_exprs, int_exprs).map(
    lambda t: Compare(t[0], t[1], t[2])
)
bool_exprs = st.one_of(
    cmp_exprs,
    st.tuples(st.sampled_from(["and", "or"]), cmp_exprs, cmp_exprs).map(lambda t: BinOp(t[0], t[1], t[2], dt.bool_)),
    cmp_exprs.map(lambda c: UnaryOp("not", c)),
)


@st.composite
def ranges_and_env(draw):
    """Ranges for x, y, z (some unknown) and values inside them."""
    ranges, env = {}, {}
    for v in VARS:
        lo = draw(st.integers(-12, 12))
        hi = lo + draw(st.integers(0, 15))
        kind = draw(st.sampled_from(["both", "both", "both", "none", "lo", "hi"]))
        env[v] = draw(st.integers(lo, hi))
        if kind == "both":
            ranges[v] = (lo, hi)
        elif kind == "lo":
            ranges[v] = (lo, None)
        elif kind == "hi":
            ranges[v] = (None, hi)
    return ranges, env


def _safe_eval(e, env):
    try:
        return evaluate(e, env)
    except ZeroDivisionError:
        return None


# TW_SIMPLIFY_EXAMPLES raises the count for a longer local search.
N_EXAMPLES = int(os.environ.get("TW_SIMPLIFY_EXAMPLES", "400"))
SETTINGS = settings(max_examples=N_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(int_exprs, ranges_and_env())
def test_simplify_keeps_integer_values(e, re):
    ranges, env = re
    want = _safe_eval(e, env)
    s = simplify(e, ranges)
    assert _safe_eval(s, env) == want, f"{e!r} -> {s!r} under {env} with ranges {ranges}"


@SETTINGS
@given(bool_exprs, ranges_and_env())
def test_simplify_keeps_boolean_values(e, re):
    ranges, env = re
    want = _safe_eval(e, env)
    s = simplify(e, ranges)
    assert bool(_safe_eval(s, env)) == bool(want), f"{e!r} -> {s!r} under {env}"


@SETTINGS
@given(int_exprs, ranges_and_env())
def test_bound_is_sound(e, re):
    ranges, env = re
    v = _safe_eval(e, env)
    lo, hi = bound(e, ranges)
    assert lo is None or v >= lo, f"{e!r} = {v} < lower bound {lo} (env {env}, ranges {ranges})"
    assert hi is None or v <= hi, f"{e!r} = {v} > upper bound {hi} (env {env}, ranges {ranges})"


@SETTINGS
@given(int_exprs, ranges_and_env())
def test_bound_of_simplified_is_sound(e, re):
    ranges, env = re
    s = simplify(e, ranges)
    v = _safe_eval(s, env)
    lo, hi = bound(s, ranges)
    assert lo is None or v >= lo, f"{s!r} = {v} < {lo}"
    assert hi is None or v <= hi, f"{s!r} = {v} > {hi}"


@SETTINGS
@given(bool_exprs, ranges_and_env())
def test_prove_is_never_wrong(e, re):
    ranges, env = re
    p = prove(e, ranges)
    if p is not None:
        assert bool(_safe_eval(e, env)) == p, f"prove({e!r}) = {p} but it is {not p} at {env}, ranges {ranges}"


@settings(max_examples=150, deadline=None)
@given(int_exprs, ranges_and_env())
def test_simplify_is_idempotent_in_value(e, re):
    ranges, env = re
    once = simplify(e, ranges)
    twice = simplify(once, ranges)
    assert _safe_eval(twice, env) == _safe_eval(e, env)


# ------------------------------------------------------------------- targeted rules


def _same(e, s, ranges, grid):
    for x in grid:
        env = {X: x, Y: 0, Z: 0}
        assert evaluate(s, env) == evaluate(e, env), (e, s, x)


def test_nested_floordiv_folds_to_one_division():
    e = (X // 4) // 8
    s = simplify(e, {X: (0, 1000)})
    assert isinstance(s, BinOp) and s.op == "floordiv" and s.b.value == 32
    _same(e, s, None, range(-100, 100))
    # also for negative values (Python semantics)
    s2 = simplify(e)
    _same(e, s2, None, range(-200, 200))


def test_nested_floormod_folds():
    e = (X % 12) % 4
    s = simplify(e)
    _same(e, s, None, range(-50, 50))
    e2 = (X % 4) % 12
    _same(e2, simplify(e2), None, range(-50, 50))


def test_divisible_parts_split():
    e = (X * 8 + Y) // 8
    s = simplify(e, {X: (0, 10), Y: (0, 7)})
    assert structural(s) == structural(X)
    e2 = (X * 8 + Y) % 8
    assert structural(simplify(e2, {X: (0, 10), Y: (0, 7)})) == structural(Y)


def test_guards_prove_away_inside_ranges():
    assert prove(X < 16, {X: (0, 15)}) is True
    assert prove(X < 16, {X: (0, 16)}) is None
    assert prove(X * 4 + Y < 64, {X: (0, 15), Y: (0, 3)}) is True
    assert prove(X >= 0, {X: (0, None)}) is True


def test_constant_folding_wraps_int32():
    e = BinOp("mul", _i(2**30), _i(4), dt.int32)
    s = simplify(e)
    assert isinstance(s, Const) and s.value == 0


def structural(e):
    from tilewise.ir.simplify import structural_key

    return structural_key(e)


@settings(max_examples=200, deadline=None)
@given(g=st.sampled_from([2, 4, 8, 16, 32]), q=st.sampled_from([1, 2, 3, 4, 12]), off=st.integers(-40, 40),
       ko_hi=st.integers(0, 50), j_hi=st.integers(0, 40))
def test_common_factor_division(g, q, off, ko_hi, j_hi):
    """(g*ko + j + off) // (g*q) and % (g*q), with j below g: the im2col gather's index
    arithmetic, which must reduce to ko alone without changing any value."""
    ko, j = Var("ko", dt.int32), Var("j", dt.int32)
    ranges = {ko: (0, ko_hi), j: (0, j_hi)}
    e = ko * g + j + off
    c = g * q
    for op in ("floordiv", "floormod"):
        x = BinOp(op, e, Const(c, dt.int32), dt.int32)
        y = simplify(x, ranges)
        for kv in range(ko_hi + 1):
            for jv in range(j_hi + 1):
                want = (kv * g + jv + off) // c if op == "floordiv" else (kv * g + jv + off) % c
                assert _safe_eval(y, {ko: kv, j: jv}) == want, (x, y, kv, jv)
    if j_hi < g and off % g == 0:  # the low part stays below g: no division by c is left
        assert f"// {c}" not in str(simplify(BinOp("floordiv", e, Const(c, dt.int32), dt.int32), ranges))
