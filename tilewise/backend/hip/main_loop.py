"""The steady-state loop of a kernel's AMDGPU machine code (llvm-objdump's disassembly, as
get_isa() prints it) and its instruction mix: what a GEMM's main loop issues per MFMA."""
from __future__ import annotations

import re
from collections import Counter

_INSN = re.compile(r"^\s+([a-z_][a-z0-9_.]*)\b.*//\s*([0-9A-Fa-f]+):")
_BRANCH = re.compile(r"^\s+s_cbranch_\w+\s.*<\w+\+0x([0-9a-f]+)>")
_KERNEL = re.compile(r"^([0-9a-f]+) <(\w+)>:")


def instructions(isa: str) -> list[tuple[int, str, str]]:
    """(address, mnemonic, line) of every instruction, addresses absolute."""
    out = []
    for line in isa.splitlines():
        m = _INSN.match(line)
        if m:
            out.append((int(m.group(2), 16), m.group(1), line))
    return out


def main_loop(isa: str) -> list[tuple[int, str, str]]:
    """The instructions of the backward branch's loop that issues the most MFMAs (the K loop of a
    GEMM), from its target to the branch; empty when the code has no such loop."""
    base = {}
    for line in isa.splitlines():
        m = _KERNEL.match(line)
        if m:
            base[m.group(2)] = int(m.group(1), 16)
    insns = instructions(isa)
    best: list = []
    for addr, _name, line in insns:
        m = _BRANCH.match(line)
        if not m:
            continue
        kernel = re.search(r"<(\w+)\+0x", line).group(1)
        target = base.get(kernel, 0) + int(m.group(1), 16)
        if target >= addr:
            continue
        body = [i for i in insns if target <= i[0] <= addr]
        if sum(i[1].startswith("v_mfma") for i in body) > sum(i[1].startswith("v_mfma") for i in best):
            best = body
    return best


def instruction_mix(insns) -> Counter:
    """Counts of instruction classes: mfma, LDS reads / writes (lds_read, lds_write, and by width:
    lds_read_b128, lds_read_u16, ...), global loads / stores, waits, barriers, branches, and the
    other vector (valu) and scalar (salu) instructions."""
    out: Counter = Counter()
    for _addr, name, _line in insns:
        if name.startswith("v_mfma"):
            k = "mfma"
        elif name.startswith(("ds_read", "ds_write")):
            k = "lds_" + name[3:].split("_")[0] + "_" + name[3:].split("_")[1]  # lds_read_b128, lds_read_u16
            out["lds_read" if name.startswith("ds_read") else "lds_write"] += 1
        elif name.startswith(("global_load", "buffer_load", "flat_load")):
            k = "global_load"
        elif name.startswith(("global_store", "buffer_store", "flat_store")):
            k = "global_store"
        elif name == "s_waitcnt":
            k = "waitcnt"
        elif name == "s_barrier":
            k = "barrier"
        elif name.startswith(("s_branch", "s_cbranch")):
            k = "branch"
        elif name.startswith("v_accvgpr"):
            k = "accvgpr_move"
        elif name.startswith("v_"):
            k = "valu"
        elif name.startswith("s_"):
            k = "salu"
        else:
            k = "other"
        out[k] += 1
    return out


_VREG = re.compile(r"\bv(?:\[(\d+):(\d+)\]|(\d+)\b)")
_STORES = ("ds_write", "global_store", "buffer_store", "flat_store", "s_store")


def _vregs(text: str) -> set[int]:
    out: set[int] = set()
    for m in _VREG.finditer(text):
        lo = int(m.group(1) if m.group(1) is not None else m.group(3))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        out.update(range(lo, hi + 1))
    return out


def _operands(line: str) -> list[str]:
    body = line.split("//")[0].strip().split(None, 1)
    return [o.strip() for o in body[1].split(",")] if len(body) > 1 else []


def load_to_use_mfmas(insns) -> list[int]:
    """For each global load of a loop (instructions as main_loop returns them): the MFMAs issued
    between it and the first instruction that reads the registers it loads, going round the
    loop (how much math hides the load's latency: 0 when the data is used, by an LDS store say,
    before any MFMA). A load whose registers are overwritten before they are read counts 0."""
    out = []
    n = len(insns)
    for i, (_a, name, line) in enumerate(insns):
        if not name.startswith(("global_load", "buffer_load")):
            continue
        ops = _operands(line)
        dest = _vregs(ops[0]) if ops else set()
        mfmas = 0
        for j in range(1, n + 1):
            _b, other, text = insns[(i + j) % n]
            o = _operands(text)
            srcs = o if other.startswith(_STORES) else o[1:]
            if any(_vregs(x) & dest for x in srcs):
                break
            if not other.startswith(_STORES) and o and _vregs(o[0]) & dest:
                mfmas = 0
                break
            mfmas += other.startswith("v_mfma")
        out.append(mfmas)
    return out
