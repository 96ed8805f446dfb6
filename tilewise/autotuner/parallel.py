"""Compiling the configurations: in parallel worker processes that build into the on-disk
kernel cache, then loaded here from the cache (cheap: no lowering, no compiler)."""
from __future__ import annotations

import logging
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading

from .. import env
from ..jit import cache
from ..jit.compile import compile as tw_compile
from .candidates import Candidate, compile_kwargs_for, describe_error
from .deadline import deadline
from .executor import run_on_executor
from .progress import Progress

logger = logging.getLogger("tilewise.autotuner")

# how long past its own timeout a worker may stay silent before it is killed
_GRACE_SECONDS = 30


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def worker_count(jobs: int) -> int:
    workers = env.get("TILEWISE_AUTOTUNE_WORKERS")
    if workers:
        try:
            return max(1, min(jobs, int(workers)))
        except ValueError:
            logger.warning("TILEWISE_AUTOTUNE_WORKERS=%r is not an integer; ignoring it", workers)
    return max(1, min(jobs, available_cpus()))


def _worker_env() -> dict:
    environ = env.environ()  # with settings assigned in this process (tilewise.env.TILELANG_CACHE_DIR = ...)
    # the worker imports the same tilewise as this process, wherever that came from
    paths = [p or os.getcwd() for p in sys.path]
    environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return environ


class _Worker:
    def __init__(self, env: dict):
        self.errors = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tilewise.autotuner.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors, env=env,
        )

    def run(self, job: tuple, timeout: float | None) -> tuple:
        killer = None
        if timeout:
            killer = threading.Timer(timeout + _GRACE_SECONDS, self.proc.kill)
            killer.daemon = True
            killer.start()
        try:
            pickle.dump(job, self.proc.stdin)
            self.proc.stdin.flush()
            return pickle.load(self.proc.stdout)
        finally:
            if killer is not None:
                killer.cancel()

    def stderr_tail(self, limit: int = 1500) -> str:
        try:
            self.errors.seek(0)
            text = self.errors.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""
        return text[-limit:]

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.errors.close()


def _compile_in_workers(jobs: list[tuple[Candidate, bytes]], compile_kwargs: dict, timeout, progress: Progress,
                        n_workers: int) -> list[Candidate]:
    """Build in workers; returns the candidates no worker could take (compile them here)."""
    todo: queue.Queue = queue.Queue()
    for job in jobs:
        todo.put(job)
    leftover: list[Candidate] = []
    environ = _worker_env()

    def drive(worker: _Worker) -> None:
        while True:
            try:
                cand, payload = todo.get_nowait()
            except queue.Empty:
                return
            try:
                ok, message, seconds = worker.run((payload, compile_kwargs_for(cand, compile_kwargs), timeout), timeout)
            except (EOFError, OSError, ValueError, pickle.UnpicklingError):
                # the worker died (crashed, or killed past its timeout): this job is not retried
                tail = worker.stderr_tail()
                cand.error = "the compile worker died" + (f":\n{tail}" if tail else "")
                cand.extra["infrastructure"] = True
                progress.update(1)
                return  # the other workers take the remaining jobs
            if not ok:
                cand.error = message
            cand.extra["compile_seconds"] = seconds
            cand.extra["compiled_in_worker"] = ok
            progress.update(1)

    workers: list[_Worker] = []
    try:
        for _ in range(n_workers):
            try:
                workers.append(_Worker(environ))
            except OSError as e:
                logger.warning("could not start a compile worker (%s); compiling here instead", e)
                break
        if not workers:
            return [c for c, _ in jobs]
        threads = [threading.Thread(target=drive, args=(w,), daemon=True) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for w in workers:
            w.close()
    while True:  # left when every worker died
        try:
            leftover.append(todo.get_nowait()[0])
        except queue.Empty:
            return leftover


def compile_all(candidates: list[Candidate], compile_kwargs: dict, timeout, desc: str, executor=None,
                measurer=None, task_kwargs: dict | None = None) -> int:
    """Compile every candidate that has a prim_func; sets `kernel`, or `error` on failure.
    Returns the number of worker processes used. With `executor` (submit(fn, *args) -> Future)
    each configuration is compiled (and measured by `measurer`, when given) as a task of it, with
    `task_kwargs` (default: compile_kwargs)."""
    todo = [c for c in candidates if c.ok]
    if executor is not None:
        return _compile_on_executor(todo, compile_kwargs, timeout, desc, executor, measurer,
                                    task_kwargs or compile_kwargs)
    progress = Progress(len(todo), f"{desc}: compiling")
    here: list[Candidate] = []
    n_workers = worker_count(len(todo))
    used = 0
    try:
        # with the cache off, what a worker builds is not visible to this process
        if n_workers > 1 and len(todo) > 1 and cache.enabled():
            jobs = []
            for c in todo:
                try:
                    jobs.append((c, pickle.dumps(c.func, protocol=pickle.HIGHEST_PROTOCOL)))
                except Exception as e:  # noqa: BLE001 - what cannot be pickled is compiled here
                    logger.debug("config %r cannot be sent to a worker (%s); compiling it here", c.config, e)
                    here.append(c)
            if len(jobs) > 1:
                used = min(n_workers, len(jobs))
                here += _compile_in_workers(jobs, compile_kwargs, timeout, progress, used)
            else:
                here += [c for c, _ in jobs]
        else:
            here = list(todo)
        for c in here:
            _compile_here(c, compile_kwargs, timeout)
            progress.update(1)
    finally:
        progress.close()
    # the worker-built kernels are in the disk cache now: load them (nothing is rebuilt)
    for c in todo:
        if c.ok and c.kernel is None:
            _compile_here(c, compile_kwargs, timeout)
    return used


def _compile_on_executor(todo: list[Candidate], compile_kwargs: dict, timeout, desc: str, executor,
                         measurer, task_kwargs: dict) -> int:
    if not cache.enabled():
        # the kernels the executor builds reach this process through the kernel cache
        logger.warning("%s: the kernel cache is off (TILEWISE_DISABLE_CACHE), so the executor's builds cannot "
                       "be loaded here: compiling every configuration in this process instead", desc)
        for c in todo:
            _compile_here(c, compile_kwargs, timeout)
        return 0
    # what cannot be sent is compiled (and later measured) here
    run_on_executor(todo, task_kwargs, timeout, desc, executor, measurer)
    # the executor's kernels are in the kernel cache now: loading them compiles nothing
    for c in todo:
        if c.ok and c.kernel is None:
            _compile_here(c, compile_kwargs, timeout)
    return 0


def _compile_here(c: Candidate, compile_kwargs: dict, timeout) -> None:
    try:
        with deadline(timeout, "compiling"):
            c.kernel = tw_compile(c.func, **compile_kwargs_for(c, compile_kwargs))
    except Exception as e:  # noqa: BLE001 - a configuration that does not compile is skipped
        c.error = describe_error(e)
