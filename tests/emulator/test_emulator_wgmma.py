"""wgmma in the emulator against numpy: operands laid out in shared memory by the test from the
PTX ISA's canonical layouts (K-major and MN-major, every swizzle), A from registers, several N and
types, k-steps accumulating, descriptors built by wgmma_desc and advanced by arithmetic."""
import ml_dtypes
import numpy as np
import pytest
from hopper_builders import a_frag, desc, load_image, local, operand_image, store_acc
from ir_builders import addr, intrin, kernel

from tilewise.emulator import run
from tilewise.ir import Allocate, Buffer, BufferLoad, BufferStore, For, LetStmt, Var
from tilewise.ir import dtype as dt

T = 128  # threads: one warpgroup
VALUES = np.array([-2, -1, -0.5, 0, 0.5, 1, 2])  # exact in every operand type, sums exact in f16

NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "tfloat32": np.float32, "float8_e4m3": ml_dtypes.float8_e4m3fn,
      "float8_e5m2": ml_dtypes.float8_e5m2, "int8": np.int8, "uint8": np.uint8, "float32": np.float32,
      "int32": np.int32}  # fmt: skip
STORE = {"tfloat32": "float32"}


def _values(rng, dtype, shape):
    if dtype in ("int8", "uint8"):
        lo, hi = (0, 256) if dtype == "uint8" else (-128, 128)
        return rng.integers(lo, hi, shape).astype(NP[dtype])
    return rng.choice(VALUES, shape).astype(NP[dtype])


def _placement(major, S, e, R, steps):
    """(lbo, sbo, start of each k-step relative to the tile, tile bytes) for an R-row operand of
    `steps` instructions, as a kernel would lay it out (the no-swizzle ones padded, so that a
    wrong LBO or SBO reads the wrong bytes)."""
    if major == "K":
        if S == 0:
            lbo = 128
            sbo = 2 * steps * 128 + 128
            return lbo, sbo, [2 * t * lbo for t in range(steps)], (R // 8) * sbo
        per_row = S // 32  # k-steps per swizzle row
        sbo = 8 * S
        col = (R // 8) * sbo  # bytes of one column of atoms
        cols = -(-steps // per_row)
        return 16, sbo, [(t // per_row) * col + (t % per_row) * 32 for t in range(steps)], cols * col
    if S == 0:
        sbo = 128 + 128
        lbo = (R // (16 // e)) * sbo
        return lbo, sbo, [2 * t * lbo for t in range(steps)], 2 * steps * lbo
    W = S // e
    lbo = 8 * S
    sbo = max(1, R // W) * 8 * S
    return lbo, sbo, [2 * t * sbo for t in range(steps)], 2 * steps * sbo


def _align(n, a=1024):
    return -(-n // a) * a


def run_wgmma(rng, N, at, bt, ct, S_a=128, S_b=128, trans_a=False, trans_b=False, a_regs=False, steps=1,
              desc_arith=False):
    ea, eb = np.dtype(NP[at]).itemsize, np.dtype(NP[bt]).itemsize
    K = 32 // ea
    Ktot = K * steps
    a = _values(rng, at, (64, Ktot))
    b = _values(rng, bt, (Ktot, N))
    ma, mb = ("MN" if trans_a else "K"), ("MN" if trans_b else "K")
    lbo_a, sbo_a, starts_a, bytes_a = _placement(ma, S_a, ea, 64, steps)
    lbo_b, sbo_b, starts_b, bytes_b = _placement(mb, S_b, eb, N, steps)
    off_b = _align(bytes_a)
    size = _align(off_b + bytes_b, 2048)
    img = np.zeros(size, np.uint8)
    if not a_regs:
        img |= operand_image(a.view(np.uint8).reshape(64, Ktot, ea), ma, S_a, lbo_a, sbo_a, starts_a, 0, size)
    img |= operand_image(np.ascontiguousarray(b.T).view(np.uint8).reshape(N, Ktot, eb), mb, S_b, lbo_b, sbo_b,
                         [off_b + s for s in starts_b], 0, size)

    IMG = Buffer("IMG", (size,), "uint8")
    AG = Buffer("AG", (64, Ktot), STORE.get(at, at))
    D = Buffer("D", (64, N), ct)
    fa, na = a_frag(ea)

    def build(b_, t):
        tx = t[0]
        smem = Buffer("smem", (size,), "uint8", scope="shared.dyn")
        acc, alloc_acc = local("acc", N // 2, ct)
        out = [Allocate(smem), alloc_acc, load_image(smem, IMG, size, tx, T), intrin("syncthreads"),
               intrin("fence_proxy_async")]
        if a_regs:
            af, alloc_af = local("af", na * steps, STORE.get(at, at))
            out.append(alloc_af)
            i = Var("i")
            for s in range(steps):
                r, c = fa(tx, i)
                out.append(For(i, 0, na, "serial", BufferStore(af, [s * na + i], BufferLoad(AG, [r, s * K + c]))))
        out.append(intrin("wgmma_fence"))
        da0 = Var("da0", dt.uint64)
        db0 = Var("db0", dt.uint64)
        if desc_arith:
            out.append(LetStmt(da0, desc(smem, [starts_a[0]], S_a, lbo_a, sbo_a)))
            out.append(LetStmt(db0, desc(smem, [off_b + starts_b[0]], S_b, lbo_b, sbo_b)))
        for s in range(steps):
            if a_regs:
                a_arg = addr(af, s * na)
            elif desc_arith:
                a_arg = da0 + dt.uint64((starts_a[s] - starts_a[0]) >> 4)
            else:
                a_arg = desc(smem, [starts_a[s]], S_a, lbo_a, sbo_a)
            b_arg = db0 + dt.uint64((starts_b[s] - starts_b[0]) >> 4) if desc_arith else \
                desc(smem, [off_b + starts_b[s]], S_b, lbo_b, sbo_b)
            out.append(intrin("wgmma", addr(acc, 0), a_arg, b_arg, dt.int32(0 if s == 0 else 1),
                              shape=f"m64n{N}k{K}", a_dtype=at, b_dtype=bt, c_dtype=ct, a_regs=a_regs,
                              trans_a=int(trans_a), trans_b=int(trans_b)))
        out += [intrin("wgmma_commit"), intrin("wgmma_wait", n=0), store_acc(D, acc, N, tx)]
        return out

    d = np.zeros((64, N), NP[ct])
    ag = a.astype(NP[STORE.get(at, at)]) if a_regs else np.zeros((64, Ktot), NP[STORE.get(at, at)])
    run(kernel([IMG, AG, D], [1], [T], build), [img, ag, d])
    if ct == "int32":
        want = a.astype(np.int64) @ b.astype(np.int64)
        np.testing.assert_array_equal(d, ((want + 2**31) % 2**32 - 2**31).astype(np.int32))
    else:
        want = (a.astype(np.float64) @ b.astype(np.float64)).astype(NP[ct])
        np.testing.assert_array_equal(d, want)


@pytest.mark.parametrize("S", [0, 32, 64, 128])
def test_k_major_swizzles(rng, S):
    run_wgmma(rng, 64, "float16", "float16", "float32", S_a=S, S_b=S, steps=2)


@pytest.mark.parametrize("S", [0, 32, 64, 128])
def test_mn_major_swizzles(rng, S):
    run_wgmma(rng, 64, "float16", "float16", "float32", S_a=S, S_b=S, trans_a=True, trans_b=True, steps=2)


@pytest.mark.parametrize("N,at,bt,ct,S_a,S_b,trans_a,trans_b", [
    (8, "float16", "float16", "float16", 128, 32, False, True),
    (256, "float16", "float16", "float32", 128, 128, False, False),
    (128, "bfloat16", "bfloat16", "float32", 64, 128, True, False),
    (24, "bfloat16", "bfloat16", "float32", 0, 64, False, True),
    (16, "tfloat32", "tfloat32", "float32", 128, 0, False, False),
    (40, "tfloat32", "tfloat32", "float32", 32, 64, False, False),
    (24, "float8_e4m3", "float8_e5m2", "float32", 32, 128, False, False),
    (8, "float8_e5m2", "float8_e5m2", "float16", 128, 0, False, False),
    (48, "int8", "uint8", "int32", 64, 128, False, False),
    (256, "int8", "int8", "int32", 128, 32, False, False),
])  # fmt: skip
def test_types_and_shapes(rng, N, at, bt, ct, S_a, S_b, trans_a, trans_b):
    run_wgmma(rng, N, at, bt, ct, S_a=S_a, S_b=S_b, trans_a=trans_a, trans_b=trans_b, steps=2)


@pytest.mark.parametrize("N,at,bt,ct,S_b", [
    (64, "float16", "float16", "float32", 128),
    (32, "bfloat16", "bfloat16", "float32", 0),
    (8, "tfloat32", "tfloat32", "float32", 64),
    (32, "int8", "int8", "int32", 128),
    (16, "float8_e4m3", "float8_e4m3", "float16", 32),
])  # fmt: skip
def test_a_from_registers(rng, N, at, bt, ct, S_b):
    run_wgmma(rng, N, at, bt, ct, S_b=S_b, a_regs=True, steps=2)


@pytest.mark.parametrize("S", [0, 128])
def test_descriptor_arithmetic_advances_k(rng, S):
    """Kernels advance a descriptor along K by adding (bytes >> 4) to it."""
    run_wgmma(rng, 32, "bfloat16", "bfloat16", "float32", S_a=S, S_b=S, steps=3, desc_arith=True)


def test_int32_accumulator_wraps():
    """-128 * -128 * 32 products onto INT_MAX wrap like the hardware without .satfinite."""
    N = 8
    IMG = Buffer("IMG", (4096,), "uint8")
    D = Buffer("D", (64, N), "int32")
    img = np.zeros(4096, np.uint8)
    img[:2048] = np.uint8(0x80)  # A and B all -128 (K-major, no swizzle: any layout of a constant)

    def build(b_, t):
        tx = t[0]
        smem = Buffer("smem", (4096,), "uint8", scope="shared.dyn")
        acc, alloc = local("acc", N // 2, "int32")
        i = Var("i")
        return [Allocate(smem), alloc, load_image(smem, IMG, 4096, tx, T), intrin("syncthreads"),
                intrin("fence_proxy_async"), For(i, 0, N // 2, "serial", BufferStore(acc, [i], dt.int32(2**31 - 1))),
                intrin("wgmma_fence"),
                intrin("wgmma", addr(acc, 0), desc(smem, [0], 0, 128, 256), desc(smem, [1024], 0, 128, 256),
                       dt.int32(1), shape=f"m64n{N}k32", a_dtype="int8", b_dtype="int8", c_dtype="int32"),
                intrin("wgmma_commit"), intrin("wgmma_wait", n=0), store_acc(D, acc, N, tx)]

    d = np.zeros((64, N), np.int32)
    run(kernel([IMG, D], [1], [T], build), [img, d])
    want = np.int64(2**31 - 1) + 128 * 128 * 32
    assert (d == np.int32(((want + 2**31) % 2**32) - 2**31)).all()


def test_descriptor_bits():
    """wgmma_desc packs start >> 4, LBO >> 4, SBO >> 4 and the swizzle mode as the ISA's
    "Matrix Descriptor Format" says (the root is at shared address 0)."""
    O = Buffer("O", (4,), "uint64")
    cases = [(2048, 128, 16, 1024), (4096 + 32, 64, 16, 512), (160, 32, 16, 256), (48, 0, 384, 256)]

    def build(b_, t):
        smem = Buffer("smem", (8192,), "uint8", scope="shared.dyn")
        return [Allocate(smem)] + [BufferStore(O, [k], desc(smem, [a], s, lbo, sbo)) for k, (a, s, lbo, sbo) in
                                   enumerate(cases)]

    o = np.zeros(4, np.uint64)
    run(kernel([O], [1], [1], build), [o])
    mode = {0: 0, 128: 1, 64: 2, 32: 3}
    want = [(a >> 4) | ((lbo >> 4) << 16) | ((sbo >> 4) << 32) | (mode[s] << 62) for a, s, lbo, sbo in cases]
    assert o.tolist() == want


def test_two_warpgroups_share_b(rng):
    """256 threads: each warpgroup multiplies its own A by one shared B (128B swizzle), and both
    read B in flight at once."""
    N, K = 32, 16
    a = _values(rng, "float16", (2, 64, K))
    b = _values(rng, "float16", (K, N))
    lbo, sbo, starts, abytes = _placement("K", 128, 2, 64, 1)
    boff = 2 * abytes
    size = 5 * 4096
    img = np.zeros(size, np.uint8)
    for w in range(2):
        img |= operand_image(a[w].view(np.uint8).reshape(64, K, 2), "K", 128, lbo, sbo, [w * abytes], 0, size)
    img |= operand_image(np.ascontiguousarray(b.T).view(np.uint8).reshape(N, K, 2), "K", 128, lbo, sbo, [boff], 0, size)
    IMG = Buffer("IMG", (size,), "uint8")
    D = Buffer("D", (128, N), "float32")

    def build(b_, t):
        tx = t[0]
        wg = tx // 128
        smem = Buffer("smem", (size,), "uint8", scope="shared.dyn")
        acc, alloc = local("acc", N // 2, "float32")
        return [Allocate(smem), alloc, load_image(smem, IMG, size, tx, 256), intrin("syncthreads"),
                intrin("fence_proxy_async"), intrin("wgmma_fence"),
                intrin("wgmma", addr(acc, 0), desc(smem, [wg * abytes], 128, lbo, sbo), desc(smem, [boff], 128, lbo, sbo),
                       dt.int32(0), shape=f"m64n{N}k16", a_dtype="float16", b_dtype="float16", c_dtype="float32"),
                intrin("wgmma_commit"), intrin("wgmma_wait", n=0), store_acc(D, acc, N, tx % 128, row0=wg * 64)]

    d = np.zeros((128, N), np.float32)
    run(kernel([IMG, D], [1], [256], build), [img, d])
    np.testing.assert_array_equal(d, np.concatenate([a[0], a[1]]).astype(np.float64) @ b.astype(np.float64))


def test_wait_group_keeps_newest_groups(rng):
    """Two groups into two accumulators; wait_group 1 lands the first, wait_group 0 the second."""
    N, K = 16, 16
    a = _values(rng, "float16", (64, K))
    b = _values(rng, "float16", (K, N))
    lbo, sbo, starts, nbytes = _placement("K", 0, 2, 64, 1)
    size = 8192
    img = operand_image(a.view(np.uint8).reshape(64, K, 2), "K", 0, lbo, sbo, [0], 0, size)
    img |= operand_image(np.ascontiguousarray(b.T).view(np.uint8).reshape(N, K, 2), "K", 0, lbo, sbo, [4096], 0, size)
    IMG = Buffer("IMG", (size,), "uint8")
    D = Buffer("D", (2, 64, N), "float32")

    def build(b_, t):
        tx = t[0]
        smem = Buffer("smem", (size,), "uint8", scope="shared.dyn")
        acc0, al0 = local("acc0", N // 2, "float32")
        acc1, al1 = local("acc1", N // 2, "float32")

        def mm(acc):
            return intrin("wgmma", addr(acc, 0), desc(smem, [0], 0, lbo, sbo), desc(smem, [4096], 0, lbo, sbo),
                          dt.int32(0), shape=f"m64n{N}k16", a_dtype="float16", b_dtype="float16", c_dtype="float32")

        return [Allocate(smem), al0, al1, load_image(smem, IMG, size, tx, T), intrin("syncthreads"),
                intrin("fence_proxy_async"), intrin("wgmma_fence"), mm(acc0), intrin("wgmma_commit"), mm(acc1),
                intrin("wgmma_commit"), intrin("wgmma_wait", n=1), store_acc(D, acc0, N, tx, lead=(0,)),
                intrin("wgmma_wait", n=0), store_acc(D, acc1, N, tx, lead=(1,))]

    d = np.zeros((2, 64, N), np.float32)
    run(kernel([IMG, D], [1], [T], build), [img, d])
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_array_equal(d[0], want)
    np.testing.assert_array_equal(d[1], want)
