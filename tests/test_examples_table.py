"""benchmarks/examples_table.py's bookkeeping (no example is run): rows re-measured with --rows
replace only their own lines of the README's table, cells of an older table move to the columns of
the same name, and a gfx942 CompileError fills its cell instead of failing the row."""
import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "examples_table.py"
_spec = importlib.util.spec_from_file_location("examples_table", _PATH)
et = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(et)


def _readme(header: list[str], rows: dict[str, list[str]], notes: str = "") -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([f"`{rel}`", *cells]) + " |" for rel, cells in rows.items()]
    return ("# Examples\n\nintro\n\n" + et.BEGIN + "\nMeasured by x on 2026-01-01.\n\n" + "\n".join(lines)
            + "\n" + et.END + "\n" + notes)


def _full_row(rel: str, tag: str) -> list[str]:
    return [f"{tag}{i}" for i in range(len(et.COLUMNS) - 1)]


def test_rows_replaces_only_the_measured_rows_and_keeps_notes_and_stamps():
    rels = [rel for rel, _, _ in et.TABLE]
    text = _readme(et.COLUMNS, {rel: _full_row(rel, "old") for rel in rels},
                   notes="\nWhy `x` is slow: measured.\n")
    old = et.old_rows(text)
    assert set(old) == set(rels)
    new = [f"`{rels[3]}`", *_full_row(rels[3], "new")]
    out = et.render(text, {rels[3]: new}, old, cpu_timing=False)
    after = et.old_rows(out)
    assert after[rels[3]] == new
    for rel in rels[:3] + rels[4:]:
        assert after[rel] == old[rel]
    # the row order is the TABLE's, the text around the table is untouched
    body = out[out.index(et.BEGIN):out.index(et.END)]
    assert [ln.split(" | ")[0][2:] for ln in body.splitlines() if ln.startswith("| `")] == [f"`{r}`" for r in rels]
    assert out.startswith("# Examples\n\nintro\n\n") and out.endswith(et.END + "\n\nWhy `x` is slow: measured.\n")
    assert "Measured by x on 2026-01-01." in out
    assert f"Row `{rels[3]}` re-measured (`--rows`)" in out and "(CPU timing kept from before)" in out
    # re-measuring the same row again replaces its stamp instead of adding a second one
    again = et.render(out, {rels[3]: new}, et.old_rows(out), cpu_timing=True)
    assert again.count(f"Row `{rels[3]}`") == 1 and "kept from before" not in again
    both = et.render(out, {rels[3]: new}, et.old_rows(out), cpu_timing=False, emulate=False)
    assert "(CPU timing and emulator cells kept from before)" in both


def test_whole_table_run_has_one_stamp():
    rels = [rel for rel, _, _ in et.TABLE]
    text = _readme(et.COLUMNS, {rels[0]: _full_row(rels[0], "old")})
    rows = {rel: [f"`{rel}`", *_full_row(rel, "new")] for rel in rels}
    out = et.render(text, rows, et.old_rows(text), cpu_timing=True)
    block = out[out.index(et.BEGIN) + len(et.BEGIN):out.index(et.END)]
    stamps = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("|")]
    assert len(stamps) == 1 and stamps[0].startswith("Measured by `benchmarks/examples_table.py`")
    # a whole-table run of the compile columns only keeps the stamp of the run that timed the CPU
    again = et.render(out, rows, et.old_rows(out), cpu_timing=False)
    block = again[again.index(et.BEGIN) + len(et.BEGIN):again.index(et.END)]
    stamps = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("|")]
    assert len(stamps) == 2 and stamps[0] == [ln for ln in out.splitlines() if ln.startswith("Measured by")][0]
    assert stamps[1].startswith("Every row's other columns re-measured") and "(CPU timing kept from before)" in stamps[1]


def test_older_table_cells_move_by_column_name():
    header = ["example", "kernel lines", et.COLUMNS[et.CPU_COL], "emulator", "sm_80 registers", "spill bytes",
              "shared memory"]
    rel = et.TABLE[0][0]
    old = et.old_rows(_readme(header, {rel: ["10", "1.0 ms vs 2.0 ms (2.00x)", "passes", "203", "0", "48K"]}))
    cells = dict(zip(et.COLUMNS, old[rel]))
    assert cells["kernel lines"] == "10" and cells["sm_80 registers"] == "203"
    assert cells[et.COLUMNS[et.CPU_COL]] == "1.0 ms vs 2.0 ms (2.00x)"
    # the first "spill bytes" / "shared memory" are sm_80's; sm_90a's and gfx942's were not measured
    assert old[rel][et.COLUMNS.index("spill bytes")] == "0"
    assert old[rel][et.COLUMNS.index("shared memory")] == "48K"
    assert old[rel][et.COLUMNS.index("sm_90a registers") + 1] == "not measured"
    assert cells["MFMA count"] == "not measured"


def test_selected_patterns():
    assert [e[0] for e in et.selected(["deepseek_mla"])] == ["deepseek_mla/example_mla_decode.py"]
    assert {e[0] for e in et.selected(["norm/*"])} == {"norm/example_rms_norm.py", "norm/example_layer_norm.py"}
    with pytest.raises(SystemExit, match="matches no example"):
        et.selected(["no_such_example"])


def test_gfx942_cells():
    ok = {"vgprs": 268, "agprs": 128, "scratch_bytes": 0, "lds_bytes": 49152, "mfma": 64}
    plain = {"vgprs": 40, "agprs": 0, "scratch_bytes": 16, "lds_bytes": 512, "mfma": 0}
    # .vgpr_count on gfx942 counts the AGPRs too: 268 = 140 arch VGPRs + 128 AGPRs
    assert et._gfx942([ok, plain]) == "140+128/40 | 0/16 | 48K/512 | 64/0"
    failed = {"error": "CompileError: /x/examples/a/example_b.py:27: the LDS tiles need 120 KiB | gfx942 has 64"}
    assert et._gfx942([failed]) == "CompileError: line 27: the LDS tiles need 120 KiB / gfx942 has 64 | ✗ | ✗ | ✗"
    # a failing kernel among others: its place is ✗ in every cell, the reason follows the VGPRs
    assert et._gfx942([ok, failed]) == ("140+128/✗ (CompileError: line 27: the LDS tiles need 120 KiB / gfx942 has 64)"
                                        " | 0/✗ | 48K/✗ | 64/✗")
    assert len(et._short("x" * 300)) == 100
