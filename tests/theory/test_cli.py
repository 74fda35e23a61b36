"""`ropescale theory` end to end: the per-layer report on a local checkpoint, the figures, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from ropescale.cli import main
from ropescale.rope import smallest_base


def run(argv, capsys):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("method", "regime"), [("none", "extrapolation"), ("linear", "interpolation")])
def test_model_report_json(tmp_path, tiny_llama_dir, sample_text, capsys, method, regime):
    out = tmp_path / "report.json"
    argv = [
        "theory",
        tiny_llama_dir,
        "--method",
        method,
        "--factor",
        "2",
        "--text",
        sample_text,
        "--tokens",
        50,
    ]
    code, stdout, err = run([*argv, "--pairs", 8, "--json", "--out", out], capsys)
    assert code == 0, err
    printed = json.loads(stdout)
    saved = json.loads(out.read_text())
    assert printed["model_report"] == saved["model_report"]
    r = saved["model_report"]
    assert (r["original_window"], r["new_window"], r["regime"], r["tokens"]) == (64, 128, regime, 50)
    assert [row["layer"] for row in r["layers"]] == [0, 1]
    assert saved["config"]["rope"]["rope_type"] == method and "torch" in saved["environment"]
    code, _, err = run([*argv, "--out", out], capsys)  # a result is never silently replaced
    assert code == 2 and "--overwrite" in err


def test_model_report_table(tiny_llama_dir, sample_text, capsys):
    code, stdout, _ = run(
        ["theory", tiny_llama_dir, "--method", "ntk", "--factor", "4", "--text", sample_text], capsys
    )
    assert code == 0
    assert "L = 64 -> L' = 256" in stdout and "regime: extrapolation" in stdout
    rows = [line.split() for line in stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["0", "1"]
    code, stdout, _ = run(["theory", tiny_llama_dir, "--text", sample_text], capsys)  # the model's own: none
    assert code == 0 and "no new positions (L' = L)" in stdout
    assert all(line.split()[-1] == "-" for line in stdout.splitlines() if line.strip()[:1].isdigit())


def test_figures_at_the_paper_setting(tmp_path, capsys):
    out = tmp_path / "figs"
    code, stdout, err = run(["theory", "--figures", out], capsys)
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"figure2.png", "figure2.json", "figure5.png", "figure5.json"}
    assert all(
        (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in ("figure2.png", "figure5.png")
    )
    fig5 = json.loads((out / "figure5.json").read_text())
    assert fig5["B_over_d_at"]["0"] == 16.25 and round(fig5["ratio_lower_bound"], 2) == 589.46
    assert fig5["min_B_over_d"] >= 1 and len(fig5["series"]["B_over_d"]) == 4096
    fig2 = json.loads((out / "figure2.json").read_text())
    assert fig2["max_abs_fit_beyond"] > 1e3 * fig2["max_abs_fit_inside"]
    assert len(fig2["series"]["fit"]) == 4096 and fig2["config"]["figures"] == str(out)
    assert "16.25 at 0" in stdout and "589.46" in stdout
    code, _, err = run(["theory", "--figures", out], capsys)
    assert code == 2 and "--overwrite" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["theory"], "give a MODEL"),
        (["theory", "--figures", "x", "--head-dim", "7"], "--head-dim must be even"),
        (["theory", "--figures", "x", "--fit-dtype", "float16"], "--fit-dtype"),
        (["theory", "--figures", "x", "--base", "1"], "--base"),
        (["theory", "m", "--tokens", "1"], "--tokens"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_missing_text_file(tiny_llama_dir, tmp_path, capsys):
    code, _, err = run(["theory", tiny_llama_dir, "--text", tmp_path / "nope.txt"], capsys)
    assert code == 2 and "nope.txt" in err


def test_theory_prints_the_smallest_base_for_the_window_2x_and_4x(tiny_llama_dir, sample_text, capsys):
    code, stdout, err = run(
        ["theory", tiny_llama_dir, "--text", sample_text, "--tokens", 20, "--json"], capsys
    )
    assert code == 0, err
    r = json.loads(stdout)["model_report"]["base_bound"]
    want = {str(w): smallest_base(16, w) for w in (64, 128, 256)}  # the tiny model: d = 16, L = 64
    assert r["smallest_base"] == want and r["base"] == 10000.0
    # whether the base passes for L = 64, checked directly: sum_i cos(m theta_i) >= 0 for m < 64
    theta = 10000.0 ** (-torch.arange(0, 16, 2, dtype=torch.float64) / 16)
    margins = torch.cos(torch.arange(64, dtype=torch.float64)[:, None] * theta).sum(-1)
    assert r["base_passes"] == bool((margins >= 0).all())
    code, stdout, _ = run(["theory", tiny_llama_dir, "--text", sample_text, "--tokens", 20], capsys)
    line = next(x for x in stdout.splitlines() if "smallest base per window" in x)
    assert all(f"{w}: {b:.4g}" in line for w, b in want.items())


def test_theory_says_what_pi_means_for_the_bound(tiny_llama_dir, sample_text, capsys):
    argv = ["theory", tiny_llama_dir, "--method", "linear", "--factor", "4", "--text", sample_text]
    code, stdout, _ = run([*argv, "--tokens", 20], capsys)
    assert code == 0 and "B_m(theta / s) = B_(m/s)(theta)" in stdout and "linear frequencies" in stdout
