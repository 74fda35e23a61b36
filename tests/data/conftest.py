from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """A small byte-level BPE tokenizer trained like the tiny model's (digits split), on short English."""
    from ropescale.data.passkey import passkey_text
    from ropescale.models.tiny import train_tokenizer

    texts = [passkey_text(12345 + i, 50 * i, 30 * i) for i in range(20)]
    texts += ["To be, or not to be, that is the question. " * 20, "def f(x):\n    return x + 1\n" * 20]
    return train_tokenizer(texts, vocab_size=400)
