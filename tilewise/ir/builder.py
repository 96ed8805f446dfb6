"""The statement builder the parser and the tile operators' T.* functions emit into while a
kernel is parsed (below the language and the operators, so both can use it)."""
from __future__ import annotations

import contextlib

from ..errors import CompileError, OutsideKernelError
from ..ir.stmt import Stmt


class KernelFrame:
    def __init__(self, block_vars, grid, threads, thread_vars):
        self.block_vars = block_vars
        self.grid = grid
        self.threads = threads
        self.thread_vars = thread_vars
        self.thread_binding_used = False
        self.tensor_maps: list = []  # T.create_tma_descriptor's maps (Kernel.attrs["tensor_maps"])
        self.body_frame: list | None = None  # the statements of the kernel's body (the parser sets it)
        self.rng_state = None  # T.rng_init's per-thread generator state (language/rng.py)
        self.rng_generator = None  # and the curand generator it names


class Builder:
    def __init__(self):
        self.frames: list[list[Stmt]] = [[]]
        self.kernels: list[KernelFrame] = []
        self.loops: list = []  # enclosing For kinds, innermost last
        self.index_ranges: dict = {}  # loop variable -> (lo, hi) inclusive, None where unknown (ir/vector.py)
        self.pointer_tensors: dict = {}  # T.ptr parameter -> the tensor T.make_tensor made of it
        self.outputs: list = []  # T.empty tensors: parameters the call allocates, in creation order
        self.workspaces: list = []  # T.alloc_global buffers: parameters each call allocates and drops
        self.func_attrs: dict = {}  # T.annotate_pass_configs / T.annotate_compile_flags
        self.eager = None  # @jit without an inner prim_func: language/eager.py's EagerContext

    def emit(self, stmt: Stmt) -> None:
        self.frames[-1].append(stmt)

    @contextlib.contextmanager
    def frame(self):
        self.frames.append([])
        body: list[Stmt] = self.frames[-1]
        try:
            yield body
        finally:
            self.frames.pop()


_stack: list[Builder] = []


def current() -> Builder | None:
    return _stack[-1] if _stack else None


@contextlib.contextmanager
def building():
    b = Builder()
    _stack.append(b)
    try:
        yield b
    finally:
        _stack.pop()


def require(what: str) -> Builder:
    """The active builder; a clear error when a T.* statement is used outside a prim_func."""
    b = current()
    if b is None:
        raise OutsideKernelError(f"{what} can only be used inside a @T.prim_func or @T.macro body")
    return b


def require_kernel(what: str) -> KernelFrame:
    b = require(what)
    if not b.kernels:
        raise CompileError(f"{what} must be inside `with T.Kernel(...)`")
    return b.kernels[-1]


def emit(stmt: Stmt) -> None:
    require(type(stmt).__name__).emit(stmt)
