"""Short-range attention profiles: a hand-built model whose attention is known in closed form, agreement
with transformers' own `output_attentions`, the similarity on a hand-worked case, and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ropescale.config import RopeScaling
from ropescale.models import scale_model
from ropescale.theory.short_range import attention_profiles, compare_profiles, similarity

from .test_cli import run

D, BASE, C = 16, 10000.0, 60.0  # head dim, RoPE base, score scale of the previous-token head


def known_model(c: float = C) -> LlamaForCausalLM:
    """One layer, two query heads sharing one key head, every token embedded as the same vector, so q and
    k are the same at every position. Key: z(k)_j = 1. Head 0: z(q)_j = c e^{-i theta_j}, so the score at
    distance m - n = t is c sum_j cos((t - 1) theta_j), largest at t = 1 (the previous token). Head 1: q = 0,
    so it attends uniformly to every key n <= m."""
    cfg = LlamaConfig(
        vocab_size=8, hidden_size=32, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=D, max_position_embeddings=128, rope_theta=BASE,
        attn_implementation="sdpa",
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    theta = 1.0 / BASE ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    with torch.no_grad():
        model.model.embed_tokens.weight.fill_(1.0)
        model.model.layers[0].input_layernorm.weight.fill_(1.0)
        x = 1.0 / math.sqrt(1.0 + cfg.rms_norm_eps)  # RMSNorm of the all-ones vector, every component
        q = torch.zeros(2 * D, dtype=torch.float64)
        q[: D // 2], q[D // 2 : D] = c * theta.cos(), -c * theta.sin()
        k = torch.zeros(D, dtype=torch.float64)
        k[: D // 2] = 1.0
        attn = model.model.layers[0].self_attn
        for proj, target in ((attn.q_proj, q), (attn.k_proj, k)):
            proj.weight.zero_()
            proj.weight[:, 0] = (target / x).to(torch.float32)
    return model


def expected_profiles(c: float, T: int, K: int) -> torch.Tensor:
    """(1, 2, K + 1) float64 by the closed form of `known_model`: softmax over n <= m of score(m - n) / sqrt(d)."""
    theta = 1.0 / BASE ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    t = torch.arange(T, dtype=torch.float64)
    score = c * torch.cos((t[:, None] - 1) * theta).sum(-1) / math.sqrt(D)  # (T,) by distance
    prev, uniform = torch.zeros(K + 1, dtype=torch.float64), torch.zeros(K + 1, dtype=torch.float64)
    for m in range(K, T):
        w = torch.softmax(score[: m + 1], dim=0)  # distances 0..m
        prev += w[: K + 1]
        uniform += 1.0 / (m + 1)
    return torch.stack([prev, uniform])[None] / (T - K)


def test_hand_built_model_matches_the_closed_form():
    T, K = 40, 6
    got = attention_profiles(known_model(), torch.zeros(1, T, dtype=torch.long), K)
    assert got.shape == (1, 2, K + 1)
    torch.testing.assert_close(got, expected_profiles(C, T, K), atol=2e-5, rtol=0)
    assert got[0, 0, 1] > 0.99  # head 0 attends to the previous token
    assert got[0, 1, 0] == pytest.approx(sum(1 / (m + 1) for m in range(K, T)) / (T - K), abs=1e-6)


def test_previous_token_head_is_local_and_uniform_head_is_not():
    T, K = 40, 6
    ref = attention_profiles(known_model(), torch.zeros(1, T, dtype=torch.long), K)
    weak = attention_profiles(known_model(c=0.0), torch.zeros(1, T, dtype=torch.long), K)  # both uniform
    same = compare_profiles(ref, ref, local_within=1, local_mass_min=0.5, keep_similarity=0.9)
    assert same["local_heads"] == [[0, 0]] and same["local_kept"] == 1 and same["mean_similarity"] == 1.0
    lost = compare_profiles(weak, ref, local_within=1, local_mass_min=0.5, keep_similarity=0.9)
    assert lost["num_local"] == 1 and lost["local_kept"] == 0
    # head 0 lost its mass on offset 1; head 1 was uniform in both, so it is unchanged
    assert lost["similarity"][0][1] == pytest.approx(1.0, abs=1e-6) and lost["similarity"][0][0] < 0.2


def _naive_profiles(attentions, K: int) -> torch.Tensor:
    """Offsets read one query at a time from transformers' (1, H, T, T) weights per layer."""
    out = []
    for a in attentions:
        a = a[0].to(torch.float64)
        T = a.shape[-1]
        out.append(
            torch.stack(
                [torch.stack([a[:, q, q - k] for q in range(K, T)]).mean(0) for k in range(K + 1)], -1
            )
        )
    return torch.stack(out)


@pytest.mark.parametrize("rope", [None, RopeScaling("yarn", 4.0), RopeScaling("linear", 2.0)])
def test_agrees_with_transformers_output_attentions(tiny_llama, rope):
    if rope is not None:
        scale_model(tiny_llama, rope)
    ids = torch.randint(0, tiny_llama.config.vocab_size, (1, 48), generator=torch.Generator().manual_seed(1))
    K = 8
    got = attention_profiles(tiny_llama, ids, K)
    assert tiny_llama.config._attn_implementation == "sdpa"  # restored
    tiny_llama.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = tiny_llama(input_ids=ids, output_attentions=True).attentions
    torch.testing.assert_close(got, _naive_profiles(attentions, K), atol=1e-6, rtol=0)


def test_similarity_worked_by_hand():
    ref = torch.tensor([[[0.1, 0.8, 0.1]]], dtype=torch.float64)  # beyond K: 0.0
    other = torch.tensor([[[0.5, 0.3, 0.1]]], dtype=torch.float64)  # beyond K: 0.1
    # 1 - (|0.1 - 0.5| + |0.8 - 0.3| + 0 + |0 - 0.1|) / 2 = 1 - 0.5
    assert similarity(other, ref).item() == pytest.approx(0.5)
    r = compare_profiles(other, ref, local_within=1, local_mass_min=0.9, keep_similarity=0.4)
    assert r["local_heads"] == [[0, 0]] and r["local_kept"] == 1
    assert r["local_mass"] == pytest.approx(0.8) and r["reference_local_mass"] == pytest.approx(0.9)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="cannot be compared"):
        compare_profiles(torch.zeros(2, 4, 5), torch.zeros(2, 2, 5))


# ----------------------------------------------------------------------------- CLI


def test_cli_short_range(tmp_path, tiny_llama_dir, sample_text, capsys):
    out, plot = tmp_path / "sr.json", tmp_path / "sr.png"
    argv = ["theory", tiny_llama_dir, "--short-range", "--method", "linear", "--factor", "4", "--compare",
            tiny_llama_dir.parent / "tiny", "--text", sample_text, "--tokens", 40, "--offsets", 8]  # fmt: skip
    code, _, err = run([*argv, "--out", out, "--plot", plot], capsys)
    assert code == 2 and "listed twice" in err and not out.exists()
    argv[8] = str(_copy(tiny_llama_dir, tmp_path / "copy"))
    code, stdout, err = run([*argv, "--out", out, "--plot", plot, "--json"], capsys)
    assert code == 0, err
    r = json.loads(out.read_text())["short_range"]
    assert json.loads(stdout)["short_range"] == r
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (r["tokens"], r["offsets"]) == (40, 8)
    base, pi, copy = r["rows"]
    assert base["mean_similarity"] == 1.0 and copy["mean_similarity"] == 1.0  # the same weights
    assert pi["label"].endswith("(linear x4, untuned)") and pi["mean_similarity"] < 1.0
    assert len(base["profiles"]) == 2 and len(base["profiles"][0]) == 4 and len(base["profiles"][0][0]) == 9
    assert r["resolution"]["after"]["fastest_angle_per_token"] == 0.25
    code, stdout, _ = run(argv, capsys)
    assert code == 0 and "local kept" in stdout and "fastest angle per token 1 -> 0.25 rad" in stdout


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        (["--compare", "x"], "--compare applies to --short-range only"),
        (["--short-range", "--offsets", "3"], "--local-within must be in [0, --offsets = 3]"),
        (["--short-range", "--tokens", "10"], "--tokens (10) must be greater than --offsets (16)"),
        (["--short-range", "--local-mass", "1.5"], "--local-mass must be in (0, 1]"),
        (["--angle-resolution", "4"], "--angle-resolution must be a number in (0, pi]"),
    ],
)
def test_cli_bad_input(tiny_llama_dir, capsys, extra, expect):
    code, _, err = run(["theory", tiny_llama_dir, *extra], capsys)
    assert code == 2 and expect in err and err.count("\n") == 1
