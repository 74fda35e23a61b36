"""Resolution from the frequencies alone: golden cases worked by hand, and what each method keeps."""

from __future__ import annotations

import math

import pytest
import torch

from ropescale.config import RopeScaling
from ropescale.rope.resolution import angle_per_token, resolution


def spec(method: str, factor: float, orig: int = 2048, **kw) -> RopeScaling:
    return RopeScaling(rope_type=method, factor=factor, original_max_position_embeddings=orig, **kw)


def plain(head_dim: int, base: float) -> list[float]:
    """theta_i = b^(-2i/d) in float64 then float32, as a model holds them, written out independently."""
    return [
        float(torch.tensor(base ** (-2 * i / head_dim), dtype=torch.float32)) for i in range(head_dim // 2)
    ]


@pytest.mark.parametrize("factor", [2, 3, 4, 8, 2.5, 16])
@pytest.mark.parametrize(("head_dim", "base"), [(128, 10000.0), (64, 100000.0), (32, 10000.0)])
def test_pi_fastest_angle_is_theta0_over_s(head_dim, base, factor):
    r = resolution(head_dim, base, spec("linear", factor), delta=0.25)
    # theta_0 = b^0 = 1 rad/token; PI holds 1/s as a float32 (exactly 1/s for powers of two)
    expected = float(torch.tensor(1.0 / factor, dtype=torch.float32))
    assert r["before"]["fastest_angle_per_token"] == 1.0
    assert r["after"]["fastest_angle_per_token"] == expected
    assert r["after"]["resolved_distance"] == 0.25 / expected and r["before"]["resolved_distance"] == 0.25
    if math.log2(factor).is_integer():
        assert r["after"]["fastest_angle_per_token"] == 1 / factor
        assert r["after"]["resolved_distance"] == 0.25 * factor


@pytest.mark.parametrize(
    ("head_dim", "base", "factor", "delta"),
    [(128, 10000.0, 1, 0.25), (128, 10000.0, 2, 0.25), (64, 100000.0, 1, 0.1), (32, 10000.0, 2, 0.2)],
)
def test_frequencies_above_delta_by_the_closed_form(head_dim, base, factor, delta):
    # theta_i / s > delta  <=>  i < d ln(1 / (s delta)) / (2 ln b): count the integers i >= 0 below that
    bound = head_dim * math.log(1 / (factor * delta)) / (2 * math.log(base))
    assert not bound.is_integer()  # the cases stay off the boundary, so float32 rounding cannot matter
    r = resolution(head_dim, base, spec("linear", factor), delta)
    assert r["after"]["frequencies_above"] == max(0, math.floor(bound) + 1)


def test_llama_numbers_worked_by_hand():
    # LLaMA 7B, d = 128, b = 10000: theta_9 = 0.274 > 0.25 > theta_10 = 0.237, so 10 frequencies; after
    # PI x2 the threshold is theta > 0.5: theta_4 = 0.562 > 0.5 > theta_5 = 0.487, so 5; after PI x8 none
    counts = [resolution(128, 10000.0, spec("linear", s))["after"]["frequencies_above"] for s in (1, 2, 8)]
    assert counts == [10, 5, 0]


@pytest.mark.parametrize("factor", [2, 4, 8, 16])
@pytest.mark.parametrize(
    ("head_dim", "base", "orig"), [(128, 10000.0, 2048), (64, 100000.0, 8192), (32, 10000.0, 256)]
)
def test_yarn_keeps_frequencies_above_beta_fast(head_dim, base, orig, factor):
    r = resolution(head_dim, base, spec("yarn", factor, orig), delta=0.25)
    theta = plain(head_dim, base)
    kept = [i for i, t in enumerate(theta) if orig * t / (2 * math.pi) > 32]  # rotations within L > beta_fast
    slow = [i for i, t in enumerate(theta) if orig * t / (2 * math.pi) < 1]  # fewer than beta_slow = 1
    assert kept  # every case has fast frequencies
    rows = r["per_frequency"]
    for i in kept:
        assert rows[i]["angle_after"] == rows[i]["angle_before"] == theta[i]
    for i in slow:
        assert rows[i]["angle_after"] == pytest.approx(theta[i] / factor, rel=1e-6)
    assert r["after"]["fastest_angle_per_token"] == r["before"]["fastest_angle_per_token"] == 1.0


@pytest.mark.parametrize("factor", [2, 8])
def test_ntk_keeps_the_fastest_and_divides_the_slowest_by_s(factor):
    r = resolution(64, 100000.0, spec("ntk", factor), delta=0.25)
    rows = r["per_frequency"]
    assert rows[0]["angle_after"] == rows[0]["angle_before"] == 1.0
    assert rows[-1]["angle_after"] == pytest.approx(rows[-1]["angle_before"] / factor, rel=1e-6)
    assert all(row["angle_after"] <= row["angle_before"] for row in rows)


@pytest.mark.parametrize("theta", [5e6, 1e9])
def test_abf_keeps_the_fastest_and_moves_the_slowest_to_the_new_base(theta):
    # the slowest frequency becomes theta^(-(d-2)/d): 100000^(-62/64) -> theta^(-62/64)
    r = resolution(64, 100000.0, spec("abf", 4, rope_theta=theta), delta=0.25)
    rows = r["per_frequency"]
    assert rows[0]["angle_after"] == rows[0]["angle_before"] == 1.0 and r["fastest_ratio"] == 1.0
    assert rows[-1]["angle_after"] == pytest.approx(theta ** (-62 / 64), rel=1e-6)
    assert rows[-1]["angle_before"] == pytest.approx(100000.0 ** (-62 / 64), rel=1e-6)


def test_llama3_bands():
    orig, factor = 8192, 8
    r = resolution(128, 500000.0, spec("llama3", factor, orig), delta=0.25)
    theta = plain(128, 500000.0)
    for i, row in enumerate(r["per_frequency"]):
        wavelength = 2 * math.pi / theta[i]
        if wavelength < orig / 4:  # high_freq_factor 4: kept
            assert row["angle_after"] == theta[i]
        elif wavelength > orig / 1:  # low_freq_factor 1: divided by s
            assert row["angle_after"] == pytest.approx(theta[i] / factor, rel=1e-6)
    assert r["fastest_ratio"] == 1.0


@pytest.mark.parametrize("method", ["linear", "ntk", "yarn", "llama3", "dynamic"])
def test_factor_one_changes_nothing(method):
    r = resolution(64, 10000.0, spec(method, 1.0, 512))
    assert r["before"] == r["after"] and r["fastest_ratio"] == 1.0
    assert all(row["ratio"] == 1.0 for row in r["per_frequency"])


def test_angle_per_token_wraps_onto_the_circle():
    got = angle_per_token(torch.tensor([1.0, 4.0, 2 * math.pi + 0.5], dtype=torch.float64))
    assert torch.allclose(got, torch.tensor([1.0, 2 * math.pi - 4.0, 0.5], dtype=torch.float64))


@pytest.mark.parametrize("delta", [0, -1, math.pi + 0.01, float("nan")])
def test_bad_resolution(delta):
    with pytest.raises(ValueError, match="--angle-resolution must be a number in"):
        resolution(64, 10000.0, spec("linear", 2), delta)


def test_inspect_shows_the_resolution(tiny_llama_dir, capsys):
    import json

    from ropescale.cli import main

    capsys.readouterr()
    assert main(["inspect", str(tiny_llama_dir), "--method", "linear", "--factor", "4", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)["resolution"]
    assert r["after"]["fastest_angle_per_token"] == 0.25 and r["angle_resolution"] == 0.25
    assert [row["angle_after"] for row in r["per_frequency"]] == [t / 4 for t in plain(16, 10000.0)]
    assert main(["inspect", str(tiny_llama_dir), "--method", "yarn", "--factor", "4"]) == 0
    assert "fastest angle per token 1 -> 1 rad (x1)" in capsys.readouterr().out
