"""`run(func, args, dims)`: bind the arguments, then launch each kernel of the function as
batches of blocks. A batch executes in lockstep (every thread runs each statement together),
unless the kernel is warp-specialised or synchronises threads under a condition that differs
between them: then its warps (or warpgroups) are scheduled as units that run until they block
(schedule.py)."""
from __future__ import annotations

import weakref

import numpy as np

from .. import env
from ..ir.buffer import Buffer
from ..ir.expr import Expr, Var
from ..ir.recursion import deep_recursion
from ..ir.stmt import Allocate, Annotation, Kernel, LetStmt, PrimFunc, SeqStmt, Stmt
from ..ir.visitor import Visitor
from . import arith, grid_sync, races, schedule
from .banks import BankCounter
from .compiler import Compiler
from .errors import EmptyGridError, UnsupportedError, empty_grid_message, kernel_name, where
from .memory import Site, global_storage
from .state import Batch, HostState
from .tma import check_exit

DEFAULT_MAX_LANES = 16384
SHARED_BUDGET = 64 << 20  # bytes of shared memory (with its race shadow) per batch


class KernelProgram:
    def __init__(self, kernel: Kernel, body, grid_fns, block_slots, thread_slots, smem_bytes: int):
        self.kernel = kernel
        self.plan = schedule.plan(kernel)
        self.body = body
        self.grid_fns = grid_fns
        self.block_slots = block_slots
        self.thread_slots = thread_slots
        self.threads = list(kernel.threads)
        self.smem_bytes = smem_bytes


class Program:
    """A PrimFunc compiled to closures. Variables and root buffers get slot numbers; every memory
    access gets a Site for error messages."""

    def __init__(self, func: PrimFunc, fast_math: bool = False):
        self.func = func
        self.fast_math = fast_math  # float32 arithmetic flushes subnormals (compiler.py)
        self._var_slots: dict[int, int] = {}
        self._buf_slots: dict[int, int] = {}
        self._keep: list = []
        self.sites: list[Site] = []
        self.uses_hopper = False  # set while compiling an mbarrier, TMA or wgmma intrinsic
        self.uses_order = False  # set while compiling a named barrier (order.py may be needed)
        self.global_writes: set[int] = set()  # slots of the global buffers some statement writes
        self.global_granule: dict[int, int] = {}  # their element size (the race shadow's unit)
        self.steps: list = []  # ("kernel", KernelProgram) | ("let", slot, fn)
        comp = Compiler(self)
        self.param_slots = []
        self.shape_fns: dict[int, list] = {}
        for p in func.params:
            if isinstance(p, Buffer):
                if not p.is_global:
                    raise UnsupportedError(f"parameter {p.name} is a {p.scope} buffer; kernel parameters are global")
                self.param_slots.append(("buffer", self.buf_slot(p)))
                self.shape_fns[id(p)] = [d if not isinstance(d, Expr) else comp.expr(d) for d in p.shape]
            elif isinstance(p, Var):
                self.param_slots.append(("scalar", self.var_slot(p)))
            else:
                raise UnsupportedError(f"unsupported parameter {p!r}")
        self.dynamic_vars = func.dynamic_vars()
        self.dyn_slots = [self.var_slot(v) for v in self.dynamic_vars]
        for s in _flatten(func.body):
            if isinstance(s, Kernel):
                self.steps.append(("kernel", self._kernel(comp, s)))
            elif isinstance(s, LetStmt):
                comp.span = s.span
                self.steps.append(("let", self.var_slot(s.var), comp.expr(s.value)))
            elif isinstance(s, Annotation):
                continue
            else:
                raise UnsupportedError(
                    f"{type(s).__name__} outside a kernel at {where(getattr(s, 'span', None))}: thread IR has one "
                    "Kernel statement per launch"
                )
        self.n_vars = len(self._var_slots)
        self.n_bufs = len(self._buf_slots)

    def var_slot(self, v: Var) -> int:
        key = id(v)
        if key not in self._var_slots:
            self._var_slots[key] = len(self._var_slots)
            self._keep.append(v)
        return self._var_slots[key]

    def buf_slot(self, b: Buffer) -> int:
        key = id(b)
        if key not in self._buf_slots:
            self._buf_slots[key] = len(self._buf_slots)
            self._keep.append(b)
        return self._buf_slots[key]

    def new_site(self, buf: Buffer, span, what: str) -> Site:
        site = Site(len(self.sites), buf, span, what)
        self.sites.append(site)
        return site

    def _kernel(self, comp: Compiler, k: Kernel) -> KernelProgram:
        comp.span = k.span
        comp.warp_size = int(k.attrs.get("warp_size", 32))  # 64: lowered for an AMD GPU (HIP)
        grid_fns = [comp.expr(g) for g in k.grid]
        block_slots = [self.var_slot(v) for v in k.block_vars]
        thread_slots = [self.var_slot(v) for v in k.thread_vars]
        body = comp.stmt(k.body)
        return KernelProgram(k, body, grid_fns, block_slots, thread_slots, _shared_bytes(k.body))


def _flatten(s: Stmt):
    if isinstance(s, SeqStmt):
        for x in s.stmts:
            yield from _flatten(x)
    elif s is not None:
        yield s


def _shared_bytes(body: Stmt) -> int:
    """Bytes of shared memory one block allocates (root allocations only)."""
    total = [0]

    class V(Visitor):
        def visit_Allocate(self, s: Allocate):
            b = s.buffer
            if b.base is None and b.is_shared:
                shp = b.static_shape() or ()
                total[0] += int(np.prod(shp, dtype=np.int64)) * b.dtype.bytes
            self.generic_visit(s)

    V().visit(body)
    return total[0]


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compile_program(func: PrimFunc, fast_math: bool = False) -> Program:
    """Compile once per PrimFunc and fast-math setting (cached while the function object lives)."""
    progs = _CACHE.setdefault(func, {})
    prog = progs.get(fast_math)
    if prog is None:
        with deep_recursion():
            prog = Program(func, fast_math)
        progs[fast_math] = prog
    return prog


def run(
    func: PrimFunc,
    args: list,
    dims: list[int] | None = None,
    *,
    check_races: bool = True,
    check_uninit: bool = False,
    max_lanes: int = DEFAULT_MAX_LANES,
    stats: BankCounter | None = None,
    atomic_seed: int | None = None,
    fast_math: bool = False,
    atomic_lane_order: bool = False,
) -> int:
    """Execute the thread-level `func` on the CPU, every thread of every block, with numpy.

    args: one per parameter of func: numpy arrays for global buffers (C-contiguous, of the
    buffer's dtype; written in place) and Python / numpy scalars for scalar parameters.
    dims: the values of func.dynamic_vars() (inferred from the arrays' shapes when omitted).
    check_races: report shared-memory races between barriers and reads of cp.async destinations
    before their wait. check_uninit: report reads of shared or register memory never written.
    max_lanes: how many threads (blocks x threads per block) execute together; bounds memory.
    stats: a banks.BankCounter that counts the shared-memory bank conflicts of every warp request
    (its .stats(prog.sites) summarises them); None counts nothing.
    atomic_seed: atomics of one statement that hit one address apply in an order drawn from a
    generator seeded with it, as on a GPU where their order is not defined (float sums then
    differ run to run in their last bits). None: TILEWISE_EMULATOR_ATOMIC_SEED when set, else
    a fresh seed every run. Returns the seed used, to reproduce a run. atomic_lane_order: apply
    them in lane order instead (what the PTX interpreter does, for the differential check).
    fast_math: model what --use_fast_math (tl.enable_fast_math) compiles: float32 arithmetic,
    comparisons, conversions and math functions flush subnormal inputs and results to zero
    (.ftz); the approximate functions are computed accurately (docs/API.md gives the bound).

    Raises an EmulatorError subclass naming the buffer, element, threads and source lines."""
    prog = compile_program(func, fast_math)
    seed = atomic_order_seed(atomic_seed)
    rng = None if atomic_lane_order else np.random.default_rng(seed)
    if len(args) != len(func.params):
        raise TypeError(f"{func.name} takes {len(func.params)} arguments, got {len(args)}")
    vals: list = [None] * prog.n_vars
    store: list = [None] * prog.n_bufs
    shapes: dict = {}
    writeback = []
    # dynamic dims first: buffer shapes are checked against them
    if dims is None:
        dims = _infer_dims(func, args, prog.dynamic_vars)
    if len(dims) != len(prog.dynamic_vars):
        raise TypeError(f"{func.name} has {len(prog.dynamic_vars)} dynamic dimensions, got {len(dims)} values")
    for v, slot, d in zip(prog.dynamic_vars, prog.dyn_slots, dims):
        vals[slot] = arith.const(int(d), v.dtype)
    host = HostState(vals, shapes)
    # scalars first: the shapes of T.make_tensor tensors may be scalar parameters
    for p, (kind, slot), a in zip(func.params, prog.param_slots, args):
        if kind == "scalar":
            vals[slot] = arith.const(a.item() if hasattr(a, "item") else a, p.dtype)
    for p, (kind, slot), a in zip(func.params, prog.param_slots, args):
        if kind == "scalar":
            continue
        if p.dtype.kind == "float4":  # packed two per byte inside the kernel (transform/pack_fp4.py)
            arr = _fp4_bytes(p, a, host, prog.shape_fns[id(p)], writeback)
            shapes[p] = tuple(arr.shape)
            store[slot] = global_storage(p.name, arr)
            continue
        arr = _check_array(p, a, host, prog.shape_fns[id(p)])
        if not arr.flags.c_contiguous:
            work = np.ascontiguousarray(arr)
            writeback.append((arr, work))
            arr = work
        shapes[p] = tuple(arr.shape)
        store[slot] = global_storage(p.name, arr)
    with np.errstate(all="ignore"), deep_recursion():
        for step in prog.steps:
            if step[0] == "let":
                _, slot, fn = step
                vals[slot] = fn(host)
            else:
                _launch(prog, step[1], vals, store, shapes, host, check_races, check_uninit, max_lanes, rng, stats)
    for orig, work in writeback:
        orig[...] = work
    return seed


def atomic_order_seed(seed: int | None) -> int:
    """The seed of a run's atomic order: `seed`, else TILEWISE_EMULATOR_ATOMIC_SEED, else fresh."""
    if seed is None:
        fixed = env.get("TILEWISE_EMULATOR_ATOMIC_SEED")
        if fixed:
            try:
                return int(fixed)
            except ValueError:
                raise ValueError(f"TILEWISE_EMULATOR_ATOMIC_SEED={fixed!r} is not an integer") from None
        return int(np.random.SeedSequence().entropy % (1 << 63))
    return int(seed)


def _check_array(p: Buffer, a, host: HostState, shape_fns) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"argument {p.name}: expected a numpy array, got {type(a).__name__}")
    want = arith.np_dtype(p.dtype)
    if a.dtype != want:
        raise TypeError(f"argument {p.name}: expected dtype {p.dtype}, got {a.dtype}")
    if a.ndim != len(p.shape):
        raise ValueError(f"argument {p.name}: expected {len(p.shape)} dimensions, got shape {a.shape}")
    if a.size == 0 and not any(a.shape):
        return a  # the empty stand-in for a None the caller passed for a tensor the kernel never touches
    for k, (d, n) in enumerate(zip(shape_fns, a.shape)):
        want_d = int(d) if isinstance(d, int) else int(d(host))
        if want_d != n:
            raise ValueError(f"argument {p.name}: dimension {k} should be {want_d}, got {n} (shape {a.shape})")
    return a


def _fp4_bytes(p: Buffer, a, host: HostState, shape_fns, writeback: list) -> np.ndarray:
    """The packed bytes of an fp4 parameter: a uint8 array as given (the caller's packed tensor,
    jit/args.py), or an array of ml_dtypes.float4_e2m1fn of the logical shape packed here and
    unpacked back after the run (the element at flat offset e in nibble e % 2 of byte e // 2)."""
    if isinstance(a, np.ndarray) and a.dtype in (np.uint8, np.int8):
        raw = a.view(np.uint8)
        if raw.flags.c_contiguous or raw.size == 0:
            return raw
        # rows of a larger tensor (T.StridedTensor): the kernel addresses the bytes by the
        # strides from the first one, so it gets all the bytes they span, in place
        if any(st < 0 for st in raw.strides):
            raise ValueError(f"argument {p.name}: a packed fp4 tensor with negative strides")
        span = 1 + sum((n - 1) * st for n, st in zip(raw.shape, raw.strides))
        return np.lib.stride_tricks.as_strided(raw, (span,), (1,))
    a = _check_array(p, a, host, shape_fns)
    logical = np.ascontiguousarray(a).view(np.uint8).reshape(-1)
    codes = np.zeros(logical.size + (logical.size & 1), np.uint8)
    codes[:logical.size] = (logical & 7) | np.where(logical & 0xF8, 8, 0).astype(np.uint8)  # as ml_dtypes reads it
    packed = codes[0::2] | (codes[1::2] << 4)

    class _Back:
        def __setitem__(self, _key, work):
            back = np.empty(work.size * 2, np.uint8)
            back[0::2], back[1::2] = work & 0x0F, work >> 4
            a.view(np.uint8)[...] = back[:logical.size].reshape(a.shape)

    writeback.append((_Back(), packed))
    return packed


def _infer_dims(func: PrimFunc, args, dyn_vars) -> list[int]:
    found: dict[int, int] = {}
    for p, a in zip(func.params, args):
        if isinstance(p, Buffer) and isinstance(a, np.ndarray):
            for d, n in zip(p.shape, a.shape):
                if isinstance(d, Var):
                    found.setdefault(id(d), int(n))
    out = []
    for v in dyn_vars:
        if id(v) not in found:
            raise TypeError(f"cannot infer the dynamic dimension {v.name} from the arguments; pass dims")
        out.append(found[id(v)])
    return out


def _launch(prog: Program, kp: KernelProgram, vals, store, shapes, host, check_races, check_uninit, max_lanes, rng,
            stats=None):
    grid = [int(f(host)) for f in kp.grid_fns]
    if any(g <= 0 for g in grid):  # TileLang's runtime refuses a grid of no blocks
        kernels = [st[1] for st in prog.steps if st[0] == "kernel"]
        raise EmptyGridError(empty_grid_message(kernel_name(prog.func.name, kernels.index(kp)), grid))
    threads = kp.threads
    T = int(np.prod(threads))
    nblocks = int(np.prod(grid)) if grid else 1
    if kp.body is None:
        return
    per_block = max(1, kp.smem_bytes * (33 if check_races else 1))
    if check_races and (prog.uses_hopper or prog.uses_order or kp.plan.scheduled):
        # sequence numbers in the race shadow and the happens-before matrix (order.py)
        per_block += kp.smem_bytes * 12 + T * T * 4
    nb = max(1, min(nblocks, max_lanes // max(T, 1), SHARED_BUDGET // per_block))
    if "sync_grid" in kp.kernel.attrs.get("launch_sync", ()):
        # a grid barrier: every block of the launch is resident and runs in one batch (grid_sync.py)
        grid_sync.check_co_resident(kp.kernel, nblocks, kp.smem_bytes)
        nb = nblocks
    gdims = grid if grid else [1]
    epoch = _global_shadows(prog, kp, store, nblocks, T) if check_races else None
    try:
        for b0 in range(0, nblocks, nb):
            block_ids = np.arange(b0, min(nblocks, b0 + nb))
            _batch(prog, kp, block_ids, gdims, vals, store, shapes, check_races, check_uninit, epoch, rng, stats)
    finally:
        if epoch is not None:
            for slot in prog.global_writes:
                if store[slot] is not None:
                    store[slot].shadow = None


def _global_shadows(prog: Program, kp: KernelProgram, store, nblocks: int, T: int):
    """Race shadows for this launch over the global buffers the program writes (races.py);
    returns the per-block barrier epochs they share, or None when nothing is written."""
    slots = [s for s in prog.global_writes if store[s] is not None]
    if not slots:
        return None
    epoch = np.zeros(nblocks, np.int32)
    # mbarriers and named barriers also order a block's threads, which the epochs do not see:
    # then only accesses of different blocks are checked
    same_block = not (prog.uses_hopper or prog.uses_order or kp.plan.scheduled)
    for s in slots:
        storage = store[s]
        g = prog.global_granule[s]
        storage.shadow = races.GlobalShadow(storage.nbytes // g, g, epoch, T, same_block)
    return epoch


def _batch(prog: Program, kp: KernelProgram, block_ids, gdims, vals, store, shapes, check_races, check_uninit,
           epoch=None, rng=None, stats=None):
    threads = kp.threads
    T = int(np.prod(threads))
    bvals = list(vals)
    bstore = [s if (s is not None and s.scope == "global") else None for s in store]
    st = Batch(prog, block_ids, gdims, threads, bvals, bstore, shapes, check_races, check_uninit,
               int(kp.kernel.attrs.get("warp_size", 32)))
    st.banks = stats
    st.global_epoch = epoch
    st.atomic_rng = rng
    # block and thread indices: x fastest
    rem = block_ids
    for slot, g, v in zip(kp.block_slots, gdims, kp.kernel.block_vars):
        coord = (rem % g).astype(arith.np_dtype(v.dtype))
        rem = rem // g
        bvals[slot] = coord[0] if st.nb == 1 else np.repeat(coord, T)
    rem = st.lane_tid.astype(np.int64)
    for slot, t, v in zip(kp.thread_slots, threads, kp.kernel.thread_vars):
        bvals[slot] = (rem % t).astype(arith.np_dtype(v.dtype))
        rem = rem // t
    if not kp.plan.scheduled:
        kp.body(st)
        check_exit(st)
        return
    # warps scheduled as units; global memory is kept to run the batch again block by block if
    # its blocks hold each other up (schedule.SplitBatch)
    snapshot = [(s.data, s.data.copy()) for s in bstore if s is not None] if st.nb > 1 else None
    counted = stats.snapshot() if stats is not None and st.nb > 1 else None
    try:
        schedule.run_units(st, kp.body, kp.plan)
    except schedule.SplitBatch:
        for data, saved in snapshot:
            data[...] = saved
        if counted is not None:
            stats.restore(counted)  # the blocks run again one by one: count their requests once
        for b in block_ids:
            _batch(prog, kp, np.array([b]), gdims, vals, store, shapes, check_races, check_uninit, epoch, rng, stats)
        return
    check_exit(st)
