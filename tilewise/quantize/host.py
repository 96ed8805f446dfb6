"""Host-side helpers of TileLang's tilelang.quantize (packing weights, test data), and the
fast-decoding intrinsic groups tilewise cannot provide."""
from __future__ import annotations


def general_compress(lowprecision_weight, source_bits: int = 4, storage_dtype=None):
    """Pack the last dimension's values, `8 // source_bits` per byte, the first in the lowest
    bits; a torch tensor or numpy array in, the same kind out (`storage_dtype`, default int8)."""
    import numpy as np

    is_torch = type(lowprecision_weight).__module__.startswith("torch")
    w = lowprecision_weight.detach().cpu().numpy() if is_torch else np.asarray(lowprecision_weight)
    per_byte = 8 // source_bits
    if w.shape[-1] % per_byte:
        raise ValueError(f"the last dimension ({w.shape[-1]}) must be a multiple of {per_byte} to pack "
                         f"{source_bits}-bit values into bytes")
    fields = (w.astype(np.int64) & ((1 << source_bits) - 1)).reshape(*w.shape[:-1], -1, per_byte)
    packed = np.zeros(fields.shape[:-1], dtype=np.int64)
    for k in range(per_byte):
        packed |= fields[..., k] << (source_bits * k)
    packed = packed.astype(np.uint8).view(np.int8)
    if is_torch:
        import torch

        out = torch.from_numpy(packed.copy())
        return out.to(storage_dtype if storage_dtype is not None else torch.int8)
    return packed.astype(storage_dtype if storage_dtype is not None else np.int8)


def gen_quant4(k: int, n: int, groupsize: int = -1):
    """Random float16 weights (k x n) quantised to 4 bits per `groupsize` rows (all k by
    default): (original weights, a torch.nn.Linear holding the dequantised weights, the scales
    (groups x n), the signed 4-bit values)."""
    import torch

    levels = 16
    w = torch.randn((k, n), dtype=torch.half)
    original = w.clone()
    g = k if groupsize == -1 else groupsize
    grouped = w.reshape(k // g, g, n).float()
    scale = grouped.abs().amax(dim=1, keepdim=True) * (2 / levels)
    q = torch.clamp(torch.round(grouped / scale).int() + levels // 2, 0, levels)
    ref = ((q - levels // 2).float() * scale).half().reshape(k, n)
    linear = torch.nn.Linear(k, n, bias=False)
    linear.weight.data = ref.t()
    return original, linear, scale.reshape(-1, n).half(), (q - levels // 2).reshape(k, n)


def _no_fast_decoding(what: str):
    raise NotImplementedError(
        f"{what}: TileLang's fast decoding calls CUDA inline-assembly sources through T.import_source and "
        "T.call_extern, which tilewise does not provide (the emulator cannot run inline assembly); use the plain path "
        "(fast_decoding=False / "
        "fast_dequant=False in TileLang's examples), which the _tir_* converters of tilewise.quantize serve")


def get_lop3_intrin_group(*args, **kwargs):
    _no_fast_decoding("get_lop3_intrin_group")


def get_mxfp_intrin_group(*args, **kwargs):
    _no_fast_decoding("get_mxfp_intrin_group")


def interleave_weight(*args, **kwargs):
    _no_fast_decoding("interleave_weight (the weight layout of the lop3 decoders)")
