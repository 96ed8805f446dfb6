"""TVM / TileLang's mbarrier intrinsics by barrier id, and `T.tvm_storage_sync`:

- `T.create_barriers(n)`: n mbarriers in shared memory, which the program initialises itself
  with `T.ptx_init_barrier_thread_count(i, count)` (TileLang's codegen names them by index);
  integer ids given to the mbarrier primitives then name them (as T.get_mbarrier does);
- `T.ptx_init_barrier_thread_count(i, count)` (`mbarrier.init`), `T.ptx_arrive_barrier(i)`
  (`mbarrier.arrive`), `T.ptx_arrive_barrier_expect_tx(i, bytes)`, `T.ptx_wait_barrier(i)` (a
  wait for the phase of parity 0, as TileLang's codegen prints it: the barrier's first phase),
  `T.ptx_fence_barrier_init()`. A barrier may also be given as a T.alloc_barrier barrier or an
  element of one (language/hopper.py).

As for T.alloc_barrier, the initialisations run once at the kernel's start on thread 0, followed by
`fence.mbarrier_init` and a __syncthreads (transform/explicit_sync.py): TileLang programs write
them at the start under `if tx == 0`, followed by a fence and a barrier, which this is. mbarriers
need sm_80, their tx-count (the expect_tx forms) sm_90 (elsewhere a CompileError at the line)."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer
from ..ir.builder import emit
from ..ir.expr import Call, Const
from ..ir.stmt import Allocate, Evaluate
from .hopper import MAX_ARRIVALS, _address, _barrier, _frame, _int_arg, _tx
from .loops import py_scalar


def create_barriers(barrier_count) -> Buffer:
    """`T.create_barriers(n)`: n uninitialised mbarriers (see the module docstring)."""
    what = "T.create_barriers"
    k = _frame(what)
    n = _int_arg(barrier_count, f"{what}: the barrier count", 1, 1 << 16, const=True)
    if getattr(k, "mbarrier_list", None) is not None:
        raise CompileError(f"{what}: the kernel already has a barrier list (T.create_barriers or "
                           "T.create_list_of_mbarrier); put every barrier in one list")
    buf = Buffer("mbarrier_list", (n,), _dt.uint64, "shared.dyn")
    buf.mbarrier_counts = (0,) * n  # the program's own T.ptx_init_barrier_thread_count gives the counts
    buf.program_initialised = True
    buf.whole_kernel_lifetime = True
    emit(Allocate(buf))
    k.mbarrier_list = buf
    return buf


def ptx_init_barrier_thread_count(barrier_id, thread_count) -> None:
    """`mbarrier.init` of a T.create_barriers barrier with `thread_count` expected arrivals."""
    what = "T.ptx_init_barrier_thread_count"
    _frame(what)
    bar = _barrier(barrier_id, what)
    if not getattr(bar.buffer, "program_initialised", False):
        raise CompileError(f"{what}: {bar.buffer.name} comes from T.alloc_barrier / T.create_list_of_mbarrier, which "
                           "initialise their barriers with the counts given there; make the barriers with "
                           "T.create_barriers(n) to initialise them yourself")
    count = _int_arg(thread_count, f"{what}: the thread count", 1, MAX_ARRIVALS, const=True)
    emit(Evaluate(Call("mbarrier_init", [_address(bar), Const(count, _dt.int32)], _dt.handle)))


def ptx_arrive_barrier(barrier_id) -> None:
    """`mbarrier.arrive`: one arrival of each executing thread."""
    what = "T.ptx_arrive_barrier"
    _frame(what)
    emit(Evaluate(Call("mbarrier_arrive", [_address(_barrier(barrier_id, what))], _dt.handle)))


def ptx_arrive_barrier_expect_tx(barrier_id, byte_count) -> None:
    """`mbarrier.arrive.expect_tx`: the phase also waits for byte_count bytes, then one arrival."""
    what = "T.ptx_arrive_barrier_expect_tx"
    _frame(what)
    bar = _barrier(barrier_id, what)
    emit(Evaluate(Call("mbarrier_arrive_expect_tx", [_address(bar), _tx(byte_count, what)], _dt.handle)))


def ptx_wait_barrier(barrier_id) -> None:
    """A wait for the barrier's phase of parity 0 (`mbarrier.try_wait.parity` with parity 0, as
    TileLang prints `ptx_wait_barrier`); later phases: T.mbarrier_wait_parity(bar, parity)."""
    what = "T.ptx_wait_barrier"
    _frame(what)
    emit(Evaluate(Call("mbarrier_wait", [_address(_barrier(barrier_id, what)), Const(0, _dt.int32)], _dt.handle)))


def ptx_fence_barrier_init() -> None:
    """`fence.mbarrier_init.release.cluster`: the barriers' initialisation is visible to the async proxy."""
    _frame("T.ptx_fence_barrier_init")
    emit(Evaluate(Call("fence_barrier_init", [], _dt.handle)))


def tvm_storage_sync(storage_scope="shared") -> None:
    """`T.tvm_storage_sync("shared")`: __syncthreads; `"warp"`: __syncwarp."""
    what = "T.tvm_storage_sync"
    scope = py_scalar(storage_scope)
    if scope in ("shared", "shared.dyn"):
        emit(Evaluate(Call("syncthreads", [], _dt.handle)))
    elif scope == "warp":
        _frame(what)
        emit(Evaluate(Call("syncwarp", [], _dt.handle)))
    else:
        raise CompileError(f"{what}({scope!r}): tilewise synchronises 'shared' (the block) and 'warp'; a grid-wide "
                           "barrier is T.sync_grid()")


def tvm_warp_activemask(*args, **kwargs):
    raise CompileError("T.tvm_warp_activemask: the mask of active lanes is not modelled; tilewise's warp primitives "
                       "run on whole warps (mask 0xffffffff)")


__all__ = ["create_barriers", "ptx_arrive_barrier", "ptx_arrive_barrier_expect_tx", "ptx_fence_barrier_init",
           "ptx_init_barrier_thread_count", "ptx_wait_barrier", "tvm_storage_sync", "tvm_warp_activemask"]
