"""The smallest RoPE base of Men et al. 2024 (B_m >= 0 for every distance below the window): hand-worked
cases, an independent brute force, the paper's table, and what a scaling's frequencies give."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ropescale import RopeScaling
from ropescale.rope import base_bound, base_inv_freq, first_violation, similarity_margin, smallest_base
from ropescale.rope.base_lower_bound import REL_TOL


def margins_numpy(d: int, base: float, distances: np.ndarray) -> np.ndarray:
    """B_m written out again with numpy: sum_i cos(m * base^(-2i/d))."""
    theta = base ** (-np.arange(0, d, 2) / d)
    return np.cos(np.outer(distances, theta)).sum(axis=1)


@pytest.mark.parametrize(
    "window,exact",
    [
        # d = 4: B_m = cos(m) + cos(m / sqrt(b)). m = 1 always passes; the last distance m = L - 1 needs
        # cos(m / sqrt(b)) >= -cos(m) = cos(pi - m), i.e. sqrt(b) >= m / (pi - m), and every smaller base
        # > 1 puts m / sqrt(b) inside (pi - m, m), where the cosine is lower.
        (3, (2 / (math.pi - 2)) ** 2),  # 3.0693
        (4, (3 / (math.pi - 3)) ** 2),  # 448.91
    ],
)
def test_hand_worked_rotary_dim_4(window, exact):
    got = smallest_base(4, window)
    assert exact <= got <= exact * (1 + 2 * REL_TOL)


def test_windows_of_one_or_two_admit_every_base():
    # B_0 = d/2 and B_1 = sum_i cos(theta_i) > 0 since every theta_i is in (0, 1]
    assert smallest_base(128, 1) == smallest_base(128, 2) == pytest.approx(1.0, abs=2 * REL_TOL)


def test_rotary_dim_two_has_no_base_beyond_two():
    with pytest.raises(ValueError, match="cos 2 < 0"):
        smallest_base(2, 3)


@pytest.mark.parametrize("d,window", [(16, 300), (32, 200), (64, 500)])
def test_against_an_independent_brute_force(d, window):
    """The result passes, a base just below fails, and every base on a fine grid below it fails (numpy, all
    distances at once: another implementation of the same criterion)."""
    got = smallest_base(d, window)
    m = np.arange(window, dtype=np.float64)
    assert margins_numpy(d, got, m).min() >= 0
    assert margins_numpy(d, got * (1 - 2 * REL_TOL), m).min() < 0
    grid = np.exp(np.linspace(np.log(1.0001), np.log(got * (1 - 2 * REL_TOL)), 4000))
    assert all(margins_numpy(d, b, m).min() < 0 for b in grid)


# The paper's table (arXiv 2405.14591, d = 128), as quoted in Su Jianlin's post on it (kexue.fm, archive
# 10122), which recomputed it by brute force (JAX on a GPU, 10^5 grid points on [0, 1000 L]) and found
# smaller bases at some lengths: the paper inverted L(b) on a grid of bases, which can only overshoot.
PAPER = {1024: 4.3e3, 2048: 1.6e4, 4096: 2.7e4, 8192: 8.4e4, 16384: 3.1e5, 32768: 6.4e5, 65536: 2.1e6}
SU = {1024: 4.3e3, 2048: 1.2e4, 4096: 2.7e4, 8192: 8.4e4, 16384: 2.3e5, 32768: 6.3e5, 65536: 2.1e6}


def _check_table(window):
    got = smallest_base(128, window)
    assert float(f"{got:.1e}") == SU[window]  # two significant digits, as both tables print
    assert got <= PAPER[window] * 1.05  # never above the paper's (rounded) value
    if PAPER[window] == SU[window]:
        assert float(f"{got:.1e}") == PAPER[window]


@pytest.mark.parametrize("window", [1024, 2048, 4096, 8192])
def test_paper_table(window):
    _check_table(window)


@pytest.mark.slow
@pytest.mark.parametrize("window", [16384, 32768, 65536])
def test_paper_table_long(window):
    _check_table(window)


def test_not_an_interval_so_bisection_would_be_wrong():
    # d = 128, L = 4096: the first admissible stretch is narrow; 27000 fails, 28700 passes again
    assert first_violation(base_inv_freq(128, 26960.0), 4096) is None
    assert first_violation(base_inv_freq(128, 27000.0), 4096) is not None
    assert first_violation(base_inv_freq(128, 28700.0), 4096) is None


def test_margin_is_the_sum_of_cosines_and_pi_divides_the_distance():
    d, base, s = 64, 10000.0, 4.0
    m = torch.arange(0, 3000, dtype=torch.float64)
    theta = base_inv_freq(d, base)
    np.testing.assert_allclose(
        similarity_margin(m, theta).numpy(), margins_numpy(d, base, m.numpy()), atol=1e-9
    )
    # PI: B_m(theta / s) = B_(m/s)(theta), the base's own values at fractional distances
    np.testing.assert_allclose(
        similarity_margin(m, theta / s).numpy(), margins_numpy(d, base, m.numpy() / s), atol=1e-9
    )


def test_report_for_pi_and_abf_against_direct_evaluation():
    d, orig = 64, 1024
    bstar = smallest_base(d, orig)
    # PI at s = 4 with an admissible base (b* itself: a larger one need not pass, the set is not an
    # interval): compared with the fractional grid m / 4 < L evaluated directly
    base = bstar
    r = base_bound(d, base, RopeScaling("linear", 4.0, orig))
    assert r["base_passes"] and set(r["smallest_base"]) == {"1024", "2048", "4096"}
    assert r["scaled_passes"] == (margins_numpy(d, base, np.arange(4 * orig) / 4).min() >= 0)
    assert r["smallest_base"]["4096"] == smallest_base(d, 4096)
    # plain RoPE (direct extrapolation) with the same base fails at the new window, ABF at b*(4L) passes
    r = base_bound(d, base, RopeScaling("none", 4.0, orig))
    first = int(np.flatnonzero(margins_numpy(d, base, np.arange(4 * orig)) < 0)[0])
    assert not r["scaled_passes"] and r["scaled_first_violation"] == first
    abf = RopeScaling("abf", 4.0, orig, rope_theta=r["smallest_base"]["4096"])
    assert base_bound(d, base, abf)["scaled_passes"]


def test_same_result_with_one_or_two_threads():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = smallest_base(128, 2048)
        torch.set_num_threads(2)
        two = smallest_base(128, 2048)
    finally:
        torch.set_num_threads(threads)
    assert one == two


@pytest.mark.parametrize("d,base,window", [(64, 20000.0, 4096), (128, 60000.0, 8192), (16, 300.0, 200)])
def test_every_base_the_certified_step_skips_fails(d, base, window):
    """From a failing base, the scan jumps ln b by the violation's certified step: every base in between
    must fail too (checked on 200 points with numpy, all distances)."""
    weights = torch.arange(d // 2, dtype=torch.float64) * 2 / d
    found = first_violation(base_inv_freq(d, base), window, weights=weights)
    assert found is not None and found.safe_step > 0
    m = np.arange(window, dtype=np.float64)
    for h in np.linspace(0, found.safe_step, 200, endpoint=False):
        assert margins_numpy(d, base * math.exp(h), m).min() < 0
