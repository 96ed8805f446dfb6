"""T.im2col (and its older name T.c2d_im2col): one [block_M, block_K] tile of the im2col matrix
of an NHWC image, the A operand of a convolution written as a GEMM.

Row m = nhw_step * block_M + i of the matrix is output pixel m (n, oh, ow, row-major over
N x OH x OW); column k = c_step * block_K + j is the filter tap (kh, kw, c), row-major over
kernel x kernel x C — the layout of a (KH, KW, C, F) filter flattened to (KH*KW*C, F). Taps in
the padding read 0. TileLang lowers the operator to a parallel loop over the tile; so does
tilewise (the loop a user would write with T.Parallel), so it takes the layouts, vector widths
and bounds checks of any such loop."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Var, as_expr, logical_and
from ..ir.stmt import BufferStore, For
from ..tileop.region import as_region
from .loops import py_scalar
from .math import if_then_else


def _static_int(x, what: str) -> int:
    x = py_scalar(x)
    if not isinstance(x, int) or isinstance(x, bool) or x < 0:
        raise CompileError(f"T.im2col: {what} must be a non-negative Python int, got {x!r}")
    return x


def im2col(img, col, nhw_step, c_step, kernel: int, stride: int, dilation: int, pad: int,
           eviction_policy=None, annotations=None) -> None:
    """col[i, j] = img[n, oh * stride + kh * dilation - pad, ow * stride + kw * dilation - pad, c]
    (0 outside the image) for the tile (nhw_step, c_step) of the im2col matrix; see the module."""
    require_kernel("T.im2col")
    if annotations:
        raise CompileError(f"T.im2col: annotations are not supported, got {sorted(annotations)}")
    if not isinstance(img, Buffer) or len(img.shape) != 4:
        raise CompileError(f"T.im2col: the image must be a 4-D (N, H, W, C) tensor, got {img!r}")
    dst = as_region(col, "T.im2col", allow_corner=False)
    if not isinstance(dst, BufferRegion) or len(dst.region) < 2:
        raise CompileError(f"T.im2col: the column tile must have at least 2 dimensions, got {col!r}")
    if dst.buffer.dtype != img.dtype:
        raise CompileError(f"T.im2col: the image is {img.dtype} but the column tile {dst.buffer.name} is "
                           f"{dst.buffer.dtype}; they must match")
    kernel, stride = _static_int(kernel, "kernel"), _static_int(stride, "stride")
    dilation, pad = _static_int(dilation, "dilation"), _static_int(pad, "pad")
    if kernel < 1 or stride < 1 or dilation < 1:
        raise CompileError("T.im2col: kernel, stride and dilation must be at least 1")
    if eviction_policy not in (None, "evict_normal"):
        from ..errors import warn_once

        warn_once(("im2col", "eviction_policy"), f"T.im2col: eviction_policy={eviction_policy!r} has no effect in "
                  "tilewise (a cache hint of TileLang's TMA lowering)")

    _, h, w, c = (as_expr(d) for d in img.shape)
    out_h = (h + 2 * pad - (kernel - 1) * dilation - 1) // stride + 1
    out_w = (w + 2 * pad - (kernel - 1) * dilation - 1) // stride + 1
    (*lead, (m0, block_m), (k0, block_k)) = dst.region
    i, j = Var("im2col_i", _dt.int32), Var("im2col_j", _dt.int32)
    m = as_expr(py_scalar(nhw_step)) * block_m + i
    k = as_expr(py_scalar(c_step)) * block_k + j
    ih = (m % (out_h * out_w)) // out_w * stride + k // (kernel * c) * dilation - pad
    iw = m % out_w * stride + (k // c) % kernel * dilation - pad
    inside = logical_and(logical_and(ih >= 0, iw >= 0), logical_and(ih < h, iw < w))
    value = if_then_else(inside, BufferLoad(img, [m // (out_h * out_w), ih, iw, k % c]), 0)
    store = BufferStore(dst.buffer, [as_expr(s) for s, _ in lead] + [as_expr(m0) + i, as_expr(k0) + j], value)
    emit(For(i, 0, block_m, "parallel", For(j, 0, block_k, "parallel", store)))


def c2d_im2col(img, col, nhw_step, c_step, kernel: int, stride: int, dilation: int, pad: int,
               eviction_policy=None, annotations=None) -> None:
    """TileLang's older name of T.im2col."""
    im2col(img, col, nhw_step, c_step, kernel, stride, dilation, pad, eviction_policy, annotations)


__all__ = ["c2d_im2col", "im2col"]
