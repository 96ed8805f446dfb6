"""The paper's kernels in examples/ run at small sizes on the CPU target and pass their own
checks against torch (each example's main() returns 0 only when its result matches).

Sizes are chosen not to divide the tiles, so the edge masking of every kernel is exercised;
--no-bench skips the timing."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(relpath: str):
    """Import an example script as a module (its folder on sys.path, for shared helpers)."""
    path = EXAMPLES / relpath
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = "example_" + relpath.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES = {
    "gemm": ("gemm/example_gemm.py", "--m 200 --n 136 --k 100 --dtype float16 bfloat16"),
    "gemm_epilogue": ("gemm/example_gemm_epilogue.py", "--m 130 --n 100 --k 70"),
    "gemm_epilogue_bf16": ("gemm/example_gemm_epilogue.py", "--m 64 --n 72 --k 40 --dtype bfloat16 "
                           "--activation gelu --block 32 32 16"),
    "gemm_transpose": ("gemm/example_gemm_transpose.py", "--m 136 --n 100 --k 70"),
    "gemm_splitk": ("gemm_splitk/example_gemm_splitk.py", "--m 100 --n 150 --k 1000 --split-k 3"),
    "gemm_splitk_empty_slice": ("gemm_splitk/example_gemm_splitk.py",
                                "--m 64 --n 64 --k 96 --split-k 5 --block 64 64 32"),
    "gemm_streamk": ("gemm_streamk/example_gemm_streamk.py", "--m 300 --n 200 --k 500 --num-sms 5 --block 64 64 32"),
    "gemm_streamk_many_sms": ("gemm_streamk/example_gemm_streamk.py", "--m 256 --n 256 --k 320 --num-sms 7"),
    "dequant_gemm": ("dequantize_gemm/example_dequant_gemm_fp16xint4.py", "--m 100 --n 130 --k 300 --group-size 64"),
    "dequant_gemv": ("dequantize_gemm/example_dequant_gemv_fp16xint4.py", "--n 100 --k 600 --group-size 128"),
    "dequant_gemv_small_groups": ("dequantize_gemm/example_dequant_gemv_fp16xint4.py",
                                  "--n 40 --k 300 --group-size 32 --block 16 128"),
    "gemv": ("gemv/example_gemv.py", "--n 100 --k 1000"),
    "elementwise_add": ("elementwise/example_elementwise_add.py", "--m 100 --n 333"),
    "elementwise_add_fp16": ("elementwise/example_elementwise_add.py", "--m 70 --n 300 --dtype float16"),
    "rms_norm": ("norm/example_rms_norm.py", "--m 37 --n 300 --block-m 4"),
    "layer_norm": ("norm/example_layer_norm.py", "--m 37 --n 300 --block-m 4 --dtype float32"),
    "softmax": ("softmax/example_softmax.py", "--m 37 --n 300 --block-m 4"),
    "online_softmax": ("softmax/example_online_softmax.py", "--m 37 --n 1000 --block 4 256"),
    "convolution": ("convolution/example_convolution.py", "--n 2 --c 20 --h 9 --w 11 --f 24 --k 3 --padding 1"),
    "convolution_strided": ("convolution/example_convolution.py",
                            "--n 2 --c 5 --h 9 --w 11 --f 7 --k 3 --stride 2 --padding 2 --dilation 2"),
    "blocksparse_gemm": ("blocksparse_gemm/example_blocksparse_gemm.py", "--m 200 --n 130 --k 300 --block 64 64 32"),
    "cumsum": ("cumsum/example_cumsum.py", "--m 37 --n 1000 --block 8 64"),
    "cumsum_reverse_int": ("cumsum/example_cumsum.py", "--m 37 --n 1000 --block 8 64 --reverse --dtype int32"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_example_passes_its_check(case, capsys):
    relpath, argv = CASES[case]
    module = load(relpath)
    rc = module.main(argv.split() + ["--no-bench"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "WRONG" not in out and "OK" in out, out
