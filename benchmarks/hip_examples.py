"""The examples' kernels compiled for an AMD MI300X ("hip -arch=gfx942", clang-19): for each
example of benchmarks/examples_table.py at the configuration its resource columns use (the
default tiles, short sequences), the kernels it builds are recorded from a CPU run and compiled
for gfx942; the table gives per kernel the registers (the unified VGPR file: architectural VGPRs
plus AGPRs), the AGPRs, scratch bytes, LDS bytes and the v_mfma
instructions in the code object, or the CompileError that a configuration not fitting gfx942 is.

    .venv/bin/python benchmarks/hip_examples.py [--only mla,gqa]
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from examples_table import EXAMPLES, RESOURCE_ARGS, TABLE  # noqa: E402

import tilewise  # noqa: E402
from tilewise.errors import CompileError  # noqa: E402
from tilewise.jit import build as jb  # noqa: E402

# gfx942's form of examples whose default tiles do not fit its 64 KiB of LDS (the default row is
# kept, showing the error): smaller tiles or one stage; MLA decoding with the query in registers
# and 32 keys per step
HIP_FORMS = {
    "dequantize_gemm/example_dequant_gemm_fp16xint4.py": " --block 64 128 64",
    "cumsum/example_cumsum.py": " --block 16 256",
    "flash_attention/example_gqa_fwd_bshd.py": " --block_M 64",
    "flash_decoding/example_gqa_decode.py": " --num_stages 1",
    "deepseek_mla/example_mla_decode.py": " --q_in_registers --block_N 32 --num_stages 1",
}


def record(rel: str, args: str, off: str) -> list:
    """The prim_funcs the example compiles when run on the CPU with `args`."""
    path = EXAMPLES / rel
    funcs = []
    orig = jb.build

    def rec(f, *a, **k):
        funcs.append(f)
        return orig(f, *a, **k)

    jb.build = rec
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        argv = args.split() + off.split()
        if "--bench_ms" in argv:
            argv += ["--target", "cpu"]
        m.main(argv)
    finally:
        jb.build = orig
        sys.path.remove(str(path.parent))
    return funcs


def hip_row(func) -> str:
    try:
        k = tilewise.compile(func, target="hip -arch=gfx942", execution_backend="emulator")
        u = k.resource_usage()
        mfma = sum(1 for ln in k.get_isa().splitlines() if "v_mfma" in ln)
    except CompileError as e:
        return f"CompileError: {str(e).splitlines()[0]}"
    return (f"{u['registers']} | {u['arch_vgprs']} | {u['agprs']} | {u['scratch_bytes']} | {u['lds_bytes']} | "
            f"{mfma}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated substrings of example paths")
    opts = ap.parse_args()
    only = [s for s in opts.only.split(",") if s]
    print("| example | kernel | registers (VGPR file) | arch VGPRs | AGPRs | scratch bytes | LDS bytes | v_mfma |\n"
          "|---|---|---|---|---|---|---|---|")
    for rel, small, off in TABLE:
        if only and not any(s in rel for s in only):
            continue
        args = RESOURCE_ARGS.get(rel, small)
        forms = [("", args)] + ([("gfx942 form: " + HIP_FORMS[rel].strip(), args + HIP_FORMS[rel])]
                                if rel in HIP_FORMS else [])
        for label, a in forms:
            t0 = time.time()
            try:
                funcs = record(rel, a, off)
            except Exception as e:  # noqa: BLE001 - a row saying what failed, not a stopped table
                print(f"| `{rel}` {label} | - | recording failed: {type(e).__name__}: {str(e).splitlines()[0]} |")
                continue
            for i, f in enumerate(funcs):
                print(f"| `{rel}` {label} | {i} | {hip_row(f)} |", f"({time.time() - t0:.0f} s)" if i == 0 else "",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
