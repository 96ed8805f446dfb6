"""Shared fixtures: one compile cache per test session (make test points TILEWISE_CACHE_DIR at a
fresh directory), every emulator run cross-checked by the PTX interpreter, a seeded generator, and compiling for the CUDA target in tests: through the
thread-exact emulator (to run against numpy) and through NVRTC for sm_80 and sm_90a (to check
resources and SASS)."""
import os
import tempfile

import numpy as np
import pytest

import tilewise
from tilewise.backend.cuda.inspect import instruction_mix, resource_usage

if "TILEWISE_CACHE_DIR" not in os.environ:
    os.environ["TILEWISE_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), "tilewise-test-cache")
# every kernel the tests run in the thread-IR emulator is also run by the PTX interpreter on the
# PTX NVRTC compiled, and the outputs compared (tilewise/jit/crosscheck.py)
os.environ.setdefault("TILEWISE_EMULATOR_CROSSCHECK", "ptx")

ARCHS = ("sm_80", "sm_90a")


def emu(func, out_idx=None, pass_configs=None):
    """The kernel lowered for CUDA, executed by the emulator when called."""
    return tilewise.compile(func, out_idx=out_idx, target="cuda", execution_backend="emulator",
                            pass_configs=pass_configs)


def nvrtc_check(func, expect=(), archs=ARCHS, max_registers=255, allow_stack=False, pass_configs=None) -> dict:
    """Compile `func` with NVRTC for every arch: no spills (no per-thread local memory unless
    `allow_stack`, which printf needs for its argument buffer), registers within the limit, and
    at least one of each SASS opcode in `expect` (an entry may be a tuple of alternatives, e.g.
    ("RED", "REDG"): sm_90 names global reductions REDG); `expect` may be a dict {arch: opcodes}
    where the architectures differ (wgmma and TMA on sm_90a). Returns {arch: resource usage}."""
    out = {}
    per_arch = expect if isinstance(expect, dict) else None
    for arch in archs:
        if per_arch is not None:
            expect = per_arch.get(arch, ())
        k = tilewise.compile(func, target=f"cuda -arch={arch}", execution_backend="emulator",
                             pass_configs=pass_configs)
        use = k.resource_usage()
        if allow_stack:
            raw = resource_usage(k.build.binary)
            assert raw["local_bytes"] == 0, (arch, raw)
        else:
            assert use["spill_bytes"] == 0, (func.name, arch, use)
        assert 0 < use["registers"] <= max_registers, (func.name, arch, use)
        if expect:
            groups = [(e,) if isinstance(e, str) else tuple(e) for e in expect]
            mix = instruction_mix(k.get_sass(), [op for g in groups for op in g])
            missing = [g for g in groups if not any(mix[op] for op in g)]
            assert not missing, (func.name, arch, f"no {missing} in the SASS", mix)
        out[arch] = use
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(name="emu")
def emu_fixture():
    """emu(func, out_idx=None, pass_configs=None): the kernel compiled for CUDA, run by the emulator."""
    return emu


@pytest.fixture(name="nvrtc_check")
def nvrtc_check_fixture():
    """nvrtc_check(func, expect=(), ...): compiled by NVRTC for sm_80 and sm_90a, resources checked."""
    return nvrtc_check


@pytest.fixture
def archs():
    return ARCHS


@pytest.fixture
def clang19():
    """The HIP target compiles with Debian's clang-19 / lld-19 and reads code objects with llvm-19's
    tools (`make test` installs them when run as root)."""
    import shutil

    missing = [t for t in ("clang-19", "ld.lld-19", "llvm-objdump-19", "llvm-readelf-19") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install clang-19 lld-19 llvm-19 (make test does it as root)")
