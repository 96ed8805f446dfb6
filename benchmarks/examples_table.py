"""Builds the table of examples/README.md in one run: for each example, the lines of kernel code,
its CPU time against the torch reference at the default size, whether it passes through the
CUDA emulator at a small size (and the shared-memory bank conflicts it counted there on sm_80:
extra wavefronts per kernel, emulator/banks.py), and the registers / spills / shared memory of its kernels compiled
for sm_80 and sm_90a by NVRTC (at the example's default tile configuration), with the sm_90a
steady-state loop's instructions per HGMMA and whether the kernel is warp-specialised.

    .venv/bin/python benchmarks/examples_table.py [--write]   # --write updates examples/README.md
"""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# (path, small arguments for the emulator run and for recording the kernels, option that turns timing off)
TABLE = [
    ("gemm/example_gemm.py", "--m 144 --n 136 --k 72 --dtype float16", "--no-bench"),
    ("gemm/example_gemm_epilogue.py", "--m 130 --n 100 --k 70", "--no-bench"),
    ("gemm/example_gemm_transpose.py", "--m 136 --n 100 --k 70", "--no-bench"),
    ("gemm_splitk/example_gemm_splitk.py", "--m 100 --n 150 --k 400 --split-k 3", "--no-bench"),
    ("gemm_streamk/example_gemm_streamk.py", "--m 200 --n 136 --k 200 --num-sms 3", "--no-bench"),
    ("dequantize_gemm/example_dequant_gemm_fp16xint4.py", "--m 100 --n 130 --k 256 --group-size 64", "--no-bench"),
    ("dequantize_gemm/example_dequant_gemv_fp16xint4.py", "--n 100 --k 600 --group-size 128", "--no-bench"),
    ("gemv/example_gemv.py", "--n 100 --k 1000", "--no-bench"),
    ("elementwise/example_elementwise_add.py", "--m 100 --n 333", "--no-bench"),
    ("norm/example_rms_norm.py", "--m 37 --n 300", "--no-bench"),
    ("norm/example_layer_norm.py", "--m 37 --n 300 --dtype float32", "--no-bench"),
    ("softmax/example_softmax.py", "--m 37 --n 300", "--no-bench"),
    ("softmax/example_online_softmax.py", "--m 37 --n 1000", "--no-bench"),
    ("convolution/example_convolution.py", "--n 1 --c 20 --h 9 --w 11 --f 24 --k 3 --padding 1", "--no-bench"),
    ("blocksparse_gemm/example_blocksparse_gemm.py", "--m 200 --n 130 --k 300", "--no-bench"),
    ("cumsum/example_cumsum.py", "--m 37 --n 1000", "--no-bench"),
    ("flash_attention/example_mha_fwd_bshd.py", "--batch 1 --heads 1 --seq_len 160 --dim 64", "--bench_ms 0"),
    ("flash_attention/example_gqa_fwd_bshd.py", "--batch 1 --heads 2 --groups 2 --seq_len 160 --dim 64",
     "--bench_ms 0"),
    ("flash_attention/example_mha_bwd_bshd.py", "--batch 1 --heads 1 --seq_len 128 --dim 64", "--bench_ms 0"),
    ("flash_decoding/example_gqa_decode.py", "--batch 1 --heads 8 --kv_heads 2 --kv_ctx 300 --dim 64 --num_split 2",
     "--bench_ms 0"),
    ("deepseek_mla/example_mla_decode.py", "--batch 1 --heads 16 --kv_ctx 200 --dim 128 --pe_dim 32 --block_H 16 --num_split 2",
     "--bench_ms 0"),
    ("linear_attention/example_mamba_chunk_scan.py",
     "--batch 1 --heads 2 --groups 1 --seq_len 160 --chunk_size 64 --dim 32 --dstate 32", "--bench_ms 0"),
    ("linear_attention/example_mamba_chunk_state.py",
     "--batch 1 --heads 2 --groups 1 --seq_len 160 --chunk_size 64 --dim 32 --dstate 32", "--bench_ms 0"),
]

# The CUDA columns describe the kernels at the example's default head / state dimensions (which fix
# the tile shapes); only the sequence lengths are shortened so that recording them is quick.
RESOURCE_ARGS = {
    "flash_attention/example_gqa_fwd_bshd.py": "--batch 1 --heads 8 --groups 4 --seq_len 128 --dim 128",
    "flash_decoding/example_gqa_decode.py": "--batch 1 --heads 32 --kv_heads 4 --kv_ctx 300 --dim 128 --num_split 2",
    "deepseek_mla/example_mla_decode.py": "--batch 1 --heads 64 --kv_ctx 128 --dim 512 --pe_dim 64 --num_split 2",
    "linear_attention/example_mamba_chunk_scan.py":
        "--batch 1 --heads 2 --groups 1 --seq_len 256 --chunk_size 256 --dim 64 --dstate 128",
    "linear_attention/example_mamba_chunk_state.py":
        "--batch 1 --heads 2 --groups 1 --seq_len 256 --chunk_size 256 --dim 64 --dstate 128",
}

# FlashMLA is a Hopper kernel: at DeepSeek's dims its two-stage pipeline needs sm_90's shared memory.
RESOURCE_ARCH = {"deepseek_mla/example_mla_decode.py": "sm_90a"}

_TIMES = re.compile(r"tilewise\s+([\d.]+)\s*ms[^\n]*?(?:torch|numpy|reference)[^\n]*?([\d.]+)\s*ms")


def kernel_lines(path: Path) -> int:
    """Non-blank, non-comment lines inside @T.prim_func and @T.macro bodies."""
    src = path.read_text().splitlines()
    tree = ast.parse("\n".join(src))
    total = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        names = {getattr(d, "attr", getattr(d, "id", "")) for d in node.decorator_list}
        if not names & {"prim_func", "macro"}:
            continue
        for ln in src[node.body[0].lineno - 1:node.end_lineno]:
            s = ln.strip()
            if s and not s.startswith("#"):
                total += 1
    return total


def run(args: list[str], env: dict, timeout: float = 900) -> tuple[int, str]:
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, env={**os.environ, **env},
                       timeout=timeout, cwd=ROOT)
    return p.returncode, p.stdout + p.stderr


def cpu_times(path: Path) -> list[tuple[float, float]]:
    rc, out = run([str(path)], {"TILEWISE_TARGET": "cpu"})
    if rc != 0:
        return []
    return [(float(a), float(b)) for a, b in _TIMES.findall(out)]


def emulator_run(path: Path, small: str, off: str) -> tuple[bool, list[int]]:
    """Run the example at its small size in the CUDA emulator (sm_80) with bank conflicts counted:
    whether it passes, and the extra shared-memory wavefronts of each kernel it ran."""
    code = f'''
import sys, json, importlib.util
sys.path.insert(0, {str(path.parent)!r})
from tilewise.jit import kernel as jk
kernels = []
orig = jk.JITKernel.__init__
def init(self, *a, **k):
    orig(self, *a, **k)
    kernels.append(self)
jk.JITKernel.__init__ = init
spec = importlib.util.spec_from_file_location("ex", {str(path)!r})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
rc = m.main({small.split() + off.split()!r})
stats = [k.emulate_stats() for k in kernels]
print("BANKS" + json.dumps([s.total_extra for s in stats if s is not None]))
sys.exit(rc or 0)
'''
    rc, out = run(["-c", code], {"TILEWISE_TARGET": "cuda -arch=sm_80", "TILEWISE_EXECUTION_BACKEND": "emulator",
                                 "TILEWISE_EMULATOR_STATS": "1"})
    extras: list[int] = []
    for line in out.splitlines():
        if line.startswith("BANKS"):
            import json

            extras = json.loads(line[5:])
    return rc == 0, extras


def cuda_resources(path: Path, small: str, off: str, arch: str = "sm_80") -> list[dict]:
    """Record the kernels the example builds (on the CPU, small size) and compile them for `arch`."""
    code = f'''
import sys, json, importlib.util
sys.path.insert(0, {str(path.parent)!r})
import tilewise
from tilewise.jit import build as jb
funcs = []
orig = jb.build
def rec(f, *a, **k):
    funcs.append(f)
    return orig(f, *a, **k)
jb.build = rec
spec = importlib.util.spec_from_file_location("ex", {str(path)!r})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
args = {small.split() + off.split()!r}
if "--bench_ms" in args: args += ["--target", "cpu"]
m.main(args)
from tilewise.backend.cuda.inspect import steady_state_loop
from tilewise.jit.build import walk_kernels
out = []
for f in list(funcs):
    u = tilewise.compile(f, target="cuda -arch=" + {arch!r}, execution_backend="emulator").resource_usage()
    h = tilewise.compile(f, target="cuda -arch=sm_90a", execution_backend="emulator")
    hu = h.resource_usage()
    loop = steady_state_loop(h.get_sass(), key="HGMMA")
    n = loop.mix(["HGMMA"])["HGMMA"] if loop is not None else 0
    hu["per_hgmma"] = round(len(loop) / n, 1) if n else None
    hu["ws"] = any(k.attrs.get("warp_specialized") for k in walk_kernels(h.build.lowered))
    out.append([u, hu])
print("RES" + json.dumps(out))
'''
    rc, out = run(["-c", code], {"TILEWISE_TARGET": "cpu"})
    for line in out.splitlines():
        if line.startswith("RES"):
            import json

            return json.loads(line[3:])
    return []


def _resources(res: list[dict]) -> str:
    regs = "/".join(str(r["registers"]) for r in res)
    spills = "/".join(str(r["spill_bytes"]) for r in res)
    smem = "/".join(f"{r['shared_bytes'] // 1024}K" if r["shared_bytes"] >= 1024 else str(r["shared_bytes"])
                    for r in res)
    return f"{regs} | {spills} | {smem}"


def main() -> int:
    rows = []
    for rel, small, off in TABLE:
        path = EXAMPLES / rel
        t0 = time.time()
        lines = kernel_lines(path)
        times = cpu_times(path)
        emu, extras = emulator_run(path, small, off)
        banks = "/".join(str(x) for x in extras) if extras else "n/a"
        arch = RESOURCE_ARCH.get(rel, "sm_80")
        res = cuda_resources(path, RESOURCE_ARGS.get(rel, small), off, arch)
        if times:
            tw, ref = times[0]
            cpu = f"{tw:.1f} ms vs {ref:.1f} ms ({ref / tw:.2f}x)"
        else:
            cpu = "n/a"
        if res:
            cuda = _resources([r for r, _ in res])
            if arch != "sm_80":
                cuda = cuda.replace(" |", f" ({arch}) |", 1)
            hop = [h for _, h in res]
            per = "/".join("-" if h["per_hgmma"] is None else f"{h['per_hgmma']:g}" for h in hop)
            ws = "/".join("WS" if h["ws"] else "-" for h in hop)
            cuda += f" | {_resources(hop)} | {per} | {ws}"
        else:
            cuda = "n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a"
        rows.append(f"| `{rel}` | {lines} | {cpu} | {'passes' if emu else 'FAILS'} | {banks} | {cuda} |")
        print(rows[-1], f"({time.time() - t0:.0f} s)", flush=True)
    header = ("| example | kernel lines | CPU: tilewise vs torch reference (default size) | emulator | "
              "sm_80 bank conflicts (extra wavefronts) | "
              "sm_80 registers | spill bytes | shared memory | sm_90a registers | spill bytes | shared memory | "
              "loop instructions per HGMMA | warp-specialised |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    table = header + "\n" + "\n".join(rows)
    load = os.getloadavg()[0]
    stamp = f"Measured by `benchmarks/examples_table.py` on {time.strftime('%Y-%m-%d')}, load average {load:.1f}."
    print(table)
    if "--write" in sys.argv:
        readme = EXAMPLES / "README.md"
        text = readme.read_text() if readme.exists() else ""
        begin, end = "<!-- table -->", "<!-- /table -->"
        block = f"{begin}\n{stamp}\n\n{table}\n{end}"
        if begin in text:
            text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
        else:
            text = text + "\n" + block + "\n"
        readme.write_text(text)
    return 0


if __name__ == "__main__":
    _ = importlib.util
    sys.exit(main())
