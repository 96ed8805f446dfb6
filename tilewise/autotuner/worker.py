"""A compile worker: `python -m tilewise.autotuner.worker`.

Reads pickled jobs `(prim_func bytes, compile kwargs, timeout)` from stdin, compiles each one
into the on-disk kernel cache and answers `(ok, message, seconds)` on stdout, until stdin
closes. The parent then loads the built kernels from the cache.

A worker of our own rather than multiprocessing: multiprocessing's spawn and forkserver
children re-import the user's main script, which re-runs an unguarded tuning script inside
every worker. These workers import only tilewise and need nothing from the caller's code:
the prim_funcs arrive pickled."""
from __future__ import annotations

import itertools
import os
import pickle
import sys
import time

from ..ir import buffer, expr
from ..jit.compile import compile as tw_compile
from .candidates import describe_error
from .deadline import deadline

# IR objects use integer ids as identity keys. Ids in unpickled prim_funcs come from the
# parent's counters; new objects made while lowering here must not reuse them.
_ID_BASE = 1 << 48


def _isolate_ids() -> None:
    expr._ids = itertools.count(_ID_BASE)
    buffer._ids = itertools.count(_ID_BASE)


def serve(inp, out) -> None:
    while True:
        try:
            job = pickle.load(inp)
        except EOFError:
            return
        if job is None:
            return
        payload, kwargs, timeout = job
        t0 = time.perf_counter()
        try:
            func = pickle.loads(payload)
            with deadline(timeout, "compiling"):
                tw_compile(func, **kwargs)
            reply = (True, "")
        except Exception as e:  # noqa: BLE001 - every failure is reported to the parent
            reply = (False, describe_error(e))
        pickle.dump((*reply, time.perf_counter() - t0), out)
        out.flush()


def main() -> None:
    # the protocol owns the real stdout; anything else printed goes to stderr
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _isolate_ids()
    try:
        serve(sys.stdin.buffer, out)
    except (KeyboardInterrupt, BrokenPipeError):
        pass


if __name__ == "__main__":
    main()
