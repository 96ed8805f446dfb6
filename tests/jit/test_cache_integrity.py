"""A damaged kernel cache never crashes or misleads: every artifact's size and SHA-256 are in its
entry's meta.json and checked before the library is loaded; a truncated, emptied, garbage,
deleted or swapped library, a garbage meta.json or a file where the entry should be is moved
aside with a warning and rebuilt. Also: stray temporary directories of killed compiles are
collected, `~` in TILEWISE_CACHE_DIR is expanded, a full disk is reported as such, and the
autotuner's result cache gets the same treatment. Damaged entries are exercised in
subprocesses: loading a truncated library would kill the test process with SIGBUS."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cache import SCRIPT

from tilewise.jit import cache


def _run(tmp_path: Path, offset: float = 1.0):
    script = tmp_path / "kernel_script.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, TILEWISE_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, str(script), str(offset)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("OK"), proc.stdout
    return Path(proc.stdout.split()[1]), proc.stderr


def _damage(entry: Path, how: str, other: Path | None):
    so = next(p for p in entry.iterdir() if p.suffix == ".so")
    if how == "truncated":
        so.write_bytes(so.read_bytes()[: so.stat().st_size // 3])
    elif how == "empty":
        so.write_bytes(b"")
    elif how == "garbage":
        so.write_bytes(os.urandom(so.stat().st_size))
    elif how == "deleted":
        so.unlink()
    elif how == "swapped":  # another kernel's library (same size class, different code)
        shutil.copy(next(p for p in other.iterdir() if p.suffix == ".so"), so)
    elif how == "meta":
        (entry / "meta.json").write_text("{not json")
    elif how == "file":
        shutil.rmtree(entry)
        entry.write_text("not a directory")


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage", "deleted", "swapped", "meta", "file"])
def test_damaged_entries_are_moved_aside_and_rebuilt(tmp_path, how):
    entry, _ = _run(tmp_path, 1.0)
    other, _ = _run(tmp_path, 2.0)  # a different kernel (another offset constant)
    assert entry != other
    meta = json.loads((entry / "meta.json").read_text())
    assert all(set(v) == {"size", "sha256"} for v in meta["files"].values()) and meta["files"]
    _damage(entry, how, other)
    again, err = _run(tmp_path, 1.0)  # computes a + 1 (the script asserts it), not a crash
    assert again == entry and cache.verify(entry) is None
    if how != "file":
        assert "is damaged" in err and str(entry) in err, err
    _, err = _run(tmp_path, 1.0)
    assert "damaged" not in err  # the rebuilt entry is good


def test_stray_temporary_directories_are_collected(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))
    stray = tmp_path / ".deadbeef-killed"
    stray.mkdir()
    (stray / "kernel.so").write_bytes(b"half")
    old = time.time() - 2 * cache.STALE_SECONDS
    os.utime(stray, (old, old))
    fresh = tmp_path / ".cafebabe-running"  # another process's compile in progress
    fresh.mkdir()
    cache.publish("k" * 40, lambda d: cache.write_json(d / "meta.json", {}))
    assert not stray.exists() and fresh.exists()


def test_tilde_in_the_cache_dir_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TILEWISE_CACHE_DIR", "~/kernels")
    assert cache.cache_dir() == tmp_path / "kernels"


def test_a_full_disk_is_reported_as_such(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))

    def fill(d):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="no space left on the device holding the kernel cache"):
        cache.publish("f" * 40, fill)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ffff")]  # its temporary directory is gone


def test_unreadable_cache_falls_back_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path / "cache"))
    real = Path.is_file

    def denied(self):
        if "cache" in self.parts:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "is_file", denied)
    with pytest.warns(UserWarning, match="cannot read the kernel cache"):
        assert cache.lookup("e" * 40) is None
