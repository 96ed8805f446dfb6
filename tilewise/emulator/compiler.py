"""Compiles thread IR once into Python closures, one per statement or expression node, each
operating on whole arrays over the lanes of a batch. Interpretation overhead is per IR node
executed, not per thread."""
from __future__ import annotations

import numpy as np

from ..ir import dtype as _dt
from ..ir import scalar_ops
from ..ir.buffer import Buffer
from ..ir.expr import BinOp, BufferLoad, Call, Cast, Compare, Const, Expr, Select, UnaryOp, Var
from ..ir.span import Span
from ..ir.stmt import (
    Allocate,
    Annotation,
    Break,
    BufferStore,
    Evaluate,
    For,
    IfThenElse,
    Kernel,
    LetStmt,
    SeqStmt,
    Stmt,
    While,
)
from . import arith, async_regs, calls, races
from .access import Access, scope_kind
from .errors import UnsupportedError, where
from .memory import (
    SharedShadow,
    Site,
    Storage,
    check_init,
    new_rows,
    resolve_pointers,
)


def _all_or_none(m: np.ndarray) -> np.ndarray | None:
    return None if m.all() else m


def _active_lanes(st) -> np.ndarray:
    return st.lanes if st.mask is None else np.flatnonzero(st.mask)


def _narrow(saved, cond) -> np.ndarray:
    return cond if saved is None else (saved & cond)


def needs_mask(e) -> bool:
    """Whether evaluating e on an inactive lane could fail or have an effect (loads, intrinsics)."""
    if isinstance(e, (BufferLoad, Call)):
        if isinstance(e, Call) and arith.math_fn(e.name, e.dtype, len(e.args)) is not None:
            return any(needs_mask(a) for a in e.args)
        return True
    if isinstance(e, Expr):
        return any(needs_mask(c) for c in e.children())
    return False


def contains_break(s: Stmt | None) -> bool:
    """A Break that leaves the innermost loop enclosing s (not one inside a nested loop)."""
    if s is None:
        return False
    if isinstance(s, Break):
        return True
    if isinstance(s, SeqStmt):
        return any(contains_break(x) for x in s.stmts)
    if isinstance(s, IfThenElse):
        return contains_break(s.then_body) or contains_break(s.else_body)
    return False


_TINY32 = np.float32(np.finfo(np.float32).tiny)


def _flush32(x):
    """.ftz on float32 values: subnormals become zeros of the same sign."""
    if getattr(x, "dtype", None) != np.float32:
        return x
    tiny = np.abs(x) < _TINY32
    if np.ndim(x) == 0:
        return np.copysign(np.float32(0), x) if tiny else x
    return np.where(tiny, np.copysign(np.float32(0), x), x)


def _ftz(fn, flush_result: bool = True):
    """fn with its float32 operands (and result) flushed to zero when subnormal."""
    if flush_result:
        return lambda *xs: _flush32(fn(*(_flush32(x) for x in xs)))
    return lambda *xs: fn(*(_flush32(x) for x in xs))


class Compiler:
    def __init__(self, prog):
        self.prog = prog
        self.span: Span | None = None
        self.ftz = getattr(prog, "fast_math", False)

    # ------------------------------------------------------------------ bookkeeping
    def slot(self, v: Var) -> int:
        return self.prog.var_slot(v)

    def buf_slot(self, b: Buffer) -> int:
        return self.prog.buf_slot(b)

    def writes_global(self, acc) -> None:
        """Note that the program writes the global buffer of `acc`: it gets a race shadow."""
        if acc.kind == "global":
            self.prog.global_writes.add(acc.slot)
            self.prog.global_granule[acc.slot] = acc.root.dtype.bytes

    def site(self, buf: Buffer, what: str) -> Site:
        return self.prog.new_site(buf, self.span, what)

    # ------------------------------------------------------------------ expressions
    def expr(self, e):
        if isinstance(e, (int, float, bool)):
            e = Const(e, _dt.int32 if isinstance(e, int) and not isinstance(e, bool) else (
                _dt.bool_ if isinstance(e, bool) else _dt.float32))
        m = getattr(self, "expr_" + type(e).__name__, None)
        if m is None:
            raise UnsupportedError(f"cannot execute expression {type(e).__name__} {e!r} at {where(self.span)}")
        return m(e)

    def expr_Const(self, e: Const):
        v = arith.const(e.value, e.dtype)
        return lambda st: v

    def expr_Var(self, e: Var):
        slot = self.slot(e)
        return lambda st: st.vals[slot]

    def expr_BinOp(self, e: BinOp):
        fa, fb = self.expr(e.a), self.expr(e.b)
        if e.op in ("and", "or"):
            return self._logical(e.op, fa, fb, needs_mask(e.b))
        try:
            fn = arith.binary_fn(e.op, e.dtype)
        except KeyError:
            raise UnsupportedError(f"operator {e.op} on {e.dtype} at {where(self.span)}") from None
        if self.ftz and e.dtype == _dt.float32:
            fn = _ftz(fn)
        if isinstance(e.a, Const) and isinstance(e.b, Const):
            v = fn(fa(None), fb(None))
            return lambda st: v
        return lambda st: fn(fa(st), fb(st))

    def _logical(self, op: str, fa, fb, lazy: bool):
        is_and = op == "and"
        combine = np.logical_and if is_and else np.logical_or

        if not lazy:
            return lambda st: combine(fa(st), fb(st))

        def f(st):
            # C's && and || do not evaluate the right side where the left decides
            a = fa(st)
            if np.ndim(a) == 0:
                if bool(a) == is_and:  # `and` with a true left side, `or` with a false one
                    return combine(a, fb(st))
                return a
            saved = st.mask
            m = _narrow(saved, a if is_and else ~a)
            if not m.any():
                return a
            st.mask = _all_or_none(m)
            try:
                b = fb(st)
            finally:
                st.mask = saved
            return combine(a, b)

        return f

    def expr_Compare(self, e: Compare):
        fa, fb = self.expr(e.a), self.expr(e.b)
        fn = arith.compare_fn(e.op, e.a.dtype)
        if self.ftz and e.a.dtype == _dt.float32:
            fn = _ftz(fn, flush_result=False)
        return lambda st: fn(fa(st), fb(st))

    def expr_UnaryOp(self, e: UnaryOp):
        fa = self.expr(e.a)
        fn = arith.unary_fn(e.op, e.a.dtype)
        if self.ftz and e.a.dtype == _dt.float32:
            fn = _ftz(fn)
        return lambda st: fn(fa(st))

    def expr_Cast(self, e: Cast):
        fa = self.expr(e.value)
        fn = arith.cast_fn(e.value.dtype, e.dtype)
        if self.ftz and e.value.dtype == _dt.float32 and e.dtype != _dt.float32:
            fn = _ftz(fn, flush_result=False)
        if isinstance(e.value, Const):
            v = fn(fa(None))
            return lambda st: v
        return lambda st: fn(fa(st))

    def expr_Select(self, e: Select):
        fc, fa, fb = self.expr(e.cond), self.expr(e.a), self.expr(e.b)
        zero = arith.const(0, e.dtype)
        if not (needs_mask(e.a) or needs_mask(e.b)):
            def eager(st):
                c = fc(st)
                if np.ndim(c) == 0:
                    return fa(st) if c else fb(st)
                return np.where(c, fa(st), fb(st))

            return eager

        def lazy(st):
            # only the chosen side is evaluated on each lane: the other may be out of bounds
            c = fc(st)
            if np.ndim(c) == 0:
                return fa(st) if c else fb(st)
            saved = st.mask
            try:
                m = _narrow(saved, c)
                if m.any():
                    st.mask = _all_or_none(m)
                    a = fa(st)
                else:
                    a = zero
                m = _narrow(saved, ~c)
                if m.any():
                    st.mask = _all_or_none(m)
                    b = fb(st)
                else:
                    b = zero
            finally:
                st.mask = saved
            return np.where(c, a, b)

        return lazy

    def expr_BufferLoad(self, e: BufferLoad):
        acc = Access(self, e.buffer, e.indices, "read")
        load = getattr(self, "_load_" + acc.kind)(acc)
        if e.buffer.dtype.kind == "tfloat":  # a tf32 read ignores the low 13 bits (tw_cuda.h's tf32)
            return lambda st: scalar_ops.tf32_read(load(st))
        return load

    def _load_global(self, acc: Access):
        slot, npdt, base = acc.slot, acc.npdt, acc.base

        sid, esize = acc.site.sid, acc.esize

        def load(st):
            off = acc.offset(st)
            storage = st.store[slot]
            if storage.shadow is not None:
                lanes = st.lanes if st.mask is None else np.flatnonzero(st.mask)
                o = off if np.ndim(off) == 0 else off[lanes]
                races.global_access(st, storage, (o + base) * esize, esize, lanes, sid, False)
            arr = storage.typed(npdt)[0]
            return arr[off + base]

        return load

    def _load_pointer(self, acc: Access):
        """A tensor at a run-time address (T.make_tensor from a pointer table): each active
        lane's element, checked against the tensor's shape, is read from the argument tensor
        its address lies in (memory.resolve_pointers). Not race-checked."""
        npdt, esize, faddr, site = acc.npdt, acc.esize, acc.faddr, acc.site

        def load(st):
            off = acc.offset(st)
            addr = np.broadcast_to(np.asarray(faddr(st), np.int64) + np.asarray(off, np.int64) * esize, (st.L,))
            lanes = st.lanes if st.mask is None else np.flatnonzero(st.mask)
            out = np.zeros(st.L, npdt)
            if lanes.size:
                slots, elem = resolve_pointers(st, site, addr[lanes], esize, lanes)
                for slot in np.unique(slots):
                    m = slots == slot
                    out[lanes[m]] = st.store[int(slot)].typed(npdt)[0][elem[m]]
            return out

        return load

    def _load_shared(self, acc: Access):
        slot, npdt, base, esize, sid = acc.slot, acc.npdt, acc.base, acc.esize, acc.site.sid
        shape = acc.shape

        def load(st):
            off = acc.offset(st) + base
            storage = st.store[slot]
            typed = storage.typed(npdt)
            if st.nb == 1 and np.ndim(off) == 0:
                val = typed[0, off]
            else:
                val = typed[st.lane_block, off]
            if st.banks is not None:
                st.banks.record(st, acc.site, "ld", off * esize, esize, _active_lanes(st))
            if storage.shadow is not None or storage.init is not None:
                act = st.active()
                lanes = st.lanes if act is None else act
                if lanes.size:
                    rows = st.lane_block[lanes]
                    o = off if np.ndim(off) == 0 else off[lanes]
                    flat = ((rows * storage.data.shape[1] + o * esize)[:, None] + np.arange(esize)).reshape(-1)
                    if storage.init is not None:
                        check_init(st, storage, acc.site, flat.reshape(-1, esize), lanes, shape)
                    if storage.shadow is not None:
                        races.on_read(st, storage, flat, np.repeat(st.lane_tid[lanes], esize), sid)
            return val

        return load

    def _load_local(self, acc: Access):
        slot, npdt, base, esize = acc.slot, acc.npdt, acc.base, acc.esize
        shape = acc.shape

        def load(st):
            off = acc.offset(st) + base
            storage = st.store[slot]
            typed = storage.typed(npdt)
            if storage.init is not None:
                act = st.active()
                lanes = st.lanes if act is None else act
                o = off if np.ndim(off) == 0 else off[lanes]
                flat = ((lanes * storage.data.shape[1] + o * esize)[:, None] + np.arange(esize))
                check_init(st, storage, acc.site, flat, lanes, shape)
            if storage.busy is not None:
                async_regs.check(st, storage, acc.site, off * esize, esize, "reads")
            if np.ndim(off) == 0:
                return typed[:, off].copy()
            return typed[st.lanes, off]

        return load

    def expr_Call(self, e: Call):
        fn = arith.math_fn(e.name, e.dtype, len(e.args))
        if fn is not None and self.ftz and e.dtype == _dt.float32:
            fn = _ftz(fn)
        if fn is not None:
            fargs = [self.expr(a) for a in e.args]
            if len(fargs) == 1:
                f0 = fargs[0]
                return lambda st: fn(f0(st))
            if len(fargs) == 3:  # ir/directed64.py's dfma_rz ...
                f0, f1, f2 = fargs
                return lambda st: fn(f0(st), f1(st), f2(st))
            f0, f1 = fargs
            return lambda st: fn(f0(st), f1(st))
        return calls.compile_call(self, e)

    # ------------------------------------------------------------------ statements
    def stmt(self, s: Stmt | None):
        if s is None:
            return None
        saved = self.span
        if getattr(s, "span", None) is not None:
            self.span = s.span
        try:
            m = getattr(self, "stmt_" + type(s).__name__, None)
            if m is None:
                raise UnsupportedError(f"cannot execute statement {type(s).__name__} at {where(self.span)}")
            return m(s)
        finally:
            self.span = saved

    def stmt_SeqStmt(self, s: SeqStmt):
        fns = [f for f in (self.stmt(x) for x in s.stmts) if f is not None]
        if not fns:
            return None
        if len(fns) == 1:
            return fns[0]
        if len(fns) == 2:
            f0, f1 = fns

            def seq2(st):
                f0(st)
                f1(st)

            return seq2

        def seq(st):
            for f in fns:
                f(st)

        return seq

    def stmt_Annotation(self, s: Annotation):
        return None

    def stmt_Evaluate(self, s: Evaluate):
        if isinstance(s.value, Call):
            return self.expr(s.value)
        if isinstance(s.value, Const):
            return None
        f = self.expr(s.value)
        return f

    def stmt_LetStmt(self, s: LetStmt):
        slot = self.slot(s.var)
        fv = self.expr(s.value)

        def let(st):
            st.vals[slot] = fv(st)

        return let

    def stmt_BufferStore(self, s: BufferStore):
        fv = self.expr(s.value)
        acc = Access(self, s.buffer, s.indices, "write")
        return getattr(self, "_store_" + acc.kind)(acc, fv)

    def _store_global(self, acc: Access, fv):
        slot, npdt, base = acc.slot, acc.npdt, acc.base
        sid, esize = acc.site.sid, acc.esize
        self.writes_global(acc)

        def store(st):
            v = fv(st)
            off = acc.offset(st) + base
            storage = st.store[slot]
            arr = storage.typed(npdt)[0]
            mask = st.mask
            if storage.shadow is not None:
                lanes = st.lanes if mask is None else np.flatnonzero(mask)
                vals = np.broadcast_to(np.asarray(v, npdt), (st.lanes.size,))[lanes] if np.ndim(v) else \
                    np.full(lanes.size, v, npdt)
                races.global_access(st, storage, (off if np.ndim(off) == 0 else off[lanes]) * esize, esize, lanes,
                                    sid, True, data=vals.view(np.uint8).reshape(lanes.size, esize))
            if np.ndim(off) == 0:
                if np.ndim(v) == 0:
                    if mask is None or mask.any():
                        arr[off] = v
                else:
                    lanes = st.lanes if mask is None else np.flatnonzero(mask)
                    if lanes.size:
                        arr[off] = v[lanes[-1]]
                return
            if mask is None:
                arr[off] = v
            elif np.ndim(v) == 0:
                arr[off[mask]] = v
            else:
                arr[off[mask]] = v[mask]

        return store

    def _store_pointer(self, acc: Access, fv):
        """A store into a tensor at a run-time address: see _load_pointer. Lanes storing to the
        same element apply in lane order (the last one stays)."""
        npdt, esize, faddr, site = acc.npdt, acc.esize, acc.faddr, acc.site

        def store(st):
            v = np.broadcast_to(np.asarray(fv(st), npdt), (st.L,))
            off = acc.offset(st)
            addr = np.broadcast_to(np.asarray(faddr(st), np.int64) + np.asarray(off, np.int64) * esize, (st.L,))
            lanes = st.lanes if st.mask is None else np.flatnonzero(st.mask)
            if lanes.size:
                slots, elem = resolve_pointers(st, site, addr[lanes], esize, lanes)
                for slot in np.unique(slots):
                    m = slots == slot
                    st.store[int(slot)].typed(npdt)[0][elem[m]] = v[lanes[m]]

        return store

    def _store_shared(self, acc: Access, fv):
        slot, npdt, base, esize, sid = acc.slot, acc.npdt, acc.base, acc.esize, acc.site.sid

        def store(st):
            v = fv(st)
            off = acc.offset(st) + base
            storage = st.store[slot]
            typed = storage.typed(npdt)
            act = st.active()
            lanes = st.lanes if act is None else act
            if lanes.size == 0:
                return
            rows = st.lane_block[lanes]
            o = off if np.ndim(off) == 0 else off[lanes]
            if st.banks is not None:
                st.banks.record(st, acc.site, "st", off * esize, esize, lanes)
            if storage.shadow is not None or storage.init is not None:
                flat = ((rows * storage.data.shape[1] + o * esize)[:, None] + np.arange(esize)).reshape(-1)
                if storage.shadow is not None:
                    def written(v=v, lanes=lanes):  # the bytes each lane stores (lanes x esize, flattened)
                        w = np.broadcast_to(np.asarray(v if np.ndim(v) == 0 else v[lanes]).astype(npdt), lanes.shape)
                        return np.ascontiguousarray(w).view(np.uint8).reshape(-1)

                    races.on_write(st, storage, flat, np.repeat(st.lane_tid[lanes], esize), sid, new=written)
                if storage.init is not None:
                    storage.init.reshape(-1)[flat] = True
            typed[rows, o] = v if np.ndim(v) == 0 else v[lanes]

        return store

    def _store_local(self, acc: Access, fv):
        slot, npdt, base, esize = acc.slot, acc.npdt, acc.base, acc.esize

        def store(st):
            v = fv(st)
            off = acc.offset(st) + base
            storage = st.store[slot]
            typed = storage.typed(npdt)
            mask = st.mask
            if storage.busy is not None:
                async_regs.check(st, storage, acc.site, off * esize, esize, "writes")
            if mask is None and np.ndim(off) == 0:
                typed[:, off] = v
                if storage.init is not None:
                    storage.init[:, off * esize:(off + 1) * esize] = True
                return
            lanes = st.lanes if mask is None else np.flatnonzero(mask)
            o = off if np.ndim(off) == 0 else off[lanes]
            typed[lanes, o] = v if np.ndim(v) == 0 else v[lanes]
            if storage.init is not None:
                storage.init[lanes[:, None], (np.asarray(o) * esize)[..., None] + np.arange(esize)] = True

        return store

    def stmt_Allocate(self, s: Allocate):
        buf = s.buffer
        kind = scope_kind(buf)
        if kind == "global" and buf.base is None:
            raise UnsupportedError(f"allocation of global buffer {buf.name} inside a kernel at {where(self.span)}")
        finit = self.expr(s.init) if s.init is not None else None
        npdt = arith.np_dtype(buf.dtype)
        if buf.base is not None:
            # a view of an allocation (shared memory planning, T.view / T.reshape of a tensor):
            # the root owns the bytes
            rslot = self.buf_slot(buf.root)
            name = buf.name

            def view(st):
                if st.store[rslot] is None:
                    raise UnsupportedError(f"view {name} used before its base {buf.root.name} is allocated at {where(s.span)}")

            return view
        shape = buf.static_shape()
        if shape is None:
            raise UnsupportedError(f"{buf.scope} buffer {buf.name} has a dynamic shape {buf.shape}")
        slot = self.buf_slot(buf)
        nbytes = int(np.prod(shape, dtype=np.int64)) * buf.dtype.bytes
        name = buf.name

        def alloc(st):
            if st.store[slot] is None:
                rows = st.nb if kind == "shared" else st.L
                storage = Storage(name, kind, new_rows(rows, nbytes), nbytes)
                if st.check_uninit:
                    storage.init = np.zeros(storage.data.shape, bool)
                if kind == "shared":
                    if st.check_races:
                        storage.shadow = SharedShadow(rows, storage.data.shape[1])
                        if st.sync.order is not None:
                            storage.shadow.enable_order()
                    st.shared.append(storage)
                st.store[slot] = storage
            if finit is not None:
                storage = st.store[slot]
                v = finit(st)
                typed = storage.typed(npdt)
                n = nbytes // buf.dtype.bytes
                if st.unit is not None and kind == "local":
                    # a scheduled unit initialises its own lanes' registers only
                    lanes = np.flatnonzero(st.mask)
                    typed[lanes, :n] = v if np.ndim(v) == 0 else v[lanes, None]
                    if storage.init is not None:
                        storage.init[lanes, :nbytes] = True
                    return
                if np.ndim(v) == 0:
                    typed[:, :n] = v
                else:
                    typed[:, :n] = v[:, None] if kind == "local" else v[0]
                if storage.init is not None:
                    storage.init[:, :nbytes] = True

        return alloc

    def stmt_IfThenElse(self, s: IfThenElse):
        fc = self.expr(s.cond)
        ft = self.stmt(s.then_body)
        fe = self.stmt(s.else_body)
        brk = contains_break(s.then_body) or contains_break(s.else_body)

        def if_(st):
            c = fc(st)
            if np.ndim(c) == 0:
                if c:
                    if ft is not None:
                        ft(st)
                elif fe is not None:
                    fe(st)
                return
            saved = st.mask
            try:
                if ft is not None:
                    m = _narrow(saved, c)
                    if m.any():
                        st.mask = _all_or_none(m)
                        ft(st)
                if fe is not None:
                    m = _narrow(saved, ~c)
                    if brk and st.loop_exit is not None:
                        m = m & ~st.loop_exit
                    if m.any():
                        st.mask = _all_or_none(m)
                        fe(st)
            finally:
                st.mask = saved
            if brk and st.loop_exit is not None:
                st.mask = _all_or_none(_narrow(saved, ~st.loop_exit))

        return if_

    def stmt_Break(self, s: Break):
        def brk(st):
            if st.loop_exit is None:
                raise UnsupportedError(f"break outside a loop at {where(s.span)}")
            m = st.mask
            if m is None:
                st.loop_exit[:] = True
            else:
                st.loop_exit |= m
            st.mask = np.zeros(st.L, bool)

        return brk

    def stmt_For(self, s: For):
        if s.kind not in ("serial", "unroll", "vectorized"):
            raise UnsupportedError(
                f"a {s.kind} loop over {s.var.name} at {where(s.span)} is not thread IR (only serial, unroll and "
                "vectorized loops remain after lowering)"
            )
        slot = self.slot(s.var)
        vdt = arith.np_dtype(s.var.dtype)
        fstart, fext = self.expr(s.start), self.expr(s.extent)
        body = self.stmt(s.body)
        has_break = contains_break(s.body)
        if body is None:
            return None
        if isinstance(s.start, Const) and isinstance(s.extent, Const) and not has_break:
            values = [np.asarray(i, dtype=vdt)[()] for i in range(s.start.value, s.start.value + s.extent.value)]

            def const_loop(st):
                vals = st.vals
                for v in values:
                    vals[slot] = v
                    body(st)

            return const_loop

        def loop(st):
            a = fstart(st)
            n = fext(st)
            if np.ndim(a) == 0 and np.ndim(n) == 0 and not has_break:
                vals = st.vals
                for i in range(int(a), int(a) + int(n)):
                    vals[slot] = np.asarray(i, dtype=vdt)[()]
                    body(st)
                return
            masked_loop(st, a, n, slot, vdt, body, has_break)

        return loop

    def stmt_While(self, s: While):
        fc = self.expr(s.cond)
        body = self.stmt(s.body)
        has_break = contains_break(s.body)

        def while_(st):
            saved, saved_exit = st.mask, st.loop_exit
            if has_break:
                st.loop_exit = np.zeros(st.L, bool)
            active = saved
            try:
                while True:
                    st.mask = active
                    c = fc(st)
                    if np.ndim(c) == 0:
                        if not c:
                            break
                    else:
                        m = _narrow(active, c)
                        if not m.any():
                            break
                        active = _all_or_none(m)
                        st.mask = active
                    if body is not None:
                        body(st)
                    if has_break:
                        m = _narrow(active, ~st.loop_exit)
                        if not m.any():
                            break
                        active = _all_or_none(m)
            finally:
                st.mask, st.loop_exit = saved, saved_exit

        return while_

    def stmt_Kernel(self, s: Kernel):
        raise UnsupportedError(f"a kernel launched inside a kernel at {where(s.span)}")


def masked_loop(st, a, n, slot, vdt, body, has_break):
    """A loop whose bounds differ between lanes: lane l runs iterations start_l .. start_l + n_l;
    the mask drops lanes whose loop has ended (or that left it with break)."""
    saved, saved_exit = st.mask, st.loop_exit
    L = st.L
    a_arr = np.broadcast_to(a, (L,)) if np.ndim(a) == 0 else a
    n_arr = np.broadcast_to(n, (L,)) if np.ndim(n) == 0 else n
    act = st.lanes if saved is None else np.flatnonzero(saved)
    if act.size == 0:
        return
    nmax = int(n_arr[act].max())
    if has_break:
        st.loop_exit = np.zeros(L, bool)
    try:
        for k in range(max(nmax, 0)):
            m = k < n_arr
            if saved is not None:
                m = m & saved
            if has_break:
                m = m & ~st.loop_exit
            if not m.any():
                break
            st.mask = _all_or_none(m)
            st.vals[slot] = arith.astype(a_arr + k, vdt) if np.ndim(a) else np.asarray(int(a) + k, dtype=vdt)[()]
            body(st)
    finally:
        st.mask, st.loop_exit = saved, saved_exit
