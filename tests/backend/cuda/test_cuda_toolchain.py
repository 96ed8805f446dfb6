"""The CUDA toolchain on hand-built thread IR: render -> NVRTC (sm_80, sm_90a) -> SASS and
resource usage, and the launch path up to cuLaunchKernel. Only the real launch needs a GPU."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilewise.backend.cuda import inspect as sass_tools
from tilewise.backend.cuda.launch import (
    CudaDriverError,
    CudaLauncher,
    CudaLaunchError,
    check,
    launch_plans,
    pack_params,
)
from tilewise.backend.cuda.mma_variants import mma_variant
from tilewise.backend.cuda.nvrtc import NvrtcError, compile_options, nvrtc_compile, toolchain_fingerprint
from tilewise.backend.cuda.renderer import render_cuda
from tilewise.emulator.errors import EmptyGridError
from tilewise.errors import InternalError
from tilewise.ir import (
    Allocate,
    Buffer,
    BufferStore,
    Call,
    Cast,
    Evaluate,
    For,
    IfThenElse,
    Kernel,
    LetStmt,
    PrimFunc,
    SeqStmt,
    Var,
    as_expr,
)
from tilewise.ir import dtype as dt
from tilewise.ir.expr import MATH_BINARY, MATH_UNARY, BinOp, call
from tilewise.jit.target import gpu_present

ARCHS = ("sm_80", "sm_90a")


# ---------------------------------------------------------------------------- IR helpers


def addr(load):
    return Call("address_of", [load], dt.handle)


def intrin(name, *args, **attrs):
    return Evaluate(Call(name, list(args), dt.handle, attrs))


def kernel_func(name, params, body, threads=128, grid=(1,)):
    bx, tx = Var("bx"), Var("tx")
    return PrimFunc(name, params, Kernel([bx], list(grid), [threads], [tx], body(bx, tx)))


def compiled(func, arch):
    mod = render_cuda(func)
    out = nvrtc_compile(mod.source, arch)
    return mod, out.cubin, sass_tools.get_sass(out.cubin)


def assert_clean(cubin, max_registers=255):
    use = sass_tools.resource_usage(cubin)
    assert use["spill_bytes"] == 0, use
    assert 0 < use["registers"] <= max_registers, use
    return use


# ---------------------------------------------------------------------------- kernels


def elementwise():
    """B[i] = exp(A[i]) * 2 + max(A[i], 0) over a dynamic length n, 128 threads per block."""
    n = Var("n")
    A = Buffer("A", (n,), "float16")
    B = Buffer("B", (n,), "float32")

    def body(bx, tx):
        i = Var("i")
        a = Cast(A[i], dt.float32)
        return SeqStmt(
            [
                LetStmt(i, bx * 128 + tx),
                IfThenElse(i < n, BufferStore(B, (i,), call("exp", a) * 2.0 + call("max", a, as_expr(0.0)))),
            ]
        )

    bx, tx = Var("bx"), Var("tx")
    return PrimFunc("elementwise", [A, B], Kernel([bx], [(n + 127) // 128], [128], [tx], body(bx, tx)))


def mma_gemm():
    """C[16, 8] = A[16, 16] @ B[8, 16]^T through shared memory: vector copies, one ldmatrix x4
    (A) and x2 (B), one mma.sync m16n8k16 f16 -> f32, one warp."""
    A = Buffer("A", (16, 16), "float16")
    B = Buffer("B", (8, 16), "float16")
    C = Buffer("C", (16, 8), "float32")
    smem = Buffer("smem", (768,), "uint8", scope="shared.dyn")
    As = Buffer("A_shared", (16, 16), "float16", scope="shared.dyn", base=smem)
    Bs = Buffer("B_shared", (8, 16), "float16", scope="shared.dyn", base=smem)
    Bs.byte_offset = 512
    af = Buffer("a_frag", (8,), "float16", scope="local")
    bf = Buffer("b_frag", (4,), "float16", scope="local")
    cf = Buffer("c_frag", (4,), "float32", scope="local")

    def body(bx, tx):
        j = Var("j")
        row, col = tx // 2, (tx % 2) * 8
        return SeqStmt(
            [
                Allocate(smem), Allocate(As), Allocate(Bs),
                Allocate(af), Allocate(bf), Allocate(cf, as_expr(0.0)),
                intrin("copy_vec", addr(As[row, col]), addr(A[row, col]), bytes=16),
                IfThenElse(tx < 16, intrin("copy_vec", addr(Bs[row, col]), addr(B[row, col]), bytes=16)),
                intrin("syncthreads"),
                intrin("ldmatrix", addr(af[0]), addr(As[tx % 16, (tx // 16) * 8]), num=4, trans=False),
                intrin("ldmatrix", addr(bf[0]), addr(Bs[tx % 8, ((tx // 8) % 2) * 8]), num=2, trans=False),
                intrin("mma_sync", addr(af[0]), addr(bf[0]), addr(cf[0]),
                       shape="m16n8k16", a_dtype="float16", b_dtype="float16", c_dtype="float32"),
                For(j, 0, 4, "unroll", BufferStore(C, (tx // 4 + (j // 2) * 8, (tx % 4) * 2 + j % 2), cf[j])),
            ]
        )  # fmt: skip

    return kernel_func("mma_gemm", [A, B, C], body, threads=32)


# (shape, a, b, c dtypes, A / B / C fragment elements per thread)
MMA_CASES = [
    ("m16n8k16", "float16", "float16", "float32", 8, 4, 4, "HMMA"),
    ("m16n8k16", "bfloat16", "bfloat16", "float32", 8, 4, 4, "HMMA"),
    ("m16n8k16", "float16", "float16", "float16", 8, 4, 4, "HMMA"),
    ("m16n8k8", "float32", "float32", "float32", 4, 2, 4, "HMMA"),
    ("m16n8k8", "float16", "float16", "float32", 4, 2, 4, "HMMA"),
    ("m16n8k8", "bfloat16", "bfloat16", "float32", 4, 2, 4, "HMMA"),
    ("m16n8k8", "float16", "float16", "float16", 4, 2, 4, "HMMA"),
    ("m16n8k8", "tfloat32", "tfloat32", "float32", 4, 2, 4, "HMMA"),
    ("m16n8k32", "int8", "int8", "int32", 16, 8, 4, "IMMA"),
    ("m16n8k32", "uint8", "uint8", "int32", 16, 8, 4, "IMMA"),
    ("m16n8k32", "int8", "uint8", "int32", 16, 8, 4, "IMMA"),
]


def storage(t):
    """The IR dtype holding an mma operand type (tf32 operands are float32 values)."""
    return dt.float32 if t == "tfloat32" else dt.as_dtype(t)


def mma_kernel(shape, a_t, b_t, c_t, na, nb, nc):
    """One mma of each operand type, fragments loaded element-wise from global memory."""
    A = Buffer("A", (32, na), storage(a_t))
    B = Buffer("B", (32, nb), storage(b_t))
    C = Buffer("C", (32, nc), storage(c_t))
    af, bf, cf = (
        Buffer(n, (k,), storage(t), scope="local") for n, k, t in (("af", na, a_t), ("bf", nb, b_t), ("cf", nc, c_t))
    )

    def body(bx, tx):
        stmts = [Allocate(af), Allocate(bf), Allocate(cf)]
        for frag, G, n in ((af, A, na), (bf, B, nb), (cf, C, nc)):
            j = Var("j")
            stmts.append(For(j, 0, n, "unroll", BufferStore(frag, (j,), G[tx, j])))
        stmts.append(
            intrin("mma_sync", addr(af[0]), addr(bf[0]), addr(cf[0]), shape=shape, a_dtype=a_t, b_dtype=b_t, c_dtype=c_t)
        )
        k = Var("k")
        stmts.append(For(k, 0, nc, "unroll", BufferStore(C, (tx, k), cf[k])))
        return SeqStmt(stmts)

    return kernel_func(f"mma_{shape}_{a_t}_{b_t}_{c_t}", [A, B, C], body, threads=32)


def ldmatrix_variants():
    """ldmatrix x1 / x2 / x4, plain and .trans, into disjoint registers (all results are used,
    or ptxas would drop the dead loads)."""
    G = Buffer("G", (64, 8), "float16")
    O = Buffer("O", (32, 28), "float16")
    smem = Buffer("smem", (1024,), "uint8", scope="shared.dyn")
    S = Buffer("S", (64, 8), "float16", scope="shared.dyn", base=smem)
    r = Buffer("r", (28,), "float16", scope="local")

    def body(bx, tx):
        j = Var("j")
        stmts = [Allocate(smem), Allocate(S), Allocate(r)]
        stmts += [intrin("copy_vec", addr(S[tx * 2 + h, 0]), addr(G[tx * 2 + h, 0]), bytes=16) for h in (0, 1)]
        stmts.append(intrin("syncthreads"))
        for off, num, trans in ((0, 1, False), (2, 1, True), (4, 2, False), (8, 2, True), (12, 4, False), (20, 4, True)):
            stmts.append(intrin("ldmatrix", addr(r[off]), addr(S[tx + off, 0]), num=num, trans=trans))
        stmts.append(For(j, 0, 28, "unroll", BufferStore(O, (tx, j), r[j])))
        return SeqStmt(stmts)

    return kernel_func("ldmatrix_variants", [G, O], body, threads=32)


def cp_async_pipeline():
    """cp.async of 16 bytes (partial source: zero fill past n), 8 bytes and 4 bytes (all zero
    fill), two commit groups, wait_group 1 then 0, barrier, read back."""
    n = Var("n")
    G = Buffer("G", (n,), "float32")
    O = Buffer("O", (128, 8), "float32")
    smem = Buffer("smem", (128 * 8 * 4,), "uint8", scope="shared.dyn")
    S = Buffer("S", (128, 8), "float32", scope="shared.dyn", base=smem)

    def body(bx, tx):
        j = Var("j")
        base = tx * 8
        left = (n - base) * 4
        src_bytes = call("max", call("min", left, as_expr(16)), as_expr(0))
        return SeqStmt(
            [
                Allocate(smem),
                Allocate(S),
                intrin("cp_async", addr(S[tx, 0]), addr(G[call("min", base, n - 1)]), src_bytes, bytes=16),
                intrin("cp_async_commit"),
                intrin("cp_async", addr(S[tx, 4]), addr(G[0]), as_expr(8), bytes=8),
                intrin("cp_async", addr(S[tx, 6]), addr(G[0]), as_expr(0), bytes=4),
                intrin("cp_async_commit"),
                intrin("cp_async_wait", n=1),
                intrin("cp_async_wait", n=0),
                intrin("syncthreads"),
                # read back with vector moves of 16, 8 and 4 bytes
                intrin("copy_vec", addr(O[tx, 0]), addr(S[(tx + 1) % 128, 0]), bytes=16),
                intrin("copy_vec", addr(O[tx, 4]), addr(S[(tx + 1) % 128, 4]), bytes=8),
                For(j, 6, 2, "unroll", intrin("copy_vec", addr(O[tx, j]), addr(S[(tx + 1) % 128, j]), bytes=4)),
            ]
        )

    return kernel_func("cp_async_pipeline", [G, O], body)


def shuffles():
    """A butterfly sum over the warp (shfl_xor), plus shfl_down / up / idx on half and int."""
    X = Buffer("X", (128,), "float32")
    H = Buffer("H", (128,), "float16")
    Y = Buffer("Y", (128, 4), "float32")
    v = Buffer("v", (1,), "float32", scope="local.var")

    def body(bx, tx):
        k = Var("k")
        step = Call("shfl_xor", [v[0], BinOp("shr", as_expr(16), k, dt.int32)], dt.float32, {"width": 32})
        down = Call("shfl_down", [H[tx], as_expr(1)], dt.float16, {"width": 16})
        up = Call("shfl_up", [tx, as_expr(2)], dt.int32, {"width": 32})
        idx = Call("shfl_idx", [X[tx], as_expr(0)], dt.float32, {"width": 8})
        return SeqStmt(
            [
                Allocate(v, X[tx]),
                For(k, 0, 5, "unroll", BufferStore(v, (0,), v[0] + step)),
                BufferStore(Y, (tx, 0), v[0]),
                BufferStore(Y, (tx, 1), Cast(down, dt.float32)),
                BufferStore(Y, (tx, 2), Cast(up, dt.float32)),
                BufferStore(Y, (tx, 3), idx),
            ]
        )

    return kernel_func("shuffles", [X, H, Y], body)


ATOMIC_TYPES = ("float32", "float16", "bfloat16", "float64", "int32", "int64", "uint32", "int8", "int16")


def atomics():
    """atomic_add of every type, atomic_max / atomic_min (native for ints, CAS loops otherwise)."""
    ins = {t: Buffer(f"in_{t}", (128,), t) for t in ATOMIC_TYPES}
    outs = {t: Buffer(f"out_{t}", (4,), t) for t in ATOMIC_TYPES}

    def body(bx, tx):
        stmts = []
        for t in ATOMIC_TYPES:
            stmts.append(Evaluate(Call("atomic_add", [addr(outs[t][0]), ins[t][tx]], dt.handle)))
            stmts.append(Evaluate(Call("atomic_max", [addr(outs[t][1]), ins[t][tx]], dt.handle)))
            stmts.append(Evaluate(Call("atomic_min", [addr(outs[t][2]), ins[t][tx]], dt.handle)))
        return SeqStmt(stmts)

    return kernel_func("atomics", [*ins.values(), *outs.values()], body)


MATH_TYPES = ("float32", "float64", "float16", "bfloat16")


def math_all(t):
    """Every element-wise math name of the IR on one floating-point type."""
    X = Buffer("X", (128,), t)
    names = [*MATH_UNARY, *MATH_BINARY, "floormod"]
    Y = Buffer("Y", (128, len(names)), t)

    def body(bx, tx):
        x = X[tx]
        stmts = []
        for k, name in enumerate(names):
            if name == "floormod":
                e = BinOp("floormod", x, X[(tx + 1) % 128], x.dtype)
            elif name in ("max", "min"):
                e = BinOp(name, x, X[(tx + 1) % 128], x.dtype)
            elif name in MATH_BINARY:
                e = call(name, x, X[(tx + 1) % 128])
            else:
                e = call(name, x)
            stmts.append(BufferStore(Y, (tx, k), e))
        return SeqStmt(stmts)

    return kernel_func(f"math_{t}", [X, Y], body)


def integer_ops():
    """Integer helpers: floor/trunc division by run-time and constant divisors, abs, min/max,
    pow, fmod, dp4a, reinterpret, narrow types, fp8 conversions and comparisons."""
    X = Buffer("X", (128,), "int32")
    F = Buffer("F", (128,), "float32")
    Q = Buffer("Q", (128,), "float8_e4m3")
    P = Buffer("P", (128,), "int8")
    Y = Buffer("Y", (128, 16), "int32")

    def body(bx, tx):
        x, y = X[tx], X[(tx + 7) % 128]
        q, r = Q[tx], Q[(tx + 1) % 128]
        exprs = [
            BinOp("floordiv", x, y, dt.int32),
            BinOp("floormod", x, y, dt.int32),
            BinOp("floordiv", x, as_expr(3), dt.int32),
            BinOp("floormod", x, as_expr(-8), dt.int32),
            BinOp("div", x, y, dt.int32),
            BinOp("truncmod", x, y, dt.int32),
            call("abs", x),
            BinOp("max", x, y, dt.int32),
            call("pow", x, y),
            call("fmod", x, y),
            Call("dp4a", [x, y, tx], dt.int32),
            Call("reinterpret", [F[tx]], dt.int32),
            Cast(BinOp("add", P[tx], P[(tx + 1) % 128], dt.int8), dt.int32),
            Cast(BinOp("max", q, r, dt.float8_e4m3), dt.int32),
            Cast(q < r, dt.int32),
            Cast(Cast(Cast(q, dt.float16), dt.bfloat16), dt.int32),
        ]
        return SeqStmt([BufferStore(Y, (tx, k), e) for k, e in enumerate(exprs)])

    return kernel_func("integer_ops", [X, F, Q, P, Y], body)


def pipelined_loop():
    """A serial k-loop of dynamic length around ldmatrix + mma: its SASS has a steady-state
    loop holding the HMMA."""
    K = Var("K")
    A = Buffer("A", (16, K), "float16")
    C = Buffer("C", (16, 8), "float32")
    smem = Buffer("smem", (512,), "uint8", scope="shared.dyn")
    S = Buffer("S", (16, 16), "float16", scope="shared.dyn", base=smem)
    af = Buffer("af", (8,), "float16", scope="local")
    cf = Buffer("cf", (4,), "float32", scope="local")

    def body(bx, tx):
        k, j = Var("k"), Var("j")
        row, col = tx // 2, (tx % 2) * 8
        loop = SeqStmt(
            [
                intrin("cp_async", addr(S[row, col]), addr(A[row, k * 16 + col]), bytes=16),
                intrin("cp_async_commit"),
                intrin("cp_async_wait", n=0),
                intrin("syncthreads"),
                intrin("ldmatrix", addr(af[0]), addr(S[tx % 16, (tx // 16) * 8]), num=4, trans=False),
                intrin("mma_sync", addr(af[0]), addr(af[4]), addr(cf[0]),
                       shape="m16n8k16", a_dtype="float16", b_dtype="float16", c_dtype="float32"),
                intrin("syncthreads"),
            ]
        )  # fmt: skip
        return SeqStmt(
            [
                Allocate(smem), Allocate(S), Allocate(af), Allocate(cf, as_expr(0.0)),
                For(k, 0, K // 16, "serial", loop),
                For(j, 0, 4, "unroll", BufferStore(C, (tx // 4 + (j // 2) * 8, (tx % 4) * 2 + j % 2), cf[j])),
            ]
        )  # fmt: skip

    return kernel_func("pipelined_loop", [A, C], body, threads=32)


def two_kernels():
    """Two kernels launched in order, a top-level let feeding a grid, 64 KiB of shared memory in
    the second kernel and a scalar parameter."""
    n = Var("n")
    alpha = Var("alpha", dt.float32)
    X = Buffer("X", (n,), "float32")
    nb = Var("nb")
    bx0, tx0, bx1, tx1 = Var("bx"), Var("tx"), Var("bx"), Var("tx")
    k0 = Kernel([bx0], [nb], [256], [tx0],
                IfThenElse(bx0 * 256 + tx0 < n, BufferStore(X, (bx0 * 256 + tx0,), X[bx0 * 256 + tx0] * alpha)))
    smem = Buffer("smem", (65536,), "uint8", scope="shared.dyn")
    S = Buffer("S", (16384,), "float32", scope="shared.dyn", base=smem)
    body1 = SeqStmt(
        [
            Allocate(smem), Allocate(S),
            BufferStore(S, (tx1 * 64,), X[tx1 % n]),
            intrin("syncthreads"),
            IfThenElse(tx1 == 0, BufferStore(X, (0,), S[(bx1 % 4) * 64])),
        ]
    )
    k1 = Kernel([bx1], [nb * 2], [64, 2], [tx1], body1)
    return PrimFunc("two_kernels", [X, alpha], SeqStmt([LetStmt(nb, (n + 255) // 256), k0, k1]))  # fmt: skip


def printing():
    X = Buffer("X", (4, 8), "float16")
    t = Buffer("t", (2, 2), "int32", scope="local")

    def body(bx, tx):
        blk = [bx, as_expr(0), as_expr(0)]
        scalar = Evaluate(Call("print", [*blk, X[0, tx % 8]], dt.handle, {"msg": "x", "label": "X[0, tx]", "kind": "scalar"}))
        dims = [as_expr(v) for v in (2, 2, 2, 1, 0, 0)]
        tile = Evaluate(Call("print", [*blk, addr(t[0, 0]), *dims], dt.handle,
                             {"msg": "", "label": "t", "kind": "tile", "ndim": 2}))  # fmt: skip
        return SeqStmt([Allocate(t, as_expr(7)), IfThenElse(tx == 0, SeqStmt([scalar, tile]))])

    return kernel_func("printing", [X], body, threads=32)


# ---------------------------------------------------------------------------- rendering


def test_elementwise_source_shape():
    mod = render_cuda(elementwise())
    src = mod.source
    assert '#include "tw_cuda.h"' in src
    assert (
        'extern "C" __global__ void __launch_bounds__(128) elementwise_kernel('
        "const tw::half* __restrict__ A, float* __restrict__ B, const int32_t n)" in src
    )
    assert "(int32_t)blockIdx.x" in src and "(int32_t)threadIdx.x" in src
    assert mod.kernel_name == "elementwise_kernel"
    assert mod.param_names == ["A", "B", "n"]
    assert mod.readonly == [True, False]
    assert mod.block == (128, 1, 1) and mod.shared_bytes == 0
    assert [v.name for v in mod.dynamic_vars] == ["n"]
    assert len(mod.grid) == 1


def test_shared_views_locals_and_unroll_render():
    src = render_cuda(mma_gemm()).source
    assert "extern __shared__ __align__(16) uint8_t smem[];" in src
    assert "tw::half* A_shared = (tw::half*)smem;" in src
    assert "tw::half* B_shared = (tw::half*)(smem + 512);" in src
    assert "alignas(16) tw::half a_frag[8];" in src
    assert "#pragma unroll" in src
    assert "tw::ldmatrix_x4<false>(" in src and "tw::ldmatrix_x2<false>(" in src
    assert "tw::mma_m16n8k16_f32_f16_f16(" in src
    # floor division / modulo by powers of two become shifts and masks
    assert "(tx >> 1)" in src and "(tx & 1)" in src
    assert render_cuda(mma_gemm()).shared_bytes == 768


def test_two_kernels_module():
    mod = render_cuda(two_kernels())
    assert [k.name for k in mod.kernels] == ["two_kernels_kernel", "two_kernels_kernel_1"]
    assert mod.param_names == ["X", "alpha", "n"]
    assert [k.block for k in mod.kernels] == [(256, 1, 1), (64, 2, 1)]
    assert [k.shared_bytes for k in mod.kernels] == [0, 65536]
    assert [k.needs_shared_opt_in for k in mod.kernels] == [False, True]
    with pytest.raises(InternalError, match="2 kernels"):
        _ = mod.kernel_name
    # the let is rendered in both kernels and substituted away from the host-side grids
    assert mod.source.count("const int32_t nb = ") == 2
    plans = launch_plans(mod, [0, 2.0], [1000])
    assert [p.grid for p in plans] == [(4, 1, 1), (8, 1, 1)]
    assert [p.shared_opt_in for p in plans] == [False, True]
    for arch in ARCHS:
        out = nvrtc_compile(mod.source, arch)
        funcs = sass_tools.parse_sass(sass_tools.get_sass(out.cubin))
        assert set(funcs) == {"two_kernels_kernel", "two_kernels_kernel_1"}
        assert sass_tools.resource_usage(out.cubin, "two_kernels_kernel")["spill_bytes"] == 0


def test_render_errors():
    m = mma_gemm()
    (bad,) = [s for s in m.body.body.stmts if isinstance(s, Evaluate) and s.value.name == "mma_sync"]
    bad.value.attrs["shape"] = "m16n8k4"
    with pytest.raises(InternalError, match="no variant m16n8k4"):
        render_cuda(m)
    X = Buffer("X", (4,), "float32")
    i = Var("i")
    par = kernel_func("par", [X], lambda bx, tx: For(i, 0, 4, "parallel", BufferStore(X, (i,), as_expr(1.0))))
    with pytest.raises(InternalError, match="parallel"):
        render_cuda(par)


# ---------------------------------------------------------------------------- compile + SASS


@pytest.mark.parametrize("arch", ARCHS)
def test_elementwise_compiles_clean(arch):
    mod, cubin, sass = compiled(elementwise(), arch)
    use = assert_clean(cubin, max_registers=32)
    assert use["shared_bytes"] <= 1024  # sm_90 reserves 1 KiB of shared memory per block
    mix = sass_tools.instruction_mix(sass, ("LDG", "STG", "MUFU", "LDL", "STL"))
    assert mix["LDG"] == 1 and mix["STG"] == 1 and mix["MUFU"] >= 1
    assert mix["LDL"] == mix["STL"] == 0


@pytest.mark.parametrize("arch", ARCHS)
def test_ldmatrix_mma_sass(arch):
    mod, cubin, sass = compiled(mma_gemm(), arch)
    assert_clean(cubin, max_registers=64)
    mix = sass_tools.instruction_mix(sass, ("HMMA", "LDSM", "BAR", "LDL", "STL"))
    assert mix == {"HMMA": 1, "LDSM": 2, "BAR": 1, "LDL": 0, "STL": 0}
    ops = {i.opcode for i in sass_tools.parse_sass(sass)["mma_gemm_kernel"]}
    assert "HMMA.16816.F32" in ops and "LDSM.16.M88.4" in ops and "LDSM.16.M88.2" in ops
    ptx = nvrtc_compile(mod.source, arch, ptx=True).ptx
    assert "ldmatrix.sync.aligned.m8n8.x4.shared.b16" in ptx
    assert "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32" in ptx


@pytest.mark.parametrize("arch", ARCHS)
def test_ldmatrix_variants(arch):
    mod, cubin, sass = compiled(ldmatrix_variants(), arch)
    assert_clean(cubin)
    ops = [i.opcode for i in sass_tools.parse_sass(sass)["ldmatrix_variants_kernel"] if i.op == "LDSM"]
    assert sorted(ops) == sorted(
        ["LDSM.16.M88", "LDSM.16.MT88", "LDSM.16.M88.2", "LDSM.16.MT88.2", "LDSM.16.M88.4", "LDSM.16.MT88.4"]
    )


@pytest.mark.parametrize("case", MMA_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-{c[3]}")
def test_mma_variants(case):
    shape, a_t, b_t, c_t, na, nb, nc, op = case
    v = mma_variant(shape, a_t, b_t, c_t)
    regs = tuple(n * storage(t).bytes // 4 for n, t in ((na, a_t), (nb, b_t), (nc, c_t)))
    assert (v.a_regs, v.b_regs, v.c_regs) == regs
    mod, cubin, sass = compiled(mma_kernel(shape, a_t, b_t, c_t, na, nb, nc), "sm_80")
    assert_clean(cubin, max_registers=64)
    assert sass_tools.instruction_mix(sass, (op,))[op] >= 1
    assert sass_tools.instruction_mix(sass, ("LDL", "STL")) == {"LDL": 0, "STL": 0}


@pytest.mark.parametrize("arch", ARCHS)
def test_cp_async_sass(arch):
    mod, cubin, sass = compiled(cp_async_pipeline(), arch)
    assert "tw::cp_async<16>(" in mod.source and ", (int32_t)(" in mod.source
    assert "tw::cp_async<8>((&S[" in mod.source and "tw::cp_async_wait<1>()" in mod.source
    assert_clean(cubin)
    instrs = sass_tools.parse_sass(sass)["cp_async_pipeline_kernel"]
    ldgsts = [i.opcode for i in instrs if i.op == "LDGSTS"]
    assert len(ldgsts) == 3
    assert any("BYPASS" in o for o in ldgsts)  # the 16-byte copy goes around L1 (.cg)
    assert any(i.op == "LDGDEPBAR" for i in instrs)  # commit_group
    assert sum(i.op == "DEPBAR" for i in instrs) >= 1  # wait_group
    assert any(i.op == "BAR" for i in instrs)
    ops = {i.opcode for i in instrs}
    # the copy_vec moves (ptxas may merge the shared loads of the smaller ones)
    assert {"LDS.128", "STG.E.128", "STG.E.64", "STG.E"} <= ops


@pytest.mark.parametrize("arch", ARCHS)
def test_shuffle_sass(arch):
    mod, cubin, sass = compiled(shuffles(), arch)
    assert_clean(cubin)
    ops = [i.opcode for i in sass_tools.parse_sass(sass)["shuffles_kernel"] if i.op == "SHFL"]
    assert sum(o == "SHFL.BFLY" for o in ops) == 5  # the unrolled butterfly
    assert {"SHFL.DOWN", "SHFL.UP", "SHFL.IDX"} <= set(ops)


@pytest.mark.parametrize("arch", ARCHS)
def test_atomics_sass(arch):
    mod, cubin, sass = compiled(atomics(), arch)
    assert_clean(cubin)
    ops = [i.opcode for i in sass_tools.parse_sass(sass)["atomics_kernel"]]
    assert any(o.startswith("RED") and "ADD.F32" in o for o in ops)  # result unused: a reduction
    assert any(o.startswith(("RED", "ATOM")) and ".MAX" in o for o in ops)  # native integer max
    assert any(o.startswith("ATOM") and "CAS" in o for o in ops)  # the compare-and-swap loops


@pytest.mark.parametrize("t", MATH_TYPES)
def test_math_functions_compile(t):
    mod, cubin, sass = compiled(math_all(t), "sm_80")
    if t == "float64":
        # double sin / cos / tan reduce large arguments (Payne-Hanek) in a local-memory table
        assert sass_tools.resource_usage(cubin)["spill_bytes"] <= 64
    else:
        assert_clean(cubin)
    assert len(sass_tools.parse_sass(sass)["math_" + t + "_kernel"]) > 100


def test_math_fast_math_option():
    src = render_cuda(math_all("float32")).source
    precise = nvrtc_compile(src, "sm_80")
    fast = nvrtc_compile(src, "sm_80", fast_math=True)
    assert "--use_fast_math" in fast.options and "--use_fast_math" not in precise.options
    n_precise = len(sass_tools.parse_sass(sass_tools.get_sass(precise.cubin))["math_float32_kernel"])
    n_fast = len(sass_tools.parse_sass(sass_tools.get_sass(fast.cubin))["math_float32_kernel"])
    assert n_fast < n_precise


def test_integer_and_fp8_ops_compile():
    mod, cubin, sass = compiled(integer_ops(), "sm_80")
    assert "tw::floordiv(" in mod.source and "tw::truncdiv(" in mod.source and "tw::dp4a(" in mod.source
    assert_clean(cubin)
    assert sass_tools.instruction_mix(sass, ("IDP",))["IDP"] >= 1  # dp4a


def test_print_compiles():
    mod, cubin, sass = compiled(printing(), "sm_80")
    assert 'tw::print_scalar("x", "X[0, tx]"' in mod.source
    assert "tw::print_tile<2>(" in mod.source
    assert sass_tools.instruction_mix(sass, ("CALL",))["CALL"] == 2  # the two vprintf calls


def test_steady_state_loop():
    mod, cubin, sass = compiled(pipelined_loop(), "sm_80")
    assert_clean(cubin)
    loop = sass_tools.steady_state_loop(sass, key="HMMA")
    assert loop is not None
    mix = loop.mix(("HMMA", "LDSM", "LDGSTS", "BAR"))
    assert mix["HMMA"] >= 1 and mix["LDSM"] >= 1 and mix["LDGSTS"] >= 1 and mix["BAR"] >= 1
    last = loop.instrs[-1]
    assert last.op == "BRA" and last.branch_target == loop.start == loop.instrs[0].offset
    # the loop with the HMMA is the most HMMA-dense one (ptxas may unroll it and peel a remainder)
    for other in sass_tools.find_loops(sass):
        assert other.mix(("HMMA",))["HMMA"] <= mix["HMMA"]
    assert sass_tools.steady_state_loop(compiled(mma_gemm(), "sm_80")[2]) is None


def test_ptx_and_options():
    src = render_cuda(elementwise()).source
    out = nvrtc_compile(src, "sm_90a", ptx=True)
    assert ".target sm_90a" in out.ptx and ".entry elementwise_kernel" in out.ptx
    assert "--gpu-architecture=sm_90a" in out.options and "-std=c++17" in out.options
    assert any(o.startswith("-I") and o.endswith("include") for o in compile_options("sm_80"))
    with pytest.raises(ValueError, match="unsupported CUDA architecture"):
        compile_options("sm_8")
    assert toolchain_fingerprint().startswith("nvrtc-")


def test_nvrtc_error_carries_log():
    src = '#include "tw_cuda.h"\nextern "C" __global__ void broken(float* x) {\n  x[0] = undefined_name;\n}\n'
    with pytest.raises(NvrtcError) as err:
        nvrtc_compile(src, "sm_80")
    msg = str(err.value)
    assert "undefined_name" in msg and "identifier" in msg
    assert "    3 |   x[0] = undefined_name;" in msg
    assert "undefined_name" in err.value.log


# ---------------------------------------------------------------------------- launch path

_ELEMENTWISE = render_cuda(elementwise())


def test_launch_plans_and_params():
    mod = render_cuda(elementwise())
    (plan,) = launch_plans(mod, [0x7000, 0x8000], [1000])
    assert plan.kernel == "elementwise_kernel"
    assert plan.grid == (8, 1, 1) and plan.block == (128, 1, 1)
    assert plan.shared_bytes == 0 and not plan.shared_opt_in
    with pytest.raises(EmptyGridError, match=r"grid=\(0,1,1\) in kernel elementwise_kernel"):
        launch_plans(mod, [0x7000, 0x8000], [0])  # TileLang refuses a grid of no blocks
    params = pack_params(mod, [0x7000, 0x8000], [1000])
    assert len(params) == 3
    assert [params.read(i) for i in range(3)] == [0x7000, 0x8000, 1000]
    assert [ctypes.sizeof(v) for v in params.values] == [8, 8, 4]
    assert isinstance(params.address, int) and params.address == ctypes.addressof(params.array)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2**31 - 1), a=st.integers(0, 2**64 - 1), b=st.integers(0, 2**64 - 1))
def test_plans_and_packing_property(n, a, b):
    mod = _ELEMENTWISE
    (plan,) = launch_plans(mod, [a, b], [n])
    assert plan.grid == (-(-n // 128), 1, 1)
    params = pack_params(mod, [a, b], [n])
    assert [params.read(i) for i in range(3)] == [a, b, n]


def test_pack_scalar_params():
    mod = render_cuda(two_kernels())
    params = pack_params(mod, [0x1000, np.float32(1.5)], [7])
    assert params.read(1) == 1.5 and params.read(2) == 7
    h = Var("h", dt.float16)
    X = Buffer("X", (4,), "float16")
    hm = render_cuda(kernel_func("hscale", [X, h], lambda bx, tx: BufferStore(X, (tx,), X[tx] * h), threads=4))
    assert "const tw::half h" in hm.source
    assert pack_params(hm, [0x10, 1.0], []).read(1) == 0x3C00  # float16 bits of 1.0


def test_launch_argument_errors():
    mod = render_cuda(elementwise())
    with pytest.raises(CudaLaunchError, match="takes 2 arguments"):
        pack_params(mod, [0x10], [4])
    with pytest.raises(CudaLaunchError, match="dynamic dimension"):
        pack_params(mod, [0x10, 0x20], [])
    with pytest.raises(CudaLaunchError, match="does not fit in int32"):
        pack_params(mod, [0x10, 0x20], [2**31])
    torch = pytest.importorskip("torch")
    with pytest.raises(CudaLaunchError, match="argument A: the tensor is on cpu"):
        pack_params(mod, [torch.zeros(4, dtype=torch.float16), 0x20], [4])
    with pytest.raises(CudaLaunchError, match="exceed CUDA's limit"):
        launch_plans(render_cuda(two_kernels()), [0x10, 1.0], [2**40])
    launcher = CudaLauncher(mod, b"")
    plans, params = launcher.prepare([0x10, 0x20], [300])
    assert plans[0].grid == (3, 1, 1) and params.read(2) == 300


def test_driver_error_message():
    from cuda.bindings import driver

    with pytest.raises(CudaDriverError, match="cuModuleLoadData failed: CUDA_ERROR_INVALID_IMAGE"):
        check((driver.CUresult.CUDA_ERROR_INVALID_IMAGE, None), "cuModuleLoadData")
    assert check((driver.CUresult.CUDA_SUCCESS, 5), "x") == 5


@pytest.mark.skipif(not gpu_present(), reason="needs a CUDA GPU")
def test_launch_on_gpu():
    import torch

    major, minor = torch.cuda.get_device_capability()
    arch = f"sm_{major}{minor}" + ("a" if major == 9 else "")

    mod = render_cuda(elementwise())
    launcher = CudaLauncher(mod, nvrtc_compile(mod.source, arch).cubin)
    for n in (1, 1000, 4099):
        a = torch.randn(n, dtype=torch.float16, device="cuda")
        b = torch.empty(n, dtype=torch.float32, device="cuda")
        launcher([a, b], [n])
        torch.cuda.synchronize()
        ref = torch.exp(a.float()) * 2 + torch.clamp(a.float(), min=0)
        torch.testing.assert_close(b, ref, rtol=1e-5, atol=1e-5)

    mod = render_cuda(mma_gemm())
    launcher = CudaLauncher(mod, nvrtc_compile(mod.source, arch).cubin)
    A = torch.randn(16, 16, dtype=torch.float16, device="cuda")
    B = torch.randn(8, 16, dtype=torch.float16, device="cuda")
    C = torch.empty(16, 8, dtype=torch.float32, device="cuda")
    launcher([A, B, C], [])
    torch.cuda.synchronize()
    torch.testing.assert_close(C, A.float() @ B.float().T, rtol=1e-3, atol=1e-3)
