"""Distributed setup: the one place that reads RANK / WORLD_SIZE / LOCAL_RANK (and the test hook
ROPESCALE_TEST_KILL_AT, see `test_kill_point`).

Under `torchrun --nproc_per_node N` (any N, 1 included) the same command shards the model with FSDP2
(`fully_shard` on each decoder layer, then on the loss wrapper as the root) on a device mesh of --device's
type, over NCCL on GPUs and gloo on CPU. Without torchrun everything here is a no-op and the model stays a
plain module. State dicts are always full (unsharded, keyed by parameter name) and on the CPU, so a
checkpoint written by N processes on GPUs resumes in M, in one, or on a machine without a GPU.

Precision (one scheme for 1 and N processes): parameters, their gradients and the optimizer state are
float32 (FSDP2 gathers and reduce-scatters float32 shards: no `param_dtype`), and with --dtype auto on a GPU
the forward runs under bf16 autocast in both cases (matmuls and attention in bf16; norms, residual stream,
rotary cos/sin, softmax-CE and every reduction in float32).

Rank-0-only preparation (packing data, training the tokenizer) can take longer than NCCL's collective
timeout, so the other ranks wait for it with `wait_for_main`, on a gloo group whose timeout is
`WAIT_TIMEOUT`, not on a NCCL barrier. Every rank reads what rank 0 wrote (packed data, checkpoints), so a
multi-node run needs --out and --cache-dir on a filesystem that all nodes share.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .loss import decoder

WAIT_TIMEOUT = timedelta(days=7)  # rank 0 alone packing a large corpus or training a tokenizer
CUBLAS_WORKSPACE = ":4096:8"  # what deterministic cuBLAS needs (CUDA's reproducibility notes)

_wait_group: Any = None  # gloo group with WAIT_TIMEOUT, made by `init`
_before: tuple[bool, bool, bool] | None = None  # determinism settings `set_deterministic` replaced


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    launched: bool = False  # under torchrun: FSDP2 and a process group, even with one process

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        """The model is FSDP2-sharded and collectives run (torchrun, any world size)."""
        return self.launched


def under_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def init(device: str, deterministic: bool = False) -> Dist:
    """Join the process group when launched by torchrun (even with one process: FSDP2 is then exercised
    at world size 1); otherwise a single process. `deterministic`: see `set_deterministic`."""
    if deterministic:
        set_deterministic()
    dev = torch.device(device)
    if not under_torchrun():
        return Dist(0, 1, 0, dev)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = local_rank(rank, dev)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    global _wait_group
    _wait_group = dist.new_group(backend="gloo", timeout=WAIT_TIMEOUT)
    return Dist(rank, world, local, dev, launched=True)


def local_rank(rank: int, device: torch.device) -> int:
    """This process's index on its node: LOCAL_RANK (torchrun sets it), else on GPUs the global rank
    modulo the visible GPUs (so rank 9 of a 2 x 8-GPU job is cuda:1, not cuda:9)."""
    if "LOCAL_RANK" in os.environ:
        local = int(os.environ["LOCAL_RANK"])
    else:
        local = rank % torch.cuda.device_count() if device.type == "cuda" else rank
    if device.type == "cuda" and local >= torch.cuda.device_count():
        raise ValueError(
            f"--device cuda: local rank {local} but only {torch.cuda.device_count()} GPU(s) are visible; "
            "start at most that many processes per node"
        )
    return local


def set_deterministic() -> None:
    """Deterministic kernels (`--deterministic`): torch.use_deterministic_algorithms, which makes SDPA's
    flash and memory-efficient backward deterministic and excludes cuDNN attention, plus the cuBLAS
    workspace setting. Must run before the first CUDA matmul (cuBLAS reads the setting once)."""
    global _before
    if _before is None:
        cudnn = torch.backends.cudnn
        _before = (torch.are_deterministic_algorithms_enabled(), cudnn.benchmark, cudnn.deterministic)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def test_kill_point(name: str, step: int) -> None:
    """Tests only: SIGKILL this process at a named point when ROPESCALE_TEST_KILL_AT is `name:step`
    (points: start-up:0, once the run directory exists; data-cache:0, once the data is packed; step, after
    the step's metrics line; checkpoint-write, checkpoint-prune, final-save, final-swap), to prove that a
    kill anywhere resumes."""
    if os.environ.get("ROPESCALE_TEST_KILL_AT") == f"{name}:{step}":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def close(d: Dist) -> None:
    """Leave the process group and undo `set_deterministic` (a run in a longer-lived process)."""
    global _wait_group, _before
    if d.sharded and dist.is_initialized():
        dist.destroy_process_group()
    _wait_group = None
    if _before is not None:
        torch.use_deterministic_algorithms(_before[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = _before[1:]
        _before = None


def decoder_layers(lm: nn.Module) -> nn.ModuleList:
    layers = getattr(decoder(lm), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"model type {lm.config.model_type!r}: no decoder layer list to shard")
    return layers


def mesh(d: Dist) -> Any:
    """The 1-D device mesh of all ranks on --device's type. Explicit, because fully_shard's default mesh
    follows the machine's accelerator (torch._C._get_accelerator()), not --device: a `--device cpu` run on
    a machine with a GPU would otherwise put its shards on cuda:0."""
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(d.device.type, (d.world,))


def shard(root: nn.Module, lm: nn.Module, d: Dist) -> None:
    """fully_shard each decoder layer, then the root (embedding, final norm, output layer), on `mesh(d)`.
    Shards, gathered parameters and reduced gradients stay float32 (see the module's precision note)."""
    if not d.sharded:
        return
    from torch.distributed.fsdp import fully_shard

    on = mesh(d)
    for layer in decoder_layers(lm):
        fully_shard(layer, mesh=on)
    fully_shard(root, mesh=on)


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


def wait_for_main(d: Dist) -> None:
    """A barrier after work that rank 0 does alone (packing, the tokenizer): on the gloo wait group, so it
    does not hit NCCL's collective timeout however long that work takes."""
    if d.sharded:
        dist.barrier(group=_wait_group)


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


def to_cpu(obj: Any) -> Any:
    """`obj` (nested dicts, lists, tuples of tensors) with every tensor on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


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
    return to_cpu(state) if d.main else {}  # a single GPU's state would otherwise be CUDA tensors


def load_optimizer_state(
    root: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], d: Dist
) -> None:
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(root, optimizer, state, options=_options(d))
