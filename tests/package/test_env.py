"""tilewise/env.py is the one list of TILEWISE_* variables: the README's table matches it, and no
other module reads the environment for one of them."""
from __future__ import annotations

import re
from pathlib import Path

import tilewise
from tilewise import env

ROOT = Path(tilewise.__file__).parent


def test_the_readme_table_is_the_list():
    readme = (ROOT.parent / "README.md").read_text()
    rows = re.findall(r"^\| `(TILEWISE_\w+)` \| (.*?) \| (.*) \|$", readme, re.M)
    assert [r[0] for r in rows] == list(env.VARIABLES)
    for name, default, meaning in rows:
        v = env.VARIABLES[name]
        assert default == (f"`{v.default}`" if v.default else "—") and meaning == v.meaning, name


def test_only_env_py_reads_them_and_every_name_used_is_listed():
    for path in ROOT.rglob("*.py"):
        text = path.read_text()
        if path.name != "env.py":
            assert not re.search(r"environ(\.get)?[\[(]\s*\"TILEWISE_", text), path
        for name in re.findall(r"\bTILEWISE_[A-Z_]+\b", text):
            assert name in env.VARIABLES, (path, name)


def test_flags_read_like_booleans(monkeypatch):
    monkeypatch.setenv("TILEWISE_EMULATOR_RACES", "off")
    assert env.flag("TILEWISE_EMULATOR_RACES") is False
    monkeypatch.setenv("TILEWISE_EMULATOR_RACES", "nonsense")
    assert env.flag("TILEWISE_EMULATOR_RACES") is True  # the default
    monkeypatch.delenv("TILEWISE_EMULATOR_UNINIT", raising=False)
    assert env.flag("TILEWISE_EMULATOR_UNINIT") is False
