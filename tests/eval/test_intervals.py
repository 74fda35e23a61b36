"""The 95% intervals of `eval ppl` and `eval summarize`, recomputed from the per-document values the
result stores: a percentile bootstrap over documents (seeded numpy draws of document indices), written
here as a plain loop. When the documents differ, the interval has width and holds the point estimate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ropescale.cli import main
from ropescale.eval.summarize import ROUGE_TYPES, aggregate


def _percentile_bootstrap(values, weights, samples: int, seed: int, transform=lambda x: x):
    """transform(sum(values) / sum(weights)) over `samples` resamples of the documents, 2.5th and 97.5th
    percentiles (linear interpolation between order statistics)."""
    n = len(values)
    draws = np.random.default_rng(seed).integers(0, n, size=(samples, n))
    stats = []
    for row in draws:
        num = sum(values[j] for j in row)
        den = sum(weights[j] for j in row)
        stats.append(transform(num / den))
    stats.sort()

    def pct(q: float) -> float:
        pos = q * (samples - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, samples - 1)
        return stats[lo] + (stats[hi] - stats[lo]) * (pos - lo)

    return pct(0.025), pct(0.975)


def test_ppl_interval_is_recomputed_from_the_per_document_numbers(tiny_char_dir, tmp_path, capsys):
    data = tmp_path / "docs"
    data.mkdir()
    texts = ["aaaa aaaa aaaa aaaa " * 3, "The quick brown fox jumps over the lazy dog. " * 2,
             "0123456789" * 5, "Pack my box with five dozen liquor jugs."]  # fmt: skip
    for i, text in enumerate(texts):
        (data / f"{i}.txt").write_text(text)
    out = tmp_path / "ppl.json"
    argv = ["eval", "ppl", "--model", tiny_char_dir, "--data", data, "--lengths", "32,64", "--stride", "16"]
    assert main([str(a) for a in [*argv, "--bootstrap", "400", "--seed", "7", "--out", out]]) == 0
    capsys.readouterr()
    for entry in json.loads(out.read_text())["lengths"]:
        docs = entry["per_document"]
        nll, count = [d["nll_sum"] for d in docs], [d["scored"] for d in docs]
        assert entry["ppl"] == pytest.approx(math.exp(sum(nll) / sum(count)), rel=1e-12)
        want = _percentile_bootstrap(nll, count, 400, 7, math.exp)
        assert entry["ci95"] == pytest.approx(list(want), rel=1e-9)
        lo, hi = entry["ci95"]
        assert lo < entry["ppl"] < hi  # the documents' perplexities differ: the interval has width


def test_rouge_interval_is_recomputed_from_the_per_document_scores():
    f = {"rouge1": [0.9, 0.2, 0.5, 0.35, 0.7], "rouge2": [0.4, 0.05, 0.3, 0.1, 0.2]}
    f["rougeL"] = [x * 0.8 for x in f["rouge1"]]
    per_doc = [{k: {"p": 1.0, "r": v[i], "f": v[i]} for k, v in f.items()} for i in range(5)]
    agg = aggregate(per_doc, samples=300, seed=4)
    for kind in ROUGE_TYPES:
        scores = [100 * x for x in f[kind]]
        assert agg[kind]["f"] == pytest.approx(sum(scores) / 5)
        want = _percentile_bootstrap(scores, [1] * 5, 300, 4)
        assert agg[kind]["ci95"] == pytest.approx(list(want), rel=1e-9)
        lo, hi = agg[kind]["ci95"]
        assert min(scores) <= lo < agg[kind]["f"] < hi <= max(scores)
