"""tvm.target.Target: a target description tilewise's compile() accepts."""
from __future__ import annotations

import re

from ..jit.target import scoped_targets


class _Kind:
    def __init__(self, name: str):
        self.name = name

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other) -> bool:
        return str(other) == self.name


class Target:
    """Target("cuda -arch=sm_90a"), Target({"kind": "cuda", "arch": "sm_90a"}), Target("c")."""

    def __init__(self, target, host=None):
        if isinstance(target, Target):
            target = str(target)
        if isinstance(target, dict):
            kind, arch = target.get("kind", ""), target.get("arch")
        else:
            text = str(target).strip()
            kind = text.split()[0] if text else ""
            m = re.search(r"-arch=(\w+)", text)
            arch = m.group(1) if m else None
        self.kind = _Kind(kind)
        self.arch = arch
        self.host = host

    def __str__(self) -> str:
        return f"{self.kind.name} -arch={self.arch}" if self.arch else self.kind.name

    def __repr__(self) -> str:
        return f"Target({str(self)!r})"

    # `with Target("c"):` — TVM's target scope. Inside it, a compile whose target is "auto" uses
    # this target, as TileLang's determine_target does (jit/target.py parse_target).
    def __enter__(self) -> Target:
        scoped_targets().append(self)
        return self

    def __exit__(self, *exc) -> None:
        scoped_targets().pop()

    @staticmethod
    def current(allow_none: bool = True) -> Target | None:
        """The innermost `with Target(...)` scope of this thread; None (or, with
        allow_none=False, a ValueError) outside every scope."""
        stack = scoped_targets()
        if stack:
            return stack[-1]
        if not allow_none:
            raise ValueError("no target is in scope: use `with tvm.target.Target(...):`")
        return None

