"""Register layouts of AMD's matrix instructions (MFMA, CDNA3 / gfx942) as tilewise fragments
over a 64-lane wavefront, and the same layouts tiled over a block's wavefronts for T.gemm.

One MFMA computes D = A @ B + C for an m x n x k tile, every operand spread over the 64 lanes of a
wavefront. For the single-block instructions used here the CDNA3 ISA's layout is (lane l,
item v counting the elements a lane holds, lowest bits first):

- A (m x k): lane l holds row l % m, the `kpack` consecutive k elements starting at
  kpack * (l // m) (the 64 lanes are 64 / m groups of m rows);
- B (k x n): the transpose of that picture: column l % n, k elements kpack * (l // n) + v;
- C / D (m x n): lane l holds column l % n; its value v is row
  4 * (l // n) + (v % 4) + 8 * (v // 4)   (16x16: 4 values, rows 4 * (l // 16) + v;
  32x32: 16 values, four groups of four rows, the two lane halves interleaved by 4 rows).

`MFMA` lists the instructions tilewise issues on gfx942 with their clang builtins; the
emulator's own tables (tilewise/emulator/mfma.py) are written separately from the ISA text and
the tests check the two agree."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import CompileError
from .mma import WarpGrid, choose_warp_grid
from .tv import Mode, TVFragment

WAVE = 64


@dataclass(frozen=True)
class MfmaInstr:
    """One MFMA instruction: shape, operand and accumulator types, how many elements of A (and of
    B) a lane holds (`kpack`) and how many accumulators (`c_regs`)."""

    mnemonic: str  # the gfx942 assembly name, as it appears in the ISA clang prints
    builtin: str  # clang's __builtin_amdgcn_* name
    m: int
    n: int
    k: int
    ab_dtypes: tuple[str, str]  # A and B element types, as the instruction reads their bits
    c_dtype: str
    kpack: int
    c_regs: int

    @property
    def wrapper(self) -> str:
        """The name of the tw:: wrapper in tw_mfma.h, which is also the thread-IR call's name."""
        return "mfma_" + self.builtin.removeprefix("__builtin_amdgcn_mfma_")

    @property
    def lane_groups(self) -> int:
        """Lane groups along k in A (64 / m) — equally 64 / n in B."""
        return WAVE // self.m


def _instr(builtin: str, mnemonic: str, m: int, n: int, k: int, ab: tuple[str, str], c: str) -> MfmaInstr:
    kpack = k * m // WAVE
    return MfmaInstr(mnemonic, "__builtin_amdgcn_mfma_" + builtin, m, n, k, ab, c, kpack, m * n // WAVE)


# gfx942's fp8 instructions read the FNUZ encodings (bias 8 / 16, one NaN, no -0, no inf); the
# OCP float8_e4m3 / float8_e5m2 are gfx950's. "fp8" is e4m3fnuz, "bf8" e5m2fnuz; the first names A.
_FP8_NAMES = {"fp8": "float8_e4m3fnuz", "bf8": "float8_e5m2fnuz"}


def _fp8_instrs() -> list[MfmaInstr]:
    out = []
    for m, k in ((16, 32), (32, 16)):
        for a in ("fp8", "bf8"):
            for b in ("fp8", "bf8"):
                shape = f"{m}x{m}x{k}"
                out.append(_instr(f"f32_{shape}_{a}_{b}", f"v_mfma_f32_{shape}_{a}_{b}", m, m, k,
                                  (_FP8_NAMES[a], _FP8_NAMES[b]), "float32"))
    return out


MFMA: dict[str, MfmaInstr] = {i.wrapper: i for i in (
    _instr("f32_16x16x16f16", "v_mfma_f32_16x16x16_f16", 16, 16, 16, ("float16", "float16"), "float32"),
    _instr("f32_16x16x16bf16_1k", "v_mfma_f32_16x16x16_bf16", 16, 16, 16, ("bfloat16", "bfloat16"), "float32"),
    _instr("f32_32x32x8f16", "v_mfma_f32_32x32x8_f16", 32, 32, 8, ("float16", "float16"), "float32"),
    _instr("f32_32x32x8bf16_1k", "v_mfma_f32_32x32x8_bf16", 32, 32, 8, ("bfloat16", "bfloat16"), "float32"),
    _instr("i32_16x16x32_i8", "v_mfma_i32_16x16x32_i8", 16, 16, 32, ("int8", "int8"), "int32"),
    *_fp8_instrs(),
)}


def mfma_for(a_dtype: str, b_dtype: str, c_dtype: str, shape: str | None = None) -> MfmaInstr:
    """The MFMA for these operand types; `shape` "16x16" or "32x32" picks between the two
    shapes float16 / bfloat16 and the fnuz fp8 types have (16x16 when None)."""
    want = shape or "16x16"
    found = [i for i in MFMA.values() if i.ab_dtypes == (a_dtype, b_dtype) and i.c_dtype == c_dtype]
    for i in found:
        if f"{i.m}x{i.n}" == want:
            return i
    if found and shape is None:
        return found[0]
    have = sorted({f"{i.ab_dtypes[0]} x {i.ab_dtypes[1]} -> {i.c_dtype}" for i in MFMA.values()})
    raise CompileError(
        f"no gfx942 MFMA {want} for A {a_dtype}, B {b_dtype}, C {c_dtype}; tilewise issues: " + ", ".join(have))


# ---------------------------------------------------------------------------------- one wavefront
def mfma_a_atom(ins: MfmaInstr) -> TVFragment:
    """A (m x k) of one MFMA over one wavefront."""
    return TVFragment((ins.m, ins.k), [Mode(ins.m, 0, 1), Mode(ins.lane_groups, 1, ins.kpack)],
                      [Mode(ins.kpack, 1, 1)], name=f"mfma_a_{ins.m}x{ins.k}")


def mfma_b_atom(ins: MfmaInstr) -> TVFragment:
    """B (k x n) of one MFMA over one wavefront."""
    return TVFragment((ins.k, ins.n), [Mode(ins.n, 1, 1), Mode(WAVE // ins.n, 0, ins.kpack)],
                      [Mode(ins.kpack, 0, 1)], name=f"mfma_b_{ins.k}x{ins.n}")


def _c_lane_value_modes(ins: MfmaInstr) -> tuple[list[Mode], list[Mode]]:
    groups = WAVE // ins.n  # 4 for 16x16, 2 for 32x32
    thread = [Mode(ins.n, 1, 1), Mode(groups, 0, 4)]
    value = [Mode(4, 0, 1)]
    if ins.m > 4 * groups:  # 32x32: the groups of four rows repeat every 8 rows
        value.append(Mode(ins.m // (4 * groups), 0, 4 * groups))
    return thread, value


def mfma_c_atom(ins: MfmaInstr) -> TVFragment:
    """C / D (m x n) of one MFMA over one wavefront."""
    t, v = _c_lane_value_modes(ins)
    return TVFragment((ins.m, ins.n), t, v, name=f"mfma_c_{ins.m}x{ins.n}")


# ---------------------------------------------------------------------------------- a block's tile
def wave_grid_for(M: int, N: int, threads: int, policy: str, ins: MfmaInstr) -> WarpGrid:
    """GemmWarpPolicy over wavefronts: how threads // 64 wavefronts split an M x N C tile in
    m x n MFMA tiles."""
    if threads % WAVE:
        raise CompileError(f"T.gemm on an AMD target needs a multiple of 64 threads (whole wavefronts), "
                           f"the kernel has {threads}")
    waves = threads // WAVE
    try:
        return choose_warp_grid(M, N, waves, policy, ins.m, ins.n)
    except CompileError:
        raise CompileError(
            f"T.gemm: a {M}x{N} tile cannot be split over {waves} wavefronts in {ins.m}x{ins.n} MFMA "
            f"({ins.mnemonic}) tiles; use tile sizes that are multiples of {ins.m} (M) and {ins.n} (N) times the "
            f"wavefront counts, or fewer threads") from None


def _extra(grid: WarpGrid, threads: int) -> list[Mode]:
    extra = threads // (WAVE * grid.num_warps)
    return [Mode(extra, None, 0)] if extra > 1 else []


def mfma_c_tv(M: int, N: int, grid: WarpGrid, threads: int, ins: MfmaInstr) -> TVFragment:
    """The accumulator of T.gemm: the MFMA C layout repeated over the wave's WM x WN tile
    (register (mi * tiles_n + ni) * c_regs + v) and over the wave grid (wave = wm * warp_n + wn)."""
    WM, WN = M // grid.warp_m, N // grid.warp_n
    if WM % ins.m or WN % ins.n:
        raise CompileError(f"T.gemm: the {WM}x{WN} tile of a wavefront is not a multiple of {ins.mnemonic}'s "
                           f"{ins.m}x{ins.n}")
    t, v = _c_lane_value_modes(ins)
    t += [Mode(grid.warp_n, 1, WN), Mode(grid.warp_m, 0, WM)] + _extra(grid, threads)
    v += [Mode(WN // ins.n, 1, ins.n), Mode(WM // ins.m, 0, ins.m)]
    return TVFragment((M, N), t, v, name="mfma_c")


def _check_k_pack(K: int, ins: MfmaInstr, k_pack: int) -> None:
    if k_pack < 1 or K % (ins.k * k_pack):
        raise CompileError(f"T.gemm: K={K} is not a multiple of k_pack={k_pack} {ins.mnemonic} k steps of {ins.k}")


def mfma_a_tv(M: int, K: int, grid: WarpGrid, threads: int, ins: MfmaInstr, k_pack: int = 1) -> TVFragment:
    """A (M x K) in registers: register (mi * tiles_k + ki) * kpack + v; the waves of one wave row
    hold the same copy. With k_pack > 1 the MFMAs of k_pack consecutive k steps take their K
    elements from one run of k_pack * kpack consecutive elements per lane (step s of the run the
    s-th kpack of them): any order of K gives the same sum when A and B share it, and a lane then
    reads k_pack times wider vectors from LDS (TileLang's k_pack)."""
    WM = M // grid.warp_m
    if WM % ins.m:
        raise CompileError(f"T.gemm: an A tile of {WM}x{K} per wavefront is not a multiple of {ins.mnemonic}'s "
                           f"{ins.m}x{ins.k}")
    _check_k_pack(K, ins, k_pack)
    run = k_pack * ins.kpack
    t = [Mode(ins.m, 0, 1), Mode(ins.lane_groups, 1, run), Mode(grid.warp_n, None, 0),
         Mode(grid.warp_m, 0, WM)] + _extra(grid, threads)
    v = [Mode(ins.kpack, 1, 1), Mode(k_pack, 1, ins.kpack), Mode(K // (ins.k * k_pack), 1, ins.k * k_pack),
         Mode(WM // ins.m, 0, ins.m)]
    return TVFragment((M, K), t, v, name="mfma_a")


def mfma_b_tv(K: int, N: int, grid: WarpGrid, threads: int, ins: MfmaInstr, k_pack: int = 1) -> TVFragment:
    """B (K x N) in registers: register (ki * tiles_n + ni) * kpack + v; the waves of one wave
    column hold the same copy. k_pack as in mfma_a_tv."""
    WN = N // grid.warp_n
    if WN % ins.n:
        raise CompileError(f"T.gemm: a B tile of {K}x{WN} per wavefront is not a multiple of {ins.mnemonic}'s "
                           f"{ins.k}x{ins.n}")
    _check_k_pack(K, ins, k_pack)
    run = k_pack * ins.kpack
    t = [Mode(ins.n, 1, 1), Mode(WAVE // ins.n, 0, run), Mode(grid.warp_n, 1, WN),
         Mode(grid.warp_m, None, 0)] + _extra(grid, threads)
    v = [Mode(ins.kpack, 0, 1), Mode(WN // ins.n, 1, ins.n), Mode(k_pack, 0, ins.kpack),
         Mode(K // (ins.k * k_pack), 0, ins.k * k_pack)]
    return TVFragment((K, N), t, v, name="mfma_b")
