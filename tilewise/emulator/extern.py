"""T.call_extern in the emulator: calls of the CUDA math functions, whose meaning is known
(ir/extern_math.py), run as the IR's own math operations; a call of any other function (an
imported __device__ function, say) has no semantics the emulator could know: compiling it is an
UnsupportedError naming the function, which the PTX interpreter (execution_backend="ptx") runs."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..ir import extern_math
from ..ir.expr import Call
from .errors import UnsupportedError, where

if TYPE_CHECKING:
    from .compiler import Compiler


def _call_extern(comp: Compiler, e: Call):
    name = e.attrs.get("name")
    if name in extern_math.NO_EFFECT:  # a delay: the arguments are still evaluated (and checked)
        args = [comp.expr(a) for a in e.args]

        def no_effect(st):
            for f in args:
                f(st)

        return no_effect
    value = extern_math.as_ir(e)
    if value is None:
        if name in extern_math.KNOWN:
            n = extern_math.arity(extern_math.KNOWN[name][0])
            raise UnsupportedError(f"T.call_extern({name!r}) at {where(comp.span)}: {name} takes {n} argument(s), "
                                   f"got {len(e.args)}")
        raise UnsupportedError(
            f"T.call_extern({name!r}) at {where(comp.span)}: the emulator knows what the CUDA math functions compute, "
            f"not {name} (imported or external code); run the kernel with execution_backend='ptx' (the PTX interpreter "
            "runs what NVRTC compiled, imported source included) or on a GPU")
    return comp.expr(value)


HANDLERS = {"call_extern": _call_extern}
