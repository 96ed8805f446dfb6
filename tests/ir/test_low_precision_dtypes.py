"""The OCP microscaling types float4_e2m1fn, float6_e2m3fn, float6_e3m2fn and float8_e8m0fnu.

Their conversions are pinned bit for bit against ml_dtypes' on every target: every byte decoded,
and float32 / float64 inputs at and next to every representable value, every rounding midpoint,
the overflow and underflow edges, the specials and random bit patterns, encoded. The same
element-wise cast kernel runs on the CPU, in the emulator (sm_80 and sm_90a) and in the PTX
interpreter on what NVRTC compiled; tw_cuda.h's conversions are also compiled on the host."""
from __future__ import annotations

import functools
import os
import subprocess

import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.backend.cpu.build import compiler
from tilewise.errors import CompileError
from tilewise.ir import dtype as dt
from tilewise.ir import scalar_ops

NAMES = ("float4_e2m1fn", "float6_e2m3fn", "float6_e3m2fn", "float8_e8m0fnu")
BLOCK = 256


def ml(name: str) -> np.dtype:
    return np.dtype(getattr(ml_dtypes, name))


@functools.cache
def f32_inputs(name: str) -> np.ndarray:
    """float32 values at and around every representable value and every midpoint between two."""
    vals = np.arange(256, dtype=np.uint8).view(ml(name)).astype(np.float64)
    pos = np.unique(np.abs(vals[np.isfinite(vals)]))
    pos = pos[pos > 0]
    mids = (pos[:-1] + pos[1:]) / 2  # e8m0: the tie 1.5 * 2^k
    edges = [pos[-1] + (pos[-1] - pos[-2]) / 2, pos[-1] * 1.5, pos[-1] * 2, pos[0] / 2, pos[0] * 0.75, pos[0] / 4]
    with np.errstate(over="ignore"):  # e8m0's top edges are past float32's
        pts = np.concatenate([pos, mids, edges]).astype(np.float32)
    pts = pts[np.isfinite(pts)]
    near = np.concatenate([pts, np.nextafter(pts, np.float32(np.inf)), np.nextafter(pts, np.float32(0))])
    special = np.array([0.0, np.inf, np.nan, 3.4028235e38, 2.0**-126, 2.0**-127, 1.5 * 2.0**-127, 2.0**-149,
                        1.0, 1.5, 3.0, 6.0, 7.5, 28.0, 2.0**127, 1.5 * 2.0**126], np.float32)  # fmt: skip
    with np.errstate(over="ignore"):
        special = np.concatenate([special, np.nextafter(special, np.float32(np.inf)), np.nextafter(special, np.float32(0))])
    rng = np.random.default_rng(len(name))
    random_bits = rng.integers(0, 2**32, 2048, dtype=np.uint64).astype(np.uint32).view(np.float32)
    scaled = (rng.standard_normal(1024) * 2.0 ** rng.integers(-8, 8, 1024)).astype(np.float32)
    return np.concatenate([near, -near, special, -special, random_bits, scaled])


@functools.cache
def f64_inputs(name: str) -> np.ndarray:
    """The float32 inputs, and float64 values just either side of each (a midpoint missed by less
    than float32 can resolve), and values past float32's range."""
    x = f32_inputs(name).astype(np.float64)
    x = x[np.isfinite(x)]
    return np.concatenate([x, x * (1 + 2.0**-40), x * (1 - 2.0**-40), [1e300, -1e300, 1e-300, -1e-300, 0.0]])


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint8)


def assert_encodes_like_ml_dtypes(name: str, x: np.ndarray, got_bits: np.ndarray, where: str) -> None:
    want = bits(x.astype(ml(name)))
    bad = np.nonzero(got_bits != want)[0]
    assert bad.size == 0, (
        f"{where}: {name} from {x.dtype}: {bad.size} of {x.size} differ from ml_dtypes, first {x[bad[0]]!r} "
        f"({np.asarray(x[bad[0]]).view(np.uint32 if x.dtype == np.float32 else np.uint64):#x}): "
        f"got {got_bits[bad[0]]:#04x}, want {want[bad[0]]:#04x}"
    )


def assert_decodes_like_ml_dtypes(name: str, got: np.ndarray, where: str) -> None:
    want = np.arange(256, dtype=np.uint8).view(ml(name)).astype(np.float32)
    np.testing.assert_array_equal(got, want, err_msg=f"{where}: {name} decoded")
    assert (np.signbit(got) == np.signbit(want)).all(), f"{where}: {name} decoded: zero signs"


def pad(x: np.ndarray) -> np.ndarray:
    n = -x.size % BLOCK
    return np.concatenate([x, np.zeros(n, x.dtype)]) if n else x


# ---------------------------------------------------------------------------- the dtypes themselves


def test_names_and_host_types():
    for name in NAMES:
        t = dt.as_dtype(name)
        assert getattr(T, name) is t and t.is_float and t.bits == 8 and t.bytes == 1
        assert t.numpy == ml(name) and dt.as_dtype(ml(name)) is t
    assert dt.as_dtype("float8_e8m0fnu").torch is __import__("torch").float8_e8m0fnu
    import torch

    assert dt.as_dtype(torch.float8_e8m0fnu) is T.float8_e8m0fnu
    with pytest.raises(TypeError, match="packs two fp4 values per byte.*unpack_float4_e2m1fn_x2"):
        dt.as_dtype(torch.float4_e2m1fn_x2)
    with pytest.raises(TypeError, match="no one-value-per-byte dtype for float6_e2m3fn"):
        _ = T.float6_e2m3fn.torch


def test_fp4_pack_unpack_round_trip():
    import torch

    from tilewise.utils import pack_float4_e2m1fn_x2, unpack_float4_e2m1fn_x2

    codes = np.arange(16, dtype=np.uint8)
    a = np.stack([codes, codes[::-1]]).view(ml_dtypes.float4_e2m1fn)  # (2, 16)
    packed = pack_float4_e2m1fn_x2(a)
    assert packed.dtype == torch.float4_e2m1fn_x2 and tuple(packed.shape) == (2, 8)
    assert packed.view(torch.uint8)[0, 0].item() == 0x10  # element 0 in the low nibble
    back = unpack_float4_e2m1fn_x2(packed)
    assert back.dtype == ml("float4_e2m1fn") and np.array_equal(bits(back), bits(a))
    with pytest.raises(ValueError, match="even last dimension"):
        pack_float4_e2m1fn_x2(a[:, :3])


@pytest.mark.parametrize("name", NAMES)
def test_emulator_arithmetic_converts_like_ml_dtypes(name):
    """scalar_ops (the emulator's and the constant folder's arithmetic)."""
    t = dt.as_dtype(name)
    for x in (f32_inputs(name), f64_inputs(name)):
        got = scalar_ops.cast(dt.as_dtype(x.dtype.name), t)(x)
        assert_encodes_like_ml_dtypes(name, x, bits(got), "scalar_ops")
    assert_decodes_like_ml_dtypes(name, scalar_ops.cast(t, dt.float32)(np.arange(256, dtype=np.uint8).view(ml(name))),
                                  "scalar_ops")


# ---------------------------------------------------------------------------- kernels on every target


@functools.cache
def cast_kernel(n: int, src: str, dst: str, target: str, backend: str):
    @T.prim_func
    def cast(A: T.Tensor((n,), src), B: T.Tensor((n,), dst)):
        with T.Kernel(n // BLOCK, threads=128) as bx:
            for i in T.Parallel(BLOCK):
                B[bx * BLOCK + i] = T.Cast(dst, A[bx * BLOCK + i])

    return tilewise.compile(cast, target=target, execution_backend=backend)


TARGETS = [("cpu", "auto"), ("cuda -arch=sm_80", "emulator"), ("cuda -arch=sm_90a", "emulator")]


def run_cast(x: np.ndarray, dst: str, target: str, backend: str, ptx: bool = False) -> np.ndarray:
    a = pad(x)
    out = np.zeros(a.size, dtype=ml(dst) if dst in NAMES else dst)
    k = cast_kernel(a.size, dt.as_dtype(a.dtype).name, dst, target, backend)
    if ptx:
        k = k.with_execution_backend("ptx")
    k(a, out)
    return out[: x.size]


@pytest.mark.parametrize("target,backend", TARGETS)
@pytest.mark.parametrize("name", NAMES)
def test_cast_kernels_convert_like_ml_dtypes(name, target, backend):
    for x in (f32_inputs(name), f64_inputs(name)):
        assert_encodes_like_ml_dtypes(name, x, bits(run_cast(x, name, target, backend)), target)
    codes = np.arange(256, dtype=np.uint8).view(ml(name))
    assert_decodes_like_ml_dtypes(name, run_cast(codes, "float32", target, backend), target)


@pytest.mark.parametrize("name", NAMES)
def test_ptx_interpreter_runs_the_nvrtc_conversions(name):
    """What NVRTC compiled from tw_cuda.h (integer code), run by the PTX interpreter."""
    x = f32_inputs(name)[:1024]  # the interpreter is slow; the header is checked in full below
    assert_encodes_like_ml_dtypes(name, x, bits(run_cast(x, name, "cuda -arch=sm_80", "emulator", ptx=True)), "ptx")
    codes = np.arange(256, dtype=np.uint8).view(ml(name))
    assert_decodes_like_ml_dtypes(name, run_cast(codes, "float32", "cuda -arch=sm_80", "emulator", ptx=True), "ptx")


def copy_program(M, N, bm, bn, src, dst):
    @T.prim_func
    def copy_cast(A: T.Tensor((M, N), src), B: T.Tensor((M, N), dst), C: T.Tensor((M, N), src)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            As = T.alloc_shared((bm, bn), src)
            Af = T.alloc_fragment((bm, bn), src)
            Bf = T.alloc_fragment((bm, bn), dst)
            T.copy(A[by * bm, bx * bn], As)
            T.copy(As, Af)
            T.copy(Af, C[by * bm, bx * bn])
            for i, j in T.Parallel(bm, bn):
                Bf[i, j] = Af[i, j]
            T.copy(Bf, B[by * bm, bx * bn])

    return copy_cast


@pytest.mark.parametrize("target,backend", TARGETS)
@pytest.mark.parametrize("name", NAMES)
def test_copies_through_shared_and_fragments(name, target, backend):
    """global -> shared -> fragment -> global keeps every byte (fp4: every value); a fragment cast to float16 /
    bfloat16 rounds as ml_dtypes does (through float32)."""
    a = np.tile(np.arange(256, dtype=np.uint8).reshape(16, 16), (2, 3)).view(ml(name))  # (32, 48)
    for dst in ("float16", "bfloat16"):
        k = tilewise.compile(copy_program(32, 48, 16, 16, name, dst), target=target, execution_backend=backend)
        npdst = np.dtype(ml_dtypes.bfloat16) if dst == "bfloat16" else np.dtype(dst)
        b, c = np.zeros((32, 48), npdst), np.zeros((32, 48), ml(name))
        k(a, b, c)
        if name == "float4_e2m1fn":  # stored packed: each value's four-bit code (ml_dtypes reads a set
            # bit above the value's as its sign, so the values and their signs are kept)
            codes = (bits(a) & 7) | np.where(bits(a) & 0xF8, 8, 0).astype(np.uint8)
            assert np.array_equal(bits(c), codes)
        else:
            assert np.array_equal(bits(c), bits(a))
        want = a.astype(np.float32).astype(npdst)
        np.testing.assert_array_equal(b.astype(np.float32), want.astype(np.float32))


@pytest.mark.parametrize("name", ("float4_e2m1fn", "float6_e3m2fn", "float8_e8m0fnu"))
def test_gemm_on_mx_types_is_a_clear_error(name):
    with pytest.raises(CompileError, match=f"{name} has no T.gemm: cast the tile to float16 or bfloat16"):

        @T.prim_func
        def mm(A: T.Tensor((16, 16), name), B: T.Tensor((16, 16), name), C: T.Tensor((16, 16), "float32")):
            with T.Kernel(1, threads=128):
                As = T.alloc_shared((16, 16), name)
                Bs = T.alloc_shared((16, 16), name)
                Cf = T.alloc_fragment((16, 16), "float32")
                T.copy(A, As)
                T.copy(B, Bs)
                T.gemm(As, Bs, Cf, clear_accum=True)
                T.copy(Cf, C)


# ---------------------------------------------------------------------------- tw_cuda.h on the host

_HOST = r"""
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>
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
template <typename T> static std::vector<T> slurp(const std::string& path) {
  std::vector<T> v; T x; FILE* f = std::fopen(path.c_str(), "rb");
  while (std::fread(&x, sizeof(T), 1, f) == 1) v.push_back(x);
  std::fclose(f); return v;
}
template <typename T> static void dump(const std::string& path, const std::vector<T>& v) {
  FILE* f = std::fopen(path.c_str(), "wb"); std::fwrite(v.data(), sizeof(T), v.size(), f); std::fclose(f);
}
int main(int argc, char** argv) {
  const std::string d = argv[1], t = argv[2];
  uint8_t (*enc)(float) = t == "e2m1" ? cvt::f32_to_e2m1 : t == "e2m3" ? cvt::f32_to_e2m3
                        : t == "e3m2" ? cvt::f32_to_e3m2 : cvt::f32_to_e8m0;
  uint8_t (*enc64)(double) = t == "e2m1" ? cvt::f64_to_e2m1 : t == "e2m3" ? cvt::f64_to_e2m3
                           : t == "e3m2" ? cvt::f64_to_e3m2 : cvt::f64_to_e8m0;
  float (*dec)(uint8_t) = t == "e2m1" ? cvt::e2m1_to_f32 : t == "e2m3" ? cvt::e2m3_to_f32
                        : t == "e3m2" ? cvt::e3m2_to_f32 : cvt::e8m0_to_f32;
  auto f32 = slurp<float>(d + "/f32.bin");
  auto f64 = slurp<double>(d + "/f64.bin");
  std::vector<uint8_t> e(f32.size()), e64(f64.size());
  std::vector<float> back(256);
  for (size_t i = 0; i < f32.size(); ++i) e[i] = enc(f32[i]);
  for (size_t i = 0; i < f64.size(); ++i) e64[i] = enc64(f64[i]);
  for (int c = 0; c < 256; ++c) back[c] = dec((uint8_t)c);
  dump(d + "/enc.bin", e); dump(d + "/enc64.bin", e64); dump(d + "/dec.bin", back);
  return 0;
}
"""
_SHORT = {"float4_e2m1fn": "e2m1", "float6_e2m3fn": "e2m3", "float6_e3m2fn": "e3m2", "float8_e8m0fnu": "e8m0"}


@pytest.fixture(scope="module")
def host_cvt(tmp_path_factory):
    from tilewise.backend.cuda.toolkit import INCLUDE_DIR

    text = open(os.path.join(INCLUDE_DIR, "tw_cuda.h")).read()
    block = text[text.index("// tw-host-testable-begin") : text.index("// tw-host-testable-end")]
    d = tmp_path_factory.mktemp("mx_cvt")
    (d / "cvt.cpp").write_text(_HOST.replace("%BLOCK%", block))
    subprocess.run([compiler(), "-O1", "-std=c++17", "-o", str(d / "cvt"), str(d / "cvt.cpp")], check=True,
                   capture_output=True)  # fmt: skip
    return d


@pytest.mark.parametrize("name", NAMES)
def test_cuda_header_conversions_on_the_host(host_cvt, name):
    d = host_cvt / name
    d.mkdir()
    f32, f64 = f32_inputs(name), f64_inputs(name)
    f32.tofile(d / "f32.bin")
    f64.tofile(d / "f64.bin")
    subprocess.run([str(host_cvt / "cvt"), str(d), _SHORT[name]], check=True)
    assert_encodes_like_ml_dtypes(name, f32, np.fromfile(d / "enc.bin", np.uint8), "tw_cuda.h")
    assert_encodes_like_ml_dtypes(name, f64, np.fromfile(d / "enc64.bin", np.uint8), "tw_cuda.h")
    assert_decodes_like_ml_dtypes(name, np.fromfile(d / "dec.bin", np.float32), "tw_cuda.h")


@pytest.mark.parametrize("name", NAMES)
def test_nvrtc_compiles_the_casts(name, nvrtc_check):
    @T.prim_func
    def casts(A: T.Tensor((256,), name), F: T.Tensor((256,), "float32"), D: T.Tensor((256,), "float64"),
              H: T.Tensor((256,), "float16"), B: T.Tensor((256,), name)):  # fmt: skip
        with T.Kernel(1, threads=128):
            for i in T.Parallel(256):
                F[i] = T.Cast("float32", A[i])
                H[i] = T.Cast("float16", A[i])
                B[i] = T.Cast(name, F[i] * 2 + T.Cast("float32", H[i])) + T.Cast(name, D[i])
            if name != "float4_e2m1fn":  # fp4 is packed two per byte: no atomics on a nibble
                T.atomic_add(B[1], A[0])
                T.atomic_max(B[2], A[1])

    nvrtc_check(casts)


def tile_copy(name: str):
    @T.prim_func
    def copy(A: T.Tensor((64, 64), name), B: T.Tensor((64, 64), name)):
        with T.Kernel(2, 2, threads=128) as (bx, by):
            S = T.alloc_shared((32, 32), name)
            T.copy(A[by * 32, bx * 32], S)
            T.copy(S, B[by * 32, bx * 32])

    return copy


@pytest.mark.parametrize("target,backend", TARGETS[:2])
def test_torch_e8m0_tensors_in_and_out(target, backend):
    """TileLang's e8m0 copy test: int8 bits viewed as torch.float8_e8m0fnu, the output allocated."""
    import torch

    k = tilewise.compile(tile_copy("float8_e8m0fnu"), out_idx=[1], target=target, execution_backend=backend)
    a = torch.randint(0, 100, (64, 64), dtype=torch.int8).view(torch.float8_e8m0fnu)
    b = k(a)
    assert b.dtype == torch.float8_e8m0fnu and torch.equal(b.view(torch.uint8), a.view(torch.uint8))


def test_torch_packed_fp4_in_place_of_an_unpacked_array():
    """A torch.float4_e2m1fn_x2 tensor of half the last dimension is TileLang's packed fp4 argument
    (jit/packed_fp4.py; tests/jit/test_packed_fp4.py): the same result as unpacking it first."""
    import torch

    from tilewise.utils import pack_float4_e2m1fn_x2, unpack_float4_e2m1fn_x2

    k = tilewise.compile(tile_copy("float4_e2m1fn"), target="cpu")
    packed = torch.randint(0, 256, (64, 32), dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
    out = torch.zeros((64, 32), dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
    k(packed, out)
    assert torch.equal(out.view(torch.uint8), packed.view(torch.uint8))
    a = unpack_float4_e2m1fn_x2(packed)
    b = np.zeros((64, 64), ml("float4_e2m1fn"))
    k(a, b)
    assert torch.equal(pack_float4_e2m1fn_x2(b).view(torch.uint8), packed.view(torch.uint8))


def test_limits():
    assert [float(T.max_value(getattr(T, n)).value) for n in NAMES] == [6.0, 7.5, 28.0, 2.0**127]
    assert [float(T.min_value(getattr(T, n)).value) for n in NAMES] == [-6.0, -7.5, -28.0, 2.0**-127]
    for n in NAMES:
        with pytest.raises(CompileError, match=f"{n} has no infinity"):
            T.infinity(getattr(T, n))


def test_profiler_supplies_mx_inputs():
    import torch

    from tilewise.profiler.supply import make_tensor

    a = make_tensor((4, 4), T.float4_e2m1fn, use_torch=True)  # torch has no one-per-byte fp4
    assert isinstance(a, np.ndarray) and a.dtype == ml("float4_e2m1fn")
    scales = make_tensor((4, 4), T.float8_e8m0fnu, use_torch=True)
    assert scales.dtype == torch.float8_e8m0fnu and not scales.float().isnan().any()


@functools.cache
def arith_kernel(name: str, target: str, backend: str):
    @T.prim_func
    def arith(A: T.Tensor((256,), name), B: T.Tensor((256,), name), C: T.Tensor((256,), name)):
        with T.Kernel(1, threads=128):
            for i in T.Parallel(256):
                C[i] = A[i] * B[i] + T.Cast(name, 0.75)

    return tilewise.compile(arith, target=target, execution_backend=backend)


@pytest.mark.parametrize("target,backend", TARGETS[:2])
@pytest.mark.parametrize("name", NAMES)
def test_arithmetic_rounds_once_per_operation(name, target, backend):
    """In float32, rounded to the type after each operation (as float8), constants folded alike."""
    codes = np.arange(256, dtype=np.uint8)
    a, b = codes.view(ml(name)), np.roll(codes, 37).view(ml(name))
    c = np.zeros(256, ml(name))
    arith_kernel(name, target, backend)(a, b, c)
    t = ml(name)
    with np.errstate(all="ignore"):
        prod = (a.astype(np.float32) * b.astype(np.float32)).astype(t)
        want = (prod.astype(np.float32) + np.float32(0.75).astype(t).astype(np.float32)).astype(t)
    assert np.array_equal(bits(c), bits(want))


@pytest.mark.parametrize("target,backend", TARGETS[:2])
@pytest.mark.parametrize("name", ("float4_e2m1fn", "float6_e3m2fn"))
def test_torch_byte_tensors_hold_fp4_and_fp6(name, target, backend):
    """torch has no one-value-per-byte fp4 / fp6 dtype: fp6 takes uint8 tensors of the logical
    shape (one value per byte), fp4 TileLang's packed bytes (two per byte, low nibble first;
    tests/jit/test_packed_fp4.py), in and out."""
    import torch

    fp4 = name.startswith("float4")
    k = tilewise.compile(tile_copy(name), out_idx=[1], target=target, execution_backend=backend)
    if fp4:
        a = torch.randint(0, 256, (64, 32), dtype=torch.uint8)
        logical = np.stack([a.numpy() & 0xF, a.numpy() >> 4], axis=-1).reshape(64, 64)
    else:
        a = torch.randint(0, 256, (64, 64), dtype=torch.uint8) & 0x3F
        logical = a.numpy()
    b = k(a)
    if fp4:
        assert b.dtype == torch.int8 and torch.equal(b.view(torch.uint8), a)
    else:
        assert b.dtype == torch.uint8 and torch.equal(b, a)

    @T.prim_func
    def widen(A: T.Tensor((64, 64), name), B: T.Tensor((64, 64), "float32")):
        with T.Kernel(1, threads=128):
            for i, j in T.Parallel(64, 64):
                B[i, j] = A[i, j]

    f = tilewise.compile(widen, out_idx=[1], target=target, execution_backend=backend)(a)
    want = logical.view(ml(name)).astype(np.float32)
    np.testing.assert_array_equal(f.numpy(), want)
    with pytest.raises(TypeError, match="expected dtype"):
        k(a.to(torch.int16))
    if fp4:
        with pytest.raises(ValueError, match="byte tensors hold two"):
            k(torch.zeros((64, 64), dtype=torch.uint8))
