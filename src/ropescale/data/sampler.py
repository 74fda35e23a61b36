"""Global batches of training sequences: shuffled packed sequences, optionally mixed with passkey documents.

The sampler is a pure function of (seed, its position), so every distributed rank computes the same global
batch and takes its own rows, and a resumed run continues from the saved position with the same batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch

from .packing import Packed
from .passkey import PasskeyMaker
from .positions import Positions


@dataclass
class SamplerState:
    """Where the sampler is: the epoch over the packed sequences, the next index into that epoch's
    permutation, and the number of items (sequences or passkey documents) handed out so far."""

    epoch: int = 0
    cursor: int = 0
    items: int = 0


def to_labels(ids: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Labels for transformers-style causal LM loss: the ids, with -100 where the mask is false."""
    labels = ids.astype(np.int64)
    if mask is not None:
        labels = np.where(mask, labels, -100)
    return labels


def rows_per_sequence(seq_len: int, row_len: int) -> int:
    """How many rows of `row_len` tokens stand in for one packed sequence of `seq_len` (passkey rows at
    --passkey-span: a batch, and each micro-batch of it, then holds the usual number of tokens)."""
    return max(1, seq_len // row_len)


class Batch(NamedTuple):
    """One global batch: input_ids and labels (n, T) int64, and position ids (n, T) int64 or None for
    the model's own contiguous 0..T-1."""

    ids: torch.Tensor
    labels: torch.Tensor
    positions: torch.Tensor | None


class BatchSampler:
    """Yields global batches (input_ids, labels, position ids), each (batch_size, seq_len) int64."""

    def __init__(
        self,
        packed: Packed,
        batch_size: int,
        seed: int = 0,
        passkey: PasskeyMaker | tuple[PasskeyMaker, ...] | None = None,
        passkey_fraction: float = 0.0,
        passkey_batches: bool = False,
        positions: Positions | None = None,
    ):
        """`passkey_batches`: passkey documents come as whole batches (a `passkey_fraction` of the batches)
        instead of single rows, so a loss on only their answers is not diluted by language-modelling
        tokens (the loss is a mean over the batch's scored tokens). When the passkey rows are shorter than
        the packed sequences (`--passkey-span`), such a batch holds proportionally more of them: the same
        tokens per step, `seq_len // span` times the documents. With several makers (whole batches only),
        each passkey batch takes one of them at random, in equal shares. `positions` (PoSE) gives every
        row, passkey rows included, its own position ids from a stream seeded by (seed, item index)."""
        self.packed, self.batch_size, self.seed = packed, batch_size, seed
        makers = passkey if isinstance(passkey, tuple) else (passkey,) if passkey is not None else ()
        if len(makers) > 1 and not passkey_batches:
            raise ValueError("several passkey makers need passkey_batches (whole passkey batches)")
        self.makers, self.passkey_fraction = makers, passkey_fraction
        self.passkey_batches = passkey_batches
        self.positions = positions or Positions()
        self.state = SamplerState()
        self._perm: tuple[int, np.ndarray] | None = None

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._perm = (epoch, rng.permutation(len(self.packed.train)))
        return self._perm[1]

    def _item(
        self, passkey: bool | None = None, maker: PasskeyMaker | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        ids, labels = self._tokens(passkey, maker)
        return ids, labels, self.positions.draw(len(ids), self.seed, self.state.items - 1)

    def _tokens(
        self, passkey: bool | None = None, maker: PasskeyMaker | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        s = self.state
        rng = np.random.default_rng([self.seed, s.items, 7])  # per-item stream: no hidden state to save
        s.items += 1
        draw = rng.random()
        if passkey is None:
            passkey = bool(self.makers) and draw < self.passkey_fraction
        if passkey:
            ids, mask = (maker or self.makers[0]).make(rng)
            return ids, to_labels(ids, mask)
        if s.cursor >= len(self.packed.train):
            s.epoch, s.cursor = s.epoch + 1, 0
        index = int(self._permutation(s.epoch)[s.cursor])
        s.cursor += 1
        mask = None if self.packed.train_mask is None else self.packed.train_mask[index]
        ids = np.asarray(self.packed.train[index])
        return ids.astype(np.int64), to_labels(ids, mask)

    def next_batch(self) -> Batch:
        passkey, maker, n = None, None, self.batch_size
        if self.passkey_batches:
            rng = np.random.default_rng([self.seed, self.state.items, 11])
            passkey = bool(self.makers) and rng.random() < self.passkey_fraction
            if passkey:
                maker = self.makers[int(rng.integers(len(self.makers)))]
                n *= rows_per_sequence(self.packed.seq_len, maker.seq_len)
        rows = [self._item(passkey, maker) for _ in range(n)]
        ids = torch.from_numpy(np.stack([r[0] for r in rows]))
        labels = torch.from_numpy(np.stack([r[1] for r in rows]))
        positions = None if rows[0][2] is None else torch.from_numpy(np.stack([r[2] for r in rows]))
        return Batch(ids, labels, positions)

    def state_dict(self) -> dict[str, int]:
        return asdict(self.state)

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.state = SamplerState(**state)


def validation_batches(
    packed: Packed, batch_size: int, max_sequences: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first `max_sequences` validation sequences in batches, in order (the same every evaluation)."""
    out = []
    n = min(len(packed.val), max_sequences)
    for start in range(0, n, batch_size):
        ids = np.asarray(packed.val[start : start + batch_size]).astype(np.int64)
        mask = None if packed.val_mask is None else np.asarray(packed.val_mask[start : start + batch_size])
        out.append((torch.from_numpy(ids), torch.from_numpy(to_labels(ids, mask))))
    return out
