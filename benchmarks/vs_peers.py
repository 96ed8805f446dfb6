"""tilewise next to its peers, TileLang and Triton, in machine code: the same kernels compiled by
each for sm_80 and sm_90a, and read with cuobjdump (no GPU needed). One table, one run:

    .venv/bin/python benchmarks/vs_peers.py [--arch sm_80 sm_90a] [--kernels gemm softmax ...]
                                            [--compilers tilewise tilelang triton] [--jobs 1]

The TileLang-language kernels are written once (benchmarks/peers/tl_kernels.py) and compiled by
tilewise and by TileLang from the same file; the Triton kernels (benchmarks/peers/triton_kernels.py)
are written for this benchmark. Each compiler runs in a child process (benchmarks/peers/
compile_cells.py) that prints the cubins; TileLang and Triton run in their own venv (their pins
conflict with tilewise's), found through --peers-venv, $TILEWISE_PEERS_VENV, .venv-peers or
../peers-venv. A missing venv or a failed compile fills its cells with a note; it never stops the
table.

Columns: registers per thread; spill = per-thread local memory (STACK + LOCAL); smem = dynamic +
static shared memory per block (on sm_90 the static part includes 1 KB the system reserves); SASS = instructions of the kernel; loop = instructions of the
steady-state loop (the backward-branch loop with the most tensor-core instructions,
tilewise.backend.cuda.inspect.steady_state_loop); TC = tensor-core instructions in it (HMMA on
sm_80, HGMMA for wgmma on sm_90a); loop/TC = loop / TC; loop/mma = loop instructions per
16x8x16 MMA's worth of tensor-core work (the same as loop/TC for HMMA.16816, comparable across
HMMA and HGMMA); SHFL = warp shuffles in the kernel; ld/st = widest global load (LDG, or LDGSTS
for cp.async; "tma" for TMA) and store, in bits. A "!" after smem: more than the architecture
lets a block have, so the cubin cannot launch. Compile errors fill their cell.
A "*" after loop/TC: the loop holds a rolled inner loop with tensor-core instructions, whose
body the static counts take once. Warp-specialised kernels (TileLang on sm_90a) have their loop measured in the consumer warps: the
producer's TMA loop is a separate loop without tensor-core instructions.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CELLS_SCRIPT = ROOT / "benchmarks" / "peers" / "compile_cells.py"
ARCHS = ("sm_80", "sm_90a")
COMPILERS = ("tilewise", "tilelang", "triton")
PEERS = ("tilelang", "triton")

# name -> (description, has a Triton version)
KERNELS = {
    "gemm": ("fp16 GEMM 4096^3, 128x128x32 tiles, 3 stages, 128 threads", True),
    "gemm_epilogue": ("fp16 GEMM 4096^3 + bias + GELU (erf) on the accumulator, tiles as gemm", True),
    "softmax": ("softmax fp16 8192x8192, 1 row/block, 128 threads", True),
    "softmax_4x1024": ("softmax fp32 4096x1024, 4 rows/block, 128 threads", True),
    "rms_norm": ("RMSNorm fp16 8192x4096 (+weight), 1 row/block, 128 threads", True),
    "flash_fwd_d64": ("FlashAttention fwd fp16 bshd 1x4096x32x64, 128x64 blocks, 2 stages, 256 threads", True),
    "flash_fwd_d128": ("FlashAttention fwd fp16 bshd 1x4096x32x128, 128x64 blocks, 2 stages, 256 threads", True),
    "flash_fwd_d64_causal": ("flash_fwd_d64, causal (loop to the diagonal, masked scores)", True),
    "flash_fwd_d128_causal": ("flash_fwd_d128, causal (loop to the diagonal, masked scores)", True),
    "flash_decode": ("GQA flash decoding split kernel fp16, 4x32 heads (4 KV), 8192 keys, d128, block_H 16, "
                     "block_N 64, 8 splits, 2 stages, 128 thr", False),
    "elementwise_add": ("add fp32 4096x4096, 8x256 tiles, 128 threads", True),
    "mla_decode": ("MLA decoding fp16, heads 128, dim 512 + pe 64, block_H 64, block_N 64, 2 stages (1 on sm_80), "
                   "256 thr",
                   False),
    "dequant_gemm_int4": ("fp16 x int4 GEMM 4096^3, group 128, 128x128x64 tiles, 3 stages, 128 threads", False),
}

NAME_W = max(map(len, KERNELS)) + 2  # the kernel column

PEERS_SETUP = """\
The peers live in their own venv (TileLang 0.1.15 pins its own TVM; Triton 3.9 its own LLVM):
    python3 -m venv .venv-peers
    .venv-peers/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    .venv-peers/bin/pip install 'tilelang[nvcc]==0.1.15' triton==3.9.0
(or point --peers-venv / $TILEWISE_PEERS_VENV at an existing one; TileLang compiles with nvcc,
from the [nvcc] extra, $CUDA_HOME or PATH; Triton brings its own ptxas)."""


# ---------------------------------------------------------------------------- running the compilers


@dataclass
class Cell:
    cubin: bytes | None = None
    dynamic_shared: int = 0
    seconds: float = 0.0
    error: str | None = None
    metrics: dict = field(default_factory=dict)


def find_peers_python(explicit: str | None) -> Path | None:
    candidates = [explicit] if explicit else [os.environ.get("TILEWISE_PEERS_VENV"), ROOT / ".venv-peers",
                                              ROOT.parent / "peers-venv"]
    for c in candidates:
        if c and (Path(c) / "bin" / "python").exists():
            return Path(c) / "bin" / "python"
    return None


def _pump(stream, sink: queue.Queue) -> None:
    for line in stream:
        sink.put(line)
    sink.put(None)


def run_compiler(python: Path, compiler: str, cells: list[tuple[str, str]], cell_timeout: float
                 ) -> tuple[dict, dict[tuple[str, str], Cell]]:
    """Runs compile_cells.py on `cells`; a child that dies or hangs costs only the cell it was on
    (that cell is marked and a new child takes the rest)."""
    versions: dict = {}
    results: dict[tuple[str, str], Cell] = {}
    todo = list(cells)
    while todo:
        proc = subprocess.Popen([str(python), str(CELLS_SCRIPT), compiler, *(f"{k}:{a}" for k, a in todo)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                start_new_session=True)
        lines: queue.Queue = queue.Queue()
        errors: queue.Queue = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        threading.Thread(target=_pump, args=(proc.stderr, errors), daemon=True).start()
        current, done_before, started = None, len(results), False
        while True:
            try:  # importing TileLang takes seconds: the first line gets extra time
                line = lines.get(timeout=cell_timeout if started else cell_timeout + 120)
            except queue.Empty:
                os.killpg(proc.pid, signal.SIGKILL)  # the child's own process group: it and its nvcc
                proc.wait()
                results[current or todo[0]] = Cell(error=f"timeout after {cell_timeout:.0f} s")
                break
            if line is None:
                proc.wait()
                stderr = "".join(iter(errors.get, None)).strip().splitlines()
                why = f"exit {proc.returncode}: {stderr[-1][:200] if stderr else 'no message'}"
                if current is not None:
                    results[current] = Cell(error=f"compiler crashed ({why})")
                elif len(results) == done_before:  # died before its first cell
                    for c in todo:
                        results[c] = Cell(error=f"compiler failed to start ({why})")
                break
            msg = json.loads(line)
            started = True
            if "versions" in msg:
                versions = msg["versions"]
            elif "import_error" in msg:
                for c in todo:
                    results[c] = Cell(error=f"not installed ({msg['import_error'][:150]})")
            elif "start" in msg:
                current = tuple(msg["start"])
            elif "cell" in msg:
                if "error" in msg:
                    cell = Cell(error=msg["error"], seconds=msg["seconds"])
                else:
                    cell = Cell(cubin=base64.b64decode(msg["cubin"]), dynamic_shared=msg["dynamic_shared"],
                                seconds=msg["seconds"])
                results[tuple(msg["cell"])] = cell
                current = None
        todo = [c for c in todo if c not in results]
    return versions, results


# ---------------------------------------------------------------------------- reading the SASS

_WIDTH_MODS = {"128": 128, "64": 64, "U16": 16, "S16": 16, "16": 16, "U8": 8, "S8": 8}


def access_bits(opcode: str) -> int:
    for mod in opcode.split(".")[1:]:
        if mod in _WIDTH_MODS:
            return _WIDTH_MODS[mod]
    return 32


def mma_work(instr) -> float:
    """Multiply-adds of one tensor-core instruction, in units of one 16x8x16 MMA (HMMA.16816)."""
    text = instr.opcode + instr.operands  # the SASS parser stops HGMMA's opcode at "64x128x16"'s "x"
    m = re.match(r"HGMMA\.(\d+)x(\d+)x(\d+)", text)
    if m:
        return int(m.group(1)) * int(m.group(2)) * int(m.group(3)) / (16 * 8 * 16)
    m = re.match(r"HMMA\.(16816|1688|884)", text)
    return {"16816": 1.0, "1688": 0.5, "884": 0.125}[m.group(1)] if m else 1.0


def analyse(cell: Cell) -> dict:
    from tilewise.backend.cuda import inspect as sass_tools

    sass = sass_tools.get_sass(cell.cubin)
    funcs = sass_tools.parse_sass(sass)
    usage = sass_tools.resource_usage_all(cell.cubin)
    # the kernel itself: a module may also hold small helper kernels
    name = max(funcs, key=lambda f: len(funcs[f]))
    instrs = funcs[name]
    use = usage.get(name) or next(iter(usage.values()))
    tc_op = "HGMMA" if any(i.op == "HGMMA" for i in instrs) else "HMMA"
    loop = sass_tools.steady_state_loop(instrs, key=tc_op)
    tc = [i for i in loop.instrs if i.op == tc_op] if loop else []
    # a rolled inner loop with tensor-core instructions (MLA decoding's P @ V k loop on sm_80):
    # the static counts take its body once, however often it runs per iteration
    nested = bool(loop) and any(
        lp.end != loop.end and loop.start <= lp.start and lp.end <= loop.end and any(i.op == tc_op for i in lp.instrs)
        for lp in sass_tools.find_loops(instrs))
    loads = [i for i in instrs if i.op in ("LDG", "LDGSTS")]
    stores = [i for i in instrs if i.op == "STG"]
    tma_load = any(i.op == "UTMALDG" for i in instrs)
    tma_store = any(i.op == "UTMASTG" for i in instrs)
    return {
        "registers": use["registers"],
        "spill": use["spill_bytes"],
        "smem": cell.dynamic_shared + use["shared_bytes"],
        "sass": len(instrs),
        "loop": len(loop) if tc else None,
        "tc": len(tc),
        "tc_op": tc_op,
        "per_tc": len(loop) / len(tc) if tc else None,
        "per_mma": len(loop) / sum(mma_work(i) for i in tc) if tc else None,
        "nested": nested,
        "shfl": sum(1 for i in instrs if i.op == "SHFL"),
        "ld": "tma" if tma_load else (str(max(access_bits(i.opcode) for i in loads)) if loads else "-"),
        "st": "tma" if tma_store else (str(max(access_bits(i.opcode) for i in stores)) if stores else "-"),
    }


# ---------------------------------------------------------------------------- the tables

COLUMNS = [("regs", 5), ("spill", 6), ("smem", 8), ("SASS", 6), ("loop", 5), ("TC", 9), ("loop/TC", 8),
           ("loop/mma", 9), ("SHFL", 5), ("ld/st", 8)]


# the largest dynamic + static shared memory a block may opt into (CUDA programming guide)
SMEM_LIMIT = {"sm_80": 163 * 1024, "sm_86": 99 * 1024, "sm_89": 99 * 1024, "sm_90": 227 * 1024,
              "sm_90a": 227 * 1024}


def _kib(n: int) -> str:
    return f"{n / 1024:.1f}K" if n >= 1024 else f"{n}B"


def cell_text(cell: Cell | None) -> list[str] | str:
    if cell is None:
        return "-"
    if cell.error:
        return cell.error
    m = cell.metrics
    return [str(m["registers"]), str(m["spill"]), _kib(m["smem"]) + ("!" if m["smem_over"] else ""),
            str(m["sass"]), str(m["loop"]) if m["loop"] else "-", f"{m['tc']} {m['tc_op']}" if m["tc"] else "-",
            f"{m['per_tc']:.2f}{'*' * m['nested']}" if m["per_tc"] else "-",
            f"{m['per_mma']:.2f}{'*' * m['nested']}" if m["per_mma"] else "-",
            str(m["shfl"]), f"{m['ld']}/{m['st']}"]


def print_table(kernels, archs, compilers, results) -> None:
    head = f"{'kernel':{NAME_W}}{'arch':8}{'compiler':10}" + "".join(f"{c:>{w}}" for c, w in COLUMNS)
    print(head)
    print("-" * len(head))
    width = sum(w for _, w in COLUMNS)
    for k in kernels:
        for a in archs:
            for c in compilers:
                if c == "triton" and not KERNELS[k][1]:
                    continue
                t = cell_text(results.get((c, k, a)))
                row = f"{k:{NAME_W}}{a:8}{c:10}"
                if isinstance(t, str):
                    row += "  " + t.replace(str(ROOT) + os.sep, "")[:width + 20]
                else:
                    row += "".join(f"{v:>{w}}" for v, (_, w) in zip(t, COLUMNS))
                print(row)
        print()


def print_ratios(kernels, archs, results) -> None:
    print("tilewise / peer (below 1: tilewise better): steady-state loop instructions per 16x8x16 MMA, and registers;")
    print("'best' is the better of TileLang and Triton for that kernel and metric")
    print(f"{'kernel':{NAME_W}}{'arch':8}{'loop/mma vs TileLang':>24}{'vs best':>17}{'regs vs TileLang':>20}{'vs best':>17}")

    def metric(c, k, a, key):
        cell = results.get((c, k, a))
        return cell.metrics.get(key) if cell is not None and not cell.error else None

    def pair(k, a, key, fmt):
        ours = metric("tilewise", k, a, key)
        tl = metric("tilelang", k, a, key)
        peers = [(metric(p, k, a, key), p) for p in PEERS if metric(p, k, a, key) is not None]
        vs_tl = f"{ours / tl:.2f} ({fmt(ours)}/{fmt(tl)})" if ours is not None and tl else "-"
        if ours is None or not peers:
            return vs_tl, "-"
        best, who = min(peers)
        return vs_tl, f"{ours / best:.2f} {who}"

    for k in kernels:
        for a in archs:
            ours = results.get(("tilewise", k, a))
            if ours is not None and ours.error:
                print(f"{k:{NAME_W}}{a:8}{'(tilewise: compile error)':>24}")
                continue
            loop = pair(k, a, "per_mma", lambda v: f"{v:.2f}")
            regs = pair(k, a, "registers", str)
            print(f"{k:{NAME_W}}{a:8}{loop[0]:>24}{loop[1]:>17}{regs[0]:>20}{regs[1]:>17}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", nargs="+", default=list(ARCHS))
    ap.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS))
    ap.add_argument("--compilers", nargs="+", default=list(COMPILERS), choices=list(COMPILERS))
    ap.add_argument("--peers-venv", help="venv with tilelang 0.1.15 and triton 3.9 (default: see above)")
    ap.add_argument("--jobs", type=int, default=1, help="compilers run side by side (each compiles serially)")
    ap.add_argument("--cell-timeout", type=float, default=600, help="seconds one compile may take")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    peers_python = find_peers_python(args.peers_venv)
    runs = []
    for c in args.compilers:
        cells = [(k, a) for k in args.kernels for a in args.arch if c != "triton" or KERNELS[k][1]]
        if cells:
            runs.append((c, Path(sys.executable) if c == "tilewise" else peers_python, cells))

    results: dict[tuple[str, str, str], Cell] = {}
    versions: dict[str, dict] = {}
    seconds: dict[str, float] = {}

    def run_one(run):
        c, python, cells = run
        t = time.perf_counter()
        if python is None:
            v, res = {}, {cell: Cell(error="not installed (no peers venv; see below)") for cell in cells}
        else:
            v, res = run_compiler(python, c, cells, args.cell_timeout)
        seconds[c] = time.perf_counter() - t
        versions[c] = v
        for (k, a), cell in res.items():
            results[(c, k, a)] = cell

    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        list(pool.map(run_one, runs))

    for (_, _, a), cell in results.items():
        if cell.cubin is not None:
            try:
                cell.metrics = analyse(cell)
                m = cell.metrics
                # sm_90 cubins count the 1 KB the system reserves per block in their static figure
                reserved = 1024 if a.startswith("sm_9") and m["smem"] - cell.dynamic_shared >= 1024 else 0
                m["smem_over"] = m["smem"] - reserved > SMEM_LIMIT.get(a, 1 << 30)
            except Exception as exc:  # a cubin cuobjdump cannot read is one cell's problem
                cell.error = f"SASS analysis failed: {type(exc).__name__}: {str(exc).splitlines()[0][:150]}"

    print("tilewise vs TileLang vs Triton: SASS of the same kernels (no GPU; cuobjdump)")
    for c in args.compilers:
        v = versions.get(c)
        if v:
            print(f"  {c:9} {v.get(c, '')}, {v.get('backend', '?')}  (compiles took {seconds.get(c, 0):.0f} s)")
        else:
            print(f"  {c:9} {'failed to start' if c == 'tilewise' else 'not installed'}")
    if "triton" in args.compilers:
        print("  Triton compiles capability 9.0 (GPUTarget('cuda', 90, 32)) for sm_90a")
    print("kernels:")
    for k in args.kernels:
        print(f"  {k:{NAME_W}} {KERNELS[k][0]}{'' if KERNELS[k][1] else ' (no Triton version)'}")
    print()
    print_table(args.kernels, args.arch, args.compilers, results)
    print_ratios(args.kernels, args.arch, results)
    if any(c.metrics.get("nested") for c in results.values()):
        print("\n* the steady-state loop holds a rolled inner loop with tensor-core instructions: static counts, its "
              "body counted once however often it runs")
    if any(c.metrics.get("smem_over") for c in results.values()):
        print("\n! shared memory above the architecture's per-block maximum (sm_80 163 KB, sm_90 227 KB): the cubin "
              "builds but cannot launch")
    if any(c in PEERS and not versions.get(c) for c in args.compilers):
        print()
        print(PEERS_SETUP)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
