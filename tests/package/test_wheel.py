"""`pip install tilewise` from a built distribution: an sdist and a wheel built from it (the way
PyPI users get it), with every module and the C/CUDA headers the backends compile against;
installed into a fresh virtual environment (no system site-packages, not the source tree), where
a CPU kernel compiles and runs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import tilewise

pytest.importorskip("build")

ROOT = Path(tilewise.__file__).resolve().parents[1]
if not (ROOT / "pyproject.toml").exists():
    pytest.skip("tilewise is not imported from its source tree", allow_module_level=True)


def _source_files() -> set[str]:
    """Every file of the package (modules, headers, any data file a feature reads at run time:
    a data file needs its pattern in pyproject.toml's package-data to reach the wheel)."""
    out = set()
    for p in (ROOT / "tilewise").rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"):
            out.add(p.relative_to(ROOT).as_posix())
    return out


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """sdist and wheel built from a copy of the project (building writes egg-info beside it)."""
    tmp = tmp_path_factory.mktemp("dist")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "tilewise", src / "tilewise", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp / "out"
    # --no-isolation: build with this environment's setuptools (the test extra installs it), no
    # download; the wheel is built from the sdist, so a file missing from the sdist is missing
    # from the wheel too
    r = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out),
                        str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (wheel,) = out.glob("tilewise-*.whl")
    (sdist,) = out.glob("tilewise-*.tar.gz")
    return tmp, wheel, sdist


def test_wheel_and_sdist_hold_every_module_and_header(dist):
    _, wheel, sdist = dist
    want = _source_files()
    assert any(f.startswith("tilewise/backend/cpu/include/") for f in want)
    assert any(f.startswith("tilewise/backend/cuda/include/") for f in want)
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = next(z.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    in_wheel = {n for n in names if n.startswith("tilewise/")}
    assert want - in_wheel == set(), f"missing from the wheel: {sorted(want - in_wheel)[:20]}"
    with tarfile.open(sdist) as t:
        in_sdist = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert want - in_sdist == set(), f"missing from the sdist: {sorted(want - in_sdist)[:20]}"
    assert {"pyproject.toml", "README.md"} <= in_sdist
    for extra in ("torch", "cuda", "plot", "ray", "peers", "test"):
        assert f"Provides-Extra: {extra}" in metadata, extra
    assert "Requires-Dist: numpy" in metadata and "Requires-Dist: ml_dtypes" in metadata


def _link_dependencies(site: Path, into: Path) -> None:
    """numpy and ml_dtypes for the fresh environment, from this one's installed copies (no
    network): a directory of links to just those packages, put on its path by a .pth file."""
    deps = into / "deps"
    deps.mkdir()
    for mod in ("numpy", "ml_dtypes"):
        pkg = Path(__import__(mod).__file__).resolve().parent
        parent = pkg.parent
        for entry in parent.iterdir():
            n = entry.name.lower()
            if n == mod or n.startswith(mod + ".libs") or (n.startswith(mod + "-") and n.endswith(".dist-info")):
                (deps / entry.name).symlink_to(entry)
    (site / "tilewise_test_deps.pth").write_text(str(deps) + "\n")


def test_installed_wheel_runs_a_cpu_kernel(dist):
    tmp, wheel, _ = dist
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                        "--disable-pip-version-check", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (site,) = (venv / "lib").glob("python*/site-packages")
    _link_dependencies(site, tmp)
    script = tmp / "run_kernel.py"
    script.write_text('''
import numpy as np
import tilewise
import tilewise.language as T

def add(n, block=64):
    @T.prim_func
    def main(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32"), C: T.Tensor((n,), "float32")):
        with T.Kernel(T.ceildiv(n, block), threads=64) as bx:
            for i in T.Parallel(block):
                C[bx * block + i] = A[bx * block + i] * 2.0 + B[bx * block + i]
    return main

kernel = tilewise.compile(add(256), out_idx=[-1], target="cpu")
a, b = np.arange(256, dtype=np.float32), np.ones(256, dtype=np.float32)
assert np.array_equal(kernel(a, b), a * 2 + b)
print(tilewise.__file__)
''')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["TILEWISE_CACHE_DIR"] = str(tmp / "cache")
    r = subprocess.run([str(py), "-I", str(script)], capture_output=True, text=True, cwd=tmp, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    where = Path(r.stdout.strip().splitlines()[-1]).resolve()
    assert where.is_relative_to(site.resolve()), where  # the installed copy ran, not the source tree
