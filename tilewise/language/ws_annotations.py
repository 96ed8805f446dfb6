"""TileLang 0.1.15's annotations for its automatic warp-specialisation scheduler:
`T.annotate_ws_pipeline_depth({buffer: depth, ...})`, `with T.ws_op(op_id):` and
`T.annotate_ws_schedule(schedule)`.

tilewise has no automatic warp-specialisation pass (it specialises warps where the program says so:
T.ws / T.WarpSpecialize, and pipelines with T.Pipelined(num_stages=)). The pipeline depth is a
hint to that scheduler about buffers' multi-versioning and `T.ws_op` names statements for it; both
have no effect on results: accepted (the ws_op body is parsed as written) and said once, as the other TileLang keywords without effect (docs/API.md). A WSSchedule is a whole
program transformation written against TileLang's MaterializeWSSchedule pass (and its WS* classes,
which tilewise does not have): a CompileError rather than a schedule silently not applied."""
from __future__ import annotations

from ..errors import CompileError, OutsideKernelError, warn_once
from ..ir import builder as _builder
from ..ir.buffer import Buffer


def annotate_ws_pipeline_depth(depth_map: dict) -> None:
    """A pipeline-depth hint for TileLang's automatic warp specialisation: no effect in tilewise."""
    if _builder.current() is None:
        raise OutsideKernelError("T.annotate_ws_pipeline_depth can only be used in a @T.prim_func body")
    if not isinstance(depth_map, dict):
        raise CompileError(f"T.annotate_ws_pipeline_depth takes a dict {{buffer: depth}}, got {depth_map!r}")
    for buf, depth in depth_map.items():
        if not isinstance(buf, Buffer):
            raise CompileError(f"T.annotate_ws_pipeline_depth: the keys must be buffers, got {buf!r}")
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise CompileError(f"T.annotate_ws_pipeline_depth: pipeline depth must be a positive int, got {depth!r}")
    warn_once("annotate_ws_pipeline_depth",
              "T.annotate_ws_pipeline_depth has no effect: tilewise has no automatic warp-specialisation scheduler "
              "(pipeline depth follows T.Pipelined(num_stages=))")


def annotate_ws_schedule(schedule) -> None:
    raise CompileError("T.annotate_ws_schedule: tilewise does not implement TileLang's MaterializeWSSchedule "
                       "transformation (nor its WSSchedule classes); write the producer/consumer roles with "
                       "T.ws / T.WarpSpecialize and T.Pipelined instead")


class _WsOpFrame:
    """`with T.ws_op(op_id):` — the body, parsed as written."""

    def __init__(self, op_id: str):
        self.op_id = op_id

    def parse_with(self, parser, node, body) -> None:
        warn_once("ws_op", "T.ws_op has no effect: it names a statement for TileLang's automatic warp-specialisation "
                  "scheduler, which tilewise does not have; the body runs as written")
        parser.parse_scoped(body)


def ws_op(op_id: str) -> _WsOpFrame:
    """`with T.ws_op("id"):` a stable op id for TileLang's warp-specialisation scheduler (no effect here)."""
    if not isinstance(op_id, str):
        raise CompileError(f"T.ws_op takes a string id, got {op_id!r}")
    return _WsOpFrame(op_id)
