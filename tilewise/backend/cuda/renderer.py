"""Renders a thread-level PrimFunc (docs/THREAD_IR.md) to CUDA C++: one `extern "C" __global__`
function per `Kernel` statement, taking the function's parameters followed by its dynamic
dimensions and then its TMA tensor maps (`Kernel.attrs["tensor_maps"]`), with the intrinsics of
the thread IR mapped onto tw_cuda.h. The wgmma variants a function issues are generated into its
source ahead of the kernels (wgmma_variants.py)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ...errors import CompileError, InternalError
from ...ir.buffer import Buffer
from ...ir.expr import BinOp, BufferLoad, Call, Cast, Compare, Const, Expr, Var
from ...ir.simplify import bound, linear_form
from ...ir.stmt import Allocate, Annotation, For, Kernel, LetStmt, PrimFunc, SeqStmt, Stmt
from ...ir.tensor_map import TensorMap
from ...ir.visitor import Visitor, substitute, walk
from ..c_style import CStyleRenderer, c_string, c_type, is_scalar_var
from .mma_variants import mma_variant
from .wgmma_variants import device_functions, wgmma_variant

MAX_STATIC_SHARED_BYTES = 48 * 1024  # above this a kernel must opt in to more dynamic shared memory
_AXES = ("x", "y", "z")
_CUDA_NAMES = (
    "threadIdx", "blockIdx", "blockDim", "gridDim", "warpSize", "printf", "memcpy", "memset", "assert",
    "dim3", "uint2", "uint4", "int2", "int4", "float2", "float4", "half2", "INFINITY", "NAN",
)  # fmt: skip
_VEC_BYTES = (1, 2, 4, 8, 16)
# float16 arithmetic in f16 instructions (tw_cuda.h), not through float
_F16_OPS = {"add": "hadd", "sub": "hsub", "mul": "hmul"}
_CP_ASYNC_BYTES = (4, 8, 16)
# TMA boxes and wgmma descriptors assume the 1024-byte alignment of a 128-byte swizzle's pattern
_HOPPER_SHARED = ("tma_load", "tma_store", "wgmma", "wgmma_desc")

# T.rng_init's generator= naming tw_curand.h's (language/rng.py), and the prefix of their functions
MRG32K3A, XORWOW = "curandStateMRG32k3a_t", "curandStateXORWOW_t"
_RNG_PREFIX = {MRG32K3A: "mrg32k3a", XORWOW: "xorwow"}


@dataclass
class CudaKernel:
    """One `__global__` function: what a launch needs besides the arguments."""

    name: str
    grid: list[Expr]  # blocks per axis (x, y, z prefix); expressions of dynamic dims / scalar params
    block: tuple[int, int, int]
    shared_bytes: int  # dynamic shared memory per block
    # TMA tensor maps: (C parameter name, map), the last parameters of this kernel, in order
    tensor_maps: list[tuple[str, TensorMap]] = field(default_factory=list)
    # transform/launch_sync.py: "sync_grid" needs a cooperative launch, "pdl_sync" a programmatic one
    launch_sync: tuple[str, ...] = ()
    threads: int = field(init=False)

    def __post_init__(self):
        self.threads = self.block[0] * self.block[1] * self.block[2]

    @property
    def needs_shared_opt_in(self) -> bool:
        """Above 48 KiB the function must raise CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES."""
        return self.shared_bytes > MAX_STATIC_SHARED_BYTES


@dataclass
class CudaModule:
    """The rendered source and everything a launcher needs. Kernels run in list order; each
    takes `params` then `dynamic_vars` (as their IR types; int32 for dynamic dims)."""

    source: str
    func_name: str
    kernels: list[CudaKernel]
    params: list  # Buffer | Var, in PrimFunc order
    dynamic_vars: list[Var]
    param_names: list[str]  # the C parameter names, params then dynamic dims
    readonly: list[bool]  # per entry of params: a buffer the kernels never write (rendered const)
    line_spans: dict = field(default_factory=dict)  # source line -> span of the statement it renders

    @property
    def kernel_name(self) -> str:
        return self._single().name

    @property
    def tensor_map_names(self) -> list[str]:
        """The C names of the tensor-map parameters of every kernel, in launch order."""
        return [name for k in self.kernels for name, _ in k.tensor_maps]

    @property
    def shared_bytes(self) -> int:
        return self._single().shared_bytes

    @property
    def grid(self) -> list[Expr]:
        return self._single().grid

    @property
    def block(self) -> tuple[int, int, int]:
        return self._single().block

    def _single(self) -> CudaKernel:
        if len(self.kernels) != 1:
            raise InternalError(f"{self.func_name} has {len(self.kernels)} kernels; use .kernels")
        return self.kernels[0]


# shuffles of these types print CUDA's __shfl_*_sync directly; narrower ones go through tw_cuda.h
_SHFL_NATIVE = ("int32", "uint32", "float32", "int64", "uint64", "float64")
_SHFL_NATIVE_NAMES = {"shfl_xor": "__shfl_xor_sync", "shfl_down": "__shfl_down_sync", "shfl_up": "__shfl_up_sync",
                      "shfl_idx": "__shfl_sync"}


class _Writes(Visitor):
    """Buffers a kernel may write: stores, any address passed to a call other than as a source
    operand, and the tensors TMA stores write through their maps."""

    _SOURCES = {"copy_vec": (1,), "cp_async": (1,), "ldmatrix": (1,), "mma_sync": (0, 1), "print": None,
                "tma_store": (0,), "wgmma": (1,), "wgmma_desc": (0,)}  # fmt: skip

    def __init__(self):
        self.written: set[int] = set()
        self.maps: dict[str, TensorMap] = {}

    def visit_Kernel(self, k: Kernel):
        self.maps = {m.name: m for m in k.attrs.get("tensor_maps", ())}
        self.generic_visit(k)

    def visit_BufferStore(self, s):
        self.written.add(s.buffer.root.uid)
        self.generic_visit(s)

    def visit_Call(self, e: Call):
        if e.name == "tma_store":
            m = self.maps.get(e.attrs.get("map"))
            if m is not None:
                self.written.add(m.buffer.root.uid)
        reads = self._SOURCES.get(e.name, ())
        for k, a in enumerate(e.args):
            if isinstance(a, Call) and a.name == "address_of":
                if reads is None or k in reads:
                    continue
                self.written.add(a.args[0].buffer.root.uid)
        self.generic_visit(e)


class _HopperUse(Visitor):
    """What of Hopper a function uses, known before rendering: the wgmma variants (generated
    into the source ahead of the kernels) and whether shared memory needs 1024-byte alignment."""

    def __init__(self):
        self.variants: list = []
        self.aligned_kernels: set[int] = set()
        self._kernel = None

    def visit_Kernel(self, k: Kernel):
        self._kernel = id(k)
        self.generic_visit(k)

    def visit_Call(self, e: Call):
        if e.name in _HOPPER_SHARED and self._kernel is not None:
            self.aligned_kernels.add(self._kernel)
        if e.name == "wgmma":
            a = e.attrs
            self.variants.append(wgmma_variant(a["shape"], a["a_dtype"], a["b_dtype"], a["c_dtype"], a.get("a_regs", False)))
        self.generic_visit(e)


class CudaRenderer(CStyleRenderer):
    # what a subclass for another GPU language changes (backend/hip/renderer.py)
    language = "CUDA"
    header = "tw_cuda.h"
    warp_size = 32
    block_index = "blockIdx.{}"  # .format(axis)
    thread_index = "threadIdx.{}"
    barrier = "__syncthreads()"
    warp_barrier = "__syncwarp()"
    native_f16 = True  # float16 add/sub/mul and int -> f16 as f16 instructions (sm_53+: every CUDA arch we take)

    def __init__(self, func: PrimFunc):
        super().__init__()
        self.func = func
        for n in _CUDA_NAMES:
            self.names.reserve(n)
        self.kernels: list[CudaKernel] = []
        self.smem_root: Buffer | None = None  # the current kernel's dynamic shared allocation
        self.smem_bytes = 0
        self.smem_align = 16
        self.maps: dict[str, tuple[str, TensorMap]] = {}  # the current kernel's tensor maps by IR name
        self.hopper = _HopperUse()
        # accumulators of the wgmma calls rendered since the last wgmma_wait<0> (pinned after it)
        self.wgmma_accumulators: dict[str, int] = {}
        self.thread_vars: frozenset = frozenset()  # the current kernel's thread indices
        self.index_ranges: dict = {}  # Var -> (lo, hi or None): thread, block and loop indices
        self.split_offsets = False  # rendering a cp.async source (offset())
        self.in_unrolled_pipeline = False  # inside a pipeline's steady state unrolled by its stages

    # ------------------------------------------------------------------ module
    def render(self) -> CudaModule:
        f = self.func
        base = re.sub(r"[^A-Za-z0-9_]", "_", f.name) or "kernel"
        if base[0].isdigit():
            base = "k" + base
        self.names.reserve(base)
        _, kernels = self._split_top(f.body)
        if not kernels:
            raise InternalError(f"{f.name}: the thread IR has no Kernel statement")
        dyn = f.dynamic_vars()
        writes = _Writes()
        writes.visit(f.body)
        readonly = [isinstance(p, Buffer) and p.uid not in writes.written for p in f.params]

        sig, pnames = [], []
        pdl_sync = any("pdl_sync" in k.attrs.get("launch_sync", ()) for k, _ in kernels)
        non_restrict = set(f.attrs.get("tilewise_non_restrict", ()))  # T.annotate_restrict_buffers
        for p, ro in zip(f.params, readonly):
            if isinstance(p, Buffer):
                if not p.is_global:
                    raise InternalError(f"parameter {p.name} has scope {p.scope}; kernel parameters are global")
                t = c_type(p.dtype)
                name = self.buf(p)
                # with T.pdl_sync no parameter is __restrict__ (as TileLang: the primary grid may
                # still be writing what this one reads until the wait)
                restrict = "" if pdl_sync or p.name in non_restrict else " __restrict__"
                sig.append(f"{'const ' if ro else ''}{t}*{restrict} {name}")
            else:
                name = self.var(p)
                sig.append(f"const {c_type(p.dtype)} {name}")
            pnames.append(name)
        for v in dyn:
            name = self.var(v)
            sig.append(f"const {c_type(v.dtype)} {name}")
            pnames.append(name)

        self.hopper.visit(f.body)
        self.line(f"// generated by tilewise: {self.language} kernels of " + f.name)
        if any("sync_grid" in k.attrs.get("launch_sync", ()) for k, _ in kernels):
            self.line("#define TW_GRID_SYNC  // tw::grid_sync (T.sync_grid)")
        self.line(f'#include "{self.header}"')
        if _uses_generator(f.body, XORWOW):
            from ...rng.xorwow import header_tables

            self.line("#define TW_XORWOW  // T.rng_init(..., generator=\"curandStateXORWOW_t\"): its jump tables")
            self.lines.extend(header_tables().splitlines())
        if _uses_generator(f.body, MRG32K3A) or _uses_generator(f.body, XORWOW):
            self.line('#include "tw_curand.h"  // T.rng_init(..., generator=curand\'s MRG32k3a or XORWOW)')
        for text in device_functions(self.hopper.variants).splitlines():
            self.line(text)
        for text in self.imported_sources(f):  # T.import_source
            self.line("")
            self.lines.extend(text.splitlines())
        for i, k in enumerate(kernels):
            name = self.names.fresh(f"{base}_kernel" if i == 0 else f"{base}_kernel_{i}")
            self.line("")
            self._kernel(k, name, sig)
        return CudaModule(
            source="\n".join(self.lines) + "\n",
            func_name=f.name,
            kernels=self.kernels,
            params=list(f.params),
            dynamic_vars=dyn,
            param_names=pnames,
            readonly=readonly,
            line_spans=self.line_spans,
        )

    def _split_top(self, body: Stmt):
        """The kernels of the function body, with the LetStmts that precede each (host-level
        bindings every later kernel sees)."""
        stmts = body.stmts if isinstance(body, SeqStmt) else [body]
        lets: list[LetStmt] = []
        kernels = []
        for s in stmts:
            if isinstance(s, Kernel):
                kernels.append((s, list(lets)))
            elif isinstance(s, LetStmt):
                lets.append(s)
            elif isinstance(s, SeqStmt):
                inner_lets, inner = self._split_top(s)
                kernels.extend((k, lets + ls) for k, ls in inner)
                lets.extend(inner_lets)
            elif not isinstance(s, Annotation):
                raise InternalError(
                    f"the CUDA thread IR allows only Kernel, LetStmt and Annotation at the top level, found {type(s).__name__}",
                    s.span,
                )
        return lets, kernels

    def _kernel(self, item, name: str, sig: list[str]):
        k, lets = item
        if len(k.block_vars) > 3 or len(k.threads) > 3:
            raise InternalError(f"kernel {name}: CUDA has at most 3 grid and block dimensions", k.span)
        block = tuple(list(k.threads) + [1] * (3 - len(k.threads)))
        # grid extents seen from the host: top-level lets substituted away
        env: dict = {}
        for s in lets:
            env[s.var] = substitute(s.value, env)
        grid = [substitute(g, env) for g in k.grid]
        nthreads = math.prod(block)
        self.smem_root = None
        self.smem_bytes = 0
        self.wgmma_accumulators = {}
        self.smem_align = 1024 if id(k) in self.hopper.aligned_kernels else 16
        maps = self._tensor_maps(k)
        sig = sig + [f"const __grid_constant__ CUtensorMap {c}" for c, _ in maps]
        # setmaxnreg needs the register count at entry, which ptxas knows only from a minimum of
        # blocks per SM (it then gives each thread the register file's share of one block)
        bounds = f"{nthreads}, 1" if k.attrs.get("register_budgets") else f"{nthreads}"
        self.line(f'extern "C" __global__ void __launch_bounds__({bounds}) {name}({", ".join(sig)}) {{')
        self.depth += 1
        for s in lets:
            self.stmt(s)
        for ax, v in zip(_AXES, k.block_vars):
            self.line(f"const {c_type(v.dtype)} {self.var(v)} = ({c_type(v.dtype)}){self.block_index.format(ax)};")
        for ax, v in zip(_AXES, k.thread_vars):
            self.line(f"const {c_type(v.dtype)} {self.var(v)} = ({c_type(v.dtype)}){self.thread_index.format(ax)};")
        self.thread_vars = frozenset(k.thread_vars)
        self.index_ranges = {v: (0, t - 1) for v, t in zip(k.thread_vars, k.threads)}
        self.index_ranges.update({v: (0, None) for v in k.block_vars})
        self.stmt(k.body)
        self.thread_vars, self.index_ranges = frozenset(), {}
        self.depth -= 1
        self.line("}")
        self.kernels.append(CudaKernel(name, grid, block, self.smem_bytes, maps, tuple(k.attrs.get("launch_sync", ()))))
        self.maps = {}

    def dynamic_shared(self, name: str, nbytes: int) -> str:
        """The declaration of the kernel's one shared allocation (bytes given at launch)."""
        return f"extern __shared__ __align__({self.smem_align}) uint8_t {name}[];"

    def _tensor_maps(self, k: Kernel) -> list[tuple[str, TensorMap]]:
        """The kernel's tensor maps with their C parameter names (the maps' buffers must be
        parameters of the function: the launcher encodes each map from its argument)."""
        out = []
        self.maps = {}
        params = {p.uid for p in self.func.params if isinstance(p, Buffer)}
        for m in k.attrs.get("tensor_maps", ()):
            if not isinstance(m, TensorMap):
                raise InternalError(f"Kernel.attrs['tensor_maps'] holds {type(m).__name__}, not TensorMap", k.span)
            if m.name in self.maps:
                raise InternalError(f"two tensor maps named {m.name}", k.span)
            if m.buffer.uid not in params:
                raise InternalError(f"tensor map {m.name}: {m.buffer.name} is not a parameter of {self.func.name}", k.span)
            c = self.names.fresh(re.sub(r"[^A-Za-z0-9_]", "_", m.name) or "tmap")
            self.maps[m.name] = (c, m)
            out.append((c, m))
        return out

    def _map(self, e: Call) -> tuple[str, TensorMap]:
        name = e.attrs.get("map")
        hit = self.maps.get(name)
        if hit is None:
            known = ", ".join(self.maps) or "none"
            raise InternalError(f"{e.name} names the tensor map {name!r}, which the kernel does not list (it has: {known})")
        return hit

    def stmt_Kernel(self, k: Kernel):
        raise InternalError("a Kernel statement nested inside another statement", k.span)

    # ------------------------------------------------------------------ buffers
    def wide_index(self, buffer: Buffer) -> bool:
        # 32-bit offsets save the 64-bit multiply-adds wherever a global tensor is known to fit
        if not buffer.is_global:
            return False
        shape = buffer.static_shape()
        return shape is None or math.prod(shape) >= 2**31

    def offset(self, buffer: Buffer, indices) -> str:
        """In a pipeline's steady state unrolled by its stage count, the source offset of a
        cp.async from a global tensor indexed in 32 bits is written (the thread's part) + (the
        rest): the terms that depend on the thread index, then those of block and loop indices
        and constants. The rest is warp-uniform and the thread's part the same expression in
        every unrolled copy, so NVVM computes the thread's part once, ahead of the loop, and
        each copy costs an add and the address's multiply-add instead of row * stride + column
        (the canonical GEMM's steady loop: 8 fewer instructions per k step and 14 fewer
        registers). Only there: elsewhere (the prologue, the stores after the loop) the thread
        parts, shared with the loop's, would live through the loop, and ptxas spilled them
        rather than take a few more registers; shared tiles keep the plain form, whose
        offsets ptxas folds into immediates once the slots are constant. Only when every term
        is provably non-negative: each is then at most the whole offset, so no partial sum
        overflows where the offset itself does not."""
        strides = buffer.strides()
        if not self.split_offsets or not buffer.is_global or self.wide_index(buffer) or not self.thread_vars \
                or not all(isinstance(st, int) and st > 0 for st in strides):
            return super().offset(buffer, indices)
        flat = None
        for idx, st in zip(indices, strides):
            if not idx.dtype.is_int or idx.dtype.bits > 32:
                return super().offset(buffer, indices)
            t = idx if st == 1 else idx * st
            flat = t if flat is None else flat + t
        if flat is None:
            return "0"
        lin = linear_form(flat)
        ranges = {**self.index_ranges, **self.ranges}
        if lin.const < 0 or any(c <= 0 or not _nonneg(atom, ranges) for atom, c in lin.terms.values()):
            return super().offset(buffer, indices)
        mine, rest = lin.copy(), lin.copy()
        mine.const = 0
        for key, (atom, _) in lin.terms.items():
            del (rest if self._per_thread(atom) else mine).terms[key]
        if not mine.terms or (not rest.terms and rest.const == 0):
            return super().offset(buffer, indices)
        return f"({self.expr(mine.to_expr())}) + ({self.expr(rest.to_expr())})"

    def expr_Call(self, e: Call) -> str:
        if e.name != "cp_async" or not self.in_unrolled_pipeline:
            return super().expr_Call(e)
        self.split_offsets = True
        try:
            return super().expr_Call(e)
        finally:
            self.split_offsets = False

    def _per_thread(self, e: Expr) -> bool:
        hits = []
        walk(e, lambda n: hits.append(n) if isinstance(n, Var) and n in self.thread_vars else None)
        return bool(hits)

    def stmt_For(self, f: For):
        # the lower bound of a loop index, for offset(); constant-extent loops are in self.ranges
        lo = bound(f.start, {**self.index_ranges, **self.ranges})[0]
        if lo is not None:
            self.index_ranges[f.var] = (lo, None)
        outer = self.in_unrolled_pipeline
        self.in_unrolled_pipeline = outer or bool(f.annotations.get("unrolled_stages"))
        try:
            super().stmt_For(f)
        finally:
            self.index_ranges.pop(f.var, None)
            self.in_unrolled_pipeline = outer

    def stmt_Allocate(self, s: Allocate):
        b = s.buffer
        t = c_type(b.dtype)
        name = self.buf(b)
        if b.base is not None:
            # a view is its base's pointer moved by byte_offset; views may alias (no __restrict__)
            base = f"(&{self.buf(b.base)})" if is_scalar_var(b.base) else self.buf(b.base)
            off = b.byte_offset
            src = f"{base}" if b.base.dtype.bytes == 1 and b.base.dtype.is_int else f"(uint8_t*){base}"
            self.line(f"{t}* {name} = ({t}*)({src} + {off});" if off else f"{t}* {name} = ({t}*){base};")
            if s.init is not None:
                raise InternalError(f"view {b.name} cannot have an initial value", s.span)
            return
        shape = b.static_shape()
        if shape is None:
            raise InternalError(f"{b.name}: {b.scope} buffers need a static shape, found {b.shape}", s.span)
        n = math.prod(shape)
        nbytes = n * b.dtype.bytes
        if b.scope == "shared.dyn":
            if self.smem_root is not None:
                raise InternalError(
                    f"{b.name}: a second dynamic shared allocation (after {self.smem_root.name}); shared "
                    "memory planning leaves one uint8 `smem` buffer and views of it",
                    s.span,
                )
            self.smem_root = b
            self.smem_bytes = nbytes
            if b.dtype.name == "uint8":
                self.line(self.dynamic_shared(name, nbytes))
            else:
                raw = self.names.fresh("tw_smem")
                self.line(self.dynamic_shared(raw, nbytes))
                self.line(f"{t}* {name} = ({t}*){raw};")
        elif b.scope == "shared":
            self.line(f"__shared__ __align__(16) {t} {name}[{n}];")
        elif is_scalar_var(b):
            self.line(f"{t} {name}" + (f" = {self.expr(s.init)};" if s.init is not None else ";"))
            return
        elif b.scope in ("local", "local.var", "local.fragment"):
            align = next((a for a in (16, 8, 4) if nbytes % a == 0), 0)
            self.line(f"{f'alignas({align}) ' if align > b.dtype.bytes else ''}{t} {name}[{n}];")
        else:
            raise InternalError(f"{b.name}: cannot allocate a buffer of scope {b.scope} inside a kernel", s.span)
        if s.init is not None:
            init = self.expr(s.init)
            if n == 1:
                self.line(f"{name}[0] = {init};")
            else:
                self.line("#pragma unroll")
                self.line(f"for (int32_t tw_i = 0; tw_i < {n}; ++tw_i) {name}[tw_i] = {init};")

    # ------------------------------------------------------------------ loops
    def loop_pragmas(self, f: For) -> list[str]:
        if f.kind in ("unroll", "vectorized"):
            return ["#pragma unroll"]
        if f.kind in ("parallel", "pipelined", "thread"):
            raise InternalError(f"a For(kind={f.kind!r}) loop reached the CUDA renderer; lowering removes them", f.span)
        if f.annotations.get("part") in ("prologue", "epilogue", "steady_rest") or f.annotations.get("unroll") == 1:
            # unrolled, the pipeline's fill and drain iterations would be scheduled into each other
            # and raise register pressure for no gain
            return ["#pragma unroll 1"]
        return []

    # ------------------------------------------------------------------ expressions
    def expr_BinOp(self, e: BinOp) -> str:
        # Floor division and modulo by a positive power of two are exactly an arithmetic shift and
        # a mask in two's complement, whatever the sign of the dividend: no sign fix-up code.
        if e.op in ("floordiv", "floormod") and e.dtype.is_int and isinstance(e.b, Const):
            c = e.b.value
            if c > 0 and c & (c - 1) == 0:
                a = self.expr(e.a)
                if e.op == "floordiv":
                    return a if c == 1 else f"({a} >> {c.bit_length() - 1})"
                return f"({a} & {self.expr(Const(c - 1, e.dtype))})"
        if self.native_f16 and e.dtype.name == "float16" and e.op in _F16_OPS:
            return f"tw::{_F16_OPS[e.op]}({self.expr(e.a)}, {self.expr(e.b)})"
        return super().expr_BinOp(e)

    def expr_Cast(self, e: Cast) -> str:
        src = e.value.dtype
        if self.native_f16 and e.dtype.name == "float16" and src.name in ("int32", "uint32"):
            return f"tw::{'i2h' if src.name == 'int32' else 'u2h'}({self.expr(e.value)})"
        return super().expr_Cast(e)

    def expr_Compare(self, e: Compare) -> str:
        a, b = self.expr(e.a), self.expr(e.b)
        if e.a.dtype.is_float and e.a.dtype.bits < 32:
            # fp8 types have no comparison operators; compare all low-precision floats as float
            a, b = f"(float)({a})", f"(float)({b})"
        return f"({a} {_CMP[e.op]} {b})"

    # ------------------------------------------------------------------ intrinsics
    def call_syncthreads(self, e: Call, args) -> str:
        return self.barrier

    def call_copy_vec(self, e: Call, args) -> str:
        n = int(e.attrs["bytes"])
        if n not in _VEC_BYTES:
            raise InternalError(f"copy_vec of {n} bytes; supported: {_VEC_BYTES}")
        return f"tw::copy_vec<{n}>({args[0]}, {args[1]})"

    def call_store_vec(self, e: Call, args) -> str:
        return f"tw::store_vec<{c_type(e.args[1].dtype)}>({', '.join(args)})"

    def call_cp_async(self, e: Call, args) -> str:
        n = int(e.attrs["bytes"])
        if n not in _CP_ASYNC_BYTES:
            raise InternalError(f"cp_async of {n} bytes; supported: {_CP_ASYNC_BYTES}")
        if len(args) < 3 or (isinstance(e.args[2], Const) and e.args[2].value >= n):
            return f"tw::cp_async<{n}>({args[0]}, {args[1]})"
        return f"tw::cp_async<{n}>({args[0]}, {args[1]}, (int32_t)({args[2]}))"

    def call_cp_async_commit(self, e: Call, args) -> str:
        return "tw::cp_async_commit()"

    def call_cp_async_wait(self, e: Call, args) -> str:
        return f"tw::cp_async_wait<{int(e.attrs.get('n', 0))}>()"

    def call_ldmatrix(self, e: Call, args) -> str:
        num = int(e.attrs["num"])
        if num not in (1, 2, 4):
            raise InternalError(f"ldmatrix with num={num}; supported: 1, 2, 4")
        trans = "true" if e.attrs.get("trans", False) else "false"
        return f"tw::ldmatrix_x{num}<{trans}>({args[0]}, {args[1]})"

    def call_mma_sync(self, e: Call, args) -> str:
        a = e.attrs
        v = mma_variant(a["shape"], a["a_dtype"], a["b_dtype"], a["c_dtype"])
        return f"{v.function}({args[0]}, {args[1]}, {args[2]})"

    def _shfl(self, e: Call, args) -> str:
        width = int(e.attrs.get("width", 32))
        if width < 1 or width > self.warp_size or width & (width - 1):
            raise CompileError(f"{self.func.name}: a shuffle ({e.name}) of width {width}; on this target the width is "
                               f"a power of two up to {self.warp_size} (the lanes of a {self.language} warp)")
        dt = e.args[0].dtype
        if dt.name in _SHFL_NATIVE:
            # CUDA's own overloads take these types: print the intrinsic itself (full warp)
            return f"{_SHFL_NATIVE_NAMES[e.name]}(0xffffffffu, {args[0]}, {args[1]}, {width})"
        return f"tw::{e.name}({args[0]}, {args[1]}, {width})"

    call_shfl_xor = call_shfl_down = call_shfl_up = call_shfl_idx = _shfl

    def call_syncwarp(self, e: Call, args) -> str:
        return self.warp_barrier

    # -- warp and block votes (language/warp_vote.py): full-warp masks, CUDA's intrinsics
    def call_vote_any(self, e: Call, args) -> str:
        return f"(__any_sync(0xffffffffu, ({args[0]}) != 0) ? 1 : 0)"

    def call_vote_all(self, e: Call, args) -> str:
        return f"(__all_sync(0xffffffffu, ({args[0]}) != 0) ? 1 : 0)"

    def call_vote_ballot(self, e: Call, args) -> str:
        return f"((uint64_t)__ballot_sync(0xffffffffu, ({args[0]}) != 0))"

    def call_activemask(self, e: Call, args) -> str:
        return "((uint64_t)__activemask())"

    def call_match_any(self, e: Call, args) -> str:
        return f"__match_any_sync(0xffffffffu, {args[0]})"

    def call_match_all(self, e: Call, args) -> str:
        return f"([&] {{ int tw_pred_; return __match_all_sync(0xffffffffu, {args[0]}, &tw_pred_); }}())"

    def call_syncthreads_count(self, e: Call, args) -> str:
        return f"__syncthreads_count(({args[0]}) != 0)"

    def call_syncthreads_and(self, e: Call, args) -> str:
        return f"(__syncthreads_and(({args[0]}) != 0) ? 1 : 0)"

    def call_syncthreads_or(self, e: Call, args) -> str:
        return f"(__syncthreads_or(({args[0]}) != 0) ? 1 : 0)"

    # -- T.rng_* (language/rng.py; Philox4x32-10 in backend/include/tw_philox.h, curand's MRG32k3a
    # and XORWOW in tw_curand.h, included by render() when a kernel uses them)
    @staticmethod
    def _rng_prefix(e: Call) -> str:
        return _RNG_PREFIX.get(e.attrs.get("generator"), "rng")

    def call_rng_init(self, e: Call, args) -> str:
        return f"tw::{self._rng_prefix(e)}_init((uint32_t*){args[0]}, {args[1]}, {args[2]}, {args[3]})"

    def call_rng_rand(self, e: Call, args) -> str:
        return f"tw::{self._rng_prefix(e)}_rand((uint32_t*){args[0]})"

    def call_rng_rand_float(self, e: Call, args) -> str:
        kind = {"uniform": "rand", "normal": "normal"}[e.attrs.get("dist", "uniform")]
        return f"tw::{self._rng_prefix(e)}_{kind}_{'float' if e.dtype.bits == 32 else 'double'}((uint32_t*){args[0]})"

    # -- beyond one block (language/launch_sync.py, transform/launch_sync.py)
    def call_sync_grid(self, e: Call, args) -> str:
        # tw_cuda.h's barrier (cooperative_groups' needs libcu++ headers NVRTC's wheel lacks);
        # needs a cooperative launch (the launcher makes one for kernels marked "launch_sync")
        return "tw::grid_sync()"

    def call_pdl_trigger(self, e: Call, args) -> str:
        # cudaTriggerProgrammaticLaunchCompletion() is this instruction (sm_90 device runtime header)
        return 'asm volatile("griddepcontrol.launch_dependents;" ::: "memory")'

    def call_pdl_sync(self, e: Call, args) -> str:
        # cudaGridDependencySynchronize() is this instruction
        return 'asm volatile("griddepcontrol.wait;" ::: "memory")'

    # -- Hopper: mbarriers, TMA, wgmma (tw_cuda.h, "Hopper"; docs/THREAD_IR.md)
    def call_mbarrier_init(self, e: Call, args) -> str:
        return f"tw::mbarrier_init({args[0]}, (uint32_t)({args[1]}))"

    def call_mbarrier_arrive(self, e: Call, args) -> str:
        return f"tw::mbarrier_arrive({args[0]})"

    def call_cp_async_mbarrier_arrive(self, e: Call, args) -> str:
        return f"tw::cp_async_mbarrier_arrive{'_noinc' if e.attrs.get('noinc') else ''}({args[0]})"

    def call_mbarrier_arrive_expect_tx(self, e: Call, args) -> str:
        return f"tw::mbarrier_arrive_expect_tx({args[0]}, (uint32_t)({args[1]}))"

    def call_mbarrier_expect_tx(self, e: Call, args) -> str:
        return f"tw::mbarrier_expect_tx({args[0]}, (uint32_t)({args[1]}))"

    def call_mbarrier_wait(self, e: Call, args) -> str:
        return f"tw::mbarrier_wait({args[0]}, (uint32_t)({args[1]}))"

    def call_named_barrier(self, e: Call, args) -> str:
        return f"tw::named_barrier((uint32_t)({args[0]}), (uint32_t)({args[1]}))"

    def call_named_barrier_arrive(self, e: Call, args) -> str:
        return f"tw::named_barrier_arrive((uint32_t)({args[0]}), (uint32_t)({args[1]}))"

    def call_setmaxnreg(self, e: Call, args) -> str:
        n = int(e.attrs["count"])
        if not 24 <= n <= 256 or n % 8:
            raise InternalError(f"setmaxnreg with {n} registers; the ISA allows multiples of 8 from 24 to 256")
        return f"tw::setmaxnreg_{'inc' if e.attrs.get('inc') else 'dec'}<{n}>()"

    def call_elect_one(self, e: Call, args) -> str:
        return "tw::elect_one()"

    def call_fence_barrier_init(self, e: Call, args) -> str:
        return "tw::fence_barrier_init()"

    def call_fence_proxy_async(self, e: Call, args) -> str:
        return "tw::fence_proxy_async()"

    def _coords(self, e: Call, m: TensorMap, coords: list[str]) -> str:
        # the IR lists coordinates outermost first, like the buffer's shape; PTX innermost first
        if len(coords) != m.rank:
            raise InternalError(f"{e.name} with {len(coords)} coordinates for the rank-{m.rank} tensor map {m.name}")
        return ", ".join(f"(int32_t)({c})" for c in reversed(coords))

    def call_tma_load(self, e: Call, args) -> str:
        c, m = self._map(e)
        return f"tw::tma_load_{m.rank}d(&{c}, {args[0]}, {args[1]}, {self._coords(e, m, args[2:])})"

    def call_tma_store(self, e: Call, args) -> str:
        c, m = self._map(e)
        return f"tw::tma_store_{m.rank}d(&{c}, {args[0]}, {self._coords(e, m, args[1:])})"

    def call_tma_store_commit(self, e: Call, args) -> str:
        return "tw::tma_store_commit()"

    def call_tma_store_wait(self, e: Call, args) -> str:
        return f"tw::tma_store_wait<{int(e.attrs.get('n', 0))}>()"

    def call_wgmma_fence(self, e: Call, args) -> str:
        return "tw::wgmma_fence()"

    def call_wgmma_commit(self, e: Call, args) -> str:
        return "tw::wgmma_commit()"

    def call_wgmma_wait(self, e: Call, args) -> str:
        n = int(e.attrs.get("n", 0))
        wait = f"tw::wgmma_wait<{n}>()"
        if not self.wgmma_accumulators:
            return wait
        # A wgmma's accumulator registers are asm outputs to NVVM, ready at the wgmma: it would
        # move reads of them above the wait (seen: a mov of one between the wgmma and its
        # commit). Pinning them after the wait keeps later accesses below it. A wait<n> that
        # leaves groups in flight (T.gemm's wg_wait=n) pins them too, as CUTLASS fences its
        # accumulators after warpgroup_wait<N>: the accumulators stay listed until a wait<0>.
        pins = [f"tw::wgmma_fence_operand<{regs}>({acc})" for acc, regs in self.wgmma_accumulators.items()]
        if not n:
            self.wgmma_accumulators = {}
        return "; ".join([wait] + pins)  # statements (a wait is one): the renderer adds the last ';'

    def call_wgmma_desc(self, e: Call, args) -> str:
        a = e.attrs
        swizzle, lbo, sbo = int(a.get("swizzle", 0)), int(a.get("lbo", 0)), int(a.get("sbo", 0))
        if swizzle not in (0, 32, 64, 128):
            raise InternalError(f"wgmma_desc with swizzle {swizzle}; supported: 0, 32, 64, 128")
        for what, v in (("lbo", lbo), ("sbo", sbo)):
            if v % 16 or not 0 <= v < 1 << 18:
                raise InternalError(f"wgmma_desc {what} = {v}: a multiple of 16 bytes below 256 KiB")
        src = e.args[0]
        load = src.args[0] if isinstance(src, Call) and src.name == "address_of" else None
        if isinstance(load, BufferLoad) and load.buffer.is_shared and not is_scalar_var(load.buffer):
            # the tile's descriptor plus the operand's offset (a multiple of 16 bytes, as wgmma
            # requires): the tile's part is loop-invariant, so a descriptor costs one add
            b = load.buffer
            off = self.offset(b, load.indices)
            fn = "wgmma_desc_lo" if any(self._per_thread(i) for i in load.indices) else "wgmma_desc"
            return f"tw::{fn}<{swizzle}, {lbo}, {sbo}>({self.buf(b)}, (int32_t)(({off}) * {b.dtype.bytes}))"
        return f"tw::wgmma_desc<{swizzle}, {lbo}, {sbo}>({args[0]})"

    def call_wgmma(self, e: Call, args) -> str:
        a = e.attrs
        v = wgmma_variant(a["shape"], a["a_dtype"], a["b_dtype"], a["c_dtype"], a.get("a_regs", False))
        ta, tb = int(a.get("trans_a", 0)), int(a.get("trans_b", 0))
        if ta not in (0, 1) or tb not in (0, 1):
            raise InternalError(f"wgmma with trans_a={ta}, trans_b={tb}; each is 0 or 1")
        if v.a_regs and ta:
            raise InternalError("wgmma with A in registers cannot transpose A")
        call = f"({args[0]}, {args[1]}, {args[2]}, (int32_t)({args[3]}))"
        self.wgmma_accumulators[args[0]] = v.d_regs
        if v.transposable:
            return f"{v.function}<{ta}, {tb}>{call}"
        if ta or tb:
            raise InternalError(f"wgmma {v.a} x {v.b} reads K-major operands only (trans_a={ta}, trans_b={tb})")
        return v.function + call

    def call_print(self, e: Call, args) -> str:
        """T.print (see tileop/print.py): args are bx, by, bz then the value, or the tile's
        address, extents, strides and starts; the strings travel in attrs."""
        a = e.attrs
        head = [c_string(a["msg"]), c_string(a["label"]), *[f"(long long)({x})" for x in args[:3]]]
        if a["kind"] == "msg":
            return f"tw::print_msg({', '.join([head[0], *head[2:]])})"
        if a["kind"] == "scalar":
            return f"tw::print_scalar({', '.join(head + args[3:])})"
        n = int(a["ndim"])
        return f"tw::print_tile<{n}>({', '.join(head + args[3:])})"


_CMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


def _nonneg(e: Expr, ranges: dict) -> bool:
    """Whether an integer expression is provably >= 0 (bound() knows no bitwise or / xor: of
    two non-negative operands those are non-negative too)."""
    if isinstance(e, BinOp) and e.op in ("bitxor", "bitor"):
        return _nonneg(e.a, ranges) and _nonneg(e.b, ranges)
    if isinstance(e, BinOp) and e.op in ("mul", "add") and not isinstance(e.a, Const) and not isinstance(e.b, Const):
        return _nonneg(e.a, ranges) and _nonneg(e.b, ranges)
    if isinstance(e, BinOp) and e.op == "mul" and isinstance(e.b, Const) and e.b.value >= 0:
        return _nonneg(e.a, ranges)
    lo = bound(e, ranges)[0]
    return lo is not None and lo >= 0


def render_cuda(func: PrimFunc) -> CudaModule:
    """Render a thread-level PrimFunc; see CudaModule for what comes back."""
    return CudaRenderer(func).render()


def _uses_generator(body, generator: str) -> bool:
    """Whether a T.rng_init under body chose this curand generator."""
    hits = []
    walk(body, lambda n: hits.append(n) if isinstance(n, Call) and n.name == "rng_init"
         and n.attrs.get("generator") == generator else None)
    return bool(hits)
