"""Run TileLang's own example programs against tilewise, with the import swapped.

    python tools/run_tilelang_examples.py --tag v0.1.13 --dirs gemm elementwise norm
    python tools/run_tilelang_examples.py --tag v0.1.13 --mode emulator -k example_gemm.py
    python tools/run_tilelang_examples.py --tag v0.1.13 --list

The `examples/` directory of a TileLang checkout (`--repo`, a bare clone is fine) at `--tag` is
extracted into a temporary directory and every `tilelang` / `tvm` import in it is pointed at
tilewise by tools/yardstick.py's `swap_imports` (nothing else in a file changes). The same
shim as the yardstick's conftest makes the run possible without a GPU (`--mode cpu`: kernels
that ask for `target="cuda"` compile for the CPU; `--mode emulator`: they compile for CUDA
`--arch` and run in the thread-IR emulator; `.cuda()` tensors stay on the CPU either way). The
shim is installed as a module the examples' own conftest imports first, and that scripts run
directly import before they start.

What runs, per example directory:

- each test of its `test_*.py` files (TileLang's CI calls the examples' `main()` there, mostly
  with small sizes), one pytest process per test;
- each script with a `__main__` block that no test file of the directory imports, run as
  `python script.py` (its default arguments).

Where the GPU-sized defaults are too large for a CPU, SMALL gives smaller arguments (marked
"(small)" in the output).

Every unit has its own process and `--timeout` seconds; the script prints PASS / FAIL /
TIMEOUT / SKIP with the first error line (the exception, not the traceback). Directories and
files that need hardware or software this project does not emulate are skipped with the reason
(SKIPS below). Benchmark and regression scripts (timing runs, not checks) and Triton
baselines are not run. It is a measuring tool for docs/yardstick.md, not part of `make test`.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from yardstick import CONFTEST, MIRROR, ROOT, swap_imports  # noqa: E402  (one shim for both tools)

SHIM = "_tilewise_shim"

# What the example scripts (not TileLang's tests) also ask of torch.cuda, on top of the
# yardstick's shim: their timing loops use CUDA events, a few fork the CUDA RNG or make a CUDA
# generator, and the MoE example overlaps two streams (on the CPU everything runs in order).
EXAMPLES_SHIM = """
# Added by tools/run_tilelang_examples.py.
import time as _time


class _WallEvent:  # torch.cuda.Event(enable_timing=True) on the host's clock
    def __init__(self, *a, **k):
        self.t = None

    def record(self, *a, **k):
        self.t = _time.perf_counter()

    def synchronize(self):
        pass

    def wait(self, *a, **k):
        pass

    def query(self):
        return True

    def elapsed_time(self, end):
        return (end.t - self.t) * 1e3


torch.cuda.Event = _WallEvent
_Generator = torch.Generator


class _HostGenerator(_Generator):  # torch.Generator(device="cuda"): a CPU generator (still a type)
    def __new__(cls, device=None):
        return _Generator.__new__(cls, device=_cpu(device) or "cpu")

    def __init__(self, device=None):
        pass


torch.Generator = _HostGenerator


class _HostStream:  # CPU kernels run in program order: one stream, already synchronised
    cuda_stream = 0

    def synchronize(self):
        pass

    def wait_stream(self, other):
        pass

    def wait_event(self, event):
        pass

    def query(self):
        return True


torch.cuda.Stream = lambda *a, **k: _HostStream()
torch.cuda.default_stream = lambda *a, **k: _HostStream()
torch.cuda.stream = lambda stream=None: __import__("contextlib").nullcontext()
torch.cuda.get_rng_state = lambda *a, **k: torch.get_rng_state()
torch.cuda.set_rng_state = lambda *a, **k: None
torch.cuda.set_device = lambda *a, **k: None
torch.cuda.init = lambda: None
torch.cuda.get_device_name = lambda *a, **k: _Props.name
torch.cuda.memory_allocated = lambda *a, **k: 0
torch.cuda.max_memory_allocated = lambda *a, **k: 0
torch.cuda.reset_peak_memory_stats = lambda *a, **k: None
"""

# Example directories (or files, relative to examples/) that are not run, with the reason.
SKIPS = {
    "amd": "AMD (HIP/MFMA) examples: the CDNA target is not what this run measures",
    "gemm_sm100": "Blackwell-only (tcgen05 / TMEM)",
    "gemm_tcgen05": "Blackwell-only (tcgen05 / TMEM)",
    "aws": "Blackwell-only (its tests are gated on compute capability 10.x; tcgen05 kernels)",
    "gemm_sm120": "Blackwell-only (sm_120 block-scaled nvfp4 mma)",
    "blockscaled_gemm_sm100": "Blackwell-only (tcgen05 block-scaled mma)",
    "flash_attention_sm100": "Blackwell-only (tcgen05 / TMEM)",
    "deepseek_v4/fp8_fp4_gemm_1d1d_sm100.py": "Blackwell-only (tcgen05)",
    "deepseek_v4/sparse_attn_fwd_sm90.py": "Hopper-only (wgmma / TMA / warp specialisation)",
    "warp_specialize": "Hopper-only (T.ws producer/consumer barriers, TMA)",
    "deepseek_mla/example_mla_decode_ws.py": "Hopper-only (warp specialisation, mbarriers)",
    "dequantize_gemm/example_dequant_gemm_bf16_mxfp4_cdna4.py": "AMD CDNA4 only",
    "gemm_fp8/example_tilelang_gemm_amd.py": "AMD only",
    "gemm_fp8/example_tilelang_gemm_amd_fp8_preshuffle.py": "AMD only",
    "gemm_fp8/example_tilelang_gemm_fp8_sm100.py": "Blackwell-only (tcgen05)",
    "analyze": "tilelang.tools.Analyzer: TVM IR analysis (TVM internals)",
    "visual_layout_inference": "dumps TVM's layout-inference IR (TVM internals)",
    "plot_layout": "plots layouts with matplotlib: no kernel runs",
    "autodd": "TileLang's AST delta-debugging tool (TVM internals)",
    "iket": "TileLang's interactive kernel tuner front end (TVM internals)",
    "eager_jit": "notebooks",
    "bitnet-1.58b": "a HuggingFace model (needs weights and vLLM)",
    "deepseek_v32/inference": "a full model (needs weights)",
    "minference": "builds a CUDA torch extension (ops/vertical_slash_index.cu)",
    "dsa_hisa": "Hopper-only (fp8 wgmma, TMA)",
    "flash_attention/example_gqa_bwd_tma_reduce.py": "Hopper-only: its __main__ asserts compute capability >= 9.0",
    "deepseek_v32/sparse_mla_fwd_seesaw.py": "Hopper-only (setmaxnreg warp specialisation, mbarriers); its default "
                                             "run is a long-context prefill benchmark",
}

# Smaller problems for the CPU than the GPU sizes the examples default to: for a script, the
# command-line arguments it is run with (argparse scripts) or a call of its own `main`; for a
# test (a pytest node id), the call that replaces the test's own (the same function, smaller).
# Everything else about the program is as written.
SMALL: dict[str, list[str] | str] = {
    "deepseek_mla/example_mla_decode_paged.py": ["--batch", "2", "--h_q", "16", "--cache_seqlen", "256",
                                                 "--d", "96", "--dv", "64"],
    "deepseek_mla/example_mla_decode_persistent.py": ["--batch", "1", "--heads", "64", "--kv_ctx", "256",
                                                      "--dim", "64", "--pe_dim", "32"],
    "deepseek_mla/experimental/example_mla_decode_kv_fp8.py": ["--batch", "1", "--heads", "64", "--kv_ctx", "256",
                                                               "--dim", "64", "--pe_dim", "32"],
    "flash_decoding/test_example_flash_decoding.py::test_example_example_mha_inference":
        "example_mha_inference.main(BATCH=1, H=2, Q_CTX=64, KV_CTX=256, D_HEAD=64, causal=False)",
    "gemm/test_example_gemm.py::test_example_gemm_intrinsics": "example_gemm_intrinsics.main(M=256, N=256, K=256)",
    "flash_attention/test_example_flash_attention.py::test_example_gqa_fwd_bshd":
        "example_gqa_fwd_bshd.main(batch=1, heads=16, seq_len=256, dim=128, is_causal=False, groups=16, tune=False)",
    "gemm/example_gemm_persistent.py": ["--M", "512", "--N", "512", "--K", "512"],
    "gemm/example_gemm_autotune_pass_configs.py": ["--m", "512", "--n", "512", "--k", "512"],
    "linear_attention/example_mamba_chunk_scan.py": ["--batch", "1", "--heads", "2", "--seq_len", "512"],
    "linear_attention/example_mamba_chunk_state.py": ["--batch", "1", "--heads", "2", "--seq_len", "512"],
    "linear_attention/example_retention_fwd.py": ["--B", "1", "--S", "256", "--H", "2"],
    "linear_attention/test_linear_attn.py::test_example_linear_attn_fwd":
        "example_linear_attn_fwd.main(B=1, S=256, H=2, D=128)",
    "linear_attention/test_linear_attn.py::test_example_linear_attn_bwd":
        "example_linear_attn_bwd.main(B=1, S=256, H=2, D=128)",
    "fusedmoe/test_example_fusedmoe.py::test_example_fusedmoe_tilelang":
        "example_fusedmoe_tilelang.main(d_hidden=256, d_expert=128, n_routed_experts=4, n_shared_experts=1, "
        "n_experts_per_token=2, batch_size=1, seq_len=64)",
    # its main() runs 12 sizes up to 8192 tokens x 4096; the fused kernel programs its threads (the
    # emulator on the CPU target): 2048 x 4096 alone takes minutes there
    "deepseek_mhc/test_example_mhc.py::test_mhc_pre": "example_mhc_pre.test(n=512, hidden_size=1280, hc_mult=4)",
}

# Scripts that are never run directly: timing runs, regression benchmarks, Triton baselines.
_NOT_RUN = re.compile(r"^(benchmark_|regression_|example_triton_|block_sparse_attn_triton|bench_)|_triton\.py$")


def skip_reason(rel: str) -> str | None:
    """Why `rel` (a path relative to examples/) is not run, or None."""
    for key, why in SKIPS.items():
        if rel == key or rel.startswith(key.rstrip("/") + "/"):
            return why
    return None


def extract(repo: Path, tag: str, dest: Path) -> Path:
    """The examples of `tag` under dest/examples, imports swapped, the shim installed."""
    tar = subprocess.run(["git", "-C", str(repo), "archive", tag, "examples"], check=True,
                         capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        tf.extractall(dest, filter="data")
    ex = dest / "examples"
    for f in ex.rglob("*.py"):
        f.write_text(swap_imports(f.read_text()))
    (ex / f"{SHIM}.py").write_text(CONFTEST + EXAMPLES_SHIM)
    conftest = ex / "conftest.py"
    theirs = conftest.read_text() if conftest.exists() else ""
    conftest.write_text(f"import {SHIM}  # noqa: F401  (tools/run_tilelang_examples.py)\n" + theirs)
    (ex / "pytest.ini").write_text("[pytest]\nnorecursedirs = bitnet-1.58b\n")
    return ex


def _imported_names(path: Path) -> set[str]:
    try:
        tree = ast.parse(path.read_text())
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _has_main(path: Path) -> bool:
    return re.search(r"^if\s+__name__\s*==\s*['\"]__main__['\"]", path.read_text(), re.M) is not None


def plan(ex: Path, dirs: list[str], only: str) -> list[tuple[str, str, str | None]]:
    """(kind, path relative to examples/, skip reason) for every unit to run: kind is
    "tests" (a test file) or "script"."""
    units = []
    chosen = sorted(p for p in ex.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))) \
        if not dirs else [ex / d for d in dirs]
    for d in chosen:
        if not d.is_dir():
            print(f"(no examples/{d.name} at this tag)")
            continue
        files = sorted(d.rglob("*.py"))
        tests = [f for f in files if f.name.startswith("test_") and not f.name.startswith("test_utils")]
        covered = set().union(*(_imported_names(t) for t in tests)) if tests else set()
        for f in files:
            rel = str(f.relative_to(ex))
            if only and only not in rel:
                continue
            if f in tests:
                units.append(("tests", rel, skip_reason(rel)))
            elif _has_main(f) and f.stem not in covered and not _NOT_RUN.search(f.name):
                units.append(("script", rel, skip_reason(rel)))
    return units


_EXC = re.compile(r"^(\w+\.)*\w*(Error|Exception|Interrupt|Exit)\b.*|^\w+Error$")


def first_error(out: str) -> str:
    """The exception line of a traceback (the last one), else the last non-empty line."""
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if _EXC.match(ln) or ln.startswith("E   "):
            return ln.removeprefix("E   ").strip()[:300]
    return lines[-1][:300] if lines else "(no output)"


def _env(ex: Path, mode: str, arch: str, cache: Path) -> dict:
    return {**os.environ, "YARDSTICK_MODE": mode, "YARDSTICK_ARCH": arch, "TILEWISE_CACHE_DIR": str(cache),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ex)]), "PYTHONHASHSEED": "0",
            "MPLBACKEND": "Agg"}


LOG: Path | None = None


def _run(cmd: list[str], cwd: Path, env: dict, timeout: float) -> tuple[int | None, str, float]:
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = None, e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    if LOG is not None:
        with LOG.open("a") as f:
            f.write(f"\n===== {' '.join(cmd[-1:])} (rc={rc})\n{out}")
    return rc, out, time.monotonic() - t0


def collect(ex: Path, rel: str, env: dict, timeout: float) -> tuple[list[str], str]:
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "--rootdir",
           str(ex), "-o", "addopts=", rel]
    rc, out, _ = _run(cmd, ex, env, timeout)
    ids = [ln.strip() for ln in out.splitlines() if "::" in ln and not ln.startswith(("ERROR", "FAILED"))]
    if rc is None:
        return [], "TIMEOUT while collecting"
    if not ids:
        return [], first_error(out)
    return ids, ""


def run_call(ex: Path, where: Path, code: str, env: dict, timeout: float) -> tuple[str, str, float]:
    """Run `code` in directory `where` (its modules importable), the shim imported first."""
    boot = f"import sys; sys.path.insert(0, {str(where)!r}); import {SHIM}; {code}"
    rc, out, dt = _run([sys.executable, "-c", boot], where, env, timeout)
    if rc is None:
        return "TIMEOUT", f"after {timeout:.0f} s", dt
    return ("PASS", "", dt) if rc == 0 else ("FAIL", first_error(out), dt)


_MISSING = re.compile(r"No module named '([\w.]+)'")
_GATE = re.compile(r"requires_cuda_compute_version(?:_(ge|gt|le|lt|eq))?$")
_CMP = {"ge": lambda a, b: a >= b, "gt": lambda a, b: a > b, "le": lambda a, b: a <= b,
        "lt": lambda a, b: a < b, "eq": lambda a, b: a == b}


def _imports(path: Path, package: str) -> bool:
    return re.search(rf"^\s*(import|from)\s+{re.escape(package)}\b", path.read_text(), re.M) is not None


def uncollectable_tests(ex: Path, rel: str, package: str, arch: str):
    """When a test file cannot be collected because it imports `package` (a Triton / FLA baseline
    next to the TileLang examples), its tests are still measured one by one outside pytest: each
    `test_*` body is run as written (its compute-capability gate honoured) unless the example
    modules it calls import `package` themselves. Yields (name, status, why, seconds) or, for a
    test to run, (name, None, source, 0)."""
    path = ex / rel
    here = path.parent
    digits = re.sub(r"\D", "", arch)  # sm_80 -> "80", sm_90a -> "90"
    cc = (int(digits[:-1]), int(digits[-1]))
    tree = ast.parse(path.read_text())
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef) or not fn.name.startswith("test_"):
            continue
        name = f"{rel}::{fn.name}"
        gate = None
        for d in fn.decorator_list:
            f = d.func if isinstance(d, ast.Call) else None
            m = _GATE.search(getattr(f, "attr", getattr(f, "id", "")) or "") if f is not None else None
            if m:
                gate = (m.group(1) or "ge", tuple(ast.literal_eval(a) for a in d.args))
        if gate is not None and not _CMP[gate[0]](cc, (gate[1] + (0,))[:2]):
            yield name, "SKIP", f"emulated device is {arch}", 0.0
            continue
        wanted = [ast.literal_eval(d.args[0]) for d in fn.decorator_list if isinstance(d, ast.Call) and d.args
                  and getattr(d.func, "attr", getattr(d.func, "id", "")) == "requires_package"]
        absent = [w for w in wanted if importlib.util.find_spec(w) is None]
        if absent:  # tilelang.testing.requires_package, as pytest would skip it
            yield name, "SKIP", f"requires_package({absent[0]!r}): not installed", 0.0
            continue
        body = [st for st in fn.body if not (isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant))]
        used = sorted({n.value.id for st in body for n in ast.walk(st)
                       if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                       and (here / f"{n.value.id}.py").exists()})
        needs = [u for u in used if _imports(here / f"{u}.py", package)]
        if needs:
            yield name, "FAIL", f"ModuleNotFoundError: No module named '{package}' (imported by {needs[0]}.py)", 0.0
            continue
        src = "\n".join(["import tilewise as tilelang", *(f"import {u}" for u in used), *(ast.unparse(st) for st in body)])
        yield name, None, src, 0.0


def run_test(ex: Path, node: str, env: dict, timeout: float) -> tuple[str, str, float]:
    if isinstance(SMALL.get(node), str):  # "module.main(...)": the test's own call, smaller
        call = SMALL[node]
        return run_call(ex, (ex / node.split("::")[0]).parent, f"import {call.split('.')[0]}; {call}", env, timeout)
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", "--rootdir", str(ex),
           "-o", "addopts=", node]
    rc, out, dt = _run(cmd, ex, env, timeout)
    if rc is None:
        return "TIMEOUT", f"after {timeout:.0f} s", dt
    tail = out.strip().splitlines()[-1] if out.strip() else ""
    if " passed" in tail and "failed" not in tail and "error" not in tail:
        return "PASS", "", dt
    why = [ln for ln in out.splitlines() if ln.startswith("SKIPPED")]
    # (the examples' conftest ends a run whose every test was skipped with "No tests were collected")
    if (" skipped" in tail or why) and "failed" not in tail and " error" not in tail and " passed" not in tail:
        return "SKIP", (why[0].split(": ", 1)[-1] if why else tail)[:300], dt
    return "FAIL", first_error(out), dt


def run_script(ex: Path, rel: str, env: dict, timeout: float) -> tuple[str, str, float]:
    path = ex / rel
    small = SMALL.get(rel, [])
    if isinstance(small, str):  # a call of the script's own function
        return run_call(ex, path.parent, f"import {path.stem}; {path.stem}.{small}", env, timeout)
    boot = (f"import sys, runpy; sys.path.insert(0, {str(path.parent)!r}); import {SHIM}; "
            f"sys.argv = {[str(path), *small]!r}; runpy.run_path({str(path)!r}, run_name='__main__')")
    rc, out, dt = _run([sys.executable, "-c", boot], path.parent, env, timeout)
    if rc is None:
        return "TIMEOUT", f"after {timeout:.0f} s", dt
    return ("PASS", "", dt) if rc == 0 else ("FAIL", first_error(out), dt)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", type=Path, default=MIRROR)
    ap.add_argument("--tag", default="v0.1.13")
    ap.add_argument("--dirs", nargs="*", default=[], help="example directories (default: all)")
    ap.add_argument("--mode", choices=["cpu", "emulator"], default="cpu")
    ap.add_argument("--arch", default="sm_80")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per test / script")
    ap.add_argument("-k", dest="only", default="", help="run only files whose path contains this")
    ap.add_argument("--list", action="store_true", help="print the plan, run nothing")
    ap.add_argument("--keep", type=Path, help="extract into this directory (kept) instead of a temp one")
    ap.add_argument("--log", type=Path, help="append every unit's full output to this file")
    args = ap.parse_args(argv)
    global LOG
    LOG = args.log

    with tempfile.TemporaryDirectory(prefix="tl-examples-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        ex = extract(args.repo, args.tag, root)
        env = _env(ex, args.mode, args.arch, root / ".cache")
        counts: dict[str, int] = {}

        def report(status: str, name: str, why: str, dt: float = 0.0) -> None:
            counts[status] = counts.get(status, 0) + 1
            print(f"{status:7s} {name:75s} {dt:6.0f}s  {why}", flush=True)

        for kind, rel, skip in plan(ex, args.dirs, args.only):
            if args.list or skip:
                report("SKIP" if skip else "PLAN", f"{rel} ({kind})", skip or "")
                continue
            if kind == "script":
                status, why, dt = run_script(ex, rel, env, args.timeout)
                report(status, rel + (" (small)" if rel in SMALL else ""), why, dt)
                continue
            ids, err = collect(ex, rel, env, args.timeout)
            missing = _MISSING.search(err) if not ids else None
            if missing:  # a baseline package the file imports: its tests one by one, outside pytest
                package = missing.group(1).split(".")[0]
                for name, status, why, dt in uncollectable_tests(ex, rel, package, args.arch):
                    if status is None:
                        status, why, dt = run_call(ex, (ex / rel).parent, f"exec({why!r})", env, args.timeout)
                    report(status, f"{name} (outside pytest: collection needs {package})", why, dt)
            elif not ids:
                report("FAIL", f"{rel} (collection)", err)
            for node in ids:
                status, why, dt = run_test(ex, node, env, args.timeout)
                report(status, node + (" (small)" if node in SMALL else ""), why, dt)
        print(f"\n{args.tag} {args.mode} ({args.arch if args.mode == 'emulator' else 'cpu'}): "
              + " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
