"""Single PTX instructions on hand-written kernels, against references written from the PTX ISA
(exact rounding with fractions, conversions, shuffles, bit manipulation), and the warp-level
matrix instructions against numpy matrix products."""
from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from ptx_helpers import elementwise, module, ref_round

from tilewise import ptx


def _hard_f32(rng, n):
    """float32 pairs whose sums and products are often inexact and sometimes exact ties."""
    a = (rng.standard_normal(n) * 2.0 ** rng.integers(-20, 20, n)).astype(np.float32)
    b = (rng.standard_normal(n) * 2.0 ** rng.integers(-20, 20, n)).astype(np.float32)
    b[: n // 8] = a[: n // 8] * np.float32(2.0**-24)  # half an ulp: ties of the sum
    b[n // 8 : n // 4] = -a[n // 8 : n // 4]  # exact zeros
    return a, b


@pytest.mark.parametrize("mode", ["rn", "rz", "rm", "rp"])
def test_add_mul_fma_f32_rounding_modes(mode):
    rng = np.random.default_rng(1)
    a, b = _hard_f32(rng, 512)
    c = (rng.standard_normal(512) * 2.0 ** rng.integers(-30, 10, 512)).astype(np.float32)
    s, p, f = elementwise(
        f"add.{mode}.f32 %d0, %a0, %a1;\n\tmul.{mode}.f32 %d1, %a0, %a1;\n\tfma.{mode}.f32 %d2, %a0, %a1, %a2;",
        [("f32", a), ("f32", b), ("f32", c)], [("f32", np.float32)] * 3)
    for i in range(len(a)):
        fa, fb, fc = Fraction(float(a[i])), Fraction(float(b[i])), Fraction(float(c[i]))
        assert s[i] == ref_round(fa + fb, np.float32, mode), (i, a[i], b[i], s[i])
        assert p[i] == ref_round(fa * fb, np.float32, mode), (i, a[i], b[i], p[i])
        assert f[i] == ref_round(fa * fb + fc, np.float32, mode), (i, a[i], b[i], c[i], f[i])


def test_fma_f32_rounds_once():
    # a*b = 1 + 2^-24 + 2^-48 exactly; a*b + c with c = -2^-48 * 0 ... chosen so that rounding
    # the product first would land on a tie that rounds to even while the fused result rounds up
    a = np.array([1 + 2.0**-12, 1 + 2.0**-23], np.float32)
    b = np.array([1 + 2.0**-12, 1 - 2.0**-23], np.float32)
    c = np.array([2.0**-30, -1.0], np.float32)
    (f,) = elementwise("fma.rn.f32 %d0, %a0, %a1, %a2;", [("f32", a), ("f32", b), ("f32", c)], [("f32", np.float32)])
    for i in range(2):
        exact = Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))
        assert f[i] == ref_round(exact, np.float32, "rn")
    assert f[0] != np.float32(np.float32(a[0] * b[0]) + c[0])  # a separate multiply rounds differently
    assert f[1] == np.float32(-(2.0**-46))


def test_div_sqrt_rcp_f32_directed():
    rng = np.random.default_rng(2)
    a = np.abs(rng.standard_normal(256)).astype(np.float32) + np.float32(0.1)
    b = np.abs(rng.standard_normal(256)).astype(np.float32) + np.float32(0.1)
    q_rz, q_rp, r_rm, sq_rn = elementwise(
        "div.rz.f32 %d0, %a0, %a1;\n\tdiv.rp.f32 %d1, %a0, %a1;\n\trcp.rm.f32 %d2, %a1;\n\tsqrt.rn.f32 %d3, %a0;",
        [("f32", a), ("f32", b)], [("f32", np.float32)] * 4)
    for i in range(len(a)):
        fa, fb = Fraction(float(a[i])), Fraction(float(b[i]))
        assert q_rz[i] == ref_round(fa / fb, np.float32, "rz")
        assert q_rp[i] == ref_round(fa / fb, np.float32, "rp")
        assert r_rm[i] == ref_round(1 / fb, np.float32, "rm")
    np.testing.assert_array_equal(sq_rn, np.sqrt(a))


def test_fma_f64_rounds_once():
    rng = np.random.default_rng(3)
    a, b, c = (rng.standard_normal(256) for _ in range(3))
    a[0], b[0], c[0] = 1 + 2.0**-30, 1 + 2.0**-30, -(1 + 2.0**-29)  # the product's low bits are the result
    (f,) = elementwise("fma.rn.f64 %d0, %a0, %a1, %a2;", [("f64", a), ("f64", b), ("f64", c)], [("f64", np.float64)])
    for i in range(len(a)):
        assert f[i] == float(Fraction(a[i]) * Fraction(b[i]) + Fraction(c[i])), i
    assert f[0] == 2.0**-60


@pytest.mark.parametrize("mode", ["rn", "rz", "rm", "rp"])
def test_f32_exact_zero_sums_and_steps_under_a_power_of_two(mode):
    """IEEE 754's sign of an exact zero sum (-0 only when rounding down, or from two -0), and a
    value just under a power of two rounded toward it by the finer grid below (1 - 2^-24, not
    1 - 2^-23)."""
    a = np.array([1.0, -1.0, 0.0, -0.0, -0.0, 2.5, 1.0, -1.0, 4.0, 1.0], np.float32)
    b = np.array([-1.0, 1.0, -0.0, -0.0, 0.0, -2.5, -1e-40, 1e-40, -1e-30, 1e-40], np.float32)
    ones = np.ones_like(a)
    s, f = elementwise(f"add.{mode}.f32 %d0, %a0, %a1;\n\tfma.{mode}.f32 %d1, %a0, %a2, %a1;",
                       [("f32", a), ("f32", b), ("f32", ones)], [("f32", np.float32)] * 2)
    for i in range(len(a)):
        exact = Fraction(float(a[i])) + Fraction(float(b[i]))
        for got in (s[i], f[i]):
            if exact == 0:
                both_neg = np.signbit(a[i]) and np.signbit(b[i])
                assert got == 0 and np.signbit(got) == (both_neg or mode == "rm"), (mode, a[i], b[i], got)
            else:
                assert got == ref_round(exact, np.float32, mode), (mode, a[i], b[i], got)


@pytest.mark.parametrize("mode", ["rz", "rm", "rp"])
def test_f64_directed_arithmetic_is_exact(mode):
    """add / mul / fma / div / rcp / sqrt .f64 in the directed modes against exact rationals
    (ir/directed64.py), on subnormal and overflowing results and signed zeros; and fma.rn.f64's
    zero signs."""
    from tilewise.ir import directed64

    tiny, big = 5e-324, 1.7976931348623157e308
    a = np.array([1.0, 3e-160, -3e-170, big, 1e300, 1.5, 2.0, 0.0, -0.0, 7.0, 2.0**-1022 * 1.25, 1e-310])
    b = np.array([-1.0, 2e-160, 2e-170, big, -1e10, tiny, 3.0, -3.0, 2.0, 3.0, 0.3, 1e10])
    c = np.array([0.0, 0.0, -0.0, -big, 1.0, 0.0, -tiny, 0.0, -0.0, 1e-300, 0.0, 0.0])
    m = {"rz": "rz", "rm": "rd", "rp": "ru"}[mode]
    outs = elementwise(
        f"add.{mode}.f64 %d0, %a0, %a1;\n\tmul.{mode}.f64 %d1, %a0, %a1;\n\tfma.{mode}.f64 %d2, %a0, %a1, %a2;"
        f"\n\tdiv.{mode}.f64 %d3, %a0, %a1;\n\trcp.{mode}.f64 %d4, %a1;\n\tsqrt.{mode}.f64 %d5, %a3;",
        [("f64", a), ("f64", b), ("f64", c), ("f64", np.abs(a))], [("f64", np.float64)] * 6)
    want = [directed64.elementwise("dfma", m)(a, np.ones_like(a), b), directed64.elementwise("dmul", m)(a, b),
            directed64.elementwise("dfma", m)(a, b, c), directed64.elementwise("ddiv", m)(a, b),
            directed64.elementwise("drcp", m)(b), directed64.elementwise("dsqrt", m)(np.abs(a))]
    for got, ref in zip(outs, want):
        np.testing.assert_array_equal(got.view(np.int64), ref.view(np.int64))
    assert outs[0][0] == 0 and np.signbit(outs[0][0]) == (mode == "rm")  # 1 + -1
    assert outs[0][3] == (np.inf if mode == "rp" else big)  # MAX + MAX
    (f,) = elementwise("fma.rn.f64 %d0, %a0, %a1, %a2;", [("f64", a), ("f64", b), ("f64", c)], [("f64", np.float64)])
    assert f[7] == 0 and not np.signbit(f[7])  # 0 * -3 + 0: -0 + +0 = +0
    assert f[8] == 0 and np.signbit(f[8])  # -0 * 2 + -0 = -0


def test_ftz_and_sat():
    tiny = np.float32(2.0**-130)
    a = np.array([tiny, -tiny, 0.75, 2.0, -3.0, np.nan], np.float32)
    b = np.array([tiny, tiny, 0.5, 0.5, 1.0, 1.0], np.float32)
    plain, ftz, sat = elementwise(
        "add.f32 %d0, %a0, %a1;\n\tadd.ftz.f32 %d1, %a0, %a1;\n\tadd.sat.f32 %d2, %a0, %a1;",
        [("f32", a), ("f32", b)], [("f32", np.float32)] * 3)
    assert plain[0] == np.float32(2.0**-129) and ftz[0] == 0 and not np.signbit(ftz[0])
    assert ftz[1] == 0
    np.testing.assert_array_equal(sat[2:], [1.0, 1.0, 0.0, 0.0])  # NaN saturates to +0


def test_cvt_f16_rounding_and_overflow():
    vals = np.array([1 + 2.0**-11, 1 + 3 * 2.0**-11, 65519.0, 65520.0, 1e6, -1e6, 2.0**-25, 2.0**-24 * 1.5,
                     np.inf, np.nan], np.float32)
    rn, rz = elementwise("cvt.rn.f16.f32 %d0, %a0;\n\tcvt.rz.f16.f32 %d1, %a0;", [("f32", vals)],
                         [("b16", np.uint16), ("b16", np.uint16)])
    rn, rz = rn.view(np.float16), rz.view(np.float16)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(rn[:8], vals[:8].astype(np.float16))  # numpy rounds to nearest even too
    assert rn[3] == np.inf and rn[5] == -np.inf  # 65520 is the overflow threshold
    assert rz[3] == 65504 and rz[4] == 65504 and rz[5] == -65504 and rz[8] == np.inf
    assert np.isnan(rn[9])
    assert rz[0] == 1 and rz[1] == np.float16(1 + 2.0**-10)


def test_cvt_fp8_saturates_and_packs_a_high():
    a = np.array([1000.0, -1000.0, np.nan, 0.3, 1e-9, 57344.0 * 4, 3.0], np.float32)
    b = np.array([1.0, 0.0, 2.0, -0.3, 448.0, 1.0, np.inf], np.float32)
    e4, e5 = elementwise("cvt.rn.satfinite.e4m3x2.f32 %d0, %a0, %a1;\n\tcvt.rn.satfinite.e5m2x2.f32 %d1, %a0, %a1;",
                         [("f32", a), ("f32", b)], [("b16", np.uint16), ("b16", np.uint16)])
    hi4, lo4 = (e4 >> 8).astype(np.uint8), (e4 & 0xFF).astype(np.uint8)
    assert hi4[0] == 0x7E and hi4[1] == 0xFE  # +-448, the largest finite e4m3
    assert hi4[2] == 0x7F  # NaN
    np.testing.assert_array_equal(hi4[[3, 4, 6]], a[[3, 4, 6]].astype(ml_dtypes.float8_e4m3fn).view(np.uint8))
    np.testing.assert_array_equal(lo4[[0, 1, 2, 3, 4]], b[[0, 1, 2, 3, 4]].astype(ml_dtypes.float8_e4m3fn).view(np.uint8))
    assert lo4[6] == 0x7E  # +inf saturates
    hi5 = (e5 >> 8).astype(np.uint8)
    assert hi5[5] == 0x7B and hi5[1] == 0xE4  # 57344 (the largest finite e5m2) for overflow; -1024


def test_cvt_float_to_int_saturates():
    a = np.array([1e10, -1e10, np.nan, 2.5, -2.5, 3.5, -0.7, 4e9], np.float32)
    rni, rzi, rmi, u32 = elementwise(
        "cvt.rni.s32.f32 %d0, %a0;\n\tcvt.rzi.s32.f32 %d1, %a0;\n\tcvt.rmi.s32.f32 %d2, %a0;\n\tcvt.rzi.u32.f32 %d3, %a0;",
        [("f32", a)], [("s32", np.int32)] * 3 + [("u32", np.uint32)])
    np.testing.assert_array_equal(rni, [2**31 - 1, -(2**31), 0, 2, -2, 4, -1, 2**31 - 1])
    np.testing.assert_array_equal(rzi[3:7], [2, -2, 3, 0])
    np.testing.assert_array_equal(rmi[3:7], [2, -3, 3, -1])
    np.testing.assert_array_equal(u32, [4294967295, 0, 0, 2, 0, 3, 0, 4000000000])


def test_cvt_integer_widths_and_bf16_tf32():
    x = np.array([-1, 127, 128, 255, 300, -129], np.int32)
    s8, u8sat, s16 = elementwise(
        "cvt.s8.s32 %rs1, %a0;\n\tcvt.s32.s8 %d0, %rs1;\n\tcvt.sat.u8.s32 %rs2, %a0;\n\tcvt.u32.u8 %d1, %rs2;"
        "\n\tcvt.s16.s32 %rs3, %a0;\n\tcvt.s32.s16 %d2, %rs3;",
        [("s32", x)], [("s32", np.int32)] * 3)
    np.testing.assert_array_equal(s8, x.astype(np.int8).astype(np.int32))
    np.testing.assert_array_equal(u8sat, np.clip(x, 0, 255))
    np.testing.assert_array_equal(s16, x)
    f = np.array([1 + 2.0**-8, 1 + 3 * 2.0**-8, 1 + 2.0**-11, 1 + 2.0**-11 + 2.0**-20, -3.0], np.float32)
    bf, tf = elementwise("cvt.rn.bf16.f32 %d0, %a0;\n\tcvt.rna.tf32.f32 %d1, %a0;", [("f32", f)],
                         [("b16", np.uint16), ("b32", np.uint32)])
    np.testing.assert_array_equal(bf, f.astype(ml_dtypes.bfloat16).view(np.uint16))
    tfv = tf.view(np.float32)
    assert tfv[2] == np.float32(1 + 2.0**-10)  # ties away from zero
    assert tfv[0] == f[0] and tfv[4] == -3.0
    assert (tf & 0x1FFF == 0).all()


def test_bit_manipulation():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 2**32, 64, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 2**32, 64, dtype=np.uint64).astype(np.uint32)
    c = rng.integers(0, 2**32, 64, dtype=np.uint64).astype(np.uint32)
    prmt, lop, bfe_u, bfe_s, bfi, shl = elementwise(
        "prmt.b32 %d0, %a0, %a1, 0x8e15;\n\tlop3.b32 %d1, %a0, %a1, %a2, 0xe8;\n\tbfe.u32 %d2, %a0, 5, 9;"
        "\n\tbfe.s32 %d3, %a0, 20, 12;\n\tbfi.b32 %d4, %a1, %a0, 8, 4;\n\tshl.b32 %d5, %a0, 33;",
        [("b32", a), ("b32", b), ("b32", c)], [("b32", np.uint32)] * 3 + [("s32", np.int32), ("b32", np.uint32),
                                                                        ("b32", np.uint32)])
    for i in range(64):
        x, y, z = int(a[i]), int(b[i]), int(c[i])
        src = (y << 32) | x
        want = 0
        for k, sel in enumerate((0x5, 0x1, 0xE, 0x8)):
            byte = (src >> (8 * (sel & 7))) & 0xFF
            if sel & 8:
                byte = 0xFF if byte & 0x80 else 0
            want |= byte << (8 * k)
        assert prmt[i] == want
        assert lop[i] == ((x & y) | (x & z) | (y & z))  # 0xe8 is the majority function
        assert bfe_u[i] == (x >> 5) & 0x1FF
        field = (x >> 20) & 0xFFF
        assert bfe_s[i] == (field - 0x1000 if field & 0x800 else field)
        assert bfi[i] == (x & ~0xF00) | ((y & 0xF) << 8)
    assert (shl == 0).all()  # shift amounts past the width clamp


def _warp_kernel(op: str, nregs_in: int = 1, nregs_out: int = 1) -> str:
    """A one-warp kernel: %r10.. = in[lane * nregs_in + k]; op; out[lane * nregs_out + k] = %r20..."""
    body = ["\tmov.u32 %r1, %laneid;", "\tld.param.u64 %rd1, [k_p0];", "\tld.param.u64 %rd2, [k_p1];"]
    body.append(f"\tmul.wide.u32 %rd3, %r1, {4 * nregs_in};\n\tadd.s64 %rd4, %rd1, %rd3;")
    for k in range(nregs_in):
        body.append(f"\tld.global.u32 %r{10 + k}, [%rd4+{4 * k}];")
    body.append("\t" + op)
    body.append(f"\tmul.wide.u32 %rd5, %r1, {4 * nregs_out};\n\tadd.s64 %rd6, %rd2, %rd5;")
    for k in range(nregs_out):
        body.append(f"\tst.global.u32 [%rd6+{4 * k}], %r{20 + k};")
    return module("\n".join(body), params=("u64", "u64"))


@pytest.mark.parametrize("mode,b,width", [("bfly", 5, 32), ("bfly", 1, 8), ("down", 3, 32), ("down", 2, 8),
                                          ("up", 3, 32), ("up", 1, 16), ("idx", 7, 32), ("idx", 3, 8)])
def test_shfl_sync_modes_and_widths(mode, b, width):
    # the c operand __shfl_*_sync builds: segment mask (32 - width) << 8, clamp 31 (0 for up)
    c = ((32 - width) << 8) | (0 if mode == "up" else 31)
    v = np.arange(32, dtype=np.uint32) * 10 + 1
    out = np.zeros(32, np.uint32)
    ptx.run(_warp_kernel(f"shfl.sync.{mode}.b32 %r20, %r10, {b}, {c}, -1;"), "k", 1, 32, [v, out])
    lane = np.arange(32)
    seg = lane // width * width
    if mode == "bfly":
        src = lane ^ b
        src = np.where(src // width * width == seg, src, lane)
    elif mode == "down":
        src = np.where(lane + b < seg + width, lane + b, lane)
    elif mode == "up":
        src = np.where(lane - b >= seg, lane - b, lane)
    else:
        src = seg + b % width
    np.testing.assert_array_equal(out, v[src])


def test_ldmatrix_register_order():
    """x4 and x4.trans: lane l supplies the address of row l % 8 of matrix l // 8; register i of
    lane l holds row l // 4, columns 2 (l % 4), 2 (l % 4) + 1 of matrix i (of its transpose)."""
    prelude = ".shared .align 16 .b8 sm[512];\n"
    body = []
    # fill shared memory: element (m, r, c) = m * 64 + r * 8 + c, rows 16 bytes apart
    body.append("\tmov.u32 %r1, %laneid;\n\tmov.u32 %r2, sm;")
    for k in range(8):
        body.append(f"\tmad.lo.s32 %r3, %r1, 8, {k};")  # element index lane*8+k
        body.append("\tcvt.u16.u32 %rs1, %r3;")
        body.append(f"\tmad.lo.s32 %r4, %r1, 16, %r2;\n\tst.shared.u16 [%r4+{2 * k}], %rs1;")
    body.append("\tbar.sync 0;")
    body.append("\tmad.lo.s32 %r5, %r1, 16, %r2;")  # lane l: row l of the 32 stored rows
    body.append("\tldmatrix.sync.aligned.m8n8.x4.shared.b16 {%r20, %r21, %r22, %r23}, [%r5];")
    body.append("\tldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%r24, %r25, %r26, %r27}, [%r5];")
    body.append("\tld.param.u64 %rd1, [k_p0];\n\tmul.wide.u32 %rd2, %r1, 32;\n\tadd.s64 %rd3, %rd1, %rd2;")
    for k in range(8):
        body.append(f"\tst.global.u32 [%rd3+{4 * k}], %r{20 + k};")
    out = np.zeros((32, 8), np.uint32)
    ptx.run(module("\n".join(body), params=("u64",), prelude=prelude), "k", 1, 32, [out])
    lo, hi = out & 0xFFFF, out >> 16
    lane = np.arange(32)
    for i in range(4):
        r, c = lane // 4, 2 * (lane % 4)
        np.testing.assert_array_equal(lo[:, i], i * 64 + r * 8 + c)
        np.testing.assert_array_equal(hi[:, i], i * 64 + r * 8 + c + 1)
        np.testing.assert_array_equal(lo[:, 4 + i], i * 64 + c * 8 + r)  # transposed
        np.testing.assert_array_equal(hi[:, 4 + i], i * 64 + (c + 1) * 8 + r)


def _mma_kernel(shape: str, types: str, na: int, nb: int, nc: int) -> str:
    """Registers A, B, C of each lane read from in[lane] (na + nb + nc words), D written out."""
    ops = (f"mma.sync.aligned.{shape}.row.col.{types} "
           f"{{{', '.join(f'%r{20 + k}' for k in range(nc))}}}, {{{', '.join(f'%r{10 + k}' for k in range(na))}}}, "
           f"{{{', '.join(f'%r{10 + na + k}' for k in range(nb))}}}, "
           f"{{{', '.join(f'%r{10 + na + nb + k}' for k in range(nc))}}};")
    return _warp_kernel(ops, na + nb + nc, nc)


def _distribute(mat, rows, cols):
    """Per-lane fragments of `mat` by the PTX ISA's (row, col) formulas (lanes x elements)."""
    return mat[rows, cols]


G, TG = np.arange(32)[:, None] >> 2, np.arange(32)[:, None] % 4


@pytest.mark.parametrize("acc", ["f32", "f16"])
def test_mma_m16n8k16_f16_operand_order(acc):
    rng = np.random.default_rng(5)
    A = rng.integers(-4, 5, (16, 16)).astype(np.float16)
    B = rng.integers(-4, 5, (16, 8)).astype(np.float16)
    C = rng.integers(-4, 5, (16, 8)).astype(np.float32)
    i = np.arange(8)[None, :]
    a_fr = _distribute(A, G + 8 * ((i // 2) % 2), TG * 2 + (i % 2) + 8 * (i // 4))
    i = np.arange(4)[None, :]
    b_fr = _distribute(B, TG * 2 + (i % 2) + 8 * (i // 2), G + 0 * i)
    c_rows, c_cols = G + 8 * (i // 2), TG * 2 + (i % 2)
    c_fr = _distribute(C, c_rows, c_cols)
    words_c = c_fr.astype(np.float32).view(np.uint32) if acc == "f32" else c_fr.astype(np.float16).view(np.uint32)
    inp = np.concatenate([a_fr.view(np.uint32), b_fr.view(np.uint32), words_c], axis=1)
    nc = 4 if acc == "f32" else 2
    out = np.zeros((32, nc), np.uint32)
    ptx.run(_mma_kernel("m16n8k16", f"{acc}.f16.f16.{acc}", 4, 2, nc), "k", 1, 32, [np.ascontiguousarray(inp), out])
    d = out.view(np.float32) if acc == "f32" else out.view(np.float16)
    want = A.astype(np.float64) @ B.astype(np.float64) + C
    np.testing.assert_array_equal(d, want[c_rows, c_cols])


def test_mma_m16n8k32_s8_u8_and_tf32():
    rng = np.random.default_rng(6)
    A = rng.integers(-128, 128, (16, 32)).astype(np.int8)
    B = rng.integers(0, 256, (32, 8)).astype(np.uint8)
    C = rng.integers(-1000, 1000, (16, 8)).astype(np.int32)
    i = np.arange(16)[None, :]
    a_fr = _distribute(A, G + 8 * ((i // 4) % 2), TG * 4 + (i % 4) + 16 * (i // 8))
    i = np.arange(8)[None, :]
    b_fr = _distribute(B, TG * 4 + (i % 4) + 16 * (i // 4), G + 0 * i)
    i = np.arange(4)[None, :]
    rows, cols = G + 8 * (i // 2), TG * 2 + (i % 2)
    c_fr = _distribute(C, rows, cols)
    inp = np.concatenate([np.ascontiguousarray(a_fr).view(np.uint32), np.ascontiguousarray(b_fr).view(np.uint32),
                          c_fr.view(np.uint32)], axis=1)
    out = np.zeros((32, 4), np.uint32)
    ptx.run(_mma_kernel("m16n8k32", "s32.s8.u8.s32", 4, 2, 4), "k", 1, 32, [np.ascontiguousarray(inp), out])
    want = A.astype(np.int64) @ B.astype(np.int64) + C
    np.testing.assert_array_equal(out.view(np.int32), want[rows, cols])

    # tf32: the low 13 bits of each operand are ignored
    A = rng.standard_normal((16, 8)).astype(np.float32)
    B = rng.standard_normal((8, 8)).astype(np.float32)
    i = np.arange(4)[None, :]
    a_fr = _distribute(A, G + 8 * (i % 2), TG + 4 * (i // 2))
    i2 = np.arange(2)[None, :]
    b_fr = _distribute(B, TG + 4 * i2, G + 0 * i2)
    inp = np.concatenate([a_fr.view(np.uint32), b_fr.view(np.uint32), np.zeros((32, 4), np.uint32)], axis=1)
    out = np.zeros((32, 4), np.uint32)
    ptx.run(_mma_kernel("m16n8k8", "f32.tf32.tf32.f32", 4, 2, 4), "k", 1, 32, [np.ascontiguousarray(inp), out])

    def trunc(x):
        return (x.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64)

    want = (trunc(A) @ trunc(B)).astype(np.float32)
    np.testing.assert_array_equal(out.view(np.float32), want[rows, cols])


def test_ldmatrix_then_mma_reproduces_a_matmul():
    """The standard pairing: A (16x16, row-major) by ldmatrix.x4 with lane l addressing row l % 16,
    column block l // 16; B (16x8 stored K x N row-major) by ldmatrix.x2.trans; D by the C table."""
    rng = np.random.default_rng(7)
    A = rng.standard_normal((16, 16)).astype(np.float16)
    B = rng.standard_normal((16, 8)).astype(np.float16)
    prelude = ".shared .align 16 .b8 sa[512];\n.shared .align 16 .b8 sb[256];\n"
    body = ["\tmov.u32 %r1, %laneid;", "\tld.param.u64 %rd1, [k_p0];", "\tld.param.u64 %rd2, [k_p1];",
            "\tld.param.u64 %rd3, [k_p2];", "\tmov.u32 %r2, sa;", "\tmov.u32 %r3, sb;"]
    # every lane copies 16 bytes of A (lane l: row l // 2, half l % 2) and 8 bytes of B
    body += ["\tmul.wide.u32 %rd4, %r1, 16;", "\tadd.s64 %rd5, %rd1, %rd4;", "\tld.global.v4.u32 {%r4, %r5, %r6, %r7}, [%rd5];",
             "\tmad.lo.s32 %r8, %r1, 16, %r2;", "\tst.shared.v4.u32 [%r8], {%r4, %r5, %r6, %r7};",
             "\tmul.wide.u32 %rd6, %r1, 8;", "\tadd.s64 %rd7, %rd2, %rd6;", "\tld.global.v2.u32 {%r4, %r5}, [%rd7];",
             "\tmad.lo.s32 %r9, %r1, 8, %r3;", "\tst.shared.v2.u32 [%r9], {%r4, %r5};", "\tbar.sync 0;"]
    # A: row l % 16, column (l // 16) * 8  -> byte (l % 16) * 32 + (l // 16) * 16
    body += ["\tand.b32 %r10, %r1, 15;", "\tshr.u32 %r11, %r1, 4;", "\tmul.lo.s32 %r12, %r10, 32;",
             "\tmad.lo.s32 %r12, %r11, 16, %r12;", "\tadd.s32 %r12, %r12, %r2;",
             "\tldmatrix.sync.aligned.m8n8.x4.shared.b16 {%r20, %r21, %r22, %r23}, [%r12];"]
    # B: rows k = l % 16 of the K x N tile, 16 bytes each
    body += ["\tmad.lo.s32 %r13, %r10, 16, %r3;",
             "\tldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%r24, %r25}, [%r13];",
             "\tmov.f32 %f1, 0f00000000;",
             "\tmma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%f2, %f3, %f4, %f5}, {%r20, %r21, %r22, %r23}, "
             "{%r24, %r25}, {%f1, %f1, %f1, %f1};",
             "\tmul.wide.u32 %rd8, %r1, 16;", "\tadd.s64 %rd9, %rd3, %rd8;",
             "\tst.global.v4.f32 [%rd9], {%f2, %f3, %f4, %f5};"]
    out = np.zeros((32, 4), np.float32)
    ptx.run(module("\n".join(body), params=("u64", "u64", "u64"), prelude=prelude), "k", 1, 32, [A, B, out])
    i = np.arange(4)[None, :]
    want = (A.astype(np.float64) @ B.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(out, want[G + 8 * (i // 2), TG * 2 + (i % 2)])


def test_atomics_apply_sequentially():
    body = """\tmov.u32 %r1, %tid.x;
\tmov.u32 %r6, %ctaid.x;
\tmad.lo.s32 %r7, %r6, 128, %r1;
\tld.param.u64 %rd1, [k_p0];
\tmov.f32 %f1, 0f3F800000;
\tatom.global.add.f32 %f2, [%rd1], %f1;
\tatom.global.add.u32 %r2, [%rd1+4], 1;
\tld.param.u64 %rd2, [k_p1];
\tmul.wide.u32 %rd3, %r7, 4;
\tadd.s64 %rd4, %rd2, %rd3;
\tst.global.u32 [%rd4], %r2;
$L_retry:
\tld.global.u32 %r3, [%rd1+8];
\tadd.s32 %r4, %r3, %r1;
\tatom.global.cas.b32 %r5, [%rd1+8], %r3, %r4;
\tsetp.ne.s32 %p1, %r5, %r3;
\t@%p1 bra $L_retry;
\tret;"""
    acc = np.zeros(3, np.uint32)
    olds = np.zeros(256, np.uint32)
    ptx.run(module(body, params=("u64", "u64")), "k", 2, 128, [acc, olds])
    assert acc.view(np.float32)[0] == 256.0
    assert acc[1] == 256
    assert acc[2] == 2 * sum(range(128))  # every compare-and-swap retry loop ended
    assert sorted(olds.tolist()) == list(range(256))  # each old value seen exactly once


def test_dp4a_dp2a():
    rng = np.random.default_rng(8)
    a = rng.integers(0, 2**32, 64, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 2**32, 64, dtype=np.uint64).astype(np.uint32)
    c = rng.integers(-1000, 1000, 64).astype(np.int32)
    ss, us, lo = elementwise("dp4a.s32.s32 %d0, %a0, %a1, %a2;\n\tdp4a.u32.s32 %d1, %a0, %a1, %a2;"
                             "\n\tdp2a.lo.s32.u32 %d2, %a0, %a1, %a2;",
                             [("b32", a), ("b32", b), ("s32", c)], [("s32", np.int32)] * 3)
    sa, ua = a.view(np.int8).reshape(-1, 4).astype(np.int64), a.view(np.uint8).reshape(-1, 4).astype(np.int64)
    sb, ub = b.view(np.int8).reshape(-1, 4).astype(np.int64), b.view(np.uint8).reshape(-1, 4).astype(np.int64)
    np.testing.assert_array_equal(ss, (c + (sa * sb).sum(1)).astype(np.int32))
    np.testing.assert_array_equal(us, (c + (ua * sb).sum(1)).astype(np.int32))
    ha = a.view(np.int16).reshape(-1, 2).astype(np.int64)
    np.testing.assert_array_equal(lo, (c + (ha * ub[:, :2]).sum(1)).astype(np.int32))
