"""`ropescale demo`: the paper's findings in miniature, end to end, into one report directory.

--model smollm2-135m (default): a real model extended x2 across scaling methods, before and after
short-sequence fine-tuning (demo/real.py); --full adds steps, passkey trials and controls.
--model tiny: our small LLaMA extended 8x with PI and with direct fine-tuning (demo/tiny.py).
The output directory holds report.md (tables in the paper's layout), the plots, the theory figures,
results.json, summary.txt and every evaluation's own JSON; it is written atomically.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from .. import outputs
from ..config import DemoConfig
from ..models.load import load_config
from ..models.scale import rope_state
from .gguf_cache import converted
from .real import MODEL, write_real
from .tiny import BASE_DIR, write_tiny


def check_base(base: Path) -> None:
    """--base (tiny) names a RoPE model directory: read from its config alone, before any work."""
    if not (Path(base) / "config.json").is_file():
        raise ValueError(f"--base {base}: not a model directory (no config.json)")
    try:  # the demo extends it: it must be a RoPE model
        rope_state(load_config(str(base)))
    except ValueError as err:
        raise ValueError(f"--base {base}: {err}") from None


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    from tqdm.auto import tqdm

    if cfg.base is not None:
        check_base(cfg.base)
    start = time.perf_counter()
    if cfg.prepare:  # the set-up only: nothing is written under --out
        path = converted(MODEL, Path(cfg.cache_dir))
        return {"summary": f"{MODEL}: transformers checkpoint {path} ({time.perf_counter() - start:.0f} s)"}
    outputs.check_out_dir(cfg.out, cfg.overwrite)
    with (
        outputs.atomic_dir(cfg.out, cfg.overwrite) as tmp,
        tqdm(desc="demo", unit="stage", disable=None) as bar,
    ):

        def stage(text: str, total: int | None = None) -> None:  # total: how many stages (for the ETA)
            if total is not None:
                bar.total = total
            bar.set_description(f"demo: {text}")
            bar.update(1)

        if cfg.model == "tiny":
            result = write_tiny(Path(cfg.base or BASE_DIR), tmp, cfg, stage)
        else:
            result = write_real(tmp, cfg, stage)
        for junk in tmp.rglob("checkpoints"):  # resumable training state: large and not needed afterwards
            shutil.rmtree(junk, ignore_errors=True)
        for junk in tmp.rglob(".cache"):  # token caches
            shutil.rmtree(junk, ignore_errors=True)
        result["wall_s"] = round(time.perf_counter() - start, 1)
        result["out"] = str(cfg.out)
        result["summary"] += f"\nwall time {result['wall_s']:.0f} s; report: {cfg.out}/report.md"
        outputs.write_json(
            tmp / "results.json", {**result, "config": cfg, "environment": outputs.environment()}
        )
        outputs.write_text(tmp / "summary.txt", result["summary"] + "\n")
    return result


def format_demo(result: dict[str, Any]) -> str:
    return result["summary"]
