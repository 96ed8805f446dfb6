"""Source positions. The parser sets the current span while it evaluates a statement, so that
every IR node created meanwhile remembers the user's file and line."""
from __future__ import annotations

import contextlib
import linecache
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    file: str
    line: int
    col: int = 0

    @property
    def source(self) -> str:
        return linecache.getline(self.file, self.line).rstrip("\n")

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


_current: list[Span | None] = [None]


def current_span() -> Span | None:
    return _current[-1]


@contextlib.contextmanager
def at(span: Span | None):
    _current.append(span)
    try:
        yield
    finally:
        _current.pop()
