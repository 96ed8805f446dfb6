"""Running generated programs on every target and comparing with the numpy oracle.

Targets: "cpu" (native code), "sm_80" and "sm_90a" (the CUDA lowering for that architecture run
thread-exactly by the emulator; the PTX cross-check is off unless asked for), and optionally
"ptx_sm80" / "ptx_sm90a" (NVRTC's PTX of the same kernel in the PTX interpreter). The CPU target
compiles programs in batches, several kernels in one prim_func and one g++ run; a batch that fails
to build or run is retried one program at a time, so every failure belongs to one program.

A disagreement, or any exception, is a failure, except a `CompileError` whose message matches
an entry of `ALLOWED` (documented limitations, each with its reason)."""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import env
from ...emulator.errors import EmptyGridError
from ...errors import CompileError
from .emit import kernel_source, program_source
from .oracle import Degenerate, GeneratorBug, expected, make_inputs
from .program import Copy, Load, Loop, Parallel, Program, walk

TARGETS = ("cpu", "sm_80", "sm_90a")
ALL_TARGETS = TARGETS + ("ptx_sm80", "ptx_sm90a")

# CompileErrors that name a genuine, documented limitation: (pattern, reason). Keep it short.
ALLOWED: list[tuple[str, str]] = [
    (r"layout conflict for fragment",
     "a fragment read or written in a T.Parallel nest whose thread partition differs from the one that fixed its "
     "layout (docs/DESIGN.md §3: conflicts are errors naming both lines; copy through shared memory)"),
    (r"T.copy(: on the CUDA target a fragment operand must be the whole fragment| between fragments \w+ and \w+: "
     r"on the CUDA target the source region is a part of it)",
     "a copy between parts of two fragments (docs/language-decisions.md: on CUDA a fragment-to-fragment copy "
     "takes whole fragments of one layout; copy through shared memory)"),
    (r"is filled inside a pipelined loop and also used outside it",
     "CUDA multi-buffers the tiles a T.Pipelined loop fills, so a use after the loop has no single buffer to "
     "read (the error says to give that use its own buffer); the CPU, without stages, accepts it"),
]


def _pipelined_tile_read_after_loop(prog: Program) -> bool:
    """A shared tile a T.Pipelined loop fills by a copy, and read by an element load after it."""
    for n, op in enumerate(prog.body):
        if isinstance(op, Loop) and op.kind == "pipelined":
            filled = {c.dst.buf for c in walk(op.body) if isinstance(c, Copy)}
            later = {e.buf for x in walk(prog.body[n + 1:]) for e in _loads(x)}
            if filled & later:
                return True
    return False


def _parallel_reads_what_it_writes(prog: Program) -> bool:
    """A T.Parallel body in which one statement writes a shared tile another statement reads."""
    for op in walk(prog.body):
        if isinstance(op, Parallel) and len(op.body) > 1:
            for a in op.body:
                for b in op.body:
                    if a is not b and prog.tile(a.dst) is not None and prog.tile(a.dst).scope == "shared" \
                            and a.dst in {e.buf for e in _loads(b)}:
                        return True
    return False


def _loads(x):
    """The Load nodes of an operation's expressions."""
    stack = [getattr(x, "value", None)]
    while stack:
        e = stack.pop()
        if isinstance(e, Load):
            yield e
        for f in ("a", "b"):
            if hasattr(e, f):
                stack.append(getattr(e, f))


def _writes_fp4(prog: Program) -> bool:
    """Some fp4 tensor or tile is written (packed two values per byte: stores are byte updates)."""
    fp4 = {b.name for b in [*prog.tensors, *prog.tiles] if b.dtype == "float4_e2m1fn" and getattr(b, "role", "") != "in"}
    return bool(fp4)


@dataclass
class Known:
    """A bug with a strict-xfail regression test (tests/fuzz/test_regressions.py), not fixed yet:
    a failure whose program has the shape and whose message matches counts as known, not new."""
    name: str
    applies: Callable[[Program], bool]
    pattern: str
    test: str


KNOWN: list[Known] = [
    Known("pipelined tile read after its loop", _pipelined_tile_read_after_loop,
          r"AttributeError: 'NoneType' object has no attribute 'typed'",
          "test_tile_filled_in_a_pipelined_loop_and_read_after_it"),
    Known("replicated T.Parallel reads a shared tile it writes", _parallel_reads_what_it_writes,
          r"RaceError: shared-memory race", "test_replicated_parallel_body_reading_and_writing_one_shared_tile"),
    Known("writers of one packed fp4 byte race", _writes_fp4, r"RaceError: (global|shared)-memory race",
          "test_two_blocks_writing_the_two_nibbles_of_one_packed_fp4_byte"),
]


@dataclass
class Failure:
    seed: int
    target: str
    kind: str  # "mismatch" | "error"
    message: str
    program: Program = field(repr=False)

    def signature(self) -> str:
        """What makes two failures the same bug (for de-duplication and minimising)."""
        first = self.message.splitlines()[0] if self.message else ""
        first = re.sub(r"\d+", "#", first)
        return f"{self.target}:{self.kind}:{first[:120]}"

    def report(self) -> str:
        return (f"=== fuzz failure: seed {self.seed}, target {self.target}, {self.kind}\n{self.message}\n"
                f"--- program (python tools/fuzz.py --replay {self.seed}, or run this file) ---\n"
                f"{program_source(self.program)}")


@dataclass
class Outcome:
    ran: dict = field(default_factory=dict)  # target -> programs run and checked
    allowed: dict = field(default_factory=dict)  # target -> programs skipped by ALLOWED
    reasons: dict = field(default_factory=dict)  # ALLOWED reason -> programs it skipped (all targets)
    degenerate: int = 0
    known: dict = field(default_factory=dict)  # Known.name -> programs that failed that way
    failures: list = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        for mine, theirs in ((self.ran, other.ran), (self.allowed, other.allowed), (self.reasons, other.reasons),
                             (self.known, other.known)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        self.degenerate += other.degenerate
        self.failures += other.failures


# ----------------------------------------------------------------------------- building
_counter = [0]


def load_build(source: str, workdir: str):
    """The `build` function of emitted source text (written to a file: the parser reads it)."""
    _counter[0] += 1
    name = f"tw_fuzz_{os.getpid()}_{_counter[0]}"
    path = Path(workdir) / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build


def compile_for(func, target: str):
    from ...jit.compile import compile as tw_compile

    if target == "cpu":
        return tw_compile(func, target="cpu")
    arch = {"sm_80": "sm_80", "sm_90a": "sm_90a", "ptx_sm80": "sm_80", "ptx_sm90a": "sm_90a"}[target]
    backend = "ptx" if target.startswith("ptx") else "emulator"
    return tw_compile(func, target=f"cuda -arch={arch}", execution_backend=backend)


def _no_crosscheck():
    return env.override("TILEWISE_EMULATOR_CROSSCHECK", "")


def allowed_reason(exc: BaseException) -> str | None:
    if not isinstance(exc, CompileError):
        return None
    text = str(exc)
    for pattern, reason in ALLOWED:
        if re.search(pattern, text):
            return reason
    return None


# ----------------------------------------------------------------------------- checking
def compare(prog: Program, args: dict[str, np.ndarray], want: dict, inputs: dict[str, np.ndarray]) -> str | None:
    """None when every tensor matches its expected value within the bound, else a description."""
    msgs = []
    for t in prog.tensors:
        got = np.asarray(args[t.name]).astype(np.float64)
        if t.role == "in":
            same = (got == inputs[t.name].astype(np.float64)) | (np.isnan(got) & np.isnan(inputs[t.name].astype(np.float64)))
            if not same.all():
                msgs.append(f"input {t.name} was modified at {_first(~same)}")
            continue
        val, err = want[t.name]
        bad = mismatches(got, val, err)
        if bad.any():
            where = np.argwhere(bad)[:4]
            ex = "; ".join(f"{tuple(int(x) for x in w)}: got {got[tuple(w)]!r}, expected {val[tuple(w)]!r} "
                           f"(bound {2 * err[tuple(w)]:.3g})" for w in where)
            msgs.append(f"{t.name} ({t.dtype}, {t.role}): {int(bad.sum())} of {bad.size} elements differ: {ex}")
    return "\n".join(msgs) or None


def mismatches(got, val, err) -> np.ndarray:
    """Elements outside the bound: |got - val| <= 2 * err (+ float64 slack); a non-finite expected
    value must be matched exactly (NaN by any NaN)."""
    fin = np.isfinite(val)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.abs(got - val) <= 2 * err + 2.0**-40 * np.abs(val)
    nonfin_ok = (np.isnan(val) & np.isnan(got)) | (val == got)
    return np.where(fin, ~close, ~nonfin_ok)


def _first(mask) -> tuple:
    return tuple(int(x) for x in np.argwhere(mask)[0])


def _run(kernel, prog: Program, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    args = {t.name: _argument(prog, t, inputs[t.name]) for t in prog.tensors}
    kernel(*[args[t.name] for t in prog.tensors])
    return {t.name: _result(t, args[t.name]) for t in prog.tensors}


def _argument(prog: Program, t, a: np.ndarray) -> np.ndarray:
    """A copy of an argument; an fp4 tensor whose last dimension is even goes as TileLang passes
    it, packed two values per byte (element 2i in the low nibble) into a uint8 array."""
    a = a.copy()
    if t.dtype != "float4_e2m1fn" or a.ndim == 0 or a.shape[-1] % 2:
        return a
    nib = a.view(np.uint8) & 0xF
    return (nib[..., 0::2] | (nib[..., 1::2] << 4)).astype(np.uint8)


def _result(t, a: np.ndarray) -> np.ndarray:
    """What the kernel left in an argument, one value per element (packed fp4 unpacked)."""
    if t.dtype != "float4_e2m1fn" or a.dtype != np.uint8:
        return a
    out = np.empty((*a.shape[:-1], a.shape[-1] * 2), np.uint8)
    out[..., 0::2], out[..., 1::2] = a & 0xF, a >> 4
    import ml_dtypes

    return out.view(ml_dtypes.float4_e2m1fn)


class Runner:
    """Checks programs on targets; keeps a work directory for the emitted sources."""

    def __init__(self, targets=TARGETS, batch: int = 16, crosscheck: bool = False, log=None):
        self.targets = tuple(targets)
        self.batch = batch
        self.crosscheck = crosscheck
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-fuzz-")
        self.workdir = self._tmp.name
        self.log = log or (lambda s: None)

    def close(self) -> None:
        self._tmp.cleanup()

    # ------------------------------------------------------------------ one program
    def prepare(self, prog: Program):
        """(inputs, expected) or None for a degenerate program."""
        inputs = make_inputs(prog, prog.seed)
        try:
            want = expected(prog, inputs)
        except Degenerate:
            return None
        return inputs, want

    def check_one(self, prog: Program, target: str, prepared=None, build=None) -> Failure | str | None:
        """A Failure, the reason it was allowed (str), or None when it passed."""
        prepared = prepared or self.prepare(prog)
        if prepared is None:
            return "degenerate"
        inputs, want = prepared
        try:
            if build is None:
                build = load_build(kernel_source([prog]), self.workdir)
            kernel = compile_for(build(), target)
            ctx = contextlib.nullcontext() if self.crosscheck else _no_crosscheck()
            with ctx:
                got = _run(kernel, prog, inputs)
        except Exception as e:  # noqa: BLE001 - every crash is a finding
            if isinstance(e, EmptyGridError) and _empty_grid(prog):
                return None  # a grid of 0 blocks is refused at the call, as TileLang's runtime does
            reason = allowed_reason(e)
            if reason:
                return reason
            return Failure(prog.seed, target, "error", _describe(e), prog)
        if _empty_grid(prog):
            return Failure(prog.seed, target, "mismatch", "a grid of 0 blocks ran instead of raising EmptyGridError",
                           prog)
        msg = compare(prog, got, want, inputs)
        if msg:
            return Failure(prog.seed, target, "mismatch", msg, prog)
        return None

    # ------------------------------------------------------------------ many programs
    def run(self, progs: list[Program], outcome: Outcome | None = None) -> Outcome:
        out = outcome or Outcome()
        ready = []
        for p in progs:
            try:
                prep = self.prepare(p)
            except GeneratorBug as e:
                out.failures.append(Failure(p.seed, "oracle", "generator", str(e), p))
                continue
            if prep is None:
                out.degenerate += 1
                continue
            ready.append((p, prep))
        for target in self.targets:
            if target == "cpu" and self.batch > 1:
                for n in range(0, len(ready), self.batch):
                    self._cpu_batch(ready[n: n + self.batch], out)
            else:
                for p, prep in ready:
                    self._record(out, target, self.check_one(p, target, prep))
        return out

    def _record(self, out: Outcome, target: str, res) -> None:
        if isinstance(res, Failure):
            known = next((k for k in KNOWN if k.applies(res.program) and re.search(k.pattern, res.message)), None)
            if known is not None:
                out.known[known.name] = out.known.get(known.name, 0) + 1
                return
            out.failures.append(res)
            self.log(res.report())
        elif isinstance(res, str):
            out.allowed[target] = out.allowed.get(target, 0) + 1
            out.reasons[res] = out.reasons.get(res, 0) + 1
        else:
            out.ran[target] = out.ran.get(target, 0) + 1

    def _cpu_batch(self, items, out: Outcome) -> None:
        progs = [p for p, _ in items]
        try:
            build = load_build(kernel_source(progs), self.workdir)
            kernel = compile_for(build(), "cpu")
            args = []
            runs = []
            for p, (inputs, _) in items:
                a = {t.name: _argument(p, t, inputs[t.name]) for t in p.tensors}
                runs.append(a)
                args += [a[t.name] for t in p.tensors]
            kernel(*args)
            runs = [{t.name: _result(t, a[t.name]) for t in p.tensors} for (p, _), a in zip(items, runs)]
        except Exception:  # noqa: BLE001 - retried one by one, which attributes it
            for p, prep in items:
                self._record(out, "cpu", self.check_one(p, "cpu", prep))
            return
        for (p, (inputs, want)), got in zip(items, runs):
            msg = compare(p, got, want, inputs)
            if msg:
                # confirm alone: a batch must not be able to invent a failure
                self._record(out, "cpu", self.check_one(p, "cpu", (inputs, want)))
            else:
                out.ran["cpu"] = out.ran.get("cpu", 0) + 1


def _empty_grid(prog: Program) -> bool:
    """Whether the program's launch has 0 blocks along a dimension: a grid extent over the
    dynamic dimension m (`T.ceildiv(m, BM)`) with m bound to 0."""
    return prog.dims.get("m") == 0 and any(isinstance(g, str) and "m" in g for g in prog.grid)


def _describe(e: BaseException) -> str:
    tb = traceback.format_exception(type(e), e, e.__traceback__)
    tail = "".join(tb[-6:])
    return f"{type(e).__name__}: {e}\n{tail}"


def fuzz(seeds, targets=TARGETS, batch: int = 16, log=None) -> Outcome:
    """Generate and check the programs of `seeds`."""
    from .generate import generate

    r = Runner(targets, batch=batch, log=log)
    try:
        return r.run([generate(s) for s in seeds])
    finally:
        r.close()


def replay_main(prog: Program, build=None, targets=TARGETS) -> None:
    """What an emitted script's main does: check the program on every target, print the result."""
    r = Runner(targets, batch=1)
    failed = False
    try:
        for t in targets:
            res = r.check_one(prog, t, build=build)
            if isinstance(res, Failure):
                failed = True
                print(f"{t}: FAIL ({res.kind})\n{res.message}")
            else:
                print(f"{t}: {'ok' if res is None else 'skipped: ' + res}")
    finally:
        r.close()
    sys.exit(1 if failed else 0)
