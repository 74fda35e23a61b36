"""Knobs of `ropescale demo`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..knobs import SEED_MAX, check_knobs, knob

DEMO_MODELS = ("tiny", "smollm2-135m")


@dataclass(frozen=True)
class DemoConfig:
    """ropescale demo: the paper's findings in miniature, end to end (train, evaluate, report)."""

    model: str = knob(
        "smollm2-135m",
        choices=DEMO_MODELS,
        help="smollm2-135m = a real model extended x2 (8192 -> 16384) across "
        "methods, before and after short-sequence fine-tuning; tiny = our small LLaMA extended 8x, what "
        "scale changes",
    )
    out: Path = knob(Path("runs/demo"), "report directory (tables, plots, JSON, fine-tuned checkpoints)")
    quick: bool = knob(False, "a reduced run in about a minute or two (what the tests exercise)")
    full: bool = knob(
        False,
        "smollm2-135m: the full comparison (more steps and passkey trials, YaRN fine-tuned, dynamic NTK)",
    )
    cache_dir: Path = knob(
        Path.home() / ".cache" / "ropescale" / "gguf",
        "smollm2-135m: where the GGUF's dequantised transformers checkpoint is kept (converted once)",
    )
    base: Path | None = knob(
        None, "tiny: base checkpoint trained at the short window (default: the one shipped with ropescale)"
    )
    prepare: bool = knob(
        False,
        "smollm2-135m: only convert the GGUF into --cache-dir (the one-time set-up `make demo` runs first, "
        "so the demo's wall time does not include it) and exit",
    )
    overwrite: bool = knob(False, "replace --out if it exists and is not empty")
    seed: int = knob(
        0, "seed of training order, passkey keys and bootstrap, 0..2**32-1", at_least=0, at_most=SEED_MAX
    )

    def __post_init__(self) -> None:
        check_knobs(self)  # each knob's own constraints (its metadata)
        if self.full and self.model != "smollm2-135m":
            raise ValueError("--full applies to --model smollm2-135m only")
        if self.full and self.quick:
            raise ValueError("--full and --quick contradict each other; pass one")
        if self.prepare and self.model != "smollm2-135m":
            raise ValueError(
                "--prepare applies to --model smollm2-135m only (the tiny model needs no set-up)"
            )
        if self.base is not None and self.model != "tiny":
            raise ValueError("--base applies to --model tiny only")
