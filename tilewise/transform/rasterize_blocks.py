"""T.use_swizzle: remap the block indices so that consecutive blocks work on a panel of
neighbouring output tiles (their shared operands stay in cache)."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.expr import Var, binary
from ..ir.stmt import Annotation, Kernel, LetStmt, PrimFunc, SeqStmt, seq
from ..ir.visitor import Mutator, substitute


def _panel_map(major: Var, minor: Var, n_major, n_minor, panel: int):
    """Blocks are numbered minor-fastest; return (major', minor') walking panels of `panel`
    majors, minor-by-minor inside a panel."""
    lin = major * n_minor + minor
    per_panel = panel * n_minor
    p = lin // per_panel
    within = lin % per_panel
    height = binary("min", n_major - p * panel, panel)
    return p * panel + within % height, within // height


class _Rasterize(Mutator):
    def visit_Kernel(self, k: Kernel):
        stmts = k.body.stmts if isinstance(k.body, SeqStmt) else [k.body]
        ann = [s for s in stmts if isinstance(s, Annotation) and s.kind == "use_swizzle"]
        if not ann:
            return k
        if len(ann) > 1:
            raise CompileError("T.use_swizzle appears twice in one kernel", ann[1].span)
        if len(k.block_vars) < 2:
            # one grid dimension: a panel of rows of a one-row grid is the grid in its own
            # order (TileLang's rasterization2DRow/Column return blockIdx unchanged there)
            return k.with_fields(body=seq([s for s in stmts if s is not ann[0]]))
        panel, order = ann[0].payload
        bx, by = k.block_vars[0], k.block_vars[1]
        gx, gy = k.grid[0], k.grid[1]
        nbx, nby = Var(bx.name + "_r", _dt.int32), Var(by.name + "_r", _dt.int32)
        if order == "row":
            new_by, new_bx = _panel_map(by, bx, gy, gx, panel)
        else:
            new_bx, new_by = _panel_map(bx, by, gx, gy, panel)
        rest = [s for s in stmts if s is not ann[0]]
        body = substitute(seq(rest), {bx: nbx, by: nby})
        rx = (0, gx.value - 1) if hasattr(gx, "value") else None
        ry = (0, gy.value - 1) if hasattr(gy, "value") else None
        new = seq([LetStmt(nbx, new_bx, rx), LetStmt(nby, new_by, ry), body])
        return k.with_fields(body=new)


def rasterize_blocks(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Rasterize().visit(func.body))


