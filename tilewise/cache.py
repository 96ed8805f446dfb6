"""TileLang's tilelang.cache: `cached(...)` (compile through the caches) and `clear_cache()`."""
from __future__ import annotations

from .jit import cache as _disk
from .jit.compile import cached  # noqa: F401


def clear_cache() -> int:
    """Empty the kernel caches (TileLang 0.1.x's clear_cache): every compiled kernel and tuning
    result tilewise stored under TILEWISE_CACHE_DIR is removed (other files there are left
    alone), with the in-process memos of NVRTC output and tuning results. Kernels already
    compiled in this process keep working. Returns how many disk entries were removed."""
    from .autotuner.tuner import AutoTuner
    from .backend.cuda import nvrtc

    nvrtc._compile_cached.cache_clear()
    with AutoTuner._lock:
        AutoTuner._memory.clear()
    return _disk.clear()
