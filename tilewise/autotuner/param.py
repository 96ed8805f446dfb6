"""What the autotuner is told (compile and profile arguments) and what it returns."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..profiler.supply import TensorSupplyType


class AutotuneError(RuntimeError):
    """Tuning cannot give a result: no configuration works, or the target cannot be timed."""


@dataclass(frozen=True)
class CompileArgs:
    """Arguments of `tilewise.compile` used for every configuration."""

    out_idx: list[int] | int | None = None
    target: Any = "auto"
    execution_backend: str = "auto"
    target_host: Any = None
    verbose: bool = False
    pass_configs: dict | None = None
    compile_flags: Any = None


@dataclass(frozen=True)
class ProfileArgs:
    """How each configuration is checked and timed (times in milliseconds, timeout in seconds)."""

    warmup: float = 25
    rep: float = 100
    timeout: float | None = 30
    supply_type: TensorSupplyType = TensorSupplyType.Auto
    ref_prog: Callable | None = None
    supply_prog: Callable | None = None
    rtol: float = 1e-2
    atol: float = 1e-2
    max_mismatched_ratio: float = 0.01
    skip_check: bool = False
    manual_check_prog: Callable | None = None
    cache_input_tensors: bool = False


@dataclass(frozen=True)
class AutotuneResult:
    """The winner: `latency` (ms), `config`, `kernel` (a JITKernel) and its `func` and `libcode`.

    `ref_latency` is the reference program's time on the same inputs, when one was given;
    `cache_hit` says the result came from the cache without tuning; `skipped` lists the
    configurations that did not work, each with its reason."""

    latency: float | None = None
    config: dict | None = None
    ref_latency: float | None = None
    libcode: str | None = None
    func: Any = None
    kernel: Any = None
    cache_hit: bool = False
    skipped: list[tuple[dict, str]] = field(default_factory=list)
