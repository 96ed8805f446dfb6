"""tilelang.carver.arch.driver: properties of CUDA device `device_id`, as TileLang reads them —
from torch.cuda.get_device_properties (number of SMs, name, shared memory per block) and, for
the attributes torch does not report, from the CUDA driver (cuDeviceGetAttribute). Without a
CUDA device each function raises RuntimeError naming what it could not read (TileLang's
get_num_sms does the same; its attribute queries print and return None instead)."""
from __future__ import annotations

_UNITS = {"bytes": 1, "kb": 1 << 10, "mb": 1 << 20}


def get_cuda_device_properties(device_id: int = 0):
    """torch's properties of the device, or None without CUDA (or without torch)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(device_id)


def _props(device_id: int, what: str):
    prop = get_cuda_device_properties(device_id)
    if prop is None:
        raise RuntimeError(f"{what}: no CUDA device {device_id} to read it from")
    return prop


def get_device_name(device_id: int = 0) -> str | None:
    prop = get_cuda_device_properties(device_id)
    return prop.name if prop is not None else None


def get_num_sms(device_id: int = 0) -> int:
    """The number of streaming multiprocessors of the device."""
    return int(_props(device_id, "get_num_sms").multi_processor_count)


def _scaled(value: int, format: str) -> int:
    if format not in _UNITS:
        raise ValueError(f"format must be one of bytes, kb, mb, got {format!r}")
    return value // _UNITS[format]


def get_shared_memory_per_block(device_id: int = 0, format: str = "bytes") -> int:
    return _scaled(int(_props(device_id, "get_shared_memory_per_block").shared_memory_per_block), format)


# cudaDeviceAttr numbers, which are also the driver's CUdevice_attribute numbers for these
_ATTRS = {1: "MAX_THREADS_PER_BLOCK", 12: "MAX_REGISTERS_PER_BLOCK",
          81: "MAX_SHARED_MEMORY_PER_MULTIPROCESSOR", 108: "MAX_PERSISTING_L2_CACHE_SIZE"}


def get_device_attribute(attr: int, device_id: int = 0) -> int:
    """cudaDeviceGetAttribute(attr, device_id), through the CUDA driver."""
    from ...backend.cuda.device import gpu_present

    if not gpu_present():
        raise RuntimeError(f"get_device_attribute({attr}): no CUDA device {device_id} to read it from")
    from cuda.bindings import driver

    err, value = driver.cuDeviceGetAttribute(driver.CUdevice_attribute(attr), device_id)
    if int(err) != 0:
        raise RuntimeError(f"cuDeviceGetAttribute({_ATTRS.get(attr, attr)}) failed: {err}")
    return int(value)


def get_max_dynamic_shared_size_bytes(device_id: int = 0, format: str = "bytes") -> int:
    return _scaled(get_device_attribute(81, device_id), format)


def get_persisting_l2_cache_max_size(device_id: int = 0) -> int:
    return get_device_attribute(108, device_id)


def get_registers_per_block(device_id: int = 0) -> int:
    return get_device_attribute(12, device_id)


__all__ = ["get_cuda_device_properties", "get_device_attribute", "get_device_name", "get_max_dynamic_shared_size_bytes",
           "get_num_sms", "get_persisting_l2_cache_max_size", "get_registers_per_block",
           "get_shared_memory_per_block"]
