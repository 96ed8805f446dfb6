"""Pictures of layouts (TileLang's tilelang.tools.plot_layout). A Fragment is drawn as its tile
with every element coloured by the thread that holds it and labelled "T<thread>:<local index>"
(all threads of a replicated element, "T0/T32:5"); a Layout (a shared-memory swizzle or padding)
as its tile with every element labelled by where it is stored and, when the element type is
known, coloured by the shared-memory bank it falls in (32 banks of 4 bytes), which is what a
swizzle is for.

matplotlib is an optional dependency (`pip install tilewise[plot]`); it is imported only when a
picture is drawn."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..ir.dtype import as_dtype
from ..layout.fragment import Fragment
from ..layout.layout import Layout

BANKS = 32  # shared memory: 32 banks, each 4 bytes wide
BANK_BYTES = 4
WARP = 32
LABEL_LIMIT = 1024  # more cells than this are drawn as colours only: the labels would not be legible
FORMATS = ("pdf", "png", "svg")


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("tilewise.tools.plot_layout draws with matplotlib: pip install 'tilewise[plot]' "
                          "(or pip install matplotlib)") from None
    return matplotlib


@dataclass
class LayoutPicture:
    """What a picture shows, before drawing: one colour value and one label per cell of a 2-D
    grid (rows, cols); `values` are in [0, 1) for the colour map, NaN for an empty cell."""

    title: str
    values: np.ndarray
    labels: np.ndarray  # of str
    row_names: list[str]
    col_names: list[str]
    legend: str
    cyclic: bool = False  # colours repeat (banks, threads of a warp) rather than grade
    groups: np.ndarray | None = None  # e.g. the warp of each cell: drawn as thick borders between groups


def _grid_of(shape: tuple[int, ...], grid_shape) -> tuple[int, int]:
    size = int(np.prod(shape))
    if grid_shape is not None:
        rows, cols = (int(x) for x in grid_shape)
        if rows * cols != size:
            raise ValueError(f"grid_shape {tuple(grid_shape)} has {rows * cols} cells; the layout has {size} elements")
        return rows, cols
    if len(shape) == 1:
        return 1, shape[0]
    return size // shape[-1], shape[-1]


def _formats(formats) -> list[str]:
    if isinstance(formats, (list, tuple)):
        names = [str(f).strip().lower() for f in formats]
    elif isinstance(formats, str):
        names = [f.strip().lower() for f in formats.split(",") if f.strip()]
    else:
        raise TypeError(f"formats must be a string such as 'png', 'pdf,svg' or 'all', got {type(formats).__name__}")
    if names == ["all"]:
        return list(FORMATS)
    bad = [f for f in names if f not in FORMATS]
    if bad or not names:
        raise ValueError(f"unknown picture format(s) {bad or names}; use {', '.join(FORMATS)} or 'all'")
    return list(dict.fromkeys(names))


def fragment_picture(fragment: Fragment, grid_shape=None, crop=None) -> LayoutPicture:
    """Thread and local index of every element of a Fragment."""
    threads = fragment.thread_table()  # (replicate, *shape)
    local = fragment.flat_table()  # (*shape)
    rows, cols = _grid_of(fragment.shape, grid_shape)
    threads = threads.reshape(fragment.replicate, rows, cols)
    local = local.reshape(rows, cols)
    n = int(threads.max()) + 1
    r1, c1 = (rows, cols) if crop is None else (min(rows, crop[0]), min(cols, crop[1]))
    lanes = max(1, min(WARP, n))
    warps_n = max(1, math.ceil(n / lanes))
    first = threads[0, :r1, :c1]
    # the lane picks the hue (neighbouring lanes differ), the warp shifts it a little, so the
    # lanes of one warp and the warps of a block are both told apart
    values = ((first % lanes) + (first // lanes) / warps_n) / lanes
    owners = threads[0, :r1, :c1].astype(str).astype(object)
    for r in range(1, fragment.replicate):
        owners = owners + "/" + threads[r, :r1, :c1].astype(str).astype(object)
    labels = "T" + owners + ":" + local[:r1, :c1].astype(str).astype(object)
    rep = f", each element held by {fragment.replicate} threads" if fragment.replicate > 1 else ""
    part = f" (rows 0-{r1 - 1}, cols 0-{c1 - 1})" if (r1, c1) != (rows, cols) else ""
    title = (f"Fragment {list(fragment.shape)}{part}: {n} threads, {fragment.locals_per_thread()} registers per "
             f"thread{rep}")
    warps = threads[0, :r1, :c1] // WARP
    legend = "T<thread>:<local index>; colour: thread (hue = lane, shade = warp)" + (
        "; thick lines: warp boundaries" if n > WARP else "")
    return LayoutPicture(title, values, labels, [str(i) for i in range(r1)], [str(j) for j in range(c1)],
                         legend, cyclic=True, groups=warps if n > WARP else None)


def _coords(flat: np.ndarray, shape) -> np.ndarray:
    """"i,j" strings (an object array) of flat offsets into `shape`; "" where the offset is -1."""
    parts = np.unravel_index(np.maximum(flat, 0), shape)
    out = parts[0].astype(str).astype(object)
    for p in parts[1:]:
        out = out + "," + p.astype(str).astype(object)
    out[flat < 0] = ""
    return out


def layout_picture(layout: Layout, dtype=None, view: str = "input", grid_shape=None, crop=None) -> LayoutPicture:
    """Where every element of a Layout is stored; with an element type, its bank."""
    if view not in ("input", "output"):
        raise ValueError(f"view must be 'input' or 'output', got {view!r}")
    bits = as_dtype(dtype).bits if dtype is not None else getattr(layout, "element_bits", None)
    out_shape = layout.output_shape()
    flat = layout.flat_table()  # physical offset of each logical element
    if view == "input":
        rows, cols = _grid_of(layout.shape, grid_shape)
        phys = flat.reshape(rows, cols)
        shown = _coords(phys, out_shape)
        offsets = phys.astype(float)
        what = "stored at"
    else:
        if grid_shape is not None:
            raise ValueError("grid_shape applies to view='input' only")
        rows, cols = _grid_of(out_shape, None)
        inv = np.full(int(np.prod(out_shape)), -1, dtype=np.int64)
        inv[flat.ravel()] = np.arange(flat.size)
        inv = inv.reshape(rows, cols)
        shown = _coords(inv, layout.shape)
        offsets = np.arange(rows * cols, dtype=float).reshape(rows, cols)
        offsets[inv < 0] = np.nan  # padding: no element lives there
        what = "holds element"
    r1, c1 = (rows, cols) if crop is None else (min(rows, crop[0]), min(cols, crop[1]))
    offsets = offsets[:r1, :c1]
    shown = shown[:r1, :c1]
    if bits is not None:
        bank = np.floor(offsets * bits / 8 / BANK_BYTES) % BANKS
        values = bank / BANKS
        labels = "B" + np.nan_to_num(bank).astype(np.int64).astype(str).astype(object) + "\n" + shown
        labels[np.isnan(bank)] = ""
        legend = (f"B<bank> and the {'physical' if view == 'input' else 'logical'} index; colour: bank "
                  f"({BANKS} banks x {BANK_BYTES} bytes, {bits}-bit elements)")
        cyclic = True
    else:
        size = max(1, int(np.prod(out_shape)))
        values = offsets / size
        labels = shown
        legend = f"each cell: the {'physical' if view == 'input' else 'logical'} index it is {what}"
        cyclic = False
    part = f" (rows 0-{r1 - 1}, cols 0-{c1 - 1})" if (r1, c1) != (rows, cols) else ""
    space = f"{list(layout.shape)} -> {list(out_shape)}"
    title = f"Layout {space}{part}" + ("" if view == "input" else ", physical view")
    return LayoutPicture(title, values, labels, [str(i) for i in range(r1)], [str(j) for j in range(c1)],
                         legend, cyclic=cyclic)


def picture_of(layout, dtype=None, view: str = "input", grid_shape=None, crop=None) -> LayoutPicture:
    if isinstance(layout, Fragment):
        if view != "input":
            raise ValueError("view='output' applies to a Layout; a Fragment is drawn over its logical tile")
        return fragment_picture(layout, grid_shape, crop)
    if isinstance(layout, Layout):
        return layout_picture(layout, dtype, view, grid_shape, crop)
    raise TypeError(f"plot_layout expects a tilewise Layout or Fragment, got {type(layout).__name__}")


def group_edges(groups: np.ndarray | None) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The unit cell edges ((x0, y0), (x1, y1)) between neighbouring cells of different groups."""
    if groups is None:
        return []
    edges = []
    for i, j in zip(*np.nonzero(groups[:, 1:] != groups[:, :-1])):
        edges.append(((j + 1, i), (j + 1, i + 1)))
    for i, j in zip(*np.nonzero(groups[1:, :] != groups[:-1, :])):
        edges.append(((j, i + 1), (j + 1, i + 1)))
    return edges


def draw(picture: LayoutPicture, colormap: str | None = None, labels: bool | None = None):
    """A matplotlib Figure of the picture (no pyplot: no global state, no display needed)."""
    mpl = _matplotlib()
    from matplotlib.figure import Figure

    rows, cols = picture.values.shape
    labels = (rows * cols <= LABEL_LIMIT) if labels is None else labels
    cell = 0.62 if labels else max(0.08, min(0.3, 12 / max(rows, cols)))
    # fixed margins in inches (title and column numbers above, the legend below): measuring
    # every label for a tight layout would cost more than drawing them
    left, right, top, bottom = 0.45, 0.15, 0.75, 0.4
    grid_w, grid_h = cols * cell, rows * cell
    width = max(grid_w + left + right, 0.075 * max(len(picture.title), len(picture.legend)) + 0.4)
    height = grid_h + top + bottom
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, grid_w / width, grid_h / height))
    cmap = mpl.colormaps[colormap or ("hsv" if picture.cyclic else "viridis")]
    # pastel versions of the colours, so black labels stay readable on them
    shown = np.ma.masked_invalid(picture.values)
    rgba = cmap(shown)
    rgba[..., :3] = 0.45 * rgba[..., :3] + 0.55
    rgba[np.ma.getmaskarray(shown)] = (0.87, 0.87, 0.87, 1.0)
    ax.imshow(rgba, interpolation="nearest", aspect="equal", extent=(0, cols, rows, 0))
    grid = dict(color="black", linewidth=0.4 if labels else 0.15)
    for i in range(rows + 1):
        ax.plot([0, cols], [i, i], **grid)
    for j in range(cols + 1):
        ax.plot([j, j], [0, rows], **grid)
    for (x0, y0), (x1, y1) in group_edges(picture.groups):
        ax.plot([x0, x1], [y0, y1], color="black", linewidth=1.6)
    if labels:
        longest = max((max(len(s) for s in str(lab).split("\n")) for lab in picture.labels.ravel()), default=1)
        size = max(3.0, min(7.0, 7.0 * 7 / max(7, longest)))
        for i in range(rows):
            for j in range(cols):
                ax.text(j + 0.5, i + 0.5, picture.labels[i, j], ha="center", va="center", fontsize=size,
                        family="monospace")
    step = max(1, max(rows, cols) // 32)
    ax.set_xticks([j + 0.5 for j in range(0, cols, step)], [picture.col_names[j] for j in range(0, cols, step)],
                  fontsize=6)
    ax.set_yticks([i + 0.5 for i in range(0, rows, step)], [picture.row_names[i] for i in range(0, rows, step)],
                  fontsize=6)
    ax.xaxis.tick_top()
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    fig.text(0.5, 1 - 0.2 / height, picture.title, ha="center", va="center", fontsize=9)
    fig.text(0.5, 0.18 / height, picture.legend, ha="center", va="center", fontsize=7)
    return fig


def plot_layout(layout, save_directory="./tmp", name: str = "layout", colormap: str | None = None,
                verbose: bool = False, formats: str | list[str] = "pdf", view: str = "input",
                grid_shape: tuple[int, int] | None = None, dtype=None) -> list[str]:
    """Draw `layout` (a Fragment: thread and local index per element; a Layout: where each
    element is stored and, with an element type, its shared-memory bank) and save it as
    `save_directory/name.<format>` for each of `formats` ("pdf", "png", "svg", a comma-separated
    list, or "all"). `view` ("input" or "output", Layout only) chooses whether the grid is the
    logical tile or the physical storage; `grid_shape` reshapes the logical tile's grid.
    `dtype` (a tilewise extension) gives a Layout's element type when it does not carry one
    (make_swizzled_layout's do). Returns the paths written."""
    picture = picture_of(layout, dtype, view, grid_shape)
    if verbose:
        rows, cols = picture.values.shape
        for i in range(rows):
            for j in range(cols):
                print(f"[{i}, {j}] {picture.labels[i, j]}".replace("\n", " "))
    fmts = _formats(formats)
    fig = draw(picture, colormap)
    os.makedirs(save_directory, exist_ok=True)
    paths = []
    for f in fmts:
        path = os.path.join(save_directory, f"{name}.{f}")
        fig.savefig(path, format=f, dpi=150)
        paths.append(path)
        if verbose:
            print(f"saved {path}")
    return paths
