"""Reading an index map as a sum of mixed-radix digits of its inputs.

Most layouts people write (a thread index `i % 8 * 4 + j // 2`, a register index `j % 2`, the
mma tables) are sums of digits `(x // stride) % radix * place` of the logical indices. When a map
has that form its inverse is closed-form, the inputs it does not use are identified exactly,
and it converts to the thread/value modes of layout/tv.py. `digits_of` recovers the digits from
the map's table of values (probing each input digit, then verifying the whole table), so it
works whatever expression the user wrote."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Digit:
    dim: int  # which input dimension
    stride: int  # the digit is (x[dim] // stride) % radix
    radix: int
    place: int  # what one step of the digit adds to the map's value (0: unused)


def _primes(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def digits_of(table: np.ndarray) -> list[Digit] | None:
    """The digits of the map whose values over its input grid are `table` (value at the origin
    must be 0), merged where consecutive digits continue each other; None when the map is not a
    sum of digits (an XOR swizzle, a map with cross terms)."""
    table = np.asarray(table, dtype=np.int64)
    shape = table.shape
    if table.size == 0 or table[(0,) * len(shape)] != 0:
        return None
    out: list[Digit] = []
    for d, extent in enumerate(shape):
        stride = 1
        for p in _primes(extent):
            idx = [0] * len(shape)
            deltas = []
            for k in range(p):
                idx[d] = k * stride
                deltas.append(int(table[tuple(idx)]))
            place = deltas[1]
            if any(deltas[k] != k * place for k in range(p)) or place < 0:
                return None
            prev = out[-1] if out else None
            if (prev is not None and prev.dim == d and prev.stride * prev.radix == stride
                    and (prev.place * prev.radix == place or prev.place == place == 0)):
                out[-1] = Digit(d, prev.stride, prev.radix * p, prev.place)
            else:
                out.append(Digit(d, stride, p, place))
            stride *= p
    grid = np.meshgrid(*[np.arange(e, dtype=np.int64) for e in shape], indexing="ij")
    rebuilt = np.zeros(shape, dtype=np.int64)
    for g in out:
        rebuilt += (grid[g.dim] // g.stride) % g.radix * g.place
    if not np.array_equal(rebuilt, table):
        return None
    return out


def is_mixed_radix(digits: list[Digit]) -> bool:
    """The used digits, ordered by place, number 0 .. prod(radix) - 1 exactly once each."""
    used = sorted((g for g in digits if g.place), key=lambda g: g.place)
    expect = 1
    for g in used:
        if g.place != expect:
            return False
        expect *= g.radix
    return True


def row_major_unused(digits: list[Digit]) -> list[Digit]:
    """The digits a map does not use, numbered in row-major order of the elements they move
    (last dimension fastest, low digits before high ones): the per-thread register index
    TileLang derives for a T.Fragment given only its thread map."""
    unused = [g for g in digits if g.place == 0]
    unused.sort(key=lambda g: (-g.dim, g.stride))
    out, place = [], 1
    for g in unused:
        out.append(Digit(g.dim, g.stride, g.radix, place))
        place *= g.radix
    return out
