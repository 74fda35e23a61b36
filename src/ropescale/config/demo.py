"""Knobs of `ropescale demo`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import knob

DEMO_MODELS = ("tiny", "smollm2-135m")


@dataclass(frozen=True)
class DemoConfig:
    """ropescale demo: the paper's findings in miniature, end to end (train, evaluate, report)."""

    model: str = knob(
        "tiny",
        f"one of {', '.join(DEMO_MODELS)}: tiny = our small LLaMA extended 8x with and without fine-tuning; "
        "smollm2-135m = a real model compared across methods without fine-tuning",
    )
    out: Path = knob(Path("runs/demo"), "report directory (tables, plots, JSON)")
    quick: bool = knob(False, "a reduced run in about a minute (what the tests exercise)")
    base: Path | None = knob(
        None, "tiny: base checkpoint trained at the short window (default: the one shipped with ropescale)"
    )
    overwrite: bool = knob(False, "replace --out if it exists and is not empty")
    seed: int = knob(0, "seed of training order, passkey keys and bootstrap")

    def __post_init__(self) -> None:
        if self.model not in DEMO_MODELS:
            raise ValueError(f"--model must be one of {', '.join(DEMO_MODELS)}, got {self.model!r}")
        if self.base is not None and self.model != "tiny":
            raise ValueError("--base applies to --model tiny only")
        if self.base is not None and not (Path(self.base) / "config.json").is_file():
            raise ValueError(f"--base {self.base}: not a model directory (no config.json)")
        if self.base is not None:
            from ..models.load import load_config
            from ..models.scale import rope_state

            try:  # the demo extends it: it must be a RoPE model (read from its config alone)
                rope_state(load_config(str(self.base)))
            except ValueError as err:
                raise ValueError(f"--base {self.base}: {err}") from None
