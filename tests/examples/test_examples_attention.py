"""The attention-family examples (FlashAttention forward / GQA / backward, flash decoding,
DeepSeek MLA decoding, Mamba-2 chunk scan and chunk state) run at small sizes on the CPU target
and pass their own checks against torch. Sizes include sequences that do not fill the last tile."""
from __future__ import annotations

import importlib.util
import pathlib

import pytest

pytest.importorskip("torch")

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def load(relpath: str):
    path = EXAMPLES / relpath
    spec = importlib.util.spec_from_file_location(f"tw_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES = {
    "mha_fwd": ("flash_attention/example_mha_fwd_bshd.py",
                "--batch 1 --heads 2 --seq_len 200 --dim 64"),
    "mha_fwd_causal": ("flash_attention/example_mha_fwd_bshd.py",
                       "--batch 2 --heads 1 --seq_len 200 --dim 64 --causal"),
    "mha_fwd_fa3_schedule_causal": ("flash_attention/example_mha_fwd_bshd_wgmma_pipelined.py",
                                    "--batch 1 --heads 1 --seq_len 200 --dim 64 --block_M 64 --block_N 64 "
                                    "--threads 128 --causal"),
    "gqa_fwd_causal": ("flash_attention/example_gqa_fwd_bshd.py",
                       "--batch 1 --heads 4 --groups 2 --seq_len 192 --dim 128 --causal"),
    "mha_bwd": ("flash_attention/example_mha_bwd_bshd.py",
                "--batch 1 --heads 2 --seq_len 160 --dim 64"),
    "mha_bwd_causal": ("flash_attention/example_mha_bwd_bshd.py",
                       "--batch 1 --heads 2 --seq_len 160 --dim 64 --causal"),
    "gqa_decode_split": ("flash_decoding/example_gqa_decode.py",
                         "--batch 2 --heads 8 --kv_heads 2 --kv_ctx 1000 --dim 64 --num_split 3"),
    "mla_decode": ("deepseek_mla/example_mla_decode.py",
                   "--batch 1 --heads 32 --kv_ctx 200 --dim 128 --pe_dim 32 --block_H 16 --num_split 1"),
    "mla_decode_split": ("deepseek_mla/example_mla_decode.py",
                         "--batch 1 --heads 16 --kv_ctx 300 --dim 128 --pe_dim 32 --block_H 16 --num_split 2"),
    "mamba_chunk_scan": ("linear_attention/example_mamba_chunk_scan.py",
                         "--batch 1 --heads 4 --groups 2 --seq_len 200 --chunk_size 128 --dim 64 --dstate 64"),
    "mamba_chunk_state": ("linear_attention/example_mamba_chunk_state.py",
                          "--batch 1 --heads 4 --groups 2 --seq_len 200 --chunk_size 128 --dim 64 --dstate 64"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_example_passes_its_check(name, capsys):
    relpath, args = CASES[name]
    module = load(relpath)
    rc = module.main(args.split() + ["--target", "cpu", "--bench_ms", "0"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "match" in out and "WRONG" not in out, out


# The same kernels compiled for CUDA and run in the emulator, at the smallest sizes that still
# use every code path (causal masks, ragged tiles, splits, atomics).
EMULATOR_CASES = {
    "mha_fwd_causal": ("flash_attention/example_mha_fwd_bshd.py",
                       "--batch 1 --heads 1 --seq_len 100 --dim 64 --causal"),
    "mha_fwd_fa3_schedule": ("flash_attention/example_mha_fwd_bshd_wgmma_pipelined.py",
                             "--batch 1 --heads 1 --seq_len 150 --dim 64 --block_M 64 --block_N 64 --threads 128"),
    "mha_fwd_fa3_schedule_causal": ("flash_attention/example_mha_fwd_bshd_wgmma_pipelined.py",
                                    "--batch 1 --heads 1 --seq_len 150 --dim 64 --block_M 64 --block_N 64 "
                                    "--threads 128 --causal"),
    "gqa_fwd": ("flash_attention/example_gqa_fwd_bshd.py",
                "--batch 1 --heads 2 --groups 2 --seq_len 128 --dim 64 --block_M 64"),
    "mha_bwd_causal": ("flash_attention/example_mha_bwd_bshd.py",
                       "--batch 1 --heads 1 --seq_len 96 --dim 64 --causal"),
    "gqa_decode_split": ("flash_decoding/example_gqa_decode.py",
                         "--batch 1 --heads 8 --kv_heads 2 --kv_ctx 200 --dim 64 --num_split 2"),
    "mla_decode_split": ("deepseek_mla/example_mla_decode.py",
                         "--batch 1 --heads 16 --kv_ctx 100 --dim 64 --pe_dim 32 --block_H 16 --num_split 2"),
    "mamba_chunk_scan": ("linear_attention/example_mamba_chunk_scan.py",
                         "--batch 1 --heads 2 --groups 2 --seq_len 100 --chunk_size 64 --dim 64 --dstate 64"),
    "mamba_chunk_state": ("linear_attention/example_mamba_chunk_state.py",
                          "--batch 1 --heads 2 --seq_len 100 --chunk_size 64 --dim 64 --dstate 64"),
}


@pytest.mark.parametrize("name", list(EMULATOR_CASES))
def test_example_passes_in_the_emulator(name, capsys):
    relpath, args = EMULATOR_CASES[name]
    module = load(relpath)
    rc = module.main(args.split() + ["--target", "cuda", "--bench_ms", "0"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "match" in out and "WRONG" not in out, out

@pytest.mark.parametrize("name", list(EMULATOR_CASES))
def test_example_passes_on_sm90a_in_the_emulator(name, capsys, monkeypatch):
    """The same kernels compiled for Hopper (wgmma, TMA pipelines where they apply)."""
    monkeypatch.setenv("TILEWISE_TARGET", "cuda -arch=sm_90a")
    monkeypatch.setenv("TILEWISE_EXECUTION_BACKEND", "emulator")
    relpath, args = EMULATOR_CASES[name]
    rc = load(relpath).main(args.split() + ["--target", "auto", "--bench_ms", "0"])
    out = capsys.readouterr().out
    assert rc == 0 and "match" in out and "WRONG" not in out, out


def test_example_factories_build_prim_funcs():
    """Each factory returns a prim_func at a size other than the scripts' own."""
    from tilewise.ir.stmt import PrimFunc

    fa = load("flash_attention/example_mha_fwd_bshd.py")
    decode = load("flash_decoding/example_gqa_decode.py")
    mla = load("deepseek_mla/example_mla_decode.py")
    scan = load("linear_attention/example_mamba_chunk_scan.py")
    funcs = [
        fa.flashattn_fwd(1, 1, 64, 128, True, block_M=64, block_N=32),
        decode.flashdecoding(1, 4, 1, 256, 64, num_split=1),
        mla.mla_decode(1, 64, 128, 512, 64, num_split=4),
        scan.chunk_scan_fwd(1, 256, 128, 1, 2, 64, 64),
    ]
    assert all(isinstance(f, PrimFunc) for f in funcs)


def test_decode_rejects_an_empty_split():
    decode = load("flash_decoding/example_gqa_decode.py")
    with pytest.raises(AssertionError, match="every split"):
        decode.flashdecoding(1, 4, 1, 9, 64, num_split=4)
