"""ropescale: extend the context window of RoPE language models (Position Interpolation and successors)."""

from .config import METHOD_NAMES, RopeScaling
from .rope import METHODS, RopeFreqs, compute_freqs

__version__ = "0.1.0"

__all__ = ["METHODS", "METHOD_NAMES", "RopeFreqs", "RopeScaling", "__version__", "compute_freqs"]
