"""T.Pipelined's schedule arguments (`order=`, `stage=`, `group=`), checked against the loop body
and turned into one (stage, order) per statement for inject_pipeline.

TileLang's meaning (its warp-specialising rewriter and software-pipeline injection):

- `group=[[0], [1, 2], ...]` cuts the body into consecutive runs of statements, each one unit of
  the schedule; `order=` and `stage=` then have one entry per group, and a group's statements
  keep their order inside it. Without `group=`, every statement is its own unit.
- A unit at stage s works, in pipelined iteration `it`, on iteration `it - s` of the original
  loop; within one pipelined iteration the units are issued by increasing `order`.
- `-1` (in both lists) marks a group of copies from global into shared memory that the
  warp-specialised producer issues, ahead of the consumers by as many buffers as num_stages
  allows. The other groups are the consumers' software pipeline.

Internally stage 0 is the producers' (the copies filling shared tiles, which get one buffer per
stage), so in the -1 form a consumer stage s becomes s + 1. A schedule must preserve every
dependence of the loop through the tiles that are not multi-buffered (fragments, locals and shared
tiles computed inside the loop): `check_dependences` rejects one that does not, naming the
statements and the buffer."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import CompileError
from ..ir.stmt import For


@dataclass
class Schedule:
    stage: list[int]  # per statement; 0 = the producers
    order: list[int] | None  # per statement, or None: body order
    producer_form: bool  # TileLang's warp-specialised form: the producers were marked -1


def has_producer_form(f: For) -> bool:
    """The loop's schedule marks its copies -1 (TileLang's warp-specialised form)."""
    return any(x == -1 for name in ("order", "stage") for x in (f.annotations.get(name) or []))


def resolve_schedule(f: For, stmts: list, is_filler) -> Schedule | None:
    """The per-statement schedule of a pipelined loop with `order=`/`stage=`/`group=`, or None
    when it has none. `is_filler(stmt)` says whether a statement only fills shared tiles from
    global memory (what a -1 group must be)."""
    order = f.annotations.get("order")
    stage = f.annotations.get("stage")
    group = f.annotations.get("group")
    n = len(stmts)
    if order is None and stage is None and group is None:
        return None
    if group is None:
        for name, lst in (("stage", stage), ("order", order)):
            if lst is not None and len(lst) != n:
                raise CompileError(f"T.Pipelined: {name}= has {len(lst)} entries but the loop body has {n} "
                                   "statements (give one per statement, or group= the statements)", f.span)
        group = [[i] for i in range(n)]
    else:
        flat = [i for g in group for i in g]
        if any(not g for g in group) or flat != list(range(n)):
            raise CompileError(f"T.Pipelined: group={group}: the loop body has {n} statements (0 to {n - 1}); the "
                               "groups must be non-empty runs of consecutive statements that list each statement "
                               "once, in body order", f.span)
    units = len(group)
    u_stage = list(stage) if stage is not None else None
    u_order = list(order) if order is not None else None
    producer_form = has_producer_form(f)
    if producer_form:
        if u_stage is None or u_order is None:
            raise CompileError("T.Pipelined: -1 entries (copies issued by the warp-specialised producer) need both "
                               "order= and stage=", f.span)
        for g, (st, od) in enumerate(zip(u_stage, u_order)):
            if (st == -1) != (od == -1):
                raise CompileError(f"T.Pipelined: group {g} ({group[g]}) has stage {st} and order {od}: a producer "
                                   "group is -1 in both stage= and order=, any other group >= 0 in both", f.span)
            if st == -1:
                bad = [i for i in group[g] if not is_filler(stmts[i])]
                if bad:
                    raise CompileError(f"T.Pipelined: stage=-1 marks group {g} as copies the producer issues, but "
                                       f"statement {bad[0]} does not only fill shared tiles from global memory",
                                       stmts[bad[0]].span or f.span)
        consumers = [g for g in range(units) if u_stage[g] != -1]
        if not consumers:
            raise CompileError("T.Pipelined: every group is marked -1 (a producer); nothing consumes the copies",
                               f.span)
    if u_order is not None:
        used = [o for o in u_order if o != -1]
        if len(set(used)) != len(used):
            raise CompileError(f"T.Pipelined: order={u_order}: two units have the same order", f.span)
    st_of = [0] * n
    od_of: list[int] | None = [0] * n if u_order is not None else None
    for g, members in enumerate(group):
        st = u_stage[g] if u_stage is not None else None
        for pos, i in enumerate(members):
            if st is not None:
                st_of[i] = 0 if st == -1 else st + (1 if producer_form else 0)
            if od_of is not None:
                # units by their order, a group's statements in body order inside it
                od_of[i] = (u_order[g], pos)
    if u_stage is None:
        return Schedule(None, _rank(od_of), producer_form)
    return Schedule(st_of, _rank(od_of) if od_of is not None else None, producer_form)


def _rank(keys):
    if keys is None:
        return None
    ranked = sorted(range(len(keys)), key=lambda i: (keys[i], i))
    out = [0] * len(keys)
    for r, i in enumerate(ranked):
        out[i] = r
    return out


def check_dependences(f: For, stmts: list, stage: list[int], order: list[int] | None, accesses,
                      skip: set) -> None:
    """Every pair of statements A before B in the body that touch a common buffer (one writing
    it) must keep their order for all iterations once statement i of iteration k runs as
    (k + stage[i], order[i]). B(k) after A(k) and before A(k + 1) holds when
    stage[B] == stage[A] with A ordered first, or stage[B] == stage[A] + 1 with B ordered first;
    anything else would need a buffer per stage, which only the producers' tiles (`skip`) have.
    Global memory is left out: its accesses are per-iteration regions. `accesses(stmt)` gives
    (reads, writes) as sets of buffers."""
    if order is None:
        order = list(range(len(stmts)))
    rw = [accesses(s) for s in stmts]
    for a in range(len(stmts)):
        for b in range(a + 1, len(stmts)):
            ra, wa = rw[a]
            rb, wb = rw[b]
            common = (wa & (rb | wb)) | (ra & wb)
            common = {x for x in common if x not in skip and x.scope != "global"}
            if not common:
                continue
            d = stage[b] - stage[a]
            if (d == 0 and order[a] < order[b]) or (d == 1 and order[b] < order[a]):
                continue
            name = sorted(x.name for x in common)[0]
            why = ("it would be overwritten by the next iteration before it is read" if d >= 1 else
                   "it would be read before it is written" if d < 0 else "the order runs them backwards")
            raise CompileError(
                f"T.Pipelined: stage=/order= break the dependence of statement {b} on statement {a} through {name} "
                f"(stages {stage[a]} and {stage[b]}, issued {'first' if order[a] < order[b] else 'second'} and "
                f"{'second' if order[a] < order[b] else 'first'}): {why}; a statement may run at most one stage "
                "after one it depends on (ordered before it then), or in the same stage ordered after it",
                stmts[b].span or f.span)
