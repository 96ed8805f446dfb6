"""Warp-specialised thread IR in the emulator: warps (warpgroups) scheduled as units that run until
they block, against numpy (a producer warpgroup feeding two consumer warpgroups through
full/empty mbarriers with TMA or plain copies, setmaxnreg and a named barrier among the
consumers; a TMA + wgmma GEMM), the race checks across mbarrier phases and named barriers, and
the bugs seeded into them that must be reported with barrier, phase, threads and lines:
deadlocks, wrong expect_tx counts, ambiguous phases, excess arrivals, divergent barriers,
register budgets. No unit thread may outlive a run."""
import threading

import numpy as np
import pytest
import ws_builders as wb
from hopper_builders import views
from ir_builders import addr, call, intrin, kernel, located

from tilewise.emulator import (
    AsyncCopyError,
    BarrierError,
    DeadlockError,
    DivergenceError,
    MbarrierError,
    OutOfBoundsError,
    RaceError,
    RegisterBudgetError,
    compile_program,
    run,
)
from tilewise.ir import Allocate, Buffer, BufferLoad, BufferStore, Call, For, IfThenElse, LetStmt, Var, seq
from tilewise.ir import dtype as dt


@pytest.fixture(autouse=True)
def no_leaked_threads():
    before = threading.active_count()
    yield
    assert threading.active_count() == before, "an emulator unit thread outlived its run"


def plan_of(f):
    return compile_program(f).steps[0][1].plan


def _pipeline_data(nk, blocks, seed=0):
    a = np.random.default_rng(seed).integers(-8, 8, (blocks * nk, wb.W)).astype(np.float32)
    return a, np.zeros((blocks, wb.W), np.float32)


# ------------------------------------------------------------------------------ pipelines


@pytest.mark.parametrize("tma", [True, False], ids=["tma", "copies"])
@pytest.mark.parametrize("nk,S,blocks", [(1, 2, 2), (2, 2, 2), (3, 2, 3), (8, 2, 2), (4, 4, 2), (5, 4, 2), (14, 4, 2)])
def test_producer_consumer_pipeline(tma, nk, S, blocks):
    """1, S, S + 1 and 3S + 2 iterations; the producer warpgroup waits "empty", announces the
    bytes and copies (TMA from its elected thread, or plain stores by all 128 threads), the two
    consumer warpgroups wait "full", read, arrive "empty", then meet at named barrier 1."""
    f = wb.pipeline(nk, S, blocks, tma=tma)
    p = plan_of(f)
    assert p.scheduled and p.unit == 128
    a, out = _pipeline_data(nk, blocks)
    run(f, [a, out])
    np.testing.assert_array_equal(out, wb.expected(a, nk, blocks))


def test_pipeline_without_setmaxnreg_and_race_checks_off():
    a, out = _pipeline_data(5, 2)
    run(wb.pipeline(5, 2, 2, regs=False), [a, out], check_races=False)
    np.testing.assert_array_equal(out, wb.expected(a, 5, 2))


@pytest.mark.parametrize("tma", [True, False], ids=["tma", "copies"])
def test_pipeline_with_uninitialised_read_checks(tma):
    a, out = _pipeline_data(5, 2)
    run(wb.pipeline(5, 2, 2, tma=tma), [a, out], check_uninit=True)
    np.testing.assert_array_equal(out, wb.expected(a, 5, 2))


@pytest.mark.parametrize("nk,stages", [(1, 2), (2, 2), (3, 2), (8, 2), (5, 3)])
def test_warp_specialized_wgmma_gemm(nk, stages):
    """A TMA producer warpgroup and a wgmma consumer warpgroup, two blocks."""
    rng = np.random.default_rng(1)
    a = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], (2 * wb.M, wb.BK * nk)).astype(np.float16)
    b = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], (wb.N, wb.BK * nk)).astype(np.float16)
    d = np.zeros((2 * wb.M, wb.N), np.float32)
    run(wb.gemm(nk, stages), [a, b, d], check_uninit=nk == 3)
    np.testing.assert_array_equal(d, a.astype(np.float64) @ b.T.astype(np.float64))


# ------------------------------------------------------------------------------ seeded bugs


def _run_bug(bug, tma=True, nk=5, S=2, blocks=2):
    a, out = _pipeline_data(nk, blocks)
    run(wb.pipeline(nk, S, blocks, tma=tma, bug=bug), [a, out])


@pytest.mark.parametrize("tma", [True, False], ids=["tma", "copies"])
def test_consumer_without_empty_arrival_deadlocks(tma):
    with pytest.raises(DeadlockError) as err:
        _run_bug("no_arrive_empty", tma)
    msg = str(err.value)
    assert msg.startswith("deadlock: every unit of the 2 blocks")
    # the producer: barrier, phase, parity, waiting threads, what it lacks, its line
    assert "warpgroup 2 (threads 256-383): mbarrier_wait at" in msg and "# the producer's wait" in msg
    assert "waits for phase 0 (parity 0) of mbarrier empty[0]" in msg and "lacks 256 of its 256 arrivals" in msg
    waiting = "1 waiting thread of block (0, 0, 0), thread (256, 0, 0)" if tma else "128 waiting threads of block (0, 0, 0)"
    assert waiting in msg
    # the consumers, waiting for a stage the producer cannot refill
    assert "warpgroup 0 (threads 0-127): mbarrier_wait" in msg and "phase 1 (parity 1) of mbarrier full[0]" in msg


def test_expect_tx_too_small_is_reported():
    with pytest.raises(MbarrierError, match=r"wrong expect_tx byte count: phase 0 of mbarrier full\[0\].*tx-count of -512.*"
                       r"completed 512 bytes more than expect_tx announced.*# the TMA"):
        _run_bug("expect_small")


def test_expect_tx_too_large_is_a_deadlock():
    with pytest.raises(DeadlockError, match=r"phase 0 \(parity 0\) of mbarrier full\[0\].*lacks 1024 bytes of "
                       r"transactions \(tx-count 1024\) that no TMA copy in flight will bring"):
        _run_bug("expect_large")


def test_phase_passed_twice_is_reported():
    """The producer never waits on "empty": it completes phases 0, 1 and 2 of "full" before a
    consumer waits for phase 0, whose parity now names phase 2."""
    with pytest.raises(MbarrierError) as err:
        _run_bug("no_wait_empty", tma=False)
    msg = str(err.value)
    assert "ambiguous mbarrier phase" in msg and "waits with parity 0 for phase 0 of mbarrier full[0]" in msg
    assert "completed phase 0 and phase 1 (its current phase is 3)" in msg
    assert "thread (0, 0, 0) of block (0, 0, 0)" in msg


def test_phase_passed_twice_while_waiting_is_reported():
    """Lockstep: every thread sees phase 0 complete, then two more phases complete before they
    wait for phase 1 (parity 1): the barrier ran two phases ahead of them."""
    T = 64
    OUT = Buffer("OUT", (T,), "int32")

    def build(b_, t):
        tx = t[0]
        bar = views(Buffer("smem", (16,), "uint8", scope="shared.dyn"), bar=((1,), "uint64", 0))["bar"]
        one = IfThenElse(tx == 0, intrin("mbarrier_arrive", addr(bar, 0)))
        return [Allocate(bar.base), Allocate(bar), IfThenElse(tx == 0, intrin("mbarrier_init", addr(bar, 0), dt.int32(1))),
                intrin("syncthreads"), one, intrin("mbarrier_wait", addr(bar, 0), dt.int32(0)), one, one,
                located(intrin("mbarrier_wait", addr(bar, 0), dt.int32(1))),  # the late wait
                BufferStore(OUT, [tx], dt.int32(1))]

    with pytest.raises(MbarrierError, match=r"ambiguous mbarrier phase: .*# the late wait.*waits with parity 1 for phase "
                       r"1 of mbarrier bar\[0\].*after phase 0, the last it saw complete.*its current phase is 3"):
        run(kernel([OUT], [1], [T], build), [np.zeros(T, np.int32)])


@pytest.mark.parametrize("tma", [True, False], ids=["tma", "copies"])
def test_arrivals_beyond_the_count(tma):
    """"empty" initialised with a count of 1 (meant for an elected thread) while 256 arrive."""
    with pytest.raises(MbarrierError, match=r"# the consumer's arrival.*mbarrier empty\[0\].*receives more arrivals than "
                       r"its phase 0 expects \(1\)"):
        _run_bug("empty_count_one", tma)


def test_thread_arriving_twice_on_a_phase():
    with pytest.raises(MbarrierError, match=r"thread \(0, 0, 0\) of block \(0, 0, 0\) arrives a second time on phase 0 "
                       r"of mbarrier empty\[0\].*count 256"):
        _run_bug("double_arrive")


@pytest.mark.parametrize("tma", [True, False], ids=["tma", "copies"])
def test_syncthreads_among_consumers_only(tma):
    """A __syncthreads the producer warpgroup never reaches (it should be named barrier 1)."""
    with pytest.raises(DivergenceError) as err:
        _run_bug("syncthreads_in_consumers", tma)
    msg = str(err.value)
    assert msg.startswith("divergent barrier:") and "# the consumers' barrier" in msg
    assert "waits for 384 threads of block (0, 0, 0) at barrier 0, but only 256 have arrived (threads 0-255)" in msg
    assert "the others (threads 256-383): warpgroup 2 (threads 256-383) finished" in msg


def test_register_budget_exceeded():
    with pytest.raises(RegisterBudgetError) as err:
        _run_bug("too_many_registers")
    msg = str(err.value)
    assert "setmaxnreg.inc.sync.aligned.u32 240" in msg and "would hold 66560 registers" in msg
    assert "warpgroup 0: 240 x 128, warpgroup 1: 240 x 128, warpgroup 2: 40 x 128" in msg and "65536" in msg


# ------------------------------------------------------------------------------ races across mbarriers


def test_consumer_reading_before_its_wait_on_full():
    with pytest.raises(RaceError, match=r"race on stage\[0, 0\].*thread \(256, 0, 0\).*wrote it.*# the fill.*then thread "
                       r"\(0, 0, 0\).*reads it.*# the read.*no __syncthreads, named barrier or mbarrier phase ordering"):
        _run_bug("no_wait_full", tma=False)
    with pytest.raises(AsyncCopyError, match=r"reads stage\[0, 0\].*while a TMA load into it is still in flight.*# the TMA"):
        _run_bug("no_wait_full", tma=True)


@pytest.mark.parametrize("tma", [True, False], ids=["tma", "copies"])
def test_producer_refilling_a_stage_still_being_read(tma):
    """The consumers arrive on "empty" before reading the stage: the producer's refill races."""
    verb = "issues a TMA load into it" if tma else "writes it"
    where = "# the TMA" if tma else "# the fill"
    with pytest.raises(RaceError, match=rf"thread \(0, 0, 0\) of block \(0, 0, 0\) read it.*# the read.*then thread "
                       rf"\(256, 0, 0\) of block \(0, 0, 0\) {verb}.*{where}"):
        _run_bug("early_arrive", tma)


def test_consumers_without_their_named_barrier():
    with pytest.raises(RaceError, match=r"race on scratch\[\d+\].*# the scratch write"):
        _run_bug("no_named_barrier")


def test_wgmma_consumer_arriving_before_its_wgmma_wait():
    """The refill is ordered after the arrival, but the wgmma's reads end only at the wait."""
    rng = np.random.default_rng(2)
    a = rng.choice([-1.0, 1.0], (2 * wb.M, wb.BK * 4)).astype(np.float16)
    b = rng.choice([-1.0, 1.0], (wb.N, wb.BK * 4)).astype(np.float16)
    with pytest.raises(RaceError) as err:
        run(wb.gemm(4, 2, bug="arrive_before_wgmma_wait"), [a, b, np.zeros((2 * wb.M, wb.N), np.float32)])
    msg = str(err.value)
    assert "a wgmma of warpgroup 0 (threads 0-127) of block (0, 0, 0) read it" in msg and "# the wgmma" in msg
    assert "completed by a wgmma_wait" in msg and "thread (128, 0, 0) of block (0, 0, 0) issues a TMA load" in msg


def test_mbarrier_orders_plain_accesses_in_lockstep():
    """Half the block writes and arrives; every thread waits, then reads what the other half
    wrote: ordered by the phase. A thread reading without the wait races."""
    T = 128
    OUT = Buffer("OUT", (T,), "float32")

    def make(wait: bool):
        def build(b_, t):
            tx = t[0]
            smem = Buffer("smem", (1024,), "uint8", scope="shared.dyn")
            v = views(smem, bar=((1,), "uint64", 512), data=((T,), "float32", 0))
            bar, data = v["bar"], v["data"]
            return [Allocate(smem), Allocate(bar), Allocate(data),
                    IfThenElse(tx == 0, intrin("mbarrier_init", addr(bar, 0), dt.int32(64))), intrin("syncthreads"),
                    IfThenElse(tx < 64, seq([located(BufferStore(data, [tx], dt.float32(1.5))),  # the write
                                             intrin("mbarrier_arrive", addr(bar, 0))])),
                    intrin("mbarrier_wait", addr(bar, 0), dt.int32(0)) if wait else None,
                    located(BufferStore(OUT, [tx], BufferLoad(data, [63 - tx % 64])))]  # the read
        return kernel([OUT], [1], [T], build)

    out = np.zeros(T, np.float32)
    run(make(True), [out])
    assert (out == 1.5).all()
    with pytest.raises(RaceError, match=r"thread \(63, 0, 0\).*wrote it.*# the write.*thread \(0, 0, 0\).*reads it"):
        run(make(False), [np.zeros(T, np.float32)])


# ------------------------------------------------------------------------------ named barriers


def _named_kernel(T, steps, grid=1):
    OUT = Buffer("OUT", (T,), "float32")

    def build(b_, t):
        tx = t[0]
        data = Buffer("data", (T,), "float32", scope="shared")
        return [Allocate(data)] + steps(tx, data, OUT)

    return kernel([OUT], [grid], [T], build)


def test_named_barrier_of_the_whole_block_is_syncthreads():
    T = 64

    def steps(tx, data, OUT):
        return [BufferStore(data, [tx], tx.astype("float32")), intrin("named_barrier", dt.int32(0), dt.int32(T)),
                BufferStore(OUT, [tx], BufferLoad(data, [T - 1 - tx]))]

    out = np.zeros(T, np.float32)
    f = _named_kernel(T, steps)
    assert not plan_of(f).scheduled
    run(f, [out])
    np.testing.assert_array_equal(out, np.arange(T)[::-1])


@pytest.mark.parametrize("barrier", [True, False])
def test_producer_bar_arrive_consumer_bar_sync(barrier):
    """Warp 2 writes and bar.arrive(1, 96); warps 0-1 bar.sync(1, 96), then read: ordered (three
    warp units: the `if` on the thread index puts the barrier under divergent control)."""
    T = 96

    def steps(tx, data, OUT):
        prod = [located(BufferStore(data, [tx - 64], (tx * 2).astype("float32"))),  # the write
                intrin("named_barrier_arrive", dt.int32(1), dt.int32(96)) if barrier else None]
        cons = [intrin("named_barrier", dt.int32(1), dt.int32(96)) if barrier else None,
                BufferStore(OUT, [tx], BufferLoad(data, [tx % 32]))]
        return [IfThenElse(tx >= 64, seq(prod), seq(cons))]

    f = _named_kernel(T, steps)
    p = plan_of(f)
    assert p.scheduled == barrier  # without the barriers nothing synchronises: lockstep
    if barrier:
        assert p.unit == 32 and "under a condition that differs between threads" in p.reason
    out = np.zeros(T, np.float32)
    if not barrier:
        with pytest.raises(RaceError, match=r"thread \(64, 0, 0\).*wrote it.*# the write"):
            run(f, [out])
        return
    run(f, [out])
    np.testing.assert_array_equal(out[:64], (np.arange(64) % 32 + 64) * 2)


def test_named_barrier_misuse():
    T = 128

    def counts(n):
        return lambda tx, data, OUT: [intrin("named_barrier", dt.int32(1), dt.int32(n))]

    with pytest.raises(BarrierError, match="not a positive multiple of 32"):
        run(_named_kernel(T, counts(48)), [np.zeros(T, np.float32)])
    with pytest.raises(BarrierError, match="128 threads of block .* arrive at barrier 1, which counts 64 threads"):
        run(_named_kernel(T, counts(64)), [np.zeros(T, np.float32)])
    with pytest.raises(BarrierError, match="a count of 256 threads is not a positive multiple of 32 up to the block's 128"):
        run(_named_kernel(T, counts(256)), [np.zeros(T, np.float32)])

    def mixed(tx, data, OUT):
        return [IfThenElse(tx < 64, intrin("named_barrier_arrive", dt.int32(2), dt.int32(128)),
                           intrin("named_barrier", dt.int32(2), dt.int32(96)))]

    with pytest.raises(BarrierError, match="names (96|128) threads, but barrier 2 .* already has arrivals counting (128|96)"):
        run(_named_kernel(T, mixed), [np.zeros(T, np.float32)])


def test_divergent_syncthreads_sites_while_a_warp_exits():
    """Warps 0 and 1 wait at two different __syncthreads, warp 2 exits without one."""
    T = 96

    def steps(tx, data, OUT):
        w = tx // 32
        return [IfThenElse(w == 0, located(intrin("syncthreads")),  # the first barrier
                           IfThenElse(w == 1, located(intrin("syncthreads")))),  # the second barrier
                BufferStore(OUT, [tx], dt.float32(1.0))]

    with pytest.raises(DivergenceError) as err:
        run(_named_kernel(T, steps), [np.zeros(T, np.float32)])
    msg = str(err.value)
    assert "warp 0 (threads 0-31): __syncthreads() at" in msg and "# the first barrier" in msg
    assert "warp 1 (threads 32-63): __syncthreads() at" in msg and "# the second barrier" in msg
    assert "only 64 have arrived (threads 0-63)" in msg and "warp 2 (threads 64-95) finished" in msg


def test_divergent_syncthreads_sites_meeting():
    """Every warp reaches a __syncthreads, but two different statements."""
    T = 64

    def steps(tx, data, OUT):
        return [IfThenElse(tx < 32, located(intrin("syncthreads")),  # the first barrier
                           located(intrin("syncthreads")))]  # the second barrier

    with pytest.raises(DivergenceError, match=r"divergent __syncthreads.*from different statements") as err:
        run(_named_kernel(T, steps), [np.zeros(T, np.float32)])
    assert "# the first barrier" in str(err.value) and "# the second barrier" in str(err.value)


def test_syncthreads_by_part_of_a_warp_in_units():
    T = 64

    def steps(tx, data, OUT):
        return [IfThenElse(tx < 48, intrin("syncthreads"))]

    with pytest.raises(DivergenceError, match=r"__syncthreads\(\).*reached by thread \(32, 0, 0\).*not by thread "
                       r"\(48, 0, 0\)"):
        run(_named_kernel(T, steps), [np.zeros(T, np.float32)])


# ------------------------------------------------------------------------------ setmaxnreg, elect_one


def _regs_kernel(steps, T=256):
    OUT = Buffer("OUT", (T,), "float32")
    return kernel([OUT], [1], [T], lambda b_, t: steps(t[0]) + [BufferStore(OUT, [t[0]], dt.float32(1.0))])


def test_setmaxnreg_checks():
    with pytest.raises(RegisterBudgetError, match=r"inc.sync.aligned.u32 256.*would hold 98304 registers.*warpgroup 2: "
                       r"256 x 128"):
        run(_regs_kernel(lambda tx: [intrin("setmaxnreg", inc=True, count=256)], T=384), [np.zeros(384, np.float32)])
    with pytest.raises(DivergenceError, match=r"setmaxnreg.*all 128 threads of a warpgroup"):
        run(_regs_kernel(lambda tx: [IfThenElse(tx < 64, intrin("setmaxnreg", inc=False, count=64))]),
            [np.zeros(256, np.float32)])
    with pytest.raises(RegisterBudgetError, match="integer in 24..256 and a multiple of 8"):
        run(_regs_kernel(lambda tx: [intrin("setmaxnreg", inc=False, count=20)]), [np.zeros(256, np.float32)])
    with pytest.raises(RegisterBudgetError, match="its budget is 64 registers per thread, and setmaxnreg.inc may only raise"):
        run(_regs_kernel(lambda tx: [intrin("setmaxnreg", inc=False, count=64), intrin("setmaxnreg", inc=True, count=56)]),
            [np.zeros(256, np.float32)])
    out = np.zeros(256, np.float32)
    run(_regs_kernel(lambda tx: [intrin("setmaxnreg", inc=False, count=64), intrin("setmaxnreg", inc=True, count=256)]),
        [out])
    assert (out == 1).all()


@pytest.mark.parametrize("units", [False, True])
def test_elect_one(units):
    """One lane per warp, the lowest active one: lanes 5.. of each warp are active."""
    T = 128
    OUT = Buffer("OUT", (T,), "int32")

    def build(b_, t):
        tx = t[0]
        body = [BufferStore(OUT, [tx], dt.int32(0)),
                IfThenElse(tx % 32 >= 5, IfThenElse(call("elect_one", "bool"), BufferStore(OUT, [tx], dt.int32(1))))]
        if units:  # a barrier under a condition on the thread index: warps become units
            body.append(IfThenElse(tx < 64, intrin("named_barrier", dt.int32(1), dt.int32(64))))
        return body

    f = kernel([OUT], [1], [T], build)
    assert plan_of(f).scheduled == units
    out = np.zeros(T, np.int32)
    run(f, [out])
    np.testing.assert_array_equal(np.flatnonzero(out), [5, 37, 69, 101])


# ------------------------------------------------------------------------------ scheduling


def test_which_kernels_are_scheduled():
    T = 128
    OUT = Buffer("OUT", (T,), "int32")

    def plan(body_fn, attrs=None, threads=T):
        f = kernel([OUT], [2], [threads], lambda b_, t: body_fn(b_[0], t[0]))
        f.body.attrs.update(attrs or {})
        return plan_of(f)

    sync = intrin("syncthreads")
    assert not plan(lambda bx, tx: [sync, IfThenElse(bx == 1, sync)]).scheduled  # block-uniform
    assert plan(lambda bx, tx: [IfThenElse(tx % 2 == 0, sync)]).scheduled
    i = Var("i")
    assert plan(lambda bx, tx: [For(i, 0, tx // 32, "serial", sync)]).scheduled  # bounds differ per thread
    r = Buffer("r", (1,), "int32", scope="local")
    flag = lambda v: [Allocate(r), BufferStore(r, [0], v), IfThenElse(BufferLoad(r, [0]) > 0, sync)]  # noqa: E731
    assert not plan(lambda bx, tx: flag(bx + 1)).scheduled
    assert plan(lambda bx, tx: flag(tx)).scheduled  # a register holding the thread index
    x = Var("x")
    assert plan(lambda bx, tx: [LetStmt(x, tx // 64), IfThenElse(x == 0, sync)]).scheduled
    elected = plan(lambda bx, tx: [IfThenElse(Call("elect_one", [], dt.bool_), sync)])
    assert elected.scheduled and elected.unit == 32
    ws = plan(lambda bx, tx: [intrin("setmaxnreg", inc=False, count=64)], {"warp_specialized": True}, threads=256)
    assert ws.scheduled and ws.unit == 128 and "warp_specialized" in ws.reason
    assert not plan(lambda bx, tx: [], {"warp_specialized": True}, threads=32).scheduled  # one warp: lockstep


def test_emulator_gemm_benchmark_stays_in_lockstep():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "emulator_gemm.py"
    spec = importlib.util.spec_from_file_location("emulator_gemm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert not plan_of(mod.build_gemm(256, 256, 256)).scheduled


def test_error_in_a_unit_stops_every_unit():
    """Warp 1 reads out of bounds while warp 0 is blocked at a barrier: the error reaches the
    caller and both unit threads end (the fixture checks the thread count)."""
    T = 64

    def steps(tx, data, OUT):
        return [IfThenElse(tx < 32, intrin("named_barrier", dt.int32(1), dt.int32(64)),
                           located(BufferStore(OUT, [tx], BufferLoad(data, [tx + 100]))))]  # the bad read

    with pytest.raises(OutOfBoundsError, match="# the bad read"):
        run(_named_kernel(T, steps), [np.zeros(T, np.float32)])


def test_blocks_holding_each_other_up_run_one_at_a_time():
    """Block 0's producer arrives before waiting for the consumer's ack, block 1's after: with the
    blocks of a batch progressing together each unit waits on a different block, so the batch
    is run again block by block (global memory restored first: the atomic counts once)."""
    T = 64
    OUT = Buffer("OUT", (2, T), "int32")
    CNT = Buffer("CNT", (1,), "int32")

    def build(b_, t):
        tx, bx = t[0], b_[0]
        smem = Buffer("smem", (16,), "uint8", scope="shared.dyn")
        v = views(smem, full=((1,), "uint64", 0), ack=((1,), "uint64", 8))
        full, ack = v["full"], v["ack"]
        producer = [IfThenElse(bx == 0, intrin("mbarrier_arrive", addr(full, 0))),
                    intrin("mbarrier_wait", addr(ack, 0), dt.int32(0)),
                    IfThenElse(bx == 1, intrin("mbarrier_arrive", addr(full, 0)))]
        consumer = [IfThenElse(bx == 1, intrin("mbarrier_arrive", addr(ack, 0))),
                    intrin("mbarrier_wait", addr(full, 0), dt.int32(0)),
                    IfThenElse(bx == 0, intrin("mbarrier_arrive", addr(ack, 0))),
                    IfThenElse(tx == 0, intrin("atomic_add", addr(CNT, 0), dt.int32(1)))]
        return [Allocate(smem), Allocate(full), Allocate(ack),
                IfThenElse(tx == 0, seq([intrin("mbarrier_init", addr(full, 0), dt.int32(32)),
                                         intrin("mbarrier_init", addr(ack, 0), dt.int32(32))])),
                intrin("syncthreads"),
                IfThenElse(tx >= 32, seq(producer), seq(consumer)),
                BufferStore(OUT, [bx, tx], tx + bx * 100)]

    f = kernel([OUT, CNT], [2], [T], build)
    f.body.attrs["warp_specialized"] = True
    out, cnt = np.zeros((2, T), np.int32), np.zeros(1, np.int32)
    run(f, [out, cnt])
    np.testing.assert_array_equal(out, np.arange(T) + 100 * np.arange(2)[:, None])
    assert cnt[0] == 2


def test_units_vectorise_over_blocks():
    """Twelve blocks in one batch: the pipeline runs with three units, not one per block."""
    import tilewise.emulator.schedule as schedule

    made = []
    orig = schedule.Scheduler.__init__

    def spy(self, *a, **k):
        orig(self, *a, **k)
        made.append(len(self.units))

    schedule.Scheduler.__init__ = spy
    try:
        a, out = _pipeline_data(3, 12)
        run(wb.pipeline(3, 2, 12), [a, out])
    finally:
        schedule.Scheduler.__init__ = orig
    np.testing.assert_array_equal(out, wb.expected(a, 3, 12))
    assert made == [3]

