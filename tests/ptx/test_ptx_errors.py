"""What the PTX interpreter reports: unknown instructions and modifiers (never skipped),
out-of-bounds and misaligned accesses naming the kernel parameter or the shared byte and the
PTX line (and the user's line for tilewise kernels), reads of cp.async data before its
wait_group, barriers in divergent code; and divergence that is legal reconverges correctly."""
from __future__ import annotations

import numpy as np
import pytest
from ptx_helpers import module

import tilewise
import tilewise.language as T
from tilewise import ptx

LOAD_TID = """\tmov.u32 %r1, %tid.x;
\tld.param.u64 %rd1, [k_p0];
\tmul.wide.u32 %rd2, %r1, 4;
\tadd.s64 %rd3, %rd1, %rd2;
"""


def test_unknown_instruction_and_modifier_name_the_line():
    text = module(LOAD_TID + "\tfrobnicate.b32 %r2, %r1;\n\tret;")
    with pytest.raises(ptx.PtxUnsupportedError) as info:
        ptx.run(text, "k", 1, 32, [np.zeros(32, np.float32)])
    assert "frobnicate.b32" in str(info.value) and "PTX line" in str(info.value)
    text = module(LOAD_TID + "\tadd.wrap.s32 %r2, %r1, 1;\n\tret;")
    with pytest.raises(ptx.PtxUnsupportedError) as info:
        ptx.run(text, "k", 1, 32, [np.zeros(32, np.float32)])
    assert ".wrap" in str(info.value)


def test_syntax_error_names_the_line():
    with pytest.raises(ptx.PtxSyntaxError) as info:
        ptx.parse(module(LOAD_TID + "\tadd.s32 %r2, %r99, 1;\n\tret;", regs="\t.reg .b32 %r<4>;\n\t.reg .b64 %rd<4>;\n"))
    assert "undeclared register %r99" in str(info.value)


def test_out_of_bounds_global_names_the_parameter():
    text = module(LOAD_TID + "\tld.global.f32 %f1, [%rd3];\n\tst.global.f32 [%rd3+4], %f1;\n\tret;")
    a = np.zeros(32, np.float32)
    with pytest.raises(ptx.OutOfBoundsError) as info:
        ptx.run(text, "k", 1, 32, [a])
    msg = str(info.value)
    assert "parameter k_p0" in msg and "byte offset 128" in msg and "thread (31, 0, 0)" in msg, msg
    assert "st.global.f32" in msg and "PTX line" in msg, msg
    ptx.run(text.replace("[%rd3+4]", "[%rd3]"), "k", 1, 32, [a])  # in bounds: clean


def test_out_of_bounds_shared_and_misaligned():
    pre = ".shared .align 16 .b8 sm[64];\n"
    body = "\tmov.u32 %r1, %tid.x;\n\tmov.u32 %r2, sm;\n\tmad.lo.s32 %r3, %r1, 4, %r2;\n\tst.shared.u32 [%r3], %r1;\n\tret;"
    ptx.run(module(body, prelude=pre), "k", 1, 16, [np.zeros(1, np.float32)])
    with pytest.raises(ptx.OutOfBoundsError) as info:
        ptx.run(module(body, prelude=pre), "k", 1, 32, [np.zeros(1, np.float32)])
    assert "shared access at byte offset 64" in str(info.value)
    misaligned = body.replace("\tst.shared", "\tadd.s32 %r3, %r3, 2;\n\tst.shared")
    with pytest.raises(ptx.MisalignedAddressError):
        ptx.run(module(misaligned, prelude=pre), "k", 1, 8, [np.zeros(1, np.float32)])


def _cp_async_kernel(wait: str, src_size: str = "") -> str:
    pre = ".shared .align 16 .b8 sm[512];\n"
    body = f"""\tmov.u32 %r1, %tid.x;
\tld.param.u64 %rd1, [k_p0];
\tcvta.to.global.u64 %rd1, %rd1;
\tmul.wide.u32 %rd2, %r1, 16;
\tadd.s64 %rd3, %rd1, %rd2;
\tmov.u32 %r2, sm;
\tmad.lo.s32 %r3, %r1, 16, %r2;
\tmov.u32 %r9, 12;
\tcp.async.cg.shared.global [%r3], [%rd3], 16{src_size};
\tcp.async.commit_group;
{wait}
\tld.shared.v4.u32 {{%r4, %r5, %r6, %r7}}, [%r3];
\tld.param.u64 %rd4, [k_p1];
\tadd.s64 %rd5, %rd4, %rd2;
\tst.global.v4.u32 [%rd5], {{%r4, %r5, %r6, %r7}};
\tret;"""
    return module(body, params=("u64", "u64"), prelude=pre)


def test_cp_async_data_lands_at_the_wait():
    a = np.arange(128, dtype=np.uint32)
    out = np.zeros(128, np.uint32)
    ptx.run(_cp_async_kernel("\tcp.async.wait_group 0;"), "k", 1, 32, [a, out])
    np.testing.assert_array_equal(out, a)
    with pytest.raises(ptx.AsyncCopyError) as info:
        ptx.run(_cp_async_kernel("\tcp.async.wait_group 1;"), "k", 1, 32, [a, out])
    assert "cp.async" in str(info.value) and "wait_group" in str(info.value)
    with pytest.raises(ptx.AsyncCopyError):
        ptx.run(_cp_async_kernel(""), "k", 1, 32, [a, out])
    # src-size 12: the last 4 bytes of every 16 are zero-filled
    ptx.run(_cp_async_kernel("\tcp.async.wait_all;", ", %r9"), "k", 1, 32, [a, out])
    np.testing.assert_array_equal(out, np.where(np.arange(128) % 4 == 3, 0, a))


def test_cp_async_zero_fill_reads_nothing():
    # src-size 0 with a source outside every buffer: a pure zero fill, no access
    a = np.arange(4, dtype=np.uint32)
    out = np.ones(128, np.uint32)
    text = _cp_async_kernel("\tcp.async.wait_all;", ", 0")
    ptx.run(text, "k", 1, 32, [a, out])
    assert (out == 0).all()
    with pytest.raises(ptx.OutOfBoundsError):
        ptx.run(_cp_async_kernel("\tcp.async.wait_all;"), "k", 1, 32, [a, out])


def test_divergent_branches_reconverge():
    body = LOAD_TID + """\tand.b32 %r2, %r1, 1;
\tsetp.eq.s32 %p1, %r2, 0;
\t@%p1 bra $EVEN;
\tmov.u32 %r3, 0;
$ODD_LOOP:
\tadd.s32 %r3, %r3, 3;
\tsetp.lt.u32 %p2, %r3, %r1;
\t@%p2 bra $ODD_LOOP;
\tbra.uni $JOIN;
$EVEN:
\tmul.lo.s32 %r3, %r1, 100;
$JOIN:
\tbar.sync 0;
\tadd.s32 %r3, %r3, 1;
\tst.global.u32 [%rd3], %r3;
\tret;"""
    out = np.zeros(64, np.uint32)
    ptx.run(module(body), "k", 1, 64, [out])
    t = np.arange(64)
    odd = np.maximum(3, (t + 2) // 3 * 3)
    np.testing.assert_array_equal(out, np.where(t % 2 == 0, t * 100, odd) + 1)


def test_threads_reaching_a_barrier_first_wait_for_a_path_laid_out_after_it():
    """NVVM lays some paths out after the barrier they lead to and branches back: the threads
    that arrive first (the lowest PC runs first) wait there instead of being reported as a
    barrier in divergent code (found by the differential fuzzer, tests/fuzz)."""
    body = LOAD_TID + """\tsetp.lt.u32 %p1, %r1, 16;
\t@%p1 bra $LATE;
\tmov.u32 %r3, 7;
$JOIN:
\tbar.sync 0;
\tadd.s32 %r3, %r3, 1;
\tst.global.u32 [%rd3], %r3;
\tret;
$LATE:
\tmul.lo.s32 %r3, %r1, 100;
\tbra.uni $JOIN;"""
    out = np.zeros(64, np.uint32)
    ptx.run(module(body), "k", 1, 64, [out])
    t = np.arange(64)
    np.testing.assert_array_equal(out, np.where(t < 16, t * 100, 7) + 1)


def test_barrier_waited_at_while_other_threads_exit():
    body = LOAD_TID + """\tsetp.lt.u32 %p1, %r1, 16;
\t@%p1 bra $LATE;
$JOIN:
\tbar.sync 0;
\tret;
$LATE:
\tret;"""
    with pytest.raises(ptx.DivergenceError, match="bar.sync"):
        ptx.run(module(body), "k", 1, 64, [np.zeros(64, np.float32)])


def test_barrier_in_divergent_code():
    body = LOAD_TID + """\tsetp.lt.u32 %p1, %r1, 16;
\t@%p1 bra $SKIP;
\tbar.sync 0;
$SKIP:
\tret;"""
    with pytest.raises(ptx.DivergenceError) as info:
        ptx.run(module(body), "k", 1, 64, [np.zeros(64, np.float32)])
    assert "bar.sync" in str(info.value)


def test_warp_instruction_in_divergent_code():
    body = LOAD_TID + """\tsetp.lt.u32 %p1, %r1, 16;
\t@%p1 bra $SKIP;
\tshfl.sync.bfly.b32 %r2, %r1, 1, 31, -1;
$SKIP:
\tret;"""
    with pytest.raises(ptx.DivergenceError):
        ptx.run(module(body), "k", 1, 32, [np.zeros(32, np.float32)])


def test_tilewise_kernel_error_names_the_user_line():
    @T.prim_func
    def shifted(A: T.Tensor((16, 16), "float32"), B: T.Tensor((16, 16), "float32")):
        with T.Kernel(1, threads=64) as _:
            s = T.alloc_shared((16, 16), "float32")
            T.copy(A, s)
            for i, j in T.Parallel(16, 16):
                B[i, j] = s[i, j + 256]  # past the end of the shared tile

    k = tilewise.compile(shifted, out_idx=[1], target="cuda", execution_backend="emulator")
    with pytest.raises(ptx.OutOfBoundsError) as info:
        k.with_execution_backend("ptx")(np.zeros((16, 16), np.float32))
    msg = str(info.value)
    assert "shared access" in msg and "PTX line" in msg and "generated CUDA line" in msg, msg
    assert "B[i, j] = s[i, j + 256]  # past the end of the shared tile" in msg, msg
