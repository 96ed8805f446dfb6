"""The block shape a kernel asks for must fit the machine (CUDA: at most 1024 threads per block,
1024 / 1024 / 64 along x / y / z). Checked first, at the `T.Kernel` line: later passes size
layouts by the thread count, and an absurd one (threads=2**31) would make them run for ever."""
from __future__ import annotations

import math

from ..errors import CompileError
from ..ir.machine import Machine
from ..ir.stmt import Kernel, PrimFunc
from ..ir.visitor import Visitor


def check_launch_limits(func: PrimFunc, machine: Machine) -> PrimFunc:
    if machine.max_threads:
        _Limits(machine).visit(func.body)
    return func


class _Limits(Visitor):
    def __init__(self, machine: Machine):
        self.machine = machine

    def visit_Kernel(self, k: Kernel):
        m = self.machine
        total = math.prod(k.threads)
        if total > m.max_threads:
            raise CompileError(f"T.Kernel: threads={tuple(k.threads) if len(k.threads) > 1 else k.threads[0]} is "
                               f"{total} threads per block; {m.name} allows at most {m.max_threads}", k.span)
        for axis, (t, limit) in enumerate(zip(k.threads, m.max_block_dims)):
            if t > limit:
                raise CompileError(f"T.Kernel: {t} threads along {'xyz'[axis]}; {m.name} allows at most {limit}",
                                   k.span)
        self.generic_visit(k)
