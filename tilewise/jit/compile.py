"""compile / lower / cached: from a PrimFunc to a runnable kernel or its source."""
from __future__ import annotations

from ..ir.buffer import Buffer
from ..ir.stmt import PrimFunc
from ..transform.pass_config import PassConfigKey, plain_keys
from .kernel import JITKernel
from .target import parse_target, resolve_backend

KNOWN_PASS_CONFIGS = {k.value for k in PassConfigKey}


def normalize_out_idx(func: PrimFunc, out_idx) -> list[int]:
    n = len(func.params)
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
    from ..ir.visitor import collect_vars

    known = set()
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


def _check_configs(pass_configs) -> dict:
    if pass_configs is None:
        return {}
    if not isinstance(pass_configs, dict):
        raise TypeError("pass_configs must be a dict")
    pass_configs = plain_keys(pass_configs)
    for k in pass_configs:
        if k not in KNOWN_PASS_CONFIGS:
            raise ValueError(f"unknown pass config {k!r}; known: {', '.join(sorted(KNOWN_PASS_CONFIGS))}")
    return dict(pass_configs)


def _check_func(func) -> PrimFunc:
    if not isinstance(func, PrimFunc):
        raise TypeError(
            f"expected a @T.prim_func, got {type(func).__name__}; decorate the kernel with @T.prim_func"
        )
    return func


def compile(  # noqa: A001 - TileLang's name
    func,
    out_idx=None,
    target="auto",
    execution_backend="auto",
    pass_configs=None,
    verbose: bool = False,
    target_host=None,
) -> JITKernel:
    func = _check_func(func)
    tgt = parse_target(target)
    backend = resolve_backend(tgt, execution_backend)
    outs = normalize_out_idx(func, out_idx)
    configs = _check_configs(pass_configs)
    if tgt.kind == "cpu" and _programs_threads(func):
        # A kernel that programs threads itself (T.get_thread_binding) relies on every thread of a
        # block running; the CPU target runs a block as one thread, so such kernels run as their
        # CUDA program, thread by thread, in the emulator (exact, but far slower than native code).
        import warnings

        from ..backend.cuda.artifact import build_cuda

        warnings.warn(
            f"{func.name} uses T.get_thread_binding: on the CPU target it runs thread-exactly in the CUDA "
            "emulator, which is slow; write it with tile operators and T.Parallel for native CPU code",
            stacklevel=2,
        )
        backend = "emulator"
        artifact = build_cuda(func, "sm_80", backend, configs)
    elif tgt.kind == "cpu":
        from ..backend.cpu.artifact import build_cpu

        artifact = build_cpu(func, configs)
    else:
        from ..backend.cuda.artifact import build_cuda

        artifact = build_cuda(func, tgt.arch, backend, configs)
    kernel = JITKernel(func, outs, tgt, backend, artifact, configs)
    if verbose:
        print(kernel.get_kernel_source())
    return kernel


def _programs_threads(func: PrimFunc) -> bool:
    from ..ir.stmt import Kernel
    from ..ir.visitor import walk

    found = []
    walk(func.body, lambda n: found.append(n) if isinstance(n, Kernel) and n.attrs.get("uses_thread_binding") else None)
    return bool(found)


class Lowered:
    """What `lower` returns: the lowered IR and the generated source, not compiled."""

    def __init__(self, func: PrimFunc, lowered: PrimFunc, source: str, target):
        self.func = func
        self.lowered_func = lowered
        self.kernel_source = source
        self.target = target

    def get_kernel_source(self) -> str:
        return self.kernel_source

    def __str__(self) -> str:
        return self.kernel_source

    # TileLang 0.1.x returned (runtime module, params) from lower(); keep that shape working
    def __iter__(self):
        return iter((self, self.lowered_func.params))

    @property
    def imported_modules(self) -> list:
        return [self]

    def get_source(self) -> str:
        return self.kernel_source

    def to_kernel(self, out_idx=None) -> JITKernel:
        """Compile the function for this target (TileLang 0.1.x's Profiler(mod, params, result_idx))."""
        return compile(self.func, out_idx=out_idx, target=self.target)


def lower(func, target="auto", target_host=None, runtime_only: bool = False, pass_configs=None) -> Lowered:
    func = _check_func(func)
    tgt = parse_target(target)
    configs = _check_configs(pass_configs)
    if tgt.kind == "cpu":
        from ..backend.cpu.artifact import lower_cpu

        lowered, module = lower_cpu(func, configs)
        return Lowered(func, lowered, module.source, tgt)
    from ..backend.cuda.artifact import lower_cuda

    lowered, module = lower_cuda(func, tgt.arch, configs)
    return Lowered(func, lowered, module.source, tgt)


def cached(func, out_idx=None, *args, target="auto", target_host=None, execution_backend="auto",
           pass_configs=None, verbose: bool = False) -> JITKernel:
    """TileLang's cached(): compile with the in-memory and on-disk caches (always on here)."""
    return compile(func, out_idx=out_idx, target=target, execution_backend=execution_backend,
                   pass_configs=pass_configs, verbose=verbose)
