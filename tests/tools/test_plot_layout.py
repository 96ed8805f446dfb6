"""tilewise.tools.plot_layout (TileLang's name and arguments): a Fragment's picture names the thread
and local index of every element (all threads of a replicated one), a shared Layout's the bank
every element falls in, so that a swizzle's point — the rows ldmatrix reads together spread over
all banks — shows; PNG, SVG and PDF files through matplotlib; the TileLang import paths."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.layout import make_padded_layout, make_swizzled_layout
from tilewise.tools import plot_layout
from tilewise.tools.plot_layout import group_edges, picture_of


def mma_like_fragment():
    """The 16x16 accumulator of one mma.m16n8k16 pair: 32 threads, 8 registers each."""
    return T.Fragment((16, 16), forward_thread_fn=lambda i, j: (i % 8) * 4 + j % 8 // 2,
                      forward_index_fn=lambda i, j: (j // 8) * 4 + (i // 8) * 2 + j % 2)


def test_fragment_picture_names_thread_and_local_index_of_every_element():
    frag = mma_like_fragment()
    pic = picture_of(frag)
    assert pic.labels.shape == (16, 16)
    assert pic.labels[0, 0] == "T0:0" and pic.labels[0, 1] == "T0:1" and pic.labels[0, 2] == "T1:0"
    assert pic.labels[8, 0] == "T0:2" and pic.labels[0, 8] == "T0:4" and pic.labels[15, 15] == "T31:7"
    # every (thread, register) slot appears exactly once: the picture is the fragment's whole map
    assert len(set(pic.labels.ravel())) == 256
    # one colour per thread: equal colours exactly where the thread is equal
    threads = np.array([[int(s[1:].split(":")[0]) for s in row] for row in pic.labels])
    for t in (0, 5, 31):
        assert np.unique(pic.values[threads == t]).size == 1
    assert np.unique(pic.values).size == 32
    assert "32 threads, 8 registers per thread" in pic.title


def test_fragment_over_several_warps_marks_the_warp_boundaries():
    frag = T.Fragment((8, 16), forward_thread_fn=lambda i, j: i * 8 + j // 2, forward_index_fn=lambda i, j: j % 2)
    # 64 threads: rows 0-3 belong to warp 0, rows 4-7 to warp 1; one boundary between rows 3 and 4
    assert sorted(group_edges(picture_of(frag).groups)) == [((j, 4), (j + 1, 4)) for j in range(16)]
    assert picture_of(mma_like_fragment()).groups is None  # one warp: no boundaries


def test_replicated_fragment_shows_every_thread_holding_an_element():
    frag = T.Fragment((4, 8), forward_thread_fn=lambda i, j, r: i + 4 * r, forward_index_fn=lambda i, j: j,
                      replicate=2)
    pic = picture_of(frag)
    assert pic.labels[0, 0] == "T0/4:0" and pic.labels[3, 7] == "T3/7:7"
    assert "each element held by 2 threads" in pic.title


def _banks_of_first_chunks(layout, bits=16):
    """The banks holding the first 16-byte chunk of each of rows 0-7: what one ldmatrix phase reads."""
    pic = picture_of(layout, dtype=f"float{bits}")
    return [int(round(pic.values[r, 0] * 32)) for r in range(8)]


def test_swizzle_spreads_the_rows_ldmatrix_reads_over_all_banks():
    swizzled = make_swizzled_layout((32, 64), "float16")
    assert swizzled.element_bits == 16  # the layout knows its element type: the picture shows banks
    banks = _banks_of_first_chunks(swizzled)
    assert sorted(b // 4 for b in banks) == list(range(8))  # 8 chunks in 8 different groups of 4 banks
    plain = tilewise.Layout((32, 64), lambda i, j: (i, j))
    assert _banks_of_first_chunks(plain) == [0] * 8  # unswizzled: all 8 rows in banks 0-3, an 8-way conflict
    pic = picture_of(swizzled)
    assert pic.labels[1, 0].startswith("B4\n1,8") and "32 banks x 4 bytes, 16-bit elements" in pic.legend


def test_layout_without_element_type_shows_where_elements_are_stored():
    lay = tilewise.Layout((4, 4), lambda i, j: (j, i))  # a transpose
    pic = picture_of(lay)
    assert pic.labels[1, 2] == "2,1" and pic.labels[3, 0] == "0,3"
    out = picture_of(lay, view="output")  # the storage grid, labelled with the logical index it holds
    assert out.labels[2, 1] == "1,2"


def test_padded_layout_output_view_leaves_the_padding_empty():
    pad = make_padded_layout((4, 8), "float32")  # rows padded by 16 bytes: 4 more float32
    pic = picture_of(pad, view="output")
    assert pic.values.shape == (4, 12)
    assert np.isnan(pic.values[:, 8:]).all() and not np.isnan(pic.values[:, :8]).any()
    assert pic.labels[1, 0].endswith("1,0")
    # row r starts 12 words after row r-1: banks 0, 12, 24, 4
    assert [int(round(pic.values[r, 0] * 32)) for r in range(4)] == [0, 12, 24, 4]


def test_plot_layout_writes_the_requested_formats(tmp_path, capsys):
    frag = T.Fragment((4, 8), forward_thread_fn=lambda i, j: i * 2 + j // 4, forward_index_fn=lambda i, j: j % 4)
    paths = plot_layout(frag, save_directory=str(tmp_path), name="frag", formats="png,svg", verbose=True)
    assert [p.rsplit(".", 1)[1] for p in paths] == ["png", "svg"]
    assert (tmp_path / "frag.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "frag.svg").read_text()
    assert "<svg" in svg
    printed = capsys.readouterr().out
    assert "[0, 0] T0:0" in printed and "[3, 7] T7:3" in printed
    lay = make_swizzled_layout((4, 16), "float16")
    paths = plot_layout(lay, save_directory=str(tmp_path / "sub"), name="swz", formats="all", colormap="twilight")
    assert sorted(p.rsplit(".", 1)[1] for p in paths) == ["pdf", "png", "svg"]
    assert (tmp_path / "sub" / "swz.pdf").read_bytes()[:5] == b"%PDF-"


def test_plot_layout_refuses_what_it_cannot_draw(tmp_path):
    frag = mma_like_fragment()
    with pytest.raises(ValueError, match="unknown picture format"):
        plot_layout(frag, str(tmp_path), formats="jpeg")
    with pytest.raises(TypeError, match="expects a tilewise Layout or Fragment"):
        plot_layout(np.zeros((2, 2)), str(tmp_path))
    with pytest.raises(ValueError, match="grid_shape"):
        plot_layout(frag, str(tmp_path), grid_shape=(3, 5))
    with pytest.raises(ValueError, match="view='output' applies to a Layout"):
        plot_layout(frag, str(tmp_path), view="output")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_grid_shape_regroups_the_logical_tile():
    pic = picture_of(mma_like_fragment(), grid_shape=(32, 8))
    assert pic.labels.shape == (32, 8)
    assert pic.labels[1, 0] == "T0:4"  # element (0, 8) starts the second row of the 32x8 grid


def test_tilelang_import_paths():
    tools = importlib.import_module("tilewise.tools")
    assert tilewise.tools is tools and tools.plot_layout is plot_layout and callable(plot_layout)
    module = importlib.import_module("tilewise.tools.plot_layout")
    assert module.plot_layout is plot_layout
