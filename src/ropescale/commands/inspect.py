"""`ropescale inspect`: the scaling a model carries, per dimension, and a check of the live module."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from ..config import InspectConfig
from ..models import compat
from ..models.export import serving_flags
from ..models.load import load_config, rope_source
from ..models.prepare import prepare_model
from ..models.scale import (
    carried,
    check_rotary,
    current_plan,
    format_layer_ropes,
    layer_ropes,
    standard_base,
)
from ..rope import base_bound, dimension_table, format_base_bound_line
from ..rope.resolution import format_resolution, resolution


class InspectResult(TypedDict):
    """What `inspect` returns (printed as tables, or as JSON with --json)."""

    model: str
    model_type: str
    json: bool
    rope_type: str  # transformers' rope_type in the model's config
    method: str  # ropescale's method name
    base: float
    rotary_dim: int
    factor: float
    scaling_source: str
    original_window: int | None
    new_window: int | None
    max_position_embeddings: int
    scaling: dict[str, Any]
    rope_parameters: dict[str, Any]
    counts: dict[str, int]  # dimensions extrapolated / interpolated / blended
    dimensions: list[dict[str, Any]]  # rope.dimension_table
    resolution: dict[str, Any]  # rope.resolution.resolution
    base_bound: dict[str, Any]  # rope.base_bound at the new window only
    live_check: dict[str, Any]  # ok, problems
    serving: dict[str, Any]
    carries: str | None  # the scaling the model already carries and what --factor means for it
    layer_types: list[str]  # the scaled layer types of a model with rope per layer type ([]: one rope)
    layers: list[dict[str, Any]]  # models.scale.layer_ropes: every layer type's rope ([]: one rope)
    table_base: float  # the standard-formula base of the table, resolution and bound (standard_base)
    table_note: str | None  # how a proportional rope maps onto that base (None: the rope is standard)


def run_inspect(cfg: InspectConfig) -> InspectResult:
    carries = carried(load_config(cfg.model, cfg.load.trust_remote_code))
    model, _, spec = prepare_model(cfg.model, cfg.load, cfg.rope)
    state = current_plan(model.config)  # the scaling the (previewed) model carries, with its rope dicts
    problems = check_rotary(model)
    base, note = standard_base(model.config, state)
    dims = dimension_table(state.rotary_dim, base, spec)
    kinds = [d["kind"] for d in dims]
    source = (
        "--method (a preview)" if cfg.rope is not None else rope_source(cfg.model, cfg.load.trust_remote_code)
    )
    return {
        "model": cfg.model,
        "model_type": model.config.model_type,
        "json": cfg.json,
        "rope_type": compat.layer_rope_parameters(model.config)[
            state.layer_types[0] if state.layer_types else None
        ]["rope_type"],
        "method": spec.rope_type,
        "base": state.base,
        "rotary_dim": state.rotary_dim,
        "factor": spec.factor,
        "scaling_source": source,
        "carries": carries,
        "layer_types": list(state.layer_types),
        "layers": layer_ropes(model.config),
        "table_base": base,
        "table_note": note,
        "original_window": spec.original_max_position_embeddings,
        "new_window": spec.new_window,
        "max_position_embeddings": model.config.max_position_embeddings,
        "scaling": spec.to_dict(),
        "rope_parameters": state.rope_parameters,
        "counts": {k: kinds.count(k) for k in ("extrapolated", "interpolated", "blended")},
        "dimensions": dims,
        "resolution": resolution(state.rotary_dim, base, spec),
        "base_bound": base_bound(state.rotary_dim, base, spec, windows=(spec.new_window,)),
        "live_check": {"ok": not problems, "problems": problems},
        "serving": serving_flags(spec, state.base, state.rotary_dim, state),
    }


def format_inspect(r: InspectResult) -> str:
    if r["json"]:
        return json.dumps({k: v for k, v in r.items() if k != "json"}, indent=2)
    c = r["counts"]
    lines = [
        f"{r['model']} ({r['model_type']})",
        f"  rope_type {r['rope_type']} (ropescale method {r['method']}), base {r['base']:g}, rotary dim "
        f"{r['rotary_dim']}, factor {r['factor']:g}",
        f"  scaling from: {r['scaling_source']}",
        *([f"  {r['carries']}"] if r.get("carries") else []),
        *format_layer_ropes(r["layers"]),
        f"  window: original {r['original_window']} -> new {r['new_window']} "
        f"(max_position_embeddings {r['max_position_embeddings']})",
        f"  dimensions: {c['extrapolated']} extrapolated (frequency kept), {c['interpolated']} interpolated "
        f"(divided by s), {c['blended']} blended",
        *([f"  {r['table_note']}"] if r.get("table_note") else []),
        *format_resolution(r["resolution"]),
        format_base_bound_line(r["base_bound"]),
        "",
        f"  {'i':>3} {'wavelength':>12} {'scaled':>12} {'rad/token':>10} {'scaled':>10} {'ratio':>9}  kind"
        "          unseen angles at new window",
    ]
    angles = r["resolution"]["per_frequency"]
    for d, a in zip(r["dimensions"], angles, strict=True):
        lines.append(
            f"  {d['dim']:>3} {d['wavelength']:>12.1f} {d['scaled_wavelength']:>12.1f} {a['angle_before']:>10.4g} "
            f"{a['angle_after']:>10.4g} {d['ratio']:>9.4f}  {d['kind']:<13} {'yes' if d['unseen_angles'] else ''}"
        )
    check = r["live_check"]
    lines.append("")
    lines.append("live rotary module matches the config: " + ("yes" if check["ok"] else "NO"))
    lines += [f"  {p}" for p in check["problems"]]
    lines.append(f"vLLM:      {r['serving']['vllm']['command']}")
    lines.append(f"llama.cpp: {r['serving']['llama_cpp']['command']}")
    lines += [f"  note: {n}" for k in ("vllm", "llama_cpp") for n in r["serving"][k]["notes"]]
    return "\n".join(lines)
