"""On-disk cache of compiled kernels under TILEWISE_CACHE_DIR (default ~/.cache/tilewise).

Each entry is a directory named by its key, published with an atomic rename, so concurrent
processes either see a complete entry or none."""
from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from .. import env
from ..version import __version__


def enabled() -> bool:
    return not env.flag("TILEWISE_DISABLE_CACHE")


def cache_dir() -> Path:
    d = env.get("TILEWISE_CACHE_DIR")
    return Path(d) if d else Path.home() / ".cache" / "tilewise"


@functools.lru_cache(maxsize=1)
def compiler_fingerprint() -> str:
    """Identifies this state of tilewise's own sources (passes, lowerings, headers), so a kernel
    compiled by one state of the compiler is never served to another, even without a version
    bump. File sizes and modification times stand in for the contents (a stat is much cheaper
    than a read, and a cache hit must stay fast)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".h", ".cuh") and "__pycache__" not in path.parts:
            st = path.stat()
            h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def make_key(*parts) -> str:
    h = hashlib.sha256()
    h.update(__version__.encode())
    h.update(compiler_fingerprint().encode())
    for p in parts:
        h.update(b"\x00")
        h.update(p if isinstance(p, bytes) else str(p).encode())
    return h.hexdigest()[:40]


def lookup(key: str) -> Path | None:
    if not enabled():
        return None
    d = cache_dir() / key
    if (d / "meta.json").is_file():
        return d
    return None


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
        if final.is_dir() and (final / "meta.json").is_file():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=root))
    except OSError as e:
        warnings.warn(f"tilewise: cannot write the kernel cache at {root} ({e}); compiling without it", stacklevel=3)
        root = _private_root()
        final = root / key
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=root))
    try:
        fill(tmp)
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
                # a damaged entry without its meta.json (complete entries always have one)
                shutil.rmtree(final, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True))
