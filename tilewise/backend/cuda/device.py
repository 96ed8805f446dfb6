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
