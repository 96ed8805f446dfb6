"""Hand-written Hopper thread IR for the emulator tests, and the PTX ISA's shared-memory layouts
re-typed here independently of the emulator: the canonical wgmma layouts as the ISA's CuTe
shape:stride tables ("Shared Memory Matrix Layout", "Canonical Layouts") evaluated by a tiny
layout function, CuTe's Swizzle<B, M, S> on byte addresses, and the register fragments as the
ISA's figures describe them."""
from __future__ import annotations

import math

import numpy as np
from ir_builders import addr, intrin

from tilewise.ir import Allocate, Buffer, BufferLoad, BufferStore, Call, For, Var
from tilewise.ir import dtype as dt

# ------------------------------------------------------------------------------ shared memory


def views(root: Buffer, **tiles):
    """Views of the shared root placed at the given byte offsets: name=(shape, dtype, offset)."""
    out = {}
    for name, (shape, dtype, off) in tiles.items():
        v = Buffer(name, shape, dtype, scope="shared.dyn", base=root)
        v.byte_offset = off
        out[name] = v
    return out


def load_image(root: Buffer, img: Buffer, nbytes: int, tx, threads: int):
    """Every thread copies 16-byte chunks of the global byte image `img` into the root."""
    j = Var("j")
    chunk = j * threads + tx
    return For(j, 0, nbytes // 16 // threads, "serial",
               intrin("copy_vec", addr(root, chunk * 16), addr(img, chunk * 16), bytes=16))


def desc(view: Buffer, idx, swizzle: int, lbo: int, sbo: int):
    return Call("wgmma_desc", [addr(view, *idx)], dt.uint64, {"swizzle": swizzle, "lbo": lbo, "sbo": sbo})


# ------------------------------------------------------------------------------ CuTe pieces


def layout(shape, stride, idx: int) -> int:
    """A CuTe layout (nested shape:stride, colexicographic) applied to a 1-d index of a mode."""
    if isinstance(shape, int):
        return (idx % shape) * stride
    off = 0
    for s, d in zip(shape, stride):
        n = math.prod(s) if isinstance(s, tuple) else s
        off += layout(s, d, idx % n)
        idx //= n
    return off


def cute_swizzle(x: int, b: int, m: int, s: int) -> int:
    """CuTe's Swizzle<B, M, S>: the B bits at M + S... are XOR-ed into the B bits at M..."""
    yyy = ((1 << b) - 1) << (m + s)
    return x ^ ((x & yyy) >> s)


def swizzle_bits(S: int) -> int:
    return {0: 0, 32: 1, 64: 2, 128: 3}[S]


def canonical(major: str, S: int, T: int, lbo: int, sbo: int, mn: int, k: int):
    """The ISA's canonical layout ("Canonical Layouts" table) for one instruction's operand, in
    elements: ((MN modes), (K modes)) : strides, with LBO / SBO given in elements."""
    m = max(1, mn // ({0: T}.get(S, S // 16 * T) if major == "MN" else 8))
    if major == "MN":
        kk = max(1, k // 8)
        if S == 0:
            return ((T, 1, m), (8, kk)), ((1, T, sbo), (T, lbo))
        r = S // 16
        return ((T, r, m), (8, kk)), ((1, T, lbo), (r * T, sbo))
    if S == 0:
        return ((8, m), (T, 2)), ((T, sbo), (1, lbo))
    return ((8, m), (T, 2)), ((S // 16 * T, sbo), (1, T))


def operand_image(values_bytes: np.ndarray, major: str, S: int, lbo: int, sbo: int, starts, base: int, size: int):
    """The bytes of shared memory [size] holding an operand of R x (K per step * steps) elements
    (values_bytes [R, Ktot, e] uint8), k-step t starting at shared address starts[t]; `base` is the
    shared address of the image's first byte."""
    R, Ktot, e = values_bytes.shape
    T = 16 // e
    K = 2 * T
    img = np.zeros(size, np.uint8)
    written = np.zeros(size, bool)
    for t, start in enumerate(starts):
        shape, stride = canonical(major, S, T, lbo // e, sbo // e, R, K)
        for r in range(R):
            for k in range(K):
                idx_mn = r
                idx_k = k
                off = layout(shape[0], stride[0], idx_mn) + layout(shape[1], stride[1], idx_k)
                a = cute_swizzle(start + off * e, swizzle_bits(S), 4, 3) - base
                assert not written[a:a + e].any(), "test layout overlaps itself"
                written[a:a + e] = True
                img[a:a + e] = values_bytes[r, t * K + k]
    return img


# ------------------------------------------------------------------------------ fragments


def d_frag(tx, i):
    """Row and column of accumulator element i of warpgroup thread tx (PTX ISA Figure "WGMMA
    .m64nNk16 register fragment layout for accumulator matrix D": warp w has rows 16w..16w+15,
    each quad of lanes a row, two adjacent columns per 8-column block, rows g and g + 8)."""
    w, lane = tx // 32, tx % 32
    g, t = lane // 4, lane % 4
    return 16 * w + g + 8 * ((i // 2) % 2), 8 * (i // 4) + 2 * t + i % 2


def a_frag(esize: int):
    """(row, col) of A-fragment element i of warpgroup thread tx, and the element count: the
    mma.m16n8k{16,8,32} A fragment of each warp, warp w on rows 16w..16w+15."""
    def f16(tx, i):
        w, lane = tx // 32, tx % 32
        g, t = lane // 4, lane % 4
        return 16 * w + g + 8 * ((i // 2) % 2), 2 * t + i % 2 + 8 * (i // 4)

    def tf32(tx, i):
        w, lane = tx // 32, tx % 32
        g, t = lane // 4, lane % 4
        return 16 * w + g + 8 * (i % 2), t + 4 * (i // 2)

    def b8(tx, i):
        w, lane = tx // 32, tx % 32
        g, t = lane // 4, lane % 4
        return 16 * w + g + 8 * ((i // 4) % 2), 4 * t + i % 4 + 16 * (i // 8)

    return {2: (f16, 8), 4: (tf32, 4), 1: (b8, 16)}[esize]


def store_acc(D: Buffer, acc: Buffer, n: int, tx, row0=0, lead=()):
    """D[*lead, rows, cols] = the thread's accumulator registers."""
    i = Var("i")
    r, c = d_frag(tx, i)
    return For(i, 0, n // 2, "serial", BufferStore(D, [*lead, row0 + r, c], BufferLoad(acc, [i])))


def local(name, n, dtype):
    b = Buffer(name, (n,), dtype, scope="local")
    return b, Allocate(b)
