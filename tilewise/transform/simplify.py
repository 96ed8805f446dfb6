"""TileLang's module path `tilelang.transform.simplify` (programs import `apply_simplify` and
`simplify_prim_func` from it); the functions live in simplify_api.py."""
from .simplify_api import apply_simplify, simplify_prim_func

__all__ = ["apply_simplify", "simplify_prim_func"]
