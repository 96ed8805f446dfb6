"""Host-side integer helpers (TileLang's tilelang.math), for sizing tiles in kernel factories."""
from __future__ import annotations


def cdiv(a: int, b: int) -> int:
    """Ceiling division of Python integers."""
    return -(-a // b)


def next_power_of_2(x: int) -> int:
    """The smallest power of two >= x (1 for x <= 1)."""
    x = int(x)
    return 1 if x <= 1 else 1 << (x - 1).bit_length()


def prev_power_of_2(x: int) -> int:
    """The largest power of two <= x (x >= 1)."""
    x = int(x)
    if x < 1:
        raise ValueError(f"prev_power_of_2 needs x >= 1, got {x}")
    return 1 << (x.bit_length() - 1)
