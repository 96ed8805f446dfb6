"""The MFMA register layouts (layout/mfma_layouts.py): bijective over a wavefront, the right number
of items per lane, tiled over wavefronts as T.gemm's accumulator, and the same as the emulator's
tables (emulator/mfma.py, written separately from the ISA text)."""
import numpy as np
import pytest

from tilewise.emulator import mfma as emu_mfma
from tilewise.errors import CompileError
from tilewise.layout.mfma_layouts import (
    MFMA,
    mfma_a_atom,
    mfma_a_tv,
    mfma_b_atom,
    mfma_b_tv,
    mfma_c_atom,
    mfma_c_tv,
    mfma_for,
    wave_grid_for,
)

INSTRS = sorted(MFMA)


def _slots(frag):
    """(thread, register) of every element, as arrays shaped like the tile (first replica)."""
    return frag.thread_table()[0], frag.flat_table()


@pytest.mark.parametrize("name", INSTRS)
def test_atoms_are_bijections_with_the_right_items_per_lane(name):
    ins = MFMA[name]
    for frag, items, shape in ((mfma_a_atom(ins), ins.kpack, (ins.m, ins.k)),
                               (mfma_b_atom(ins), ins.kpack, (ins.k, ins.n)),
                               (mfma_c_atom(ins), ins.c_regs, (ins.m, ins.n))):
        assert frag.shape == shape
        assert frag.covers_exactly_once(64)
        t, v = _slots(frag)
        assert t.min() == 0 and t.max() == 63 and v.max() == items - 1
        per_lane = np.bincount(t.ravel(), minlength=64)
        assert (per_lane == items).all()
        # every (lane, item) slot holds exactly one element
        assert np.unique(t * items + v).size == t.size == 64 * items


@pytest.mark.parametrize("name", INSTRS)
def test_atoms_agree_with_the_emulator_tables(name):
    ins = MFMA[name]
    spec = emu_mfma.SPECS[name]
    assert (spec.M, spec.N, spec.K) == (ins.m, ins.n, ins.k)
    assert (spec.items_ab, spec.items_d) == (ins.kpack, ins.c_regs)
    assert (spec.a_type, spec.b_type, spec.acc) == (*ins.ab_dtypes, ins.c_dtype)
    for frag, where in ((mfma_a_atom(ins), emu_mfma.a_element), (mfma_b_atom(ins), emu_mfma.b_element),
                        (mfma_c_atom(ins), emu_mfma.d_element)):
        t, v = _slots(frag)
        for idx in np.ndindex(*frag.shape):
            assert where(spec, int(t[idx]), int(v[idx])) == idx, (frag.name, idx)


@pytest.mark.parametrize("name,M,N,K,threads,policy,kp", [
    ("mfma_f32_16x16x16f16", 128, 128, 32, 256, "Square", 1),
    ("mfma_f32_16x16x16f16", 128, 128, 32, 256, "Square", 2),
    ("mfma_f32_32x32x8f16", 128, 128, 32, 256, "Square", 2),
    ("mfma_i32_16x16x32_i8", 64, 128, 64, 256, "FullRow", 2),
    ("mfma_f32_16x16x16bf16_1k", 32, 64, 16, 128, "FullCol", 1),
    ("mfma_f32_32x32x8bf16_1k", 64, 32, 8, 128, "FullRow", 1),
])
def test_tiled_layouts_over_wavefronts(name, M, N, K, threads, policy, kp):
    ins = MFMA[name]
    grid = wave_grid_for(M, N, threads, policy, ins)
    WM, WN = M // grid.warp_m, N // grid.warp_n
    tiles_m, tiles_n = WM // ins.m, WN // ins.n
    spec = emu_mfma.SPECS[name]
    c = mfma_c_tv(M, N, grid, threads, ins)
    assert c.covers_exactly_once(threads)
    assert c.locals_per_thread() == tiles_m * tiles_n * ins.c_regs
    t, v = _slots(c)
    for (r, col) in np.ndindex(M, N):
        wave, lane = divmod(int(t[r, col]), 64)
        atom, item = divmod(int(v[r, col]), ins.c_regs)
        mi, ni = divmod(atom, tiles_n)
        wm, wn = divmod(wave, grid.warp_n)
        dr, dc = emu_mfma.d_element(spec, lane, item)
        assert (r, col) == (wm * WM + mi * ins.m + dr, wn * WN + ni * ins.n + dc)
    a = mfma_a_tv(M, K, grid, threads, ins, kp)
    b = mfma_b_tv(K, N, grid, threads, ins, kp)
    assert a.covers_exactly_once(threads) and b.covers_exactly_once(threads)
    tiles_k = K // ins.k
    assert a.locals_per_thread() == tiles_m * tiles_k * ins.kpack
    assert b.locals_per_thread() == tiles_n * tiles_k * ins.kpack
    # A register (mi * tiles_k + ki) * kpack + item holds the emulator's A element of that MFMA,
    # k step ki = j * kp + s taking the s-th kpack of lane group g's run of kp * kpack elements
    def k_of(ki, k_in_mfma):
        j, s = divmod(ki, kp)
        g, item = divmod(k_in_mfma, ins.kpack)
        return j * ins.k * kp + g * kp * ins.kpack + s * ins.kpack + item

    ta, va = _slots(a)
    for (r, k) in np.ndindex(M, K):
        wave, lane = divmod(int(ta[r, k]), 64)
        atom, item = divmod(int(va[r, k]), ins.kpack)
        mi, ki = divmod(atom, tiles_k)
        ar, ak = emu_mfma.a_element(spec, lane, item)
        assert (r, k) == ((wave // grid.warp_n) * WM + mi * ins.m + ar, k_of(ki, ak))
    tb, vb = _slots(b)
    for (k, col) in np.ndindex(K, N):
        wave, lane = divmod(int(tb[k, col]), 64)
        atom, item = divmod(int(vb[k, col]), ins.kpack)
        ki, ni = divmod(atom, tiles_n)
        bk, bc = emu_mfma.b_element(spec, lane, item)
        assert (k, col) == (k_of(ki, bk), (wave % grid.warp_n) * WN + ni * ins.n + bc)


def test_instruction_choice_and_errors():
    assert mfma_for("float16", "float16", "float32").mnemonic == "v_mfma_f32_16x16x16_f16"
    assert mfma_for("bfloat16", "bfloat16", "float32", "32x32").mnemonic == "v_mfma_f32_32x32x8_bf16"
    assert mfma_for("int8", "int8", "int32").mnemonic == "v_mfma_i32_16x16x32_i8"
    with pytest.raises(CompileError, match="no gfx942 MFMA"):
        mfma_for("float16", "float16", "float16")
    with pytest.raises(CompileError, match="multiple of 64 threads"):
        wave_grid_for(64, 64, 96, "Square", MFMA["mfma_f32_16x16x16f16"])
    with pytest.raises(CompileError, match="wavefronts"):
        wave_grid_for(16, 16, 512, "FullRow", MFMA["mfma_f32_32x32x8f16"])
    with pytest.raises(CompileError, match="multiples of 16"):
        wave_grid_for(16, 16, 256, "Square", MFMA["mfma_f32_16x16x16f16"])


@pytest.mark.parametrize("shape,dtype", [((32, 128), "float16"), ((128, 32), "float16"), ((64, 64), "int8"),
                                         ((2, 32, 128), "bfloat16"), ((16, 16), "float16"), ((8, 24), "float16")])
def test_lds_swizzle_is_a_bijection_keeping_16_byte_chunks(shape, dtype):
    from tilewise.ir import dtype as _dt
    from tilewise.ir.buffer import Buffer, BufferRegion
    from tilewise.layout.lds_swizzle import make_mfma_swizzled_layout
    from tilewise.tileop.cuda_common import layout_run

    buf = Buffer("S", shape, getattr(_dt, dtype), "shared")
    lay = make_mfma_swizzled_layout(buf)
    assert lay.is_injective()
    vec = 16 // buf.dtype.bytes

    class Ctx:
        def shared_layout(self, b):
            return lay

    assert layout_run(Ctx(), BufferRegion(buf, [(0, d) for d in shape]), vec) == vec
