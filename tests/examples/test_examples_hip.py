"""The GEMM-family examples compiled for an AMD MI300X ("hip", gfx942): run through the emulator
with 64-lane wavefronts at a small size (each passes its own check), and every kernel they build
compiled by clang-19 with no scratch (spilled) memory (T.gemm through MFMA)."""
from __future__ import annotations

import pytest
from test_examples_cuda import GEMM_FAMILY, _recorded
from test_examples_gemm import load

import tilewise

# smaller tiles for the emulator's sake (the default 128 x 128 x 64 tiles fit gfx942's 64 KiB of
# LDS: its pipeline keeps two LDS buffers per tile whatever num_stages says, 57 KiB)
HIP_ARGS = {"dequant_gemm": " --block 64 128 64"}


@pytest.mark.parametrize("name", list(GEMM_FAMILY))
def test_example_on_gfx942(name, capsys, monkeypatch, clang19):
    monkeypatch.setenv("TILEWISE_TARGET", "hip")
    monkeypatch.setenv("TILEWISE_EXECUTION_BACKEND", "emulator")
    funcs = _recorded(monkeypatch)
    relpath, argv = GEMM_FAMILY[name]
    argv += HIP_ARGS.get(name, "")
    rc = load(relpath).main(argv.split() + ["--no-bench"])
    out = capsys.readouterr().out
    assert rc == 0 and "WRONG" not in out and "OK" in out, out
    assert funcs, "the example compiled no kernel"
    for f in list(funcs):
        usage = tilewise.compile(f, target="hip -arch=gfx942", execution_backend="emulator").resource_usage()
        assert usage["scratch_bytes"] == 0 and usage["vgpr_spills"] == 0, (name, usage)


# attention examples whose kernels mix the MFMA C and A layouts (a score accumulator computed into
# a register gemm operand; a row vector read in the rows of both): the emulator runs them at the
# small sizes of the CUDA emulator runs, and every kernel compiles without scratch
HIP_ATTENTION = ["mha_bwd_causal", "mamba_chunk_scan"]


@pytest.mark.parametrize("name", HIP_ATTENTION)
def test_attention_example_on_gfx942(name, capsys, monkeypatch, clang19):
    from test_examples_attention import EMULATOR_CASES
    from test_examples_attention import load as load_attention

    funcs = _recorded(monkeypatch)
    relpath, argv = EMULATOR_CASES[name]
    rc = load_attention(relpath).main(argv.split() + ["--target", "hip", "--bench_ms", "0"])
    out = capsys.readouterr().out
    assert rc == 0 and "match" in out and "WRONG" not in out, out
    assert funcs, "the example compiled no kernel"
    for f in list(funcs):
        usage = tilewise.compile(f, target="hip -arch=gfx942", execution_backend="emulator").resource_usage()
        assert usage["scratch_bytes"] == 0 and usage["vgpr_spills"] == 0, (name, usage)
