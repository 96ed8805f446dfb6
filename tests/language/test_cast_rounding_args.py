"""T.cast's TileLang 0.1.13 arguments (round, sat, rbits): checked as TileLang checks them; the
round-to-nearest saturating conversion tilewise implements runs, the rest is refused by name."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError
from tilewise.language.tir.ir import _VALID_CAST_ROUNDING_MODES


def test_argument_checks():
    assert _VALID_CAST_ROUNDING_MODES == {"", "rn", "rz", "rp", "rm", "rs"}
    with pytest.raises(ValueError, match="Invalid round"):
        T.cast(1.0, "float8_e4m3fn", round="up")
    with pytest.raises(ValueError, match="Invalid sat"):
        T.cast(1.0, "float8_e4m3fn", sat="yes")
    with pytest.raises(ValueError, match="rbits is required"):
        T.cast(1.0, "float8_e4m3fn", round="rs")
    with pytest.raises(ValueError, match="rbits is only valid"):
        T.cast(1.0, "float8_e4m3fn", round="rn", rbits=T.int32(42))


@pytest.mark.parametrize("kw", [dict(round="rs", rbits=T.int32(1))])
def test_unimplemented_modes_are_refused_by_name(kw):
    # the directed modes and sat=False are implemented (test_cast_directed.py); "rs" into float8 is not
    with pytest.raises(CompileError, match="round="):
        T.cast(T.float32(1.0), "float8_e4m3fn", **kw)


def test_round_to_nearest_saturating_cast_runs():
    @T.prim_func
    def k(A: T.Tensor((4,), "float32"), B: T.Tensor((4,), "float8_e4m3fn"), C: T.Tensor((4,), "int32")):
        with T.Kernel(1) as _:
            for i in T.Parallel(4):
                B[i] = T.cast(A[i], "float8_e4m3fn", round="rn", sat=True)
                C[i] = T.cast(A[i], "int32", sat=False)  # sat concerns float8 only

    a = np.array([1.0, 1000.0, -3.3, 0.1], np.float32)
    c = np.zeros(4, np.int32)
    import torch

    bt = torch.zeros(4, dtype=torch.float8_e4m3fn)
    ct = torch.from_numpy(c)
    tilewise.compile(k, target="cpu")(torch.from_numpy(a), bt, ct)
    ref = torch.from_numpy(a).clamp(-448, 448).to(torch.float8_e4m3fn)
    assert torch.equal(bt.view(torch.uint8), ref.view(torch.uint8))
    np.testing.assert_array_equal(ct.numpy(), a.astype(np.int32))
