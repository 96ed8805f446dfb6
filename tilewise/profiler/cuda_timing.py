"""Timing CUDA kernels on the GPU's own clock: CUDA events recorded on the stream the kernel is
launched on, with the L2 cache flushed before every repetition, and optionally CUDA-graph replay
for kernels so short that launch overhead would dominate (TileLang's do_bench backends "event"
and "cudagraph"; Triton's do_bench and do_bench_cudagraph do the same).

Everything goes through the CUDA driver API (`cuda.bindings.driver`, the module tilewise's
launcher uses) and is handed the driver as an argument, so the sequence of calls can be checked
without a GPU. The stream is the one tilewise launches on: torch's current stream of the device
(backend/cuda/launch.py). For graph capture the kernels must be launched on the capturing
stream, so `fn` runs inside `stream_context(stream)`, which by default makes that stream torch's
current one (torch.cuda.ExternalStream).

The L2 flush: a scratch buffer of max(`cache_size` MB, twice the device's L2 size) is zeroed
with cuMemsetD32Async on the timing stream before each timed repetition (before each graph
replay for "cudagraph"), outside the events' interval, so every repetition starts with a cold L2
as a kernel inside a model usually does."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from ..backend.cuda.launch import CudaDriverError, _error_strings

logger = logging.getLogger("tilewise.profiler")

GRAPH_RETRIES = 10  # graph replays timed, each of n_repeat captured calls (as Triton and TileLang)


def _check(driver, result, what: str):
    err, *out = result if isinstance(result, tuple) else (result,)
    if err != driver.CUresult.CUDA_SUCCESS:
        raise CudaDriverError(what, int(err), *_error_strings(driver, err))
    if not out:
        return None
    return out[0] if len(out) == 1 else tuple(out)


def current_stream(device: int | None = None) -> int:
    """The stream tilewise's launcher uses: torch's current stream of the device."""
    import torch

    if device is None:
        device = torch.cuda.current_device()
    return int(torch.cuda.current_stream(device).cuda_stream)


def torch_stream_context(stream: int):
    """Makes `stream` (a raw CUstream handle) torch's current stream, so tilewise launches on it."""
    import torch

    return torch.cuda.stream(torch.cuda.ExternalStream(int(stream)))


class _Timer:
    """Driver-API events and the L2 flush buffer on one stream."""

    def __init__(self, driver, stream: int, cache_size_mb: float):
        self.d = driver
        self.stream = driver.CUstream(stream)
        dev = _check(driver, driver.cuCtxGetDevice(), "cuCtxGetDevice")
        l2 = _check(driver, driver.cuDeviceGetAttribute(
            driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, dev), "cuDeviceGetAttribute(L2_CACHE_SIZE)")
        # larger than the L2 by a margin, so that zeroing it evicts everything the kernel left there
        self.flush_bytes = max(int(cache_size_mb * (1 << 20)), 2 * int(l2)) // 4 * 4
        self.flush_buf = _check(driver, driver.cuMemAlloc(self.flush_bytes), f"cuMemAlloc({self.flush_bytes})")
        self.events: list = []

    def flush_l2(self) -> None:
        _check(self.d, self.d.cuMemsetD32Async(self.flush_buf, 0, self.flush_bytes // 4, self.stream),
               "cuMemsetD32Async (L2 flush)")

    def event(self):
        ev = _check(self.d, self.d.cuEventCreate(int(self.d.CUevent_flags.CU_EVENT_DEFAULT)), "cuEventCreate")
        self.events.append(ev)
        return ev

    def record(self, ev) -> None:
        _check(self.d, self.d.cuEventRecord(ev, self.stream), "cuEventRecord")

    def elapsed(self, start, end) -> float:
        _check(self.d, self.d.cuEventSynchronize(end), "cuEventSynchronize")
        return float(_check(self.d, self.d.cuEventElapsedTime(start, end), "cuEventElapsedTime"))

    def synchronize(self) -> None:
        _check(self.d, self.d.cuStreamSynchronize(self.stream), "cuStreamSynchronize")

    def close(self) -> None:
        for ev in self.events:
            self.d.cuEventDestroy(ev)
        self.events = []
        if self.flush_buf is not None:
            self.d.cuMemFree(self.flush_buf)
            self.flush_buf = None


def _summarise(times: list[float], quantiles, return_mode: str):
    times = sorted(times)
    if quantiles is not None:
        vals = [times[min(len(times) - 1, int(q * len(times)))] for q in quantiles]
        return vals[0] if len(vals) == 1 else vals
    if return_mode == "median":
        return times[len(times) // 2]
    if return_mode == "min":
        return times[0]
    if return_mode == "max":
        return times[-1]
    return sum(times) / len(times)


def do_bench_cuda(fn: Callable[[], object], warmup: float = 25, rep: float = 100, _n_warmup: int = 0,
                  _n_repeat: int = 0, quantiles=None, return_mode: str = "mean", backend: str = "event",
                  cache_size: float = 256, stream: int | None = None, driver=None,
                  stream_context: Callable | None = None) -> float | list[float]:
    """Time `fn` (which launches CUDA work on torch's current stream) in milliseconds on the
    GPU's clock. `backend`: "event" (events around each call) or "cudagraph" (n_repeat calls
    captured in one graph, replayed GRAPH_RETRIES times; the time per call is replay / n_repeat)."""
    if backend not in ("event", "cudagraph"):
        raise ValueError(f'do_bench_cuda: backend must be "event" or "cudagraph", got {backend!r}')
    if return_mode not in ("mean", "median", "min", "max"):
        raise ValueError(f"do_bench: return_mode must be mean, median, min or max, got {return_mode!r}")
    if driver is None:
        from cuda.bindings import driver
    if stream is None:
        stream = current_stream()
    if stream_context is None:
        stream_context = torch_stream_context

    fn()  # loads the module and makes its context current: the events below need it
    timer = _Timer(driver, stream, cache_size)
    try:
        timer.flush_l2()
        timer.synchronize()
        # estimate the time per call from 5 flushed calls, to size warmup and repetitions
        start, end = timer.event(), timer.event()
        timer.record(start)
        for _ in range(5):
            timer.flush_l2()
            fn()
        timer.record(end)
        est = max(timer.elapsed(start, end) / 5, 1e-6)
        n_warm = _n_warmup or max(1, int(warmup / est))
        n_rep = _n_repeat or max(1, int(rep / est))
        for _ in range(n_warm):
            fn()
        if backend == "event":
            return _summarise(_time_events(fn, timer, n_rep), quantiles, return_mode)
        return _summarise(_time_graph(fn, timer, n_rep, stream_context), quantiles, return_mode)
    finally:
        timer.close()


def _time_events(fn, timer: _Timer, n_rep: int) -> list[float]:
    pairs = [(timer.event(), timer.event()) for _ in range(n_rep)]
    for start, end in pairs:
        timer.flush_l2()  # outside the interval: the flush itself is not timed
        timer.record(start)
        fn()
        timer.record(end)
    timer.synchronize()
    return [timer.elapsed(s, e) for s, e in pairs]


def _time_graph(fn, timer: _Timer, n_rep: int, stream_context) -> list[float]:
    d = timer.d
    # capture needs a stream other than the legacy default one: a non-blocking one of our own
    cap = _check(d, d.cuStreamCreate(int(d.CUstream_flags.CU_STREAM_NON_BLOCKING)), "cuStreamCreate")
    graph = graph_exec = None
    try:
        # relaxed: a call may allocate its outputs (torch's allocator, on the capturing stream's
        # pool, may cudaMalloc), which the stricter modes forbid during capture. The graph then
        # writes into blocks torch has taken back; nothing else allocates while it replays here.
        _check(d, d.cuStreamBeginCapture(cap, d.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED),
               "cuStreamBeginCapture")
        try:
            with stream_context(cap):
                for _ in range(n_rep):
                    fn()
        finally:
            graph = _check(d, d.cuStreamEndCapture(cap), "cuStreamEndCapture")
        graph_exec = _check(d, d.cuGraphInstantiate(graph, 0), "cuGraphInstantiate")
        _check(d, d.cuGraphUpload(graph_exec, timer.stream), "cuGraphUpload")
        timer.synchronize()
        pairs = [(timer.event(), timer.event()) for _ in range(GRAPH_RETRIES)]
        for start, end in pairs:
            timer.flush_l2()  # before each replay: a graph replays a fixed sequence of calls
            timer.record(start)
            _check(d, d.cuGraphLaunch(graph_exec, timer.stream), "cuGraphLaunch")
            timer.record(end)
        timer.synchronize()
        return [timer.elapsed(s, e) / n_rep for s, e in pairs]
    finally:
        with contextlib.suppress(Exception):  # cleanup must not hide the error being raised
            if graph_exec is not None:
                d.cuGraphExecDestroy(graph_exec)
            if graph is not None:
                d.cuGraphDestroy(graph)
            d.cuStreamDestroy(cap)
