"""Every TILEWISE_* environment variable, with its meaning and default: the only place tilewise
reads them (the README's table is checked against `VARIABLES` by a test)."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    meaning: str


VARIABLES = {v.name: v for v in (
    Variable("TILEWISE_TARGET", "", "the target `target=\"auto\"` means (e.g. `cuda`, `cpu`)"),
    Variable("TILEWISE_EXECUTION_BACKEND", "", "the execution backend `\"auto\"` means for CUDA targets "
             "(`nvrtc` or `emulator`)"),
    Variable("TILEWISE_CACHE_DIR", "", "where compiled kernels are cached (default `~/.cache/tilewise`)"),
    Variable("TILEWISE_DISABLE_CACHE", "0", "`1` turns every disk cache off (kernels, autotuning results)"),
    Variable("TILEWISE_DUMP_IR", "", "a directory: the IR after every compiler pass is written there"),
    Variable("TILEWISE_EMULATOR_RACES", "1", "`0` turns the emulator's race checks off (about twice as fast)"),
    Variable("TILEWISE_EMULATOR_UNINIT", "0", "`1` makes the emulator report reads of uninitialised shared "
             "memory and registers"),
    Variable("TILEWISE_EMULATOR_CROSSCHECK", "", "`ptx`: every emulator run is repeated by the PTX interpreter on "
             "the PTX NVRTC compiled, and the outputs compared (the test suite sets it)"),
    Variable("TILEWISE_AUTOTUNE_WORKERS", "", "processes compiling autotuning configurations (default: one per "
             "CPU)"),
    Variable("TILEWISE_AUTOTUNE_DISABLE_CACHE", "0", "`1` turns the autotuner's result cache off"),
    Variable("TILEWISE_AUTOTUNE_PROGRESS", "1", "`0` hides the autotuner's progress bar"),
)}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def get(name: str) -> str:
    """The variable's value, or its default; the empty string when unset without a default."""
    v = VARIABLES[name]  # a KeyError here is a typo in tilewise, not the user's
    value = os.environ.get(name)
    return (value if value is not None else v.default).strip()


def flag(name: str) -> bool:
    """A boolean variable: 1/true/yes/on or 0/false/no/off (anything else: the default)."""
    value = get(name).lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return VARIABLES[name].default.lower() in _TRUE
