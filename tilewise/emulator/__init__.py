"""The thread-exact CUDA emulator: executes the final thread IR (docs/THREAD_IR.md) for every
thread of every block with numpy, and checks what a GPU would get wrong silently: shared-memory
races, reads of cp.async destinations before their wait, out-of-bounds and misaligned accesses,
divergent barriers and (optionally) reads of uninitialised memory. Blocks run in lockstep
(every thread executes each statement together) unless the kernel is warp-specialised or
synchronises under a condition that differs between threads: then each warp (or warpgroup) is a
unit that runs until it blocks on a barrier (schedule.py). The Hopper intrinsics (mbarriers,
TMA, wgmma: mbarrier.py, tma.py, wgmma.py) run asynchronously as on the GPU, named barriers and
setmaxnreg as the PTX ISA says (named_barriers.py, registers.py), mbarrier phases and named
barriers order shared-memory accesses for the race checks (order.py), and misuse (deadlocks,
early reads, operands overwritten in flight, missing proxy fences, wrong byte counts, ambiguous
phases, divergent barriers, register budgets) is reported."""
from .errors import (
    AsyncAccessError,
    AsyncCopyError,
    BarrierError,
    DeadlockError,
    DivergenceError,
    EmulatorError,
    MbarrierError,
    MisalignedAddressError,
    OutOfBoundsError,
    RaceError,
    RegisterBudgetError,
    UninitializedReadError,
    UnsupportedError,
)
from .runner import DEFAULT_MAX_LANES, compile_program, run

__all__ = [
    "DEFAULT_MAX_LANES", "AsyncAccessError", "AsyncCopyError", "BarrierError", "DeadlockError", "DivergenceError", "EmulatorError", "MbarrierError", "MisalignedAddressError",
    "OutOfBoundsError", "RaceError", "RegisterBudgetError", "UninitializedReadError", "UnsupportedError", "compile_program", "run",
]  # fmt: skip
