"""The HTML of kernel.report(): one self-contained page (inline CSS and script, pictures as
data: URIs), built from sections. The script adds the table of contents, the expand/collapse
buttons of the pass list and the SASS loop filter, then marks the page ready
(`<body data-ready="1">`), which is what a browser test waits for."""
from __future__ import annotations

import html
from dataclasses import dataclass

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fafafa; }
header { background: #243447; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 4px 0 0; opacity: .85; }
nav#toc { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ddd; padding: 6px 24px; z-index: 2; }
nav#toc a { margin-right: 14px; text-decoration: none; color: #1a5fb4; }
main { padding: 8px 24px 40px; }
section.report-section { background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; margin: 16px 0;
  padding: 4px 16px 12px; }
h2 { font-size: 17px; border-bottom: 1px solid #eee; padding-bottom: 4px; }
pre { background: #f6f8fa; border: 1px solid #eaecef; padding: 8px; overflow: auto; max-height: 620px;
  font: 12px/1.4 ui-monospace, monospace; }
pre.code .ln { display: inline-block; width: 4em; color: #999; text-align: right; margin-right: 1em;
  user-select: none; }
pre.code .noted { background: #fff3bf; }
pre.diff .add { background: #e6ffec; } pre.diff .del { background: #ffebe9; } pre.diff .hunk { color: #6639ba; }
pre.sass .loop { background: #e7f0ff; } pre.sass .tc { font-weight: bold; color: #0b5394; }
pre.sass.only-loop .outside { display: none; }
details { margin: 4px 0; } summary { cursor: pointer; }
details.pass > summary { font-family: ui-monospace, monospace; }
table { border-collapse: collapse; margin: 6px 0; } td, th { border: 1px solid #ddd; padding: 3px 8px;
  text-align: left; font-size: 13px; } th { background: #f0f3f6; }
figure { display: inline-block; margin: 8px 12px 8px 0; vertical-align: top; }
figure { max-width: 100%; } figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 12px; color: #555; }
.muted { color: #666; } .bad { color: #b00020; font-weight: bold; } .good { color: #1b7f3b; }
button { margin: 0 6px 6px 0; }
"""

SCRIPT = """
(function () {
  var toc = document.getElementById('toc');
  document.querySelectorAll('section.report-section').forEach(function (s) {
    var a = document.createElement('a');
    a.href = '#' + s.id;
    a.textContent = s.querySelector('h2').textContent;
    a.className = 'toc-entry';
    toc.appendChild(a);
    s.dataset.rendered = '1';
  });
  var passes = document.getElementById('passes');
  if (passes) {
    var bar = passes.querySelector('.pass-buttons');
    [['expand all', true], ['collapse all', false]].forEach(function (b) {
      var btn = document.createElement('button');
      btn.textContent = b[0];
      btn.onclick = function () { passes.querySelectorAll('details.pass').forEach(function (d) { d.open = b[1]; }); };
      bar.appendChild(btn);
    });
  }
  document.querySelectorAll('pre.sass').forEach(function (pre) {
    if (!pre.querySelector('.loop')) return;
    var btn = document.createElement('button');
    btn.textContent = 'show only the steady-state loop';
    btn.className = 'loop-toggle';
    btn.onclick = function () {
      pre.classList.toggle('only-loop');
      btn.textContent = pre.classList.contains('only-loop') ? 'show the whole function'
                                                             : 'show only the steady-state loop';
    };
    pre.parentNode.insertBefore(btn, pre);
  });
  document.body.dataset.ready = '1';
})();
"""


def esc(text) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class Section:
    id: str
    title: str
    body: str  # HTML


def code_block(text: str, cls: str = "code", id_prefix: str | None = None, first_line: int = 1,
               marks: dict[int, str] | None = None) -> str:
    """Numbered lines; `marks` (line number -> tooltip) highlights lines."""
    marks = marks or {}
    out = []
    for n, line in enumerate(text.splitlines(), first_line):
        anchor = f' id="{id_prefix}{n}"' if id_prefix else ""
        mark = f' class="noted" title="{esc(marks[n])}"' if n in marks else ""
        out.append(f'<span{anchor}{mark}><span class="ln">{n}</span>{esc(line)}</span>')
    return f'<pre class="{cls}">' + "\n".join(out) + "</pre>"


def diff_block(lines: list[str]) -> str:
    out = []
    for line in lines:
        cls = ("hunk" if line.startswith("@@") else "add" if line.startswith("+") and not line.startswith("+++")
               else "del" if line.startswith("-") and not line.startswith("---") else "")
        out.append(f'<span class="{cls}">{esc(line)}</span>' if cls else esc(line))
    return '<pre class="diff">' + "\n".join(out) + "</pre>"


def table(header: list[str], rows: list[list[str]]) -> str:
    """`rows` cells are HTML (escape text with esc first)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def page(title: str, subtitle: str, sections: list[Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>",
        '<nav id="toc"></nav><main>',
    ]
    for s in sections:
        parts.append(f'<section class="report-section" id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{s.body}</section>')
    parts.append(f"</main><script>{SCRIPT}</script></body></html>")
    return "\n".join(parts)
