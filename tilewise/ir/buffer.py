"""Buffers (global tensors, shared tiles, fragments, locals) and rectangular regions of them."""
from __future__ import annotations

import itertools

from ..errors import CompileError, UnsupportedSyntaxError
from . import dtype as _dt
from .dtype import DataType, as_dtype
from .expr import BufferLoad, Const, Expr, as_expr, const_value
from .span import current_span

_ids = itertools.count()



SHARED_SCOPES = ("shared", "shared.dyn")


class Buffer:
    """A typed n-d array in one memory scope. `A[i, j]` loads an element; a slice gives a region.

    `base` is the buffer whose storage this one aliases (T.view / T.reshape), or None."""

    def __init__(
        self,
        name: str,
        shape,
        dtype,
        scope: str = "global",
        base: Buffer | None = None,
        span=None,
    ):
        self.name = name
        self.shape = tuple(_dim(d) for d in shape)
        self.dtype: DataType = as_dtype(dtype)
        self.scope = scope
        self.base = base
        self.uid = next(_ids)
        self.span = span if span is not None else current_span()
        self.auto_named = False  # set by T.alloc_*: the parser renames it on assignment
        self.byte_offset = 0  # for views: where this buffer starts inside `base` (shared memory planning)
        self.base_align = 16  # bytes its storage must start at a multiple of (shared memory planning)
        self.user_layout = None  # a shared tile's T.annotate_layout layout (TMA planning honours it)
        # element strides of a T.StridedTensor parameter; None means row-major
        self.explicit_strides: tuple | None = None
        # the T.ptr parameter this global tensor was made from (T.make_tensor), or None
        self.pointer = None
        # a tensor T.make_tensor made inside a kernel from an address read at run time (a pointer
        # table's element): the int64 variable holding that address (a LetStmt binds it), or None
        self.address = None
        # a 64-bit integer parameter whose elements are such addresses (the emulator and the PTX
        # interpreter map them onto the argument tensors they point into)
        self.pointer_table = False
        # the bytes of an fp4 buffer stored two values per byte (transform/pack_fp4.py): what
        # the emulator's race reports explain
        self.packed_fp4 = False

    # identity semantics: two buffers are the same only if they are the same object
    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other

    def __repr__(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"{self.name}: {self.scope}[{dims}] {self.dtype}"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    # ------------------------------------------------------------------ memory scopes
    @property
    def is_global(self) -> bool:
        """A tensor in device (or host) memory: kernel parameters."""
        return self.scope == "global"

    @property
    def is_shared(self) -> bool:
        """Shared by the threads of a block (T.alloc_shared)."""
        return self.scope in SHARED_SCOPES

    @property
    def is_fragment(self) -> bool:
        """A register tile distributed over the block's threads (T.alloc_fragment)."""
        return self.scope == "local.fragment"

    @property
    def is_var(self) -> bool:
        """A scalar register (T.alloc_var)."""
        return self.scope == "local.var"

    @property
    def is_local(self) -> bool:
        """Private to one thread, undistributed (T.alloc_local, T.alloc_var)."""
        return self.scope in ("local", "local.var")

    @property
    def root(self) -> Buffer:
        return self.base.root if self.base is not None else self

    def static_shape(self) -> tuple[int, ...] | None:
        if all(isinstance(d, int) for d in self.shape):
            return self.shape  # type: ignore[return-value]
        return None

    def numel(self):
        n = 1
        for d in self.shape:
            n = n * d
        return n

    def strides(self) -> tuple:
        """Strides in elements (ints where static, expressions where dynamic): row-major unless
        the buffer is a T.StridedTensor parameter."""
        if self.explicit_strides is not None:
            return self.explicit_strides
        out = []
        s = 1
        for d in reversed(self.shape):
            out.append(s)
            s = s * d
        return tuple(reversed(out))

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if self.scope == "local.var" and key == (0,):
            return BufferLoad(self, (Const(0, _dt.int32),))
        if any(getattr(k, "is_vector_value", False) is True for k in key):
            return self._vector_load(key)
        if any(isinstance(k, slice) for k in key) or len(key) < self.ndim:
            return BufferRegion.from_key(self, key)
        if len(key) != self.ndim:
            raise CompileError(
                f"buffer {self.name} has {self.ndim} dimensions but is indexed with {len(key)}"
            )
        return BufferLoad(self, tuple(_index(from_end(k, d)) for k, d in zip(key, self.shape)))

    def _vector_load(self, key):
        """`A[T.Ramp(i, 1, 4)]`, `B[t, T.Ramp(0, 1, 4)]`: a vector value, one load per lane."""
        from .vector import Vector

        if len(key) != self.ndim or any(isinstance(k, slice) for k in key):
            raise CompileError(f"buffer {self.name} has {self.ndim} dimensions; a vector index needs one index per "
                               f"dimension (no slices), got {len(key)}")
        return Vector([BufferLoad(self, idx) for idx in self.vector_lane_indices(key)], self.dtype)

    def vector_lane_indices(self, key) -> list[tuple]:
        """The scalar indices of each lane of a key holding vector indices (negative lanes of a
        T.Ramp count from the end, as TileLang legalises them: ir/vector.py)."""
        from .vector import is_vector, vector_indices, wrap_lane_index

        _, lanes = vector_indices(self, key)
        out = []
        for idx in lanes:
            row = []
            for k, i, d in zip(key, idx, self.shape):
                e = _index(from_end(i, d))
                if is_vector(k):
                    e = wrap_lane_index(e, d, k.is_ramp)
                row.append(e)
            out.append(tuple(row))
        return out

    @property
    def data(self) -> BufferData:
        """The storage handle (TileLang's `buf.data`): `T.Tensor(shape, dtype, buf.data)` is a
        view of this buffer's storage with another shape."""
        return BufferData(self)

    def load_var(self) -> BufferLoad:
        return BufferLoad(self, (Const(0, _dt.int32),))

    # A scalar `T.alloc_var` behaves as its value in expressions.
    def _v(self):
        if self.scope != "local.var":
            raise CompileError(
                f"buffer {self.name} used as a value; index it (e.g. {self.name}[i, j])"
            )
        return self.load_var()

    def __add__(self, o):
        return self._v() + o

    def __radd__(self, o):
        return o + self._v()

    def __sub__(self, o):
        return self._v() - o

    def __rsub__(self, o):
        return o - self._v()

    def __mul__(self, o):
        return self._v() * o

    def __rmul__(self, o):
        return o * self._v()

    def __truediv__(self, o):
        return self._v() / o

    def __rtruediv__(self, o):
        return o / self._v()

    def __floordiv__(self, o):
        return self._v() // o

    def __rfloordiv__(self, o):
        return o // self._v()

    def __mod__(self, o):
        return self._v() % o

    def __neg__(self):
        return -self._v()

    def __lt__(self, o):
        return self._v() < o

    def __le__(self, o):
        return self._v() <= o

    def __gt__(self, o):
        return self._v() > o

    def __ge__(self, o):
        return self._v() >= o

    def __and__(self, o):
        return self._v() & o

    def __or__(self, o):
        return self._v() | o

    def __lshift__(self, o):
        return self._v() << o

    def __rshift__(self, o):
        return self._v() >> o

    def astype(self, dtype):
        return self._v().astype(dtype)


def _dim(d):
    if isinstance(d, bool):
        raise TypeError("a dimension cannot be a bool")
    if isinstance(d, int):
        return d
    if hasattr(d, "item") and not isinstance(d, Expr):
        return int(d)
    if isinstance(d, Expr):
        v = const_value(d)
        if isinstance(v, int):
            return v
        return d

    raise CompileError(f"buffer dimension must be an int or a symbolic dimension, got {d!r}")


def from_end(k, dim):
    """A constant negative index counts from the end of its dimension, as in Python (TileLang
    legalises provably negative indices the same way); anything else is returned as it is."""
    v = k.value if isinstance(k, Const) and k.dtype.is_int else k
    if isinstance(v, int) and not isinstance(v, bool) and v < 0:
        if isinstance(dim, int):
            return v + dim
        return as_expr(dim) + v
    return k


def _index(k) -> Expr:
    if isinstance(k, Buffer) and k.scope == "local.var":
        return k.load_var()
    e = as_expr(k)
    if not e.dtype.is_int:
        raise CompileError(f"index {e} has type {e.dtype}; indices must be integers")
    return e


class BufferData:
    """What `buf.data` gives: a handle to a buffer's storage, for declaring views of it."""

    def __init__(self, buffer: Buffer):
        self.buffer = buffer

    def __repr__(self) -> str:
        return f"{self.buffer.name}.data"


class BufferRegion:
    """`buffer[start0:start0+extent0, ...]`: the operand of a tile operator."""

    def __init__(self, buffer: Buffer, region):
        self.buffer = buffer
        self.region = tuple((as_expr(s), e if isinstance(e, int) else _dim(e)) for s, e in region)

    @staticmethod
    def full(buffer: Buffer) -> BufferRegion:
        return BufferRegion(buffer, [(0, d) for d in buffer.shape])

    @staticmethod
    def from_key(buffer: Buffer, key) -> BufferRegion:
        if len(key) > buffer.ndim:
            raise CompileError(
                f"buffer {buffer.name} has {buffer.ndim} dimensions but is indexed with {len(key)}"
            )
        region = []
        for k, dim in itertools.zip_longest(key, buffer.shape):
            if k is None:
                region.append((0, dim))
            elif isinstance(k, slice):
                if k.step not in (None, 1):
                    # as TileLang ("buffer slice with step is not supported"): tile regions are dense
                    raise UnsupportedSyntaxError(f"slices of {buffer.name} must have step 1 (TileLang does not "
                                                 f"support buffer slices with a step either); got step {k.step}")
                start = 0 if k.start is None else from_end(k.start, dim)
                stop = dim if k.stop is None else from_end(k.stop, dim)
                ext = const_value(_sub(stop, start))
                if ext is None:
                    # the simplifier works on regions of buffers: it imports this module
                    from .simplify import simplify

                    ext = simplify(as_expr(stop) - as_expr(start))
                region.append((start, ext))
            else:
                region.append((_index(from_end(k, dim)), 1))
        return BufferRegion(buffer, region)

    @property
    def starts(self) -> tuple[Expr, ...]:
        return tuple(s for s, _ in self.region)

    @property
    def extents(self) -> tuple:
        return tuple(e for _, e in self.region)

    def __repr__(self) -> str:
        parts = []
        for s, e in self.region:
            parts.append(f"{s}:{s}+{e}" if not (isinstance(e, int) and e == 1) else f"{s}")
        return f"{self.buffer.name}[{', '.join(parts)}]"


def _sub(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a - b
    return as_expr(a) - as_expr(b)


