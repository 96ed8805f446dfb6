"""Autotuning kernel factories over configurations (TileLang's tilelang.autotuner).

    @tilewise.autotune(configs=[{"block_M": 64}, {"block_M": 128}], warmup=25, rep=100)
    @tilewise.jit(out_idx=[-1])
    def matmul(M, N, K, block_M=128): ...

    result = (AutoTuner.from_kernel(factory, configs)
              .set_compile_args(out_idx=[-1], target="cpu", ref_prog=ref, atol=1e-2, rtol=1e-2)
              .run(warmup=25, rep=100))          # .latency, .config, .kernel, .ref_latency

Decisions where TileLang leaves room:
- Configurations compile in worker processes of our own (`python -m tilewise.autotuner.worker`,
  TILEWISE_AUTOTUNE_WORKERS of them, default one per CPU) that receive pickled prim_funcs and
  build into the disk cache; this process then loads the libraries. multiprocessing is not used
  because its spawn/forkserver children re-import the caller's main script.
- Timing starts once every compile has finished, one configuration at a time, and reports the
  median call time: on a shared machine a few calls wait for a core, which a mean would count.
- A CUDA target without a GPU is refused: the emulator's time says nothing about the GPU's.
  A call that gives every tuned parameter tunes nothing, so it compiles (for the emulator too).
- The result cache is keyed on the IR each configuration gives (not the factory's source), so
  closure values and shapes are always part of it; dynamic dimensions stay symbolic, so one
  tuning serves every size. TILEWISE_AUTOTUNE_DISABLE_CACHE=1 turns it off (and
  TILEWISE_DISABLE_CACHE=1 turns off all caches); TILEWISE_AUTOTUNE_PROGRESS=0 hides the bar.
- Arguments the caller passes to an @autotune factory are fixed; passing every tuned parameter
  compiles that kernel without tuning.
- `executor=` (@autotune, AutoTuner.set_executor / set_compile_args) runs each configuration's
  compile, and its timing when the executor's `measure` is true, as a task of any
  concurrent.futures-style executor; RayExecutor runs them on a Ray cluster (executor.py).
- `timeout` (seconds) bounds each configuration's compile, and again its check and timing; it
  cannot interrupt a call already running inside a native kernel.
"""
from .decorator import AutoTuneFactory, autotune
from .legacy import jit
from .measure import get_autotune_inputs, set_autotune_inputs
from .param import AutotuneError, AutotuneResult, CompileArgs, ProfileArgs
from .ray_executor import RayExecutor  # imports ray only when one is made
from .tuner import AutoTuner

__all__ = [
    "AutoTuneFactory", "AutoTuner", "AutotuneError", "AutotuneResult", "CompileArgs", "ProfileArgs",
    "RayExecutor", "autotune", "get_autotune_inputs", "jit", "set_autotune_inputs",
]  # fmt: skip
