"""Short-range attention, measured: per layer and head, how a model's attention mass falls on the nearest
offsets, and whether a scaled or fine-tuned model keeps the reference model's profile (the referee's
"check of short-range attention patterns before and after fine-tuning").

Definitions (K = max_offset, T = tokens of the sample):
- profile p[l, h, k], k = 0..K: the attention weight a query puts on the key k positions back (k = 0 is
  itself), averaged over the query positions K..T-1 (those with all K + 1 offsets present). The weights are
  transformers' own (its eager attention, read from each attention module's output), so a method's
  attention factor and the causal mask are the model's. p[l, h, K+1] := 1 - sum_k p[l, h, k], the mass
  farther than K ("beyond").
- similarity of two profiles: 1 - total variation distance over the K + 2 bins, 1 - 1/2 sum |p - r|, in
  [0, 1]: the fraction of attention mass the two heads place at the same offsets (1 = identical).
- local head: a head of the reference whose profile puts at least `local_mass` on offsets 0..local_within.
- a head keeps its profile when its similarity to the reference's same head is at least `keep_similarity`.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config.theory import check_thresholds
from ..models import compat
from ..models.prepare import prepare_model
from ..report import plots
from .model import attention_modules

LOCAL_WITHIN = 4
LOCAL_MASS = 0.5
KEEP_SIMILARITY = 0.8


@contextlib.contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """Run `model` with transformers' eager attention (the implementation that returns its weights), then
    restore the one it had."""
    before = model.config._attn_implementation
    if before != "eager":
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if before != "eager":
            model.set_attn_implementation(before)


def offset_profile(weights: torch.Tensor, max_offset: int) -> torch.Tensor:
    """weights (H, T, T), rows = queries, causal -> (H, K + 1) float64: mean of weights[:, q, q - k] over
    queries q = K..T-1, for k = 0..K."""
    T = weights.shape[-1]
    if max_offset >= T:
        raise ValueError(f"the sample needs more than max_offset = {max_offset} tokens, got {T}")
    cols = [
        torch.diagonal(weights, offset=-k, dim1=-2, dim2=-1)[..., max_offset - k :].to(torch.float64).mean(-1)
        for k in range(max_offset + 1)
    ]
    return torch.stack(cols, dim=-1)


@torch.no_grad()
def attention_profiles(model: nn.Module, input_ids: torch.Tensor, max_offset: int = 16) -> torch.Tensor:
    """Mean attention mass at offsets 0..K for one sequence input_ids (1, T): (layers, heads, K + 1),
    float64 on the CPU. One forward pass; each layer's (H, T, T) weights are reduced as they are made."""
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"expected input_ids of shape (1, T), got {tuple(input_ids.shape)}")
    if max_offset < 1:
        raise ValueError(f"max_offset must be >= 1, got {max_offset}")
    modules = attention_modules(model)
    found: dict[int, torch.Tensor] = {}

    def hook(index: int):
        def fn(_module, _inputs, output):
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise ValueError("the attention module returned no weights even with eager attention")
            found[index] = offset_profile(weights.detach()[0], max_offset).cpu()

        return fn

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(modules)]
    try:
        with eager_attention(model):
            compat.reset_rotary(model)  # dynamic NTK: the frequencies of this length, whatever ran before
            model(input_ids=input_ids.to(next(model.parameters()).device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack([found[i] for i in range(len(modules))])


def with_beyond(profiles: torch.Tensor) -> torch.Tensor:
    """(..., K + 1) -> (..., K + 2): the mass farther than K appended (clamped at 0 against rounding)."""
    return torch.cat([profiles, (1 - profiles.sum(-1, keepdim=True)).clamp_min(0)], dim=-1)


def similarity(profiles: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """1 - total variation distance per head over offsets 0..K and beyond: (..., K + 1) x 2 -> (...)."""
    return 1 - 0.5 * (with_beyond(profiles) - with_beyond(reference)).abs().sum(-1)


def local_mass(profiles: torch.Tensor, local_within: int = LOCAL_WITHIN) -> torch.Tensor:
    """Mass on offsets 0..local_within per head: (..., K + 1) -> (...)."""
    return profiles[..., : local_within + 1].sum(-1)


def compare_profiles(
    profiles: torch.Tensor,
    reference: torch.Tensor,
    local_within: int = LOCAL_WITHIN,
    local_mass_min: float = LOCAL_MASS,
    keep_similarity: float = KEEP_SIMILARITY,
) -> dict[str, Any]:
    """A model's profiles against the reference's, both (layers, heads, K + 1). Returns similarity per
    head (layers x heads lists), the reference's local heads as [layer, head], how many of them keep their
    profile (similarity >= keep_similarity), the mean similarity over all heads and over the local heads,
    and the mean mass on offsets 0..local_within over the local heads in the model and in the reference."""
    if profiles.shape != reference.shape:
        raise ValueError(
            f"profiles of shape {tuple(profiles.shape)} cannot be compared with the reference's "
            f"{tuple(reference.shape)} (different layers, heads or offsets)"
        )
    check_thresholds(profiles.shape[-1] - 1, local_within, local_mass_min, keep_similarity)
    sim = similarity(profiles, reference)
    local = local_mass(reference, local_within) >= local_mass_min
    kept = local & (sim >= keep_similarity)
    heads = [[int(i), int(j)] for i, j in local.nonzero().tolist()]

    def mean(x: torch.Tensor) -> float | None:
        return x.mean().item() if x.numel() else None

    return {
        "similarity": sim.tolist(),
        "mean_similarity": sim.mean().item(),
        "local_heads": heads,
        "num_heads": int(sim.numel()),
        "num_local": len(heads),
        "local_kept": int(kept.sum().item()),
        "mean_similarity_local": mean(sim[local]),
        "local_mass": mean(local_mass(profiles, local_within)[local]),
        "reference_local_mass": mean(local_mass(reference, local_within)[local]),
        "thresholds": {
            "local_within": local_within,
            "local_mass": local_mass_min,
            "keep_similarity": keep_similarity,
        },
    }


# ----------------------------------------------------------------------------- several models


def measure(name: str, rope: Any, input_ids: torch.Tensor, max_offset: int, load: Any) -> torch.Tensor:
    """Load model `name` (with scaling `rope`, or its own when None), measure its profiles, free it."""
    model, _, _ = prepare_model(name, load, rope)
    try:
        return attention_profiles(model, input_ids, max_offset)
    finally:
        del model
        gc.collect()


def short_range_rows(
    profiles: dict[str, torch.Tensor],
    reference: str,
    local_within: int = LOCAL_WITHIN,
    local_mass_min: float = LOCAL_MASS,
    keep_similarity: float = KEEP_SIMILARITY,
) -> list[dict[str, Any]]:
    """One row per model (in order): its label, `compare_profiles` against profiles[reference], and its
    profiles as nested lists (layers x heads x offsets)."""
    ref = profiles[reference]
    return [
        {
            "label": label,
            **compare_profiles(p, ref, local_within, local_mass_min, keep_similarity),
            "profiles": p.tolist(),
        }
        for label, p in profiles.items()
    ]


def format_short_range(rows: list[dict[str, Any]], reference: str) -> list[str]:
    """The table: per model, local heads kept, mean similarity (local heads, all heads), local mass."""
    t = rows[0]["thresholds"]
    width = max(5, *(len(_short(r["label"], 48)) for r in rows))
    lines = [
        f"short-range attention: similarity = 1 - total variation distance to {reference}'s profile over "
        f"offsets 0..K and beyond; local head = {reference}'s heads with >= {t['local_mass']:.0%} of their "
        f"mass on offsets 0..{t['local_within']}; kept = similarity >= {t['keep_similarity']:g}",
        f"  {'model':<{width}} {'local kept':>10} {'sim local':>9} {'sim all':>8} {'local mass':>10}",
    ]
    for r in rows:
        kept = f"{r['local_kept']}/{r['num_local']}"
        lines.append(
            f"  {_short(r['label'], 48):<{width}} {kept:>10} {fmt3(r['mean_similarity_local']):>9} "
            f"{r['mean_similarity']:>8.3f} {fmt3(r['local_mass']):>10}"
        )
    return lines


def _short(label: str, width: int) -> str:
    """The end of a long label (paths differ at their end)."""
    return label if len(label) <= width else "..." + label[-(width - 3) :]


def fmt3(x: float | None) -> str:
    """Three decimals, or "-" where there is nothing to show (no local heads)."""
    return "-" if x is None else f"{x:.3f}"


def profiles_plot(profiles: dict[str, torch.Tensor], path: Path) -> Path:
    """One heatmap per model, side by side: rows = layer.head, columns = offsets 0..K, colour = mean mass
    (one colour scale for all)."""
    first = next(iter(profiles.values()))
    layers, heads, offsets = first.shape
    rows = layers * heads
    fig = plots.figure(min(3.2 * len(profiles) + 1.5, 24), min(max(3.0, 0.12 * rows + 1.8), 20))
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, len(profiles), squeeze=False)[0]
    vmax = max(p.max().item() for p in profiles.values())
    step = 1 if rows <= 48 else heads  # label every head, or each layer's first head
    image = None
    for ax, (label, p) in zip(axes, profiles.items(), strict=True):
        image = ax.imshow(p.reshape(-1, offsets).numpy(), aspect="auto", vmin=0, vmax=vmax, cmap="viridis",
                          interpolation="nearest")  # fmt: skip
        ax.set_title(_short(label, 36), fontsize=8)
        ax.set_xlabel("offset k (tokens back)", fontsize=8)
        ax.set_xticks(range(0, offsets, max(1, offsets // 4)))
        ax.set_yticks(range(0, rows, step), [f"{r // heads}.{r % heads}" for r in range(0, rows, step)],
                      fontsize=6)  # fmt: skip
    axes[0].set_ylabel("layer.head")
    fig.colorbar(image, ax=list(axes), fraction=0.03, label="mean attention mass")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")  # atomic: never half a PNG at `path`
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
