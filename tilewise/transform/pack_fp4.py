"""fp4 (`float4_e2m1fn`) buffers stored packed, two values per byte, as TileLang stores them.

Until here an fp4 buffer is addressed by element like any other. This pass, late in both
pipelines (after layouts and tile operators are lowered, before shared memory is planned), gives
every fp4 buffer byte storage of half its elements: element e of the buffer (its flattened
offset) is the low nibble of byte e // 2 when e is even and the high nibble when it is odd
(TileLang's `fp4_e2_2_t` x() / y(); torch.float4_e2m1fn_x2's order).

- shared tiles and per-thread arrays (fragments after lowering, T.alloc_local) become `uint8`
  buffers of ceil(n / 2) bytes; a global fp4 parameter keeps its logical shape (arguments bind
  from it) and is read and written through a `uint8` view of its bytes (`<name>_bytes`), which
  is what the caller passes (jit/args.py hands the kernel the packed bytes).
- an element load extracts its nibble and reinterprets it as fp4.
- stores: a loop storing consecutive elements from an even offset is rewritten to store whole
  bytes, each pairing two elements (what TileLang's vectorised fp4x2 stores do), and vector
  stores / copies (`store_vec`, `copy_vec`, `cp_async`) move half the bytes. Any other element
  store is a read-modify-write of its byte: exact for one thread, but two threads writing the
  two nibbles of one byte race, as TileLang's scalar `tl_fp4_packed_store` does; the emulator
  reports such a race in shared memory (docs/API.md).

An address of an fp4 element taken for anything else (ldmatrix, atomics, TMA) is a CompileError:
those would read the elements as bytes."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer
from ..ir.expr import BinOp, BufferLoad, Call, Cast, Const, Expr, Var, as_expr
from ..ir.simplify import simplify
from ..ir.stmt import Allocate, BufferStore, Evaluate, For, IfThenElse, Kernel, PrimFunc, SeqStmt, seq
from ..ir.visitor import Mutator, Visitor, substitute, uses_var

_U8 = _dt.uint8
_I32 = _dt.int32


def is_fp4(dt) -> bool:
    return getattr(dt, "kind", None) == "float4"


def parity(e) -> int | None:
    """0 if the integer expression is provably even, 1 if provably odd, None if unknown."""
    if isinstance(e, int):
        return e & 1
    if isinstance(e, Const):
        return int(e.value) & 1 if isinstance(e.value, int) else None
    if isinstance(e, Cast) and e.dtype.is_int and e.value.dtype.is_int:
        return parity(e.value)
    if isinstance(e, BinOp):
        pa, pb = parity(e.a), parity(e.b)
        if e.op in ("add", "sub"):
            return None if pa is None or pb is None else (pa + pb) & 1
        if e.op == "mul":
            if pa == 0 or pb == 0:
                return 0
            return None if pa is None or pb is None else pa & pb
        if e.op == "shl" and isinstance(e.b, Const):
            return 0 if e.b.value >= 1 else pa
        if e.op == "bitand":
            if pa == 0 or pb == 0:
                return 0
            return None if pa is None or pb is None else pa & pb
    return None


def flat_offset(b: Buffer, indices) -> Expr:
    """The element offset of `indices` in `b` (its strides: row-major unless a T.StridedTensor)."""
    out: Expr = Const(0, _I32)
    for i, s in zip(indices, b.strides()):
        out = out + as_expr(i) * as_expr(s)
    return simplify(out)


def _bits(v: Expr) -> Expr:
    """The four code bits of an fp4 value, as an int32."""
    if not is_fp4(v.dtype):
        v = Cast(v, _dt.float4_e2m1fn)
    return Cast(Call("reinterpret", [v], _U8), _I32) & Const(15, _I32)


def pack_pair(lo: Expr, hi: Expr) -> Expr:
    """One byte holding two fp4 values, `lo` in the low nibble."""
    return Cast(_bits(lo) | (_bits(hi) << Const(4, _I32)), _U8)


def _nibble_shift(e: Expr) -> Expr:
    p = parity(e)
    if p is not None:
        return Const(4 * p, _I32)
    return simplify((e % 2) * 4)


class _Packer(Mutator):
    def __init__(self, params):
        self.params = [p for p in params if isinstance(p, Buffer) and is_fp4(p.dtype) and p.base is None]
        self.mapping: dict = {}  # fp4 buffer (or a view of one) -> its byte buffer

    # ------------------------------------------------------------------ buffers
    def packed(self, b: Buffer) -> Buffer:
        """The byte storage standing for `b` (b itself when it is not fp4 and not a view of fp4)."""
        got = self.mapping.get(b)
        if got is not None:
            return got
        if _is_scalar_var(b):
            return b  # a T.alloc_var is one register, not addressed memory
        base = self.packed(b.base) if b.base is not None else None
        if not is_fp4(b.dtype):
            if base is b.base:
                return b
            # a view of fp4 storage (T.view(fp4 tile, dtype=uint8)): the same bytes, now packed
            out = Buffer(b.name, b.shape, b.dtype, b.scope, base=base, span=b.span)
            out.byte_offset = b.byte_offset
            out.base_align = b.base_align
            self.mapping[b] = out
            return out
        if b.is_global and b.base is None:
            out = Buffer(f"{b.name}_bytes", (self._global_bytes(b),), _U8, "global", base=b, span=b.span)
        else:
            n = b.numel()
            nbytes = (n + 1) // 2 if isinstance(n, int) else simplify((as_expr(n) + 1) // 2)
            out = Buffer(b.name, (nbytes,), _U8, b.scope, base=base, span=b.span)
            out.byte_offset = b.byte_offset // 2 if base is not None and _packs(b.base) else b.byte_offset
            out.base_align = b.base_align
        out.packed_fp4 = True
        self.mapping[b] = out
        return out

    @staticmethod
    def _global_bytes(b: Buffer):
        span: Expr = Const(1, _I32)
        for d, s in zip(b.shape, b.strides()):
            span = span + (as_expr(d) - 1) * as_expr(s)
        v = simplify((span + 1) // 2)
        return int(v.value) if isinstance(v, Const) else v

    def _touches(self, b: Buffer) -> bool:
        return self.packed(b) is not b

    # ------------------------------------------------------------------ loads
    def visit_BufferLoad(self, e: BufferLoad):
        indices = self._indices(e.indices)
        b = e.buffer
        if not self._touches(b):
            if all(a is c for a, c in zip(indices, e.indices)):
                return e
            return BufferLoad(b, indices, e.span)
        pb = self.packed(b)
        if not is_fp4(b.dtype):
            return BufferLoad(pb, indices, e.span)
        off = flat_offset(b, indices)
        byte = BufferLoad(pb, [simplify(off // 2)], e.span)
        sh = _nibble_shift(off)
        nib = Cast(byte, _I32)
        if not (isinstance(sh, Const) and sh.value == 0):
            nib = nib >> sh
        return Call("reinterpret", [Cast(nib & Const(15, _I32), _U8)], b.dtype)

    def _indices(self, indices) -> list:
        """Visited indices; an index some pass left a plain Python int becomes a constant (the
        visitor only walks expressions)."""
        return [self.visit(i) if isinstance(i, Expr) else Const(int(i), _I32) for i in indices]

    # ------------------------------------------------------------------ stores
    def _rmw(self, b: Buffer, indices, value: Expr, span) -> BufferStore:
        pb = self.packed(b)
        off = flat_offset(b, indices)
        idx = simplify(off // 2)
        sh = _nibble_shift(off)
        old = Cast(BufferLoad(pb, [idx], span), _I32)
        keep = Const(0xF0, _I32) >> sh
        new = (old & keep) | (_bits(value) << sh)
        return BufferStore(pb, [idx], Cast(new, _U8), span)

    def visit_BufferStore(self, s: BufferStore):
        indices = self._indices(s.indices)
        value = self.visit(s.value)
        b = s.buffer
        if not self._touches(b):
            if value is s.value and all(a is c for a, c in zip(indices, s.indices)):
                return s
            return BufferStore(b, indices, value, s.span)
        if not is_fp4(b.dtype):
            return BufferStore(self.packed(b), indices, value, s.span)
        return self._rmw(b, indices, value, s.span)

    def visit_SeqStmt(self, s: SeqStmt):
        """Two consecutive stores of one fp4 byte's two values (T.fill, element copies by pairs):
        one store of the whole byte."""
        out, stmts, k = [], s.stmts, 0
        while k < len(stmts):
            a = stmts[k]
            b = stmts[k + 1] if k + 1 < len(stmts) else None
            merged = self._pair_of(a, b) if b is not None else None
            if merged is not None:
                out.append(merged)
                k += 2
                continue
            out.append(self.visit(a))
            k += 1
        return seq(out)

    def _pair_of(self, a, b):
        if not (isinstance(a, BufferStore) and isinstance(b, BufferStore) and a.buffer is b.buffer
                and is_fp4(a.buffer.dtype) and self._touches(a.buffer)):
            return None
        off_a, off_b = flat_offset(a.buffer, a.indices), flat_offset(b.buffer, b.indices)
        diff = simplify(off_b - off_a)
        if not (isinstance(diff, Const) and diff.value == 1 and parity(off_a) == 0):
            return None
        if uses_buffer(b.value, a.buffer):
            return None  # the second value reads the buffer the first store wrote
        lo, hi = self.visit(a.value), self.visit(b.value)
        idx = self._indices(a.indices)
        at = simplify(flat_offset(a.buffer, idx) // 2)
        return BufferStore(self.packed(a.buffer), [at], pack_pair(lo, hi), a.span)

    def visit_For(self, f: For):
        paired = self._paired(f)
        if paired is not None:
            return paired
        return self.generic_visit(f)

    def _paired(self, f: For):
        """`for v: B[e0 + v] = value(v)` over an even count from an even e0, B fp4: a loop over
        bytes, each written once with both of its values (no read-modify-write, no race)."""
        s, guards = f.body, []
        while isinstance(s, IfThenElse) and s.else_body is None and not uses_var(s.cond, f.var):
            guards.append(s)  # a guard the same for every iteration (a replica's): kept around the loop body
            s = s.then_body
        if not (isinstance(s, BufferStore) and is_fp4(s.buffer.dtype) and self._touches(s.buffer)):
            return None
        if not (isinstance(f.extent, Const) and f.extent.value % 2 == 0 and f.extent.value > 0):
            return None
        off = flat_offset(s.buffer, s.indices)
        if uses_var(simplify(off - f.var), f.var):
            return None
        for ld in _loads_of(s.value, s.buffer):  # both values are computed before the byte is stored:
            d = simplify(flat_offset(s.buffer, ld.indices) - off)  # only the element itself may be read
            if not (isinstance(d, Const) and d.value == 0):
                return None
        e0 = simplify(substitute(off, {f.var: f.start}))
        if parity(e0) != 0:
            return None
        w = Var(f.var.name, f.var.dtype)
        two = Const(2, f.var.dtype)
        lo_at = f.start + w * two
        lo = self.visit(substitute(s.value, {f.var: lo_at}))
        hi = self.visit(substitute(s.value, {f.var: lo_at + Const(1, f.var.dtype)}))
        if uses_var(e0, f.var):
            return None
        idx = simplify(e0 // 2 + w)
        body = BufferStore(self.packed(s.buffer), [idx], pack_pair(lo, hi), s.span)
        for g in reversed(guards):
            body = IfThenElse(self.visit(g.cond), body, None, g.span)
        return For(w, Const(0, f.var.dtype), Const(f.extent.value // 2, f.var.dtype), f.kind, body,
                   f.annotations, f.span)

    # ------------------------------------------------------------------ vector moves
    def _addr(self, a: Expr, what: str):
        """(address, fp4?) of an address_of(...) operand, the fp4 element moved to its byte."""
        if not (isinstance(a, Call) and a.name == "address_of" and isinstance(a.args[0], BufferLoad)):
            return self.visit(a), False
        load = a.args[0]
        b = load.buffer
        if not self._touches(b):
            return self.visit(a), False
        indices = self._indices(load.indices)
        pb = self.packed(b)
        if not is_fp4(b.dtype):
            return Call("address_of", [BufferLoad(pb, indices, load.span)], a.dtype, a.attrs), False
        off = flat_offset(b, indices)
        if parity(off) != 0:
            raise CompileError(f"{what} of fp4 buffer {b.name} at element {off}, which is not provably even: packed fp4 "
                               "(two values per byte) is moved in whole bytes")
        return Call("address_of", [BufferLoad(pb, [simplify(off // 2)], load.span)], a.dtype, a.attrs), True

    def visit_Evaluate(self, s: Evaluate):
        v = s.value
        if not isinstance(v, Call):
            return self.generic_visit(s)
        if v.name == "store_vec" and self._is_fp4_addr(v.args[0]):
            return self._store_vec(s, v)
        if v.name in ("copy_vec", "cp_async"):
            addrs = [self._is_fp4_addr(a) for a in v.args[:2]]
            if any(addrs):
                if not all(addrs):
                    raise CompileError(f"{v.name} between fp4 and another type: packed fp4 (two values per byte) "
                                       "can only be moved to and from fp4")
                dst, _ = self._addr(v.args[0], v.name)
                src, _ = self._addr(v.args[1], v.name)
                n = int(v.attrs.get("bytes", 16))
                if n % 2:
                    raise CompileError(f"{v.name} of an odd number ({n}) of fp4 values: packed fp4 is moved in whole bytes")
                attrs = dict(v.attrs, bytes=n // 2)
                rest = [self.visit(a) for a in v.args[2:]]
                if v.name == "cp_async":
                    if n // 2 not in (4, 8, 16):
                        raise CompileError(f"cp.async of {n} fp4 values ({n // 2} bytes): cp.async moves 4, 8 or 16 bytes")
                    rest = [simplify(as_expr(r) // 2) for r in rest]  # src_bytes counted fp4 values
                return Evaluate(Call(v.name, [dst, src, *rest], v.dtype, attrs), s.span)
        return self.generic_visit(s)

    def _is_fp4_addr(self, a) -> bool:
        return (isinstance(a, Call) and a.name == "address_of" and isinstance(a.args[0], BufferLoad)
                and is_fp4(a.args[0].buffer.dtype))

    def _store_vec(self, s: Evaluate, v: Call):
        load = v.args[0].args[0]
        b = load.buffer
        vals = [self.visit(a) for a in v.args[1:]]
        indices = self._indices(load.indices)
        off = flat_offset(b, indices)
        if len(vals) % 2 or parity(off) != 0:
            # element by element: one read-modify-write per value
            pb = self.packed(b)  # noqa: F841  (the mapping is made before the stores name it)
            last = len(b.shape) - 1
            stores = []
            for k, x in enumerate(vals):
                idx = list(indices)
                idx[last] = simplify(as_expr(idx[last]) + k)
                stores.append(self._rmw(b, idx, x, s.span))
            return seq(stores)
        pairs = [pack_pair(vals[k], vals[k + 1]) for k in range(0, len(vals), 2)]
        pb = self.packed(b)
        at = simplify(off // 2)
        if len(pairs) == 1:
            return BufferStore(pb, [at], pairs[0], s.span)
        return Evaluate(Call("store_vec", [Call("address_of", [BufferLoad(pb, [at], load.span)], v.args[0].dtype,
                                                v.args[0].attrs), *pairs], v.dtype, v.attrs), s.span)

    def visit_Call(self, e: Call):
        if e.name == "address_of" and self._is_fp4_addr(e):
            raise CompileError(f"the address of an element of fp4 buffer {e.args[0].buffer.name} is taken for an "
                               "operation that reads bytes (an intrinsic, atomic or TMA): fp4 is stored packed, two "
                               "values per byte; only copies, vector stores and element accesses handle it")
        return self.generic_visit(e)

    # ------------------------------------------------------------------ allocations
    def visit_Allocate(self, s: Allocate):
        b = s.buffer
        init = self.visit(s.init) if s.init is not None else None
        if not self._touches(b):
            return s if init is s.init else s.with_fields(init=init)
        if init is not None and is_fp4(b.dtype):
            raise CompileError(f"an initialised fp4 allocation ({b.name}): not supported with packed fp4 storage")
        return Allocate(self.packed(b), init, s.span)

    def visit_Kernel(self, k: Kernel):
        body = self.visit(k.body)
        views = [Allocate(self.mapping[p], None, k.span) for p in self.params if p in self.mapping]
        if views:
            body = seq([*views, body])
        return k.with_fields(body=body) if body is not k.body else k


def _loads_of(e, b: Buffer) -> list[BufferLoad]:
    found = []

    class _V(Visitor):
        def visit_BufferLoad(self, x):
            if x.buffer is b:
                found.append(x)
            self.generic_visit(x)

    _V().visit(e)
    return found


def uses_buffer(e, b: Buffer) -> bool:
    return bool(_loads_of(e, b))


def _packs(b: Buffer | None) -> bool:
    while b is not None:
        if is_fp4(b.dtype):
            return True
        b = b.base
    return False


class _UsesFp4(Visitor):
    def __init__(self):
        self.found = False

    def visit_BufferLoad(self, e):
        self.found = self.found or _packs(e.buffer)
        self.generic_visit(e)

    def visit_BufferStore(self, s):
        self.found = self.found or _packs(s.buffer)
        self.generic_visit(s)

    def visit_Allocate(self, s):
        self.found = self.found or _packs(s.buffer)
        self.generic_visit(s)


def _is_scalar_var(b: Buffer) -> bool:
    return b.scope == "local.var"


def pack_fp4(func: PrimFunc) -> PrimFunc:
    """Give every fp4 buffer packed storage (module docstring)."""
    finder = _UsesFp4()
    finder.visit(func.body)
    if not finder.found:
        return func
    packer = _Packer(func.params)
    return func.with_body(packer.visit(func.body))


__all__ = ["flat_offset", "is_fp4", "pack_fp4", "pack_pair", "parity"]
