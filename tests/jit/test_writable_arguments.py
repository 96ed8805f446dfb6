"""Arguments the kernel writes must be writable: a read-only numpy array (writeable=False, a view
of bytes, a read-only memmap) or a tensor that requires grad is refused with a ValueError naming
the parameter, on every backend, before anything runs; inputs that are only read may be any of
those."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tilewise
import tilewise.language as T

BACKENDS = [("cpu", "auto"), ("cuda -arch=sm_80", "emulator")]


def _copy_kernel(atomic: bool = False):
    @T.prim_func
    def f(A: T.Tensor((64,), "float32"), B: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            for i in T.Parallel(64):
                if atomic:
                    T.atomic_add(B[i], A[i])
                else:
                    B[i] = A[i] * 2.0

    return f


@pytest.mark.parametrize("target,backend", BACKENDS)
@pytest.mark.parametrize("atomic", [False, True])
def test_read_only_outputs_are_refused(target, backend, atomic, tmp_path):
    k = tilewise.compile(_copy_kernel(atomic), target=target, execution_backend=backend)
    a = np.arange(64, dtype=np.float32)
    frozen = np.zeros(64, np.float32)
    frozen.flags.writeable = False
    from_bytes = np.frombuffer(bytes(256), dtype=np.float32)
    path = tmp_path / "m.bin"
    np.zeros(64, np.float32).tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=(64,))
    for b in (frozen, from_bytes, mapped):
        with pytest.raises(ValueError, match="argument B: the kernel writes it, but the array is read-only"):
            k(a, b)
    assert not frozen.any() and not np.asarray(mapped).any()
    # a read-only input is fine
    b = np.zeros(64, np.float32)
    k(frozen, b)
    np.testing.assert_array_equal(b, 0)


@pytest.mark.parametrize("target,backend", BACKENDS)
def test_tensors_that_require_grad(target, backend):
    k = tilewise.compile(_copy_kernel(), target=target, execution_backend=backend)
    a = torch.arange(64, dtype=torch.float32, requires_grad=True)
    b = torch.zeros(64)
    k(a, b)  # read-only use of a tensor requiring grad works
    torch.testing.assert_close(b, a.detach() * 2)
    with pytest.raises(ValueError, match="argument B: the kernel writes it in place, but the tensor requires grad"):
        k(a.detach(), torch.zeros(64, requires_grad=True))
