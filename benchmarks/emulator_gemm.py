"""Emulator speed on a hand-written thread-IR fp16 GEMM shaped like the lowered T.gemm pipeline:
128x128x32 tiles, a 3-stage cp.async pipeline, 128 threads (2x2 warps of 64x64), ldmatrix.x4
(.trans for B) and mma.sync.m16n8k16 f16 -> f32. Prints the time of one emulated run next to
the numpy matmul it is checked against.

    .venv/bin/python benchmarks/emulator_gemm.py [M N K]
"""
from __future__ import annotations

import sys
import time

import numpy as np

from tilewise.ir import (
    Allocate,
    Buffer,
    BufferLoad,
    BufferStore,
    Call,
    Evaluate,
    For,
    IfThenElse,
    Kernel,
    LetStmt,
    PrimFunc,
    Var,
    seq,
)
from tilewise.ir import dtype as dt


def addr(buf, *idx):
    return Call("address_of", [BufferLoad(buf, idx)], dt.handle)


def intrin(name, *args, **attrs):
    return Evaluate(Call(name, list(args), dt.handle, attrs))


def build_gemm(M: int, N: int, K: int, bm: int = 128, bn: int = 128, bk: int = 32, stages: int = 3,
               barrier: bool = True, wait: bool = True) -> PrimFunc:
    """C[M, N] (float32) = A[M, K] @ B[K, N] (float16), one block per bm x bn tile.
    `barrier=False` drops the __syncthreads after the wait and `wait=False` the cp_async_wait:
    both are seeded bugs the emulator must report."""
    threads = 128
    assert M % bm == 0 and N % bn == 0 and K % bk == 0 and bk % 16 == 0
    wm_tile, wn_tile = bm // 2, bn // 2  # 2 x 2 warps
    mi_n, ni_n = wm_tile // 16, wn_tile // 8
    nk = K // bk
    A = Buffer("A", (M, K), "float16")
    B = Buffer("B", (K, N), "float16")
    C = Buffer("C", (M, N), "float32")
    bx, by, tx = Var("bx"), Var("by"), Var("tx")
    a_bytes = stages * bm * bk * 2
    smem = Buffer("smem", (a_bytes + stages * bk * bn * 2,), "uint8", scope="shared.dyn")
    A_s = Buffer("A_shared", (stages, bm, bk), "float16", scope="shared.dyn", base=smem)
    B_s = Buffer("B_shared", (stages, bk, bn), "float16", scope="shared.dyn", base=smem)
    B_s.byte_offset = a_bytes
    A_f = Buffer("A_frag", (mi_n * 8,), "float16", scope="local")
    B_f = Buffer("B_frag", (ni_n * 4,), "float16", scope="local")
    C_f = Buffer("C_frag", (mi_n * ni_n * 4,), "float32", scope="local")
    warp, lane, wm, wn = Var("warp"), Var("lane"), Var("wm"), Var("wn")

    def load_tile(stage, kt):
        out = []
        for c in range(bm * bk // 8 // threads):
            i = Var("ia")
            out.append(LetStmt(i, c * threads + tx))
            row, col = i // (bk // 8), (i % (bk // 8)) * 8
            out.append(intrin("cp_async", addr(A_s, stage, row, col), addr(A, by * bm + row, kt * bk + col), 16, bytes=16))
        for c in range(bk * bn // 8 // threads):
            i = Var("ib")
            out.append(LetStmt(i, c * threads + tx))
            row, col = i // (bn // 8), (i % (bn // 8)) * 8
            out.append(intrin("cp_async", addr(B_s, stage, row, col), addr(B, kt * bk + row, bx * bn + col), 16, bytes=16))
        return seq(out)

    j = Var("j")
    body = [
        Allocate(smem), Allocate(A_s), Allocate(B_s), Allocate(A_f), Allocate(B_f), Allocate(C_f),
        LetStmt(warp, tx // 32), LetStmt(lane, tx % 32), LetStmt(wm, warp // 2), LetStmt(wn, warp % 2),
        For(j, 0, mi_n * ni_n * 4, "unroll", BufferStore(C_f, [j], dt.float32(0.0))),
    ]
    for s in range(stages - 1):
        if s < nk:
            body.append(load_tile(s, s))
        body.append(intrin("cp_async_commit"))
    kt, kk, mi, ni, nj = Var("kt"), Var("kk"), Var("mi"), Var("ni"), Var("nj")
    stage = Var("stage")
    main = [
        intrin("cp_async_wait", n=stages - 2) if wait else None,
        intrin("syncthreads") if barrier else None,
        IfThenElse(kt + (stages - 1) < nk, load_tile((kt + (stages - 1)) % stages, kt + (stages - 1))),
        intrin("cp_async_commit"),
        LetStmt(stage, kt % stages),
        For(kk, 0, bk // 16, "unroll", seq([
            For(mi, 0, mi_n, "unroll", intrin(
                "ldmatrix", addr(A_f, mi * 8),
                addr(A_s, stage, wm * wm_tile + mi * 16 + lane % 16, kk * 16 + (lane // 16) * 8), num=4, trans=False)),
            For(nj, 0, ni_n // 2, "unroll", intrin(
                "ldmatrix", addr(B_f, nj * 8),
                addr(B_s, stage, kk * 16 + lane % 16, wn * wn_tile + nj * 16 + (lane // 16) * 8), num=4, trans=True)),
            For(mi, 0, mi_n, "unroll", For(ni, 0, ni_n, "unroll", intrin(
                "mma_sync", addr(A_f, mi * 8), addr(B_f, ni * 4), addr(C_f, (mi * ni_n + ni) * 4),
                shape="m16n8k16", a_dtype="float16", b_dtype="float16", c_dtype="float32"))),
        ])),
    ]
    body.append(For(kt, 0, nk, "serial", seq(main)))
    body.append(intrin("cp_async_wait", n=0))
    i = Var("i")
    row = by * bm + wm * wm_tile + mi * 16 + lane // 4 + (i // 2) * 8
    col = bx * bn + wn * wn_tile + ni * 8 + (lane % 4) * 2 + i % 2
    body.append(For(mi, 0, mi_n, "unroll", For(ni, 0, ni_n, "unroll", For(i, 0, 4, "unroll", BufferStore(
        C, [row, col], BufferLoad(C_f, [(mi * ni_n + ni) * 4 + i]))))))
    kernel = Kernel([bx, by], [N // bn, M // bm], [threads], [tx], seq(body))
    return PrimFunc("gemm", [A, B, C], kernel)


def main():
    from tilewise.emulator import run

    M, N, K = (int(x) for x in sys.argv[1:4]) if len(sys.argv) >= 4 else (256, 256, 256)
    func = build_gemm(M, N, K)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    rows = []
    for races in (True, False):
        c = np.zeros((M, N), np.float32)
        run(func, [a, b, c], check_races=races)  # compiles once and warms up
        c[:] = 0
        t0 = time.perf_counter()
        run(func, [a, b, c], check_races=races)
        t = time.perf_counter() - t0
        err = float(np.abs(c - ref).max())
        rows.append((races, t, err))
    t0 = time.perf_counter()
    a.astype(np.float32) @ b.astype(np.float32)
    t_np = time.perf_counter() - t0
    print(f"fp16 GEMM {M}x{N}x{K}, 128x128x32 tiles, 3 stages, 128 threads, {(M // 128) * (N // 128)} blocks")
    print(f"{'check_races':>12} {'emulator s':>11} {'vs numpy':>10} {'max |err|':>10}")
    for races, t, err in rows:
        print(f"{str(races):>12} {t:11.3f} {t / t_np:9.0f}x {err:10.2e}")


if __name__ == "__main__":
    main()
