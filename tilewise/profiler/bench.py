"""Wall-clock timing of a callable, reported in milliseconds like triton.testing.do_bench."""
from __future__ import annotations

import time


def do_bench(fn, warmup: float = 25, rep: float = 100, _n_warmup: int = 0, _n_repeat: int = 0,
             quantiles=None, return_mode: str = "mean") -> float:
    """Run `fn` for about `warmup` ms, then time it for about `rep` ms; the mean (or median,
    min, max) per call in milliseconds."""
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
