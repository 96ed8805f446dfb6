"""T.Kernel and the loop constructors. They return specs; the parser turns a `with` or `for`
over a spec into IR, binding the user's names."""
from __future__ import annotations

import numpy as np

from ..errors import CompileError
from ..ir.buffer import Buffer
from ..ir.builder import require_kernel
from ..ir.expr import Expr, Var, as_expr


def py_scalar(x):
    """numpy scalars (np.int64(64) from a config sweep, say) as the Python values they hold,
    and a T.alloc_var as the value it holds."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (list, tuple)):
        return type(x)(py_scalar(v) for v in x)
    if isinstance(x, Buffer) and x.is_var:
        return x.load_var()
    return x


class KernelSpec:
    def __init__(self, grid, threads, attrs):
        self.grid = grid
        self.threads = threads
        self.attrs = attrs


def Kernel(*grid, threads=128, is_cpu: bool = False, prelude=None, **attrs) -> KernelSpec:
    """`with T.Kernel(gx, gy=1, gz=1, threads=128) as (bx, by, bz)`."""
    grid, threads = py_scalar(grid), py_scalar(threads)
    if len(grid) == 1 and isinstance(grid[0], (list, tuple)):
        grid = tuple(grid[0])
    if not grid:
        grid = (1,)  # T.Kernel(threads=...): one block (TileLang 0.1.8)
    if not 1 <= len(grid) <= 3:
        raise CompileError(f"T.Kernel takes 1 to 3 grid dimensions, got {len(grid)}")
    if threads is None:
        threads = 128
    if isinstance(threads, (list, tuple)):
        threads = list(threads)
    else:
        threads = [threads]
    if not 1 <= len(threads) <= 3:
        raise CompileError(f"threads= takes 1 to 3 dimensions, got {len(threads)}")
    for t in threads:
        if not isinstance(t, int) or isinstance(t, bool) or t <= 0:
            raise CompileError(f"threads= must be positive integers, got {t!r}")
    for g in grid:
        if isinstance(g, Expr):
            if not g.dtype.is_int:
                raise CompileError(f"grid dimension {g} must be an integer")
        elif not isinstance(g, int) or isinstance(g, bool):
            raise CompileError(f"grid dimension must be an integer, got {g!r}")
        elif g <= 0:
            raise CompileError(f"grid dimension must be positive, got {g}")
    return KernelSpec(list(grid), threads, attrs)


class LoopSpec:
    """One or more nested loops of one kind."""

    def __init__(self, kind: str, ranges, annotations=None, step=None):
        self.kind = kind
        self.ranges = ranges  # list of (start, extent)
        self.annotations = annotations or {}
        self.step = step

    def __iter__(self):
        raise CompileError(
            f"T.{self.kind} loops can only be used as `for ... in` inside a @T.prim_func"
        )


def _range_args(what, args):
    args = py_scalar(tuple(args))
    if len(args) == 1:
        return (0, args[0])
    if len(args) == 2:
        start, stop = args
        if isinstance(start, int) and isinstance(stop, int):
            return (start, stop - start)
        return (start, as_expr(stop) - as_expr(start))
    raise CompileError(f"{what} takes (stop) or (start, stop)")


def _check_extent(what, e):
    if isinstance(e, bool) or not isinstance(e, (int, Expr)):
        raise CompileError(f"{what} extent must be an integer, got {e!r}")
    if isinstance(e, Expr) and not e.dtype.is_int:
        raise CompileError(f"{what} extent must be an integer, got {e} of type {e.dtype}")


def Parallel(*extents, coalesced_width=None) -> LoopSpec:
    extents = py_scalar(extents)
    for e in extents:
        _check_extent("T.Parallel", e)
    ann = {"coalesced_width": coalesced_width} if coalesced_width else {}
    return LoopSpec("parallel", [(0, e) for e in extents], ann)


def parallel(*args, annotations=None) -> LoopSpec:
    """TIR's lower-case `T.parallel(stop)` / `T.parallel(0, stop)`, which TileLang re-exports: a
    loop of kind parallel, the same loop `T.Parallel(stop)` builds."""
    if annotations:
        raise CompileError(f"T.parallel: loop annotations are not supported, got {sorted(annotations)}")
    start, ext = _range_args("T.parallel", args)
    if not (isinstance(start, int) and start == 0):
        raise CompileError(f"T.parallel: the loop must start at 0, got {start!r}; write T.Parallel(extent) "
                           "and offset the index")
    return Parallel(ext)


def range_extent(start, stop, step):
    """The trip count of range(start, stop, step); a device bound needs a positive constant step."""
    if all(isinstance(x, int) and not isinstance(x, bool) for x in (start, stop, step)):
        if step == 0:
            raise CompileError("the loop step must not be zero")
        return max(0, -(-(stop - start) // step)) if step > 0 else max(0, -(-(start - stop) // -step))
    if not isinstance(step, int) or isinstance(step, bool) or step <= 0:
        raise CompileError(f"a loop with a device bound needs a positive constant step, got {step!r}")
    if step == 1:
        return as_expr(stop) - start
    return (as_expr(stop) - start + (step - 1)) // step


def serial(*args, step=None, unroll=None) -> LoopSpec:
    """`T.serial(stop)`, `T.serial(start, stop)` or `T.serial(start, stop, step)`."""
    args, step = py_scalar(args), py_scalar(step)
    if len(args) == 3:
        if step is not None:
            raise CompileError("T.serial: the step is given twice")
        step = args[2]
        args = args[:2]
    if len(args) not in (1, 2):
        raise CompileError(f"T.serial takes (stop), (start, stop) or (start, stop, step), got {len(args)} values")
    start, stop = (0, args[0]) if len(args) == 1 else args
    if step is None or (isinstance(step, int) and step == 1):
        start, ext = _range_args("T.serial", args)
        _check_extent("T.serial", ext)
        return LoopSpec("serial", [(start, ext)])
    ext = range_extent(start, stop, step)
    _check_extent("T.serial", ext)
    return LoopSpec("serial", [(start, ext)], step=step)


def unroll(*args, explicit=False, unroll_factor=None) -> LoopSpec:
    start, ext = _range_args("T.unroll", args)
    _check_extent("T.unroll", ext)
    return LoopSpec("unroll", [(start, ext)])


def vectorized(*args) -> LoopSpec:
    start, ext = _range_args("T.vectorized", args)
    _check_extent("T.vectorized", ext)
    return LoopSpec("vectorized", [(start, ext)])


def grid(*extents) -> LoopSpec:
    extents = py_scalar(extents)
    for e in extents:
        _check_extent("T.grid", e)
    return LoopSpec("serial", [(0, e) for e in extents])


def Pipelined(start, stop=None, num_stages: int = 0, order=None, stage=None, sync=None, group=None):
    start, stop, num_stages = py_scalar(start), py_scalar(stop), py_scalar(num_stages)
    if stop is None:
        start, stop = 0, start
    s, ext = _range_args("T.Pipelined", (start, stop))
    _check_extent("T.Pipelined", ext)
    if not isinstance(num_stages, int) or num_stages < 0:
        raise CompileError(f"num_stages must be a non-negative int, got {num_stages!r}")
    ann = {"num_stages": num_stages}
    if group is not None:
        # TileLang's group= makes each listed set of statements one unit of order=/stage=; a
        # grouping of one statement per unit, in order, is the ungrouped loop
        try:
            flat = [list(g) for g in group]
        except TypeError:
            raise CompileError(
                f"T.Pipelined: group= takes a list of lists of statement indices, got {group!r}") from None
        if flat != [[i] for i in range(len(flat))]:
            raise CompileError(
                f"T.Pipelined: group={group!r} (several statements scheduled as one unit) is not supported by "
                "tilewise yet; give order= and stage= one entry per statement of the loop body instead")
    if sync is not None:
        raise CompileError(f"T.Pipelined: sync={sync!r} is not supported by tilewise; the compiler places the "
                           "barriers of a pipelined loop itself")
    if order is not None:
        ann["order"] = list(order)
    if stage is not None:
        ann["stage"] = list(stage)
    if order is not None and stage is not None and len(order) != len(stage):
        raise CompileError("T.Pipelined: order and stage must have the same length")
    return LoopSpec("pipelined", [(s, ext)], ann)


def get_thread_binding(dim: int = 0) -> Var:
    k = require_kernel("T.get_thread_binding")
    if not 0 <= dim < len(k.thread_vars):
        raise CompileError(f"T.get_thread_binding({dim}): the kernel has {len(k.threads)} thread dimensions")
    k.thread_binding_used = True
    return k.thread_vars[dim]


def get_thread_bindings():
    return [get_thread_binding(i) for i in range(len(require_kernel("T.get_thread_bindings").thread_vars))]


def get_block_binding(dim: int = 0) -> Var:
    k = require_kernel("T.get_block_binding")
    if not 0 <= dim < len(k.block_vars):
        raise CompileError(f"T.get_block_binding({dim}): the kernel has {len(k.block_vars)} grid dimensions")
    return k.block_vars[dim]


def get_block_bindings():
    return list(require_kernel("T.get_block_bindings").block_vars)


def thread_extent(dim: int = 0) -> int:
    return require_kernel("T.thread_extent").threads[dim]

