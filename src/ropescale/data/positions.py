"""Position ids of training sequences: contiguous, or PoSE's skip-wise chunks.

PoSE (Zhu et al. 2023, arXiv 2309.10400) trains a target window L' with sequences of
Lc < L' tokens. Each sequence is cut into N chunks of lengths l_0..l_{N-1} (sum Lc, each >= 1 token; the
N - 1 cut points are drawn uniformly without replacement from 1..Lc-1), and chunk i gets the consecutive
ids u_i + st_i, u_i + st_i + 1, ... with st_i = l_0 + ... + l_{i-1} and skip biases u_0 = 0,
u_i ~ U{u_{i-1}, ..., L' - Lc}. So ids start at 0, increase strictly inside a row, stay below L', and the
largest relative distance in a row, u_{N-1} + Lc - 1, reaches L' - 1 over many draws. The text stays
contiguous (the paper's content offsets v_i = 0, which its Appendix A finds as good as v_i = u_i); our
packed sequences are Lc consecutive tokens of the corpus.

Every draw comes from a generator seeded by (seed, item index), the same stream discipline as the batch
sampler, so all ranks and a resumed run see exactly the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pose_position_ids(length: int, target_window: int, chunks: int, rng: np.random.Generator) -> np.ndarray:
    """PoSE ids for one sequence of `length` tokens covering [0, target_window): (length,) int64."""
    assert 1 <= chunks <= length <= target_window, (chunks, length, target_window)
    cuts = np.sort(rng.choice(np.arange(1, length), size=chunks - 1, replace=False))
    skips = np.zeros(chunks, dtype=np.int64)
    for i in range(1, chunks):  # u_i ~ U{u_{i-1}, ..., L' - Lc}
        skips[i] = rng.integers(skips[i - 1], target_window - length, endpoint=True)
    chunk_of = np.searchsorted(cuts, np.arange(length), side="right")
    return np.arange(length, dtype=np.int64) + skips[chunk_of]


@dataclass(frozen=True)
class Positions:
    """How training rows get their position ids. `target_window` is L' (PoSE) or the window the
    contiguous ids sit in; `draw` returns None for contiguous ids (the model's own 0..T-1)."""

    scheme: str = "contiguous"
    chunks: int = 2
    target_window: int = 0

    def draw(self, length: int, seed: int, item: int) -> np.ndarray | None:
        if self.scheme == "contiguous":
            return None
        assert self.scheme == "pose", self.scheme
        rng = np.random.default_rng([seed, item, 13])  # a stream of its own, next to the sampler's
        return pose_position_ids(length, self.target_window, self.chunks, rng)

    def fingerprint(self) -> dict[str, object]:
        """What determines the ids (a resumed run must match it); contiguous ids depend on nothing."""
        if self.scheme == "contiguous":
            return {"scheme": "contiguous"}
        return {"scheme": self.scheme, "chunks": self.chunks, "target_window": self.target_window}

    def describe(self, seq_len: int) -> dict[str, object]:
        """What training covers, for the summary and ropescale.json."""
        if self.scheme == "contiguous":
            return {"scheme": "contiguous", "position_ids": [0, seq_len - 1], "window": self.target_window}
        return {
            "scheme": "pose",
            "chunks": self.chunks,
            "target_window": self.target_window,
            "position_ids": [0, self.target_window - 1],
            "sequence_tokens": seq_len,
        }
