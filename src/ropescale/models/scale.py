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
    try:
        spec = RopeScaling(**method.from_transformers(params, max_pos))
    except (ValueError, TypeError) as err:  # the checkpoint's own settings, not a flag the user gave
        where = getattr(config, "_name_or_path", "") or "the model"
        why = str(err).replace("--method", "rope_type").replace("--", "").replace("-", "_")
        raise ValueError(f"MODEL {where}: its config's rope_parameters are not valid ({why})") from None
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


@dataclasses.dataclass(frozen=True)
class ScalingPlan(RopeState):
    """Everything scaling a model will do, computed from its config alone (no weights): the resolved spec
    (L filled in), the unscaled base and rotary dim it is relative to, and what transformers will read."""

    rope_parameters: dict[str, Any]
    max_position_embeddings: int


def plan_scaling(config: Any, spec: RopeScaling) -> ScalingPlan:
    """Plan `spec` for a model with this config (not modified), relative to its unscaled base and original
    window, and validate it against the model. Raises ValueError naming the flag."""
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
    params, max_pos = transformers_rope(spec, state.base, state.rotary_dim, partial)
    return ScalingPlan(spec, state.base, state.rotary_dim, params, max_pos)


def current_plan(config: Any) -> ScalingPlan:
    """The scaling a config already carries, as a plan (nothing to apply)."""
    state = rope_state(config)
    params = compat.rope_parameters(config)
    return ScalingPlan(state.spec, state.base, state.rotary_dim, params, int(config.max_position_embeddings))


def apply_plan(config: Any, plan: ScalingPlan) -> None:
    """Write a plan into a config (in place): rope_parameters, max_position_embeddings and our provenance."""
    compat.set_rope_parameters(config, plan.rope_parameters, plan.max_position_embeddings)
    setattr(config, PROVENANCE_KEY, {"scaling": plan.spec.to_dict(), "rope_theta": plan.base})


def scale_config(config: Any, spec: RopeScaling) -> RopeScaling:
    """Set `spec` on a config (in place); returns the spec with L resolved."""
    plan = plan_scaling(config, spec)
    apply_plan(config, plan)
    return plan.spec


def scale_model(model: nn.Module, scaling: RopeScaling | ScalingPlan) -> RopeScaling:
    """Apply a scaling (a spec, or a plan made from this model's config) to a live model: config,
    max_position_embeddings and the rotary buffers, then check the live rotary modules against the plan.
    The scaling replaces any the model had (it is always relative to the unscaled model). Returns the
    resolved spec."""
    _check_rope(model)
    if isinstance(scaling, ScalingPlan):
        plan, state = scaling, rope_state(model.config)
        if (state.base, state.rotary_dim) != (plan.base, plan.rotary_dim):
            raise ValueError(
                f"a scaling plan for base {plan.base:g}, rotary dim {plan.rotary_dim} does not fit this model "
                f"(base {state.base:g}, rotary dim {state.rotary_dim})"
            )
    else:
        plan = plan_scaling(model.config, scaling)
    apply_plan(model.config, plan)
    compat.rebuild_rotary(model)
    mismatch = check_rotary(model, plan)
    if mismatch:
        raise AssertionError(f"rotary embedding does not match the config after scaling: {mismatch}")
    return plan.spec


def check_rotary(model: nn.Module, plan: RopeState | None = None, rtol: float = 1e-5) -> list[str]:
    """Compare every live rotary module with a plan (default: the scaling the model's config carries),
    inside the original window and at the new one (dynamic and longrope switch there). Returns a list of
    mismatch descriptions (empty = good)."""
    state = plan or rope_state(model.config)
    modules = compat.rotary_modules(model)
    if not modules:
        return ["no rotary module (no inv_freq buffer) found in the model"]
    orig = state.spec.original_max_position_embeddings or model.config.max_position_embeddings
    new = state.spec.new_window or orig
    expected = {
        n: compute_freqs(state.rotary_dim, state.base, state.spec, n) for n in sorted({orig, new, 2 * new})
    }
    problems = []
    for name, module in modules:
        for seq_len, (want, want_attn) in expected.items():
            live, live_attn = compat.live_rotary(module, seq_len)
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
