"""Effective angles and the interpolation/extrapolation regime for every scaling method."""

from __future__ import annotations

import math

import pytest
import torch

from ropescale import RopeScaling
from ropescale.rope import base_inv_freq
from ropescale.theory import angle_coverage, effective_angles, effective_positions, regime

D, BASE, L = 128, 10000.0, 2048


def test_pi_maps_every_dimension_back_into_the_window():
    spec = RopeScaling("linear", 4.0, L)
    t = effective_positions(D, BASE, spec)
    torch.testing.assert_close(t, torch.full_like(t, float(L)), rtol=1e-6, atol=0)  # float32 theta'
    r = regime(D, BASE, spec)
    assert r["regime"] == "interpolation" and r["unseen_dims"] == [] and r["new_window"] == 4 * L


def test_plain_extrapolation_leaves_exactly_the_dims_without_a_full_turn():
    spec = RopeScaling("none", 2.0, L)
    theta = base_inv_freq(D, BASE)
    want = [j for j in range(D // 2) if L * theta[j].item() < 2 * math.pi]  # independent of the code
    r = regime(D, BASE, spec)
    assert r["regime"] == "extrapolation" and r["unseen_dims"] == want and len(want) == 23
    assert r["max_effective_position_over_L"] == pytest.approx(2.0, rel=1e-6)


@pytest.mark.parametrize("method", ["yarn", "llama3"])
def test_yarn_and_llama3_stay_in_the_seen_range(method):
    assert regime(D, BASE, RopeScaling(method, 8.0, L))["regime"] == "interpolation"


def test_ntk_pushes_middle_dimensions_past_the_window_but_not_as_far_as_plain():
    r = regime(D, BASE, RopeScaling("ntk", 4.0, L))
    plain = regime(D, BASE, RopeScaling("none", 4.0, L))
    assert r["regime"] == "extrapolation"
    assert set(r["unseen_dims"]) < set(plain["unseen_dims"])
    assert 1.0 < r["max_effective_position_over_L"] < 4.0


def test_effective_angles_are_position_times_scaled_frequency():
    spec = RopeScaling("linear", 2.0, 64)
    angles = effective_angles(16, BASE, spec)
    assert angles.shape == (128, 8)
    theta32 = base_inv_freq(16, BASE).float()  # the float32 frequencies a model holds
    torch.testing.assert_close(angles[100], 100 * (theta32 / 2).double(), rtol=1e-12, atol=0)
    some = effective_angles(16, BASE, spec, torch.tensor([0.0, 0.5]))
    assert some.shape == (2, 8) and some[0].abs().max() == 0


@pytest.mark.parametrize(
    "spec", [RopeScaling("none", 2.0, L), RopeScaling("ntk", 4.0, L), RopeScaling("dynamic", 4.0, L)]
)
def test_unseen_flag_agrees_with_the_angles(spec):
    for row in angle_coverage(D, BASE, spec):
        grew = row["new_max_angle"] > row["seen_max_angle"] * (1 + 1e-6)
        assert row["unseen_angles"] == (grew and not row["full_turn_in_pretraining"])
        assert row["effective_position"] == pytest.approx(L * row["new_max_angle"] / row["seen_max_angle"])


def test_no_new_window_is_its_own_regime():
    r = regime(D, BASE, RopeScaling("none", 1.0, L))
    assert r["regime"] == "original" and r["unseen_dims"] == [] and r["new_window"] == L
