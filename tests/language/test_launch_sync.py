"""Synchronisation beyond one block (language/launch_sync.py): `T.sync_grid` (a grid barrier,
cooperative launch) and `T.pdl_trigger` / `T.pdl_sync` (programmatic dependent launch).

The grid barrier is TileLang's own test program (v0.1.8 test_tilelang_language_cooperative.py):
every block writes its part, all wait, then every block reads another block's part; it runs in
the emulator for sm_80 and sm_90a (all blocks in one lockstep batch, with the race checks that
would catch a missing barrier), in the PTX interpreter (tw_cuda.h's barrier really spins on its
counter there), on the CPU target (thread-exactly), and compiles through NVRTC with the atomics
and fences of the barrier in its SASS."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.backend.cuda.launch import CudaLaunchError, LaunchPlan, check_co_resident, launch_config
from tilewise.emulator.errors import DivergenceError, RaceError
from tilewise.emulator.grid_sync import CooperativeLaunchError
from tilewise.errors import CompileError


def grid_sync(N=1024, block=64, threads=128, barrier=True):
    @T.prim_func
    def kernel(A: T.Tensor((N,), T.float32)):
        with T.Kernel(T.ceildiv(N, block), threads=threads) as bx:
            A_local = T.alloc_fragment((block,), dtype=T.float32)
            n_idx = bx * block
            for i in T.Parallel(block):
                A[n_idx + i] = n_idx + i
            if barrier:
                T.sync_grid()
            for i in T.Parallel(block):
                A_local[i] = A[N - n_idx - i - 1]
                if barrier:
                    T.sync_grid()
                A[n_idx + i] = A[n_idx + i] + A_local[i]

    return kernel


def _check_grid_sync(kernel, N=1024):
    a = np.random.default_rng(0).random(N).astype(np.float32)
    kernel(a)
    np.testing.assert_array_equal(a, np.full(N, N - 1, np.float32))


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
def test_sync_grid_in_the_emulator_and_the_ptx_interpreter(arch):
    # conftest cross-checks every emulator run with the PTX interpreter
    k = tilewise.compile(grid_sync(), target=f"cuda -arch={arch}", execution_backend="emulator")
    _check_grid_sync(k)
    assert "tw::grid_sync()" in k.get_kernel_source()


def test_sync_grid_on_the_cpu_runs_thread_exactly():
    with pytest.warns(UserWarning, match="thread-exactly"):
        k = tilewise.compile(grid_sync(), target="cpu")
    _check_grid_sync(k)


def test_without_the_grid_barrier_the_emulator_reports_the_race():
    k = tilewise.compile(grid_sync(barrier=False), target="cuda -arch=sm_80", execution_backend="emulator")
    with pytest.raises(RaceError):
        k(np.zeros(1024, np.float32))


def test_sync_grid_sass(nvrtc_check):
    nvrtc_check(grid_sync(), expect=("ATOMG", "MEMBAR", "BAR"))


def test_sync_grid_in_divergent_code_is_reported():
    @T.prim_func
    def kernel(A: T.Tensor((256,), T.float32)):
        with T.Kernel(2, threads=128) as bx:
            tx = T.get_thread_binding()
            if tx < 64:
                T.sync_grid()
            A[bx * 128 + tx] = 1.0

    k = tilewise.compile(kernel, target="cuda -arch=sm_80", execution_backend="emulator")
    with pytest.raises(DivergenceError, match="T.sync_grid"):
        k(np.zeros(256, np.float32))


def test_a_grid_too_large_to_be_co_resident_is_a_clear_error():
    # 108 SMs x 2 blocks of 1024 threads fit on an A100; 4096 blocks do not
    k = tilewise.compile(grid_sync(N=4096 * 64, block=64, threads=1024), target="cuda -arch=sm_80",
                         execution_backend="emulator")
    with pytest.raises(CooperativeLaunchError, match="at most 216"):
        k(np.zeros(4096 * 64, np.float32))


def test_the_launcher_checks_co_residency_and_builds_the_launch_configs():
    plan = LaunchPlan("k", (300, 1, 1), (128, 1, 1), 0, False, "cooperative")
    check_co_resident(plan, 4, 108)  # 432 resident: fine
    with pytest.raises(CudaLaunchError, match="300 blocks"):
        check_co_resident(plan, 2, 108)
    from cuda.bindings import driver

    cfg = launch_config(driver, None, LaunchPlan("k", (3, 2, 1), (64, 1, 1), 128, False, "programmatic"), 0)
    assert (cfg.gridDimX, cfg.gridDimY, cfg.blockDimX, cfg.sharedMemBytes, cfg.numAttrs) == (3, 2, 64, 128, 1)
    k = tilewise.compile(grid_sync(), target="cuda -arch=sm_80", execution_backend="emulator")
    assert [kk.launch_sync for kk in k.build.module.kernels] == [("sync_grid",)]


def pdl(N=64, block_size=256, trigger=True):
    @T.prim_func
    def main(A: T.Tensor((N,), T.float32), B: T.Tensor((N,), T.float32)):
        with T.Kernel(T.ceildiv(N, block_size), threads=block_size) as bx:
            if not trigger:
                T.pdl_sync()
            for i in T.Parallel(block_size):
                idx = bx * block_size + i
                if idx < N:
                    B[idx] = A[idx] + 1.0 if trigger else A[idx] * 2.0
            if trigger:
                T.pdl_trigger()

    return main


@pytest.mark.parametrize("trigger", [True, False])
def test_pdl_on_sm90_runs_and_renders_griddepcontrol(trigger, nvrtc_check):
    k = tilewise.compile(pdl(trigger=trigger), target="cuda -arch=sm_90a", execution_backend="emulator")
    a = np.arange(64, dtype=np.float32)
    b = np.zeros(64, np.float32)
    k(a, b)
    np.testing.assert_array_equal(b, a + 1 if trigger else a * 2)
    src = k.get_kernel_source()
    assert ("griddepcontrol.launch_dependents" if trigger else "griddepcontrol.wait") in src
    # as TileLang: no __restrict__ parameters in a kernel that waits for its primary grid
    assert ("__restrict__" in src) == trigger
    assert k.build.module.kernels[0].launch_sync == ("pdl_trigger",) if trigger else ("pdl_sync",)
    nvrtc_check(pdl(trigger=trigger), archs=("sm_90a",))


@pytest.mark.parametrize("target", ["cuda -arch=sm_80", "cpu"])
def test_pdl_before_sm90_is_a_compile_error(target):
    with pytest.raises(CompileError, match="sm_90 or newer"):
        tilewise.compile(pdl(), target=target, execution_backend="emulator" if "cuda" in target else None)
