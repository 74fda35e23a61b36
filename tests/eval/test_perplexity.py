"""Sliding-window perplexity: window layout, hand-computed toys, the naive loop, chunked perplexity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ropescale.eval import perplexity
from ropescale.eval.common import bootstrap_ci
from ropescale.eval.perplexity import (
    document_nll,
    perplexity_at,
    plan_windows,
    reference_nll,
    score_batch,
    split_head,
)

from .toys import bigram, position_toy


@pytest.mark.parametrize(
    ("n", "length", "stride", "want"),
    [
        (10, 4, 2, [(0, 4, 3), (2, 6, 2), (4, 8, 2), (6, 10, 2)]),
        (9, 4, 2, [(0, 4, 3), (2, 6, 2), (4, 8, 2), (5, 9, 1)]),  # final partial window keeps L tokens
        (3, 8, 2, [(0, 3, 2)]),  # shorter than the window: one window, all targets
        (8, 4, 4, [(0, 4, 3), (4, 8, 3)]),  # stride = window: chunks, first token of each is context
        (10, 4, 4, [(0, 4, 3), (4, 8, 3), (6, 10, 2)]),  # a final partial chunk keeps L tokens
        (1, 4, 2, []),
    ],
)
def test_window_layout(n, length, stride, want):
    got = [(w.begin, w.end, w.scored) for w in plan_windows(n, length, stride)]
    assert got == want


@pytest.mark.parametrize("n", [2, 5, 64, 100, 257])
@pytest.mark.parametrize(("length", "stride"), [(16, 1), (16, 5), (16, 15), (32, 8)])
def test_every_target_scored_once(n, length, stride):
    covered = []
    for w in plan_windows(n, length, stride):
        assert w.end - w.begin == min(length, n)
        assert w.scored <= w.end - w.begin - 1  # each scored token has its predictor in the window
        covered += range(w.end - w.scored, w.end)
    assert covered == list(range(1, n))


def test_bigram_toy_hand_computed():
    # a first-order Markov model ignores extra context, so any window gives the same value:
    # transitions 0->1 (1/2), 1->1 (3/4), 1->0 (1/4), 0->0 (1/2)  =>  ppl = (1/2*3/4*1/4*1/2)^(-1/4)
    model = bigram(torch.tensor([[0.5, 0.5], [0.25, 0.75]]))
    doc = torch.tensor([0, 1, 1, 0, 0])
    for length, stride in [(5, 1), (3, 1), (2, 1), (4, 2)]:
        r = perplexity_at(model, [doc], length, stride, batch_tokens=64)
        assert r["tokens"] == 4
        assert r["ppl"] == pytest.approx((0.5 * 0.75 * 0.25 * 0.5) ** -0.25, rel=1e-6)


def test_position_toy_hand_computed():
    # all-zero document, N=6, L=4, S=2. Window [0,4) scores x1..x3, predicted at window positions 0,1,2:
    # p = 1/2, 1/3, 1/4. Window [2,6) scores x4, x5 (window positions 2, 3), predicted at positions 1, 2:
    # p = 1/3, 1/4.  ppl = (2*3*4*3*4)^(1/5).
    r = perplexity_at(position_toy(), [torch.zeros(6, dtype=torch.long)], 4, 2, batch_tokens=64)
    assert r["tokens"] == 5
    assert r["ppl"] == pytest.approx(288 ** (1 / 5), rel=1e-6)
    # by position of the target in its window: 1 -> {2}, 2 -> {3, 3}, 3 -> {4, 4} (position 0 never scored)
    buckets = [(b["from"], b["tokens"], b["ppl"]) for b in r["by_position"]]
    assert [b[:2] for b in buckets] == [(0, 0), (1, 1), (2, 2), (3, 2)]
    assert [b[2] for b in buckets[1:]] == pytest.approx([2, 3, 4], rel=1e-6)
    # N=7: the final window [3,7) scores only x6, predicted at window position 2 (p = 1/4) with 3 tokens
    # of context, not from a shorter window [4,7) (which would give position 1, p = 1/3)
    r = perplexity_at(position_toy(), [torch.zeros(7, dtype=torch.long)], 4, 2, batch_tokens=64)
    assert r["ppl"] == pytest.approx((288 * 4) ** (1 / 6), rel=1e-6)


def _docs(vocab: int, lengths: list[int], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=g) for n in lengths]


@pytest.mark.parametrize(("length", "stride"), [(64, 16), (48, 7), (32, 32)])
def test_matches_naive_reference_loop(tiny_llama, length, stride):
    docs = _docs(96, [130, 64, 91, 40])
    nll, count = document_nll(docs, length, stride, tiny_llama, batch_tokens=256)
    for i, doc in enumerate(docs):
        ref_total, ref_count = reference_nll(tiny_llama, doc, length, stride)
        assert count[i] == ref_count
        assert nll[i] == pytest.approx(ref_total, rel=1e-5)


def test_chunked_head_equals_logits_to_keep(tiny_llama, monkeypatch):
    monkeypatch.setattr(perplexity, "HEAD_CHUNK", 7)  # several chunks, the last one partial
    split = split_head(tiny_llama)
    assert split is not None
    ids = torch.stack(_docs(96, [48, 48, 48]))
    for scored in (1, 16, 47):
        torch.testing.assert_close(
            score_batch(tiny_llama, ids, scored, split), score_batch(tiny_llama, ids, scored)
        )


def test_split_head_refuses_extra_logit_processing(tiny_llama):
    forward = tiny_llama.forward

    def capped(*args, **kw):  # e.g. Gemma-style soft-capping happens after the head
        out = forward(*args, **kw)
        out.logits = 30 * torch.tanh(out.logits / 30)
        return out

    tiny_llama.forward = capped
    tiny_llama.lm_head.weight.data *= 1000  # big logits, so the capping matters
    assert split_head(tiny_llama) is None
    assert split_head(bigram(torch.full((2, 2), 0.5))) is None  # no get_decoder: the plain path


def test_batching_does_not_change_numbers(tiny_llama):
    docs = _docs(96, [150, 170, 90])
    one = document_nll(docs, 64, 16, tiny_llama, batch_tokens=1)
    many = document_nll(docs, 64, 16, tiny_llama, batch_tokens=4096)
    np.testing.assert_allclose(one[0], many[0], rtol=1e-5)
    np.testing.assert_array_equal(one[1], many[1])


def test_stride_equal_window_is_chunked_perplexity(tiny_llama):
    doc = _docs(96, [160])[0]
    total, count = 0.0, 0
    with torch.no_grad():
        for chunk in doc.split(32):  # independent: plain chunks, full logits, cross-entropy summed
            logits = tiny_llama(input_ids=chunk[None]).logits[0, :-1]
            total += F.cross_entropy(logits.float(), chunk[1:], reduction="sum").item()
            count += len(chunk) - 1
    r = perplexity_at(tiny_llama, [doc], 32, 32, batch_tokens=1024)
    assert r["tokens"] == count == 160 - 5
    assert r["ppl"] == pytest.approx(math.exp(total / count), rel=1e-5)


def test_corpus_ppl_is_token_weighted():
    model = bigram(torch.tensor([[0.5, 0.5], [0.25, 0.75]]))
    docs = [torch.tensor([1, 1, 1, 1, 1]), torch.tensor([0, 1])]  # 4 targets at 3/4, 1 at 1/2
    r = perplexity_at(model, docs, 8, 4, batch_tokens=64)
    assert r["ppl"] == pytest.approx((0.75**4 * 0.5) ** -0.2, rel=1e-6)
    assert [d["scored"] for d in r["per_document"]] == [4, 1]
    assert r["per_document"][1]["ppl"] == pytest.approx(2.0)


def test_bootstrap_ci_matches_explicit_resampling():
    nll = np.array([10.0, 30.0, 5.0, 12.0])
    cnt = np.array([10, 10, 5, 20])
    lo, hi = bootstrap_ci(nll, cnt, np.exp, samples=500, seed=3)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 4, size=(500, 4))
    stats = sorted(math.exp(sum(nll[j] for j in row) / sum(cnt[j] for j in row)) for row in idx)
    assert lo == pytest.approx(np.quantile(stats, 0.025)) and hi == pytest.approx(np.quantile(stats, 0.975))
    assert lo < math.exp(nll.sum() / cnt.sum()) < hi
    same = bootstrap_ci(np.array([2.0, 2.0]), np.array([1, 1]), np.exp)
    assert same == pytest.approx((math.exp(2), math.exp(2)))


def test_truncate_to_beyond_every_document_is_refused_without_tokenizing(tmp_path):
    """`--truncate-to 100000000` tokenized the whole corpus (76-98 s) before refusing: a document with fewer
    bytes than N (less the special tokens) cannot have N tokens, so it is skipped unread by the tokenizer."""
    import pytest

    from ropescale.eval.perplexity import tokenize_documents

    (tmp_path / "a.txt").write_text("some words " * 500)
    calls = []

    def tokenizer(text, add_special_tokens=True):
        calls.append(len(text))
        return {"input_ids": list(text.encode())}  # one token per byte: the most a tokenizer gives

    with pytest.raises(ValueError, match="no document with at least 100000000 tokens"):
        tokenize_documents(tokenizer, str(tmp_path / "a.txt"), truncate_to=100_000_000)
    assert calls == []
    assert [len(d) for d in tokenize_documents(tokenizer, str(tmp_path / "a.txt"), truncate_to=5500)] == [
        5500
    ]
    assert calls == [5500]
