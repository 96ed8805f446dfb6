"""Host-side int4 packing shared by the dequantisation examples (torch, not kernels).

Byte B_packed[n, c] holds weight k = 2c in its low nibble and k = 2c + 1 in its high nibble, as
an unsigned 0..15 with an implicit zero point of 8; w[n, k] = (nibble - 8) * scale[n, k // group]."""
import torch


def quantize_int4(W, group_size):
    """Symmetric per-group int4 quantisation of a weight matrix (N, K): (packed bytes, fp16 scales)."""
    N, K = W.shape
    assert K % 2 == 0, "two int4 weights per byte: K must be even"
    padded_K = (K + group_size - 1) // group_size * group_size
    groups = torch.nn.functional.pad(W.float(), (0, padded_K - K)).reshape(N, -1, group_size)
    scale = (groups.abs().amax(-1) / 7).clamp(min=1e-6).half()
    q = (groups / scale.float()[..., None]).round().clamp(-8, 7).reshape(N, -1)[:, :K] + 8
    q = q.to(torch.uint8)
    return (q[:, 0::2] | (q[:, 1::2] << 4)).contiguous(), scale


def dequantize_int4(B_packed, scale, group_size, dtype=torch.float16):
    """Weights (N, K) of type `dtype` from packed int4 bytes and per-group scales."""
    q = torch.stack([B_packed & 0xF, B_packed >> 4], -1).reshape(B_packed.shape[0], -1)
    w = q.to(dtype) - 8
    return w * scale.to(dtype).repeat_interleave(group_size, 1)[:, : w.shape[1]]
