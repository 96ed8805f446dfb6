"""compile / lower / cached: from a PrimFunc to a runnable kernel or its source."""
from __future__ import annotations

from ..ir.recursion import deep_recursion
from ..ir.stmt import PrimFunc
from . import build as builds
from .kernel import JITKernel
from .options import check_configs, check_func
from .target import parse_target, record_for


def compile(  # noqa: A001 - TileLang's name
    func,
    out_idx=None,
    target="auto",
    execution_backend="auto",
    pass_configs=None,
    verbose: bool = False,
    target_host=None,
) -> JITKernel:
    return JITKernel(func, out_idx, target=target, execution_backend=execution_backend, pass_configs=pass_configs,
                     verbose=verbose)


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


@deep_recursion()
def lower(func, target="auto", target_host=None, runtime_only: bool = False, pass_configs=None) -> Lowered:
    func = check_func(func)
    tgt = parse_target(target)
    record = record_for(tgt)
    b = builds.build(func, record, record.machine(tgt.arch), check_configs(pass_configs))
    return Lowered(func, b.lowered, b.source, tgt)


def cached(func, out_idx=None, *args, target="auto", target_host=None, execution_backend="auto",
           pass_configs=None, verbose: bool = False) -> JITKernel:
    """TileLang's cached(): compile with the in-memory and on-disk caches (always on here)."""
    return compile(func, out_idx=out_idx, target=target, execution_backend=execution_backend,
                   pass_configs=pass_configs, verbose=verbose)
