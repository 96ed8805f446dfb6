"""tvm.target.Target: a target description tilewise's compile() accepts."""
from __future__ import annotations

import re


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
