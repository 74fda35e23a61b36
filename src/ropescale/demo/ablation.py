"""The tiny demo's two answers to the referee: short-range attention before and after fine-tuning, and an
ablation over the scale factor s at a fixed fine-tuning budget (PAPER.md section 8, points 1 and 2).

Short range: every model of the demo gets `theory.short_range` profiles (attention at offsets 0..K per
head) on the first L tokens of the first held-out piece, compared with the base model's at its own window.
Ablation: PI, direct fine-tuning and YaRN at each s in `Budget.ablation`, each with the same steps and
the same tokens per step (`finetune` keeps batch x sequence length fixed), evaluated by perplexity at L and
sL and passkey k_max at sL. The cells at the demo's own factor are the main run's models at that step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import LoadOptions, RopeScaling
from ..report import plots
from ..report.tables import fmt_ppl, markdown
from ..rope.resolution import DEFAULT_ANGLE_RESOLUTION, resolution
from ..theory.short_range import (
    KEEP_SIMILARITY,
    LOCAL_MASS,
    LOCAL_WITHIN,
    compare_profiles,
    fmt3,
    measure,
)
from .evals import Row

METHODS = {"pi": ("linear", "PI"), "direct": ("none", "direct"), "yarn": ("yarn", "YaRN")}
OFFSETS = 16


@dataclass
class ShortRange:
    """Profiles of the demo's models on one token sequence; the first one measured is the reference."""

    input_ids: torch.Tensor  # (1, T)
    offsets: int = OFFSETS
    profiles: dict[str, torch.Tensor] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def measure(self, key: str, label: str, model: str | Path, rope: RopeScaling | None) -> None:
        load = LoadOptions(dtype="float32")
        self.profiles[key] = measure(str(model), rope, self.input_ids, self.offsets, load)
        self.labels[key] = label

    def rows(self) -> list[dict[str, Any]]:
        """One row per model: its key and label and `compare_profiles` against the reference."""
        ref = next(iter(self.profiles.values()))
        return [
            {
                "key": k,
                "label": self.labels[k],
                **compare_profiles(p, ref, LOCAL_WITHIN, LOCAL_MASS, KEEP_SIMILARITY),
            }
            for k, p in self.profiles.items()
        ]


def sample_ids(heldout: Path, tokenizer: Any, tokens: int) -> torch.Tensor:
    """The first `tokens` tokens of the first held-out piece, (1, T)."""
    text = json.loads(heldout.read_text().splitlines()[0])["text"]
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :tokens]
    if ids.shape[1] <= OFFSETS:
        raise ValueError(f"{heldout}: the first held-out piece has only {ids.shape[1]} tokens")
    return ids


def short_range_table(rows: list[dict[str, Any]]) -> str:
    head = ["Model", "local heads kept", "similarity (local heads)", "similarity (all heads)",
            f"mass on offsets 0..{LOCAL_WITHIN} (local heads)"]  # fmt: skip
    body = [
        [r["label"], f"{r['local_kept']}/{r['num_local']}", fmt3(r["mean_similarity_local"]),
         fmt3(r["mean_similarity"]), fmt3(r["local_mass"])]
        for r in rows
    ]  # fmt: skip
    return markdown(head, body)


def short_range_note(reference: str, tokens: int) -> str:
    return (
        f"Attention at offsets 0..{OFFSETS} per head (transformers' own weights), averaged over query "
        f"positions {OFFSETS}..{tokens - 1} of the first {tokens} tokens of the first held-out piece. "
        f"Similarity = 1 - total variation distance to the same head of {reference} (offsets 0..{OFFSETS} "
        f"and 'farther'); a local head is one of {reference}'s heads with >= {LOCAL_MASS:.0%} of its mass on "
        f"offsets 0..{LOCAL_WITHIN}; it is kept when its similarity is >= {KEEP_SIMILARITY:g}."
    )


# ----------------------------------------------------------------------------- the s-ablation


@dataclass
class Cell:
    method: str  # pi, direct, yarn
    factor: int
    row: Row
    short_range: dict[str, Any] | None = None


def ablation_table(cells: list[Cell], window: int) -> str:
    head = ["s", "sL", "Method", "FT steps", f"ppl({window})", "ppl(sL)", "k_max(sL)", "local heads kept",
            "similarity (local heads)"]  # fmt: skip
    body = []
    for c in cells:
        S, r, sr = window * c.factor, c.row, c.short_range or {}
        k = f"{r.k_max[S]} ({r.passkey_accuracy[S]:.0%})" if S in r.k_max else "-"
        kept = f"{sr['local_kept']}/{sr['num_local']}" if sr else "-"
        body.append([c.factor, S, METHODS[c.method][1], r.ft_steps, fmt_ppl(r.ppl.get(window)),
                     fmt_ppl(r.ppl.get(S)), k, kept, fmt3(sr.get("mean_similarity_local"))])  # fmt: skip
    return markdown(head, body)


def ablation_plot(cells: list[Cell], window: int, path: Path) -> Path:
    """ppl(sL), k_max(sL) / sL and the local heads' similarity against s, one line per method."""
    fig = plots._figure(13.0, 4.0)
    axes = [fig.add_subplot(1, 3, i) for i in (1, 2, 3)]
    for method, (_, title) in METHODS.items():
        mine = sorted((c for c in cells if c.method == method), key=lambda c: c.factor)
        if not mine:
            continue
        xs = [c.factor for c in mine]
        S = [window * c.factor for c in mine]
        axes[0].plot(xs, [c.row.ppl.get(n) for c, n in zip(mine, S, strict=True)], marker="o", label=title)
        axes[1].plot(xs, [c.row.k_max.get(n, 0) / n for c, n in zip(mine, S, strict=True)], marker="o",
                     label=title)  # fmt: skip
        sim = [(c.short_range or {}).get("mean_similarity_local") for c in mine]
        axes[2].plot(xs, [float("nan") if v is None else v for v in sim], marker="o", label=title)
    steps = cells[0].row.ft_steps if cells else 0
    axes[0].set(xlabel="scale factor s", ylabel="perplexity at sL", title=f"Perplexity at sL ({steps} steps)")
    axes[1].set(
        xlabel="scale factor s", ylabel="k_max(sL) / sL", title="Passkey k_max at sL", ylim=(-0.05, 1.05)
    )
    axes[2].set(xlabel="scale factor s", ylabel="similarity to the base (local heads)",
                title="Short-range attention kept", ylim=(-0.05, 1.05))  # fmt: skip
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks([c.factor for c in cells], [str(c.factor) for c in cells])
    return plots.finish(fig, path, *axes)


def ablation_lines(cells: list[Cell], window: int) -> list[str]:
    """What the ablation shows, in sentences made from its numbers (no conclusion is fixed in advance)."""
    if not cells:
        return []
    by = {(c.method, c.factor): c for c in cells}
    factors = sorted({c.factor for c in cells})
    steps = cells[0].row.ft_steps
    lines = [f"s-ablation ({steps} fine-tuning steps per cell, the same tokens per step at every s):"]
    for s in factors:
        S = window * s
        parts = []
        for method, (_, title) in METHODS.items():
            c = by.get((method, s))
            if c is not None:
                sr = c.short_range or {}
                parts.append(
                    f"{title} ppl {fmt_ppl(c.row.ppl.get(S))}, k_max {c.row.k_max.get(S, '-')}, local heads kept "
                    f"{sr.get('local_kept', '-')}/{sr.get('num_local', '-')}"
                )
        lines.append(f"  s={s} (sL={S}): " + "; ".join(parts))
    wins = [s for s in factors if _ppl(by, "pi", s, window) < _ppl(by, "direct", s, window)]
    if ("pi", factors[0]) in by and ("direct", factors[0]) in by:
        lines.append(
            "  PI beats direct fine-tuning in ppl(sL) at s = " + (", ".join(map(str, wins)) or "none")
            + " of " + ", ".join(map(str, factors))
        )  # fmt: skip
    return lines


def _ppl(by: dict, method: str, s: int, window: int) -> float:
    c = by.get((method, s))
    return float("inf") if c is None else c.row.ppl.get(window * s, float("inf"))


def scale_lines(
    near: list[dict[str, Any]], cells: list[Cell], head_dim: int, base: float, window: int, last: int
) -> list[str]:
    """The report's account of what the miniature shows about resolution, in its own numbers: what PI
    does to the fastest frequency at each s, how many of the base's local heads each model keeps, and the
    ablation's cells."""
    factors = sorted({c.factor for c in cells}) or [8]
    res = [resolution(head_dim, base, RopeScaling("linear", float(s), window)) for s in factors]
    fast = "/".join(f"{r['after']['fastest_angle_per_token']:.4g}" for r in res)
    dist = "/".join(f"{r['after']['resolved_distance']:.3g}" for r in res)
    xs = "/".join(f"x{s}" for s in factors)
    by = {r["key"]: r for r in near}
    kept = [
        f"{r['label']} {r['local_kept']}/{r['num_local']} (similarity {fmt3(r['mean_similarity_local'])})"
        for k in ("pi_noft", "ntk_noft", "yarn_noft", f"pi_ft{last}", f"direct_ft{last}", f"yarn_ft{last}")
        if (r := by.get(k)) is not None
    ]
    return [
        f"resolution: PI {xs} turns the fastest frequency {fast} rad per token (plain RoPE, NTK and YaRN: 1), "
        f"so positions closer than {dist} tokens differ by less than {DEFAULT_ANGLE_RESOLUTION:g} rad in "
        "every frequency",
        "short range, the base model's local heads kept: " + "; ".join(kept),
        *ablation_lines(cells, window),
    ]
