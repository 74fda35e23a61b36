"""Knobs of `ropescale theory` (paper section 4)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .base import LoadOptions, RopeScaling, at_least, knob, resolve_path

THEORY_FIT_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class TheoryConfig:
    """ropescale theory: the paper's interpolation vs extrapolation bounds on a model, and its figures."""

    model: str | None = knob(
        None,
        "model to analyse (local directory, .gguf file, hub id, or smollm2-135m); optional with --figures",
        positional=True,
    )
    figures: Path | None = knob(
        None, "write the paper's Figure 2 and Figure 5 (PNG, plus JSON with the numbers) into this directory"
    )
    rope: RopeScaling | None = knob(None, "the scaling to analyse (default: the model's own)")
    load: LoadOptions = knob(LoadOptions(), "loading")
    text: Path | None = knob(
        None, "sample text file for the q/k vectors (default: Python's own textwrap.py, present everywhere)"
    )
    tokens: int = knob(
        512, "sample-text tokens to run through the model (at most the window it was trained on)"
    )
    pairs: int = knob(64, "number of sampled (query, key) position pairs whose a(s) is measured per head")
    seed: int = knob(0, "seed for the sampled pairs and the Figure 2 targets")
    out: Path | None = knob(None, "also write the model report as JSON to this file")
    json: bool = knob(False, "print machine-readable JSON instead of tables")
    head_dim: int = knob(128, "figures: head dimension d (paper: 128, LLaMA 7B)")
    base: float = knob(10000.0, "figures: RoPE base c (paper: 10000)")
    window: int = knob(2048, "figures: original window L (paper: 2048)")
    eps: float = knob(
        0.0, "figures: ridge eps of the Figure 2 fit (0 = plain least squares, as in the paper)"
    )
    fit_dtype: str = knob("float64", "figures: precision of the Figure 2 solve", choices=THEORY_FIT_DTYPES)
    overwrite: bool = knob(False, "replace --figures / --out if they exist")

    def __post_init__(self) -> None:
        if self.model is None and self.figures is None:
            raise ValueError("give a MODEL to analyse, --figures DIR, or both")
        at_least(self, 1, "pairs", "head_dim", "window")
        at_least(self, 2, "tokens")
        if self.head_dim % 2:
            raise ValueError(f"--head-dim must be even, got {self.head_dim}")
        if not (isinstance(self.base, (int, float)) and math.isfinite(self.base) and self.base > 1):
            raise ValueError(f"--base must be a number > 1, got {self.base!r}")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"--eps must be a number >= 0, got {self.eps!r}")
        if self.fit_dtype not in THEORY_FIT_DTYPES:
            raise ValueError(
                f"--fit-dtype must be one of {', '.join(THEORY_FIT_DTYPES)}, got {self.fit_dtype!r}"
            )
        for name in ("figures", "out", "text"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, resolve_path(value))
