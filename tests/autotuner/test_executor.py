"""Autotuning on a user-given executor (`@autotune(..., executor=...)`): configurations compile
as tasks of a concurrent.futures executor, their kernels reach this process through the kernel
cache, the tuning result is cached as after local tuning, a task lost with its worker is
re-queued (a bounded number of times), and a configuration that fails to compile is a failed
configuration, not a re-queued one."""
from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import threading
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.autotuner import AutotuneError, AutoTuner, set_autotune_inputs
from tilewise.autotuner.executor import is_worker_lost

N = 4096


def repeat_max(N, block=64, rounds=1):
    """B = A, computed as a max over `rounds` identical terms."""

    @T.prim_func
    def main(A: T.Tensor((N,), "float32"), B: T.Tensor((N,), "float32")):
        with T.Kernel(T.ceildiv(N, block)) as bx:
            for i in T.Parallel(block):
                acc = T.alloc_var("float32", init=-1e30)
                for r in T.serial(rounds):
                    acc = T.max(acc, A[bx * block + i] + r * 0.0)
                B[bx * block + i] = acc

    return main


def copy_ref(A):
    return A * 1


CONFIGS = [{"rounds": 3}, {"rounds": 1}, {"rounds": 2}]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty kernel cache of this test's own (inherited by process-pool children)."""
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("TILEWISE_DISABLE_CACHE", raising=False)
    monkeypatch.delenv("TILEWISE_AUTOTUNE_DISABLE_CACHE", raising=False)
    monkeypatch.setenv("TILEWISE_AUTOTUNE_PROGRESS", "1")
    AutoTuner._memory.clear()
    yield tmp_path
    AutoTuner._memory.clear()


@pytest.fixture
def a():
    return np.random.default_rng(0).random(N).astype(np.float32)


def _tuner(executor, configs=CONFIGS):
    def kernel(block=64, rounds=1):
        return repeat_max(N, block, rounds)

    return AutoTuner.from_kernel(kernel, configs).set_compile_args(out_idx=-1, target="cpu", ref_prog=copy_ref,
                                                                   executor=executor)


def _no_compiling_here(monkeypatch):
    """Only the executor's workers may build libraries: this process loads them from the cache."""
    from tilewise.jit import target as jit_target

    def refuse(*args, **kwargs):
        raise AssertionError("the caller compiled a configuration")

    monkeypatch.setattr(jit_target, "build_shared_library", refuse)


def _kernel_entries(d) -> list:
    # (pch-: the CPU's precompiled headers, backend/cpu/pch.py)
    return [p for p in d.iterdir() if not p.name.startswith(("autotune-", "pch-", "."))]


class Counting(concurrent.futures.Executor):
    """Delegates to an executor and counts the submissions."""

    def __init__(self, inner):
        self.inner = inner
        self.name = type(inner).__name__  # what the progress bar calls the executor
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        return self.inner.submit(fn, *args, **kwargs)


def test_thread_pool_executor_tunes_and_fills_the_callers_caches(cache_dir, a, capfd):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        ex = Counting(pool)
        with set_autotune_inputs(a):
            result = _tuner(ex).run(warmup=1, rep=5)
    assert ex.submitted == 3
    assert result.skipped == [] and result.latency > 0 and result.config in CONFIGS
    np.testing.assert_array_equal(result.kernel(a), a)
    assert len(_kernel_entries(cache_dir)) == 3
    err = capfd.readouterr().err
    assert "compiling on ThreadPoolExecutor" in err and "3/3" in err and "0 failed, 0 remaining" in err
    # the tuning result went into the on-disk tuning cache, as after local tuning
    AutoTuner._memory.clear()
    with set_autotune_inputs(a):
        again = _tuner(None).run(warmup=1, rep=5)
    assert again.cache_hit and again.config == result.config


def test_decorator_takes_a_process_pool_and_the_caller_compiles_nothing(cache_dir, a, monkeypatch):
    _no_compiling_here(monkeypatch)
    ctx = multiprocessing.get_context("spawn")  # children that do not inherit the patch above
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:  # one: a spawn costs seconds

        @tilewise.autotune(configs=CONFIGS[:2], warmup=1, rep=5, ref_prog=copy_ref, executor=pool)
        @tilewise.jit(out_idx=-1, target="cpu")
        def tuned(N, block=64, rounds=1):
            return repeat_max(N, block, rounds)

        with set_autotune_inputs(a):
            kernel = tuned(N)
    assert kernel.config in CONFIGS[:2] and kernel.latency > 0
    np.testing.assert_array_equal(kernel(a), a)
    assert len(_kernel_entries(cache_dir)) == 2


def test_a_config_that_fails_to_compile_is_failed_not_requeued(cache_dir, a, monkeypatch):
    from tilewise.backend.cpu import build as cpu_build

    monkeypatch.setattr(cpu_build, "compiler", lambda: "/bin/false")  # every compile fails, as with CXX=/bin/false
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        ex = Counting(pool)
        with set_autotune_inputs(a), pytest.raises(AutotuneError) as e:
            _tuner(ex, CONFIGS[:2]).run(warmup=1, rep=5)
    assert str(e.value).count("did not compile") == 2
    assert ex.submitted == 2


class LostFirst(concurrent.futures.Executor):
    """A thread pool whose first submission comes back as lost with its worker (the
    BrokenProcessPool a process pool gives when a child dies)."""

    def __init__(self, pool):
        self.pool = pool
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        if self.submitted == 1:
            f = concurrent.futures.Future()
            f.set_exception(BrokenProcessPool("A child process terminated abruptly, the process pool is not usable"))
            return f
        return self.pool.submit(fn, *args, **kwargs)


def test_a_lost_task_requeues_its_configuration(cache_dir, a, caplog, capfd):
    with concurrent.futures.ThreadPoolExecutor(2) as pool, set_autotune_inputs(a):
        ex = LostFirst(pool)
        with caplog.at_level(logging.INFO, logger="tilewise.autotuner"):
            result = _tuner(ex).run(warmup=1, rep=5)
    assert result.skipped == [] and result.config in CONFIGS
    np.testing.assert_array_equal(result.kernel(a), a)
    assert ex.submitted == 4  # three configurations, one of them twice
    assert "re-queueing it (attempt 2 of 3)" in caplog.text and "BrokenProcessPool" in caplog.text
    assert "1 re-queued" in capfd.readouterr().err
    assert any(p.name.startswith("autotune-") for p in cache_dir.iterdir())  # a complete tuning is cached


def _exit_worker():
    os._exit(1)  # the worker process dies, as a crashed compiler host would


class CrashFirst(concurrent.futures.Executor):
    """A process pool whose first task kills its worker process (a real BrokenProcessPool for
    every task then in that pool); a broken pool is replaced by a new one, as Ray restarts
    workers."""

    def __init__(self, workers: int = 2):
        self.workers = workers
        self.ctx = multiprocessing.get_context("spawn")
        self.pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=self.ctx)
        self.submitted = 0
        self.lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        with self.lock:
            self.submitted += 1
            first = self.submitted == 1
            try:
                return self.pool.submit(_exit_worker if first else fn, *(() if first else args), **kwargs)
            except BrokenProcessPool:
                self.pool.shutdown(wait=False)
                self.pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=self.ctx)
                return self.pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, *, cancel_futures=False):
        self.pool.shutdown(wait=wait)


@pytest.mark.slow
def test_a_crashed_worker_process_requeues_its_configuration(cache_dir, a, caplog, capfd):
    ex = CrashFirst()
    try:
        with caplog.at_level(logging.INFO, logger="tilewise.autotuner"), set_autotune_inputs(a):
            result = _tuner(ex).run(warmup=1, rep=5)
    finally:
        ex.shutdown()
    assert result.skipped == [] and result.config in CONFIGS
    np.testing.assert_array_equal(result.kernel(a), a)
    assert ex.submitted > 3  # the lost task(s) went again
    assert "re-queueing it" in caplog.text and "BrokenProcessPool" in caplog.text
    assert "re-queued" in capfd.readouterr().err


class AlwaysLost(concurrent.futures.Executor):
    """Every task comes back as lost with its worker."""

    def __init__(self):
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        f = concurrent.futures.Future()
        f.set_exception(BrokenProcessPool("a child process terminated abruptly"))
        return f


def test_requeueing_is_bounded_and_not_cached(cache_dir, a):
    ex = AlwaysLost()
    with set_autotune_inputs(a), pytest.raises(AutotuneError) as e:
        _tuner(ex, CONFIGS[:2]).run(warmup=1, rep=5)
    from tilewise.autotuner.executor import REQUEUE_LIMIT

    assert ex.submitted == 2 * (REQUEUE_LIMIT + 1)
    assert str(e.value).count(f"its worker was lost {REQUEUE_LIMIT + 1} times") == 2
    assert not any(p.name.startswith("autotune-") for p in cache_dir.iterdir())


def test_worker_lost_errors_are_told_apart_from_failures():
    assert is_worker_lost(BrokenProcessPool("x"))
    assert is_worker_lost(concurrent.futures.thread.BrokenThreadPool("x"))
    assert not is_worker_lost(RuntimeError("x"))

    class WorkerCrashedError(Exception):  # Ray's name, matched without importing ray
        pass

    assert is_worker_lost(WorkerCrashedError())


def test_executor_without_submit_is_refused():
    with pytest.raises(TypeError, match="submit"):
        AutoTuner.from_kernel(lambda block=1: None, [{"block": 1}]).set_executor(object())


def test_a_build_made_elsewhere_is_shipped_and_loaded_without_compiling(cache_dir, a, monkeypatch, tmp_path):
    import pickle

    from tilewise.autotuner import remote
    from tilewise.jit import cache

    func = repeat_max(N, 64, 2)
    kwargs = dict(target="cpu", execution_backend="auto", out_idx=[1])
    # a task on another host (so its cache is not the caller's) answers with the entry's files
    reply = remote.run_config(pickle.dumps(func), kwargs, None, remote.here(), ("elsewhere", "/nowhere", True))
    assert reply["ok"] and reply["error"] is None
    key, files = reply["entry"]
    assert "meta.json" in files and len(files) >= 3
    # the caller's cache is another, empty one: the shipped entry goes there and is loaded as is
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path / "caller"))
    remote.install_entry(key, files)
    assert cache.lookup(key) is not None
    _no_compiling_here(monkeypatch)
    kernel = tilewise.compile(func, **kwargs)
    np.testing.assert_array_equal(kernel(a), a)
    # a task whose cache is the caller's sends nothing back
    assert remote.run_config(pickle.dumps(func), kwargs, None, remote.here(), remote.cache_place())["entry"] is None


def test_ray_executor_without_ray_names_the_extra(monkeypatch):
    import sys

    from tilewise.autotuner import RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ImportError, match=r"pip install tilewise\[ray\]"):
        RayExecutor()


class Measuring(Counting):
    """An executor whose workers also time their configuration (`measure = True`)."""

    measure = True


def test_measuring_workers_time_the_configs_and_send_the_times_back(cache_dir, a):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        ex = Measuring(pool)
        with set_autotune_inputs(a):
            result = _tuner(ex).run(warmup=1, rep=5)
    assert ex.submitted == 3 and result.skipped == [] and result.latency > 0 and result.ref_latency > 0
    np.testing.assert_array_equal(result.kernel(a), a)


def test_cuda_tuning_on_measuring_workers_without_a_gpu_is_refused_by_each_worker(cache_dir, a):
    from tilewise.jit.target import gpu_present

    if gpu_present():
        pytest.skip("a GPU is present: the workers would time on it")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        ex = Measuring(pool)
        tuner = AutoTuner.from_kernel(lambda block=64, rounds=1: repeat_max(N, block, rounds), CONFIGS[:2])
        tuner.set_compile_args(out_idx=-1, target="cuda", ref_prog=copy_ref, executor=ex)
        with set_autotune_inputs(a), pytest.raises(AutotuneError) as e:
            tuner.run(warmup=1, rep=5)
    # not refused up front (the workers may have GPUs), but by every worker that has none
    assert ex.submitted == 2 and str(e.value).count("has no CUDA GPU to time") == 2
    assert not any(p.name.startswith("autotune-") for p in cache_dir.iterdir())
