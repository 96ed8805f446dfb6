"""The wgmma.mma_async variants (sm_90a) and the device functions that issue them.

One wgmma names every accumulator register of the thread as an asm operand: N/2 of them for an
m64nN tile of 32-bit accumulators, up to 128. Writing those operand lists by hand for every N,
type and operand source would be hundreds of functions that NVRTC would parse for every kernel,
so they are generated here instead, and the renderer puts into a kernel's source only the
variants that kernel issues (`device_function`). Everything else Hopper needs (descriptors,
fences, commit / wait, mbarriers, TMA) is fixed code in tw_cuda.h.

Operand forms, from the PTX ISA ("wgmma.mma_async"): the float types take `scale-d, imm-scale-a,
imm-scale-b` and, for f16 / bf16 only, the transpose immediates (`imm-trans-a` only when A comes
from shared memory); the integer types take `scale-d` alone. scale-d is a predicate: the
functions take an int and set the predicate inside the asm block."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import InternalError
from ...ir.dtype import as_dtype

_PTX_TYPE = {
    "float16": "f16", "bfloat16": "bf16", "float32": "f32", "tfloat32": "tf32", "float8_e4m3": "e4m3",
    "float8_e5m2": "e5m2", "int8": "s8", "uint8": "u8", "int32": "s32",
}  # fmt: skip
_PTX_NAMES = set(_PTX_TYPE.values())

# (A type, B type) -> (K, accumulator types, transposes allowed)
_INPUTS = {
    ("f16", "f16"): (16, ("f32", "f16"), True),
    ("bf16", "bf16"): (16, ("f32",), True),
    ("tf32", "tf32"): (8, ("f32",), False),
    **{(a, b): (32, ("f32", "f16"), False) for a in ("e4m3", "e5m2") for b in ("e4m3", "e5m2")},
    **{(a, b): (32, ("s32",), False) for a in ("s8", "u8") for b in ("s8", "u8")},
}
_INT_N = (8, 16, 24) + tuple(range(32, 257, 16))  # the integer types skip the odd multiples of 8 above 24
_FLOAT_N = tuple(range(8, 257, 8))
_SHAPE = re.compile(r"m64n(\d+)k(\d+)")


@dataclass(frozen=True)
class WgmmaVariant:
    n: int
    k: int
    a: str  # PTX operand types
    b: str
    c: str
    a_regs: bool  # A from registers (else a shared-memory descriptor)

    @property
    def shape(self) -> str:
        return f"m64n{self.n}k{self.k}"

    @property
    def integer(self) -> bool:
        return self.c == "s32"

    @property
    def transposable(self) -> bool:
        return _INPUTS[(self.a, self.b)][2]

    @property
    def d_regs(self) -> int:
        """32-bit accumulator registers per thread: 64 x N values over 128 threads (f16 packed in pairs)."""
        return self.n // 4 if self.c == "f16" else self.n // 2

    @property
    def function(self) -> str:
        return f"tw::wgmma_{self.shape}_{self.c}_{self.a}_{self.b}_{'rs' if self.a_regs else 'ss'}"

    @property
    def ptx(self) -> str:
        return f"wgmma.mma_async.sync.aligned.{self.shape}.{self.c}.{self.a}.{self.b}"


def ptx_type(name) -> str:
    s = str(name)
    if s in _PTX_NAMES:
        return s
    if s in _PTX_TYPE:
        return _PTX_TYPE[s]
    try:
        dt = as_dtype(s)
    except (TypeError, ValueError):
        raise InternalError(f"wgmma: unknown operand type {name!r}") from None
    if dt.name not in _PTX_TYPE:
        raise InternalError(f"wgmma: no PTX wgmma operand type for {dt}")
    return _PTX_TYPE[dt.name]


def wgmma_variant(shape: str, a_dtype, b_dtype, c_dtype, a_regs: bool = False) -> WgmmaVariant:
    """The variant of a `wgmma` call's attributes (docs/THREAD_IR.md); float32 inputs are tf32."""
    m = _SHAPE.fullmatch(shape)
    if m is None:
        raise InternalError(f"wgmma: shape {shape!r} is not m64n<N>k<K>")
    n, k = int(m.group(1)), int(m.group(2))
    a, b, c = ptx_type(a_dtype), ptx_type(b_dtype), ptx_type(c_dtype)
    a = "tf32" if a == "f32" else a
    b = "tf32" if b == "f32" else b
    spec = _INPUTS.get((a, b))
    if spec is None:
        raise InternalError(f"wgmma: no variant with A {a} and B {b}")
    want_k, accs, _ = spec
    if k != want_k or c not in accs:
        raise InternalError(f"wgmma: {a} x {b} needs k{want_k} and a {' or '.join(accs)} accumulator, not k{k} -> {c}")
    if n not in (_INT_N if c == "s32" else _FLOAT_N):
        raise InternalError(f"wgmma: N = {n} is not a valid wgmma N for {a} x {b}")
    return WgmmaVariant(n, k, a, b, c, bool(a_regs))


def device_function(v: WgmmaVariant) -> str:
    """The C++ of one variant: `fn<TransA, TransB>(acc, a, desc_b, scale_d)` (the transposes only
    for f16 / bf16; `a` is a descriptor, or the address of the thread's four A registers)."""
    nd = v.d_regs
    cons = "+f" if v.c == "f32" else "+r"
    ctype = "float" if v.c == "f32" else "uint32_t"
    d_list = ", ".join(f"%{i}" for i in range(nd))
    d_ops = ", ".join(f'"{cons}"(D[{i}])' for i in range(nd))
    pos = nd
    if v.a_regs:
        a_text = "{" + ", ".join(f"%{pos + i}" for i in range(4)) + "}"
        in_ops = [f'"r"(A[{i}])' for i in range(4)]
        pos += 4
    else:
        a_text = f"%{pos}"
        in_ops = ['"l"(a)']
        pos += 1
    b_text, scale = f"%{pos}", f"%{pos + 1}"
    in_ops += ['"l"(desc_b)', '"r"(scale_d)']
    pos += 2
    tail = ""
    if not v.integer:
        tail = ", 1, 1"
        if v.transposable:
            if not v.a_regs:
                tail += f", %{pos}"
                in_ops.append('"n"(TransA)')
                pos += 1
            tail += f", %{pos}"
            in_ops.append('"n"(TransB)')
    a_param = "const void* a_regs" if v.a_regs else "uint64_t a"
    a_decl = "  const uint32_t* A = reinterpret_cast<const uint32_t*>(a_regs);\n" if v.a_regs else ""
    name = v.function.split("::", 1)[1]
    template = "template <int TransA, int TransB>\n" if v.transposable else ""
    return (
        f"{template}TW_DEV void {name}(void* acc, {a_param}, uint64_t desc_b, int32_t scale_d) {{\n"
        f"  {ctype}* D = reinterpret_cast<{ctype}*>(acc);\n{a_decl}"
        f'  asm volatile("{{\\n.reg .pred tw_scale_d;\\nsetp.ne.b32 tw_scale_d, {scale}, 0;\\n"\n'
        f'               "{v.ptx} {{{d_list}}}, {a_text}, {b_text}, tw_scale_d{tail};\\n}}\\n"\n'
        f"               : {d_ops}\n"
        f"               : {', '.join(in_ops)}\n"
        f'               : "memory");\n'
        f"}}\n"
    )


def device_functions(variants) -> str:
    """The functions of several variants, in a namespace block, each once (sorted, so that a
    kernel's source does not depend on the order its calls were found in)."""
    uniq = sorted(set(variants), key=lambda v: v.function)
    if not uniq:
        return ""
    return (
        "#if !defined(__CUDA_ARCH_FEAT_SM90_ALL)\n"
        '#error "wgmma needs sm_90a: compile this kernel with --gpu-architecture=sm_90a"\n'
        "#endif\n"
        "namespace tw {\n" + "\n".join(device_function(v) for v in uniq) + "}  // namespace tw\n"
    )
