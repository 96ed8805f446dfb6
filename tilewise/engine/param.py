"""TileLang's tilelang.engine.param.KernelParam: what a supply program (`supply_prog(params)`)
is given for each input of a kernel."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class KernelParam:
    dtype: object  # a torch dtype when torch is installed, else the numpy dtype
    shape: list  # ints, or symbolic dimensions

    @classmethod
    def from_buffer(cls, buffer) -> KernelParam:
        return cls(_array_dtype(buffer.dtype), list(buffer.shape))

    @classmethod
    def from_var(cls, var) -> KernelParam:
        return cls(_array_dtype(var.dtype), [])

    def is_scalar(self) -> bool:
        return len(self.shape) == 0

    def _name(self) -> str:
        return str(self.dtype).replace("torch.", "")

    def is_unsigned(self) -> bool:
        return self._name().startswith("uint")

    def is_float8(self) -> bool:
        return self._name().startswith("float8")

    def is_boolean(self) -> bool:
        return self._name().startswith("bool")


def _array_dtype(dtype):
    """A tilewise DataType as torch's dtype (numpy's without torch)."""
    try:
        return dtype.torch
    except Exception:  # noqa: BLE001 - no torch, or a type torch lacks
        return dtype.numpy
