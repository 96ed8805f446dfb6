"""CUDA: synchronisation beyond one block (language/launch_sync.py) decides how a kernel is
launched, so it is found before anything else and recorded on the kernel:
`Kernel.attrs["launch_sync"]` is the sorted tuple of the intrinsics a kernel uses among
`sync_grid`, `pdl_sync`, `pdl_trigger`. The renderer reads it (cooperative_groups for the grid
barrier; no `__restrict__` parameters with `pdl_sync`, as TileLang), the launcher too (a
cooperative launch for the grid barrier; programmatic stream serialisation with `pdl_sync`),
the emulator (all blocks of a grid barrier's launch run as one batch).

Programmatic dependent launch needs sm_90 or newer (griddepcontrol); TileLang refuses it on
other targets ("PDL is not supported"), so does this pass, at the primitive's line. A grid
barrier works from sm_60 on, so on every CUDA target here."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.expr import Call
from ..ir.machine import Machine
from ..ir.stmt import Kernel, PrimFunc
from ..ir.visitor import Mutator, walk

LAUNCH_SYNC = ("sync_grid", "pdl_sync", "pdl_trigger")


def arch_number(machine: Machine) -> int:
    """80 for sm_80, 90 for sm_90a, 100 for sm_100f; 0 for a machine that is not a CUDA arch."""
    digits = "".join(ch for ch in machine.name.removeprefix("sm_") if ch.isdigit())
    return int(digits) if machine.name.startswith("sm_") and digits else 0


def launch_sync(func: PrimFunc, machine: Machine) -> PrimFunc:
    return func.with_body(_Mark(machine).visit(func.body))


class _Mark(Mutator):
    def __init__(self, machine: Machine):
        self.machine = machine

    def visit_Kernel(self, k: Kernel):
        found: dict[str, Call] = {}
        walk(k.body, lambda n: found.setdefault(n.name, n) if isinstance(n, Call) and n.name in LAUNCH_SYNC else None)
        if not found:
            return k
        for name in ("pdl_trigger", "pdl_sync"):
            if name in found and arch_number(self.machine) < 90:
                raise CompileError(
                    f"{found[name].attrs.get('what', name)}: programmatic dependent launch (griddepcontrol) needs "
                    f"sm_90 or newer; the target is {self.machine.name} (TileLang: PDL is not supported)",
                    getattr(found[name], "span", None))
        # the arch, for the emulator's co-residency check of a grid barrier's launch
        return k.with_fields(attrs={**k.attrs, "launch_sync": tuple(sorted(found)), "arch": self.machine.name})
