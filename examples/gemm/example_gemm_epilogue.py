"""GEMM with a fused epilogue: D = act(A @ B + bias), act in {none, relu, gelu}.

The epilogue runs on the fp32 accumulator fragment in a T.Parallel loop before the single store
to global memory, so the bias add and the activation cost no extra pass over C."""
import argparse
import math
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench

ACTIVATIONS = ("none", "relu", "gelu")


def matmul_bias_act(M, N, K, block_M=128, block_N=128, block_K=32, activation="gelu", dtype="float16",
                    accum_dtype="float", num_stages=3):
    assert activation in ACTIVATIONS, activation
    inv_sqrt2 = 1.0 / math.sqrt(2.0)

    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), Bias: T.Tensor((N,), dtype),
             D: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared((block_K, block_N), dtype)
            bias_local = T.alloc_fragment((block_N,), dtype)
            C_local = T.alloc_fragment((block_M, block_N), accum_dtype)
            T.clear(C_local)
            for ko in T.Pipelined(T.ceildiv(K, block_K), num_stages=num_stages):
                T.copy(A[by * block_M, ko * block_K], A_shared)
                T.copy(B[ko * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.copy(Bias[bx * block_N], bias_local)
            for i, j in T.Parallel(block_M, block_N):
                x = C_local[i, j] + bias_local[j]
                if activation == "relu":
                    C_local[i, j] = T.max(x, 0)
                elif activation == "gelu":
                    C_local[i, j] = 0.5 * x * (1 + T.erf(x * inv_sqrt2))
                else:
                    C_local[i, j] = x
            T.copy(C_local, D[by * block_M, bx * block_N])

    return main


def ref_program(A, B, bias, activation):
    x = A.float() @ B.float() + bias.float()
    if activation == "relu":
        x = torch.relu(x)
    elif activation == "gelu":
        x = torch.nn.functional.gelu(x)
    return x.to(A.dtype)


def run(M, N, K, block, activation, dtype, bench) -> bool:
    kernel = tilewise.compile(matmul_bias_act(M, N, K, *block, activation=activation, dtype=dtype), out_idx=[-1])
    torch.manual_seed(0)
    a = torch.randn(M, K).to(getattr(torch, dtype))
    b = torch.randn(K, N).to(getattr(torch, dtype))
    bias = torch.randn(N).to(getattr(torch, dtype))
    d = kernel(a, b, bias)
    ref = ref_program(a, b, bias, activation)
    tol = 1e-2 if dtype == "float16" else 2e-2
    ok = torch.allclose(d.float(), ref.float(), rtol=tol, atol=tol)
    err = (d.float() - ref.float()).abs().max().item()
    print(f"gemm + bias + {activation} {dtype} {M}x{N}x{K}: max err {err:.3g} {'OK' if ok else 'WRONG'}")
    if bench:
        t_kernel = do_bench(lambda: kernel(a, b, bias))
        t_ref = do_bench(lambda: ref_program(a, b, bias, activation))
        print(f"  tilewise {t_kernel:.2f} ms, torch (fp32) {t_ref:.2f} ms, speed-up {t_ref / t_kernel:.2f}x")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--m", type=int, default=1024)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--block", type=int, nargs=3, default=(128, 128, 32), metavar=("BM", "BN", "BK"))
    parser.add_argument("--activation", nargs="+", choices=ACTIVATIONS, default=list(ACTIVATIONS))
    parser.add_argument("--dtype", choices=("float16", "bfloat16"), default="float16")
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)
    results = [run(args.m, args.n, args.k, args.block, act, args.dtype, args.bench) for act in args.activation]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
