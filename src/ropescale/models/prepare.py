"""Load a model, tokenizer and optional scaling in one step, checking what can be checked before the
(slow) weights are read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..config import LoadOptions, RopeScaling
from .load import default_dtype, load_config, load_model, load_tokenizer
from .scale import ScalingPlan, current_plan, plan_scaling, rope_state, scale_model


def torch_dtype(load: LoadOptions) -> torch.dtype:
    return default_dtype(load.device) if load.dtype == "auto" else getattr(torch, load.dtype)


def prepare_model(
    name: str,
    load: LoadOptions,
    rope: RopeScaling | None = None,
    check: Callable[[ScalingPlan], None] | None = None,
) -> tuple[Any, Any, RopeScaling]:
    """(model in eval mode, tokenizer, the scaling now in effect). `rope=None` keeps the model's own.
    The scaling is planned (and validated against the model) from its config before any weights are read;
    `check(plan)` sees that plan (raise ValueError there to refuse a set-up without the slow load)."""
    config = load_config(name, load.trust_remote_code)
    # refuses models without RoPE and specs that do not fit the model, before any weights are read
    plan = (
        current_plan(config)
        if rope is None
        else plan_scaling(config, rope, allow_smaller_window=load.allow_smaller_window)
    )
    if check is not None:
        check(plan)
    tokenizer = load_tokenizer(
        name, load.trust_remote_code
    )  # cheap, so a broken one fails before the weights
    model = load_model(name, torch_dtype(load), load.device, trust_remote_code=load.trust_remote_code)
    spec = scale_model(model, plan) if rope is not None else rope_state(model.config).spec
    return model, tokenizer, spec
