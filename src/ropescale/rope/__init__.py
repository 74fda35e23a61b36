"""Pure RoPE math: one record per scaling method (formula, defaults, checks, transformers keys, serving
notes) and one registry. No nn.Module, no model config."""

from .methods import (
    METHODS,
    Method,
    RopeFreqs,
    base_inv_freq,
    compute_freqs,
    flag_number,
    method,
    ntk_base,
    proportional_freqs,
    reading,
    yarn_correction_range,
)
from .rotary import apply_rotary, cos_sin, dimension_table, rotate_half

__all__ = [
    "METHODS",
    "Method",
    "RopeFreqs",
    "apply_rotary",
    "base_inv_freq",
    "compute_freqs",
    "cos_sin",
    "dimension_table",
    "flag_number",
    "method",
    "ntk_base",
    "proportional_freqs",
    "reading",
    "rotate_half",
    "yarn_correction_range",
]
