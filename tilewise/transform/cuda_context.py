"""What CUDA lowering passes share about a kernel: its inferred layouts, the flattened thread
index, and the register array standing for each fragment."""
from __future__ import annotations

from ..errors import InternalError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer
from ..ir.expr import Const, Expr
from ..ir.machine import Machine
from ..ir.stmt import Kernel
from ..tileop.base import LowerContext, TileOp
from .layout_inference import LayoutMap
from .thread_range import fragment_in_range, narrowed


class CudaLowerContext(LowerContext):
    def __init__(self, kernel: Kernel, layouts: LayoutMap, ranges: dict, machine: Machine, pass_configs=None):
        super().__init__(machine.lowering_keys, ranges)
        self.kernel = kernel
        self.layouts = layouts
        self.machine = machine
        self.pass_configs = dict(pass_configs or {})
        # TMA descriptors of the kernel (Kernel.attrs["tensor_maps"]): the program's own
        # (T.create_tma_descriptor) and those the lowered copies add
        self.tensor_maps: list = list(kernel.attrs.get("tensor_maps", ()))
        self.block_threads = layouts.threads
        # set while lowering an operator inside `if tx < c` (and the like): the operator is spread
        # over threads [lo, hi] only
        self.thread_span: tuple[int, int] | None = None
        self.op_span = None
        for v, t in zip(kernel.thread_vars, kernel.threads):
            self.ranges[v] = (0, t - 1)

    def kernel_attrs(self) -> dict:
        out = super().kernel_attrs()
        if self.tensor_maps:
            out["tensor_maps"] = list(self.tensor_maps)
        if self.machine.warp_size != 32:
            # the lockstep width the lowering assumed (shuffles, warp-level reductions): the
            # emulator executes the kernel's warps at this width (a wavefront of 64 on AMD GPUs)
            out["warp_size"] = self.machine.warp_size
        return out

    def enter(self, op: TileOp, ranges: dict) -> None:
        super().enter(op, ranges)
        self.thread_span = narrowed(self.kernel, ranges)
        self.op_span = op.span

    def leave(self) -> None:
        self.thread_span = None

    @property
    def threads(self) -> int:
        if self.thread_span is not None:
            return self.thread_span[1] - self.thread_span[0] + 1
        return self.block_threads

    @property
    def kernel_thread(self) -> Expr:
        """The flattened thread index of the block, whatever `if` the operator is in."""
        saved, self.thread_span = self.thread_span, None
        try:
            return self.thread
        finally:
            self.thread_span = saved

    @property
    def thread(self) -> Expr:
        """The flattened thread index (threadIdx.x fastest), counted from the first thread that
        runs the operator."""
        k = self.kernel
        tid: Expr = k.thread_vars[0]
        scale = k.threads[0]
        for v, t in zip(k.thread_vars[1:], k.threads[1:]):
            tid = tid + v * scale
            scale *= t
        if self.thread_span is not None and self.thread_span[0]:
            tid = tid - self.thread_span[0]
        return tid

    def fragment_layout(self, buf: Buffer):
        if buf.base is not None:  # T.reshape of a fragment: the root's layout, reshaped
            from .layout_inference import view_layout

            return view_layout(self.fragment_layout(buf.root), buf)
        if self.thread_span is not None and self.layouts.fragment_ranges.get(buf) != self.thread_span:
            # layout inference gives a fragment used inside an `if` on the thread index the
            # threads of that `if` (LayoutMap.fragment_ranges); the operator runs on others
            raise fragment_in_range(buf, self.op_span)
        lay = self.layouts.fragments.get(buf)
        if lay is None:
            raise InternalError(f"fragment {buf.name} has no layout")
        return lay

    def local_buffer(self, buf: Buffer) -> Buffer:
        """The per-thread register array holding this thread's part of fragment `buf`."""
        if not buf.is_fragment:
            raise InternalError(f"{buf.name} is not a fragment")
        if buf.base is not None:  # a view keeps its root's registers (layout_inference.view_layout)
            self.fragment_layout(buf)
            return self.local_buffer(buf.root)
        loc = self.layouts.locals.get(buf)
        if loc is None:
            lay = self.fragment_layout(buf)
            loc = Buffer(buf.name, (lay.num_values,), buf.dtype, "local", span=buf.span)
            self.layouts.locals[buf] = loc
        return loc

    def shared_layout(self, buf: Buffer):
        return self.layouts.shared.get(buf)


def int32(v: int):
    return Const(v, _dt.int32)
