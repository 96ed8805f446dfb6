"""Whether an AMD GPU can be used here (hip-python loads the HIP runtime and it reports a device)."""
from __future__ import annotations


def amd_gpu_present() -> bool:
    try:
        from hip import hip
    except ImportError:
        return False
    try:
        err, n = hip.hipGetDeviceCount()
        return int(err) == 0 and int(n) > 0
    except Exception:  # noqa: BLE001 - any runtime failure means no usable GPU
        return False
