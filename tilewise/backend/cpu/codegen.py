"""Renders lowered loop IR to C++ for the CPU: one OpenMP task per block, tiles in a per-thread
workspace, a C entry point `tw_entry(void** args, const int64_t* dims)`."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...emulator.errors import kernel_name
from ...errors import CompileError
from ...ir import extern_math
from ...ir.buffer import Buffer
from ...ir.dtype import as_dtype
from ...ir.expr import BinOp, BufferLoad, Call, Const, logical_and
from ...ir.stmt import Allocate, BufferStore, For, IfThenElse, Kernel, PrimFunc
from ...ir.visitor import Visitor, uses_var, walk
from ...transform import check_tile_bounds, gemm_bands, privatise_atomics
from ..c_style import CStyleRenderer, c_string, c_type, is_scalar_var
from . import block_groups, block_rows
from .build import USER_CODE

ENTRY = "tw_entry"
BLOCK_RUNS = 32  # OpenMP hands each thread at least this many runs of consecutive blocks
# C++ structs with `bits`
_STORAGE_STRUCTS = ("float16", "bfloat16", "float8_e4m3", "float8_e5m2", "float4_e2m1fn", "float6_e2m3fn",
                    "float6_e3m2fn", "float8_e8m0fnu", "float8_e4m3fnuz", "float8_e5m2fnuz", "int4", "uint4")
# The same kernel with one C argument per pointer and per dynamic dimension: ctypes passes plain
# integers several times faster than it builds the two arrays tw_entry takes.
DIRECT_ENTRY = "tw_entry_direct"
EMPTY_GRID_ENTRY = "tw_take_empty_grid_error"  # the message of a launch with 0 blocks (tw_cpu.h)
BOUNDS_ENTRY = "tw_take_bounds_error"  # the first failed tile bounds check (transform/check_tile_bounds.py)
STACK_LIMIT_BYTES = 256  # small locals live on the stack, where the compiler keeps them in registers
# Tiles are arrays on the thread's stack up to this many bytes per kernel (smallest first), the
# rest in a heap workspace. Distinct arrays are distinct objects to GCC's alias analysis, so a
# loop storing into one tile reloads nothing from another (a load that GCC must keep inside the
# loop also stops vectorisation). Well below the 2 MiB that thread stacks have at the least.
STACK_TILE_BYTES = 512 * 1024


@dataclass
class CpuModule:
    source: str
    entry: str
    params: list  # Buffer | Var, in order
    dynamic_vars: list = field(default_factory=list)


def _is_stack(b: Buffer) -> bool:
    shape = b.static_shape()
    return b.is_local and shape is not None and b.dtype.bytes * math.prod(shape) <= STACK_LIMIT_BYTES



class _Allocs(Visitor):
    def __init__(self):
        self.allocs: list[Buffer] = []

    def visit_Allocate(self, s: Allocate):
        b = s.buffer
        if b.base is None and not _is_stack(b):
            self.allocs.append(b)
        self.generic_visit(s)


class CpuRenderer(CStyleRenderer):
    def __init__(self, func: PrimFunc):
        super().__init__()
        self.func = func
        self._kernels_seen = 0  # stmt_Kernel numbers the kernels as the CUDA source names them
        self.ws_offset: dict[int, int] = {}
        self.stack_tiles: set[int] = set()
        self.band_tiles: dict[int, tuple[int, int]] = {}  # uid -> (workspace offset, bytes per copy)

    def render(self) -> CpuModule:
        f = self.func
        self.line('#include "tw_cpu.h"')
        self.line('#include "tw_gemm.h"')
        self.line('#include "tw_pack.h"')
        self.line("#include <omp.h>")
        if self.imported_sources(f) or _has_extern(f):
            self.line(USER_CODE)  # build.py: a compile failure is then the user's code's
        for text in self.imported_sources(f):  # T.import_source
            self.line("")
            self.lines.extend(text.splitlines())
        self.line("")
        self.line(f"// prim_func {f.name}")  # which kernel this is: the entry points have fixed names
        self.line(f'extern "C" int32_t {ENTRY}(void** tw_args, const int64_t* tw_dims) {{')
        self.depth += 1
        dyn = f.dynamic_vars()
        for k, v in enumerate(dyn):
            self.line(f"const {c_type(v.dtype)} {self.var(v)} = ({c_type(v.dtype)})tw_dims[{k}];")
        for i, p in enumerate(f.params):
            if isinstance(p, Buffer):
                t = c_type(p.dtype)
                # T.annotate_restrict_buffers: parameters that may alias are not __restrict__
                restrict = "" if p.name in f.attrs.get("tilewise_non_restrict", ()) else " __restrict__"
                self.line(f"{t}*{restrict} {self.buf(p)} = ({t}*)tw_args[{i}];")
            else:
                t = c_type(p.dtype)
                self.line(f"const {t} {self.var(p)} = *(const {t}*)tw_args[{i}];")
        self.stmt(f.body)
        self.line("return 0;")
        self.depth -= 1
        self.line("}")
        self._direct_entry(len(f.params), len(dyn))
        if f.attrs.get(check_tile_bounds.ATTR):
            self._bounds_entry()
        self.line("")
        self.line(f'extern "C" const char* {EMPTY_GRID_ENTRY}() {{ return tw::empty_grid_msg; }}')
        return CpuModule("\n".join(self.lines) + "\n", ENTRY, list(f.params), dyn)

    def _direct_entry(self, n_params: int, n_dims: int):
        params = [f"void* tw_a{i}" for i in range(n_params)] + [f"int64_t tw_d{i}" for i in range(n_dims)]
        self.line("")
        self.line(f'extern "C" int32_t {DIRECT_ENTRY}({", ".join(params)}) {{')
        ptrs = ", ".join(f"tw_a{i}" for i in range(n_params)) or "nullptr"
        dims = ", ".join(f"tw_d{i}" for i in range(n_dims)) or "0"
        self.line(f"  void* tw_args[] = {{{ptrs}}};")
        self.line(f"  const int64_t tw_dims[] = {{{dims}}};")
        self.line(f"  return {ENTRY}(tw_args, tw_dims);")
        self.line("}")

    def _bounds_entry(self):
        """The first failed tile bounds check of the latest call (message, indices), cleared."""
        self.line("")
        self.line(f'extern "C" const char* {BOUNDS_ENTRY}(int64_t* idx, int32_t* ndim) {{')
        self.line("  *ndim = tw::bounds_ndim;")
        self.line("  for (int32_t k = 0; k < tw::bounds_ndim; ++k) idx[k] = tw::bounds_idx[k];")
        self.line("  return tw::bounds_msg.exchange(nullptr);")
        self.line("}")

    def call_call_extern(self, e, args) -> str:
        """A CUDA math function (ir/extern_math.py) as the operation it is, since the CPU has no
        CUDA math library; any other name is called as written (a C function, or one of T.import_source)."""
        if e.attrs.get("name") in extern_math.NO_EFFECT:
            return "((void)0)"
        value = extern_math.as_ir(e)
        return self.expr(value) if value is not None else super().call_call_extern(e, args)

    # ------------------------------------------------------------------ kernel
    def stmt_Kernel(self, k: Kernel):
        if k.attrs.get("uses_thread_binding"):
            raise CompileError(
                "T.get_thread_binding is not supported on the CPU target: a CPU block runs as one "
                "thread; write the kernel with tile operators and T.Parallel instead",
                k.span,
            )
        allocs = _Allocs()
        allocs.visit(k.body)
        bands = k.attrs.get(gemm_bands.ATTR)
        rows = block_rows.plan(k) if bands is None else None
        groups, group = (block_groups.plan(k), 1) if rows is None and bands is None else (None, 1)
        if groups is not None:
            # one copy of a grouped tile per block of the group; all tiles must then fit the stack
            def tile_bytes(b, g):
                return g * ((b.dtype.bytes * math.prod(b.static_shape()) + 63) // 64 * 64)

            group = next((g for g in (block_groups.GROUP, 2) if sum(
                tile_bytes(b, g if b.uid in groups.grouped else 1) for b in allocs.allocs) <= STACK_TILE_BYTES), 1)
            if group == 1:
                groups = None
        total = 0
        on_stack = 0
        if bands is not None:
            total = self._band_workspace(bands)
        # with bands every tile the kernel names is a band tile (the rest are never declared)
        for b in sorted((b for b in allocs.allocs if bands is None), key=lambda b: b.dtype.bytes * math.prod(b.static_shape())):
            size = (b.dtype.bytes * math.prod(b.static_shape()) + 63) // 64 * 64
            if groups is not None and b.uid in groups.grouped:
                size *= group
            if on_stack + size <= STACK_TILE_BYTES:
                self.stack_tiles.add(b.uid)
                on_stack += size
            else:
                self.ws_offset[b.uid] = total
                total += size
        grid = [self.expr(g) for g in k.grid]
        self.line("{")
        self.depth += 1
        gnames = []
        for i, g in enumerate(grid):
            n = self.names.fresh(f"tw_grid{i}")
            gnames.append(n)
            self.line(f"const int64_t {n} = {g};")
        # TileLang's runtime refuses a grid of no blocks (emulator/errors.py EmptyGridError)
        index = self._kernels_seen
        self._kernels_seen += 1
        name = kernel_name(self.func.name, index).replace("\\", "").replace('"', "")
        dims = ", ".join(gnames + ["1"] * (3 - len(gnames)))
        if gnames:
            self.line(f"if ({' || '.join(f'{n} <= 0' for n in gnames)}) return tw::empty_grid(\"{name}\", {dims});")
        nblocks = " * ".join(gnames)
        self.line("int32_t tw_status = 0;")
        # Blocks are handed out dynamically (their costs differ: causal attention, ragged edges,
        # other processes on the cores), in runs of consecutive blocks when there are many: at
        # least BLOCK_RUNS runs per thread keep the balance, and neighbouring blocks share
        # cache lines and DRAM pages while one hand-out costs an atomic instead of one per block.
        chunk = self.names.fresh("tw_chunk")
        self.line(f"const int64_t {chunk} = tw::block_run({nblocks}, {BLOCK_RUNS});")
        priv = k.attrs.get(privatise_atomics.ATTR)
        copies = self._private_copies_before(priv) if priv is not None else []
        self.line(f"#pragma omp parallel if({nblocks} > 1)")
        self.line("{")
        self.depth += 1
        if total:
            self.line(f"char* tw_ws = (char*)tw::alloc_workspace({total});")
            self.line("if (tw_ws == nullptr) {")
            self.line("  #pragma omp atomic write")
            self.line("  tw_status = 1;")
            self.line("}")
        if priv is not None:
            self._private_copies_start(priv, copies)
        if bands is not None:
            self._gemm_bands(k, bands, gnames, total)
        elif rows is not None:
            self._block_rows(k, rows, gnames, nblocks, chunk, total)
        elif groups is not None:
            self._block_groups(k, groups, group, gnames)
        else:
            self.line(f"#pragma omp for schedule(dynamic, {chunk})")
            self.line(f"for (int64_t tw_blk = 0; tw_blk < {nblocks}; ++tw_blk) {{")
            self.depth += 1
            if total:
                self.line("if (tw_ws == nullptr) continue;")
            self._block_indices(k, gnames)
            self.stmt(k.body)
            self.depth -= 1
            self.line("}")
        if priv is not None:
            self._private_copies_reduce(priv, copies)
        if total:
            self.line("free(tw_ws);")
        self.depth -= 1
        self.line("}")
        for arr in copies:
            self.line(f"free({arr});")
        self.line("if (tw_status) return tw_status;")
        if self.func.attrs.get(check_tile_bounds.ATTR):
            self.line("if (tw::bounds_msg.load()) return tw::BOUNDS_STATUS;")
        self.depth -= 1
        self.line("}")

    # ------------------------------------------------------------------ private atomics
    # Tensors the kernel only atomically adds into (transform/privatise_atomics.py): each thread
    # adds into its own zeroed copy, and the copies are added into the tensor after the blocks.
    def _private_copies_before(self, priv) -> list[str]:
        """The shared arrays of per-thread copy pointers, one per tensor."""
        self.line("const int tw_pmax = omp_get_max_threads();")
        arrays = []
        for b, _ in priv.pairs:
            t = c_type(b.dtype)
            arr = self.names.fresh(f"tw_copies_{self.buf(b)}")
            self.line(f"{t}** {arr} = ({t}**)calloc(tw_pmax, sizeof({t}*));")
            arrays.append(arr)
        return arrays

    def _elements(self, b: Buffer) -> str:
        return " * ".join(f"(int64_t)({self.expr(d)})" for d in b.shape) or "1"

    def _private_copies_start(self, priv, arrays: list[str]):
        """Each thread allocates its copies if they pay and fit (else it keeps the atomics)."""
        ok = self.var(priv.ok)
        elements = " + ".join(f"({self._elements(b)})" for b, _ in priv.pairs)
        size = " + ".join(f"({self._elements(b)}) * {b.dtype.bytes}" for b, _ in priv.pairs)
        have = " && ".join(f"{arr} != nullptr" for arr in arrays)
        updates = priv.updates if priv.updates is not None else -1
        self.line(f"bool {ok} = {have} && tw::private_atomics_worthwhile({updates}LL, omp_get_num_threads(), "
                  f"{elements}, {size});")
        for b, p in priv.pairs:
            t = c_type(b.dtype)
            self.line(f"{t}* __restrict__ {self.buf(p)} = {ok} ? ({t}*)calloc({self._elements(b)}, sizeof({t})) "
                      ": nullptr;")
        self.line(f"if ({ok} && !({' && '.join(f'{self.buf(p)} != nullptr' for _, p in priv.pairs)})) {{")
        for _, p in priv.pairs:
            self.line(f"  free({self.buf(p)});")
            self.line(f"  {self.buf(p)} = nullptr;")
        self.line(f"  {ok} = false;")
        self.line("}")
        self.line(f"if ({ok}) {{")
        for arr, (_, p) in zip(arrays, priv.pairs):
            self.line(f"  {arr}[omp_get_thread_num()] = {self.buf(p)};")
        self.line("}")

    def _private_copies_reduce(self, priv, arrays: list[str]):
        """After the blocks (the barrier that ends their loop): the copies added into the tensors,
        in chunks of 4096 elements shared out among the threads, then freed."""
        for arr, (b, p) in zip(arrays, priv.pairs):
            t = c_type(b.dtype)
            n = self.names.fresh("tw_pn")
            self.line(f"const int64_t {n} = {self._elements(b)};")
            self.line(f"if ({arr} != nullptr) {{")
            self.line("  #pragma omp for schedule(static)")
            self.line(f"  for (int64_t tw_c = 0; tw_c < ({n} + 4095) / 4096; ++tw_c) {{")
            self.line(f"    const int64_t tw_lo = tw_c * 4096, tw_hi = std::min({n}, tw_lo + 4096);")
            self.line("    for (int tw_t = 0; tw_t < omp_get_num_threads(); ++tw_t) {")
            self.line(f"      const {t}* __restrict__ tw_src = {arr}[tw_t];")
            self.line("      if (tw_src == nullptr) continue;")
            self.line("      #pragma GCC ivdep")
            self.line(f"      for (int64_t tw_i = tw_lo; tw_i < tw_hi; ++tw_i) {self.buf(b)}[tw_i] += tw_src[tw_i];")
            self.line("    }")
            self.line("  }")
            self.line("}")
            self.line(f"free({self.buf(p)});")

    def _block_indices(self, k: Kernel, gnames: list[str]):
        rem = "tw_blk"
        for i, (v, n) in enumerate(zip(k.block_vars, gnames)):
            if i == len(gnames) - 1:
                self.line(f"const int32_t {self.var(v)} = (int32_t)({rem});")
            else:
                self.line(f"const int32_t {self.var(v)} = (int32_t)({rem} % {n});")
                rem = f"({rem} / {n})"

    def _block_rows(self, k: Kernel, rows, gnames, nblocks: str, chunk: str, total: int):
        """Each run of consecutive blocks, split at changes of the slower block indices into
        groups, walks the nest's outer loops once with the group's blocks inside (block_rows.py)."""
        self.line(f"const int64_t tw_nruns = ({nblocks} + {chunk} - 1) / {chunk};")
        self.line("#pragma omp for schedule(dynamic, 1)")
        self.line("for (int64_t tw_run = 0; tw_run < tw_nruns; ++tw_run) {")
        self.depth += 1
        if total:
            self.line("if (tw_ws == nullptr) continue;")
        self.line(f"const int64_t tw_end = std::min((tw_run + 1) * {chunk}, (int64_t)({nblocks}));")
        self.line(f"for (int64_t tw_first = tw_run * {chunk}; tw_first < tw_end;) {{")
        self.depth += 1
        g0 = gnames[0]
        self.line(f"const int64_t tw_last = std::min((tw_first / {g0} + 1) * {g0}, tw_end);")
        for a in rows.allocs:
            self.stmt(a)
        for f in rows.outer:
            v = self.var(f.var)
            self.line(f"for ({c_type(f.var.dtype)} {v} = 0; {v} < {f.extent.value}; ++{v}) {{")
            self.depth += 1
        self.line("for (int64_t tw_blk = tw_first; tw_blk < tw_last; ++tw_blk) {")
        self.depth += 1
        self._block_indices(k, gnames)
        for let in rows.lets:
            self.stmt(let)
        self.stmt(rows.inner)
        self.depth -= 1
        self.line("}")
        for _ in rows.outer:
            self.depth -= 1
            self.line("}")
        self.line("tw_first = tw_last;")
        self.depth -= 1
        self.line("}")
        self.depth -= 1
        self.line("}")

    def _block_groups(self, k: Kernel, groups, group: int, gnames: list[str]):
        """Groups of up to `group` consecutive blocks of a grid row run in lock-step: the
        statements the plan shares run once per group, the others once per block, each block
        with its own copy of the tiles it owns (block_groups.py)."""
        axis = groups.axis
        g0 = gnames[axis]
        others = [(v, n) for i, (v, n) in enumerate(zip(k.block_vars, gnames)) if i != axis]
        rest = " * ".join(f"({n})" for _, n in others) or "1"
        # at most `group` blocks per group, fewer when the grid is small: every thread of the
        # team should get two groups or more, or grouping would leave a core idle
        self.line(f"const int64_t tw_gsz = std::max((int64_t)1, std::min((int64_t){group}, "
                  f"(int64_t)({' * '.join(gnames)}) / (2 * (int64_t)omp_get_num_threads())));")
        self.line(f"const int64_t tw_gpr = ({g0} + tw_gsz - 1) / tw_gsz;")
        self.line(f"const int64_t tw_ngroups = tw_gpr * {rest};")
        self.line(f"const int64_t tw_gchunk = tw::block_run(tw_ngroups, {BLOCK_RUNS});")
        self.line("#pragma omp for schedule(dynamic, tw_gchunk)")
        self.line("for (int64_t tw_grp = 0; tw_grp < tw_ngroups; ++tw_grp) {")
        self.depth += 1
        # Consecutive groups go down a band of `group` values of the grouped index (the other
        # indices vary first), so that the tiles that depend on the grouped index only (a GEMM's
        # B panels: 2 MiB each at 4096 x 4096) stay in the last-level cache for the whole band,
        # both threads working on it, while the shared ones (A) are read once per group.
        self.line(f"const int64_t tw_x0 = (tw_grp / ({rest})) * tw_gsz;")
        self.line(f"const int64_t tw_gn = std::min(tw_gsz, (int64_t)({g0}) - tw_x0);")
        rem = f"(tw_grp % ({rest}))"
        for i, (v, n) in enumerate(others):
            if i == len(others) - 1:
                self.line(f"const int32_t {self.var(v)} = (int32_t)({rem});")
            else:
                self.line(f"const int32_t {self.var(v)} = (int32_t)({rem} % {n});")
                rem = f"({rem} / {n})"
        self._group_axis = axis
        self._group_scope = []  # grouped tiles declared so far: (buffer, group array name, elements)
        self._group_parts(k, groups.parts, group)
        self.depth -= 1
        self.line("}")

    def _group_parts(self, k: Kernel, parts: list, group: int):
        declared = len(self._group_scope)
        pending: list = []

        def flush():
            if not pending:
                return
            self.line("for (int64_t tw_g = 0; tw_g < tw_gn; ++tw_g) {")
            self.depth += 1
            self.line(f"const int32_t {self.var(k.block_vars[self._group_axis])} = (int32_t)(tw_x0 + tw_g);")
            for b, arr, n in self._group_scope:
                t = c_type(b.dtype)
                self.line(f"{t}* __restrict__ {self.buf(b)} = {arr} + tw_g * {n};")
            for st in pending:
                self.stmt(st)
            self.depth -= 1
            self.line("}")
            pending.clear()

        for p in parts:
            if p.loop is not None:
                flush()
                f = p.loop
                t, v = c_type(f.var.dtype), self.var(f.var)
                start = self.expr(f.start)
                end = self.names.fresh(v + "_end")
                self.line(f"for ({t} {v} = {start}, {end} = {start} + {self.expr(f.extent)}; {v} < {end}; ++{v}) {{")
                if isinstance(f.extent, Const) and isinstance(f.start, Const):
                    self.ranges[f.var] = (f.start.value, f.start.value + f.extent.value - 1)
                self.depth += 1
                self._group_parts(k, p.parts, group)
                self.depth -= 1
                self.ranges.pop(f.var, None)
                self.line("}")
            elif isinstance(p.stmt, Allocate) and p.per_block:
                flush()
                b = p.stmt.buffer
                n = math.prod(b.static_shape())
                stride = (n * b.dtype.bytes + 63) // 64 * 64 // b.dtype.bytes  # each copy 64-byte aligned
                arr = self.names.fresh(self.buf(b) + "_grp")
                self.line(f"alignas(64) {c_type(b.dtype)} {arr}[{group * stride}];")
                self._group_scope.append((b, arr, stride))
            elif p.per_block:
                pending.append(p.stmt)
            else:
                flush()
                self.stmt(p.stmt)
        flush()
        del self._group_scope[declared:]

    # ------------------------------------------------------------------ GEMM bands
    def _band_workspace(self, bands) -> int:
        """Workspace offsets of the band's tile copies (transform/gemm_bands.py): for each column
        tile G running copies and G x KC panel slots, for each row tile R copies, for each block
        tile R x G; each copy 64-byte aligned. Returns the bytes."""
        total = 0
        # with one step per chunk the running tile is the step's (no slots)
        slots = bands.steps + 1 if bands.steps > 1 else 1
        for tiles, copies in ((bands.col_tiles, bands.cols * slots), (bands.row_tiles, bands.rows),
                              (bands.block_tiles, bands.rows * bands.cols)):
            for b in tiles:
                size = (b.dtype.bytes * math.prod(b.static_shape()) + 63) // 64 * 64
                self.band_tiles[b.uid] = (total, size)
                total += size * copies
        return total

    def _band_pointers(self, tiles: list, index: str):
        for b in tiles:
            t = c_type(b.dtype)
            off, size = self.band_tiles[b.uid]
            self.line(f"{t}* __restrict__ {self.buf(b)} = ({t}*)(tw_ws + {off} + ({index}) * {size});")

    def _gemm_bands(self, k: Kernel, bands, gnames: list[str], total: int):
        """Bands of G column blocks by R row blocks, one per OpenMP hand-out (gemm_bands.py).
        K runs in chunks of KC steps. Per chunk, the column statements (B's copies) run for each
        band column into its running tile, which after every step is copied into that step's
        panel slot (the tile as the block would see it then); then each row's statements (A's
        copies) run once per step for the row's G blocks, whose GEMMs read the slots."""
        bx, by = k.block_vars
        G, R, KC = bands.cols, bands.rows, bands.steps
        gx, gy = gnames
        xv, yv = self.var(bx), self.var(by)
        self.line(f"const int64_t tw_nbx = ({gx} + {G - 1}) / {G}, tw_nby = ({gy} + {R - 1}) / {R};")
        self.line("#pragma omp for schedule(dynamic, 1)")
        self.line("for (int64_t tw_band = 0; tw_band < tw_nbx * tw_nby; ++tw_band) {")
        self.depth += 1
        if total:
            self.line("if (tw_ws == nullptr) continue;")
        # consecutive bands go down the rows of one column band (the other thread copies the same
        # B columns, from the shared L3)
        self.line(f"const int64_t tw_x0 = (tw_band / tw_nby) * {G}, tw_y0 = (tw_band % tw_nby) * {R};")
        self.line(f"const int64_t tw_gn = std::min((int64_t){G}, (int64_t)({gx}) - tw_x0);")
        self.line(f"const int64_t tw_rn = std::min((int64_t){R}, (int64_t)({gy}) - tw_y0);")
        top = list(k.body.stmts) if hasattr(k.body, "stmts") else [k.body]

        def open_loop(var: str, n: str, bvar: str | None = None, first: str = "0"):
            self.line(f"for (int64_t {var} = 0; {var} < {n}; ++{var}) {{")
            self.depth += 1
            if bvar is not None:
                self.line(f"const int32_t {bvar} = (int32_t)({first} + {var});")

        def close(n: int):
            for _ in range(n):
                self.depth -= 1
                self.line("}")

        def slot(index: str) -> str:  # slot `index` of band column tw_g; slot 0 is the running tile
            return f"tw_g * {KC + 1} + 1 + ({index})" if KC > 1 else "tw_g"

        pending: list = []

        def per_block(stmts: list):
            open_loop("tw_r", "tw_rn", yv, "tw_y0")
            open_loop("tw_g", "tw_gn", xv, "tw_x0")
            self._band_pointers(bands.block_tiles, f"tw_r * {G} + tw_g")
            for st in stmts:
                self.stmt(st)
            close(2)

        for s in top:
            if isinstance(s, Allocate):
                continue  # every tile the kernel names is a band tile, in the workspace
            lp = bands.loops.get(id(s))
            if lp is None:
                pending.append(s)
                continue
            if pending:
                per_block(pending)
                pending = []
            t, v = c_type(s.var.dtype), self.var(s.var)
            start, extent = self.expr(s.start), self.expr(s.extent)
            if isinstance(s.extent, Const) and isinstance(s.start, Const):
                self.ranges[s.var] = (s.start.value, s.start.value + s.extent.value - 1)
            c0, cn = self.names.fresh("tw_k0"), self.names.fresh("tw_kn")
            self.line(f"for (int64_t {c0} = 0; {c0} < ({extent}); {c0} += {KC}) {{")
            self.depth += 1
            self.line(f"const int64_t {cn} = std::min((int64_t){KC}, (int64_t)({extent}) - {c0});")
            # the chunk's panel
            if bands.col_tiles:
                open_loop("tw_g", "tw_gn", xv, "tw_x0")
                self._band_pointers(bands.col_tiles, f"tw_g * {KC + 1}" if KC > 1 else "tw_g")
                self.line(f"for ({t} {v} = {start} + {c0}; {v} < {start} + {c0} + {cn}; ++{v}) {{")
                self.depth += 1
                for st in lp.cols:
                    self.stmt(st)
                for b in bands.col_tiles if KC > 1 else ():
                    _, size = self.band_tiles[b.uid]
                    self.line(f"std::memcpy((char*){self.buf(b)} + ({v} - {start} - {c0} + 1) * {size}, "
                              f"{self.buf(b)}, {size});")
                close(2)
            # the rows
            open_loop("tw_r", "tw_rn", yv, "tw_y0")
            self._band_pointers(bands.row_tiles, "tw_r")
            self.line(f"for ({t} {v} = {start} + {c0}; {v} < {start} + {c0} + {cn}; ++{v}) {{")
            self.depth += 1
            for st in lp.rows:
                self.stmt(st)
            open_loop("tw_g", "tw_gn", xv, "tw_x0")
            self._band_pointers(bands.col_tiles, slot(f"{v} - {start} - {c0}"))
            self._band_pointers(bands.block_tiles, f"tw_r * {G} + tw_g")
            for st in lp.compute:
                self.stmt(st)
            close(3)
            close(1)
            self.ranges.pop(s.var, None)
        if pending:
            per_block(pending)
        self.depth -= 1
        self.line("}")

    def stmt_Allocate(self, s: Allocate):
        b = s.buffer
        t = c_type(b.dtype)
        name = self.buf(b)
        if b.base is not None:
            # a view aliases its base, so it must not be declared __restrict__
            base = f"&{self.buf(b.base)}" if is_scalar_var(b.base) else self.buf(b.base)
            self.line(f"{t}* {name} = ({t}*){base};")
            return
        n = math.prod(b.static_shape())
        if is_scalar_var(b):
            self.line(f"{t} {name}" + (f" = {self.expr(s.init)};" if s.init is not None else ";"))
            return
        if _is_stack(b):
            self.line(f"{t} {name}[{n}];")
        elif b.uid in self.stack_tiles:
            self.line(f"alignas(64) {t} {name}[{n}];")
        else:
            self.line(f"{t}* __restrict__ {name} = ({t}*)(tw_ws + {self.ws_offset[b.uid]});")
        if s.init is not None:
            init = self.expr(s.init)
            if n == 1:
                self.line(f"{name}[0] = {init};")
            else:
                self.line(f"for (int32_t tw_i = 0; tw_i < {n}; ++tw_i) {name}[tw_i] = {init};")

    def stmt_BufferStore(self, s: BufferStore):
        v = s.value
        if isinstance(v, BufferLoad) and v.dtype == s.buffer.dtype and v.dtype.name in _STORAGE_STRUCTS:
            # A copy of a float16/bfloat16/float8 element: GCC does not vectorise assignments of
            # a struct, but does those of its bits.
            dst = self.element(s.buffer, s.indices)
            self.line(f"{dst}.bits = {self.expr(v)}.bits;")
            return
        super().stmt_BufferStore(s)

    # ------------------------------------------------------------------ loops
    def stmt_For(self, f: For):
        # `for j: if (a && b(j)) S` with a not using j (an edge tile's row guard) becomes
        # `if (a) for j: if (b(j)) S`, which saves the test per element and keeps the loop's
        # ivdep (see _mixed_guard)
        body = f.body
        if f.kind in ("parallel", "vectorized") and isinstance(body, IfThenElse) and body.else_body is None \
                and not _has_loop(body, ignore_unrolled=True):
            terms = _conjuncts(body.cond)
            outer = [t for t in terms if not uses_var(t, f.var)]
            if outer and len(outer) < len(terms):
                inner = [t for t in terms if uses_var(t, f.var)]
                loop = f.with_fields(body=IfThenElse(_all(inner), body.then_body, span=body.span))
                return super().stmt_IfThenElse(IfThenElse(_all(outer), loop, span=body.span))
        return super().stmt_For(f)

    def loop_pragmas(self, f: For) -> list[str]:
        # loops that GCC unrolls completely first (split_div_loops makes them) do not count
        innermost = not _has_loop(f.body, ignore_unrolled=True)
        if f.kind in ("parallel", "vectorized") and innermost and not _mixed_guard(f):
            return ["#pragma GCC ivdep"]
        if f.kind == "unroll" and isinstance(f.extent, Const) and f.extent.value <= 64:
            return [f"#pragma GCC unroll {max(1, f.extent.value)}"]
        return []

    # ------------------------------------------------------------------ calls
    def call_copy_vec(self, e, args) -> str:
        """One vector move (T.ldg* / T.stg*, language/global_vector.py): its bytes, copied."""
        return f"std::memcpy({args[0]}, {args[1]}, {int(e.attrs['bytes'])})"

    def call_gemm(self, e, args) -> str:
        a = e.attrs
        flag = {True: "true", False: "false"}
        targs = [a["m"], a["n"], a["k"], flag[a["trans_a"]], flag[a["trans_b"]], a["lda"], a["ldb"], a["ldc"]]
        args = list(args)
        # a float32 tile of values the packing rounds through a narrow type (fuse_gemm_producers.py)
        for i, key in ((0, "round_a"), (1, "round_b")):
            if a.get(key):
                args[i] = f"(const tw::via<{c_type(as_dtype(a[key]))}>*)({args[i]})"
        return f"tw::gemm<{', '.join(str(t) for t in targs)}>({', '.join(args)})"

    def call_copy_transposed(self, e, args) -> str:
        """A transposed GEMM operand's copy (tileop/copy_transposed.py, tw_pack.h)."""
        a = e.attrs
        return f"tw::copy_transposed<{a['rows']}, {a['cols']}, {a['ldd']}>({', '.join(args)})"

    def call_atomic_add_run(self, e, args) -> str:
        """dst[0:n] += src[0:n] atomically, 16 bytes per exchange (transform/atomic_add_runs.py)."""
        return f"tw::atomic_add_run({args[0]}, {args[1]}, (int64_t)({args[2]}))"

    def call_bounds_fail(self, e, args) -> str:
        """An on-chip access found out of bounds (transform/check_tile_bounds.py)."""
        msg = ", ".join([c_string(e.attrs["msg"]), *args])
        if e.dtype.kind == "handle":
            return f"tw::bounds_fail({msg})"
        return f"tw::bounds_fail_value<{c_type(e.dtype)}>({msg})"

    def call_print(self, e, args) -> str:
        """T.print (see tileop/print.py): args are bx, by, bz then the value, or the tile's
        address, extents, strides and starts; the strings travel in attrs."""
        a = e.attrs
        if a["kind"] == "msg":
            return f"tw::print_msg({', '.join([c_string(a['msg']), *args[:3]])})"
        head = [c_string(a["msg"]), c_string(a["label"]), *args[:3]]
        if a["kind"] == "scalar":
            return f"tw::print_scalar({', '.join(head + args[3:])})"
        n = a["ndim"]
        ptr, rest = args[3], args[4:]
        lists = ["{" + ", ".join(rest[k * n:(k + 1) * n]) + "}" for k in range(3)]
        return f"tw::print_tile({', '.join(head + [ptr] + lists)})"


def _mixed_guard(f: For) -> bool:
    """Whether the loop body stores under a condition that has a conjunct not using the loop
    variable besides one that does (`if (i < 2 && j < 8)` in a loop over j). GCC 12 (-O3
    -march=native) vectorises such masked stores under `#pragma GCC ivdep` with a wrong mask, so
    the loop goes without the pragma (tests/fuzz/test_regressions.py, the guarded copy-outs)."""
    found = []

    class _F(Visitor):
        def visit_IfThenElse(self, s):
            terms = _conjuncts(s.cond)
            inner = [uses_var(t, f.var) for t in terms]
            if any(inner) and not all(inner):
                found.append(s)
            self.generic_visit(s)

    _F().visit(f.body)
    return bool(found)


def _conjuncts(e) -> list:
    if isinstance(e, BinOp) and e.op == "and":
        return _conjuncts(e.a) + _conjuncts(e.b)
    return [e]


def _all(terms: list):
    out = terms[0]
    for t in terms[1:]:
        out = logical_and(out, t)
    return out


def _has_loop(s, ignore_unrolled: bool = False) -> bool:
    found = []

    class _F(Visitor):
        def visit_For(self, f):
            if ignore_unrolled and f.kind == "unroll" and isinstance(f.extent, Const) and f.extent.value <= 16:
                self.generic_visit(f)
                return
            found.append(f)

        def visit_While(self, w):
            found.append(w)

    _F().visit(s)
    return bool(found)


def render_cpu(func: PrimFunc) -> CpuModule:
    return CpuRenderer(func).render()



def _has_extern(func) -> bool:
    found = []
    walk(func.body, lambda n: found.append(n) if isinstance(n, Call) and n.name == "call_extern" else None)
    return bool(found)
