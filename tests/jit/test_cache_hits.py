"""What a cache hit does and what the key covers (docs/DESIGN.md section 2b): a hit, in this
process or another, neither lowers nor renders (the entry keeps the source, the binary and the
renderer's module); the key changes with every input that decides the binary. And the CPU
target's precompiled header (backend/cpu/pch.py): used by kernel compiles, the same machine code
as without it, and built once by processes that compile at the same time."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cache import SCRIPT

import tilewise
import tilewise.language as T
from tilewise.backend.cpu import build as cpu_build
from tilewise.backend.cpu import pch
from tilewise.backend.cuda import nvrtc
from tilewise.jit import build as builds
from tilewise.jit import cache
from tilewise.jit.target import Target, record_for


def gemm(n=128, block=64, dtype="float32"):
    @T.prim_func
    def main(A: T.Tensor((n, n), dtype), B: T.Tensor((n, n), dtype), C: T.Tensor((n, n), dtype)):
        with T.Kernel(T.ceildiv(n, block), T.ceildiv(n, block), threads=128) as (bx, by):
            A_shared = T.alloc_shared((block, 32), dtype)
            B_shared = T.alloc_shared((32, block), dtype)
            C_local = T.alloc_fragment((block, block), "float32")
            T.clear(C_local)
            for ko in T.Pipelined(T.ceildiv(n, 32), num_stages=2):
                T.copy(A[by * block, ko * 32], A_shared)
                T.copy(B[ko * 32, bx * block], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.copy(C_local, C[by * block, bx * block])

    return main


def _no_lowering(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a cache hit lowered the program")

    monkeypatch.setattr(builds, "run_passes", refuse)


def test_a_cpu_hit_neither_lowers_nor_renders(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))
    first = tilewise.compile(gemm(), out_idx=[-1], target="cpu")
    _no_lowering(monkeypatch)
    again = tilewise.compile(gemm(), out_idx=[-1], target="cpu")  # a new, identical PrimFunc
    assert again.build.entry == first.build.entry
    assert again.get_kernel_source() == first.get_kernel_source()  # read from the entry
    a = np.random.default_rng(0).standard_normal((128, 128), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((128, 128), dtype=np.float32)
    np.testing.assert_allclose(again(a, b), a @ b, rtol=1e-4, atol=1e-4)
    # a new kernel still compiles (and so lowers): the patch above is what refused it
    with pytest.raises(AssertionError, match="lowered"):
        tilewise.compile(gemm(n=192), out_idx=[-1], target="cpu")


def test_a_cpu_hit_in_a_fresh_process_does_not_lower(tmp_path):
    script = tmp_path / "kernel_script.py"
    # the same script as the cache tests, with lowering refused once the kernel is cached
    script.write_text(SCRIPT.replace("k = tilewise.compile", "import os\nif os.environ.get('REFUSE_LOWERING'):\n"
                                     "    B = sys.modules['tilewise.jit.build']\n"
                                     "    B.run_passes = lambda *a, **k: sys.exit('lowered on a hit')\n"
                                     "k = tilewise.compile"))
    env = dict(os.environ, TILEWISE_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("TILEWISE_DISABLE_CACHE", None)
    first = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    hit = subprocess.run([sys.executable, str(script)], env=dict(env, REFUSE_LOWERING="1"), capture_output=True,
                         text=True, timeout=300)
    assert hit.returncode == 0, hit.stderr
    assert hit.stdout == first.stdout


def test_a_cuda_hit_keeps_launch_facts_without_lowering(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))
    target = "cuda -arch=sm_80"
    first = tilewise.compile(gemm(dtype="float16"), out_idx=[-1], target=target, execution_backend="nvrtc")
    assert first._align, "cp.async moves A and B in vectors: their data must be aligned"
    _no_lowering(monkeypatch)
    again = tilewise.compile(gemm(dtype="float16"), out_idx=[-1], target=target, execution_backend="nvrtc")
    assert again.build.entry == first.build.entry
    assert again._align == first._align
    assert again.build.binary == first.build.binary
    assert again.get_kernel_source() == first.get_kernel_source()
    m1, m2 = first.build.module, again.build.module
    assert [(k.name, k.block, k.shared_bytes, len(k.grid)) for k in m2.kernels] == \
        [(k.name, k.block, k.shared_bytes, len(k.grid)) for k in m1.kernels]
    assert m2.param_names == m1.param_names
    # the emulator runs the lowered program itself: that backend lowers, hit or not
    with pytest.raises(AssertionError, match="lowered"):
        tilewise.compile(gemm(dtype="float16"), out_idx=[-1], target=target, execution_backend="emulator")


# ------------------------------------------------------------------------------------------- keys


def _key(func, target=Target("cpu"), configs=None, flags=(), record=None):
    record = record or record_for(target)
    return builds.build(func, record, record.machine(target.arch), configs or {}, flags).key()


def test_the_key_changes_with_everything_that_decides_the_binary(monkeypatch):
    f = gemm()
    base = _key(f)
    assert _key(gemm()) == base  # the same program parsed again
    others = {
        "program": _key(gemm(n=192)),
        "pass config": _key(f, configs={"tl.disable_vectorize": True}),
        "compile flag": _key(f, flags=("-O2",)),
        "target": _key(f, Target("cuda", "sm_80")),
    }
    cpu = record_for(Target("cpu"))
    other_compiler = dataclasses.replace(cpu, toolchain=dataclasses.replace(cpu.toolchain, fingerprint=lambda: "cc2"))
    others["toolchain fingerprint"] = _key(f, record=other_compiler)
    monkeypatch.setattr(cache, "__version__", "0.0.0-other")
    others["tilewise version"] = _key(f)
    monkeypatch.undo()
    assert len(set(others.values()) | {base}) == len(others) + 1, others
    assert _key(f, Target("cuda", "sm_80")) != _key(f, Target("cuda", "sm_90a"))  # the architecture


@pytest.mark.parametrize("kind", ["cpu", "cuda"])
def test_the_key_changes_with_the_header_contents(tmp_path, monkeypatch, kind):
    f = gemm()
    target = Target("cpu") if kind == "cpu" else Target("cuda", "sm_80")
    module, cached = (cpu_build, cpu_build.compiler_id) if kind == "cpu" else (nvrtc, nvrtc.toolchain_fingerprint)
    cached.cache_clear()
    base = _key(f, target)
    include = tmp_path / "include"
    shutil.copytree(module.INCLUDE_DIR, include)
    header = include / ("tw_cpu.h" if kind == "cpu" else "tw_cuda.h")
    header.write_text(header.read_text() + "\n// one more line\n")
    monkeypatch.setattr(module, "INCLUDE_DIR", include if kind == "cpu" else str(include))
    cached.cache_clear()
    try:
        assert _key(f, target) != base
    finally:
        monkeypatch.undo()
        cached.cache_clear()
    assert _key(f, target) == base


@pytest.mark.parametrize("kind", ["c", "cuda"])
def test_a_source_callback_keys_on_the_source(kind):
    from tilewise.engine import callback

    f = gemm()
    target = Target("cpu") if kind == "c" else Target("cuda", "sm_80")
    base = _key(f, target)
    register = callback.register_c_postproc if kind == "c" else callback.register_cuda_postproc
    unregister = (callback.unregister_c_postproc_callback if kind == "c"
                  else callback.unregister_cuda_postproc_callback)
    keys = []
    try:
        for text in ("// one\n", "// two\n"):
            register(lambda code, target, text=text: text + code)
            keys.append(_key(f, target))
    finally:
        unregister()
    assert len({base, *keys}) == 3
    assert _key(f, target) == base


# ------------------------------------------------------------------------- precompiled header


def _pch_entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.iterdir() if p.name.startswith("pch-") and (p / "meta.json").is_file())


def _compile_cmd(pch_dir: Path | None, src: Path, out: Path, extra=()) -> list[str]:
    inc = ([f"-I{pch_dir}"] if pch_dir else []) + [f"-I{cpu_build.INCLUDE_DIR}"]
    return [cpu_build.compiler(), *cpu_build.FLAGS, *cpu_build.link_flags(), *extra, *inc, str(src), "-o", str(out)]


def test_the_precompiled_header_is_used_and_changes_no_instruction(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path / "cache"))
    k = tilewise.compile(gemm(), out_idx=[-1], target="cpu")
    source = k.get_kernel_source()
    (entry,) = _pch_entries(tmp_path / "cache")
    assert cache.verify(entry) is None
    text, with_pch = pch.use_pch(source, ())
    assert (entry / "tw_pch.h").read_text() == text and text.startswith('#include "tw_cpu.h"')
    assert with_pch.count("\n") == source.count("\n")  # line numbers kept
    # the two libraries' paths have one length: the path is in the library (its soname), and a
    # longer string table would move every address after it
    (tmp_path / "pch1").mkdir()
    (tmp_path / "pch0").mkdir()
    (tmp_path / "pch1" / "k.cpp").write_text(with_pch)
    (tmp_path / "pch0" / "k.cpp").write_text(source)
    # -H lists the headers read; a precompiled header that was used is marked with "!"
    used = subprocess.run(_compile_cmd(entry, tmp_path / "pch1" / "k.cpp", tmp_path / "pch1" / "k.so", ["-H"]),
                          capture_output=True, text=True)
    assert used.returncode == 0, used.stderr
    assert f"! {entry / 'tw_pch.h.gch'}" in used.stderr
    plain = subprocess.run(_compile_cmd(None, tmp_path / "pch0" / "k.cpp", tmp_path / "pch0" / "k.so"), capture_output=True,
                           text=True)
    assert plain.returncode == 0, plain.stderr
    if shutil.which("objdump"):
        def code(so):
            out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(so)], capture_output=True, text=True).stdout
            return out.split("\n", 2)[2]  # after the line naming the file

        assert code(tmp_path / "pch1" / "k.so") == code(tmp_path / "pch0" / "k.so")


def test_the_precompiled_header_applies_only_to_plain_compiles():
    source = '#include "tw_cpu.h"\n#include <omp.h>\nextern "C" int f() { return 1; }\n'
    assert pch.use_pch(source, ()) == ('#include "tw_cpu.h"\n#include <omp.h>\n',
                                       '#include "tw_pch.h"\n\nextern "C" int f() { return 1; }\n')  # same lines
    assert pch.use_pch(source, ("-O2",)) is None  # valid only for the flags it was built with
    assert pch.use_pch("// a callback's line\n" + source, ()) is None


def test_concurrent_first_compiles_build_one_intact_header(tmp_path):
    script = tmp_path / "kernel_script.py"
    script.write_text(SCRIPT)
    cache_dir = tmp_path / "cache"
    env = dict(os.environ, TILEWISE_CACHE_DIR=str(cache_dir))
    env.pop("TILEWISE_DISABLE_CACHE", None)
    procs = [subprocess.Popen([sys.executable, str(script), offset], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for offset in ("1.0", "2.0")]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.startswith("OK")
    (entry,) = _pch_entries(cache_dir)
    assert cache.verify(entry) is None
    assert sorted(p.name for p in entry.iterdir()) == ["meta.json", "tw_pch.h", "tw_pch.h.gch"]
    assert not [p.name for p in cache_dir.iterdir() if p.name.startswith(".")]  # no temporary left
    # and the header is valid for kernel compiles (g++ marks a used one with "!")
    src = tmp_path / "k.cpp"
    src.write_text(pch.use_pch((entry / "tw_pch.h").read_text() + 'extern "C" int f() { return 1; }\n', ())[1])
    used = subprocess.run(_compile_cmd(entry, src, tmp_path / "k.so", ["-H"]), capture_output=True, text=True)
    assert used.returncode == 0 and f"! {entry / 'tw_pch.h.gch'}" in used.stderr, used.stderr


def test_an_entry_without_hit_facts_renders_on_a_hit(tmp_path, monkeypatch):
    """A renderer output that does not pickle leaves the entry without hit.pickle: what a hit
    would have read from it is then computed (lowering and rendering), and the kernel is the same."""
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))

    def refuse(*args, **kwargs):
        raise TypeError("cannot pickle this module")

    with monkeypatch.context() as m:
        m.setattr(builds.pickle, "dumps", refuse)
        first = tilewise.compile(gemm(), out_idx=[-1], target="cpu")
    assert not (first.build.entry / builds.HIT_FILE).exists()
    again = tilewise.compile(gemm(), out_idx=[-1], target="cpu")
    assert again.build.entry == first.build.entry
    assert "lowered" not in again.build.__dict__  # the CPU runtime needs nothing the file holds
    assert again.build.vector_params() == first.build.vector_params()  # now from the lowered IR
    assert again.build.module.source == first.build.module.source  # rendered again
    a = np.ones((128, 128), np.float32)
    np.testing.assert_allclose(again(a, a), a @ a)


def test_a_hit_repeats_what_lowering_warned(tmp_path, monkeypatch):
    # a hit does not lower, so the warnings lowering gave (an argument with no effect on this
    # target) are kept in the entry and said again in a process that did not lower
    from tilewise import errors

    @T.prim_func
    def deferred(A: T.Tensor((64, 32), "float32"), B: T.Tensor((32, 64), "float32"), C: T.Tensor((64, 64), "float32")):
        with T.Kernel(1, threads=128):
            As = T.alloc_shared((64, 32), "float32")
            Bs = T.alloc_shared((32, 64), "float32")
            acc = T.alloc_fragment((64, 64), "float32")
            T.copy(A, As)
            T.copy(B, Bs)
            T.gemm(As, Bs, acc, clear_accum=True, wg_wait=-1)
            T.copy(acc, C)

    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(errors, "_warned", set())
    with pytest.warns(UserWarning, match="wg_wait=-1"):
        first = tilewise.compile(deferred, out_idx=[-1], target="cpu")
    monkeypatch.setattr(errors, "_warned", set())  # as in a fresh process
    _no_lowering(monkeypatch)
    with pytest.warns(UserWarning, match="wg_wait=-1"):
        again = tilewise.compile(deferred, out_idx=[-1], target="cpu")
    assert again.build.entry == first.build.entry
    a = np.random.default_rng(0).standard_normal((64, 32), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((32, 64), dtype=np.float32)
    np.testing.assert_allclose(again(a, b), a @ b, rtol=1e-4, atol=1e-4)
