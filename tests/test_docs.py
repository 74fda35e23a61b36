"""docs/*.md: the flags tables match the config dataclasses (regenerated in memory, compared to the files)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flags_tables_are_current():
    gen = _gen_docs()
    stale = [p.name for p in gen.pages() if gen.render(p.read_text()) != p.read_text()]
    assert not stale, f"docs out of date, run `make docs`: {stale}"


def test_every_command_has_a_flags_table():
    from ropescale.cli import COMMANDS

    gen = _gen_docs()
    documented = {m.group("cmd") for p in gen.pages() for m in gen.BLOCK.finditer(p.read_text())}
    assert documented == set(COMMANDS)


def test_table_lists_every_flag_of_the_parser():
    """Each option the parser offers for `eval ppl` appears in its table (and a new knob would, too)."""
    from ropescale.cli import build_parser

    _, leaves = build_parser()
    table = _gen_docs().flags_table("eval ppl")
    flags = {s for a in leaves["eval ppl"]._actions for s in a.option_strings if s.startswith("--")}
    flags -= {"--help"}
    missing = sorted(f for f in flags if f"`{f}`" not in table)
    assert not missing
    assert "`MODEL` (or `--model`)" in table and "`{none,linear,ntk," in table
