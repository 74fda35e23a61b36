"""Short-context regression: the built-in before/after perplexity check and lm-evaluation-harness offline."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from ropescale import RopeScaling
from ropescale.cli import main
from ropescale.config import LoadOptions
from ropescale.eval.perplexity import reference_nll
from ropescale.models.prepare import prepare_model

from .conftest import make_char_tokenizer

TASKS = Path(__file__).parents[2] / "examples" / "harness"
TEXTS = ["Colorless green ideas sleep furiously. " * 3, "A stitch in time saves nine. " * 4, "short"]


def _ppl(model, docs, length):
    sums = [reference_nll(model, d[:length], length, length - 1) for d in docs]
    return math.exp(sum(s for s, _ in sums) / sum(c for _, c in sums))


def test_builtin_check_before_after(tiny_char_dir, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    out = tmp_path / "h.json"
    argv = [
        "eval",
        "harness",
        "--model",
        tiny_char_dir,
        "--data",
        data,
        "--method",
        "linear",
        "--factor",
        "2",
    ]
    assert main([str(a) for a in [*argv, "--out", out]]) == 0
    assert "after / before - 1" in capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["before"]["ppl"]["length"] == 64 and r["before"]["ppl"]["documents"] == 2  # "short" is dropped
    docs = [torch.tensor(make_char_tokenizer()(t)["input_ids"]) for t in TEXTS[:2]]
    plain, _, _ = prepare_model(str(tiny_char_dir), LoadOptions(), None)
    scaled, _, _ = prepare_model(str(tiny_char_dir), LoadOptions(), RopeScaling("linear", 2.0))
    before, after = _ppl(plain, docs, 64), _ppl(scaled, docs, 64)
    assert r["before"]["ppl"]["ppl"] == pytest.approx(before, rel=1e-5)
    assert r["after"]["ppl"]["ppl"] == pytest.approx(after, rel=1e-5)
    assert after != before  # PI changes the random model a little; ratio agrees to float32 precision
    assert r["change"]["ppl_relative"] == pytest.approx(after / before - 1, abs=1e-6)
    assert r["after"]["model"]["window"] == 128 and r["model"]["method"] == "linear"


@pytest.mark.skipif(importlib.util.find_spec("lm_eval") is None, reason="lm-eval not installed")
def test_lm_eval_local_task_offline_matches_direct_scoring(tiny_char_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = tmp_path / "h.json"
    argv = ["eval", "harness", "--model", tiny_char_dir, "--tasks", "ropescale_tiny", "--include-path", TASKS]
    assert main([str(a) for a in [*argv, "--no-ppl", "--out", out]]) == 0
    got = json.loads(out.read_text())["before"]["tasks"]["ropescale_tiny"]
    # independent: score " " + choice after the prompt with the model, keeping the last 64 + 1 tokens of
    # context + continuation as the harness does for a model with a 64-token window
    tok = make_char_tokenizer()
    model, _, _ = prepare_model(str(tiny_char_dir), LoadOptions(), None)
    rows = [json.loads(x) for x in (TASKS / "ropescale_tiny" / "data.jsonl").read_text().splitlines()]
    acc = acc_norm = 0
    for row in rows:
        ctx = tok(f"Question: {row['question']}\nAnswer:")["input_ids"]
        scores = []
        for choice in row["choices"]:
            cont = tok(" " + choice)["input_ids"]
            full = (ctx + cont)[-65:]
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=torch.tensor([full[:-1]])).logits[0].float(), -1)
            ll = sum(logp[len(full) - 1 - len(cont) + i, t].item() for i, t in enumerate(cont))
            scores.append((ll, ll / len(choice)))  # the harness normalises by the choice's length
        acc += max(range(3), key=lambda i: scores[i][0]) == row["answer"]
        acc_norm += max(range(3), key=lambda i: scores[i][1]) == row["answer"]
    assert got["acc"] == pytest.approx(acc / len(rows)) and got["acc_norm"] == pytest.approx(
        acc_norm / len(rows)
    )
    assert "acc_stderr" in got
