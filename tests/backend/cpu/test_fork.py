"""A process forked after CPU kernels ran (a DataLoader worker, a multiprocessing fork pool) can
call them: OpenMP's thread pool does not survive fork, so the child runs them on one thread and
warns once. Run in a subprocess with a timeout: the failure mode is a hang."""
from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import multiprocessing as mp
    import numpy as np
    import tilewise
    import tilewise.language as T

    @T.prim_func
    def f(A: T.Tensor((1024, 256), "float32"), B: T.Tensor((1024, 256), "float32")):
        with T.Kernel(64, threads=128) as bx:
            for i, j in T.Parallel(16, 256):
                B[bx * 16 + i, j] = A[bx * 16 + i, j] + 1.0

    k = tilewise.compile(f, target="cpu")
    a = np.ones((1024, 256), np.float32)

    def child(_):
        b = np.zeros_like(a)
        k(a, b)
        return float(b.sum())

    if __name__ == "__main__":
        b = np.zeros_like(a)
        k(a, b)  # the parent's parallel region starts OpenMP's threads
        with mp.get_context("fork").Pool(2) as pool:
            print(pool.map(child, range(4)))
''')


def test_forked_children_call_kernels(tmp_path):
    script = tmp_path / "fork_kernel.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str([2.0 * 1024 * 256] * 4), proc.stdout
    assert "OpenMP does not survive fork" in proc.stderr
