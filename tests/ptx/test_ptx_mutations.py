"""Mutation evidence (tools/ptx_mutations.py): single-line bugs seeded in tw_cuda.h and in the
CUDA renderer, which the thread-IR emulator cannot see, are caught by running NVRTC's PTX in the
interpreter. A quick subset runs with the suite; every mutation runs behind the `slow` marker."""
from __future__ import annotations

import importlib.util
import os
import sys

import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "ptx_mutations.py")


def _tool():
    spec = importlib.util.spec_from_file_location("ptx_mutations", _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _run(names, quick):
    tool = _tool()
    muts = [m for m in tool.MUTATIONS if m.name in names]
    assert len(muts) == len(names)
    return tool.run_mutations(muts, quick=quick, log=lambda *_: None)["results"]


def test_header_and_renderer_mutations_are_caught():
    res = _run(["ldmatrix-x4-trans-order", "cp-async-wait-n-plus-1"], quick=True)
    assert res["ldmatrix-x4-trans-order"][0] == "values", res  # wrong numbers, compared with numpy
    assert res["cp-async-wait-n-plus-1"][0] == "fault", res  # data read before its cp.async landed
    assert "AsyncCopyError" in res["cp-async-wait-n-plus-1"][1], res


@pytest.mark.slow
def test_every_mutation_is_caught():
    tool = _tool()
    res = _run([m.name for m in tool.MUTATIONS], quick=False)
    # 32-bit global offsets overflow only for tensors of 2^31 or more elements
    survivors = {n for n, (v, _, _) in res.items() if v == "survived"}
    assert survivors <= {"global-offsets-32-bit"}, res
