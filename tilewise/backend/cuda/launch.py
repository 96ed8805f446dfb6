"""Launching rendered CUDA kernels on a GPU through the CUDA driver API (`cuda.bindings.driver`).

Everything before the final cuLaunchKernel is plain Python and runs without a GPU: the grid of
every kernel (`launch_plans`), the kernel parameter array (`pack_params`: an array of pointers,
each pointing at one argument's bytes, as cuLaunchKernel's kernelParams wants), the arguments of
each TMA tensor map (`tensor_map_args`, then one cuTensorMapEncodeTiled call per map, whose 128
bytes become a `__grid_constant__` parameter after the dynamic dimensions) and the decision to
raise the dynamic shared memory limit (`CudaKernel.needs_shared_opt_in`). `CudaLauncher` adds the
driver calls: cuInit, the device's primary context (the one torch uses), cuModuleLoadData,
cuModuleGetFunction, cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) above
48 KiB, cuTensorMapEncodeTiled, and cuLaunchKernel on torch's current stream of that device.

Arguments are what `tilewise.jit.args.ArgBinder` produced for device="cuda": one entry per
`CudaModule.params` (CUDA tensors, or raw device addresses as ints, for buffers; Python or numpy
scalars for scalar parameters) and the values of `CudaModule.dynamic_vars`."""
from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...emulator.errors import EmptyGridError, empty_grid_message
from ...ir.buffer import Buffer
from ...ir.dtype import DataType
from ...ir.evaluate import evaluate
from ...ir.expr import Var
from .renderer import CudaKernel, CudaModule
from .tensor_maps import EncodeArgs, TensorMapError, encode, encode_args

MAX_GRID = (2**31 - 1, 65535, 65535)
MAX_BLOCK_THREADS = 1024



class CudaLaunchError(RuntimeError):
    """A launch cannot be made as asked (arguments, grid limits, device limits)."""


class CudaDriverError(RuntimeError):
    """A CUDA driver call failed; the message carries the driver's error name and text."""

    def __init__(self, what: str, code: int, name: str, text: str):
        self.code = code
        super().__init__(f"{what} failed: {name} ({code}): {text}")


# ---------------------------------------------------------------------------- GPU-free part


@dataclass(frozen=True)
class LaunchPlan:
    kernel: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_bytes: int
    shared_opt_in: bool  # set CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES first
    # "cooperative" (T.sync_grid: cuLaunchCooperativeKernel after the co-residency check),
    # "programmatic" (T.pdl_sync: cuLaunchKernelEx with programmatic stream serialisation) or "plain"
    kind: str = "plain"


def _scalar_env(module: CudaModule, args: Sequence, dims: Sequence[int]) -> dict:
    if len(args) != len(module.params):
        raise CudaLaunchError(f"{module.func_name} takes {len(module.params)} arguments, got {len(args)}")
    if len(dims) != len(module.dynamic_vars):
        names = ", ".join(v.name for v in module.dynamic_vars) or "none"
        raise CudaLaunchError(
            f"{module.func_name} has {len(module.dynamic_vars)} dynamic dimension(s) ({names}), got {len(dims)} value(s)"
        )
    env: dict = {}
    for p, a in zip(module.params, args):
        if isinstance(p, Var):
            env[p] = _python_scalar(a)
    for v, d in zip(module.dynamic_vars, dims):
        env[v] = int(d)
    return env


def kernel_plan(kernel: CudaKernel, env: dict) -> LaunchPlan:
    grid = []
    for ax, g in enumerate(kernel.grid):
        n = evaluate(g, env)
        try:
            n = int(n)
        except (TypeError, ValueError):
            raise CudaLaunchError(f"kernel {kernel.name}: grid extent {g} is not an integer ({n!r})") from None
        if n < 0:
            raise CudaLaunchError(f"kernel {kernel.name}: grid extent {g} = {n} is negative")
        if n == 0:  # TileLang's runtime refuses a grid of no blocks (emulator/errors.py)
            zero = [evaluate(x, env) for x in kernel.grid]
            raise EmptyGridError(empty_grid_message(kernel.name, [int(x) for x in zero]))
        if n > MAX_GRID[ax]:
            raise CudaLaunchError(
                f"kernel {kernel.name}: {n} blocks along {'xyz'[ax]} ({g}) exceed CUDA's limit of {MAX_GRID[ax]}"
            )
        grid.append(n)
    grid += [1] * (3 - len(grid))
    if kernel.threads > MAX_BLOCK_THREADS:
        raise CudaLaunchError(f"kernel {kernel.name}: {kernel.threads} threads per block exceed {MAX_BLOCK_THREADS}")
    return LaunchPlan(kernel.name, (grid[0], grid[1], grid[2]), kernel.block, kernel.shared_bytes, kernel.needs_shared_opt_in,
                      launch_kind(kernel))


def launch_kind(kernel: CudaKernel) -> str:
    if "sync_grid" in kernel.launch_sync:
        return "cooperative"
    return "programmatic" if "pdl_sync" in kernel.launch_sync else "plain"


def check_co_resident(plan: LaunchPlan, blocks_per_sm: int, sms: int) -> None:
    """A grid barrier needs every block resident at once: the launch's blocks against what the
    occupancy calculator says fits (cuLaunchCooperativeKernel would refuse it too, less clearly)."""
    n = plan.grid[0] * plan.grid[1] * plan.grid[2]
    if n > blocks_per_sm * sms:
        raise CudaLaunchError(
            f"kernel {plan.kernel} uses T.sync_grid, which needs all its {n} blocks resident at once; the device holds "
            f"{blocks_per_sm} per SM x {sms} SMs = {blocks_per_sm * sms} blocks of {math.prod(plan.block)} threads with "
            f"{plan.shared_bytes} bytes of shared memory: use fewer, larger blocks or a persistent loop")


def launch_config(driver, fn, plan: LaunchPlan, stream: int):
    """cuLaunchKernelEx's configuration of a programmatic launch (T.pdl_sync): the kernel may
    start before the previous one in the stream completes and waits for it at griddepcontrol.wait
    (cudaLaunchAttributeProgrammaticStreamSerialization, as TileLang launches it)."""
    config = driver.CUlaunchConfig()
    config.gridDimX, config.gridDimY, config.gridDimZ = plan.grid
    config.blockDimX, config.blockDimY, config.blockDimZ = plan.block
    config.sharedMemBytes = plan.shared_bytes
    config.hStream = driver.CUstream(stream)
    attr = driver.CUlaunchAttribute()
    attr.id = driver.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
    attr.value.programmaticStreamSerializationAllowed = 1
    config.attrs = [attr]
    config.numAttrs = 1
    return config


def launch_plans(module: CudaModule, args: Sequence, dims: Sequence[int]) -> list[LaunchPlan]:
    """Grid, block and shared memory of each kernel of the module, in launch order."""
    return list(iter_launch_plans(module, args, dims))


def iter_launch_plans(module: CudaModule, args: Sequence, dims: Sequence[int]):
    """launch_plans one kernel at a time, for launching as they come: a kernel whose grid is
    refused (0 blocks) raises after the kernels before it have run, as on a GPU."""
    env = _scalar_env(module, args, dims)
    for k in module.kernels:
        yield kernel_plan(k, env)


class PackedParams:
    """cuLaunchKernel's kernelParams: `address` is a `void**` array whose i-th entry points at the
    bytes of the i-th C parameter. The object owns that memory; keep it alive until the launch
    call has returned (the driver copies the values at launch)."""

    def __init__(self, values: list, names: list[str]):
        self.values = values  # ctypes scalars, in C parameter order
        self.names = names
        self.array = (ctypes.c_void_p * max(1, len(values)))(*[ctypes.addressof(v) for v in values])

    @property
    def address(self) -> int:
        return ctypes.addressof(self.array)

    def __len__(self) -> int:
        return len(self.values)

    def read(self, i: int):
        """The i-th parameter's value, read back through the pointer array (for checking); the
        bytes of a tensor map."""
        ctype = type(self.values[i])
        got = ctypes.cast(self.array[i], ctypes.POINTER(ctype)).contents
        return bytes(got) if isinstance(got, ctypes.Array) else got.value


def device_pointer(name: str, a) -> int:
    """The device address of a buffer argument: a CUDA torch tensor, an object with
    __cuda_array_interface__, or an int address."""
    if isinstance(a, (int, np.integer)) and not isinstance(a, bool):
        return int(a)
    if type(a).__module__.startswith("torch") and hasattr(a, "data_ptr"):
        if not a.is_cuda:
            raise CudaLaunchError(f"argument {name}: the tensor is on {a.device}; a CUDA kernel needs a CUDA tensor")
        return int(a.data_ptr())
    cai = getattr(a, "__cuda_array_interface__", None)
    if cai is not None:
        return int(cai["data"][0])
    raise CudaLaunchError(f"argument {name}: expected a CUDA tensor or a device address, found {type(a).__name__}")


def _python_scalar(a):
    if hasattr(a, "item") and not isinstance(a, (int, float, bool)):
        a = a.item()
    return a


def _scalar_ctype(name: str, dt: DataType, value):
    ctype = dt.ctype
    if ctype is None:
        raise CudaLaunchError(f"argument {name}: no kernel parameter encoding for {dt}")
    v = _python_scalar(value)
    if dt.is_float and dt.bits <= 16:  # float16, bfloat16, float8, fp6, fp4: their bit patterns
        bits = np.asarray(v, dtype=dt.numpy).view(np.uint16 if dt.bits == 16 else np.uint8)
        return ctype(int(bits))
    if dt.is_int:
        iv = int(v)
        lo, hi = (-(1 << (dt.bits - 1)), (1 << (dt.bits - 1)) - 1) if dt.is_signed else (0, (1 << dt.bits) - 1)
        if not lo <= iv <= hi:
            raise CudaLaunchError(f"argument {name}: {iv} does not fit in {dt}")
        return ctype(iv)
    if dt.is_bool:
        return ctype(bool(v))
    return ctype(float(v))


# The 128 bytes of an encoded CUtensorMap as a kernel parameter value (cuLaunchKernel copies them,
# so this copy need not keep the 64-byte alignment of the map the driver encoded)
_TensorMapBytes = ctypes.c_uint64 * 16


def tensor_map_args(module: CudaModule, kernel: CudaKernel, args: Sequence, dims: Sequence[int],
                    address=device_pointer) -> list[EncodeArgs]:
    """The cuTensorMapEncodeTiled arguments of each tensor map of `kernel` for one call;
    `address(name, arg)` is the global address of a buffer argument."""
    env = _scalar_env(module, args, dims)
    where = {p.uid: k for k, p in enumerate(module.params) if isinstance(p, Buffer)}
    out = []
    for _, m in kernel.tensor_maps:
        k = where[m.buffer.uid]
        try:
            out.append(encode_args(m, address(module.param_names[k], args[k]), env))
        except TensorMapError as e:
            raise CudaLaunchError(f"kernel {kernel.name}, argument {module.param_names[k]}: {e}") from None
    return out


def pack_params(module: CudaModule, args: Sequence, dims: Sequence[int], kernel: CudaKernel | None = None,
                driver=None) -> PackedParams:
    """The kernel parameter array for one call: device pointers for buffers, scalar values, the
    dynamic dimensions (as their IR type, int32), then `kernel`'s tensor maps, encoded by
    `driver` (cuda.bindings.driver unless given)."""
    _scalar_env(module, args, dims)  # count checks
    values = []
    names = list(module.param_names)
    for p, a, name in zip(module.params, args, module.param_names):
        if isinstance(p, Buffer):
            values.append(ctypes.c_uint64(device_pointer(name, a)))
        else:
            values.append(_scalar_ctype(name, p.dtype, a))
    for v, d, name in zip(module.dynamic_vars, dims, module.param_names[len(module.params) :]):
        values.append(_scalar_ctype(name, v.dtype, d))
    if kernel is not None and kernel.tensor_maps:
        drv = driver if driver is not None else _driver()
        for (cname, _), enc in zip(kernel.tensor_maps, tensor_map_args(module, kernel, args, dims)):
            raw = _TensorMapBytes()
            ctypes.memmove(ctypes.addressof(raw), encode(enc, drv), 128)
            values.append(raw)
            names.append(cname)
    return PackedParams(values, names)


def cuda_device_of(args: Sequence) -> int | None:
    """The device index of the first CUDA tensor among the arguments."""
    for a in args:
        if type(a).__module__.startswith("torch") and getattr(a, "is_cuda", False):
            return int(a.device.index)
    return None


# ---------------------------------------------------------------------------- driver part


def _driver():
    from cuda.bindings import driver

    return driver


def check(result, what: str):
    """Raise CudaDriverError unless the call succeeded; return its single output (or outputs)."""
    driver = _driver()
    err, *out = result if isinstance(result, tuple) else (result,)
    if err != driver.CUresult.CUDA_SUCCESS:
        raise CudaDriverError(what, int(err), *_error_strings(driver, err))
    if not out:
        return None
    return out[0] if len(out) == 1 else tuple(out)


def _error_strings(driver, err) -> tuple[str, str]:
    """The driver's name and description of an error code (the enum name when the driver
    library itself is unavailable)."""
    try:
        e1, name = driver.cuGetErrorName(err)
        e2, text = driver.cuGetErrorString(err)
    except Exception:  # noqa: BLE001 - no driver library: describe the code without it
        return getattr(err, "name", str(err)), "(the CUDA driver is not available to describe it)"
    ok = driver.CUresult.CUDA_SUCCESS
    name_s = name.decode() if e1 == ok and name else getattr(err, "name", str(err))
    text_s = text.decode() if e2 == ok and text else "(no description)"
    return name_s, text_s


class _Loaded:
    def __init__(self, ctx, module, functions: list):
        self.ctx = ctx
        self.module = module
        self.functions = functions


class CudaLauncher:
    """Runs a compiled CudaModule: `launcher(args, dims)` launches every kernel in order on the
    current torch stream of the arguments' device. The cubin is loaded once per device."""

    _init_lock = threading.Lock()
    _initialised = False

    def __init__(self, module: CudaModule, cubin: bytes):
        self.module = module
        self.cubin = cubin
        self._loaded: dict[int, _Loaded] = {}
        self._lock = threading.Lock()

    def prepare(self, args: Sequence, dims: Sequence[int]) -> tuple[list[LaunchPlan], PackedParams]:
        """The launch plans and packed parameters of one call (no driver calls; kernels with
        tensor maps get their own parameters, see `kernel_params`)."""
        return launch_plans(self.module, args, dims), pack_params(self.module, args, dims)

    def kernel_params(self, kernel: CudaKernel, shared: PackedParams, args, dims, driver=None) -> PackedParams:
        """The parameters of one kernel: the shared ones, plus its encoded tensor maps."""
        if not kernel.tensor_maps:
            return shared
        return pack_params(self.module, args, dims, kernel, driver)

    def __call__(self, args: Sequence, dims: Sequence[int], stream: int | None = None) -> None:
        plans, params = iter_launch_plans(self.module, args, dims), pack_params(self.module, args, dims)
        device = cuda_device_of(args)
        import torch

        if device is None:
            device = torch.cuda.current_device()
        if stream is None:
            stream = torch.cuda.current_stream(device).cuda_stream
        loaded = self._load(device)
        driver = _driver()
        self._make_current(loaded.ctx)
        for plan, fn, kernel in zip(plans, loaded.functions, self.module.kernels):
            kparams = self.kernel_params(kernel, params, args, dims, driver)
            what = f"({plan.kernel}, grid={plan.grid}, block={plan.block}, shared={plan.shared_bytes})"
            if plan.kind == "cooperative":
                dev = check(driver.cuCtxGetDevice(), "cuCtxGetDevice")
                sms = check(driver.cuDeviceGetAttribute(
                    driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev), "cuDeviceGetAttribute")
                per_sm = check(driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(
                    fn, math.prod(plan.block), plan.shared_bytes), "cuOccupancyMaxActiveBlocksPerMultiprocessor")
                check_co_resident(plan, int(per_sm), int(sms))
                check(driver.cuLaunchCooperativeKernel(fn, *plan.grid, *plan.block, plan.shared_bytes,
                                                       driver.CUstream(stream), kparams.address),
                      "cuLaunchCooperativeKernel" + what)
                continue
            if plan.kind == "programmatic":
                check(driver.cuLaunchKernelEx(launch_config(driver, fn, plan, stream), fn, kparams.address, 0),
                      "cuLaunchKernelEx" + what)
                continue
            check(
                driver.cuLaunchKernel(
                    fn,
                    *plan.grid,
                    *plan.block,
                    plan.shared_bytes,
                    driver.CUstream(stream),
                    kparams.address,
                    0,
                ),
                f"cuLaunchKernel({plan.kernel}, grid={plan.grid}, block={plan.block}, shared={plan.shared_bytes})",
            )

    # -- loading
    @classmethod
    def _init_driver(cls):
        with cls._init_lock:
            if not cls._initialised:
                check(_driver().cuInit(0), "cuInit")
                cls._initialised = True

    def _make_current(self, ctx):
        driver = _driver()
        cur = check(driver.cuCtxGetCurrent(), "cuCtxGetCurrent")
        if cur is None or int(cur) != int(ctx):
            check(driver.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")

    def _load(self, device: int) -> _Loaded:
        with self._lock:
            hit = self._loaded.get(device)
            if hit is not None:
                return hit
            self._init_driver()
            driver = _driver()
            dev = check(driver.cuDeviceGet(device), f"cuDeviceGet({device})")
            # the primary context is the one the CUDA runtime, hence torch, works in
            ctx = check(driver.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
            self._make_current(ctx)
            mod = check(driver.cuModuleLoadData(self.cubin), "cuModuleLoadData")
            optin = check(
                driver.cuDeviceGetAttribute(
                    driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev
                ),
                "cuDeviceGetAttribute(MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)",
            )
            functions = []
            for k in self.module.kernels:
                fn = check(driver.cuModuleGetFunction(mod, k.name.encode()), f"cuModuleGetFunction({k.name})")
                if k.shared_bytes > int(optin):
                    raise CudaLaunchError(
                        f"kernel {k.name} needs {k.shared_bytes} bytes of shared memory per block; "
                        f"device {device} allows at most {int(optin)}"
                    )
                if k.needs_shared_opt_in:
                    check(
                        driver.cuFuncSetAttribute(
                            fn,
                            driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                            k.shared_bytes,
                        ),
                        f"cuFuncSetAttribute({k.name}, MAX_DYNAMIC_SHARED_SIZE_BYTES={k.shared_bytes})",
                    )
                functions.append(fn)
            loaded = _Loaded(ctx, mod, functions)
            self._loaded[device] = loaded
            return loaded
