"""A LLaMA-style tokenizer that adds BOS (`<s>`) to every encoding with special tokens, built locally:
documents are tokenised with one BOS at the start (not one per window), the passkey prompt is exactly T
tokens with one BOS and the key line k tokens from the end, and the summarize prompt has one BOS."""

from __future__ import annotations

import pytest

from ropescale import prompts
from ropescale.eval.passkey import (
    PromptPieces,
    build_prompt,
    check_prompt_lengths,
    evaluate_passkey,
    k_range,
    key_ids,
)
from ropescale.eval.perplexity import plan_windows, tokenize_documents
from ropescale.eval.summarize import prompt_ids

from .conftest import CHARS
from .test_passkey import _cfg
from .toys import RecallToy


def make_bos_tokenizer():
    """Characters as tokens (96 ids) plus <s> (BOS, added in front of every encoding with special tokens,
    as LLaMA's tokenizer does) and </s> (EOS, never added)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(CHARS)}
    vocab["</s>"] = len(vocab)
    vocab["<s>"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="~"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="~", bos_token="<s>", eos_token="</s>")


@pytest.fixture(scope="module")
def bos_tok():
    tok = make_bos_tokenizer()
    assert tok("ab")["input_ids"] == [tok.bos_token_id, *tok("ab", add_special_tokens=False)["input_ids"]]
    return tok


def test_documents_get_one_bos_at_the_start_not_one_per_window(bos_tok, tmp_path):
    texts = ["x" * 150, "The quick brown fox. " * 4]
    for i, t in enumerate(texts):
        (tmp_path / f"{i}.txt").write_text(t)
    docs = tokenize_documents(bos_tok, str(tmp_path))
    bos = bos_tok.bos_token_id
    for doc, text in zip(docs, texts, strict=True):
        assert doc[0] == bos and int((doc == bos).sum()) == 1
        assert len(doc) == len(text) + 1 and bos_tok.decode(doc[1:]) == text
    # windows are slices of the tokenised document: only the first one starts at the BOS, and the BOS is
    # context, never a target (a document of N tokens, BOS included, scores N - 1)
    windows = plan_windows(len(docs[0]), 64, 16)
    assert [w.begin for w in windows][:2] == [0, 16] and sum(w.scored for w in windows) == len(docs[0]) - 1


@pytest.mark.parametrize(("length", "k"), [(300, 98), (300, 150), (601, 451)])
def test_passkey_prompt_is_exactly_t_tokens_with_one_bos(bos_tok, length, k):
    pieces = PromptPieces.build(bos_tok, length)
    key = key_ids(bos_tok, 40217)
    ids = build_prompt(pieces, key, length, k)
    bos = bos_tok.bos_token_id
    assert len(ids) == length and ids[0] == bos and ids.count(bos) == 1
    assert ids[length - k : length - k + len(key)] == key
    text = bos_tok.decode(ids, skip_special_tokens=True)
    assert text.startswith(prompts.PASSKEY_TASK + "\n") and text.endswith(prompts.PASSKEY_QUESTION)
    assert len(text) == length - 1  # one character per token, besides the BOS
    lo, hi = k_range(pieces, key, length)
    assert hi == length - 1 - len(prompts.PASSKEY_TASK + "\n")  # the BOS is part of the head
    assert len(build_prompt(pieces, key, length, hi)) == length == len(build_prompt(pieces, key, length, lo))


def test_passkey_sweep_with_bos_gives_the_toys_k_max(bos_tok):
    model = RecallToy(bos_tok, 500)
    results, _ = evaluate_passkey(model, bos_tok, [1600], _cfg(), None)
    assert results[0]["k_max"] == 400
    assert all(len(p) == 1600 and p[0] == bos_tok.bos_token_id and p.count(p[0]) == 1 for p in model.prompts)
    check_prompt_lengths(bos_tok, [1600])
    with pytest.raises(ValueError, match="needs at least"):
        check_prompt_lengths(bos_tok, [len(PromptPieces.build(bos_tok, 10).head) + 10])


def test_summarize_prompt_has_one_bos(bos_tok):
    ids, cut = prompt_ids(bos_tok, "abcdefghij", 4)
    assert cut and ids[0] == bos_tok.bos_token_id and ids.count(bos_tok.bos_token_id) == 1
    assert bos_tok.decode(ids, skip_special_tokens=True) == prompts.summarize_prompt("abcd")
    assert len(ids) == 1 + len(prompts.summarize_prompt("abcd"))
