"""Regenerate docs/models.md from the family matrix (tests/models/families.py); ``--check`` exits 1 if the
page is out of date (tests/models/test_families.py runs the same comparison)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the matrix lives with the tests

from tests.models.families import render_models_doc  # noqa: E402

PAGE = ROOT / "docs" / "models.md"


def main(argv: list[str]) -> int:
    text = render_models_doc()
    if "--check" in argv:
        if PAGE.read_text() != text:
            print(f"{PAGE} is out of date: run python tools/gen_models_doc.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
