"""One compile cache per test session (make test points TILEWISE_CACHE_DIR at a fresh dir)."""
import os
import tempfile

import pytest

if "TILEWISE_CACHE_DIR" not in os.environ:
    os.environ["TILEWISE_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), "tilewise-test-cache")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
