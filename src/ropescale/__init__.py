"""ropescale: extend the context window of RoPE language models (Position Interpolation and successors).

The stable API (see docs/api.md): ``RopeScaling`` (a scaling), ``load_model`` / ``scale_model`` (in memory),
``extend`` (write a scaled checkpoint), ``inspect``, ``perplexity`` and ``passkey`` (the evaluations; each
returns the dict the CLI writes as JSON), and ``TINY_MODEL`` (the small checkpoint shipped for trying them).
"""

from importlib.metadata import version

from .api import TINY_MODEL, extend, inspect, load_model, passkey, perplexity, scale_model
from .config import METHOD_NAMES, LoadOptions, RopeScaling
from .rope import METHODS, RopeFreqs, compute_freqs

__version__ = version(__name__)  # pyproject.toml's, as installed

__all__ = [
    "METHODS",
    "METHOD_NAMES",
    "TINY_MODEL",
    "LoadOptions",
    "RopeFreqs",
    "RopeScaling",
    "__version__",
    "compute_freqs",
    "extend",
    "inspect",
    "load_model",
    "passkey",
    "perplexity",
    "scale_model",
]
