"""A TMA + mbarrier + wgmma GEMM (two-stage pipeline, 128-byte swizzled tiles, descriptors
advanced along K) against numpy, and the bugs seeded into it that the emulator must report with
the buffer, threads and lines: accumulators touched before their wgmma_wait, shared tiles
overwritten while a wgmma reads them, TMA destinations read before their barrier, wrong phase
parities and missing arrivals (deadlocks, not hangs), missing expect_tx, missing fences."""
import numpy as np
import pytest
from hopper_builders import d_frag, desc, local, store_acc, views
from ir_builders import addr, intrin, kernel, located

from tilewise.emulator import (
    AsyncAccessError,
    AsyncCopyError,
    DeadlockError,
    DivergenceError,
    MbarrierError,
    RaceError,
    run,
)
from tilewise.ir import Allocate, Buffer, BufferLoad, BufferStore, Cast, For, IfThenElse, Var, seq
from tilewise.ir import dtype as dt
from tilewise.ir.expr import logical_and
from tilewise.ir.tensor_map import TensorMap

T = 128
M, N, BK = 64, 64, 64  # block tile; K tiles of 64 halves = one 128-byte swizzle row


def gemm(nk: int, stages: int = 2, bug: str | None = None):
    """D (64 x N) = A (64 x 64 nk) @ B^T with B stored N x K (K-major), fp16 -> fp32."""
    A = Buffer("A", (M, BK * nk), "float16")
    B = Buffer("B", (N, BK * nk), "float16")
    D = Buffer("D", (M, N), "float32")
    ma = TensorMap("map_a", A, (M, BK), swizzle=128)
    mb = TensorMap("map_b", B, (N, BK), swizzle=128)
    tile_a, tile_b = ma.box_bytes, mb.box_bytes
    expect = tile_a if bug == "expect_too_few" else tile_a + tile_b

    def build(b_, t):
        tx = t[0]
        stage = tile_a + tile_b
        smem = Buffer("smem", (stages * stage + 1024,), "uint8", scope="shared.dyn")
        v = views(smem, sa=((stages, M, BK), "float16", 0), sb=((stages, N, BK), "float16", stages * tile_a),
                  full=((stages,), "uint64", stages * stage), empty=((stages,), "uint64", stages * stage + 8 * stages))
        sa, sb, full, empty = v["sa"], v["sb"], v["full"], v["empty"]
        acc, alloc_acc = local("acc", N // 2, "float32")
        k, i, kk = Var("k"), Var("i"), Var("kk")
        s = k % stages
        ph = (k // stages) % 2

        def load(st_, kt):
            arrive = (intrin("mbarrier_arrive", addr(full, st_)) if bug == "missing_expect_tx" else
                      intrin("mbarrier_arrive_expect_tx", addr(full, st_), dt.int32(expect)))
            return [arrive,
                    intrin("tma_load", addr(sa, st_, 0, 0), addr(full, st_), dt.int32(0), kt * BK, map=ma.name),
                    intrin("tma_load", addr(sb, st_, 0, 0), addr(full, st_), dt.int32(0), kt * BK, map=mb.name)]

        init = [intrin("mbarrier_init", addr(full, j), dt.int32(1)) for j in range(stages)]
        init += [intrin("mbarrier_init", addr(empty, j), dt.int32(T)) for j in range(stages)]
        if bug != "no_fence_init":
            init.append(intrin("fence_barrier_init"))
        prologue = [x for j in range(min(stages, nk)) for x in load(dt.int32(j), dt.int32(j))]
        empty_parity = 1 - ph if bug == "wrong_parity" else ph
        wait_empty = located(intrin("mbarrier_wait", addr(empty, s), empty_parity))  # the producer's wait
        refill = load(s, k + stages) if bug == "tma_overwrite" else [wait_empty] + load(s, k + stages)
        producer = IfThenElse(logical_and(tx == 0, k + stages < nk), seq(refill))
        mma = intrin("wgmma", addr(acc, 0), desc(sa, [s, 0, kk * 16], 128, 16, 1024), desc(sb, [s, 0, kk * 16], 128, 16, 1024),
                     dt.int32(1), shape=f"m64n{N}k16", a_dtype="float16", b_dtype="float16", c_dtype="float32")
        wgmmas = For(kk, 0, BK // 16, "serial", located(mma))  # the wgmma
        body = []
        if bug != "no_wait_full":
            body.append(intrin("mbarrier_wait", addr(full, s), ph))
        if bug != "no_wgmma_fence":
            body.append(intrin("wgmma_fence"))
        body.append(wgmmas)
        if bug == "acc_read_early":
            body.append(located(BufferStore(D, [tx % 64, 0], BufferLoad(acc, [1]))))  # the early read
        if bug == "acc_write_early":
            body.append(located(BufferStore(acc, [3], dt.float32(0.0))))  # the early write
        if bug == "overwrite_smem":
            body.append(located(BufferStore(sb, [s, tx % 64, 8], dt.float16(0.0))))  # the overwrite
        if bug == "tma_overwrite":
            body.append(producer)
        body += [intrin("wgmma_commit"), intrin("wgmma_wait", n=0)]
        if bug == "missing_arrival":
            body.append(IfThenElse(tx < 64, intrin("mbarrier_arrive", addr(empty, s))))
        else:
            body.append(intrin("mbarrier_arrive", addr(empty, s)))
        if bug != "tma_overwrite":
            body.append(producer)
        return [
            Allocate(smem), *[Allocate(x) for x in v.values()], alloc_acc,
            For(i, 0, N // 2, "serial", BufferStore(acc, [i], dt.float32(0.0))),
            IfThenElse(tx == 0, seq(init)), intrin("syncthreads"),
            IfThenElse(tx == 0, seq(prologue)),
            For(k, 0, nk, "serial", seq(body)),
            store_acc(D, acc, N, tx),
        ]

    f = kernel([A, B, D], [1], [T], build)
    f.body.attrs["tensor_maps"] = [ma, mb]
    return f


def _run_gemm(nk, stages=2, bug=None, check_uninit=False):
    rng = np.random.default_rng(1)
    a = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], (M, BK * nk)).astype(np.float16)
    b = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], (N, BK * nk)).astype(np.float16)
    d = np.zeros((M, N), np.float32)
    run(gemm(nk, stages, bug), [a, b, d], check_uninit=check_uninit)
    return a, b, d


@pytest.mark.parametrize("nk,stages,check_uninit", [(1, 2, False), (4, 2, True), (5, 3, False)])
def test_tma_wgmma_gemm(nk, stages, check_uninit):
    a, b, d = _run_gemm(nk, stages, check_uninit=check_uninit)
    np.testing.assert_array_equal(d, a.astype(np.float64) @ b.T.astype(np.float64))


def test_accumulator_read_before_wait():
    with pytest.raises(AsyncAccessError) as err:
        _run_gemm(2, bug="acc_read_early")
    msg = str(err.value)
    assert "reads register acc[1]" in msg and "# the early read" in msg and "# the wgmma" in msg
    assert "warpgroup 0 (threads 0-127) of block (0, 0, 0)" in msg and "accumulator" in msg


def test_accumulator_written_before_wait():
    with pytest.raises(AsyncAccessError, match=r"writes register acc\[3\].*# the early write.*# the wgmma"):
        _run_gemm(2, bug="acc_write_early")


def test_shared_tile_overwritten_while_wgmma_reads_it():
    with pytest.raises(AsyncAccessError) as err:
        _run_gemm(2, bug="overwrite_smem")
    msg = str(err.value)
    assert "writes sb[0, 0, 8]" in msg and "# the overwrite" in msg and "wgmma operand read" in msg
    assert "# the wgmma" in msg and "no wgmma_wait of its warpgroup has completed it" in msg


def test_tma_overwrites_tile_a_wgmma_reads():
    """The producer refills the stage before the wgmma_wait (and without waiting for "empty")."""
    with pytest.raises(AsyncAccessError, match=r"TMA load by thread \(0, 0, 0\).*overwrites.*# the wgmma"):
        _run_gemm(3, bug="tma_overwrite")


def test_tma_destination_read_before_its_barrier():
    with pytest.raises(AsyncCopyError, match=r"reads .*sa\[0, \d+, \d+\].*while a TMA load into it is still in flight"):
        _run_gemm(2, bug="no_wait_full")


def test_wrong_parity_is_a_deadlock():
    with pytest.raises(DeadlockError) as err:
        _run_gemm(3, bug="wrong_parity")
    msg = str(err.value)
    assert "# the producer's wait" in msg and "mbarrier empty[0]" in msg and "phase 1 (parity 1)" in msg
    assert "lacks 128 of its 128 arrivals" in msg


def test_missing_arrival_is_a_deadlock():
    with pytest.raises(DeadlockError, match=r"phase 0 \(parity 0\) of mbarrier empty\[0\].*lacks 64 of its 128 arrivals"):
        _run_gemm(3, bug="missing_arrival")


def test_missing_expect_tx():
    """A plain arrive completes the "full" phase at once: the wgmma then reads bytes in flight."""
    with pytest.raises(AsyncCopyError, match="TMA load into it is still in flight"):
        _run_gemm(2, bug="missing_expect_tx")


def test_expect_tx_short_of_the_bytes():
    """The copies bring 8192 bytes more than expect_tx announced: the phase can never complete."""
    with pytest.raises(MbarrierError, match=r"wrong expect_tx byte count: phase 0 of mbarrier full\[0\].*has all its 1 "
                       r"arrivals but a tx-count of -8192"):
        _run_gemm(2, bug="expect_too_few")


def test_missing_fence_barrier_init():
    with pytest.raises(MbarrierError, match="no fence_barrier_init"):
        _run_gemm(1, bug="no_fence_init")


def test_missing_wgmma_fence():
    with pytest.raises(AsyncAccessError, match="executed no wgmma_fence"):
        _run_gemm(1, bug="no_wgmma_fence")


# ------------------------------------------------------------------------------ smaller kernels


def _tile_kernel(body, size=2048, threads=T, out_dtype="float32"):
    OUT = Buffer("OUT", (threads,), out_dtype)

    def build(b_, t):
        smem = Buffer("smem", (size,), "uint8", scope="shared.dyn")
        return [Allocate(smem)] + body(smem, t[0], OUT)

    return kernel([OUT], [1], [threads], build)


def _wgmma(acc, smem, n=8):
    return intrin("wgmma", addr(acc, 0), desc(smem, [0], 0, 128, 256), desc(smem, [1024], 0, 128, 256), dt.int32(0),
                  shape=f"m64n{n}k16", a_dtype="float16", b_dtype="float16", c_dtype="float32")


def test_missing_fence_proxy_async():
    """Tiles written by threads and read by a wgmma need fence.proxy.async in between."""
    def body(fence):
        def b(smem, tx, OUT):
            h = views(smem, h=((1024,), "float16", 0))["h"]
            acc, alloc = local("acc", 4, "float32")
            j = Var("j")
            out = [Allocate(h), alloc,
                   located(For(j, 0, 8, "serial", BufferStore(h, [j * T + tx], dt.float16(1.0)))),  # the fill
                   intrin("syncthreads")]
            if fence:
                out.append(intrin("fence_proxy_async"))
            mma = located(_wgmma(acc, smem))  # the wgmma
            return out + [intrin("wgmma_fence"), mma, intrin("wgmma_commit"), intrin("wgmma_wait", n=0),
                          BufferStore(OUT, [tx], BufferLoad(acc, [0]))]
        return b

    with pytest.raises(RaceError, match=r"reads h\[\d+\].*# the fill.*no fence_proxy_async"):
        run(_tile_kernel(body(False), 4096), [np.zeros(T, np.float32)])
    out = np.zeros(T, np.float32)
    run(_tile_kernel(body(True), 4096), [out])
    assert (out == 16.0).all()


def test_wgmma_of_part_of_a_warpgroup():
    def body(smem, tx, OUT):
        acc, alloc = local("acc", 4, "float32")
        return [alloc, intrin("fence_proxy_async"), intrin("wgmma_fence"), IfThenElse(tx < 64, _wgmma(acc, smem))]

    with pytest.raises(DivergenceError, match=r"all 128 threads of a warpgroup.*thread \(64, 0, 0\).*does not"):
        run(_tile_kernel(body, 4096), [np.zeros(T, np.float32)])


def _bar_kernel(steps):
    def body(smem, tx, OUT):
        v = views(smem, bar=((1,), "uint64", 0), x=((T,), "float32", 512))
        return [Allocate(v["bar"]), Allocate(v["x"])] + steps(v["bar"], v["x"], tx, OUT)
    return _tile_kernel(body, 1024)


def test_barrier_used_before_init():
    k = _bar_kernel(lambda bar, x, tx, OUT: [intrin("mbarrier_arrive", addr(bar, 0))])
    with pytest.raises(MbarrierError, match=r"uses mbarrier bar\[0\].*before any mbarrier_init"):
        run(k, [np.zeros(T, np.float32)])


def test_barrier_used_by_others_without_syncthreads_after_init():
    k = _bar_kernel(lambda bar, x, tx, OUT: [
        located(IfThenElse(tx == 0, intrin("mbarrier_init", addr(bar, 0), dt.int32(T)))),  # the init
        located(intrin("mbarrier_arrive", addr(bar, 0)))])  # the arrive
    with pytest.raises(RaceError, match=r"bar\[0\].*# the init.*thread \(\d+, 0, 0\).*# the arrive"):
        run(k, [np.zeros(T, np.float32)])


def test_plain_store_over_a_live_barrier():
    k = _bar_kernel(lambda bar, x, tx, OUT: [
        IfThenElse(tx == 0, intrin("mbarrier_init", addr(bar, 0), dt.int32(T))), intrin("syncthreads"),
        located(IfThenElse(tx == 0, BufferStore(bar, [0], dt.uint64(0)))), intrin("syncthreads"),  # the store
        intrin("mbarrier_arrive", addr(bar, 0))])
    with pytest.raises(MbarrierError, match="overwritten by a plain store"):
        run(k, [np.zeros(T, np.float32)])


def test_too_many_arrivals():
    k = _bar_kernel(lambda bar, x, tx, OUT: [
        IfThenElse(tx == 0, intrin("mbarrier_init", addr(bar, 0), dt.int32(1))), intrin("fence_barrier_init"),
        intrin("syncthreads"),
        IfThenElse(tx == 0, intrin("tma_load", addr(x, 0), addr(bar, 0), dt.int32(0), map="m")),
        intrin("mbarrier_arrive", addr(bar, 0))])
    G = Buffer("G", (T,), "float32")
    k.params.insert(0, G)
    k.body.attrs["tensor_maps"] = [TensorMap("m", G, (T,))]
    with pytest.raises(MbarrierError, match=r"more arrivals than its phase 0 expects \(1\)"):
        run(k, [np.zeros(T, np.float32), np.zeros(T, np.float32)])


def test_tma_load_in_flight_at_exit():
    G = Buffer("G", (T,), "float32")

    def steps(bar, x, tx, OUT):
        load = seq([intrin("mbarrier_arrive_expect_tx", addr(bar, 0), dt.int32(512)),
                    intrin("tma_load", addr(x, 0), addr(bar, 0), dt.int32(0), map="m")])
        return [IfThenElse(tx == 0, intrin("mbarrier_init", addr(bar, 0), dt.int32(1))), intrin("fence_barrier_init"),
                intrin("syncthreads"), located(IfThenElse(tx == 0, load))]  # the load

    k = _bar_kernel(steps)
    k.params.insert(0, G)
    k.body.attrs["tensor_maps"] = [TensorMap("m", G, (T,))]
    with pytest.raises(AsyncCopyError, match=r"exits while the TMA load issued at .*# the load"):
        run(k, [np.zeros(T, np.float32), np.zeros(T, np.float32)])


def test_tma_store_source_overwritten_before_wait():
    G = Buffer("G", (T,), "float32")

    def make(wait_first):
        def steps(bar, x, tx, OUT):
            st_ = seq([intrin("tma_store", addr(x, 0), dt.int32(0), map="m"), intrin("tma_store_commit")])
            store = [located(IfThenElse(tx == 0, st_))]  # the store
            wait = [IfThenElse(tx == 0, intrin("tma_store_wait", n=0)), intrin("syncthreads")]
            write = [located(BufferStore(x, [tx], dt.float32(2.0)))]  # the rewrite
            return ([BufferStore(x, [tx], Cast(tx, dt.float32)), intrin("fence_proxy_async"), intrin("syncthreads")]
                    + store + (wait + write if wait_first else write + wait))

        k = _bar_kernel(steps)
        k.params.insert(0, G)
        k.body.attrs["tensor_maps"] = [TensorMap("m", G, (T,))]
        return k

    with pytest.raises(AsyncAccessError, match=r"writes x\[\d+\].*# the rewrite.*TMA store read.*# the store"):
        run(make(False), [np.zeros(T, np.float32), np.zeros(T, np.float32)])
    g = np.zeros(T, np.float32)
    run(make(True), [g, np.zeros(T, np.float32)])
    np.testing.assert_array_equal(g, np.arange(T, dtype=np.float32))


def test_d_fragment_covers_the_tile_once():
    """The test's own D-fragment table is a bijection onto the 64 x N tile."""
    for n in (8, 24, 256):
        seen = {d_frag(tx, i) for tx in range(T) for i in range(n // 2)}
        assert seen == {(r, c) for r in range(64) for c in range(n)}


def test_tma_load_issued_by_every_thread():
    G = Buffer("G", (T,), "float32")

    def steps(bar, x, tx, OUT):
        return [IfThenElse(tx == 0, intrin("mbarrier_init", addr(bar, 0), dt.int32(1))), intrin("fence_barrier_init"),
                intrin("syncthreads"), intrin("tma_load", addr(x, 0), addr(bar, 0), dt.int32(0), map="m")]

    k = _bar_kernel(steps)
    k.params.insert(0, G)
    k.body.attrs["tensor_maps"] = [TensorMap("m", G, (T,))]
    with pytest.raises(AsyncCopyError, match=r"issued by thread \(0, 0, 0\).*and by thread \(1, 0, 0\).*one thread"):
        run(k, [np.zeros(T, np.float32), np.zeros(T, np.float32)])


def test_descriptor_must_be_uniform_in_the_warpgroup():
    def body(smem, tx, OUT):
        acc, alloc = local("acc", 4, "float32")
        mma = intrin("wgmma", addr(acc, 0), desc(smem, [(tx // 64) * 1024], 0, 128, 256), desc(smem, [2048], 0, 128, 256),
                     dt.int32(0), shape="m64n8k16", a_dtype="float16", b_dtype="float16", c_dtype="float32")
        return [alloc, intrin("fence_proxy_async"), intrin("wgmma_fence"), mma]

    with pytest.raises(DivergenceError, match=r"A descriptor.*thread \(64, 0, 0\).*passes 0x1000080040.*same in every thread"):
        run(_tile_kernel(body, 4096), [np.zeros(T, np.float32)])


def test_chaining_onto_an_accumulator_of_another_shape():
    """Only wgmmas of the same shape may accumulate into registers a pending wgmma owns."""
    def body(smem, tx, OUT):
        acc, alloc = local("acc", 8, "float32")
        first = _wgmma(acc, smem, n=16)
        second = located(_wgmma(acc, smem, n=8))  # the second
        return [alloc, intrin("fence_proxy_async"), intrin("wgmma_fence"), first, second]

    with pytest.raises(AsyncAccessError, match=r"# the second.*as its accumulator while the wgmma.mma_async.m64n16k16"):
        run(_tile_kernel(body, 4096), [np.zeros(T, np.float32)])


@pytest.mark.parametrize("attrs,match", [
    ({"shape": "m64n12k16"}, "N = 12"),
    ({"shape": "m64n16k8", "a_dtype": "tf32", "b_dtype": "tf32", "trans_b": 1}, "only for f16 / bf16"),
    ({"shape": "m64n16k16", "a_dtype": "bf16", "b_dtype": "bf16", "c_dtype": "f16"}, "float16 accumulator for bfloat16"),
    ({"shape": "m64n16k32", "a_dtype": "s8", "b_dtype": "e4m3", "c_dtype": "s32"}, "integer operands"),
])  # fmt: skip
def test_variants_the_isa_does_not_have(attrs, match):
    from tilewise.emulator import UnsupportedError

    def body(smem, tx, OUT):
        acc, alloc = local("acc", 8, "float32")
        kw = {"shape": "m64n16k16", "a_dtype": "float16", "b_dtype": "float16", "c_dtype": "float32", **attrs}
        return [alloc, intrin("wgmma", addr(acc, 0), desc(smem, [0], 0, 128, 256), desc(smem, [2048], 0, 128, 256),
                              dt.int32(0), **kw)]

    with pytest.raises(UnsupportedError, match=match):
        run(_tile_kernel(body, 4096), [np.zeros(T, np.float32)])


def test_wait_without_commit_leaves_the_accumulator_owned():
    def body(smem, tx, OUT):
        acc, alloc = local("acc", 4, "float32")
        return [alloc, intrin("fence_proxy_async"), intrin("wgmma_fence"), _wgmma(acc, smem), intrin("wgmma_wait", n=0),
                BufferStore(OUT, [tx], BufferLoad(acc, [0]))]

    with pytest.raises(AsyncAccessError, match=r"reads register acc\[0\].*no wgmma_commit has put it in a group"):
        run(_tile_kernel(body, 4096), [np.zeros(T, np.float32)])
