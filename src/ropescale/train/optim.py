"""AdamW and the learning-rate schedule.

The paper's recipe (arXiv 2306.15595, section 3.1): AdamW with betas (0.9, 0.95), weight decay 0, linear warmup over
20 steps starting from 10% of the peak rate, then (unstated in the paper, presumably) constant. `cosine`
decays to `min_lr_ratio` of the peak after the warmup, which suits pre-training from scratch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SCHEDULES = ("constant", "cosine")


def lr_factor(
    step: int, warmup_steps: int, warmup_start: float, schedule: str, total_steps: int, min_ratio: float
) -> float:
    """Multiplier on the peak rate for optimizer step `step` (0-based)."""
    if step < warmup_steps:
        return warmup_start + (1.0 - warmup_start) * step / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(
    model: nn.Module, lr: float, betas: tuple[float, float], weight_decay: float
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; weight decay applies to matrices only (not norms or biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, eps=1e-8)


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    warmup_start: float,
    schedule: str,
    total_steps: int,
    min_ratio: float,
) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        return lr_factor(step, warmup_steps, warmup_start, schedule, total_steps, min_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
