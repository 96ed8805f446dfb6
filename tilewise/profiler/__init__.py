"""Timing and checking compiled kernels: do_bench, assert_allclose, input supply."""
from .bench import do_bench
from .profiler import Profiler
from .supply import TensorSupplyType, make_inputs

__all__ = ["Profiler", "TensorSupplyType", "do_bench", "make_inputs"]
