"""Looking inside a cubin without a GPU: its SASS (cuobjdump -sass, which runs nvdisasm), its
resource usage (cuobjdump -res-usage), instruction counts, and the steady-state loop of a kernel,
which is where SASS metrics such as instructions per HMMA are measured."""
from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .toolkit import tool_path

DEFAULT_MIX = ("HMMA", "LDSM", "LDGSTS", "BAR")


class CuobjdumpError(RuntimeError):
    pass


def _run_cuobjdump(cubin: bytes, *flags: str) -> str:
    exe = tool_path("cuobjdump")
    env = dict(os.environ)
    if "-sass" in flags:
        # cuobjdump disassembles through nvdisasm, which ships in its own wheel
        nvdisasm = tool_path("nvdisasm")
        env["NVDISASM_PATH"] = nvdisasm
        env["PATH"] = os.path.dirname(nvdisasm) + os.pathsep + env.get("PATH", "")
    fd, path = tempfile.mkstemp(suffix=".cubin", prefix="tilewise-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(cubin)
        r = subprocess.run([exe, *flags, path], capture_output=True, text=True, env=env, timeout=120)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        raise CuobjdumpError(f"cuobjdump {' '.join(flags)} failed ({r.returncode}):\n{r.stderr.strip()}")
    return r.stdout


@functools.lru_cache(maxsize=64)
def get_sass(cubin: bytes) -> str:
    """The SASS listing of every function in the cubin, as cuobjdump -sass prints it."""
    return _run_cuobjdump(cubin, "-sass")


# ---------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class SassInstr:
    offset: int  # byte address inside the function
    predicate: str  # "" or e.g. "@P0", "@!P1"
    opcode: str  # with modifiers, e.g. "HMMA.16816.F32", "LDGSTS.E.BYPASS.LTC128B.128"
    operands: str

    @property
    def op(self) -> str:
        """The opcode without modifiers: "HMMA", "LDSM", "BAR"."""
        return self.opcode.split(".", 1)[0]

    @property
    def branch_target(self) -> int | None:
        if self.op not in ("BRA", "BRX", "JMP"):
            return None
        m = re.match(r"(?:`\()?(0x[0-9a-fA-F]+)", self.operands.strip())
        return int(m.group(1), 16) if m else None

    def __str__(self) -> str:
        pred = self.predicate + " " if self.predicate else ""
        return f"/*{self.offset:04x}*/ {pred}{self.opcode} {self.operands}".rstrip()


_FUNC = re.compile(r"^\s*Function\s*:\s*(\S+)")
# opcodes are upper case save the shape of the Hopper matrix instructions: HGMMA.64x128x16.F32
_INSTR = re.compile(r"^\s*/\*([0-9a-fA-F]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Za-z0-9_.]*)\s*([^;]*);")


def parse_sass(sass: str) -> dict[str, list[SassInstr]]:
    """Function name -> its instructions, in address order."""
    out: dict[str, list[SassInstr]] = {}
    cur: list[SassInstr] | None = None
    for line in sass.splitlines():
        m = _FUNC.match(line)
        if m:
            cur = out.setdefault(m.group(1), [])
            continue
        m = _INSTR.match(line)
        if m and cur is not None:
            pred = (m.group(2) or "").strip()
            cur.append(SassInstr(int(m.group(1), 16), pred, m.group(3), m.group(4).strip()))
    return out


def _instrs(sass, function: str | None = None) -> list[SassInstr]:
    if isinstance(sass, (list, tuple)):
        return list(sass)
    funcs = parse_sass(sass)
    if function is not None:
        if function not in funcs:
            raise KeyError(f"no function {function!r} in the SASS; found: {', '.join(funcs) or 'none'}")
        return funcs[function]
    return [i for f in funcs.values() for i in f]


def instruction_mix(
    sass: str | Sequence[SassInstr], names: Iterable[str] = DEFAULT_MIX, function: str | None = None
) -> dict[str, int]:
    """How many instructions of each opcode (modifiers ignored: "HMMA" counts HMMA.16816.F32).
    `sass` is a listing (all functions, or `function`) or a list of instructions, e.g. a loop."""
    instrs = _instrs(sass, function)
    counts = dict.fromkeys(names, 0)
    for i in instrs:
        if i.op in counts:
            counts[i.op] += 1
    return counts


@dataclass(frozen=True)
class SassLoop:
    start: int  # address of the backward branch's target (the loop head)
    end: int  # address of the backward branch
    instrs: tuple[SassInstr, ...]  # from the head through the branch

    def __len__(self) -> int:
        return len(self.instrs)

    def mix(self, names: Iterable[str] = DEFAULT_MIX) -> dict[str, int]:
        return instruction_mix(list(self.instrs), names)


def find_loops(sass: str | Sequence[SassInstr], function: str | None = None) -> list[SassLoop]:
    """Every backward branch and the instructions it repeats (outer loops include inner ones):
    the natural loop of the branch, the basic blocks that reach it without passing its target.
    That is the address range from the target to the branch, save where ptxas moved a block of
    the loop out of line (a wait's retry spins at the end of the function and branches back)
    or put code of no iteration between the two: then the range would count the out-of-line
    block's neighbours, the epilogue say, as loop instructions."""
    instrs = _instrs(sass, function)
    blocks = _blocks(instrs)
    loops = []
    for k, ins in enumerate(instrs):
        t = ins.branch_target
        if t is None or t >= ins.offset:  # forward, or the `BRA self` that pads the function end
            continue
        body = _natural_loop(instrs, blocks, t, k)
        if body is _NOT_A_LOOP:
            continue
        if body is None:
            body = tuple(i for i in instrs[: k + 1] if i.offset >= t)
        loops.append(SassLoop(t, ins.offset, body))
    return loops


_NOT_A_LOOP = object()  # a backward branch into a loop from outside it (a retry block's way back)


_ENDS_BLOCK = ("BRA", "BRX", "JMP", "EXIT", "RET", "JMX")


def _blocks(instrs: list[SassInstr]) -> list[tuple[int, int]]:
    """Basic blocks as [first, last] index pairs, in address order: a block starts at a branch
    target or after a branch, exit or return."""
    index = {ins.offset: n for n, ins in enumerate(instrs)}
    starts = {0}
    for n, ins in enumerate(instrs):
        if ins.op in _ENDS_BLOCK:
            starts.add(n + 1)
        t = ins.branch_target
        if t is not None and t in index:
            starts.add(index[t])
    starts = sorted(x for x in starts if x < len(instrs))
    return [(a, (starts[j + 1] if j + 1 < len(starts) else len(instrs)) - 1) for j, a in enumerate(starts)]


def _natural_loop(instrs, blocks, head: int, branch: int):
    """The instructions of the blocks that reach the block of instruction `branch` without
    passing the block at address `head`; None when control flow is not plain enough to tell
    (an indirect branch, a head that is not a block start); _NOT_A_LOOP when the branch is
    reached from the function entry without passing `head`: a backward jump that is no loop
    of its own, like the way back of an out-of-line mbarrier retry that re-enters the loop
    after its wait (the range from there to the retry block would span the epilogue and a
    producer warpgroup's code)."""
    first = {instrs[a].offset: j for j, (a, _) in enumerate(blocks)}
    of_index = {}
    for j, (a, b) in enumerate(blocks):
        for n in range(a, b + 1):
            of_index[n] = j
    if head not in first:
        return None
    preds: dict[int, list[int]] = {j: [] for j in range(len(blocks))}
    for j, (_, b) in enumerate(blocks):
        last = instrs[b]
        succ = []
        if last.op in ("BRX", "JMX") or (last.op == "JMP" and last.branch_target is None):
            return None
        t = last.branch_target
        if t is not None:
            if t not in first:
                return None
            succ.append(first[t])
        unconditional = last.predicate in ("", "@PT")
        if not (last.op in _ENDS_BLOCK and unconditional) and j + 1 < len(blocks):
            succ.append(j + 1)
        for x in succ:
            preds[x].append(j)
    h = first[head]
    seen = {h, of_index[branch]}
    work = [of_index[branch]] if of_index[branch] != h else []
    while work:
        j = work.pop()
        if j == 0 and h != 0:
            return _NOT_A_LOOP
        for p in preds[j]:
            if p not in seen:
                seen.add(p)
                work.append(p)
    return tuple(instrs[n] for j in sorted(seen) for n in range(blocks[j][0], blocks[j][1] + 1))


TENSOR_CORE = ("HMMA", "IMMA", "HGMMA", "IGMMA", "QGMMA")  # mma.sync (Ampere) and wgmma (Hopper)
STREAMING = ("LDGSTS", "UTMALDG")  # cp.async and TMA loads: a pipeline's steady state streams data in


def steady_state_loop(
    sass: str | Sequence[SassInstr], key: str | tuple[str, ...] | None = TENSOR_CORE, function: str | None = None
) -> SassLoop | None:
    """The kernel's main loop: among the backward-branch loops, the one with the most `key`
    instructions (any of them, when a tuple); on a tie the one that also streams data in (a
    pipeline's steady state rather than its drain), then the smallest (the innermost); with
    key=None, or when no loop has any, the largest loop. None when the code has no loop."""
    loops = find_loops(sass, function)
    if not loops:
        return None
    if key is not None:
        keys = (key,) if isinstance(key, str) else tuple(key)

        def count(lp):
            return sum(1 for i in lp.instrs if i.op in keys)

        best = max(count(lp) for lp in loops)
        if best > 0:
            hits = [lp for lp in loops if count(lp) == best]
            streaming = [lp for lp in hits if any(i.op in STREAMING for i in lp.instrs)]
            return min(streaming or hits, key=len)
    return max(loops, key=len)


# ---------------------------------------------------------------------------- resources

_RES_FUNC = re.compile(r"^\s*Function\s+(\S+?):\s*$")
_RES_FIELD = re.compile(r"([A-Z]+(?:\[\d+\])?):(\d+)")


@functools.lru_cache(maxsize=64)
def resource_usage_all(cubin: bytes) -> dict[str, dict[str, int]]:
    """Per function, from `cuobjdump -res-usage` lines such as
    `REG:10 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:368 ...`:

    - registers: REG, registers per thread;
    - stack_bytes: STACK, the per-thread stack frame (where ptxas spills registers and puts
      local arrays it cannot keep in registers);
    - local_bytes: LOCAL, other per-thread local memory;
    - spill_bytes: STACK + LOCAL, all per-thread local memory; 0 means every value lives in
      registers, which is what generated kernels should achieve;
    - shared_bytes: SHARED, static shared memory (the dynamic `smem` size is not in the cubin;
      it is CudaKernel.shared_bytes);
    - constant_bytes: the sum of the CONSTANT[n] banks (kernel parameters live in bank 0)."""
    text = _run_cuobjdump(cubin, "-res-usage")
    out: dict[str, dict[str, int]] = {}
    name = None
    for line in text.splitlines():
        m = _RES_FUNC.match(line)
        if m:
            name = m.group(1)
            continue
        if name is None:
            continue
        fields = dict((k, int(v)) for k, v in _RES_FIELD.findall(line))
        if "REG" not in fields:
            continue
        stack, local = fields.get("STACK", 0), fields.get("LOCAL", 0)
        out[name] = {
            "registers": fields["REG"],
            "stack_bytes": stack,
            "local_bytes": local,
            "spill_bytes": stack + local,
            "shared_bytes": fields.get("SHARED", 0),
            "constant_bytes": sum(v for k, v in fields.items() if k.startswith("CONSTANT")),
        }
        name = None
    return out


def resource_usage(cubin: bytes, function: str | None = None) -> dict[str, int]:
    """{"registers", "spill_bytes", "shared_bytes", ...} of `function`; without a name, of the
    cubin's only function, or for several functions the largest value of each field."""
    funcs = resource_usage_all(cubin)
    if not funcs:
        raise CuobjdumpError("cuobjdump -res-usage reported no functions")
    if function is not None:
        if function not in funcs:
            raise KeyError(f"no function {function!r} in the cubin; found: {', '.join(funcs)}")
        return dict(funcs[function])
    keys = next(iter(funcs.values())).keys()
    return {k: max(f[k] for f in funcs.values()) for k in keys}
