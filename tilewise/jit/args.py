"""Checks call arguments against a kernel's parameters and turns them into raw pointers.

Accepts numpy arrays and torch tensors; every mismatch names the parameter and says what was
expected and what was found."""
from __future__ import annotations

import ctypes

import numpy as np

from ..ir.buffer import Buffer
from ..ir.dtype import DataType, as_dtype
from ..ir.expr import Var, const
from ..ir.printer import shape_str
from ..ir.simplify import simplify
from ..ir.visitor import collect_vars, substitute
from .packed_fp4 import PackedLogical, Unpacked, fp4_kernel_bytes, is_packed_fp4, logical_view, packed_output, packs_two

_np_to_dt: dict = {}
_MISSING = object()


def dtype_of_array(x) -> DataType:
    d = x.dtype
    try:
        return _np_to_dt[d]
    except (KeyError, TypeError):
        dt = as_dtype(d)
        try:
            _np_to_dt[d] = dt
        except TypeError:
            pass
        return dt


def is_torch(x) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "data_ptr")


class ArgBinder:
    """Binds one call's arguments: pointers, dynamic dimensions, and the outputs to allocate."""

    def __init__(self, params, out_idx, dynamic_vars, device: str = "cpu", written=frozenset(), align=None,
                 unused=frozenset()):
        self.params = params
        self.assumes: list = []  # T.assume conditions [(expr, text)]: checked when they reduce to a constant
        self.unused = frozenset(unused)  # indices of tensor parameters the kernel never touches: None allowed
        self.written = frozenset(written)  # indices of the parameters the kernel writes
        self.align = dict(align or {})  # parameter index -> bytes its data's start must be aligned to
        self.out_idx = list(out_idx)
        self.in_idx = [i for i in range(len(params)) if i not in self.out_idx]
        self.dynamic_vars = dynamic_vars
        self.device = device

    def describe_inputs(self) -> str:
        return ", ".join(_pname(self.params[i]) for i in self.in_idx)

    def order_args(self, args, kwargs) -> tuple:
        """Positional arguments, with keyword arguments (by parameter name) placed in order."""
        if not kwargs:
            return tuple(args)
        names = [self.params[i].name for i in self.in_idx]
        if len(args) > len(names):
            return tuple(args) + tuple(kwargs.values())  # the count check reports it
        out = list(args) + [_MISSING] * (len(names) - len(args))
        for k, v in kwargs.items():
            if k not in names:
                outs = [self.params[i].name for i in self.out_idx]
                why = " (it is an output, allocated by the call)" if k in outs else ""
                raise TypeError(f"the kernel has no input argument {k!r}{why}; inputs: {', '.join(names)}")
            j = names.index(k)
            if out[j] is not _MISSING:
                raise TypeError(f"argument {k} is given twice")
            out[j] = v
        missing = [n for n, v in zip(names, out) if v is _MISSING]
        if missing:
            raise TypeError(f"missing argument(s): {', '.join(missing)}")
        return tuple(out)

    def bind(self, args):
        params = self.params
        if len(args) != len(self.in_idx):
            outs = ", ".join(_pname(params[i]) for i in self.out_idx)
            extra = f" ({outs} {'is' if len(self.out_idx) == 1 else 'are'} allocated and returned)" if self.out_idx else ""
            raise TypeError(
                f"the kernel takes {len(self.in_idx)} argument(s) ({self.describe_inputs()}){extra}, "
                f"but {len(args)} were given"
            )
        values: dict = {}  # Var -> int
        deferred: list = []  # (name, dim, expression, found) for dimensions like n * 2
        arrays = [None] * len(params)
        use_torch = False
        addresses = []  # (index, address) of T.make_tensor tensors passed as raw addresses
        write_backs = []  # packed fp4 tensors to pack the kernel's results into (jit/packed_fp4.py)
        for i, a in zip(self.in_idx, args):
            p = params[i]
            if isinstance(p, Buffer) and p.pointer is not None and isinstance(a, int) and not isinstance(a, bool):
                addresses.append((i, a))
            elif a is None and i in self.unused:
                # TileLang passes a null pointer; the kernel never dereferences it
                arrays[i] = _alloc([0] * len(p.shape), p.dtype, self.device == "cuda", self.device)
            elif isinstance(p, Buffer):
                given = a
                packed = is_packed_fp4(p.dtype, a)
                if packed and p.dtype.kind == "float4":  # TileLang's two values per byte, as the kernel
                    if is_torch(a):                         # stores fp4: its logical view binds the shape
                        self._check_device(p.name, a)
                    a = logical_view(p.name, a, p.dtype)
                elif packed:  # int4: one value per byte inside the kernel, unpacked for it
                    if is_torch(a):
                        self._check_device(p.name, a)
                    up = Unpacked(p.name, a, p.dtype)
                    a = up.array
                    if i in self.written:
                        write_backs.append(up)
                arrays[i] = self._check_buffer(p, a, values, deferred)
                if p.dtype.kind == "float4":  # fp4 kernels take packed bytes (transform/pack_fp4.py)
                    if packed:
                        arrays[i] = fp4_kernel_bytes(given)
                    else:
                        pl = PackedLogical(arrays[i])
                        arrays[i] = pl.array
                        if i in self.written:
                            write_backs.append(pl)
                use_torch = use_torch or is_torch(given)
                if i in self.written:
                    _check_writable(p, given)
                align = self.align.get(i, 1)
                if align > 1 and _nbytes(a) and data_ptr(a) % align:
                    raise ValueError(
                        f"argument {p.name}: its data starts at an address that is not a multiple of {align} "
                        f"bytes (a view at an offset?); the CUDA code moves it in {align}-byte vectors: "
                        "pass a copy (.clone() / np.array(x))")
            else:
                arrays[i] = self._check_scalar(p, a)
                if isinstance(p, Var):
                    v = int(a) if p.dtype.is_int else a
                    if p in values and values[p] != v:
                        raise ValueError(f"argument {p.name} is {v}, but a tensor argument's shape says {values[p]}")
                    values[p] = v
        for i, addr in addresses:
            arrays[i] = self._at_address(params[i], addr, values)
        _solve_linear(deferred, values)
        for name, k, want, got in deferred:
            v = simplify(substitute(want, {kk: _const(vv) for kk, vv in values.items()}))
            if not hasattr(v, "value"):
                raise ValueError(f"argument {name}: dimension {k} is {want}, which no argument's shape determines")
            if int(v.value) != got:
                raise ValueError(f"argument {name}: dimension {k} should be {want} = {v.value}, found {got}")
        for cond, text in self.assumes:  # T.assume on host values (language/tir_math.py)
            v = simplify(substitute(cond, {kk: _const(vv) for kk, vv in values.items()}))
            if hasattr(v, "value") and not v.value:
                raise RuntimeError(f"Assume: {text} does not hold for these arguments")
        if not any(isinstance(params[i], Buffer) for i in self.in_idx):
            use_torch = _torch_importable()  # nothing to take the kind from: torch, as in TileLang
        outputs = []
        for i in self.out_idx:
            p = params[i]
            shape = []
            for d in p.shape:
                if isinstance(d, int):
                    shape.append(d)
                    continue
                v = simplify(substitute(d, {k: _const(v) for k, v in values.items()}))
                if not hasattr(v, "value"):
                    raise ValueError(
                        f"cannot allocate output {p.name}: its dimension {d} is not determined by the inputs"
                    )
                shape.append(int(v.value))
            if p.explicit_strides is not None:
                raise ValueError(
                    f"cannot allocate output {p.name}: it is a T.StridedTensor; pass it as an argument "
                    "instead of listing it in out_idx"
                )
            if use_torch and p.dtype.kind == "float4":  # TileLang returns fp4 packed, as torch.int8
                out = packed_output(shape, self.device, p.dtype)
                arrays[i] = fp4_kernel_bytes(out)
            elif use_torch and packs_two(p.dtype):  # int4 likewise, one value per byte inside the kernel
                out = packed_output(shape, self.device, p.dtype)
                up = Unpacked(p.name, out, p.dtype)
                arrays[i] = up.array
                write_backs.append(up)
            elif p.dtype.kind == "float4":
                out = _alloc(shape, p.dtype, use_torch, self.device)
                pl = PackedLogical(out)
                arrays[i] = pl.array
                write_backs.append(pl)
            else:
                out = _alloc(shape, p.dtype, use_torch, self.device)
                arrays[i] = _as_mx_bytes(out, p.dtype) if use_torch and p.dtype.kind == "float6" else out
            outputs.append(out)
        dims = []
        for v in self.dynamic_vars:
            if v not in values:
                raise ValueError(f"the dynamic dimension {v.name} is not bound by any input argument")
            dims.append(values[v])
        return arrays, dims, outputs, write_backs

    def _at_address(self, p: Buffer, addr: int, values: dict):
        """The tensor of a T.ptr parameter given as an address: its shape from the scalar
        arguments; on the CPU an array over that memory, on a GPU the address itself."""
        if addr <= 0:
            raise ValueError(f"argument {p.pointer.name}: {addr} is not an address")
        if self.device != "cpu":
            return addr
        shape = []
        for d in p.shape:
            v = d if isinstance(d, int) else simplify(substitute(d, {k: _const(x) for k, x in values.items()}))
            n = v if isinstance(v, int) else getattr(v, "value", None)
            if n is None:
                raise ValueError(f"argument {p.pointer.name}: dimension {d} of {p.name} is not given by the "
                                 "scalar arguments")
            shape.append(int(n))
        count = 1
        for n in shape:
            count *= n
        raw = (ctypes.c_uint8 * (count * p.dtype.bytes)).from_address(addr)
        return np.frombuffer(raw, dtype=p.dtype.numpy, count=count).reshape(shape)

    def _check_device(self, name: str, a) -> None:
        dev = str(a.device)
        if self.device == "cpu" and not dev.startswith("cpu"):
            raise ValueError(
                f"argument {name}: the tensor is on {dev}, but this kernel runs on the CPU; pass a CPU tensor"
            )
        if self.device == "cuda" and not dev.startswith("cuda"):
            raise ValueError(f"argument {name}: the tensor is on {dev}, but this kernel runs on the GPU")

    def _check_buffer(self, p: Buffer, a, values, deferred):
        name = p.name
        if is_torch(a):
            self._check_device(name, a)
            if a.layout is not _torch_strided():
                raise TypeError(f"argument {name}: expected a dense (strided) tensor, found layout {a.layout}; "
                                "pass .to_dense()")
        elif isinstance(a, np.ndarray) and type(a) is not np.ndarray:
            a = _plain_ndarray(name, a)
        elif a is None:
            raise TypeError(f"argument {name} is None, but the kernel accesses it (None stands for a null pointer, "
                            "accepted only for a tensor the kernel never reads or writes)")
        elif not isinstance(a, np.ndarray):
            raise TypeError(
                f"argument {name}: expected a numpy array or torch tensor of shape {shape_str(p.shape)} "
                f"and dtype {p.dtype}, found {_kind_of(a)}"
            )
        try:
            dt = _torch_to_dt(a.dtype) if is_torch(a) else dtype_of_array(a)
        except (TypeError, ValueError) as e:
            # a torch dtype tilewise knows but cannot take as is (the packed fp4) says what to do
            why = f": {e}" if is_torch(a) and isinstance(e, TypeError) else ""
            raise TypeError(f"argument {name}: expected dtype {p.dtype}, found unsupported dtype {a.dtype}{why}") from None
        byte_tensor = dt != p.dtype and (p.dtype.kind in ("float4", "float6") or p.dtype.is_sub_byte_int) \
            and dt.name in ("uint8", "int8") \
            and is_torch(a)
        # a tfloat32 tensor is a float32 one (TileLang's storage type; T.gemm rounds its operands)
        tf32 = p.dtype.kind == "tfloat" and dt.name == "float32"
        if dt != p.dtype and not byte_tensor and not tf32:
            raise TypeError(f"argument {name}: expected dtype {p.dtype}, found {dt}")
        shape = tuple(a.shape)
        if len(shape) != len(p.shape):
            raise ValueError(
                f"argument {name}: expected {len(p.shape)} dimensions {shape_str(p.shape)}, found shape {shape}"
            )
        for k, (want, got) in enumerate(zip(p.shape, shape)):
            if isinstance(want, int):
                if want != got:
                    packed = f" (a numpy array of ml_dtypes.{p.dtype.name} holds one value per element; byte " \
                        "tensors hold two: see docs/API.md \"Microscaling types\")" \
                        if packs_two(p.dtype) and got in (2 * want, want // 2) else ""
                    raise ValueError(
                        f"argument {name}: expected shape {shape_str(p.shape)}, found {shape} (dimension {k}){packed}"
                    )
            elif isinstance(want, Var):
                if want.dtype.is_int and got >= 1 << (want.dtype.bits - 1):
                    raise ValueError(
                        f"argument {name}: dimension {k} ({want.name}) is {got}, more than a {want.dtype} holds; "
                        f"declare it T.symbolic({want.name!r}, 'int64')"
                    )
                if want in values and values[want] != got:
                    raise ValueError(
                        f"argument {name}: dimension {k} is {want.name}={values[want]} from an earlier argument, found {got}"
                    )
                values[want] = got
            else:
                # an expression of dynamic dims: checked once all inputs have bound their variables
                deferred.append((name, k, want, got))
        if p.explicit_strides is not None:
            self._check_strides(p, a, values, deferred)
        elif not _contiguous(a):
            raise ValueError(
                f"argument {name}: the kernel needs a contiguous row-major array, found strides "
                f"{_strides(a)}; pass a contiguous copy (.contiguous() / np.ascontiguousarray)"
            )
        if byte_tensor:
            # torch has no one-value-per-byte fp4 / fp6 dtype: a uint8 / int8 tensor holds the values
            # in its bytes' low bits; the emulator and the PTX interpreter read it as the type
            return _as_mx_bytes(a, p.dtype)
        return a

    def _check_strides(self, p: Buffer, a, values, deferred):
        """A T.StridedTensor argument: its element strides must be the declared ones (binding
        symbolic strides); dimensions of extent 1 may have any stride."""
        got_all = _strides(a)
        for k, (want, got, n) in enumerate(zip(p.explicit_strides, got_all, a.shape)):
            if n == 1 and isinstance(want, int):
                continue
            if isinstance(want, int):
                if want != got:
                    raise ValueError(
                        f"argument {p.name}: expected strides {shape_str(p.explicit_strides)}, found "
                        f"{got_all} (dimension {k})"
                    )
            elif isinstance(want, Var):
                if want in values and values[want] != got:
                    raise ValueError(
                        f"argument {p.name}: stride {k} is {want.name}={values[want]} from an earlier argument, "
                        f"found {got}"
                    )
                values[want] = got
            else:
                deferred.append((p.name, k, want, got))

    def _check_scalar(self, p, a):
        dt = p.dtype
        if is_torch(a) or isinstance(a, np.ndarray):
            if getattr(a, "ndim", 1) != 0 and getattr(a, "numel", lambda: 2)() != 1:
                raise TypeError(f"argument {p.name}: expected a {dt} scalar, found an array")
            a = a.item()
        if isinstance(a, np.generic):
            a = a.item()
        if dt.is_int:
            if isinstance(a, bool) or not isinstance(a, int):
                raise TypeError(f"argument {p.name}: expected an integer ({dt}), found {type(a).__name__} {a!r}")
            lo, hi = (-(1 << (dt.bits - 1)), (1 << (dt.bits - 1)) - 1) if dt.is_signed else (0, (1 << dt.bits) - 1)
            if not lo <= a <= hi:
                raise ValueError(f"argument {p.name}: expected a {dt} in [{lo}, {hi}], found {a}")
        elif dt.is_float:
            if not isinstance(a, (int, float)) or isinstance(a, bool):
                raise TypeError(f"argument {p.name}: expected a number ({dt}), found {type(a).__name__} {a!r}")
        elif dt.is_bool and not isinstance(a, (bool, int)):
            raise TypeError(f"argument {p.name}: expected a bool, found {type(a).__name__}")
        ct = dt.ctype
        if ct is not None and dt.is_float and dt.bits <= 16:
            # half, bfloat16 and float8 travel as their bit patterns
            return ct(int(np.array(a, dtype=np.float32).astype(dt.numpy).view(np.uint16 if dt.bits == 16 else np.uint8)))
        if ct is None:
            raise TypeError(f"argument {p.name}: scalar parameters of type {dt} are not supported")
        return ct(a)


def _kind_of(a) -> str:
    if isinstance(a, np.generic):  # np.float32(1.0): its type's name reads like a dtype
        return f"a numpy {a.dtype} scalar"
    return type(a).__name__


def _plain_ndarray(name: str, a: np.ndarray) -> np.ndarray:
    """An ndarray subclass (np.matrix, a masked array, a memmap) as a plain ndarray over the same
    memory: the runtimes index arrays as numpy's base class does (np.matrix keeps every index
    2-D). A masked array's mask cannot be honoured by a kernel: refused where anything is masked."""
    if isinstance(a, np.ma.MaskedArray):
        if np.ma.is_masked(a):
            raise TypeError(f"argument {name}: a masked array with masked elements; the kernel reads and writes "
                            "every element and cannot honour the mask: pass .filled(value) or .data")
        a = a.data
    return a.view(np.ndarray)


def _torch_strided():
    import torch

    return torch.strided


def _nbytes(a) -> int:
    return a.numel() * a.element_size() if is_torch(a) else a.nbytes


def _check_writable(p: Buffer, a) -> None:
    """The kernel writes p: refuse memory it must not modify, on every backend alike."""
    if is_torch(a):
        if a.requires_grad:
            raise ValueError(f"argument {p.name}: the kernel writes it in place, but the tensor requires grad; "
                             f"pass {p.name}.detach() (or a tensor without requires_grad)")
    elif not a.flags.writeable:
        raise ValueError(f"argument {p.name}: the kernel writes it, but the array is read-only (writeable=False, "
                         "e.g. a view of bytes or a read-only memmap); pass a writable copy")


def _torch_importable() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _const(v):
    return const(v)


def _torch_to_dt(d):
    return as_dtype(d)


def _contiguous(a) -> bool:
    if is_torch(a):
        return a.is_contiguous()
    return a.flags.c_contiguous


def _strides(a):
    if is_torch(a):
        return tuple(a.stride())
    return tuple(s // a.itemsize for s in a.strides)


def _pname(p) -> str:
    return p.name


def _solve_linear(deferred, values: dict) -> None:
    """Bind a dynamic dimension that only appears inside an expression such as `n * 4` or
    `n + 1` (TileLang's `T.Tensor((n * 4,), ...)`): where a dimension's expression has one
    unbound variable and is affine in it, a*n + b = extent gives n. Whatever is solved is
    verified with every other dimension afterwards, like any bound variable."""
    progress = True
    while progress:
        progress = False
        for _name, _k, want, got in deferred:
            free = [v for v in collect_vars(want) if v not in values]
            free = list(dict.fromkeys(free))
            if len(free) != 1:
                continue
            var = free[0]
            known = {kk: _const(vv) for kk, vv in values.items()}

            def at(x: int):
                r = simplify(substitute(want, {**known, var: _const(x)}))
                return int(r.value) if hasattr(r, "value") else None

            f0, f1, f2 = at(0), at(1), at(2)
            if None in (f0, f1, f2) or f1 == f0 or f2 - f1 != f1 - f0 or (got - f0) % (f1 - f0):
                continue
            n = (got - f0) // (f1 - f0)
            if at(n) == got:
                values[var] = n
                progress = True


def _as_mx_bytes(t, dt: DataType):
    """A torch byte tensor holding fp4 / fp6 values: on the CPU a numpy view of dt sharing its
    memory (what the emulator reads), on a GPU the tensor itself (only its address is used)."""
    return t.detach().numpy().view(dt.numpy) if t.device.type == "cpu" else t


def _alloc(shape, dt: DataType, use_torch: bool, device: str):
    if use_torch and (dt.kind in ("float4", "float6") or dt.is_sub_byte_int):  # no one-value-per-byte torch type
        import torch

        return torch.empty(shape, dtype=torch.uint8, device="cuda" if device == "cuda" else "cpu")
    if use_torch:
        import torch

        return torch.empty(shape, dtype=dt.torch, device="cuda" if device == "cuda" else "cpu")
    return np.empty(shape, dtype=dt.numpy)


def data_ptr(a) -> int:
    if isinstance(a, int):
        return a  # an address given for a T.ptr parameter
    if is_torch(a):
        return a.data_ptr()
    if isinstance(a, np.ndarray):
        return a.ctypes.data
    return ctypes.addressof(a)  # a ctypes scalar



def numpy_view(a):
    """A numpy array sharing memory with a CPU tensor (bfloat16 / float8 through ml_dtypes);
    scalars (ctypes values) become Python numbers."""
    if isinstance(a, np.ndarray):
        return a
    if is_torch(a):
        import torch

        dt = as_dtype(a.dtype)
        if dt.name == "bfloat16" or dt.name.startswith("float8"):
            raw = a.detach().view(torch.int16 if dt.bits == 16 else torch.uint8).numpy()
            return raw.view(dt.numpy)
        return a.detach().numpy()  # inputs may require grad: the kernel only reads them
    if hasattr(a, "value"):
        return a.value
    return a
