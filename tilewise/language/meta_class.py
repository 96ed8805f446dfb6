"""`@T.meta_class` (TileLang 0.1.15): a class whose instances exist while a kernel is parsed and
keep their state in `T.alloc_var` registers (TileLang's tile schedulers are written with it).

As in TileLang, every method that stores into a buffer (`self.x[0] = ...`: a subscript assignment
in its body) is inlined where a kernel calls it (T.inline: the body parsed with `self` bound);
dunders, properties, static and class methods, methods already inlined and methods without such
a store stay plain Python (they build and return expressions). A `name` argument of `__init__`
names the buffers assigned to attributes `{name}_{attribute}` (leading underscores dropped)."""
from __future__ import annotations

import ast
import functools
import inspect
import textwrap

from ..ir.buffer import Buffer
from .eager import _InlineMethod, inline


def _stores(func) -> bool:
    """Whether the function's body assigns to a subscript (`x[i] = v`, `x[i] += v`)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return False
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        if any(isinstance(t, ast.Subscript) for t in targets):
            return True
    return False


def meta_class(cls):
    """Class decorator: inline the methods that store (see the module doc)."""
    for attr, value in list(vars(cls).items()):
        if attr.startswith("__") or isinstance(value, (staticmethod, classmethod, property, _InlineMethod)):
            continue
        if inspect.isfunction(value) and _stores(value):
            setattr(cls, attr, inline(value))
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        try:
            name = inspect.signature(init).bind(self, *args, **kwargs).arguments.get("name")
        except TypeError:
            name = None
        object.__setattr__(self, "_meta_name", name)
        init(self, *args, **kwargs)

    def __setattr__(self, attr, value):
        name = getattr(self, "_meta_name", None)
        if name and isinstance(value, Buffer):
            value.name = f"{name}_{attr.lstrip('_')}"
            value.auto_named = False
        object.__setattr__(self, attr, value)

    cls.__init__ = __init__
    cls.__setattr__ = __setattr__
    cls._is_meta_class = True
    return cls
