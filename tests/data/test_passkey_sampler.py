"""Passkey documents follow the evaluation prompt exactly; the sampler is deterministic and resumable."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ropescale import prompts
from ropescale.data import BatchSampler, DataRequest, PasskeyMaker, pack, passkey_text

KEY_LINE = (
    re.escape(prompts.PASSKEY_KEY_LINE)
    .replace(r"\{key\}", r"(?P<key>\d{5})", 1)
    .replace(r"\{key\}", r"(?P=key)", 1)
)
PATTERN = re.compile(
    re.escape(prompts.PASSKEY_TASK)
    + r"\n(?P<pre>[^\n]*)\n"
    + KEY_LINE
    + r"\n(?P<post>[^\n]*)\n"
    + re.escape(prompts.PASSKEY_QUESTION)
    + r" (?P<answer>\d{5})\.$"
)


def test_passkey_text_is_the_paper_prompt_plus_answer():
    text = passkey_text(12345, 10, 0)
    lines = text.split("\n")
    assert lines[0] == prompts.PASSKEY_TASK
    assert lines[1] == prompts.PASSKEY_GARBAGE[:10]
    assert lines[2] == "The pass key is 12345. Remember it. 12345 is the pass key."
    assert lines[3] == ""
    assert lines[4] == prompts.PASSKEY_QUESTION + " 12345."


def test_passkey_sequences_fit_and_put_the_key_anywhere(bpe_tokenizer):
    tok = bpe_tokenizer
    maker = PasskeyMaker.for_tokenizer(tok, 256)
    rng = np.random.default_rng(0)
    depths = []
    for _ in range(40):
        ids, mask = maker.make(rng)
        assert ids.shape == mask.shape == (256,)
        n = int(mask.sum())
        assert mask[:n].all() and not mask[n:].any()  # the document + EOS, then masked padding
        assert ids[n - 1] == tok.eos_token_id
        text = tok.decode(ids[: n - 1].tolist())
        match = PATTERN.match(text)
        assert match, text
        assert match["key"] == match["answer"]
        depths.append(len(match["pre"]) / max(1, len(match["pre"]) + len(match["post"])))
        assert n > 0.4 * 256  # filler fills at least about half of the window
    assert min(depths) < 0.15 and max(depths) > 0.85


def test_passkey_prompt_longer_than_window_is_refused(bpe_tokenizer):
    with pytest.raises(ValueError, match="--seq-len"):
        PasskeyMaker.for_tokenizer(bpe_tokenizer, 16)


@pytest.fixture
def packed(tmp_path, bpe_tokenizer):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(30):
        (folder / f"{i}.txt").write_text(f"Text {i}. " + "To be or not to be. " * 5)
    return pack(DataRequest(str(folder), seq_len=16, val_fraction=0.0), bpe_tokenizer, tmp_path / "cache")


def test_sampler_epochs_cover_every_sequence_once(packed):
    n = len(packed.train)
    sampler = BatchSampler(packed, batch_size=n, seed=3)
    for _ in range(2):
        ids, labels, _ = sampler.next_batch()
        assert torch.equal(ids, labels)
        rows = sorted(map(tuple, ids.tolist()))
        assert rows == sorted(map(tuple, np.asarray(packed.train).astype(np.int64).tolist()))
    assert sampler.state.epoch == 1


def test_sampler_resumes_exactly_and_mixes_passkeys(packed, bpe_tokenizer):
    a = BatchSampler(packed, batch_size=5, seed=1)
    for _ in range(3):
        a.next_batch()
    state = a.state_dict()
    after = [a.next_batch() for _ in range(4)]
    b = BatchSampler(packed, batch_size=5, seed=1)
    b.load_state_dict(state)
    for (x, y, _), (u, v, _) in zip(after, [b.next_batch() for _ in range(4)], strict=True):
        assert torch.equal(x, u) and torch.equal(y, v)
    c = BatchSampler(packed, batch_size=5, seed=2)
    assert not torch.equal(c.next_batch()[0], BatchSampler(packed, batch_size=5, seed=1).next_batch()[0])


def test_passkey_fraction(tmp_path, bpe_tokenizer):
    folder = tmp_path / "long"
    folder.mkdir()
    (folder / "a.txt").write_text("To be or not to be. " * 400)
    packed = pack(DataRequest(str(folder), seq_len=128, val_fraction=0.0), bpe_tokenizer, tmp_path / "c")
    maker = PasskeyMaker.for_tokenizer(bpe_tokenizer, 128)
    sampler = BatchSampler(packed, batch_size=200, seed=0, passkey=maker, passkey_fraction=0.3)
    ids, labels, _ = sampler.next_batch()
    is_passkey = np.array(
        [bpe_tokenizer.decode(row[:40].tolist()).startswith(prompts.PASSKEY_TASK[:30]) for row in ids]
    )
    assert 0.2 < is_passkey.mean() < 0.4
    assert ((labels == -100).any(1).numpy() <= is_passkey).all()  # only passkey rows have masked padding
    s = sampler.state
    assert s.items == 200 and s.epoch * len(packed.train) + s.cursor == 200 - is_passkey.sum()


def test_answer_only_passkeys_train_on_the_key_and_fill_from_zero(bpe_tokenizer):
    tok = bpe_tokenizer
    maker = PasskeyMaker.for_tokenizer(tok, 256, min_fill=0.0, answer_only=True)
    rng = np.random.default_rng(1)
    lengths = []
    for _ in range(40):
        ids, mask = maker.make(rng)
        end = ids.tolist().index(tok.eos_token_id)  # the document ends " KEY." then EOS
        match = PATTERN.match(tok.decode(ids[:end].tolist()))
        assert match, tok.decode(ids[:end].tolist())
        assert tok.decode(ids[mask].tolist()) == f" {match['answer']}."  # only the answer is scored
        assert not mask[end:].any()  # ... not the EOS or the padding
        lengths.append(end)
    assert min(lengths) < 0.4 * 256 < 0.8 * 256 < max(lengths)  # short and long documents both occur


def test_passkey_batches_come_whole(tmp_path, bpe_tokenizer):
    folder = tmp_path / "long"
    folder.mkdir()
    (folder / "a.txt").write_text("To be or not to be. " * 400)
    packed = pack(DataRequest(str(folder), seq_len=128, val_fraction=0.0), bpe_tokenizer, tmp_path / "c")
    maker = PasskeyMaker.for_tokenizer(bpe_tokenizer, 128, answer_only=True)
    sampler = BatchSampler(packed, 8, seed=0, passkey=maker, passkey_fraction=0.3, passkey_batches=True)
    kinds = []
    for _ in range(60):
        _, labels, _ = sampler.next_batch()
        scored = (labels != -100).sum(1)
        assert (scored < 10).all() or (scored == 128).all()  # a batch is all passkey or all text
        kinds.append(bool((scored < 10).all()))
    assert 0.15 < np.mean(kinds) < 0.45
    state = sampler.state_dict()
    again = BatchSampler(packed, 8, seed=0, passkey=maker, passkey_fraction=0.3, passkey_batches=True)
    again.load_state_dict(state)
    assert torch.equal(again.next_batch()[1], sampler.next_batch()[1])  # resumable like item mixing


def test_passkey_span_keeps_documents_short_inside_long_sequences(bpe_tokenizer):
    maker = PasskeyMaker.for_tokenizer(bpe_tokenizer, 512, min_fill=0.9, span=128)
    rng = np.random.default_rng(2)
    for _ in range(20):
        ids, mask = maker.make(rng)
        assert ids.shape == (512,)
        n = int(mask.sum())
        assert 0.6 * 128 < n <= 128 and not mask[n:].any()  # the document fills most of the span only
    with pytest.raises(ValueError, match="--passkey-span 16"):
        PasskeyMaker.for_tokenizer(bpe_tokenizer, 512, span=16)


def test_passkey_batches_of_several_spans_keep_the_tokens_per_step(tmp_path, bpe_tokenizer):
    """Makers of spans 128/256/512 in a 512-token run: each passkey batch holds one span's documents,
    512 // span times as many as a text batch, every span in a fair share; text batches are unchanged."""
    import dataclasses

    folder = tmp_path / "long"
    folder.mkdir()
    (folder / "a.txt").write_text("To be or not to be. " * 800)
    packed = pack(DataRequest(str(folder), seq_len=512, val_fraction=0.0), bpe_tokenizer, tmp_path / "c")
    maker = PasskeyMaker.for_tokenizer(bpe_tokenizer, 512, min_fill=0.0, answer_only=True, span=128)
    makers = tuple(dataclasses.replace(maker, seq_len=n, span=n) for n in (128, 256, 512))
    sampler = BatchSampler(packed, 2, seed=0, passkey=makers, passkey_fraction=0.5, passkey_batches=True)
    shapes = [tuple(sampler.next_batch()[0].shape) for _ in range(300)]
    counts = {s: shapes.count(s) for s in set(shapes)}
    assert set(counts) == {(2, 512), (8, 128), (4, 256)}  # text (and 512-span passkey) batches share a shape
    assert counts[(8, 128)] > 30 and counts[(4, 256)] > 30 and counts[(2, 512)] > 160  # ~50, ~50, ~200
    with pytest.raises(ValueError, match="passkey_batches"):
        BatchSampler(packed, 2, passkey=makers, passkey_fraction=0.5)
