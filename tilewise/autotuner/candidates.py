"""Configurations bound to the kernel factory's parameters, and the prim_func each one gives."""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..ir.stmt import PrimFunc

PASS_CONFIGS = "pass_configs"  # the configuration key that is no factory argument


@dataclass
class Candidate:
    index: int
    config: dict  # the values this configuration gives the factory (caller-fixed ones included)
    args: tuple
    kwargs: dict
    func: PrimFunc | None = None
    error: str | None = None  # why this configuration was skipped
    kernel: Any = None
    latency: float | None = None
    extra: dict = field(default_factory=dict)
    # the configuration's own "pass_configs" entry (TileLang: pass configs in the search space),
    # merged over the tuner's for this candidate's compile
    pass_configs: dict | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Binding:
    candidates: list[Candidate]
    static: dict  # the factory arguments that are not tuned, defaults applied
    all_fixed: bool  # the caller gave every tuned parameter: there is nothing to tune
    tuned: frozenset = frozenset()  # the parameters the configurations set


def compile_kwargs_for(c: Candidate, compile_kwargs: dict) -> dict:
    """The compile arguments of candidate c: its own pass configs over the tuner's."""
    if not c.pass_configs:
        return compile_kwargs
    return {**compile_kwargs, "pass_configs": {**(compile_kwargs.get("pass_configs") or {}), **c.pass_configs}}


def describe_error(e: BaseException, limit: int = 600) -> str:
    text = str(e).strip() or type(e).__name__
    if not text.startswith(type(e).__name__):
        text = f"{type(e).__name__}: {text}"
    return text if len(text) <= limit else text[:limit] + " ..."


def bind_configs(factory: Callable, configs: list, args: tuple = (), kwargs: dict | None = None) -> Binding:
    """One candidate per distinct configuration. Values the caller passes explicitly win over
    the configurations' values (TileLang: passing a tuned parameter fixes it). A configuration's
    "pass_configs" entry is no factory argument: it is that configuration's compiler pass
    configuration (merged over the tuner's), part of what is tuned, as in TileLang 0.1.15."""
    kwargs = dict(kwargs or {})
    sig = inspect.signature(factory)
    params = sig.parameters
    varkw = next((n for n, p in params.items() if p.kind is p.VAR_KEYWORD), None)
    named = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    try:
        given = sig.bind_partial(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"{factory.__name__}{sig}: {e}") from None
    fixed = dict(given.arguments)
    if varkw is not None:
        fixed.update(fixed.pop(varkw, {}))

    candidates: list[Candidate] = []
    seen: set[str] = set()
    tuned: set[str] = set()
    for config in configs:
        if not isinstance(config, dict):
            raise TypeError(f"each configuration must be a dict of factory arguments, got {config!r}")
        own_pass_configs = config.get(PASS_CONFIGS)
        if own_pass_configs is not None and not isinstance(own_pass_configs, dict):
            raise TypeError(f"the configuration {config!r}: its {PASS_CONFIGS!r} must be a dict of pass configs")
        config = {k: v for k, v in config.items() if k != PASS_CONFIGS}
        for k in config:
            if k not in named and varkw is None:
                raise ValueError(
                    f"the configuration {config!r} sets {k!r}, which is not a parameter of "
                    f"{factory.__name__}({', '.join(named)})"
                )
        tuned.update(config)
        effective = {k: (fixed[k] if k in fixed else v) for k, v in config.items()}
        rep = repr((sorted(effective.items(), key=lambda kv: kv[0]),
                    sorted((own_pass_configs or {}).items(), key=lambda kv: str(kv[0]))))
        if rep in seen:
            continue
        seen.add(rep)
        b = sig.bind_partial(*args, **kwargs)
        for k, v in effective.items():
            if k in named:
                b.arguments[k] = v
            else:
                b.arguments.setdefault(varkw, {})[k] = v
        try:
            b.apply_defaults()
            sig.bind(*b.args, **b.kwargs)
        except TypeError as e:
            raise TypeError(f"{factory.__name__}{sig} with the configuration {config!r}: {e}") from None
        shown = {**effective, PASS_CONFIGS: dict(own_pass_configs)} if own_pass_configs else effective
        candidates.append(Candidate(len(candidates), shown, tuple(b.args), dict(b.kwargs),
                                    pass_configs=dict(own_pass_configs) if own_pass_configs else None))
    if not candidates:
        raise ValueError("no configurations to tune: `configs` is empty")

    full = sig.bind_partial(*args, **kwargs)
    full.apply_defaults()
    static = {k: v for k, v in full.arguments.items() if k not in tuned and k != varkw}
    if varkw is not None:
        static.update({k: v for k, v in full.arguments.get(varkw, {}).items() if k not in tuned})
    all_fixed = all(k in fixed for k in tuned)
    return Binding(candidates, static, all_fixed, frozenset(tuned))


def build_funcs(factory: Callable, candidates: list[Candidate]) -> None:
    """Run the factory for every configuration: parsing is cheap, and the resulting IR is both
    what the workers compile and what the tuning cache is keyed on."""
    for c in candidates:
        try:
            func = factory(*c.args, **c.kwargs)
        except Exception as e:  # noqa: BLE001 - a configuration the factory rejects is skipped
            c.error = describe_error(e)
            continue
        if not isinstance(func, PrimFunc):
            c.error = f"{factory.__name__}(...) returned {type(func).__name__}, not a @T.prim_func"
            continue
        c.func = func
