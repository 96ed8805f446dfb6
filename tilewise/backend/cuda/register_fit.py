"""Register fit: a second ptxas run, capped at what the first cubin keeps live, for kernels whose
allocation is well above it.

ptxas numbers registers as it schedules; in large unrolled kernels it can leave gaps, so the
register count it reports (the highest register used, plus its reserved ones) may exceed the most
registers live at any instruction by more than an allocation granule. `nvdisasm
--life-range-mode=count` gives both numbers per function. When the allocation exceeds the peak
live count by MARGIN or more (in kernels above MIN_REGISTERS), the source is compiled once more with `__maxnreg__(peak)` in place
of `__launch_bounds__(threads)` and the second cubin is kept only if no function is worse in any
measure the code quality is judged by (registers, spills, local memory, SASS instructions, the
steady-state loop's instructions) and some function has fewer registers. Otherwise the first cubin
stays. Both compiles are deterministic, so the outcome is a function of the source and options,
and it is part of the kernel cache entry (FACTS_FILE records what was tried and kept). See
docs/DESIGN.md ("Register fit"). Off with the pass config `tl.disable_register_fit` or
TILEWISE_REGISTER_FIT=0."""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable

from ... import env
from .inspect import get_sass, parse_sass, resource_usage_all, steady_state_loop
from .toolkit import ToolkitNotFound, tool_path

VERSION = 2  # part of the cache key: a change of the rule recompiles
# One warp's registers are allocated in units of 256, i.e. 8 per thread: a smaller gap cannot
# move the kernel to a smaller allocation, so it is not worth a second compile.
MARGIN = 8
# Only kernels allocated more than this are looked at: reading the live ranges costs an nvdisasm
# run (about 0.3 s of CPU, mostly its start-up) per cubin, which the many small kernels of a
# test suite would pay for nothing. Over benchmarks/vs_peers.py the kernels where a cap at the
# peak keeps the same code all have 200+ registers (large unrolled accumulators); of those with
# a gap at or below 128 (FlashAttention d64 causal, flash decoding) none could be capped
# without spilling.
MIN_REGISTERS = 128
FACTS_FILE = "register_fit.json"
PASS_CONFIG = "tl.disable_register_fit"

# the renderer's kernel head; `__launch_bounds__(n, 1)` (register budgets for setmaxnreg) is not
# matched: those kernels need the minimum of blocks per SM, which __maxnreg__ cannot be combined with
_HEAD = re.compile(r'(extern "C" __global__ void )__launch_bounds__\((\d+)\) (\w+)\(')
_SECTION = re.compile(r"^\s*\.section\s+(\S+?),")
_LIVE = re.compile(r"//\s*\|\s*(\d+)\s*\|")


def enabled(configs: dict, flags: tuple[str, ...] = ()) -> bool:
    """Whether the fit runs: not turned off, and no register limit chosen by the user."""
    if configs.get(PASS_CONFIG) or not env.flag("TILEWISE_REGISTER_FIT"):
        return False
    return not any("maxrregcount" in f for f in flags)


def fingerprint() -> str:
    """What the fit adds to the toolchain fingerprint (the env switch is not a pass config)."""
    return f"-regfit{VERSION}" if env.flag("TILEWISE_REGISTER_FIT") else "-regfit-off"


def live_registers(cubin: bytes) -> dict[str, tuple[int, int]]:
    """Per function: (registers allocated, most registers live at any instruction), from
    `cuobjdump -res-usage` and `nvdisasm --life-range-mode=count` (whose SHI_REGISTERS line
    warp-specialised kernels lack: their count is set by setmaxnreg)."""
    fd, path = tempfile.mkstemp(suffix=".cubin", prefix="tilewise-fit-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(cubin)
        r = subprocess.run([tool_path("nvdisasm"), "--life-range-mode=count", path], capture_output=True,
                           text=True, timeout=300)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        raise RuntimeError(f"nvdisasm --life-range-mode=count failed ({r.returncode}): {r.stderr.strip()}")
    out: dict[str, int] = {}
    name = None
    for line in r.stdout.splitlines():
        m = _SECTION.match(line)
        if m:
            sec = m.group(1)
            name = sec[len(".text."):] if sec.startswith(".text.") else None
            if name is not None:
                out[name] = 0
            continue
        if name is None:
            continue
        m = _LIVE.search(line)
        if m:
            out[name] = max(out[name], int(m.group(1)))
    allocated = resource_usage_all(cubin)
    return {k: (allocated[k]["registers"], live) for k, live in out.items() if k in allocated}


def _measures(cubin: bytes) -> dict[str, dict[str, int]]:
    """Per function, what the second cubin must not make worse."""
    res = resource_usage_all(cubin)
    sass = get_sass(cubin)
    funcs = parse_sass(sass)
    out = {}
    for name, r in res.items():
        loop = steady_state_loop(sass, function=name) if name in funcs else None
        out[name] = {"registers": r["registers"], "stack_bytes": r["stack_bytes"], "local_bytes": r["local_bytes"],
                     "sass": len(funcs.get(name, ())), "loop": len(loop) if loop is not None else 0}
    return out


def capped_source(source: str, caps: dict[str, int]) -> str:
    """The source with `__launch_bounds__(threads)` of each kernel in `caps` replaced by
    `__maxnreg__(cap)`."""
    def repl(m: re.Match) -> str:
        cap = caps.get(m.group(3))
        return m.group(0) if cap is None else f"{m.group(1)}__maxnreg__({cap}) {m.group(3)}("
    return _HEAD.sub(repl, source)


def fit(source: str, compile_source: Callable[[str], bytes]) -> tuple[bytes, dict]:
    """Compile `source`; when a kernel's allocation exceeds its peak live registers by MARGIN or
    more, compile once more capped at the peak and keep the better cubin. Returns the cubin and
    the facts recorded in the cache entry."""
    first = compile_source(source)
    facts: dict = {"version": VERSION, "margin": MARGIN, "min_registers": MIN_REGISTERS, "kernels": {},
                   "kept": "first"}
    bounded = {m.group(3) for m in _HEAD.finditer(source)}
    try:
        usage = resource_usage_all(first)
        if not any(usage.get(name, {}).get("registers", 0) > MIN_REGISTERS for name in bounded):
            facts["skipped"] = f"no kernel with plain launch bounds above {MIN_REGISTERS} registers"
            return first, facts
        live = live_registers(first)
    except (ToolkitNotFound, RuntimeError, OSError, subprocess.SubprocessError) as e:
        facts["skipped"] = f"live registers unknown: {e}"
        return first, facts
    caps = {}
    for name, (allocated, peak) in live.items():
        facts["kernels"][name] = {"allocated": allocated, "max_live": peak}
        if name in bounded and allocated > MIN_REGISTERS and allocated - peak >= MARGIN:
            caps[name] = peak
            facts["kernels"][name]["cap"] = peak
    if not caps:
        return first, facts
    second = compile_source(capped_source(source, caps))
    before, after = _measures(first), _measures(second)
    worse = [f"{name}.{k}: {before[name][k]} -> {v}" for name, m in after.items() if name in before
             for k, v in m.items() if v > before[name][k]]
    if set(after) != set(before):
        worse.append("the functions differ")
    fewer = any(after[n]["registers"] < before[n]["registers"] for n in after if n in before)
    for name in caps:
        if name in after:
            facts["kernels"][name]["capped_registers"] = after[name]["registers"]
    if worse or not fewer:
        facts["rejected"] = "; ".join(worse) if worse else "no fewer registers"
        return first, facts
    facts["kept"] = "capped"
    return second, facts
