"""JITKernel: a function compiled for a target, called with numpy arrays or torch tensors."""
from __future__ import annotations

import copy
import warnings

from ..backend.cuda.nvrtc import NvrtcError
from ..emulator.banks import EmulateStats
from ..ir.buffer import Buffer
from ..ir.recursion import deep_recursion
from ..ir.stmt import PrimFunc
from ..profiler import Profiler, TensorSupplyType
from ..transform.written_globals import accessed_globals, written_globals
from . import build as builds
from .args import ArgBinder
from .compile_flags import normalize as normalize_flags
from .compile_flags import warn_once
from .device_code import imported_sources, imports_cuda, imports_inline_asm, opaque_externs, user_code_rejected
from .fast_call import make_fast_call
from .options import (
    check_configs,
    check_func,
    function_out_idx,
    hopper_sync_uses,
    normalize_out_idx,
    programs_threads,
    warn_ignored_options,
)
from .target import RECORDS, TILELANG_BACKENDS, Target, parse_target, record_for, resolve_backend


class JITKernel:
    """`tilewise.compile(...)` returns one; TileLang's `JITKernel(func, out_idx, execution_backend,
    target, ...)` builds one directly (a backend name in the third position is accepted)."""

    @deep_recursion()
    def __init__(self, func: PrimFunc, out_idx=None, target: Target | str = "auto", execution_backend=None,
                 pass_configs=None, verbose: bool = False, compile_flags=None, target_host=None,
                 **tilelang_options):
        if isinstance(target, str) and (target in TILELANG_BACKENDS or target in ("nvrtc", "emulator")) \
                and execution_backend is None:
            target, execution_backend = "auto", target
        func = check_func(func)
        warn_ignored_options(target_host=target_host, **tilelang_options)
        tgt = parse_target(target)
        record = record_for(tgt)
        backend = resolve_backend(tgt, execution_backend)
        out_idx = function_out_idx(func, out_idx)
        outs = normalize_out_idx(func, out_idx)
        configs = check_configs({**func.attrs.get("tilelang_pass_configs", {}), **(pass_configs or {})})
        flags = (normalize_flags(compile_flags) + normalize_flags(func.attrs.get("tilelang_compile_flags"))
                 + normalize_flags(configs.get("tl.device_compile_flags")))
        arch = tgt.arch
        if record.thread_exact is not None and (programs_threads(func) or imports_cuda(func)):
            # A kernel that programs threads itself (T.get_thread_binding) relies on every thread
            # of a block running; this target runs a block as one thread, so the kernel runs as
            # its CUDA program, thread by thread, in the emulator (exact, but far slower). So does
            # a kernel importing CUDA source, which g++ cannot compile.
            name, arch, backend = record.thread_exact
            hopper = hopper_sync_uses(func)
            if hopper:
                # mbarriers and TMA need sm_90: the kernel runs as its sm_90a program
                name, arch = "cuda-sm90", "sm_90a"
            record = RECORDS[name]
            opaque = opaque_externs(func)
            if opaque:
                # the emulator cannot know what imported code computes: the PTX interpreter runs
                # what NVRTC compiled, the imported code (inline PTX included) with it
                backend = "ptx"
                asm = " with inline PTX" if imports_inline_asm(func) else ""
                warn_once(("thread-exact-ptx", func.name),
                          f"{func.name} calls imported or external code{asm} ({', '.join(opaque)}, T.call_extern): on "
                          f"the {tgt} target it runs as its CUDA program ({arch}, compiled by NVRTC) in the PTX "
                          "interpreter, which runs the imported code too (g++ cannot compile CUDA device code or PTX, "
                          "and the emulator does not know what such a function computes). Exact, but slow",
                          stacklevel=4)
            else:
                warnings.warn(
                    f"{func.name} programs its threads (T.get_thread_binding, warp primitives) or imports CUDA source: "
                    f"on the {tgt} target it runs thread-exactly in the CUDA emulator (as {arch}"
                    f"{', for its ' + hopper[0][0] if hopper else ''}), which is slow; write it with "
                    "tile operators and T.Parallel for native CPU code",
                    stacklevel=3,
                )
        self.func = func
        self.prim_func = func
        self.out_idx = outs
        self.target = tgt
        self.execution_backend = backend
        self.pass_configs = configs
        machine = record.machine(arch)
        self.compile_flags = list(flags)
        toolchain_flags = record.toolchain.flags(flags, machine) if flags else ()
        # --use_fast_math: the emulator models its flushing of subnormals (jit/runtimes.py)
        ignored = [f for f in toolchain_flags if f not in ("--use_fast_math", "-use_fast_math")]
        if ignored and backend == "emulator":
            warn_once(("emulator-flags", tuple(ignored)),
                      f"compile_flags {ignored} apply to what NVRTC compiles (get_sass(), the PTX "
                      "cross-check, a GPU); the emulator runs the lowered program, which they do not change")
        user_cuda = record is not record_for(tgt) and bool(imported_sources(func) or opaque_externs(func))
        try:
            self.build = builds.build(func, record, machine, configs, toolchain_flags)
            self.runtime = record.runtimes[backend](self.build)
        except NvrtcError as e:
            if not user_cuda:
                raise
            raise user_code_rejected(e, func, tgt) from e
        # T.alloc_global buffers are the last parameters: every call allocates them like outputs
        # and drops them (language/workspace.py); callers see only the parameters before them
        all_params = list(func.params)
        n_ws = int(func.attrs.get("tilewise_workspaces", 0))
        self.params = all_params[:len(all_params) - n_ws]
        self._workspaces = list(range(len(self.params), len(all_params)))
        written = written_globals(func)
        self._written = frozenset(i for i, p in enumerate(all_params) if p in written)
        # CUDA code moves global memory in vectors of up to 16 bytes from a tensor's start: those
        # tensors' data must be aligned (a slice of a wider tensor may not be)
        vec = self.build.vector_params() if record.kind in ("cuda", "hip") else ()
        self._align = {i: 16 for i in vec}
        accessed = accessed_globals(func)
        unused = frozenset(i for i, p in enumerate(self.params) if isinstance(p, Buffer) and p not in accessed)
        self._binder = ArgBinder(all_params, outs + self._workspaces, func.dynamic_vars(), self.runtime.device,
                                 self._written, self._align, unused)
        self._binder.assumes = list(func.attrs.get("tilewise_assumes", ()))  # T.assume, checked per call
        self._fast = make_fast_call(self._binder, self.runtime)
        if verbose:
            print(self.get_kernel_source())

    @deep_recursion()
    def __call__(self, *args, **kwargs):
        if self._fast is not None and not kwargs:
            outputs = self._fast(args)
            if outputs is not None:
                if self._workspaces:
                    outputs = outputs[:len(self.out_idx)]
                if not outputs:
                    return None
                return outputs[0] if len(outputs) == 1 else outputs
        arrays, dims, outputs, write_backs = self._binder.bind(self._binder.order_args(args, kwargs))
        self.runtime.run(arrays, dims)
        for w in write_backs:  # packed fp4 tensors (jit/packed_fp4.py)
            w.write_back()
        if self._workspaces:
            outputs = outputs[:len(self.out_idx)]
        if not outputs:
            return None
        return outputs[0] if len(outputs) == 1 else outputs

    def with_execution_backend(self, backend: str) -> JITKernel:
        """The same compiled kernel run by another runtime of its target, e.g. "ptx" beside
        "emulator": nothing is lowered again."""
        record = self.build.record
        if backend not in record.runtimes:
            raise ValueError(f"execution backend {backend!r} does not apply to {self.target}; "
                             f"use {' or '.join(repr(n) for n in record.runtimes)}")
        other = copy.copy(self)
        other.execution_backend = backend
        other.runtime = record.runtimes[backend](self.build)
        other._binder = ArgBinder(list(self.func.params), self.out_idx + self._workspaces, self.func.dynamic_vars(),
                                  other.runtime.device, self._written, self._align, self._binder.unused)
        other._binder.assumes = self._binder.assumes
        other._fast = make_fast_call(other._binder, other.runtime)
        return other

    def get_kernel_source(self, kernel_only: bool = False) -> str:
        """The generated source (C++ for the CPU, CUDA C++ otherwise). `kernel_only` is
        accepted for TileLang compatibility: the source holds only the kernel either way."""
        return self.build.source

    @property
    def kernel_source(self) -> str:
        return self.build.source

    def get_host_source(self) -> str:
        return self.build.source

    def lowering_notes(self) -> list[str]:
        """Lowering decisions, one line each with the user's source line: which gemms became
        wgmma, mma.sync or FMAs and why, which copies became TMA or cp.async and why."""
        return self.build.lowering_notes()

    def report(self, path) -> str:
        """Write one self-contained HTML page about this kernel to `path`: its source, the IR after
        each pass (with diffs), the layout of every buffer as pictures, the lowering notes, the
        generated source, the SASS with its steady-state loop (CUDA), resource usage and what
        the emulator found in the runs it made. Returns the path."""
        from .report import write_report

        return write_report(self, path)

    def get_sass(self) -> str:
        """SASS of the compiled CUDA kernel (cuobjdump; no GPU needed)."""
        return self._tool("disassemble", "get_sass")(self.build.binary)

    def get_isa(self) -> str:
        """The compiled kernel's machine code: SASS for CUDA, the AMDGPU instructions of the code
        object for HIP (no GPU needed)."""
        return self._tool("disassemble", "get_isa")(self.build.binary)

    def resource_usage(self) -> dict:
        """{"registers", "spill_bytes", "shared_bytes"} of the compiled GPU kernel; for HIP also
        "vgprs", "agprs", "arch_vgprs", "sgprs", "vgpr_spills", "sgpr_spills", "scratch_bytes" and
        "lds_bytes" (registers = vgprs, which on gfx90a / gfx942 counts the AGPRs too; spill_bytes =
        scratch, shared_bytes = LDS)."""
        u = self._tool("resources", "resource_usage")(self.build.binary)
        if "lds_bytes" in u:  # HIP: the LDS tile is static, already in the code object's figure
            return dict(u)
        # the cubin's figure has static shared memory only; the planned tiles are dynamic
        dynamic = max(self.build.module.kernels[0].shared_bytes, 0)
        return {"registers": u["registers"], "spill_bytes": u["spill_bytes"], "shared_bytes": dynamic + u["shared_bytes"]}

    def emulate_stats(self) -> EmulateStats | None:
        """What the latest emulator run of this kernel measured (`.bank_conflicts`, one record per
        shared buffer, source line and access kind, and `.total_extra`), or None before a run and
        when the latest run did not count: the emulator counts when TILEWISE_EMULATOR_STATS=1
        (`with tilewise.env.override("TILEWISE_EMULATOR_STATS", "1"):` in the process)."""
        return getattr(self.runtime, "last_stats", None)

    def _tool(self, tool: str, what: str):
        fn = getattr(self.build.record, tool)
        if fn is None:
            raise ValueError(f"{what}() needs a GPU target (CUDA or HIP); this kernel was compiled for {self.target}")
        return fn

    def get_profiler(self, tensor_supply_type=None):
        return Profiler(self, tensor_supply_type if tensor_supply_type is not None else TensorSupplyType.Auto)

    def run_once(self, *args, **kwargs):
        """Run on the given arguments, or on random inputs (the profiler's) when none are given."""
        if not args and not kwargs:
            return self.get_profiler().run_once()
        return self(*args, **kwargs)

    @property
    def result_idx(self) -> list[int]:
        """TileLang's name for out_idx."""
        return self.out_idx

    def export_library(self, kernel_file) -> None:
        """Write the compiled kernel to `kernel_file`: for the CPU target the shared library
        (tilewise's entry points, `tw_entry`), for CUDA the cubin NVRTC made (load it with the
        driver's cuModuleLoad; the launch configuration is in the source's comments)."""
        import os
        import shutil

        path = os.fspath(kernel_file)
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        shutil.copyfile(self.build.binary_path, path)

    @property
    def input_params(self) -> list:
        return [p for i, p in enumerate(self.params) if i not in self.out_idx]

    def __repr__(self) -> str:
        ps = ", ".join(p.name for p in self.params)
        outs = [self.params[i].name for i in self.out_idx]
        return f"JITKernel({self.func.name}({ps}) -> {outs}, target={self.target}, backend={self.execution_backend})"

