"""TMA loads and stores and mbarrier pipelines in the emulator against numpy: boxes with and
without swizzle (the swizzled placement computed here from the PTX ISA's swizzle tables, as
CuTe's Swizzle<B,4,3> on byte addresses), boxes hanging off the tensor's edges (zero fill; stores
clipped), and multi-stage pipelines whose barriers go through many phases."""
import numpy as np
import pytest
from hopper_builders import cute_swizzle, swizzle_bits, views
from ir_builders import addr, intrin, kernel

from tilewise.emulator import DeadlockError, MisalignedAddressError, run
from tilewise.ir import Allocate, Buffer, BufferLoad, BufferStore, For, IfThenElse, Var, seq
from tilewise.ir import dtype as dt
from tilewise.ir.expr import logical_and
from tilewise.ir.tensor_map import TensorMap

T = 128


def expected_box(g: np.ndarray, box, coords, S: int, dst: int = 0) -> np.ndarray:
    """Shared bytes after a TMA load of the box at coords into shared address dst (the image
    starts at dst; its length is the box's bytes rounded up to 128)."""
    idx = np.indices(box).reshape(len(box), -1).T + np.asarray(coords)
    inside = ((idx >= 0) & (idx < g.shape)).all(axis=1)
    vals = np.zeros(idx.shape[0], g.dtype)
    vals[inside] = g[tuple(np.where(inside[:, None], idx, 0).T)][inside]
    raw = vals.view(np.uint8)
    out = np.zeros(-(-raw.size // 128) * 128, np.uint8)
    for b in range(raw.size):
        out[cute_swizzle(dst + b, swizzle_bits(S), 4, 3) - dst] = raw[b]
    return out


def tma_load_kernel(G: Buffer, m: TensorMap, coords, size: int):
    """Thread 0 loads the box at `coords` into shared byte 0; every thread then copies the shared
    bytes out to OUT."""
    OUT = Buffer("OUT", (size,), "uint8")

    def build(b_, t):
        tx = t[0]
        smem = Buffer("smem", (size + 1024,), "uint8", scope="shared.dyn")
        v = views(smem, dst=((size,), "uint8", 0), bar=((1,), "uint64", size))
        dst, bar = v["dst"], v["bar"]
        j = Var("j")
        chunk = j * T + tx
        return [
            Allocate(smem), Allocate(dst), Allocate(bar),
            IfThenElse(tx == 0, intrin("mbarrier_init", addr(bar, 0), dt.int32(1))),
            intrin("fence_barrier_init"), intrin("syncthreads"),
            IfThenElse(tx == 0, intrin("mbarrier_arrive_expect_tx", addr(bar, 0), dt.int32(m.box_bytes))),
            IfThenElse(tx == 0, intrin("tma_load", addr(dst, 0), addr(bar, 0), *[dt.int32(c) for c in coords], map=m.name)),
            intrin("mbarrier_wait", addr(bar, 0), dt.int32(0)),
            For(j, 0, -(-size // 16 // T), "serial", IfThenElse(chunk * 16 < size, intrin(
                "copy_vec", addr(OUT, chunk * 16), addr(dst, chunk * 16), bytes=16))),
        ]

    f = kernel([G, OUT], [1], [T], build)
    f.body.attrs["tensor_maps"] = [m]
    return f, OUT


BOXES = [
    ("float16", (40, 104), (16, 64), 128, (8, 16)),
    ("float16", (40, 104), (16, 64), 128, (30, 60)),  # off the bottom and right edges
    ("float16", (40, 104), (16, 64), 128, (-5, -20)),  # before the top and left edges
    ("float16", (40, 104), (16, 64), 0, (-3, 70)),
    ("bfloat16", (33, 64), (16, 32), 64, (20, 0)),
    ("float32", (20, 24), (8, 8), 32, (15, 20)),
    ("float32", (20, 24), (8, 16), 64, (2, 4)),
    ("int8", (5, 30, 48), (4, 8, 32), 32, (3, 25, 24)),  # 3-d
    ("float8_e4m3", (64, 256), (8, 128), 128, (60, 200)),
    ("float32", (7, 5, 12), (2, 4, 4), 0, (6, 3, 10)),
]


@pytest.mark.parametrize("dtype,shape,box,S,coords", BOXES)
def test_tma_load_box(rng, dtype, shape, box, S, coords):
    npdt = dt.as_dtype(dtype).numpy
    g = (rng.integers(1, 100, shape)).astype(npdt)
    G = Buffer("G", shape, dtype)
    m = TensorMap("map_g", G, box, swizzle=S)
    size = -(-m.box_bytes // 128) * 128
    f, OUT = tma_load_kernel(G, m, coords, size)
    out = np.zeros(size, np.uint8)
    run(f, [g, out])
    np.testing.assert_array_equal(out, expected_box(g, box, coords, S))


def test_tma_load_dynamic_shape(rng):
    """The tensor map of a tensor with a dynamic dimension uses the launch's extent."""
    n = Var("n")
    G = Buffer("G", (n, 64), "float16")
    m = TensorMap("map_g", G, (8, 64), swizzle=128)
    f, OUT = tma_load_kernel(G, m, (21, 0), 1024)
    g = rng.integers(1, 100, (25, 64)).astype(np.float16)
    out = np.zeros(1024, np.uint8)
    run(f, [g, out])
    np.testing.assert_array_equal(out, expected_box(g, (8, 64), (21, 0), 128))


def test_tma_map_stride_must_be_16_byte_aligned():
    G = Buffer("G", (16, 36), "float16")  # rows of 72 bytes: cuTensorMapEncodeTiled refuses
    m = TensorMap("map_g", G, (8, 8))
    f, OUT = tma_load_kernel(G, m, (0, 0), 128)
    with pytest.raises(MisalignedAddressError, match="stride of 72 bytes"):
        run(f, [np.zeros((16, 36), np.float16), np.zeros(128, np.uint8)])


@pytest.mark.parametrize("S,box,coords", [(128, (16, 64), (3, 50)), (0, (8, 32), (36, 0)), (32, (8, 16), (0, 0)),
                                          (64, (16, 32), (30, 90))])
def test_tma_store_box(rng, S, box, coords):
    """Threads write a swizzled box image into shared memory; thread 0 stores it with TMA;
    elements outside the tensor are not written."""
    shape = (40, 104)
    G = Buffer("G", shape, "float16")
    m = TensorMap("map_g", G, box, swizzle=S)
    vals = rng.integers(1, 1000, box).astype(np.float16)
    raw = vals.view(np.uint8).reshape(-1)
    size = -(-raw.size // 2048) * 2048
    img = np.zeros(size, np.uint8)
    for b in range(raw.size):
        img[cute_swizzle(b, swizzle_bits(S), 4, 3)] = raw[b]
    IMG = Buffer("IMG", (size,), "uint8")

    def build(b_, t):
        tx = t[0]
        smem = Buffer("smem", (size,), "uint8", scope="shared.dyn")
        j = Var("j")
        chunk = j * T + tx
        return [
            Allocate(smem),
            For(j, 0, size // 16 // T, "serial", intrin("copy_vec", addr(smem, chunk * 16), addr(IMG, chunk * 16), bytes=16)),
            intrin("fence_proxy_async"), intrin("syncthreads"),
            IfThenElse(tx == 0, intrin("tma_store", addr(smem, 0), *[dt.int32(c) for c in coords], map=m.name)),
            IfThenElse(tx == 0, intrin("tma_store_commit")),
            IfThenElse(tx == 0, intrin("tma_store_wait", n=0)),
        ]

    f = kernel([G, IMG], [1], [T], build)
    f.body.attrs["tensor_maps"] = [m]
    g = np.full(shape, -1, np.float16)
    run(f, [g, img])
    want = np.full(shape, -1, np.float16)
    r0, c0 = coords
    r1, c1 = min(shape[0], r0 + box[0]), min(shape[1], c0 + box[1])
    want[r0:r1, c0:c1] = vals[: r1 - r0, : c1 - c0]
    np.testing.assert_array_equal(g, want)


# ------------------------------------------------------------------------------ pipelines


def pipeline_kernel(stages: int, nk: int, rows=4, blocks=1):
    """Each block sums `nk` tiles of G (rows x 32 float32, the block's column slab) through a
    `stages`-deep ring of shared buffers: thread 0 loads with TMA onto "full" barriers; every
    thread reads, then arrives on the stage's "empty" barrier, which thread 0 waits on before
    loading the stage again."""
    G = Buffer("G", (rows * nk, 32 * blocks), "float32")
    OUT = Buffer("OUT", (blocks, T), "float32")
    m = TensorMap("map_g", G, (rows, 32))
    tile = m.box_bytes

    def build(b_, t):
        tx, bx = t[0], b_[0]
        smem = Buffer("smem", (stages * tile + 1024,), "uint8", scope="shared.dyn")
        v = views(smem, buf=((stages, rows, 32), "float32", 0), full=((stages,), "uint64", stages * tile),
                  empty=((stages,), "uint64", stages * tile + 8 * stages))
        buf, full, empty = v["buf"], v["full"], v["empty"]
        acc = Buffer("acc", (1,), "float32", scope="local")
        k = Var("k")
        s = k % stages
        ph = (k // stages) % 2

        def load(stage, kk):
            return [intrin("mbarrier_arrive_expect_tx", addr(full, stage), dt.int32(tile)),
                    intrin("tma_load", addr(buf, stage, 0, 0), addr(full, stage), kk * rows, bx * 32, map=m.name)]

        init = [intrin("mbarrier_init", addr(full, i), dt.int32(1)) for i in range(stages)]
        init += [intrin("mbarrier_init", addr(empty, i), dt.int32(T)) for i in range(stages)]
        prologue = [x for i in range(min(stages, nk)) for x in load(dt.int32(i), dt.int32(i))]
        body = [
            intrin("mbarrier_wait", addr(full, s), ph),
            BufferStore(acc, [0], BufferLoad(acc, [0]) + BufferLoad(buf, [s, tx // 32, tx % 32])),
            intrin("mbarrier_arrive", addr(empty, s)),
            IfThenElse(logical_and(tx == 0, k + stages < nk),
                       seq([intrin("mbarrier_wait", addr(empty, s), ph)] + load(s, k + stages))),
        ]
        return [
            Allocate(smem), Allocate(buf), Allocate(full), Allocate(empty), Allocate(acc),
            BufferStore(acc, [0], dt.float32(0.0)),
            IfThenElse(tx == 0, seq(init + [intrin("fence_barrier_init")])), intrin("syncthreads"),
            IfThenElse(tx == 0, seq(prologue)) if prologue else intrin("syncthreads"),
            For(k, 0, nk, "serial", seq(body)),
            BufferStore(OUT, [bx, tx], BufferLoad(acc, [0])),
        ]

    f = kernel([G, OUT], [blocks], [T], build)
    f.body.attrs["tensor_maps"] = [m]
    return f


@pytest.mark.parametrize("stages,nk", [(2, 1), (2, 2), (2, 7), (3, 2), (3, 10), (3, 0)])
def test_mbarrier_pipeline(rng, stages, nk):
    rows, blocks = 4, 3
    f = pipeline_kernel(stages, nk, rows, blocks)
    g = rng.integers(-50, 50, (rows * nk, 32 * blocks)).astype(np.float32)
    out = np.zeros((blocks, T), np.float32)
    run(f, [g, out])
    want = g.reshape(nk, rows, blocks, 32).sum(axis=0).transpose(1, 0, 2).reshape(blocks, T)
    np.testing.assert_array_equal(out, want)


def test_wait_on_a_long_completed_parity_returns():
    """Phases 0, 1 and 2 complete (parity now 1): a wait on parity 0 returns at once (phase 2
    completed), a wait on parity 1 is a deadlock (phase 3 lacks its arrival)."""
    OUT = Buffer("OUT", (T,), "int32")

    def make(parity):
        def build(b_, t):
            tx = t[0]
            smem = Buffer("smem", (16,), "uint8", scope="shared.dyn")
            bar = views(smem, bar=((2,), "uint64", 0))["bar"]
            return [Allocate(smem), Allocate(bar),
                    IfThenElse(tx == 0, intrin("mbarrier_init", addr(bar, 0), dt.int32(1))), intrin("syncthreads")] + \
                [IfThenElse(tx == 0, intrin("mbarrier_arrive", addr(bar, 0))) for _ in range(3)] + \
                [intrin("mbarrier_wait", addr(bar, 0), dt.int32(parity)), BufferStore(OUT, [tx], dt.int32(7))]

        return kernel([OUT], [1], [T], build)

    out = np.zeros(T, np.int32)
    run(make(0), [out])
    assert (out == 7).all()
    with pytest.raises(DeadlockError, match=r"phase 3 \(parity 1\).*lacks 1 of its 1 arrivals"):
        run(make(1), [np.zeros(T, np.int32)])


def test_mbarrier_between_threads_without_tma():
    """A barrier counting 64 arrivals, waited on by all 128 threads: the phase completes once the
    first two warps have arrived."""
    OUT = Buffer("OUT", (T,), "float32")

    def build(b_, t):
        tx = t[0]
        smem = Buffer("smem", (1024,), "uint8", scope="shared.dyn")
        v = views(smem, bar=((1,), "uint64", 512), data=((T,), "float32", 0))
        bar, data = v["bar"], v["data"]
        return [Allocate(smem), Allocate(bar), Allocate(data),
                IfThenElse(tx == 0, intrin("mbarrier_init", addr(bar, 0), dt.int32(64))), intrin("syncthreads"),
                IfThenElse(tx < 64, seq([BufferStore(data, [tx], dt.float32(1.5)), intrin("mbarrier_arrive", addr(bar, 0))])),
                intrin("mbarrier_wait", addr(bar, 0), dt.int32(0)),
                BufferStore(OUT, [tx], BufferLoad(data, [tx % 64]))]

    out = np.zeros(T, np.float32)
    # the ordering comes from the barrier's phase (emulator/order.py): no race
    run(kernel([OUT], [1], [T], build), [out])
    assert (out == 1.5).all()
