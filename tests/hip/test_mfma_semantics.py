"""The emulator's MFMA (emulator/mfma.py) against numpy matmul: operands laid out over the 64 lanes
by hand in this file, from the CDNA3 ISA's description of each instruction."""
import ml_dtypes
import numpy as np
import pytest

from tilewise.emulator.mfma import execute


def _wave_16(A, B, C, kpack):
    """16x16xK: lane l holds A row l % 16, k kpack*(l // 16) + v; B column l % 16, same k; D column
    l % 16, rows 4 * (l // 16) + v."""
    a = np.empty((64, kpack), A.dtype)
    b = np.empty((64, kpack), B.dtype)
    c = np.empty((64, 4), C.dtype)
    for lane in range(64):
        g, i = divmod(lane, 16)
        for v in range(kpack):
            a[lane, v] = A[i, kpack * g + v]
            b[lane, v] = B[kpack * g + v, i]
        for v in range(4):
            c[lane, v] = C[4 * g + v, i]
    return a, b, c


def _unwave_16(d):
    D = np.empty((16, 16), d.dtype)
    for lane in range(64):
        g, j = divmod(lane, 16)
        for v in range(4):
            D[4 * g + v, j] = d[lane, v]
    return D


def _wave_32(A, B, C, kpack=4):
    """32x32x8: lanes 0-31 hold k 0-3 of A row l, lanes 32-63 k 4-7 (B likewise, by column); D: lane
    l holds column l % 32, register v row 8 * (v // 4) + 4 * (l // 32) + v % 4. 32x32x16 (fp8):
    the same with 8 k per lane."""
    a = np.empty((64, kpack), A.dtype)
    b = np.empty((64, kpack), B.dtype)
    c = np.empty((64, 16), C.dtype)
    for lane in range(64):
        h, i = divmod(lane, 32)
        for v in range(kpack):
            a[lane, v] = A[i, kpack * h + v]
            b[lane, v] = B[kpack * h + v, i]
        for v in range(16):
            c[lane, v] = C[8 * (v // 4) + 4 * h + v % 4, i]
    return a, b, c


def _unwave_32(d):
    D = np.empty((32, 32), d.dtype)
    for lane in range(64):
        h, j = divmod(lane, 32)
        for v in range(16):
            D[8 * (v // 4) + 4 * h + v % 4, j] = d[lane, v]
    return D


@pytest.mark.parametrize("name,dt", [("mfma_f32_16x16x16f16", np.float16),
                                     ("mfma_f32_16x16x16bf16_1k", ml_dtypes.bfloat16)])
def test_16x16x16(rng, name, dt):
    A = rng.standard_normal((16, 16)).astype(dt)
    B = rng.standard_normal((16, 16)).astype(dt)
    C = rng.standard_normal((16, 16)).astype(np.float32)
    a, b, c = _wave_16(A, B, C, 4)
    d = execute(name, a[None], b[None], c[None])[0]
    assert d.dtype == np.float32
    ref = A.astype(np.float64) @ B.astype(np.float64) + C
    np.testing.assert_allclose(_unwave_16(d), ref, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("name,dt", [("mfma_f32_32x32x8f16", np.float16),
                                     ("mfma_f32_32x32x8bf16_1k", ml_dtypes.bfloat16)])
def test_32x32x8(rng, name, dt):
    A = rng.standard_normal((2, 32, 8)).astype(dt)  # two wavefronts at once
    B = rng.standard_normal((2, 8, 32)).astype(dt)
    C = rng.standard_normal((2, 32, 32)).astype(np.float32)
    waves = [_wave_32(A[w], B[w], C[w]) for w in range(2)]
    d = execute(name, *(np.stack([x[i] for x in waves]) for i in range(3)))
    for w in range(2):
        ref = A[w].astype(np.float64) @ B[w].astype(np.float64) + C[w]
        np.testing.assert_allclose(_unwave_32(d[w]), ref, rtol=1e-6, atol=1e-5)


def test_int8_wraps_like_int32(rng):
    A = rng.integers(-128, 128, (16, 32)).astype(np.int8)
    B = rng.integers(-128, 128, (32, 16)).astype(np.int8)
    C = rng.integers(-2**31, 2**31, (16, 16), dtype=np.int64).astype(np.int32)
    C[0, 0] = 2**31 - 1  # the sum overflows: the 32-bit accumulator wraps
    A[0, :], B[:, 0] = 127, 127
    a, b, c = _wave_16(A, B, C, 8)
    d = _unwave_16(execute("mfma_i32_16x16x32_i8", a[None], b[None], c[None])[0])
    ref = (A.astype(np.int64) @ B.astype(np.int64) + C).astype(np.uint32).view(np.int32)
    np.testing.assert_array_equal(d, ref)
    assert d[0, 0] < 0


@pytest.mark.parametrize("name,dt", [("mfma_f32_16x16x32_fp8_fp8", ml_dtypes.float8_e4m3fnuz),
                                     ("mfma_f32_16x16x32_bf8_bf8", ml_dtypes.float8_e5m2fnuz)])
def test_fp8_reads_the_fnuz_encodings(rng, name, dt):
    A = rng.standard_normal((16, 32)).astype(dt)
    B = rng.standard_normal((32, 16)).astype(dt)
    C = np.zeros((16, 16), np.float32)
    a, b, c = _wave_16(A, B, C, 8)
    d = _unwave_16(execute(name, a[None], b[None], c[None])[0])
    ref = A.astype(np.float64) @ B.astype(np.float64)
    np.testing.assert_allclose(d, ref, rtol=1e-6, atol=1e-6)
    # the same bytes read as the OCP format (bias one less) would be twice as large per factor
    ocp = {ml_dtypes.float8_e4m3fnuz: ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2fnuz: ml_dtypes.float8_e5m2}[dt]
    Ao = A.view(np.uint8).view(ocp).astype(np.float64)
    assert np.allclose(Ao[np.isfinite(Ao)], 2 * A.astype(np.float64)[np.isfinite(Ao)])


E4, E5 = ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2fnuz


@pytest.mark.parametrize("name,at,bt", [
    ("mfma_f32_16x16x32_fp8_bf8", E4, E5), ("mfma_f32_16x16x32_bf8_fp8", E5, E4),
    ("mfma_f32_32x32x16_fp8_fp8", E4, E4), ("mfma_f32_32x32x16_fp8_bf8", E4, E5),
    ("mfma_f32_32x32x16_bf8_fp8", E5, E4), ("mfma_f32_32x32x16_bf8_bf8", E5, E5)])
def test_fp8_mixed_and_32x32x16(rng, name, at, bt):
    """The first of fp8 / bf8 in the name is A's format, the second B's: each operand's bytes are
    decoded as its own fnuz type (exact products, one float32 rounding of the sum)."""
    m, k = (16, 32) if "16x16" in name else (32, 16)
    A = (rng.standard_normal((m, k)) * 4).astype(at)
    B = (rng.standard_normal((k, m)) * 4).astype(bt)
    C = rng.standard_normal((m, m)).astype(np.float32)
    if m == 16:
        a, b, c = _wave_16(A, B, C, 8)
        d = _unwave_16(execute(name, a[None], b[None], c[None])[0])
    else:
        a, b, c = _wave_32(A, B, C, 8)
        d = _unwave_32(execute(name, a[None], b[None], c[None])[0])
    ref = A.astype(np.float64) @ B.astype(np.float64) + C
    np.testing.assert_allclose(d, ref, rtol=1e-6, atol=1e-5)
    # A read as B's format (or the other way round) would give another answer
    swapped = A.view(np.uint8).view(bt).astype(np.float64) @ B.view(np.uint8).view(at).astype(np.float64) + C
    if at is not bt:
        assert not np.allclose(d, swapped, rtol=1e-3, equal_nan=True)
