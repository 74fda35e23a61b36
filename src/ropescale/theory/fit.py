"""The Figure 2 experiment (arXiv 2306.15595, Appendix C.1): fit random targets with the RoPE basis.

Features are sin(s theta_j) and cos(s theta_j) for the d/2 frequencies (d features in all), targets are
i.i.d. N(0, 1) at the integer distances s = 0..L-1, and the coefficients minimise
|X w - y|^2 + eps |w|^2 (eps = 0: plain least squares, eps > 0: ridge). The fit then stays within about
[-1, 1] on [0, L) and between integers (interpolation), but beyond L (extrapolation) it grows by orders of
magnitude: tiny singular directions of X carry huge coefficients that only show beyond L.

The solver is defined by the mathematics, not by rounding. X's singular values fall geometrically, by a
factor of ~15 each, from sigma_70 / sigma_1 ~ 4e-2 down to the float64 noise floor (~1e-16; at the paper's
d = 128, c = 10^4, L = 2048 only ~81 of the 128 directions are above it). The paper solves the normal
equations X^T X w = X^T y, which square that spread, so what a normal-equation solve makes of the
directions below sqrt(machine eps) * sigma_1 is whatever the BLAS/LAPACK kernel's rounding makes it
(max |a| beyond L was 6e6 on one CPU kernel and 8e7 on another). We therefore solve by a float64 SVD
and keep exactly the directions a normal-equation solve in `dtype` can resolve:

    w = sum over sigma_i > rcond * sigma_1 of  v_i * sigma_i / (sigma_i^2 + eps) * (u_i . y),
    rcond = sqrt(finfo(dtype).eps)   (1.49e-8 for float64, 3.45e-4 for float32)

(eps = 0 gives the truncated pseudo-inverse). Because the cut-off falls in a gap of the geometric
spectrum (the neighbouring values are ~4x above and below it at the paper's setting), the answer does not
depend on the CPU, the kernel or the thread count. `dtype` therefore sets the resolvable spectrum rather
than a rounding mode: float64 keeps 76 directions (blow-up ~7e4 beyond L), float32 keeps 72 (~11).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..rope import base_inv_freq
from .bounds import (
    interpolation_bound_corrected,
    interpolation_bound_corrected_worst,
    interpolation_bound_worst,
)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def rcond_for(dtype: str) -> float:
    """The relative singular-value cut-off for a fit 'in' dtype: sqrt(machine eps), what its normal
    equations (which square the condition number) can still resolve."""
    return torch.finfo(DTYPES[dtype]).eps ** 0.5


def rope_features(s: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """[sin(s theta_j) | cos(s theta_j)]: s (S,), theta (d/2,) -> (S, d) float64."""
    angles = s.to(torch.float64)[:, None] * theta.to(torch.float64)[None, :]
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


@dataclass(frozen=True)
class RopeFit:
    """A least-squares fit in the RoPE basis. weights: (d,) float64, sin coefficients first."""

    theta: torch.Tensor
    weights: torch.Tensor
    targets: torch.Tensor
    singular_values: torch.Tensor  # (d,) of X, descending
    rank: int  # directions kept (sigma_i > rcond * sigma_1)

    def __call__(self, s: torch.Tensor) -> torch.Tensor:
        """The fitted a(s) at any (fractional) distances s (S,), evaluated in float64 -> (S,)."""
        return rope_features(s, self.theta) @ self.weights

    @property
    def h(self) -> torch.Tensor:
        """(d/2,) complex coefficients of a(s) = Re sum_j h_j e^{i s theta_j}: h_j = w_cos_j - i w_sin_j."""
        half = self.theta.numel()
        return torch.complex(self.weights[half:], -self.weights[:half])


def fit_random(
    head_dim: int = 128,
    base: float = 10000.0,
    window: int = 2048,
    eps: float = 0.0,
    dtype: str = "float64",
    seed: int = 0,
) -> RopeFit:
    """Fit N(0, 1) targets (seeded) at s = 0..window-1 by a float64 SVD keeping the singular directions
    above rcond_for(dtype) * sigma_1, with ridge eps (see the module docstring)."""
    if dtype not in DTYPES:
        raise ValueError(f"--fit-dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if eps < 0:
        raise ValueError(f"--eps must be >= 0, got {eps}")
    theta = base_inv_freq(head_dim, base)
    targets = torch.randn(window, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    X = rope_features(torch.arange(window), theta)
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    keep = S / S[0] > rcond_for(dtype)
    gain = S[keep] / (S[keep] ** 2 + eps)
    weights = Vh[keep].T @ (gain * (U[:, keep].T @ targets))
    return RopeFit(theta, weights, targets, S, int(keep.sum()))


def interpolation_grid(start: float = 25.0, stop: float = 75.0, step: float = 0.125) -> torch.Tensor:
    """The fractional distances of Figure 2's right panel (paper: [25, 75) in steps of 1/8)."""
    return torch.arange(start, stop, step, dtype=torch.float64)


def interpolation_check(fit: RopeFit, s: torch.Tensor, base: float) -> dict[str, float]:
    """Between integers: the largest |a(s) - a_linear(s)| (a_linear joins a at floor(s), floor(s)+1), the
    worst-case Theorem 2.1 bound with the fit's own max|h| (paper's and corrected constants), and the largest
    ratio of the deviation to the corrected pointwise bound (<= 1: it is a theorem)."""
    s1 = s.floor()
    lam = s - s1
    a_lin = (1 - lam) * fit(s1) + lam * fit(s1 + 1)
    dev = (fit(s) - a_lin).abs()
    max_h = fit.h.abs().max().item()
    head_dim = 2 * fit.theta.numel()
    bound = interpolation_bound_corrected(head_dim, base, max_h, s, s1, s1 + 1)
    inner = bound > 0  # at integers both are zero (up to rounding)
    return {
        "max_deviation_from_linear": dev.max().item(),
        "theorem_bound_worst_paper": interpolation_bound_worst(head_dim, base, max_h),
        "theorem_bound_worst_corrected": interpolation_bound_corrected_worst(head_dim, base, max_h),
        "max_deviation_over_corrected_bound": (dev[inner] / bound[inner]).max().item()
        if inner.any()
        else 0.0,
    }


def figure2_experiment(
    head_dim: int = 128,
    base: float = 10000.0,
    window: int = 2048,
    eps: float = 0.0,
    dtype: str = "float64",
    seed: int = 0,
) -> dict[str, Any]:
    """Everything behind Figure 2: the targets, the fit on [0, 2L) and on the interpolation grid, and the
    maximum magnitudes per regime. Plain lists and floats (JSON-able)."""
    fit = fit_random(head_dim, base, window, eps, dtype, seed)
    s_all = torch.arange(2 * window, dtype=torch.float64)
    values = fit(s_all)
    inside, beyond = values[:window], values[window:]
    grid = interpolation_grid()
    interp = fit(grid)
    sv = fit.singular_values
    return {
        "setting": {
            "head_dim": head_dim,
            "base": base,
            "window": window,
            "eps": eps,
            "dtype": dtype,
            "seed": seed,
            "rcond": rcond_for(dtype),
        },
        "rank": fit.rank,
        "max_abs_target": fit.targets.abs().max().item(),
        "max_abs_fit_inside": inside.abs().max().item(),
        "max_abs_fit_beyond": beyond.abs().max().item(),
        "max_abs_fit_interpolated": interp.abs().max().item(),
        "rms_residual": (inside - fit.targets).pow(2).mean().sqrt().item(),
        "max_abs_h": fit.h.abs().max().item(),
        # of the kept part; X's full sigma_1 / sigma_d sits at the rounding floor and is kernel noise
        "condition_number_kept": (sv[0] / sv[fit.rank - 1]).item(),
        "interpolation": interpolation_check(fit, grid, base),
        "series": {
            "targets": fit.targets.tolist(),
            "fit": values.tolist(),
            "interp_s": grid.tolist(),
            "interp_fit": interp.tolist(),
        },
    }
