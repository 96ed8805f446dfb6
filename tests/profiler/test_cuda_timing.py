"""GPU timing up to the driver calls (there is no GPU here): do_bench's "event" and "cudagraph"
backends are run against a model of the CUDA driver that keeps a device clock — kernels and
memsets advance it when they run on a stream, events read it — and the calls are checked:
events created and recorded on the kernel's stream, the L2 flush (a memset of more than the L2)
before every timed repetition and outside the interval, graph capture / instantiate / replay.
On the CPU the profiler times with the wall clock and says so."""
from __future__ import annotations

import enum
import itertools

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.backend.cuda.launch import CudaDriverError
from tilewise.profiler import Profiler, clock_name, do_bench
from tilewise.profiler.cuda_timing import GRAPH_RETRIES

KERNEL_MS = 0.5  # what one kernel launch costs on the modelled device
FLUSH_MS = 0.25  # what one L2 flush costs
L2_BYTES = 50 << 20  # an H100's L2


class CUresult(enum.IntEnum):
    CUDA_SUCCESS = 0
    CUDA_ERROR_STREAM_CAPTURE_INVALIDATED = 901


class FakeDriver:
    """The driver calls do_bench makes, on a modelled device. Every call is logged as
    (name, *arguments); `launch(stream)` is what a kernel launch does."""

    CUresult = CUresult

    class CUdevice_attribute(enum.IntEnum):
        CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38

    class CUevent_flags(enum.IntEnum):
        CU_EVENT_DEFAULT = 0

    class CUstream_flags(enum.IntEnum):
        CU_STREAM_NON_BLOCKING = 1

    class CUstreamCaptureMode(enum.IntEnum):
        CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1
        CU_STREAM_CAPTURE_MODE_RELAXED = 2

    def __init__(self, torch_stream: int = 7):
        self.log: list[tuple] = []
        self.clock = 0.0
        self.events: dict[int, float | None] = {}
        self.capturing: dict[int, int] = {}  # stream -> launches captured so far
        self.graphs: dict[int, int] = {}
        self.ids = itertools.count(100)
        self.current = torch_stream  # torch's current stream: where the launcher launches
        self.freed: list = []

    @staticmethod
    def CUstream(handle):
        return int(handle)

    def _ok(self, *out):
        return (CUresult.CUDA_SUCCESS, *out)

    # the kernel, as tilewise's launcher runs it: on torch's current stream
    def launch(self):
        s = self.current
        self.log.append(("launch", s))
        if s in self.capturing:
            self.capturing[s] += 1
        else:
            self.clock += KERNEL_MS

    def cuCtxGetDevice(self):
        self.log.append(("cuCtxGetDevice",))
        return self._ok(0)

    def cuDeviceGetAttribute(self, attr, dev):
        self.log.append(("cuDeviceGetAttribute", attr.name, dev))
        return self._ok(L2_BYTES)

    def cuMemAlloc(self, n):
        self.log.append(("cuMemAlloc", n))
        return self._ok(0xD000)

    def cuMemFree(self, p):
        self.log.append(("cuMemFree", p))
        self.freed.append(p)
        return self._ok()

    def cuMemsetD32Async(self, p, value, n, stream):
        self.log.append(("cuMemsetD32Async", p, value, n, stream))
        self.clock += FLUSH_MS
        return self._ok()

    def cuEventCreate(self, flags):
        assert type(flags) is int  # cuda-bindings takes `unsigned int Flags`
        ev = next(self.ids)
        self.events[ev] = None
        self.log.append(("cuEventCreate",))
        return self._ok(ev)

    def cuEventRecord(self, ev, stream):
        self.log.append(("cuEventRecord", ev, stream))
        self.events[ev] = self.clock
        return self._ok()

    def cuEventSynchronize(self, ev):
        self.log.append(("cuEventSynchronize", ev))
        return self._ok()

    def cuEventElapsedTime(self, a, b):
        self.log.append(("cuEventElapsedTime", a, b))
        return self._ok(self.events[b] - self.events[a])

    def cuEventDestroy(self, ev):
        self.log.append(("cuEventDestroy", ev))
        return self._ok()

    def cuStreamSynchronize(self, s):
        self.log.append(("cuStreamSynchronize", s))
        return self._ok()

    def cuStreamCreate(self, flags):
        assert type(flags) is int
        s = next(self.ids)
        self.log.append(("cuStreamCreate", flags))
        return self._ok(s)

    def cuStreamDestroy(self, s):
        self.log.append(("cuStreamDestroy", s))
        return self._ok()

    def cuStreamBeginCapture(self, s, mode):
        self.log.append(("cuStreamBeginCapture", s, mode.name))
        self.capturing[s] = 0
        return self._ok()

    def cuStreamEndCapture(self, s):
        self.log.append(("cuStreamEndCapture", s))
        g = next(self.ids)
        self.graphs[g] = self.capturing.pop(s)
        return self._ok(g)

    def cuGraphInstantiate(self, g, flags):
        self.log.append(("cuGraphInstantiate", g, flags))
        ex = next(self.ids)
        self.graphs[ex] = self.graphs[g]
        return self._ok(ex)

    def cuGraphUpload(self, ex, s):
        self.log.append(("cuGraphUpload", ex, s))
        return self._ok()

    def cuGraphLaunch(self, ex, s):
        self.log.append(("cuGraphLaunch", ex, s))
        self.clock += KERNEL_MS * self.graphs[ex]
        return self._ok()

    def cuGraphExecDestroy(self, ex):
        self.log.append(("cuGraphExecDestroy", ex))
        return self._ok()

    def cuGraphDestroy(self, g):
        self.log.append(("cuGraphDestroy", g))
        return self._ok()

    def cuGetErrorName(self, err):
        return self._ok(CUresult(err).name.encode())

    def cuGetErrorString(self, err):
        return self._ok(b"modelled failure")

    def stream_context(self, stream):
        """What torch.cuda.stream(ExternalStream(stream)) does for the launcher."""
        drv = self

        class Ctx:
            def __enter__(self):
                self.prev, drv.current = drv.current, stream
                drv.log.append(("enter stream", stream))

            def __exit__(self, *exc):
                drv.current = self.prev
                drv.log.append(("leave stream", stream))

        return Ctx()


def names(log) -> list[str]:
    return [entry[0] for entry in log]


def test_event_backend_times_each_call_on_the_kernels_stream_with_l2_flushed_before_it():
    d = FakeDriver(torch_stream=7)
    t = do_bench(d.launch, backend="event", _n_warmup=3, _n_repeat=4, driver=d, stream=7,
                 stream_context=d.stream_context)
    assert t == pytest.approx(KERNEL_MS)  # the flush is outside the events' interval
    # the flush buffer: more than the L2 (twice it, or the 256 MB asked for, whichever is larger)
    alloc = next(e for e in d.log if e[0] == "cuMemAlloc")
    assert alloc[1] == max(256 << 20, 2 * L2_BYTES)
    assert ("cuDeviceGetAttribute", "CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE", 0) in d.log
    # every event is recorded on the kernel's stream, and every memset flushes the whole buffer there
    assert all(e[2] == 7 for e in d.log if e[0] == "cuEventRecord")
    memsets = [e for e in d.log if e[0] == "cuMemsetD32Async"]
    assert all(e[1:] == (0xD000, 0, alloc[1] // 4, 7) for e in memsets)
    # the timed part: flush, record, launch, record, for each of the 4 repetitions
    n = names(d.log)
    start = max(i for i in range(len(n)) if n[i:i + 8] == ["cuEventCreate"] * 8) + 8  # the 4 pairs made
    assert n[:start].count("launch") == 1 + 5 + 3  # first call, estimate, warmup
    timed = n[start:]
    assert timed[:16] == ["cuMemsetD32Async", "cuEventRecord", "launch", "cuEventRecord"] * 4
    assert timed[16] == "cuStreamSynchronize"
    assert timed.count("cuEventElapsedTime") == 4 and timed.count("cuEventSynchronize") == 4
    # everything made is released
    assert names(d.log).count("cuEventDestroy") == names(d.log).count("cuEventCreate")
    assert d.freed == [0xD000]


def test_event_backend_sizes_warmup_and_repetitions_from_an_estimate():
    d = FakeDriver()
    do_bench(d.launch, warmup=5, rep=20, backend="event", driver=d, stream=7, stream_context=d.stream_context)
    # 1 first call, 5 estimating calls; then, as Triton and TileLang do, repetitions sized by the
    # estimate of a flushed call (0.75 ms): int(5 / 0.75) of warmup, int(20 / 0.75) timed
    assert names(d.log).count("launch") == 1 + 5 + 6 + 26


def test_cudagraph_backend_captures_then_replays_with_a_flush_before_each_replay():
    d = FakeDriver(torch_stream=7)
    t = do_bench(d.launch, backend="cudagraph", _n_warmup=2, _n_repeat=8, driver=d, stream=7,
                 stream_context=d.stream_context, return_mode="median")
    assert t == pytest.approx(KERNEL_MS)  # one replay of 8 captured calls, divided by 8
    log = d.log
    i_create = names(log).index("cuStreamCreate")
    cap = next(e for e in log if e[0] == "cuStreamBeginCapture")[1]
    assert log[i_create][1] == 1  # CU_STREAM_NON_BLOCKING
    # capture: the launches go to the capturing stream (made torch's current one), none runs
    i_begin, i_end = names(log).index("cuStreamBeginCapture"), names(log).index("cuStreamEndCapture")
    captured = log[i_begin + 1:i_end]
    assert captured[0] == ("enter stream", cap) and captured[-1] == ("leave stream", cap)
    assert [e for e in captured if e[0] == "launch"] == [("launch", cap)] * 8
    assert log[i_begin][2] == "CU_STREAM_CAPTURE_MODE_RELAXED"  # the calls may allocate their outputs
    after = names(log[i_end + 1:])
    assert after[:3] == ["cuGraphInstantiate", "cuGraphUpload", "cuStreamSynchronize"]
    replays = [n for n in after if n in ("cuMemsetD32Async", "cuEventRecord", "cuGraphLaunch")]
    assert replays == ["cuMemsetD32Async", "cuEventRecord", "cuGraphLaunch", "cuEventRecord"] * GRAPH_RETRIES
    assert all(e[2] == 7 for e in log if e[0] == "cuGraphLaunch")  # replayed on the timing stream
    assert "launch" not in after  # replays run the graph, not the Python launcher
    assert after.index("cuGraphExecDestroy") < after.index("cuGraphDestroy") < after.index("cuStreamDestroy")
    assert d.freed == [0xD000]


def test_a_failing_driver_call_is_an_error_naming_it_and_cleans_up():
    d = FakeDriver()
    d.cuGraphInstantiate = lambda g, flags: (CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, None)
    with pytest.raises(CudaDriverError, match="cuGraphInstantiate.*CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"):
        do_bench(d.launch, backend="cudagraph", _n_repeat=2, driver=d, stream=7, stream_context=d.stream_context)
    assert "cuStreamDestroy" in names(d.log) and d.freed == [0xD000]


def test_quantiles_and_bad_arguments():
    d = FakeDriver()
    q = do_bench(d.launch, backend="event", _n_repeat=4, quantiles=[0.5, 0.9], driver=d, stream=7,
                 stream_context=d.stream_context)
    assert q == pytest.approx([KERNEL_MS, KERNEL_MS])
    with pytest.raises(ValueError, match="msprof"):
        do_bench(d.launch, backend="msprof")
    with pytest.raises(TypeError, match="GPU backends"):
        do_bench(lambda: None, backend="wall", stream=3)


def test_cpu_kernels_are_timed_with_the_wall_clock_and_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))

    @T.prim_func
    def copy(A: T.Tensor((256,), "float32"), B: T.Tensor((256,), "float32")):
        with T.Kernel(4) as bx:
            for i in T.Parallel(64):
                B[bx * 64 + i] = A[bx * 64 + i]

    kernel = tilewise.compile(copy, out_idx=-1, target="cpu")
    prof = kernel.get_profiler()
    assert prof.clock is None
    t = prof.do_bench(warmup=1, rep=2)
    assert t > 0 and prof.clock == clock_name("wall") == "wall clock (time.perf_counter)"
    a = np.arange(256, dtype=np.float32)
    np.testing.assert_array_equal(Profiler(kernel)(a), a)


def test_gpu_backends_without_a_gpu_time_with_the_wall_clock_and_warn_once(monkeypatch):
    # TileLang's examples call do_bench(fn, backend="event") whatever the machine; there is no
    # GPU here, so the host's clock is the one there is (a warning says so, once per backend)
    import warnings

    from tilewise.profiler import bench

    monkeypatch.setattr(bench, "_WARNED", set())
    calls = []
    with pytest.warns(RuntimeWarning, match="backend='event' needs a CUDA GPU"):
        t = do_bench(lambda: calls.append(1), backend="event", _n_warmup=1, _n_repeat=3)
    assert isinstance(t, float) and t >= 0 and len(calls) >= 1 + 5 + 1 + 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        do_bench(lambda: None, backend="event", _n_warmup=1, _n_repeat=2)  # no second warning
    with pytest.warns(RuntimeWarning, match="backend='cudagraph'"):
        q = do_bench(lambda: None, backend="cudagraph", _n_repeat=4, quantiles=[0.5, 0.9])
    assert len(q) == 2


def test_cupti_is_cuda_events_with_a_warning(monkeypatch):
    from tilewise.profiler import bench

    monkeypatch.setattr(bench, "_WARNED", set())
    d = FakeDriver(torch_stream=7)
    with pytest.warns(RuntimeWarning, match="backend='cupti' is not available in tilewise: timing with CUDA events"):
        t = do_bench(d.launch, backend="cupti", _n_warmup=1, _n_repeat=2, driver=d, stream=7,
                     stream_context=d.stream_context)
    assert t == pytest.approx(KERNEL_MS)
    assert "cuEventRecord" in names(d.log)


def test_profiler_asked_for_gpu_clocks_without_a_gpu_uses_the_wall_clock(monkeypatch):
    import warnings

    import numpy as np

    import tilewise
    import tilewise.language as T
    from tilewise.profiler import bench

    monkeypatch.setattr(bench, "_WARNED", set())

    @T.prim_func
    def add_one(A: T.Tensor((64,), "float32"), B: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=32):
            for i in T.Parallel(64):
                B[i] = A[i] + 1.0

    prof = tilewise.compile(add_one, out_idx=[1], target="cpu").get_profiler()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = prof.do_bench(backend="event", n_warmup=1, n_repeat=3)
        prof.do_bench(backend="cupti", n_warmup=1, n_repeat=3)
    assert t > 0 and prof.clock == clock_name("wall") == "wall clock (time.perf_counter)"
    assert any("needs a CUDA GPU" in str(w.message) for w in caught)
    out = prof.kernel(np.arange(64, dtype=np.float32))
    np.testing.assert_array_equal(np.asarray(out), np.arange(64) + 1)
