"""The main contract: our pure functions equal transformers' own rope code, method by method."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from ropescale import RopeScaling, compute_freqs
from ropescale.models.scale import transformers_rope
from ropescale.rope import apply_rotary, cos_sin

HEAD_DIMS = (32, 64, 128)
BASES = (10000.0, 500000.0)
FACTORS = (1.0, 2.0, 4.5, 8.0, 16.0)
ORIGINALS = (256, 2048, 4096)
GRID = list(itertools.product(HEAD_DIMS, BASES, FACTORS, ORIGINALS))
RTOL = 2e-6  # float32 precision: transformers computes in float32, we in float64 rounded to float32


def hf_config(head_dim: int, spec: RopeScaling, base: float) -> LlamaConfig:
    params, max_pos = transformers_rope(spec, base, head_dim)
    return LlamaConfig(
        hidden_size=head_dim * 4,
        num_attention_heads=4,
        head_dim=head_dim,
        max_position_embeddings=max_pos,
        rope_parameters=params,
    )


def hf_freqs(head_dim: int, base: float, spec: RopeScaling, seq_len: int | None = None):
    config = hf_config(head_dim, spec, base)
    rope_type = config.rope_parameters["rope_type"]
    if rope_type == "default":
        return LlamaRotaryEmbedding.compute_default_rope_parameters(config)
    return ROPE_INIT_FUNCTIONS[rope_type](config, None, seq_len=seq_len)


def assert_same(spec: RopeScaling, head_dim: int, base: float, seq_len: int | None = None) -> None:
    ours = compute_freqs(head_dim, base, spec, seq_len=seq_len)
    theirs, attention = hf_freqs(head_dim, base, spec, seq_len)
    assert ours.inv_freq.dtype == theirs.dtype == torch.float32
    torch.testing.assert_close(ours.inv_freq, theirs, rtol=RTOL, atol=0)
    assert math.isclose(ours.attention_factor, attention, rel_tol=1e-12)


def longrope_factors(head_dim: int, factor: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    n = head_dim // 2
    short = tuple(1.0 + 0.05 * i / n for i in range(n))
    long = tuple(1.0 + (factor - 1.0) * (i / (n - 1)) ** 1.5 for i in range(n))  # monotone, ends at s
    return short, long


@pytest.mark.parametrize("head_dim,base,factor,orig", GRID)
@pytest.mark.parametrize("method", ["none", "linear", "yarn", "llama3"])
def test_static_methods_match_transformers(method, head_dim, base, factor, orig):
    spec = RopeScaling(method, factor if method != "none" else 1.0, orig)
    assert_same(spec, head_dim, base)


@pytest.mark.parametrize("head_dim,base,factor,orig", GRID)
def test_dynamic_matches_transformers_at_every_length(head_dim, base, factor, orig):
    spec = RopeScaling("dynamic", factor, orig)
    for seq_len in (None, orig // 2, orig, orig + 1, 3 * orig, int(factor * orig), 40 * orig):
        assert_same(spec, head_dim, base, seq_len)


@pytest.mark.parametrize("head_dim,base,factor,orig", GRID)
def test_longrope_matches_transformers_short_and_long(head_dim, base, factor, orig):
    short, long = longrope_factors(head_dim, factor)
    spec = RopeScaling("longrope", factor, orig, short_factor=short, long_factor=long)
    for seq_len in (None, orig, orig + 1, int(factor * orig)):
        assert_same(spec, head_dim, base, seq_len)


@pytest.mark.parametrize("head_dim,theta", itertools.product(HEAD_DIMS, (5e5, 1e6, 5e6, 1e7, 1e9)))
def test_abf_equals_transformers_on_the_config_a_user_would_type(head_dim, theta):
    """ABF against transformers' own computation of the config.json one edits by hand (rope_theta set,
    rope_type default), not the config ropescale writes."""
    typed = LlamaConfig(
        hidden_size=head_dim * 4,
        num_attention_heads=4,
        head_dim=head_dim,
        max_position_embeddings=8192,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
    )
    theirs, attention = LlamaRotaryEmbedding.compute_default_rope_parameters(typed)
    ours = compute_freqs(head_dim, 10000.0, RopeScaling("abf", 4.0, 2048, rope_theta=theta))
    torch.testing.assert_close(ours.inv_freq, theirs, rtol=RTOL, atol=0)
    assert ours.attention_factor == attention == 1.0
    assert transformers_rope(RopeScaling("abf", 4.0, 2048, rope_theta=theta), 10000.0, head_dim)[0] == {
        "rope_type": "default",
        "rope_theta": theta,
    }


@pytest.mark.parametrize(
    "options",
    [
        {"beta_fast": 16.0, "beta_slow": 2.0},
        {"attention_factor": 1.5},
        {"truncate": False},
        {"mscale": 0.707, "mscale_all_dim": 0.707},
        {"mscale": 1.0, "mscale_all_dim": 0.5},
    ],
    ids=lambda o: ",".join(o),
)
@pytest.mark.parametrize("factor,orig", [(4.0, 2048), (16.0, 4096), (32.0, 4096)])
def test_yarn_options_match_transformers(options, factor, orig):
    assert_same(RopeScaling("yarn", factor, orig, **options), 128, 10000.0)


@pytest.mark.parametrize("low,high", [(1.0, 4.0), (2.0, 8.0), (0.5, 2.0)])
@pytest.mark.parametrize(
    "factor,orig,base", [(8.0, 8192, 500000.0), (32.0, 8192, 500000.0), (4.0, 2048, 10000.0)]
)
def test_llama3_options_match_transformers(low, high, factor, orig, base):
    assert_same(RopeScaling("llama3", factor, orig, low_freq_factor=low, high_freq_factor=high), 128, base)


def test_longrope_attention_factor_override_matches_transformers():
    short, long = longrope_factors(96, 16.0)
    spec = RopeScaling("longrope", 16.0, 4096, attention_factor=1.19, short_factor=short, long_factor=long)
    assert_same(spec, 96, 10000.0, seq_len=8192)


@pytest.mark.parametrize("method", ["none", "linear", "ntk", "abf", "dynamic", "yarn", "llama3", "longrope"])
def test_cos_sin_and_rotated_qk_match_transformers(method):
    """Same cos/sin table and same rotated q/k as LlamaRotaryEmbedding + apply_rotary_pos_emb."""
    head_dim, base, orig, factor = 64, 10000.0, 512, 4.0
    short, long = longrope_factors(head_dim, factor)
    extra = {"short_factor": short, "long_factor": long} if method == "longrope" else {}
    extra = {"rope_theta": 5e5} if method == "abf" else extra
    spec = RopeScaling(method, factor, orig, **extra)
    config = hf_config(head_dim, spec, base)
    rotary = LlamaRotaryEmbedding(config)
    seq_len = 3 * orig  # beyond L: dynamic recomputes, longrope switches to long factors
    positions = torch.arange(seq_len)[None]
    x = torch.zeros(1, seq_len, head_dim)
    hf_cos, hf_sin = rotary(x, positions)

    freqs = compute_freqs(head_dim, base, spec, seq_len=seq_len)
    cos, sin = cos_sin(freqs.inv_freq, positions, freqs.attention_factor)
    torch.testing.assert_close(cos, hf_cos, rtol=0, atol=2e-4)  # angles up to 1.5k rad in float32
    torch.testing.assert_close(sin, hf_sin, rtol=0, atol=2e-4)

    torch.manual_seed(0)
    q, k = torch.randn(2, 1, 4, seq_len, head_dim).unbind(0)
    hf_q, hf_k = apply_rotary_pos_emb(q, k, hf_cos, hf_sin)
    torch.testing.assert_close(apply_rotary(q, hf_cos, hf_sin), hf_q, rtol=0, atol=0)
    torch.testing.assert_close(apply_rotary(k, hf_cos, hf_sin), hf_k, rtol=0, atol=0)
