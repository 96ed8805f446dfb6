"""A precompiled header for the CPU target's own headers (tw_cpu.h, tw_gemm.h, tw_math.h and the
standard headers they pull in). Parsing them is most of what g++ spends on a kernel; with the
header precompiled a cold compile of the canonical GEMM takes less than half the compiler time.

Every generated source starts with the same include lines (PCH_LINES, codegen.py); a source
that does is compiled with those lines replaced by one include of the precompiled header, the
line count kept (so that g++'s messages keep their line numbers). The machine code is the same
either way: the header is the same text, compiled with the same flags.

The header is built once per compiler, flags, header contents and host CPU into an entry of the
disk cache (`pch_dir`), published with the cache's atomic rename, so that processes compiling at
the same time each build their own and one wins. Not used when the cache is disabled, with the
user's compile_flags (a precompiled header is only valid for the flags it was built with), for a
source that does not start with PCH_LINES (a post-processing callback or user code may come
first), or when it cannot be built; g++ then parses the headers as usual. Were the file ever
invalid for a compile (g++ checks its compiler, flags and macros), g++ reads the header's text
instead, which includes the same files: slower, never different."""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

PCH_LINES = ('#include "tw_cpu.h"', '#include "tw_gemm.h"', "#include <omp.h>")
PCH_PREFIX = "".join(line + "\n" for line in PCH_LINES)
HEADER = "tw_pch.h"


def use_pch(source: str, extra_flags) -> str | None:
    """The source to compile with the precompiled header (its include lines replaced), or None
    when the header does not apply to this compile."""
    if extra_flags or not source.startswith(PCH_PREFIX):
        return None
    return f'#include "{HEADER}"' + "\n" * len(PCH_LINES) + source[len(PCH_PREFIX):]


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


def pch_key(cxx: str, flags: list[str], include_dir: Path, host: str) -> str:
    from ...jit import cache

    headers = "".join(p.name + "\0" + p.read_text() for p in sorted(include_dir.glob("*.h")))
    h = hashlib.sha256("\0".join([compiler_identity(cxx), " ".join(flags), headers, host]).encode()).hexdigest()
    return "pch-" + cache.make_key("cpu-pch", h)  # apart from kernels' entries (cache.clear knows the prefix)


_dirs: dict[tuple[str, str], Path | None] = {}  # (cache directory, key) -> the verified entry


def pch_dir(cxx: str, flags: list[str], include_dir: Path, host: str) -> Path | None:
    """The cache entry holding tw_pch.h and its .gch for this compiler and flags (built on first
    use), or None when there is none to use: cache disabled or unwritable, or the build failed."""
    from ...jit import cache

    if not cache.enabled():
        return None
    key = pch_key(cxx, flags, include_dir, host)
    memo = (str(cache.cache_dir()), key)
    known = _dirs.get(memo, False)
    if known is None or (known and (known / HEADER).is_file() and (known / (HEADER + ".gch")).is_file()):
        return known  # (not when clear_cache removed it since)
    entry = cache.lookup(key)  # checks every file's size and hash (a truncated .gch is rebuilt)
    if entry is None:
        def fill(d: Path) -> None:
            (d / HEADER).write_text(PCH_PREFIX)
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
