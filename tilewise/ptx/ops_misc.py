"""Instructions without data effects in a lockstep interpreter (membar, nanosleep, griddepcontrol: a
launch here has no grid it depends on and no dependent grid; fences are in
ops_mbarrier.py, which gives fence.proxy.async its meaning) and the
one call NVVM leaves in tilewise kernels: `vprintf` (device printf), interpreted from its format
string in global memory and its argument buffer in the thread's local memory. Threads print in
thread order; lines go to stdout and to the launch's `printed` list. Calls to any other function
are reported as unsupported, as are `trap` and `brkpt` (a kernel that traps has failed)."""
from __future__ import annotations

import re
import struct
import sys

import numpy as np

from .decode import opcode, unsupported
from .errors import EmulatorError
from .memory import GLOBAL_BASE, LOCAL_WINDOW, SHARED_WINDOW, WINDOW_SIZE
from .syntax import Group, Sym


@opcode("membar", "nanosleep", "pmevent", "griddepcontrol")
def _nop(ctx, instr):
    return lambda st: None


@opcode("trap", "brkpt")
def _trap(ctx, instr):
    def trap(st):
        raise EmulatorError(f"the kernel executed `{instr.opcode}` at {instr.where()}")

    return trap


_SPEC = re.compile(r"%([-+ #0]*)(\d+|\*)?(?:\.(\d+|\*))?(hh|h|ll|l|j|z|t|L)?([diouxXeEfFgGaAcspn%])")


@opcode("call")
def _call(ctx, instr):
    ops = list(instr.operands)
    ret = None
    if ops and isinstance(ops[0], Group):
        ret = ops.pop(0).items
    if not ops or not isinstance(ops[0], Sym):
        raise unsupported(instr, "indirect calls")
    name = ops[0].name
    args = ops[1].items if len(ops) > 1 and isinstance(ops[1], Group) else []
    if name != "vprintf":
        raise unsupported(instr, f"calls to {name} (only vprintf is built in)")
    if len(args) != 2:
        raise unsupported(instr, "vprintf with other than two arguments")
    p_fmt = ctx.symbol(instr, args[0].name)
    p_args = ctx.symbol(instr, args[1].name)
    p_ret = ctx.symbol(instr, ret[0].name) if ret else None

    def vprintf(st):
        idx = st.idx()
        tids = np.arange(st.T) if idx is None else idx
        for t in tids:
            t = int(t)
            fmt_addr = _param_u64(st, p_fmt[1], t)
            arg_addr = _param_u64(st, p_args[1], t)
            text = _format(st, t, _cstring(st, fmt_addr, t), arg_addr)
            st.printed.append(text)
            sys.stdout.write(text)
            if p_ret is not None:
                st.lviews[4][(t * st.local_stride + p_ret[1]) >> 2] = np.uint32(0)
        sys.stdout.flush()

    return vprintf


def _param_u64(st, off: int, t: int) -> int:
    return int(st.lviews[8][(t * st.local_stride + off) >> 3])


def _read(st, addr: int, n: int, t: int) -> bytes:
    """n bytes at generic address addr, as seen by thread t."""
    if SHARED_WINDOW <= addr < SHARED_WINDOW + WINDOW_SIZE:
        o = int(st.cta[t]) * st.shared_stride + addr - SHARED_WINDOW
        return st.shared[o : o + n].tobytes()
    if LOCAL_WINDOW <= addr < LOCAL_WINDOW + WINDOW_SIZE:
        o = t * st.local_stride + addr - LOCAL_WINDOW
        return st.local[o : o + n].tobytes()
    r = st.mem.region_of(addr)
    if r is None or addr + n > r.start + r.size:
        raise EmulatorError(f"vprintf reads outside every buffer at {addr:#x}")
    o = addr - GLOBAL_BASE
    return st.mem.bytes[o : o + n].tobytes()


def _cstring(st, addr: int, t: int) -> str:
    out = bytearray()
    while True:
        b = _read(st, addr + len(out), 1, t)
        if b == b"\0":
            return out.decode(errors="replace")
        out += b
        if len(out) > 1 << 16:
            raise EmulatorError("vprintf: unterminated string")


def _format(st, t: int, fmt: str, args: int) -> str:
    pos = 0

    def take(size: int, code: str):
        nonlocal pos
        pos = (pos + size - 1) // size * size
        raw = _read(st, args + pos, size, t)
        pos += size
        return struct.unpack("<" + code, raw)[0]

    def repl(m):
        flags, width, prec, length, conv = m.groups()
        if conv == "%":
            return "%"
        if width == "*" or prec == "*":
            raise EmulatorError("vprintf: '*' widths are not supported")
        spec = "%" + flags + (width or "") + ("." + prec if prec is not None else "")
        if conv in "di":
            v = take(8, "q") if length in ("ll", "l", "j", "z", "t") else take(4, "i")
            return (spec + "d") % v
        if conv in "ouxX":
            v = take(8, "Q") if length in ("ll", "l", "j", "z", "t") else take(4, "I")
            return (spec + conv) % v
        if conv in "eEfFgGaA":
            v = take(8, "d")
            return (spec + (conv if conv not in "aA" else "e")) % v
        if conv == "c":
            return (spec + "c") % chr(take(4, "i") & 0xFF)
        if conv == "s":
            return (spec + "s") % _cstring(st, take(8, "Q"), t)
        if conv == "p":
            return hex(take(8, "Q"))
        raise EmulatorError(f"vprintf: conversion %{conv} is not supported")

    return _SPEC.sub(repl, fmt)
