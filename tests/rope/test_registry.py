"""The method registry: each record's transformers keys read back as the spec they were written from."""

from __future__ import annotations

import pytest

from ropescale import METHOD_NAMES, RopeScaling
from ropescale.rope import METHODS, reading

SPECS = {
    "none": RopeScaling("none", 1.0, 2048),
    "linear": RopeScaling("linear", 4.0, 2048),
    "dynamic": RopeScaling("dynamic", 4.0, 2048),
    "yarn": RopeScaling("yarn", 8.0, 4096, beta_fast=16.0, truncate=False),
    "llama3": RopeScaling("llama3", 8.0, 8192, low_freq_factor=1.0, high_freq_factor=4.0),
    "longrope": RopeScaling("longrope", 4.0, 1024, short_factor=(1.0, 1.5), long_factor=(2.0, 3.0)),
}


def test_config_names_are_the_registry():
    assert tuple(METHODS) == METHOD_NAMES and set(SPECS) | {"ntk", "abf"} == set(METHODS)


@pytest.mark.parametrize("name", list(SPECS))
def test_transformers_parameters_read_back_as_the_spec(name):
    spec = SPECS[name]
    params, max_pos = METHODS[name].to_transformers(spec, 10000.0, 4)
    back = reading(params["rope_type"]).from_transformers(params, max_pos)
    assert RopeScaling(**back) == spec


def test_ntk_is_written_as_a_base_change_only():
    # b' = 10000 * 4^(4/2) = 160000 for rotary dim 4 (NTK-aware base), and no other key
    params, max_pos = METHODS["ntk"].to_transformers(RopeScaling("ntk", 4.0, 2048), 10000.0, 4)
    assert params == {"rope_theta": pytest.approx(160000.0), "rope_type": "default"} and max_pos == 8192
    assert reading("default") is METHODS["none"] and reading("su") is None


def test_abf_is_written_as_the_typed_in_base_only():
    # the base the user typed in, exactly (not derived from the model's 10000), and the new window s * L
    spec = RopeScaling("abf", 8.0, 2048, rope_theta=5e6)
    params, max_pos = METHODS["abf"].to_transformers(spec, 10000.0, 128)
    assert params == {"rope_theta": 5e6, "rope_type": "default"} and max_pos == 16384
    assert reading("default") is METHODS["none"]  # a plain config reads back as plain RoPE, not abf


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"rope_type": "abf"}, "--method abf needs --rope-theta"),
        ({"rope_type": "abf", "rope_theta": 1.0}, "--rope-theta must be a number > 1"),
        ({"rope_type": "abf", "rope_theta": float("inf")}, "--rope-theta must be a number > 1"),
        ({"rope_type": "linear", "factor": 2.0, "rope_theta": 5e6}, "--rope-theta applies to --method abf"),
    ],
)
def test_abf_checks_name_the_flag(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RopeScaling(**kwargs)
