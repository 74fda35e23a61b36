"""The demo's report: tables in the paper's layout (its Tables 1, 3 and 4), plots, and report.md."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..commands.report import load_results
from ..report import plots
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


def steps_tables(
    curves: dict[str, list[Row]], length: int, cell: Callable[[Row, int], str] | None = None
) -> tuple[str, str]:
    """Perplexity at `length` vs fine-tuning steps (Table 3) and a passkey cell at `length` vs steps
    (Table 4; default the k_max cell of `_k`)."""
    cell = cell or _k
    steps = sorted({r.ft_steps for rs in curves.values() for r in rs})
    head = ["Method", "Ctx window", *map(str, steps)]
    t3, t4 = [], []
    for name, rs in curves.items():
        at = {r.ft_steps: r for r in rs}
        t3.append([name, length, *(fmt_ppl(at[s].ppl.get(length)) if s in at else "-" for s in steps)])
        t4.append([name, length, *(cell(at[s], length) if s in at else "-" for s in steps)])
    return markdown(head, t3), markdown(head, t4)


def _k(row: Row, length: int) -> str:
    """k_max (mean accuracy over the tested distances; how often the answer held the key's digits in any
    order, a diagnostic)."""
    if length not in row.k_max:
        return "-"
    return f"{row.k_max[length]} ({row.passkey_accuracy[length]:.0%}; {row.passkey_found[length]:.0%})"


def depth_cell(row: Row, length: int) -> str:
    """The passkey cell of a depth test: exact-match accuracy with the key at the evaluator's depth."""
    return f"{row.depth_accuracy[length]:.0%}" if length in row.depth_accuracy else "-"


def passkey_table(rows: list[Row], lengths: list[int]) -> str:
    """The passkey cell of `_k` by prompt length."""
    body = [[r.label, *(_k(r, n) for n in lengths)] for r in rows if r.k_max]
    return markdown(["Model", *map(str, lengths)], body)


def steps_plot(
    curves: dict[str, list[Row]],
    length: int,
    path: Path,
    depth: float | None = None,
    passkey_length: int | None = None,
) -> Path:
    """Perplexity and k_max at `length` against fine-tuning steps, one line per method (with `depth`: the
    passkey accuracy at `passkey_length` (default `length`) with the key at that depth instead of k_max)."""
    pk = passkey_length or length
    fig = plots._figure(10.0, 4.0)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, rs in curves.items():
        xs = [r.ft_steps for r in rs]
        left.plot(xs, [r.ppl.get(length) for r in rs], marker="o", label=name)
        if depth is None:
            right.plot(xs, [r.k_max.get(length) for r in rs], marker="o", label=name)
        else:
            right.plot(xs, [r.depth_accuracy.get(pk) for r in rs], marker="o", label=name)
    values = [r.ppl[length] for rs in curves.values() for r in rs if length in r.ppl]
    if plots.use_log_scale(values):
        left.set_yscale("log")
    left.set(xlabel="fine-tuning steps", ylabel=f"perplexity at {length}", title="Perplexity vs steps")
    if depth is None:
        right.set(xlabel="fine-tuning steps", ylabel=f"k_max at prompt length {length}",
                  title="Passkey k_max vs steps")  # fmt: skip
        right.set_ylim(0, length * 1.05)
    else:
        right.set(xlabel="fine-tuning steps", ylabel=f"accuracy at {pk}, key at depth {depth:g}",
                  title="Passkey accuracy vs steps")  # fmt: skip
        right.set_ylim(-0.05, 1.05)
    return plots.finish(fig, path, left, right, which="major")


def rows_ppl_plot(rows: list[Row], lengths: list[int], path: Path) -> Path:
    """Perplexity vs evaluation length from the rows' numbers, one line per model (log y if > 10x)."""
    fig = plots._figure()
    ax = fig.add_subplot()
    values = []
    for r in rows:
        xs = [n for n in lengths if n in r.ppl]
        values += [r.ppl[n] for n in xs]
        ax.plot(xs, [r.ppl[n] for n in xs], marker="o", label=r.label)
    ax.set_xscale("log", base=2)
    if plots.use_log_scale(values):
        ax.set_yscale("log")
    ax.set(xlabel="evaluation length (tokens)", ylabel="perplexity", title="Perplexity vs length")
    return plots.finish(fig, path, ax)


def position_plot(files: list[Path], keep: set[str], length: int, path: Path) -> Path:
    """Perplexity by position in the `length` window for the rows named in `keep`."""
    ppl = [r for r in load_results(files)["ppl"] if r["model"]["name"] in keep]
    return plots.position_plot(_at_length(ppl, length), path)


def eval_plots(files: list[Path], keep: set[str], length: int, folder: Path) -> list[str]:
    """`ropescale report`'s plots for the result files of the rows named in `keep` (passkey at `length`)."""
    grouped = load_results(files)
    ppl = [r for r in grouped["ppl"] if r["model"]["name"] in keep]
    passkey = _at_length([r for r in grouped["passkey"] if r["model"]["name"] in keep], length)
    made = [plots.ppl_plot(ppl, folder / "ppl_vs_length.png").name]
    made.append(position_plot(files, keep, length, folder / "ppl_by_position.png").name)
    if passkey:
        made.append(plots.passkey_plot(passkey, folder / "passkey_accuracy.png").name)
    return made


def _at_length(results: list[dict[str, Any]], length: int) -> list[dict[str, Any]]:
    """Copies of the results keeping only their cells at `length`."""
    return [{**r, "lengths": [c for c in r["lengths"] if c["length"] == length]} for r in results]
