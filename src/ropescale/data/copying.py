"""Copy sequences: random token spans, each followed by an exact repeat, to mix into pre-training.

Passkey retrieval needs induction heads (Olsson et al. 2022): attention that finds an earlier occurrence of
the current token and copies what followed it. On natural text a small model forms them only after
billions of tokens; in passkey documents only the ten key digits are copy events, too few for a CPU budget.
Here every token of a repeat is one, so a few hundred steps with a share of these sequences give the
tiny model the skill, and its passkey accuracy then comes from the generic mechanism, not from memorising
the prompt. Spans have random lengths (up to half the window), so copies span short and long distances.
"""

from __future__ import annotations

import numpy as np


def copy_sequence(rng: np.random.Generator, seq_len: int, low: int, high: int) -> np.ndarray:
    """(seq_len,) int64: [span1, span1, span2, span2, ...] cut to seq_len, tokens uniform in [low, high)."""
    out = np.empty(seq_len, dtype=np.int64)
    filled = 0
    while filled < seq_len:
        n = int(rng.integers(max(2, seq_len // 32), max(3, seq_len // 2) + 1))
        span = rng.integers(low, high, size=n)
        piece = np.concatenate([span, span])[: seq_len - filled]
        out[filled : filled + len(piece)] = piece
        filled += len(piece)
    return out
