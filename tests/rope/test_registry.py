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
    assert tuple(METHODS) == METHOD_NAMES and set(SPECS) | {"ntk"} == set(METHODS)


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
