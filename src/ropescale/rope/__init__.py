"""Pure RoPE math: one function per scaling method and one registry. No nn.Module, no model config."""

from .methods import METHODS, RopeFreqs, base_inv_freq, compute_freqs, ntk_base, yarn_correction_range
from .rotary import apply_rotary, cos_sin, dimension_table, rotate_half

__all__ = [
    "METHODS",
    "RopeFreqs",
    "apply_rotary",
    "base_inv_freq",
    "compute_freqs",
    "cos_sin",
    "dimension_table",
    "ntk_base",
    "rotate_half",
    "yarn_correction_range",
]
