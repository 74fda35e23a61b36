"""The paper's Figure 2 (fit / extrapolation / interpolation) and Figure 5 (B(s)/d), as PNG plus the JSON
behind them. matplotlib is imported inside the functions (optional extra `plots`) and used through its
object API (`Figure`), so no global pyplot state or backend is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .. import outputs
from .bounds import B0_over_d, B_over_d, ratio_lower_bound, ratio_lower_bound_corrected
from .fit import figure2_experiment


def _figure(width: float, height: float, ncols: int = 1):
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - dev installs have it
        raise ValueError("--figures needs matplotlib: pip install 'ropescale[plots]'") from None
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(1, ncols)


def plot_figure2(data: dict[str, Any], path: Path) -> None:
    """Three panels, 16 x 5 inches: the fit on [0, L), the same fit on [0, 2L), and between integers."""
    window = data["setting"]["window"]
    series = data["series"]
    fig, (left, mid, right) = _figure(16, 5, 3)
    s_in = range(window)
    left.scatter(s_in, series["targets"], s=2, color="tab:gray", alpha=0.5, label="random targets")
    left.plot(s_in, series["fit"][:window], color="tab:blue", lw=1, label="fitted a(s)")
    left.set_title("Fitting an attention score with the RoPE basis")
    left.legend(loc="upper right")
    mid.plot(range(2 * window), series["fit"], color="tab:blue", lw=1)
    mid.axvline(window, color="k", ls="--", lw=1)
    mid.set_title("Effect of Extrapolation")
    right.plot(series["interp_s"], series["interp_fit"], color="tab:blue", lw=1)
    first, last = int(series["interp_s"][0]), int(series["interp_s"][-1]) + 1
    for s in range(first, last + 1):
        right.axvline(s, color="k", ls="--", lw=0.4, alpha=0.6)
    right.set_title("Effect of Interpolation")
    for ax in (left, mid, right):
        ax.set_xlabel("Positional difference s")
    left.set_ylabel("attention score a(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def figure5_data(head_dim: int, base: float, window: int) -> dict[str, Any]:
    """B(s)/d for s = 0..2L-1, its value at a few distances, its minimum and the resulting bound ratio."""
    s = torch.arange(2 * window, dtype=torch.float64)
    values = B_over_d(s, head_dim, base)
    low = int(values.argmin())
    marks = sorted({0, 1, 10, 100, 1000, window - 1, 2 * window - 1} & set(range(2 * window)))
    return {
        "setting": {"head_dim": head_dim, "base": base, "window": window},
        "B_over_d_at": {str(m): values[m].item() for m in marks},
        "B0_over_d_closed_form": B0_over_d(head_dim),
        "min_B_over_d": values[low].item(),
        "argmin_s": low,
        "ratio_lower_bound": ratio_lower_bound(base),
        "ratio_at_min": ratio_lower_bound(base) * values[low].item(),
        "ratio_lower_bound_corrected": ratio_lower_bound_corrected(head_dim, base),
        "ratio_at_min_corrected": ratio_lower_bound_corrected(head_dim, base) * values[low].item(),
        "series": {"s": s.long().tolist(), "B_over_d": values.tolist()},
    }


def plot_figure5(data: dict[str, Any], path: Path) -> None:
    """B(s)/d against s with the dashed line y = 1."""
    fig, ax = _figure(8, 5)
    ax.plot(data["series"]["s"], data["series"]["B_over_d"], color="tab:blue", lw=1, label="B(s)/d")
    ax.axhline(1.0, color="k", ls="--", lw=1, label="y = 1")
    ax.set_xlabel("Positional difference s")
    ax.set_ylabel("B(s)/d")
    setting = data["setting"]
    ax.set_title(f"B(s)/d, d = {setting['head_dim']}, c = {setting['base']:g}")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_figures(
    out: Path,
    head_dim: int = 128,
    base: float = 10000.0,
    window: int = 2048,
    eps: float = 0.0,
    dtype: str = "float64",
    seed: int = 0,
    overwrite: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write figure2.png/.json and figure5.png/.json into `out` (atomically). Returns the JSON contents
    without the plotted series. `extra` (config, environment) is stored in both JSON files."""
    fig2 = figure2_experiment(head_dim, base, window, eps, dtype, seed)
    fig5 = figure5_data(head_dim, base, window)
    with outputs.atomic_dir(out, overwrite, "--figures") as tmp:
        plot_figure2(fig2, tmp / "figure2.png")
        plot_figure5(fig5, tmp / "figure5.png")
        outputs.write_json(tmp / "figure2.json", {**fig2, **(extra or {})})
        outputs.write_json(tmp / "figure5.json", {**fig5, **(extra or {})})
    return {"dir": str(out), "figure2": _summary(fig2), "figure5": _summary(fig5)}


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "series"}
