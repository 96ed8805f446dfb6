"""Which kernels on a CPU-like target must run as their CUDA program because of code tilewise
cannot translate: T.import_source text written for CUDA (`__device__` functions, inline PTX in
`asm`) and T.call_extern calls of functions that are not CUDA math functions.

g++ cannot compile CUDA device code or PTX, and the emulator does not know what an imported
function computes; the PTX interpreter runs what NVRTC compiled, imported code included
(jit/kernel.py routes such kernels there)."""
from __future__ import annotations

import re

from ..errors import CompileError
from ..ir import extern_math
from ..ir.expr import Call
from ..ir.stmt import Annotation, PrimFunc
from ..ir.visitor import walk

# text only CUDA compiles: device / kernel qualifiers, inline assembly (PTX)
_CUDA_ONLY = re.compile(r"\b(__device__|__global__|__forceinline__|asm|__asm__)\b")
_ASM = re.compile(r"\b(asm|__asm__)\b")


def imported_sources(func: PrimFunc) -> list[str]:
    """The texts of the function's T.import_source calls, each once, in program order."""
    found: list[str] = []
    walk(func.body, lambda n: found.append(n.payload) if isinstance(n, Annotation) and n.kind == "import_source"
         and n.payload not in found else None)
    return found


def imports_cuda(func: PrimFunc) -> bool:
    """Some T.import_source text is CUDA (device qualifiers or inline assembly)."""
    return any(_CUDA_ONLY.search(text) for text in imported_sources(func))


def imports_inline_asm(func: PrimFunc) -> bool:
    return any(_ASM.search(text) for text in imported_sources(func))


def opaque_externs(func: PrimFunc) -> list[str]:
    """Names of the T.call_extern functions whose meaning tilewise does not know (not CUDA math
    functions, ir/extern_math.py), each once, in program order."""
    found: list[str] = []

    def f(n):
        if isinstance(n, Call) and n.name == "call_extern":
            name = n.attrs.get("name")
            if name not in extern_math.KNOWN and name not in extern_math.NO_EFFECT and name not in found:
                found.append(name)

    walk(func.body, f)
    return found


def user_code_rejected(err: Exception, func: PrimFunc, target) -> CompileError:
    """NVRTC rejected the CUDA program of a kernel that the CPU-like `target` runs as CUDA, and the
    program holds user code: a CompileError saying why the code had to be CUDA, with NVRTC's
    error lines (not its whole log)."""
    log = getattr(err, "log", "") or str(err)
    errors = [ln for ln in log.splitlines() if "error" in ln][:8]
    names = ", ".join(opaque_externs(func))
    return CompileError(
        f"{func.name} imports code (T.import_source / T.call_extern{' of ' + names if names else ''}) that NVRTC did "
        f"not compile: on the {target} "
        "target a kernel that programs its threads or calls imported code runs as its CUDA program, so the "
        "imported functions must be CUDA device code (`__device__`, inline PTX in `asm`). NVRTC said:\n"
        + "\n".join(errors or log.splitlines()[-8:]))
