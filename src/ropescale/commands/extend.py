"""`ropescale extend`: write a safetensors checkpoint whose config carries the scaling (and, with --gguf, a
GGUF made from it by llama.cpp's converter)."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, TypedDict

import torch

from .. import outputs
from ..config import ExtendConfig
from ..models import compat, gguf
from ..models.export import serving_flags
from ..models.load import load_config
from ..models.prepare import prepare_model
from ..models.scale import carried, current_plan, logits_match
from ..rope import base_inv_freq, proportional_freqs


class ExtendResult(TypedDict):
    """What `extend` returns (its ropescale.json beside the checkpoint holds the same scaling and serving)."""

    out: str
    model: str
    scaling: dict[str, Any]  # RopeScaling.to_dict(), L filled in
    original_window: int | None
    new_window: int | None
    max_position_embeddings: int
    rope_parameters: dict[str, Any]  # as saved in config.json
    inv_freq_ratio_range: tuple[float, float]  # saved inv_freq / unscaled, (min, max)
    serving: dict[str, Any]  # vllm and llama_cpp: command, notes
    gguf: dict[str, Any] | None  # with --gguf: file, type, rope_metadata, tensors, source
    replaced: str | None  # the scaling the model already carried (replaced by this one), in one line


def run_extend(cfg: ExtendConfig) -> ExtendResult:
    """Load -> scale -> save to a temp dir -> verify with stock transformers -> move into place."""
    out = Path(cfg.out)
    outputs.check_out_dir(out, cfg.overwrite)  # fail before the slow load
    if cfg.gguf:
        gguf.require_converter()
        gguf.check_model_exportable(cfg.rope, load_config(cfg.model))
    replaced = carried(load_config(cfg.model, cfg.load.trust_remote_code))
    model, tokenizer, spec = prepare_model(cfg.model, cfg.load, cfg.rope)
    plan = current_plan(model.config)
    serving = serving_flags(spec, plan.base, plan.rotary_dim, plan)
    with outputs.atomic_dir(out, cfg.overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        compat.legacy_rope_keys(tmp / "config.json")
        saved = verify_saved(tmp, model)
        exported = export_gguf(tmp, out, model, cfg.gguf_type) if cfg.gguf else None
        outputs.write_json(
            tmp / "ropescale.json",
            {
                "command": "extend",
                "config": cfg,
                "scaling": spec.to_dict(),
                "serving": serving,
                "gguf": exported,
                "environment": outputs.environment(),
            },
        )
    return {
        "out": str(out),
        "model": cfg.model,
        "scaling": spec.to_dict(),
        "original_window": spec.original_max_position_embeddings,
        "new_window": spec.new_window,
        "max_position_embeddings": model.config.max_position_embeddings,
        "rope_parameters": plan.rope_parameters,
        "inv_freq_ratio_range": saved,
        "serving": serving,
        "gguf": exported,
        "replaced": replaced,
    }


def verify_saved(path: Path, model: Any) -> tuple[float, float]:
    """Build a model from the saved config.json with transformers alone (sharing the live weights) and
    compare its logits with the live model's beyond the original window (`logits_match`); returns (min,
    max) of the saved inv_freq / unscaled inv_freq ratio (of the scaled layer type, where rope is nested)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    mismatch = logits_match(model, compat.build_like(model, config))
    if mismatch:
        raise AssertionError(f"the saved config.json does not reproduce the scaled model: {mismatch}")
    state = current_plan(config)
    layer = state.layer_types[0] if state.layer_types else None
    (_, module), *_ = compat.rotary_modules(model)
    live, _ = compat.live_rotary(module, state.spec.original_max_position_embeddings or 1, layer)
    compat.reset_rotary(model)
    unscaled = state.unscaled.get(layer, {})
    if unscaled.get("rope_type") == "proportional":
        dim, params = compat.head_dim(config, layer), compat.layer_rope_parameters(config)[layer]
        theta = proportional_freqs(dim, state.base, params.get("partial_rotary_factor", 1.0)).inv_freq
    else:
        theta = base_inv_freq(state.rotary_dim, state.base)
    keep = theta != 0
    ratio = live.double()[keep] / theta.double()[keep]
    return float(ratio.min()), float(ratio.max())


def export_gguf(tmp: Path, out: Path, model: Any, gguf_type: str) -> dict[str, Any]:
    """Convert the saved checkpoint in `tmp` with llama.cpp's converter, then read the GGUF's rope metadata
    back (gguf package) as llama.cpp uses it and check that the rotary embedding it maps to equals the live
    model's. The GGUF is named after the output folder."""
    name = f"{out.name}-{gguf_type}.gguf"
    gguf.convert_to_gguf(tmp, tmp / name, gguf_type, out.name)
    rope = gguf.read_gguf_rope(tmp / name)
    config = copy.deepcopy(model.config)
    config.max_position_embeddings = int(rope.fields.get("context_length", 0))
    source = gguf.restore_gguf_rope(config, rope)
    (_, live), *_ = compat.rotary_modules(model)
    fresh = type(live)(config=config)
    same = torch.allclose(fresh.inv_freq.cpu(), live.inv_freq.cpu(), rtol=1e-6, atol=0)
    if not same or not math.isclose(fresh.attention_scaling, live.attention_scaling, rel_tol=1e-6):
        raise ValueError(f"--gguf: the GGUF's rope metadata does not reproduce the scaling ({source})")
    if config.max_position_embeddings != model.config.max_position_embeddings:
        raise ValueError(
            f"--gguf: the GGUF's context_length {config.max_position_embeddings} is not the checkpoint's "
            f"max_position_embeddings {model.config.max_position_embeddings}"
        )
    fields = {f"{rope.arch}.{k}": v for k, v in rope.fields.items()}
    tensors = {k: list(v) for k, v in rope.tensors.items()}
    return {
        "file": str(out / name),
        "type": gguf_type,
        "rope_metadata": fields,
        "tensors": tensors,
        "source": source,
    }


def format_extend(r: ExtendResult) -> str:
    s = r["scaling"]
    lines = [
        f"wrote {r['out']}",
        f"  method {s['rope_type']}, factor {s['factor']:g}: window {r['original_window']} -> {r['new_window']} "
        f"(max_position_embeddings {r['max_position_embeddings']})",
        *([f"  note: {r['replaced']}"] if r.get("replaced") else []),
        f"  rope_parameters {r['rope_parameters']}",
        f"  inv_freq / original: {r['inv_freq_ratio_range'][0]:.6g} .. {r['inv_freq_ratio_range'][1]:.6g}",
        "serve the original checkpoint the same way:",
        f"  vLLM:      {r['serving']['vllm']['command']}",
        f"  llama.cpp: {r['serving']['llama_cpp']['command']}",
    ]
    notes = [n for k in ("vllm", "llama_cpp") for n in r["serving"][k]["notes"]]
    lines += [f"  note: {n}" for n in dict.fromkeys(notes)]  # once each: vLLM and llama.cpp share some
    if r["gguf"]:
        g = r["gguf"]
        lines.append(f"wrote {g['file']} (llama.cpp's converter, {g['type']}); its rope metadata, read back:")
        lines += [f"  {k} = {v}" for k, v in g["rope_metadata"].items()]
        lines += [f"  tensor {k}: {len(v)} values" for k, v in g["tensors"].items()]
        lines.append(
            f"  checked: its metadata, read as llama.cpp reads it, gives the same rotary frequencies ({g['source']})"
        )
    return "\n".join(lines)
