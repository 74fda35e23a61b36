"""The Figure 2 experiment: fit random targets with the RoPE basis, then extrapolate and interpolate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ropescale.theory import figure2_experiment, fit_random, scores
from ropescale.theory.fit import rope_features


@pytest.fixture(scope="module")
def paper_fit():
    return figure2_experiment()  # d = 128, c = 10000, L = 2048, float64, eps = 0, seed 0


def test_fit_stays_small_inside_and_between_integers_and_explodes_beyond(paper_fit):
    r = paper_fit
    assert r["max_abs_fit_inside"] < 1.0  # "within about [-1, 1]" on [0, L)
    assert r["max_abs_fit_interpolated"] < 1.0
    assert r["max_abs_fit_beyond"] > 1e3 * r["max_abs_fit_inside"]  # orders of magnitude beyond L
    assert r["interpolation"]["max_deviation_over_corrected_bound"] <= 1.0  # Theorem 2.1 (corrected)
    assert r["rank"] < 128  # why: X is numerically rank deficient, the SVD keeps part of it


def _numpy_features(window: int, n: int) -> np.ndarray:
    theta = 1.0 / 10000.0 ** (np.arange(0, 128, 2) / 128)
    s = np.arange(n)[:, None] * theta[None, :]
    return np.concatenate([np.sin(s), np.cos(s)], axis=1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fit_equals_numpy_truncated_least_squares(dtype):
    """An independent solver (numpy's lstsq, LAPACK through OpenBLAS) with the same documented cut-off,
    sigma_i > sqrt(eps_dtype) * sigma_1, gives the same fit everywhere, beyond L included."""
    fit = fit_random(dtype=dtype)
    X = _numpy_features(2048, 2048)
    rcond = float(np.sqrt(np.finfo(dtype).eps))
    w = np.linalg.lstsq(X, np.asarray(fit.targets), rcond=rcond)[0]
    ours = np.asarray(fit(torch.arange(4096, dtype=torch.float64)))
    theirs = _numpy_features(2048, 4096) @ w
    # relative to the curve's scale: beyond L it reaches ~7e4 and crosses zero, where a pointwise rtol
    # would demand more than the kept part's conditioning (~1e7 x float64 eps) can give
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9 * np.abs(theirs).max())
    assert fit.rank == np.linalg.matrix_rank(X, tol=rcond * np.linalg.norm(X, 2))


def test_cut_off_sits_in_a_gap_of_the_spectrum():
    """Why the answer is machine independent: the nearest singular values are over 2x away from the
    cut-off, far beyond any kernel's rounding (relative 1e-13 at most) at sigma ~ 1e-8 sigma_1."""
    for dtype in ("float64", "float32"):
        fit = fit_random(dtype=dtype)
        ratio = (fit.singular_values / fit.singular_values[0]).tolist()
        cut = float(np.sqrt(np.finfo(dtype).eps))
        assert ratio[fit.rank - 1] > 2 * cut and ratio[fit.rank] < cut / 2


def test_paper_fit_numbers_are_pinned(paper_fit):
    """Golden values (3 significant digits) of the default experiment; computed once with this solver and
    identical under MKL_CBWR=AVX2, AVX512 and COMPATIBLE at 1 and 2 threads (the solver is defined by the
    spectrum, not by rounding; see the module docstring)."""
    r = paper_fit
    assert r["rank"] == 76
    assert f"{r['max_abs_fit_inside']:.3g}" == "0.56"
    assert f"{r['max_abs_fit_beyond']:.3g}" == "6.6e+04"
    assert f"{r['rms_residual']:.3g}" == "0.978"


def test_float32_fit_also_extrapolates_badly_and_ridge_tames_it(paper_fit):
    f32 = figure2_experiment(dtype="float32")
    assert f32["max_abs_fit_inside"] < 1.0
    assert f32["max_abs_fit_beyond"] > 10 * f32["max_abs_fit_inside"]
    ridge = figure2_experiment(eps=1e-3)
    assert ridge["max_abs_fit_inside"] < 1.0
    assert ridge["max_abs_fit_beyond"] < 1e-3 * paper_fit["max_abs_fit_beyond"]


def test_h_of_the_fit_gives_the_same_function():
    fit = fit_random(head_dim=16, base=10000.0, window=64, seed=3)
    s = torch.arange(0, 200, 0.25, dtype=torch.float64)
    torch.testing.assert_close(scores(fit.h, s, fit.theta), fit(s), rtol=1e-9, atol=1e-9)


def test_features_are_sin_then_cos():
    theta = torch.tensor([1.0, 0.5], dtype=torch.float64)
    X = rope_features(torch.tensor([2.0]), theta)
    torch.testing.assert_close(
        X[0], torch.tensor([np.sin(2), np.sin(1), np.cos(2), np.cos(1)], dtype=torch.float64)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"dtype": "float16"}, "--fit-dtype"), ({"eps": -1.0}, "--eps")]
)
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_random(**kwargs)
