"""Run one example with its timing taken in CPU time instead of wall time, for a loaded machine.

    .venv/bin/python benchmarks/example_cpu_time.py examples/softmax/example_online_softmax.py [args...]

The example's `do_bench` (both the tilewise kernel and the torch reference) becomes the least
`time.process_time()` per call over REPS calls (default 7) after 2 warm-up calls: the CPU seconds of
all the process's threads, so the time a thread waits for a core that another process holds is not
counted, which wall time on a shared machine does count (the examples table's CPU column is wall
time). What stays in: memory-bandwidth and cache contention from the other processes, and OpenMP
threads spinning at barriers, which charges a side for its waiting (torch's autograd backward of
examples/flash_attention/example_mha_bwd_bshd.py: 39 ms of CPU with two threads, 11.6 ms with
one). So compare with OMP_NUM_THREADS=1, one thread on each side, as examples/README.md does.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import tilewise.profiler

REPS = int(os.environ.get("REPS", "7"))


def cpu_bench(fn, *args, **kwargs) -> float:
    """Milliseconds of CPU time of the cheapest of REPS calls of `fn` (do_bench's arguments ignored)."""
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(REPS):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best * 1e3


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    tilewise.profiler.do_bench = cpu_bench  # before the example imports it by name
    path = Path(argv[0]).resolve()
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    os.environ.setdefault("TILEWISE_TARGET", "cpu")
    sys.exit(main(sys.argv[1:]))
