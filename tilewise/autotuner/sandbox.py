"""Running a configuration once in a forked child before it runs here, so that a kernel that
crashes (SIGSEGV, SIGBUS, abort) or hangs costs the tuner that configuration, not the user's
process. Only native CPU kernels are probed: they run in this process's address space, while
the emulator's kernels cannot crash it and a GPU context does not survive fork."""
from __future__ import annotations

import faulthandler
import os
import signal
import time

from ..backend.cpu import build as cpu_build
from ..jit.runtimes import NativeRuntime

PROBE_TIMEOUT = 120.0  # seconds, when the tuner has no timeout of its own


class ProbeFailure(Exception):
    """The configuration crashed or hung in the probe; `infrastructure` marks a timeout (which
    may say more about the machine's load than about the configuration)."""

    def __init__(self, reason: str, infrastructure: bool = False):
        super().__init__(reason)
        self.infrastructure = infrastructure


def needs_probe(kernel) -> bool:
    return isinstance(getattr(kernel, "runtime", None), NativeRuntime) and hasattr(os, "fork")


def probe(kernel, inputs: list, timeout: float | None) -> None:
    """Run kernel(*inputs) in a forked child; raise ProbeFailure if it dies by a signal or does
    not finish in time. Exceptions the call raises are left to the real run to report."""
    # within the tuner's own deadline for the configuration, which also covers making inputs
    limit = 0.8 * timeout if timeout else PROBE_TIMEOUT
    cpu_build.fork_warning = False
    try:
        pid = os.fork()
    finally:
        cpu_build.fork_warning = True
    if pid == 0:  # the child: one call, then leave without running the parent's cleanup
        code = 0
        faulthandler.disable()  # its crash is expected: no traceback on the user's stderr
        try:
            kernel(*inputs)
        except BaseException:  # noqa: BLE001 - reported by the run in the parent
            code = 3
        os._exit(code)
    end = time.monotonic() + limit
    delay = 0.001
    reaped = False
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                reaped = True
                break
            if time.monotonic() > end:
                raise ProbeFailure(f"did not finish within {limit:g} s when run (killed)", infrastructure=True)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    finally:
        if not reaped:  # timed out, or interrupted (the tuner's own deadline): no child left behind
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        raise ProbeFailure(f"crashed with {name} when run (in a probe process; this process was not affected)")
