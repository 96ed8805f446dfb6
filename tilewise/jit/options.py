"""The checks compile() makes on its arguments before anything is built."""
from __future__ import annotations

from ..ir.buffer import Buffer
from ..ir.expr import Call
from ..ir.stmt import Evaluate, Kernel, PrimFunc
from ..ir.visitor import collect_vars, walk
from ..transform.explicit_sync import MBARRIER, warp_sync_uses
from ..transform.pass_config import NO_EFFECT, PassConfigKey, plain_keys

KNOWN_PASS_CONFIGS = {k.value for k in PassConfigKey}


def function_out_idx(func: PrimFunc, out_idx):
    """out_idx, or the function's own (its `return` of T.empty outputs); both is an error."""
    own = func.attrs.get("tilelang_out_idx")
    if own is None:
        return out_idx
    if out_idx is not None:
        raise ValueError(f"Out index conflict: out_idx={out_idx!r} is given, and {func.name} declares its outputs with "
                         "T.empty and returns them; drop one of the two")
    return list(own)


_IGNORED = {
    "target_host": "tilewise generates the host side with the kernel, for the target's own host",
    "runtime_only": "lower() returns the lowered IR and the source either way",
}


def warn_ignored_options(**options) -> None:
    """TileLang options that cannot take effect here warn once each, naming the option."""
    from .compile_flags import warn_once

    for name, value in options.items():
        if value is None or value is False:
            continue
        why = _IGNORED.get(name, "tilewise has no such option")
        warn_once(("option", name), f"{name}={value!r} has no effect: {why}", stacklevel=5)


def normalize_out_idx(func: PrimFunc, out_idx) -> list[int]:
    n = len(func.params) - int(func.attrs.get("tilewise_workspaces", 0))  # T.alloc_global ones are hidden
    if out_idx is None:
        return []
    if isinstance(out_idx, int):
        out_idx = [out_idx]
    if not isinstance(out_idx, (list, tuple)):
        raise TypeError(f"out_idx must be an int or a list of ints, got {out_idx!r}")
    result = []
    for i in out_idx:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"out_idx entries must be ints, got {i!r}")
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise ValueError(f"out_idx {i} is out of range for {func.name}, which has {n} parameters")
        if not isinstance(func.params[j], Buffer):
            raise ValueError(f"out_idx {i} names the scalar parameter {func.params[j].name}; outputs must be tensors")
        if j in result:
            raise ValueError(f"out_idx names parameter {func.params[j].name} twice")
        result.append(j)
    _check_outputs_determined(func, result)
    return result


def _check_outputs_determined(func: PrimFunc, outs: list[int]) -> None:
    """Every symbolic dimension of an output must come from some input's shape."""
    known = {p.uid for i, p in enumerate(func.params) if i not in outs and not isinstance(p, Buffer)}
    for i, p in enumerate(func.params):
        if i not in outs and isinstance(p, Buffer):
            for d in p.shape:
                if not isinstance(d, int):
                    known.update(v.uid for v in collect_vars(d) if d is v)
    for i in outs:
        p = func.params[i]
        for d in p.shape:
            if isinstance(d, int):
                continue
            missing = [v.name for v in collect_vars(d) if v.uid not in known]
            if missing:
                raise ValueError(
                    f"output {p.name} has the dimension {d}, but no input's shape determines "
                    f"{', '.join(missing)}; pass {p.name} as an argument instead of listing it in out_idx"
                )


def check_configs(pass_configs) -> dict:
    if pass_configs is None:
        return {}
    if not isinstance(pass_configs, dict):
        raise TypeError("pass_configs must be a dict")
    pass_configs = plain_keys(pass_configs)
    from .compile_flags import warn_once

    for k, v in pass_configs.items():
        if k not in KNOWN_PASS_CONFIGS:
            raise ValueError(f"unknown pass config {k!r}; known: {', '.join(sorted(KNOWN_PASS_CONFIGS))}")
        if k == "tir.add_lower_pass" and v:
            raise ValueError("pass config tir.add_lower_pass: tilewise cannot run TVM passes (its lowering is its own); "
                             "drop the passes, or transform the program before compiling it")
        if k in NO_EFFECT and v != NO_EFFECT[k][0]:
            warn_once(("pass_config", k), f"pass config {k}={v!r} has no effect: {NO_EFFECT[k][1]}", stacklevel=5)
    return dict(pass_configs)


def check_func(func) -> PrimFunc:
    if not isinstance(func, PrimFunc):
        raise TypeError(
            f"expected a @T.prim_func, got {type(func).__name__}; decorate the kernel with @T.prim_func"
        )
    return func


def programs_threads(func: PrimFunc) -> bool:
    """The kernel programs threads itself (T.get_thread_binding)."""
    found = []
    walk(func.body, lambda n: found.append(n) if isinstance(n, Kernel) and n.attrs.get("uses_thread_binding") else None)
    return bool(found)


def hopper_sync_uses(func: PrimFunc) -> list[tuple[str, object]]:
    """(primitive, span) of what in `func` needs sm_90 to synchronise threads: mbarriers,
    T.tma_copy and raw TMA copies. The thread-exact path of a target whose blocks are one thread
    (the CPU) runs the kernel's CUDA program in the emulator as sm_80, or as sm_90a when it has any
    of these. (Named barriers run as sm_80: the emulator schedules warps apart when a barrier is
    among part of the block, emulator/schedule.py.)"""
    raw = []
    walk(func.body, lambda n: raw.append((n.value.attrs["primitive"], n.span)) if isinstance(n, Evaluate)
         and isinstance(n.value, Call) and n.value.attrs.get("primitive") else None)
    return raw + warp_sync_uses(func, MBARRIER)
