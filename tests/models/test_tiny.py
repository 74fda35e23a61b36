"""The built-in tiny LLaMA's config: head size from the width, or given on its own."""

from __future__ import annotations

import pytest

from ropescale.config import PretrainConfig, build
from ropescale.models.compat import rotary_dim
from ropescale.models.tiny import build_tiny, tiny_config


def test_head_dim_defaults_to_width_over_heads_and_can_be_set():
    assert tiny_config(320, hidden_size=32, num_heads=2, num_kv_heads=1).head_dim == 16
    config = tiny_config(320, hidden_size=32, num_heads=2, num_kv_heads=1, head_dim=64)
    assert rotary_dim(config) == 64  # 32 rotary frequencies per head at width 32
    lm = build_tiny(config, seed=0)
    attn = lm.model.layers[0].self_attn
    assert tuple(attn.q_proj.weight.shape) == (2 * 64, 32) and tuple(attn.k_proj.weight.shape) == (64, 32)
    assert tuple(attn.o_proj.weight.shape) == (32, 2 * 64)


def test_bad_head_sizes_name_the_flag():
    with pytest.raises(ValueError, match="--head-dim must be even"):
        tiny_config(320, hidden_size=32, num_heads=2, num_kv_heads=1, head_dim=63)
    with pytest.raises(ValueError, match="unless --head-dim"):
        tiny_config(320, hidden_size=30, num_heads=4, num_kv_heads=1)
    with pytest.raises(ValueError, match="--head-dim must be an integer >= 0"):
        build(PretrainConfig, out="x", seq_len=32, head_dim=-2)
    with pytest.raises(ValueError, match="--head-dim must be even"):  # before any tokenizer is trained
        build(PretrainConfig, out="x", seq_len=32, head_dim=63)
