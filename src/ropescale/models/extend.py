"""`ropescale extend`: write a safetensors checkpoint whose config carries the scaling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .. import io
from ..config import ExtendConfig
from . import compat
from .export import serving_flags
from .prepare import prepare_model
from .scale import rope_state


def run_extend(cfg: ExtendConfig) -> dict[str, Any]:
    """Load -> scale -> save to a temp dir -> verify with stock transformers -> move into place."""
    out = Path(cfg.out)
    io.check_out_dir(out, cfg.overwrite)  # fail before the slow load
    model, tokenizer, spec = prepare_model(cfg.model, cfg.load, cfg.rope)
    state = rope_state(model.config)
    serving = serving_flags(spec, state.base, state.rotary_dim)
    with io.atomic_dir(out, cfg.overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        compat.legacy_rope_keys(tmp / "config.json")
        saved = verify_saved(tmp, model)
        io.write_json(
            tmp / "ropescale.json",
            {
                "command": "extend",
                "config": cfg,
                "scaling": spec.to_dict(),
                "serving": serving,
                "environment": io.environment(),
            },
        )
    return {
        "out": str(out),
        "model": cfg.model,
        "scaling": spec.to_dict(),
        "original_window": spec.original_max_position_embeddings,
        "new_window": spec.new_window,
        "max_position_embeddings": model.config.max_position_embeddings,
        "rope_parameters": compat.rope_parameters(model.config),
        "inv_freq_ratio_range": saved,
        "serving": serving,
    }


def verify_saved(path: Path, model: Any) -> tuple[float, float]:
    """Rebuild the rotary embedding from the saved config.json with transformers alone and compare it with
    the live model's; returns (min, max) of the saved inv_freq / unscaled inv_freq ratio."""
    from transformers import AutoConfig

    from ..rope import base_inv_freq

    config = AutoConfig.from_pretrained(path)
    (_, live), *_ = compat.rotary_modules(model)
    fresh = type(live)(config=config)
    if (
        not torch.equal(fresh.inv_freq.cpu(), live.inv_freq.cpu())
        or fresh.attention_scaling != live.attention_scaling
    ):
        raise AssertionError("the saved config.json does not reproduce the scaled rotary embedding")
    state = rope_state(config)
    ratio = fresh.inv_freq.double() / base_inv_freq(state.rotary_dim, state.base)
    return float(ratio.min()), float(ratio.max())


def format_extend(r: dict[str, Any]) -> str:
    s = r["scaling"]
    lines = [
        f"wrote {r['out']}",
        f"  method {s['rope_type']}, factor {s['factor']:g}: window {r['original_window']} -> {r['new_window']} "
        f"(max_position_embeddings {r['max_position_embeddings']})",
        f"  rope_parameters {r['rope_parameters']}",
        f"  inv_freq / original: {r['inv_freq_ratio_range'][0]:.6g} .. {r['inv_freq_ratio_range'][1]:.6g}",
        "serve the original checkpoint the same way:",
        f"  vLLM:      {r['serving']['vllm']['command']}",
        f"  llama.cpp: {r['serving']['llama_cpp']['command']}",
    ]
    lines += [f"  note: {n}" for k in ("vllm", "llama_cpp") for n in r["serving"][k]["notes"]]
    return "\n".join(lines)
