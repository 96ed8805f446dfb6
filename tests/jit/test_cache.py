"""The on-disk kernel cache: hits across processes without a compiler, TILEWISE_DISABLE_CACHE,
keys that tell kernels and pass configs apart, and concurrent publication."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.jit import cache

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tilewise
    import tilewise.language as T

    OFFSET = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0

    @T.prim_func
    def add_offset(A: T.Tensor((37,), "float32"), B: T.Tensor((37,), "float32")):
        with T.Kernel(T.ceildiv(37, 8)) as bx:
            for i in T.Parallel(8):
                if bx * 8 + i < 37:
                    B[bx * 8 + i] = A[bx * 8 + i] + OFFSET

    k = tilewise.compile(add_offset, out_idx=-1, target="cpu")
    a = np.arange(37, dtype=np.float32)
    assert np.array_equal(k(a), a + OFFSET), "wrong result"
    print("OK", k.build.entry)
    """
)


def _run(script: Path, cache_dir: Path, *args, **env_extra) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["TILEWISE_CACHE_DIR"] = str(cache_dir)
    env.pop("TILEWISE_DISABLE_CACHE", None)
    env.update(env_extra)
    return subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=300)


def _entries(cache_dir: Path) -> list[Path]:
    """The kernels' entries (not the CPU target's precompiled header, backend/cpu/pch.py)."""
    if not cache_dir.exists():
        return []
    return sorted(p for p in cache_dir.iterdir() if (p / "meta.json").is_file() and not p.name.startswith("pch-"))


@pytest.fixture
def script(tmp_path) -> Path:
    p = tmp_path / "kernel_script.py"
    p.write_text(SCRIPT)
    return p


def test_second_process_hits_the_disk_cache_without_a_compiler(script, tmp_path):
    cache_dir = tmp_path / "cache"
    first = _run(script, cache_dir)
    assert first.returncode == 0, first.stderr
    assert len(_entries(cache_dir)) == 1
    # with no working compiler the second process can only succeed through the cache
    second = _run(script, cache_dir, CXX="/bin/false")
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout  # the same entry
    # a different kernel does need the compiler, which proves the one above was not invoked
    third = _run(script, cache_dir, "2.0", CXX="/bin/false")
    assert third.returncode != 0 and "did not compile" in third.stderr
    assert len(_entries(cache_dir)) == 1


def test_disable_cache(script, tmp_path):
    cache_dir = tmp_path / "cache"
    assert _run(script, cache_dir).returncode == 0
    off = _run(script, cache_dir, TILEWISE_DISABLE_CACHE="1", CXX="/bin/false")
    assert off.returncode != 0 and "did not compile" in off.stderr  # it compiled instead of loading
    fresh = tmp_path / "fresh"
    ok = _run(script, fresh, TILEWISE_DISABLE_CACHE="1")
    assert ok.returncode == 0, ok.stderr
    assert not _entries(fresh)


def test_concurrent_processes_publish_one_entry(script, tmp_path):
    cache_dir = tmp_path / "cache"
    env = dict(os.environ, TILEWISE_CACHE_DIR=str(cache_dir))
    env.pop("TILEWISE_DISABLE_CACHE", None)
    procs = [
        subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for out, err, rc in results:
        assert rc == 0, err
        assert out.startswith("OK")
    assert len(_entries(cache_dir)) == 1
    leftovers = [p.name for p in cache_dir.iterdir() if not (p / "meta.json").is_file()]
    assert not leftovers, leftovers
    entry = _entries(cache_dir)[0]
    assert sorted(p.name for p in entry.iterdir()) == ["hit.pickle", "kernel.cpp", "kernel.so", "meta.json"]


# ------------------------------------------------------------------------------- keys (in process)


def _kernel(offset: float, name_suffix: str = ""):
    @T.prim_func
    def keyed(A: T.Tensor((8,), "float32"), B: T.Tensor((8,), "float32")):
        with T.Kernel(1) as _:
            for i in T.serial(8):
                B[i] = A[i] + offset

    return keyed


def test_keys_differ_with_kernel_and_pass_configs(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))
    k1 = tilewise.compile(_kernel(1.0), out_idx=1, target="cpu")
    k1_again = tilewise.compile(_kernel(1.0), out_idx=1, target="cpu")  # a new but identical PrimFunc
    assert k1_again.build.entry == k1.build.entry
    k2 = tilewise.compile(_kernel(2.0), out_idx=1, target="cpu")
    k3 = tilewise.compile(_kernel(1.0), out_idx=1, target="cpu", pass_configs={"tir.disable_vectorize": True})
    dirs = {k1.build.entry, k2.build.entry, k3.build.entry}
    assert len(dirs) == 3 and len(_entries(tmp_path)) == 3
    a = np.zeros(8, np.float32)
    np.testing.assert_array_equal(k1(a), a + 1)
    np.testing.assert_array_equal(k2(a), a + 2)
    np.testing.assert_array_equal(k3(a), a + 1)


def test_keys_differ_with_names_dtypes_and_shapes():
    from tilewise.ir.printer import structural_text

    def make(n, dtype, sym_dtype="int32"):
        m = T.symbolic("m", sym_dtype)

        @T.prim_func
        def f(A: T.Tensor((n, m), dtype)):
            with T.Kernel(1) as _:
                A[0, 0] = 1

        return f

    texts = {structural_text(make(4, "float32")), structural_text(make(5, "float32")),
             structural_text(make(4, "float16")), structural_text(make(4, "float32", "int64"))}  # fmt: skip
    assert len(texts) == 4
    assert structural_text(make(4, "float32")) == structural_text(make(4, "float32"))


def test_disabled_cache_leaves_no_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TILEWISE_DISABLE_CACHE", "1")
    assert not cache.enabled()
    k = tilewise.compile(_kernel(3.0), out_idx=1, target="cpu")
    np.testing.assert_array_equal(k(np.zeros(8, np.float32)), np.full(8, 3.0))
    assert not (tmp_path / "cache").exists()


def test_publish_is_atomic_when_a_key_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))

    def fill(d: Path):
        (d / "payload").write_text("x")
        cache.write_json(d / "meta.json", {"ok": True})

    first = cache.publish("k" * 40, fill)
    second = cache.publish("k" * 40, fill)
    assert first == second and cache.lookup("k" * 40) == first
    meta = cache.read_meta(first)
    assert meta["ok"] is True and meta["files"] == {"payload": {"size": 1, "sha256": meta["files"]["payload"]["sha256"]}}

    def failing(d: Path):
        (d / "half").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cache.publish("f" * 40, failing)
    assert cache.lookup("f" * 40) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k" * 40]


def test_a_damaged_entry_is_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))
    (tmp_path / ("d" * 40)).mkdir()
    (tmp_path / ("d" * 40) / "junk").write_text("half-written by someone else")

    def fill(d: Path):
        cache.write_json(d / "meta.json", {"ok": 1})

    with pytest.warns(UserWarning, match="is damaged"):
        entry = cache.publish("d" * 40, fill)
    assert sorted(p.name for p in entry.iterdir()) == ["meta.json"]


def test_an_unwritable_cache_directory_falls_back_to_a_private_one(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(blocker / "cache"))

    def fill(d: Path):
        cache.write_json(d / "meta.json", {"ok": 1})

    with pytest.warns(UserWarning, match="cannot write the kernel cache"):
        entry = cache.publish("e" * 40, fill)
    assert (entry / "meta.json").is_file() and not str(entry).startswith(str(blocker))
