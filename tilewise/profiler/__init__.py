"""Timing and checking compiled kernels: do_bench, assert_allclose, input supply."""
from .bench import clock_name, do_bench
from .profiler import Profiler, timing_backend
from .supply import TensorSupplyType, make_inputs

__all__ = ["Profiler", "TensorSupplyType", "clock_name", "do_bench", "make_inputs", "timing_backend"]
