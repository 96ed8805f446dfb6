"""One function compiled for one target: lowered (the target's passes), rendered (its renderer)
and compiled to a binary (its toolchain) through the disk cache, each step only when asked for.

Every compile goes through `build()`, whatever the target; what differs between targets is data
in their records (jit/target.py)."""
from __future__ import annotations

import functools
import pickle
from pathlib import Path

from .. import env
from ..errors import recording_warnings, warn_once
from ..ir.machine import Machine
from ..ir.printer import structural_text
from ..ir.recursion import deep_recursion
from ..ir.stmt import Kernel, PrimFunc
from ..ir.visitor import walk
from ..transform.pipeline import run_passes
from ..transform.written_globals import vector_accessed_globals
from . import cache

# in a cache entry: the renderer's module and facts of the lowered program, pickled, so that a hit
# needs neither (the entry is the user's own, like the binary it loads)
HIT_FILE = "hit.pickle"


class Build:
    def __init__(self, func: PrimFunc, record, machine: Machine, pass_configs: dict, compile_flags=()):
        self.func = func
        self.record = record
        self.machine = machine
        self.pass_configs = dict(pass_configs)
        self.compile_flags = tuple(compile_flags)  # what the toolchain takes of compile_flags= (compile_flags.py)
        self._source: str | None = None
        self._hit_facts: dict | None = None
        self._said: list = []  # warn_once calls made while lowering and rendering (kept for hits)

    @functools.cached_property
    def lowered(self) -> PrimFunc:
        """The function after the target's passes (for CUDA: the thread IR the emulator runs)."""
        with deep_recursion(), recording_warnings() as said:
            out = run_passes(self.func, self.record.passes(self.machine, self.pass_configs),
                             dump_dir=dump_dir(self.pass_configs))
        self._said += said
        return out

    def lowering_notes(self) -> list[str]:
        """The decisions lowering took that a user would want to know (which gemms became wgmma,
        mma.sync or FMAs and why, which copies became TMA or cp.async and why)."""
        notes = [n for k in walk_kernels(self.lowered) for n in k.attrs.get("lowering_notes", [])]
        return list(dict.fromkeys(notes))  # an operator lowered more than once (pipeline parts) says it once

    @functools.cached_property
    def module(self):
        """What the renderer made of the lowered function (its `.source`, launch facts). Once the
        cache entry is known and holds it (every entry but one whose module does not pickle),
        it is read from there: a cache hit neither lowers nor renders."""
        stored = self._stored("module")
        if stored is not None:
            return stored
        lowered = self.lowered
        with deep_recursion(), recording_warnings() as said:
            out = self.record.render(lowered)
        self._said += said
        return out

    @property
    def source(self) -> str:
        """The source the toolchain compiles (after any user post-processing callback)."""
        if self._source is None:
            entry = self.__dict__.get("entry")  # a hit stores the source it compiled
            if entry is not None:
                try:
                    self._source = (entry / self.record.toolchain.source_name).read_text()
                except OSError:
                    pass  # removed since (clear_cache): render it again
            if self._source is None:
                self._source = self.record.postprocess(self.module.source, self.machine)
        return self._source

    def vector_params(self) -> list[int]:
        """Indices of the parameters the lowered program moves in vectors (their data must be
        aligned): from the cache entry on a hit, else from the lowered IR."""
        stored = self._stored("vector_params")
        if stored is not None:
            return stored
        vec = vector_accessed_globals(self.lowered)
        return [i for i, p in enumerate(self.func.params) if p in vec]

    def _stored(self, name: str):
        """One thing a hit needs that the cache entry keeps (HIT_FILE), or None: before the entry
        is looked up, when it lacks the file, or when the file does not load."""
        entry = self.__dict__.get("entry")
        if entry is None:
            return None
        if self._hit_facts is None:
            self._hit_facts = {}
            try:
                with open(entry / HIT_FILE, "rb") as f, deep_recursion():
                    self._hit_facts = pickle.load(f)
            except Exception:  # noqa: BLE001 - absent or unreadable: computed instead, as on a miss
                pass
        return self._hit_facts.get(name)

    def key(self) -> str:
        """The cache key: the target record and machine, the program (or, when the record says
        so or a user callback edits the source, the source compiled), the pass configs, the
        toolchain's flags and fingerprint (compiler, headers, host); cache.make_key adds
        tilewise's version and the fingerprint of its own files."""
        configs = sorted(self.pass_configs.items())
        if self.compile_flags:
            configs.append(("compile_flags", self.compile_flags))
        fingerprint = self.record.toolchain.fingerprint()
        if self.record.key_on_source or self.record.source_hooked():
            # the renderer's output may be edited by a user callback: the key is what is compiled
            return cache.make_key(self.record.name, self.machine.name, self.source, configs, fingerprint)
        # the source follows from the program, the options and the compiler's own files, so a
        # hit needs neither lowering nor rendering
        with deep_recursion():
            text = structural_text(self.func)
        return cache.make_key(self.record.name, self.machine.name, text, configs, fingerprint)

    @functools.cached_property
    def entry(self) -> Path:
        """The cache entry holding the source, the compiled binary and what a hit needs besides
        (HIT_FILE), built on a miss. The key is computed from the program before anything is
        lowered, unless the record keys on the rendered source or a user callback edits it."""
        tc = self.record.toolchain
        key = self.key()
        if env.get("TILEWISE_DUMP_IR") or dump_dir(self.pass_configs):
            _ = self.lowered  # the IR dump is wanted even when the kernel is cached
        entry = cache.lookup(key)
        if entry is not None and (entry / tc.binary_name).is_file():
            self.__dict__["entry"] = entry
            for k, message in self._stored("warnings") or ():
                warn_once(k, message, stacklevel=2)  # what lowering said when the entry was made
            self._write_kernel_source()
            return entry
        source = self.source

        def fill(d: Path):
            (d / tc.source_name).write_text(source)
            tc.compile(source, self.machine, self.pass_configs, d / tc.binary_name, self.compile_flags)
            facts = {"module": self.module, "vector_params": self.vector_params(), "warnings": _picklable(self._said)}
            try:
                with deep_recursion():  # the module holds IR expressions, nested as deep as the program's
                    data = pickle.dumps(facts, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - a renderer output that does not pickle: hits render it
                data = None
            if data is not None:
                (d / HIT_FILE).write_bytes(data)
            cache.write_json(d / "meta.json", {"name": self.func.name, "target": self.record.name,
                                               "machine": self.machine.name})

        entry = cache.publish(key, fill)
        self.__dict__["entry"] = entry
        self._write_kernel_source()
        return entry

    def _write_kernel_source(self) -> None:
        """TileLang's pass config cuda.kernels_output_dir: the kernel's source is written there."""
        out = self.pass_configs.get("cuda.kernels_output_dir")
        if out:
            d = Path(out)
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{self.func.name}{Path(self.record.toolchain.source_name).suffix}").write_text(self.source)

    @property
    def binary_path(self) -> Path:
        return self.entry / self.record.toolchain.binary_name

    @functools.cached_property
    def binary(self) -> bytes:
        return self.binary_path.read_bytes()


def dump_dir(configs: dict) -> str | None:
    """Where TileLang's pass configs tl.enable_dump_ir / tl.dump_ir_path want the IR after every
    pass (None: not asked; TILEWISE_DUMP_IR then decides)."""
    if not configs.get("tl.enable_dump_ir"):
        return None
    return str(configs.get("tl.dump_ir_path") or "./dump_ir/")


def _picklable(said: list) -> list:
    """The (key, message) pairs whose keys pickle (a key that does not is kept as its repr)."""
    out = []
    for k, message in dict.fromkeys(said):
        try:
            pickle.dumps(k)
        except Exception:  # noqa: BLE001 - any key warn_once was given
            k = repr(k)
        out.append((k, message))
    return out


def walk_kernels(func: PrimFunc) -> list[Kernel]:
    found: list[Kernel] = []
    walk(func.body, lambda n: found.append(n) if isinstance(n, Kernel) else None)
    return found


def build(func: PrimFunc, record, machine: Machine, pass_configs: dict, compile_flags=()) -> Build:
    """The one place compiles start from (tests wrap it to see every function compiled)."""
    return Build(func, record, machine, pass_configs, compile_flags)
