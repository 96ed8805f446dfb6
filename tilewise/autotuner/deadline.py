"""A per-configuration time limit, from SIGALRM: it interrupts Python code and waits on a
compiler subprocess (which subprocess.run then kills), not a call already inside a native
kernel. Only the main thread can receive it; elsewhere there is no limit."""
from __future__ import annotations

import contextlib
import signal
import threading


class ConfigTimeout(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: float | None, what: str = "the configuration"):
    usable = (
        seconds is not None and seconds > 0 and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise ConfigTimeout(f"{what} took longer than the timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
