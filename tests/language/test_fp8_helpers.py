"""tilewise.language.fp8 (TileLang's determine_fp8_type): the platform's fp8 dtypes."""
from __future__ import annotations

import pytest
import torch

import tilewise.language as T
from tilewise.language.fp8 import determine_fp8_type, determine_torch_fp8_type


def test_cuda_torch_gets_the_ocp_types(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", None)
    assert determine_fp8_type() == T.float8_e4m3fn and determine_fp8_type("e5m2") == T.float8_e5m2
    assert determine_torch_fp8_type("e4m3") is torch.float8_e4m3fn
    assert determine_torch_fp8_type("e5m2") is torch.float8_e5m2


def test_rocm_torch_gets_fnuz(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", "6.2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert determine_fp8_type("e4m3") == T.float8_e4m3fnuz and determine_fp8_type("e5m2") == T.float8_e5m2fnuz
    assert determine_torch_fp8_type("e5m2") is torch.float8_e5m2fnuz


def test_unknown_format():
    with pytest.raises(ValueError, match="e4m3 or e5m2"):
        determine_fp8_type("e3m4")
