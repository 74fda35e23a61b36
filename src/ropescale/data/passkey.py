"""Passkey-format training documents (the paper's prompt, arXiv 2306.15595 section 3.3), to mix into training.

A document is the evaluation prompt followed by its answer:
    task \n garbage-prefix \n key line \n garbage-suffix \n question ␣KEY.
with a random 5-digit key and random amounts of filler (the repeated garbage sentences, cut at a random
character as in the landmark-attention reference code) before and after the key line, so the key lands
anywhere in the window. Used by `pretrain` (so the base model learns retrieval within its window L) and
optionally by `train` (so retrieval at distances beyond L is something fine-tuning can learn).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import prompts


def passkey_text(key: int, prefix_chars: int, suffix_chars: int) -> str:
    """The prompt with `prefix_chars`/`suffix_chars` characters of filler around the key line, plus the
    answer (" KEY.")."""
    reps = (max(prefix_chars, suffix_chars) // len(prompts.PASSKEY_GARBAGE)) + 1
    garbage = " ".join([prompts.PASSKEY_GARBAGE] * reps)
    lines = [
        prompts.PASSKEY_TASK,
        garbage[:prefix_chars],
        prompts.passkey_key_line(key),
        garbage[:suffix_chars],
        prompts.PASSKEY_QUESTION,
    ]
    return "\n".join(lines) + f" {key}."


@dataclass(frozen=True)
class PasskeyMaker:
    """Makes passkey sequences of exactly `seq_len` tokens for one tokenizer.

    `overhead` (tokens of a prompt without filler) and `tokens_per_char` (of the filler) are measured once,
    so a document's filler can be sized to fit without trial and error in the common case."""

    tokenizer: Any
    seq_len: int
    overhead: int
    tokens_per_char: float
    min_fill: float = 0.5
    answer_only: bool = False
    span: int | None = None

    @classmethod
    def for_tokenizer(
        cls,
        tokenizer: Any,
        seq_len: int,
        min_fill: float = 0.5,
        answer_only: bool = False,
        span: int | None = None,
    ) -> PasskeyMaker:
        """`min_fill`: the filler fills between this fraction and all of the span (0 = keys at every
        distance). `answer_only`: the loss mask covers only the answer (" KEY."), not the prompt.
        `span`: documents fit in this many tokens (default `seq_len`) and are padded to `seq_len`, e.g. to
        rehearse retrieval within the original window L while fine-tuning at s L."""
        span = min(span or seq_len, seq_len)
        overhead = len(_encode(tokenizer, passkey_text(12345, 0, 0)))
        long = passkey_text(12345, 4000, 0)
        per_char = (len(_encode(tokenizer, long)) - overhead) / 4000
        if overhead + 2 > span:
            raise ValueError(
                f"the passkey prompt needs {overhead + 2} tokens with this tokenizer, more than "
                f"{'--seq-len' if span == seq_len else '--passkey-span'} {span}; use a longer one or "
                "--passkey-fraction 0"
            )
        return cls(tokenizer, seq_len, overhead, per_char, min_fill, answer_only, span)

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, loss_mask), both (seq_len,): the document, EOS, then EOS padding that is masked out
        (with `answer_only`, everything but the answer " KEY." is masked out). The filler fills between
        `min_fill` and all of the window, the key line splits it uniformly at random."""
        key = int(rng.integers(10000, 100000))
        span = self.span or self.seq_len
        room = max(0.0, (span - 1 - self.overhead - 4) / self.tokens_per_char)
        total = int(room * rng.uniform(self.min_fill, 1.0))
        prefix = int(rng.integers(0, total + 1))
        ids = _encode(self.tokenizer, passkey_text(key, prefix, total - prefix))
        while len(ids) > span - 1:  # rare: tokenisation at the cut was denser than measured
            total, prefix = int(total * 0.9), int(prefix * 0.9)
            ids = _encode(self.tokenizer, passkey_text(key, prefix, total - prefix))
        eos = self.tokenizer.eos_token_id
        out = np.full(self.seq_len, eos, dtype=np.int64)
        out[: len(ids)] = ids
        mask = np.zeros(self.seq_len, dtype=bool)
        if self.answer_only:  # the text ends with the answer " KEY." (its "." teaches where it stops)
            mask[len(ids) - len(_encode(self.tokenizer, f" {key}.")) : len(ids)] = True
        else:
            mask[: len(ids) + 1] = True  # the document and its closing EOS are trained on, the padding not
        return out, mask


def _encode(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]
