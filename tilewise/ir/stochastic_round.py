"""Stochastic rounding of float32 values into float16 / bfloat16 (`T.cast(x, dtype, round="rs",
rbits=r)`), as PTX cvt.rs defines it: the result rounds away from zero when adding the random
bits to the bits the conversion discards carries out of them, toward zero otherwise.

The random bits are those TileLang's scalar cast hands the instruction (tl::__tl_cvt_f32x1_to_
{f16,bf16}x1_rs_sat puts the value in the low half): the low 13 bits of r for float16 (13
mantissa bits are discarded), the low 16 for bfloat16. Results below the normal range discard
more bits; the top 13 / 16 of them take part (the PTX ISA does not spell that case out). With
.satfinite, which TileLang requires: values beyond the largest finite one (infinities too) give
that value with the sign; NaN converts as a plain cast does. The emulator runs this; the CPU and
CUDA headers (tw_cpu.h, tw_cuda.h: `stochastic_round`) compute the same with the same steps."""
from __future__ import annotations

import numpy as np

from . import dtype as _dt
from . import scalar_ops

# destination -> (mantissa bits, random bits, smallest normal exponent, largest finite value)
FORMATS = {
    "float16": (10, 13, -14, 65504.0),
    "bfloat16": (7, 16, -126, float(np.float32(3.3895313892515355e38))),
}


def stochastic_round(x, rbits, dst: _dt.DataType) -> np.ndarray:
    """float32 `x` rounded into `dst` with the random bits `rbits` (uint32), element-wise."""
    m, nb, emin, top = FORMATS[dst.name]
    x = np.asarray(x, np.float32)
    r = np.asarray(rbits).astype(np.uint64) & np.uint64((1 << nb) - 1)
    a = np.abs(x).astype(np.float64)
    biased = (np.abs(x).view(np.uint32) >> np.uint32(23)).astype(np.int64)
    e = np.where(biased == 0, -127, biased - 127)
    qe = np.maximum(e, emin) - m  # the result's unit in the last place is 2^qe
    with np.errstate(invalid="ignore", over="ignore"):
        s = np.ldexp(a, -qe)
        k = np.floor(s)
        kept = np.floor(np.ldexp(s - k, nb))  # the top nb discarded bits
        k = k + (kept + r.astype(np.float64) >= float(1 << nb))
        out = np.minimum(np.ldexp(k, qe), top)
    out = np.where(a >= top, top, out)
    out = np.where(np.signbit(x), -out, out).astype(np.float32)
    out = np.where(np.isnan(x), x, out)
    return scalar_ops.cast(_dt.float32, dst)(out)
