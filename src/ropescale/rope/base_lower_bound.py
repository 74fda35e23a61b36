"""The lower bound on the RoPE base of Men et al. 2024, "Base of RoPE Bounds Context Length"
(arXiv 2405.14591, NeurIPS 2024).

With q a random query and k* = q + eps a similar key, E[q^T R_m k*] - E[q^T R_m k] = 2 sigma^2 B_m for a
random key k, where B_m = sum_{i<d/2} cos(m theta_i) (theta_i = b^(-2i/d); the paper writes B_{m,theta}).
A model can prefer a similar token over a random one at distance m only while B_m >= 0, so a window L needs
B_m >= 0 for every relative distance m in {0, 1, ..., L-1}. The smallest admissible base is

    b*(d, L) = inf { b : B_m(b) >= 0 for all integers 0 <= m < L }.

The admissible set is not an interval (at d = 128, L = 4096 the bases from 26952.4 to 26973 pass, 27000
fails, and the next passing stretch starts near 28629), so bisection on b is wrong and a plain grid misses
narrow stretches (a 0.1% grid in ln b finds 28640). `smallest_base` runs a certified scan upward in ln b from
1 + rel_tol instead:

1. At a candidate b, find distances m with B_m(b) < 0 (near the previous candidate's violation first, then
   in order from 0, in blocks). None: b passes and is the answer.
2. Else step ln b by the largest h for which one violation m of the block provably stays negative: with
   phi_i = m theta_i and w_i = 2i/d, dB_m/d(ln b) = sum_i w_i phi_i sin(phi_i) and
   |d2B_m/d(ln b)^2| <= sum_i w_i^2 (phi_i + phi_i^2) (phi only shrinks as b grows), so B_m stays below
   B_m + D h + K h^2 / 2, negative up to that quadratic's positive root; at least rel_tol per step.

Every base skipped over is proven to fail except within steps of the minimum size, so the result passes the
criterion and is within rel_tol (relative, default 1e-6) of the exact infimum; an admissible stretch
narrower than rel_tol can be missed. B_m is summed in float64 from cosines of float64 angles m * theta_i
(error about 1e-12 for m < 2^21; the certificate subtracts 1e-9 from each margin); elementwise operations
and per-row sums only, so the result does not depend on BLAS kernels or thread counts. Cost: about 2 s at
L = 32K and d = 128 on one core (a few hundred to a few thousand candidates).

For scaled frequencies theta'_i the same criterion reads B_m = sum_i cos(m theta'_i). PI divides every
theta_i by s, so B_m(theta / s) = B_{m/s}(theta): PI at the new window sL sees exactly the values the
original base takes at the fractional distances m/s < L. So PI passes for sL exactly when the original base
passes on the grid {0, 1/s, ..., L - 1/s} (which contains the integers below L): it needs no larger base
for the longer window, whatever s is; it pays instead in resolution (neighbouring tokens are 1/s as far
apart), which this criterion does not measure.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from .methods import base_inv_freq, compute_freqs

if TYPE_CHECKING:
    from .spec import RopeScaling

REL_TOL = 1e-6  # relative: the smallest step of the scan, the width of what it may miss
_ROWS = 16384  # distances per block: a (16384, d/2) float64 table is 8 MB for d = 128
_NEAR = 1024  # distances checked first around the previous candidate's failing distance
_ROUNDING = 1e-9  # above the float64 error of B_m (d/2 cosines, |angle| < 2^21 rad)


def similarity_margin(distances: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """B_m = sum_i cos(m theta_i) for distances m (M,) and frequencies theta (d/2,) -> (M,) float64: the
    expected attention advantage of a similar token over a random one at distance m, over 2 sigma^2."""
    angles = distances.to(torch.float64)[:, None] * inv_freq.to(torch.float64)[None, :]
    return angles.cos().sum(-1)


class Violation(NamedTuple):
    """A distance m with B_m < 0 (the first one in its block), and `safe_step`: how far ln b can grow with
    some violation of the block certainly staying negative (0 without `weights`; `smallest_base`)."""

    distance: int
    safe_step: float


def _safe_step(m: torch.Tensor, b: torch.Tensor, inv_freq: torch.Tensor, weights: torch.Tensor) -> float:
    """The largest h such that B_m(ln b + h) < 0 is certain for one of the violating distances m (M,) with
    margins b (M,) < 0. With phi_i = m theta_i e^(-w_i h) and w_i = 2i/d: dB/dh = sum_i w_i phi_i sin phi_i,
    |d2B/dh2| <= K = sum_i w_i^2 (phi_i + phi_i^2) with phi_i at h = 0 (phi only shrinks), so B(h) <= B + D h
    + K h^2 / 2, negative below the positive root of that quadratic."""
    phi = m[:, None] * inv_freq[None, :]
    slope = (weights * phi * phi.sin()).sum(-1)
    curve = (weights**2 * (phi + phi**2)).sum(-1)
    margin = b + _ROUNDING  # an upper bound on the exact B_m; no certificate unless it is negative
    root = (-slope + (slope**2 - 2 * curve * margin.clamp(max=0)).sqrt()) / curve
    return float(torch.where(margin < 0, root, torch.zeros_like(root)).max())


def _violation(
    inv_freq: torch.Tensor, lo: int, hi: int, weights: torch.Tensor | None = None
) -> Violation | None:
    for start in range(lo, hi, _ROWS):
        m = torch.arange(start, min(start + _ROWS, hi), dtype=torch.float64)
        b = similarity_margin(m, inv_freq)
        bad = torch.nonzero(b < 0)[:, 0]
        if bad.numel():
            step = 0.0 if weights is None else _safe_step(m[bad], b[bad], inv_freq, weights)
            return Violation(start + int(bad[0]), step)
    return None


def first_violation(
    inv_freq: torch.Tensor, window: int, near: int | None = None, weights: torch.Tensor | None = None
) -> Violation | None:
    """A distance m < window with B_m < 0, the smallest one unless `near` finds one first (None: the
    frequencies pass for `window`). With `near`, the distances around it are tried first; with `weights`
    (2i/d, (d/2,)) the violation carries its certified step in ln b."""
    inv_freq = inv_freq.to(torch.float64)
    if near is not None:
        found = _violation(inv_freq, max(0, near - _NEAR), min(window, near + _NEAR), weights)
        if found is not None:
            return found
    return _violation(inv_freq, 0, window, weights)


def _check(rotary_dim: int, window: int) -> None:
    if isinstance(rotary_dim, bool) or not isinstance(rotary_dim, int) or rotary_dim < 2 or rotary_dim % 2:
        raise ValueError(f"rotary dim must be a positive even integer, got {rotary_dim!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")


def smallest_base(rotary_dim: int, window: int, rel_tol: float = REL_TOL) -> float:
    """b*(d, L): the smallest RoPE base with B_m >= 0 for every distance m < `window`, within `rel_tol`
    (module docstring: the certified scan). Pure and deterministic."""
    _check(rotary_dim, window)
    if rotary_dim == 2 and window > 2:  # theta_0 = 1 for every base and cos(2) < 0
        raise ValueError(f"no base passes for rotary dim 2 beyond a window of 2 (cos 2 < 0), got {window}")
    weights = torch.arange(rotary_dim // 2, dtype=torch.float64) * 2 / rotary_dim  # 2i/d
    log_b, near = math.log1p(rel_tol), None
    while True:
        found = first_violation(base_inv_freq(rotary_dim, math.exp(log_b)), window, near, weights)
        if found is None:
            return math.exp(log_b)
        log_b += max(found.safe_step, rel_tol)
        near = found.distance


def base_bound(
    rotary_dim: int, base: float, spec: RopeScaling, windows: tuple[int, ...] | None = None
) -> dict[str, Any]:
    """The bound for a model (rotary dim d, unscaled base b) and a scaling `spec` (L filled in).

    smallest_base: b* for each of `windows` (default L, 2L, 4L and the new window L'; keys: the windows as
    strings);
    base_passes / base_first_violation: the model's own base over [0, L) (None: no violation);
    scaled_passes / scaled_first_violation: the spec's frequencies (at the new window) over [0, L').
    """
    orig = spec.require_original()
    new = spec.new_window
    windows = sorted({orig, 2 * orig, 4 * orig, new} if windows is None else set(windows))
    plain = first_violation(base_inv_freq(rotary_dim, base), orig)
    scaled = first_violation(compute_freqs(rotary_dim, base, spec, seq_len=new).inv_freq, new)
    return {
        "rotary_dim": rotary_dim,
        "base": float(base),
        "original_window": orig,
        "new_window": new,
        "method": spec.rope_type,
        "smallest_base": {str(w): smallest_base(rotary_dim, w) for w in windows},
        "base_passes": plain is None,
        "base_first_violation": None if plain is None else plain.distance,
        "scaled_passes": scaled is None,
        "scaled_first_violation": None if scaled is None else scaled.distance,
        "rel_tol": REL_TOL,
    }


def format_base_bound(r: dict[str, Any], indent: str = "  ") -> list[str]:
    """The bound in a few lines: b* per window, the model's base, the scaled frequencies at L'."""
    orig, new = r["original_window"], r["new_window"]
    bases = ", ".join(f"{w}: {b:.4g}" for w, b in r["smallest_base"].items())
    own = "passes" if r["base_passes"] else f"fails (B_m < 0 at m = {r['base_first_violation']})"
    lines = [
        f"{indent}base bound (Men et al. 2024; B_m = sum_i cos(m theta_i) >= 0 for all m < window): smallest "
        f"base per window {bases}",
        f"{indent}  base {r['base']:g} {own} for L = {orig}; {_scaled_line(r)}",
    ]
    if r["method"] == "linear" and new > orig:
        lines.append(
            f"{indent}  PI divides positions by s: B_m(theta / s) = B_(m/s)(theta), the base's own values at "
            f"distances m/s < L, so PI passes for L' when the base passes on that finer grid below L: it "
            f"needs no larger base (it pays in resolution instead)"
        )
    return lines


def format_base_bound_line(r: dict[str, Any]) -> str:
    """One line for `inspect`: b* at the new window and whether the scaled frequencies pass there."""
    new = r["new_window"]
    return (
        f"  base bound (Men et al. 2024, B_m >= 0 for m < L'): smallest base for L' = {new} is "
        f"{r['smallest_base'][str(new)]:.4g}; {_scaled_line(r)}"
    )


def _scaled_line(r: dict[str, Any]) -> str:
    where = "" if r["scaled_passes"] else f" (B_m < 0 at m = {r['scaled_first_violation']})"
    verdict = "pass" if r["scaled_passes"] else "fail"
    return f"{r['method']} frequencies {verdict} for L' = {r['new_window']}{where}"
