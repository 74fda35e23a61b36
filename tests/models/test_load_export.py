"""Model resolution (local dir, GGUF, hub id, built-in names) and the serving flags."""

from __future__ import annotations

import json

import pytest

from ropescale import RopeScaling
from ropescale.models import load_config, resolve
from ropescale.models.export import llama_cpp_flags, vllm_flags
from ropescale.rope import ntk_base


def test_resolve_kinds(tmp_path, tiny_llama_dir):
    assert resolve(str(tiny_llama_dir)).kind == "dir"
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"x")
    assert resolve(str(gguf)).kind == "gguf"
    assert resolve("meta-llama/Llama-2-7b-hf").kind == "hub"
    with pytest.raises(ValueError, match="no such file or directory"):
        resolve(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        resolve(str(tmp_path / "empty"))
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="must be a .gguf checkpoint"):
        resolve(str(tmp_path / "w.bin"))


def test_hub_id_offline_is_a_clear_error():
    with pytest.raises(ValueError, match="could not load it from the hub or the local cache"):
        load_config("ropescale-tests/does-not-exist")


def test_vllm_flags_carry_the_rope_parameters():
    spec = RopeScaling("yarn", 4.0, 4096, beta_fast=16.0)
    flags = vllm_flags(spec, 10000.0, 128)
    assert flags["args"][:2] == ["--max-model-len", "16384"]
    override = json.loads(flags["args"][3])
    assert override["rope_parameters"] == {
        "rope_type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 4096,
        "beta_fast": 16.0,
        "rope_theta": 10000.0,
    }
    dyn = vllm_flags(RopeScaling("dynamic", 4.0, 4096), 10000.0, 128)
    # dynamic reads max_position_embeddings as L, which the unscaled checkpoint already has
    assert "max_position_embeddings" not in json.loads(dyn["args"][3]) and dyn["notes"]


@pytest.mark.parametrize(
    "spec,expected",
    [
        (RopeScaling("linear", 4.0, 2048), ["-c", "8192", "--rope-scaling", "linear", "--rope-scale", "4"]),
        (
            RopeScaling("yarn", 8.0, 4096),
            ["-c", "32768", "--rope-scaling", "yarn", "--rope-scale", "8", "--yarn-orig-ctx", "4096"],
        ),
        (
            RopeScaling("ntk", 4.0, 2048),
            ["-c", "8192", "--rope-freq-base", repr(ntk_base(128, 10000.0, 4.0))],
        ),
        (RopeScaling("llama3", 8.0, 8192), ["-c", "65536"]),
        (RopeScaling("abf", 8.0, 8192, rope_theta=5e6), ["-c", "65536", "--rope-freq-base", "5000000"]),
        (
            RopeScaling("abf", 2.0, 4096, rope_theta=1234567.5),
            ["-c", "8192", "--rope-freq-base", "1234567.5"],
        ),
    ],
)
def test_llama_cpp_flags(spec, expected):
    assert llama_cpp_flags(spec, 10000.0, 128)["args"] == expected


def test_ntk_freq_base_is_printed_exactly():
    flags = llama_cpp_flags(RopeScaling("ntk", 3.0, 2048), 10000.0, 128)
    assert float(flags["args"][-1]) == ntk_base(128, 10000.0, 3.0)
