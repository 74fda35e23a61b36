"""Pure RoPE math: one record per scaling method (formula, defaults, checks, transformers keys, serving
notes) and one registry. No nn.Module, no model config."""

from .base_lower_bound import (
    base_bound,
    first_violation,
    format_base_bound,
    format_base_bound_line,
    similarity_margin,
    smallest_base,
)
from .methods import (
    METHODS,
    Method,
    RopeFreqs,
    base_inv_freq,
    compute_freqs,
    flag_number,
    method,
    ntk_base,
    reading,
    yarn_correction_range,
)
from .rotary import apply_rotary, cos_sin, dimension_table, rotate_half

__all__ = [
    "METHODS",
    "Method",
    "RopeFreqs",
    "apply_rotary",
    "base_bound",
    "base_inv_freq",
    "compute_freqs",
    "cos_sin",
    "dimension_table",
    "first_violation",
    "flag_number",
    "format_base_bound",
    "format_base_bound_line",
    "method",
    "ntk_base",
    "reading",
    "rotate_half",
    "similarity_margin",
    "smallest_base",
    "yarn_correction_range",
]
