"""TileLang's explicit Hopper primitives: mbarriers, warp-group blocks (`with T.ws(i):`),
register budgets, proxy fences, named barriers and the thread-index helpers of warp-specialised
kernels. Each emits the thread-IR intrinsic of docs/THREAD_IR.md it stands for (or, for
`T.ws`, an `if` on the thread range); transform/explicit_sync.py places the barriers'
initialisation, checks the target and marks the kernel warp-specialised.

Barriers are referred to as TileLang does: a barrier buffer from `T.alloc_barrier` (its first
barrier), one element of it (`mbars[i]`), or an integer naming a barrier of the kernel's
`T.create_list_of_mbarrier` list (`T.get_mbarrier(i)`)."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Call, Const, Expr, as_expr, const_value, logical_and, logical_or
from ..ir.simplify import bound
from ..ir.stmt import Allocate, Evaluate, IfThenElse
from ..tileop.region import pair_regions
from ..tileop.tma_copy import TmaCopy
from .loops import py_scalar

WARPGROUP = 128
MAX_ARRIVALS = (1 << 20) - 1  # an mbarrier's arrival count and tx-count (PTX ISA, "mbarrier")
NAMED_BARRIERS = 16


def _call(name: str, *args, **attrs) -> None:
    emit(Evaluate(Call(name, list(args), _dt.handle, attrs)))


def _frame(what: str):
    k = require_kernel(what)
    k.thread_binding_used = True  # the kernel programs its threads: see jit/kernel.py
    return k


def _int_arg(v, what: str, lo: int | None = None, hi: int | None = None, const: bool = False):
    """An integer argument: a Python int (checked against [lo, hi]) or, unless `const`, an
    integer expression."""
    v = py_scalar(v)
    if isinstance(v, Expr):
        c = const_value(v)
        if c is None:
            if const:
                raise CompileError(f"{what} must be a compile-time constant, got {v}")
            if not v.dtype.is_int:
                raise CompileError(f"{what} must be an integer, got {v} of type {v.dtype}")
            return v
        v = c
    if isinstance(v, bool) or not isinstance(v, int):
        raise CompileError(f"{what} must be an integer, got {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        bounds = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
        raise CompileError(f"{what} must be {bounds}, got {v}")
    return v


def _flat_thread(k) -> Expr:
    tid: Expr = k.thread_vars[0]
    scale = k.threads[0]
    for v, t in zip(k.thread_vars[1:], k.threads[1:]):
        tid = tid + v * scale
        scale *= t
    return tid


def _block_threads(k) -> int:
    n = 1
    for t in k.threads:
        n *= t
    return n


# ---------------------------------------------------------------------------- mbarriers


def is_barrier(buf) -> bool:
    return isinstance(buf, Buffer) and getattr(buf, "mbarrier_counts", None) is not None


def _counts(arrive_count, what: str) -> list[int]:
    arrive_count = py_scalar(arrive_count)
    items = list(arrive_count) if isinstance(arrive_count, (list, tuple)) else [arrive_count]
    if not items:
        raise CompileError(f"{what}: no arrival counts given")
    return [_int_arg(c, f"{what}: an arrival count", 1, MAX_ARRIVALS, const=True) for c in items]


def _new_barriers(counts: list[int], what: str) -> Buffer:
    _frame(what)
    buf = Buffer("mbarrier", (len(counts),), _dt.uint64, "shared.dyn")
    buf.auto_named = True  # the parser names it after the variable it is assigned to
    buf.mbarrier_counts = tuple(counts)
    buf.whole_kernel_lifetime = True  # plan_shared_memory never gives its bytes to another tile
    emit(Allocate(buf))
    # initialised once, by one thread, at the kernel's start (transform/explicit_sync.py)
    for i, c in enumerate(counts):
        _call("mbarrier_init", _address(BufferLoad(buf, [Const(i, _dt.int32)])), Const(c, _dt.int32))
    return buf


def alloc_barrier(arrive_count) -> Buffer:
    """`bar = T.alloc_barrier(128)` or `bars = T.alloc_barrier([128] * n)`: mbarriers in shared
    memory, each expecting that many arrivals per phase, initialised once at the kernel's start
    by one thread (followed by a fence and a __syncthreads). `bar` (its first barrier) or
    `bars[i]` is what the mbarrier primitives take."""
    return _new_barriers(_counts(arrive_count, "T.alloc_barrier"), "T.alloc_barrier")


def create_list_of_mbarrier(*args) -> Buffer:
    """TileLang's kernel-wide barrier list: `T.create_list_of_mbarrier([128, 128])` (or the
    counts as separate arguments); barrier i is then `T.get_mbarrier(i)`, and an integer given
    to the mbarrier primitives names it."""
    what = "T.create_list_of_mbarrier"
    k = _frame(what)
    if getattr(k, "mbarrier_list", None) is not None:
        raise CompileError(f"{what} is called twice in one kernel; put every barrier in one list")
    counts = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else list(args)
    buf = _new_barriers(_counts(counts, what), what)
    buf.name = "mbarrier_list"
    buf.auto_named = False
    k.mbarrier_list = buf
    return buf


def get_mbarrier(barrier_id) -> BufferLoad:
    """Barrier `barrier_id` of the kernel's T.create_list_of_mbarrier list."""
    what = "T.get_mbarrier"
    k = _frame(what)
    lst = getattr(k, "mbarrier_list", None)
    if lst is None:
        raise CompileError(f"{what}({barrier_id}): the kernel has no T.create_list_of_mbarrier list; call it first "
                           "(or allocate barriers with T.alloc_barrier and pass them directly)")
    i = _int_arg(barrier_id, f"{what}: the barrier id", 0, lst.shape[0] - 1)
    return BufferLoad(lst, [as_expr(i, _dt.int32)])


def _barrier(mbar, what: str) -> BufferLoad:
    """The barrier element a primitive acts on (see the module docstring)."""
    mbar = py_scalar(mbar)
    if isinstance(mbar, Buffer):
        if not is_barrier(mbar):
            raise CompileError(f"{what}: {mbar.name} is not an mbarrier; allocate barriers with "
                               "T.alloc_barrier(arrive_count)")
        return BufferLoad(mbar, [Const(0, _dt.int32)])
    if isinstance(mbar, BufferLoad):
        if not is_barrier(mbar.buffer):
            raise CompileError(f"{what}: {mbar.buffer.name} is not an mbarrier; allocate barriers with "
                               "T.alloc_barrier(arrive_count)")
        return mbar
    if isinstance(mbar, (int, Expr)) and not isinstance(mbar, bool):
        return get_mbarrier(mbar)
    raise CompileError(f"{what}: expected a barrier (from T.alloc_barrier, an element of one, or an integer id of "
                       f"T.create_list_of_mbarrier), got {type(mbar).__name__} {mbar!r}")


def _address(load: BufferLoad) -> Call:
    return Call("address_of", [load], _dt.handle)


def mbarrier_wait_parity(mbarrier, parity) -> None:
    """Wait until the phase of `mbarrier` with this parity has completed (`mbarrier.try_wait.parity`
    in a loop). Only the lowest bit of `parity` counts."""
    _wait("T.mbarrier_wait_parity", mbarrier, parity)


def _wait(what: str, mbarrier, parity) -> None:
    _frame(what)
    bar = _barrier(mbarrier, what)
    if parity is None:
        raise CompileError(f"{what}: the parity (0 or 1) of the phase to wait for is missing")
    p = as_expr(_int_arg(parity, f"{what}: the parity"), _dt.int32)
    lo, hi = bound(p)
    if lo is None or hi is None or lo < 0 or hi > 1:
        p = p & 1
    _call("mbarrier_wait", _address(bar), p)


def mbarrier_arrive(mbarrier, cta_id=None) -> None:
    """One arrival of each executing thread on `mbarrier` (`mbarrier.arrive`, release
    semantics: the thread's earlier writes are visible to whoever waits for the phase)."""
    what = "T.mbarrier_arrive"
    _frame(what)
    if cta_id is not None:
        raise CompileError(f"{what}(..., cta_id={cta_id!r}): cluster barriers are not supported; tilewise launches "
                           "no thread-block clusters")
    _call("mbarrier_arrive", _address(_barrier(mbarrier, what)))


def _tx(tx, what: str):
    return as_expr(_int_arg(tx, f"{what}: the transaction byte count", 0, MAX_ARRIVALS), _dt.int32)


def mbarrier_expect_tx(mbarrier, tx) -> None:
    """The current phase of `mbarrier` also waits for `tx` more bytes of asynchronous copies
    (`mbarrier.expect_tx`; no arrival)."""
    what = "T.mbarrier_expect_tx"
    _frame(what)
    bar = _barrier(mbarrier, what)
    _call("mbarrier_expect_tx", _address(bar), _tx(tx, what))


def mbarrier_arrive_expect_tx(mbarrier, tx) -> None:
    """`mbarrier.arrive.expect_tx`: expect `tx` bytes, then one arrival."""
    what = "T.mbarrier_arrive_expect_tx"
    _frame(what)
    bar = _barrier(mbarrier, what)
    _call("mbarrier_arrive_expect_tx", _address(bar), _tx(tx, what))


def barrier_wait(barrier_id, parity=None) -> None:
    """TileLang's shorthand of T.mbarrier_wait_parity."""
    _wait("T.barrier_wait", barrier_id, parity)


def barrier_arrive(barrier_id) -> None:
    """TileLang's shorthand of T.mbarrier_arrive."""
    what = "T.barrier_arrive"
    _frame(what)
    _call("mbarrier_arrive", _address(_barrier(barrier_id, what)))


# ---------------------------------------------------------------------------- warp-group blocks


class WarpGroupBlock:
    """`with T.ws(*ids):` — the body runs on the threads of those warpgroups (128 threads each)
    only: an `if` on the thread index, so that tile operators inside are spread over those
    threads (transform/thread_range.py) and fragments used only there live in their registers."""

    def __init__(self, cond: Expr, ids: tuple):
        self.cond = cond
        self.ids = ids

    def parse_with(self, parser, node, body) -> None:
        then = parser.parse_block(body)
        parser.emit(IfThenElse(self.cond, then))

    def __enter__(self):
        raise CompileError("T.ws(...) can only be used as `with T.ws(i):` inside a @T.prim_func")

    def __exit__(self, *exc):
        return False


def ws(*warp_group_idx) -> WarpGroupBlock:
    """`with T.ws(1):` runs its body on warpgroup 1 (threads 128-255) only; `T.ws(0, 1)` on both."""
    what = "T.ws"
    k = _frame(what)
    if len(warp_group_idx) == 1 and isinstance(warp_group_idx[0], (list, tuple)):
        warp_group_idx = tuple(warp_group_idx[0])
    if not warp_group_idx:
        raise CompileError(f"{what}() needs at least one warpgroup index")
    if len(k.threads) > 1 and any(t != 1 for t in k.threads[1:]):
        raise CompileError(f"{what} needs a one-dimensional thread block (threads=N), got threads={list(k.threads)}")
    n = k.threads[0]
    groups = n // WARPGROUP
    ids = []
    for g in warp_group_idx:
        g = _int_arg(g, f"{what}: a warpgroup index", 0, const=True)
        if g >= groups:
            raise CompileError(f"{what}({', '.join(map(str, warp_group_idx))}): the block's {n} threads form "
                               f"{groups} warpgroup(s) of {WARPGROUP}, so warpgroup {g} does not exist")
        ids.append(g)
    ids = sorted(set(ids))
    tx = k.thread_vars[0]
    # one contiguous run of warpgroups is one thread range; several runs are an `or` of ranges
    runs: list[list[int]] = []
    for g in ids:
        if runs and runs[-1][-1] == g - 1:
            runs[-1].append(g)
        else:
            runs.append([g])
    cond = None
    for r in runs:
        lo, hi = r[0] * WARPGROUP, (r[-1] + 1) * WARPGROUP
        c = None
        if lo > 0:
            c = tx >= lo
        if hi < n:
            c = tx < hi if c is None else logical_and(c, tx < hi)
        if c is None:
            c = tx >= 0
        cond = c if cond is None else logical_or(cond, c)
    return WarpGroupBlock(cond, tuple(ids))


WarpSpecialize = ws


# ---------------------------------------------------------------------------- registers, fences, wgmma


def set_max_nreg(reg_count, is_inc) -> None:
    """`setmaxnreg.{inc,dec}.sync.aligned.u32 reg_count`: the executing warpgroup's per-thread
    register budget becomes `reg_count` (24 to 256, a multiple of 8); sm_90a. Elsewhere a hint
    that changes no result, dropped (with a lowering note)."""
    what = "T.set_max_nreg"
    _frame(what)
    n = _int_arg(reg_count, f"{what}: the register count", 24, 256, const=True)
    if n % 8:
        raise CompileError(f"{what}: the register count must be a multiple of 8, got {n}")
    inc = _int_arg(is_inc, f"{what}: is_inc", 0, 1, const=True)
    _call("setmaxnreg", inc=bool(inc), count=n)


def inc_max_nreg(reg_count) -> None:
    set_max_nreg(reg_count, 1)


def dec_max_nreg(reg_count) -> None:
    set_max_nreg(reg_count, 0)


def annotate_producer_reg_dealloc(reg_count=24) -> None:
    """TileLang 0.1.x: the producer warpgroup gives registers back (T.dec_max_nreg)."""
    dec_max_nreg(reg_count)


def annotate_consumer_reg_alloc(reg_count=240) -> None:
    """TileLang 0.1.x: the consumer warpgroups take more registers (T.inc_max_nreg)."""
    inc_max_nreg(reg_count)


def no_set_max_nreg() -> None:
    """TileLang's switch against automatic register reallocation; tilewise does none."""
    require_kernel("T.no_set_max_nreg")


def fence_proxy_async() -> None:
    """`fence.proxy.async.shared::cta`: this thread's earlier shared-memory writes become visible
    to the asynchronous proxy (TMA stores, wgmma operand reads) that follows."""
    _frame("T.fence_proxy_async")
    _call("fence_proxy_async")


def wait_wgmma(id) -> None:  # noqa: A002 - TileLang's parameter name
    """`wgmma.wait_group.sync.aligned id`: all but the newest `id` wgmma groups of the warpgroup
    are complete. It completes the groups of `T.wgmma_gemm` and of `T.gemm(..., wg_wait=-1 or n)`;
    a T.gemm with the default wg_wait=0 waits for its own group."""
    _frame("T.wait_wgmma")
    _call("wgmma_wait", n=_int_arg(id, "T.wait_wgmma: the number of groups left in flight", 0, const=True))


def warpgroup_wait(num_mma) -> None:
    _frame("T.warpgroup_wait")
    _call("wgmma_wait", n=_int_arg(num_mma, "T.warpgroup_wait: the number of groups left in flight", 0, const=True))


def warpgroup_arrive() -> None:
    """`wgmma.fence.sync.aligned` (TileLang's name)."""
    _frame("T.warpgroup_arrive")
    _call("wgmma_fence")


def warpgroup_commit_batch() -> None:
    """`wgmma.commit_group.sync.aligned` (TileLang's name)."""
    _frame("T.warpgroup_commit_batch")
    _call("wgmma_commit")


# ---------------------------------------------------------------------------- named barriers


def sync_threads(barrier_id=None, arrive_count=None) -> None:
    """`T.sync_threads()` is __syncthreads; `T.sync_threads(id)` is `bar.sync id` for the whole
    block and `T.sync_threads(id, count)` `bar.sync id, count`: wait until `count` threads (a
    multiple of 32) have arrived at named barrier `id` (0-15)."""
    what = "T.sync_threads"
    k = _frame(what)
    T = _block_threads(k)
    if barrier_id is None:
        if arrive_count is not None:
            raise CompileError(f"{what}: arrive_count={arrive_count!r} without a barrier id")
        _call("syncthreads")
        return
    i, n = _named(barrier_id, T if arrive_count is None else arrive_count, T, what)
    if isinstance(i, int) and i == 0 and isinstance(n, int) and n == T:
        _call("syncthreads")
        return
    _call("named_barrier", as_expr(i, _dt.int32), as_expr(n, _dt.int32))


def named_barrier_arrive(barrier_id, thread_count) -> None:
    """`bar.arrive id, count`: arrive at named barrier `id` without waiting (the other side waits
    with T.sync_threads(id, count))."""
    what = "T.named_barrier_arrive"
    k = _frame(what)
    i, n = _named(barrier_id, thread_count, _block_threads(k), what)
    _call("named_barrier_arrive", as_expr(i, _dt.int32), as_expr(n, _dt.int32))


def _named(barrier_id, count, threads: int, what: str):
    i = _int_arg(barrier_id, f"{what}: the barrier id", 0, NAMED_BARRIERS - 1)
    n = _int_arg(count, f"{what}: the thread count", 32, threads)
    if isinstance(n, int) and n % 32:
        raise CompileError(f"{what}: the thread count must be a multiple of 32 (whole warps), got {n}")
    if isinstance(i, int) and i == 0 and not (isinstance(n, int) and n == threads):
        raise CompileError(f"{what}: barrier 0 is __syncthreads' (all {threads} threads of the block); use ids 1-15 "
                           "for barriers of part of the block")
    return i, n


# ---------------------------------------------------------------------------- thread indices


def _size(v, what: str):
    return _int_arg(v, what, 1)


def get_lane_idx(warp_size=None) -> Expr:
    """The lane of the calling thread in its warp: the block's flattened thread index mod 32."""
    k = _frame("T.get_lane_idx")
    w = 32 if warp_size is None else _size(warp_size, "T.get_lane_idx: warp_size")
    return _flat_thread(k) % w


def get_warp_idx(warp_size=None) -> Expr:
    """The warp of the calling thread: the block's flattened thread index / 32."""
    k = _frame("T.get_warp_idx")
    w = 32 if warp_size is None else _size(warp_size, "T.get_warp_idx: warp_size")
    return _flat_thread(k) // w


def get_warp_idx_sync(warp_size=None) -> Expr:
    """T.get_warp_idx (TileLang's form for converged warps; the value is the same)."""
    k = _frame("T.get_warp_idx_sync")
    w = 32 if warp_size is None else _size(warp_size, "T.get_warp_idx_sync: warp_size")
    return _flat_thread(k) // w


def get_warp_group_idx(warp_size=None, warps_per_group=None) -> Expr:
    """The warpgroup of the calling thread: flattened thread index / (32 * 4)."""
    what = "T.get_warp_group_idx"
    k = _frame(what)
    if warps_per_group is not None and warp_size is None:
        raise CompileError(f"{what} expects warp_size when warps_per_group is given")
    w = 32 if warp_size is None else _size(warp_size, f"{what}: warp_size")
    g = 4 if warps_per_group is None else _size(warps_per_group, f"{what}: warps_per_group")
    return _flat_thread(k) // (w * g)


def shuffle_elect(thread_extent) -> Expr:
    """True for exactly one thread of each group of `thread_extent` consecutive threads (its
    first), or of the whole block when `thread_extent` is 0."""
    what = "T.shuffle_elect"
    k = _frame(what)
    n = _int_arg(thread_extent, f"{what}: thread_extent", 0, const=True)
    tid = _flat_thread(k)
    return tid == 0 if n == 0 else tid % n == 0


# ---------------------------------------------------------------------------- TMA


def _raw_tma(name: str):
    def f(*args, **kwargs):
        raise CompileError(
            f"T.{name} (im2col TMA loads) is not supported by tilewise; use T.copy(global_tile, shared_tile) (on sm_90 a whole-tile copy "
            "runs on TMA and has landed when the next statement runs) or T.tma_copy(global_tile, shared_tile, "
            "barrier=bar) (lands on `bar`: arrive on it with T.mbarrier_arrive and wait with "
            "T.mbarrier_wait_parity)")

    f.__name__ = name
    return f


tma_load_im2col = _raw_tma("tma_load_im2col")  # T.create_tma_descriptor / T.tma_load / T.tma_store: tma_descriptor.py


def tma_copy(src, dst, *, barrier=None, cluster_mask=None, leader_scope_threads=None, eviction_policy=None,
             annotations=None) -> None:
    """Copy a whole tile from global to shared memory on TMA, completing on `barrier`
    (tileop/tma_copy.py): the program arrives on the barrier and waits for its phase itself."""
    what = "T.tma_copy"
    _frame(what)
    s, d = pair_regions(src, dst, what)
    if not (s.buffer.is_global and d.buffer.is_shared):
        raise CompileError(f"{what} copies from global to shared memory ({s.buffer.name} is {s.buffer.scope}, "
                           f"{d.buffer.name} is {d.buffer.scope}); use T.copy for other copies")
    if barrier is None:
        raise CompileError(f"{what}: barrier= is required: the mbarrier the copy completes on")
    if cluster_mask is not None:
        raise CompileError(f"{what}: cluster_mask= (multicast in a thread-block cluster) is not supported")
    if leader_scope_threads is not None:
        raise CompileError(f"{what}: leader_scope_threads= is not supported; the first thread of those that run the "
                           "copy issues it")
    bar = _barrier(barrier, what)
    emit(TmaCopy(s, d, BufferRegion(bar.buffer, [(i, 1) for i in bar.indices])))


def tma_store_arrive() -> None:
    """`cp.async.bulk.commit_group`: the TMA stores this thread issued form a group."""
    _frame("T.tma_store_arrive")
    _call("tma_store_commit")


def tma_store_wait(count=0, read=True) -> None:
    """`cp.async.bulk.wait_group.read count`: the shared sources of all but `count` of this
    thread's newest TMA store groups may be reused."""
    what = "T.tma_store_wait"
    _frame(what)
    if not read:
        raise CompileError(f"{what}(read=False) (waiting until the stores are visible in global memory) is not "
                           "supported; the stores are visible when the kernel ends")
    _call("tma_store_wait", n=_int_arg(count, f"{what}: count", 0, const=True))
