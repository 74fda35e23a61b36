"""Load a model, tokenizer and optional scaling in one step, checking what can be checked before the
(slow) weights are read."""

from __future__ import annotations

import copy
from typing import Any

import torch

from ..config import LoadOptions, RopeScaling
from .load import default_dtype, load_config, load_model, load_tokenizer
from .scale import rope_state, scale_config, scale_model


def torch_dtype(load: LoadOptions) -> torch.dtype:
    return default_dtype(load.device) if load.dtype == "auto" else getattr(torch, load.dtype)


def prepare_model(
    name: str, load: LoadOptions, rope: RopeScaling | None = None
) -> tuple[Any, Any, RopeScaling]:
    """(model in eval mode, tokenizer, the scaling now in effect). `rope=None` keeps the model's own."""
    config = load_config(name, load.trust_remote_code)
    rope_state(config)  # refuses models without RoPE before any weights are read
    if rope is not None:
        scale_config(copy.deepcopy(config), rope)  # validates the spec against this model
    model = load_model(name, torch_dtype(load), load.device, trust_remote_code=load.trust_remote_code)
    tokenizer = load_tokenizer(name, load.trust_remote_code)
    spec = scale_model(model, rope) if rope is not None else rope_state(model.config).spec
    return model, tokenizer, spec
