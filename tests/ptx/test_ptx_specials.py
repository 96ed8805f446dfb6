"""Special values, packed forms and the less common instructions: .approx special cases, NaN and
signed-zero rules of min/max and comparisons, f16x2 arithmetic and packing order, votes,
shuffles with a predicate destination, ldmatrix .x1/.x2, device printf, races between barriers."""
from __future__ import annotations

import numpy as np
import pytest
from ptx_helpers import elementwise, module

from tilewise import ptx


def test_approx_special_values():
    x = np.array([-np.inf, np.inf, 0.0, -0.0, -1.0, 2.0**-140, np.nan, 3.0], np.float32)
    ex2, ex2f, lg2, rsq = elementwise(
        "ex2.approx.f32 %d0, %a0;\n\tex2.approx.ftz.f32 %d1, %a0;\n\tlg2.approx.f32 %d2, %a0;\n\trsqrt.approx.f32 %d3, %a0;",
        [("f32", x)], [("f32", np.float32)] * 4)
    assert ex2[0] == 0 and ex2[1] == np.inf and ex2[2] == 1 and ex2[4] == 0.5 and np.isnan(ex2[6])
    assert ex2[7] == 8.0
    assert lg2[2] == -np.inf and lg2[3] == -np.inf and np.isnan(lg2[4]) and lg2[1] == np.inf
    assert lg2[5] == -140.0  # a subnormal input without .ftz
    assert rsq[2] == np.inf and rsq[3] == -np.inf and np.isnan(rsq[4]) and rsq[1] == 0
    x2 = np.array([-127.5, -149.0, -150.0], np.float32)
    plain, ftz = elementwise("ex2.approx.f32 %d0, %a0;\n\tex2.approx.ftz.f32 %d1, %a0;", [("f32", x2)],
                             [("f32", np.float32)] * 2)
    assert plain[1] == np.float32(2.0**-149) and ftz[1] == 0 and ftz[0] == 0 and plain[0] > 0


def test_min_max_nan_and_signed_zero():
    a = np.array([np.nan, 1.0, 0.0, -0.0, np.nan], np.float32)
    b = np.array([2.0, np.nan, -0.0, 0.0, np.nan], np.float32)
    mn, mx, mnn = elementwise("min.f32 %d0, %a0, %a1;\n\tmax.f32 %d1, %a0, %a1;\n\tmin.NaN.f32 %d2, %a0, %a1;",
                              [("f32", a), ("f32", b)], [("f32", np.float32)] * 3)
    assert mn[0] == 2 and mn[1] == 1 and np.isnan(mn[4])
    assert np.signbit(mn[2]) and np.signbit(mn[3]) and not np.signbit(mx[2]) and not np.signbit(mx[3])
    assert np.isnan(mnn[0]) and np.isnan(mnn[1]) and np.signbit(mnn[2])


def test_ordered_and_unordered_comparisons():
    a = np.array([1.0, np.nan, 2.0, np.nan], np.float32)
    b = np.array([1.0, 1.0, 3.0, np.nan], np.float32)
    out = elementwise(
        "setp.ne.f32 %p1, %a0, %a1;\n\tselp.u32 %d0, 1, 0, %p1;\n\tsetp.neu.f32 %p2, %a0, %a1;\n\tselp.u32 %d1, 1, 0, %p2;"
        "\n\tsetp.lt.f32 %p3, %a0, %a1;\n\tselp.u32 %d2, 1, 0, %p3;\n\tsetp.nan.f32 %p4, %a0, %a1;\n\tselp.u32 %d3, 1, 0, %p4;"
        "\n\tsetp.ge.and.f32 %p5|%p6, %a0, %a1, %p4;\n\tselp.u32 %d4, 1, 0, %p6;",
        [("f32", a), ("f32", b)], [("u32", np.uint32)] * 5)
    ne, neu, lt, nan, q = out
    np.testing.assert_array_equal(ne, [0, 0, 1, 0])  # ordered: false with a NaN
    np.testing.assert_array_equal(neu, [0, 1, 1, 1])
    np.testing.assert_array_equal(lt, [0, 0, 1, 0])
    np.testing.assert_array_equal(nan, [0, 1, 0, 1])
    np.testing.assert_array_equal(q, [0, 1, 0, 1])  # q = !(a >= b) and nan


def test_f16x2_arithmetic_and_packing():
    rng = np.random.default_rng(9)
    a = rng.standard_normal(64).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    packed, fma2, unpacked = elementwise(
        "cvt.rn.f16x2.f32 %d0, %a0, %a1;\n\tfma.rn.f16x2 %d1, %d0, %d0, %d0;\n\tmov.b32 {%rs1, %rs2}, %d1;"
        "\n\tcvt.f32.f16 %d2, %rs2;",
        [("f32", a), ("f32", b)], [("b32", np.uint32), ("b32", np.uint32), ("f32", np.float32)])
    hi, lo = (packed >> 16).astype(np.uint16).view(np.float16), (packed & 0xFFFF).astype(np.uint16).view(np.float16)
    np.testing.assert_array_equal(hi, a.astype(np.float16))  # a goes to the upper half
    np.testing.assert_array_equal(lo, b.astype(np.float16))
    f_hi = (fma2 >> 16).astype(np.uint16).view(np.float16)
    want = (hi.astype(np.float64) * hi + hi).astype(np.float16)  # exact in float64, one rounding
    np.testing.assert_array_equal(f_hi, want)
    np.testing.assert_array_equal(unpacked, want.astype(np.float32))  # {lo, hi} = b32: %rs2 is the upper half


def _warp(body: str, outs: int = 1, prelude: str = "") -> np.ndarray:
    text = module("\tmov.u32 %r1, %laneid;\n\tld.param.u64 %rd1, [k_p0];\n\tmul.wide.u32 %rd2, %r1, "
                  f"{4 * outs};\n\tadd.s64 %rd3, %rd1, %rd2;\n" + body, prelude=prelude)
    out = np.zeros((32, outs), np.uint32)
    ptx.run(text, "k", 1, 32, [out])
    return out


def test_vote_and_shuffle_predicate():
    out = _warp("\tsetp.lt.u32 %p1, %r1, 5;\n\tvote.sync.ballot.b32 %r2, %p1, -1;\n\tvote.sync.any.pred %p2, %p1, -1;"
                "\n\tvote.sync.all.pred %p3, %p1, -1;\n\tselp.u32 %r3, 1, 0, %p2;\n\tselp.u32 %r4, 1, 0, %p3;"
                "\n\tshfl.sync.down.b32 %r5|%p4, %r1, 20, 31, -1;\n\tselp.u32 %r6, 1, 0, %p4;"
                "\n\tst.global.u32 [%rd3], %r2;\n\tst.global.u32 [%rd3+4], %r3;\n\tst.global.u32 [%rd3+8], %r4;"
                "\n\tst.global.u32 [%rd3+12], %r5;\n\tst.global.u32 [%rd3+16], %r6;\n\tret;", outs=5)
    assert (out[:, 0] == 0b11111).all() and (out[:, 1] == 1).all() and (out[:, 2] == 0).all()
    lane = np.arange(32)
    np.testing.assert_array_equal(out[:, 3], np.where(lane + 20 < 32, lane + 20, lane))
    np.testing.assert_array_equal(out[:, 4], lane + 20 < 32)


def test_ldmatrix_x1_x2():
    pre = ".shared .align 16 .b8 sm[256];\n"
    body = ["\tmov.u32 %r2, sm;"]
    for k in range(4):  # lane l stores elements l*4 .. l*4+3 (16-bit) at bytes 8l..8l+7
        body.append(f"\tmad.lo.s32 %r3, %r1, 4, {k};\n\tcvt.u16.u32 %rs1, %r3;\n\tmad.lo.s32 %r4, %r1, 8, %r2;"
                    f"\n\tst.shared.u16 [%r4+{2 * k}], %rs1;")
    body.append("\tbar.sync 0;\n\tand.b32 %r5, %r1, 15;\n\tmad.lo.s32 %r5, %r5, 16, %r2;")  # rows 16 bytes apart
    body.append("\tldmatrix.sync.aligned.m8n8.x1.shared.b16 {%r6}, [%r5];")
    body.append("\tldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%r7, %r8}, [%r5];")
    body.append("\tst.global.u32 [%rd3], %r6;\n\tst.global.u32 [%rd3+4], %r7;\n\tst.global.u32 [%rd3+8], %r8;\n\tret;")
    out = _warp("\n".join(body), outs=3, prelude=pre)
    lane = np.arange(32)
    # row r of matrix m is the 16 bytes at (8m + r) * 16 (lane 8m + r's address), i.e. elements
    # (8m + r) * 8 .. + 7 of the stored sequence
    r, c = lane // 4, 2 * (lane % 4)
    np.testing.assert_array_equal(out[:, 0] & 0xFFFF, r * 8 + c)
    np.testing.assert_array_equal(out[:, 0] >> 16, r * 8 + c + 1)
    np.testing.assert_array_equal(out[:, 1] & 0xFFFF, c * 8 + r)
    np.testing.assert_array_equal(out[:, 2] & 0xFFFF, 64 + c * 8 + r)


def test_device_printf(capsys):
    pre = (".extern .func (.param .b32 func_retval0) vprintf (.param .b64 vprintf_param_0, .param .b64 vprintf_param_1);\n"
           ".global .align 1 .b8 $fmt[22] = {116, 104, 114, 101, 97, 100, 32, 37, 100, 58, 32, 37, 103, 32, 37, 108, "
           "108, 100, 10, 0};\n")
    body = """\t.local .align 8 .b8 __local_depot0[24];
\tmov.u64 %rd10, __local_depot0;
\tcvta.local.u64 %rd11, %rd10;
\tmov.u32 %r1, %tid.x;
\tst.local.u32 [%rd10], %r1;
\tcvt.rn.f64.u32 %fd1, %r1;
\tmul.f64 %fd2, %fd1, 0d3FE0000000000000;
\tst.local.f64 [%rd10+8], %fd2;
\tcvt.u64.u32 %rd12, %r1;
\tmul.lo.s64 %rd12, %rd12, -1000000000000;
\tst.local.u64 [%rd10+16], %rd12;
\tmov.u64 %rd13, $fmt;
\tcvta.global.u64 %rd14, %rd13;
\t{
\t.param .b64 param0;
\tst.param.b64 [param0+0], %rd14;
\t.param .b64 param1;
\tst.param.b64 [param1+0], %rd11;
\t.param .b32 retval0;
\tcall.uni (retval0), vprintf, (param0, param1);
\tld.param.b32 %r2, [retval0+0];
\t}
\tret;"""
    res = ptx.run(module(body, prelude=pre), "k", 1, 3, [np.zeros(1, np.float32)])
    assert res.printed == ["thread 0: 0 0\n", "thread 1: 0.5 -1000000000000\n", "thread 2: 1 -2000000000000\n"]
    assert "thread 2: 1 -2000000000000" in capsys.readouterr().out


def test_shared_memory_race_between_barriers():
    pre = ".shared .align 16 .b8 sm[256];\n"
    body = """\tmov.u32 %r1, %tid.x;
\tmov.u32 %r2, sm;
\tmad.lo.s32 %r3, %r1, 4, %r2;
\tst.shared.u32 [%r3], %r1;
{BARRIER}
\txor.b32 %r4, %r1, 33;
\tmad.lo.s32 %r5, %r4, 4, %r2;
\tld.shared.u32 %r6, [%r5];
\tret;"""
    ptx.run(module(body.replace("{BARRIER}", "\tbar.sync 0;"), prelude=pre), "k", 1, 64, [np.zeros(1, np.float32)])
    with pytest.raises(ptx.RaceError) as info:
        ptx.run(module(body.replace("{BARRIER}", ""), prelude=pre), "k", 1, 64, [np.zeros(1, np.float32)])
    msg = str(info.value)
    assert "race on shared byte" in msg and "wrote it" in msg and "reads it" in msg, msg
    ptx.run(module(body.replace("{BARRIER}", ""), prelude=pre), "k", 1, 64, [np.zeros(1, np.float32)],
            check_races=False)
    same_word = body.replace("{BARRIER}", "").replace("xor.b32 %r4, %r1, 33", "mov.u32 %r4, 0")
    with pytest.raises(ptx.RaceError):  # thread 0's word read by every thread
        ptx.run(module(same_word, prelude=pre), "k", 1, 64, [np.zeros(1, np.float32)])


def test_calls_to_other_functions_are_unsupported():
    pre = ".func (.param .b32 r) helper(.param .b32 a)\n{\n\tret;\n}\n"
    body = "\t{\n\t.param .b32 p0;\n\tst.param.b32 [p0+0], 1;\n\t.param .b32 r0;\n\tcall.uni (r0), helper, (p0);\n\t}\n\tret;"
    with pytest.raises(ptx.PtxUnsupportedError) as info:
        ptx.run(module(body, prelude=pre), "k", 1, 32, [np.zeros(1, np.float32)])
    assert "helper" in str(info.value)
