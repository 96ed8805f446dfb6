"""The on-disk cache of tuning results, next to the kernel cache (TILEWISE_CACHE_DIR).

The key is everything the winner can depend on: the IR each configuration gives (which holds
the static shapes, dtypes and closure values, unlike the factory's source text), the static
argument values, target, backend, out_idx, pass configs, the reference check and timing
settings, the host CPU and the package version. Dynamic dimensions stay symbolic in the IR, and
the input values are not part of the key: one tuning serves every size of a dynamic kernel.

An entry is a directory published with an atomic rename (jit/cache.py), so a concurrent writer
either loses the race harmlessly or wins it; readers never see half an entry."""
from __future__ import annotations

import functools
import inspect
import re
import shutil
import time

from .. import env
from ..backend.cpu.build import compiler_id
from ..ir.printer import structural_text
from ..jit import cache
from .candidates import Candidate

_PREFIX = "autotune-"


def enabled() -> bool:
    off = env.flag("TILEWISE_AUTOTUNE_DISABLE_CACHE")
    return cache.enabled() and not off


def stable_repr(x) -> str:
    """repr without memory addresses, which differ from run to run."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(x))


def fingerprint(fn) -> str:
    """Identifies a callable (reference program, supply program) by its code and the values it
    closes over, so that editing the reference invalidates the tuning done against it."""
    if fn is None:
        return "None"
    if isinstance(fn, functools.partial):
        return f"partial({fingerprint(fn.func)}, {stable_repr(fn.args)}, {stable_repr(sorted(fn.keywords.items()))})"
    name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    try:
        body = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        body = code.co_code.hex() + stable_repr(code.co_consts) if code is not None else stable_repr(fn)
    cells = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            cells.append(stable_repr(cell.cell_contents))
        except ValueError:  # an empty cell
            cells.append("<empty>")
    return f"{name}\n{body}\n{cells}"


def tuning_key(candidates: list[Candidate], static: dict, target, backend: str, out_idx: list[int],
               pass_configs: dict | None, profile, warmup: float, rep: float) -> str:
    parts = [
        "autotune",
        f"target={target}",
        f"backend={backend}",
        f"out_idx={list(out_idx)}",
        f"pass_configs={stable_repr(sorted((pass_configs or {}).items()))}",
        f"static={stable_repr(sorted(static.items()))}",
        f"check=ref:{fingerprint(profile.ref_prog)} manual:{fingerprint(profile.manual_check_prog)} "
        f"skip:{profile.skip_check} atol:{profile.atol!r} rtol:{profile.rtol!r} "
        f"mismatch:{profile.max_mismatched_ratio!r}",
        f"supply={profile.supply_type} {fingerprint(profile.supply_prog)}",
        f"timing=warmup:{warmup!r} rep:{rep!r}",
        f"host={_host_id(target)}",
    ]
    for c in candidates:
        ir = structural_text(c.func) if c.func is not None else f"error: {c.error}"
        parts.append(f"config {c.index} {stable_repr(sorted(c.config.items()))}\n{ir}")
    return _PREFIX + cache.make_key(*parts)


def _host_id(target) -> str:
    # timings on the CPU target belong to this CPU and these compiler flags
    if getattr(target, "kind", None) == "cpu":
        return compiler_id()
    return ""


def load(key: str, candidates: list[Candidate]) -> dict | None:
    """The stored result, if it is there and matches these candidates."""
    if not enabled():
        return None
    entry = cache.lookup(key)
    if entry is None:
        return None
    try:
        meta = cache.read_meta(entry)
        c = candidates[int(meta["index"])]
        if meta.get("kind") != "autotune" or meta["config"] != stable_repr(sorted(c.config.items())) or not c.ok:
            raise ValueError("the entry does not match")
        return meta
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        # damaged (cannot happen through publish, but a disk can): drop it so a new one can be written
        shutil.rmtree(entry, ignore_errors=True)
        return None


def save(key: str, best: Candidate, ref_latency: float | None, candidates: list[Candidate], name: str) -> None:
    if not enabled():
        return
    meta = {
        "kind": "autotune",
        "name": name,
        "index": best.index,
        "config": stable_repr(sorted(best.config.items())),
        "latency": best.latency,
        "ref_latency": ref_latency,
        "created": time.time(),
        # every configuration's outcome, for whoever looks into the cache
        "trials": [
            {"config": stable_repr(c.config), "latency": c.latency, "error": c.error} for c in candidates
        ],
    }

    def fill(d):
        cache.write_json(d / "meta.json", meta)

    try:
        cache.publish(key, fill)
    except OSError:
        pass  # an unwritable cache costs a re-tune next time, nothing else
