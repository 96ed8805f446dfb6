"""Qualitative facts of the machine code of the examples, read from NVRTC's cubins with cuobjdump
(no GPU): the properties issue #17 asks of tilewise next to TileLang (benchmarks/vs_peers.py prints
the whole side-by-side table). Never timings: 128-bit global accesses, warp shuffles in
reductions, no spilled registers, the row kernels within TileLang's registers, and the
dequantising GEMM's main loop packed (vector shared stores, f16 arithmetic). One compile per kernel and architecture, shared by its tests."""
from __future__ import annotations

import functools
import re
import sys
from pathlib import Path

import pytest

import tilewise
from tilewise.backend.cuda import inspect as sass_tools

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
ARCHS = ("sm_80", "sm_90a")


def _example(relpath: str):
    sys.path.insert(0, str((EXAMPLES / relpath).parent))
    import importlib.util

    spec = importlib.util.spec_from_file_location("sass_quality_" + relpath.replace("/", "_")[:-3], EXAMPLES / relpath)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# kernel name -> (example, factory, arguments): the examples' production tile configurations
KERNELS = {
    "elementwise_add": ("elementwise/example_elementwise_add.py", "elementwise_add", (4096, 4096)),
    "rms_norm": ("norm/example_rms_norm.py", "rms_norm", (8192, 4096)),
    "softmax": ("softmax/example_softmax.py", "softmax", (8192, 8192)),
    "softmax_4x1024": ("softmax/example_softmax.py", "softmax", (4096, 1024, 4, "float32")),
    "dequant_gemm": ("dequantize_gemm/example_dequant_gemm_fp16xint4.py", "dequant_gemm_int4", (4096, 4096, 4096)),
    "flash_decoding": ("flash_decoding/example_gqa_decode.py", "flashdecoding", (4, 32, 4, 8192, 128)),
    # benchmarks/vs_peers.py's flash_fwd_d64: bshd 1 x 4096 x 32 x 64, 128 x 64 blocks, 2 stages, 256 threads
    "flash_fwd_d64": ("flash_attention/example_mha_fwd_bshd.py", "flashattn_fwd",
                      (1, 32, 4096, 64, False, 128, 64, 2, 256)),
}


@functools.cache
def _compiled(name: str, arch: str):
    relpath, factory, args = KERNELS[name]
    func = getattr(_example(relpath), factory)(*args)
    k = tilewise.compile(func, target=f"cuda -arch={arch}", execution_backend="emulator")
    funcs = sass_tools.parse_sass(sass_tools.get_sass(k.build.binary))
    return k.resource_usage(), max(funcs.values(), key=len)


def _per_mma(loop) -> float:
    """Loop instructions per 16x8x16 MMA's worth of tensor-core work (HMMA.16816 or HGMMA)."""
    work = 0.0
    for i in loop.instrs:
        m = re.match(r"HGMMA\.(\d+)x(\d+)x(\d+)", i.opcode + i.operands)
        work += int(m[1]) * int(m[2]) * int(m[3]) / (16 * 8 * 16) if m else i.opcode.startswith("HMMA.16816")
    return len(loop) / work


def _opcodes(instrs, op: str) -> list[str]:
    return [i.opcode for i in instrs if i.op == op]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", ["elementwise_add", "rms_norm", "softmax"])
def test_row_kernels_use_128_bit_global_accesses(name, arch):
    """Element-wise add (fp32) and the fp16 row kernels load and store whole 16-byte vectors
    (an fp16 row read into an fp32 fragment too: the vector follows the memory side)."""
    usage, instrs = _compiled(name, arch)
    loads, stores = _opcodes(instrs, "LDG"), _opcodes(instrs, "STG")
    assert loads and all(".128" in o for o in loads), loads
    assert stores and all(".128" in o for o in stores), stores
    assert usage["spill_bytes"] == 0, usage


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", ["rms_norm", "softmax", "softmax_4x1024"])
def test_row_reductions_use_warp_shuffles(name, arch):
    """Reductions over 128 threads: a butterfly of 5 SHFL per reduced value inside the warp, one
    shared-memory round between the 4 warps (TileLang's counts: 5, 10 and 40 SHFL)."""
    usage, instrs = _compiled(name, arch)
    shfl = _opcodes(instrs, "SHFL")
    per_row = {"rms_norm": 5, "softmax": 10, "softmax_4x1024": 40}[name]
    assert len(shfl) == per_row and all(o.startswith("SHFL.BFLY") for o in shfl), shfl
    assert usage["spill_bytes"] == 0, usage


# TileLang 0.1.15's registers for the same kernels (benchmarks/vs_peers.py; the same counts when
# its CUDA source is compiled with NVRTC 13.5 instead of nvcc 13.0)
TILELANG_REGISTERS = {("softmax", "sm_80"): 80, ("softmax", "sm_90a"): 80, ("softmax_4x1024", "sm_80"): 56,
                      ("softmax_4x1024", "sm_90a"): 56, ("rms_norm", "sm_80"): 62, ("rms_norm", "sm_90a"): 64}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", ["rms_norm", "softmax", "softmax_4x1024"])
def test_row_kernels_need_no_more_registers_than_tilelang(name, arch):
    """The row kernels fit in at most TileLang's registers: the last element-wise update (the
    softmax's 64 IEEE divisions) is computed at the store (transform/sink_register_updates.py),
    several rows' cross-warp partials are stored value-major so each row is combined from one
    vector load (tileop/reduce.py all_reduce), and RMSNorm's weights are loaded after the row
    sum's barriers (transform/sink_register_loads.py). Before: softmax 81 / 95, the 4-row fp32
    softmax 60 on sm_80, RMSNorm 63 on sm_80."""
    usage, _ = _compiled(name, arch)
    assert usage["registers"] <= TILELANG_REGISTERS[name, arch], usage
    assert usage["spill_bytes"] == 0, usage


@pytest.mark.parametrize("arch", ARCHS)
def test_dequant_gemm_main_loop_is_packed(arch):
    """The fp16 x int4 GEMM expands its weight tile in the main loop: each thread's run of
    dequantised values goes to shared memory in one 8-byte store, the arithmetic is f16 (HADD2 /
    HMUL2 after ptxas pairs the f16 instructions), no conversions through float; the steady state
    is unrolled by its stages. Loop instructions per 16x8x16 MMA stay below TileLang 0.1.15's
    (4.83 on sm_80, 0.95 on sm_90a in benchmarks/vs_peers.py)."""
    usage, instrs = _compiled("dequant_gemm", arch)
    assert usage["spill_bytes"] == 0, usage
    tc = "HGMMA" if arch == "sm_90a" else "HMMA"
    loop = sass_tools.steady_state_loop(instrs, key=tc)
    ops = [i.opcode for i in loop.instrs]
    assert ops.count("STS.64") > ops.count("STS.U16"), ops  # (one STS.U16: the tile's scales)
    assert "HMUL2" in ops and "I2F.F16" in ops
    assert not any(o.startswith("F2FP") for o in ops)  # no float -> f16 packing in the loop
    assert _per_mma(loop) < {"sm_80": 4.83, "sm_90a": 0.95}[arch]


def test_flash_decoding_split_loop_is_static():
    """Flash decoding at its default dims (d128, 8 splits of 8192 keys): the split's trip count
    ceildiv(min(start + 1024, 8192) - start, 64) is 16 for every block (start = split * 1024 <
    8192), so the pipelined loop has a static steady state (unrolled by its 2 stages, copies
    without bounds guards) and each wait is issued once. Fewer loop instructions per HMMA than
    TileLang 0.1.15's 10.59 (benchmarks/vs_peers.py), no spills."""
    usage, instrs = _compiled("flash_decoding", "sm_80")
    assert usage["spill_bytes"] == 0, usage
    loop = sass_tools.steady_state_loop(instrs, key="HMMA")
    assert sum(i.op == "HMMA" for i in loop.instrs) == 64  # two KV tiles: 2 x (16 for S + 16 for O)
    assert _per_mma(loop) < 10.59


@pytest.mark.parametrize("arch", ARCHS)
def test_flash_attention_loop_per_mma_below_tilelang(arch):
    """FlashAttention forward (d64, the vs_peers configuration): fewer steady-state loop
    instructions per 16x8x16 MMA than TileLang 0.1.15's 7.36 (sm_80, HMMA) and 1.59 (sm_90a,
    HGMMA) in benchmarks/vs_peers.py, and no spills."""
    usage, instrs = _compiled("flash_fwd_d64", arch)
    assert usage["spill_bytes"] == 0, usage
    loop = sass_tools.steady_state_loop(instrs, key="HGMMA" if arch == "sm_90a" else "HMMA")
    assert _per_mma(loop) < {"sm_80": 7.36, "sm_90a": 1.59}[arch], (len(loop), loop.mix())
