"""Load and scale transformers models. All transformers-version handling lives in `compat`."""

from .load import load_config, load_model, load_tokenizer, resolve
from .scale import NotRopeModelError, check_rotary, rope_state, scale_config, scale_model

__all__ = [
    "NotRopeModelError",
    "check_rotary",
    "load_config",
    "load_model",
    "load_tokenizer",
    "resolve",
    "rope_state",
    "scale_config",
    "scale_model",
]
