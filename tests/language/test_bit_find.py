"""T.__ffs / T.__fns (TileLang 0.1.13's warp_vote tests) against Python models of CUDA's `__ffs`
/ `__ffsll` and PTX's `fns.b32` pseudo-code, on the CPU target and the CUDA emulator."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError

HOW = [dict(target="cpu"), dict(target="cuda", execution_backend="emulator"),
       dict(target="cuda", execution_backend="ptx")]  # NVRTC's PTX, interpreted


def ffs(x: int, bits: int) -> int:
    x &= (1 << bits) - 1
    return (x & -x).bit_length()


def fns(mask: int, base: int, offset: int) -> int:
    """PTX ISA fns.b32's semantics."""
    if offset == 0:
        return base if (mask >> base) & 1 else 0xFFFFFFFF
    pos, count, inc = base, abs(offset) - 1, 1 if offset > 0 else -1
    while 0 <= pos < 32:
        if (mask >> pos) & 1:
            if count == 0:
                return pos
            count -= 1
        pos += inc
    return 0xFFFFFFFF


def _masks(rng, n):
    special = [0, 1, 0x80000000, 0xFFFFFFFF, 0xAAAAAAAA, 0x55555555, 0xFFFFFF80, 0x00010000]
    return np.array(special + list(rng.integers(0, 2**32, n - len(special), dtype=np.uint64)), np.uint64)


@pytest.mark.parametrize("how", HOW)
def test_ffs_32_and_64_bit(how):
    n = 64
    rng = np.random.default_rng(7)
    x32 = _masks(rng, n).astype(np.uint32).view(np.int32)
    x64 = (rng.integers(0, 2**63, n, dtype=np.int64) << rng.integers(0, 40, n)).astype(np.int64)
    x64[:4] = [0, 1, -(2**63), -1]

    @T.prim_func
    def k(A: T.Tensor((n,), "int32"), B: T.Tensor((n,), "int64"), O: T.Tensor((2, n), "int32")):
        with T.Kernel(1, threads=n):
            t = T.get_thread_binding()
            O[0, t] = T.__ffs(A[t])
            O[1, t] = T.__ffs(B[t])

    o = torch.zeros(2, n, dtype=torch.int32)
    tilewise.compile(k, **how)(torch.from_numpy(x32), torch.from_numpy(x64), o)
    assert o[0].tolist() == [ffs(int(v), 32) for v in x32]
    assert o[1].tolist() == [ffs(int(v), 64) for v in x64]


@pytest.mark.parametrize("how", HOW)
def test_fns_every_base_and_offset(how):
    rng = np.random.default_rng(11)
    masks = _masks(rng, 16).astype(np.uint32)
    offsets = list(range(-33, 34))

    @T.prim_func
    def k(M: T.Tensor((16,), "uint32"), O: T.Tensor((16, 32, 67), "uint32")):
        with T.Kernel(16, threads=32) as bx:
            base = T.get_thread_binding()
            for j in T.serial(67):
                O[bx, base, j] = T.__fns(M[bx], base, j - 33)

    o = torch.zeros(16, 32, 67, dtype=torch.uint32)
    tilewise.compile(k, **how)(torch.from_numpy(masks), o)
    want = [[[fns(int(m), b, off) for off in offsets] for b in range(32)] for m in masks]
    assert o.long().tolist() == want


@pytest.mark.parametrize("how", HOW)
def test_fns_of_a_ballot(how):
    # TileLang's test: the third set lane of a ballot of lanes >= 7 is lane 9; __ffs finds lane 7
    @T.prim_func
    def k(B: T.Tensor((32,), "int32"), C: T.Tensor((32,), "int32")):
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding()
            mask = T.ballot_sync(tx >= 7)
            B[tx] = T.cast(T.__fns(T.cast(mask, "uint32"), 0, 3), "int32")
            C[tx] = T.__ffs(mask) - 1

    b, c = torch.zeros(32, dtype=torch.int32), torch.zeros(32, dtype=torch.int32)
    tilewise.compile(k, **how)(b, c)
    assert torch.all(b == 9) and torch.all(c == 7)


def test_argument_checks():
    with pytest.raises(TypeError, match="32-bit or 64-bit integer"):
        T.__ffs(T.int16(3))
    with pytest.raises(TypeError, match="integer argument"):
        T.__ffs(T.float32(1.0))
    with pytest.raises(TypeError, match="32-bit integer mask"):
        T.__fns(T.uint64(3), 0, 1)
    with pytest.raises(CompileError, match="base must be 0..31"):
        T.__fns(T.uint32(3), 32, 1)
