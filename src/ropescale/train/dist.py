"""Distributed setup: the one place that reads RANK / WORLD_SIZE / LOCAL_RANK (and the test hook
ROPESCALE_TEST_KILL_AT, see `test_kill_point`).

Under `torchrun --nproc_per_node N` the same command shards the model with FSDP2 (`fully_shard` on each
decoder layer, then on the loss wrapper as the root), over NCCL on GPUs and gloo on CPU. Without torchrun
everything here is a no-op and the model stays a plain module. State dicts are always full (unsharded,
keyed by parameter name), so a checkpoint written by N processes resumes in M, or in one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.world > 1


def init(device: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = torch.device(device)
    if world == 1:
        return Dist(0, 1, 0, dev)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local, dev)


def test_kill_point(name: str, step: int) -> None:
    """Tests only: SIGKILL this process at a named point when ROPESCALE_TEST_KILL_AT is `name:step`
    (points: step, after the step's metrics line; checkpoint-write, checkpoint-prune, final-save,
    final-swap), to prove that a kill anywhere resumes."""
    if os.environ.get("ROPESCALE_TEST_KILL_AT") == f"{name}:{step}":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def close(d: Dist) -> None:
    if d.sharded and dist.is_initialized():
        dist.destroy_process_group()


def decoder_layers(lm: nn.Module) -> nn.ModuleList:
    body = getattr(lm, lm.base_model_prefix)
    layers = getattr(body, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"model type {lm.config.model_type!r}: no decoder layer list to shard")
    return layers


def shard(root: nn.Module, lm: nn.Module, d: Dist, compute_dtype: torch.dtype | None) -> None:
    """fully_shard each decoder layer, then the root (embedding, final norm, output layer). With a
    compute dtype, parameters are gathered in it and gradients reduced in float32."""
    if not d.sharded:
        return
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    kwargs: dict[str, Any] = {}
    if compute_dtype is not None:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    for layer in decoder_layers(lm):
        fully_shard(layer, **kwargs)
    fully_shard(root, **kwargs)


def set_sync(root: nn.Module, sync: bool) -> None:
    """Skip the gradient reduce-scatter on all but the last micro-batch of an accumulated step."""
    if hasattr(root, "set_requires_gradient_sync"):
        root.set_requires_gradient_sync(sync)


def all_sum(value: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.sharded:
        value = value.clone()
        dist.all_reduce(value)
    return value


def barrier(d: Dist) -> None:
    if d.sharded:
        dist.barrier()


def broadcast(obj: Any, d: Dist) -> Any:
    """Rank 0's value of a small picklable object, on every rank."""
    if not d.sharded:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _options(d: Dist, **kw: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=d.sharded, **kw)


def model_state(root: nn.Module, d: Dist) -> dict[str, torch.Tensor]:
    """The full model state dict on rank 0 (CPU tensors; other ranks get an empty dict). All ranks call."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(root, options=_options(d))
    return {k: v.detach().cpu() for k, v in state.items()} if d.main else {}


def load_model_state(root: nn.Module, state: dict[str, torch.Tensor], d: Dist) -> None:
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(root, state, options=_options(d))


def optimizer_state(root: nn.Module, optimizer: torch.optim.Optimizer, d: Dist) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    state = get_optimizer_state_dict(root, optimizer, options=_options(d))
    return state if d.main else {}


def load_optimizer_state(
    root: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], d: Dist
) -> None:
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(root, optimizer, state, options=_options(d))
