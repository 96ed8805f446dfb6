"""mbarrier.* and the fences of the asynchronous proxy (PTX ISA, "Parallel Synchronization and
Communication Instructions: mbarrier", "membar / fence"). The barrier state and the scheduling of
waiting threads live in hopper.py; here are the instruction forms:

    mbarrier.init.shared{::cta}.b64 [addr], count;
    mbarrier.arrive{.expect_tx}{.sem}{.scope}.shared{::cta}.b64 state|_, [addr]{, count | txCount};
    mbarrier.arrive_drop{...}.b64 state|_, [addr]{, count};
    mbarrier.expect_tx / complete_tx{.sem}{.scope}.shared{::cta}.b64 [addr], txCount;
    mbarrier.test_wait / try_wait{.parity}{.sem}{.scope}.shared{::cta}.b64 p, [addr], parity|state{, hint};
    mbarrier.inval.shared{::cta}.b64 [addr];
    fence.proxy.async{.shared::cta}; fence.mbarrier_init.release.cluster; (other fences: no effect)

The `state` an arrive returns is the number of the phase it arrived in; a wait given a state
succeeds once that phase has completed. Addresses are .shared::cta addresses or generic ones
that point into shared memory."""
from __future__ import annotations

import numpy as np

from .decode import Mods, opcode, unsupported
from .errors import EmulatorError
from .hopper import hopper
from .ops_memory import resolve, split_generic
from .syntax import Imm, Reg

_SEM = ("relaxed", "release", "acquire", "acq_rel", "sem", "cta", "cluster", "gpu", "sys")


def shared_offsets(st, instr, reader, space: str, idx, nbytes: int = 8) -> np.ndarray:
    """Batch byte offsets of the executing threads' shared addresses (generic ones must point
    into shared memory)."""
    n = st.T if idx is None else len(idx)
    a = np.broadcast_to(st.take(reader(st), idx), (n,))
    if space == "generic":
        parts = split_generic(a)
        if len(parts) != 1 or parts[0][0] != "shared":
            raise EmulatorError(f"{instr.where()}: an mbarrier address outside shared memory")
        a = parts[0][2]
    _, flat = resolve(st, "shared", a, nbytes, instr, idx)
    return np.asarray(flat, dtype=np.int64)


def _values(st, reader, idx, n):
    return np.broadcast_to(np.asarray(st.take(reader(st), idx)).astype(np.int64), (n,))


@opcode("mbarrier")
def _mbarrier(ctx, instr):
    m = Mods(instr)
    op = m.take("init", "arrive", "arrive_drop", "expect_tx", "complete_tx", "test_wait", "try_wait", "inval")
    if op is None:
        raise unsupported(instr, "this mbarrier operation")
    expect = op in ("arrive", "arrive_drop") and m.flag("expect_tx")
    parity = m.flag("parity")
    for x in _SEM:
        m.take(x)
    space = m.take("shared", "shared::cta")
    if m.take("shared::cluster"):
        raise unsupported(instr, "mbarriers of other blocks of a cluster")
    if m.flag("noComplete"):
        raise unsupported(instr, ".noComplete")
    m.take_type(("b64",))
    m.done()
    space = "shared" if space else "generic"
    ops = list(instr.operands)
    what = f"mbarrier.{op}"

    if op in ("init", "expect_tx", "complete_tx", "inval"):
        raddr, _ = ctx.address(instr, ops[0])
        rval = ctx.src(instr, ops[1], "u32") if len(ops) > 1 else None

        def run(st):
            idx = st.idx()
            hs = hopper(st)
            flat = shared_offsets(st, instr, raddr, space, idx)
            n = len(flat)
            if op == "init":
                hs.init(hs.bar_index(flat, instr, what, init=True), _values(st, rval, idx, n), instr)
            elif op == "inval":
                hs.bar_init[hs.bar_index(flat, instr, what)] = False
            else:
                hs.expect_tx(hs.bar_index(flat, instr, what), _values(st, rval, idx, n), 1 if op == "expect_tx" else -1)

        return run

    if op in ("arrive", "arrive_drop"):
        d, a, *rest = ops
        raddr, _ = ctx.address(instr, a)
        rextra = ctx.src(instr, rest[0], "u32") if rest else None
        wd = ctx.dst_sel(instr, d, "b64")

        def arrive(st):
            idx = st.idx()
            hs = hopper(st)
            flat = shared_offsets(st, instr, raddr, space, idx)
            n = len(flat)
            bars = hs.bar_index(flat, instr, what)
            extra = _values(st, rextra, idx, n) if rextra is not None else None
            if expect:
                tx, count = extra, np.ones(n, dtype=np.int64)
            else:
                tx, count = np.zeros(n, dtype=np.int64), (extra if extra is not None else np.ones(n, dtype=np.int64))
            phase = hs.bar_phase[bars].astype(np.uint64)  # the state: the phase arrived in
            hs.arrive(bars, count, tx, instr, drop=op == "arrive_drop")
            if wd is not None:
                wd(st, idx, phase)

        return arrive

    # test_wait / try_wait
    p, a, token, *hint = ops
    if not isinstance(p, Reg) or p.special or p.decl.type != "pred":
        raise unsupported(instr, "a wait result that is not a predicate register")
    raddr, _ = ctx.address(instr, a)
    rtok = ctx.src(instr, token, "u32" if parity else "u64")
    wp = ctx.dst_sel(instr, p, "pred")

    def wait(st):
        idx = st.idx()
        hs = hopper(st)
        flat = shared_offsets(st, instr, raddr, space, idx)
        bars = hs.bar_index(flat, instr, what)
        tok = _values(st, rtok, idx, len(flat))
        if parity:
            done = hs.wait_done(bars, tok)
        else:
            done = hs.bar_phase[bars] > tok
        wp(st, idx, done)
        if not done.all():  # whether it suspends (try_wait) or not (test_wait), let the others run first
            tids = np.arange(st.T) if idx is None else idx
            fail = ~done
            hs.suspend(tids[fail], bars[fail], tok[fail] if parity else -1, instr)

    if hint and not isinstance(hint[0], (Imm, Reg)):
        raise unsupported(instr, "the suspend-time hint operand")
    return wait


@opcode("fence")
def _fence(ctx, instr):
    parts = instr.parts
    if len(parts) >= 3 and parts[1] == "proxy" and parts[2] == "async":
        rest = parts[3:]
        if rest not in ([], ["shared::cta"], ["shared::cluster"], ["global"]):
            raise unsupported(instr, "this fence.proxy.async form")
        if rest == ["global"]:
            return lambda st: None

        def fence_proxy(st):
            if st.hopper is not None:
                st.hopper.fence_proxy(st.idx())

        return fence_proxy
    if len(parts) >= 2 and parts[1] == "proxy" and parts[2:3] != ["async"]:
        raise unsupported(instr, "fences between proxies other than the async proxy")
    return lambda st: None  # ordering fences: a lockstep interpreter is sequentially consistent
