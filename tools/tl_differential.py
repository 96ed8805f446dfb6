"""Differential check of tilewise's semantics against TileLang's own generated code.

    python tools/tl_differential.py                 # every program
    python tools/tl_differential.py -k floordiv -v  # programs whose name contains "floordiv", with values

Each program (PROGRAMS below) is a small TileLang kernel written once, in TileLang syntax, over
adversarial inputs (±0, halfway values, NaN, ±inf, subnormals, huge values, negative ints,
INT_MIN, values outside the destination range). For every program:

1. TileLang 0.1.15 (`--tilelang-python`, a subprocess) lowers it for CUDA sm_80; its CUDA
   source is the reference a user ports from;
2. that source is compiled by tilewise's NVRTC (with TileLang's tl_templates, cutlass and CCCL
   include paths and TileLang's own NVRTC options: -default-device, its nvrtc_std.h prelude,
   NVCC's default --fmad=true) to PTX and run in tilewise's PTX interpreter;
3. the same program, its imports swapped to tilewise, runs on tilewise's CPU target, in the
   thread-IR emulator and through tilewise's own CUDA code in the PTX interpreter
   (execution_backend="ptx");
4. the outputs are compared bit for bit (any NaN equals any NaN; ±0 differ). Fast-math programs
   (T.__exp etc.) are compared within `ulps` units in the last place instead, and say so.

Where TileLang's result is C/CUDA undefined behaviour (float->int out of range, shifts by the
width or more) a program is marked `ub=` and a difference is reported as a note, not a mismatch.
A measuring tool, not part of `make test`; every fix it led to has its own test.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TL_PYTHON = "/work/peers-venv/bin/python"
CUDA_HOME = os.environ.get("CUDA_HOME", "/usr/local/cuda-13.0")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tl_diff_prog import I_PAIR, N, Prog, binary, float_inputs, unary  # noqa: E402
from tl_diff_scalars import SCALAR_PROGRAMS  # noqa: E402
from tl_diff_tiles import TILE_PROGRAMS  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Programs: TileLang source text (imports swapped for tilewise)

def reduce(name, op, dtype="float32", extra=""):
    m, n = 8, 32
    src = f"""
@T.prim_func
def main(A: T.Tensor(({m}, {n}), "{dtype}"), B: T.Tensor(({m},), "{dtype}")):
    with T.Kernel(1, threads=128) as bx:
        A_f = T.alloc_fragment(({m}, {n}), "{dtype}")
        B_f = T.alloc_fragment(({m},), "{dtype}")
        T.copy(A, A_f)
        T.{op}(A_f, B_f, dim=1{extra})
        T.copy(B_f, B)
"""

    def inputs():
        rng = np.random.default_rng(1)
        a = rng.standard_normal((m, n)).astype(dtype)
        a[0, 3] = np.nan
        a[1, :] = np.nan
        a[2, 5] = np.inf
        a[3, 7] = -np.inf
        a[4, 0], a[4, 1] = np.inf, -np.inf
        a[5, :] = -0.0
        a[6, 9] = np.nan
        a[6, 10] = np.inf
        return [a]
    return Prog(name, src, inputs, [((m,), dtype)])


def cancelling_inputs(dtype: str, shape, seed: int) -> np.ndarray:
    """Finite values whose sums cancel: a mix of +-1e30-sized, unit and tiny terms, so the
    order of the additions shows in every bit of a running sum."""
    rng = np.random.default_rng(seed)
    big = np.where(rng.random(shape) < 0.5, 1e30, -1e30) * rng.integers(1, 4, shape)
    unit = rng.standard_normal(shape)
    tiny = rng.standard_normal(shape) * 1e-7
    pick = rng.integers(0, 3, shape)
    return np.choose(pick, [big, unit, tiny]).astype(dtype)


def cumsum(name, dtype="float32", reverse=False, shape=(64,), threads=64, dim=0, cancel=False):
    """T.cumsum of a shared tile; `cancel` takes cancelling finite inputs (the summation order
    then shows), else the adversarial specials."""
    shp = ", ".join(str(e) for e in shape) + ("," if len(shape) == 1 else "")
    src = f"""
@T.prim_func
def main(A: T.Tensor(({shp}), "{dtype}"), B: T.Tensor(({shp}), "{dtype}")):
    with T.Kernel(1, threads={threads}) as bx:
        S = T.alloc_shared(({shp}), "{dtype}")
        T.copy(A, S)
        T.cumsum(S, dim={dim}, reverse={reverse})
        T.copy(S, B)
"""

    def inputs():
        if cancel:
            return [cancelling_inputs(dtype, shape, seed=5)]
        return [float_inputs(dtype, int(np.prod(shape)), seed=3).reshape(shape)]
    return Prog(name, src, inputs, [(tuple(shape), dtype)])


def atomic(name, op, dtype="float32", ulps=0):
    src = f"""
@T.prim_func
def main(A: T.Tensor(({N},), "{dtype}"), B: T.Tensor((4,), "{dtype}")):
    with T.Kernel(1, threads={N}) as bx:
        for i in T.Parallel({N}):
            T.{op}(B[i % 4], A[i])
"""

    def inputs():
        if dtype.startswith("float"):
            a = np.random.default_rng(2).standard_normal(N).astype(dtype)
            a[1] = np.nan  # only slot 1 sees a NaN, slot 2 sees -0.0s and +inf
            a[2::4] = -0.0
            a[6] = np.inf
        else:
            a = np.resize(np.array(I_PAIR[dtype], dtype=dtype), N)
        return [a]
    return Prog(name, src, inputs, [((4,), dtype)], ulps=ulps, tags=["inout"])


FAST = 64  # ulps allowed for the fast-math intrinsics (SFU approximations)
LIBM = 4  # ulps allowed between CUDA's and the host's libm (CUDA documents 1-4 ulps for these)

PROGRAMS: list[Prog] = [
    *(unary(f"{f}_f32", f"T.{f}({{a}})") for f in
      ["sqrt", "floor", "ceil", "round", "trunc", "nearbyint", "abs", "fabs", "isnan", "isinf", "rcp"]),
    # libm-class functions: CUDA's libdevice results are not correctly rounded (expf: 2 ulps, ...),
    # nor are glibc's / numpy's: bit equality is not a promise any backend makes
    *(unary(f"{f}_f32", f"T.{f}({{a}})", ulps=LIBM) for f in
      ["exp", "exp2", "exp10", "log", "log2", "log10", "log1p", "expm1", "rsqrt", "tanh", "sigmoid",
       "erf", "sin", "cos", "sinh", "cosh", "asinh", "atanh", "asin", "acos"]),
    unary("isnan_bool", "T.isnan({a})", dout="bool"),
    unary("round_f16", "T.round({a})", din="float16"),
    unary("exp_f16", "T.exp({a})", din="float16", ulps=1),
    unary("exp_f64", "T.exp({a})", din="float64", ulps=LIBM),
    unary("round_f64", "T.round({a})", din="float64"),
    *(unary(f"fast{f}_f32", f"T.{f}({{a}})", ulps=FAST) for f in ["__exp", "__exp10", "__log", "__log2",
                                                                 "__log10", "__sin", "__cos"]),
    unary("neg_f32", "-{a}"),
    unary("clamp_f32", "T.clamp({a}, T.float32(-2.0), T.float32(2.0))"),
    unary("max0_f32", "T.max({a}, T.float32(0))"),
    unary("min0_f32", "T.min({a}, T.float32(0))"),
    unary("ite_f32", "T.if_then_else({a} > T.float32(0), {a}, T.float32(-1))"),
    # float -> int / narrower float casts
    unary("cast_f32_i32", "T.Cast('int32', {a})", dout="int32", ub="float->int out of range is UB in C"),
    unary("cast_f32_i8", "T.Cast('int8', {a})", dout="int8", ub="float->int out of range is UB in C"),
    unary("cast_f32_u8", "T.Cast('uint8', {a})", dout="uint8", ub="float->int out of range is UB in C"),
    unary("cast_f32_i64", "T.Cast('int64', {a})", dout="int64", ub="float->int out of range is UB in C"),
    unary("cast_f32_f16", "T.Cast('float16', {a})", dout="float16"),
    unary("cast_f32_bf16", "T.Cast('bfloat16', {a})", dout="bfloat16"),
    unary("cast_f32_e4m3", "T.Cast('float8_e4m3fn', {a})", dout="float8_e4m3fn"),
    unary("cast_f32_e5m2", "T.Cast('float8_e5m2', {a})", dout="float8_e5m2"),
    unary("cast_f32_bool", "T.Cast('bool', {a})", dout="bool"),
    unary("cast_f64_f32", "T.Cast('float32', {a})", din="float64", dout="float32"),
    unary("cast_i32_f32", "T.Cast('float32', {a})", din="int32", dout="float32"),
    unary("cast_i64_f32", "T.Cast('float32', {a})", din="int64", dout="float32"),
    unary("cast_i64_f16", "T.Cast('float16', {a})", din="int64", dout="float16"),
    unary("cast_i32_i8", "T.Cast('int8', {a})", din="int32", dout="int8"),
    unary("abs_i32", "T.abs({a})", din="int32"),
    unary("abs_i8", "T.abs({a})", din="int8"),
    unary("neg_i32", "-{a}", din="int32"),
    unary("not_i32", "~{a}", din="int32"),
    # binary float
    *(binary(f"{n}_f32", e) for n, e in [
        ("add", "{a} + {b}"), ("div", "{a} / {b}"), ("fmod", "T.fmod({a}, {b})"),
        ("max", "T.max({a}, {b})"), ("min", "T.min({a}, {b})"), ("floordiv", "T.floordiv({a}, {b})"),
        ("floormod", "T.floormod({a}, {b})"), ("pyfloordiv", "{a} // {b}"), ("pymod", "{a} % {b}"),
        ("truncdiv", "T.truncdiv({a}, {b})"), ("truncmod", "T.truncmod({a}, {b})"),
        ("ieee_fdiv", "T.ieee_fdiv({a}, {b}, 'rn')"),
        ("ite_nan", "T.if_then_else({a} < {b}, {a}, {b})"),
    ]),
    binary("pow_f32", "T.pow({a}, {b})", ulps=LIBM),
    # float64 in the directed modes (CUDA's __dmul_rz ...)
    *(binary(f"{n}_{m}_f64", e.replace("MODE", m), din="float64") for m in ("rz", "ru", "rd") for n, e in [
        ("ieee_add", "T.ieee_add({a}, {b}, 'MODE')"), ("ieee_mul", "T.ieee_mul({a}, {b}, 'MODE')"),
        ("ieee_fdiv", "T.ieee_fdiv({a}, {b}, 'MODE')"), ("ieee_fmaf", "T.ieee_fmaf({a}, {b}, {a}, 'MODE')"),
    ]),
    *(unary(f"{n}_{m}_f64", e.replace("MODE", m), din="float64") for m in ("rz", "ru", "rd") for n, e in [
        ("ieee_frcp", "T.ieee_frcp({a}, 'MODE')"), ("ieee_fsqrt", "T.ieee_fsqrt({a}, 'MODE')"),
    ]),
    # float32 in the directed modes (tilewise computes them in the IR; TileLang calls __fadd_rz ...)
    *(binary(f"{n}_{m}_f32", e.replace("MODE", m)) for m in ("rz", "ru", "rd") for n, e in [
        ("ieee_add", "T.ieee_add({a}, {b}, 'MODE')"), ("ieee_sub", "T.ieee_sub({a}, {b}, 'MODE')"),
        ("ieee_mul", "T.ieee_mul({a}, {b}, 'MODE')"), ("ieee_fdiv", "T.ieee_fdiv({a}, {b}, 'MODE')"),
        ("ieee_fmaf", "T.ieee_fmaf({a}, {b}, {a}, 'MODE')"),
    ]),
    binary("lt_f32", "{a} < {b}", dout="bool"),
    binary("ne_f32", "{a} != {b}", dout="bool"),
    binary("eq_f32", "{a} == {b}", dout="bool"),
    binary("fastdiv_f32", "T.__fdividef({a}, {b})", ulps=FAST) if False else None,
    # integer division / remainder / shifts / bit ops
    *(binary(f"{n}_{d}", e, din=d) for d in ["int8", "int32", "int64", "uint32"] for n, e in [
        ("pyfloordiv", "{a} // {b}"), ("pymod", "{a} % {b}"), ("floordiv", "T.floordiv({a}, {b})"),
        ("floormod", "T.floormod({a}, {b})"), ("truncdiv", "T.truncdiv({a}, {b})"),
        ("truncmod", "T.truncmod({a}, {b})"), ("max", "T.max({a}, {b})"), ("min", "T.min({a}, {b})"),
        ("and", "{a} & {b}"), ("xor", "{a} ^ {b}"),
        ("shl", "T.shift_left({a}, {b})"), ("shr", "T.shift_right({a}, {b})"),
        ("pyshl", "{a} << {b}"), ("pyshr", "{a} >> {b}"), ("mul", "{a} * {b}"), ("add", "{a} + {b}"),
    ]),
    *(reduce(f"{op}_f32", op) for op in ["reduce_sum", "reduce_max", "reduce_min", "reduce_abssum",
                                         "reduce_absmax"]),
    cumsum("cumsum_f32"),
    cumsum("cumsum_rev_f32", reverse=True),
    *(cumsum(f"cumsum_cancel_{tag}{'_rev' if rev else ''}", reverse=rev, shape=shape, threads=t, dim=d, cancel=True)
      for tag, shape, t, d in [("n64", (64,), 64, 0), ("n80", (80,), 64, 0), ("n256_t128", (256,), 128, 0),
                               ("n1000_t128", (1000,), 128, 0), ("n5_t32", (5,), 32, 0),
                               ("2d_dim1", (8, 80), 128, 1), ("2d_dim0", (80, 8), 128, 0)]
      for rev in (False, True)),
    # float atomic adds round in the order they land: a GPU's order is not TileLang's to promise
    atomic("atomic_add_f32", "atomic_add", ulps=4),
    atomic("atomic_max_f32", "atomic_max"),
    atomic("atomic_min_f32", "atomic_min"),
    atomic("atomic_max_i32", "atomic_max", "int32"),
    atomic("atomic_add_i32", "atomic_add", "int32"),
]
PROGRAMS = [p for p in PROGRAMS if p is not None]
PROGRAMS += SCALAR_PROGRAMS + TILE_PROGRAMS  # the widened check (issue #14)
UB_DIV = "integer division by zero (and INT_MIN / -1) is UB in C"
UB_SHIFT = "a shift by a negative amount or by the width or more is UB in C"
for _p in PROGRAMS:
    if any(k in _p.name for k in ("div", "mod")) and not _p.name.endswith(("_f32",)):
        _p.ub = _p.ub or UB_DIV
    if "sh" in _p.name.split("_")[0]:
        _p.ub = _p.ub or UB_SHIFT
    if _p.name.startswith(("mul_", "add_", "neg_i", "abs_i")) and "int" in _p.name:
        _p.ub = _p.ub or "signed overflow is UB in C (TVM's code wraps in practice)"


def module_source(progs: list[Prog]) -> str:
    """One Python file in TileLang syntax with a make_<name>() per program."""
    out = ["import tilelang", "import tilelang.language as T", ""]
    for p in progs:
        out.append(f"def make_{p.name}():")
        out.append(textwrap.indent(p.source, "    "))
        out.append("    return main\n")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# Side 1: TileLang (runs under TileLang's Python)

def lower_worker(module_path: str, out_path: str, names: list[str]) -> None:
    import importlib.util

    import tilelang
    from tilelang import tvm

    spec = importlib.util.spec_from_file_location("tl_diff_programs", module_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    result = {}
    target = {"kind": "cuda", "arch": "sm_80"}
    for name in names:
        try:
            func = getattr(mod, f"make_{name}")()
            with tvm.target.Target(target):
                art = tilelang.lower(func, target=target)
            result[name] = {"source": art.kernel_source}
        except Exception as e:  # noqa: BLE001 - reported per program
            result[name] = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"}
    Path(out_path).write_text(json.dumps(result))


def tilelang_sources(progs: list[Prog], workdir: Path, tl_python: str) -> dict:
    mod = workdir / "tl_programs.py"
    mod.write_text(module_source(progs))
    out = workdir / "tl_sources.json"
    cmd = [tl_python, __file__, "--lower-worker", str(mod), str(out), *[p.name for p in progs]]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"TileLang lowering failed:\n{r.stderr[-3000:]}")
    return json.loads(out.read_text())


# ---------------------------------------------------------------------------------------------
# Side 2: TileLang's CUDA in tilewise's NVRTC + PTX interpreter

def tl_include_options() -> tuple[str, ...]:
    tl = Path(subprocess.run([TL_PYTHON, "-c", "import tilelang,os;print(os.path.dirname(tilelang.__file__))"],
                             capture_output=True, text=True).stdout.strip() or
              "/work/peers-venv/lib/python3.11/site-packages/tilelang")
    return (f"-I{tl}/src", f"-I{tl}/3rdparty/cutlass/include", f"-I{CUDA_HOME}/include/cccl",
            f"-I{CUDA_HOME}/include", "-D__CUDACC_VER_MAJOR__=13", "-default-device",
            "--fmad=true")  # NVCC's and TileLang's default (tilewise's own CUDA passes --fmad=false)


def kernel_name(source: str) -> str:
    import re
    m = re.search(r'extern "C" __global__ void (?:__launch_bounds__\([^)]*\) )?(\w+)\(', source)
    if not m:
        raise ValueError("no kernel in TileLang's source")
    return m.group(1)


def kernel_params(source: str) -> list[str]:
    """The parameter names of TileLang's kernel, in its order."""
    import re
    m = re.search(r'extern "C" __global__ void (?:__launch_bounds__\([^)]*\) )?\w+\(([^)]*)\)', source)
    return [re.split(r"[\s*]+", a.strip())[-1] for a in m.group(1).split(",") if a.strip()]


def prim_func_params(source: str) -> list[str]:
    """The tensor parameter names of a program's `def main(...)`, in order."""
    import re
    sig = re.search(r"def main\((.*?)\):\n", source, re.S).group(1)
    return re.findall(r"(\w+)\s*:\s*T\.Tensor", sig)


def launch_dims(source: str) -> int:
    import re
    m = re.search(r"__launch_bounds__\((\d+)", source)
    return int(m.group(1)) if m else 1


def run_tilelang_ptx(p: Prog, source: str, args: list, options: tuple) -> list:
    from tilewise.backend.cuda.nvrtc import nvrtc_compile
    from tilewise.ptx.launch import run

    if "std::numeric_limits" in source:
        # NVCC's <limits> has std::numeric_limits<half_t> (cutlass specialises it); under NVRTC
        # cutlass puts it in cutlass::platform: the kernel means the same one
        at = source.index('extern "C"')
        source = source[:at] + "namespace std { using cutlass::platform::numeric_limits; }\n" + source[at:]
    code = "#include <tl_templates/cuda/nvrtc_std.h>\n" + source
    ptx = nvrtc_compile(code, "sm_80", ptx=True, options=options).ptx
    grid, block = p.grid, launch_dims(source)
    # TileLang's kernel takes the tensors in its own order (A, B, B0 for main(A, B0, B)): by name
    order = kernel_params(source)
    given = dict(zip(prim_func_params(p.source), args))
    if sorted(order) != sorted(given):
        raise ValueError(f"TileLang's kernel takes {order}, the program has {list(given)}")
    # the size of TileLang's dynamic shared memory is in its host code, not in the kernel: give
    # the kernel the 48 KiB any of these small programs fits in
    dyn = 48 * 1024 if "extern __shared__" in source else 0
    run(ptx, kernel_name(source), grid, block, [given[n] for n in order], dynamic_shared_bytes=dyn)
    return args


# ---------------------------------------------------------------------------------------------
# Side 3: tilewise

def tilewise_module(progs: list[Prog], workdir: Path):
    import importlib.util

    sys.path.insert(0, str(ROOT / "tools"))
    from yardstick import swap_imports

    path = workdir / "tw_programs.py"
    path.write_text(swap_imports(module_source(progs)))
    spec = importlib.util.spec_from_file_location("tw_diff_programs", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_tilewise(p: Prog, func, args: list, mode: str) -> list:
    import tilewise

    if mode == "cpu":
        k = tilewise.compile(func, target="cpu")
    else:
        k = tilewise.compile(func, target="cuda", execution_backend=mode)
    k(*args)
    return args


# ---------------------------------------------------------------------------------------------
# Comparison

def _as_float64(a: np.ndarray) -> np.ndarray:
    try:
        return a.astype(np.float64)
    except (TypeError, ValueError):
        return np.asarray(a.tolist(), dtype=np.float64)


def differences(ref: np.ndarray, got: np.ndarray, ulps: int, atol: float = 0.0) -> np.ndarray:
    """Indices where got differs from ref: bitwise, any NaN equals any NaN; within `ulps` when > 0,
    within `atol` when > 0."""
    r = ref.view(f"u{ref.itemsize}") if ref.dtype.kind != "b" else ref
    g = got.view(f"u{got.itemsize}") if got.dtype.kind != "b" else got
    bad = r != g
    if ref.dtype.kind in "fV" or ref.dtype.name.startswith(("bfloat", "float8")):
        rf, gf = _as_float64(ref), _as_float64(got)
        both_nan = np.isnan(rf) & np.isnan(gf)
        bad &= ~both_nan
        if ulps:
            with np.errstate(invalid="ignore", over="ignore"):
                spacing = np.abs(np.spacing(rf.astype(ref.dtype) if ref.dtype.kind == "f" else rf))
                close = (np.abs(rf - gf) <= ulps * spacing) | (rf == gf)
            bad &= ~close
        if atol:
            with np.errstate(invalid="ignore"):
                bad &= ~(np.abs(rf - gf) <= atol)
    return np.nonzero(bad.ravel())[0]


def fmt(a: np.ndarray, i: int) -> str:
    v = a.ravel()[i]
    if a.dtype.kind == "f":
        return f"{v!r}({v.view(f'u{a.itemsize}'):#x})" if np.isnan(v) else repr(float(v))
    return repr(v.item() if hasattr(v, "item") else v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-k", default="", help="only programs whose name contains one of these (comma-separated)")
    ap.add_argument("-v", action="store_true", help="print the differing values")
    ap.add_argument("--modes", default="cpu,emulator,ptx", help="tilewise runs to compare")
    ap.add_argument("--tilelang-python", default=TL_PYTHON)
    ap.add_argument("--keep", help="directory to keep the generated files and TileLang's sources in")
    ap.add_argument("--lower-worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.lower_worker:
        lower_worker(args.lower_worker[0], args.lower_worker[1], args.lower_worker[2:])
        return 0
    import warnings

    warnings.simplefilter("ignore")
    progs = [p for p in PROGRAMS if any(k in p.name for k in args.k.split(","))]
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="tl_diff_"))
    workdir.mkdir(parents=True, exist_ok=True)
    sources = tilelang_sources(progs, workdir, args.tilelang_python)
    for name, s in sources.items():
        if "source" in s:
            (workdir / f"{name}.cu").write_text(s["source"])
    tw = tilewise_module(progs, workdir)
    options = tl_include_options()
    modes = args.modes.split(",")
    mismatches, notes = 0, 0
    for p in progs:
        if p.skip:
            print(f"SKIP  {p.name}: {p.skip}")
            continue
        if "error" in sources[p.name]:
            print(f"SKIP  {p.name}: TileLang cannot lower it: {sources[p.name]['error']}")
            continue
        inputs = p.inputs()
        outs = p.out_init() if p.out_init else [np.zeros(s, dtype=_np_dtype(d)) for s, d in p.outputs]
        try:
            ref = run_tilelang_ptx(p, sources[p.name]["source"], [a.copy() for a in inputs] + [o.copy() for o in outs],
                                   options)[len(inputs):]
        except Exception as e:  # noqa: BLE001
            print(f"ERROR {p.name}: TileLang's CUDA in the PTX interpreter: {type(e).__name__}: {_first(e)}")
            mismatches += 1
            continue
        line = []
        for mode in modes:
            try:
                got = run_tilewise(p, getattr(tw, f"make_{p.name}")(), [a.copy() for a in inputs] +
                                   [o.copy() for o in outs], mode)[len(inputs):]
            except Exception as e:  # noqa: BLE001
                line.append(f"{mode}: ERROR {type(e).__name__}: {_first(e)}")
                mismatches += 1
                continue
            bad = [differences(r, g, p.ulps, p.atol) for r, g in zip(ref, got)]
            nbad = sum(len(b) for b in bad)
            if not nbad:
                line.append(f"{mode}: ok")
                continue
            order = p.cpu_order and mode == "cpu"
            if p.ub or order or p.known:
                notes += 1
            else:
                mismatches += 1
            line.append(f"{mode}: {nbad} differ" + (" (CPU summation order)" if order else ""))
            if args.v:
                for r, g, b in zip(ref, got, bad):
                    for i in b[:12]:
                        ins = ", ".join(fmt(a, i) for a in inputs) if inputs[0].size == r.size else ""
                        print(f"    {p.name} [{mode}] [{i}] in=({ins}) tilelang={fmt(r, i)} tilewise={fmt(g, i)}")
        hard = [s for s in line if not s.endswith(("ok", "(CPU summation order)"))]
        status = "ok   " if all(s.endswith("ok") for s in line) else (
            "UB   " if p.ub else "KNOWN" if p.known else "DIFF " if hard else "ORDER")
        why = "fast math" if p.ulps == FAST else "atomic order" if "atomic" in p.name else "libm accuracy"
        extra = f"  (within {p.ulps} ulps: {why})" if p.ulps else ""
        extra += f"  (within {p.atol}: {p.why})" if p.atol else ""
        extra += f"  (UB: {p.ub})" if p.ub and status == "UB   " else ""
        extra += f"  (known: {p.known})" if status == "KNOWN" else ""
        print(f"{status} {p.name:24s} " + "; ".join(line) + extra, flush=True)
    print(f"\n{len(progs)} programs, {mismatches} mismatches, {notes} differences where TileLang's result is UB "
          "or the CPU sums in its own order")
    print(f"TileLang's sources: {workdir}")
    return 1 if mismatches else 0


def _np_dtype(d: str):
    if d in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        import ml_dtypes
        return getattr(ml_dtypes, d)
    return np.dtype(d)


def _first(e: Exception) -> str:
    s = str(e).strip().splitlines()
    errors = [x.strip() for x in s[1:] if "error" in x]  # NVRTC's first error line says what
    return (s[0] + (" " + errors[0] if errors else ""))[:300] if s else ""


if __name__ == "__main__":
    sys.exit(main())
