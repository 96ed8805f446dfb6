"""TileLang's own decoding examples (MLA decode, block-sparse GQA decode, split-KV MHA inference)
run unchanged but for the import line, at small sizes, on the CPU and through the emulator
(cross-checked by the PTX interpreter), against a reference computed here. Each annotates
T.Fragment layouts, on T.alloc_local buffers (the combine kernels) and on fragments.

The scripts are read from a TileLang checkout (a bare git repository: TILEWISE_TILELANG_REPO,
by default the mirror this project is developed next to) at the tag they were written for; the
tests skip when it is not there. Nothing of them is copied into this repository."""
from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import tilewise
import tilewise.language as T

torch = pytest.importorskip("torch")
pytest.importorskip("einops")

REPO = os.environ.get("TILEWISE_TILELANG_REPO", "/work/.mirror/tile-ai+tilelang/repo")
TAG = "v0.1.4"


def _source(path: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", REPO, "show", f"{TAG}:{path}"], capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def load_example(path: str, tmp: pathlib.Path, siblings=()):
    """The example module with `tilelang` imports pointing at tilewise (the only change)."""
    src = _source(path)
    if src is None:
        pytest.skip(f"no TileLang checkout with {TAG}:{path} at {REPO}")
    swapped = (src.replace("import tilelang.language as T", "import tilewise.language as T")
               .replace("from tilelang.autotuner import", "from tilewise.autotuner import")
               .replace("import tilelang\n", "import tilewise as tilelang\n"))
    for name in siblings:  # helpers the script imports from its own directory
        load_example(str(pathlib.PurePosixPath(path).parent / f"{name}.py"), tmp)
    file = tmp / pathlib.PurePosixPath(path).name
    file.write_text(swapped)  # the parser reads kernel sources from the file
    spec = importlib.util.spec_from_file_location(file.stem, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[file.stem] = module
    spec.loader.exec_module(module)
    return module


def run(program, out_idx, target, args):
    if target == "emulator":
        k = tilewise.compile(program, out_idx=out_idx, target="cuda", execution_backend="emulator")
    else:
        k = tilewise.compile(program, out_idx=out_idx, target="cpu")
    return k(*args)


def attention_ref(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d)) v in float64; q [.., d], k/v [.., S, d]."""
    s = np.einsum("...d,...sd->...s", q, k) / np.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("...s,...sd->...d", p, v)


TARGETS = ["emulator", pytest.param("cpu", marks=pytest.mark.slow)]


@pytest.mark.parametrize("target", ["emulator", "cpu"])
def test_mla_decode(target, tmp_path):
    """examples/deepseek_mla/example_mla_decode.py, two KV splits: the combine kernel annotates
    a T.Fragment on a T.alloc_local accumulator."""
    m = load_example("examples/deepseek_mla/example_mla_decode.py", tmp_path)
    batch, heads, kv_ctx, dim, pe_dim, splits = 1, 16, 256, 64, 32, 2
    program = m.flashattn(batch, heads, 1, kv_ctx, dim, pe_dim, 64, 16, splits)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((batch, heads, dim)).astype(np.float16)
    qpe = rng.standard_normal((batch, heads, pe_dim)).astype(np.float16)
    kv = rng.standard_normal((batch, kv_ctx, 1, dim)).astype(np.float16)
    kpe = rng.standard_normal((batch, kv_ctx, 1, pe_dim)).astype(np.float16)
    glse = np.zeros((batch, heads, splits), np.float16)
    partial = np.zeros((batch, heads, splits, dim), np.float16)
    out = run(program, [6], target, [torch.from_numpy(x) for x in (q, qpe, kv, kpe, glse, partial)])
    query = np.concatenate([q, qpe], -1).astype(np.float64)
    key = np.concatenate([kv, kpe], -1)[:, :, 0].astype(np.float64)[:, None]
    ref = attention_ref(query, key, kv[:, :, 0].astype(np.float64)[:, None])
    np.testing.assert_allclose(out.float().numpy(), ref, atol=3e-3, rtol=1e-2)


@pytest.mark.parametrize("target", TARGETS)
def test_block_sparse_gqa_decode(target, tmp_path):
    """examples/blocksparse_attention/example_tilelang_sparse_gqa_decode_varlen_indice.py:
    selected KV blocks (largest index first, -1 padding), a ragged last block, symbolic split
    count; its combine kernel annotates a T.Fragment on a T.alloc_local buffer."""
    m = load_example("examples/blocksparse_attention/example_tilelang_sparse_gqa_decode_varlen_indice.py",
                     tmp_path, siblings=("heuristic",))
    batch, heads, heads_kv, dim, dim_v, bs = 1, 8, 2, 64, 64, 32
    program = m.flashattn(batch, heads, heads_kv, dim, dim_v)(
        block_N=bs, block_H=64, num_split=T.symbolic("num_split"), num_stages=2, threads=128,
        max_cache_seqlen=T.symbolic("max_cache_seqlen"), max_selected_blocks=T.symbolic("max_selected_blocks"))
    rng = np.random.default_rng(1)
    S, splits = 128, 2
    q = rng.standard_normal((batch, heads, dim)).astype(np.float16)
    k = rng.standard_normal((batch, S, heads_kv, dim)).astype(np.float16)
    v = rng.standard_normal((batch, S, heads_kv, dim_v)).astype(np.float16)
    idx = np.array([[[3, 1, 0], [3, 2, -1]]], dtype=np.int32)
    seqlens = np.array([120], dtype=np.int32)
    glse = np.zeros((batch, heads, splits), np.float32)
    partial = np.zeros((batch, heads, splits, dim_v), np.float32)
    out = run(program, -1, target, [torch.from_numpy(x) for x in (q, k, v, idx, seqlens, glse, partial)])
    group = heads // heads_kv
    kh = np.repeat(np.moveaxis(k, 2, 1), group, axis=1).astype(np.float64)  # [b, heads, S, d]
    vh = np.repeat(np.moveaxis(v, 2, 1), group, axis=1).astype(np.float64)
    mask = np.zeros((batch, heads, S), bool)
    for h in range(heads):
        for i in idx[0, h // group]:
            if i >= 0:
                mask[0, h, i * bs:(i + 1) * bs] = True
    mask &= np.arange(S) < seqlens[:, None, None]
    ref = attention_ref(q.astype(np.float64), kh, vh, mask)
    np.testing.assert_allclose(out.float().numpy(), ref, atol=3e-3, rtol=1e-2)


@pytest.mark.parametrize("target", TARGETS)
def test_mha_inference_split_kv(target, tmp_path):
    """examples/flash_decoding/example_mha_inference.py: its combine kernel lays the output
    accumulator out with a T.Fragment (row i in thread i, over half the block's threads) and
    copies rows of a [splits, block_M] fragment with T.copy(lse_local[k, :], ...)."""
    m = load_example("examples/flash_decoding/example_mha_inference.py", tmp_path)
    B, H, QC, KC, D = 1, 2, 64, 256, 64
    program = m.flashattn(B, H, QC, KC, D, False, 64, 64)
    rng = np.random.default_rng(2)
    q = rng.standard_normal((B, QC, H, D)).astype(np.float16)
    k = rng.standard_normal((B, KC, H, D)).astype(np.float16)
    v = rng.standard_normal((B, KC, H, D)).astype(np.float16)
    glse = np.zeros((B, H, m.num_split, QC), np.float16)
    partial = np.zeros((B, QC, H, m.num_split, D), np.float16)
    out = run(program, [5], target, [torch.from_numpy(x) for x in (q, k, v, glse, partial)])
    ref = attention_ref(np.moveaxis(q, 2, 1).astype(np.float64), np.moveaxis(k, 2, 1).astype(np.float64)[:, :, None],
                        np.moveaxis(v, 2, 1).astype(np.float64)[:, :, None])
    np.testing.assert_allclose(out.float().numpy(), np.moveaxis(ref, 1, 2), atol=5e-3, rtol=1e-2)
