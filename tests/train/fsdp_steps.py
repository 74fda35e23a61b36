"""A few training steps of a small random LLaMA through ropescale's loop, as a script (not a test): run it
with plain python (one process, no FSDP) or under torchrun (FSDP2, any number of processes) and compare.

    python fsdp_steps.py OUT.json [--autocast] [--old-scheme] [--fake-gpu-machine] [--default-mesh]

--autocast: bf16 autocast on the CPU (the GPU scheme, measured here). --old-scheme: FSDP2 with
MixedPrecisionPolicy(param_dtype=bf16) and no autocast (what N GPUs did before). --fake-gpu-machine:
torch._C._get_accelerator() says cuda, as on a GPU machine. --default-mesh: fully_shard without mesh=.
Writes {"losses": [...], "params": {"type", "dtype", "device"}} and the final weights (OUT.safetensors)
from rank 0.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from ropescale.config import CheckpointOptions, OptimOptions
from ropescale.models.tiny import build_tiny, tiny_config
from ropescale.train import dist, loop
from ropescale.train.loss import CausalLMLoss
from ropescale.train.optim import make_optimizer, make_scheduler

STEPS, BATCH, SEQ, MICRO, LR = 4, 4, 48, 1, 1e-2


class _Packed:
    seq_len = SEQ


class _Sampler:
    """The same fixed global batches on every rank."""

    batch_size = BATCH
    packed = _Packed()

    def __init__(self, vocab: int):
        g = torch.Generator().manual_seed(1)
        self.batches = [torch.randint(0, vocab, (BATCH, SEQ), generator=g) for _ in range(STEPS)]
        self.i = 0

    def next_batch(self):
        ids = self.batches[self.i]
        self.i += 1
        return ids, ids.clone(), None


def main(argv: list[str]) -> None:
    out, flags = Path(argv[0]), set(argv[1:])
    torch.set_num_threads(1)
    if "--fake-gpu-machine" in flags:
        torch._C._get_accelerator = lambda: torch.device("cuda")
    d = dist.init("cpu")
    config = tiny_config(512, window=SEQ, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                         intermediate_size=128)  # fmt: skip
    lm = build_tiny(config, seed=0)
    root = CausalLMLoss(lm)
    if "--old-scheme" in flags and d.sharded:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for layer in dist.decoder_layers(lm):
            fully_shard(layer, mp_policy=policy, mesh=dist.mesh(d))
        fully_shard(root, mp_policy=policy, mesh=dist.mesh(d))
    elif "--default-mesh" in flags and d.sharded:
        from torch.distributed.fsdp import fully_shard

        for layer in dist.decoder_layers(lm):
            fully_shard(layer)
        fully_shard(root)
    else:
        dist.shard(root, lm, d)
    optimizer = make_optimizer(root, LR, (0.9, 0.95), 0.0)
    job = loop.Job(
        root=root, optimizer=optimizer, scheduler=make_scheduler(optimizer, 0, 1.0, "constant", STEPS, 0.1),
        sampler=_Sampler(config.vocab_size), val=[], d=d, out=out.parent, steps=STEPS,
        micro_batch_size=MICRO, optim=OptimOptions(max_grad_norm=0.0), fingerprint={},
        checkpoints=CheckpointOptions(save_every=0, keep_checkpoints=1),
        autocast_dtype=torch.bfloat16 if "--autocast" in flags and "--old-scheme" not in flags else None,
    )  # fmt: skip
    losses = [loop.train_step(job) for _ in range(STEPS)]
    p = next(root.parameters())
    local = p.to_local() if hasattr(p, "to_local") else p
    state = dist.model_state(root, d)
    if d.main:
        params = {"type": type(p).__name__, "dtype": str(p.dtype), "device": str(local.device)}
        save_file({k: v.clone() for k, v in state.items()}, str(out.with_suffix(".safetensors")))
        out.write_text(json.dumps({"losses": losses, "params": params, "world": d.world}))
    if "--old-scheme" in flags:  # its gloo shutdown hangs after the result is written: leave at once
        sys.stdout.flush()
        os._exit(0)
    dist.close(d)


if __name__ == "__main__":
    main(sys.argv[1:])
