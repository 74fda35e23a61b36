"""Scale a transformers model: translate a `RopeScaling` into the config transformers reads, rebuild the
live rotary embedding with transformers' own code, and verify it against our pure math.

A scaled config also carries a ``ropescale`` entry (the spec and the unscaled base) so the scaling can be
read back exactly even where transformers has no rope_type for it (`ntk` is saved as a plain base change,
which every reader of the format understands).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from ..config import RopeScaling
from ..rope import METHODS, compute_freqs, reading
from . import compat

PROVENANCE_KEY = "ropescale"


class NotRopeModelError(ValueError):
    """The model has no rotary position embedding."""


@dataclasses.dataclass(frozen=True)
class RopeState:
    """What a config says about its RoPE: the spec relative to the unscaled model, and that model's base."""

    spec: RopeScaling
    base: float
    rotary_dim: int


def _check_rope(model_or_config: Any) -> Any:
    config = getattr(model_or_config, "config", model_or_config)
    if compat.is_nested_rope(config):
        raise NotRopeModelError(
            f"model type {getattr(config, 'model_type', '?')!r} has per-layer rope settings; ropescale scales "
            "models with one rope configuration (LLaMA, Mistral, Qwen2, Phi-3, ...)"
        )
    if compat.rope_parameters(config) is None:
        raise NotRopeModelError(
            f"model type {getattr(config, 'model_type', '?')!r} has no rotary position embedding (RoPE); "
            "ropescale only scales RoPE models"
        )
    return config


def rope_state(config: Any) -> RopeState:
    """Read the scaling a config carries (ours or any transformers rope_type) as a `RopeState`."""
    config = _check_rope(config)
    params = compat.rope_parameters(config)
    dim = compat.rotary_dim(config)
    mine = getattr(config, PROVENANCE_KEY, None)
    if isinstance(mine, dict) and "scaling" in mine:
        return RopeState(RopeScaling.from_dict(mine["scaling"]), float(mine["rope_theta"]), dim)
    method = reading(params["rope_type"])
    if method is None:
        raise NotRopeModelError(f"rope_type {params['rope_type']!r} is not one ropescale can read or scale")
    max_pos = int(getattr(config, "max_position_embeddings", 0) or 0) or None
    spec = RopeScaling(**method.from_transformers(params, max_pos))
    base = float(params["rope_theta"])
    return RopeState(spec, base, dim)


def transformers_rope(
    spec: RopeScaling, base: float, rotary_dim: int, partial: float | None = None
) -> tuple[dict[str, Any], int]:
    """The rope_parameters dict and max_position_embeddings that make stock transformers compute `spec`.
    `ntk` becomes a plain base change; `dynamic` reads max_position_embeddings as the original window L,
    every other method as the new window L' (the method's record in rope/methods.py says which)."""
    params, window = METHODS[spec.rope_type].to_transformers(spec, base, rotary_dim)
    if partial is not None:
        params["partial_rotary_factor"] = partial
    return params, window


def scale_config(config: Any, spec: RopeScaling) -> RopeScaling:
    """Set `spec` on a config (in place), relative to the config's unscaled base and original window.
    Returns the spec with L resolved."""
    state = rope_state(config)
    spec = spec.with_original(state.spec.original_max_position_embeddings or config.max_position_embeddings)
    window = int(getattr(config, "max_position_embeddings", 0) or 0)
    if window and spec.original_max_position_embeddings > window:
        raise ValueError(
            f"--original-max-position-embeddings {spec.original_max_position_embeddings} is larger than the "
            f"model's window (max_position_embeddings {window}); it is the window the model was trained at"
        )
    METHODS[spec.rope_type].check(spec, state.rotary_dim)
    partial = (compat.rope_parameters(config) or {}).get("partial_rotary_factor")
    params, window = transformers_rope(spec, state.base, state.rotary_dim, partial)
    compat.set_rope_parameters(config, params, window)
    setattr(config, PROVENANCE_KEY, {"scaling": spec.to_dict(), "rope_theta": state.base})
    return spec


def scale_model(model: nn.Module, spec: RopeScaling) -> RopeScaling:
    """Apply `spec` to a live model: config, max_position_embeddings and the rotary buffers. The scaling
    replaces any the model had (it is always relative to the unscaled model). Returns the resolved spec."""
    _check_rope(model)
    resolved = scale_config(model.config, spec)
    compat.rebuild_rotary(model)
    mismatch = check_rotary(model)
    if mismatch:
        raise AssertionError(f"rotary embedding does not match the config after scaling: {mismatch}")
    return resolved


def expected_freqs(config: Any, seq_len: int) -> tuple[torch.Tensor, float]:
    """What our pure math says the rotary module should hold at `seq_len`."""
    state = rope_state(config)
    freqs = compute_freqs(state.rotary_dim, state.base, state.spec, seq_len=seq_len)
    return freqs.inv_freq, freqs.attention_factor


def check_rotary(model: nn.Module, rtol: float = 1e-5) -> list[str]:
    """Compare every live rotary module with the config's scaling, inside the original window and at the
    new one (dynamic and longrope switch there). Returns a list of mismatch descriptions (empty = good)."""
    state = rope_state(model.config)
    orig = state.spec.original_max_position_embeddings or model.config.max_position_embeddings
    lengths = sorted({orig, state.spec.new_window or orig, 2 * (state.spec.new_window or orig)})
    problems = []
    modules = compat.rotary_modules(model)
    if not modules:
        return ["no rotary module (no inv_freq buffer) found in the model"]
    for name, module in modules:
        for seq_len in lengths:
            live, live_attn = compat.live_rotary(module, seq_len)
            want, want_attn = expected_freqs(model.config, seq_len)
            if live.shape != want.shape or not torch.allclose(live, want, rtol=rtol, atol=0):
                err = (
                    (live - want).abs().div(want.abs()).max().item() if live.shape == want.shape else math.inf
                )
                problems.append(
                    f"{name or 'rotary'}: inv_freq at length {seq_len} off by {err:.2e} (relative)"
                )
            if not math.isclose(live_attn, want_attn, rel_tol=rtol):
                problems.append(
                    f"{name or 'rotary'}: attention factor at length {seq_len} is {live_attn}, expected {want_attn}"
                )
    compat.reset_rotary(model)
    return problems
