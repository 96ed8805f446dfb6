"""One function compiled for one target: lowered (the target's passes), rendered (its renderer)
and compiled to a binary (its toolchain) through the disk cache, each step only when asked for.

Every compile goes through `build()`, whatever the target; what differs between targets is data
in their records (jit/target.py)."""
from __future__ import annotations

import functools
from pathlib import Path

from .. import env
from ..ir.machine import Machine
from ..ir.printer import structural_text
from ..ir.recursion import deep_recursion
from ..ir.stmt import Kernel, PrimFunc
from ..ir.visitor import walk
from ..transform.pipeline import run_passes
from . import cache


class Build:
    def __init__(self, func: PrimFunc, record, machine: Machine, pass_configs: dict, compile_flags=()):
        self.func = func
        self.record = record
        self.machine = machine
        self.pass_configs = dict(pass_configs)
        self.compile_flags = tuple(compile_flags)  # what the toolchain takes of compile_flags= (compile_flags.py)
        self._source: str | None = None

    @functools.cached_property
    def lowered(self) -> PrimFunc:
        """The function after the target's passes (for CUDA: the thread IR the emulator runs)."""
        with deep_recursion():
            return run_passes(self.func, self.record.passes(self.machine, self.pass_configs))

    def lowering_notes(self) -> list[str]:
        """The decisions lowering took that a user would want to know (which gemms became wgmma,
        mma.sync or FMAs and why, which copies became TMA or cp.async and why)."""
        notes = [n for k in walk_kernels(self.lowered) for n in k.attrs.get("lowering_notes", [])]
        return list(dict.fromkeys(notes))  # an operator lowered more than once (pipeline parts) says it once

    @functools.cached_property
    def module(self):
        """What the renderer made of the lowered function (its `.source`, launch facts)."""
        lowered = self.lowered
        with deep_recursion():
            return self.record.render(lowered)

    @property
    def source(self) -> str:
        """The source the toolchain compiles (after any user post-processing callback)."""
        if self._source is None:
            self._source = self.record.postprocess(self.module.source, self.machine)
        return self._source

    @functools.cached_property
    def entry(self) -> Path:
        """The cache entry holding the source and the compiled binary (built on a miss)."""
        tc = self.record.toolchain
        configs = sorted(self.pass_configs.items())
        if self.compile_flags:
            configs.append(("compile_flags", self.compile_flags))
        if self.record.key_on_source or self.record.source_hooked():
            # the renderer's output may be edited by a user callback: the key is what is compiled
            key = cache.make_key(self.record.name, self.machine.name, self.source, configs, tc.fingerprint())
        else:
            # the source follows from the program, the options and the compiler's own files
            # (cache.make_key covers those), so a hit needs neither lowering nor rendering
            with deep_recursion():
                text = structural_text(self.func)
            key = cache.make_key(self.record.name, self.machine.name, text, configs, tc.fingerprint())
            if env.get("TILEWISE_DUMP_IR"):
                _ = self.lowered  # the IR dump is wanted even when the kernel is cached
        entry = cache.lookup(key)
        if entry is not None and (entry / tc.binary_name).is_file():
            if self._source is None:
                try:
                    self._source = (entry / tc.source_name).read_text()
                except OSError:
                    entry = None  # a damaged entry: rebuild below
            if entry is not None:
                return entry
        source = self.source

        def fill(d: Path):
            (d / tc.source_name).write_text(source)
            tc.compile(source, self.machine, self.pass_configs, d / tc.binary_name, self.compile_flags)
            cache.write_json(d / "meta.json", {"name": self.func.name, "target": self.record.name,
                                               "machine": self.machine.name})

        return cache.publish(key, fill)

    @property
    def binary_path(self) -> Path:
        return self.entry / self.record.toolchain.binary_name

    @functools.cached_property
    def binary(self) -> bytes:
        return self.binary_path.read_bytes()


def walk_kernels(func: PrimFunc) -> list[Kernel]:
    found: list[Kernel] = []
    walk(func.body, lambda n: found.append(n) if isinstance(n, Kernel) else None)
    return found


def build(func: PrimFunc, record, machine: Machine, pass_configs: dict, compile_flags=()) -> Build:
    """The one place compiles start from (tests wrap it to see every function compiled)."""
    return Build(func, record, machine, pass_configs, compile_flags)
