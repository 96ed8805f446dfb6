"""PTX text -> a `Module` of functions whose bodies are lists of `Instruction`s and labels.

The parser covers the subset NVVM emits for tilewise's kernels (and the inline PTX of tw_cuda.h):
module directives (`.version`, `.target`, `.address_size`, `.file`), variables in the `.global`,
`.const` and `.shared` state spaces (with initialisers; `.extern .shared` arrays of unknown size are
the dynamic shared memory), `.entry` and `.func` definitions and declarations, and inside bodies
`.reg` declarations (including `%r<N>` ranges), `.local` / `.shared` / `.param` variables, nested
`{ }` scopes (inline asm declares its own registers in one; names resolve innermost first), labels,
guarded instructions and the `.loc` directives that `-lineinfo` adds. Anything else is a
`PtxSyntaxError` naming the line, so the parser fails loudly instead of guessing.

The parsed form is defined in syntax.py; register names are resolved to their declarations here,
so later stages never see scoping."""
from __future__ import annotations

import bisect
import re

from .errors import PtxSyntaxError
from .syntax import (
    SPECIAL_REGS,
    TYPE_BITS,
    FImm,
    Function,
    Group,
    Imm,
    Instruction,
    Label,
    Mem,
    MemList,
    Module,
    Not,
    Pair,
    Param,
    Reg,
    RegDecl,
    Sym,
    Token,
    Variable,
    Vec,
)

_TOKEN = re.compile(
    r"""
    (?:\s+|//[^\n]*|/\*.*?\*/)* (?:
    (?P<str>"[^"\n]*") |
    (?P<fimm>0[fF][0-9a-fA-F]{8}(?![\w$])|0[dD][0-9a-fA-F]{16}(?![\w$])) |
    (?P<num>0[xX][0-9a-fA-F]+U?|\d+\.\d*(?:[eE][+-]?\d+)?|\d+U?) |
    (?P<ident>[%$._A-Za-z][\w$]*(?:(?:\.|::)[\w$]+)*) |
    (?P<punct>[{}\[\](),;:+\-|!@<>=]) |
    (?P<end>\Z) )
    """,
    re.S | re.X,
)

# ---------------------------------------------------------------------------- tokens


def tokenize(text: str) -> list[Token]:
    out = []
    newlines = [i for i, c in enumerate(text) if c == "\n"]
    pos = 0
    n = len(text)
    match = _TOKEN.match
    while pos <= n:
        m = match(text, pos)
        if m is None:
            line = bisect.bisect_left(newlines, pos) + 1
            raise PtxSyntaxError(f"PTX line {line}: unexpected character {text[pos]!r}")
        kind = m.lastgroup
        if kind == "end":
            break
        start = m.start(kind)
        out.append(Token(kind, m.group(kind), bisect.bisect_left(newlines, start) + 1))
        pos = m.end()
    return out


class _Stream:
    def __init__(self, tokens: list[Token], lines: list[str]):
        self.toks = tokens
        self.i = 0
        self.lines = lines

    def peek(self) -> Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> Token:
        if self.i >= len(self.toks):
            raise PtxSyntaxError("unexpected end of the PTX text")
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, text: str) -> Token:
        t = self.next()
        if t.text != text:
            raise self.error(t, f"expected {text!r}, found {t.text!r}")
        return t

    def accept(self, text: str) -> bool:
        t = self.peek()
        if t is not None and t.text == text:
            self.i += 1
            return True
        return False

    def rest_of_line(self, line: int) -> list[Token]:
        out = []
        while self.i < len(self.toks) and self.toks[self.i].line == line:
            out.append(self.toks[self.i])
            self.i += 1
        return out

    def until(self, text: str) -> list[Token]:
        """Tokens up to (and consuming) the next `text` at bracket depth 0."""
        out = []
        depth = 0
        while True:
            t = self.next()
            if t.text in "([{" and t.kind == "punct":
                depth += 1
            elif t.text in ")]}" and t.kind == "punct":
                depth -= 1
            elif t.text == text and depth == 0:
                return out
            out.append(t)

    def error(self, t: Token, msg: str) -> PtxSyntaxError:
        src = self.lines[t.line - 1].strip() if 0 < t.line <= len(self.lines) else ""
        return PtxSyntaxError(f"PTX line {t.line}: {msg} in `{src}`")


def _int(text: str) -> int:
    t = text.rstrip("U")
    return int(t, 16) if t[:2] in ("0x", "0X") else int(t, 10)


# ---------------------------------------------------------------------------- module level

_LINKAGE = (".visible", ".extern", ".weak", ".common")
_SPACES = (".global", ".const", ".shared", ".local", ".param")


def parse(text: str) -> Module:
    lines = text.splitlines()
    s = _Stream(tokenize(text), lines)
    mod = Module("", [], 64, {}, {}, {}, lines)
    while s.peek() is not None:
        t = s.next()
        if t.text == ".version":
            mod.version = s.next().text
        elif t.text == ".target":
            mod.target = [x.text for x in s.rest_of_line(t.line) if x.text != ","]
        elif t.text == ".address_size":
            mod.address_size = _int(s.next().text)
            if mod.address_size != 64:
                raise s.error(t, "only 64-bit addressing is supported")
        elif t.text == ".file":
            toks = s.rest_of_line(t.line)
            mod.files[_int(toks[0].text)] = toks[1].text.strip('"')
        elif t.text == ".section" or t.text == ".pragma":
            _skip_directive(s, t)
        elif t.text in _LINKAGE or t.text in _SPACES or t.text in (".entry", ".func"):
            _module_item(s, t, mod)
        elif t.text == ";":
            continue
        else:
            raise s.error(t, f"unknown module-level directive {t.text!r}")
    return mod


def _skip_directive(s: _Stream, t: Token):
    if t.text == ".section":  # debug sections (-lineinfo): skip the braced body
        while s.next().text != "{":
            pass
        depth = 1
        while depth:
            x = s.next()
            depth += {"{": 1, "}": -1}.get(x.text, 0)
    else:
        s.until(";")


def _module_item(s: _Stream, first: Token, mod: Module):
    linkage = []
    t = first
    while t.text in _LINKAGE:
        linkage.append(t.text)
        t = s.next()
    if t.text in (".entry", ".func"):
        f = _function(s, t)
        old = mod.functions.get(f.name)
        if old is None or old.body is None:
            mod.functions[f.name] = f
        return
    if t.text in _SPACES:
        v = _variable(s, t.text[1:], s.until(";"), t)
        v.extern = ".extern" in linkage
        mod.variables[v.name] = v
        return
    raise s.error(t, f"unexpected {t.text!r} after {' '.join(linkage)}")


def _variable(s: _Stream, space: str, toks: list[Token], where: Token) -> Variable:
    """`.space [.align N] [.ptr...] .type name[ [N] ] [= init]` (the space token already read)."""
    align = 0
    typ = None
    i = 0
    while i < len(toks) and toks[i].text.startswith("."):
        x = toks[i].text
        if x == ".align":
            align = _int(toks[i + 1].text)
            i += 2
            continue
        if x in (".v2", ".v4"):
            raise s.error(where, "vector variables are not supported")
        if x[1:] in TYPE_BITS:
            typ = x[1:]
        i += 1
    if typ is None or i >= len(toks):
        raise s.error(where, "a variable declaration needs a type and a name")
    name = toks[i].text
    i += 1
    count = None
    if i < len(toks) and toks[i].text == "[":
        if toks[i + 1].text == "]":
            count = -1
            i += 2
        else:
            count = _int(toks[i + 1].text)
            i += 3
    init = None
    if i < len(toks) and toks[i].text == "=":
        init = _initialiser(toks[i + 1 :])
    if align == 0:
        align = max(1, TYPE_BITS[typ] // 8)
    return Variable(name, space, typ, align, count, init)


def _initialiser(toks: list[Token]) -> list:
    vals = []
    neg = False
    for t in toks:
        if t.text == "-":
            neg = True
        elif t.kind == "num":
            v = float(t.text) if "." in t.text else _int(t.text)
            vals.append(-v if neg else v)
            neg = False
        elif t.kind == "fimm":
            vals.append(FImm(int(t.text[2:], 16), 32 if t.text[1] in "fF" else 64))
        elif t.kind == "ident":
            vals.append(Sym(t.text))  # generic(...) / symbol addresses
    return vals


def _params(s: _Stream) -> list[Param]:
    s.expect("(")
    out = []
    if s.accept(")"):
        return out
    while True:
        toks = []
        depth = 0
        while True:
            t = s.next()
            if t.text == "[":
                depth += 1
            elif t.text == "]":
                depth -= 1
            if depth == 0 and t.text in (",", ")"):
                break
            toks.append(t)
        out.append(_param(s, toks))
        if t.text == ")":
            return out


def _param(s: _Stream, toks: list[Token]) -> Param:
    align, typ, ptr = 0, None, None
    i = 0
    if toks and toks[0].text in (".param", ".reg"):
        i = 1
    while i < len(toks) and toks[i].text.startswith("."):
        x = toks[i].text
        if x == ".align":
            align = _int(toks[i + 1].text)
            i += 2
            continue
        if x.startswith(".ptr"):
            ptr = x
        elif x[1:] in TYPE_BITS:
            typ = x[1:]
        elif x in (".global", ".shared", ".const", ".local"):
            ptr = x
        i += 1
    if typ is None or i >= len(toks):
        raise s.error(toks[0], "a parameter needs a type and a name")
    name = toks[i].text
    count = None
    if i + 1 < len(toks) and toks[i + 1].text == "[":
        count = _int(toks[i + 2].text)
    return Param(name, typ, align or max(1, TYPE_BITS[typ] // 8), count, ptr)


def _function(s: _Stream, kw: Token) -> Function:
    returns: list[Param] = []
    if s.peek().text == "(":
        returns = _params(s)
    name = s.next().text
    params = _params(s) if s.peek() is not None and s.peek().text == "(" else []
    f = Function(name, kw.text[1:], params, returns, None)
    while True:
        t = s.next()
        if t.text == ";":
            return f
        if t.text == "{":
            break
        if t.text in (".maxntid", ".reqntid", ".minnctapersm", ".maxnreg", ".maxclusterrank", ".reqnctapercluster",
                      ".explicitcluster", ".noreturn", ".blocksareclusters"):
            f.directives[t.text[1:]] = [_int(x.text) for x in s.rest_of_line(t.line) if x.kind == "num"]
        elif t.text == ".pragma":
            s.until(";")
        else:
            raise s.error(t, f"unexpected {t.text!r} in the header of {name}")
    _body(s, f)
    return f


# ---------------------------------------------------------------------------- bodies


class _Scopes:
    def __init__(self, f: Function):
        self.f = f
        self.stack: list[dict] = [{}]
        self.ranges: list[dict] = [{}]
        self.made: dict = {}  # (scope id, name) -> RegDecl for range members
        self.cache: dict = {}  # name -> RegDecl, valid until the scopes change

    def push(self):
        self.stack.append({})
        self.ranges.append({})
        self.cache = {}

    def pop(self):
        self.stack.pop()
        self.ranges.pop()
        self.cache = {}

    def declare(self, name: str, typ: str, count: int | None):
        self.cache = {}
        if count is None:
            d = RegDecl(name, typ, len(self.f.registers))
            self.f.registers.append(d)
            self.stack[-1][name] = d
        else:
            self.ranges[-1][name] = (typ, count, id(self.ranges[-1]))

    def lookup(self, name: str) -> RegDecl | None:
        d = self.cache.get(name)
        if d is None:
            d = self._lookup(name)
            if d is not None:
                self.cache[name] = d
        return d

    def _lookup(self, name: str) -> RegDecl | None:
        for scope, ranges in zip(reversed(self.stack), reversed(self.ranges)):
            d = scope.get(name)
            if d is not None:
                return d
            m = re.fullmatch(r"(.*?)(\d+)", name)
            if m and m.group(1) in ranges:
                typ, count, sid = ranges[m.group(1)]
                k = int(m.group(2))
                if k < count and not (m.group(2).startswith("0") and len(m.group(2)) > 1):
                    key = (sid, name)
                    d = self.made.get(key)
                    if d is None:
                        d = RegDecl(name, typ, len(self.f.registers))
                        self.f.registers.append(d)
                        self.made[key] = d
                    return d
        return None


def _body(s: _Stream, f: Function):
    scopes = _Scopes(f)
    body: list = []
    depth = 1
    loc = None
    while depth:
        t = s.next()
        if t.text == "{":
            depth += 1
            scopes.push()
            continue
        if t.text == "}":
            depth -= 1
            if depth:
                scopes.pop()
            continue
        if t.text == ";":
            continue
        nxt = s.peek()
        if t.kind == "ident" and not t.text.startswith(".") and nxt is not None and nxt.text == ":":
            s.next()
            body.append(Label(t.text, t.line))
            continue
        if t.text == ".loc":
            # instructions keep the last line of file 1 (NVRTC's main source) they came from,
            # directly or through the `inlined_at` of code inlined from a header
            toks = s.rest_of_line(t.line)
            nums = [x for x in toks[:3] if x.kind == "num"]
            if len(nums) >= 2 and _int(nums[0].text) == 1:
                loc = (1, _int(nums[1].text))
            for k, x in enumerate(toks):
                if x.text == "inlined_at" and k + 2 < len(toks) and _int(toks[k + 1].text) == 1:
                    loc = (1, _int(toks[k + 2].text))
            continue
        if t.text in (".pragma", ".section"):
            _skip_directive(s, t)
            continue
        if t.text == ".reg":
            _reg_decl(s, s.until(";"), scopes, t)
            continue
        if t.text in (".local", ".shared", ".param", ".const", ".global"):
            v = _variable(s, t.text[1:], s.until(";"), t)
            f.variables.append(v)
            continue
        if t.text.startswith("."):
            raise s.error(t, f"unknown directive {t.text!r} in the body of {f.name}")
        body.append(_instruction(s, t, scopes, loc))
    f.body = body


def _reg_decl(s: _Stream, toks: list[Token], scopes: _Scopes, where: Token):
    typ = None
    i = 0
    while i < len(toks) and toks[i].text.startswith("."):
        x = toks[i].text[1:]
        if x in ("v2", "v4"):
            raise s.error(where, "vector registers are not supported")
        if x in TYPE_BITS:
            typ = x
        i += 1
    if typ is None:
        raise s.error(where, "a register declaration needs a type")
    while i < len(toks):
        name = toks[i].text
        i += 1
        count = None
        if i < len(toks) and toks[i].text == "<":
            count = _int(toks[i + 1].text)
            i += 3
        scopes.declare(name, typ, count)
        if i < len(toks) and toks[i].text == ",":
            i += 1


def _instruction(s: _Stream, first: Token, scopes: _Scopes, loc) -> Instruction:
    guard, neg = None, False
    t = first
    if t.text == "@":
        t = s.next()
        if t.text == "!":
            neg = True
            t = s.next()
        guard = _reg(s, t, scopes)
        t = s.next()
    if t.kind != "ident":
        raise s.error(t, f"expected an instruction, found {t.text!r}")
    toks = s.until(";")
    text = s.lines[first.line - 1].strip() if 0 < first.line <= len(s.lines) else t.text
    ops = [_operand(s, part, scopes) for part in _split_commas(toks)] if toks else []
    return Instruction(t.text, ops, guard, neg, t.line, loc, text)


def _split_commas(toks: list[Token]) -> list[list[Token]]:
    parts, cur, depth = [], [], 0
    for t in toks:
        if t.kind == "punct" and t.text in "([{":
            depth += 1
        elif t.kind == "punct" and t.text in ")]}":
            depth -= 1
        if t.text == "," and depth == 0:
            parts.append(cur)
            cur = []
        else:
            cur.append(t)
    parts.append(cur)
    return parts


def _reg(s: _Stream, t: Token, scopes: _Scopes) -> Reg:
    d = scopes.lookup(t.text)
    if d is not None:
        return Reg(t.text, d)
    if t.text in SPECIAL_REGS:
        return Reg(t.text, None)
    raise s.error(t, f"undeclared register {t.text}")


def _operand(s: _Stream, toks: list[Token], scopes: _Scopes):
    if not toks:
        raise PtxSyntaxError("empty operand")
    t = toks[0]
    if len(toks) > 1 and any(x.text == "|" for x in toks):
        k = next(i for i, x in enumerate(toks) if x.text == "|")
        return Pair(_operand(s, toks[:k], scopes), _operand(s, toks[k + 1 :], scopes))
    if t.text == "!":
        return Not(_operand(s, toks[1:], scopes))
    if t.text == "[":
        parts = _split_commas(toks[1:-1])
        if len(parts) > 1:
            return MemList([_operand(s, p, scopes) for p in parts])
        return _mem(s, toks[1:-1], scopes, t)
    if t.text == "{":
        return Vec([_operand(s, p, scopes) for p in _split_commas(toks[1:-1])])
    if t.text == "(":
        inner = toks[1:-1]
        return Group([_operand(s, p, scopes) for p in _split_commas(inner)] if inner else [])
    if t.text == "-" and len(toks) == 2:
        inner = _operand(s, toks[1:], scopes)
        if isinstance(inner, Imm):
            return Imm(-inner.value)
        if isinstance(inner, FImm):
            return FImm(inner.bits ^ (1 << (inner.width - 1)), inner.width)
        raise s.error(t, "only numbers can be negated")
    if len(toks) != 1:
        raise s.error(t, "cannot parse operand " + " ".join(x.text for x in toks))
    if t.kind == "num":
        if "." in t.text:
            import struct

            return FImm(struct.unpack("<Q", struct.pack("<d", float(t.text)))[0], 64)
        return Imm(_int(t.text))
    if t.kind == "fimm":
        return FImm(int(t.text[2:], 16), 32 if t.text[1] in "fF" else 64)
    if t.kind == "ident":
        if t.text.startswith("%"):
            return _reg(s, t, scopes)
        d = scopes.lookup(t.text)  # inline-asm scopes declare registers without %
        if d is not None:
            return Reg(t.text, d)
        return Sym(t.text)
    raise s.error(t, f"unexpected operand {t.text!r}")


def _mem(s: _Stream, toks: list[Token], scopes: _Scopes, where: Token) -> Mem:
    if not toks:
        raise s.error(where, "empty address")
    base = None
    off = 0
    i = 0
    if toks[0].kind == "ident":
        d = _operand(s, [toks[0]], scopes)
        base = d
        i = 1
    sign = 1
    while i < len(toks):
        x = toks[i].text
        if x == "+":
            sign = sign
        elif x == "-":
            sign = -sign
        elif toks[i].kind == "num":
            off += sign * _int(x)
            sign = 1
        else:
            raise s.error(toks[i], f"cannot parse address [{' '.join(t.text for t in toks)}]")
        i += 1
    return Mem(base, off)
