"""MFMA semantics for the emulator: AMD's matrix fused multiply-add over a 64-lane wavefront.

Written from the CDNA3 ISA's description of which lane and which register (item) holds which
matrix element, independently of the lowering's layouts (layout/mfma_layouts.py); the tests
check the two against each other. For the single-block gfx942 instructions tilewise issues:

- the wavefront's 64 lanes form 64 / M groups; lane L is lane L % M of group L // M;
- A (M x K): the lane's items are consecutive K elements of row L % M, group g holding
  K elements [g * K/G, (g + 1) * K/G) for G = 64 / M groups;
- B (K x N): likewise, column L % N, K elements [g * K/G, ...) for group g = L // N;
- D (M x N): lane L holds column L % N. Its items count rows in runs of four: item i is row
  (i % 4) + 4 * g + 4 * G * (i // 4) for group g = L // N; so the 16x16 shapes hold rows
  4g .. 4g+3 and the 32x32 shape holds rows 4g + {0..3, 8..11, 16..19, 24..27}.

The arithmetic: products of the inputs are exact in float64 (float16, bfloat16 and fp8 have at
most 11 significant bits), summed with C and rounded once to float32; the ISA does not specify
the order of the hardware's internal sums, so tests compare to a tolerance. Integer MFMA sums in
int64 and wraps to int32 like the 32-bit accumulator."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DivergenceError, UnsupportedError, where

WAVEFRONT = 64


@dataclass(frozen=True)
class MfmaSpec:
    M: int
    N: int
    K: int
    a_type: str  # how the instruction reads the bits of A and B
    b_type: str
    acc: str  # "float32" or "int32"

    @property
    def groups(self) -> int:
        return WAVEFRONT // self.M

    @property
    def items_ab(self) -> int:
        return self.K // self.groups

    @property
    def items_d(self) -> int:
        return self.M * self.N // WAVEFRONT


# keyed by the wrapper names of tw_mfma.h (the thread-IR call names)
SPECS: dict[str, MfmaSpec] = {
    "mfma_f32_16x16x16f16": MfmaSpec(16, 16, 16, "float16", "float16", "float32"),
    "mfma_f32_16x16x16bf16_1k": MfmaSpec(16, 16, 16, "bfloat16", "bfloat16", "float32"),
    "mfma_f32_32x32x8f16": MfmaSpec(32, 32, 8, "float16", "float16", "float32"),
    "mfma_f32_32x32x8bf16_1k": MfmaSpec(32, 32, 8, "bfloat16", "bfloat16", "float32"),
    "mfma_i32_16x16x32_i8": MfmaSpec(16, 16, 32, "int8", "int8", "int32"),
    # gfx942's fp8 MFMAs: "fp8" reads a byte as e4m3fnuz, "bf8" as e5m2fnuz, the first for src A,
    # the second for src B; 8 bytes (one 64-bit register pair) of each per lane
    "mfma_f32_16x16x32_fp8_fp8": MfmaSpec(16, 16, 32, "float8_e4m3fnuz", "float8_e4m3fnuz", "float32"),
    "mfma_f32_16x16x32_fp8_bf8": MfmaSpec(16, 16, 32, "float8_e4m3fnuz", "float8_e5m2fnuz", "float32"),
    "mfma_f32_16x16x32_bf8_fp8": MfmaSpec(16, 16, 32, "float8_e5m2fnuz", "float8_e4m3fnuz", "float32"),
    "mfma_f32_16x16x32_bf8_bf8": MfmaSpec(16, 16, 32, "float8_e5m2fnuz", "float8_e5m2fnuz", "float32"),
    "mfma_f32_32x32x16_fp8_fp8": MfmaSpec(32, 32, 16, "float8_e4m3fnuz", "float8_e4m3fnuz", "float32"),
    "mfma_f32_32x32x16_fp8_bf8": MfmaSpec(32, 32, 16, "float8_e4m3fnuz", "float8_e5m2fnuz", "float32"),
    "mfma_f32_32x32x16_bf8_fp8": MfmaSpec(32, 32, 16, "float8_e5m2fnuz", "float8_e4m3fnuz", "float32"),
    "mfma_f32_32x32x16_bf8_bf8": MfmaSpec(32, 32, 16, "float8_e5m2fnuz", "float8_e5m2fnuz", "float32"),
}


def a_element(s: MfmaSpec, lane: int, item: int) -> tuple[int, int]:
    """(row, k) of A that `lane`'s item `item` holds."""
    return lane % s.M, (lane // s.M) * s.items_ab + item


def b_element(s: MfmaSpec, lane: int, item: int) -> tuple[int, int]:
    """(k, column) of B that `lane`'s item `item` holds."""
    return (lane // s.N) * s.items_ab + item, lane % s.N


def d_element(s: MfmaSpec, lane: int, item: int) -> tuple[int, int]:
    """(row, column) of C / D that `lane`'s item `item` holds."""
    g, G = lane // s.N, WAVEFRONT // s.N
    return item % 4 + 4 * g + 4 * G * (item // 4), lane % s.N


def _tables(s: MfmaSpec):
    """Per operand: for every (lane, item) the flat matrix position it holds."""
    a = np.array([[r * s.K + k for r, k in (a_element(s, ln, i) for i in range(s.items_ab))]
                  for ln in range(WAVEFRONT)])
    b = np.array([[k * s.N + c for k, c in (b_element(s, ln, i) for i in range(s.items_ab))]
                  for ln in range(WAVEFRONT)])
    d = np.array([[r * s.N + c for r, c in (d_element(s, ln, i) for i in range(s.items_d))]
                  for ln in range(WAVEFRONT)])
    return a, b, d


def numpy_type(name: str) -> np.dtype:
    import ml_dtypes

    special = {"bfloat16": ml_dtypes.bfloat16, "float8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
               "float8_e5m2fnuz": ml_dtypes.float8_e5m2fnuz}
    return np.dtype(special.get(name, name))


def execute(name: str, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """D for wavefronts [W, 64, items] of A, B (in the instruction's element types) and C (float32 /
    int32): returns D as [W, 64, items_d] in the accumulator type."""
    s = SPECS[name]
    at, bt, dt = _tables(s)
    W = a.shape[0]
    if a.shape[1:] != (WAVEFRONT, s.items_ab) or b.shape[1:] != (WAVEFRONT, s.items_ab) or \
            c.shape[1:] != (WAVEFRONT, s.items_d):
        raise ValueError(f"{name}: operands must be [W, 64, {s.items_ab}] (A, B) and [W, 64, {s.items_d}] (C)")
    work = np.int64 if s.acc == "int32" else np.float64
    A = np.empty((W, s.M * s.K), work)
    B = np.empty((W, s.K * s.N), work)
    C = np.empty((W, s.M * s.N), work)
    A[:, at] = a.astype(np.float64).astype(work) if work is np.float64 else a.astype(work)
    B[:, bt] = b.astype(np.float64).astype(work) if work is np.float64 else b.astype(work)
    C[:, dt] = c.astype(work)
    D = np.matmul(A.reshape(W, s.M, s.K), B.reshape(W, s.K, s.N)) + C.reshape(W, s.M, s.N)
    out = D.reshape(W, -1)[:, dt]
    if s.acc == "int32":
        return out.astype(np.int64).astype(np.uint32).view(np.int32)  # wraps like the hardware
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------- thread IR
def _handler(name: str):
    """The emulator's implementation of the call `tw::<name>(a, b, c)`: a, b, c are addresses of
    register arrays (local buffers) holding the lane's items; every lane of each wavefront of the
    block executes it together, and c is updated in place."""
    s = SPECS[name]
    a_np, b_np = numpy_type(s.a_type), numpy_type(s.b_type)
    c_np = np.dtype(np.int32 if s.acc == "int32" else np.float32)
    a_bytes, b_bytes, c_bytes = s.items_ab * a_np.itemsize, s.items_ab * b_np.itemsize, s.items_d * 4

    def compile_(comp, e):
        from .calls import _addr, _lanes, _read_regs, write_bytes  # calls.py dispatches here
        from .memory import check_byte_range

        A = _addr(comp, e.args[0], f"{name} A operand ({s.items_ab} x {s.a_type})")
        B = _addr(comp, e.args[1], f"{name} B operand ({s.items_ab} x {s.b_type})")
        C = _addr(comp, e.args[2], f"{name} accumulator ({s.items_d} x {s.acc})")
        for acc in (A, B, C):
            if acc.kind != "local":
                raise UnsupportedError(
                    f"{name}: MFMA operands live in registers; {acc.buf.name} is {acc.buf.scope} at {where(comp.span)}")
        span = comp.span

        def run(st):
            if st.T % WAVEFRONT:
                raise UnsupportedError(f"{name} needs whole 64-lane wavefronts; the block has {st.T} threads "
                                       f"at {where(span)}")
            if st.mask is not None:
                waves = st.mask.reshape(-1, WAVEFRONT)
                part = waves.any(axis=1) & ~waves.all(axis=1)
                if part.any():
                    w = int(np.flatnonzero(part)[0])
                    raise DivergenceError(f"{name} needs all 64 lanes of a wavefront, but only some lanes of "
                                          f"wavefront {w % (st.T // WAVEFRONT)} execute it at {where(span)}")
            lanes = _lanes(st)
            if lanes.size == 0:
                return
            act = None if st.mask is None else lanes
            offs = []
            for acc, nbytes in ((A, a_bytes), (B, b_bytes), (C, c_bytes)):
                off = acc.byte_offset(st)
                check_byte_range(st, acc.site, off, nbytes, act, acc.shape_strides(st)[0])
                offs.append(off)
            av = _read_regs(st, A, offs[0], a_bytes, a_np).reshape(-1, WAVEFRONT, s.items_ab)
            bv = _read_regs(st, B, offs[1], b_bytes, b_np).reshape(-1, WAVEFRONT, s.items_ab)
            cv = _read_regs(st, C, offs[2], c_bytes, c_np).reshape(-1, WAVEFRONT, s.items_d)
            d = execute(name, av, bv, cv).reshape(st.L, -1)
            out = d.view(np.uint8)
            write_bytes(st, C, offs[2], out if lanes is st.lanes else out[lanes], lanes)

        return run

    return compile_


HANDLERS = {name: _handler(name) for name in SPECS}
