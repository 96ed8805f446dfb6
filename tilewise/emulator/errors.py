"""What the emulator reports: each error names the buffer, the element, the block and thread
indices of the threads involved and the user's source lines."""
from __future__ import annotations

from ..ir.span import Span


class EmulatorError(Exception):
    """A kernel that is wrong on a GPU: a race, an out-of-bounds access, a read too early..."""


class RaceError(EmulatorError):
    """Two threads of a block access the same shared-memory byte, at least one writing, with no
    __syncthreads between the two accesses."""


class AsyncCopyError(EmulatorError):
    """A cp.async destination was read (or written) before a cp.async.wait_group covered the copy."""


class OutOfBoundsError(EmulatorError):
    """An access outside its buffer (global, shared or local)."""


class MisalignedAddressError(EmulatorError):
    """A vector or matrix access whose address is not aligned to its size."""


class UninitializedReadError(EmulatorError):
    """A read of shared or register memory that nothing wrote (only with check_uninit=True)."""


class DivergenceError(EmulatorError):
    """A block-wide barrier or a warp-wide instruction executed by only part of its threads."""


class DeadlockError(EmulatorError):
    """A wait that nothing can complete any more (an mbarrier phase short of arrivals or bytes)."""


class AsyncAccessError(EmulatorError):
    """Registers or shared memory touched while an asynchronous operation (wgmma, TMA) that owns
    them is still in flight."""


class MbarrierError(EmulatorError):
    """An mbarrier used against the PTX ISA's rules: before its init, after a plain store over it,
    with more arrivals than its phase expects, or by a TMA copy before fence_barrier_init."""


class BarrierError(EmulatorError):
    """A named barrier (bar.sync / bar.arrive) used against the PTX ISA: an id outside 0-15, a
    thread count that is not a multiple of 32 or exceeds the block, threads of one barrier naming
    different counts, or more arrivals than the count."""


class RegisterBudgetError(EmulatorError):
    """`setmaxnreg` misuse: a count outside 24..256 or not a multiple of 8, an increase below (a
    decrease above) the warpgroup's current budget, or warpgroups whose budgets add up to more
    than the register file (65536 32-bit registers per block)."""


class UnsupportedError(EmulatorError):
    """IR the emulator cannot execute (not thread IR, or an unknown intrinsic)."""


def where(span: Span | None) -> str:
    """`file:line` followed by the source line, or a placeholder when the IR has no position."""
    if span is None:
        return "<no source line>"
    src = span.source.strip()
    return f"{span}: `{src}`" if src else str(span)


def coords(index: int, dims) -> tuple[int, ...]:
    """Split a linear block or thread index into (x, y, z) with x fastest, as CUDA numbers them."""
    out = []
    for d in dims:
        out.append(int(index % d))
        index //= d
    while len(out) < 3:
        out.append(0)
    return tuple(out)


def thread_str(block: int, thread: int, grid, threads) -> str:
    tx, ty, tz = coords(thread, threads)
    bx, by, bz = coords(block, grid)
    return f"thread ({tx}, {ty}, {tz}) of block ({bx}, {by}, {bz})"


def element_str(name: str, shape, flat: int) -> str:
    """`name[i, j]` for a flat element offset of a buffer of `shape` (row-major); the raw offset
    when it lies outside the shape."""
    dims = [int(d) for d in shape]
    total = 1
    for d in dims:
        total *= d
    if not dims:
        return f"{name}[{flat}]"
    if 0 <= flat < total:
        idx = []
        rem = flat
        for d in reversed(dims):
            idx.append(rem % d)
            rem //= d
        return f"{name}[{', '.join(str(i) for i in reversed(idx))}]"
    return f"{name}[flat offset {flat}]"


class EmptyGridError(RuntimeError):
    """A launch with 0 blocks along a grid dimension (e.g. `T.Kernel(T.ceildiv(M, 128))` called
    with M = 0). TileLang's runtime refuses it rather than launching nothing (its issue 1993: it
    had clamped such a dimension to 1 and run a spurious block); every tilewise target does too,
    with TileLang's message. A RuntimeError, as TVM's InternalError is."""


def kernel_name(func_name: str, index: int) -> str:
    """The name the CUDA source gives a function's index-th kernel (backend/cuda/renderer.py)."""
    return f"{func_name}_kernel" if index == 0 else f"{func_name}_kernel_{index}"


def empty_grid_message(kernel: str, grid) -> str:
    g = list(grid) + [1] * (3 - len(grid))
    return (f"CUDALaunch Error: grid dimension must be positive, but got grid=({g[0]},{g[1]},{g[2]}) in kernel "
            f"{kernel}. A zero grid dimension is often caused by a dynamic shape (e.g. num_tokens) being 0 at runtime.")
