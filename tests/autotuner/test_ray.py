"""Autotuning on a local Ray cluster of 2 workers (tilewise.autotuner.RayExecutor): a small CPU
GEMM is tuned with its configurations compiled as Ray tasks (and, with measure=True, timed
there), the result is checked against numpy and lands in the caller's caches, and a task whose
worker process dies is re-queued. One module-scoped cluster: Ray takes seconds to start."""
from __future__ import annotations

import concurrent.futures
import os
import sys

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.autotuner import AutoTuner, RayExecutor
from tilewise.autotuner.executor import is_worker_lost

ray = pytest.importorskip("ray")

M = N = K = 64
CONFIGS = [{"block_M": 32, "block_N": 32}, {"block_M": 64, "block_N": 32}, {"block_M": 32, "block_N": 64}]


def gemm(M, N, K, block_M=32, block_N=32, block_K=32):
    @T.prim_func
    def main(A: T.Tensor((M, K), "float32"), B: T.Tensor((K, N), "float32"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), "float32")
            B_shared = T.alloc_shared((block_K, block_N), "float32")
            C_local = T.alloc_fragment((block_M, block_N), "float32")
            T.clear(C_local)
            for k in T.Pipelined(T.ceildiv(K, block_K), num_stages=2):
                T.copy(A[by * block_M, k * block_K], A_shared)
                T.copy(B[k * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.copy(C_local, C[by * block_M, bx * block_N])

    return main


def gemm_ref(A, B):
    return A @ B


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ray-cache")
    with pytest.MonkeyPatch.context() as mp:
        # set before Ray starts: its workers inherit this environment (and get it forwarded)
        mp.setenv("TILEWISE_CACHE_DIR", str(d))
        mp.delenv("TILEWISE_DISABLE_CACHE", raising=False)
        mp.delenv("TILEWISE_AUTOTUNE_DISABLE_CACHE", raising=False)
        mp.setenv("TILEWISE_AUTOTUNE_PROGRESS", "1")
        # the workers import this checkout of tilewise
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
        yield d


@pytest.fixture(scope="module")
def executor(cache_dir):
    if ray.is_initialized():
        pytest.skip("Ray is already initialised in this process by someone else")
    ex = RayExecutor(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ex
    ex.shutdown()
    assert not ray.is_initialized()  # it started Ray, so it stops it


@pytest.fixture
def ab():
    rng = np.random.default_rng(1)
    return rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)


def test_ray_cluster_tunes_a_gemm_and_the_caller_compiles_nothing(executor, cache_dir, ab, monkeypatch, capfd):
    from tilewise.jit import target as jit_target

    def refuse(*args, **kwargs):
        raise AssertionError("the caller compiled a configuration")

    monkeypatch.setattr(jit_target, "build_shared_library", refuse)  # only the Ray workers may build
    AutoTuner._memory.clear()

    @tilewise.autotune(configs=CONFIGS[:2], warmup=1, rep=5, ref_prog=gemm_ref, atol=1e-3, rtol=1e-3, executor=executor)
    @tilewise.jit(out_idx=[-1], target="cpu")
    def tuned(M, N, K, block_M=32, block_N=32, block_K=32):
        return gemm(M, N, K, block_M, block_N, block_K)

    kernel = tuned(M, N, K)
    a, b = ab
    np.testing.assert_allclose(kernel(a, b), a @ b, rtol=1e-4, atol=1e-4)
    assert kernel.config in CONFIGS[:2] and kernel.latency > 0
    err = capfd.readouterr().err
    assert "compiling on Ray" in err and "2/2" in err and "0 failed, 0 remaining" in err
    # the tuning result is in the caller's on-disk tuning cache
    assert any(p.name.startswith("autotune-") for p in cache_dir.iterdir())


@pytest.mark.slow
def test_ray_workers_measure_when_asked(executor, ab):
    # the same session, with timing (and the reference check) done by the tasks
    measuring = RayExecutor(measure=True)
    assert not measuring._started  # Ray was running: it is used, and not shut down by this one
    tuner = AutoTuner.from_kernel(lambda block_M=32, block_N=32: gemm(M, N, K, block_M, block_N), CONFIGS[1:])
    tuner.set_compile_args(out_idx=[-1], target="cpu", ref_prog=gemm_ref, atol=1e-3, rtol=1e-3,
                           executor=measuring)
    result = tuner.set_profile_args(warmup=1, rep=5).run()
    a, b = ab
    np.testing.assert_allclose(result.kernel(a, b), a @ b, rtol=1e-4, atol=1e-4)
    assert result.latency > 0 and result.ref_latency > 0 and result.skipped == []
    measuring.shutdown()
    assert ray.is_initialized()


@pytest.mark.slow
def test_a_ray_worker_that_dies_is_a_lost_worker(executor):
    fut = executor.submit(os._exit, 1)
    assert isinstance(fut, concurrent.futures.Future)
    with pytest.raises(Exception) as e:
        fut.result(timeout=120)
    assert is_worker_lost(e.value, executor), repr(e.value)
    assert executor.submit(sum, [1, 2, 3]).result(timeout=120) == 6  # Ray started a new worker


class FirstTaskKillsItsWorker:
    """The RayExecutor, except that the first task exits its Ray worker process (as a compiler
    crash taking the worker down would)."""

    def __init__(self, inner: RayExecutor):
        self.inner = inner
        self.name = "Ray"
        self.worker_lost_errors = inner.worker_lost_errors
        self.submitted = 0

    def submit(self, fn, /, *args):
        self.submitted += 1
        if self.submitted == 1:
            return self.inner.submit(os._exit, 1)
        return self.inner.submit(fn, *args)


@pytest.mark.slow
def test_a_configuration_whose_ray_worker_dies_is_requeued(executor, ab, caplog):
    import logging

    AutoTuner._memory.clear()
    ex = FirstTaskKillsItsWorker(executor)
    tuner = AutoTuner.from_kernel(lambda block_M=32, block_N=32: gemm(M, N, K, block_M, block_N), CONFIGS)
    tuner.set_compile_args(out_idx=[-1], target="cpu", ref_prog=gemm_ref, atol=1e-3, rtol=1e-3, executor=ex)
    with caplog.at_level(logging.INFO, logger="tilewise.autotuner"):
        result = tuner.set_profile_args(warmup=1, rep=5).run()
    a, b = ab
    np.testing.assert_allclose(result.kernel(a, b), a @ b, rtol=1e-4, atol=1e-4)
    assert result.skipped == [] and ex.submitted == len(CONFIGS) + 1
    assert "WorkerCrashedError" in caplog.text and "re-queueing it" in caplog.text
