"""A compiled tilewise kernel as a `torch.library` custom operator.

The operator's schema comes from the kernel's parameters: the inputs (every parameter not in
`out_idx`) are its arguments — tensors, or int / float / bool scalars — and the `out_idx`
parameters are the tensors it returns. Inputs the kernel writes (found by the same analysis that
refuses read-only arrays) are declared mutated. The fake implementation allocates the outputs
with sizes computed from the inputs' sizes (shapes.py), so `torch.compile(fullgraph=True)`
traces through the operator without a graph break, also with dynamic (SymInt) sizes."""
from __future__ import annotations

import inspect
import itertools
import re

import torch

from ..ir.buffer import Buffer
from ..ir.expr import Var
from ..jit.kernel import JITKernel
from . import shapes

_counter = itertools.count()
_registered: dict[str, object] = {}  # op name -> CustomOpDef made here (torch keeps its libraries alive)


def _annotation(p):
    if isinstance(p, Buffer):
        return torch.Tensor
    if isinstance(p, Var):
        if p.dtype.is_bool:
            return bool
        if p.dtype.is_int:
            return int
        if p.dtype.is_float:
            return float
    raise TypeError(f"parameter {getattr(p, 'name', p)} of type {getattr(p, 'dtype', '?')} has no torch schema type")


def _identifier(name: str, used: set) -> str:
    s = re.sub(r"\W", "_", name) or "arg"
    if s[0].isdigit() or s in ("self", "out") or s in used:
        s = f"arg_{s}"
    while s in used:
        s += "_"
    used.add(s)
    return s


def default_name(kernel: JITKernel) -> str:
    return f"tilewise::{re.sub(r'[^0-9A-Za-z_]', '_', kernel.func.name)}_{next(_counter)}"


def _device_types(kernel: JITKernel):
    return "cuda" if kernel.runtime.device == "cuda" else "cpu"


def custom_op(kernel, name: str | None = None, *, contiguous: bool = True, **factory_kwargs):
    """Register `kernel` as the torch operator `name` ("namespace::op"; a unique
    "tilewise::<kernel name>_<n>" when omitted) and return it (a torch CustomOpDef: call it with
    tensors, pass it to torch.library.opcheck, register_autograd on it).

    `kernel` is a JITKernel (`tilewise.compile(...)`, `@tilewise.jit` on a prim_func) or a
    `@tilewise.jit` factory, which is called with `factory_kwargs` to give the kernel. Sizes that
    vary between calls must be dynamic in the kernel (T.dynamic / T.symbolic): a kernel with
    static shapes accepts only those (the fake implementation checks them at trace time).

    `contiguous`: read-only inputs that are not contiguous are copied to contiguous tensors
    before the kernel runs (the kernel reads row-major memory); with False they are an error.
    Inputs the kernel writes are never copied: they must be contiguous."""
    kernel = _as_kernel(kernel, factory_kwargs)
    name = name or default_name(kernel)
    params = kernel.params
    out_idx = list(kernel.out_idx)
    in_idx = [i for i in range(len(params)) if i not in out_idx]
    shapes.check_expressible(params, in_idx, out_idx)
    for i in out_idx:
        if params[i].explicit_strides is not None:
            raise ValueError(f"output {params[i].name} is a T.StridedTensor; torch operators return new tensors, so "
                             "outputs must be plain row-major T.Tensor parameters")
    used: set = set()
    names = [_identifier(params[i].name, used) for i in in_idx]
    written = getattr(kernel, "_written", frozenset())
    mutated = [n for n, i in zip(names, in_idx) if i in written and isinstance(params[i], Buffer)]
    sig_params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_annotation(params[i]))
                  for n, i in zip(names, in_idx)]
    n_out = len(out_idx)
    ret = None if n_out == 0 else torch.Tensor if n_out == 1 else tuple[(torch.Tensor,) * n_out]
    signature = inspect.Signature(sig_params, return_annotation=ret)
    mutated_idx = {i for n, i in zip(names, in_idx) if n in mutated}

    def impl(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        values = []
        for n, i in zip(names, in_idx):
            a = bound.arguments[n]
            if contiguous and isinstance(a, torch.Tensor) and i not in mutated_idx and \
                    params[i].explicit_strides is None and not a.is_contiguous():
                a = a.contiguous()
            values.append(a)
        out = kernel(*values)
        if n_out == 0:
            return None
        return out

    def fake(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        values = [bound.arguments[n] for n in names]
        env = shapes.bind_inputs(params, in_idx, values)
        device = next((a.device for a in values if isinstance(a, torch.Tensor)),
                      torch.device("cuda" if kernel.runtime.device == "cuda" else "cpu"))
        outs = tuple(torch.empty(shapes.output_shape(params[i], env), dtype=params[i].dtype.torch, device=device)
                     for i in out_idx)
        if n_out == 0:
            return None
        return outs[0] if n_out == 1 else outs

    for f in (impl, fake):
        f.__signature__ = signature
        f.__name__ = name.split("::")[-1]
        f.__annotations__ = {**{p.name: p.annotation for p in sig_params}, "return": ret}
    op = torch.library.custom_op(name, impl, mutates_args=tuple(mutated), device_types=_device_types(kernel))
    op.register_fake(fake)
    op.tilewise_kernel = kernel
    _registered[name] = op
    return op


def _as_kernel(kernel, factory_kwargs: dict) -> JITKernel:
    from ..jit.jit import JITFactory

    if isinstance(kernel, JITKernel):
        if factory_kwargs:
            raise TypeError(f"custom_op: unexpected keyword arguments {sorted(factory_kwargs)} for a compiled kernel")
        return kernel
    if isinstance(kernel, JITFactory):
        if kernel._style((), factory_kwargs) == "eager":
            k = kernel.compile(**factory_kwargs)
        else:
            k = kernel(**factory_kwargs)
        if not isinstance(k, JITKernel):
            raise TypeError(f"custom_op: {kernel.__name__}(**{factory_kwargs}) gave {type(k).__name__}, not a kernel")
        return k
    raise TypeError(f"custom_op expects a compiled kernel (tilewise.compile / @tilewise.jit), found "
                    f"{type(kernel).__name__}")
