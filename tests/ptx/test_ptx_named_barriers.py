"""Named barriers in the PTX interpreter (tilewise/ptx/named_barriers.py), on hand-written PTX:
`bar.sync id, count` among part of the block while the other warps run on, `bar.arrive` as a
producer's hand-over, generations, __syncthreads reached while other threads are suspended in
an mbarrier wait, and the errors: a barrier that can never fill (deadlock naming it), counts
the ISA does not allow, and threads disagreeing on the count."""
from __future__ import annotations

import numpy as np
import pytest
from test_ptx_hopper import BAR, PROLOGUE, entry, init, run, store

from tilewise.ptx import DeadlockError, EmulatorError

SHARED = "\t.shared .align 4 .b32 buf[128];\n"


def _body(lower: str, upper: str) -> str:
    """Threads 0-63 run `lower`, threads 64-127 `upper`; %r3 = tid * 4 + buf."""
    return PROLOGUE + f"""\tmov.u32 %r3, buf;
\tshl.b32 %r4, %r1, 2;
\tadd.u32 %r3, %r3, %r4;
\tsetp.ge.u32 %p1, %r1, 64;
\t@%p1 bra $UPPER;
{lower}\tbra $END;
$UPPER:
{upper}$END:
\tret;
"""


def test_named_barrier_among_half_the_block():
    # the lower half writes, syncs on barrier 1 for 64 threads and reads a neighbour's value; the
    # upper half never takes part and stores its own index
    lower = ("\tst.shared.u32 [%r3], %r1;\n\tmov.u32 %r5, 1;\n\tmov.u32 %r6, 64;\n\tbar.sync %r5, %r6;\n"
             "\txor.b32 %r7, %r1, 1;\n\tshl.b32 %r7, %r7, 2;\n\tmov.u32 %r8, buf;\n\tadd.u32 %r8, %r8, %r7;\n"
             "\tld.shared.u32 %r9, [%r8];\n" + store(1, 0, "%r9"))
    upper = store(1, 0, "%r1")
    out = run(entry(".param .u64 k_out", _body(lower, upper), SHARED + BAR), 128, 1, grid=2)
    want = np.concatenate([np.arange(64) ^ 1, np.arange(64, 128)]).astype(np.uint32)
    np.testing.assert_array_equal(out, np.tile(want, 2))


def test_arrive_hands_over_to_the_waiting_half():
    # the consumers (lower half) wait at barrier 2 for 128 threads before reading what the
    # producers (upper half, later in program order) write and then announce with bar.arrive
    lower = ("\tmov.u32 %r5, 2;\n\tmov.u32 %r6, 128;\n\tbar.sync %r5, %r6;\n\tadd.u32 %r8, %r3, 256;\n"
             "\tld.shared.u32 %r9, [%r8];\n" + store(1, 0, "%r9"))
    upper = ("\tmul.lo.u32 %r10, %r1, 3;\n\tst.shared.u32 [%r3], %r10;\n\tmov.u32 %r5, 2;\n\tmov.u32 %r6, 128;\n"
             "\tbar.arrive %r5, %r6;\n" + store(1, 0, "%r1"))
    out = run(entry(".param .u64 k_out", _body(lower, upper), SHARED + BAR), 128, 1)
    want = np.concatenate([np.arange(64, 128) * 3, np.arange(64, 128)]).astype(np.uint32)
    np.testing.assert_array_equal(out, want)


def test_syncthreads_waits_for_threads_suspended_in_an_mbarrier_wait():
    # the lower half waits on an mbarrier the upper half arrives at after a __syncthreads that
    # the lower half reaches only after its wait: on the GPU the upper half's bar.sync simply
    # waits; the interpreter must not call that divergence
    wait = ("$W:\n\tmbarrier.try_wait.parity.shared::cta.b64 %p2, [%r2], 0;\n\t@!%p2 bra $W;\n"
            "\tbar.sync 0;\n" + store(1, 0, "%r1"))
    arrive = "\tmbarrier.arrive.shared::cta.b64 %rd1, [%r2];\n\tbar.sync 0;\n" + store(1, 0, "%r1")
    body = _body(wait, arrive).replace("\tmov.u32 %r3, buf;", init(64) + "\tmov.u32 %r3, buf;")
    out = run(entry(".param .u64 k_out", body, SHARED + BAR), 128, 1)
    np.testing.assert_array_equal(out, np.arange(128, dtype=np.uint32))


def test_barrier_that_never_fills_is_a_deadlock_naming_it():
    lower = "\tmov.u32 %r5, 1;\n\tmov.u32 %r6, 128;\n\tbar.sync %r5, %r6;\n" + store(1, 0, "%r1")
    text = entry(".param .u64 k_out", _body(lower, store(1, 0, "%r1")), SHARED + BAR)
    with pytest.raises(DeadlockError) as err:
        run(text, 128, 1)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "bar.sync %r5" in t)
    msg = str(err.value)
    assert f"bar.sync 1 (PTX line {line})" in msg and "64 of the 128 threads" in msg, msg


@pytest.mark.parametrize("count,match", [("48", "multiple of 32"), ("256", "no larger than the block")])
def test_counts_the_isa_does_not_allow(count, match):
    lower = f"\tmov.u32 %r5, 1;\n\tmov.u32 %r6, {count};\n\tbar.sync %r5, %r6;\n"
    with pytest.raises(EmulatorError, match=match):
        run(entry(".param .u64 k_out", _body(lower, ""), SHARED + BAR), 128, 1)


def test_threads_disagreeing_on_the_count():
    # warps 0-1 arrive for 64 threads, warp 2 (tid 64-95, upper half) for 96
    lower = "\tmov.u32 %r5, 3;\n\tmov.u32 %r6, 96;\n\tbar.arrive %r5, %r6;\n"
    upper = "\tmov.u32 %r5, 3;\n\tmov.u32 %r6, 64;\n\tbar.arrive %r5, %r6;\n"
    with pytest.raises(EmulatorError, match="counted 96"):
        run(entry(".param .u64 k_out", _body(lower, upper), SHARED + BAR), 128, 1)
