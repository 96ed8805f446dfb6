"""TVM's thread all-reduce, which TileLang kernels written at thread level use (examples/gemv):

    with T.attr(T.comm_reducer(lambda x, y: x + y, [T.cast(0, "float32")]), "reduce_scope",
                T.reinterpret(T.uint64(0), dtype="handle")):
        T.evaluate(T.tvm_thread_allreduce(T.uint32(1), acc[0], True, red[0], tk, dtype="handle"))

combines `acc[0]` over the threads that differ only in the listed thread indices (tk: the
threadIdx.y of threads=(X, Y)) with the reducer's combiner and stores the result into `red[0]` in
each of them. It lowers to warp shuffles inside a warp and a shared-memory exchange across warps
(tileop/reduce.py's all_reduce). Such kernels program their threads, so the CPU target runs them
in the emulator (docs/language-decisions.md); the operator has only the CUDA lowering."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Const, Expr, Var, as_expr, cast
from ..ir.simplify import simplify
from ..ir.stmt import Allocate, BufferStore, Stmt, seq
from ..ir.visitor import collect_loads
from .base import TileOp, lowering
from .reduce import all_reduce


class CommReducer:
    """`T.comm_reducer(combiner, identity)`: a commutative reduction for tvm_thread_allreduce."""

    def __init__(self, combiner, identity):
        if not callable(combiner):
            raise CompileError(f"T.comm_reducer: the combiner must be a function of two values, got {combiner!r}")
        self.combiner = combiner
        self.identity = list(identity) if isinstance(identity, (list, tuple)) else [identity]

    def combine(self, a: Expr, b: Expr) -> Expr:
        out = self.combiner(a, b)
        if isinstance(out, (list, tuple)):
            if len(out) != 1:
                raise CompileError("T.comm_reducer: combiners of several values are not supported")
            out = out[0]
        return cast(as_expr(out, a.dtype), a.dtype)


comm_reducer = CommReducer
_scope: list[CommReducer] = []  # the reducers of the enclosing `with T.attr(..., "reduce_scope", ...)`


class ThreadAllReduce(TileOp):
    op_name = "thread_allreduce"
    _fields = ("value", "result")

    def __init__(self, value: Expr, result: BufferLoad, modes: list, reducer: CommReducer):
        self._init()
        self.value = value
        self.result = result
        self.modes = list(modes)  # (place, radix) of the reduced digits of the flattened thread index
        self.reducer = reducer

    def attrs(self) -> dict:
        return {"modes": self.modes}

    def reads(self) -> list[BufferRegion]:
        return [BufferRegion(ld.buffer, [(i, 1) for i in ld.indices]) for ld in collect_loads(self.value)]

    def writes(self) -> list[BufferRegion]:
        return [BufferRegion(self.result.buffer, [(i, 1) for i in self.result.indices])]

    @lowering("cuda")
    def lower_cuda(self, ctx) -> Stmt:
        dt = self.result.buffer.dtype
        acc = Buffer(f"{self.result.buffer.name}_allreduce", (1,), dt, "local")
        out: list[Stmt] = [Allocate(acc), BufferStore(acc, [Const(0, _dt.int32)], cast(self.value, dt))]
        out += all_reduce(ctx, acc, self.modes, 1, self.reducer.combine, dt)
        out.append(BufferStore(self.result.buffer, self.result.indices, BufferLoad(acc, [Const(0, _dt.int32)])))
        return seq(out)


def tvm_thread_allreduce(size, *args, dtype="handle"):
    """Reduce a value over threads (see the module docstring); `size` values, a condition (True),
    `size` result elements, then the thread indices to reduce over."""
    what = "T.tvm_thread_allreduce"
    k = require_kernel(what)
    if not _scope:
        raise CompileError(f"{what} must be inside `with T.attr(T.comm_reducer(...), \"reduce_scope\", ...):`")
    n = size.value if isinstance(size, Const) else size
    if n != 1:
        raise CompileError(f"{what}: only one value per call is supported, got {size}")
    if len(args) < 3:
        raise CompileError(f"{what}: expected a value, a condition, a result element and thread indices")
    value, cond, result, *threads = args
    if not (cond is True or (isinstance(cond, Const) and cond.value)):
        raise CompileError(f"{what}: only the condition True is supported, got {cond!r}")
    if isinstance(result, Buffer) and result.is_var:
        result = result.load_var()
    if not isinstance(result, BufferLoad) or not result.buffer.is_local:
        raise CompileError(f"{what}: the result must be an element of a local buffer (T.alloc_local), got {result!r}")
    if isinstance(value, Buffer) and value.is_var:
        value = value.load_var()
    value = as_expr(value, result.buffer.dtype)
    modes = []
    for t in threads:
        if not (isinstance(t, Var) and any(t is v for v in k.thread_vars)):
            raise CompileError(f"{what}: reduce over thread indices from T.get_thread_binding, got {t!r}")
        d = next(i for i, v in enumerate(k.thread_vars) if v is t)
        place = 1
        for e in k.threads[:d]:
            place *= e
        modes.append((place, k.threads[d]))
    k.thread_binding_used = True
    modes.sort()
    emit(ThreadAllReduce(simplify(value), result, modes, _scope[-1]))
    return None
