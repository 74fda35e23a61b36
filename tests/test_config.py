"""RopeScaling validation: clear errors naming the flag."""

from __future__ import annotations

import pytest

from ropescale import RopeScaling, compute_freqs


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"rope_type": "ntk-by-parts"},
            "--method must be one of abf, dynamic, linear, llama3, longrope, none, ntk, yarn",
        ),
        ({"rope_type": "linear", "factor": 0.5}, "--factor must be >= 1, got 0.5"),
        ({"rope_type": "linear", "factor": float("nan")}, "--factor must be >= 1"),
        (
            {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 0},
            "--original-max-position-embeddings",
        ),
        ({"rope_type": "yarn", "factor": 2.0, "beta_fast": -1.0}, "--beta-fast must be a positive number"),
        ({"rope_type": "yarn", "factor": 2.0, "beta_slow": -2.0}, "--beta-slow must be a positive number"),
        (
            {"rope_type": "yarn", "factor": 2.0, "beta_fast": 1.0, "beta_slow": 2.0},
            "--beta-fast must be greater",
        ),
        (
            {"rope_type": "llama3", "factor": 2.0, "low_freq_factor": 4.0, "high_freq_factor": 2.0},
            "--high-freq-factor",
        ),
        ({"rope_type": "longrope", "factor": 2.0, "long_factor": (1.0, 2.0)}, "needs both --short-factor"),
        (
            {"rope_type": "longrope", "factor": 2.0, "long_factor": (1.0, 2.0), "short_factor": (1.0,)},
            "same length",
        ),
        (
            {"rope_type": "longrope", "factor": 2.0, "long_factor": (1.0, -2.0), "short_factor": (1.0, 1.0)},
            "positive",
        ),
    ],
)
def test_invalid_specs_raise_naming_the_flag(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        RopeScaling(**kwargs)


@pytest.mark.parametrize("method", ["dynamic", "yarn", "llama3"])
def test_methods_needing_the_original_window_say_so(method):
    with pytest.raises(ValueError, match="needs --original-max-position-embeddings"):
        compute_freqs(64, 10000.0, RopeScaling(method, 4.0))


def test_longrope_factor_length_must_match_head_dim():
    spec = RopeScaling("longrope", 4.0, 256, short_factor=(1.0,) * 8, long_factor=(2.0,) * 8)
    with pytest.raises(ValueError, match="head_dim/2 = 16 values, got 8"):
        compute_freqs(32, 10000.0, spec, seq_len=1024)


def test_round_trip_through_dict():
    spec = RopeScaling("yarn", 8.0, 2048, beta_fast=16.0, truncate=False)
    assert RopeScaling.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown rope scaling keys"):
        RopeScaling.from_dict({"rope_type": "linear", "factor": 2.0, "scale": 3})
