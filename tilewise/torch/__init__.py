"""tilewise kernels inside torch models (`pip install tilewise[torch]`).

- `custom_op(kernel, "ns::name")`: the kernel as a `torch.library` custom operator with a fake
  implementation, usable under `torch.compile(fullgraph=True)` and checked by
  `torch.library.opcheck`;
- `autograd_function(forward, backward, ...)`: a forward and a backward kernel (or functions of
  kernels) paired into a differentiable function (a `torch.autograd.Function`).

This subpackage is named `torch` like the library it adapts: inside tilewise every import is
absolute (`import torch` is always PyTorch); users import it as `tilewise.torch` or
`from tilewise import torch as twt`."""
from __future__ import annotations

try:
    import torch as _torch  # noqa: F401  (PyTorch: imports are absolute)
except ImportError as e:  # pragma: no cover - the test environment has torch
    raise ImportError("tilewise.torch needs PyTorch (>= 2.4): pip install 'tilewise[torch]'") from e

from .autograd import autograd_function
from .custom_op import custom_op
from .shapes import ShapeError

__all__ = ["ShapeError", "autograd_function", "custom_op"]
