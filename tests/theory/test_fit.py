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
    assert r["condition_number"] > 1e12  # why: X is numerically rank deficient


def test_fit_residual_matches_numpy_least_squares(paper_fit):
    """The normal-equation fit is a genuine least-squares fit: its residual is within 1% of numpy's SVD
    solver (an independent code; it is slightly lower there because X^T X squares a condition number of
    ~1e17, which the normal equations cannot resolve and the SVD truncates)."""
    theta = 1.0 / 10000.0 ** (np.arange(0, 128, 2) / 128)
    s = np.arange(2048)[:, None] * theta[None, :]
    X = np.concatenate([np.sin(s), np.cos(s)], axis=1)
    y = np.asarray(fit_random().targets)
    w = np.linalg.lstsq(X, y, rcond=None)[0]
    rms = np.sqrt(np.mean((X @ w - y) ** 2))
    assert rms <= paper_fit["rms_residual"] <= 1.01 * rms


def test_float32_fit_also_extrapolates_badly_and_ridge_tames_it(paper_fit):
    f32 = figure2_experiment(dtype="float32")
    assert f32["max_abs_fit_inside"] < 1.0
    assert f32["max_abs_fit_beyond"] > 10 * f32["max_abs_fit_inside"]
    ridge = figure2_experiment(eps=1e-3)
    assert ridge["max_abs_fit_inside"] < 1.0
    assert ridge["max_abs_fit_beyond"] < 1e-4 * paper_fit["max_abs_fit_beyond"]


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
