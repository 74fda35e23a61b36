"""Fixtures for the evaluation tests: a character-level tokenizer (so digits and text encode exactly)."""

from __future__ import annotations

import pytest

CHARS = "\n" + "".join(chr(c) for c in range(32, 127) if chr(c) != "`")  # 95 characters + <eos> = 96


def make_char_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(CHARS)}
    vocab["<eos>"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="~"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="~", eos_token="<eos>")


@pytest.fixture(scope="session")
def char_tokenizer():
    return make_char_tokenizer()


@pytest.fixture
def tiny_char_dir(tmp_path, tiny_llama):
    """The tiny random LLaMA (vocab 96, window 64) saved with the character tokenizer."""
    path = tmp_path / "tiny-char"
    tiny_llama.save_pretrained(path)
    make_char_tokenizer().save_pretrained(path)
    return path
