"""Atomics that hit one address apply in a random order per run (a GPU does not define it), so
tests meet the run-to-run variation of float atomic sums; a seed reproduces an order, and
integer atomics give the same result in any order."""
import numpy as np
from ir_builders import addr, intrin, kernel

from tilewise.emulator import run
from tilewise.ir import Buffer, BufferLoad

T = 128


def _sum_kernel(dtype):
    V = Buffer("V", (2 * T,), dtype)
    O = Buffer("O", (1,), dtype)

    def build(b, t):
        return [intrin("atomic_add", addr(O, 0), BufferLoad(V, [b[0] * T + t[0]]))]

    return kernel([V, O], [2], [T], build)


def _values():
    # magnitudes 2^-20 .. 2^20: the float32 sum depends on the order of the additions
    r = np.random.default_rng(7)
    return (r.choice([-1, 1], 2 * T) * 2.0 ** r.integers(-20, 21, 2 * T)).astype(np.float32)


def _float_sum(seed):
    o = np.zeros(1, np.float32)
    used = run(_sum_kernel("float32"), [_values(), o], atomic_seed=seed)
    return o.view(np.uint32)[0], used


def test_float_atomic_sums_depend_on_the_seed():
    a, used = _float_sum(1)
    assert used == 1
    assert _float_sum(1)[0] == a  # a seed reproduces the order
    patterns = {_float_sum(s)[0] for s in range(2, 8)}
    assert len(patterns | {a}) > 1  # different orders, different last bits
    ref = float(np.sum(_values().astype(np.float64)))
    for p in patterns:
        assert abs(float(np.uint32(p).view(np.float32)) - ref) <= 2e-6 * np.abs(_values()).sum()


def test_fresh_order_every_run_unless_fixed(monkeypatch):
    monkeypatch.delenv("TILEWISE_EMULATOR_ATOMIC_SEED", raising=False)
    seeds = {_float_sum(None)[1] for _ in range(3)}
    assert len(seeds) == 3
    monkeypatch.setenv("TILEWISE_EMULATOR_ATOMIC_SEED", "42")
    assert _float_sum(None) == _float_sum(42)


def test_integer_atomics_are_unaffected():
    v = np.random.default_rng(3).integers(-1000, 1000, 2 * T).astype(np.int32)
    for seed in (1, 2, 3):
        o = np.zeros(1, np.int32)
        run(_sum_kernel("int32"), [v, o], atomic_seed=seed)
        assert o[0] == v.sum()
