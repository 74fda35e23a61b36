"""Generation through transformers' `generate` equals the hand-written loop it replaced, token for token:
greedy, seeded top-p sampling, stop ids, dynamic scaling; and so do the passkey answers and summaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ropescale import RopeScaling
from ropescale.cli import main
from ropescale.eval import generate as generation
from ropescale.models import scale_model

from .reference_generate import reference_generate

EXAMPLE = Path(__file__).parents[2] / "examples" / "data" / "govreport_tiny.jsonl"
SETTINGS = [(0.0, 1.0), (0.7, 0.9), (1.0, 1.0), (0.5, 0.5), (1.3, 0.95)]  # (temperature, top_p)


@pytest.mark.parametrize("temperature,top_p", SETTINGS)
def test_generate_equals_the_reference_loop(tiny_llama, temperature, top_p):
    for length, stop in ((5, set()), (20, {5}), (50, {3, 7, 11, 40})):
        prompt = torch.randint(0, 96, (length,), generator=torch.Generator().manual_seed(length))
        for seed in range(3):
            ours, ref = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
            got = generation.generate(tiny_llama, prompt, 16, stop, temperature, top_p, ours)
            assert got == reference_generate(tiny_llama, prompt, 16, stop, temperature, top_p, ref)
            assert torch.equal(ours.get_state(), ref.get_state())  # the generator advanced as the loop's did


@pytest.mark.parametrize("method", ["dynamic", "yarn"])
def test_generate_equals_the_reference_loop_beyond_the_window(tiny_llama, method):
    scale_model(tiny_llama, RopeScaling(method, 4.0))
    for length in (30, 120, 200):  # within and beyond the original window of 64, in an order that
        prompt = torch.randint(0, 96, (length,), generator=torch.Generator().manual_seed(length))
        for temperature in (0.0, 0.8):  # would leave dynamic NTK stale without the reset
            ours, ref = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
            got = generation.generate(tiny_llama, prompt, 12, set(), temperature, 0.9, ours)
            assert got == reference_generate(tiny_llama, prompt, 12, set(), temperature, 0.9, ref)


def test_global_rng_and_model_generation_config_untouched(tiny_llama):
    tiny_llama.generation_config.top_k = 3  # a model's own sampling setting does not leak into the eval
    prompt = torch.arange(10)
    state = torch.get_rng_state()
    got = generation.generate(tiny_llama, prompt, 8, set(), 1.0, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state) and tiny_llama.generation_config.top_k == 3
    assert got == reference_generate(tiny_llama, prompt, 8, set(), 1.0, 1.0, torch.Generator().manual_seed(0))


def _run(argv: list, out: Path, reference: bool, monkeypatch) -> dict:
    with monkeypatch.context() as m:
        if reference:
            m.setattr(generation, "generate", reference_generate)
        assert main([str(a) for a in [*argv, "--out", out]]) == 0
    return json.loads(out.read_text())


def test_passkey_answers_identical(tiny_char_dir, tmp_path, monkeypatch):
    argv = [
        "eval",
        "passkey",
        "--model",
        tiny_char_dir,
        "--lengths",
        "260,300",
        "--num-k",
        "2",
        "--trials",
        "2",
    ]
    argv += ["--allow-extrapolation", "--max-new-tokens", "6"]
    answers = []
    for reference in (False, True):
        r = _run(argv, tmp_path / f"{reference}.json", reference, monkeypatch)
        answers.append([t["answer"] for n in r["lengths"] for c in n["ks"] for t in c["trials"]])
    assert answers[0] == answers[1] and len(answers[0]) == 8


def test_summaries_identical_for_a_seed(tiny_char_dir, tmp_path, monkeypatch):
    pytest.importorskip("rouge_score")
    argv = ["eval", "summarize", "--model", tiny_char_dir, "--data", EXAMPLE, "--max-input-tokens", "40"]
    argv += ["--max-new-tokens", "12", "--allow-extrapolation", "--seed", "7"]
    runs = [_run(argv, tmp_path / f"{r}.json", r, monkeypatch)["per_document"] for r in (False, True)]
    assert [d["prediction"] for d in runs[0]] == [d["prediction"] for d in runs[1]]
    assert len({d["prediction"] for d in runs[0]}) > 1  # sampled, not one degenerate string
