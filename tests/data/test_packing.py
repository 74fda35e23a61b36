"""Packing: the sequences are exactly the documents' tokens joined with EOS, cut to length, split by
whole documents; cached by content; summarization examples mask the prompt."""

from __future__ import annotations

import numpy as np
import pytest

from ropescale import prompts
from ropescale.data import DataRequest, pack
from ropescale.data.packing import is_validation, summarize_example


def _corpus(tmp_path, n=40):
    folder = tmp_path / "docs"
    folder.mkdir()
    docs = [f"Document {i}: " + "the quick brown fox jumps. " * (3 + i % 7) for i in range(n)]
    for i, text in enumerate(docs):
        (folder / f"{i:03d}.txt").write_text(text)
    return folder, docs


def test_sequences_are_the_document_stream_cut_to_length(tmp_path, bpe_tokenizer):
    folder, docs = _corpus(tmp_path)
    packed = pack(DataRequest(str(folder), seq_len=16, val_fraction=0.25), bpe_tokenizer, tmp_path / "cache")
    eos = bpe_tokenizer.eos_token_id
    streams = {"train": [], "val": []}
    for text in docs:  # the independent reference: tokenise one document at a time
        split = "val" if is_validation(text, 0.25) else "train"
        streams[split] += bpe_tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
    for split in ("train", "val"):
        want = np.array(streams[split][: len(streams[split]) // 16 * 16]).reshape(-1, 16)
        np.testing.assert_array_equal(getattr(packed, split), want)
    assert 0 < len(packed.val) < len(packed.train)
    assert packed.train_mask is None


def test_split_is_by_whole_document_and_stable():
    texts = [f"doc {i}" for i in range(2000)]
    share = np.mean([is_validation(t, 0.1) for t in texts])
    assert 0.07 < share < 0.13
    assert [is_validation(t, 0.1) for t in texts[:50]] == [is_validation(t, 0.1) for t in texts[:50]]
    assert not any(is_validation(t, 0.0) for t in texts)


def test_cache_is_reused_and_keyed_by_content(tmp_path, bpe_tokenizer):
    folder, _ = _corpus(tmp_path, 10)
    request = DataRequest(str(folder), seq_len=16)
    first = pack(request, bpe_tokenizer, tmp_path / "cache")
    again = pack(request, bpe_tokenizer, tmp_path / "cache")
    assert again.root == first.root and again.fingerprint == first.fingerprint
    other = pack(DataRequest(str(folder), seq_len=8), bpe_tokenizer, tmp_path / "cache")
    assert other.root != first.root and other.fingerprint != first.fingerprint
    limited = pack(DataRequest(str(folder), seq_len=8, max_tokens=20), bpe_tokenizer, tmp_path / "cache")
    assert 2 <= len(limited.train) < len(other.train)


def test_too_little_text_is_an_error(tmp_path, bpe_tokenizer):
    (tmp_path / "a.txt").write_text("hi")
    with pytest.raises(ValueError, match="too little text"):
        pack(DataRequest(str(tmp_path / "a.txt"), seq_len=64), bpe_tokenizer, tmp_path / "cache")


def test_summarize_example_masks_the_prompt_and_truncates(bpe_tokenizer):
    tok = bpe_tokenizer
    report = "The question is to be or not to be. " * 30
    ids, mask = summarize_example(tok, report, "To be.", seq_len=120, max_summary=50)
    n = int(mask.sum())
    answer = tok(" To be.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert n == len(answer)
    start = int(np.argmax(mask))
    assert ids[start : start + n].tolist() == answer
    prompt = tok.decode(ids[:start].tolist())
    assert prompt.startswith(prompts.SUMMARIZE_PREFIX) and prompt.endswith(prompts.SUMMARIZE_SUFFIX)
    doc = prompt[len(prompts.SUMMARIZE_PREFIX) : -len(prompts.SUMMARIZE_SUFFIX)]
    assert report.startswith(doc) and 0 < len(doc) < len(report)  # the document was cut to fit
    assert start + n <= 120 and not mask[start + n :].any() and not mask[:start].any()
    # the summary is cut to max_summary tokens
    _, short = summarize_example(tok, report, "be " * 100, seq_len=200, max_summary=10)
    assert short.sum() == 11
    assert summarize_example(tok, report, "x", seq_len=5, max_summary=10) is None


def test_summarize_packing_from_jsonl(tmp_path, bpe_tokenizer):
    import json

    path = tmp_path / "gov.jsonl"
    rows = [{"doc": "The question is long. " * (5 + i), "abs": f"Summary {i}."} for i in range(12)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    request = DataRequest(
        str(path), seq_len=160, task="summarize", report_field="doc", summary_field="abs", val_fraction=0.0
    )
    packed = pack(request, bpe_tokenizer, tmp_path / "cache")
    assert packed.train.shape == (12, 160) and packed.train_mask.shape == (12, 160)
    for row, mask, r in zip(packed.train, packed.train_mask, rows, strict=False):
        text = bpe_tokenizer.decode(np.asarray(row)[np.asarray(mask)].tolist()[:-1])
        assert text == " " + r["abs"]
