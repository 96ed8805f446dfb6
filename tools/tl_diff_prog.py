"""The record of one tools/tl_differential.py program and the adversarial inputs programs share.

Kept apart from the driver so that the program lists (tl_diff_tiles.py, tl_diff_scalars.py)
can import it: the driver runs as a script, and TileLang's Python imports these files too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

N = 256  # threads of the elementwise kernels: one element each

# ---------------------------------------------------------------------------------------------
# Inputs

F_SPECIAL = [0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.5, 1.0, -1.0, 0.1, -0.1, 2.0, -7.0, 100.0,
             float("nan"), -float("nan"), float("inf"), -float("inf"),
             1e-45, -1e-45, 1e-40, -1e-40, 1.1754944e-38, -1.1754944e-38,
             3.4028235e38, -3.4028235e38, 1e10, -1e10, 2147483520.0, 2147483648.0, -2147483648.0,
             -2147483904.0, 4294967296.0, 65504.0, 65520.0, -65520.0, 70000.0, 448.0, 464.0, 57344.0,
             61440.0, 1e-8, 6e-8, 88.72, 89.0, -87.3, -104.0, 127.5, 128.0, -128.5, -129.0, 255.5, 256.0,
             0.33333334, 1.0000001, 0.99999994, 8388607.5, 8388608.5, 16777217.0, 1e-20, -3.0, 1e30]
# 16 values whose 256 ordered pairs are the inputs of binary float ops
F_PAIR = [0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 0.5, 3.0, -7.0, float("nan"), float("inf"), -float("inf"),
          1e-40, 3.4e38, -1e10, 0.1]
# float64: subnormals, products and quotients that underflow or overflow
F64_PAIR = [0.0, -0.0, 1.0, -1.0, 3.0, 0.1, -7.0, float("nan"), float("inf"), -float("inf"), 5e-324, -1e-310,
            1.7976931348623157e308, 1e300, 1e-300, -2.5]
I_PAIR = {
    "int8": [0, 1, -1, 2, -2, 3, -3, 7, -7, 8, -8, 100, 127, -127, -128, 64],
    "int32": [0, 1, -1, 2, -2, 3, -3, 7, -7, 31, 32, 33, -32, 2**31 - 1, -2**31, 100],
    "int64": [0, 1, -1, 2, -2, 3, -3, 7, -7, 63, 64, 65, -64, 2**63 - 1, -2**63, 2**40],
    "uint32": [0, 1, 2, 3, 7, 31, 32, 33, 100, 2**31, 2**32 - 1, 2**31 - 1, 5, 6, 9, 10],
    "int16": [0, 1, -1, 2, -2, 3, -3, 7, -7, 15, 16, 17, -16, 2**15 - 1, -2**15, 300],
    "uint8": [0, 1, 2, 3, 7, 8, 9, 100, 127, 128, 129, 200, 254, 255, 5, 6],
    "uint64": [0, 1, 2, 3, 7, 63, 64, 65, 100, 2**63, 2**64 - 1, 2**63 - 1, 5, 6, 9, 2**40],
}


def float_inputs(dtype: str, n: int = N, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        special = np.array(F_SPECIAL, dtype=np.float64)
        rest = np.concatenate([
            rng.standard_normal(n // 4) * 4,
            np.round(rng.standard_normal(n // 8) * 8) + 0.5,  # halfway values
            rng.standard_normal(n // 8) * 1e-39,  # subnormals
            np.exp(rng.uniform(-60, 60, n)),
        ])
        vals = np.concatenate([special, rest])[:n]
        rng.shuffle(vals[len(special):])
        return vals.astype(dtype)


def pair_inputs(dtype: str):
    vals = F64_PAIR if dtype == "float64" else F_PAIR if dtype.startswith("float") else I_PAIR[dtype]
    a = np.array([x for x in vals for _ in vals], dtype=np.float64 if dtype.startswith("float") else object)
    b = np.array([y for _ in vals for y in vals], dtype=a.dtype)
    return a.astype(dtype), b.astype(dtype)


@dataclass
class Prog:
    name: str
    source: str  # the body of a `def make():` returning the prim_func, TileLang syntax
    inputs: callable  # () -> list of input arrays
    outputs: list  # (shape, dtype) of each output parameter (after the inputs)
    ulps: int = 0  # > 0: fast-math, compare within this many ulps
    ub: str = ""  # why TileLang's result is undefined behaviour (mismatch is a note)
    tags: list = field(default_factory=list)
    grid: tuple = (1,)  # TileLang's kernel source does not say its grid (the host code does): give it
    out_init: callable = None  # () -> initial outputs (in-out parameters); zeros when None
    atol: float = 0.0  # > 0: compare within this absolute tolerance (accumulation order, said why)
    why: str = ""  # why a tolerance is legitimate
    # a float sum over a tile: on the CPU (no threads) it is added in the CPU's own order (SIMD
    # lanes, sequential rows), not in the order of TileLang's thread layout, so a CPU difference
    # (last bits, or inf against NaN after an overflow) is a note; CUDA's order is TileLang's
    cpu_order: bool = False
    skip: str = ""  # why TileLang's code cannot be the reference here (printed as SKIP)
    known: str = ""  # a difference found and deliberately left (printed as KNOWN, a note)


# ---------------------------------------------------------------------------------------------
# Element-wise programs: one thread an element

def unary(name, expr, din="float32", dout=None, **kw):
    dout = dout or din
    src = f"""
@T.prim_func
def main(A: T.Tensor(({N},), "{din}"), B: T.Tensor(({N},), "{dout}")):
    with T.Kernel(1, threads={N}) as bx:
        for i in T.Parallel({N}):
            B[i] = {expr.format(a="A[i]")}
"""
    if din.startswith("float"):
        inputs = lambda: [float_inputs(din)]  # noqa: E731
    else:
        inputs = lambda: [np.resize(np.array(I_PAIR[din], dtype=din), N)]  # noqa: E731
    return Prog(name, src, inputs, [((N,), dout)], **kw)


def binary(name, expr, din="float32", dout=None, **kw):
    dout = dout or din
    src = f"""
@T.prim_func
def main(A: T.Tensor(({N},), "{din}"), B: T.Tensor(({N},), "{din}"), C: T.Tensor(({N},), "{dout}")):
    with T.Kernel(1, threads={N}) as bx:
        for i in T.Parallel({N}):
            C[i] = {expr.format(a="A[i]", b="B[i]")}
"""
    return Prog(name, src, lambda: list(pair_inputs(din)), [((N,), dout)], **kw)
