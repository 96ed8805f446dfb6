"""A layout picture (plot_layout's LayoutPicture) as inline SVG, for kernel.report(): written
directly rather than through matplotlib, whose per-label text layout takes seconds for a tile of
a few hundred labelled cells, and so that the page needs no plotting library. Every cell carries
its label as a tooltip, so even a tile too large to label shows its threads on hover."""
from __future__ import annotations

import colorsys
import functools
import html

import numpy as np

from .plot_layout import LABEL_LIMIT, LayoutPicture, group_edges

# a perceptually even ramp for graded values (offsets), pastel so that labels stay readable
_RAMP = [(0.27, 0.00, 0.33), (0.23, 0.32, 0.55), (0.13, 0.57, 0.55), (0.37, 0.79, 0.38), (0.99, 0.91, 0.14)]


def _pastel(rgb) -> str:
    r, g, b = (0.45 * c + 0.55 for c in rgb)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


@functools.lru_cache(maxsize=4096)
def colour(value: float, cyclic: bool) -> str:
    if np.isnan(value):
        return "#dddddd"
    if cyclic:
        return _pastel(colorsys.hsv_to_rgb(value % 1.0, 1.0, 1.0))
    x = min(max(value, 0.0), 1.0) * (len(_RAMP) - 1)
    k = min(int(x), len(_RAMP) - 2)
    f = x - k
    return _pastel(tuple(a + (b - a) * f for a, b in zip(_RAMP[k], _RAMP[k + 1])))


def svg(picture: LayoutPicture, labels: bool | None = None) -> str:
    rows, cols = picture.values.shape
    labels = (rows * cols <= LABEL_LIMIT) if labels is None else labels
    longest = max((len(line) for lab in picture.labels.ravel() for line in str(lab).split("\n")), default=1)
    if labels:
        # square cells, widened for long labels (the threads of a replicated element)
        font = max(8.0, min(12.0, 44 * 1.6 / max(longest, 1)))
        cell, cell_w = 44, max(44, int(longest * 0.62 * font) + 6)
    else:
        font = 0.0
        cell = cell_w = max(6, min(22, 560 // max(rows, cols)))
    left, top, bottom = 28, 44, 24
    width = max(left + cols * cell_w + 8, 7 * max(len(picture.title), len(picture.legend)))
    height = top + rows * cell + bottom
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="layout-picture" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="monospace">',
           f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="13" font-family="sans-serif">'
           f"{html.escape(picture.title)}</text>"]
    step = max(1, max(rows, cols) // 32)
    for j in range(0, cols, step):
        out.append(f'<text x="{left + (j + 0.5) * cell_w}" y="{top - 6}" text-anchor="middle" font-size="9">'
                   f"{html.escape(picture.col_names[j])}</text>")
    for i in range(0, rows, step):
        out.append(f'<text x="{left - 4}" y="{top + (i + 0.5) * cell + 3}" text-anchor="end" font-size="9">'
                   f"{html.escape(picture.row_names[i])}</text>")
    stroke = "#333" if labels else "#888"
    width_line = 0.6 if labels else 0.2
    out.append(f'<g stroke="{stroke}" stroke-width="{width_line}">')
    for i in range(rows):
        for j in range(cols):
            x, y = left + j * cell_w, top + i * cell
            lab = str(picture.labels[i, j])
            tip = html.escape(f"[{picture.row_names[i]}, {picture.col_names[j]}] " + lab.replace("\n", " "))
            out.append(f'<rect x="{x}" y="{y}" width="{cell_w}" height="{cell}" fill="'
                       f'{colour(float(picture.values[i, j]), picture.cyclic)}"><title>{tip}</title></rect>')
    out.append("</g>")
    for i in range(rows):
        for j in range(cols):
            x, y = left + j * cell_w, top + i * cell
            lab = str(picture.labels[i, j])
            if labels and lab:
                parts = lab.split("\n")
                for k, part in enumerate(parts):
                    dy = (k - (len(parts) - 1) / 2) * font * 1.1
                    out.append(f'<text x="{x + cell_w / 2}" y="{y + cell / 2 + dy + font / 3}" text-anchor="middle" '
                               f'font-size="{font:.1f}" pointer-events="none">{html.escape(part)}</text>')
    for (x0, y0), (x1, y1) in group_edges(picture.groups):
        out.append(f'<line x1="{left + x0 * cell_w}" y1="{top + y0 * cell}" x2="{left + x1 * cell_w}" '
                   f'y2="{top + y1 * cell}" stroke="#000" stroke-width="2"/>')
    out.append(f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle" font-size="11" font-family="sans-serif">'
               f"{html.escape(picture.legend)}</text>")
    out.append("</svg>")
    return "".join(out)
