"""A forward kernel and a backward kernel paired into one differentiable torch function.

    attention = tilewise.torch.autograd_function(fwd, backward, returns=[0])
    o = attention(q, k, v)            # o.requires_grad when q, k or v do; o.sum().backward() works

`forward(*inputs)` gives one tensor or a tuple; `returns` picks which of them the function
returns (the others, e.g. FlashAttention's log-sum-exp, are kept for the backward only).
`backward(*inputs, *forward_outputs, *grads)` — with one gradient per returned output — gives one
gradient (or None) per input. Either may be a compiled kernel (registered with custom_op here,
so the whole function is traceable by torch.compile) or a Python function of kernels and torch
operations. Underneath is a `torch.autograd.Function`: `f.Function` is that class."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..jit.kernel import JITKernel
from .custom_op import custom_op


def _as_callable(f, what: str) -> Callable:
    if isinstance(f, JITKernel):
        return custom_op(f)
    if not callable(f):
        raise TypeError(f"autograd_function: {what} must be a kernel or a callable, found {type(f).__name__}")
    return f


def autograd_function(forward, backward, *, returns: Sequence[int] | None = None, name: str | None = None):
    """The differentiable function `forward` with gradients from `backward` (see the module)."""
    fwd = _as_callable(forward, "forward")
    bwd = _as_callable(backward, "backward")
    picked = None if returns is None else [int(i) for i in returns]
    if picked is not None and not picked:
        raise ValueError("autograd_function: returns= must name at least one forward output")

    class Function(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs):
            outs = fwd(*inputs)
            outs = (outs,) if isinstance(outs, torch.Tensor) else tuple(outs)
            chosen = list(range(len(outs))) if picked is None else picked
            for i in chosen:
                if not -len(outs) <= i < len(outs):
                    raise IndexError(f"autograd_function: returns= names output {i}, but the forward gives "
                                     f"{len(outs)}")
            tensors = [x if isinstance(x, torch.Tensor) else None for x in inputs]
            ctx.save_for_backward(*[t for t in tensors if t is not None], *outs)
            ctx.tensor_slots = [t is not None for t in tensors]
            ctx.scalars = [None if t is not None else x for t, x in zip(tensors, inputs)]
            ctx.n_out = len(outs)
            result = tuple(outs[i] for i in chosen)
            return result[0] if len(result) == 1 else result

        @staticmethod
        def backward(ctx, *grads):
            saved = list(ctx.saved_tensors)
            n_tensor = sum(ctx.tensor_slots)
            tensors, outs = saved[:n_tensor], saved[n_tensor:]
            it = iter(tensors)
            inputs = [next(it) if is_t else s for is_t, s in zip(ctx.tensor_slots, ctx.scalars)]
            chosen = list(range(ctx.n_out)) if picked is None else picked
            # an output that was not used has no gradient: its gradient is zero
            grads = [torch.zeros_like(outs[i]) if g is None else g for i, g in zip(chosen, grads)]
            got = bwd(*inputs, *outs, *grads)
            got = (got,) if isinstance(got, torch.Tensor) or got is None else tuple(got)
            if len(got) != len(inputs):
                raise ValueError(f"autograd_function: the backward gave {len(got)} gradient(s) for {len(inputs)} "
                                 "input(s); give one per input (None for inputs without a gradient)")
            return tuple(None if not is_t else g for is_t, g in zip(ctx.tensor_slots, got))

    fn_name = name or getattr(fwd, "__name__", "tilewise_function")
    Function.__name__ = Function.__qualname__ = f"{fn_name}_Function"

    def apply(*inputs):
        return Function.apply(*inputs)

    apply.__name__ = fn_name
    apply.Function = Function
    apply.forward_op = fwd
    apply.backward_op = bwd
    return apply
