"""T.rng_* and T.sync_grid on gfx942. The Philox4x32-10 generator is one header shared by the CUDA
and HIP targets (backend/include/tw_philox.h), so the HIP kernel gives the CPU target's numbers
bit for bit (integers, uniform floats; the normal distribution within each target's log / sin /
cos); clang keeps the state in VGPRs (no scratch). The grid barrier (tw_hip.h: agent-scope
fences, an atomic counter and generation, s_sleep while waiting) runs in the emulator with all
workgroups in one batch, and the emulator reports the race without it. The launcher's
cooperative launch is tested in test_hip_target.py."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import tilewise
from tilewise.emulator.errors import RaceError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "language"))
from test_launch_sync import _check_grid_sync, grid_sync  # noqa: E402
from test_rng import _reference, _run, per_thread  # noqa: E402

pytestmark = pytest.mark.usefixtures("clang19")


def _hip(func):
    return tilewise.compile(func, target="hip -arch=gfx942", execution_backend="emulator")


@pytest.mark.parametrize(("seed", "off", "seq"), [(42, 0, None), ((1 << 40) + 7, 5, (1 << 33) - 3)])
def test_rng_gives_the_cpu_targets_numbers(seed, off, seq):
    k = _hip(per_thread(seed, off, seq))
    src = k.get_kernel_source()
    assert "tw::rng_init(" in src and "tw::rng_normal_double(" in src
    res = k.resource_usage()
    assert res["scratch_bytes"] == 0 and res["vgpr_spills"] == 0, res
    got = _run(k)
    with pytest.warns(UserWarning, match="thread-exactly"):
        cpu = _run(tilewise.compile(per_thread(seed, off, seq), target="cpu"))
    for g, c in zip(got[:3], cpu[:3]):  # integers and uniform floats: bit for bit
        np.testing.assert_array_equal(g, c)
    want = _reference(seed, off, seq)
    np.testing.assert_allclose(got[3], want[3], rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(got[4], want[4], rtol=1e-13, atol=1e-13)


def test_philox_multiplies_are_mul_hi_in_the_isa():
    isa = _hip(per_thread(1, 0, None)).get_isa()
    assert "v_mul_hi_u32" in isa


def test_sync_grid_in_the_emulator():
    k = _hip(grid_sync(N=1024, block=64, threads=128))
    _check_grid_sync(k)
    src, isa = k.get_kernel_source(), k.get_isa()
    assert "#define TW_GRID_SYNC" in src and "tw::grid_sync()" in src
    # the arrival, the wait's sleep, and the agent-scope release / acquire (L2 writeback, invalidate)
    assert "global_atomic_add" in isa and "s_sleep" in isa and "buffer_wbl2" in isa and "buffer_inv" in isa
    assert k.resource_usage()["scratch_bytes"] == 0


def test_without_the_grid_barrier_the_emulator_reports_the_race():
    k = _hip(grid_sync(barrier=False))
    with pytest.raises(RaceError):
        k(np.zeros(1024, np.float32))


def test_a_grid_too_large_for_the_mi300x_is_a_clear_error():
    from tilewise.emulator.grid_sync import CooperativeLaunchError

    # 304 CUs x 2 workgroups of 1024 work-items
    k = _hip(grid_sync(N=1024 * 64, block=64, threads=1024))
    with pytest.raises(CooperativeLaunchError, match="at most 608"):
        k(np.zeros(1024 * 64, np.float32))


def test_sincospi_on_the_host(tmp_path):
    """tw_hip_math.h's sin(pi x) / cos(pi x) (the normal distribution's angle), compiled for the
    host: exact at multiples of 1/2, within an ulp or two of numpy's sin(pi x) over the angles Box-Muller
    takes and beyond."""
    import ctypes
    import shutil
    import subprocess

    from tilewise.backend.hip.clang import INCLUDE_DIR

    cc = next((c for c in ("clang++-19", "g++") if shutil.which(c)), None)
    if cc is None:
        pytest.skip("no host C++ compiler")
    (tmp_path / "s.cpp").write_text(
        "#include <stdint.h>\n#define TW_DEV inline\n#define TW_HIP_MATH_HOST\n#include \"tw_hip_math.h\"\n"
        'extern "C" void scpi(const double* x, double* y, long n, int c) {\n'
        "  for (long i = 0; i < n; ++i) y[i] = tw::hm::sincospi(x[i], c != 0);\n}\n")
    lib = tmp_path / "libs.so"
    subprocess.run([cc, "-std=c++20", "-O2", "-ffp-contract=off", "-shared", "-fPIC", f"-I{INCLUDE_DIR}",
                    str(tmp_path / "s.cpp"), "-o", str(lib)], check=True, capture_output=True)
    f = ctypes.CDLL(str(lib)).scpi
    x = np.concatenate([np.linspace(0, 2, 100_001), -np.random.default_rng(0).random(1000) * 7,
                        np.arange(-8, 9) * 0.5])
    for cosine, ref in ((0, np.sin), (1, np.cos)):
        y = np.empty_like(x)
        f(x.ctypes.data_as(ctypes.c_void_p), y.ctypes.data_as(ctypes.c_void_p), ctypes.c_long(x.size),
          ctypes.c_int(cosine))
        # numpy's reference rounds pi x first: its own error grows with the argument
        bound = 2.0**-52 + 2 * np.spacing(np.pi * np.abs(x))
        assert (np.abs(y - ref(np.pi * x)) <= bound).all()
        half = x[-17:]
        exact = np.round(ref(np.pi * half))  # 0, ±1 at multiples of 1/2
        np.testing.assert_array_equal(np.abs(y[-17:]), np.abs(exact))
