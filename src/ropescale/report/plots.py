"""PNG plots from result files, drawn with matplotlib's object API (no pyplot global state)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from .tables import row_label


def _figure(width: float = 7.0, height: float = 4.5):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ValueError(
            "ropescale report needs matplotlib for plots: pip install 'ropescale[plots]'"
        ) from None
    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def finish(fig, path: Path, *axes, which: str = "both") -> Path:
    """Grid and legend on each axes, then lay out and save the figure to `path`. Long legends go below
    the axes (the figure grows to fit) so they never cover the lines."""
    for ax in axes:
        ax.grid(True, which=which, alpha=0.3)
        entries = len(ax.get_legend_handles_labels()[0])
        if entries <= 4:
            ax.legend(fontsize=8)
            continue
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
        width, height = fig.get_size_inches()
        fig.set_size_inches(width, max(height, 4.0 + 0.2 * entries))
    fig.tight_layout()
    fig.savefig(path)
    return path


def use_log_scale(values: list[float]) -> bool:
    """Log axis when the values span more than a factor of 10 (extrapolation blow-ups)."""
    return bool(values) and max(values) / min(values) > 10


def _label(model: dict[str, Any]) -> str:
    name, method, window = row_label(model)
    return f"{name}, {method}, window {window}"


def ppl_plot(results: list[dict[str, Any]], path: Path) -> Path:
    """Perplexity vs evaluation length, one line per model/method; log y when values span > 10x."""
    fig = _figure()
    ax = fig.add_subplot()
    lines: dict[str, dict[int, float]] = defaultdict(dict)
    windows = {}
    for r in results:
        label = f"{_label(r['model'])} [{r['data']['spec']}]"
        windows[label] = r["model"]["window"]
        for cell in r["lengths"]:
            if math.isfinite(cell["ppl"]):
                lines[label][cell["length"]] = cell["ppl"]
    values = [v for pts in lines.values() for v in pts.values()]
    for label, pts in lines.items():
        xs = sorted(pts)
        (line,) = ax.plot(xs, [pts[x] for x in xs], marker="o", label=label)
        ax.axvline(windows[label], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xscale("log", base=2)
    lengths = sorted({x for pts in lines.values() for x in pts})
    ax.set_xticks(lengths, [str(n) for n in lengths])
    if use_log_scale(values):
        ax.set_yscale("log")
    ax.set_xlabel("evaluation context length (tokens)")
    ax.set_ylabel("perplexity (sliding window)")
    ax.set_title("Perplexity vs evaluation length (dotted: each model's window)")
    return finish(fig, path, ax)


def position_plot(results: list[dict[str, Any]], path: Path) -> Path:
    """Perplexity by position of the scored token inside its window, one line per model/method/length:
    where in the window extrapolation breaks down (log y when values span > 10x)."""
    fig = _figure()
    ax = fig.add_subplot()
    values = []
    for r in results:
        for cell in r["lengths"]:
            pts = [b for b in cell.get("by_position", []) if b["tokens"]]
            if pts:
                values += [b["ppl"] for b in pts]
                label = f"{_label(r['model'])} @ {cell['length']} [{r['data']['spec']}]"
                (line,) = ax.plot(
                    [(b["from"] + b["to"]) / 2 for b in pts], [b["ppl"] for b in pts], marker="o", label=label
                )
                ax.axvline(r["model"]["window"], color=line.get_color(), linestyle=":", linewidth=1)
    if use_log_scale(values):
        ax.set_yscale("log")
    ax.set_xlabel("position of the scored token in its window (bucket centre, tokens)")
    ax.set_ylabel("perplexity")
    ax.set_title("Perplexity by position in the window (dotted: each model's window)")
    return finish(fig, path, ax)


def passkey_plot(results: list[dict[str, Any]], path: Path) -> Path:
    """Passkey accuracy vs distance k, one line per model/method/prompt length."""
    fig = _figure()
    ax = fig.add_subplot()
    for r in results:
        for cell in r["lengths"]:
            if cell["ks"]:
                ks = [c["k"] for c in cell["ks"]]
                label = f"{_label(r['model'])}, prompt {cell['length']} (k_max {cell['k_max']})"
                ax.plot(ks, [c["accuracy"] for c in cell["ks"]], marker="o", label=label)
    ax.axhline(0.2, color="grey", linestyle="--", linewidth=1, label="20% (k_max threshold)")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("distance k of the pass key from the end of the prompt (tokens)")
    ax.set_ylabel("retrieval accuracy")
    ax.set_title("Passkey retrieval accuracy vs distance")
    return finish(fig, path, ax, which="major")


def depth_heatmap(result: dict[str, Any], path: Path) -> Path:
    """Accuracy on a length x depth grid (needle-in-a-haystack style), cells annotated."""
    depths = sorted({c["depth"] for c in result["depths"]})
    lengths = sorted({c["length"] for c in result["depths"]})
    acc = {(c["length"], c["depth"]): c["accuracy"] for c in result["depths"]}
    grid = [[acc.get((n, d), float("nan")) for n in lengths] for d in depths]
    fig = _figure(max(4.0, 1.2 * len(lengths) + 2), max(3.0, 0.5 * len(depths) + 1.8))
    ax = fig.add_subplot()
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto", origin="upper")
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if math.isfinite(value):
                ax.text(j, i, f"{value:.0%}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(lengths)), [str(n) for n in lengths])
    ax.set_yticks(range(len(depths)), [f"{d:g}" for d in depths])
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("key depth (0 = start, 1 = end)")
    ax.set_title(f"Passkey accuracy: {_label(result['model'])}", fontsize=9)
    fig.colorbar(image, ax=ax, label="accuracy")
    fig.tight_layout()
    fig.savefig(path)
    return path


def ruler_plot(results: list[dict[str, Any]], path: Path) -> Path:
    """RULER average score vs length, one line per model/method, with the effective-length threshold."""
    fig = _figure()
    ax = fig.add_subplot()
    for r in results:
        xs = [c["length"] for c in r["lengths"]]
        (line,) = ax.plot(xs, [c["average"] for c in r["lengths"]], marker="o", label=_label(r["model"]))
        ax.axvline(r["model"]["window"], color=line.get_color(), linestyle=":", linewidth=1)
    thresholds = sorted({r["threshold"] for r in results})
    for t in thresholds:
        ax.axhline(t, color="grey", linestyle="--", linewidth=1, label=f"threshold {t:g}")
    ax.set_xscale("log", base=2)
    lengths = sorted({c["length"] for r in results for c in r["lengths"]})
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.set_ylim(-3, 103)
    ax.set_xlabel("RULER length (tokens)")
    ax.set_ylabel("average score over tasks (0-100)")
    ax.set_title("RULER score vs length (dotted: each model's window)")
    return finish(fig, path, ax, which="major")
