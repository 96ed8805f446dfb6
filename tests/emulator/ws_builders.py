"""Hand-written warp-specialised thread IR for the emulator tests: a producer warpgroup filling
the stages of a shared-memory ring (TMA loads, or plain copies by its 128 threads) and two
consumer warpgroups reading them, handing stages over through "full" and "empty" mbarriers,
with setmaxnreg and a named barrier among the consumers; `bug` seeds one mistake."""
from __future__ import annotations

from hopper_builders import views
from ir_builders import addr, call, intrin, kernel, located

from tilewise.ir import Allocate, Buffer, BufferLoad, BufferStore, For, IfThenElse, Var, seq
from tilewise.ir import dtype as dt
from tilewise.ir.expr import logical_and
from tilewise.ir.tensor_map import TensorMap

W = 256  # elements per stage (float32): one row of A
TC = 256  # consumer threads (warpgroups 0 and 1); the producer is warpgroup 2
T = TC + 128


def pipeline(nk: int, S: int, blocks: int, tma: bool = True, bug: str | None = None, regs: bool = True,
             threads: int = T):
    """OUT[b, t] = acc[t] + acc[255 - t], acc[t] = sum_k 2 A[b nk + k, t] + A[b nk + k, 255 - t]."""
    A = Buffer("A", (blocks * nk, W), "float32")
    OUT = Buffer("OUT", (blocks, W), "float32")
    m = TensorMap("map_a", A, (1, W), swizzle=0)

    def build(b_, t):
        tx, bx = t[0], b_[0]
        stage_bytes = W * 4
        smem = Buffer("smem", (S * stage_bytes + 1024 + 16 * S + 64,), "uint8", scope="shared.dyn")
        v = views(smem, stage=((S, W), "float32", 0), scratch=((TC,), "float32", S * stage_bytes),
                  full=((S,), "uint64", S * stage_bytes + 1024), empty=((S,), "uint64", S * stage_bytes + 1024 + 8 * S))
        stage, scratch, full, empty = v["stage"], v["scratch"], v["full"], v["empty"]
        acc = Buffer("acc", (1,), "float32", scope="local")
        k = Var("k")
        s = k % S
        ph = (k // S) % 2
        row = bx * nk + k

        full_count = 1 if tma else 128
        empty_count = 1 if bug == "empty_count_one" else TC
        init = [intrin("mbarrier_init", addr(full, j), dt.int32(full_count)) for j in range(S)]
        init += [intrin("mbarrier_init", addr(empty, j), dt.int32(empty_count)) for j in range(S)]
        init.append(intrin("fence_barrier_init"))

        # ---- producer (warpgroup 2)
        wait_empty = located(intrin("mbarrier_wait", addr(empty, s), ph ^ 1))  # the producer's wait
        if tma:
            nbytes = {"expect_small": stage_bytes // 2, "expect_large": 2 * stage_bytes}.get(bug, stage_bytes)
            issue = [intrin("mbarrier_arrive_expect_tx", addr(full, s), dt.int32(nbytes)),
                     located(intrin("tma_load", addr(stage, s, 0), addr(full, s), row, dt.int32(0), map=m.name))]  # the TMA
            elected = logical_and(tx // 32 == TC // 32, call("elect_one", "bool"))
            fill = IfThenElse(elected, seq(([] if bug == "no_wait_empty" else [wait_empty]) + issue))
        else:
            p = tx - TC
            copy = [located(BufferStore(stage, [s, p + h], BufferLoad(A, [row, p + h]))) for h in (0, 128)]  # the fill
            fill = seq(([] if bug == "no_wait_empty" else [wait_empty]) + copy
                       + [intrin("mbarrier_arrive", addr(full, s))])
        producer = [For(k, 0, nk, "serial", fill)]
        if regs:
            producer.insert(0, intrin("setmaxnreg", inc=False, count=40))

        # ---- consumers (warpgroups 0 and 1)
        wait_full = intrin("mbarrier_wait", addr(full, s), ph)
        use = BufferStore(acc, [0], BufferLoad(acc, [0]) + BufferLoad(stage, [s, tx]) * 2.0
                          + BufferLoad(stage, [s, (W - 1) - tx]))
        use = located(use)  # the read
        arrive_empty = located(intrin("mbarrier_arrive", addr(empty, s)))  # the consumer's arrival
        body = []
        if bug != "no_wait_full":
            body.append(wait_full)
        if bug == "early_arrive":
            body += [arrive_empty, use]
        else:
            body.append(use)
            if bug != "no_arrive_empty":
                body.append(arrive_empty)
            if bug == "double_arrive":
                body.append(intrin("mbarrier_arrive", addr(empty, s)))
        consumer = [Allocate(acc), BufferStore(acc, [0], dt.float32(0.0)), For(k, 0, nk, "serial", seq(body)),
                    located(BufferStore(scratch, [tx], BufferLoad(acc, [0])))]  # the scratch write
        if bug == "syncthreads_in_consumers":
            consumer.append(located(intrin("syncthreads")))  # the consumers' barrier
        elif bug != "no_named_barrier":
            consumer.append(located(intrin("named_barrier", dt.int32(1), dt.int32(TC))))  # the consumers' barrier
        consumer.append(BufferStore(OUT, [bx, tx], BufferLoad(scratch, [tx]) + BufferLoad(scratch, [(W - 1) - tx])))
        if regs:
            consumer.insert(0, intrin("setmaxnreg", inc=True, count=240 if bug == "too_many_registers" else 232))

        return [Allocate(smem), *[Allocate(x) for x in v.values()],
                IfThenElse(tx == 0, seq(init)), intrin("syncthreads"),
                IfThenElse(tx >= TC, seq(producer), seq(consumer))]

    f = kernel([A, OUT], [blocks], [threads], build)
    f.body.attrs["tensor_maps"] = [m]
    f.body.attrs["warp_specialized"] = True
    return f


def expected(a, nk: int, blocks: int):
    import numpy as np

    x = a.reshape(blocks, nk, W).astype(np.float64)
    acc = (2 * x + x[:, :, ::-1]).sum(axis=1)
    return (acc + acc[:, ::-1]).astype(np.float32)


# ------------------------------------------------------------------------------ wgmma GEMM

M, N, BK = 64, 64, 64  # block tile; K tiles of 64 halves = one 128-byte swizzle row


def gemm(nk: int, stages: int = 2, blocks: int = 2, bug: str | None = None):
    """D[b] (64 x 64) = A[b] (64 x 64 nk) @ B^T, B stored N x K, fp16 -> fp32: warpgroup 1 loads
    A and B tiles with TMA (its elected thread), warpgroup 0 runs wgmma on them."""
    from hopper_builders import desc, local, store_acc

    A = Buffer("A", (blocks * M, BK * nk), "float16")
    B = Buffer("B", (N, BK * nk), "float16")
    D = Buffer("D", (blocks * M, N), "float32")
    ma = TensorMap("map_a", A, (M, BK), swizzle=128)
    mb = TensorMap("map_b", B, (N, BK), swizzle=128)
    tile_a, tile_b = ma.box_bytes, mb.box_bytes

    def build(b_, t):
        tx, bx = t[0], b_[0]
        stage = tile_a + tile_b
        smem = Buffer("smem", (stages * stage + 1024,), "uint8", scope="shared.dyn")
        v = views(smem, sa=((stages, M, BK), "float16", 0), sb=((stages, N, BK), "float16", stages * tile_a),
                  full=((stages,), "uint64", stages * stage), empty=((stages,), "uint64", stages * stage + 8 * stages))
        sa, sb, full, empty = v["sa"], v["sb"], v["full"], v["empty"]
        acc, alloc_acc = local("acc", N // 2, "float32")
        k, i, kk = Var("k"), Var("i"), Var("kk")
        s = k % stages
        ph = (k // stages) % 2
        init = [intrin("mbarrier_init", addr(full, j), dt.int32(1)) for j in range(stages)]
        init += [intrin("mbarrier_init", addr(empty, j), dt.int32(128)) for j in range(stages)]
        init.append(intrin("fence_barrier_init"))
        load = [located(intrin("mbarrier_wait", addr(empty, s), ph ^ 1)),  # the producer's wait
                intrin("mbarrier_arrive_expect_tx", addr(full, s), dt.int32(tile_a + tile_b)),
                located(intrin("tma_load", addr(sa, s, 0, 0), addr(full, s), bx * M, k * BK, map=ma.name)),  # the TMA
                intrin("tma_load", addr(sb, s, 0, 0), addr(full, s), dt.int32(0), k * BK, map=mb.name)]
        producer = [intrin("setmaxnreg", inc=False, count=40),
                    For(k, 0, nk, "serial", IfThenElse(tx == 128, seq(load)))]
        mma = intrin("wgmma", addr(acc, 0), desc(sa, [s, 0, kk * 16], 128, 16, 1024),
                     desc(sb, [s, 0, kk * 16], 128, 16, 1024), dt.int32(1), shape=f"m64n{N}k16", a_dtype="float16",
                     b_dtype="float16", c_dtype="float32")
        arrive = located(intrin("mbarrier_arrive", addr(empty, s)))  # the consumer's arrival
        body = [intrin("mbarrier_wait", addr(full, s), ph), intrin("wgmma_fence"),
                For(kk, 0, BK // 16, "serial", located(mma)),  # the wgmma
                intrin("wgmma_commit")]
        if bug == "arrive_before_wgmma_wait":
            body += [arrive, intrin("wgmma_wait", n=0)]
        else:
            body += [intrin("wgmma_wait", n=0), arrive]
        consumer = [intrin("setmaxnreg", inc=True, count=232), alloc_acc,
                    For(i, 0, N // 2, "serial", BufferStore(acc, [i], dt.float32(0.0))),
                    For(k, 0, nk, "serial", seq(body)), store_acc(D, acc, N, tx, row0=bx * M)]
        return [Allocate(smem), *[Allocate(x) for x in v.values()],
                IfThenElse(tx == 0, seq(init)), intrin("syncthreads"),
                IfThenElse(tx >= 128, seq(producer), seq(consumer))]

    f = kernel([A, B, D], [blocks], [256], build)
    f.body.attrs["tensor_maps"] = [ma, mb]
    f.body.attrs["warp_specialized"] = True
    return f
