"""The paper's bounds on the attention score a(s) = Re sum_j h_j e^{i s theta_j} (arXiv 2306.15595, section 2.3 and Appendices A-C).

Notation: d = rotary head dimension, c = RoPE base, theta_j = c^(-2j/d) for j in [0, d/2), s = relative
distance m - n, h_j = (q_j + i q_{j+d/2})(k_j - i k_{j+d/2}) in transformers' rotate_half layout. Everything
here is float64 and vectorised over s; nothing depends on a model.

- Theorem 2.1 (Eq. 5): |a(s) - a_linear(s)| <= d * max|h| * (s - s1)(s2 - s) / (8 ln c) on [s1, s2];
  between neighbouring integers (s - s1)(s2 - s) <= 1/4, so the worst case is d * max|h| / (32 ln c) (Eq. 7).
- Eq. 8 (RoFormer 3.4.3): |a(s)| <= 2 max|h| B(s), B(s) = sum_{k<d/2} |A_{k+1}(s)|, A_k(s) = sum_{j<k} e^{i s theta_j}.
- The "~600x" (section 4.3): since B(s)/d >= 1 numerically, the extrapolation bound is at least
  2 d max|h|, so the ratio is at least 2 * 32 ln c (589.46 for c = 10000), whatever d is.

A correction. The proof bounds |a''| by max|h| * S2 with S2 = sum_j theta_j^2 = sum_j c^(-4j/d) (Eq. 12-13),
then claims S2 <= 1/(1 - c^(-4/d)) <= d/(4 ln c) (Eq. 14) from "c^x <= 1 + x ln c for x < 0". That inequality
is backwards (e^y >= 1 + y for every y), so 1/(1 - c^(-4/d)) >= d/(4 ln c) and the stated constant is too
small: for d = 128, c = 10^4, S2 = 4.00 but d/(4 ln c) = 3.47. The aligned coefficients h_j = e^{-i s0 theta_j}
reach a midpoint deviation of sum_j (1 - cos(theta_j / 2)) = 0.494 against the stated worst case 0.434.
`interpolation_bound` keeps the paper's formula; `interpolation_bound_corrected` is what the proof gives
with S2 itself: max|h| * S2 * (s - s1)(s2 - s) / 2. The ratio with the corrected bound is
2 d / (S2 / 8) = 16 d / S2 (512.2 for d = 128, c = 10^4; it tends to 64 ln c as d grows).
"""

from __future__ import annotations

import math

import torch

from ..rope import base_inv_freq

_CHUNK = 8192  # rows of s per block: keeps the (S, d/2) complex table under ~100 MB for d up to 256


def as_float64(s: torch.Tensor | float | list[float]) -> torch.Tensor:
    """Any scalar, list or tensor of distances as a float64 tensor (a scalar becomes shape ())."""
    return torch.as_tensor(s, dtype=torch.float64)


def partial_sums(s: torch.Tensor | float, theta: torch.Tensor) -> torch.Tensor:
    """|A_{k+1}(s)| for k in [0, d/2): s (S,) float64 distances, theta (d/2,) -> (S, d/2) float64."""
    s = as_float64(s).reshape(-1)
    angles = s[:, None] * theta.to(torch.float64)[None, :]
    # cumulative sums of cos and sin over the frequency axis are the real and imaginary parts of A_{k+1}
    return torch.hypot(angles.cos().cumsum(-1), angles.sin().cumsum(-1))


def B_theta(s: torch.Tensor | float, theta: torch.Tensor) -> torch.Tensor:
    """B(s) = sum_k |A_{k+1}(s)| for arbitrary frequencies theta (d/2,); s (...,) -> (...,) float64.
    Abel summation holds for any frequencies, so 2 max|h| B_theta(s) bounds |a(s)| for a scaled RoPE too."""
    s = as_float64(s)
    flat = s.reshape(-1)
    out = (
        torch.cat([partial_sums(block, theta).sum(-1) for block in flat.split(_CHUNK)])
        if flat.numel()
        else flat
    )
    return out.reshape(s.shape)


def B(s: torch.Tensor | float, head_dim: int, base: float) -> torch.Tensor:
    """The paper's B(s) (Eq. 8) with theta_j = base^(-2j/d); s (...,) -> (...,) float64."""
    return B_theta(s, base_inv_freq(head_dim, base))


def B_over_d(s: torch.Tensor | float, head_dim: int, base: float) -> torch.Tensor:
    """B(s)/d, the quantity of Figure 5 (>= 1 on [0, 4096) for d = 128, c = 10000; 16.25 at s = 0)."""
    return B(s, head_dim, base) / head_dim


def B0_over_d(head_dim: int) -> float:
    """Closed form at s = 0: every |A_{k+1}(0)| = k + 1, so B(0)/d = (d/2)(d/2 + 1) / (2d)."""
    half = head_dim // 2
    return half * (half + 1) / (2 * head_dim)


def _in_interval(s, s1, s2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """s, s1, s2 as float64 tensors, checked that s1 <= s <= s2 everywhere."""
    s, s1, s2 = as_float64(s), as_float64(s1), as_float64(s2)
    if bool(((s < s1) | (s > s2)).any()):
        raise ValueError("every s must lie in its interval [s1, s2]")
    return s, s1, s2


def interpolation_bound(
    head_dim: int,
    base: float,
    max_h: float,
    s: torch.Tensor | float,
    s1: torch.Tensor | float,
    s2: torch.Tensor | float,
) -> torch.Tensor:
    """Theorem 2.1 (Eq. 5): d * max|h| * (s - s1)(s2 - s) / (8 ln c) for s in [s1, s2]. s, s1, s2
    broadcast together (each grid point may have its own neighbours) -> float64 of the broadcast shape."""
    s, s1, s2 = _in_interval(s, s1, s2)
    return head_dim * max_h * (s - s1) * (s2 - s) / (8 * math.log(base))


def theta_square_sum(head_dim: int, base: float) -> float:
    """S2 = sum_j theta_j^2 = (1 - c^-2) / (1 - c^(-4/d)): the factor the proof of Theorem 2.1 really needs."""
    return (base_inv_freq(head_dim, base) ** 2).sum().item()


def interpolation_bound_corrected(
    head_dim: int,
    base: float,
    max_h: float,
    s: torch.Tensor | float,
    s1: torch.Tensor | float,
    s2: torch.Tensor | float,
) -> torch.Tensor:
    """Theorem 2.1 with the proof's own constant: max|h| * S2 * (s - s1)(s2 - s) / 2 (see the module note).
    It holds for every h; the paper's `interpolation_bound` does not (about 13% too small at d = 128)."""
    s, s1, s2 = _in_interval(s, s1, s2)
    return max_h * theta_square_sum(head_dim, base) * (s - s1) * (s2 - s) / 2


def interpolation_bound_corrected_worst(head_dim: int, base: float, max_h: float) -> float:
    """The corrected worst case between neighbouring integers: max|h| * S2 / 8."""
    return max_h * theta_square_sum(head_dim, base) / 8


def interpolation_bound_worst(head_dim: int, base: float, max_h: float) -> float:
    """Eq. 7: the worst case of Theorem 2.1 between neighbouring integers, d * max|h| / (32 ln c)."""
    return head_dim * max_h / (32 * math.log(base))


def extrapolation_bound(s: torch.Tensor | float, head_dim: int, base: float, max_h: float) -> torch.Tensor:
    """Eq. 8: 2 * max|h| * B(s); s (...,) -> (...,) float64."""
    return 2 * max_h * B(s, head_dim, base)


def ratio_lower_bound(base: float) -> float:
    """Section 4.3: extrapolation / interpolation bound >= 2 d / (d / (32 ln c)) = 64 ln c (589.46 at 10^4).
    It uses B(s)/d >= 1, which `B_over_d` lets you check for a given d."""
    return 64 * math.log(base)


def ratio_lower_bound_corrected(head_dim: int, base: float) -> float:
    """The same ratio with the corrected interpolation bound: 2 d / (S2 / 8) = 16 d / S2 (512.2 at d = 128)."""
    return 16 * head_dim / theta_square_sum(head_dim, base)


def bound_ratio(s: torch.Tensor | float, head_dim: int, base: float) -> torch.Tensor:
    """The exact ratio at distance s: 2 max|h| B(s) / (d max|h| / (32 ln c)) = 64 ln c * B(s)/d (max|h| cancels)."""
    return ratio_lower_bound(base) * B_over_d(s, head_dim, base)


def triangle_bound(head_dim: int, max_h: float) -> float:
    """The plain triangle inequality |a(s)| <= sum_j |h_j| <= (d/2) max|h|, for comparison: since
    B(s)/d >= 1, Eq. 8's bound 2 max|h| B(s) is always at least 4 times looser than this one."""
    return head_dim / 2 * max_h
