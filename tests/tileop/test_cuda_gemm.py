"""T.gemm on the CUDA target (mma.sync with ldmatrix operands): every operand type the target
supports, all transposes, a register A operand, the warp policies, 64..256 threads,
clear_accum, software pipelines of 2-4 stages with explicit order/stage, in the emulator against
numpy; NVRTC builds for sm_80 and sm_90a without spills, with HMMA and LDSM (and LDGSTS when
pipelined) in the SASS; and the canonical GEMM and a FlashAttention forward within 232
registers."""
from __future__ import annotations

import functools

import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.backend.cuda.inspect import instruction_mix, steady_state_loop
from tilewise.layout.mma import choose_warp_grid

NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32, "float64": np.float64,
      "int8": np.int8, "uint8": np.uint8}


@functools.cache
def gemm_kernel(bm=64, bn=64, bk=32, in_a="float16", in_b=None, acc="float32", trans_A=False, trans_B=False,
                a_frag=False, b_frag=False, threads=128, policy="Square", stages=2, clear_accum=False, order=None, stage=None,
                out=None, static=None):
    """A tiled GEMM; symbolic M, N, K unless `static` gives them (copies of a tensor whose row
    length is only known at run time cannot use vector loads, so SASS checks use static shapes)."""
    in_b = in_b or in_a
    out = out or acc
    M, N, K = static or (T.symbolic("M"), T.symbolic("N"), T.symbolic("K"))
    a_shape, a_tile = ((K, M), (bk, bm)) if trans_A else ((M, K), (bm, bk))
    b_shape, b_tile = ((N, K), (bn, bk)) if trans_B else ((K, N), (bk, bn))
    pol = getattr(T.GemmWarpPolicy, policy)
    extra = {} if order is None else {"order": order, "stage": stage}

    @T.prim_func
    def gemm(A: T.Tensor(a_shape, in_a), B: T.Tensor(b_shape, in_b), C: T.Tensor((M, N), out)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=threads) as (bx, by):
            A_s = T.alloc_shared(a_tile, in_a)
            B_s = T.alloc_shared(b_tile, in_b)
            A_f = T.alloc_fragment((bm, bk), in_a)
            B_f = T.alloc_fragment((bk, bn), in_b)
            C_f = T.alloc_fragment((bm, bn), acc)
            if clear_accum:
                T.fill(C_f, 7)  # discarded by clear_accum
            else:
                T.clear(C_f)
            for k in T.Pipelined(T.ceildiv(K, bk), num_stages=stages, **extra):
                if trans_A:
                    T.copy(A[k * bk, by * bm], A_s)
                else:
                    T.copy(A[by * bm, k * bk], A_s)
                if trans_B:
                    T.copy(B[bx * bn, k * bk], B_s)
                else:
                    T.copy(B[k * bk, bx * bn], B_s)
                if b_frag:
                    if a_frag:
                        T.copy(A_s, A_f)
                    T.copy(B_s, B_f)
                    T.gemm(A_f if a_frag else A_s, B_f, C_f, transpose_A=trans_A, policy=pol)
                elif a_frag:
                    T.copy(A_s, A_f)
                    T.gemm(A_f, B_s, C_f, transpose_B=trans_B, policy=pol, clear_accum=clear_accum)
                else:
                    T.gemm(A_s, B_s, C_f, transpose_A=trans_A, transpose_B=trans_B, policy=pol,
                           clear_accum=clear_accum)
            T.copy(C_f, C[by * bm, bx * bn])

    return gemm


def _rand(rng, shape, dtype):
    if dtype in ("int8", "uint8"):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.standard_normal(shape).astype(np.float32).astype(NP[dtype])


def run_gemm(emu, rng, M, N, K, tol, **kw):
    k = emu(gemm_kernel(**kw), out_idx=[-1])
    in_a = kw.get("in_a", "float16")
    in_b = kw.get("in_b") or in_a
    tA, tB = kw.get("trans_A", False), kw.get("trans_B", False)
    a = _rand(rng, (K, M) if tA else (M, K), in_a)
    b = _rand(rng, (N, K) if tB else (K, N), in_b)
    c = k(a, b)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if kw.get("clear_accum"):  # only the last K tile's product survives
        bk = kw.get("bk", 32)
        k0 = (K - 1) // bk * bk
        a64 = a64[k0:] if tA else a64[:, k0:]
        b64 = b64[:, k0:] if tB else b64[k0:]
    ref = (a64.T if tA else a64) @ (b64.T if tB else b64)
    if tol == 0:
        np.testing.assert_array_equal(c.astype(np.int64), ref.astype(np.int64))
    else:
        np.testing.assert_allclose(c.astype(np.float64), ref, rtol=tol, atol=tol * max(1.0, np.abs(ref).max()))


CASES = {
    # name: (kernel arguments, (M, N, K), tolerance)
    "f16-nn": (dict(), (70, 100, 96), 1e-3),
    "f16-nt": (dict(trans_B=True), (64, 64, 64), 1e-3),
    "f16-tn": (dict(trans_A=True), (64, 128, 64), 1e-3),
    "f16-tt": (dict(trans_A=True, trans_B=True), (100, 70, 40), 1e-3),
    "bf16": (dict(in_a="bfloat16", stages=3), (64, 64, 96), 1e-2),
    "f16-acc16": (dict(acc="float16"), (64, 64, 64), 2e-2),
    "i8-nt": (dict(in_a="int8", acc="int32", trans_B=True, bk=64), (64, 70, 130), 0),
    "u8xi8-nt": (dict(in_a="uint8", in_b="int8", acc="int32", trans_B=True, bk=64), (64, 64, 64), 0),
    "tf32-nt": (dict(in_a="float32", trans_B=True), (64, 64, 64), 5e-3),
    "i8-nn": (dict(in_a="int8", acc="int32", bk=64), (64, 64, 128), 0),
    "i8-tn": (dict(in_a="int8", acc="int32", trans_A=True, bk=64), (64, 64, 64), 0),
    "f64-simt": (dict(in_a="float64", acc="float64", bk=16, stages=0), (40, 48, 40), 1e-12),
    "rs": (dict(a_frag=True), (64, 96, 96), 1e-3),
    "rs-nt": (dict(a_frag=True, trans_B=True, policy="FullRow"), (64, 64, 64), 1e-3),
    "rs-i8": (dict(in_a="int8", acc="int32", trans_B=True, bk=64, a_frag=True), (64, 64, 128), 0),
    "b-frag": (dict(b_frag=True, policy="FullCol"), (64, 64, 64), 1e-3),
    "ab-frag-i8": (dict(in_a="int8", acc="int32", bk=64, a_frag=True, b_frag=True), (64, 64, 128), 0),
    "ab-frag-bf16": (dict(in_a="bfloat16", a_frag=True, b_frag=True, threads=256), (64, 64, 64), 1e-2),
    "fullrow-256": (dict(bm=128, bn=64, threads=256, policy="FullRow"), (128, 64, 64), 1e-3),
    "fullcol-256": (dict(bm=64, bn=128, threads=256, policy="FullCol"), (64, 128, 64), 1e-3),
    "square-64thr": (dict(threads=64), (64, 64, 64), 1e-3),
    "square-256thr-128": (dict(bm=128, bn=128, threads=256), (128, 128, 64), 1e-3),
    "clear-accum": (dict(clear_accum=True), (64, 64, 96), 1e-3),
    "stages4": (dict(stages=4), (64, 64, 160), 1e-3),
    "order-stage": (dict(stages=3, order=(0, 1, 2), stage=(0, 0, 2)), (64, 64, 128), 1e-3),
    "serial": (dict(stages=0), (64, 64, 64), 1e-3),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gemm_in_the_emulator(emu, case, rng):
    kw, (M, N, K), tol = CASES[case]
    run_gemm(emu, rng, M, N, K, tol, **kw)


@pytest.mark.parametrize("case", sorted(CASES))
def test_gemm_sass(nvrtc_check, case):
    kw = CASES[case][0]
    int8 = kw.get("in_a") in ("int8", "uint8")
    expect = [("HMMA", "IMMA") if int8 else "HMMA"]  # integer mma is IMMA
    # ldmatrix: not for 32-bit (tf32) operands, nor for 8-bit ones it would have to transpose,
    # nor when both operands come from registers
    bytewise = int8 and (kw.get("trans_A") or not kw.get("trans_B"))
    if not (kw.get("in_a") == "float32" or bytewise or (kw.get("a_frag") and kw.get("b_frag"))):
        expect.append("LDSM")
    if kw.get("stages", 2) > 1:
        expect.append("LDGSTS")
    if kw.get("in_a") == "float64":
        expect = ["DFMA"]  # no tensor-core form: FMAs
    func = gemm_kernel(**kw, static=(256, 256, 256))
    nvrtc_check(func, expect=expect, archs=("sm_80",))
    nvrtc_check(func, archs=("sm_90a",))
    assert_notes_match_sass(func, "sm_90a")


def assert_notes_match_sass(func, arch):
    """What lowering_notes() says a kernel became is what its SASS holds: wgmma <-> HGMMA,
    mma.sync <-> HMMA/IMMA, TMA <-> UTMALDG."""
    k = tilewise.compile(func, target=f"cuda -arch={arch}", execution_backend="emulator")
    notes = " ".join(k.lowering_notes())
    mix = instruction_mix(k.get_sass(), ["HGMMA", "IGMMA", "QGMMA", "HMMA", "IMMA", "UTMALDG"])
    assert (": wgmma." in notes) == (mix["HGMMA"] + mix["IGMMA"] + mix["QGMMA"] > 0), (notes, mix)  # int8, fp8
    assert (": mma.sync" in notes) == (mix["HMMA"] + mix["IMMA"] > 0), (notes, mix)
    assert (": TMA" in notes) == (mix["UTMALDG"] > 0), (notes, mix)


# ------------------------------------------------------------------------------- canonical kernels


def canonical_gemm():
    return gemm_kernel(bm=128, bn=128, bk=32, stages=3, threads=128, static=(1024, 1024, 1024))


def test_canonical_gemm_registers_and_sass(archs, emu, nvrtc_check, rng):
    # TileLang 0.1.15 gives this kernel 224 registers (nvcc 13.0)
    use = nvrtc_check(canonical_gemm(), expect={"sm_80": ("HMMA", "LDSM", "LDGSTS")}, archs=("sm_80",),
                      max_registers=224)
    # sm_90a is warp-specialised: the entry count is the consumers' setmaxnreg budget (240)
    use |= nvrtc_check(canonical_gemm(), expect={"sm_90a": ("HGMMA", "UTMALDG", "SYNCS", "USETMAXREG")},
                       archs=("sm_90a",), max_registers=240)
    k = tilewise.compile(canonical_gemm(), target="cuda -arch=sm_80", execution_backend="emulator")
    loop = steady_state_loop(k.get_sass())
    # the steady state unrolled by the 3 stages: three K steps of 4 x 8 mma per warp x 2 k16,
    # every shared address a base + immediate; TileLang 0.1.15 needs 2.23 instructions per HMMA
    assert loop.mix()["HMMA"] == 3 * 64, loop.mix()
    assert len(loop) <= 2.0 * 3 * 64, (len(loop), loop.mix())
    k = tilewise.compile(canonical_gemm(), target="cuda -arch=sm_90a", execution_backend="emulator")
    loop = steady_state_loop(k.get_sass())
    mix = loop.mix(["HGMMA", "HMMA", "LDGSTS"])
    # one K step of 32: two k16 wgmma on each of the two m64 atoms; no Ampere instructions
    assert mix["HGMMA"] == 4 and mix["HMMA"] == mix["LDGSTS"] == 0, mix
    # the consumers' loop (its natural loop: not the epilogue and producer code around an
    # out-of-line mbarrier retry); descriptors are the tile's plus an offset: TileLang 0.1.15
    # needs 15 instructions per HGMMA here
    assert len(loop) <= 15 * mix["HGMMA"], (len(loop), loop.mix())
    print("canonical GEMM", use)
    run_gemm(emu, rng, 256, 128, 96, 1e-3, bm=128, bn=128, bk=32, stages=3, threads=128, static=(256, 128, 96))


def test_unrolled_steady_state_with_steps_left_over(emu, rng):
    """A static trip count unrolls the steady state by the stage count: 9 K steps over 3 stages
    are two unrolled trips, then one step left over (with the slot register)."""
    run_gemm(emu, rng, 64, 64, 288, 1e-3, stages=3, static=(64, 64, 288))
    k = tilewise.compile(gemm_kernel(stages=3, static=(64, 64, 288)), target="cuda -arch=sm_80",
                         execution_backend="emulator")
    parts = [ln for ln in k.get_kernel_source().splitlines() if "for (int32_t k_steady" in ln]
    assert len(parts) == 2 and "k_steady < 2;" in parts[0] and "k_steady_rest" in parts[1], parts


@functools.cache
def flash_attention(batch=1, heads=1, seq=128, dim=128, bM=128, bN=64, threads=256, stages=2):
    shape = (batch, seq, heads, dim)
    scale = (1.0 / dim) ** 0.5 * 1.44269504

    @T.prim_func
    def fa(Q: T.Tensor(shape, "float16"), K: T.Tensor(shape, "float16"), V: T.Tensor(shape, "float16"),
           O: T.Tensor(shape, "float16")):
        with T.Kernel(T.ceildiv(seq, bM), heads, batch, threads=threads) as (bx, by, bz):
            Q_s = T.alloc_shared((bM, dim), "float16")
            K_s = T.alloc_shared((bN, dim), "float16")
            V_s = T.alloc_shared((bN, dim), "float16")
            acc_s = T.alloc_fragment((bM, bN), "float")
            acc_s_cast = T.alloc_fragment((bM, bN), "float16")
            acc_o = T.alloc_fragment((bM, dim), "float")
            m = T.alloc_fragment((bM,), "float")
            m_prev = T.alloc_fragment((bM,), "float")
            sc = T.alloc_fragment((bM,), "float")
            lsum = T.alloc_fragment((bM,), "float")
            l_cur = T.alloc_fragment((bM,), "float")
            T.copy(Q[bz, bx * bM:(bx + 1) * bM, by, :], Q_s)
            T.fill(acc_o, 0)
            T.fill(lsum, 0)
            T.fill(m, -T.infinity("float"))
            for k in T.Pipelined(T.ceildiv(seq, bN), num_stages=stages):
                T.copy(K[bz, k * bN:(k + 1) * bN, by, :], K_s)
                T.clear(acc_s)
                T.gemm(Q_s, K_s, acc_s, transpose_B=True, policy=T.GemmWarpPolicy.FullRow)
                for i, j in T.Parallel(bM, bN):
                    acc_s[i, j] = T.if_then_else(k * bN + j < seq, acc_s[i, j], -T.infinity("float"))
                T.copy(m, m_prev)
                T.reduce_max(acc_s, m, dim=1, clear=False)
                for i in T.Parallel(bM):
                    sc[i] = T.exp2(m_prev[i] * scale - m[i] * scale)
                for i, j in T.Parallel(bM, bN):
                    acc_s[i, j] = T.exp2(acc_s[i, j] * scale - m[i] * scale)
                T.reduce_sum(acc_s, l_cur, dim=1)
                for i in T.Parallel(bM):
                    lsum[i] = lsum[i] * sc[i] + l_cur[i]
                for i, j in T.Parallel(bM, dim):
                    acc_o[i, j] *= sc[i]
                T.copy(acc_s, acc_s_cast)
                T.copy(V[bz, k * bN:(k + 1) * bN, by, :], V_s)
                T.gemm(acc_s_cast, V_s, acc_o, policy=T.GemmWarpPolicy.FullRow)
            for i, j in T.Parallel(bM, dim):
                acc_o[i, j] /= lsum[i]
            T.copy(acc_o, O[bz, bx * bM:(bx + 1) * bM, by, :])

    return fa


def attention_ref(q, k, v):
    qf, kf, vf = (x.astype(np.float32).transpose(0, 2, 1, 3) for x in (q, k, v))
    s = qf @ kf.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p @ vf).transpose(0, 2, 1, 3)


def test_flash_attention_registers_and_sass(nvrtc_check):
    use = nvrtc_check(flash_attention(), expect={"sm_80": ("HMMA", "LDSM", "LDGSTS", "SHFL"),
                                                 "sm_90a": ("HGMMA", "UTMALDG", "SHFL")}, max_registers=232)
    assert_notes_match_sass(flash_attention(), "sm_90a")
    print("FlashAttention", use)


@pytest.mark.parametrize("seq,bM,bN,threads", [(128, 64, 32, 128), (96, 64, 64, 128)])
def test_flash_attention_in_the_emulator(emu, seq, bM, bN, threads, rng):
    f = flash_attention(batch=1, heads=2, seq=seq, dim=64, bM=bM, bN=bN, threads=threads)
    q, k, v = (rng.standard_normal((1, seq, 2, 64)).astype(np.float16) for _ in range(3))
    o = emu(f, out_idx=[-1])(q, k, v)
    np.testing.assert_allclose(o.astype(np.float32), attention_ref(q, k, v), atol=2e-3, rtol=1e-2)


# ------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("kw, match", [
    (dict(in_a="float16", bk=24), "K=24 must be a multiple of 16 for mma.m16n8k16"),
])
def test_refusals_name_the_problem(emu, kw, match):
    with pytest.raises(tilewise.CompileError, match=match):
        emu(gemm_kernel(**kw))


def test_only_copies_can_be_producer_entries(emu):
    # -1 marks what the (warp-specialised) producer issues: copies into shared memory, not a gemm
    with pytest.raises(tilewise.CompileError, match="stage=-1 marks group 2 as copies"):
        emu(gemm_kernel(stages=2, order=(0, 1, -1), stage=(0, 0, -1)))


@functools.cache
def sub_tile_gemm(partial_c=False):
    """Operands that are slices of bigger shared tiles: a stage of a 3-D buffer and half of its K
    columns (leading dimensions wider than the tile)."""
    M, N, K = T.symbolic("M"), T.symbolic("N"), T.symbolic("K")
    bm, bn, bk = 64, 32, 32

    @T.prim_func
    def subtile(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared((2, bm, 2 * bk), "float16")
            B_s = T.alloc_shared((2, 2 * bk, bn), "float16")
            C_l = T.alloc_fragment((bm, 2 * bn), "float32")
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            for k in T.serial(T.ceildiv(K, 2 * bk)):
                T.copy(A[by * bm, k * 2 * bk], A_s[k % 2, :, :])
                T.copy(B[k * 2 * bk, bx * bn], B_s[k % 2, :, :])
                T.gemm(A_s[k % 2, :, 0:bk], B_s[k % 2, 0:bk, :], C_f)
                T.gemm(A_s[k % 2, :, bk:2 * bk], B_s[k % 2, bk:2 * bk, :], C_f)
                if partial_c:
                    T.gemm(A_s[k % 2, :, 0:bk], B_s[k % 2, 0:bk, :], C_l[:, bn:2 * bn])
            T.copy(C_f, C[by * bm, bx * bn])

    return subtile


def test_gemm_on_slices_of_shared_tiles(emu, nvrtc_check, rng):
    k = emu(sub_tile_gemm(), out_idx=[-1])
    for M, N, K in ((64, 32, 64), (70, 50, 130)):
        a = rng.standard_normal((M, K)).astype(np.float16)
        b = rng.standard_normal((K, N)).astype(np.float16)
        ref = a.astype(np.float64) @ b.astype(np.float64)
        np.testing.assert_allclose(k(a, b), ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
    nvrtc_check(sub_tile_gemm(), expect=("HMMA", "LDSM"))


def test_gemm_into_part_of_a_fragment_is_refused(emu):
    with pytest.raises(tilewise.CompileError, match="T.gemm: on the CUDA target a fragment operand must be the whole "
                                                    "fragment C_l"):
        emu(sub_tile_gemm(partial_c=True))


# ------------------------------------------------------- register A operand from an accumulator


@functools.cache
def chained_gemm(M=64, N=64, K=32, threads=128, policy="Square"):
    """S = A @ B (shared operands), P = fp16(S), O = P @ D with P in registers (as FlashAttention's
    second gemm): the register operand is replicated over the warps sharing its rows, the
    accumulator S is split over them, so the copy S -> P exchanges values between warps."""
    pol = getattr(T.GemmWarpPolicy, policy)

    @T.prim_func
    def chained(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), D: T.Tensor((N, N), "float16"),
                C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=threads) as _:
            A_s = T.alloc_shared((M, K), "float16")
            B_s = T.alloc_shared((K, N), "float16")
            D_s = T.alloc_shared((N, N), "float16")
            S = T.alloc_fragment((M, N), "float32")
            P = T.alloc_fragment((M, N), "float16")
            O = T.alloc_fragment((M, N), "float32")
            T.copy(A, A_s)
            T.copy(B, B_s)
            T.copy(D, D_s)
            T.clear(S)
            T.clear(O)
            T.gemm(A_s, B_s, S, policy=pol)
            T.copy(S, P)
            T.gemm(P, D_s, O, policy=pol)
            T.copy(O, C)

    return chained


@pytest.mark.parametrize("arch, M, N, threads, policy, grid", [
    ("sm_80", 64, 64, 128, "Square", "2 x 2"),
    ("sm_80", 64, 64, 128, "FullCol", "1 x 4"),
    ("sm_80", 64, 64, 128, "FullRow", "4 x 1"),
    ("sm_90a", 64, 128, 256, "FullCol", "1 x 2"),  # warpgroups
    ("sm_90a", 128, 128, 512, "Square", "2 x 2"),
])
def test_register_operand_gemm_with_any_warp_grid(arch, M, N, threads, policy, grid, rng):
    f = chained_gemm(M, N, 32, threads, policy)
    k = tilewise.compile(f, out_idx=[-1], target=f"cuda -arch={arch}", execution_backend="emulator")
    notes = "\n".join(k.lowering_notes())
    if arch == "sm_90a":
        assert f"({grid}), A from registers" in notes, notes
    else:
        g = choose_warp_grid(M, N, threads // 32, policy)
        assert f"{g.warp_m} x {g.warp_n}" == grid
    # a grid of one warp (group) column keeps S's rows where P needs them: registers only
    assert ("exchanged through shared memory" in notes) == (not grid.endswith(" 1")), notes
    a = rng.standard_normal((M, 32)).astype(np.float16)
    b = rng.standard_normal((32, N)).astype(np.float16)
    d = rng.standard_normal((N, N)).astype(np.float16)
    p = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float16).astype(np.float64)
    ref = p @ d.astype(np.float64)
    np.testing.assert_allclose(k(a, b, d), ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
    assert k.resource_usage()["spill_bytes"] == 0
