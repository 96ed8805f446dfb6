"""float8_e4m3fnuz / float8_e5m2fnuz (AMD's fnuz float8 formats, ml_dtypes' names) end to end:
tw_cuda.h's integer conversions compiled on the host against ml_dtypes over every code and a
dense sweep of floats, casts and tile copies on the CPU and in the emulator (sm_80, sm_90a; the
PTX interpreter cross-checks), NVRTC compiling them, torch tensors in and out.

Conversions from float behave as tilewise's other float8 types: round to nearest even, saturate
past the largest finite value (infinities included), NaN -> the one NaN 0x80; a zero is +0."""
from __future__ import annotations

import subprocess

import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.backend.cpu.build import compiler

NAMES = ("float8_e4m3fnuz", "float8_e5m2fnuz")
SHORT = {"float8_e4m3fnuz": "e4m3fnuz", "float8_e5m2fnuz": "e5m2fnuz"}


def ml(name):
    return np.dtype(getattr(ml_dtypes, name))


def expected_bits(name: str, x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    top = float(ml_dtypes.finfo(ml(name)).max)
    with np.errstate(invalid="ignore"):
        bits = np.clip(x, -top, top).astype(ml(name)).view(np.uint8)
    return np.where(np.isnan(x), np.uint8(0x80), bits)


def sweep(name: str) -> np.ndarray:
    """Every code's value, the midpoints between neighbours (ties), values just beside them, and
    specials: the rounding cases, saturation and the subnormals."""
    vals = np.arange(256, dtype=np.uint8).view(ml(name)).astype(np.float32)
    fin = np.unique(vals[np.isfinite(vals)])
    mids = ((fin[1:].astype(np.float64) + fin[:-1]) / 2).astype(np.float32)
    near = np.concatenate([np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf))])
    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 1e30, -1e30, 2.0**-126, 1e-45], np.float32)
    rand = (rng.standard_normal(2000) * 2.0 ** rng.integers(-20, 20, 2000)).astype(np.float32)
    return np.concatenate([fin, mids, near, special, rand]).astype(np.float32)


_HOST = r"""
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#define TW_DEV static inline
static inline uint32_t __float_as_uint(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
static inline float __uint_as_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline float __int_as_float(int32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline float __double2float_rz(double d) {
  float f = (float)d;
  if (std::fabs((double)f) > std::fabs(d)) f = std::nextafterf(f, 0.0f);
  return f;
}
static inline float f16_to_f32(uint16_t h) { _Float16 x; std::memcpy(&x, &h, 2); return (float)x; }
namespace cvt {
%BLOCK%
}  // namespace cvt
int main(int argc, char** argv) {
  const bool e4 = argv[1][1] == '4';
  float x;
  while (std::fread(&x, 4, 1, stdin) == 1) {
    uint8_t b = e4 ? cvt::f32_to_e4m3fnuz(x) : cvt::f32_to_e5m2fnuz(x);
    uint8_t b64 = e4 ? cvt::f64_to_e4m3fnuz((double)x) : cvt::f64_to_e5m2fnuz((double)x);
    std::fwrite(&b, 1, 1, stdout);
    std::fwrite(&b64, 1, 1, stdout);
  }
  for (int c = 0; c < 256; ++c) {
    float v = e4 ? cvt::e4m3fnuz_to_f32((uint8_t)c) : cvt::e5m2fnuz_to_f32((uint8_t)c);
    std::fwrite(&v, 4, 1, stdout);
  }
  return 0;
}
"""


@pytest.fixture(scope="module")
def host_cvt(tmp_path_factory):
    from tilewise.backend.cuda.toolkit import INCLUDE_DIR

    text = open(f"{INCLUDE_DIR}/tw_cuda.h").read()
    block = text[text.index("// tw-host-testable-begin") : text.index("// tw-host-testable-end")]
    d = tmp_path_factory.mktemp("fnuz_cvt")
    (d / "cvt.cpp").write_text(_HOST.replace("%BLOCK%", block))
    subprocess.run([compiler(), "-O1", "-std=c++17", "-o", str(d / "cvt"), str(d / "cvt.cpp")], check=True,
                   capture_output=True)
    return d / "cvt"


_HIP_HOST = r"""
#include <cstdint>
#include <cstdio>
#define TW_DEV inline
typedef _Float16 half;
struct bf16 { operator float() const { return 0.0f; } };  // a stand-in: g++ 12 has no __bf16
%BLOCK%
template <typename F> static void run() {
  float x;
  while (std::fread(&x, 4, 1, stdin) == 1) {
    uint8_t b = F(x).bits, b64 = F((double)x).bits;
    std::fwrite(&b, 1, 1, stdout);
    std::fwrite(&b64, 1, 1, stdout);
  }
  for (int c = 0; c < 256; ++c) {
    F f;
    f.bits = (uint8_t)c;
    float v = (float)f;
    std::fwrite(&v, 4, 1, stdout);
  }
}
int main(int argc, char** argv) {
  if (argv[1][1] == '4') run<fp8_e4m3fnuz>(); else run<fp8_e5m2fnuz>();
  return 0;
}
"""


@pytest.fixture(scope="module")
def host_hip_cvt(tmp_path_factory):
    from pathlib import Path

    import tilewise.backend.hip as hip_backend

    text = (Path(hip_backend.__file__).parent / "include" / "tw_hip.h").read_text()
    block = text[text.index("// tw-host-testable-begin") : text.index("// tw-host-testable-end")]
    d = tmp_path_factory.mktemp("fnuz_hip_cvt")
    (d / "cvt.cpp").write_text(_HIP_HOST.replace("%BLOCK%", block))
    subprocess.run([compiler(), "-O1", "-std=c++17", "-o", str(d / "cvt"), str(d / "cvt.cpp")], check=True,
                   capture_output=True)
    return d / "cvt"


@pytest.mark.parametrize("which", ["cuda", "hip"])
@pytest.mark.parametrize("name", NAMES)
def test_header_conversions_match_ml_dtypes(request, which, name):
    """tw_cuda.h's cvt functions and tw_hip.h's fnuz struct (the same integer code) on the host."""
    host_cvt = request.getfixturevalue("host_cvt" if which == "cuda" else "host_hip_cvt")
    x = sweep(name)
    out = subprocess.run([str(host_cvt), SHORT[name]], input=x.tobytes(), capture_output=True, check=True).stdout
    enc = np.frombuffer(out[: 2 * x.size], np.uint8).reshape(-1, 2)
    dec = np.frombuffer(out[2 * x.size :], np.float32)
    want = expected_bits(name, x)
    np.testing.assert_array_equal(enc[:, 0], want)
    np.testing.assert_array_equal(enc[:, 1], want)
    ref = np.arange(256, dtype=np.uint8).view(ml(name)).astype(np.float32)
    np.testing.assert_array_equal(dec, ref)  # NaN (0x80) compares equal to NaN here


def cast_kernel(name: str, n: int):
    @T.prim_func
    def casts(X: T.Tensor((n,), "float32"), Q: T.Tensor((n,), name), Y: T.Tensor((n,), "float32"),
              D: T.Tensor((n,), "float64"), Q64: T.Tensor((n,), name)):
        with T.Kernel(1, threads=128):
            for i in T.Parallel(n):
                Q[i] = T.Cast(name, X[i])
                Q64[i] = T.Cast(name, D[i])
                Y[i] = T.Cast("float32", Q[i]) * 2.0

    return casts


TARGETS = [("cpu", None), ("cuda -arch=sm_80", "emulator"), ("cuda -arch=sm_90a", "emulator")]


@pytest.mark.parametrize("target,backend", TARGETS)
@pytest.mark.parametrize("name", NAMES)
def test_casts_on_every_target(name, target, backend):
    x = sweep(name)[:1024]
    n = x.size
    k = tilewise.compile(cast_kernel(name, n), target=target, execution_backend=backend)
    q, y, q64 = np.zeros(n, ml(name)), np.zeros(n, np.float32), np.zeros(n, ml(name))
    k(x, q, y, x.astype(np.float64), q64)
    want = expected_bits(name, x)
    np.testing.assert_array_equal(q.view(np.uint8), want)
    np.testing.assert_array_equal(q64.view(np.uint8), want)
    np.testing.assert_array_equal(y, want.view(ml(name)).astype(np.float32) * 2)


def tile_copy(name: str):
    @T.prim_func
    def copy(A: T.Tensor((64, 64), name), B: T.Tensor((64, 64), name)):
        with T.Kernel(2, 2, threads=128) as (bx, by):
            S = T.alloc_shared((32, 32), name)
            T.copy(A[by * 32, bx * 32], S)
            T.copy(S, B[by * 32, bx * 32])

    return copy


@pytest.mark.parametrize("name", NAMES)
def test_torch_tensors_through_a_tile_copy(name):
    import torch

    for target, backend in TARGETS[:2]:
        k = tilewise.compile(tile_copy(name), out_idx=[1], target=target, execution_backend=backend)
        a = torch.randint(0, 256, (64, 64), dtype=torch.uint8).view(getattr(torch, name))
        b = k(a)
        assert b.dtype == getattr(torch, name)
        assert torch.equal(b.view(torch.uint8), a.view(torch.uint8))


@pytest.mark.parametrize("name", NAMES)
def test_nvrtc_compiles_fnuz(name, nvrtc_check):
    nvrtc_check(cast_kernel(name, 256))
    nvrtc_check(tile_copy(name))


def fnuz_gemm(a_t: str, b_t: str):
    @T.prim_func
    def mm(A: T.Tensor((32, 32), a_t), B: T.Tensor((32, 32), b_t), C: T.Tensor((32, 32), "float32")):
        with T.Kernel(1, threads=128):
            a = T.alloc_shared((32, 32), a_t)
            b = T.alloc_shared((32, 32), b_t)
            c = T.alloc_fragment((32, 32), "float32")
            T.copy(A, a)
            T.copy(B, b)
            T.clear(c)
            T.gemm(a, b, c, transpose_B=True)
            T.copy(c, C)

    return mm


@pytest.mark.parametrize("target,backend", TARGETS[:2])
def test_fnuz_gemm_off_amd_is_the_fma_fallback(target, backend):
    """T.gemm takes fnuz operands (gfx942's fp8 MFMAs read them, tests/hip/test_gemm_mfma.py); on
    the CPU and on NVIDIA GPUs, which have no instruction for them, it multiplies the decoded values."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((32, 32)).astype(ml_dtypes.float8_e5m2fnuz)
    B = rng.standard_normal((32, 32)).astype(ml_dtypes.float8_e4m3fnuz)
    k = tilewise.compile(fnuz_gemm("float8_e5m2fnuz", "float8_e4m3fnuz"), target=target, execution_backend=backend)
    C = np.zeros((32, 32), np.float32)
    k(A, B, C)
    np.testing.assert_allclose(C, A.astype(np.float64) @ B.astype(np.float64).T, rtol=1e-6, atol=1e-6)


@pytest.mark.usefixtures("clang19")
@pytest.mark.parametrize("name", NAMES)
def test_hip_casts(name):
    """tw_hip.h's fnuz types: clang-19 compiles the casts for gfx942 (no scratch), and the emulator
    gives ml_dtypes' bits for the "hip" target too."""
    x = sweep(name)[:1024]
    n = x.size
    k = tilewise.compile(cast_kernel(name, n), target="hip -arch=gfx942", execution_backend="emulator")
    assert "tw::fp8_" in k.get_kernel_source() and k.resource_usage()["scratch_bytes"] == 0
    q, y, q64 = np.zeros(n, ml(name)), np.zeros(n, np.float32), np.zeros(n, ml(name))
    k(x, q, y, x.astype(np.float64), q64)
    want = expected_bits(name, x)
    np.testing.assert_array_equal(q.view(np.uint8), want)
    np.testing.assert_array_equal(q64.view(np.uint8), want)
    np.testing.assert_array_equal(y, want.view(ml(name)).astype(np.float32) * 2)


def test_fnuz_dtype_names():
    assert T.float8_e4m3fnuz.name == "float8_e4m3fnuz" and T.dtype("float8_e5m2fnuz").bits == 8
