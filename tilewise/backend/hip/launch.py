"""Launching rendered HIP kernels on an AMD GPU through hip-python (PyPI `hip-python`, the
`hip.hip` module: Python bindings of the HIP runtime whose calls return (hipError_t, results...)).

The launch plan (grid, block) and the kernel parameter array (a void** of pointers to each
argument's bytes, as hipModuleLaunchKernel's kernelParams wants) are the CUDA path's, computed
without a GPU (backend/cuda/launch.py); the HIP calls are hipModuleLoadData (the code object
clang-19 linked), hipModuleGetFunction per kernel and hipModuleLaunchKernel on torch's current
stream (ROCm builds of torch call AMD GPUs "cuda" devices). The LDS tile is a static allocation
of the code object, so no dynamic LDS is passed. A kernel with a grid barrier (T.sync_grid) is
launched with hipModuleLaunchCooperativeKernel (same arguments, no `extra`), after checking that
its workgroups can all be resident at once (hipModuleOccupancyMaxActiveBlocksPerMultiprocessor
times the device's compute units, hipDeviceGetAttribute)."""
from __future__ import annotations

import threading
from collections.abc import Sequence

from ..cuda.launch import CudaLaunchError, check_co_resident, cuda_device_of, iter_launch_plans, pack_params
from ..cuda.renderer import CudaModule


class HipRuntimeError(RuntimeError):
    """A HIP runtime call failed: `what` names the call, `code` is the hipError_t value."""

    def __init__(self, what: str, code: int, text: str):
        self.what = what
        self.code = code
        super().__init__(f"{what} failed: {text} (hipError_t {code})")


def _hip():
    try:
        from hip import hip
    except ImportError as e:
        raise CudaLaunchError("running HIP kernels on an AMD GPU needs hip-python (pip install hip-python, "
                              "matching the installed ROCm version)") from e
    return hip


def check(hip, result, what: str):
    """Raise HipRuntimeError unless the call succeeded; return its single output (or outputs)."""
    err, *out = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        try:
            text = hip.hipGetErrorString(err)
            text = text.decode() if isinstance(text, bytes) else str(text)
        except Exception:  # noqa: BLE001 - describe the code without the runtime
            text = getattr(err, "name", str(err))
        raise HipRuntimeError(what, int(err), text)
    if not out:
        return None
    return out[0] if len(out) == 1 else tuple(out)


class HipLauncher:
    """Runs a compiled HIP module: `launcher(args, dims)` launches every kernel in order. The code
    object is loaded once per device. `hip` replaces the hip-python module (tests pass a fake)."""

    def __init__(self, module: CudaModule, hsaco: bytes, hip=None):
        self.module = module
        self.hsaco = hsaco
        self._hip = hip
        self._functions: dict[int, list] = {}
        self._lock = threading.Lock()

    @property
    def hip(self):
        if self._hip is None:
            self._hip = _hip()
        return self._hip

    def __call__(self, args: Sequence, dims: Sequence[int], stream: int | None = None, device: int | None = None) -> None:
        plans = iter_launch_plans(self.module, args, dims)
        params = pack_params(self.module, args, dims)
        if device is None:
            device = cuda_device_of(args)
        if device is None or stream is None:
            import torch

            device = torch.cuda.current_device() if device is None else device
            stream = torch.cuda.current_stream(device).cuda_stream if stream is None else stream
        hip = self.hip
        check(hip, hip.hipSetDevice(device), f"hipSetDevice({device})")
        functions = self._load(device)
        for plan, fn in zip(plans, functions):
            if plan.kind == "cooperative":
                self._launch_cooperative(plan, fn, device, stream, params)
                continue
            check(hip, hip.hipModuleLaunchKernel(fn, *plan.grid, *plan.block, 0, stream, params.address, None),
                  f"hipModuleLaunchKernel({plan.kernel}, grid={plan.grid}, block={plan.block})")

    def _launch_cooperative(self, plan, fn, device: int, stream, params) -> None:
        hip = self.hip
        threads = plan.block[0] * plan.block[1] * plan.block[2]
        cus = check(hip, hip.hipDeviceGetAttribute(hip.hipDeviceAttribute_t.hipDeviceAttributeMultiprocessorCount,
                                                    device), "hipDeviceGetAttribute(MultiprocessorCount)")
        per_cu = check(hip, hip.hipModuleOccupancyMaxActiveBlocksPerMultiprocessor(fn, threads, 0),
                       f"hipModuleOccupancyMaxActiveBlocksPerMultiprocessor({plan.kernel})")
        check_co_resident(plan, int(per_cu), int(cus))
        check(hip, hip.hipModuleLaunchCooperativeKernel(fn, *plan.grid, *plan.block, 0, stream, params.address),
              f"hipModuleLaunchCooperativeKernel({plan.kernel}, grid={plan.grid}, block={plan.block})")

    def _load(self, device: int) -> list:
        with self._lock:
            hit = self._functions.get(device)
            if hit is not None:
                return hit
            hip = self.hip
            mod = check(hip, hip.hipModuleLoadData(self.hsaco), "hipModuleLoadData")
            fns = [check(hip, hip.hipModuleGetFunction(mod, k.name.encode()), f"hipModuleGetFunction({k.name})")
                   for k in self.module.kernels]
            self._functions[device] = fns
            return fns
