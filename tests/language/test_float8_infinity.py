"""T.infinity on float8 (TileLang 0.1.13's test_infinity): float8_e5m2 has an infinity and gets
it (a literal would be a saturating conversion, the largest finite value); e4m3 types have none."""
from __future__ import annotations

import pytest
import torch

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError


@pytest.mark.parametrize("how", [dict(target="cpu"), dict(target="cuda", execution_backend="emulator")])
def test_float8_e5m2_infinity(how):
    @T.prim_func
    def main(A: T.Tensor((32,), "float8_e5m2"), B: T.Tensor((32,), "float8_e5m2")):
        with T.Kernel(1, threads=32):
            T.fill(A, T.infinity("float8_e5m2"))
            for i in T.Parallel(32):
                B[i] = T.infinity("float8_e5m2")

    a = torch.zeros(32, dtype=torch.float8_e5m2)
    b = torch.zeros(32, dtype=torch.float8_e5m2)
    tilewise.compile(main, **how)(a, b)
    assert torch.all(a.float() == torch.inf) and torch.all(b.float() == torch.inf)


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2fnuz"])
def test_float8_types_without_infinity(dtype):
    with pytest.raises(CompileError, match="has no infinity"):
        T.infinity(dtype)
