"""Buffer annotations (T.Tensor and friends), allocations, views and symbolic dimensions."""
from __future__ import annotations

from ..errors import CompileError, ShapeMismatchError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferData
from ..ir.builder import emit, require, require_kernel
from ..ir.dtype import as_dtype
from ..ir.expr import BufferLoad, Expr, Var, as_expr, cast, const_value
from ..ir.literal_range import check_literal
from ..ir.stmt import Allocate, LetStmt
from .loops import py_scalar


def _dtype(dtype, what: str):
    from ..ir.vector import is_vector_dtype

    if is_vector_dtype(dtype) or (isinstance(dtype, str) and _split_lanes(dtype) is not None):
        raise CompileError(f"{what}: the vector dtype {dtype} is not a buffer element type in tilewise; use a buffer "
                           "of its element type with lanes times as many elements (A[T.Ramp(i, 1, n)] reads n of "
                           "them as a vector), or T.alloc_var for one vector value")
    try:
        return as_dtype(dtype)
    except (TypeError, ValueError) as e:
        raise CompileError(f"{what}: {e}") from None


def _shape(shape, what: str, static: bool):
    shape = py_scalar(shape)
    if isinstance(shape, (int, Expr)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (list, tuple)):
        raise CompileError(f"{what}: shape must be a tuple of ints, got {shape!r}")
    out = []
    for d in shape:
        if isinstance(d, Buffer) and d.is_var:
            d = d.load_var()
        v = d
        if isinstance(d, Expr):
            c = const_value(d)
            v = d if c is None else c
        if isinstance(v, bool) or not isinstance(v, (int, Expr)):
            raise CompileError(f"{what}: dimension {d!r} is not an integer")
        if isinstance(v, int):
            if v < 0 or (v == 0 and static):
                raise CompileError(f"{what}: dimension {v} must be {'positive' if static else 'non-negative'}")
            out.append(v)
        elif static:
            raise CompileError(
                f"{what}: the shape must be constant at compile time, but dimension {d} is not; "
                "allocate the largest tile and guard the accesses instead"
            )
        else:
            if not v.dtype.is_int:
                raise CompileError(f"{what}: dimension {d} must be an integer")
            out.append(v)
    return tuple(out)


class TensorAnnotation:
    """`T.Tensor(shape, dtype)`: a global tensor parameter (also the base of macro annotations)."""

    scope = "global"

    def __init__(self, shape, dtype="float32", data=None, strides=None, elem_offset=None, scope=None):
        if scope is not None:
            self.scope = scope
        self.shape = _shape(shape, "T.Tensor", static=False)
        self.dtype = _dtype(dtype, "T.Tensor")
        if self.dtype.name == "handle":  # T.Tensor((G,), T.ptr): a table of addresses, int64 as in TileLang
            self.dtype = _dtype("int64", "T.Tensor")
        self.strides = _strides(strides, self.shape)

    def check(self, name: str, value) -> None:
        """Checks a macro argument against this annotation."""
        if not isinstance(value, Buffer):
            raise CompileError(f"macro parameter {name} expects a buffer, got {type(value).__name__}")
        if self.scope == "global":
            return  # T.Tensor / T.Buffer on a macro parameter names no memory in TileLang: any buffer is passed
        scopes = {"shared": ("shared", "shared.dyn")}.get(self.scope, (self.scope,))
        if value.scope not in scopes:
            raise CompileError(f"macro parameter {name} expects a {self.scope} buffer, got {value.scope} buffer {value.name}")


def _strides(strides, shape):
    """Element strides of a T.StridedTensor, or None when they are the row-major ones."""
    if strides is None:
        return None
    what = "T.StridedTensor"
    strides = _shape(strides, what, static=False)
    if len(strides) != len(shape):
        raise CompileError(f"{what}: {len(strides)} strides for {len(shape)} dimensions")
    for st in strides:
        if isinstance(st, int) and st < 1:
            raise CompileError(f"{what}: strides must be positive, got {st}")
    row_major = []
    s = 1
    for d in reversed(shape):
        row_major.append(s)
        s = s * d if isinstance(s, int) and isinstance(d, int) else None
    row_major.reverse()
    if all(isinstance(a, int) and a == b for a, b in zip(strides, row_major)):
        return None
    return strides


class _AnnotationFactory:
    def __init__(self, scope: str, label: str):
        self.scope = scope
        self.label = label

    def __call__(self, shape, dtype="float32", data=None, **kwargs):
        if isinstance(data, BufferData):
            # `T.Tensor(shape, dtype, buf.data)` inside a kernel: a view of buf's storage
            return view(data.buffer, shape, dtype)
        ann = TensorAnnotation(shape, dtype, scope=self.scope, **kwargs)
        return ann

    def __getitem__(self, key):
        # T.Tensor[(M, N), "float16"]; as in TileLang also T.Tensor[(M, N)] / T.Tensor[M, N] /
        # T.Tensor[M] (the shape alone: float32)
        if isinstance(key, tuple) and len(key) >= 2 and _is_dtype(key[1]):
            return self(*key)
        if isinstance(key, tuple) and len(key) == 1:
            key = key[0]
        if isinstance(key, (tuple, list)) and any(_is_dtype(k) for k in key if isinstance(k, str)):
            raise CompileError(f"{self.label}[shape, dtype] expected, got {self.label}[{key!r}]")
        return self(key)


def _is_dtype(x) -> bool:
    if isinstance(x, (int, Expr, tuple, list)):
        return False
    try:
        as_dtype(x)
    except (CompileError, TypeError, ValueError, KeyError):
        return False
    return True


class _StridedFactory:
    """`T.StridedTensor(shape, strides, dtype)`: a global tensor parameter whose elements are
    `strides` apart (in elements), such as a column slice of a wider tensor; strides may be
    symbolic (T.dynamic), bound from the argument at call time."""

    def __call__(self, shape, strides, dtype="float32"):
        return TensorAnnotation(shape, dtype, strides=strides)

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) == 3:
            return self(*key)
        raise CompileError("T.StridedTensor[shape, strides, dtype] expected")


StridedTensor = _StridedFactory()
Tensor = _AnnotationFactory("global", "T.Tensor")
Buffer_ = Tensor
SharedBuffer = _AnnotationFactory("shared", "T.SharedBuffer")
FragmentBuffer = _AnnotationFactory("local.fragment", "T.FragmentBuffer")
LocalBuffer = _AnnotationFactory("local", "T.LocalBuffer")


def _alloc(shape, dtype, scope: str, what: str, name: str | None = None, init=None) -> Buffer:
    b = require(what)
    require_kernel(what)
    shape = _shape(shape, what, static=True)
    dt = _dtype(dtype, what)
    buf = Buffer(name or _auto_name(scope), shape, dt, scope)
    buf.auto_named = name is None
    if init is not None:
        check_literal(init, dt, what)  # a Python literal the type cannot hold: TVM's ValueError
        init = as_expr(init, dt)
        if init.dtype != dt:
            init = init.astype(dt)
    b.emit(Allocate(buf, init))
    return buf


_counter = [0]


def _auto_name(scope: str) -> str:
    # the parser renames buffers after the variable they are assigned to
    _counter[0] += 1
    return {"shared": "shared", "shared.dyn": "shared", "local.fragment": "frag"}.get(scope, "local") + f"_{_counter[0]}"


def alloc_shared(shape, dtype, scope: str = "shared.dyn") -> Buffer:
    return _alloc(shape, dtype, "shared.dyn" if scope in ("shared", "shared.dyn") else scope, "T.alloc_shared")


def alloc_fragment(shape, dtype, scope: str = "local.fragment") -> Buffer:
    return _alloc(shape, dtype, "local.fragment", "T.alloc_fragment")


def alloc_local(shape, dtype, scope: str = "local") -> Buffer:
    return _alloc(shape, dtype, "local", "T.alloc_local")


def alloc_var(dtype, *args, scope: str = "local.var", init=None) -> Buffer:
    """A scalar register, TileLang's argument forms: `(dtype)`, `(dtype, init)`, `(dtype, scope)`,
    `(dtype, init, scope)`, `init=` / `scope=` keywords. Without an initialiser it starts at zero,
    as TileLang's code generator declares it."""
    if len(args) > 2:
        raise CompileError(f"T.alloc_var takes at most 3 positional arguments, got {len(args) + 1}")
    if len(args) == 1 and isinstance(args[0], str):
        scope = args[0]
    elif args:
        if init is not None:
            raise CompileError("T.alloc_var: the initialiser is given twice")
        init = args[0]
        if len(args) == 2:
            scope = args[1]
    if not isinstance(scope, str):
        raise CompileError(f"T.alloc_var: scope must be a string, got {scope!r}")
    from ..ir.vector import is_vector_dtype, split_vector_dtype

    if is_vector_dtype(dtype) or (isinstance(dtype, str) and _split_lanes(dtype) is not None):
        from .vector_values import alloc_vector_var  # T.alloc_var(T.float16x2): a vector variable

        split_vector_dtype(dtype)
        return alloc_vector_var(dtype, init)
    return _alloc((1,), dtype, "local.var", "T.alloc_var", init=0 if init is None else init)


def _split_lanes(name: str):
    """The lanes of a vector dtype name T exports (T.float32x4's "float32x4"), else None."""
    from ..ir.vector import split_vector_dtype
    from .global_vector import vector_dtype_names

    if name not in vector_dtype_names():
        return None
    try:
        return split_vector_dtype(name)[1]
    except (TypeError, ValueError):
        return None


def alloc_buffer(shape, dtype, scope: str = "shared.dyn") -> Buffer:
    scope = {"shared": "shared.dyn", "local.fragment": "local.fragment"}.get(scope, scope)
    return _alloc(shape, dtype, scope, "T.alloc_buffer")


def symbolic(name: str, dtype="int32") -> Var:
    """A dimension bound at call time from the argument's shape."""
    return Var(name, _dtype(dtype, "T.symbolic"))


dynamic = symbolic


def _storage_bits(dt) -> int:
    """Bits an element takes in memory: fp4 is stored two per byte (transform/pack_fp4.py)."""
    return 4 if dt.kind == "float4" else dt.bits


def view(buf: Buffer, shape=None, dtype=None) -> Buffer:
    """An aliasing view of `buf` with another shape and/or dtype (same bytes)."""
    if not isinstance(buf, Buffer):
        raise CompileError(f"T.view expects a buffer, got {type(buf).__name__}")
    dt = buf.dtype if dtype is None else _dtype(dtype, "T.view")
    if shape is None:
        if buf.ndim == 0 or not isinstance(buf.shape[-1], int):
            raise CompileError("T.view without a shape needs a static last dimension")
        last = buf.shape[-1] * _storage_bits(buf.dtype)
        if last % _storage_bits(dt):
            raise CompileError(f"T.view: {buf.name}'s last dimension does not divide into {dt}")
        shape = buf.shape[:-1] + (last // _storage_bits(dt),)
    shape = _shape(shape, "T.view", static=False)
    old = buf.numel()
    new = 1
    for d in shape:
        new = new * d
    ov, nv = const_value(old) if isinstance(old, Expr) else old, const_value(new) if isinstance(new, Expr) else new
    if isinstance(ov, int) and isinstance(nv, int) and ov * _storage_bits(buf.dtype) != nv * _storage_bits(dt):
        raise ShapeMismatchError(
            f"T.view: {buf.name} holds {ov} x {buf.dtype} = {ov * _storage_bits(buf.dtype) // 8} bytes, "
            f"but the view asks for {nv} x {dt} = {nv * _storage_bits(dt) // 8} bytes"
        )
    v = Buffer(f"{buf.name}_view", shape, dt, buf.scope, base=buf)
    v.auto_named = True
    require("T.view").emit(Allocate(v))
    return v


def reshape(buf: Buffer, shape) -> Buffer:
    return view(buf, shape)


def make_tensor(ptr, shape, dtype="float32") -> Buffer:
    """`A = T.make_tensor(a_ptr, (m, k), "float16")` on a `T.ptr` parameter: the kernel sees a
    global tensor of that shape; the caller passes an address (`tensor.data_ptr()`) or a tensor.
    Dimensions may be scalar parameters. Inside a kernel the address may be read at run time
    from a table of pointers (`T.make_tensor(ptrs[bx], (n,), "float16")`, ptrs a
    `T.Tensor((G,), T.ptr)` / int64 / uint64 parameter): see `_table_tensor`."""
    if isinstance(ptr, Var) and ptr.dtype.name == "handle":
        return _pointer_tensor(ptr, shape, dtype, "T.make_tensor")
    if isinstance(ptr, Expr) and require("T.make_tensor").kernels:
        return _table_tensor(ptr, shape, dtype, "T.make_tensor")
    raise CompileError(f"T.make_tensor: the first argument must be a T.ptr parameter, or inside a kernel an "
                       f"address read from a table of pointers (ptrs[i] of a T.Tensor((n,), T.ptr)), got {ptr!r}")


def _table_tensor(ptr: Expr, shape, dtype, what: str) -> Buffer:
    """A global tensor at an address the kernel reads at run time: an element of a 64-bit
    integer parameter (TileLang lowers `T.Tensor((G,), T.ptr)` to int64). The address is bound
    to a variable where the call is; accesses go through it on the CPU and CUDA, and the
    emulator and the PTX interpreter map it onto the argument tensor it points into. Its shape
    must be static or scalar parameters; accesses are bounds-checked against it like any
    tensor's."""
    if not (ptr.dtype.is_int and ptr.dtype.bits == 64) and ptr.dtype.name != "handle":
        raise CompileError(f"{what}: the address must be a 64-bit integer (an element of a T.Tensor((n,), T.ptr) "
                           f"table), got {ptr.dtype} {ptr!r}")
    if isinstance(ptr, BufferLoad) and ptr.buffer.is_global:
        ptr.buffer.root.pointer_table = True
    addr = Var("tensor_addr", _dt.int64)
    emit(LetStmt(addr, ptr if ptr.dtype == _dt.int64 else cast(ptr, _dt.int64)))
    buf = Buffer("tensor", _shape(shape, what, static=False), _dtype(dtype, what), "global")
    buf.auto_named = True
    buf.address = addr
    return buf


def make_tensor_from_addr(addr, shape, dtype="float32", strides=None, storage_scope: str = "global") -> Buffer:
    """`T.make_tensor_from_addr(addr, shape, dtype)`: a global tensor at the address `addr`, which
    here must be a kernel parameter holding it (`T.ptr`, or a 64-bit integer such as
    `tensor.data_ptr()`), used at the top of the function like T.make_tensor. Addresses computed
    inside a kernel (a table of pointers) are not supported: the emulator and the PTX interpreter
    know memory by the tensors passed, not by raw addresses."""
    what = "T.make_tensor_from_addr"
    if storage_scope != "global":
        raise CompileError(f"{what}: only global tensors are supported, got storage_scope={storage_scope!r}")
    if strides is not None:
        raise CompileError(f"{what}: strides are not supported; pass a T.StridedTensor parameter instead")
    if not (isinstance(addr, Var) and (addr.dtype.name == "handle" or (addr.dtype.is_int and addr.dtype.bits == 64))):
        raise CompileError(
            f"{what}: the address must be a kernel parameter (T.ptr, T.uint64 or T.int64) used at the top of the "
            f"function; addresses computed inside a kernel are not supported, got {addr!r}")
    return _pointer_tensor(addr, shape, dtype, what)


def _pointer_tensor(ptr: Var, shape, dtype, what: str) -> Buffer:
    b = require(what)
    if ptr in b.pointer_tensors:
        raise CompileError(f"{what}: parameter {ptr.name} already gives tensor {b.pointer_tensors[ptr].name}")
    if b.kernels:
        raise CompileError(f"{what} belongs before T.Kernel, at the top of the function")
    buf = Buffer("tensor", _shape(shape, what, static=False), _dtype(dtype, what), "global")
    buf.auto_named = True
    buf.pointer = ptr
    b.pointer_tensors[ptr] = buf
    return buf
