"""Autotuning kernel factories over configurations (TileLang's tilelang.autotuner)."""
from .decorator import AutoTuneFactory, autotune
from .measure import get_autotune_inputs, set_autotune_inputs
from .param import AutotuneError, AutotuneResult, CompileArgs, ProfileArgs
from .tuner import AutoTuner

__all__ = [
    "AutoTuneFactory", "AutoTuner", "AutotuneError", "AutotuneResult", "CompileArgs", "ProfileArgs",
    "autotune", "get_autotune_inputs", "set_autotune_inputs",
]  # fmt: skip
