"""A CUDA kernel ready to run: the lowered thread IR (what the emulator executes), its CUDA
source, and, compiled on demand with NVRTC, the cubin (what a GPU runs and SASS comes from)."""
from __future__ import annotations

from pathlib import Path

from ...engine.callback import postprocess_cuda_source
from ...ir.stmt import PrimFunc
from ...jit import cache
from .renderer import CudaModule, render_cuda


class CudaArtifact:
    def __init__(self, func: PrimFunc, lowered: PrimFunc, module: CudaModule, arch: str, backend: str,
                 pass_configs: dict):
        self.func = func
        self.lowered = lowered
        self.module = module
        self.source = module.source
        self.arch = arch
        self.backend = backend
        self.pass_configs = pass_configs
        self._cubin: bytes | None = None
        self._launcher = None

    # ------------------------------------------------------------------ compiled forms
    @property
    def cubin(self) -> bytes:
        if self._cubin is None:
            self._cubin = _cached_cubin(self.func, self.source, self.arch, self.pass_configs)
        return self._cubin

    def get_sass(self) -> str:
        from .inspect import get_sass

        return get_sass(self.cubin)

    def resource_usage(self) -> dict:
        from .inspect import resource_usage

        u = resource_usage(self.cubin)
        return {"registers": u["registers"], "spill_bytes": u["spill_bytes"],
                "shared_bytes": max(self.module.kernels[0].shared_bytes, 0) + u["shared_bytes"]}

    # ------------------------------------------------------------------ execution
    def run(self, arrays, dims) -> None:
        if self.backend == "emulator":
            import os

            from ...emulator import run
            from ...jit.args import numpy_view

            # race checks are on unless TILEWISE_EMULATOR_RACES=0; reads of uninitialised shared
            # memory and registers are reported with TILEWISE_EMULATOR_UNINIT=1
            races = os.environ.get("TILEWISE_EMULATOR_RACES", "1") not in ("0", "false", "no")
            uninit = os.environ.get("TILEWISE_EMULATOR_UNINIT", "0") in ("1", "true", "yes")
            values = [_emulator_value(p, numpy_view(a)) for p, a in zip(self.lowered.params, arrays)]
            run(self.lowered, values, dims, check_races=races, check_uninit=uninit)
            return
        if self._launcher is None:
            from .launch import CudaLauncher

            self._launcher = CudaLauncher(self.module, self.cubin)
        self._launcher(arrays, dims)


def _emulator_value(param, value):
    """Scalars of 16- and 8-bit float types arrive as their bit patterns (how a launch passes
    them); the emulator wants the number."""
    import numpy as np

    from ...ir.buffer import Buffer

    dt = getattr(param, "dtype", None)
    if isinstance(param, Buffer) or dt is None or not dt.is_float or dt.bits > 16 or not isinstance(value, int):
        return value
    return float(np.array(value, dtype=np.uint16 if dt.bits == 16 else np.uint8).view(dt.numpy))


def lower_cuda(func: PrimFunc, arch: str = "sm_80", pass_configs: dict | None = None):
    from ...transform.pipeline import cuda_passes, run_passes

    lowered = run_passes(func, cuda_passes(arch, pass_configs))
    return lowered, render_cuda(lowered)


def build_cuda(func: PrimFunc, arch: str, backend: str, pass_configs: dict | None = None) -> CudaArtifact:
    configs = dict(pass_configs or {})
    lowered, module = lower_cuda(func, arch, configs)
    art = CudaArtifact(func, lowered, module, arch, backend, configs)
    art.source = postprocess_cuda_source(art.source, f"cuda -arch={arch}")
    if backend == "nvrtc":
        _ = art.cubin  # compile now: a launch must not pay for it
    return art


def _cached_cubin(func: PrimFunc, source: str, arch: str, configs: dict) -> bytes:
    from .nvrtc import compile_cubin, toolchain_fingerprint

    fast = bool(configs.get("tl.enable_fast_math"))
    key = cache.make_key("cuda", arch, source, fast, toolchain_fingerprint())
    entry = cache.lookup(key)
    if entry is not None:
        try:
            return (entry / "kernel.cubin").read_bytes()
        except OSError:
            pass
    cubin = compile_cubin(source, arch, fast_math=fast)

    def fill(d: Path):
        (d / "kernel.cu").write_text(source)
        (d / "kernel.cubin").write_bytes(cubin)
        cache.write_json(d / "meta.json", {"name": func.name, "target": "cuda", "arch": arch})

    try:
        cache.publish(key, fill)
    except OSError:
        pass
    return cubin


