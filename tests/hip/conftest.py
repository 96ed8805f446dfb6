import shutil

import pytest


@pytest.fixture
def clang19():
    """The HIP tests compile with Debian's clang-19 / lld-19 / llvm-19 (`make test` installs them)."""
    missing = [t for t in ("clang-19", "ld.lld-19", "llvm-objdump-19", "llvm-readelf-19") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install clang-19 lld-19 llvm-19 (make test does it as root)")
