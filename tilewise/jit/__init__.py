from .compile import cached, compile, lower
from .jit import JITFactory, jit
from .kernel import JITKernel

__all__ = ["JITFactory", "JITKernel", "cached", "compile", "jit", "lower"]
