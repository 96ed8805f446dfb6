"""A precompiled header for the CPU target's own headers (tw_cpu.h, tw_gemm.h, tw_math.h and the
standard headers they pull in). Parsing them is most of what g++ spends on a kernel; with the
header precompiled a cold compile of the canonical GEMM takes less than half the compiler time.

A generated source starts with its include lines (codegen.py: the same for every kernel); they
become the precompiled header's text, and the source is compiled with them replaced by one
include of it, the line count kept (so that g++'s messages keep their line numbers). The machine
code is the same either way: the same text, compiled with the same flags.

The header is built once per include lines, compiler, flags, header contents and host CPU into
an entry of the disk cache (`pch_dir`), published with the cache's atomic rename, so that
processes compiling at the same time each build their own and one wins. Not used when the
cache is disabled, with the user's compile_flags (a precompiled header is only valid for the
flags it was built with), for a source that does not start with include lines (a
post-processing callback's text may come first), or when it cannot be built; g++ then parses
the headers as usual. Were the file ever invalid for a compile (g++ checks its compiler, flags
and macros), g++ reads the header's text instead, which includes the same files: slower, never
different."""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

HEADER = "tw_pch.h"


def use_pch(source: str, extra_flags) -> tuple[str, str] | None:
    """(the header's text: the source's leading include lines, the source to compile with the
    precompiled header instead of them), or None when a header does not apply to this compile."""
    if extra_flags:
        return None
    lines = source.split("\n")
    n = 0
    while n < len(lines) - 1 and lines[n].startswith("#include "):
        n += 1
    if n == 0:
        return None
    return "".join(line + "\n" for line in lines[:n]), f'#include "{HEADER}"' + "\n" * n + "\n".join(lines[n:])


@functools.cache
def compiler_identity(cxx: str) -> str:
    """Names the compiler for the header's key without running it: the resolved path of the
    driver (g++ -> g++-12), its size and time, which change with the compiler's package. g++
    itself checks that a precompiled header is its own and ignores it otherwise."""
    path = os.path.realpath(shutil.which(cxx) or cxx)
    try:
        st = os.stat(path)
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return path


def pch_key(text: str, cxx: str, flags: list[str], include_dir: Path, host: str, cache) -> str:
    headers = "".join(p.name + "\0" + p.read_text() for p in sorted(include_dir.glob("*.h")))
    h = hashlib.sha256("\0".join([text, compiler_identity(cxx), " ".join(flags), headers, host]).encode()).hexdigest()
    return "pch-" + cache.make_key("cpu-pch", h)  # apart from kernels' entries (cache.clear knows the prefix)


_dirs: dict[tuple[str, str], Path | None] = {}  # (cache directory, key) -> the verified entry


def pch_dir(text: str, cxx: str, flags: list[str], include_dir: Path, host: str, cache) -> Path | None:
    """The cache entry holding tw_pch.h (`text`) and its .gch for this compiler and flags (built
    on first use), or None when there is none to use: cache disabled, or the build failed.
    `cache` is the kernel cache (tilewise.jit.cache), handed down by the target record: the
    backends sit below jit and do not import it."""
    if not cache.enabled():
        return None
    key = pch_key(text, cxx, flags, include_dir, host, cache)
    memo = (str(cache.cache_dir()), key)
    known = _dirs.get(memo, False)
    if known is None or (known and (known / HEADER).is_file() and (known / (HEADER + ".gch")).is_file()):
        return known  # (not when clear_cache removed it since)
    entry = cache.lookup(key)  # checks every file's size and hash (a truncated .gch is rebuilt)
    if entry is None:
        def fill(d: Path) -> None:
            (d / HEADER).write_text(text)
            cmd = [cxx, *flags, f"-I{include_dir}", "-x", "c++-header", str(d / HEADER), "-o", str(d / (HEADER + ".gch"))]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise _BuildFailed(proc.stderr[-2000:])
            cache.write_json(d / "meta.json", {"name": HEADER, "target": "cpu", "machine": "precompiled header"})

        try:
            entry = cache.publish(key, fill)
        except (_BuildFailed, OSError):
            entry = None  # the kernel compile then parses the headers itself and reports any error
    _dirs[memo] = entry
    return entry


class _BuildFailed(Exception):
    pass
