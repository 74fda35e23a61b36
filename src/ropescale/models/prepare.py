"""Load a model, tokenizer and optional scaling in one step, checking what can be checked before the
(slow) weights are read."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from ..config import LoadOptions, RopeScaling
from .load import default_dtype, load_config, load_model, load_tokenizer
from .scale import rope_state, scale_config, scale_model


def torch_dtype(load: LoadOptions) -> torch.dtype:
    return default_dtype(load.device) if load.dtype == "auto" else getattr(torch, load.dtype)


def prepare_model(
    name: str,
    load: LoadOptions,
    rope: RopeScaling | None = None,
    check: Callable[[Any, RopeScaling], None] | None = None,
) -> tuple[Any, Any, RopeScaling]:
    """(model in eval mode, tokenizer, the scaling now in effect). `rope=None` keeps the model's own.
    `check(config, spec)` sees the config as it will be after scaling, before any weights are read (raise
    ValueError there to refuse a set-up without the slow load)."""
    config = load_config(name, load.trust_remote_code)
    planned = rope_state(config).spec  # refuses models without RoPE before any weights are read
    if rope is not None:
        config = copy.deepcopy(config)
        planned = scale_config(config, rope)  # validates the spec against this model
    if check is not None:
        check(config, planned)
    tokenizer = load_tokenizer(
        name, load.trust_remote_code
    )  # cheap, so a broken one fails before the weights
    model = load_model(name, torch_dtype(load), load.device, trust_remote_code=load.trust_remote_code)
    spec = scale_model(model, rope) if rope is not None else rope_state(model.config).spec
    return model, tokenizer, spec
