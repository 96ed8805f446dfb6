"""T.Kernel and the loop constructors. They return specs; the parser turns a `with` or `for`
over a spec into IR, binding the user's names."""
from __future__ import annotations

import numpy as np

from ..errors import CompileError, warn_once
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
        elif g < 0:
            raise CompileError(f"grid dimension must not be negative, got {g}")
        # 0 compiles, as in TileLang; the call raises (emulator/errors.py EmptyGridError)
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


def ignored_hint(op: str, name: str, why: str) -> None:
    """Say once that a TileLang keyword accepted by `op` has no effect in tilewise (docs/API.md
    lists them): nothing is dropped silently."""
    warn_once((op, name), f"{op}({name}=...) has no effect in tilewise: {why}", stacklevel=4)


def check_annotations(op: str, annotations, known=()) -> dict:
    """TileLang's `annotations=` dict: the keys `known` are returned to the caller, which honours
    them; any other key is said once to have no effect."""
    if annotations is None:
        return {}
    if not isinstance(annotations, dict):
        raise CompileError(f"{op}: annotations must be a dict, got {annotations!r}")
    for k in annotations:
        if k not in known:
            ignored_hint(op, f"annotations[{k!r}]", "tilewise knows no such annotation")
    return {k: v for k, v in annotations.items() if k in known}


def Parallel(*extents, coalesced_width=None, loop_layout=None, annotations=None) -> LoopSpec:
    if coalesced_width is not None:
        ignored_hint("T.Parallel", "coalesced_width", "the layout pass picks each loop's vector width")
    if loop_layout is not None:
        ignored_hint("T.Parallel", "loop_layout", "layout inference lays out the loop from its buffers' layouts "
                     "(annotate the fragments with T.annotate_layout instead)")
    check_annotations("T.Parallel", annotations)
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


def serial(*args, step=None, unroll=None, annotations=None) -> LoopSpec:
    """`T.serial(stop)`, `T.serial(start, stop)` or `T.serial(start, stop, step)`."""
    check_annotations("T.serial", annotations)
    if unroll is not None:
        ignored_hint("T.serial", "unroll", "write T.unroll(...) for an unrolled loop")
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
    if unroll_factor is not None:
        ignored_hint("T.unroll", "unroll_factor", "T.unroll unrolls the whole loop")
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


def Pipelined(start, stop=None, num_stages: int = 0, order=None, stage=None, sync=None, group=None,
              annotations=None):
    check_annotations("T.Pipelined", annotations)
    start, stop, num_stages = py_scalar(start), py_scalar(stop), py_scalar(num_stages)
    if stop is None:
        start, stop = 0, start
    s, ext = _range_args("T.Pipelined", (start, stop))
    _check_extent("T.Pipelined", ext)
    if not isinstance(num_stages, int) or num_stages < 0:
        raise CompileError(f"num_stages must be a non-negative int, got {num_stages!r}")
    ann = {"num_stages": num_stages}
    # TileLang accepts sync= (lists of statement indices) and never reads it: its compiler places
    # the pipeline's barriers, as tilewise's does. An empty list says nothing and is accepted.
    if sync is not None and _index_lists("sync", sync):
        raise CompileError(f"T.Pipelined: sync={sync!r}: TileLang accepts this argument but its compiler never uses "
                           "it, and tilewise places the barriers of a pipelined loop itself; leave sync= out")
    for name, lst in (("order", order), ("stage", stage)):
        if lst is not None:
            lst = py_scalar(lst)
            if not isinstance(lst, (list, tuple)) or not all(isinstance(x, int) and not isinstance(x, bool)
                                                             for x in lst):
                raise CompileError(f"T.Pipelined: {name}= takes a list of ints, got {lst!r}")
            if any(x < -1 for x in lst):
                raise CompileError(f"T.Pipelined: {name}={list(lst)}: entries are >= 0, or -1 for a copy the "
                                   "warp-specialised producer issues")
            if lst:
                ann[name] = list(lst)
    if group is not None:
        groups = _index_lists("group", group)
        if groups:
            ann["group"] = groups
    if "order" in ann and "stage" in ann and len(ann["order"]) != len(ann["stage"]):
        raise CompileError(f"T.Pipelined: order= has {len(ann['order'])} entries and stage= {len(ann['stage'])}; "
                           "they must have the same length")
    if "group" in ann:
        for name in ("order", "stage"):
            if name not in ann:
                raise CompileError(f"T.Pipelined: group= needs {name}= too, one entry per group")
            if len(ann[name]) != len(ann["group"]):
                raise CompileError(f"T.Pipelined: group= has {len(ann['group'])} groups but {name}= has "
                                   f"{len(ann[name])} entries; give one per group")
    return LoopSpec("pipelined", [(s, ext)], ann)


def _index_lists(name: str, value) -> list[list[int]]:
    """group= / sync=: a list of lists of statement indices."""
    value = py_scalar(value)
    try:
        out = [list(py_scalar(g)) for g in value]
    except TypeError:
        raise CompileError(f"T.Pipelined: {name}= takes a list of lists of statement indices, got {value!r}") from None
    if not all(isinstance(i, int) and not isinstance(i, bool) for g in out for i in g):
        raise CompileError(f"T.Pipelined: {name}= takes a list of lists of statement indices, got {value!r}")
    return out


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

