"""Errors a user can cause name their source line; internal errors say they are bugs."""
from __future__ import annotations

import contextlib
import os
import sys
import warnings

from .ir.span import Span, current_span

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class CompileError(ValueError):
    """An invalid program: carries the user's file:line and the source line. A ValueError, as
    TileLang's compile-time rejections are, so `except ValueError` code keeps working."""

    def __init__(self, message: str, span: Span | None = None, extra_spans: tuple = ()):
        self.span = span if span is not None else (current_span() or _user_frame_span())
        self.message = message
        self.extra_spans = tuple(s for s in extra_spans if s is not None)
        super().__init__(self._format())

    def _format(self) -> str:
        lines = []
        if self.span is not None:
            lines.append(f"{self.span}: {self.message}")
            src = self.span.source
            if src:
                lines.append(f"    {src.strip()}")
        else:
            lines.append(self.message)
        for s in self.extra_spans:
            lines.append(f"  see {s}:")
            if s.source:
                lines.append(f"    {s.source.strip()}")
        return "\n".join(lines)


class UnsupportedSyntaxError(CompileError, RuntimeError):
    """A construct TileLang's parser rejects too (a slice with a step, ...). TileLang reports these
    as TVM diagnostics, which are RuntimeErrors: this is one as well as a CompileError, so code
    written against TileLang (`except RuntimeError`) catches it."""


class DtypeError(CompileError, TypeError):
    """An operand of a type the operation does not take: a CompileError that is also the
    TypeError TileLang raises for it (T.__exp on an integer)."""


class LaneIndexError(CompileError, IndexError):
    """A lane outside a vector value (T.extract_lane(v, 4) of a 4-lane v): a CompileError that is
    also the IndexError TileLang raises for it."""


class ShapeMismatchError(CompileError, AssertionError):
    """A view or reshape whose size differs from its buffer's. TileLang checks this with an
    `assert` while building the program, so code written against it expects an AssertionError:
    this is one as well as a CompileError."""


class OutsideKernelError(CompileError):
    """A kernel-building construct (T.* statement, T.const, T.empty, a macro) used while no kernel
    is being parsed. @jit tells TileLang 0.1.8's eager style from a kernel factory by it."""


class InternalError(RuntimeError):
    """A bug in tilewise, not in the user's program."""

    def __init__(self, message: str, span: Span | None = None):
        where = f" (while compiling {span})" if span is not None else ""
        super().__init__(
            f"internal error in tilewise{where}: {message}\n"
            "This is a bug in tilewise; please report it with the kernel that triggers it."
        )


_STDLIB_DIR = os.path.dirname(os.path.abspath(os.__file__))


def _user_frame_span() -> Span | None:
    """The innermost caller outside tilewise, for errors raised while no kernel line is being
    parsed (e.g. a T.Tensor annotation that Python evaluates when it defines the function)."""
    f = sys._getframe(1)
    while f is not None:
        name = f.f_code.co_filename
        path = os.path.abspath(name)
        # not tilewise, not the standard library (functools' cached_property calls lowering lazily)
        if not name.startswith("<") and not path.startswith(_PACKAGE_DIR + os.sep) and \
                not path.startswith(_STDLIB_DIR + os.sep):
            return Span(f.f_code.co_filename, f.f_lineno)
        f = f.f_back
    return None


_warned: set = set()
_recorders: list[list] = []


def warn_once(key, message: str, stacklevel: int = 3) -> None:
    """A warning shown once per process for each key (an argument accepted for TileLang's sake
    that has no effect here is said once, not silently dropped and not repeated per call)."""
    for said in _recorders:
        said.append((key, message))
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(message, stacklevel=stacklevel)


@contextlib.contextmanager
def recording_warnings():
    """Collects every warn_once call made inside, shown or not (already said in this process):
    a compile keeps its lowering's warnings in the cache entry so a later process's cache hit,
    which does not lower, says them too."""
    said: list = []
    _recorders.append(said)
    try:
        yield said
    finally:
        _recorders.remove(said)
