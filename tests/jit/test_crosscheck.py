"""The differential check (tilewise/jit/crosscheck.py): with TILEWISE_EMULATOR_CROSSCHECK=ptx
(the test suite's default) every emulator run is repeated by the PTX interpreter on the PTX of the
compiled source; a disagreement fails with the kernel, the element and both values."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.engine.callback import register_cuda_postproc_callback, unregister_cuda_postproc_callback
from tilewise.jit.crosscheck import CrosscheckError


def _add_one():
    @T.prim_func
    def add_one(A: T.Tensor((300,), "float32"), B: T.Tensor((300,), "float32")):
        with T.Kernel(T.ceildiv(300, 128), threads=128) as bx:
            for i in T.Parallel(128):
                B[bx * 128 + i] = A[bx * 128 + i] + 1.0

    return add_one


def test_a_source_edit_the_ir_does_not_know_about_is_caught(monkeypatch):
    monkeypatch.setenv("TILEWISE_EMULATOR_CROSSCHECK", "ptx")
    a = np.arange(300, dtype=np.float32)
    k = tilewise.compile(_add_one(), out_idx=[1], target="cuda", execution_backend="emulator")
    np.testing.assert_array_equal(k(a), a + 1)  # the two executors agree
    # what NVRTC compiles now adds 2: the emulator (running the IR) and the PTX disagree
    register_cuda_postproc_callback(lambda code, target: code.replace("1.0f", "2.0f"))
    try:
        edited = tilewise.compile(_add_one(), out_idx=[1], target="cuda", execution_backend="emulator")
        with pytest.raises(CrosscheckError, match=r"add_one: .* disagree on B: 300 element\(s\) differ, the first at "
                                                  r"\(0,\): emulator .*1\.0.*, PTX .*2\.0"):
            edited(a)
    finally:
        unregister_cuda_postproc_callback()


def test_off_and_unknown_values(monkeypatch):
    a = np.arange(300, dtype=np.float32)
    monkeypatch.setenv("TILEWISE_EMULATOR_CROSSCHECK", "")
    k = tilewise.compile(_add_one(), out_idx=[1], target="cuda", execution_backend="emulator")
    np.testing.assert_array_equal(k(a), a + 1)
    assert k.runtime._second is None  # nothing else ran
    monkeypatch.setenv("TILEWISE_EMULATOR_CROSSCHECK", "sass")
    with pytest.raises(ValueError, match="the only second executor is 'ptx'"):
        k(a)


def test_the_ptx_backend_runs_a_kernel_by_itself():
    a = np.arange(300, dtype=np.float32)
    k = tilewise.compile(_add_one(), out_idx=[1], target="cuda", execution_backend="ptx")
    np.testing.assert_array_equal(k(a), a + 1)
    assert ".entry add_one_kernel" in k.runtime.ptx
