"""tilelang.contrib.nvcc's compute-capability helpers (TileLang's flash_attention examples ask
`nvcc.get_target_compute_version()` before they start)."""
from __future__ import annotations

import pytest

from tilewise.contrib import nvcc


def test_target_compute_version():
    assert nvcc.get_target_compute_version("cuda -arch=sm_90a") == "9.0"
    assert nvcc.get_target_compute_version({"kind": "cuda", "arch": "sm_120"}) == "12.0"
    assert nvcc.get_target_compute_version("cuda -arch=sm_86") == "8.6"
    with pytest.raises(ValueError, match="Unsupported arch"):
        nvcc.get_target_compute_version("cuda -arch=sm_x")


def test_device_compute_version(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))
    assert nvcc.get_target_compute_version() == "8.0"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="No CUDA architecture"):
        nvcc.get_target_compute_version()


def test_predicates():
    assert nvcc.parse_compute_version("8.9") == (8, 9)
    assert nvcc.get_target_arch("9.0") == "90a" and nvcc.get_target_arch((8, 0)) == "80"
    assert nvcc.have_fp8("8.9") and not nvcc.have_fp8("8.0") and nvcc.have_bf16("8.0")
    assert nvcc.have_tensorcore("7.0") and not nvcc.have_tensorcore("6.1")
    assert nvcc.is_hopper("cuda -arch=sm_90a") and not nvcc.have_tma("cuda -arch=sm_80")
    with pytest.raises(RuntimeError, match="parsing"):
        nvcc.parse_compute_version("x")
