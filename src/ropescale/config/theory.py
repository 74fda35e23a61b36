"""Knobs of `ropescale theory` (paper section 4)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..knobs import SEED_MAX, check_knobs, knob
from ..rope.resolution import check_resolution
from ..rope.spec import RopeScaling
from .base import LoadOptions, resolve_path

THEORY_FIT_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class TheoryConfig:
    """ropescale theory: the paper's interpolation vs extrapolation bounds on a model, and its figures."""

    model: str | None = knob(
        None,
        "model to analyse (local directory, .gguf file, hub id, or a built-in: tiny, smollm2-135m); optional with --figures",
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
        512,
        "sample-text tokens to run through the model (at most the window it was trained on; 2..131072)",
        at_least=2,
        at_most=131_072,  # the documented ranges: theory's tables are held in memory
    )
    pairs: int = knob(
        64,
        "number of sampled (query, key) position pairs whose a(s) is measured per head (1..100000)",
        at_least=1,
        at_most=100_000,
    )
    seed: int = knob(
        0, "seed for the sampled pairs and the Figure 2 targets, 0..2**32-1", at_least=0, at_most=SEED_MAX
    )
    out: Path | None = knob(None, "also write the model report as JSON to this file")
    json: bool = knob(False, "print machine-readable JSON instead of tables")
    head_dim: int = knob(
        128, "figures: head dimension d, even, 2..1024 (paper: 128, LLaMA 7B)", at_least=1, at_most=1024
    )
    base: float = knob(10000.0, "figures: RoPE base c, in (1, 1e12] (paper: 10000)")
    window: int = knob(2048, "figures: original window L, 1..16384 (paper: 2048)", at_least=1, at_most=16_384)
    eps: float = knob(
        0.0, "figures: ridge eps of the Figure 2 fit (0 = plain least squares, as in the paper)"
    )
    fit_dtype: str = knob("float64", "figures: precision of the Figure 2 solve", choices=THEORY_FIT_DTYPES)
    angle_resolution: float = knob(
        0.25,
        "resolution: the angle (radians, in (0, pi]) by which some frequency must separate two positions "
        "for them to count as told apart",
    )
    short_range: bool = knob(
        False,
        "measure short-range attention instead of the bounds: each head's mean attention at offsets "
        "0..--offsets on the sample text, for MODEL, MODEL with the scaling flags (if given) and each "
        "--compare model, against MODEL's own profile",
    )
    compare: list[str] = knob(
        [], "--short-range: more models to compare with MODEL, comma-separated (each with its own scaling)"
    )
    offsets: int = knob(
        16,
        "--short-range: the largest offset K (tokens back) of the profiles (1..4096)",
        at_least=1,
        at_most=4096,
    )
    local_within: int = knob(
        4,
        "--short-range: a head is local when most of its mass is on offsets 0..this (see --local-mass)",
        at_least=0,
    )
    local_mass: float = knob(
        0.5, "--short-range: the mass on offsets 0..--local-within that makes a head local"
    )
    keep_similarity: float = knob(
        0.8, "--short-range: a head keeps its profile when 1 - total variation distance >= this"
    )
    plot: Path | None = knob(
        None, "--short-range: write the heads x offsets heatmaps side by side (PNG) here"
    )
    overwrite: bool = knob(False, "replace --figures / --out / --plot if they exist")

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        if self.model is None and self.figures is None:
            raise ValueError("give a MODEL to analyse, --figures DIR, or both")
        if self.head_dim % 2:
            raise ValueError(f"--head-dim must be even, got {self.head_dim}")
        if not (isinstance(self.base, (int, float)) and math.isfinite(self.base) and 1 < self.base <= 1e12):
            raise ValueError(f"--base must be a number > 1 and <= 1e12, got {self.base!r}")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"--eps must be a number >= 0, got {self.eps!r}")
        check_resolution(self.angle_resolution)
        if not self.short_range:
            for name in ("compare", "plot"):
                if getattr(self, name):
                    raise ValueError(f"--{name} applies to --short-range only")
        if self.short_range and self.model is None:
            raise ValueError("--short-range needs a MODEL")
        twice = sorted({m for m in self.compare if [self.model, *self.compare].count(m) > 1})
        if twice:
            raise ValueError(f"--compare {twice[0]}: listed twice (or it is MODEL)")
        check_thresholds(self.offsets, self.local_within, self.local_mass, self.keep_similarity)
        if self.short_range and self.tokens <= self.offsets:
            raise ValueError(f"--tokens ({self.tokens}) must be greater than --offsets ({self.offsets})")
        for name in ("figures", "out", "text", "plot"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, resolve_path(value))


def check_thresholds(max_offset: int, local_within: int, mass: float, keep: float) -> None:
    if not 0 <= local_within <= max_offset:
        raise ValueError(f"--local-within must be in [0, --offsets = {max_offset}], got {local_within}")
    if not 0 < mass <= 1:
        raise ValueError(f"--local-mass must be in (0, 1], got {mass}")
    if not 0 <= keep <= 1:
        raise ValueError(f"--keep-similarity must be in [0, 1], got {keep}")
