"""The task an executor runs for one configuration: compile it (and, when asked, check and time
it) wherever the executor puts it — a thread of this process, a ProcessPoolExecutor child, a
Ray worker on another machine.

Everything here is sent by value: the prim_func as pickle bytes (like the local compile
workers), the compile arguments, and optionally the Measurer. The task answers a plain dict.
When it ran where the caller's kernel cache is not visible (another host, another cache
directory, or the cache switched off), the answer carries the cache entry's files, so the
caller can publish them into its own cache and load the kernel without compiling."""
from __future__ import annotations

import os
import pickle
import socket
import time
from pathlib import Path

from ..jit import cache
from ..jit.compile import compile as tw_compile
from ..profiler import timing_backend
from .candidates import Candidate, describe_error
from .deadline import deadline

_isolated = False


def here() -> tuple[str, int]:
    """Identifies this process: (host name, pid)."""
    return socket.gethostname(), os.getpid()


def cache_place() -> tuple[str, str, bool]:
    """Where this process's kernel cache is: (host, directory, enabled)."""
    return socket.gethostname(), str(cache.cache_dir()), cache.enabled()


def _isolate_ids_once(caller: tuple[str, int]) -> None:
    # unpickled IR carries the caller's object ids; a process of its own must not reuse them
    # for the objects it makes while lowering (a thread of the caller shares its counters)
    global _isolated
    if _isolated or here() == tuple(caller):
        return
    from .worker import _isolate_ids

    _isolate_ids()
    _isolated = True


def _entry_files(kernel) -> tuple[str, dict[str, bytes]] | None:
    """The kernel's cache entry (key, {file name: bytes}), if it was built into one."""
    build = getattr(kernel, "build", None)
    entry = vars(build).get("entry") if build is not None else None
    if entry is None:
        return None
    entry = Path(entry)
    return entry.name, {p.name: p.read_bytes() for p in sorted(entry.iterdir()) if p.is_file()}


def run_config(payload: bytes, compile_kwargs: dict, timeout, caller: tuple, caller_cache: tuple,
               measurer=None) -> dict:
    """Compile one configuration (and measure it with `measurer`, a Measurer, when given).

    Never raises for the configuration's own failures: those are in the answer's `error`.
    An exception out of here means the task itself could not run (the executor's problem)."""
    _isolate_ids_once(caller)
    t0 = time.perf_counter()
    reply: dict = {"ok": True, "error": None, "seconds": 0.0, "entry": None, "latency": None,
                   "ref_latency": None, "infrastructure": False, "worker": here()}
    try:
        func = pickle.loads(payload)
        with deadline(timeout, "compiling"):
            kernel = tw_compile(func, **compile_kwargs)
    except Exception as e:  # noqa: BLE001 - a configuration that does not compile is a failed one
        reply.update(ok=False, error=describe_error(e), seconds=time.perf_counter() - t0)
        return reply
    reply["seconds"] = time.perf_counter() - t0
    if tuple(caller_cache) != cache_place() or not cache.enabled():
        reply["entry"] = _entry_files(kernel)  # the caller cannot see this machine's cache
    if measurer is not None:
        kind = getattr(kernel.target, "kind", None)
        if kind in ("cuda", "hip") and timing_backend(kernel) != "event":
            # no GPU here: the emulator's time says nothing about the GPU's
            gpu = "CUDA" if kind == "cuda" else "AMD"
            reply.update(error=f"the worker {reply['worker'][0]} (pid {reply['worker'][1]}) has no {gpu} GPU to time "
                               f"this {kernel.target} kernel on (it would run on the {kernel.execution_backend})",
                         infrastructure=True)
            return reply
        cand = Candidate(0, {}, (), {}, func=func, kernel=kernel)
        measurer.measure(cand)
        reply.update(latency=cand.latency, error=cand.error, ref_latency=measurer.ref_latency,
                     infrastructure=bool(cand.extra.get("infrastructure")), measured=True)
    return reply


def install_entry(key: str, files: dict[str, bytes]) -> None:
    """Publish a cache entry built elsewhere into this process's kernel cache (a no-op when an
    intact entry of that key is already there: the same key means the same build inputs)."""
    if not cache.enabled() or cache.lookup(key) is not None:
        return

    def fill(d: Path) -> None:
        for name, data in files.items():
            if name != "meta.json":
                (d / name).write_bytes(data)
        (d / "meta.json").write_bytes(files.get("meta.json", b"{}"))

    cache.publish(key, fill)
