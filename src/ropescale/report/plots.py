"""PNG plots from result files, drawn with matplotlib's object API (no pyplot global state)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from .tables import row_label


def figure(width: float = 7.0, height: float = 4.5):
    """A matplotlib Figure on the Agg canvas (no pyplot state); ValueError when matplotlib is missing."""
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


def _parts(model: dict[str, Any], **extra: str) -> dict[str, str]:
    """What describes one line: model, method, window, and whatever the plot adds (data, length)."""
    name, method, window = row_label(model)
    return {"model": name, "method": method, "window": f"window {window}", **extra}


def line_labels(parts: list[dict[str, str]]) -> tuple[list[str], str]:
    """(one label per line naming only what differs between the lines, what they all share). A plot of one
    line, or of lines that agree on everything, labels each line in full."""
    keys = list(dict.fromkeys(k for p in parts for k in p))
    varying = [k for k in keys if len({p.get(k, "") for p in parts}) > 1]
    shown = varying or keys
    labels = [
        ", ".join(p[k] for k in shown if p.get(k)) or ", ".join(filter(None, p.values())) for p in parts
    ]
    shared = ", ".join(parts[0][k] for k in keys if k not in varying and parts[0].get(k)) if varying else ""
    return labels, shared


def _title(ax, text: str, shared: str) -> None:
    ax.set_title(f"{text}\n{shared}" if shared else text, fontsize=9 if shared else None)


def ppl_plot(results: list[dict[str, Any]], path: Path) -> Path:
    """Perplexity vs evaluation length, one line per model/method; log y when values span > 10x."""
    fig = figure()
    ax = fig.add_subplot()
    lines: dict[tuple, dict[int, float]] = defaultdict(dict)
    described: dict[tuple, dict[str, str]] = {}
    windows = {}
    for r in results:
        parts = _parts(r["model"], data=f"data {r['data']['spec']}")
        key = tuple(parts.items())
        described[key] = parts
        windows[key] = r["model"]["window"]
        for cell in r["lengths"]:
            if math.isfinite(cell["ppl"]):
                lines[key][cell["length"]] = cell["ppl"]
    keys = [k for k in described if lines[k]]
    labels, shared = line_labels([described[k] for k in keys]) if keys else ([], "")
    values = [v for pts in lines.values() for v in pts.values()]
    for key, label in zip(keys, labels, strict=True):
        pts = lines[key]
        xs = sorted(pts)
        (line,) = ax.plot(xs, [pts[x] for x in xs], marker="o", label=label)
        ax.axvline(windows[key], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xscale("log", base=2)
    lengths = sorted({x for pts in lines.values() for x in pts})
    ax.set_xticks(lengths, [str(n) for n in lengths])
    if use_log_scale(values):
        ax.set_yscale("log")
    ax.set_xlabel("evaluation context length (tokens)")
    ax.set_ylabel("perplexity (sliding window)")
    _title(ax, "Perplexity vs evaluation length (dotted: each model's window)", shared)
    return finish(fig, path, ax)


def position_plot(results: list[dict[str, Any]], path: Path) -> Path:
    """Perplexity by position of the scored token inside its window, one line per model/method/length:
    where in the window extrapolation breaks down (log y when values span > 10x)."""
    fig = figure()
    ax = fig.add_subplot()
    curves = []  # (parts, points, window)
    for r in results:
        for cell in r["lengths"]:
            pts = [b for b in cell.get("by_position", []) if b["tokens"]]
            if pts:
                parts = _parts(
                    r["model"], length=f"at {cell['length']} tokens", data=f"data {r['data']['spec']}"
                )
                curves.append((parts, pts, r["model"]["window"]))
    labels, shared = line_labels([c[0] for c in curves]) if curves else ([], "")
    values = [b["ppl"] for _, pts, _ in curves for b in pts]
    for (_, pts, window), label in zip(curves, labels, strict=True):
        xs = [(b["from"] + b["to"]) / 2 for b in pts]
        (line,) = ax.plot(xs, [b["ppl"] for b in pts], marker="o", label=label)
        ax.axvline(window, color=line.get_color(), linestyle=":", linewidth=1)
    if use_log_scale(values):
        ax.set_yscale("log")
    ax.set_xlabel("position of the scored token in its window (bucket centre, tokens)")
    ax.set_ylabel("perplexity")
    _title(ax, "Perplexity by position in the window (dotted: each model's window)", shared)
    return finish(fig, path, ax)


def passkey_plot(results: list[dict[str, Any]], path: Path) -> Path:
    """Passkey accuracy vs distance k, one line per model/method/prompt length."""
    fig = figure()
    ax = fig.add_subplot()
    curves = []  # (parts, cell)
    for r in results:
        for cell in r["lengths"]:
            if cell["ks"]:
                curves.append((_parts(r["model"], length=f"prompt {cell['length']}"), cell))
    labels, shared = line_labels([c[0] for c in curves]) if curves else ([], "")
    for (_, cell), label in zip(curves, labels, strict=True):
        ks = [c["k"] for c in cell["ks"]]
        ax.plot(ks, [c["accuracy"] for c in cell["ks"]], marker="o", label=f"{label} (k_max {cell['k_max']})")
    ax.axhline(0.2, color="grey", linestyle="--", linewidth=1, label="20% (k_max threshold)")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("distance k of the pass key from the end of the prompt (tokens)")
    ax.set_ylabel("retrieval accuracy")
    _title(ax, "Passkey retrieval accuracy vs distance", shared)
    return finish(fig, path, ax, which="major")


def depth_heatmap(result: dict[str, Any], path: Path) -> Path:
    """Accuracy on a length x depth grid (needle-in-a-haystack style), cells annotated."""
    depths = sorted({c["depth"] for c in result["depths"]})
    lengths = sorted({c["length"] for c in result["depths"]})
    acc = {(c["length"], c["depth"]): c["accuracy"] for c in result["depths"]}
    grid = [[acc.get((n, d), float("nan")) for n in lengths] for d in depths]
    fig = figure(max(4.0, 1.2 * len(lengths) + 2), max(3.0, 0.5 * len(depths) + 1.8))
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
    ax.set_title(f"Passkey accuracy: {', '.join(_parts(result['model']).values())}", fontsize=9)
    fig.colorbar(image, ax=ax, label="accuracy")
    fig.tight_layout()
    fig.savefig(path)
    return path


def ruler_plot(results: list[dict[str, Any]], path: Path) -> Path:
    """RULER average score vs length, one line per model/method, with the effective-length threshold."""
    fig = figure()
    ax = fig.add_subplot()
    labels, shared = line_labels([_parts(r["model"]) for r in results]) if results else ([], "")
    for r, label in zip(results, labels, strict=True):
        xs = [c["length"] for c in r["lengths"]]
        (line,) = ax.plot(xs, [c["average"] for c in r["lengths"]], marker="o", label=label)
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
    _title(ax, "RULER score vs length (dotted: each model's window)", shared)
    return finish(fig, path, ax, which="major")
