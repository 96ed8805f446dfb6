"""The examples without T.gemm compiled for an AMD MI300X ("hip", gfx942): run through the
emulator with 64-lane wavefronts at a small size (each passes its own check), and every kernel
they build compiled by clang-19 with no scratch (spilled) memory. (T.gemm on MFMA is separate
work: the GEMM, attention and convolution examples are not here yet.)"""
from __future__ import annotations

import pytest
from test_examples_cuda import GEMM_FAMILY, _recorded
from test_examples_gemm import load

import tilewise

NO_GEMM = ["gemv", "dequant_gemv", "elementwise_add", "rms_norm", "layer_norm", "softmax", "online_softmax", "cumsum"]


@pytest.mark.parametrize("name", NO_GEMM)
def test_example_on_gfx942(name, capsys, monkeypatch, clang19):
    monkeypatch.setenv("TILEWISE_TARGET", "hip")
    monkeypatch.setenv("TILEWISE_EXECUTION_BACKEND", "emulator")
    funcs = _recorded(monkeypatch)
    relpath, argv = GEMM_FAMILY[name]
    rc = load(relpath).main(argv.split() + ["--no-bench"])
    out = capsys.readouterr().out
    assert rc == 0 and "WRONG" not in out and "OK" in out, out
    assert funcs, "the example compiled no kernel"
    for f in list(funcs):
        usage = tilewise.compile(f, target="hip -arch=gfx942", execution_backend="emulator").resource_usage()
        assert usage["scratch_bytes"] == 0 and usage["vgpr_spills"] == 0, (name, usage)
