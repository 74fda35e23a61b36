"""Regenerate the flags tables in docs/*.md from the config dataclasses (`make docs`).

Each page holds hand-written prose and, per command, a block between
``<!-- flags: COMMAND -->`` and ``<!-- /flags -->``; this script rewrites only those blocks, from the
same dataclass fields (and their ``help``) the CLI builds its parser from. ``--check`` exits 1 if a
page is out of date (tests/test_docs.py runs the same comparison).
"""

from __future__ import annotations

import dataclasses
import re
import sys
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(<!-- flags: (?P<cmd>[a-z ]+?) -->\n)(?P<body>.*?)(<!-- /flags -->)", re.S)


def _default(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, Path):
        home = str(Path.home())
        text = str(value)
        return "~" + text[len(home) :] if text.startswith(home) else text
    return str(value)


def _rows(
    cls: type, defaults: dict[str, Any], prefix: str = "", optional_group: bool = False
) -> list[tuple[str, str, str]]:
    """(flag, default, meaning) of each knob; `defaults` by dotted path (the command's, recipe applied)."""
    from ropescale.config.flat import fields, flag, has_default

    rows = []
    for f, tp, optional in fields(cls):
        path = prefix + f.name
        if dataclasses.is_dataclass(tp):  # a group of flags (the scaling, loading): its own help first
            rows.append((f"*{f.name.replace('_', ' ')}:*", "", f.metadata.get("help", "")))
            rows += _rows(tp, defaults, path + ".", optional_group or optional)
            continue
        required = not has_default(f)
        choices = f.metadata.get("choices") or (
            typing.get_args(tp) if typing.get_origin(tp) is typing.Literal else None
        )
        if f.metadata.get("positional"):
            name = f"`{f.name.upper()}`"
            if typing.get_origin(tp) not in (list, tuple):
                name += f" (or `--{f.name.replace('_', '-')}`)"
        elif tp is bool:
            name = f"`{flag(f)}` / `--no-{flag(f)[2:]}`"
        else:
            name = f"`{flag(f)}`"
        if choices:
            name += " `{" + ",".join(map(str, choices)) + "}`"
        if required:
            default = "required"
        elif optional_group:
            default = ""  # the nested group stays unset (e.g. the model's own scaling) unless a flag is used
        else:
            default = _default(defaults[path])
        helptext = " ".join(f.metadata.get("help", "").split()).replace("|", "\\|")
        rows.append((name, default, helptext))
    return rows


def flags_table(command: str) -> str:
    """The markdown table of `ropescale COMMAND`'s flags (its defaults with its recipe applied)."""
    from ropescale.cli import COMMANDS, _usage, defaults
    from ropescale.config.flat import recipe_names

    cmd = COMMANDS[command]
    recipes = ", ".join(f"`{n}`" for n in recipe_names())
    lines = [
        f"`ropescale {command} {_usage(cmd.config)}`",
        "",
        "| flag | default | meaning |",
        "|---|---|---|",
        f"| `--config` FILE | {f'`{cmd.recipe}`' if cmd.recipe else ''} | JSON or TOML file of defaults (flags "
        f"override it), or a shipped recipe: {recipes} (ropescale/recipes/) |",
    ]
    lines += [
        f"| {name} | {default} | {helptext} |"
        for name, default, helptext in _rows(cmd.config, defaults(command))
    ]
    return "\n".join(lines) + "\n"


def render(text: str) -> str:
    """`text` with every flags block regenerated."""
    return BLOCK.sub(lambda m: m.group(1) + flags_table(m.group("cmd")) + m.group(4), text)


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def main(argv: list[str]) -> int:
    stale = []
    for page in pages():
        text = page.read_text()
        new = render(text)
        if new != text:
            stale.append(page)
            if "--check" not in argv:
                page.write_text(new)
    if stale and "--check" in argv:
        print("out of date (run `make docs`): " + ", ".join(str(p.relative_to(ROOT)) for p in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main(sys.argv[1:]))
