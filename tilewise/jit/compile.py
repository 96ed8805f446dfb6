"""compile / lower / cached: from a PrimFunc to a runnable kernel or its source."""
from __future__ import annotations

from ..ir.recursion import deep_recursion
from ..ir.stmt import PrimFunc
from . import build as builds
from .kernel import JITKernel
from .options import check_configs, check_func, warn_ignored_options
from .target import parse_target, record_for


def compile(  # noqa: A001 - TileLang's name
    func,
    out_idx=None,
    target="auto",
    execution_backend="auto",
    pass_configs=None,
    verbose: bool = False,
    target_host=None,
    compile_flags=None,
) -> JITKernel:
    return JITKernel(func, out_idx, target=target if target is not None else "auto",
                     execution_backend=execution_backend or "auto", pass_configs=pass_configs, verbose=bool(verbose),
                     target_host=target_host, compile_flags=compile_flags)


def par_compile(funcs, out_idx=None, execution_backend="auto", target="auto", target_host=None, verbose=False,
                pass_configs=None, compile_flags=None, num_workers: int | None = None,
                ignore_error: bool = False) -> list:
    """TileLang's tilelang.par_compile: compile many prim_funcs at once (threads: most of the time
    is spent in g++ / NVRTC); the kernels in the order given, None for a failure with ignore_error."""
    from concurrent.futures import ThreadPoolExecutor

    funcs = list(funcs)

    def one(f):
        try:
            return compile(f, out_idx=out_idx, target=target, execution_backend=execution_backend,
                           pass_configs=pass_configs, verbose=verbose, target_host=target_host,
                           compile_flags=compile_flags)
        except Exception:
            if not ignore_error:
                raise
            return None

    with ThreadPoolExecutor(max_workers=max(1, num_workers or 4)) as pool:
        return list(pool.map(one, funcs))


class Lowered:
    """What `lower` returns: the lowered IR and the generated source, not compiled."""

    def __init__(self, func: PrimFunc, lowered: PrimFunc, source: str, target):
        self.func = func
        self.lowered_func = lowered
        self.kernel_source = source
        self.target = target
        self.params = lowered.params  # TileLang 0.1.x: artifact.params
        self.rt_mod = self  # TileLang 0.1.x: Profiler(artifact.rt_mod, artifact.params, result_idx=[2])

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


@deep_recursion()
def lower(func, target="auto", target_host=None, runtime_only: bool = False, pass_configs=None) -> Lowered:
    func = check_func(func)
    warn_ignored_options(target_host=target_host, runtime_only=runtime_only)
    tgt = parse_target(target)
    record = record_for(tgt)
    b = builds.build(func, record, record.machine(tgt.arch), check_configs(pass_configs))
    return Lowered(func, b.lowered, b.source, tgt)


def cached(func, out_idx=None, *args, target="auto", target_host=None, execution_backend="auto",
           pass_configs=None, verbose: bool = False, compile_flags=None) -> JITKernel:
    """TileLang's cached(): compile with the in-memory and on-disk caches (always on here)."""
    return compile(func, out_idx=out_idx, target=target, execution_backend=execution_backend,
                   pass_configs=pass_configs, verbose=verbose, target_host=target_host, compile_flags=compile_flags)
