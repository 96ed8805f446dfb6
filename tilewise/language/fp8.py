"""TileLang's `tilelang.language.fp8` helpers: which 8-bit float types this platform's torch
calls e4m3 and e5m2."""
from __future__ import annotations

from typing import Literal


def determine_fp8_type(fp8_format: Literal["e4m3", "e5m2"] = "e4m3"):
    """The T dtype for an fp8 format on this platform: NVIDIA (and a CPU torch) use the OCP
    types float8_e4m3fn / float8_e5m2; a ROCm torch uses the FNUZ variants, except on gfx950,
    which has the OCP types."""
    import torch

    from . import float8_e4m3fn, float8_e4m3fnuz, float8_e5m2, float8_e5m2fnuz

    if fp8_format not in ("e4m3", "e5m2"):
        raise ValueError(f"determine_fp8_type: unsupported fp8 format {fp8_format!r} (e4m3 or e5m2)")
    ocp = torch.version.hip is None
    if not ocp and torch.cuda.is_available():
        ocp = getattr(torch.cuda.get_device_properties(0), "gcnArchName", "").startswith("gfx950")
    if fp8_format == "e4m3":
        return float8_e4m3fn if ocp else float8_e4m3fnuz
    return float8_e5m2 if ocp else float8_e5m2fnuz


def determine_torch_fp8_type(fp8_format: Literal["e4m3", "e5m2"] = "e4m3"):
    """The torch dtype of determine_fp8_type's answer."""
    from ..ir.dtype import as_dtype

    return as_dtype(determine_fp8_type(fp8_format)).torch
