"""Hopper instructions in the PTX interpreter, on hand-written PTX: mbarrier arrivals, phases and
transaction counts, try_wait loops in warp-specialised code (the waiting threads are suspended
while the others run) and their deadlocks, TMA tensor copies through tensor maps passed as
__grid_constant__ parameters, wgmma read through descriptors (no swizzle and 128-byte swizzle,
negated operands, scale-d), elect.sync and setmaxnreg. Expected values come from the PTX ISA's
definitions, written out here in numpy."""
from __future__ import annotations

import numpy as np
import pytest

from tilewise import ptx
from tilewise.ptx import AsyncCopyError, DeadlockError, DivergenceError, EmulatorError, TensorMapDesc

HEAD = ".version 8.0\n.target sm_90a\n.address_size 64\n"
REGS = """\t.reg .pred %p<16>;
\t.reg .b32 %r<64>;
\t.reg .b64 %rd<32>;
\t.reg .f32 %f<16>;
"""


def entry(params: str, body: str, shared: str = "") -> str:
    return f"{HEAD}\n.visible .entry k({params})\n{{\n{REGS}{shared}{body}\n}}\n"


# a thread's u32 slot j of `out` (param 0): %rd10 = out + (%r59 * n + j) * 4, %r59 the thread's
# index in the grid
def store(n: int, j: int, reg: str) -> str:
    return (f"\tmad.lo.u32 %r60, %r59, {n}, {j};\n\tmul.wide.u32 %rd11, %r60, 4;\n\tadd.s64 %rd12, %rd10, %rd11;\n"
            f"\tst.global.u32 [%rd12], {reg};\n")


PROLOGUE = """\tmov.u32 %r1, %tid.x;
\tmov.u32 %r58, %ctaid.x;
\tmov.u32 %r57, %ntid.x;
\tmad.lo.u32 %r59, %r58, %r57, %r1;
\tld.param.u64 %rd9, [k_out];
\tcvta.to.global.u64 %rd10, %rd9;
\tmov.u32 %r2, bar;
"""
BAR = "\t.shared .align 8 .b64 bar;\n"


def init(count: int) -> str:
    return f"""\tsetp.ne.u32 %p15, %r1, 0;
\t@%p15 bra $SKIP_INIT;
\tmbarrier.init.shared::cta.b64 [%r2], {count};
\tfence.mbarrier_init.release.cluster;
$SKIP_INIT:
\tbar.sync 0;
"""


def run(text: str, threads: int, nout: int, *extra, shared: int = 0, grid: int = 1):
    out = np.zeros(threads * nout * grid, np.uint32)
    ptx.run(text, "k", grid=grid, block=threads, args=[out, *extra], dynamic_shared_bytes=shared)
    return out.reshape(grid * threads, nout) if nout > 1 else out


# ---------------------------------------------------------------------------- mbarrier


def test_arrivals_phases_and_states():
    body = PROLOGUE + init(128) + """\tsetp.lt.u32 %p1, %r1, 64;
\tmbarrier.test_wait.parity.shared::cta.b64 %p2, [%r2], 0;
\t@%p1 mbarrier.arrive.shared::cta.b64 %rd1, [%r2];
\tmbarrier.test_wait.parity.shared::cta.b64 %p3, [%r2], 0;
\t@!%p1 mbarrier.arrive.release.cta.shared::cta.b64 %rd1, [%r2];
\tmbarrier.test_wait.parity.shared::cta.b64 %p4, [%r2], 0;
\tmbarrier.test_wait.parity.shared::cta.b64 %p5, [%r2], 1;
\tmbarrier.test_wait.shared::cta.b64 %p6, [%r2], %rd1;
\tmbarrier.arrive.shared::cta.b64 %rd2, [%r2];
\tmbarrier.test_wait.shared::cta.b64 %p7, [%r2], %rd1;
\tmbarrier.try_wait.parity.shared::cta.b64 %p8, [%r2], 1;
\tmbarrier.try_wait.parity.shared::cta.b64 %p9, [%r2], 0;
""" + "".join(f"\tselp.u32 %r{10 + k}, 1, 0, %p{2 + k};\n" + store(10, k, f"%r{10 + k}") for k in range(8)) + \
        "\tcvt.u32.u64 %r20, %rd1;\n" + store(10, 8, "%r20") + "\tcvt.u32.u64 %r21, %rd2;\n" + store(10, 9, "%r21") + \
        "\tret;"
    out = run(entry(".param .u64 k_out", body, BAR), 128, 10)
    # phase 0 completes when the second half arrives; the second round of arrivals completes phase 1
    want = [0, 0, 1, 0, 1, 1, 1, 0, 0, 1]
    np.testing.assert_array_equal(out, np.tile(want, (128, 1)))


def test_transaction_counts():
    body = PROLOGUE + init(1) + """\tsetp.eq.u32 %p1, %r1, 0;
\t@%p1 mbarrier.arrive.expect_tx.shared::cta.b64 _, [%r2], 64;
\tmbarrier.test_wait.parity.shared::cta.b64 %p2, [%r2], 0;
\t@%p1 mbarrier.complete_tx.shared::cta.b64 [%r2], 48;
\tmbarrier.test_wait.parity.shared::cta.b64 %p3, [%r2], 0;
\t@%p1 mbarrier.expect_tx.shared::cta.b64 [%r2], 8;
\t@%p1 mbarrier.complete_tx.shared::cta.b64 [%r2], 24;
\tmbarrier.test_wait.parity.shared::cta.b64 %p4, [%r2], 0;
""" + "".join(f"\tselp.u32 %r{10 + k}, 1, 0, %p{2 + k};\n" + store(3, k, f"%r{10 + k}") for k in range(3)) + "\tret;"
    out = run(entry(".param .u64 k_out", body, BAR), 32, 3)
    np.testing.assert_array_equal(out, np.tile([0, 0, 1], (32, 1)))


PRODUCER_CONSUMER = PROLOGUE + """\tmov.u32 %r3, data;
{init}\tsetp.lt.u32 %p1, %r1, 32;
\t@%p1 bra $PRODUCER;
$WAIT:
\tmbarrier.try_wait.parity.shared::cta.b64 %p2, [%r2], 0;
\t@!%p2 bra $WAIT;
\tand.b32 %r4, %r1, 31;
\tshl.b32 %r5, %r4, 2;
\tadd.s32 %r6, %r3, %r5;
\tld.shared.u32 %r7, [%r6];
""" + store(1, 0, "%r7") + """\tbra.uni $END;
$PRODUCER:
\tmul.lo.u32 %r8, %r1, 3;
\tshl.b32 %r5, %r1, 2;
\tadd.s32 %r6, %r3, %r5;
\tst.shared.u32 [%r6], %r8;
\tmbarrier.arrive.shared::cta.b64 _, [%r2];
$END:
\tret;"""
SHARED_PC = BAR + "\t.shared .align 4 .b32 data[32];\n"


def test_waiting_warp_lets_the_producer_run():
    # the consumer warp's spin loop comes first in the program: its threads are suspended by the
    # failing try_wait until the producer warp has arrived
    text = entry(".param .u64 k_out", PRODUCER_CONSUMER.format(init=init(32)), SHARED_PC)
    out = run(text, 64, 1, grid=2)
    want = np.concatenate([np.zeros(32), np.arange(32) * 3]).astype(np.uint32)
    np.testing.assert_array_equal(out, np.tile(want, 2))


def test_deadlock_names_barrier_phase_and_line():
    text = entry(".param .u64 k_out", PRODUCER_CONSUMER.format(init=init(64)), SHARED_PC)
    with pytest.raises(DeadlockError) as err:
        run(text, 64, 1)
    msg = str(err.value)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "try_wait" in t)
    assert f"wait at PTX line {line} for the phase of parity 0 of the mbarrier at shared byte 0 of block 0" in msg
    assert "32 waiting on it" in msg and "phase 0 (parity 0) with 32 of 64 arrivals" in msg


def test_mbarrier_misuse():
    body = PROLOGUE + "\tmbarrier.arrive.shared::cta.b64 _, [%r2];\n\tret;"
    with pytest.raises(EmulatorError, match="before mbarrier.init"):
        run(entry(".param .u64 k_out", body, BAR), 32, 1)
    body = PROLOGUE + init(1) + "\tmbarrier.arrive.expect_tx.shared::cta.b64 _, [%r2], 16;\n\tret;"
    with pytest.raises(EmulatorError, match="more arrivals on the mbarrier at shared byte 0 of block 0 than it expects"):
        run(entry(".param .u64 k_out", body, BAR), 32, 1)


# ---------------------------------------------------------------------------- TMA


TMA = PROLOGUE + init(1) + """\tsetp.ne.u32 %p1, %r1, 0;
\t@%p1 bra $ISSUED;
\tld.param.u32 %r3, [k_c0];
\tld.param.u32 %r4, [k_c1];
\tmov.u32 %r5, buf;
\tmbarrier.arrive.expect_tx.shared::cta.b64 _, [%r2], {nbytes};
{load}
$ISSUED:
$WAIT:
\tmbarrier.try_wait.parity.shared::cta.b64 %p2, [%r2], 0;
\t@!%p2 bra $WAIT;
\tmov.u32 %r6, buf;
\tshl.b32 %r7, %r1, 2;
\tadd.s32 %r8, %r6, %r7;
\tld.shared.u32 %r9, [%r8];
""" + store(1, 0, "%r9") + "\tret;"
VIA_REGISTER = """\tmov.b64 %rd1, k_map;
\tcvta.param.u64 %rd2, %rd1;
\tcp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r5], [%rd2, {%r4, %r3}], [%r2];"""
VIA_SYMBOL = """\tcp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%r5], [k_map, {%r4, %r3}], [%r2];"""
TMA_PARAMS = ".param .u64 k_out, .param .align 64 .b8 k_map[128], .param .u32 k_c0, .param .u32 k_c1"


@pytest.mark.parametrize("load", [VIA_REGISTER, VIA_SYMBOL], ids=["cvta.param", "symbol"])
@pytest.mark.parametrize("swizzle", [0, 128])
def test_tma_load_box(load, swizzle):
    shared = BAR + "\t.shared .align 1024 .b8 buf[2048];\n"
    text = entry(TMA_PARAMS, TMA.format(nbytes=2048, load=load), shared)
    x = np.arange(40 * 72, dtype=np.float32).reshape(40, 72)
    desc = TensorMapDesc(x, 4, (72, 40), (288,), (32, 16), swizzle)
    for c0, c1 in [(3, 8), (-4, -8), (30, 56)]:  # rows, columns (outermost first)
        out = run(text, 512, 1, desc, c0, c1).view(np.float32)
        box = np.zeros((16, 32), np.float32)
        r0, r1, k0, k1 = max(c0, 0), min(c0 + 16, 40), max(c1, 0), min(c1 + 32, 72)
        box[r0 - c0 : r1 - c0, k0 - c1 : k1 - c1] = x[r0:r1, k0:k1]
        if swizzle:  # 16-byte chunk c of 128-byte line l moves to chunk c ^ (l % 8)
            lines = box.reshape(16, 8, 4)
            box = np.stack([lines[ln][np.arange(8) ^ (ln % 8)] for ln in range(16)]).reshape(16, 32)
        np.testing.assert_array_equal(out, box.reshape(-1))


def test_tma_errors():
    shared = BAR + "\t.shared .align 1024 .b8 buf[2048];\n"
    text = entry(TMA_PARAMS, TMA.format(nbytes=2048, load=VIA_REGISTER), shared)
    with pytest.raises(EmulatorError, match="does not hold a tensor map"):
        run(text, 128, 1, bytes(128), 0, 0)
    x = np.zeros((40, 72), np.float32)
    early = text.replace("$WAIT:\n\tmbarrier.try_wait", "$WAIT:\n\tbra.uni $READ;\n\tmbarrier.try_wait").replace(
        "\tmov.u32 %r6, buf;", "$READ:\n\tmov.u32 %r6, buf;")
    with pytest.raises(AsyncCopyError, match="a TMA load .* writing it has not landed"):
        run(early, 128, 1, TensorMapDesc(x, 4, (72, 40), (288,), (32, 16)), 0, 0)
    with pytest.raises(ptx.PtxLaunchError, match="exceed the 64-byte swizzle"):
        TensorMapDesc(x, 4, (72, 40), (288,), (32, 16), 64)


# ---------------------------------------------------------------------------- wgmma


def canonical_k_major(m: np.ndarray, swizzle: int, lbo: int, sbo: int, base: int, image: np.ndarray):
    """Place a rows x 16 float16 operand, K-major, in shared memory `image` at `base` (PTX ISA
    canonical layouts: 8-row core matrices of 16-byte rows; with a swizzle, rows of `swizzle`
    bytes and 16-byte chunks XORed with bits 7.. of the address)."""
    raw = image.view(np.uint8)
    for r in range(m.shape[0]):
        for k in range(m.shape[1]):
            if swizzle:
                off = (r % 8) * swizzle + (r // 8) * sbo + k * 2
            else:
                off = (r % 8) * 16 + (r // 8) * sbo + (k % 8) * 2 + (k // 8) * lbo
            a = base + off
            if swizzle:
                a ^= ((a >> 7) & (swizzle // 16 - 1)) << 4
            raw[a : a + 2] = np.frombuffer(m[r, k].tobytes(), np.uint8)


def descriptor(start: int, lbo: int, sbo: int, swizzle: int) -> int:
    mode = {0: 0, 128: 1, 64: 2, 32: 3}[swizzle]
    return (start >> 4) | ((lbo >> 4) << 16) | ((sbo >> 4) << 32) | (mode << 62)


WGMMA = """\tmov.u32 %r1, %tid.x;
\tld.param.u64 %rd1, [k_img];
\tcvta.to.global.u64 %rd2, %rd1;
\tmov.u32 %r2, sm;
\tmov.u32 %r3, 0;
$COPY:
\tshl.b32 %r5, %r3, 11;
\tmad.lo.u32 %r5, %r1, 16, %r5;
\tcvt.u64.u32 %rd3, %r5;
\tadd.s64 %rd4, %rd2, %rd3;
\tld.global.v4.u32 {%r10, %r11, %r12, %r13}, [%rd4];
\tadd.s32 %r6, %r2, %r5;
\tst.shared.v4.u32 [%r6], {%r10, %r11, %r12, %r13};
\tadd.s32 %r3, %r3, 1;
\tsetp.lt.u32 %p1, %r3, 5;
\t@%p1 bra $COPY;
\tfence.proxy.async.shared::cta;
\tbar.sync 0;
\tld.param.u64 %rd5, [k_da];
\tld.param.u64 %rd6, [k_db];
\tld.param.u32 %r7, [k_sd];
\tsetp.ne.u32 %p2, %r7, 0;
\tmov.f32 %f1, 0f42C80000;
\tmov.f32 %f2, %f1;
\tmov.f32 %f3, %f1;
\tmov.f32 %f4, %f1;
\twgmma.fence.sync.aligned;
\twgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16 {%f1, %f2, %f3, %f4}, %rd5, %rd6, %p2, 1, {scale_b}, 0, 0;
\twgmma.commit_group.sync.aligned;
\twgmma.wait_group.sync.aligned 0;
\tld.param.u64 %rd7, [k_out];
\tcvta.to.global.u64 %rd8, %rd7;
\tmul.wide.u32 %rd9, %r1, 16;
\tadd.s64 %rd10, %rd8, %rd9;
\tst.global.v4.f32 [%rd10], {%f1, %f2, %f3, %f4};
\tret;"""
WGMMA_PARAMS = ".param .u64 k_img, .param .u64 k_out, .param .u64 k_da, .param .u64 k_db, .param .u32 k_sd"
IMAGE = 5 * 128 * 16  # bytes the threads copy into shared memory


def d_fragment(d: np.ndarray) -> np.ndarray:
    """The m64n8 accumulator as the 128 threads hold it (PTX ISA, wgmma D fragment)."""
    out = np.zeros((128, 4), d.dtype)
    for t in range(128):
        w, lane = t // 32, t % 32
        for i in range(4):
            out[t, i] = d[16 * w + lane // 4 + 8 * ((i >> 1) & 1), 8 * (i >> 2) + 2 * (lane % 4) + (i & 1)]
    return out


@pytest.mark.parametrize("swizzle", [0, 128])
@pytest.mark.parametrize("scale_b, keep", [("1", 1), ("-1", 0)])
def test_wgmma_through_descriptors(swizzle, scale_b, keep):
    rng = np.random.default_rng(0)
    a = rng.integers(-4, 5, (64, 16)).astype(np.float16)
    b = rng.integers(-4, 5, (8, 16)).astype(np.float16)  # B as N x K (K-major)
    image = np.zeros(IMAGE // 2, np.float16)
    if swizzle:
        canonical_k_major(a, 128, 16, 1024, 0, image)  # rows of 128 bytes, 8-row groups 1024 apart
        canonical_k_major(b, 128, 16, 1024, 8192, image)
        da, db = descriptor(0, 16, 1024, 128), descriptor(8192, 16, 1024, 128)
    else:
        canonical_k_major(a, 0, 128, 256, 0, image)  # K halves 128 apart, 8-row groups 256 apart
        canonical_k_major(b, 0, 128, 256, 2048, image)
        da, db = descriptor(0, 128, 256, 0), descriptor(2048, 128, 256, 0)
    text = entry(WGMMA_PARAMS, WGMMA.replace("{scale_b}", scale_b), "\t.shared .align 1024 .b8 sm[10240];\n")
    out = np.zeros((128, 4), np.float32)
    ptx.run(text, "k", grid=1, block=128, args=[image, out, da, db, keep])
    d = int(scale_b) * (a.astype(np.float64) @ b.astype(np.float64).T) + (100.0 if keep else 0.0)
    np.testing.assert_array_equal(out, d_fragment(d))


def test_wgmma_needs_the_whole_warpgroup():
    text = entry(WGMMA_PARAMS, WGMMA.replace("{scale_b}", "1"), "\t.shared .align 1024 .b8 sm[10240];\n")
    args = [np.zeros(IMAGE // 2, np.float16), np.zeros((96, 4), np.float32), descriptor(0, 128, 256, 0),
            descriptor(2048, 128, 256, 0), 1]
    with pytest.raises(EmulatorError, match="warpgroups are 128 threads"):
        ptx.run(text, "k", grid=1, block=96, args=args)
    diverged = text.replace("\twgmma.fence.sync.aligned;", "\tsetp.lt.u32 %p3, %r1, 64;\n\t@%p3 bra $SKIP;\n"
                            "\twgmma.fence.sync.aligned;").replace("\twgmma.commit_group", "$SKIP:\n\twgmma.commit_group")
    args[1] = np.zeros((128, 4), np.float32)
    with pytest.raises(DivergenceError, match="executed by only 64 of the 128 threads of warpgroup 0"):
        ptx.run(diverged, "k", grid=1, block=128, args=args)


# ---------------------------------------------------------------------------- elect, setmaxnreg, parameters


def test_elect_setmaxnreg_and_generic_parameter_loads():
    body = """\tmov.u32 %r1, %tid.x;
\tmov.u32 %r59, %tid.x;
\tld.param.u64 %rd9, [k_out];
\tcvta.to.global.u64 %rd10, %rd9;
\tsetmaxnreg.inc.sync.aligned.u32 240;
\tand.b32 %r2, %r1, 31;
\tsetp.ge.u32 %p1, %r2, 5;
\t@%p1 elect.sync %r3|%p2, 0xffffffe0;
\t@!%p1 mov.u32 %r3, 99;
\t@!%p1 setp.ne.u32 %p2, %r1, %r1;
\tselp.u32 %r4, 1, 0, %p2;
\tmov.b64 %rd1, k_val;
\tcvta.param.u64 %rd2, %rd1;
\tld.u32 %r5, [%rd2];
""" + store(3, 0, "%r3") + store(3, 1, "%r4") + store(3, 2, "%r5") + "\tret;"
    out = run(entry(".param .u64 k_out, .param .u32 k_val", body), 128, 3, 1234)
    lane = np.arange(128) % 32
    np.testing.assert_array_equal(out[:, 0], np.where(lane < 5, 99, 5))  # lanes 5.. elect lane 5
    np.testing.assert_array_equal(out[:, 1], lane == 5)
    np.testing.assert_array_equal(out[:, 2], 1234)


def test_wgmma_operands_need_the_proxy_fence():
    text = entry(WGMMA_PARAMS, WGMMA.replace("{scale_b}", "1").replace("\tfence.proxy.async.shared::cta;\n", ""),
                 "\t.shared .align 1024 .b8 sm[10240];\n")
    args = [np.zeros(IMAGE // 2, np.float16), np.zeros((128, 4), np.float32), descriptor(0, 128, 256, 0),
            descriptor(2048, 128, 256, 0), 1]
    with pytest.raises(ptx.AsyncAccessError, match=r"the wgmma \(B operand\) issued by .* reads shared byte 20\d\d "
                                                    r"of block 0, written by .* with no fence.proxy.async"):
        ptx.run(text, "k", grid=1, block=128, args=args)
