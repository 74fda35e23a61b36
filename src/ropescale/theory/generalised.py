"""The paper's interpolation/extrapolation picture for any scaling method, per dimension.

A method replaces theta_j by theta'_j (per dimension; `ropescale.rope.compute_freqs`). At relative distance
m < L' dimension j turns by m theta'_j. Pre-training saw m theta_j for m < L, so dimension j stays in the
range it was trained on iff L' theta'_j <= L theta_j, or it already turned a full circle within L
(L theta_j >= 2 pi: every phase was seen). This is `dimension_table`'s `unseen_angles`; here we add the
angles themselves and the effective position t_j = L' theta'_j / theta_j: the plain-RoPE distance at which
dimension j reaches the angle it reaches at L' under the method (t_j <= L: interpolated; PI gives t_j = L
for every j, plain extrapolation t_j = L').
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..config import RopeScaling
from ..rope import base_inv_freq, compute_freqs, dimension_table

MAX_POSITIONS = 2**21  # the theory tabulates every position up to L' (a (L', d/2) float64 table each)


def windows(spec: RopeScaling) -> tuple[int, int]:
    """(L, L') of a spec whose original window is known, L' at most MAX_POSITIONS."""
    orig = spec.require_original()
    new = spec.new_window or orig
    if new > MAX_POSITIONS:
        raise ValueError(
            f"--factor {spec.factor:g}: the new window L' = {new} is beyond the {MAX_POSITIONS} positions the "
            "theory tabulates; lower --factor"
        )
    return orig, new


def scaled_theta(head_dim: int, base: float, spec: RopeScaling) -> torch.Tensor:
    """theta'_j the method uses at its new window (d/2,): the float32 frequencies a model holds, as float64
    (dynamic and longrope depend on the length; we take the new window L')."""
    _, new = windows(spec)
    return compute_freqs(head_dim, base, spec, seq_len=new).inv_freq.to(torch.float64)


def effective_angles(
    head_dim: int, base: float, spec: RopeScaling, positions: torch.Tensor | None = None
) -> torch.Tensor:
    """m * theta'_j for relative distances m (default 0..L'-1): (P,) -> (P, d/2) float64 radians."""
    if positions is None:
        positions = torch.arange(windows(spec)[1])
    return positions.to(torch.float64)[:, None] * scaled_theta(head_dim, base, spec)[None, :]


def effective_positions(head_dim: int, base: float, spec: RopeScaling) -> torch.Tensor:
    """t_j = L' theta'_j / theta_j (d/2,) float64: where plain RoPE reaches dimension j's angle at L'."""
    _, new = windows(spec)
    return new * scaled_theta(head_dim, base, spec) / base_inv_freq(head_dim, base)


def angle_coverage(head_dim: int, base: float, spec: RopeScaling) -> list[dict[str, Any]]:
    """`dimension_table` rows plus, per dimension: the largest angle seen in pre-training (L theta_j), the
    largest reached at the new window (L' theta'_j), whether pre-training covered a full turn, and t_j."""
    orig, new = windows(spec)
    theta = base_inv_freq(head_dim, base)
    scaled = scaled_theta(head_dim, base, spec)
    rows = dimension_table(head_dim, base, spec)
    t = effective_positions(head_dim, base, spec)
    for row, th, th2, tj in zip(rows, theta.tolist(), scaled.tolist(), t.tolist(), strict=True):
        row.update(
            seen_max_angle=orig * th,
            new_max_angle=new * th2,
            full_turn_in_pretraining=orig * th >= 2 * math.pi,
            effective_position=tj,
        )
    return rows


def regime(head_dim: int, base: float, spec: RopeScaling) -> dict[str, Any]:
    """Which of the paper's two regimes a method is in at its new window: `interpolation` when no dimension
    reaches an angle unseen in pre-training (PI, YaRN, Llama 3), else `extrapolation` with the offending
    dimensions and how far beyond L the worst one goes (in units of L); `original` when L' = L."""
    orig, new = windows(spec)
    rows = angle_coverage(head_dim, base, spec)
    unseen = [r["dim"] for r in rows if r["unseen_angles"]]
    worst = max((rows[i]["effective_position"] for i in unseen), default=None)
    return {
        "original_window": orig,
        "new_window": new,
        "regime": "original" if new <= orig else "extrapolation" if unseen else "interpolation",
        "unseen_dims": unseen,
        "max_effective_position_over_L": None if worst is None else worst / orig,
    }
