"""Applying frequencies: cos/sin tables, the rotation of q/k, and a per-dimension description.

Layout follows transformers (and the original Meta code after its permutation): the head vector is split
in two halves and dimension i pairs x[i] with x[i + d/2] ("rotate_half").
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .methods import base_inv_freq, compute_freqs
from .spec import RopeScaling


def cos_sin(
    inv_freq: torch.Tensor, positions: torch.Tensor, attention_factor: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of the angles m * theta_i, each (..., T, d) with the d/2 angles repeated twice, times
    attention_factor. positions: (..., T) integer or fractional; computed in float32 like transformers."""
    angles = positions[..., None].to(torch.float32) * inv_freq.to(torch.float32)
    emb = torch.cat((angles, angles), dim=-1)
    return emb.cos() * attention_factor, emb.sin() * attention_factor


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the last dimension's halves."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x: (B, H, T, d) by cos/sin: (B, T, d) (or broadcastable (T, d))."""
    if cos.dim() == x.dim() - 1:
        cos, sin = cos.unsqueeze(-3), sin.unsqueeze(-3)
    return x * cos + rotate_half(x) * sin


def classify(ratio: float, factor: float, tol: float = 1e-6) -> str:
    """Name what a method did to one frequency, from ratio = theta'_i / theta_i."""
    if abs(ratio - 1.0) <= tol:
        return "extrapolated"
    if factor > 1 and abs(ratio * factor - 1.0) <= tol:
        return "interpolated"
    return "blended"


def dimension_table(head_dim: int, base: float, s: RopeScaling) -> list[dict[str, Any]]:
    """Per frequency i: wavelength before/after (tokens), the ratio theta'_i/theta_i, its class
    (extrapolated = frequency kept, interpolated = divided by s, blended = anything else) and whether the
    angles reached at the new window leave the range the dimension saw within L (`unseen_angles`)."""
    orig = s.require_original()
    new = s.new_window or orig
    theta = base_inv_freq(head_dim, base)
    scaled = compute_freqs(head_dim, base, s, seq_len=new).inv_freq.to(torch.float64)
    rows = []  # float32 frequencies vs float64 reference: compare with a float32-sized tolerance
    for i, (t, t2) in enumerate(zip(theta.tolist(), scaled.tolist(), strict=True)):
        seen_max_angle = orig * t  # largest angle dimension i saw in pre-training
        rows.append(
            {
                "dim": i,
                "wavelength": 2 * math.pi / t,
                "scaled_wavelength": 2 * math.pi / t2,
                "ratio": t2 / t,
                "kind": classify(t2 / t, s.factor),
                "unseen_angles": bool(
                    new * t2 > seen_max_angle * (1 + 1e-6) and seen_max_angle < 2 * math.pi
                ),
            }
        )
    return rows
