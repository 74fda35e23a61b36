"""Compare two output directories of the same command (e.g. a quick demo before and after a refactor):
every JSON/JSONL file under both, leaf by leaf, after dropping timings and the environment record,
replacing each run's own directory (and its temporary `.NAME.tmp-*` siblings) and the two source trees
by placeholders, and reading training configs by flag name (so a flat record and a grouped one compare
equal). Prints each difference and a count; exits 1 if there is any.

    python tools/compare_runs.py BEFORE_DIR AFTER_DIR [--src BEFORE_SRC AFTER_SRC]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TIMING = ("seconds", "timings", "tokens_per_s", "peak_memory_mb", "environment")


def _timing(key: str) -> bool:
    return key.endswith("_s") or key in TIMING


def _load(path: Path) -> Any:
    from ropescale.config import TrainConfig
    from ropescale.config.flat import by_flag

    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    data = json.loads(path.read_text())
    if path.name in ("train_config.json", "ropescale.json") and isinstance(data.get("config"), dict):
        data["config"] = by_flag(TrainConfig, data["config"])
    return data


def _walk(x: Any, y: Any, path: str, norm, out: list) -> None:
    if isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(set(x) | set(y)):
            if not _timing(k):
                _walk(x.get(k, "<missing>"), y.get(k, "<missing>"), f"{path}/{k}", norm, out)
    elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            _walk(u, v, f"{path}[{i}]", norm, out)
    elif norm[0](x) != norm[1](y):
        out.append((path, x, y))


def _normaliser(run: Path, src: Path | None):
    run = run.resolve()
    temp = re.compile(re.escape(str(run.parent)) + r"/\." + re.escape(run.name) + r"\.tmp-\w+")

    def norm(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = temp.sub("<RUN>", value).replace(str(run), "<RUN>")
        return value.replace(str(src), "<SRC>") if src else value

    return norm


def compare(a: Path, b: Path, src: tuple[Path, Path] | None = None) -> list[tuple[str, str, Any, Any]]:
    norm = (_normaliser(a, src[0] if src else None), _normaliser(b, src[1] if src else None))
    names = sorted(
        {p.relative_to(r) for r in (a, b) for p in r.rglob("*") if p.suffix in (".json", ".jsonl")}
    )
    diffs = []
    for rel in names:
        if not ((a / rel).is_file() and (b / rel).is_file()):
            diffs.append((str(rel), "", "present" if (a / rel).is_file() else "<missing>",
                          "present" if (b / rel).is_file() else "<missing>"))  # fmt: skip
            continue
        out: list = []
        _walk(_load(a / rel), _load(b / rel), "", norm, out)
        diffs += [(str(rel), *d) for d in out]
    return diffs


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--src", nargs=2, type=Path, help="the two source trees (paths recorded in the runs)")
    args = p.parse_args(argv)
    diffs = compare(args.before, args.after, tuple(args.src) if args.src else None)
    for rel, path, x, y in diffs:
        print(f"{rel} {path}: {str(x)[:120]!r} -> {str(y)[:120]!r}")
    files = {p for r in (args.before, args.after) for p in r.rglob("*") if p.suffix in (".json", ".jsonl")}
    print(f"{len(files) // 2} JSON/JSONL files compared, {len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main(sys.argv[1:]))
