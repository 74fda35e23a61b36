"""What a scaling costs in positional resolution, read off the frequencies alone (the referee's point 1).

Frequency i turns by theta_i radians per token (theta_i = b^(-2i/d); theta_0 = 1 whatever the base). A
scaling replaces it by theta'_i (`ropescale.rope.compute_freqs`); PI divides every one by s, so two
neighbouring positions end up 1/s as far apart in every frequency. The numbers, each in one sentence:

- angle per token (per frequency, before and after): the angle in radians by which frequency i separates
  two neighbouring positions, i.e. theta_i wrapped onto [0, pi] (the distance on the circle).
- fastest angle per token: the largest angle per token over all frequencies (plain RoPE: theta_0 = 1 rad;
  PI: theta_0 / s; NTK, YaRN and llama3 keep it).
- frequencies above delta: how many frequencies separate neighbouring positions by more than delta radians.
- resolved distance at delta: the distance in tokens (real-valued) below which no single frequency
  separates two positions by delta radians or more, delta / (fastest angle per token); below 1 means
  neighbouring tokens are told apart.

delta is the stated angle resolution (`DEFAULT_ANGLE_RESOLUTION`, --angle-resolution), in (0, pi]. The
frequencies are the float32 values a model holds (taken at the new window for dynamic and longrope), as
float64.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .methods import base_inv_freq, compute_freqs
from .spec import RopeScaling

DEFAULT_ANGLE_RESOLUTION = 0.25  # radians, about 1/25 of a turn


def check_resolution(delta: float, flag: str = "--angle-resolution") -> None:
    if not (isinstance(delta, (int, float)) and math.isfinite(delta) and 0 < delta <= math.pi):
        raise ValueError(f"{flag} must be a number in (0, pi] radians, got {delta!r}")


def angle_per_token(inv_freq: torch.Tensor) -> torch.Tensor:
    """(d/2,) rad/token -> (d/2,) float64 in [0, pi]: the circle distance between neighbouring positions."""
    turn = torch.remainder(inv_freq.to(torch.float64), 2 * math.pi)
    return torch.minimum(turn, 2 * math.pi - turn)


def frequencies(head_dim: int, base: float, spec: RopeScaling) -> tuple[torch.Tensor, torch.Tensor]:
    """(theta, theta') (d/2,) each, float64: the plain frequencies as a model holds them (float32) and the
    scaled ones at the spec's new window."""
    plain = base_inv_freq(head_dim, base).to(torch.float32).to(torch.float64)
    new = spec.new_window if spec.original_max_position_embeddings is not None else None
    scaled = compute_freqs(head_dim, base, spec, seq_len=new).inv_freq.to(torch.float64)
    return plain, scaled


def _summary(inv_freq: torch.Tensor, delta: float) -> dict[str, Any]:
    per_token = angle_per_token(inv_freq)
    fastest = per_token.max().item()
    # frequency i first separates two positions by delta at distance delta / theta_i (no wrap before pi)
    return {
        "fastest_angle_per_token": fastest,
        "frequencies_above": int((per_token > delta).sum().item()),
        "resolved_distance": delta / inv_freq.to(torch.float64).max().item(),
    }


def resolution(
    head_dim: int, base: float, spec: RopeScaling, delta: float = DEFAULT_ANGLE_RESOLUTION
) -> dict:
    """The summary numbers of the module docstring before and after `spec`, plus per frequency the angle
    per token before/after and their ratio. Keys: angle_resolution, num_frequencies, before, after (each
    fastest_angle_per_token, frequencies_above, resolved_distance), fastest_ratio (after / before),
    per_frequency (list of dim, angle_before, angle_after, ratio)."""
    check_resolution(delta)
    plain, scaled = frequencies(head_dim, base, spec)
    before, after = _summary(plain, delta), _summary(scaled, delta)
    a0, a1 = angle_per_token(plain), angle_per_token(scaled)
    rows = [
        {"dim": i, "angle_before": x, "angle_after": y, "ratio": y / x}
        for i, (x, y) in enumerate(zip(a0.tolist(), a1.tolist(), strict=True))
    ]
    return {
        "angle_resolution": float(delta),
        "num_frequencies": head_dim // 2,
        "scaling": spec.to_dict(),
        "before": before,
        "after": after,
        "fastest_ratio": after["fastest_angle_per_token"] / before["fastest_angle_per_token"],
        "per_frequency": rows,
    }


def format_resolution(r: dict[str, Any], indent: str = "  ") -> list[str]:
    """Three lines: the summary numbers before -> after."""
    b, a, n, delta = r["before"], r["after"], r["num_frequencies"], r["angle_resolution"]
    return [
        f"{indent}resolution (angle per token, from the frequencies alone; delta = {delta:g} rad):",
        f"{indent}  fastest angle per token {b['fastest_angle_per_token']:.6g} -> "
        f"{a['fastest_angle_per_token']:.6g} rad (x{r['fastest_ratio']:.6g})",
        f"{indent}  frequencies turning more than delta per token: {b['frequencies_above']} -> "
        f"{a['frequencies_above']} of {n}; resolved distance (delta / fastest angle) "
        f"{b['resolved_distance']:.4g} -> {a['resolved_distance']:.4g} tokens",
    ]
