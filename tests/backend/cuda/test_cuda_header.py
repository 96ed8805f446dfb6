"""tw_cuda.h on its own: it includes no CUDA header, its low-precision types compile for every
operation the header offers (sm_80, sm_89, sm_90a) with the PTX conversions we expect, the
renderer's casts and arithmetic on them compile, and its software conversions (used before
sm_89 for float8, and for double inputs everywhere) are exact: compiled on the host and checked
against round-to-nearest-even computed independently in numpy."""

from __future__ import annotations

import os
import re
import subprocess

import numpy as np
import pytest

from tilewise.backend.cpu.build import compiler
from tilewise.backend.cuda import inspect as sass_tools
from tilewise.backend.cuda.nvrtc import nvrtc_compile
from tilewise.backend.cuda.renderer import render_cuda
from tilewise.backend.cuda.toolkit import INCLUDE_DIR
from tilewise.ir import Buffer, BufferStore, Call, Cast, Evaluate, Kernel, PrimFunc, Select, SeqStmt, Var
from tilewise.ir import dtype as dt
from tilewise.ir.expr import BinOp, UnaryOp

HEADER = os.path.join(INCLUDE_DIR, "tw_cuda.h")
LOWP = ("half", "bf16", "fp8_e4m3", "fp8_e5m2")
ARCHS = ("sm_80", "sm_89", "sm_90a")


def header_text() -> str:
    with open(HEADER) as f:
        return f.read()


def test_header_includes_no_cuda_headers():
    includes = re.findall(r"^\s*#\s*include\s*[<\"]([^>\"]+)", header_text(), re.M)
    # only the C++ standard headers, for a non-NVRTC compiler; NVRTC parses none; and tilewise's
    # own header shared with the HIP target (backend/include)
    assert set(includes) <= {"cstdint", "cstdio", "tw_philox.h"}, includes


# ---------------------------------------------------------------------------- every operation

_OPS = r"""
#include "tw_cuda.h"
using namespace tw;

template <typename T> __device__ void lowp_ops(T* x, T* out, float* f, double* d, int64_t* n, T s) {
  const int i = threadIdx.x;
  T a = x[i], b = x[(i + 1) % 32];
  int k = 0;
  // construction from every arithmetic type, conversion to float and double
  out[k++] = T(f[i]);
  out[k++] = T(d[i]);
  out[k++] = T((int)i - 7);
  out[k++] = T((unsigned)i);
  out[k++] = T(n[i]);
  out[k++] = T((uint64_t)n[i]);
  out[k++] = T((int8_t)i);
  out[k++] = T((uint8_t)i);
  out[k++] = T((int16_t)i);
  out[k++] = T((uint16_t)i);
  out[k++] = T(i > 3);
  out[k++] = (T)((float)(a) + (float)(b));  // what the renderer emits for arithmetic
  out[k++] = (T)((double)(a) * 3.0);
  out[k++] = ((float)(a) < (float)(b)) ? a : s;
  f[i] = (float)a + (float)half(a) + (float)bf16(a) + (float)fp8_e4m3(a) + (float)fp8_e5m2(a);
  d[i] = (double)(float)a;
  n[i] = (int64_t)(float)a;
  // math
  out[k++] = exp(a); out[k++] = exp2(a); out[k++] = exp10(a); out[k++] = log(a); out[k++] = log2(a);
  out[k++] = log10(a); out[k++] = log1p(a); out[k++] = expm1(a); out[k++] = sqrt(a); out[k++] = rsqrt(a);
  out[k++] = tanh(a); out[k++] = erf(a); out[k++] = floor(a); out[k++] = ceil(a); out[k++] = trunc(a);
  out[k++] = round(a); out[k++] = nearbyint(a); out[k++] = sin(a); out[k++] = cos(a); out[k++] = tan(a);
  out[k++] = asin(a); out[k++] = acos(a); out[k++] = atan(a); out[k++] = sinh(a); out[k++] = cosh(a);
  out[k++] = asinh(a); out[k++] = acosh(a); out[k++] = atanh(a); out[k++] = rcp(a); out[k++] = sigmoid(a);
  out[k++] = abs(a); out[k++] = tw::max(a, b); out[k++] = tw::min(a, b); out[k++] = pow(a, b);
  out[k++] = fmod(a, b); out[k++] = atan2(a, b); out[k++] = hypot(a, b); out[k++] = copysign(a, b);
  out[k++] = floordiv(a, b); out[k++] = floormod(a, b);
  // warp shuffles
  out[k++] = shfl_xor(a, 1); out[k++] = shfl_down(a, 2, 16); out[k++] = shfl_up(a, 1, 8);
  out[k++] = shfl_idx(a, 0);
  // atomics: the value returned and not
  out[k++] = atomic_add(&out[100], a);
  atomic_add(&out[101], b);
  out[k++] = atomic_max(&out[102], a);
  out[k++] = atomic_min(&out[103], a);
  // bits, vector moves, printing
  static_assert(sizeof(T) == sizeof(decltype(a.bits)), "T is its bits");
  out[k++] = bitcast<T>(bitcast<decltype(a.bits)>(a));
  copy_vec<sizeof(T)>(&out[k++], &x[i]);
  print_scalar("x", "a", 0, 0, 0, a);
  print_tile<1>("", "x", 0, 0, 0, x, 4, 1, 0);
  __shared__ T tile[32];
  tile[i] = a;
  __syncthreads();
  out[k++] = tile[31 - i];
}

#define TW_KERNEL(T)                                                                           \
  extern "C" __global__ void ops_##T(T* x, T* out, float* f, double* d, int64_t* n, T s) {     \
    lowp_ops<T>(x, out, f, d, n, s);                                                          \
  }
TW_KERNEL(half)
TW_KERNEL(bf16)
TW_KERNEL(fp8_e4m3)
TW_KERNEL(fp8_e5m2)
"""


@pytest.fixture(scope="module", params=ARCHS)
def ops_build(request):
    out = nvrtc_compile(_OPS, request.param, ptx=True, name="lowp_ops.cu")
    return request.param, out


def test_every_lowp_operation_compiles(ops_build):
    arch, out = ops_build
    assert out.log == "" or "warning" not in out.log.lower(), out.log
    funcs = sass_tools.parse_sass(sass_tools.get_sass(out.cubin))
    assert set(funcs) == {f"ops_{t}" for t in LOWP}
    use = sass_tools.resource_usage_all(out.cubin)
    assert all(u["registers"] > 0 for u in use.values())


def _ptx_functions(ptx: str) -> dict[str, str]:
    """Entry name -> its PTX body."""
    parts = re.split(r"\.visible \.entry (\w+)\(", ptx)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_ptx_conversions(ops_build):
    arch, out = ops_build
    fn = _ptx_functions(out.ptx)
    fp8_hw = arch != "sm_80"
    # float16: cvt both ways, f64 rounded directly, native atomic add
    h = fn["ops_half"]
    assert "cvt.rn.f16.f32" in h and "cvt.f32.f16" in h and "cvt.rn.f16.f64" in h
    assert re.search(r"atom(\.global)?\.add\.noftz\.f16", h)
    # bfloat16: cvt.rn.bf16.f32 (sm_80+), the shift back, f64 through round-to-odd float
    b = fn["ops_bf16"]
    assert "cvt.rn.bf16.f32" in b and "cvt.rz.f32.f64" in b
    assert "cvt.f32.bf16" not in b  # widening is a shift
    native_bf16_add = re.search(r"atom(\.global)?\.add\.noftz\.bf16", b)
    assert bool(native_bf16_add) == (arch == "sm_90a")
    assert re.search(r"atom(\.global)?\.cas\.b16", b)  # atomic max / min (and add before sm_90)
    # float8: the satfinite cvt from sm_89, integer code before
    for t, fmt in (("fp8_e4m3", "e4m3"), ("fp8_e5m2", "e5m2")):
        body = fn[f"ops_{t}"]
        assert (f"cvt.rn.satfinite.{fmt}x2.f32" in body) == fp8_hw, (arch, t)
        assert re.search(r"atom(\.global)?\.cas\.b32", body)  # one-byte CAS on the enclosing word
    assert ("cvt.rn.f16x2.e4m3x2" in fn["ops_fp8_e4m3"]) == fp8_hw
    # e5m2 widens as the top byte of a float16 everywhere
    assert "cvt.rn.f16x2.e5m2x2" not in fn["ops_fp8_e5m2"] and "cvt.f32.f16" in fn["ops_fp8_e5m2"]
    # low-precision shuffles move bits, not floats
    for t in LOWP:
        assert "shfl.sync.bfly.b32" in fn[f"ops_{t}"]


# ---------------------------------------------------------------------------- rendered casts

_SCALARS = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64")
_LOWP_DT = ("float16", "bfloat16", "float8_e4m3", "float8_e5m2")


def casts_and_arithmetic(t: str) -> PrimFunc:
    """Everything the renderer emits on a low-precision type: casts from and to every scalar and
    low-precision type, + - * / and negation, comparisons, select, min / max."""
    ty = dt.as_dtype(t)
    X = Buffer("X", (32,), t)
    S = {s: Buffer(f"S_{s}", (32,), s) for s in _SCALARS + _LOWP_DT if s != t}
    Y = Buffer("Y", (32, 32), t)
    O = {s: Buffer(f"O_{s}", (32,), s) for s in S}
    bx, tx = Var("bx"), Var("tx")
    a, b = X[tx], X[(tx + 1) % 32]
    stmts = [BufferStore(O[s], (tx,), Cast(a, dt.as_dtype(s))) for s in S]
    stmts += [BufferStore(Y, (tx, k), Cast(S[s][tx], ty)) for k, s in enumerate(S)]
    exprs = [
        BinOp("add", a, b, ty), BinOp("sub", a, b, ty), BinOp("mul", a, b, ty), BinOp("div", a, b, ty),
        UnaryOp("neg", a), BinOp("max", a, b, ty), BinOp("min", a, b, ty),
        Select(a < b, a, b), Select(a == b, a, b), Select(a >= b, b, a),
    ]  # fmt: skip
    stmts += [BufferStore(Y, (tx, len(S) + k), e) for k, e in enumerate(exprs)]
    stmts.append(Evaluate(Call("atomic_add", [Call("address_of", [Y[0, 0]], dt.handle), a], dt.handle)))
    params = [X, Y, *S.values(), *O.values()]
    return PrimFunc(f"casts_{t}", params, Kernel([bx], [1], [32], [tx], SeqStmt(stmts)))


@pytest.mark.parametrize("t", _LOWP_DT)
def test_rendered_lowp_code_compiles(t):
    src = render_cuda(casts_and_arithmetic(t)).source
    assert "(float)(" in src  # low-precision arithmetic and comparisons go through float
    for arch in ("sm_80", "sm_90a"):
        out = nvrtc_compile(src, arch)
        use = sass_tools.resource_usage(out.cubin)
        assert use["spill_bytes"] == 0 and use["registers"] > 0


# ---------------------------------------------------------------------------- exact software paths

_HOST_PRELUDE = r"""
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
static inline float __double2float_rz(double d) {  // round toward zero
  float f = (float)d;
  if (std::fabs((double)f) > std::fabs(d)) f = std::nextafterf(f, 0.0f);
  return f;
}
static inline float f16_to_f32(uint16_t h) { _Float16 x; std::memcpy(&x, &h, 2); return (float)x; }
namespace cvt {
"""

_HOST_MAIN = r"""
}  // namespace cvt
template <typename T> static std::vector<T> slurp(const char* path) {
  std::vector<T> v;
  FILE* f = std::fopen(path, "rb");
  T x;
  while (std::fread(&x, sizeof(T), 1, f) == 1) v.push_back(x);
  std::fclose(f);
  return v;
}
template <typename T> static void dump(const char* path, const std::vector<T>& v) {
  FILE* f = std::fopen(path, "wb");
  std::fwrite(v.data(), sizeof(T), v.size(), f);
  std::fclose(f);
}
int main(int argc, char** argv) {
  const std::string dir = argv[1];
  auto f32 = slurp<float>((dir + "/f32.bin").c_str());
  auto f64 = slurp<double>((dir + "/f64.bin").c_str());
  std::vector<uint8_t> e4(f32.size()), e5(f32.size()), e4d(f64.size()), e5d(f64.size());
  std::vector<uint16_t> bf(f32.size()), bfd(f64.size());
  for (size_t i = 0; i < f32.size(); ++i) {
    e4[i] = cvt::f32_to_e4m3(f32[i]); e5[i] = cvt::f32_to_e5m2(f32[i]); bf[i] = cvt::f32_to_bf16(f32[i]);
  }
  for (size_t i = 0; i < f64.size(); ++i) {
    e4d[i] = cvt::f64_to_e4m3(f64[i]); e5d[i] = cvt::f64_to_e5m2(f64[i]); bfd[i] = cvt::f64_to_bf16(f64[i]);
  }
  std::vector<float> d4(256), d5(256);
  for (int c = 0; c < 256; ++c) { d4[c] = cvt::e4m3_to_f32((uint8_t)c); d5[c] = cvt::e5m2_to_f32((uint8_t)c); }
  dump((dir + "/e4.bin").c_str(), e4); dump((dir + "/e5.bin").c_str(), e5); dump((dir + "/bf.bin").c_str(), bf);
  dump((dir + "/e4d.bin").c_str(), e4d); dump((dir + "/e5d.bin").c_str(), e5d); dump((dir + "/bfd.bin").c_str(), bfd);
  dump((dir + "/d4.bin").c_str(), d4); dump((dir + "/d5.bin").c_str(), d5);
  return 0;
}
"""


def _decode(code: int, exp_bits: int, man_bits: int, fn: bool) -> float:
    """The value of a float8 / bfloat16 code, from the format's definition."""
    s = -1.0 if code >> (exp_bits + man_bits) else 1.0
    e = (code >> man_bits) & ((1 << exp_bits) - 1)
    m = code & ((1 << man_bits) - 1)
    bias = (1 << (exp_bits - 1)) - 1
    top = (1 << exp_bits) - 1
    if fn and e == top and m == (1 << man_bits) - 1:
        return float("nan")
    if not fn and e == top:
        return s * float("inf") if m == 0 else float("nan")
    if e == 0:
        return s * m * 2.0 ** (1 - bias - man_bits)
    return s * (1 + m / 2**man_bits) * 2.0 ** (e - bias)


class _Format:
    def __init__(self, exp_bits, man_bits, fn, saturate):
        self.exp_bits, self.man_bits, self.fn, self.saturate = exp_bits, man_bits, fn, saturate
        width = 1 + exp_bits + man_bits
        half = 1 << (width - 1)
        vals = np.array([_decode(c, exp_bits, man_bits, fn) for c in range(half)])
        finite = np.isfinite(vals)
        self.codes = np.nonzero(finite)[0]
        self.grid = vals[finite]  # ascending: the positive codes in order
        self.decoded = np.array([_decode(c, exp_bits, man_bits, fn) for c in range(2 * half)])
        self.sign = half

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Round to nearest even onto the grid; past the largest finite value: saturate (float8)
        or infinity (bfloat16); NaN: a NaN code."""
        with np.errstate(invalid="ignore"):  # signalling NaNs among random float32 bits
            x = np.asarray(x, np.float64)
        a = np.abs(x)
        g = self.grid
        idx = np.clip(np.searchsorted(g, a, side="right") - 1, 0, len(g) - 1)
        nxt = np.minimum(idx + 1, len(g) - 1)
        lo, hi = g[idx], g[nxt]
        if self.saturate:
            top_mid = np.inf
        else:  # the midpoint to the next power of two; the largest finite code is odd, so a tie overflows
            top_mid = g[-1] + (g[-1] - g[-2]) / 2
        mid = (lo + hi) / 2
        up = (a > mid) | ((a == mid) & (self.codes[idx] % 2 == 1))
        code = np.where(up & (nxt > idx), self.codes[nxt], self.codes[idx])
        code = np.where(a >= g[-1], self.codes[-1], code)
        if not self.saturate:
            code = np.where(a >= top_mid, self.codes[-1] + 1, code)  # the infinity code
        code = code | np.where(np.signbit(x), self.sign, 0)
        return np.where(np.isnan(x), -1, code)


E4M3 = _Format(4, 3, True, True)
E5M2 = _Format(5, 2, False, True)
BF16 = _Format(8, 7, False, False)


def _interesting(fmt: _Format, rng) -> np.ndarray:
    """Every grid value, every midpoint and its float32 neighbours, the overflow edge, random."""
    g = fmt.grid
    mids = (g[:-1] + g[1:]) / 2
    top = g[-1] + (g[-1] - g[-2]) / 2
    with np.errstate(over="ignore"):  # bfloat16's edge is float32's
        pts = np.concatenate([g, mids, [top, top * 2, g[-1] * 1.0001]]).astype(np.float32)
    near = np.concatenate([pts, np.nextafter(pts, np.float32(np.inf)), np.nextafter(pts, np.float32(0))])
    return np.concatenate([near, -near])


def _check(name, got, want):
    got = got.astype(np.int64)
    nan = want < 0
    bad = np.nonzero(~nan & (got != want))[0]
    assert bad.size == 0, (
        f"{name}: {bad.size} wrong, first at index {bad[0]}: got {got[bad[0]]:#x}, want {want[bad[0]]:#x}"
    )
    return nan


@pytest.fixture(scope="module")
def host_codecs(tmp_path_factory):
    text = header_text()
    block = text[text.index("// tw-host-testable-begin") : text.index("// tw-host-testable-end")]
    d = tmp_path_factory.mktemp("codecs")
    src = d / "codecs.cpp"
    src.write_text(_HOST_PRELUDE + block + _HOST_MAIN)
    exe = d / "codecs"
    subprocess.run([compiler(), "-O1", "-std=c++17", "-o", str(exe), str(src)], check=True, capture_output=True)
    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 3.4028235e38, 1e-45, -1e-45, 1e-40,
                        2.0**-126, 2.0**-130], np.float32)  # fmt: skip
    f32 = np.concatenate([
        special, _interesting(E4M3, rng), _interesting(E5M2, rng), _interesting(BF16, rng),
        rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
        (rng.standard_normal(100_000) * 2.0 ** rng.integers(-20, 20, 100_000)).astype(np.float32),
    ])  # fmt: skip
    # doubles a hair off each midpoint: rounding through float32 first would land on the midpoint
    mids = np.concatenate([(f.grid[:-1] + f.grid[1:]) / 2 for f in (E4M3, E5M2, BF16)])
    f64 = np.concatenate([
        special.astype(np.float64), mids, mids * (1 + 2.0**-40), mids * (1 - 2.0**-40), -mids * (1 + 2.0**-35),
        [1e300, -1e300, 1e-300, 3.5e38, 3.4028235677973366e38, 3.3961776e38],
        rng.standard_normal(50_000) * 2.0 ** rng.integers(-30, 30, 50_000),
    ])  # fmt: skip
    f32.tofile(d / "f32.bin")
    f64.tofile(d / "f64.bin")
    subprocess.run([str(exe), str(d)], check=True)

    def read(name, t):
        return np.fromfile(d / f"{name}.bin", t)

    return f32, f64, read


def test_software_float8_encoding_is_exact(host_codecs):
    f32, f64, read = host_codecs
    for fmt, name in ((E4M3, "e4"), (E5M2, "e5")):
        for x, got in ((f32, read(name, np.uint8)), (f64, read(name + "d", np.uint8))):
            nan = _check(name, got, fmt.encode(x))
            assert (got[nan] == 0x7F).all()  # a NaN becomes 0x7f (e4m3's NaN, an e5m2 NaN)


def test_software_bf16_encoding_is_exact(host_codecs):
    f32, f64, read = host_codecs
    for x, got in ((f32, read("bf", np.uint16)), (f64, read("bfd", np.uint16))):
        nan = _check("bf16", got, BF16.encode(x))
        assert ((got[nan] & 0x7FFF) > 0x7F80).all()


def test_software_float8_decoding_is_exact(host_codecs):
    import ml_dtypes

    _, _, read = host_codecs
    codes = np.arange(256, dtype=np.uint8)
    for fmt, name, ml in ((E4M3, "d4", ml_dtypes.float8_e4m3fn), (E5M2, "d5", ml_dtypes.float8_e5m2)):
        got = read(name, np.float32).astype(np.float64)
        np.testing.assert_array_equal(got, fmt.decoded)  # NaN where NaN
        np.testing.assert_array_equal(got, codes.view(ml).astype(np.float64))


def test_reference_agrees_with_ml_dtypes():
    """The numpy reference above, against ml_dtypes' own rounding (which has no saturation)."""
    import ml_dtypes

    rng = np.random.default_rng(1)
    x = (rng.standard_normal(20_000) * 2.0 ** rng.integers(-12, 9, 20_000)).astype(np.float32)
    x = x[np.abs(x) < 440]
    for fmt, ml in ((E4M3, ml_dtypes.float8_e4m3fn), (E5M2, ml_dtypes.float8_e5m2), (BF16, ml_dtypes.bfloat16)):
        want = x.astype(ml).view(np.uint8 if fmt is not BF16 else np.uint16).astype(np.int64)
        np.testing.assert_array_equal(fmt.encode(x), want)
