"""Helpers for tests (TileLang's tilelang.testing)."""
from __future__ import annotations

import random
import sys

import numpy as np

from ..backend.cuda.device import gpu_present


def to_numpy(x) -> np.ndarray:
    """float64 numpy copy of an array or tensor (bfloat16 / float8 included)."""
    if type(x).__module__.startswith("torch"):
        import torch

        x = x.detach().cpu()
        if x.dtype in (torch.bfloat16, torch.float16) or "float8" in str(x.dtype):
            x = x.to(torch.float32)
        return x.numpy().astype(np.float64)
    a = np.asarray(x)
    if a.dtype.kind in "biuf":
        return a.astype(np.float64)
    return a.astype(np.float32).astype(np.float64)


def torch_assert_close(a, b, rtol: float = 1e-2, atol: float = 1e-3, max_mismatched_ratio: float = 0.001,
                       verbose: bool = False, equal_nan: bool = True, check_device: bool = True,
                       check_dtype: bool = False, base_name: str = "LHS", ref_name: str = "RHS", **_) -> None:
    """Assert |a - b| <= atol + rtol * |b| for all but `max_mismatched_ratio` of the elements."""
    x, y = to_numpy(a), to_numpy(b)
    if x.shape != y.shape:
        if x.size == y.size:
            y = y.reshape(x.shape)
        else:
            raise AssertionError(f"{base_name}: shape {x.shape} differs from reference shape {y.shape}")
    close = np.isclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan)
    bad = int((~close).sum())
    allowed = int(max_mismatched_ratio * x.size)
    if bad > allowed:
        idx = np.argwhere(~close)[:5]
        examples = ", ".join(f"{tuple(int(v) for v in i)}: {x[tuple(i)]!r} vs {y[tuple(i)]!r}" for i in idx)
        raise AssertionError(
            f"{base_name}: {bad} of {x.size} elements differ beyond atol={atol}, rtol={rtol} "
            f"(allowed {allowed}); max abs diff {np.nanmax(np.abs(x - y)):.4g}; e.g. {examples}"
        )


def set_random_seed(seed: int = 42) -> None:
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


def main() -> None:
    """Run the calling test module with pytest."""
    import pytest

    sys.exit(pytest.main([sys.argv[0], *sys.argv[1:]]))


def requires_cuda(fn):
    import pytest


    return pytest.mark.skipif(not gpu_present(), reason="needs a CUDA GPU")(fn)


requires_cuda_compute_version_ge = lambda *a, **k: (lambda f: f)  # noqa: E731
