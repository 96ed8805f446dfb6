"""tvm.testing names TileLang's examples use."""
from ..testing import requires_cuda, requires_llvm, requires_package  # noqa: F401
