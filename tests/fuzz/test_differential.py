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
    # most programs must really run everywhere (not be skipped as degenerate or allowed)
    for target in ("cpu", "sm_80", "sm_90a"):
        assert out.ran.get(target, 0) >= 0.85 * FAST_COUNT, (target, out.ran, out.allowed, out.degenerate)


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
    assert {t.dtype for p in progs for t in p.tensors} == {"float32", "float16", "bfloat16", "int32"}
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
