"""kernel.report(path): everything tilewise knows about one compiled kernel on one HTML page —
the user's source, the IR after every pass (with its diff against the pass before), the layout
of every buffer as pictures, the lowering notes, the generated source, the SASS with its
steady-state loop (CUDA), resource usage, and what the emulator found when it ran the kernel.

The IR pass by pass is recorded by lowering the kernel's program once more with a recording
hook (transform.pipeline.run_passes(after_each=...)), so ordinary compiles pay nothing for it."""
from __future__ import annotations

import difflib
import inspect
import linecache
import math
import os
import subprocess
import tokenize
from dataclasses import dataclass

from ..backend.cuda.inspect import CuobjdumpError
from ..backend.cuda.toolkit import ToolkitNotFound
from ..backend.hip.clang import ClangError
from ..ir.buffer import Buffer
from ..ir.recursion import deep_recursion
from ..ir.stmt import Allocate, PrimFunc
from ..ir.visitor import walk
from ..layout.fragment import Fragment
from ..layout.layout import Layout
from ..tools.layout_svg import svg
from ..tools.plot_layout import LABEL_LIMIT, picture_of
from ..transform.pipeline import run_passes
from .build import walk_kernels
from .report_page import Section, code_block, diff_block, esc, page, table

# what reading a cubin with cuobjdump raises when the tool is missing, fails or hangs
TOOL_ERRORS = (CuobjdumpError, ToolkitNotFound, ClangError, OSError, subprocess.SubprocessError)
CORNER = 16  # a picture of a large layout comes with its labelled top-left corner of this many rows/cols


@dataclass
class UserSource:
    file: str
    first: int  # line number of the first line shown
    text: str


def user_source(func: PrimFunc) -> UserSource | None:
    """The kernel function as the user wrote it (with its decorators), from the file the parser read."""
    span = func.span
    if span is None or not span.file:
        return None
    lines = linecache.getlines(span.file)
    if not lines or span.line > len(lines):
        return None
    start = span.line - 1
    while start > 0 and lines[start - 1].lstrip().startswith("@"):
        start -= 1
    try:
        block = inspect.getblock(lines[span.line - 1:])
    except (SyntaxError, tokenize.TokenError):  # a file the tokenizer cannot finish: show it to the end
        block = lines[span.line - 1:]
    end = span.line - 1 + len(block)
    return UserSource(span.file, start + 1, "".join(lines[start:end]))


def _line_of(where) -> tuple[str | None, int | None]:
    """(file, line) of a span, "file:line" string or line number."""
    if where is None:
        return None, None
    if isinstance(where, int):
        return None, where
    if hasattr(where, "line"):
        return getattr(where, "file", None), int(where.line)
    text = str(where)
    head, _, tail = text.rpartition(":")
    if tail.strip().isdigit():
        return head or None, int(tail)
    return None, None


def _line_link(where, src: UserSource | None) -> str:
    file, line = _line_of(where)
    if line is None:
        return esc(where)
    shown = esc(f"{os.path.basename(file)}:{line}" if file else f"line {line}")
    if src is not None and (file is None or os.path.abspath(file) == os.path.abspath(src.file)):
        return f'<a href="#src-L{line}">{shown}</a>'
    return shown


# ---------------------------------------------------------------------------- sections


def source_section(src: UserSource | None, marks: dict[int, str]) -> Section:
    if src is None:
        return Section("source", "Source", '<p class="muted">the kernel\'s source file could not be read</p>')
    rel = os.path.relpath(src.file)
    shown = rel if not rel.startswith("..") else src.file
    body = (f'<p class="muted">{esc(shown)}, from line {src.first}; highlighted lines have lowering notes or '
            "bank conflicts (hover for them)</p>" + code_block(src.text, "code", "src-L", src.first, marks))
    return Section("source", "Source", body)


def record_passes(kernel) -> list[tuple[str, str]]:
    """(pass name, IR text after it), starting with the input, by lowering the kernel's program again."""
    build = kernel.build
    texts: list[tuple[str, str]] = []
    with deep_recursion():
        run_passes(build.func, build.record.passes(build.machine, build.pass_configs), dump_dir="",
                   after_each=lambda name, f: texts.append((name, f.script())))
    return texts


def passes_section(texts: list[tuple[str, str]]) -> Section:
    items = []
    prev = None
    for n, (name, text) in enumerate(texts):
        if prev is None:
            summary = f"{n:02d} {name}: {len(text.splitlines())} lines"
            inner = f"<details open><summary>IR</summary><pre>{esc(text)}</pre></details>"
        else:
            diff = list(difflib.unified_diff(prev.splitlines(), text.splitlines(), "before", f"after {name}",
                                             lineterm="", n=2))
            added = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
            removed = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
            summary = f"{n:02d} {name}: " + (f"+{added} -{removed} lines" if diff else "unchanged")
            inner = ((f"<details open><summary>diff against the previous pass</summary>{diff_block(diff)}</details>"
                      if diff else "") + f"<details><summary>IR after {esc(name)}</summary><pre>{esc(text)}</pre>"
                                        "</details>")
        items.append(f'<details class="pass" data-pass="{esc(name)}"><summary>{esc(summary)}</summary>{inner}</details>')
        prev = text
    body = ('<p class="muted">The program after each compiler pass, in order.</p><div class="pass-buttons"></div>'
            + "".join(items))
    return Section("passes", "IR after each pass", body)


def layout_figures(layout, dtype) -> list[tuple[str, str]]:
    """(caption, inline SVG) pictures of a layout: all of it (labels as tooltips when it is too
    large to label), and for a large one its labelled top-left corner."""
    grid = None
    if len(layout.shape) == 1 and layout.shape[0] > CORNER and layout.shape[0] % CORNER == 0:
        grid = (layout.shape[0] // CORNER, CORNER)  # a long vector wraps into rows of 16
    whole = picture_of(layout, dtype, grid_shape=grid)
    if whole.values.size <= LABEL_LIMIT:
        return [("" if grid is None else f"elements in rows of {CORNER}", svg(whole))]
    corner = picture_of(layout, dtype, grid_shape=grid, crop=(CORNER, CORNER))
    return [("whole tile (hover a cell for its label)", svg(whole)),
            (f"top-left {CORNER}x{CORNER}", svg(corner, labels=True))]


def layouts_section(kernel, lowered: PrimFunc, src: UserSource | None) -> Section:
    maps = [k.attrs["layouts"] for k in walk_kernels(lowered) if "layouts" in k.attrs]
    if not maps:
        body = ("<p>This target runs each block as one thread: tiles are plain row-major arrays of that thread, "
                "so there are no thread layouts or shared-memory swizzles to show.</p>")
        return Section("layouts", "Layouts", body)
    # shared tiles that no operator gave a layout stay row-major: shown too, since their banks
    # are where conflicts come from
    inputs = walk_kernels(kernel.build.func)
    parts = []
    for n, lm in enumerate(maps):
        entries: list[tuple[Buffer, object, str]] = [(b, f, "fragment") for b, f in lm.fragments.items()]
        entries += [(b, lay, "shared") for b, lay in lm.shared.items()]
        laid = {b.name for b in lm.shared}
        user_kernel = inputs[n] if len(inputs) == len(maps) else None
        for b in _allocations(user_kernel) if user_kernel is not None else []:
            if b.scope.startswith("shared") and b.name not in laid and b.static_shape() is not None:
                entries.append((b, Layout(b.static_shape()), "shared, row-major (no swizzle)"))
        if not entries:
            parts.append('<p class="muted">no fragment or shared buffer has an inferred layout</p>')
        for buf, lay, kind in entries:
            origin = lm.sources.get(buf)
            what = (f"registers of {int(lay.thread_table().max()) + 1} threads" if isinstance(lay, Fragment)
                    else "shared memory")
            head = (f'<h3 class="layout" data-buffer="{esc(buf.name)}">{esc(buf.name)} '
                    f'<span class="muted">{esc(kind)} {esc(list(buf.shape))} {esc(buf.dtype)}, {esc(what)}'
                    + (f", layout fixed at {_line_link(origin, src)}" if origin is not None else "") + "</span></h3>")
            figs = "".join(f"<figure>{pic}<figcaption>{esc(cap)}</figcaption></figure>"
                           for cap, pic in layout_figures(lay, buf.dtype))
            parts.append(head + f"<pre>{esc(repr(lay))}</pre>" + figs)
    return Section("layouts", "Layouts", "".join(parts))


def notes_section(notes: list[str], src: UserSource | None) -> Section:
    if not notes:
        return Section("notes", "Lowering notes", '<p class="muted">lowering took no decision worth a note '
                                                   "(no gemm or bulk copy)</p>")
    items = []
    for n in notes:
        head, sep, rest = n.partition(": ")
        file, line = _line_of(head) if sep else (None, None)
        items.append(f"<li>{_line_link(head, src)}: {esc(rest)}</li>" if line is not None else f"<li>{esc(n)}</li>")
    return Section("notes", "Lowering notes", "<ul>" + "".join(items) + "</ul>")


def generated_section(kernel) -> Section:
    lang = {"cuda": "CUDA C++", "hip": "HIP C++"}.get(kernel.build.record.kind, "C++")
    return Section("generated", "Generated source",
                   f'<p class="muted">{lang}, as compiled</p>' + code_block(kernel.get_kernel_source(), "code"))


def sass_section(kernel) -> tuple[Section, dict | None]:
    """The SASS of every function with its steady-state loop highlighted, and that loop's figures."""
    if kernel.build.record.disassemble is None:
        return Section("sass", "SASS", f"<p>No SASS: the kernel is compiled for {esc(kernel.target)} "
                                       "(C++ through g++), not for a GPU.</p>"), None
    if kernel.build.record.kind == "hip":
        return _amdgpu_section(kernel), None
    from ..backend.cuda.inspect import TENSOR_CORE, parse_sass, steady_state_loop

    try:
        sass = kernel.get_sass()
    except TOOL_ERRORS as e:  # cuobjdump missing or failing: the page says so
        return Section("sass", "SASS", f'<p class="bad">cuobjdump failed: {esc(e)}</p>'), None
    parts, summary = [], None
    for name, instrs in parse_sass(sass).items():
        loop = steady_state_loop(instrs)
        lines = []
        for ins in instrs:
            inside = loop is not None and loop.start <= ins.offset <= loop.end
            cls = ("loop" if inside else "outside") + (" tc" if ins.op in TENSOR_CORE else "")
            lines.append(f'<span class="{cls}">{esc(str(ins))}</span>')
        if loop is not None:
            tc = sum(1 for i in loop.instrs if i.op in TENSOR_CORE)
            mix = loop.mix(("HMMA", "HGMMA", "LDSM", "LDGSTS", "UTMALDG", "BAR"))
            figures = {"function": name, "start": loop.start, "end": loop.end, "instructions": len(loop),
                       "tensor_core": tc, **{k: v for k, v in mix.items() if v}}
            per = f"{len(loop) / tc:.1f} instructions per tensor-core instruction" if tc else "no tensor-core instructions"
            head = (f'<p class="loop-summary">steady-state loop 0x{loop.start:04x}-0x{loop.end:04x}: {len(loop)} '
                    f"instructions, {per}; " + ", ".join(f"{k} {v}" for k, v in mix.items() if v) + "</p>")
            summary = summary or figures
        else:
            head = "<p class=\"muted\">no loop (no backward branch)</p>"
        parts.append(f"<h3>{esc(name)}</h3>{head}<div><pre class=\"sass\">" + "\n".join(lines) + "</pre></div>")
    return Section("sass", "SASS", "".join(parts) or '<p class="muted">no functions in the cubin</p>'), summary


def _amdgpu_section(kernel) -> Section:
    """The AMDGPU instructions of a HIP kernel's code object (llvm-objdump)."""
    try:
        isa = kernel.get_isa()
    except TOOL_ERRORS as e:  # llvm-objdump missing or failing: the page says so
        return Section("sass", "AMDGPU ISA", f'<p class="bad">llvm-objdump failed: {esc(e)}</p>')
    return Section("sass", "AMDGPU ISA", code_block(isa, "sass"))


def _allocations(node) -> list[Buffer]:
    """The buffers a function (or statement) allocates."""
    found: list[Buffer] = []
    walk(node.body, lambda n: found.append(n.buffer) if isinstance(n, Allocate) else None)
    return found


def _bytes(buf: Buffer) -> str:
    shape = buf.static_shape()
    return str(buf.dtype.bytes * math.prod(shape)) if shape is not None else "dynamic"


def resources_section(kernel) -> Section:
    allocs = _allocations(kernel.build.func)
    rows = [[esc(b.name), esc(b.scope), esc(list(b.shape)), esc(b.dtype), _bytes(b)] for b in allocs]
    tiles = table(["tile", "scope", "shape", "dtype", "bytes (whole tile)"], rows) if rows else ""
    if kernel.build.record.kind == "hip":
        try:
            u = kernel.resource_usage()
        except TOOL_ERRORS as e:
            return Section("resources", "Resources", f'<p class="bad">llvm-readelf failed: {esc(e)}</p>' + tiles)
        keys = ["vgprs", "agprs", "sgprs", "vgpr_spills", "sgpr_spills", "scratch_bytes", "lds_bytes"]
        return Section("resources", "Resources", table(keys, [[str(u[k]) for k in keys]]) + tiles)
    if kernel.build.record.kind != "cuda":
        body = ("<p>CPU target: each block runs as one host thread, so registers, spills and shared memory "
                "in the GPU sense do not apply (g++ allocates registers and does not report them). The tiles "
                "below are that thread's arrays.</p>" + tiles)
        return Section("resources", "Resources", body)
    parts = []
    mod = kernel.build.module
    launch = [[esc(k.name), esc([str(g) for g in k.grid]), esc(list(k.block)), str(k.threads), str(k.shared_bytes)]
              for k in mod.kernels]
    parts.append(table(["kernel", "grid", "block", "threads", "dynamic shared bytes"], launch))
    try:
        from ..backend.cuda.inspect import resource_usage_all

        u = kernel.resource_usage()
        spill = ('<span class="good">0</span>' if u["spill_bytes"] == 0 else f'<span class="bad">{u["spill_bytes"]}</span>')
        parts.append(table(["registers per thread", "spilled bytes per thread", "shared bytes per block"],
                           [[str(u["registers"]), spill, str(u["shared_bytes"])]]))
        per = resource_usage_all(kernel.build.binary)
        if len(per) > 1:
            parts.append(table(["function", "registers", "stack bytes", "local bytes", "static shared bytes"],
                               [[esc(n), str(v["registers"]), str(v["stack_bytes"]), str(v["local_bytes"]),
                                 str(v["shared_bytes"])] for n, v in per.items()]))
    except TOOL_ERRORS as e:  # cuobjdump missing or failing: the page says so
        parts.append(f'<p class="bad">cuobjdump -res-usage failed: {esc(e)}</p>')
    return Section("resources", "Resources", "".join(parts) + tiles)


def emulator_section(kernel) -> Section:
    runs = getattr(kernel.runtime, "runs", None)
    if runs is None:
        body = (f"<p>This kernel object runs on the {esc(kernel.execution_backend)} backend; the emulator has not "
                "run it. <code>kernel.with_execution_backend(\"emulator\")</code> (CUDA targets) or "
                "<code>execution_backend=\"emulator\"</code> gives a kernel whose runs are checked.</p>")
        return Section("emulator", "Emulator findings", body)
    if not runs:
        return Section("emulator", "Emulator findings", "<p>The emulator has not run this kernel yet: call it, then "
                                                        "write the report.</p>")
    rows = []
    for n, r in enumerate(runs, 1):
        checks = ", ".join(f"{k} {'on' if v else 'off'}" for k, v in r.checks.items())
        result = ('<span class="good">clean</span>' if r.error is None else
                  f'<span class="bad">{esc(r.error)}</span><pre>{esc(r.message)}</pre>')
        rows.append([str(n), esc(checks), result])
    bad = sum(1 for r in runs if r.error is not None)
    head = (f"<p>{len(runs)} run(s) recorded (the latest {len(runs)}), {bad} with a finding. Out-of-bounds, "
            "divergence, barrier and asynchronous-access checks are always on.</p>")
    return Section("emulator", "Emulator findings", head + table(["run", "optional checks", "result"], rows))


def bank_records(kernel):
    """The emulator's bank-conflict records, or the reason there are none to show."""
    stats_of = getattr(kernel, "emulate_stats", None)
    if stats_of is None:
        return None, "not measured: this tilewise has no kernel.emulate_stats()"
    stats = stats_of()
    if stats is None:
        return None, ("not measured: no emulator run of this kernel counted them (turn the emulator's "
                      "counting on as kernel.emulate_stats() describes, run the kernel, then write the report)")
    return list(getattr(stats, "bank_conflicts", None) or []), ""


def banks_section(records, why: str, src: UserSource | None) -> Section:
    if records is None:
        return Section("banks", "Shared-memory bank conflicts", f'<p class="muted">{esc(why)}</p>')
    if not records:
        return Section("banks", "Shared-memory bank conflicts", '<p class="good">no bank conflicts in the emulated '
                                                                "runs</p>")
    def extra(r) -> str:
        n = getattr(r, "extra", "")
        return f'<span class="bad">{esc(n)}</span>' if isinstance(n, int) and n > 0 else esc(n)

    def ways(r) -> str:
        w = getattr(r, "ways", None)
        return f"{w:.2f}" if isinstance(w, (int, float)) else ""

    ordered = sorted(records, key=lambda r: -(getattr(r, "extra", 0) or 0))
    rows = [[esc(getattr(r, "buffer", "")), _line_link(getattr(r, "line", None), src), esc(getattr(r, "kind", "")),
             esc(getattr(r, "accesses", "")), esc(getattr(r, "wavefronts", "")), extra(r), ways(r)]
            for r in ordered]
    total = sum(getattr(r, "extra", 0) or 0 for r in records)
    body = (f"<p>Per source line and buffer: warp-wide shared-memory requests, the wavefronts they took, and "
            f"the extra wavefronts bank conflicts cost ({total} in all); ways = wavefronts over the "
            "conflict-free minimum.</p>"
            + table(["buffer", "line", "kind", "requests", "wavefronts", "extra", "ways"], rows))
    return Section("banks", "Shared-memory bank conflicts", body)


# ---------------------------------------------------------------------------- the page


def _marks(notes: list[str], records, src: UserSource | None) -> dict[int, str]:
    marks: dict[int, list[str]] = {}
    if src is None:
        return {}
    for n in notes:
        head, sep, rest = n.partition(": ")
        file, line = _line_of(head) if sep else (None, None)
        if line is not None and (file is None or os.path.abspath(file) == os.path.abspath(src.file)):
            marks.setdefault(line, []).append(rest)
    for r in records or []:
        file, line = _line_of(getattr(r, "line", None))
        if line is not None and (getattr(r, "extra", 0) or 0) > 0:  # conflict-free lines need no mark
            marks.setdefault(line, []).append(f"{getattr(r, 'extra', '?')} extra wavefronts on "
                                              f"{getattr(r, 'buffer', '?')} (bank conflicts)")
    return {k: "; ".join(v) for k, v in marks.items()}


def render(kernel) -> str:
    """The report page of `kernel` (a JITKernel), as HTML text."""
    src = user_source(kernel.func)
    texts = record_passes(kernel)
    notes = kernel.lowering_notes()
    records, why = bank_records(kernel)
    sass, loop = sass_section(kernel)
    sections = [
        source_section(src, _marks(notes, records, src)),
        passes_section(texts),
        layouts_section(kernel, kernel.build.lowered, src),
        notes_section(notes, src),
        generated_section(kernel),
        sass,
        resources_section(kernel),
        emulator_section(kernel),
        banks_section(records, why, src),
    ]
    sub = f"target {kernel.target}, execution backend {kernel.execution_backend}"
    if loop is not None:
        sub += f", steady-state loop of {loop['instructions']} SASS instructions"
    return page(f"tilewise report: {kernel.func.name}", sub, sections)


def write_report(kernel, path) -> str:
    text = render(kernel)
    path = os.fspath(path)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
