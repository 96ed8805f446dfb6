"""The main-loop instruction mix per MFMA of the canonical GEMM on AMD MI300X (gfx942), from the
code object clang-19 builds (no GPU needed): block tiles 128 x 128 x 32, 256 threads (4
wavefronts of 64 lanes, 2 x 2, 64 x 64 each), float16 / bfloat16 / int8 inputs, A stored M x K
and B either K x N (the canonical layout) or N x K (transposed). One table.

    .venv/bin/python benchmarks/hip_gemm_isa.py [--arch gfx942] [--stages 2]

The main loop is the backward branch of the machine code that issues the most MFMAs (the K loop;
tilewise/backend/hip/main_loop.py). Per MFMA: LDS reads (and the 16-byte ones among them), LDS
writes, global loads, other vector (VALU) and scalar (SALU) instructions, s_waitcnt; with the
kernel's VGPRs / AGPRs, scratch bytes and LDS bytes, and the fewest MFMAs issued between a
global load and the first use of its registers (the math hiding its latency). Each case twice: T.Pipelined's copies
staged through registers (the default on gfx942: the next tile's global loads before the MFMAs
of this one, their LDS stores after them), and synchronous (pass config "tir.use_async_copy":
False, the schedule before register staging: loads, wait, LDS stores, barrier, MFMAs).
"""
from __future__ import annotations

import argparse


def gemm(M, N, K, dtype, acc, trans_B, stages, block_M=128, block_N=128, block_K=32, threads=256):
    import tilewise.language as T

    b_shape, b_tile = ((N, K), (block_N, block_K)) if trans_B else ((K, N), (block_K, block_N))

    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor(b_shape, dtype), C: T.Tensor((M, N), acc)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=threads) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared(b_tile, dtype)
            C_local = T.alloc_fragment((block_M, block_N), acc)
            T.clear(C_local)
            for ko in T.Pipelined(T.ceildiv(K, block_K), num_stages=stages):
                T.copy(A[by * block_M, ko * block_K], A_shared)
                if trans_B:
                    T.copy(B[bx * block_N, ko * block_K], B_shared)
                else:
                    T.copy(B[ko * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, C_local, transpose_B=trans_B)
            T.copy(C_local, C[by * block_M, bx * block_N])

    return main


def _min_mean(xs: list[int]) -> str:
    return f"{min(xs)}/{sum(xs) / len(xs):.1f}" if xs else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="gfx942")
    ap.add_argument("--stages", type=int, default=2)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()

    import tilewise
    from tilewise.backend.hip.main_loop import instruction_mix, load_to_use_mfmas, main_loop

    n = args.size
    cases = [("float16", "float32", False), ("float16", "float32", True), ("bfloat16", "float32", False),
             ("int8", "int32", False), ("int8", "int32", True)]
    cols = ("mfma", "lds_read", "lds_read_b128", "lds_write", "global_load", "valu", "salu", "waitcnt", "barrier")
    print(f"canonical GEMM {n}x{n}x{n}, tiles 128x128x32, 256 threads, T.Pipelined(num_stages={args.stages}), "
          f"{args.arch}: main-loop instructions per MFMA")
    print(f"{'case':<30} {'MFMA':<26} {'loop':>5} " + " ".join(f"{c:>13}" for c in cols[1:])
          + f" {'VGPR':>5} {'AGPR':>5} {'scratch':>7} {'LDS':>6} {'MFMAs load->use (min/mean)':>27}")
    for (dtype, acc, trans_B), staged in ((c, s) for c in cases for s in (True, False)):
        configs = {} if staged else {"tir.use_async_copy": False}
        k = tilewise.compile(gemm(n, n, n, dtype, acc, trans_B, args.stages), target=f"hip -arch={args.arch}",
                             execution_backend="emulator", pass_configs=configs)
        isa = k.get_isa()
        loop = main_loop(isa)
        mix = instruction_mix(loop)
        mfmas = sorted({name for _, name, _ in loop if name.startswith("v_mfma")})
        per = mix["mfma"] or 1
        res = k.resource_usage()
        label = f"{dtype} B {'NxK' if trans_B else 'KxN'} {'staged' if staged else 'sync'}"
        print(f"{label:<30} {','.join(mfmas) or '-':<26} {len(loop):>5} "
              + " ".join(f"{mix[c] / per:>13.2f}" for c in cols[1:])
              + f" {res['vgprs']:>5} {res['agprs']:>5} {res['scratch_bytes']:>7} {res['lds_bytes']:>6}"
              + f" {_min_mean(load_to_use_mfmas(loop)):>27}")
        print(f"{'':<30} ({mix['mfma']} MFMAs in a loop of {len(loop)} instructions)")


if __name__ == "__main__":
    main()
