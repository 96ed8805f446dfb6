"""Room for deep expressions. Visitors, the simplifier and the renderers recurse over expression
trees, a few Python frames per level; a generated kernel with a few hundred terms in one
expression (a long unrolled sum, a polynomial) would exceed Python's default limit of 1000
frames. Compilation raises the limit for its duration instead of failing."""
from __future__ import annotations

import contextlib
import sys
import threading

DEPTH = 20000
_lock = threading.Lock()


@contextlib.contextmanager
def deep_recursion(depth: int = DEPTH):
    """Run the block with a recursion limit of at least `depth`, restored afterwards."""
    with _lock:
        old = sys.getrecursionlimit()
        if old < depth:
            sys.setrecursionlimit(depth)
    try:
        yield
    except RecursionError:
        # an expression deeper still: a clear error instead of a traceback thousands of frames long
        from ..errors import CompileError

        raise CompileError(
            f"the program nests an expression deeper than tilewise can follow (more than {depth} Python frames "
            "while walking it, a chain of a few thousand operations): compute it in steps, e.g. through a "
            "T.alloc_var updated in a loop") from None
    finally:
        with _lock:
            if sys.getrecursionlimit() == depth and old < depth:
                sys.setrecursionlimit(old)
