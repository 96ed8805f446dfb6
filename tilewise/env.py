"""Every TILEWISE_* environment variable, with its meaning and default: the only place tilewise
reads them (the README's table is checked against `VARIABLES` by a test). TileLang's name for a
setting (TILELANG_CACHE_DIR, ...) is read when tilewise's is unset, and this module also stands in
for TileLang's `tilelang.env` object (attributes, assignments, enable_cache/disable_cache)."""
from __future__ import annotations

import contextlib
import os
import sys
import types
import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    meaning: str
    tilelang: str = ""  # TileLang's name for it, read when this one is not set


VARIABLES = {v.name: v for v in (
    Variable("TILEWISE_TARGET", "", "the target `target=\"auto\"` means (e.g. `cuda`, `cpu`); TileLang's "
             "`TILELANG_TARGET` is read when it is unset", "TILELANG_TARGET"),
    Variable("TILEWISE_EXECUTION_BACKEND", "", "the execution backend `\"auto\"` means for CUDA targets "
             "(`nvrtc` or `emulator`); TileLang's `TILELANG_EXECUTION_BACKEND` is read when it is unset",
             "TILELANG_EXECUTION_BACKEND"),
    Variable("TILEWISE_CACHE_DIR", "", "where compiled kernels are cached (default `~/.cache/tilewise`); "
             "TileLang's `TILELANG_CACHE_DIR` is read when it is unset", "TILELANG_CACHE_DIR"),
    Variable("TILEWISE_DISABLE_CACHE", "0", "`1` turns every disk cache off (kernels, autotuning results); "
             "TileLang's `TILELANG_DISABLE_CACHE` is read when it is unset", "TILELANG_DISABLE_CACHE"),
    Variable("TILEWISE_DUMP_IR", "", "a directory: the IR after every compiler pass is written there"),
    Variable("TILEWISE_EMULATOR_RACES", "1", "`0` turns the emulator's race checks off (about twice as fast)"),
    Variable("TILEWISE_EMULATOR_UNINIT", "0", "`1` makes the emulator report reads of uninitialised shared "
             "memory and registers"),
    Variable("TILEWISE_EMULATOR_STATS", "0", "`1` makes the emulator count shared-memory bank conflicts "
             "(`kernel.emulate_stats()`; a little slower)"),
    Variable("TILEWISE_EMULATOR_ATOMIC_SEED", "", "an integer: the emulator applies atomics that hit one address in "
             "the order this seed draws (default: a fresh order every run, as unordered as on a GPU)"),
    Variable("TILEWISE_EMULATOR_CROSSCHECK", "", "`ptx`: every emulator run is repeated by the PTX interpreter on "
             "the PTX NVRTC compiled, and the outputs compared (the test suite sets it)"),
    Variable("TILEWISE_REGISTER_FIT", "1", "`0` turns off the CUDA build's register fit (a second, register-capped "
             "ptxas run for kernels whose allocation exceeds their live registers; docs/DESIGN.md)"),
    Variable("TILEWISE_AUTOTUNE_WORKERS", "", "processes compiling autotuning configurations (default: one per "
             "CPU); TileLang's `TILELANG_AUTO_TUNING_CPU_COUNTS` is read when it is unset (-1: the default)",
             "TILELANG_AUTO_TUNING_CPU_COUNTS"),
    Variable("TILEWISE_AUTOTUNE_DISABLE_CACHE", "0", "`1` turns the autotuner's result cache off; TileLang's "
             "`TILELANG_AUTO_TUNING_DISABLE_CACHE` is read when it is unset", "TILELANG_AUTO_TUNING_DISABLE_CACHE"),
    Variable("TILEWISE_AUTOTUNE_PROGRESS", "1", "`0` hides the autotuner's progress bar"),
)}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_forced: dict[str, str] = {}  # values assigned in the process (env.TILELANG_CACHE_DIR = ...), by name
_BY_TILELANG = {v.tilelang: v.name for v in VARIABLES.values() if v.tilelang}


def _from_tilelang(name: str, raw: str) -> str:
    if name == "TILEWISE_AUTOTUNE_WORKERS":  # TileLang's -1 means "automatic"
        try:
            return raw if int(raw) > 0 else ""
        except ValueError:
            return raw
    return raw


def get(name: str) -> str:
    """The variable's value (assigned in the process, else its environment variable, else
    TileLang's name for it), or its default; the empty string when unset without a default."""
    v = VARIABLES[name]  # a KeyError here is a typo in tilewise, not the user's
    value = _forced.get(name, os.environ.get(name))
    if value is None and v.tilelang and os.environ.get(v.tilelang) is not None:
        value = _from_tilelang(name, os.environ[v.tilelang])
    return (value if value is not None else v.default).strip()


@contextlib.contextmanager
def override(name: str, value: str):
    """The variable reads as `value` inside the block (this process only), whatever the
    environment says."""
    VARIABLES[name]  # noqa: B018 - a KeyError is a typo in tilewise
    missing = object()
    old = _forced.get(name, missing)
    _forced[name] = value
    try:
        yield
    finally:
        if old is missing:
            _forced.pop(name, None)
        else:
            _forced[name] = old


def flag(name: str) -> bool:
    """A boolean variable: 1/true/yes/on or 0/false/no/off (anything else: the default)."""
    value = get(name).lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return VARIABLES[name].default.lower() in _TRUE


def environ() -> dict:
    """os.environ with the values assigned in this process, for child processes (autotuning
    workers) to see the same settings."""
    out = dict(os.environ)
    for name in VARIABLES:
        value = get(name)
        if value != VARIABLES[name].default or name in out:
            out[name] = value
    return out


# ---------------------------------------------------------------------------------------------
# TileLang's tilelang.env (an Environment object; `from tilelang.env import env` works too): this
# module answers its attribute reads and assignments and has its methods.


class CacheState:
    """The in-process switch of tilelang.enable_cache() / disable_cache()."""

    _enabled = True

    @classmethod
    def enable(cls) -> None:
        cls._enabled = True

    @classmethod
    def disable(cls) -> None:
        cls._enabled = False

    @classmethod
    def is_enabled(cls) -> bool:
        return cls._enabled


def is_cache_globally_disabled() -> bool:
    return flag("TILEWISE_DISABLE_CACHE")


def is_cache_enabled() -> bool:
    """Kernels and tuning results are cached on disk (TILEWISE_DISABLE_CACHE unset and
    tilewise.disable_cache() not called)."""
    return CacheState.is_enabled() and not is_cache_globally_disabled()


def enable_cache() -> None:
    CacheState.enable()


def disable_cache() -> None:
    """Compile everything anew in this process, neither reading nor writing the disk caches."""
    CacheState.disable()


def is_autotune_cache_disabled() -> bool:
    return flag("TILEWISE_AUTOTUNE_DISABLE_CACHE")


def get_default_target() -> str:
    return get("TILEWISE_TARGET") or "auto"


def get_default_execution_backend() -> str:
    return get("TILEWISE_EXECUTION_BACKEND") or "auto"


def get_default_verbose() -> bool:
    return _tilelang_only("TILELANG_VERBOSE").lower() in _TRUE


def is_print_on_compilation_enabled() -> bool:
    return _tilelang_only("TILELANG_PRINT_ON_COMPILATION").lower() in _TRUE


# TileLang's attribute names for the variables above (two differ from the variables' names)
_ATTRS = {**_BY_TILELANG, "TILELANG_DEFAULT_TARGET": "TILEWISE_TARGET",
          "TILELANG_DEFAULT_EXECUTION_BACKEND": "TILEWISE_EXECUTION_BACKEND"}
# TileLang variables with no counterpart here: read back as set (environment or assignment), with
# TileLang's defaults, and a warning once when assigned, since nothing in tilewise reads them
_TILELANG_ONLY = {
    "TILELANG_PRINT_ON_COMPILATION": ("TILELANG_PRINT_ON_COMPILATION", "1"),
    "TILELANG_VERBOSE": ("TILELANG_VERBOSE", "0"),
    "TILELANG_DEFAULT_VERBOSE": ("TILELANG_VERBOSE", "0"),
    "TILELANG_TMP_DIR": ("TILELANG_TMP_DIR", ""),
    "TILELANG_CLEAR_CACHE": ("TILELANG_CLEAR_CACHE", "0"),
    "TILELANG_USE_GEMM_V1": ("TILELANG_USE_GEMM_V1", "0"),
    "TILELANG_AUTO_TUNING_CPU_UTILITIES": ("TILELANG_AUTO_TUNING_CPU_UTILITIES", "0.9"),
    "TILELANG_AUTO_TUNING_MAX_CPU_COUNT": ("TILELANG_AUTO_TUNING_MAX_CPU_COUNT", "-1"),
    "SKIP_LOADING_TILELANG_SO": ("SKIP_LOADING_TILELANG_SO", "0"),
}


def _tilelang_only(attr: str) -> str:
    key, default = _TILELANG_ONLY[attr]
    return _forced.get(key, os.environ.get(key, default))


class _EnvModule(types.ModuleType):
    def __getattr__(self, attr: str):
        if attr in VARIABLES:
            return get(attr)
        if attr in _ATTRS:
            name = _ATTRS[attr]
            value = get(name)
            if name == "TILEWISE_CACHE_DIR" and not value:
                value = os.path.expanduser("~/.cache/tilewise")
            return value or ("auto" if name in ("TILEWISE_TARGET", "TILEWISE_EXECUTION_BACKEND") else value)
        if attr in _TILELANG_ONLY:
            return _tilelang_only(attr)
        if attr == "CUDA_HOME":
            return os.environ.get("CUDA_HOME", os.environ.get("CUDA_PATH", ""))
        raise AttributeError(f"tilewise.env has no attribute {attr!r}")

    def __setattr__(self, attr: str, value) -> None:
        if attr in VARIABLES or attr in _ATTRS:
            _forced[_ATTRS.get(attr, attr)] = str(value)
        elif attr in _TILELANG_ONLY:
            key = _TILELANG_ONLY[attr][0]
            _forced[key] = str(value)
            if key not in _told:
                _told.add(key)
                warnings.warn(f"tilewise.env.{attr} = {value!r} has no effect: tilewise has no such setting "
                              "(it reads back as assigned)", stacklevel=2)
        else:
            super().__setattr__(attr, value)


_told: set = set()
sys.modules[__name__].__class__ = _EnvModule
env = sys.modules[__name__]  # `from tilelang.env import env`
