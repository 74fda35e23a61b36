"""h_j read off a real model: checked against transformers' own RoPE and attention."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

from ropescale import RopeScaling
from ropescale.commands.theory import analyse
from ropescale.models import scale_model
from ropescale.theory import capture_qk, h_coefficients, max_abs_h, scores
from ropescale.theory.bounds import triangle_bound
from ropescale.theory.model import expand_kv, sample_pairs

from ..conftest import tiny_llama_config

T = 40


def rotated(model, q, k, length):
    """q, k after RoPE with transformers' apply_rotary_pos_emb and the model's own rotary module."""
    rotary = model.model.rotary_emb
    pos = torch.arange(length)[None]
    cos, sin = rotary(q.float()[None], pos)
    qr, kr = apply_rotary_pos_emb(q.float()[None], k.float()[None], cos, sin)
    return qr[0].double(), kr[0].double()


@pytest.mark.parametrize(
    "spec",
    [None, RopeScaling("linear", 4.0), RopeScaling("yarn", 4.0, beta_fast=8.0)],
    ids=["none", "linear", "yarn"],
)
def test_h_gives_the_rotated_dot_product_of_transformers(tiny_llama, spec):
    """a(m - n) = Re sum_j h_j e^{i (m-n) theta_j} equals q_m . k_n after transformers' RoPE (times the
    method's attention factor squared), for every head, every pair and both layers."""
    model = copy.deepcopy(tiny_llama)
    if spec is not None:
        scale_model(model, spec)
    ids = torch.randint(0, 96, (1, T), generator=torch.Generator().manual_seed(0))
    rotary = model.model.rotary_emb
    theta, factor = rotary.inv_freq.double(), rotary.attention_scaling
    m, n = torch.meshgrid(torch.arange(T), torch.arange(T), indexing="ij")
    for q, k in capture_qk(model, ids):
        k = expand_kv(k, q.shape[0])
        qr, kr = rotated(model, q, k, T)
        direct = qr @ kr.transpose(-1, -2)  # (H, T, T)
        h = h_coefficients(q[:, :, None, :], k[:, None, :, :])  # (H, T, T, d/2)
        ours = torch.stack(
            [
                scores(h[:, i, j], (m - n)[i, j].reshape(1).double(), theta)[:, 0]
                for i in range(T)
                for j in range(T)
            ],
            dim=-1,
        ).reshape(q.shape[0], T, T)
        torch.testing.assert_close(ours * factor**2, direct, rtol=1e-4, atol=1e-4 * direct.abs().max().item())


def qwen3_tiny():
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=64,
    )
    return Qwen3ForCausalLM(config).eval()


def llama_tiny():
    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_llama_config()).eval()


@pytest.mark.parametrize("build", [llama_tiny, qwen3_tiny], ids=["llama", "qwen3-qk-norm"])
def test_scores_from_h_reproduce_the_models_attention_weights(build):
    """softmax(causal(a(m - n) / sqrt(d))) from our hooks equals the eager attention the model computes."""
    model = build()
    model.config._attn_implementation = "eager"
    ids = torch.randint(0, 96, (1, T), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(ids, output_attentions=True).attentions
    theta = model.model.rotary_emb.inv_freq.double()
    dist = torch.arange(T)[:, None] - torch.arange(T)[None, :]
    for (q, k), attn in zip(capture_qk(model, ids), want, strict=True):
        k = expand_kv(k, q.shape[0])
        h = h_coefficients(q[:, :, None, :], k[:, None, :, :])  # (H, T, T, d/2)
        angles = dist[..., None].double() * theta  # (T, T, d/2)
        a = (h * torch.exp(1j * angles)).real.sum(-1) / q.shape[-1] ** 0.5
        a = a.masked_fill(dist < 0, float("-inf"))
        torch.testing.assert_close(a.softmax(-1), attn[0].double(), rtol=1e-4, atol=1e-5)


def test_expand_kv_matches_transformers_repeat_kv():
    k = torch.randn(3, 5, 8)
    torch.testing.assert_close(expand_kv(k, 9), repeat_kv(k[None], 3)[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match="evenly"):
        expand_kv(k, 4)


def test_max_abs_h_is_the_max_over_causal_pairs():
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 12, 8, generator=gen), torch.randn(2, 12, 8, generator=gen)
    brute = torch.zeros(2, 4, dtype=torch.float64)
    for m in range(12):
        for n in range(m + 1):
            brute = torch.maximum(brute, h_coefficients(q[:, m], k[:, n]).abs())
    torch.testing.assert_close(max_abs_h(q, k), brute, rtol=1e-12, atol=0)


def test_sample_pairs_are_causal_and_seeded():
    m, n = sample_pairs(50, 500, seed=4)
    assert ((n >= 0) & (n <= m) & (m < 50)).all()
    assert torch.equal(sample_pairs(50, 500, seed=4)[1], n)


@pytest.mark.parametrize(
    ("spec", "regime"),
    [(RopeScaling("none", 4.0, 64), "extrapolation"), (RopeScaling("linear", 4.0, 64), "interpolation")],
)
def test_analyse_reports_bounds_that_hold_on_the_measurements(tiny_llama, spec, regime):
    ids = torch.randint(0, 96, (1, T), generator=torch.Generator().manual_seed(2))
    r = analyse(tiny_llama, spec, ids, pairs=16, seed=0)
    assert r["regime"] == regime and len(r["layers"]) == 2 and (r["num_heads"], r["num_kv_heads"]) == (4, 2)
    for row in r["layers"]:
        assert (
            0 < row["midpoint_deviation"] <= row["interpolation_bound"]
        )  # Theorem 2.1 (corrected), measured
        top = max(abs(x) for x in (*row["score_inside"], *row["score_beyond"]))
        assert top <= triangle_bound(16, row["max_abs_h"]) <= row["method_abel_bound_beyond"]
        assert row["extrapolation_bound"] / row["interpolation_bound"] == pytest.approx(
            r["ratio_at_new_window"]
        )
