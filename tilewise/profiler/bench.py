"""Timing a callable, in milliseconds like triton.testing.do_bench and TileLang's do_bench.

backend (TileLang's names):
- "wall": the host's clock (time.perf_counter) around each call — the clock for CPU kernels and
  the emulator, whose calls return when their work is done;
- "event": CUDA events on the kernel's stream around each call, with the L2 flushed before each
  (cuda_timing.py) — for CUDA kernels;
- "cudagraph": the calls captured in a CUDA graph and replayed, for kernels so short that
  launch overhead would dominate;
- "auto" (the default): "wall" — a bare callable may do its work on the host or on a GPU, and
  only the wall clock is right for both; with a GPU present, the device is synchronised after
  every call so that its work is inside the interval. The Profiler and the autotuner choose from
  the kernel instead (profiler.timing_backend): CUDA events for a kernel on a GPU. TileLang's
  do_bench defaults to "event"; pass backend="event" for GPU work to get the same.
  Without a GPU, "event" and "cudagraph" time with the wall clock and warn once. TileLang's
  "cupti" is "event", with a one-time warning.

`clock_name(backend)` says which clock a backend reads; the Profiler keeps it in `.clock`."""
from __future__ import annotations

import logging
import time
import warnings

logger = logging.getLogger("tilewise.profiler")

BACKENDS = ("auto", "wall", "event", "cudagraph")
_CLOCKS = {
    "wall": "wall clock (time.perf_counter)",
    "wall+sync": "wall clock (time.perf_counter, the GPU synchronised after each call)",
    "event": "CUDA events on the kernel's stream (L2 flushed before each call)",
    "cudagraph": "CUDA events around CUDA-graph replays (L2 flushed before each replay)",
}


def clock_name(backend: str) -> str:
    """What a backend times with, in words."""
    backend = resolve_backend(backend)
    if backend != "wall" and not _gpu_here():
        backend = "wall"  # what do_bench falls back to without a GPU
    return _CLOCKS["wall+sync" if backend == "wall" and _gpu_sync() is not None else backend]


def resolve_backend(backend: str) -> str:
    if backend == "cupti":
        # CUPTI's kernel activity records are not read here; CUDA events around each call time
        # the same kernels (with the launch in the interval): said once, not silently swapped
        if backend not in _WARNED:
            _WARNED.add(backend)
            warnings.warn("do_bench: backend='cupti' is not available in tilewise: timing with CUDA events "
                          "(backend='event') instead", RuntimeWarning, stacklevel=3)
        return "event"
    if backend not in BACKENDS:
        raise ValueError(f"do_bench: backend must be one of {', '.join(BACKENDS)}, got {backend!r} "
                         "(TileLang's msprof backend is not available in tilewise)")
    return "wall" if backend == "auto" else backend


_WARNED: set[str] = set()


def _gpu_here() -> bool:
    from ..backend.cuda.device import gpu_present

    return gpu_present()


def _gpu_sync():
    """torch.cuda.synchronize when a GPU is in use here, else None."""
    import sys

    torch = sys.modules.get("torch")  # GPU work from Python goes through torch; not imported: none
    if torch is None:
        return None
    from ..backend.cuda.device import gpu_present

    return torch.cuda.synchronize if gpu_present() and torch.cuda.is_available() else None


def do_bench(fn, warmup: float = 25, rep: float = 100, _n_warmup: int = 0, _n_repeat: int = 0,
             quantiles=None, fast_flush: bool = True, backend: str = "auto", return_mode: str = "mean",
             cache_size: float = 256, **gpu_options) -> float:
    """Run `fn` for about `warmup` ms, then time it for about `rep` ms; the mean (or median,
    min, max, or the given quantiles) per call in milliseconds. `cache_size` (MB) is the least
    the GPU backends write to flush the L2 (at least twice the device's L2 is written);
    `fast_flush` is accepted for TileLang's signature (the flush is always 32-bit writes)."""
    backend = resolve_backend(backend)
    if return_mode not in ("mean", "median", "min", "max"):
        raise ValueError(f"do_bench: return_mode must be mean, median, min or max, got {return_mode!r}")
    if backend != "wall" and "driver" not in gpu_options and not _gpu_here():
        # TileLang's examples ask for backend="event" on every machine; without a GPU the only
        # clock there is, is the host's: say so once rather than fail the program it times
        if backend not in _WARNED:
            _WARNED.add(backend)
            warnings.warn(f"do_bench: backend={backend!r} needs a CUDA GPU and there is none here: "
                          "timing with the wall clock instead", RuntimeWarning, stacklevel=2)
        backend, gpu_options = "wall", {}
    if backend != "wall":
        logger.debug("do_bench: timing with the %s", _CLOCKS[backend])
        from .cuda_timing import do_bench_cuda

        return do_bench_cuda(fn, warmup, rep, _n_warmup, _n_repeat, quantiles, return_mode, backend, cache_size,
                             **gpu_options)
    if gpu_options:
        raise TypeError(f"do_bench: {', '.join(sorted(gpu_options))} apply to the GPU backends, not to 'wall'")
    sync = _gpu_sync()
    logger.debug("do_bench: timing with the %s", _CLOCKS["wall+sync" if sync is not None else "wall"])
    if sync is not None:
        call = fn

        def fn():
            call()
            sync()

    return _wall(fn, warmup, rep, _n_warmup, _n_repeat, quantiles, return_mode)


def _wall(fn, warmup, rep, _n_warmup, _n_repeat, quantiles, return_mode) -> float:
    fn()  # the first call may pay one-time costs (thread pool start-up)
    # estimate the time per call from enough calls to rise above timer noise
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if (n >= 5 and elapsed >= 1e-3) or elapsed >= 0.1:
            break
    est = max(elapsed / n * 1e3, 1e-4)
    n_warm = _n_warmup or max(1, int(warmup / est))
    n_rep = _n_repeat or max(1, int(rep / est))
    for _ in range(n_warm):
        fn()
    times = []
    for _ in range(n_rep):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    if quantiles is not None:
        return [times[min(len(times) - 1, int(q * len(times)))] for q in quantiles]
    if return_mode == "median":
        return times[len(times) // 2]
    if return_mode == "min":
        return times[0]
    if return_mode == "max":
        return times[-1]
    return sum(times) / len(times)
