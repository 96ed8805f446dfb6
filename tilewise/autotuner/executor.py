"""Compiling (and optionally measuring) configurations on a user-given executor: anything with
`submit(fn, *args) -> Future`, such as concurrent.futures.ThreadPoolExecutor,
ProcessPoolExecutor or tilewise.autotuner.RayExecutor.

Each configuration is one task (remote.run_config). Its answer comes back here: the built cache
entry is published into this process's kernel cache, and the kernel is then loaded from it, as
after the local compile workers. A task lost with its worker (a crashed process, a dead Ray
node, a broken process pool) re-queues its configuration, up to REQUEUE_LIMIT times; a
configuration that fails to compile is a failed configuration, exactly as locally."""
from __future__ import annotations

import concurrent.futures
import logging
import pickle

from .candidates import Candidate, compile_kwargs_for, describe_error
from .progress import Progress
from .remote import cache_place, here, install_entry, run_config

logger = logging.getLogger("tilewise.autotuner")

# how many times a configuration whose worker died is submitted again
REQUEUE_LIMIT = 2

# Ray's errors for a task that died with its worker or node (ray is optional: matched by name)
_LOST_NAMES = frozenset({
    "WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError", "OwnerDiedError",
    "ObjectReconstructionFailedError", "ObjectReconstructionFailedMaxAttemptsExceededError",
    "ObjectReconstructionFailedLineageEvictedError", "ActorDiedError", "ActorUnavailableError",
    "RaySystemError", "WorkerLostError",
})


def is_worker_lost(e: BaseException, executor=None) -> bool:
    """Did this task fail because the worker running it went away (not because of the
    configuration)? An executor may name more such errors in `worker_lost_errors`."""
    extra = tuple(getattr(executor, "worker_lost_errors", ()) or ())
    if extra and isinstance(e, extra):
        return True
    if isinstance(e, concurrent.futures.BrokenExecutor):  # BrokenProcessPool, BrokenThreadPool
        return True
    return any(t.__name__ in _LOST_NAMES for t in type(e).__mro__)


def executor_name(executor) -> str:
    return getattr(executor, "name", None) or type(executor).__name__


class _Job:
    def __init__(self, cand: Candidate, payload: bytes):
        self.cand = cand
        self.payload = payload
        self.attempts = 0


def run_on_executor(candidates: list[Candidate], compile_kwargs: dict, timeout, desc: str, executor,
                    measurer=None, requeue_limit: int = REQUEUE_LIMIT) -> list[Candidate]:
    """Run every candidate's task on `executor`; sets `error`, and `latency` when `measurer`
    went along. Returns the candidates whose prim_func cannot be pickled (compile them here)."""
    here_only: list[Candidate] = []
    jobs: list[_Job] = []
    for c in candidates:
        try:
            jobs.append(_Job(c, pickle.dumps(c.func, protocol=pickle.HIGHEST_PROTOCOL)))
        except Exception as e:  # noqa: BLE001 - what cannot be pickled is compiled here
            logger.debug("config %r cannot be sent to the executor (%s); compiling it here", c.config, e)
            here_only.append(c)
    if not jobs:
        return here_only
    name = executor_name(executor)
    caller, caller_cache = here(), cache_place()
    progress = Progress(len(jobs), f"{desc}: {'compiling and measuring' if measurer else 'compiling'} on {name}")
    failed = requeued = 0
    pending: dict = {}

    def note(finishing: int = 0) -> str:
        text = f"{failed} failed, {len(jobs) - progress.done - finishing} remaining"
        return text + (f", {requeued} re-queued" if requeued else "")

    def finish(job: _Job, error: str | None, infrastructure: bool = False) -> None:
        nonlocal failed
        if error is not None:
            job.cand.error = error
            failed += 1
        if infrastructure:
            job.cand.extra["infrastructure"] = True
        progress.update(1, note(finishing=1))

    def lost(job: _Job, e: BaseException) -> None:
        nonlocal requeued
        if job.attempts <= requeue_limit:
            requeued += 1
            logger.info("%s: the worker running config %r was lost (%s); re-queueing it (attempt %d of %d)",
                        desc, job.cand.config, describe_error(e), job.attempts + 1, requeue_limit + 1)
            progress.update(0, note())
            submit(job)
        else:
            # not the configuration's verdict: tuning is not cached, so it is tried again next time
            finish(job, f"its worker was lost {job.attempts} times on {name}: {describe_error(e)}",
                   infrastructure=True)

    def submit(job: _Job) -> None:
        job.attempts += 1
        try:
            fut = executor.submit(run_config, job.payload, compile_kwargs_for(job.cand, compile_kwargs), timeout,
                                  caller, caller_cache, measurer)
        except Exception as e:  # noqa: BLE001 - a broken pool refuses new work at submit
            if is_worker_lost(e, executor):
                lost(job, e)
            else:
                finish(job, f"{name} could not take the task: {describe_error(e)}", infrastructure=True)
            return
        pending[fut] = job

    def settle(fut) -> None:
        job = pending.pop(fut)
        try:
            reply = fut.result()
        except Exception as e:  # noqa: BLE001 - run_config answers the configuration's failures itself
            if is_worker_lost(e, executor):
                lost(job, e)
            else:
                finish(job, f"the task failed on {name}: {describe_error(e)}", infrastructure=True)
            return
        cand = job.cand
        cand.extra["compile_seconds"] = reply["seconds"]
        cand.extra["worker"] = reply.get("worker")
        if reply.get("entry") is not None:
            try:
                install_entry(*reply["entry"])
            except OSError as e:  # the kernel is then compiled here, from scratch
                logger.warning("%s: cannot store the kernel of config %r built on %s (%s)", desc, cand.config,
                               name, e)
        if reply.get("measured"):
            cand.latency = reply["latency"]
            if reply.get("ref_latency") is not None and measurer.ref_latency is None:
                measurer.ref_latency = reply["ref_latency"]
        finish(job, reply["error"], reply.get("infrastructure", False))

    try:
        for job in jobs:
            submit(job)
        while pending:
            futs = list(pending)
            if all(isinstance(f, concurrent.futures.Future) for f in futs):
                done, _ = concurrent.futures.wait(futs, return_when=concurrent.futures.FIRST_COMPLETED)
            else:  # a Future-like object of another kind: wait on it in submission order
                done = futs[:1]
            for f in done:
                settle(f)
    finally:
        progress.close()
    if failed:
        logger.info("%s: %d of %d configuration(s) failed on %s (%d re-queued)", desc, failed, len(jobs), name,
                    requeued)
    return here_only
