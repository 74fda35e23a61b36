"""Long-document summarization with ROUGE (PI paper arXiv 2306.15595, section 3.5), the evaluation half.

Each record has a document (`report`) and a reference summary (`summary`). The prompt is the paper's
(`ropescale.prompts`), built in token space: prefix, the document cut to its first `max_input_tokens`
tokens (the paper: 15000), suffix. The answer is sampled (temperature 0.5, top-p 0.95 by default) with a
generator seeded per document, at most `max_new_tokens` tokens (the paper: 1000), stopping at EOS.
Scores are ROUGE-1/2/L F-measures from the `rouge-score` package (Porter stemming, its default
tokenisation), averaged over documents (x100), with a 95% bootstrap interval over documents.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from .. import prompts
from .common import bootstrap_ci
from .generate import eos_ids, generate

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def prompt_ids(tokenizer: Any, document: str, max_input_tokens: int) -> tuple[list[int], bool]:
    """Token ids of the paper's prompt around the document's first `max_input_tokens` tokens, and whether
    the document was cut."""
    doc = tokenizer(document, add_special_tokens=False)["input_ids"]
    head = tokenizer(prompts.SUMMARIZE_PREFIX, add_special_tokens=True)["input_ids"]
    tail = tokenizer(prompts.SUMMARIZE_SUFFIX, add_special_tokens=False)["input_ids"]
    return head + doc[:max_input_tokens] + tail, len(doc) > max_input_tokens


def rouge_scores(prediction: str, reference: str) -> dict[str, dict[str, float]]:
    """ROUGE-1/2/L precision, recall and F-measure of one prediction against its reference (0..1)."""
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise ValueError("eval summarize needs rouge-score: pip install 'ropescale[eval]'") from None
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    scores = scorer.score(reference, prediction)
    return {k: {"p": s.precision, "r": s.recall, "f": s.fmeasure} for k, s in scores.items()}


def aggregate(per_doc: list[dict[str, dict[str, float]]], samples: int = 1000, seed: int = 0) -> dict:
    """Mean precision/recall/F over documents (x100) and a bootstrap 95% interval of the mean F."""
    out = {}
    for kind in ROUGE_TYPES:
        f = np.array([d[kind]["f"] for d in per_doc]) * 100
        out[kind] = {
            "f": float(f.mean()),
            "p": float(np.mean([d[kind]["p"] for d in per_doc]) * 100),
            "r": float(np.mean([d[kind]["r"] for d in per_doc]) * 100),
            "ci95": list(bootstrap_ci(f, np.ones_like(f), samples=samples, seed=seed)),
        }
    return out


def summarize_one(model: Any, tokenizer: Any, index: int, record: dict[str, str], cfg) -> dict[str, Any]:
    """Generate a summary of one record and score it."""
    ids, cut = prompt_ids(tokenizer, record[cfg.report_field], cfg.max_input_tokens)
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + index)
    start = time.perf_counter()
    new = generate(
        model,
        torch.tensor(ids, dtype=torch.long),
        cfg.max_new_tokens,
        eos_ids(model, tokenizer),
        cfg.temperature,
        cfg.top_p,
        generator,
    )
    prediction = tokenizer.decode(new, skip_special_tokens=True).strip()
    return {
        "index": index,
        "prompt_tokens": len(ids),
        "truncated": cut,
        "new_tokens": len(new),
        "prediction": prediction,
        "reference": record[cfg.summary_field],
        "rouge": rouge_scores(prediction, record[cfg.summary_field]),
        "seconds": round(time.perf_counter() - start, 3),
    }
