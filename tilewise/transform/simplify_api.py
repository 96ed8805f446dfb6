"""TileLang's `tilelang.transform.simplify_prim_func` / `apply_simplify`, which run TVM's Simplify
pass on a prim_func. tilewise simplifies index expressions in its own pass lists when compiling
(simplify_indices), so these return the function as it is."""
from __future__ import annotations

import functools
from collections.abc import Callable


def simplify_prim_func(func: Callable) -> Callable:
    """Decorates a prim_func factory; the function it returns is compiled with simplification."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def apply_simplify(func, inline_let: bool = False):
    return func
