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
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"RESULTS {path}: not a readable JSON file ({err})") from None
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind not in KINDS:
            raise ValueError(f"RESULTS {path}: not a ropescale eval result (kind {kind!r})")
        data["_path"] = str(path)
        grouped[kind].append(data)
    return grouped


class ReportResult(TypedDict):
    """What `report` returns: the directory, the files written into it and report.md's text."""

    out: str
    files: list[str]
    markdown: str


def run_report(cfg: ReportConfig) -> ReportResult:
    outputs.check_out_dir(cfg.out, cfg.overwrite)  # before any work
    grouped = load_results(list(cfg.results))
    try:
        sections = (
            tables.ppl_tables(grouped["ppl"])
            + tables.passkey_tables(grouped["passkey"])
            + tables.summarize_tables(grouped["summarize"])
            + tables.harness_tables(grouped["harness"])
            + tables.ruler_tables(grouped["ruler"])
        )
    except (KeyError, TypeError, IndexError) as err:  # a file that claims a kind but lacks its fields
        raise ValueError(
            f"RESULTS: a result file lacks the field {err} (not written by this ropescale?)"
        ) from None
    sources = "\n".join(f"- `{r['_path']}` ({k})" for k in KINDS for r in grouped[k])
    text = "# ropescale evaluation report\n\n" + "\n\n".join(sections) + f"\n\nSources:\n{sources}\n"
    files = ["report.md"]
    with outputs.atomic_dir(cfg.out, cfg.overwrite) as tmp:
        outputs.write_text(tmp / "report.md", text)
        if cfg.plots:
            files += _plots(grouped, tmp)
    return {"out": str(cfg.out), "files": files, "markdown": text}


def _plots(grouped: dict[str, list[dict[str, Any]]], folder: Path) -> list[str]:
    made = []
    if grouped["ppl"]:
        made.append(plots.ppl_plot(grouped["ppl"], folder / "ppl_vs_length.png").name)
    if any(c.get("by_position") for r in grouped["ppl"] for c in r["lengths"]):
        made.append(plots.position_plot(grouped["ppl"], folder / "ppl_by_position.png").name)
    if any(c["ks"] for r in grouped["passkey"] for c in r["lengths"]):
        made.append(plots.passkey_plot(grouped["passkey"], folder / "passkey_accuracy.png").name)
    if grouped["ruler"]:
        made.append(plots.ruler_plot(grouped["ruler"], folder / "ruler_vs_length.png").name)
    for i, r in enumerate(grouped["passkey"]):
        if r["depths"]:
            made.append(plots.depth_heatmap(r, folder / f"passkey_depth_{i}.png").name)
    return made


def format_report(result: ReportResult) -> str:
    return f"{result['markdown']}\nwrote {result['out']}: {', '.join(result['files'])}"
