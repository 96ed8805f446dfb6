"""kernel.report(path): one self-contained HTML page per kernel. A CUDA GEMM (run in the emulator)
gets every section filled from the compile — the IR after each of the target's passes with diffs,
layout pictures of its fragment and swizzled shared tiles, the mma.sync note linked to its line,
SASS with the HMMA loop highlighted, registers — and a real headless Chromium finds the sections
after the page's script ran. A CPU kernel says what does not apply; a racy kernel's report shows
the emulator's finding."""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.emulator import RaceError
from tilewise.jit.report import banks_section, user_source
from tilewise.transform.pipeline import thread_passes

SECTIONS = ["source", "passes", "layouts", "notes", "generated", "sass", "resources", "emulator", "banks"]


@functools.cache
def gemm(n=64, bm=64, bn=64, bk=32):
    """K is symbolic: the main loop stays a loop in the SASS (a short static one is unrolled)."""
    K = T.symbolic("K")

    @T.prim_func
    def gemm(A: T.Tensor((n, K), "float16"), B: T.Tensor((K, n), "float16"), C: T.Tensor((n, n), "float32")):
        with T.Kernel(T.ceildiv(n, bn), T.ceildiv(n, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared((bm, bk), "float16")
            B_s = T.alloc_shared((bk, bn), "float16")
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            for k in T.Pipelined(T.ceildiv(K, bk), num_stages=2):
                T.copy(A[by * bm, k * bk], A_s)
                T.copy(B[k * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f)  # the gemm line
            T.copy(C_f, C[by * bm, bx * bn])

    return gemm


@pytest.fixture(scope="module")
def cuda(tmp_path_factory):
    """The emulator-run CUDA GEMM and its report (built once: two tests read it)."""
    tmp_dir = tmp_path_factory.mktemp("report")
    k = tilewise.compile(gemm(), target="cuda -arch=sm_80", execution_backend="emulator")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 64)).astype(np.float16)
    b = rng.standard_normal((64, 64)).astype(np.float16)
    c = np.zeros((64, 64), np.float32)
    # where the emulator counts bank conflicts (kernel.emulate_stats()), have it count them
    saved = os.environ.get("TILEWISE_EMULATOR_STATS")
    os.environ["TILEWISE_EMULATOR_STATS"] = "1"
    try:
        k(a, b, c)
    finally:
        if saved is None:
            del os.environ["TILEWISE_EMULATOR_STATS"]
        else:
            os.environ["TILEWISE_EMULATOR_STATS"] = saved
    np.testing.assert_allclose(c, a.astype(np.float32) @ b.astype(np.float32), rtol=2e-3, atol=2e-3)
    path = k.report(f"{tmp_dir}/gemm.html")
    with open(path, encoding="utf-8") as f:
        return k, path, f.read()


def section(page: str, name: str) -> str:
    m = re.search(rf'<section class="report-section" id="{name}">(.*?)</section>', page, re.S)
    assert m, f"no section {name}"
    return m.group(1)


def test_cuda_report_has_every_section_filled_from_the_compile(cuda):
    k, path, page = cuda
    assert page.startswith("<!DOCTYPE html>") and "<script>" in page and "<style>" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # self-contained: nothing fetched
    for name in SECTIONS:
        section(page, name)
    # the user's source with its line numbers; the gemm line carries its lowering note
    src = section(page, "source")
    gemm_line = k.func.span.line + 9
    assert f'id="src-L{gemm_line}" class="noted" title="T.gemm 64x64x32: mma.sync"' in src
    assert "T.gemm(A_s, B_s, C_f)  # the gemm line" in src
    # every pass of the target, in order, each with its IR; the pipeline pass changed the program
    passes = section(page, "passes")
    names = re.findall(r'<details class="pass" data-pass="([^"]+)"', passes)
    assert names == ["input"] + [n for n, _ in thread_passes(k.build.machine, k.pass_configs)]
    inject = re.search(r'data-pass="inject_pipeline"><summary>\d+ inject_pipeline: \+(\d+) -(\d+) lines', passes)
    assert inject and int(inject.group(1)) > 0
    assert '<span class="add">+' in passes and '<span class="del">-' in passes
    # the fragment and both swizzled shared tiles, as pictures labelled with threads and banks
    layouts = section(page, "layouts")
    assert re.findall(r'data-buffer="(\w+)"', layouts) == ["C_f", "A_s", "B_s"]
    assert layouts.count("<svg") == 6  # each: the whole tile and its labelled corner
    assert ">T0:0<" in layouts and "128 threads, 32 registers per thread" in layouts
    assert ">B4<" in layouts and "16-bit elements" in layouts
    notes = section(page, "notes")
    assert f'<a href="#src-L{gemm_line}">' in notes and "mma.sync" in notes
    assert "__global__" in section(page, "generated")
    # SASS: the steady-state loop highlighted, its HMMAs inside it
    sass = section(page, "sass")
    assert re.search(r'class="loop-summary">steady-state loop 0x[0-9a-f]+-0x[0-9a-f]+: \d+ instructions, '
                     r"[\d.]+ instructions per tensor-core instruction", sass)
    # one k step of a 64x64x32 tile on 4 warps: 32x32x32 per warp, 16 m16n8k16 HMMAs
    assert len(re.findall(r'<span class="loop tc">/\*[0-9a-f]+\*/ HMMA', sass)) == 16
    res = section(page, "resources")
    usage = k.resource_usage()
    assert f"<td>{usage['registers']}</td>" in res and '<span class="good">0</span>' in res
    assert re.search(r"<td>A_s</td><td>shared[.\w]*</td><td>\[64, 32\]</td><td>float16</td><td>4096</td>", res)
    emu = section(page, "emulator")
    assert "1 run(s) recorded" in emu and "clean" in emu
    banks = section(page, "banks")
    if getattr(k, "emulate_stats", lambda: None)() is not None:  # measured by the emulator when it can
        assert "<table>" in banks or "no bank conflicts" in banks
    else:
        assert "not measured" in banks


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("the report's browser test needs Chromium: apt-get install -y chromium (make test installs it "
                "when run as root)")


def test_report_opens_in_headless_chromium_with_its_sections(cuda, tmp_path):
    _, path, _ = cuda
    r = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", f"file://{path}"],
                       capture_output=True, text=True, timeout=180)
    dom = r.stdout
    assert r.returncode == 0 and "<html" in dom, r.stderr[-2000:]
    assert 'data-ready="1"' in dom  # the page's script ran to its end
    toc = re.search(r'<nav id="toc">(.*?)</nav>', dom, re.S).group(1)
    assert re.findall(r'href="#(\w+)"', toc) == SECTIONS
    assert len(re.findall(r'<section class="report-section" id="\w+" data-rendered="1">', dom)) == len(SECTIONS)
    assert "<button>expand all</button>" in dom and 'class="loop-toggle"' in dom
    assert dom.count("<svg") == 6


def test_cpu_report_says_what_does_not_apply(tmp_path):
    k = tilewise.compile(gemm(32, 32, 32, 16), target="cpu")
    page = open(k.report(tmp_path / "deep" / "cpu.html"), encoding="utf-8").read()
    for name in SECTIONS:
        section(page, name)
    names = re.findall(r'data-pass="([^"]+)"', section(page, "passes"))
    assert names[0] == "input" and "lower_tile_ops" in names
    assert "no thread layouts" in section(page, "layouts")
    assert "No SASS" in section(page, "sass")
    assert "registers, spills and shared memory" in section(page, "resources")
    assert "the emulator has not run it" in section(page, "emulator")


@functools.cache
def transpose_kernel():
    @T.prim_func
    def transpose(A: T.Tensor((16, 16), "float32"), B: T.Tensor((16, 16), "float32")):
        with T.Kernel(1, threads=32) as _:
            s = T.alloc_shared((16, 16), "float32")
            for i, j in T.Parallel(16, 16):
                s[i, j] = A[i, j] * 2
            for i, j in T.Parallel(16, 16):
                B[i, j] = s[j, i]  # another thread's element

    return transpose


def test_report_shows_the_emulators_finding_and_the_row_major_shared_tile(tmp_path):
    k = tilewise.compile(transpose_kernel(), out_idx=[1], target="cuda -arch=sm_80", execution_backend="emulator",
                         pass_configs={"tl.disable_thread_storage_sync": True})
    with pytest.raises(RaceError):
        k(np.ones((16, 16), np.float32))
    page = open(k.report(tmp_path / "race.html"), encoding="utf-8").read()
    emu = section(page, "emulator")
    assert "1 run(s) recorded" in emu and "1 with a finding" in emu
    assert '<span class="bad">RaceError</span>' in emu and "race on s[" in emu
    # the shared tile no operator laid out is pictured row-major: a column is in banks 0 and 16 only
    layouts = section(page, "layouts")
    assert re.search(r'data-buffer="s">s <span class="muted">shared, row-major \(no swizzle\) \[16, 16\] float32',
                     layouts)
    assert ">B16<" in layouts and ">1,0<" in layouts


def test_bank_conflict_table_links_lines():
    src = user_source(gemm())
    line = gemm().span.line + 7
    rec = SimpleNamespace(buffer="A_s", line=f"{src.file}:{line}", kind="ldmatrix", accesses=4, wavefronts=16,
                          extra=12)
    rec2 = SimpleNamespace(buffer="B_s", line=line + 1, kind="ld", accesses=8, wavefronts=8, extra=0, ways=1.0)
    body = banks_section([rec2, rec], "", src).body
    assert f'<a href="#src-L{line}">' in body and f'<a href="#src-L{line + 1}">' in body
    # the costliest first; extra wavefronts flagged
    assert body.index("A_s") < body.index("B_s") and "(12 in all)" in body
    assert '<td>ldmatrix</td><td>4</td><td>16</td><td><span class="bad">12</span></td><td></td>' in body
    assert "<td>ld</td><td>8</td><td>8</td><td>0</td><td>1.00</td>" in body
    assert "not measured" in banks_section(None, "not measured: no stats", src).body


def test_report_says_when_cuobjdump_is_missing(tmp_path, monkeypatch):
    from tilewise.backend.cuda import inspect as sass_tools
    from tilewise.backend.cuda.toolkit import ToolkitNotFound

    def missing(name):
        raise ToolkitNotFound(f"the CUDA tool {name} was not found")

    monkeypatch.setattr(sass_tools, "tool_path", missing)
    sass_tools.get_sass.cache_clear()
    sass_tools.resource_usage_all.cache_clear()
    k = tilewise.compile(transpose_kernel(), out_idx=[1], target="cuda -arch=sm_80", execution_backend="emulator")
    page = open(k.report(tmp_path / "no_tools.html"), encoding="utf-8").read()
    assert "cuobjdump failed: the CUDA tool cuobjdump was not found" in section(page, "sass")
    assert "cuobjdump -res-usage failed: the CUDA tool cuobjdump was not found" in section(page, "resources")
