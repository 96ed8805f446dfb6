"""RayExecutor: autotuning tasks as Ray tasks, on a local Ray cluster or an existing one.

    from tilewise.autotuner import RayExecutor

    @tilewise.autotune(configs=[...], executor=RayExecutor())            # ray.init(): a local cluster
    @tilewise.autotune(configs=[...], executor=RayExecutor("ray://head:10001", measure=True,
                                                           task_options={"num_gpus": 1}))  # GPU nodes

`ray` is an optional dependency (`pip install tilewise[ray]`), imported when the first
RayExecutor is made. The executor calls `ray.init(address, **init_kwargs)` unless Ray is
already initialised (then it uses that session and leaves it running); `shutdown()` (or
leaving a `with RayExecutor(...) as ex:` block) shuts down only a session it started.

Tasks run with `max_retries=0`: a task lost with its worker comes back as Ray's
WorkerCrashedError / NodeDiedError and the autotuner re-queues that configuration itself
(bounded), so a configuration whose compile crashes its worker every time is not retried
forever. The workers import tilewise (installed there, or on PYTHONPATH for a local cluster)
and compile into their own kernel cache under the usual rules (TILEWISE_CACHE_DIR, else
~/.cache/tilewise) — a local cluster's workers inherit this process's environment, and the
settings assigned in this process through tilewise.env are added to the tasks' environment
unless `forward_env=False`. A build the caller cannot see in its own cache comes back with the
answer and is stored there.

Timing on the workers (`measure=True`) gives their times: the tuning result is cached here
under this machine's key, so use it when the workers are the machines the kernel will run on."""
from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable

from .. import env


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise ImportError(
            "tilewise.autotuner.RayExecutor needs Ray, which is not installed: pip install tilewise[ray] "
            "(or pip install ray)"
        ) from e
    return ray


def _settings() -> dict[str, str]:
    """The tilewise settings assigned in this process (tilewise.env.X = ...), which its
    environment, and so a local cluster's workers, do not have."""
    return {k: v for k, v in env.environ().items()
            if k.startswith(("TILEWISE_", "TILELANG_")) and os.environ.get(k) != v}


class RayExecutor(concurrent.futures.Executor):
    """A concurrent.futures.Executor whose `submit(fn, *args, **kwargs)` runs `fn` as a Ray task
    and returns a concurrent.futures.Future.

    `address`: None starts a local cluster (or joins the one RAY_ADDRESS names, as ray.init does);
    "auto" or "ray://host:port" connects to a running one. `measure`: the tasks also check and
    time their configuration (set it when the workers have the target hardware; the tuning
    result's times are then the workers'). `task_options` go to each task's `.options(...)`
    (default num_cpus=1, max_retries=0; e.g. {"num_gpus": 1}, {"resources": {...}},
    {"runtime_env": {...}}); other keyword arguments go to ray.init (e.g. num_cpus=2,
    include_dashboard=False)."""

    name = "Ray"

    def __init__(self, address: str | None = None, *, measure: bool = False, task_options: dict | None = None,
                 forward_env: bool = True, **init_kwargs):
        self._ray = ray = _import_ray()
        self.measure = bool(measure)
        self._started = False
        if not ray.is_initialized():
            kwargs = dict(init_kwargs)
            kwargs.setdefault("include_dashboard", False)
            kwargs.setdefault("log_to_driver", True)
            ray.init(address=address, **kwargs)
            self._started = True
        self._options = {"num_cpus": 1, "max_retries": 0, **(task_options or {})}
        runtime_env = dict(self._options.pop("runtime_env", None) or {})
        forwarded = _settings() if forward_env else {}
        if forwarded:
            # (a runtime_env makes Ray start workers of their own for it: only when needed)
            runtime_env["env_vars"] = {**forwarded, **runtime_env.get("env_vars", {})}
        if runtime_env:
            self._options["runtime_env"] = runtime_env
        self._remote = ray.remote(_call)
        self._closed = False
        # errors that mean "the worker went away", for the tuner's re-queueing
        ex = ray.exceptions
        self.worker_lost_errors = tuple(getattr(ex, n) for n in (
            "WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError", "OwnerDiedError",
        ) if hasattr(ex, n))

    def submit(self, fn: Callable, /, *args, **kwargs) -> concurrent.futures.Future:
        if self._closed:
            raise RuntimeError("cannot submit to a RayExecutor after shutdown()")
        ref = self._remote.options(**self._options).remote(fn, args, kwargs)
        return ref.future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks; shuts Ray down if this executor started it."""
        if self._closed:
            return
        self._closed = True
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()

    def __repr__(self) -> str:
        return f"RayExecutor(measure={self.measure}, options={self._options})"


def _call(fn: Callable, args: tuple, kwargs: dict):
    # one remote function for every callable: Ray pickles `fn` by reference (a module
    # function) or by value (cloudpickle), like any other argument
    return fn(*args, **kwargs)
