"""tools/tl_differential.py programs on tile operators: T.copy over ragged tiles (out-of-bounds
rows and columns masked on load, padded, and masked on store), between scopes and layouts and on
2-D/3-D slices; T.fill/T.clear on slices; every T.reduce_* with clear=False on both dims into
fragments and shared memory over NaN/inf; forward T.cumsum/T.cummax; T.gemm over transposes,
operand types, clear_accum, warp policies and ragged M/N/K.

GEMM operands are small integers unless a program says otherwise: every partial sum is then exact
and the result is the same in any accumulation order, so it is compared bit for bit. Programs over
random normals carry an absolute tolerance and say why.
"""
from __future__ import annotations

import numpy as np
from tl_diff_prog import Prog

NAN, INF = np.nan, np.inf


def _np(dtype: str) -> np.dtype:
    if dtype in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        import ml_dtypes
        return np.dtype(getattr(ml_dtypes, dtype))
    return np.dtype(dtype)


def _rand(shape, dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 3).astype(_np(dtype))


# ---------------------------------------------------------------------------------------------
# T.copy / T.fill / T.clear

def copy_ragged(name: str, dtype: str, path: str) -> Prog:
    """A 50x70 tensor in 32x32 tiles (grid 3x2): the last row and column of tiles hang over the
    edge. `path` is the route of a tile: "sf" global->shared->fragment->global, "fs"
    global->fragment->shared->global. R[tile, row] is the row sum of the whole tile after
    x*2+1, padding included: it shows what the out-of-bounds part of a loaded tile holds."""
    if path == "sf":
        body = """T.copy(A[by * 32, bx * 32], S)
        T.copy(S, F)
        for i, j in T.Parallel(32, 32):
            F[i, j] = F[i, j] * 2 + 1
        T.reduce_sum(F, r, dim=1)
        T.copy(F, B[by * 32, bx * 32])"""
    else:
        body = """T.copy(A[by * 32, bx * 32], F)
        for i, j in T.Parallel(32, 32):
            F[i, j] = F[i, j] * 2 + 1
        T.reduce_sum(F, r, dim=1)
        T.copy(F, S)
        T.copy(S, B[by * 32, bx * 32])"""
    src = f"""
@T.prim_func
def main(A: T.Tensor((50, 70), "{dtype}"), B: T.Tensor((50, 70), "{dtype}"), R: T.Tensor((6, 32), "{dtype}")):
    with T.Kernel(3, 2, threads=128) as (bx, by):
        S = T.alloc_shared((32, 32), "{dtype}")
        F = T.alloc_fragment((32, 32), "{dtype}")
        r = T.alloc_fragment((32,), "{dtype}")
        {body}
        for i in T.Parallel(32):
            R[by * 3 + bx, i] = r[i]
"""
    return Prog(name, src, lambda: [np.round(_rand((50, 70), dtype, 21))], [((50, 70), dtype), ((6, 32), dtype)],
                grid=(3, 2))


def copy_ragged_rows(name: str) -> Prog:
    """Ragged along rows only, 1-D grid, bf16 through a swizzled shared tile into a fragment."""
    src = """
@T.prim_func
def main(A: T.Tensor((45, 64), "bfloat16"), B: T.Tensor((45, 64), "bfloat16")):
    with T.Kernel(3, threads=128) as bx:
        S = T.alloc_shared((16, 64), "bfloat16")
        F = T.alloc_fragment((16, 64), "bfloat16")
        T.annotate_layout({S: tilelang.layout.make_swizzled_layout(S)})
        T.copy(A[bx * 16:(bx + 1) * 16, 0:64], S)
        T.copy(S, F)
        for i, j in T.Parallel(16, 64):
            F[i, j] = -F[i, j]
        T.copy(F, B[bx * 16:(bx + 1) * 16, 0:64])
"""
    return Prog(name, src, lambda: [_rand((45, 64), "bfloat16", 22)], [((45, 64), "bfloat16")], grid=(3,))


def copy_slices_3d(name: str, store_3d: bool) -> Prog:
    """A 2-D slice of a 3-D tensor into part of a shared tile, T.fill and T.clear on slices of
    shared memory, the tile back to a 3-D slice (store_3d) or to a 2-D tensor."""
    store = "T.copy(S, B[bz, 0:32, 0:32])" if store_3d else "T.copy(S, B[bz * 32:(bz + 1) * 32, 0:32])"
    b_shape = (3, 32, 32) if store_3d else (96, 32)
    src = f"""
@T.prim_func
def main(A: T.Tensor((3, 40, 40), "float32"), B: T.Tensor({b_shape}, "float32")):
    with T.Kernel(3, threads=128) as bz:
        S = T.alloc_shared((32, 32), "float32")
        T.fill(S, 9.0)
        T.copy(A[bz, 4:28, 2:34], S[0:24, 0:32])
        T.fill(S[24:32, 0:16], -1.5)
        T.clear(S[24:32, 16:32])
        {store}
"""
    return Prog(name, src, lambda: [_rand((3, 40, 40), "float32", 23)], [(b_shape, "float32")], grid=(3,))


def copy_slices_fragment(name: str) -> Prog:
    """T.fill / T.clear on row slices of a fragment. (Column slices, T.clear(F[16:32, 16:32]), and
    a fragment slice stored to global memory, T.copy(F[8:16, 8:24], C), TileLang 0.1.15 cannot
    lower: "Could not normalize iterators".)"""
    clear = "T.clear(F[24:32, 0:32])"
    src = f"""
@T.prim_func
def main(A: T.Tensor((32, 32), "float32"), B: T.Tensor((32, 32), "float32")):
    with T.Kernel(1, threads=128) as bx:
        F = T.alloc_fragment((32, 32), "float32")
        T.copy(A, F)
        T.fill(F[4:12, 0:32], 3.0)
        {clear}
        T.copy(F, B)
"""
    return Prog(name, src, lambda: [_rand((32, 32), "float32", 24)], [((32, 32), "float32")])


def copy_transposed_view(name: str) -> Prog:
    """A tile read into shared memory, written transposed through T.Parallel into a second shared
    tile, into a fragment and a 3-D global slice: element-wise copies between layouts."""
    src = """
@T.prim_func
def main(A: T.Tensor((48, 40), "float16"), B: T.Tensor((2, 40, 48), "float16")):
    with T.Kernel(2, threads=64) as bx:
        S = T.alloc_shared((48, 40), "float16")
        St = T.alloc_shared((40, 48), "float16")
        F = T.alloc_fragment((40, 48), "float16")
        T.copy(A, S)
        for i, j in T.Parallel(40, 48):
            St[i, j] = S[j, i] * T.float16(bx + 1)
        T.copy(St, F)
        T.copy(F, B[bx, 0:40, 0:48])
"""
    return Prog(name, src, lambda: [_rand((48, 40), "float16", 25)], [((2, 40, 48), "float16")], grid=(2,))


def copy_gemm_fragment(name: str) -> Prog:
    """A GEMM accumulator (the MMA fragment layout) copied to a fragment of the default layout,
    to shared memory and to global memory."""
    src = """
@T.prim_func
def main(A: T.Tensor((32, 32), "float16"), B: T.Tensor((32, 32), "float16"), C: T.Tensor((32, 32), "float32"),
         D: T.Tensor((32, 32), "float32")):
    with T.Kernel(1, threads=128) as bx:
        A_s = T.alloc_shared((32, 32), "float16")
        B_s = T.alloc_shared((32, 32), "float16")
        C_f = T.alloc_fragment((32, 32), "float32")
        C_s = T.alloc_shared((32, 32), "float32")
        D_f = T.alloc_fragment((32, 32), "float32")
        T.copy(A, A_s)
        T.copy(B, B_s)
        T.gemm(A_s, B_s, C_f, clear_accum=True)
        T.copy(C_f, C_s)
        T.copy(C_s, C)
        T.copy(C_f, D_f)
        for i, j in T.Parallel(32, 32):
            D_f[i, j] = D_f[i, j] + T.Cast("float32", i * 32 + j)
        T.copy(D_f, D)
"""
    return Prog(name, src, lambda: [_ints_as((32, 32), "float16", 26), _ints_as((32, 32), "float16", 27)],
                [((32, 32), "float32"), ((32, 32), "float32")])


# ---------------------------------------------------------------------------------------------
# T.reduce_*

FLOAT_INIT = [NAN, INF, -INF, -0.0, 0.0, 1.0, -1.0, 1e38, -3.5, 2.0, 100.0, -1e-40, 0.5, -2.0, 7.0, -7.0]


def reduce_input(dtype: str) -> np.ndarray:
    """16x32 with NaN/inf/-0 placed so that rows (dim=1) and columns (dim=0) both meet them."""
    a = _rand((16, 32), "float64", 31)
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        rng = np.random.default_rng(32)
        return rng.integers(info.min, info.max, (16, 32), dtype=dtype, endpoint=True)
    # rows 0-9 and columns 0-15 meet the specials; rows 10-15 and columns 16-31 (but 20-25, 30)
    # stay finite, where a sum's order shows in its last bits
    a[0, 3] = NAN
    a[1, 13:16] = NAN
    a[2, 5] = INF
    a[3, 7] = -INF
    a[4, 0], a[4, 1] = INF, -INF
    a[5, :] = -0.0
    a[:10, 10] = -0.0
    a[:10, 11] = INF
    a[7, 11] = -INF
    a[:10, 12] = 3e38
    a[8, 20:26] = 3e38 * np.resize([1, -1], 6)
    a[9, :] = -1e-40
    a[:, 30] = -1e-40
    a[10:, :] *= np.exp(np.random.default_rng(33).uniform(-10, 10, (6, 32)))
    with np.errstate(over="ignore"):
        return a.astype(dtype)


def reduce_prog(name: str, op: str, dtype: str, dim: int, clear: bool, dst: str, src: str = "fragment") -> Prog:
    """T.<op>(A_tile, B_tile, dim, clear) with B_tile loaded from B0 first: with clear=False the
    result folds B0's values (NaN, ±inf, ±0 among them) in. (B0 is not B: the threads that hold
    a replicated element would read and write B with no barrier between.)"""
    n_out = 32 if dim == 0 else 16
    clear_arg = "" if op == "reduce_abssum" else f", clear={clear}"  # 0.1.15's abssum always clears
    src_text = f"""
@T.prim_func
def main(A: T.Tensor((16, 32), "{dtype}"), B0: T.Tensor(({n_out},), "{dtype}"), B: T.Tensor(({n_out},), "{dtype}")):
    with T.Kernel(1, threads=128) as bx:
        A_t = T.alloc_{src}((16, 32), "{dtype}")
        B_t = T.alloc_{dst}(({n_out},), "{dtype}")
        T.copy(A, A_t)
        T.copy(B0, B_t)
        T.{op}(A_t, B_t, dim={dim}{clear_arg})
        T.copy(B_t, B)
"""
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        b0 = np.resize(np.array([0, -1, info.max, info.min, 5, -77, 0x5555, 1], np.int64).astype(dtype), n_out)
        a = reduce_input(dtype)
        if op == "reduce_sum":  # no signed overflow (UB in C): small values
            a = (a % 1000).astype(dtype)
    else:
        with np.errstate(over="ignore"):  # 1e38 is inf in float16
            b0 = np.resize(np.array(FLOAT_INIT, dtype=dtype), n_out)
        a = reduce_input(dtype)
    order = op in ("reduce_sum", "reduce_abssum") and not dtype.startswith(("int", "uint"))
    return Prog(name, src_text, lambda: [a.copy(), b0.copy()], [((n_out,), dtype)], cpu_order=order)


def _reduce_progs() -> list[Prog]:
    out = []
    for op in ["reduce_sum", "reduce_max", "reduce_min", "reduce_absmax"]:
        for dim in (0, 1):
            out.append(reduce_prog(f"{op}_noclear_d{dim}_f32", op, "float32", dim, False, "fragment"))
        out.append(reduce_prog(f"{op}_noclear_d1_shared_f32", op, "float32", 1, False, "shared"))
        out.append(reduce_prog(f"{op}_clear_d0_f32", op, "float32", 0, True, "fragment"))
    for dim in (0, 1):  # TileLang 0.1.15's reduce_abssum has no clear=: it always clears
        out.append(reduce_prog(f"reduce_abssum_d{dim}_f32", "reduce_abssum", "float32", dim, True, "fragment"))
    out.append(reduce_prog("reduce_abssum_d1_shared_f32", "reduce_abssum", "float32", 1, True, "shared"))
    for op in ["reduce_max", "reduce_sum"]:
        out.append(reduce_prog(f"{op}_noclear_d1_f16", op, "float16", 1, False, "fragment"))
        out.append(reduce_prog(f"{op}_srcshared_d1_f32", op, "float32", 1, False, "shared", src="shared"))
    for op in ["reduce_bitand", "reduce_bitor", "reduce_bitxor", "reduce_sum", "reduce_max", "reduce_min"]:
        for dim in (0, 1):
            out.append(reduce_prog(f"{op}_noclear_d{dim}_i32", op, "int32", dim, False, "fragment"))
        out.append(reduce_prog(f"{op}_clear_d1_shared_i32", op, "int32", 1, True, "shared"))
    out.append(reduce_prog("reduce_bitxor_noclear_d0_u32", "reduce_bitxor", "uint32", 0, False, "fragment"))
    out.append(reduce_prog("reduce_max_noclear_d1_i64", "reduce_max", "int64", 1, False, "fragment"))
    return out


# ---------------------------------------------------------------------------------------------
# T.cumsum (forward only) / T.cummax

def scan_prog(name: str, op: str, dtype: str, dim: int, scope: str, separate_dst: bool) -> Prog:
    dst_alloc = f'D = T.alloc_{scope}((16, 32), "{dtype}")' if separate_dst else ""
    call = f"T.{op}(S, D, dim={dim})" if separate_dst else f"T.{op}(S, dim={dim})"
    out = "D" if separate_dst else "S"
    src = f"""
@T.prim_func
def main(A: T.Tensor((16, 32), "{dtype}"), B: T.Tensor((16, 32), "{dtype}")):
    with T.Kernel(1, threads=128) as bx:
        S = T.alloc_{scope}((16, 32), "{dtype}")
        {dst_alloc}
        T.copy(A, S)
        {call}
        T.copy({out}, B)
"""
    return Prog(name, src, lambda: [reduce_input(dtype)], [((16, 32), dtype)])  # every target: TileLang's order


def _scan_progs() -> list[Prog]:
    out = []
    for op in ["cumsum", "cummax"]:
        for dim in (0, 1):
            out.append(scan_prog(f"{op}_d{dim}_shared_f32", op, "float32", dim, "shared", False))
        out.append(scan_prog(f"{op}_d1_fragment_f32", op, "float32", 1, "fragment", True))
        out.append(scan_prog(f"{op}_d0_shared_dst_f32", op, "float32", 0, "shared", True))
        out.append(scan_prog(f"{op}_d1_shared_i32", op, "int32", 1, "shared", False))
    out.append(scan_prog("cumsum_d1_shared_f16", "cumsum", "float16", 1, "shared", False))
    return out


# ---------------------------------------------------------------------------------------------
# T.gemm

def _ints_as(shape, dtype: str, seed: int, lo: int = -4, hi: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(lo, hi, shape, endpoint=True).astype(_np(dtype))


def gemm_prog(name: str, M: int, N: int, K: int, dab: str = "float16", dacc: str = "float32", ta: bool = False,
              tb: bool = False, bm: int = 32, bn: int = 32, bk: int = 32, threads: int = 128,
              policy: str = "Square", clear_accum: bool = False, exact: bool = True) -> Prog:
    """C = C0 + A @ B over ceil(M/bm) x ceil(N/bn) blocks and ceil(K/bk) k-steps. With clear_accum
    the last k-step's product alone remains (each step clears the accumulator)."""
    a_shape, a_tile, a_at = ((K, M), (bk, bm), "ko * {bk}, by * {bm}") if ta else ((M, K), (bm, bk), "by * {bm}, ko * {bk}")
    b_shape, b_tile, b_at = ((N, K), (bn, bk), "bx * {bn}, ko * {bk}") if tb else ((K, N), (bk, bn), "ko * {bk}, bx * {bn}")
    fmt = {"bm": bm, "bn": bn, "bk": bk}
    gx, gy, gk = -(-N // bn), -(-M // bm), -(-K // bk)
    src = f"""
@T.prim_func
def main(A: T.Tensor({a_shape}, "{dab}"), B: T.Tensor({b_shape}, "{dab}"), C: T.Tensor(({M}, {N}), "{dacc}")):
    with T.Kernel({gx}, {gy}, threads={threads}) as (bx, by):
        A_s = T.alloc_shared({a_tile}, "{dab}")
        B_s = T.alloc_shared({b_tile}, "{dab}")
        C_f = T.alloc_fragment(({bm}, {bn}), "{dacc}")
        T.copy(C[by * {bm}, bx * {bn}], C_f)
        for ko in T.serial({gk}):
            T.copy(A[{a_at.format(**fmt)}], A_s)
            T.copy(B[{b_at.format(**fmt)}], B_s)
            T.gemm(A_s, B_s, C_f, transpose_A={ta}, transpose_B={tb}, policy=T.GemmWarpPolicy.{policy},
                   clear_accum={clear_accum})
        T.copy(C_f, C[by * {bm}, bx * {bn}])
"""
    if exact:
        lo, hi = (-4, 4) if not dab.startswith("uint") else (0, 8)
        ins = lambda: [_ints_as(a_shape, dab, 41, lo, hi), _ints_as(b_shape, dab, 42, lo, hi)]  # noqa: E731
        c0 = lambda: [_ints_as((M, N), dacc, 43, -50, 50)]  # noqa: E731
        return Prog(name, src, ins, [((M, N), dacc)], grid=(gx, gy), out_init=c0, tags=["inout"])
    ins = lambda: [_rand(a_shape, dab, 44), _rand(b_shape, dab, 45)]  # noqa: E731
    c0 = lambda: [_rand((M, N), dacc, 46)]  # noqa: E731
    return Prog(name, src, ins, [((M, N), dacc)], grid=(gx, gy), out_init=c0, tags=["inout"], atol=2e-3,
                why="random operands: the MMA's and tilewise's summation orders legitimately differ")


def _gemm_progs() -> list[Prog]:
    out = []
    for ta in (False, True):
        for tb in (False, True):
            t = f"{'t' if ta else 'n'}{'t' if tb else 'n'}"
            out.append(gemm_prog(f"gemm_{t}_f16", 32, 32, 64, ta=ta, tb=tb))
            out.append(gemm_prog(f"gemm_{t}_ragged_f16", 20, 24, 40, ta=ta, tb=tb))
    for dab, dacc, short in [("bfloat16", "float32", "bf16"), ("int8", "int32", "i8"),
                             ("float8_e4m3fn", "float32", "e4m3"), ("float8_e5m2", "float32", "e5m2"),
                             ("float16", "float16", "f16acc16")]:
        out.append(gemm_prog(f"gemm_nt_{short}", 32, 32, 64, dab=dab, dacc=dacc, tb=True))
        out.append(gemm_prog(f"gemm_nn_ragged_{short}", 20, 24, 40, dab=dab, dacc=dacc))
        if dab.startswith("float8"):
            for p in out[-2:]:
                p.skip = ("TileLang's fp8 MMA is cute's SM89 mma.m16n8k32 (on sm_80 it traps in "
                          "__assertfail) and the PTX interpreter has no e4m3/e5m2 mma")
    out.append(gemm_prog("gemm_tn_int8", 32, 32, 64, dab="int8", dacc="int32", ta=True))
    out.append(gemm_prog("gemm_nn_clear_accum_f16", 32, 32, 64, clear_accum=True))
    out.append(gemm_prog("gemm_nt_clear_accum_ragged_f16", 20, 24, 40, tb=True, clear_accum=True))
    for policy in ["FullRow", "FullCol", "Square"]:
        out.append(gemm_prog(f"gemm_nn_{policy}_f16", 64, 64, 32, bm=64, bn=64, policy=policy))
    out.append(gemm_prog("gemm_nn_small_k16_f16", 16, 16, 16, bm=16, bn=16, bk=16, threads=32))
    out.append(gemm_prog("gemm_nn_ragged_k7_f16", 9, 11, 7, bm=16, bn=16, bk=16, threads=32))
    out.append(gemm_prog("gemm_nt_random_f16", 32, 32, 64, tb=True, exact=False))
    out.append(gemm_prog("gemm_tt_random_bf16", 32, 32, 64, dab="bfloat16", ta=True, tb=True, exact=False))
    return out


TILE_PROGRAMS: list[Prog] = [
    copy_ragged("copy_ragged_sf_f32", "float32", "sf"),
    copy_ragged("copy_ragged_fs_f16", "float16", "fs"),
    copy_ragged_rows("copy_ragged_swizzled_bf16"),
    copy_slices_3d("copy_slices_3d_f32", True),
    copy_slices_3d("copy_slices_3d_to_2d_f32", False),
    copy_slices_fragment("copy_slices_fragment_rows_f32"),
    copy_transposed_view("copy_transposed_f16"),
    copy_gemm_fragment("copy_gemm_fragment_f16"),
    *_reduce_progs(),
    *_scan_progs(),
    *_gemm_progs(),
]
