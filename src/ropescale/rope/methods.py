"""The scaling methods: one pure function each, registered once by name.

Every function has the signature ``fn(head_dim, base, s, seq_len=None) -> RopeFreqs`` where
``head_dim`` is the rotary dimension d (even), ``base`` the RoPE base b, ``s`` a `RopeScaling` and
``seq_len`` the current sequence length (only `dynamic` and `longrope` read it). Frequencies are computed
in float64 and returned as float32, the dtype of transformers' rotary buffers. Notation: theta_i = b^(-2i/d)
for i in [0, d/2), s.factor = L'/L, L = s.original_max_position_embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from ..config import RopeScaling


class RopeFreqs(NamedTuple):
    """inv_freq: (d/2,) float32 angular frequencies theta'_i; attention_factor multiplies cos and sin."""

    inv_freq: torch.Tensor
    attention_factor: float


def base_inv_freq(head_dim: int, base: float) -> torch.Tensor:
    """theta_i = base^(-2i/d), i = 0..d/2-1, float64. (RoFormer; the unscaled frequencies.)"""
    if head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim must be a positive even number, got {head_dim}")
    if not base > 1:
        raise ValueError(f"rope base (rope_theta) must be > 1, got {base}")
    exponent = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
    return 1.0 / (float(base) ** exponent)


def _out(inv_freq: torch.Tensor, attention_factor: float = 1.0) -> RopeFreqs:
    return RopeFreqs(inv_freq.to(torch.float32), float(attention_factor))


def none(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """Plain RoPE (Su et al. 2021): theta_i = b^(-2i/d). Used beyond L this is direct extrapolation."""
    return _out(base_inv_freq(head_dim, base))


def linear(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """Position Interpolation (Chen et al. 2023, Eq. 4): positions m -> m / s, equivalently theta_i / s."""
    return _out(base_inv_freq(head_dim, base) / s.factor)


def ntk_base(head_dim: int, base: float, factor: float) -> float:
    """NTK-aware base b' = b * s^(d/(d-2)) (bloc97 2023; YaRN paper Eq. 16)."""
    return float(base) * float(factor) ** (head_dim / (head_dim - 2))


def ntk(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """NTK-aware scaling: theta_i = b'^(-2i/d) with b' = b * s^(d/(d-2)); the lowest frequency is divided by s."""
    return _out(base_inv_freq(head_dim, ntk_base(head_dim, base, s.factor)))


def dynamic(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """Dynamic NTK (emozilla 2023): NTK base recomputed per length,
    b' = b * (s * l/L - (s - 1))^(d/(d-2)) with l = max(seq_len, L); plain RoPE while l <= L."""
    orig = s.require_original()
    length = orig if seq_len is None else max(int(seq_len), orig)
    new_base = float(base) * (s.factor * length / orig - (s.factor - 1)) ** (head_dim / (head_dim - 2))
    return _out(base_inv_freq(head_dim, new_base))


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN attention temperature sqrt(1/t) = 0.1 * mscale * ln(s) + 1 (1 when s <= 1)."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def yarn_correction_range(head_dim: int, base: float, s: RopeScaling) -> tuple[float, float]:
    """Dimension indices (low, high) bounding the ramp: dim d(n) = d ln(L / (2 pi n)) / (2 ln b) for
    n = beta_fast (low) and n = beta_slow (high) rotations within L; floor/ceil when `truncate`."""
    orig = s.require_original()

    def dim_for(rotations: float) -> float:
        return head_dim * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = dim_for(s.beta_fast_or_default), dim_for(s.beta_slow_or_default)
    if s.truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, head_dim - 1)


def yarn(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """YaRN (Peng et al. 2023): NTK-by-parts, theta'_i = (1 - g_i) theta_i + g_i theta_i / s with a linear
    ramp g over the correction range, plus cos/sin multiplied by 0.1 ln s + 1 (attention temperature)."""
    if s.attention_factor is not None:
        attention = s.attention_factor
    elif s.mscale and s.mscale_all_dim:
        attention = yarn_mscale(s.factor, s.mscale) / yarn_mscale(s.factor, s.mscale_all_dim)
    else:
        attention = yarn_mscale(s.factor)
    low, high = yarn_correction_range(head_dim, base, s)
    if low == high:
        high += 0.001  # as in the reference code: avoid a zero-width ramp
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    theta = base_inv_freq(head_dim, base)
    return _out(theta / s.factor * ramp + theta * (1 - ramp), attention)


def llama3(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """Llama 3.1 (Meta 2024): on r_i = L / wavelength_i, keep theta_i where r > high_freq_factor, divide by
    s where r < low_freq_factor, blend linearly in between."""
    orig = s.require_original()
    low, high = s.low_freq_factor_or_default, s.high_freq_factor_or_default
    theta = base_inv_freq(head_dim, base)
    wavelen = 2 * math.pi / theta
    smooth = ((orig / wavelen - low) / (high - low)).clamp(0, 1)
    return _out(theta / s.factor * (1 - smooth) + theta * smooth)


def longrope(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """LongRoPE (Ding et al. 2024): per-dimension factors, theta'_i = theta_i / lambda_i with lambda the long
    factors when seq_len > L and the short ones otherwise; cos/sin times sqrt(1 + ln s / ln L)."""
    orig = s.require_original()
    use_long = seq_len is not None and seq_len > orig
    factors = s.long_factor if use_long else s.short_factor
    if factors is None or len(factors) != head_dim // 2:
        got = "none" if factors is None else len(factors)
        raise ValueError(
            f"--{'long' if use_long else 'short'}-factor must have head_dim/2 = {head_dim // 2} values, got {got}"
        )
    if s.attention_factor is not None:
        attention = s.attention_factor
    elif s.factor <= 1:
        attention = 1.0
    else:
        attention = math.sqrt(1 + math.log(s.factor) / math.log(orig))
    lam = torch.tensor(factors, dtype=torch.float64)
    return _out(base_inv_freq(head_dim, base) / lam, attention)


RopeMethod = Callable[[int, float, RopeScaling, "int | None"], RopeFreqs]

METHODS: dict[str, RopeMethod] = {
    "none": none,
    "linear": linear,
    "ntk": ntk,
    "dynamic": dynamic,
    "yarn": yarn,
    "llama3": llama3,
    "longrope": longrope,
}


def compute_freqs(head_dim: int, base: float, s: RopeScaling, seq_len: int | None = None) -> RopeFreqs:
    """Dispatch on s.rope_type. An unknown name raises ValueError listing the valid ones."""
    try:
        method = METHODS[s.rope_type]
    except KeyError:
        raise ValueError(
            f"unknown rope method {s.rope_type!r}; valid: {', '.join(sorted(METHODS))}"
        ) from None
    return method(head_dim, base, s, seq_len)
