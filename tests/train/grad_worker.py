"""One training step and one validation pass of `ropescale.train.loop`, with the gradients captured before
the optimizer could touch them. Imported by test_gradients.py (one process) and run by it under torchrun
(two processes, FSDP2 on gloo): `python grad_worker.py OUT.pt`.

The global batch scores very different numbers of tokens per row (answer-only passkey rows, summary-only
rows, whole rows), so micro-batches and ranks each hold a different share of the batch's tokens: a loss
divided by a micro-batch's or a rank's own token count, or a missing world-size factor, changes the
gradient, which the weights after Adam (invariant to a uniform gradient scale) would not show.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import torch

SEQ = 24
MICRO = 2
# scored targets per row (labels at positions 1.. of the row): 3, 3 (answer-only), 23, 23 (whole rows),
# 10, 10 (a summary), 1, 1: 52 tokens in rows 0-3 and 22 in rows 4-7
SCORED = [3, 3, 23, 23, 10, 10, 1, 1]
# validation: 5 and 3 sequences, neither a multiple of processes x micro-batch (2 or 4), so both are padded
VAL_ROWS = [5, 3]


def build_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=64, attn_implementation="sdpa",
    )  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def train_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """ids, labels: (8, SEQ); row r scores its last SCORED[r] tokens."""
    ids = torch.randint(0, 96, (len(SCORED), SEQ), generator=torch.Generator().manual_seed(1))
    labels = torch.full_like(ids, -100)
    for r, n in enumerate(SCORED):
        labels[r, SEQ - n :] = ids[r, SEQ - n :]
    labels[2] = ids[2]  # a whole text row: position 0 carries a label too, but it is no target
    return ids, labels


def val_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(2)
    out = []
    for rows in VAL_ROWS:
        ids = torch.randint(0, 96, (rows, SEQ), generator=gen)
        labels = ids.clone()
        labels[0, : SEQ // 2] = -100  # a masked prompt, so tokens per row differ
        out.append((ids, labels))
    return out


class CaptureGrads(torch.optim.SGD):
    """An optimizer whose step records the full (unsharded) gradients and changes nothing."""

    def __init__(self, named):
        super().__init__([p for _, p in named], lr=0.0)
        self.named = named
        self.grads: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def step(self, closure=None):
        for name, p in self.named:
            if p.grad is not None:
                g = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
                self.grads[name.removeprefix("lm.")] = g.detach().cpu().clone()


class FixedSampler:
    """The loop's view of a sampler: the same global batch on every rank, contiguous positions."""

    def __init__(self, ids, labels):
        self.batch = (ids, labels, None)
        self.packed = SimpleNamespace(seq_len=ids.shape[1])
        self.batch_size = len(ids)

    def next_batch(self):
        return self.batch


def one_step(d, out: Path) -> dict:
    """Gradients of one train_step and the validation loss, on this process group."""
    from ropescale.config import CheckpointOptions, OptimOptions
    from ropescale.train import dist, loop
    from ropescale.train.loss import CausalLMLoss

    lm = build_model()
    root = CausalLMLoss(lm)
    dist.shard(root, lm, d)
    optimizer = CaptureGrads(list(root.named_parameters()))
    job = loop.Job(
        root=root, optimizer=optimizer, scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0),
        sampler=FixedSampler(*train_batch()), val=val_batches(), d=d, out=out, steps=1,
        micro_batch_size=MICRO, optim=OptimOptions(max_grad_norm=0.0), fingerprint={},
        checkpoints=CheckpointOptions(save_every=0, keep_checkpoints=1),
    )  # fmt: skip
    loss = loop.train_step(job)
    return {"loss": loss, "val_loss": loop.evaluate(job), "grads": optimizer.grads}


def main(out: str) -> None:
    from ropescale.train import dist

    torch.set_num_threads(1)
    d = dist.init("cpu")
    try:
        result = one_step(d, Path(out).parent)
        if d.main:
            torch.save(result, out)
    finally:
        dist.close(d)


if __name__ == "__main__":
    main(sys.argv[1])
