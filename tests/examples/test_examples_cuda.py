"""Every example compiled for CUDA: run through the thread-exact emulator at a small size (it must
pass its own check, and the emulator must report no race, async-copy misuse or out-of-bounds
access), and every kernel it builds compiled by NVRTC for sm_80 with no spilled registers."""
from __future__ import annotations

import pytest
from test_examples_attention import CASES as ATTENTION_CASES
from test_examples_attention import load as load_attention
from test_examples_gemm import load as load_gemm

import tilewise
from tilewise.jit import build as jit_build

# Small sizes that still leave edge tiles; the emulator runs every thread of every block.
GEMM_FAMILY = {
    "gemm": ("gemm/example_gemm.py", "--m 144 --n 136 --k 72 --dtype float16 bfloat16"),
    "gemm_epilogue": ("gemm/example_gemm_epilogue.py", "--m 130 --n 100 --k 70"),
    "gemm_transpose": ("gemm/example_gemm_transpose.py", "--m 136 --n 100 --k 70"),
    "gemm_splitk": ("gemm_splitk/example_gemm_splitk.py", "--m 100 --n 150 --k 400 --split-k 3"),
    "gemm_streamk": ("gemm_streamk/example_gemm_streamk.py", "--m 200 --n 136 --k 200 --num-sms 3 --block 64 64 32"),
    "dequant_gemm": ("dequantize_gemm/example_dequant_gemm_fp16xint4.py", "--m 100 --n 130 --k 256 --group-size 64"),
    "dequant_gemv": ("dequantize_gemm/example_dequant_gemv_fp16xint4.py", "--n 100 --k 600 --group-size 128"),
    "gemv": ("gemv/example_gemv.py", "--n 100 --k 1000"),
    "elementwise_add": ("elementwise/example_elementwise_add.py", "--m 100 --n 333"),
    "rms_norm": ("norm/example_rms_norm.py", "--m 37 --n 300 --block-m 4"),
    "layer_norm": ("norm/example_layer_norm.py", "--m 37 --n 300 --block-m 4 --dtype float32"),
    "softmax": ("softmax/example_softmax.py", "--m 37 --n 300 --block-m 4"),
    "online_softmax": ("softmax/example_online_softmax.py", "--m 37 --n 1000 --block 4 256"),
    "convolution": ("convolution/example_convolution.py", "--n 1 --c 20 --h 9 --w 11 --f 24 --k 3 --padding 1"),
    "blocksparse_gemm": ("blocksparse_gemm/example_blocksparse_gemm.py", "--m 200 --n 130 --k 300 --block 64 64 32"),
    "cumsum": ("cumsum/example_cumsum.py", "--m 37 --n 1000 --block 8 64"),
}


def _recorded(monkeypatch) -> list:
    """Every function compiled from now on (jit.build.build is where all compiles start)."""
    funcs = []
    original = jit_build.build

    def record(func, *args, **kwargs):
        funcs.append(func)
        return original(func, *args, **kwargs)

    monkeypatch.setattr(jit_build, "build", record)
    return funcs


@pytest.fixture
def cuda_kernels(monkeypatch):
    """Route the examples' target="auto" compiles to CUDA + emulator and record the functions."""
    monkeypatch.setenv("TILEWISE_TARGET", "cuda")
    monkeypatch.setenv("TILEWISE_EXECUTION_BACKEND", "emulator")
    return _recorded(monkeypatch)


def _check_sm80(funcs):
    assert funcs, "the example compiled no CUDA kernel"
    for f in list(funcs):  # (compiling here records more)
        usage = tilewise.compile(f, target="cuda -arch=sm_80", execution_backend="emulator").resource_usage()
        assert usage["spill_bytes"] == 0, (f.name, usage)


@pytest.mark.parametrize("name", list(GEMM_FAMILY))
def test_gemm_family_example_on_sm90a_in_emulator(name, capsys, monkeypatch):
    """The same examples compiled for Hopper (wgmma, TMA pipelines where they apply)."""
    monkeypatch.setenv("TILEWISE_TARGET", "cuda -arch=sm_90a")
    monkeypatch.setenv("TILEWISE_EXECUTION_BACKEND", "emulator")
    relpath, argv = GEMM_FAMILY[name]
    rc = load_gemm(relpath).main(argv.split() + ["--no-bench"])
    out = capsys.readouterr().out
    assert rc == 0 and "WRONG" not in out and "OK" in out, out


@pytest.mark.parametrize("name", list(GEMM_FAMILY))
def test_gemm_family_example_in_emulator_and_for_sm80(name, capsys, cuda_kernels):
    relpath, argv = GEMM_FAMILY[name]
    rc = load_gemm(relpath).main(argv.split() + ["--no-bench"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "WRONG" not in out and "OK" in out, out
    _check_sm80(cuda_kernels)


@pytest.mark.parametrize("name", ["mha_fwd", "gqa_fwd_causal", "mha_bwd", "gqa_decode_split", "mla_decode",
                                  "mamba_chunk_scan", "mamba_chunk_state"])
def test_attention_example_kernels_compile_for_sm80(name, capsys, monkeypatch):
    # the emulator runs of these examples live in test_examples_attention.py; here every kernel
    # they build (recorded from their CPU run) is also compiled by NVRTC
    relpath, argv = ATTENTION_CASES[name]
    funcs = _recorded(monkeypatch)
    rc = load_attention(relpath).main(argv.split() + ["--target", "cpu", "--bench_ms", "0"])
    assert rc == 0, capsys.readouterr().out
    assert funcs
    _check_sm80(list(funcs))


def test_mla_decode_at_deepseek_dims_on_sm80_has_no_spills(capsys, monkeypatch):
    """MLA decoding with DeepSeek's head dims (512 + 64, 64 heads per block) in its sm_80
    configuration (one stage: two do not fit sm_80's shared memory): 128 accumulator and 40
    row-statistics registers per thread leave no room for two unrolled k steps of P @ V's
    operands, so that k loop stays rolled and nothing spills (it spilled 8 bytes unrolled).
    Run in the emulator (which executes the rolled loop) and checked against torch."""
    monkeypatch.setenv("TILEWISE_TARGET", "cuda -arch=sm_80")
    monkeypatch.setenv("TILEWISE_EXECUTION_BACKEND", "emulator")
    funcs = _recorded(monkeypatch)
    rc = load_attention("deepseek_mla/example_mla_decode.py").main(
        "--batch 1 --heads 64 --kv_ctx 70 --dim 512 --pe_dim 64 --num_split 2 --num_stages 1 --target auto "
        "--bench_ms 0".split())
    out = capsys.readouterr().out
    assert rc == 0 and "matches" in out and "WRONG" not in out, out
    k = tilewise.compile(funcs[0], target="cuda -arch=sm_80", execution_backend="emulator")
    assert any("k loop not unrolled" in n for n in k.lowering_notes()), k.lowering_notes()
    assert k.resource_usage()["spill_bytes"] == 0, k.resource_usage()


@pytest.mark.parametrize("case, arch", [("gqa_decode_d128", "sm_80"), ("gqa_decode_d128", "sm_90a"),
                                        ("mla_decode_deepseek", "sm_90a")])
def test_decoding_examples_at_default_dims_have_no_spills(case, arch):
    """The decoding kernels at their default head dims (which fix the tiles), compiled by NVRTC:
    flash decoding at head dim 128 (it spilled 16 bytes once) and MLA decoding at DeepSeek's
    dims with its two-stage pipeline on Hopper (it spilled up to 712 bytes once)."""
    if case == "gqa_decode_d128":
        f = load_attention("flash_decoding/example_gqa_decode.py").flashdecoding(1, 32, 4, 300, 128, num_split=2)
    else:
        f = load_attention("deepseek_mla/example_mla_decode.py").mla_decode(1, 64, 128, 512, 64, num_split=2)
    usage = tilewise.compile(f, target=f"cuda -arch={arch}", execution_backend="emulator").resource_usage()
    assert usage["spill_bytes"] == 0, usage
