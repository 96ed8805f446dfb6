"""HIP C++ -> AMDGPU code object (.hsaco) with Debian's clang-19 and lld-19, without ROCm:
`-nogpuinc` (no HIP headers: tw_hip.h defines what the kernels use) and `-nogpulib` (no device
library: the math is LLVM's own lowering or include/tw_hip_math.h). Needs no GPU."""
from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
from pathlib import Path

from ...errors import CompileError

INCLUDE_DIR = Path(__file__).parent / "include"
SHARED_INCLUDE_DIR = Path(__file__).parent.parent / "include"  # shared with the CUDA header (tw_philox.h)
CLANG = "clang-19"


class ClangError(CompileError):
    """clang rejected the source or is missing; `log` is its full output."""

    def __init__(self, message: str, log: str = ""):
        self.log = log
        super().__init__(message)


def clang_path() -> str:
    path = shutil.which(CLANG)
    if path is None:
        raise ClangError(f"the HIP target needs {CLANG} and lld-19 (Debian: apt-get install clang-19 lld-19 llvm-19; "
                         "`make test` installs them when run as root)")
    return path


def compile_options(arch: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The clang command line for `arch` (part of any cache key through the fingerprint)."""
    return ("-x", "hip", f"--offload-arch={arch}", "-nogpulib", "-nogpuinc", "--cuda-device-only", "-std=c++17",
            "-O3", f"-I{INCLUDE_DIR}", f"-I{SHARED_INCLUDE_DIR}",
            # multiply-adds are fused where the IR says (transform/contract_fma.py), nowhere else
            "-ffp-contract=off", *extra)


def _run(source: str, arch: str, out: Path, mode: tuple[str, ...], extra: tuple[str, ...]) -> None:
    cmd = [clang_path(), *compile_options(arch, extra), *mode, "-o", str(out), "-"]
    r = subprocess.run(cmd, input=source.encode(), capture_output=True, check=False)
    if r.returncode != 0:
        log = r.stderr.decode(errors="replace")
        raise ClangError(f"clang-19 could not compile the HIP kernel for {arch}:\n{log}", log)


def compile_hsaco(source: str, arch: str, out: Path, extra: tuple[str, ...] = ()) -> None:
    """The linked code object (clang links the device ELF with ld.lld) written to `out`."""
    _run(source, arch, out, ("-c", "--no-gpu-bundle-output"), extra)


def compile_asm(source: str, arch: str, extra: tuple[str, ...] = ()) -> str:
    """The AMDGPU assembly clang emits for the source (`-S`), with the kernel descriptor and the
    metadata block (`.amdgpu_metadata`) resource_usage reads."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tw-hip-") as d:
        out = Path(d) / "kernel.s"
        _run(source, arch, out, ("-S",), extra)
        return out.read_text()


@functools.lru_cache(maxsize=1)
def toolchain_fingerprint() -> str:
    """What besides the source decides the code object: clang's version and every header the
    source includes (tw_hip.h pulls in tw_mfma.h and the shared tw_philox.h, so all of include/
    and the shared include/ are hashed)."""
    digest = hashlib.sha256()
    for path in sorted(INCLUDE_DIR.glob("*.h")) + sorted(SHARED_INCLUDE_DIR.glob("*.h")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    header = digest.hexdigest()[:16]
    try:
        version = subprocess.run([clang_path(), "--version"], capture_output=True, check=False).stdout.decode()
    except ClangError:
        version = "missing"
    return f"{version.splitlines()[0] if version else 'clang'}-tw_hip-{header}"
