"""Helpers for tests (TileLang's tilelang.testing)."""
from __future__ import annotations

import random
import sys

import numpy as np

from ..backend.cuda.device import compute_capability, gpu_present
from ..backend.hip.device import amd_gpu_present


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


_COMPARE = {"ge": lambda a, b: a >= b, "gt": lambda a, b: a > b, "le": lambda a, b: a <= b,
            "lt": lambda a, b: a < b, "eq": lambda a, b: a == b}


def requires_cuda_compute_version(major_version: int, minor_version: int = 0, mode: str = "ge"):
    """Skip the test unless a CUDA GPU is present whose compute capability compares with
    (major, minor) as `mode` says ("ge", "gt", "le", "lt", "eq"); without a GPU it skips."""
    import pytest

    if mode not in _COMPARE:
        raise ValueError(f"mode must be one of {', '.join(_COMPARE)}, got {mode!r}")
    want = (major_version, minor_version)
    have = compute_capability()
    ok = have is not None and _COMPARE[mode](have, want)
    why = "no CUDA GPU" if have is None else f"compute capability {have[0]}.{have[1]}"
    return pytest.mark.skipif(not ok, reason=f"needs a CUDA GPU of compute capability {mode} "
                                             f"{want[0]}.{want[1]} ({why})")


def requires_cuda_compute_version_ge(major_version: int, minor_version: int = 0):
    return requires_cuda_compute_version(major_version, minor_version, "ge")


def requires_cuda_compute_version_gt(major_version: int, minor_version: int = 0):
    return requires_cuda_compute_version(major_version, minor_version, "gt")


def requires_cuda_compute_version_le(major_version: int, minor_version: int = 0):
    return requires_cuda_compute_version(major_version, minor_version, "le")


def requires_cuda_compute_version_lt(major_version: int, minor_version: int = 0):
    return requires_cuda_compute_version(major_version, minor_version, "lt")


def requires_cuda_compute_version_eq(major_version: int, minor_version: int = 0):
    return requires_cuda_compute_version(major_version, minor_version, "eq")


def requires_package(*packages):
    """Skip the test unless every package imports."""
    import importlib.util

    import pytest

    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs the package(s) {', '.join(missing)}")


def requires_llvm(fn):
    """TileLang's CPU (LLVM) target: tilewise's CPU target needs only g++, always here."""
    return fn


def _never(what: str):
    def mark(fn):
        import pytest

        return pytest.mark.skip(reason=f"tilewise has no {what} target")(fn)

    return mark


def requires_rocm(fn):
    """TileLang's mark for tests that run on an AMD GPU (the "hip" target's "hip" backend)."""
    import pytest

    return pytest.mark.skipif(not amd_gpu_present(), reason="needs an AMD GPU (ROCm, hip-python)")(fn)


requires_metal = _never("Metal")


def requires_cuda_or_cdna(fn):
    """TileLang's mark for tests that run on a CUDA GPU or an AMD CDNA GPU (every AMD GPU tilewise
    targets, gfx90a / gfx942 / gfx950, is CDNA)."""
    import pytest

    return pytest.mark.skipif(not (gpu_present() or amd_gpu_present()),
                              reason="needs a CUDA GPU or an AMD CDNA GPU")(fn)
