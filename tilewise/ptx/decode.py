"""Decoding: each parsed instruction becomes a Python closure `run(batch)` once per kernel.

The closures capture everything static (register numbers, dtypes, immediates, symbol addresses,
the semantics picked from the modifiers), so executing an instruction is a handful of numpy
operations on whole-batch arrays and no dispatching. `Ctx` gives the instruction decoders
(`ops_*.py`, registered in `OPCODES` by the first component of the opcode) typed operand readers
and writers. A modifier a decoder does not consume, an unknown opcode or an operand of an
unexpected form raises `PtxUnsupportedError` naming the instruction and its PTX line."""
from __future__ import annotations

import numpy as np

from . import types as ty
from .errors import PtxUnsupportedError
from .syntax import FImm, Group, Imm, Instruction, Mem, MemList, Not, Pair, Reg, Sym, Vec

OPCODES: dict = {}


def opcode(*names):
    def deco(fn):
        for n in names:
            OPCODES[n] = fn
        return fn

    return deco


class Mods:
    """The modifiers of an instruction; decoders `take` what they understand and `done()`
    rejects whatever is left."""

    def __init__(self, instr: Instruction):
        self.instr = instr
        self.rest = instr.parts[1:]

    def take(self, *options, default=None):
        """The first remaining modifier among `options` (removed), else `default`."""
        for i, m in enumerate(self.rest):
            if m in options:
                del self.rest[i]
                return m
        return default

    def flag(self, name: str) -> bool:
        return self.take(name) is not None

    def take_type(self, allowed=None) -> str:
        """The last remaining modifier that is a type (instruction types come last)."""
        for i in range(len(self.rest) - 1, -1, -1):
            m = self.rest[i]
            if m in ty.DTYPES:
                if allowed is not None and m not in allowed:
                    raise unsupported(self.instr, f"type .{m}")
                del self.rest[i]
                return m
        raise unsupported(self.instr, "an instruction without a type")

    def done(self):
        if self.rest:
            raise unsupported(self.instr, "modifier " + ", ".join("." + m for m in self.rest))


def unsupported(instr: Instruction, what: str) -> PtxUnsupportedError:
    return PtxUnsupportedError(f"{what} of `{instr.opcode}` is not supported by the PTX interpreter ({instr.where()})")


class Ctx:
    """Decoding context of one kernel: its registers and the addresses of its symbols."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.symbols = kernel.symbols  # name -> (space, address)

    # ------------------------------------------------------------------ registers
    def storage(self, reg: Reg) -> np.dtype:
        return ty.dtype(reg.decl.type)

    def src(self, instr: Instruction, op, ptype: str):
        """A reader `f(batch) -> value` of operand `op` as PTX type `ptype`."""
        want = ty.dtype(ptype)
        signed = ty.is_signed(ptype)
        if isinstance(op, Reg):
            if op.special:
                name = op.name
                kind = ty.dtype("u64" if name in ("%clock64", "%gridid", "%globaltimer") else "u32")

                def special(st, name=name):
                    return ty.convert(st.special(name), kind, want, signed)

                return special
            uid = op.decl.uid
            have = self.storage(op)
            if have == want:
                return lambda st: st.R[uid]
            if have == np.bool_ or want == np.bool_:
                raise unsupported(instr, f"register {op.name} (.{op.decl.type}) used as .{ptype}")
            return lambda st: ty.convert(st.R[uid], have, want, signed)
        if isinstance(op, Imm):
            v = ty.scalar(op.value, want)
            return lambda st: v
        if isinstance(op, FImm):
            if op.width == 32:
                f = np.uint32(op.bits).view(np.float32)
            else:
                f = np.uint64(op.bits).view(np.float64)
            if want.kind == "f":
                v = want.type(f)
            elif want.itemsize * 8 == op.width:
                v = (np.uint32 if op.width == 32 else np.uint64)(op.bits).view(want)
            else:
                raise unsupported(instr, f"float immediate as .{ptype}")
            return lambda st: v
        if isinstance(op, Not):
            inner = self.src(instr, op.operand, ptype)
            return lambda st: ~inner(st)
        if isinstance(op, Sym):  # the address of a variable in its state space
            space, addr = self.symbol(instr, op.name)
            if space not in ("global", "shared", "local", "param"):
                raise unsupported(instr, f"the address of {op.name} (.{space})")
            v = ty.scalar(addr, want)
            return lambda st: v
        raise unsupported(instr, f"operand {op!r}")

    def dst(self, instr: Instruction, op, ptype: str):
        """A writer `f(batch, value)` storing a value of PTX type `ptype` into register `op`
        for the executing threads; None for the sink `_`."""
        if isinstance(op, Sym) and op.name == "_":
            return None
        if not isinstance(op, Reg) or op.special:
            raise unsupported(instr, f"destination {op!r}")
        uid = op.decl.uid
        have = ty.dtype(ptype)
        store = self.storage(op)
        signed = ty.is_signed(ptype)
        if store == np.bool_ or have == np.bool_:
            if store != have:
                raise unsupported(instr, f"register {op.name} (.{op.decl.type}) written as .{ptype}")
            return lambda st, v: st.write(uid, v)
        if have == store:
            return lambda st, v: st.write(uid, v)
        return lambda st, v: st.write(uid, ty.convert(v, have, store, signed))

    def dst_sel(self, instr: Instruction, op, ptype: str):
        """A writer `f(batch, idx, values)` for values of the executing threads only."""
        if isinstance(op, Sym) and op.name == "_":
            return None
        if not isinstance(op, Reg) or op.special:
            raise unsupported(instr, f"destination {op!r}")
        uid = op.decl.uid
        have = ty.dtype(ptype)
        store = self.storage(op)
        signed = ty.is_signed(ptype)
        if have == store:
            return lambda st, idx, v: st.write_sel(uid, idx, v, store)
        return lambda st, idx, v: st.write_sel(uid, idx, ty.convert(v, have, store, signed), store)

    def regs(self, instr: Instruction, op) -> list:
        """The operands of a vector `{a, b, ...}` (a single operand is a one-element list)."""
        return list(op.items) if isinstance(op, Vec) else [op]

    # ------------------------------------------------------------------ symbols and addresses
    def symbol(self, instr: Instruction, name: str):
        s = self.symbols.get(name)
        if s is None:
            raise unsupported(instr, f"symbol {name}")
        return s

    def address(self, instr: Instruction, op):
        """(reader of the address as int64/uint64 values, symbol space or None) of `[...]`."""
        if not isinstance(op, Mem):
            raise unsupported(instr, f"address operand {op!r}")
        off = op.offset
        if op.base is None:
            v = np.uint64(off & (2**64 - 1))
            return (lambda st: v), None
        if isinstance(op.base, Sym):
            space, addr = self.symbol(instr, op.base.name)
            v = np.uint64((addr + off) & (2**64 - 1))
            return (lambda st: v), space
        if isinstance(op.base, Reg):
            wide = not op.base.special and ty.dtype(op.base.decl.type).itemsize == 8
            r = self.src(instr, op.base, "u64" if wide else "u32")
            if off == 0:
                return (lambda st: as_u64(r(st))), None
            if not wide:  # 32-bit addresses (shared windows) wrap at 2**32
                o32 = np.uint32(off & 0xFFFFFFFF)
                return (lambda st: as_u64(r(st) + o32)), None
            o = np.uint64(off & (2**64 - 1))
            return (lambda st: as_u64(r(st)) + o), None
        raise unsupported(instr, f"address {op!r}")


def as_u64(a):
    return a if a.dtype == np.uint64 else a.astype(np.uint64)


def decode(ctx: Ctx, instr: Instruction):
    """The closure executing `instr` (its guard predicate included)."""
    head = instr.parts[0]
    fn = OPCODES.get(head)
    if fn is None:
        raise PtxUnsupportedError(f"instruction `{instr.opcode}` is not supported by the PTX interpreter ({instr.where()})")
    run = fn(ctx, instr)
    owned = ctx.kernel.wgmma_regs
    if owned and head != "wgmma":
        uids = operand_uids(instr) & owned
        if uids:
            run = _wgmma_checked(run, uids, instr)
    if instr.guard is None:
        return run
    if instr.guard.special or instr.guard.decl.type != "pred":
        raise unsupported(instr, "a guard that is not a predicate register")
    return guarded(run, instr.guard.decl.uid, instr.guard_negated)


def operand_regs(instr: Instruction) -> list:
    """The (non-special) registers an instruction names, its guard included."""
    out = []

    def walk(op):
        if isinstance(op, Reg):
            if not op.special:
                out.append(op)
        elif isinstance(op, (Vec, MemList, Group)):
            for x in op.items:
                walk(x)
        elif isinstance(op, Mem):
            walk(op.base)
        elif isinstance(op, Pair):
            walk(op.first)
            walk(op.second)
        elif isinstance(op, Not):
            walk(op.operand)

    for op in instr.operands:
        walk(op)
    if instr.guard is not None:
        walk(instr.guard)
    return out


def operand_uids(instr: Instruction) -> frozenset:
    return frozenset(r.decl.uid for r in operand_regs(instr))


def _wgmma_checked(run, uids: frozenset, instr: Instruction):
    """`run`, first checking that no wgmma in flight owns these registers (hopper.py)."""

    def checked(st):
        hs = st.hopper
        if hs is not None and hs.wg_records:
            hs.check_registers(uids, instr)
        run(st)

    return checked


def guarded(run, uid: int, negated: bool):
    def g(st):
        p = st.R[uid]
        if negated:
            p = ~p
        if np.ndim(p) == 0:
            if p:
                run(st)
            return
        m = st.mask
        new = p if m is None else (m & p)
        if not new.any():
            return
        if m is None and new.all():
            run(st)
            return
        st.mask = new
        try:
            run(st)
        finally:
            st.mask = m

    return g
