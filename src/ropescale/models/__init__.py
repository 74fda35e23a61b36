"""Load and scale transformers models. All transformers-version handling lives in `compat`."""

from .load import load_config, load_model, load_tokenizer, resolve
from .scale import (
    NotRopeModelError,
    ScalingPlan,
    check_rotary,
    plan_scaling,
    rope_state,
    scale_config,
    scale_model,
)

__all__ = [
    "NotRopeModelError",
    "ScalingPlan",
    "check_rotary",
    "load_config",
    "load_model",
    "load_tokenizer",
    "plan_scaling",
    "resolve",
    "rope_state",
    "scale_config",
    "scale_model",
]
