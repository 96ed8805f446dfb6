from .compile import cached, compile, lower, par_compile
from .jit import JITFactory, jit
from .kernel import JITKernel

__all__ = ["JITFactory", "JITKernel", "cached", "compile", "jit", "lower", "par_compile"]
