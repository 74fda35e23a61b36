"""The demo's report: tables in the paper's layout (its Tables 1, 3 and 4), plots, and report.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..report import plots
from ..report.run import load_results
from ..report.tables import fmt_ppl, markdown
from .evals import Row


def table1(rows: list[Row], lengths: list[int], window: int, model: str) -> str:
    """Perplexity by evaluation length (the paper's Table 1): one row per model / method / steps."""
    header = ["Model", "Ctx window", "Method", "FT steps", *map(str, lengths)]
    body = []
    for r in rows:
        ctx = window if r.method == "none" and not r.ft_steps else round(window * r.factor)
        method = "None" if r.method == "none" and not r.ft_steps else _method(r)
        body.append([model, ctx, method, r.ft_steps, *(fmt_ppl(r.ppl.get(n)) for n in lengths)])
    return markdown(header, body)


def _method(r: Row) -> str:
    if r.method == "none":
        return "FT (direct)"
    name = {"linear": "PI"}.get(r.method, r.method)
    return f"{name} x{r.factor:g}"


def steps_tables(curves: dict[str, list[Row]], length: int) -> tuple[str, str]:
    """Perplexity at `length` vs fine-tuning steps (Table 3) and the passkey cell of `_k` at `length` vs
    steps (Table 4)."""
    steps = sorted({r.ft_steps for rs in curves.values() for r in rs})
    head = ["Method", "Ctx window", *map(str, steps)]
    t3, t4 = [], []
    for name, rs in curves.items():
        at = {r.ft_steps: r for r in rs}
        t3.append([name, length, *(fmt_ppl(at[s].ppl.get(length)) if s in at else "-" for s in steps)])
        t4.append([name, length, *(_k(at[s], length) if s in at else "-" for s in steps)])
    return markdown(head, t3), markdown(head, t4)


def _k(row: Row, length: int) -> str:
    """k_max (mean accuracy over the tested distances; how often the answer held the key's digits in any
    order, a diagnostic)."""
    if length not in row.k_max:
        return "-"
    return f"{row.k_max[length]} ({row.passkey_accuracy[length]:.0%}; {row.passkey_found[length]:.0%})"


def passkey_table(rows: list[Row], lengths: list[int]) -> str:
    """The passkey cell of `_k` by prompt length."""
    body = [[r.label, *(_k(r, n) for n in lengths)] for r in rows if r.k_max]
    return markdown(["Model", *map(str, lengths)], body)


def steps_plot(curves: dict[str, list[Row]], length: int, path: Path) -> Path:
    """Perplexity and k_max at `length` against fine-tuning steps, one line per method."""
    fig = plots._figure(10.0, 4.0)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, rs in curves.items():
        xs = [r.ft_steps for r in rs]
        left.plot(xs, [r.ppl.get(length) for r in rs], marker="o", label=name)
        right.plot(xs, [r.k_max.get(length) for r in rs], marker="o", label=name)
    values = [r.ppl[length] for rs in curves.values() for r in rs if length in r.ppl]
    if plots.use_log_scale(values):
        left.set_yscale("log")
    left.set(xlabel="fine-tuning steps", ylabel=f"perplexity at {length}", title="Perplexity vs steps")
    right.set(
        xlabel="fine-tuning steps", ylabel=f"k_max at prompt length {length}", title="Passkey k_max vs steps"
    )
    right.set_ylim(0, length * 1.05)
    return plots.finish(fig, path, left, right, which="major")


def eval_plots(files: list[Path], keep: set[str], length: int, folder: Path) -> list[str]:
    """`ropescale report`'s plots for the result files of the rows named in `keep` (passkey at `length`)."""
    grouped = load_results(files)
    ppl = [r for r in grouped["ppl"] if r["model"]["name"] in keep]
    passkey = _at_length([r for r in grouped["passkey"] if r["model"]["name"] in keep], length)
    made = [plots.ppl_plot(ppl, folder / "ppl_vs_length.png").name]
    made.append(plots.position_plot(_at_length(ppl, length), folder / "ppl_by_position.png").name)
    if passkey:
        made.append(plots.passkey_plot(passkey, folder / "passkey_accuracy.png").name)
    return made


def _at_length(results: list[dict[str, Any]], length: int) -> list[dict[str, Any]]:
    """Copies of the results keeping only their cells at `length`."""
    return [{**r, "lengths": [c for c in r["lengths"] if c["length"] == length]} for r in results]
