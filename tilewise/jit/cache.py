"""On-disk cache of compiled kernels under TILEWISE_CACHE_DIR (default ~/.cache/tilewise).

Each entry is a directory named by its key, published with an atomic rename (after its files and
the directory are fsynced), so concurrent processes either see a complete entry or none. Its
meta.json records every artifact's size and SHA-256; `verify` checks them before a library or
cubin is loaded, and an entry that fails (truncated, emptied, replaced, unreadable) is moved
aside with a warning naming it and rebuilt. Temporary directories of killed compiles and
moved-aside entries are collected after an hour."""
from __future__ import annotations

import atexit
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from .. import env
from ..version import __version__


def enabled() -> bool:
    """TILEWISE_DISABLE_CACHE unset and tilewise.disable_cache() not called."""
    return env.is_cache_enabled()


# kernels, tuning results, precompiled headers (backend/cpu/pch.py), moved-aside entries, and the
# temporary directories of entries being written
_ENTRY = re.compile(r"(autotune-|pch-)?[0-9a-f]{40}|\.bad-.*|\.([0-9a-f]{8}|pch-[0-9a-f]{4})-.*")


def clear() -> int:
    """Remove every entry tilewise made in the cache directory (compiled kernels, tuning results,
    leftovers of killed compiles); other files there are left alone. Returns how many."""
    root = cache_dir()
    try:
        names = os.listdir(root)
    except OSError:
        return 0
    removed = 0
    for name in names:
        path = root / name
        if _ENTRY.fullmatch(name) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def cache_dir() -> Path:
    d = env.get("TILEWISE_CACHE_DIR")
    return Path(d).expanduser() if d else Path.home() / ".cache" / "tilewise"


@functools.lru_cache(maxsize=1)
def compiler_fingerprint() -> str:
    """Identifies this state of tilewise's own sources (passes, lowerings, headers), so a kernel
    compiled by one state of the compiler is never served to another, even without a version
    bump. File sizes and modification times stand in for the contents (a stat is much cheaper
    than a read, and a cache hit must stay fast: os.scandir, whose entries need no path objects)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows: list[str] = []

    def scan(d: str, rel: str) -> None:
        with os.scandir(d) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    if e.name != "__pycache__":
                        scan(e.path, rel + e.name + "/")
                elif e.name.endswith((".py", ".h", ".cuh")):
                    st = e.stat()
                    rows.append(f"{rel}{e.name}:{st.st_size}:{st.st_mtime_ns}\n")

    scan(root, "")
    rows.sort()
    return hashlib.sha256("".join(rows).encode()).hexdigest()[:16]


def make_key(*parts) -> str:
    h = hashlib.sha256()
    h.update(__version__.encode())
    h.update(compiler_fingerprint().encode())
    for p in parts:
        h.update(b"\x00")
        h.update(p if isinstance(p, bytes) else str(p).encode())
    return h.hexdigest()[:40]


STALE_SECONDS = 3600  # a temporary or moved-aside directory this old belongs to nobody


def lookup(key: str) -> Path | None:
    """The complete, intact entry for key, or None (a damaged one is moved aside first)."""
    if not enabled():
        return None
    d = cache_dir() / key
    try:
        if not (d / "meta.json").is_file():
            return None
    except OSError as e:  # an unreadable cache directory: as if it were unwritable
        _warn_once(f"tilewise: cannot read the kernel cache at {cache_dir()} ({e}); compiling without it")
        return None
    problem = verify(d)
    if problem is not None:
        quarantine(d, problem)
        return None
    return d


def verify(entry: Path) -> str | None:
    """None if every file meta.json lists has its recorded size and SHA-256, else what is wrong."""
    try:
        meta = read_meta(entry)
        files = meta["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not a table")
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"its meta.json is unreadable or incomplete ({type(e).__name__}: {e})"
    for name, want in files.items():
        path = entry / name
        try:
            size = path.stat().st_size
            if size != want["size"]:
                return f"{name} has {size} bytes, {want['size']} were written"
            if _sha256(path) != want["sha256"]:
                return f"{name} does not have the contents that were written (SHA-256 differs)"
        except OSError as e:
            return f"{name} cannot be read ({e})"
        except (KeyError, TypeError):
            return f"its meta.json lists {name} without a size and hash"
    return None


def quarantine(entry: Path, problem: str) -> None:
    """Move a damaged entry out of the way (so that it is rebuilt), saying which and why."""
    aside = entry.parent / f".bad-{entry.name}-{os.getpid()}-{time.time_ns()}"
    try:
        os.rename(entry, aside)
    except OSError:
        shutil.rmtree(entry, ignore_errors=True)
        aside = None
    warnings.warn(f"tilewise: the cache entry {entry} is damaged ({problem}); "
                  + (f"moved it to {aside} and " if aside else "") + "rebuilding it", stacklevel=3)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_warned: set = set()


def _warn_once(msg: str) -> None:
    if msg not in _warned:
        _warned.add(msg)
        warnings.warn(msg, stacklevel=4)


def read_meta(entry: Path) -> dict:
    return json.loads((entry / "meta.json").read_text())


def _private_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="tilewise-nocache-"))
    # a loaded library stays mapped after its file is gone; remove the files at exit
    atexit.register(shutil.rmtree, root, True)
    return root


def publish(key: str, fill) -> Path:
    """Create an entry: `fill(tmpdir)` writes files (meta.json last); then rename into place.

    With the cache disabled, or its directory not writable, the entry lives in a private
    temporary directory."""
    root = cache_dir() if enabled() else _private_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        final = root / key
        if final.is_dir() and (final / "meta.json").is_file() and verify(final) is None:
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=root))
    except OSError as e:
        _disk_full(e, root)
        _warn_once(f"tilewise: cannot write the kernel cache at {root} ({e}); compiling without it")
        root = _private_root()
        final = root / key
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=root))
    _collect_stale(root)
    try:
        try:
            fill(tmp)
            _seal(tmp)
        except OSError as e:
            _disk_full(e, root)
            raise
        for attempt in range(2):
            try:
                os.rename(tmp, final)
                break
            except OSError:
                if (final / "meta.json").is_file():
                    # another process published the same key first; theirs is as good as ours
                    shutil.rmtree(tmp, ignore_errors=True)
                    break
                if attempt:
                    raise
                # a damaged entry without its meta.json (complete entries always have one), or
                # something that is not a directory in its place
                if final.is_symlink() or (final.exists() and not final.is_dir()):
                    final.unlink()
                elif verify(final) is not None:
                    quarantine(final, "it was incomplete")
                shutil.rmtree(final, ignore_errors=True)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _seal(d: Path) -> None:
    """Record each artifact's size and hash in meta.json and flush everything to the disk, so
    that the rename publishes complete files even across a power cut."""
    meta_path = d / "meta.json"
    meta = json.loads(meta_path.read_text())
    files = {}
    for path in sorted(d.iterdir()):
        if path.name != "meta.json" and path.is_file():
            files[path.name] = {"size": path.stat().st_size, "sha256": _sha256(path)}
            _fsync_file(path)
    meta["files"] = files
    write_json(meta_path, meta)
    _fsync_file(meta_path)
    _fsync_dir(d)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename is still atomic
    finally:
        os.close(fd)


def _disk_full(e: OSError, root: Path) -> None:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        raise OSError(e.errno, f"no space left on the device holding the kernel cache {root} ({e}); free some "
                               "space or point TILEWISE_CACHE_DIR elsewhere") from e


def _collect_stale(root: Path) -> None:
    """Remove temporary directories of compiles killed mid-way and moved-aside entries."""
    now = time.time()
    try:
        names = [n for n in os.listdir(root) if n.startswith(".")]
    except OSError:
        return
    for name in names:
        path = root / name
        try:
            if now - path.stat().st_mtime > STALE_SECONDS and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True))
