"""The training loop: one optimizer step = one global batch, split over processes and micro-batches.

Every rank draws the same global batch from the sampler and trains on its own contiguous rows. The loss of
a step is the summed token cross-entropy of the whole global batch divided by its number of scored
tokens, exactly, whatever the number of processes or micro-batches: each micro-batch's summed loss is
divided by the global token count (known on every rank, since every rank sees the global batch's labels)
and multiplied by the world size, which FSDP's gradient averaging divides out again.
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import outputs
from ..config import CheckpointOptions, OptimOptions
from ..data.sampler import BatchSampler, rows_per_sequence
from . import checkpoint, dist
from .dist import Dist


class NonFiniteLoss(ValueError):
    """The loss became NaN or inf (a ValueError so the CLI reports it in one line)."""


@dataclass
class Job:
    """What the loop needs; built by `TrainRun.build_job` (train/run.py)."""

    root: nn.Module  # CausalLMLoss, possibly FSDP-sharded
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: BatchSampler
    val: list[tuple[torch.Tensor, torch.Tensor]]
    d: Dist
    out: Path
    steps: int
    micro_batch_size: int
    optim: OptimOptions  # max_grad_norm (the optimizer and schedule are built from it by train/run.py)
    checkpoints: CheckpointOptions  # save_every, keep_checkpoints, eval_every
    fingerprint: dict[str, Any]
    autocast_dtype: torch.dtype | None = None
    step: int = 0
    tokens_seen: int = 0
    max_position: int = -1  # largest position id trained on so far (saved with the checkpoint)
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_row: dict[str, Any] = field(default_factory=dict)  # the metrics of the step resumed from


def _autocast(job: Job):
    if job.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(job.d.device.type, dtype=job.autocast_dtype)


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated since the last reset, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _my_rows(job: Job, n: int) -> slice:
    per = n // job.d.world
    return slice(job.d.rank * per, (job.d.rank + 1) * per)


def train_step(job: Job) -> float:
    """One optimizer step on the next global batch; returns its mean token loss. Raises NonFiniteLoss
    (before updating anything) if the loss is NaN or inf."""
    ids, labels, positions = job.sampler.next_batch()
    scored = int((labels[:, 1:] != -100).sum())
    job.max_position = max(job.max_position, ids.shape[1] - 1 if positions is None else int(positions.max()))
    mine = _my_rows(job, len(ids))
    ids, labels = ids[mine].to(job.d.device), labels[mine].to(job.d.device)
    if positions is not None:
        positions = positions[mine].to(job.d.device)
    total = torch.zeros((), device=job.d.device)
    # rows shorter than the packed sequences (passkey batches at --passkey-span): as many tokens per
    # micro-batch as usual, so more rows
    micro = job.micro_batch_size * rows_per_sequence(job.sampler.packed.seq_len, ids.shape[1])
    starts = range(0, len(ids), micro)
    for i, start in enumerate(starts):
        dist.set_sync(job.root, i == len(starts) - 1)
        part = slice(start, start + micro)
        with _autocast(job):
            loss_sum, _ = job.root(ids[part], labels[part], None if positions is None else positions[part])
        (loss_sum * (job.d.world / max(scored, 1))).backward()
        total += loss_sum.detach().float()
    loss = float(dist.all_sum(total, job.d)) / max(scored, 1)
    if not math.isfinite(loss):
        job.optimizer.zero_grad(set_to_none=True)
        raise NonFiniteLoss(
            f"loss is {loss} at step {job.step + 1}: training stopped before this update; {_advice(job)}"
        )
    grads = [p for p in job.root.parameters() if p.grad is not None]
    if job.optim.max_grad_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(grads, job.optim.max_grad_norm)
    else:  # measured anyway: a non-finite gradient would make the weights NaN before the loss shows it
        norm = torch.nn.utils.get_total_norm([p.grad for p in grads])
    norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
    if not math.isfinite(norm):
        job.optimizer.zero_grad(set_to_none=True)
        raise NonFiniteLoss(
            f"gradient norm is {norm} at step {job.step + 1}: training stopped before this update; {_advice(job)}"
        )
    job.optimizer.step()
    job.scheduler.step()
    job.optimizer.zero_grad(set_to_none=True)
    return loss


def _advice(job: Job) -> str:
    """Where a stopped run can continue from. Every checkpoint holds finite weights (`save_checkpoint`
    refuses others), so the newest intact one is good."""
    last, _ = checkpoint.newest_intact(job.out)
    where = (
        f"the last good checkpoint is {last} (--resume continues from it)"
        if last
        else "no checkpoint was saved"
    )
    return f"{where}. Try a lower --lr or --max-grad-norm 1"


@torch.no_grad()
def evaluate(job: Job) -> float | None:
    """Mean token loss on the validation batches (None without validation data). Batches are padded with
    fully masked rows to a multiple of processes x micro-batch, so every rank runs the same number of
    forwards (FSDP's collectives need that) and the padding adds nothing to the loss."""
    if not job.val:
        return None
    job.root.eval()
    total = torch.zeros((), device=job.d.device)
    count = 0
    unit = job.d.world * job.micro_batch_size
    for ids, labels in job.val:
        count += int((labels[:, 1:] != -100).sum())
        pad = -len(ids) % unit
        ids = torch.cat([ids, ids[:1].expand(pad, -1)])
        labels = torch.cat([labels, torch.full_like(labels[:1], -100).expand(pad, -1)])
        mine = _my_rows(job, len(ids))
        for start in range(mine.start, mine.stop, job.micro_batch_size):
            part = slice(start, start + job.micro_batch_size)
            with _autocast(job):
                total += job.root(ids[part].to(job.d.device), labels[part].to(job.d.device))[0].float()
    job.root.train()
    return float(dist.all_sum(total, job.d)) / max(count, 1)


def save_checkpoint(job: Job) -> None:
    """All ranks gather the full state; rank 0 writes it."""
    model = dist.model_state(job.root, job.d)
    optim = dist.optimizer_state(job.root, job.optimizer, job.d)
    rngs = [checkpoint.rng_state(job.d.device)]
    if job.d.sharded:
        gathered: list[Any] = [None] * job.d.world
        torch.distributed.all_gather_object(gathered, rngs[0])
        rngs = gathered
    bad = next((k for k, v in model.items() if v.is_floating_point() and not v.isfinite().all()), None)
    bad = dist.broadcast(bad, job.d)
    if bad is not None:  # never a checkpoint that --resume could not continue from
        raise NonFiniteLoss(
            f"weights are not finite after step {job.step} ({bad}): not saved as a checkpoint; {_advice(job)}"
        )
    if job.d.main:
        trainer = {
            "step": job.step,
            "tokens_seen": job.tokens_seen,
            "max_position": job.max_position,
            "scheduler": job.scheduler.state_dict(),
            "sampler": job.sampler.state_dict(),
            "fingerprint": job.fingerprint,
        }
        checkpoint.save(job.out, job.step, model, optim, trainer, rngs, job.checkpoints.keep_checkpoints)
    dist.barrier(job.d)


def restore(job: Job, path: Path) -> None:
    """Continue from a checkpoint: refuses a different rope spec, data or batch layout."""
    model, optim, trainer, rngs = checkpoint.load(path)
    checkpoint.check_fingerprint(trainer["fingerprint"], job.fingerprint, path)
    dist.load_model_state(job.root, model, job.d)
    dist.load_optimizer_state(job.root, job.optimizer, optim, job.d)
    job.scheduler.load_state_dict(trainer["scheduler"])
    job.sampler.load_state_dict(trainer["sampler"])
    job.step, job.tokens_seen = int(trainer["step"]), int(trainer["tokens_seen"])
    job.max_position = int(trainer.get("max_position", -1))
    checkpoint.set_rng_state(rngs[job.d.rank] if len(rngs) == job.d.world else rngs[0], job.d.device)
    metrics = job.out / "metrics.jsonl"
    if metrics.is_file():  # drop lines from after the checkpoint (they will be redone)
        rows = [(line, row) for line, row in _metrics(metrics) if row["step"] <= job.step]
        job.resumed_row = rows[-1][1] if rows else {}
        if job.d.main:  # a new file, not rewritten in place (a resumed finished run links the old one)
            outputs.write_text(metrics, "".join(line + "\n" for line, _ in rows))


def _metrics(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, row) of metrics.jsonl; a last line cut short by a kill is dropped, other damage is refused."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    rows = []
    for i, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            rows.append((line, {"step": int(row["step"]), **row}))
        except (ValueError, KeyError, TypeError):
            if i < len(lines):
                raise ValueError(
                    f"--resume: {path} line {i} is damaged; delete that line or use a new --out"
                ) from None
    return rows


def _one_step(job: Job, tokens_per_step: int) -> dict[str, Any]:
    """One optimizer step and its metrics row (validation loss at eval_every and at the last step)."""
    if job.d.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(job.d.device)
    t0 = time.perf_counter()
    lr = job.scheduler.get_last_lr()[0]
    loss = train_step(job)
    elapsed = time.perf_counter() - t0
    job.step += 1
    job.tokens_seen += tokens_per_step
    row = {
        "step": job.step,
        "loss": loss,
        "lr": lr,
        "tokens_per_s": tokens_per_step / elapsed,
        "peak_memory_mb": peak_memory_mb(job.d.device),
        "tokens": job.tokens_seen,
    }
    if job.checkpoints.eval_every and job.step % job.checkpoints.eval_every == 0 and job.step < job.steps:
        row["val_loss"] = evaluate(job)
    if job.step == job.steps:
        row["val_loss"] = evaluate(job)
    return row


def fit(job: Job, progress: bool = True) -> dict[str, Any]:
    """Train from job.step to job.steps; returns the final train and validation losses and speeds."""
    from tqdm.auto import tqdm

    tokens_per_step = job.sampler.batch_size * job.sampler.packed.seq_len
    bar = tqdm(
        total=job.steps,
        initial=job.step,
        disable=not (progress and job.d.main),
        unit="step",
        dynamic_ncols=True,
    )
    metrics = (job.out / "metrics.jsonl").open("a") if job.d.main else None
    job.root.train()
    start, val = time.perf_counter(), job.resumed_row.get("val_loss")
    loss = job.resumed_row.get("loss", math.nan)  # a run resumed at its last step trains no further
    try:
        while job.step < job.steps:
            row = _one_step(job, tokens_per_step)
            if job.step == job.steps:
                val = row["val_loss"]
            job.history.append(row)
            if metrics is not None:
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
            dist.test_kill_point("step", job.step)  # tests: a kill between checkpoints
            loss = row["loss"]
            bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{row['tokens_per_s']:.0f}", refresh=False)
            bar.update(1)
            if job.checkpoints.save_every and (
                job.step % job.checkpoints.save_every == 0 or job.step == job.steps
            ):
                save_checkpoint(job)
    except BaseException:
        bar.leave = False  # the error is the one line left on stderr
        raise
    finally:
        bar.close()
        if metrics is not None:
            metrics.close()
    wall = time.perf_counter() - start
    return {
        "steps": job.step,
        "final_loss": loss,
        "val_loss": val,
        "wall_s": wall,
        "tokens_per_s": tokens_per_step * len(job.history) / wall if job.history else None,
        "peak_memory_mb": max((r["peak_memory_mb"] for r in job.history), default=None),
        "max_position_id": job.max_position,
    }
