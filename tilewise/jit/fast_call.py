"""The per-call fast path of a CPU kernel: arguments exactly as declared (right dtype and shape,
contiguous, on the CPU) become raw pointers with a few attribute reads each, and the kernel is
called through its one-argument-per-pointer entry.

Everything is decided once per kernel: which dimensions are fixed, which bind a dynamic
dimension, what the outputs' shapes and dtypes are. Anything unusual (a strided tensor, a
wrong dtype, a tensor subclass, keyword arguments) returns None, and the caller takes the
general path (`ArgBinder.bind`), which checks everything and names what is wrong."""
from __future__ import annotations

import ctypes
import math
import sys

import numpy as np

from ..backend.cpu.library import check_status
from ..ir.buffer import Buffer
from ..ir.dtype import as_dtype
from ..ir.expr import Var
from .packed_fp4 import packs_two

# A tensor type is torch's (its data_ptr is the data) or not; decided once per type.
_torch_types: dict = {}


def _is_torch_type(t) -> bool:
    r = _torch_types.get(t)
    if r is None:
        r = _torch_types[t] = t.__module__ == "torch" and t.__name__ == "Tensor"
    return r


def _np_ptr(a) -> int:
    # Four times faster than a.ctypes.data, for writable non-empty arrays of a dtype that the
    # buffer protocol knows (not ml_dtypes' bfloat16 / float8).
    if a.flags.writeable and a.nbytes and _buffer_dtypes.get(a.dtype, True):
        try:
            return ctypes.addressof(_c_char.from_buffer(a))
        except (ValueError, TypeError):
            _buffer_dtypes[a.dtype] = False
    return a.ctypes.data


_c_char = ctypes.c_char
_buffer_dtypes: dict = {}

HUGE_PAGE = 1 << 21
HUGE_OUTPUT_BYTES = 4 << 20
_madvise = None


def advise_huge_pages(ptr: int, nbytes: int) -> None:
    """Ask Linux for 2 MiB pages under a fresh output of at least 4 MiB (transparent huge
    pages in `madvise` mode, the usual default). The kernel's first writes then fault 512 times
    fewer pages: allocating and filling 64 MiB drops from ~29 ms to ~7 ms on one core."""
    global _madvise
    if nbytes < HUGE_OUTPUT_BYTES:
        return
    if _madvise is None:
        if not sys.platform.startswith("linux"):
            _madvise = False
            return
        try:
            libc = ctypes.CDLL(None)
            _madvise = libc.madvise
            _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            _madvise.restype = ctypes.c_int
        except (OSError, AttributeError):
            _madvise = False
    if not _madvise:
        return
    lo = (ptr + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1)
    hi = (ptr + nbytes) & ~(HUGE_PAGE - 1)
    if hi > lo:
        _madvise(lo, hi - lo, 14)  # MADV_HUGEPAGE; advice only, a failure changes nothing


_NO_DIMS: list = []



class FastCall:
    def __init__(self, binder, direct, check=check_status):
        self.direct = direct
        self.check_status = check  # raises what a non-zero status means (the library's own, if it has one)
        self.binder = binder
        params = binder.params
        self.n_params = len(params)
        self.dyn = list(binder.dynamic_vars)
        self.ok = True
        slot = {v: k for k, v in enumerate(self.dyn)}
        # per input: (param index, kind, per-dimension spec), spec an int (fixed) or a slot
        self.inputs = []
        for i in binder.in_idx:
            p = params[i]
            if isinstance(p, Buffer):
                if p.explicit_strides is not None or packs_two(p.dtype):  # fp4 / int4: packed tensors (packed_fp4.py)
                    self.ok = False
                    continue
                spec = []
                for d in p.shape:
                    if isinstance(d, int):
                        spec.append(d)
                    elif isinstance(d, Var) and d in slot and d.dtype.is_int:
                        spec.append(("dyn", slot[d], 1 << (d.dtype.bits - 1)))
                    else:
                        self.ok = False  # an expression of dimensions: the general path checks it
                        spec.append(None)
                self.inputs.append((i, i in binder.written, p, tuple(spec)))
            else:
                if p in slot:
                    self.ok = False  # a scalar that is also a dimension
                self.inputs.append((i, None, p, None))
        self.outputs = []
        for i in binder.out_idx:
            p = params[i]
            shape = []
            for d in p.shape:
                if isinstance(d, int):
                    shape.append(d)
                elif isinstance(d, Var) and d in slot:
                    shape.append(("dyn", slot[d]))
                else:
                    self.ok = False
            if p.explicit_strides is not None or packs_two(p.dtype):
                self.ok = False
            self.outputs.append((i, p, shape))
        self.static_out = all(isinstance(d, int) for _, _, s in self.outputs for d in s)
        # bytes of each output when static (whether to ask for huge pages), else None
        self.out_bytes = [math.prod(s) * p.dtype.bytes if self.static_out else None for _, p, s in self.outputs]
        self.any_buffer = any(w is not None for _, w, _, _ in self.inputs)
        self._dtype_ok: dict = {}  # (param index, dtype object) -> bool
        self._out_dtypes: dict = {}  # (param index, torch?) -> dtype object

    def _dtype_matches(self, i: int, p: Buffer, dtype) -> bool:
        key = (i, dtype)
        r = self._dtype_ok.get(key)
        if r is None:
            try:
                r = as_dtype(dtype) == p.dtype
            except (TypeError, ValueError):
                r = False
            self._dtype_ok[key] = r
        return r

    def _out_dtype(self, i: int, p: Buffer, use_torch: bool):
        key = (i, use_torch)
        d = self._out_dtypes.get(key)
        if d is None:
            d = self._out_dtypes[key] = p.dtype.torch if use_torch else p.dtype.numpy
            if use_torch:
                import torch

                self._torch_empty = torch.empty
        return d

    def __call__(self, args):
        """The outputs (a list) after running the kernel, or None when the general path must
        bind these arguments."""
        if len(args) != len(self.inputs):
            return None
        ptrs = [None] * self.n_params
        dims = [None] * len(self.dyn) if self.dyn else _NO_DIMS
        keep = None
        use_torch = False
        dtype_ok = self._dtype_ok
        for (i, written, p, spec), a in zip(self.inputs, args):
            if written is None:  # a scalar
                c = self.binder._check_scalar(p, a)
                ptrs[i] = ctypes.addressof(c)
                keep = (keep or []) + [c]
                continue
            t = a.__class__
            if t is np.ndarray:
                if not a.flags.c_contiguous or (written and not a.flags.writeable):
                    return None
                ptr = _np_ptr(a)
            elif _torch_types.get(t) or _is_torch_type(t):
                if not (a.is_cpu and a.is_contiguous()) or (written and a.requires_grad):
                    return None
                ptr = a.data_ptr()
                use_torch = True
            else:
                return None
            if not (dtype_ok.get((i, a.dtype)) or self._dtype_matches(i, p, a.dtype)):
                return None
            shape = a.shape
            if shape != spec:
                if len(shape) != len(spec):
                    return None
                for want, got in zip(spec, shape):
                    if want.__class__ is int:
                        if want != got:
                            return None
                    else:
                        _, k, limit = want
                        have = dims[k]
                        if have is None:
                            if got >= limit:
                                return None
                            dims[k] = got
                        elif have != got:
                            return None
            ptrs[i] = ptr
        if dims and None in dims:
            return None
        if not self.any_buffer:
            return None  # the general path decides numpy or torch from what is installed
        outputs = []
        for (i, p, shape), nbytes in zip(self.outputs, self.out_bytes):
            if nbytes is None:
                shape = [d if d.__class__ is int else dims[d[1]] for d in shape]
                nbytes = math.prod(shape) * p.dtype.bytes
            dt = self._out_dtypes.get((i, use_torch)) or self._out_dtype(i, p, use_torch)
            if use_torch:
                out = self._torch_empty(shape, dtype=dt)
                ptrs[i] = ptr = out.data_ptr()
            else:
                out = np.empty(shape, dtype=dt)
                ptrs[i] = ptr = _np_ptr(out)
            if nbytes >= HUGE_OUTPUT_BYTES:
                advise_huge_pages(ptr, nbytes)
            outputs.append(out)
        status = self.direct(*ptrs, *dims)
        if status != 0:
            self.check_status(status)
        del keep
        return outputs


def make_fast_call(binder, runtime) -> FastCall | None:
    """A FastCall for a kernel whose runtime has a direct native entry, or None (GPU kernels,
    the emulator, libraries built without the entry)."""
    direct_entry = getattr(runtime, "direct_entry", None)
    if binder.device != "cpu" or direct_entry is None or binder.assumes:  # T.assume: checked by bind()
        return None
    direct = direct_entry(len(binder.params), len(binder.dynamic_vars))
    if direct is None:
        return None
    fc = FastCall(binder, direct, getattr(runtime, "check_status", check_status))
    return fc if fc.ok else None
