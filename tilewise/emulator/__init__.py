"""The thread-exact CUDA emulator: executes the final thread IR (docs/THREAD_IR.md) for every
thread of every block with numpy, in lockstep, and checks what a GPU would get wrong silently:
shared-memory races, reads of cp.async destinations before their wait, out-of-bounds and
misaligned accesses, divergent barriers and (optionally) reads of uninitialised memory. The
Hopper intrinsics (mbarriers, TMA, wgmma: mbarrier.py, tma.py, wgmma.py) run asynchronously as
on the GPU, and their misuse (deadlocked waits, early reads, operands overwritten in flight,
missing proxy fences) is reported too."""
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
