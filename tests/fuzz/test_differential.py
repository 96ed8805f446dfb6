"""The differential fuzzer (tilewise/testing/fuzz): random valid tile programs run natively on the
CPU and in the emulator for sm_80 and sm_90a, each checked against a numpy interpretation of the
same description. The default run is a fixed set of seeds sized to about a minute on two cores;
the slow run (pytest -m slow) covers thousands. tools/fuzz.py runs any range and minimises."""
from __future__ import annotations

import numpy as np
import pytest

from tilewise.testing.fuzz import fuzz, generate
from tilewise.testing.fuzz.emit import kernel_source, program_source
from tilewise.testing.fuzz.oracle import Oracle, make_inputs
from tilewise.testing.fuzz.program import Copy, Parallel, Program, walk
from tilewise.testing.fuzz.runner import compare

FAST_SEED, FAST_COUNT = 1000, 240
SLOW_SEED, SLOW_COUNT = 100_000, 2000


def _report(out) -> str:
    head = f"{len(out.failures)} failing program(s); ran {out.ran}, allowed {out.allowed}, known {out.known}\n\n"
    return head + "\n\n".join(f.report() for f in out.failures[:3])


def test_fuzz_programs_agree_with_numpy():
    out = fuzz(range(FAST_SEED, FAST_SEED + FAST_COUNT))
    assert not out.failures, _report(out)
    # most programs must really run everywhere (not be skipped as degenerate, allowed or known): 0.85
    # before fp4 storage joined; the known race of packed fp4 bytes (test_regressions.py) takes ~20
    # of these CUDA runs until it is fixed, then raise this back
    for target in ("cpu", "sm_80", "sm_90a"):
        assert out.ran.get(target, 0) >= 0.75 * FAST_COUNT, (target, out.ran, out.allowed, out.degenerate)


@pytest.mark.slow
@pytest.mark.parametrize("part", range(8))
def test_fuzz_many_programs(part):
    size = SLOW_COUNT // 8
    start = SLOW_SEED + part * size
    out = fuzz(range(start, start + size))
    assert not out.failures, _report(out)


def test_generator_is_deterministic_and_covers_the_operators():
    progs = [generate(s) for s in range(300)]
    assert repr(generate(7)) == repr(progs[7])
    kinds = {type(op).__name__ for p in progs for op in walk(p.body)}
    assert {"Copy", "Fill", "Parallel", "Assign", "AtomicElem", "Reduce", "CumSum", "Gemm", "AtomicTile", "Loop",
            "If"} <= kinds
    assert {t.dtype for p in progs for t in p.tensors} == {"float32", "float16", "bfloat16", "int32",
                                                           "float4_e2m1fn"}
    text = "".join(repr(p) for p in progs)
    for mode in ("rz", "rp", "rm"):
        assert f"mode='{mode}'" in text
    assert "via='float8_e4m3fn'" in text and "via='float8_e5m2'" in text and "sat=False" in text
    assert "Lane(" in text and "stride=-" in text
    assert any(op.kind == "pipelined" and op.stages == s for p in progs for op in walk(p.body)
               if type(op).__name__ == "Loop" for s in (1, 2, 3))
    # tiles that do not divide the problem, and one-element tiles
    assert any(p.tensors[0].shape[0] % p.tiles[0].shape[0] for p in progs)
    assert any(1 in t.shape for p in progs for t in p.tiles)


def test_a_program_prints_as_a_script_that_rebuilds_it():
    prog = generate(3)
    ns: dict = {}
    exec(compile(program_source(prog).split('if __name__')[0], "<fuzz>", "exec"), ns)
    assert repr(ns["PROGRAM"]) == repr(prog)
    assert "def build():" in kernel_source([prog])


def test_the_comparison_catches_a_wrong_element():
    """The oracle's bounds are tight: one element off by a rounding step of its type fails."""
    for seed in range(200):
        prog = generate(seed)
        outs = [t for t in prog.tensors if t.role == "out" and t.dtype == "float32"]
        if not outs or not any(isinstance(op, (Copy, Parallel)) for op in prog.body):
            continue
        inputs = make_inputs(prog, prog.seed)
        want = Oracle(prog, inputs).run()
        val, err = want[outs[0].name]
        exact = np.argwhere(np.isfinite(val) & (err == 0))
        if len(exact):
            break
    else:
        raise AssertionError("no program with an exactly known float32 output element")
    got = {t.name: inputs[t.name].copy() for t in prog.tensors}
    for t in prog.tensors:
        if t.role != "in":
            got[t.name] = want[t.name][0].astype(got[t.name].dtype)  # expected values rounded to the type
    out = outs[0]
    idx = tuple(exact[0])
    got[out.name][idx] = np.nextafter(np.float32(val[idx]), np.float32(np.inf))
    msg = compare(prog, got, want, inputs)
    assert msg is not None and f"{out.name} (float32, out): 1 of" in msg, msg


def test_program_descriptions_round_trip():
    prog = generate(11)
    ns: dict = {}
    exec("from tilewise.testing.fuzz.program import *", ns)
    assert isinstance(eval(repr(prog), ns), Program)


def test_the_oracles_directed_rounding():
    """The oracle's own directed conversions (a search of every value of the type), on values
    whose answers are known by hand."""
    from tilewise.testing.fuzz.oracle import directed

    def one(dtype, mode, x, sat=True):
        return float(directed(dtype, mode, sat, np.array([x]), np.zeros(1))[0][0])

    assert (one("float8_e4m3fn", "rz", 1.1), one("float8_e4m3fn", "rp", 1.1), one("float8_e4m3fn", "rm", -1.1)) == \
        (1.0, 1.125, -1.125)
    assert one("float8_e4m3fn", "rp", 500.0) == 448.0 and np.isnan(one("float8_e4m3fn", "rp", 500.0, sat=False))
    assert one("float8_e4m3fn", "rm", 500.0, sat=False) == 448.0
    assert one("float8_e5m2", "rz", float("inf")) == 57344.0 and one("float8_e5m2", "rz", -np.inf, False) == -np.inf
    assert one("float16", "rp", 1 + 2.0**-12) == 1 + 2.0**-10 and one("float16", "rz", 1 + 2.0**-12) == 1.0
    assert one("float16", "rz", 70000.0) == 65504.0 and one("float16", "rp", 70000.0) == np.inf
    assert one("bfloat16", "rm", -(1 + 2.0**-9)) == -(1 + 2.0**-7)
    assert (one("int32", "rz", -2.5), one("int32", "rp", -2.5), one("int32", "rm", -2.5)) == (-2, -2, -3)
    assert one("float8_e4m3fn", "rz", 2.0**-12) == 0.0 and one("float8_e4m3fn", "rp", 2.0**-12) == 2.0**-9


def test_fp4_arguments_are_passed_packed_when_they_can_be():
    """The runner passes an fp4 tensor with an even last dimension as TileLang does (two values
    per byte, the even element in the low nibble) and reads it back one value per element."""
    import ml_dtypes

    from tilewise.testing.fuzz.program import Tensor
    from tilewise.testing.fuzz.runner import _argument, _result

    t = Tensor("X", (2, 4), "float4_e2m1fn", "in")
    a = np.array([[0.5, -1.0, 6.0, 0.0], [1.5, 2.0, -6.0, 3.0]]).astype(ml_dtypes.float4_e2m1fn)
    packed = _argument(None, t, a)
    assert packed.dtype == np.uint8 and packed.shape == (2, 2)
    assert packed[0, 0] == (0x1 | 0xA << 4)  # 0.5 low, -1.0 high
    assert np.array_equal(_result(t, packed).astype(np.float64), a.astype(np.float64))
    odd = a[:, :3].copy()
    assert _argument(None, Tensor("X", (2, 3), "float4_e2m1fn", "in"), odd).dtype == odd.dtype
