"""Whether a CUDA GPU can be used here (the driver loads and reports a device)."""
from __future__ import annotations


def gpu_present() -> bool:
    try:
        from cuda.bindings import driver
    except ImportError:
        return False
    try:
        (err,) = driver.cuInit(0)
        if int(err) != 0:
            return False
        err, n = driver.cuDeviceGetCount()
        return int(err) == 0 and n > 0
    except Exception:  # noqa: BLE001 - any driver failure means no usable GPU
        return False


def compute_capability(device: int = 0) -> tuple[int, int] | None:
    """(major, minor) of the GPU, or None without one."""
    if not gpu_present():
        return None
    from cuda.bindings import driver

    try:
        attr = driver.CUdevice_attribute
        err, major = driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device)
        err2, minor = driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device)
        if int(err) != 0 or int(err2) != 0:
            return None
        return int(major), int(minor)
    except Exception:  # noqa: BLE001 - any driver failure: no usable GPU
        return None
