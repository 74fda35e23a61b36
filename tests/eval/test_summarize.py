"""Summarization: ROUGE on hand-worked cases, top-p sampling, seeded generation, the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ropescale import prompts
from ropescale.cli import main
from ropescale.eval.generate import generate
from ropescale.eval.summarize import aggregate, prompt_ids, rouge_scores

from .reference_generate import nucleus_probs  # the top-p rule `generate` must reproduce

pytest.importorskip("rouge_score")
EXAMPLE = Path(__file__).parents[2] / "examples" / "data" / "govreport_tiny.jsonl"


def test_rouge_hand_computed():
    # pred "the cat sat" vs ref "the cat sat on the mat": unigrams 3 shared of 3 / 6 -> P 1, R 1/2, F 2/3;
    # bigrams 2 shared of 2 / 5 -> F 2*0.4/1.4; LCS 3 -> as unigrams
    a = rouge_scores("the cat sat", "the cat sat on the mat")
    assert a["rouge1"] == pytest.approx({"p": 1.0, "r": 0.5, "f": 2 / 3})
    assert a["rouge2"] == pytest.approx({"p": 1.0, "r": 0.4, "f": 0.8 / 1.4})
    assert a["rougeL"] == pytest.approx({"p": 1.0, "r": 0.5, "f": 2 / 3})
    # stemming: "dogs barked loudly" -> dog bark loudli; "the dog barks" -> the dog bark
    b = rouge_scores("Dogs barked loudly!", "The dog barks.")
    assert b["rouge1"]["f"] == pytest.approx(2 / 3)
    assert b["rouge2"] == pytest.approx({"p": 0.5, "r": 0.5, "f": 0.5})
    assert b["rougeL"]["f"] == pytest.approx(2 / 3)
    agg = aggregate([a, b], samples=200)
    assert agg["rouge1"]["f"] == pytest.approx(100 * 2 / 3)
    assert agg["rouge1"]["p"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert agg["rouge2"]["f"] == pytest.approx(100 * (0.8 / 1.4 + 0.5) / 2)
    lo, hi = agg["rouge2"]["ci95"]  # resamples {a, a}, {a, b}, {b, b}: the two documents' scores
    assert lo == pytest.approx(50) and hi == pytest.approx(100 * 0.8 / 1.4) and lo < agg["rouge2"]["f"] < hi


def test_nucleus_keeps_smallest_set_reaching_top_p():
    # cumulative mass by rank: 0.5, 0.8, 0.95, 1.0. Every top_p sits well away from a cumulative value
    # (an exact tie such as top_p = 0.95 would turn on one float32 rounding unit)
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    got = nucleus_probs(probs.log(), temperature=1.0, top_p=0.9)  # 0.8 < 0.9: the third token is needed
    torch.testing.assert_close(got, torch.tensor([0.0, 0.5, 0.15, 0.3]) / 0.95)
    got = nucleus_probs(probs.log(), temperature=1.0, top_p=0.97)  # 0.95 < 0.97: all four
    torch.testing.assert_close(got, probs / probs.sum())
    got = nucleus_probs(probs.log(), temperature=1.0, top_p=0.7)
    torch.testing.assert_close(got, torch.tensor([0.0, 0.5, 0.0, 0.3]) / 0.8)
    got = nucleus_probs(probs.log(), temperature=1.0, top_p=0.4)
    torch.testing.assert_close(got, torch.tensor([0.0, 1.0, 0.0, 0.0]))
    # temperature 0.5 squares the probabilities before renormalising
    got = nucleus_probs(probs.log(), temperature=0.5, top_p=1.0)
    torch.testing.assert_close(got, probs**2 / (probs**2).sum())


def test_generation_seeded_and_matches_full_recompute(tiny_llama):
    prompt = torch.randint(0, 96, (20,), generator=torch.Generator().manual_seed(1))
    run = lambda seed: generate(tiny_llama, prompt, 12, set(), 0.7, 0.9, torch.Generator().manual_seed(seed))  # noqa: E731
    assert run(5) == run(5) and run(5) != run(6)
    greedy = generate(tiny_llama, prompt, 8, set())
    ids = prompt.tolist()
    with torch.no_grad():  # without the KV cache: recompute the whole sequence for every new token
        for _ in range(8):
            ids.append(int(tiny_llama(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    assert greedy == ids[20:]


def test_prompt_truncated_in_token_space(char_tokenizer):
    ids, cut = prompt_ids(char_tokenizer, "abcdefghij", 4)
    assert cut and char_tokenizer.decode(ids) == prompts.summarize_prompt("abcd")
    ids, cut = prompt_ids(char_tokenizer, "abc", 4)
    assert not cut and char_tokenizer.decode(ids) == prompts.summarize_prompt("abc")


def test_cli_end_to_end_on_example_data(tiny_char_dir, tmp_path, capsys):
    out = tmp_path / "s.json"
    argv = ["eval", "summarize", "--model", tiny_char_dir, "--data", EXAMPLE, "--max-input-tokens", "40"]
    argv += ["--max-new-tokens", "12", "--allow-extrapolation", "--out", out]
    assert main([str(a) for a in argv]) == 0
    assert "ROUGE-L" in capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["data"]["documents"] == 3 and all(d["truncated"] for d in r["per_document"])
    # recompute the aggregate from the stored predictions with rouge-score directly
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    f = [scorer.score(d["reference"], d["prediction"])["rouge1"].fmeasure for d in r["per_document"]]
    assert r["rouge"]["rouge1"]["f"] == pytest.approx(100 * sum(f) / 3)
    from ropescale.eval.common import bootstrap_ci  # the interval comes from these per-document scores

    scores = np.array([100 * d["rouge"]["rouge1"]["f"] for d in r["per_document"]])
    assert r["rouge"]["rouge1"]["ci95"] == pytest.approx(list(bootstrap_ci(scores, np.ones(3))))
    assert main([str(a) for a in argv[:-2]] + ["--out", str(tmp_path / "t.json")]) == 0
    again = json.loads((tmp_path / "t.json").read_text())
    assert [d["prediction"] for d in again["per_document"]] == [d["prediction"] for d in r["per_document"]]


def test_cli_refuses_prompt_longer_than_window(tiny_char_dir, capsys):
    argv = ["eval", "summarize", "--model", str(tiny_char_dir), "--data", str(EXAMPLE)]
    assert main(argv) == 2
    assert "--allow-extrapolation" in capsys.readouterr().err
