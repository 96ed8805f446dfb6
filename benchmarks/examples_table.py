"""Builds the table of examples/README.md: for each example, the lines of kernel code, its CPU
time against the torch reference at the default size, whether it passes through the CUDA emulator
at a small size (and the shared-memory bank conflicts the emulator counted there on sm_80: extra
wavefronts per kernel, emulator/banks.py), the registers / spills / shared memory of its kernels
compiled for sm_80 and sm_90a by NVRTC (at the example's default tile configuration), the sm_90a
steady-state loop's instructions per HGMMA and whether the kernel is warp-specialised, and the
same kernels compiled for gfx942 by clang-19: VGPRs (+AGPRs), scratch (spill) bytes, LDS bytes and
the number of v_mfma instructions in the code object (or the CompileError's reason).

    .venv/bin/python benchmarks/examples_table.py [--write]            # the whole table
    .venv/bin/python benchmarks/examples_table.py --rows mla gemm/ --write --no-cpu-timing
        # re-measure only the matching rows (glob or substring of the path), keep the others and,
        # without CPU timing, keep the CPU cells already in the README (--no-emulator: the emulator cells)
"""
from __future__ import annotations

import argparse
import ast
import fnmatch
import json
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


def emulator_run(path: Path, small: str, off: str) -> tuple[bool, list[int | None]]:
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
print("BANKS" + json.dumps([None if s is None else s.total_extra for s in stats]))
sys.exit(rc or 0)
'''
    rc, out = run(["-c", code], {"TILEWISE_TARGET": "cuda -arch=sm_80", "TILEWISE_EXECUTION_BACKEND": "emulator",
                                 "TILEWISE_EMULATOR_STATS": "1"})
    extras: list[int | None] = []
    for line in out.splitlines():
        if line.startswith("BANKS"):
            extras = json.loads(line[5:])
    return rc == 0, extras


def gpu_resources(path: Path, small: str, off: str, arch: str = "sm_80") -> list[dict]:
    """Record the kernels the example builds (on the CPU, small size) and compile each for `arch`,
    sm_90a and gfx942 ("hip"). A kernel that does not compile for gfx942 (its tile does not fit,
    or it uses something the HIP target refuses) records the error's first line instead."""
    code = f'''
import sys, json, importlib.util, re
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
    try:
        a = tilewise.compile(f, target="hip", execution_backend="emulator")
        au = a.resource_usage()
        au["mfma"] = len(re.findall(r"^\\s*v_mfma", a.get_isa(), re.M))
    except Exception as e:  # the cell names the error; the other columns stand
        au = {{"error": type(e).__name__ + ": " + (str(e).strip().splitlines() or [""])[0]}}
    out.append([u, hu, au])
print("RES" + json.dumps(out))
'''
    rc, out = run(["-c", code], {"TILEWISE_TARGET": "cpu"})
    for line in out.splitlines():
        if line.startswith("RES"):
            return json.loads(line[3:])
    return []


def _size(b: int) -> str:
    return f"{b // 1024}K" if b >= 1024 else str(b)


def _resources(res: list[dict]) -> str:
    regs = "/".join(str(r["registers"]) for r in res)
    spills = "/".join(str(r["spill_bytes"]) for r in res)
    smem = "/".join(_size(r["shared_bytes"]) for r in res)
    return f"{regs} | {spills} | {smem}"


def _short(reason: str, width: int = 100) -> str:
    """An error message fit for a table cell: one line, the example's path reduced to its line
    number, no pipes, at most `width` characters."""
    reason = re.sub(r"^\S+\.py:(\d+): ", r"line \1: ", reason.strip())
    reason = reason.replace("|", "/").replace("`", "'")
    return reason if len(reason) <= width else reason[:width - 1].rstrip() + "…"


def _vgprs(r: dict) -> str:
    """Architectural VGPRs, +AGPRs when there are any. On gfx90a / gfx942 (one register file of 512
    per lane) the metadata's .vgpr_count is the total: the arch VGPRs rounded up to 4, then the
    AGPRs (the canonical GEMM: .vgpr_count 268, .agpr_count 128, .amdhsa_accum_offset 140, and
    v0-v138 / a0-a127 in its ISA), so the arch part is the difference."""
    if not r.get("agprs"):
        return str(r["vgprs"])
    return f"{r['vgprs'] - r['agprs']}+{r['agprs']}"


def _gfx942(res: list[dict]) -> str:
    """VGPRs(+AGPRs) | scratch bytes | LDS bytes | MFMA count, one entry per kernel; a kernel that
    did not compile is ✗ in each cell, and the first such error's reason follows the VGPR cell."""
    def cells(r: dict, key) -> str:
        return "✗" if "error" in r else key(r)

    regs = "/".join(cells(r, _vgprs) for r in res)
    failed = [r["error"] for r in res if "error" in r]
    if failed:
        kind, _, why = failed[0].partition(": ")
        regs = f"{regs} ({kind}: {_short(why)})" if len(res) > 1 else f"{kind}: {_short(why)}"
    scratch = "/".join(cells(r, lambda r: str(r["scratch_bytes"])) for r in res)
    lds = "/".join(cells(r, lambda r: _size(r["lds_bytes"])) for r in res)
    mfma = "/".join(cells(r, lambda r: str(r["mfma"])) for r in res)
    return f"{regs} | {scratch} | {lds} | {mfma}"


COLUMNS = ["example", "kernel lines", "CPU: tilewise vs torch reference (default size)", "emulator",
           "sm_80 bank conflicts (extra wavefronts)",
           "sm_80 registers", "spill bytes", "shared memory",
           "sm_90a registers", "spill bytes", "shared memory", "loop instructions per HGMMA", "warp-specialised",
           "gfx942 VGPRs(+AGPRs)", "scratch bytes", "LDS", "MFMA count"]
CPU_COL = 2
BEGIN, END = "<!-- table -->", "<!-- /table -->"
README = EXAMPLES / "README.md"


def measure(rel: str, small: str, off: str, cpu_timing: bool, emulate: bool = True) -> list[str | None]:
    """The cells of one row; the CPU cell is None when timing is skipped, the emulator and bank
    conflict cells when the emulator run is."""
    path = EXAMPLES / rel
    lines = kernel_lines(path)
    cpu = None
    if cpu_timing:
        times = cpu_times(path)
        cpu = f"{times[0][0]:.1f} ms vs {times[0][1]:.1f} ms ({times[0][1] / times[0][0]:.2f}x)" if times else "n/a"
    emu, banks = None, None
    if emulate:
        ok, extras = emulator_run(path, small, off)
        emu = "passes" if ok else "FAILS"
        banks = "/".join("-" if x is None else str(x) for x in extras) if extras else "n/a"
    arch = RESOURCE_ARCH.get(rel, "sm_80")
    res = gpu_resources(path, RESOURCE_ARGS.get(rel, small), off, arch)
    if res:
        cuda = _resources([r for r, _, _ in res])
        if arch != "sm_80":
            cuda = cuda.replace(" |", f" ({arch}) |", 1)
        hop = [h for _, h, _ in res]
        per = "/".join("-" if h["per_hgmma"] is None else f"{h['per_hgmma']:g}" for h in hop)
        ws = "/".join("WS" if h["ws"] else "-" for h in hop)
        gpu = f"{cuda} | {_resources(hop)} | {per} | {ws} | {_gfx942([a for _, _, a in res])}"
    else:
        gpu = " | ".join(["n/a"] * (len(COLUMNS) - 5))
    return [f"`{rel}`", str(lines), cpu, emu, banks, *gpu.split(" | ")]


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split(" | ")]


def old_rows(text: str) -> dict[str, list[str]]:
    """{example: cells} of the table now in the README, its cells moved under COLUMNS by column
    name (the k-th "spill bytes" to the k-th); a column it did not have reads "not measured"."""
    if BEGIN not in text:
        return {}
    block = text[text.index(BEGIN):text.index(END)].splitlines()
    rows = [ln for ln in block if ln.startswith("|") and not ln.startswith("|---")]
    if not rows:
        return {}
    header = _cells(rows[0])
    where = []  # for each of COLUMNS, its index in the old header or None
    for i, name in enumerate(COLUMNS):
        k = COLUMNS[:i].count(name)
        hits = [j for j, h in enumerate(header) if h == name]
        where.append(hits[k] if k < len(hits) else None)
    out = {}
    for r in rows[1:]:
        cells = _cells(r)
        if len(cells) == len(header):
            out[cells[0].strip("`")] = [cells[j] if j is not None else "not measured" for j in where]
    return out


def selected(patterns: list[str]) -> list[tuple[str, str, str]]:
    """TABLE entries whose path matches any pattern (a glob, or a substring of the path)."""
    if not patterns:
        return list(TABLE)
    out = [e for e in TABLE if any(fnmatch.fnmatch(e[0], p) or p in e[0] for p in patterns)]
    if not out:
        raise SystemExit(f"--rows {' '.join(patterns)} matches no example of the table")
    return out


def render(text: str, rows: dict[str, list[str]], old: dict[str, list[str]], cpu_timing: bool,
           emulate: bool = True) -> str:
    """The README with its table made of `rows` (measured now) and `old` (the others, kept), and
    a stamp: one line for a whole-table run, else one line per row re-measured."""
    body = [rows.get(rel) or old[rel] for rel, _, _ in TABLE if rel in rows or rel in old]
    header = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)
    table = header + "\n" + "\n".join("| " + " | ".join(c) + " |" for c in body)
    load = os.getloadavg()[0]
    today = time.strftime("%Y-%m-%d")
    kept = [part for part, skipped in (("CPU timing", not cpu_timing), ("emulator cells", not emulate)) if skipped]
    timing = f" ({' and '.join(kept)} kept from before)" if kept else ""
    block = text[text.index(BEGIN) + len(BEGIN):text.index(END)] if BEGIN in text else ""
    every = "Every row's other columns re-measured"
    if len(rows) == len(TABLE) and not kept:
        stamps = [f"Measured by `benchmarks/examples_table.py` on {today}, load average {load:.1f}."]
    elif len(rows) == len(TABLE):  # the kept parts keep the stamp of the run that measured them
        stamps = [ln for ln in block.strip().splitlines() if ln.startswith("Measured by")]
        stamps += [f"{every} on {today}, load average {load:.1f}{timing}."]
    else:
        stamps = [ln for ln in block.strip().splitlines() if ln.strip() and not ln.startswith("|")]
        stamps = [s for s in stamps if not any(f"`{rel}`" in s for rel in rows)]
        stamps += [f"Row `{rel}` re-measured (`--rows`) on {today}, load average {load:.1f}{timing}."
                   for rel in rows]
    new = f"{BEGIN}\n" + "\n".join(stamps) + f"\n\n{table}\n{END}"
    if BEGIN in text:
        return text[:text.index(BEGIN)] + new + text[text.index(END) + len(END):]
    return text + "\n" + new + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true",
                        help="update the table in examples/README.md (after each row, so that an "
                             "interrupted run keeps the rows it measured)")
    parser.add_argument("--rows", nargs="+", metavar="PATTERN", default=[],
                        help="only the examples whose path matches (glob or substring); with --write only "
                             "their rows are replaced, the others are kept")
    parser.add_argument("--no-cpu-timing", dest="cpu_timing", action="store_false",
                        help="skip the CPU timing; the CPU cell already in the README is kept")
    parser.add_argument("--no-emulator", dest="emulate", action="store_false",
                        help="skip the emulator run; its cells (passes, bank conflicts) in the README are kept")
    args = parser.parse_args(argv)
    text = README.read_text() if README.exists() else ""
    old = old_rows(text)
    rows: dict[str, list[str]] = {}
    for rel, small, off in selected(args.rows):
        t0 = time.time()
        cells = measure(rel, small, off, args.cpu_timing, args.emulate)
        # a part skipped keeps the README's cells
        cells = [c if c is not None else (old[rel][i] if rel in old else "not measured") for i, c in enumerate(cells)]
        rows[rel] = cells
        print("| " + " | ".join(cells) + " |", f"({time.time() - t0:.0f} s)", flush=True)
        if args.write:
            README.write_text(render(README.read_text() if README.exists() else "", rows, old, args.cpu_timing,
                                      args.emulate))
    text = README.read_text() if README.exists() else ""
    if args.write:
        print(text[text.index(BEGIN):text.index(END)])
    notes = text[text.index(END):] if END in text else ""
    for rel, cells in rows.items():
        m = re.search(r"\(([\d.]+)x\)", cells[CPU_COL])
        if m and float(m.group(1)) < 1.0 and f"`{rel}`" not in notes:
            print(f"note: {rel} is below 1.0x torch on the CPU; examples/README.md has no sentence on it "
                  "below the table", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
