"""One test per defect of issue 27 that the family matrix does not already pin down: already-scaled models,
rope keys ropescale does not model, true refusals, Phi-3's rope types, inspect on per-layer-type rope."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, Qwen2Config
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding

from ropescale import RopeScaling, scale_model
from ropescale.cli import main
from ropescale.config import LoadOptions
from ropescale.models import NotRopeModelError, plan_scaling
from ropescale.models.prepare import prepare_model
from ropescale.rope import proportional_freqs
from ropescale.theory.model import heads_first

from ..conftest import save_tiny_llama, tiny_llama_config
from .families import BY_NAME, save_family, tiny_config


def _dir(config, path):
    torch.manual_seed(0)
    return save_tiny_llama(AutoModelForCausalLM.from_config(config).eval(), path)


@pytest.fixture
def llama3_x4_dir(tmp_path):
    """A model that already carries llama3 x4 (unscaled window 32, window 128)."""
    config = tiny_llama_config()
    config.max_position_embeddings = 128
    config.rope_parameters = {
        "rope_type": "llama3",
        "factor": 4.0,
        "original_max_position_embeddings": 32,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "rope_theta": 10000.0,
    }
    return _dir(config, tmp_path / "llama3x4")


def test_already_scaled_refuses_a_smaller_window_unless_asked(llama3_x4_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["extend", str(llama3_x4_dir), "--method", "linear", "--factor", "2", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--allow-smaller-window" in err and "64" in err and "128" in err, err
    assert not out.exists()
    assert main([*argv, "--allow-smaller-window"]) == 0
    printed = capsys.readouterr().out
    assert "already carries llama3 x4 (window 32 -> 128)" in printed
    assert AutoConfig.from_pretrained(out).max_position_embeddings == 64


def test_an_unscaled_model_takes_a_declared_shorter_window():
    """The smaller-window guard is for models that already carry a scaling: on an unscaled model, an L the
    user declares (--original-max-position-embeddings, as the quick demos do) may give a window below its own."""
    config = tiny_llama_config()  # unscaled, max_position_embeddings 64
    plan = plan_scaling(config, RopeScaling("linear", 2.0, original_max_position_embeddings=16))
    assert plan.max_position_embeddings == 32 < config.max_position_embeddings


def test_inspect_says_what_the_model_carries(llama3_x4_dir, capsys):
    assert main(["inspect", str(llama3_x4_dir)]) == 0
    assert "already carries llama3 x4 (window 32 -> 128); --factor is relative to its unscaled window 32" in (
        capsys.readouterr().out
    )


def test_rope_keys_ropescale_does_not_model_are_kept():
    config = Qwen2Config(
        hidden_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]},
    )
    config.rope_parameters["mrope_interleaved"] = True
    plan = plan_scaling(config, RopeScaling("yarn", 2.0))
    assert plan.rope_parameters["mrope_section"] == [2, 3, 3]
    assert plan.rope_parameters["mrope_interleaved"] is True
    assert plan.rope_parameters["rope_type"] == "yarn"


@pytest.mark.parametrize("name", ["GPT-J", "CodeGen"])
def test_rope_without_rope_parameters_is_refused_with_the_true_reason(name):
    with pytest.raises(NotRopeModelError) as err:
        plan_scaling(tiny_config(BY_NAME[name]), RopeScaling("linear", 2.0))
    message = str(err.value)
    assert "uses RoPE (rotary_dim 8)" in message and "no rope parameters" in message
    assert "has no rotary position embedding" not in message and "\n" not in message


def test_phi3_static_methods_become_longrope_factors_equal_to_transformers_own():
    config = tiny_config(BY_NAME["Phi-3"])
    for method in ("linear", "yarn", "llama3"):
        spec = RopeScaling(method, 4.0)
        plan = plan_scaling(config, spec)
        assert plan.rope_parameters["rope_type"] == "longrope"
        phi3 = copy.deepcopy(config)
        phi3.rope_parameters, phi3.max_position_embeddings = (
            plan.rope_parameters,
            plan.max_position_embeddings,
        )
        ours = Phi3RotaryEmbedding(phi3)
        typed = {"rope_type": method, "factor": 4.0, "rope_theta": 10000.0}
        if method != "linear":
            typed["original_max_position_embeddings"] = 128
        if method == "llama3":
            typed.update(low_freq_factor=1.0, high_freq_factor=4.0)
        llama = LlamaConfig(
            hidden_size=64, num_attention_heads=4, max_position_embeddings=512, rope_parameters=typed
        )
        theirs = LlamaRotaryEmbedding(llama)
        for length in (100, 400):  # inside and beyond the original window: longrope switches factors there
            x, pos = torch.zeros(1, 1, 1), torch.tensor([[0, length - 1]])
            ours(x, pos), theirs(x, pos)
            torch.testing.assert_close(ours.inv_freq, theirs.inv_freq, rtol=1e-6, atol=0)
            assert ours.attention_scaling == pytest.approx(theirs.attention_scaling, rel=1e-6)


def test_phi3_dynamic_is_refused_in_one_line_before_any_weights(tmp_path):
    path = _dir(tiny_config(BY_NAME["Phi-3"]), tmp_path / "phi3")
    with pytest.raises(ValueError) as err:
        prepare_model(str(path), LoadOptions(), RopeScaling("dynamic", 2.0), check=pytest.fail)
    assert "--method dynamic" in str(err.value) and "longrope" in str(err.value)
    assert "\n" not in str(err.value)


def test_inspect_on_per_layer_type_rope(tmp_path, capsys):
    path = _dir(tiny_config(BY_NAME["Gemma 3"]), tmp_path / "gemma3")
    assert main(["inspect", str(path), "--method", "yarn", "--factor", "2"]) == 0
    out = capsys.readouterr().out
    assert "rope per layer type" in out
    assert "full_attention: yarn x2, base 1e+06, rotary dim 16 of head 16 - scaled" in out
    assert "sliding_attention: default, base 10000, rotary dim 16 of head 16 - kept" in out
    assert "live rotary module matches the config: yes" in out


def test_inspect_table_of_a_proportional_rope_is_transformers_own(tmp_path, capsys):
    """Gemma 4's full-attention layers (proportional: b^(-2i/H) over a quarter of the head): inspect's
    per-dimension wavelengths before and after PI x2 are 2 pi over the tables transformers builds."""
    config = tiny_config(BY_NAME["Gemma 4"])
    path = _dir(config, tmp_path / "gemma4")
    assert main(["inspect", str(path), "--method", "linear", "--factor", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["table_note"] and "proportional" in r["table_note"] and r["rotary_dim"] == 8
    model = AutoModelForCausalLM.from_config(copy.deepcopy(config)).eval()
    plain = model.model.rotary_emb.full_attention_inv_freq.double()[:4]
    scale_model(model, RopeScaling("linear", 2.0))
    scaled = model.model.rotary_emb.full_attention_inv_freq.double()[:4]
    got = torch.tensor(
        [[d["wavelength"], d["scaled_wavelength"]] for d in r["dimensions"]], dtype=torch.float64
    )
    want = torch.stack((2 * math.pi / plain, 2 * math.pi / scaled), dim=1)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    kinds = {x["layer_type"]: (x["rope_type"], x["scaled"]) for x in r["layers"]}
    assert kinds == {"sliding_attention": ("default", False), "full_attention": ("proportional", True)}


def test_theory_on_per_layer_type_rope_analyses_the_scaled_layers(tmp_path, capsys):
    """Gemma 3 normalises q/k after moving heads first, (1, H, T, D): theory used to read it as
    (1, T, H, D) and fail with a shape error; it now analyses the full-attention layers only."""
    torch.manual_seed(0)
    config = tiny_config(BY_NAME["Gemma 3"])
    path = save_family(AutoModelForCausalLM.from_config(config).eval(), tmp_path / "gemma3")
    text = tmp_path / "t.txt"
    text.write_text(" ".join(f"w{i % 200 + 3}" for i in range(120)))
    argv = [
        "theory",
        str(path),
        "--method",
        "linear",
        "--factor",
        "2",
        "--text",
        str(text),
        "--tokens",
        "100",
    ]
    assert main([*argv, "--json", "--out", str(tmp_path / "th.json")]) == 0, capsys.readouterr().err
    r = json.loads(capsys.readouterr().out)["model_report"]
    assert [row["layer"] for row in r["layers"]] == [1]  # layer_types: sliding, full
    assert {x["layer_type"]: x["scaled"] for x in r["layer_ropes"]} == {
        "sliding_attention": False,
        "full_attention": True,
    }
    assert main([*argv, "--out", str(tmp_path / "th2.json")]) == 0
    assert "sliding_attention: default, base 10000" in capsys.readouterr().out


def test_heads_first_reads_every_layout():
    x = torch.randn(1, 7, 3, 4)  # (1, T, H, D)
    want = x[0].transpose(0, 1)
    for layout in (x, x.transpose(1, 2), x.reshape(1, 7, 12)):
        assert torch.equal(heads_first(layout, 7, 4), want)
    with pytest.raises(ValueError, match="--tokens"):
        heads_first(torch.randn(1, 3, 3, 4), 3, 4)


def test_report_names_the_scaled_layer_types(tmp_path, capsys):
    torch.manual_seed(0)
    config = tiny_config(BY_NAME["Gemma 3"])
    path = save_family(AutoModelForCausalLM.from_config(config).eval(), tmp_path / "gemma3")
    data = tmp_path / "data"
    data.mkdir()
    (data / "0.txt").write_text(" ".join(f"w{i % 200 + 3}" for i in range(300)))
    result = tmp_path / "ppl.json"
    assert main(["eval", "ppl", "--model", str(path), "--data", str(data), "--lengths", "256", "--method",
                 "linear", "--factor", "2", "--out", str(result)]) == 0  # fmt: skip
    assert main(["report", str(result), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0, (
        capsys.readouterr()
    )
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "linear x2 on full_attention" in text
    assert "## Rope per layer type" in text
    assert "full_attention linear x2 base 1e+06 (scaled); sliding_attention default base 10000 (kept)" in text


def test_layer_types_picks_the_scaled_layers(tmp_path, capsys):
    """Gemma 4: the full-attention layers are proportional (a factor only); --layer-types scales the
    sliding ones with yarn instead, and the saved nested config loads to the same logits (extend checks)."""
    path = _dir(tiny_config(BY_NAME["Gemma 4"]), tmp_path / "gemma4")
    out = tmp_path / "out"
    base = ["extend", str(path), "--method", "yarn", "--factor", "2", "--out", str(out)]
    assert main(base) == 2
    assert "proportional" in capsys.readouterr().err
    assert main([*base, "--layer-types", "local"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--layer-types local" in err and "sliding_attention" in err and "\n" not in err
    assert not out.exists()
    assert main([*base, "--layer-types", "sliding_attention"]) == 0, capsys.readouterr().err
    # llama.cpp's rope flags act on the layers without a sliding window only: the hint says so
    assert (
        "leave sliding-window layers alone: the scaling of the sliding_attention" in capsys.readouterr().out
    )
    saved = AutoConfig.from_pretrained(out).rope_parameters
    assert saved["sliding_attention"]["rope_type"] == "yarn" and saved["sliding_attention"]["factor"] == 2.0
    original = AutoConfig.from_pretrained(path).rope_parameters
    assert saved["full_attention"] == original["full_attention"]


def test_proportional_rope_equals_transformers_own():
    """Gemma 4's full-attention layers: ropescale's proportional frequencies (with and without PI) equal
    the table transformers builds from the (scaled) config."""
    config = tiny_config(BY_NAME["Gemma 4"])
    model = AutoModelForCausalLM.from_config(config).eval()
    for factor in (1.0, 2.0):
        if factor > 1:
            scale_model(model, RopeScaling("linear", factor))
        table = model.model.rotary_emb.full_attention_inv_freq
        want = proportional_freqs(32, 1e6, 0.25, factor).inv_freq  # global_head_dim 32, a quarter rotated
        assert table.shape == (16,) and torch.count_nonzero(table) == 4
        torch.testing.assert_close(table, want, rtol=1e-6, atol=0)
    sliding = model.model.rotary_emb.sliding_attention_inv_freq  # not scaled: plain RoPE, base 1e4, dim 16
    torch.testing.assert_close(sliding, 1.0 / 1e4 ** (torch.arange(0, 16, 2) / 16), rtol=1e-6, atol=0)


def test_rescaling_other_layer_types_restores_the_ones_scaled_before():
    config = tiny_config(BY_NAME["Gemma 3"])
    original = copy.deepcopy(config.rope_parameters)
    model = AutoModelForCausalLM.from_config(config).eval()
    scale_model(model, RopeScaling("yarn", 2.0))  # full_attention
    assert model.config.rope_parameters["full_attention"]["rope_type"] == "yarn"
    scale_model(model, RopeScaling("linear", 2.0, layer_types=("sliding_attention",)))
    params = model.config.rope_parameters
    assert params["full_attention"] == original["full_attention"]
    assert params["sliding_attention"] == {
        **original["sliding_attention"],
        "rope_type": "linear",
        "factor": 2.0,
    }
