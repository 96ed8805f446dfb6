"""What the PTX interpreter reports. Run-time faults reuse the thread-IR emulator's classes
(`OutOfBoundsError`, `AsyncCopyError`, ...) so that callers catch one family whichever executor
found the bug; the PTX-only conditions (text it cannot parse, an instruction or modifier it does
not implement) get their own classes."""
from __future__ import annotations

from ..emulator.errors import (
    AsyncAccessError,
    AsyncCopyError,
    DeadlockError,
    DivergenceError,
    EmulatorError,
    MisalignedAddressError,
    OutOfBoundsError,
    RaceError,
    UninitializedReadError,
    UnsupportedError,
)

__all__ = [
    "AsyncAccessError", "AsyncCopyError", "DeadlockError", "DivergenceError", "RaceError", "EmulatorError", "MisalignedAddressError", "OutOfBoundsError",
    "UninitializedReadError", "UnsupportedError", "PtxSyntaxError", "PtxUnsupportedError", "PtxLaunchError",
]  # fmt: skip


class PtxSyntaxError(EmulatorError):
    """PTX text outside the subset the parser reads (names the PTX line)."""


class PtxUnsupportedError(UnsupportedError):
    """An instruction, modifier or operand form the interpreter does not implement. Coverage grows
    by failing loudly here: nothing is ever skipped."""


class PtxLaunchError(EmulatorError):
    """Arguments that do not match the kernel's parameters, or an impossible launch shape."""
