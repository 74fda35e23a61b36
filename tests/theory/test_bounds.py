"""B(s), the interpolation/extrapolation bounds and their ratio (PAPER.md 4.1-4.3, 4.5)."""

from __future__ import annotations

import cmath
import math

import pytest
import torch

from ropescale.rope import base_inv_freq
from ropescale.theory import (
    B,
    B0_over_d,
    B_over_d,
    B_theta,
    bound_ratio,
    extrapolation_bound,
    interpolation_bound,
    interpolation_bound_corrected,
    interpolation_bound_corrected_worst,
    interpolation_bound_worst,
    ratio_lower_bound,
    ratio_lower_bound_corrected,
    theta_square_sum,
)

PAPER_S = torch.arange(4096, dtype=torch.float64)  # Figure 5: s in [0, 2L), L = 2048


def naive_B(s: float, theta: list[float]) -> float:
    """B(s) = sum_k |sum_{j<=k} e^{i s theta_j}| with a Python loop and cmath (no torch)."""
    total, partial = 0.0, 0j
    for t in theta:
        partial += cmath.exp(1j * s * t)
        total += abs(partial)
    return total


def a_of_s(h: torch.Tensor, s: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """a(s) = Re sum_j h_j e^{i s theta_j} straight from the definition: h (..., d/2), s (S,) -> (..., S)."""
    phase = torch.exp(1j * s.to(torch.float64)[:, None] * theta[None, :])  # (S, d/2)
    return (h[..., None, :] * phase).sum(-1).real


@pytest.mark.parametrize("head_dim", [2, 16, 64, 128, 256])
def test_B_at_zero_is_the_closed_form(head_dim):
    half = head_dim // 2
    assert (
        B_over_d(0.0, head_dim, 10000.0).item() == half * (half + 1) / (2 * head_dim) == B0_over_d(head_dim)
    )


def test_B0_over_d_is_16_25_at_the_paper_setting():
    assert B_over_d(0.0, 128, 10000.0).item() == 16.25


@pytest.mark.parametrize("s", [0.0, 0.5, 1.0, 7.25, 100.0, 2047.0, 3643.0, 1e5])
def test_B_matches_a_naive_loop(s):
    theta = base_inv_freq(16, 10000.0).tolist()
    assert B(s, 16, 10000.0).item() == pytest.approx(naive_B(s, theta), rel=1e-12)
    odd = torch.rand(12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)  # any frequencies
    assert B_theta(s, odd).item() == pytest.approx(naive_B(s, odd.tolist()), rel=1e-12)


def test_B_over_d_is_at_least_one_on_the_paper_range_with_the_papers_values():
    values = B_over_d(PAPER_S, 128, 10000.0)
    assert values.min().item() >= 1.0
    # golden values: a numpy recomputation of the paper's App. C.2 code (PAPER.md 4.4), two decimals
    for s, want in {1: 15.77, 10: 8.98, 100: 5.11, 1000: 2.24, 2047: 1.88}.items():
        assert round(values[s].item(), 2) == want
    assert round(values.min().item(), 2) == 1.12 and int(values.argmin()) == 3643


def test_B_is_vectorised_and_chunked_consistently():
    s = torch.arange(0, 20000, 0.5, dtype=torch.float64)  # more than one 8192-row block
    full = B(s, 32, 10000.0)
    assert full.shape == s.shape
    picks = [0, 8191, 8192, 16383, 39999]
    assert torch.equal(full[picks], B(s[picks], 32, 10000.0))


def test_the_ratio_is_589_46():
    assert round(ratio_lower_bound(10000.0), 2) == 589.46
    assert ratio_lower_bound(10000.0) == pytest.approx(2 * 32 * math.log(10000.0), rel=1e-15)


@pytest.mark.parametrize("max_h", [0.3, 1.0, 17.0])
def test_the_ratio_of_the_two_bounds_is_at_least_589_46_on_the_paper_range(max_h):
    extrap = extrapolation_bound(PAPER_S, 128, 10000.0, max_h)
    interp = interpolation_bound_worst(128, 10000.0, max_h)
    ratio = extrap / interp
    torch.testing.assert_close(ratio, bound_ratio(PAPER_S, 128, 10000.0), rtol=1e-12, atol=0)
    assert ratio.min().item() >= 589.46
    assert interp == pytest.approx(128 * max_h / 294.73, rel=1e-4)  # Eq. 7: 32 ln 10000 = 294.73


def test_theta_square_sum_is_the_geometric_series():
    for d, c in [(16, 10000.0), (128, 10000.0), (64, 1e5)]:
        closed = (1 - c**-2) / (1 - c ** (-4 / d))
        assert theta_square_sum(d, c) == pytest.approx(closed, rel=1e-12)
        # the paper's Eq. 14 claims this is <= d / (4 ln c); it is the other way round
        assert closed > d / (4 * math.log(c))


def test_corrected_ratio_is_512_at_d128_and_tends_to_the_papers():
    assert round(ratio_lower_bound_corrected(128, 10000.0), 2) == 512.22
    assert ratio_lower_bound_corrected(8192, 10000.0) == pytest.approx(ratio_lower_bound(10000.0), rel=3e-3)


def _midpoint_setup(head_dim, base, trials, seed):
    gen = torch.Generator().manual_seed(seed)
    theta = base_inv_freq(head_dim, base)
    h = torch.complex(
        torch.randn(trials, head_dim // 2, generator=gen, dtype=torch.float64),
        torch.randn(trials, head_dim // 2, generator=gen, dtype=torch.float64),
    )
    s1 = torch.randint(0, 4096, (trials, 1), generator=gen).to(torch.float64)
    frac = torch.rand(trials, 16, generator=gen, dtype=torch.float64)
    return theta, h, s1, s1 + frac


@pytest.mark.parametrize(("head_dim", "base"), [(16, 10000.0), (128, 10000.0), (64, 1e5)])
def test_interpolation_bound_holds_on_random_h(head_dim, base):
    theta, h, s1, s = _midpoint_setup(head_dim, base, trials=200, seed=0)
    a = lambda x: torch.stack([a_of_s(h[i], x[i], theta) for i in range(len(h))])  # noqa: E731
    lam = s - s1
    dev = (a(s) - ((1 - lam) * a(s1) + lam * a(s1 + 1))).abs()
    max_h = h.abs().amax(-1, keepdim=True)
    corrected = interpolation_bound_corrected(head_dim, base, max_h, s, s1, s1 + 1)
    paper = interpolation_bound(head_dim, base, max_h, s, s1, s1 + 1)
    assert (dev <= corrected * (1 + 1e-9) + 1e-12).all()
    # the paper's constant is 13% short at d = 128 (29% at d = 64, c = 1e5) and random phases stay below it,
    # but it is 61% short at d = 16, where random h already break it (seeded: deterministic)
    assert (dev <= paper).all() if head_dim > 16 else (dev > paper).any()


@pytest.mark.parametrize(("head_dim", "base"), [(16, 10000.0), (128, 10000.0), (64, 1e5), (128, 5e5)])
def test_interpolation_bound_near_the_worst_case(head_dim, base):
    """h_j = e^{-i s0 theta_j} lines every term up at the midpoint s0 = s1 + 1/2, where a'' is largest:
    the corrected bound holds within 2% of equality and the paper's stated bound is exceeded."""
    theta = base_inv_freq(head_dim, base)
    s1 = 1234.0
    h = torch.exp(-1j * (s1 + 0.5) * theta)
    a = a_of_s(h, torch.tensor([s1, s1 + 0.5, s1 + 1]), theta)
    dev = abs(a[1] - (a[0] + a[2]) / 2).item()
    corrected = interpolation_bound_corrected(head_dim, base, 1.0, s1 + 0.5, s1, s1 + 1).item()
    assert corrected == pytest.approx(interpolation_bound_corrected_worst(head_dim, base, 1.0), rel=1e-12)
    assert 0.98 * corrected <= dev <= corrected
    assert dev > interpolation_bound_worst(head_dim, base, 1.0)


def test_interpolation_bound_formula_and_interval_check():
    d, c = 128, 10000.0
    assert interpolation_bound(d, c, 2.0, 5.25, 5, 6).item() == pytest.approx(
        d * 2 * 0.75 * 0.25 / (8 * math.log(c))
    )
    assert interpolation_bound(d, c, 2.0, 5.5, 5, 6).item() == pytest.approx(
        interpolation_bound_worst(d, c, 2.0)
    )
    with pytest.raises(ValueError, match=r"\[s1, s2\]"):
        interpolation_bound(d, c, 1.0, 7.0, 5, 6)
    with pytest.raises(ValueError, match=r"\[s1, s2\]"):
        interpolation_bound_corrected(d, c, 1.0, 4.0, 5, 6)
