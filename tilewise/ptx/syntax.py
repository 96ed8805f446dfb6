"""The parsed form of PTX: operands, instructions, labels, variables, parameters, functions and
modules (parser.py builds them). Register operands carry their resolved declaration (`RegDecl`,
unique per function), so nothing after parsing deals with names or scopes."""
from __future__ import annotations

from dataclasses import dataclass, field

# special registers: name -> PTX type (the value comes from the executor)
SPECIAL_REGS = {
    **{f"%tid.{a}": "u32" for a in "xyz"},
    **{f"%ntid.{a}": "u32" for a in "xyz"},
    **{f"%ctaid.{a}": "u32" for a in "xyz"},
    **{f"%nctaid.{a}": "u32" for a in "xyz"},
    "%laneid": "u32", "%warpid": "u32", "%nwarpid": "u32", "%smid": "u32", "%nsmid": "u32",
    "%gridid": "u64", "%clock": "u32", "%clock64": "u64", "%globaltimer": "u64",
    "%lanemask_eq": "u32", "%lanemask_le": "u32", "%lanemask_lt": "u32", "%lanemask_ge": "u32",
    "%lanemask_gt": "u32", "%dynamic_smem_size": "u32", "%total_smem_size": "u32",
}  # fmt: skip

TYPE_BITS = {
    "pred": 1, "b8": 8, "u8": 8, "s8": 8, "b16": 16, "u16": 16, "s16": 16, "f16": 16, "bf16": 16,
    "b32": 32, "u32": 32, "s32": 32, "f32": 32, "f16x2": 32, "bf16x2": 32, "tf32": 32,
    "b64": 64, "u64": 64, "s64": 64, "f64": 64, "b128": 128,
}  # fmt: skip


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    line: int


# ---------------------------------------------------------------------------- operands


@dataclass(eq=False)
class RegDecl:
    """One declared register; `uid` is unique in the function (scopes make names ambiguous)."""

    name: str
    type: str  # PTX type without the dot, e.g. "f32", "pred"
    uid: int
    vec: int = 1  # .v2/.v4 registers are not supported beyond declaration


@dataclass
class Reg:
    name: str
    decl: RegDecl | None = None  # None for special registers

    @property
    def special(self) -> bool:
        return self.decl is None


@dataclass
class Imm:
    value: int


@dataclass
class FImm:
    bits: int
    width: int  # 32 (0f...) or 64 (0d...); decimal literals are stored as float64 bits


@dataclass
class Sym:
    name: str  # label, variable, parameter or function name


@dataclass
class Mem:
    base: Reg | Sym | None
    offset: int


@dataclass
class Vec:
    items: list


@dataclass
class MemList:
    """`[a, {b, c}]`: a bracketed operand list, the tensor-map operand of
    cp.async.bulk.tensor (the map's address, then the coordinates)."""

    items: list


@dataclass
class Pair:
    """`d|p`: a value and a predicate destination (shfl, setp)."""

    first: object
    second: object


@dataclass
class Not:
    """`!p`: a negated predicate source."""

    operand: object


@dataclass
class Group:
    """A parenthesised operand list (call arguments)."""

    items: list


@dataclass
class Instruction:
    opcode: str  # the full dotted name, e.g. "ld.global.nc.v4.u32"
    operands: list
    guard: Reg | None
    guard_negated: bool
    line: int  # PTX line
    loc: tuple[int, int] | None  # (file index, line) of the last `.loc`, if any
    text: str

    @property
    def parts(self) -> list[str]:
        return self.opcode.split(".")

    def where(self) -> str:
        return f"PTX line {self.line}: `{self.text}`"


@dataclass
class Label:
    name: str
    line: int


@dataclass
class Variable:
    """A variable of a state space: module-level `.global`/`.const`/`.shared`, or a function's
    `.local`/`.shared`/`.param` (the call sequences' argument buffers)."""

    name: str
    space: str
    type: str
    align: int
    count: int | None  # array length; None for a scalar, -1 for `[]` (extern shared)
    init: list | None = None  # initial element values
    extern: bool = False

    @property
    def elem_bytes(self) -> int:
        return max(1, TYPE_BITS[self.type] // 8)

    @property
    def size(self) -> int:
        n = 1 if self.count is None else max(self.count, 0)
        return n * self.elem_bytes


@dataclass
class Param:
    name: str
    type: str
    align: int
    count: int | None
    ptr_space: str | None = None  # `.ptr.global` annotations

    @property
    def size(self) -> int:
        n = 1 if self.count is None else self.count
        return n * max(1, TYPE_BITS[self.type] // 8)


@dataclass
class Function:
    name: str
    kind: str  # "entry" or "func"
    params: list[Param]
    returns: list[Param]
    body: list | None  # Instruction | Label, None for a declaration
    variables: list[Variable] = field(default_factory=list)
    registers: list[RegDecl] = field(default_factory=list)
    directives: dict = field(default_factory=dict)  # .maxntid etc.


@dataclass
class Module:
    version: str
    target: list[str]
    address_size: int
    functions: dict[str, Function]
    variables: dict[str, Variable]
    files: dict[int, str]
    lines: list[str]  # the PTX text, for messages

    def function(self, name: str) -> Function:
        f = self.functions.get(name)
        if f is None or f.body is None:
            known = ", ".join(n for n, g in self.functions.items() if g.body is not None and g.kind == "entry")
            raise KeyError(f"no kernel {name!r} in the PTX; kernels: {known or 'none'}")
        return f
