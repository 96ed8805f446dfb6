"""Executing a decoded kernel: basic blocks, divergence, batches of blocks.

A kernel is decoded once (`Program`): its body is cut into basic blocks at labels and after
branches, every instruction becomes a closure (decode.py), and each block ends in a terminator
that says where each executing thread goes next. Threads carry a block index as their PC. The
group of threads with the smallest PC executes next, as one masked vector operation per
instruction; threads that branched ahead wait until the group catches up with them, which
reconverges them at the first block they share (the immediate post-dominator for the structured
code NVVM emits). While every thread agrees, the PC is a single number and no mask is built.

`bar.sync 0` (__syncthreads) is a basic block of its own: a group that reaches it while other
live threads of its block are still on their way waits there (NVVM may lay a path out after the
barrier and branch back to it), and the threads pass together once all have arrived. A thread
that exits meanwhile, or waits at another barrier, means a barrier in divergent code (undefined
on a GPU) and raises `DivergenceError`. Blocks run in batches (all threads of a batch in lockstep) sized to keep
arrays around a few thousand entries."""
from __future__ import annotations

import numpy as np

from . import (  # noqa: F401 (registration)
    ops_cvt,
    ops_float,
    ops_int,
    ops_logic,
    ops_mbarrier,
    ops_memory,
    ops_misc,
    ops_vote,
    ops_warp,
    ops_wgmma,
)
from . import types as ty
from .decode import Ctx, decode
from .errors import DivergenceError, EmulatorError, PtxLaunchError
from .memory import GLOBAL_BASE, align_up
from .ops_warp import is_block_barrier, is_named_barrier
from .state import Batch
from .syntax import Function, Instruction, Label, Module

MAX_BLOCK_STEPS = 20_000_000


class Block:
    __slots__ = ("body", "instrs", "term", "first_line", "block_barrier")

    def __init__(self):
        self.body: list = []
        self.instrs: list[Instruction] = []
        self.term = None
        self.first_line = 0
        self.block_barrier = False  # a __syncthreads alone (kernels without mbarriers): threads park here


class Program:
    """One kernel of a PTX module, decoded."""

    def __init__(self, module: Module, name: str):
        self.module = module
        fn: Function = module.function(name)
        if fn.kind != "entry":
            raise PtxLaunchError(f"{name} is a .func, not a kernel (.entry)")
        self.fn = fn
        self.name = name
        self._layout(module, fn)
        self.reg_init = [ty.dtype(r.type).type(0) for r in fn.registers]
        self.wgmma_regs = _wgmma_registers(fn)
        self.uses_hopper = any(isinstance(i, Instruction) and (i.opcode.startswith(_HOPPER) or is_named_barrier(i))
                               for i in fn.body)
        self.closure_instr: dict = {}
        self._build_blocks(fn)

    # ------------------------------------------------------------------ static layout
    def _layout(self, module: Module, fn: Function):
        symbols: dict = {}
        # module .global variables: fixed addresses at the start of the heap
        gvars = [v for v in module.variables.values() if v.space == "global"]
        addr = GLOBAL_BASE
        self.global_vars = gvars
        for v in gvars:
            addr = align_up(addr, max(16, v.align))
            symbols[v.name] = ("global", addr)
            addr += max(v.size, 1) + 256
        self.globals_end = addr
        # shared: static variables from 0, the extern (dynamic) array after them
        off = 0
        for v in module.variables.values():
            if v.space == "shared" and not v.extern and v.count != -1:
                off = align_up(off, v.align)
                symbols[v.name] = ("shared", off)
                off += v.size
        for v in fn.variables:
            if v.space == "shared":
                off = align_up(off, v.align)
                symbols[v.name] = ("shared", off)
                off += v.size
        self.static_shared = off
        dyn_align = max([v.align for v in module.variables.values() if v.space == "shared" and (v.extern or v.count == -1)]
                        + [16])
        self.dynamic_start = align_up(off, dyn_align)
        for v in module.variables.values():
            if v.space == "shared" and (v.extern or v.count == -1):
                symbols[v.name] = ("shared", self.dynamic_start)
        # per-thread local memory: .local variables, then the .param buffers of call sequences
        loc = 0
        for v in fn.variables:
            if v.space in ("local", "param"):
                loc = align_up(loc, max(v.align, 1))
                symbols[v.name] = ("local" if v.space == "local" else "param_local", loc)
                loc += v.size
        self.local_bytes = align_up(max(loc, 8), 16)
        # kernel parameters
        p_off = 0
        self.param_offsets = []
        for p in fn.params:
            p_off = align_up(p_off, p.align)
            symbols[p.name] = ("param", p_off)
            self.param_offsets.append(p_off)
            p_off += p.size
        self.param_bytes = p_off
        for v in module.variables.values():
            if v.space == "const":
                raise PtxLaunchError(f"the .const variable {v.name} is not supported")
        for f in module.functions.values():
            symbols.setdefault(f.name, ("func", 0))
        self.symbols = symbols

    # ------------------------------------------------------------------ blocks
    def _build_blocks(self, fn: Function):
        blocks: list[Block] = []
        labels: dict[str, int] = {}
        cur = Block()
        ctx = Ctx(self)
        pending_terms = []
        named_blocks = []

        def close(b: Block):
            blocks.append(b)

        for item in fn.body:
            if isinstance(item, Label):
                if cur.instrs:
                    close(cur)
                    cur = Block()
                labels[item.name] = len(blocks)
                cur.first_line = item.line
                continue
            head = item.parts[0]
            if is_named_barrier(item) or (self.uses_hopper and is_block_barrier(item)):  # a block of its own: its threads wait there (named_barriers.py)
                if cur.instrs:
                    close(cur)
                    cur = Block()
                f = decode(ctx, item)
                self.closure_instr[f] = item
                cur.body.append(f)
                cur.instrs.append(item)
                named_blocks.append(len(blocks))
                close(cur)
                cur = Block()
                continue
            if is_block_barrier(item):
                # a block of its own: threads of a block that arrive while the others are still on
                # their way (a path NVVM laid out after the barrier) wait here (_run_batch)
                if cur.instrs:
                    close(cur)
                    cur = Block()
                f = decode(ctx, item)
                self.closure_instr[f] = item
                cur.body.append(f)
                cur.instrs.append(item)
                cur.block_barrier = True
                close(cur)
                cur = Block()
                continue
            if head in ("bra", "ret", "exit", "brx"):
                cur.instrs.append(item)
                pending_terms.append((len(blocks), item))
                close(cur)
                cur = Block()
                continue
            f = decode(ctx, item)
            self.closure_instr[f] = item
            cur.body.append(f)
            cur.instrs.append(item)
        close(cur)
        # blocks that are empty and unreachable labels are harmless; terminators need label indices
        self.labels = labels
        nb = len(blocks)
        terms = {i: instr for i, instr in pending_terms}
        for i, b in enumerate(blocks):
            instr = terms.get(i)
            b.term = _terminator(instr, i, nb, labels, ctx) if instr is not None else _fall(i + 1, nb)
        for i in named_blocks:
            blocks[i].term = _named_barrier_step(i, min(i + 1, nb))
        self.blocks = blocks

    def where(self, instr: Instruction) -> str:
        return instr.where()


_HOPPER = ("mbarrier.", "wgmma.", "cp.async.bulk.", "fence.proxy.async", "setmaxnreg.")


def _wgmma_registers(fn: Function) -> frozenset:
    """Registers some wgmma.mma_async names as its accumulator or A operand: other instructions
    touching them are checked against the wgmma groups in flight (decode.py)."""
    from .syntax import Reg, Vec

    uids = set()
    for item in fn.body:
        if isinstance(item, Instruction) and item.opcode.startswith("wgmma.mma_async"):
            for op in item.operands[:2]:
                for x in op.items if isinstance(op, Vec) else []:
                    if isinstance(x, Reg) and not x.special:
                        uids.add(x.decl.uid)
    return frozenset(uids)


def _named_barrier_step(here: int, fall: int):
    return lambda st: st.hopper.named.step(st, here, fall)


def _fall(nxt: int, nb: int):
    v = min(nxt, nb)
    return lambda st: v


def _terminator(instr: Instruction, i: int, nb: int, labels: dict, ctx: Ctx):
    from .decode import Mods, unsupported
    from .syntax import Sym

    head = instr.parts[0]
    fall = min(i + 1, nb)
    if head in ("ret", "exit"):
        if instr.guard is not None:
            uid, neg = instr.guard.decl.uid, instr.guard_negated

            def cond_ret(st):
                p = st.R[uid]
                if neg:
                    p = ~p
                if np.ndim(p) == 0:
                    return nb if p else fall
                return np.where(p, nb, fall)

            return cond_ret
        return lambda st: nb
    if head == "brx":
        raise unsupported(instr, "indirect branches")
    mods = Mods(instr)
    mods.take("uni")
    mods.done()
    if len(instr.operands) != 1 or not isinstance(instr.operands[0], Sym):
        raise unsupported(instr, "branch operands")
    target = labels.get(instr.operands[0].name)
    if target is None:
        raise unsupported(instr, f"branch to unknown label {instr.operands[0].name}")
    if instr.guard is None:
        return lambda st: target
    uid, neg = instr.guard.decl.uid, instr.guard_negated

    def cond(st):
        p = st.R[uid]
        if neg:
            p = ~p
        if np.ndim(p) == 0:
            return target if p else fall
        m = st.mask
        pm = p if m is None else p[m]
        if pm.all():
            return target
        if not pm.any():
            return fall
        return np.where(p, target, fall)

    return cond


# ---------------------------------------------------------------------------- launches


class Launch:
    """Everything one kernel launch shares between its batches."""

    def __init__(self, program: Program, grid, block, memory, param_bytes: bytes, dynamic_shared: int,
                 line_info=None, printed=None, check_races: bool = True, tensor_maps=()):
        self.program = program
        self.grid = grid
        self.block = block
        self.memory = memory
        self.params = param_bytes
        padded = np.frombuffer(param_bytes + bytes(-len(param_bytes) % 8 or 0) + bytes(8), dtype=np.uint8)
        self.param_views = {k: padded.view(t) for k, t in ((1, np.uint8), (2, np.uint16), (4, np.uint32),
                                                            (8, np.uint64))}
        self.tensor_maps = list(tensor_maps)  # (TensorMapDesc, global address, parameter name)
        self.threads_per_block = block[0] * block[1] * block[2]
        self.padded_threads = align_up(self.threads_per_block, 32)
        self.dynamic_shared_bytes = dynamic_shared
        self.shared_bytes = program.dynamic_start + dynamic_shared if dynamic_shared else program.static_shared
        self.shared_bytes_padded = align_up(max(self.shared_bytes, 16), 16)
        self.line_info = line_info
        self.printed = printed if printed is not None else []
        self.check_races = check_races


def run_program(launch: Launch, batch_threads: int = 4096):
    grid = launch.grid
    nblocks = grid[0] * grid[1] * grid[2]
    per = max(1, batch_threads // launch.padded_threads)
    with np.errstate(all="ignore"):
        for start in range(0, nblocks, per):
            ids = np.arange(start, min(nblocks, start + per), dtype=np.int64)
            _run_batch(launch.program, Batch(launch.program, launch, ids))


def _run_batch(prog: Program, st: Batch):
    blocks = prog.blocks
    nb = len(blocks)
    T = st.T
    pc = np.zeros(T, dtype=np.int64)
    if not st.all_alive:
        pc[~st.alive] = nb
    cur = 0
    group = None if st.all_alive else st.alive.copy()
    steps = 0
    parked = None  # threads waiting at a __syncthreads for the rest of their block
    alive_then = None  # which threads were alive when the first of them parked
    while True:
        blk = blocks[cur]
        if blk.block_barrier and (group is not None or parked is not None):
            sel = np.ones(T, dtype=bool) if group is None else group
            ctas = np.zeros(st.ncta, dtype=bool)
            ctas[st.cta[sel]] = True
            mine = ctas[st.cta]
            here = np.zeros(T, dtype=bool) if parked is None else parked & (pc == cur) & mine
            free = (pc < nb) & ~sel & (True if parked is None else ~parked)
            if (free & mine).any():
                # others of these blocks are still on their way (NVVM may lay a path out after the
                # barrier and branch back): the group waits here and the lowest other group runs
                if parked is None:
                    parked, alive_then = sel.copy(), st.alive.copy()
                else:
                    parked = parked | sel
                cur = int(pc[free].min())
                group = free & (pc == cur)
                group = None if group.all() else group
                continue
            if here.any():  # everyone else of these blocks waits here: they pass together
                sel = sel | here
                parked = parked & ~here
                gone = alive_then & ~st.alive & mine
                if gone.any():
                    t, h = int(np.flatnonzero(gone)[0]), int(np.flatnonzero(sel)[0])
                    raise DivergenceError(
                        f"bar.sync at {blk.instrs[0].where()} is reached by {st.thread_name(h)} while "
                        f"{st.thread_name(t)} of the same block has exited: a barrier in divergent code")
                if not parked.any():
                    parked = alive_then = None
                group = None if sel.all() else sel
        st.mask = group
        f = None
        try:
            for f in blk.body:
                f(st)
        except EmulatorError as e:
            _add_location(e, prog, f, st)
            raise
        except Exception as e:  # a bug of the interpreter: name the instruction
            instr = prog.closure_instr.get(f)
            where = instr.where() if instr is not None else "?"
            raise EmulatorError(f"internal error of the PTX interpreter at {where}: {type(e).__name__}: {e}") from e
        nxt = blk.term(st)
        steps += 1
        if steps > MAX_BLOCK_STEPS:
            raise EmulatorError(f"{prog.name} did not finish after {MAX_BLOCK_STEPS} basic blocks (an endless loop?)")
        hs = st.hopper
        waiting = hs is not None and hs.any_blocked  # threads suspended in an mbarrier wait run last
        if group is None:
            if np.ndim(nxt) == 0 and not waiting:
                if nxt >= nb:
                    return
                cur = int(nxt)
                continue
            pc[:] = nxt
        elif np.ndim(nxt) == 0:
            pc[group] = nxt
        else:
            pc[group] = nxt[group]
        if (np.ndim(nxt) == 0 and nxt >= nb) or np.ndim(nxt) > 0:
            st.alive = pc < nb
        if waiting:
            live = pc < nb
            if not live.any():
                return
            ready = live & ~hs.blocked
            if not ready.any():
                hs.stalled(live)  # everyone retries, or a DeadlockError
                ready = live
            m = int(pc[ready].min())
            sel = ready & (pc == m)
        elif parked is not None:
            free = (pc < nb) & ~parked
            pick = free if free.any() else parked  # only waiting threads left: the lowest barrier's
            m = int(pc[pick].min())
            sel = pick & (pc == m)
        else:
            m = int(pc.min())
            if m >= nb:
                return
            sel = pc == m
        cur = m
        group = None if sel.all() else sel


def _add_location(e: EmulatorError, prog: Program, f, st: Batch):
    """Append the CUDA / user source lines of the failing instruction to the message."""
    info = st.launch.line_info
    instr = prog.closure_instr.get(f)
    if info is None or instr is None or instr.loc is None or getattr(e, "_located", False):
        return
    extra = info(instr.loc)
    if extra:
        e.args = (f"{e.args[0]}\n  {extra}",) + tuple(e.args[1:])
    e._located = True
