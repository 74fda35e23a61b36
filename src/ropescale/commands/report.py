"""`ropescale report`: result JSON files in, report.md (tables in the paper's layout) and PNGs out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from .. import outputs
from ..config import ReportConfig
from ..report import plots, tables

KINDS = ("ppl", "passkey", "summarize", "harness", "ruler")


def load_results(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Result files grouped by kind, in the order given. Raises ValueError for files that are not results."""
    grouped: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:  # ValueError: not UTF-8 (a binary file) or not JSON
            why = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"RESULTS {path}: not a readable JSON file ({why})") from None
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind not in KINDS:
            raise ValueError(f"RESULTS {path}: not a ropescale eval result (kind {kind!r})")
        data["_path"] = str(path)
        grouped[kind].append(data)
    return grouped


TABLES = {
    "ppl": tables.ppl_tables,
    "passkey": tables.passkey_tables,
    "summarize": tables.summarize_tables,
    "harness": tables.harness_tables,
    "ruler": tables.ruler_tables,
}


class ReportResult(TypedDict):
    """What `report` returns: the directory, the files written into it and report.md's text."""

    out: str
    files: list[str]
    markdown: str


def run_report(cfg: ReportConfig) -> ReportResult:
    outputs.check_out_dir(cfg.out, cfg.overwrite)  # before any work
    grouped = load_results(list(cfg.results))
    sections = [s for kind in KINDS for s in _guarded(grouped, kind, TABLES[kind], grouped[kind])]
    ropes = {
        k: v for kind in KINDS for k, v in _guarded(grouped, kind, tables.layer_ropes, grouped[kind]).items()
    }
    sections += tables.layer_rope_section(ropes)
    sources = "\n".join(f"- `{r['_path']}` ({k})" for k in KINDS for r in grouped[k])
    text = "# ropescale evaluation report\n\n" + "\n\n".join(sections) + f"\n\nSources:\n{sources}\n"
    files = ["report.md"]
    with outputs.atomic_dir(cfg.out, cfg.overwrite) as tmp:
        outputs.write_text(tmp / "report.md", text)
        if cfg.plots:
            files += _plots(grouped, tmp)
    return {"out": str(cfg.out), "files": files, "markdown": text}


def _guarded(grouped: dict[str, list[dict[str, Any]]], kind: str, make: Any, *args: Any) -> Any:
    """`make(*args)` (a table or a plot of `kind`'s results); a result that claims the kind but lacks a field
    that reading it needs is a ValueError naming its files, for tables and plots alike."""
    try:
        return make(*args)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as err:
        files = ", ".join(r["_path"] for r in grouped[kind])
        raise ValueError(
            f"RESULTS {files}: a {kind} result lacks the field {err} or holds it in another shape "
            "(not written by this ropescale?)"
        ) from None


def _plots(grouped: dict[str, list[dict[str, Any]]], folder: Path) -> list[str]:
    made = []

    def plot(kind: str, make: Any, *args: Any) -> None:
        made.append(_guarded(grouped, kind, make, *args).name)

    has = {kind: _guarded(grouped, kind, _wants_plot, kind, grouped[kind]) for kind in KINDS}
    if grouped["ppl"]:
        plot("ppl", plots.ppl_plot, grouped["ppl"], folder / "ppl_vs_length.png")
    if has["ppl"]:
        plot("ppl", plots.position_plot, grouped["ppl"], folder / "ppl_by_position.png")
    if has["passkey"]:
        plot("passkey", plots.passkey_plot, grouped["passkey"], folder / "passkey_accuracy.png")
    if grouped["ruler"]:
        plot("ruler", plots.ruler_plot, grouped["ruler"], folder / "ruler_vs_length.png")
    for i, r in enumerate(grouped["passkey"]):
        if _guarded(grouped, "passkey", dict.__getitem__, r, "depths"):
            plot("passkey", plots.depth_heatmap, r, folder / f"passkey_depth_{i}.png")
    return made


def _wants_plot(kind: str, results: list[dict[str, Any]]) -> bool:
    """ppl: some length has a by-position curve; passkey: some length has per-k accuracies."""
    if kind == "ppl":
        return any(c.get("by_position") for r in results for c in r["lengths"])
    if kind == "passkey":
        return any(c["ks"] for r in results for c in r["lengths"])
    return False


def format_report(result: ReportResult) -> str:
    return f"{result['markdown']}\nwrote {result['out']}: {', '.join(result['files'])}"
