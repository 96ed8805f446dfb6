"""Scheduling annotations: explicit layouts for buffers, and block rasterisation."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.buffer import Buffer
from ..ir.builder import emit, require_kernel
from ..ir.expr import Const, as_expr
from ..ir.stmt import Annotation
from ..layout import Fragment, Layout, PartialFragment
from ..tileop.reducer import is_reducer


def annotate_layout(layout_map: dict) -> None:
    """`T.annotate_layout({A_shared: make_swizzled_layout(A_shared)})`."""
    require_kernel("T.annotate_layout")
    if not isinstance(layout_map, dict):
        raise CompileError("T.annotate_layout takes a dict {buffer: layout}")
    checked = {}
    for buf, lay in layout_map.items():
        if not isinstance(buf, Buffer):
            raise CompileError(f"T.annotate_layout: keys must be buffers, got {type(buf).__name__}")
        if not isinstance(lay, Layout):
            raise CompileError(f"T.annotate_layout: the layout of {buf.name} must be a T.Layout or T.Fragment")
        if is_reducer(buf):
            # a reducer's replicas are addends awaiting T.finalize_reducer, not equal copies: a
            # plain Fragment would misdescribe them (TileLang 0.1.15 asserts the same)
            if not isinstance(lay, PartialFragment):
                raise CompileError(f"T.annotate_layout: for reducer {buf.name} (T.alloc_reducer), the layout must be a "
                                   f"PartialFragment describing the per-thread partials, but got {type(lay).__name__}")
            if lay.combine != int(lay.replicate):
                raise CompileError(
                    f"T.annotate_layout: the PartialFragment of reducer {buf.name} has replicate={int(lay.replicate)} "
                    f"but combine={lay.combine}: groups of equal-value copies of the partials are not supported by "
                    "tilewise, whose T.finalize_reducer combines every replica (give combine=replicate)")
        private = buf.is_local and isinstance(lay, Fragment)
        if isinstance(lay, Fragment) != buf.is_fragment and not private:
            want = "a T.Fragment" if buf.is_fragment else "a T.Layout"
            raise CompileError(f"T.annotate_layout: {buf.name} is a {buf.scope} buffer and needs {want}")
        shape = buf.static_shape()
        if shape is None or tuple(lay.shape) != tuple(shape):
            raise CompileError(
                f"T.annotate_layout: the layout of {buf.name} has shape {list(lay.shape)} but the buffer has {list(buf.shape)}"
            )
        if isinstance(lay, Fragment) and not lay.covers_exactly_once():
            raise CompileError(f"T.annotate_layout: the T.Fragment of {buf.name} puts two elements in one register of a "
                               f"thread, or two replicas of an element in one thread: {lay!r}")
        if private:
            # A T.alloc_local buffer is private: every thread holds its own copy of all of it
            # and runs the serial code using it (TileLang lowers such a buffer to the Fragment's
            # register index only, the same storage). The thread map describes nothing to honour.
            continue
        if buf.is_global:
            # Global tensors stay row-major: their layout is what the caller's arrays have. A
            # layout TileLang would apply to a scratch tensor shared by kernels that all carry
            # the same annotation changes nothing they compute, so it is accepted and ignored.
            continue
        if buf.is_shared and not lay.is_injective():
            raise CompileError(_not_injective(buf, lay))
        checked[buf] = lay
        if buf.is_shared:
            buf.user_layout = lay
    if checked:
        emit(Annotation("layout", checked))


def _not_injective(buf: Buffer, lay: Layout) -> str:
    """The message for a many-to-one layout of a shared buffer (its elements would alias), naming
    the first two logical indices that collide, in TileLang 0.1.13's words (its issue 2632)."""
    import numpy as np

    table = lay.table().reshape(-1, len(lay.forward_index))
    flat = lay.flat_table().ravel()
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    j = int(np.flatnonzero(first[inverse] != np.arange(flat.size))[0])
    i = int(first[inverse[j]])
    a, b = (list(np.unravel_index(k, tuple(lay.shape))) for k in (i, j))
    return (f"T.annotate_layout: the layout of shared buffer `{buf.name}` must be injective (one physical slot per "
            f"element): logical indices {[int(v) for v in a]} and {[int(v) for v in b]} both map to physical "
            f"coordinates {[int(v) for v in table[j]]}")


def use_swizzle(panel_size: int = 8, order: str = "row", enable: bool = True) -> None:
    """Visit blocks panel by panel (better L2 reuse): in "row" order, `panel_size` consecutive
    block rows are walked column by column before moving to the next panel."""
    require_kernel("T.use_swizzle")
    if order == "column":  # TileLang's name for it; "col" is what tilewise and older TileLang wrote
        order = "col"
    if order not in ("row", "col"):
        raise CompileError(f"T.use_swizzle: order must be 'row' or 'column' ('col'), got {order!r}"
                           + (" (TileLang's Apple-GPU rasterization is not implemented)" if order == "mlx" else ""))
    if not isinstance(panel_size, int) or panel_size < 1:
        raise CompileError(f"T.use_swizzle: panel_size must be a positive int, got {panel_size!r}")
    if enable:
        emit(Annotation("use_swizzle", (panel_size, order)))


def annotate_safe_value(value_map: dict) -> None:
    """`T.annotate_safe_value({A: v})`: loads of global tensor A outside its bounds (in element
    accesses the compiler cannot prove in range) read v instead of 0."""
    require_kernel("T.annotate_safe_value")
    if not isinstance(value_map, dict):
        raise CompileError("T.annotate_safe_value takes a dict {global tensor: value}")
    pairs = []
    for buf, v in value_map.items():
        if not isinstance(buf, Buffer) or not buf.is_global:
            what = buf.name if isinstance(buf, Buffer) else type(buf).__name__
            raise CompileError(f"T.annotate_safe_value: keys must be global tensors, got {what}")
        e = as_expr(v, buf.dtype)
        if not isinstance(e, Const):
            raise CompileError(f"T.annotate_safe_value: the value for {buf.name} must be a constant, got {v!r}")
        pairs.append((buf, Const(e.value, buf.dtype)))
    emit(Annotation("safe_value", tuple(pairs)))


def annotate_padding(padding_map: dict) -> None:
    """`T.annotate_padding({A_shared: v})` (TileLang 0.1.6): element stores into A_shared written in
    the kernel read v instead of 0 for global-tensor elements outside their tensor's bounds (the
    per-destination form of T.annotate_safe_value; tile operators such as T.copy keep 0)."""
    require_kernel("T.annotate_padding")
    if not isinstance(padding_map, dict):
        raise CompileError("T.annotate_padding takes a dict {buffer: padding value}")
    pairs = []
    for buf, v in padding_map.items():
        if not isinstance(buf, Buffer) or buf.is_global:
            what = buf.name if isinstance(buf, Buffer) else type(buf).__name__
            raise CompileError(f"T.annotate_padding: keys must be shared or local buffers, got {what}")
        e = as_expr(v, buf.dtype)
        if not isinstance(e, Const):
            raise CompileError(f"T.annotate_padding: the value for {buf.name} must be a constant, got {v!r}")
        pairs.append((buf, Const(e.value, buf.dtype)))
    emit(Annotation("padding", tuple(pairs)))


def disable_warp_group_reg_alloc() -> None:
    """No register reallocation between the warpgroups of this kernel when it is warp-specialised
    (no setmaxnreg: producer and consumers keep the registers they were launched with)."""
    require_kernel("T.disable_warp_group_reg_alloc")
    emit(Annotation("disable_warp_group_reg_alloc", True))


def annotate_l2_hit_ratio(l2_hit_ratio_map: dict) -> None:
    """`T.annotate_l2_hit_ratio({B: 0.8})`: TileLang asks the CUDA driver to keep that fraction of
    global tensor B persistent in L2 (a stream access-policy window). It is a cache hint that
    changes no result; tilewise sets no access-policy window, so it checks the arguments and
    warns once that the hint has no effect."""
    from ..jit.compile_flags import warn_once

    require_kernel("T.annotate_l2_hit_ratio")
    if not isinstance(l2_hit_ratio_map, dict):
        raise CompileError("T.annotate_l2_hit_ratio takes a dict {global tensor: hit ratio}")
    for buf, ratio in l2_hit_ratio_map.items():
        if not isinstance(buf, Buffer) or not buf.is_global:
            what = buf.name if isinstance(buf, Buffer) else type(buf).__name__
            raise CompileError(f"T.annotate_l2_hit_ratio: persistent L2 applies to global tensors only, got {what}")
        if not isinstance(ratio, (int, float)) or not 0.0 <= float(ratio) <= 1.0:
            raise CompileError(f"T.annotate_l2_hit_ratio: the hit ratio of {buf.name} must be a number in [0, 1], "
                               f"got {ratio!r}")
    warn_once("annotate_l2_hit_ratio", "T.annotate_l2_hit_ratio has no effect: tilewise sets no L2 access-policy "
              "window (a cache hint; results are unchanged)")


def annotate_min_blocks_per_sm(n: int) -> None:
    """`T.annotate_min_blocks_per_sm(n)`: TileLang passes n as the second `__launch_bounds__`
    argument (an occupancy hint to the register allocator). tilewise checks it and warns once
    that it has no effect."""
    from ..jit.compile_flags import warn_once

    require_kernel("T.annotate_min_blocks_per_sm")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise CompileError(f"T.annotate_min_blocks_per_sm: n must be a positive int, got {n!r}")
    warn_once("annotate_min_blocks_per_sm", "T.annotate_min_blocks_per_sm has no effect: tilewise emits "
              "__launch_bounds__ with the thread count only (an occupancy hint; results are unchanged)")
