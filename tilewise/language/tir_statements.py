"""TVM script statements TileLang 0.1.15 re-exports into T that a tile program may write:

- `T.Assert(condition, message, error_kind="RuntimeError")`: inside a kernel, a run-time check
  (T.device_assert: a failure stops the kernel with the message); the message may be a list of
  parts, which are joined. Outside a kernel tilewise has no host code to check in: an error.
- `T.ignore_loop_partition(predicate)`: the predicate (a loop-partitioning hint; said once).

TIR constructs tilewise's IR does not have are CompileErrors naming them: `T.where(predicate)` and
`T.init()` (the predicate and the reduction init of a TIR block; tilewise programs have no blocks:
write `if predicate:` / initialise before the loop), `T.thread_return()` and `T.ret(value)` (a
thread leaving the kernel early; tilewise kernels end together: guard the rest with `if`), and
`T.get_active_lane_mask(dtype, base, limit)` (a scalable-vector predicate, LLVM's vscale, for CPUs
with SVE; tilewise's CPU code is fixed-width)."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import builder as _builder
from .control import device_assert


def Assert(condition, message, error_kind: str = "RuntimeError") -> None:  # noqa: N802 - TVM's name
    """A run-time assertion inside a kernel (see the module doc)."""
    if isinstance(message, (list, tuple)):
        message = "".join(str(m) for m in message)
    b = _builder.current()
    if b is None or not b.kernels:
        raise CompileError("T.Assert outside a kernel: tilewise has no host-side statements to check it in; "
                           "check the condition before calling the kernel, or move T.Assert into T.Kernel")
    device_assert(condition, f"{error_kind}: {message}")


def ignore_loop_partition(predicate):
    """TVM's hint that `predicate` should not split a loop (loop partitioning): the predicate
    itself; tilewise decides its own loop splits (said once)."""
    from ..errors import warn_once

    warn_once("ignore_loop_partition", "T.ignore_loop_partition has no effect in tilewise (it decides loop splits "
              "itself); the predicate is used as it is")
    return predicate


def _refuse(name: str, why: str):
    def refuse(*args, **kwargs):
        raise CompileError(f"T.{name}: {why}")

    refuse.__name__ = name
    refuse.__doc__ = f"TVM's T.{name}: a CompileError in tilewise ({why})."
    return refuse


where = _refuse("where", "the predicate of a TIR block; tilewise programs have no TIR blocks — write `if predicate:`")
init = _refuse("init", "the reduction init of a TIR block; tilewise programs have no TIR blocks — initialise the "
                       "accumulator before the loop (T.clear / T.fill)")
thread_return = _refuse("thread_return", "a thread leaving the kernel early is not in tilewise's IR (its threads end "
                                         "together) — guard the rest of the kernel with `if`")
ret = _refuse("ret", "returning a value from a TIR function is not in tilewise's IR; kernels return through their "
                     "output tensors")
get_active_lane_mask = _refuse("get_active_lane_mask", "a scalable-vector (LLVM vscale / SVE) predicate; tilewise's "
                                                       "CPU code is fixed-width")
