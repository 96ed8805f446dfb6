"""T.ldg32/64/128/256, T.stg32/64/128/256 and the vector dtypes (language/global_vector.py), with
TileLang's test programs (v0.1.8 test_tilelang_language_ldg.py / _stg.py, eager style): results
against numpy on the CPU and in the emulator (sm_80, sm_90a; PTX cross-checked), and the one
vector LDG / STG per move in the SASS."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.backend.cuda.inspect import instruction_mix
from tilewise.errors import CompileError

N = 128
TARGETS = [("cpu", None), ("cuda -arch=sm_80", "emulator"), ("cuda -arch=sm_90a", "emulator")]
VEC = {2: "float32x2", 4: "float32x4", 8: "float32x8"}


def ldg_kernel(bits: int, pred: bool):
    n = bits // 32
    load = getattr(T, f"ldg{bits}")

    @T.prim_func
    def k(X: T.Tensor((N,), T.float32), Y: T.Tensor((N,), T.float32)):
        with T.Kernel(N // n, threads=32) as pid:
            if n == 1:
                Y[pid] = T.reinterpret(T.ldg32(X[pid], pred=pid < N // 2) if pred else T.ldg32(X[pid]), T.float32)
            else:
                v = load(X[pid * n: pid * n + n], pred=(pid < N // (2 * n)) if pred else None)
                Y[pid * n: pid * n + n] = T.reinterpret(v, getattr(T, VEC[n]))

    return k


def stg_kernel(bits: int, pred: bool):
    n = bits // 32

    @T.prim_func
    def k(X: T.Tensor((N,), T.float32), Y: T.Tensor((N,), T.float32)):
        with T.Kernel(N // n, threads=32) as pid:
            if n == 1:
                T.stg32(Y[pid], T.reinterpret(X[pid], T.uint32), pred=(pid < N // 2) if pred else None)
            else:
                val = getattr(T, f"ldg{bits}")(X[pid * n: pid * n + n])
                getattr(T, f"stg{bits}")(Y[pid * n: pid * n + n], val, pred=(pid < N // (2 * n)) if pred else None)

    return k


@pytest.mark.parametrize("target,backend", TARGETS)
@pytest.mark.parametrize("bits", [32, 64, 128, 256])
def test_ldg_and_stg(target, backend, bits):
    rng = np.random.default_rng(bits)
    for make in (ldg_kernel, stg_kernel):
        for pred in (False, True):
            k = tilewise.compile(make(bits, pred), target=target, execution_backend=backend)
            x = rng.random(N, dtype=np.float32)
            y = np.zeros(N, np.float32)
            k(x, y)
            ref = x.copy()
            if pred:
                ref[N // 2:] = 0  # not loaded: zero; not stored: Y as it was
            np.testing.assert_array_equal(y, ref)


def test_tilelang_eager_style_program():
    @tilewise.jit
    def ldg128_kernel(X, Y):
        n = T.const("N")
        X: T.Tensor[[n], T.float32]
        Y: T.Tensor[[n], T.float32]

        with T.Kernel(n // 4, threads=32) as pid:
            Y[pid * 4: pid * 4 + 4] = T.reinterpret(T.ldg128(X[pid * 4: pid * 4 + 4], pred=pid < n // 8), T.float32x4)

    x = np.arange(128, dtype=np.float32)
    y = np.zeros(128, np.float32)
    ldg128_kernel(x, y)
    np.testing.assert_array_equal(y, np.where(np.arange(128) < 64, x, 0))


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
def test_one_vector_instruction_per_move(arch):
    for bits, width in ((64, "64"), (128, "128")):
        for make in (ldg_kernel, stg_kernel):
            k = tilewise.compile(make(bits, False), target=f"cuda -arch={arch}", execution_backend="emulator")
            sass = k.get_sass()
            ldg = [ln for ln in sass.splitlines() if " LDG." in ln]
            stg = [ln for ln in sass.splitlines() if " STG." in ln]
            assert len(ldg) == 1 and f".{width}" in ldg[0], (arch, bits, ldg)
            assert len(stg) == 1 and f".{width}" in stg[0], (arch, bits, stg)
    k = tilewise.compile(ldg_kernel(256, False), target=f"cuda -arch={arch}", execution_backend="emulator")
    assert instruction_mix(k.get_sass(), ["LDG", "STG"]) == {"LDG": 2, "STG": 2}  # 256 bits: two 128-bit moves


def test_vector_dtypes_and_errors():
    assert T.float32x4.bits == 128 and T.float16x8.lanes == 8 and T.float8_e4m3fnx16.element == T.float8_e4m3
    assert T.uint32x2.name == "uint32x2" and T.bfloat16x64.bits == 1024

    def compile_body(body):
        @T.prim_func
        def k(X: T.Tensor((N,), T.float32), Y: T.Tensor((N,), T.float32)):
            with T.Kernel(1, threads=32):
                body(X, Y)

        return k

    with pytest.raises(CompileError, match="holds 96 bits, not 64"):
        compile_body(lambda X, Y: T.ldg64(X[0:3]))
    with pytest.raises(CompileError, match="moves global memory"):
        @T.prim_func
        def shared(X: T.Tensor((N,), T.float32)):
            with T.Kernel(1, threads=32):
                S = T.alloc_shared((8,), T.float32)
                T.ldg64(S[0:2])
    with pytest.raises(CompileError, match="has 64 bits but float32x4 has 128"):
        compile_body(lambda X, Y: T.reinterpret(T.ldg64(X[0:2]), T.float32x4))
    with pytest.raises(CompileError, match="not 128"):
        compile_body(lambda X, Y: T.stg128(Y[0:4], T.ldg64(X[0:2])))
