"""The README's "In a torch model" lines run as written after its Quickstart (at a smaller size)."""
from __future__ import annotations

import pathlib
import re
import runpy

import pytest

torch = pytest.importorskip("torch")

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def _block_after(text: str, heading: str) -> str:
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_torch_lines_run(tmp_path):
    text = README.read_text()
    quick = _block_after(text, "## Quickstart").replace("1024", "256")
    torch_lines = _block_after(text, "## In a torch model")
    assert len(torch_lines.strip().splitlines()) == 3
    script = tmp_path / "readme_torch.py"  # kernels are parsed from their source file
    script.write_text(quick + torch_lines.replace('"mylib::', '"readme_test::'))
    ns = runpy.run_path(str(script))
    a, b = ns["a"], ns["b"]
    want = torch.relu(torch.from_numpy(a) @ torch.from_numpy(b)).softmax(-1)
    torch.testing.assert_close(ns["y"], want, rtol=1e-4, atol=1e-5)
