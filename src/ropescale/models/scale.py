"""Scale a transformers model: translate a `RopeScaling` into the config transformers reads, rebuild the
live model from that config with transformers' own code, and verify it against our pure math.

A scaled config also carries a ``ropescale`` entry (the spec and the unscaled base) so the scaling can be
read back exactly even where transformers has no rope_type for it (`ntk` is saved as a plain base change,
which every reader of the format understands).

Models that nest their rope settings by layer type (Gemma 3/4, Olmo 3) have the spec applied to the layer
types whose attention spans the whole context (``full_attention``) unless told otherwise; the others keep
their rope. Rope keys ropescale does not model (``partial_rotary_factor``, ``llama_4_scaling_beta``,
``mrope_section``, ...) are kept as they are.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from ..rope import METHODS, base_inv_freq, compute_freqs, proportional_freqs, reading
from ..rope.methods import ORIGINAL, RopeFreqs
from ..rope.spec import RopeScaling
from . import compat

PROVENANCE_KEY = "ropescale"
FULL_ATTENTION = "full_attention"
# keys a scaling owns: replaced as a whole by a new scaling; every other rope key is kept as it is
OWNED_KEYS = frozenset(
    {
        "rope_theta",
        "rope_type",
        "type",
        "factor",
        ORIGINAL,
        *(k for m in METHODS.values() for k in m.parameters),
    }
)


class NotRopeModelError(ValueError):
    """The model has no rotary position embedding ropescale can scale."""


@dataclasses.dataclass(frozen=True)
class RopeState:
    """What a config says about its RoPE: the spec relative to the unscaled model, and that model's base.
    layer_types: the layer types the spec applies to (() for a model with one rope dict); base and
    rotary_dim are those of the first one."""

    spec: RopeScaling
    base: float
    rotary_dim: int
    layer_types: tuple[str, ...] = ()


def _model_type(config: Any) -> str:
    return repr(getattr(config, "model_type", "?"))


def _check_rope(model_or_config: Any) -> Any:
    config = getattr(model_or_config, "config", model_or_config)
    if compat.layer_rope_parameters(config):
        return config
    rotary = getattr(config, "rotary_dim", None)
    if rotary:
        raise NotRopeModelError(
            f"model type {_model_type(config)} uses RoPE (rotary_dim {rotary}), but transformers gives it no "
            "rope parameters (its modeling code fixes the rotary tables), so no saved config could load "
            "scaled in stock transformers; ropescale scales models whose config has rope_parameters (LLaMA, "
            "Mistral, Qwen, Gemma, Phi-3, GPT-NeoX, ...)"
        )
    raise NotRopeModelError(
        f"model type {_model_type(config)} has no rotary position embedding (RoPE); ropescale only scales "
        "RoPE models"
    )


def _targets(config: Any, layer_types: tuple[str, ...] | None) -> tuple[str, ...]:
    """The layer types a scaling applies to: () for one rope dict; by default the full-attention ones."""
    per = compat.layer_rope_parameters(config)
    if None in per:
        if layer_types:
            raise ValueError(f"--layer-types: model type {_model_type(config)} has one rope for all layers")
        return ()
    if layer_types:
        unknown = sorted(set(layer_types) - set(per))
        if unknown:
            raise ValueError(
                f"--layer-types {','.join(unknown)}: the model's layer types are {', '.join(per)}"
            )
        return tuple(lt for lt in per if lt in layer_types)
    # rope dicts of layer types the model does not have stay as they are
    used = set(getattr(config, "layer_types", None) or per)
    return (FULL_ATTENTION,) if FULL_ATTENTION in used else tuple(lt for lt in per if lt in used)


def _unscaled(config: Any) -> dict[str | None, dict[str, Any]]:
    """Per scaled layer type (None for one rope dict), the unscaled base and rope type, from our
    provenance entry (empty when ropescale did not write this config)."""
    mine = getattr(config, PROVENANCE_KEY, None)
    if not isinstance(mine, dict) or "scaling" not in mine:
        return {}
    if "layers" in mine:
        return {lt: dict(v) for lt, v in mine["layers"].items()}
    return {None: {"rope_theta": float(mine["rope_theta"]), "rope_type": "default"}}


def rope_state(config: Any, layer_types: tuple[str, ...] | None = None) -> RopeState:
    """Read the scaling a config carries (ours or any transformers rope_type) as a `RopeState`."""
    config = _check_rope(config)
    mine = getattr(config, PROVENANCE_KEY, None)
    if isinstance(mine, dict) and "scaling" in mine and not layer_types:
        unscaled = _unscaled(config)
        first = next(iter(unscaled))
        scaled = tuple(lt for lt in unscaled if lt is not None)
        return RopeState(
            RopeScaling.from_dict(mine["scaling"]),
            float(unscaled[first]["rope_theta"]),
            compat.rotary_dim(config, first),
            scaled,
        )
    targets = _targets(config, layer_types)
    first = targets[0] if targets else None
    params = compat.layer_rope_parameters(config)[first]
    max_pos = int(getattr(config, "max_position_embeddings", 0) or 0) or None
    if params["rope_type"] == "proportional":
        factor = float(params.get("factor", 1.0))
        kind = "none" if factor == 1 else "linear"
        spec = RopeScaling(kind, factor, round(max_pos / factor) if max_pos else None)
        return RopeState(spec, float(params["rope_theta"]), compat.rotary_dim(config, first), targets)
    method = reading(params["rope_type"])
    if method is None:
        raise NotRopeModelError(f"rope_type {params['rope_type']!r} is not one ropescale can read or scale")
    try:
        spec = RopeScaling(**method.from_transformers(params, max_pos))
    except (ValueError, TypeError) as err:  # the checkpoint's own settings, not a flag the user gave
        where = getattr(config, "_name_or_path", "") or "the model"
        why = str(err).replace("--method", "rope_type").replace("--", "").replace("-", "_")
        raise ValueError(f"MODEL {where}: its config's rope_parameters are not valid ({why})") from None
    return RopeState(spec, float(params["rope_theta"]), compat.rotary_dim(config, first), targets)


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
    (L filled in), the unscaled base and rotary dim it is relative to, and what transformers will read
    (rope_parameters nested by layer type where the model nests them)."""

    rope_parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    max_position_embeddings: int = 0
    unscaled: dict[str | None, dict[str, Any]] = dataclasses.field(default_factory=dict)
    expressed_as: str = ""


def _layer_params(
    config: Any, spec: RopeScaling, layer_type: str | None, old: dict[str, Any], unscaled: dict[str, Any]
) -> dict[str, Any]:
    """The rope dict of one (scaled) layer type: the method's keys, then every key it does not own."""
    base, dim = float(unscaled["rope_theta"]), compat.rotary_dim(config, layer_type)
    if unscaled["rope_type"] == "proportional":
        if "proportional" not in METHODS[spec.rope_type].base_types:
            where = f"the {layer_type} layers of model type {_model_type(config)}"
            raise ValueError(
                f"--method {spec.rope_type}: {where} use transformers' proportional rope, which scales by a "
                f"factor only; use --method linear (PI), or --layer-types to scale the other layer types"
            )
        params: dict[str, Any] = {"rope_type": "proportional", "rope_theta": base}
        if spec.rope_type == "linear":
            params["factor"] = float(spec.factor)
    else:
        params, _ = transformers_rope(spec, base, dim)
    params.update({k: v for k, v in old.items() if k not in OWNED_KEYS})
    if "llama_4_scaling_beta" in params:  # its query temperature grows with position / L
        params.setdefault(ORIGINAL, spec.original_max_position_embeddings)
    return params


def as_longrope(spec: RopeScaling, base: float, rotary_dim: int) -> dict[str, Any]:
    """A static method written as LongRoPE factors (for configs that admit only `longrope`, Phi-3):
    lambda_i = theta_i / theta'_i for both the short and the long factors, and the method's own attention
    factor, so transformers' longrope computes the method's frequencies at every length."""
    freqs = compute_freqs(rotary_dim, base, spec)
    factors = (base_inv_freq(rotary_dim, base) / freqs.inv_freq.double()).tolist()
    return {
        "rope_type": "longrope",
        "rope_theta": float(base),
        "factor": float(spec.factor),
        ORIGINAL: spec.require_original(),
        "short_factor": factors,
        "long_factor": factors,
        "attention_factor": freqs.attention_factor,
    }


def layer_ropes(config: Any) -> list[dict[str, Any]]:
    """One entry per layer type of a model that nests its rope by layer type ([] for one rope dict): its
    rope type, base, factor (None: none), rotary and head dims, and whether the scaling applies to it."""
    per = compat.layer_rope_parameters(config)
    if None in per:
        return []
    scaled = set(rope_state(config).layer_types)
    return [
        {
            "layer_type": lt,
            "rope_type": p["rope_type"],
            "rope_theta": float(p["rope_theta"]),
            "factor": p.get("factor"),
            "rotary_dim": compat.rotary_dim(config, lt),
            "head_dim": compat.head_dim(config, lt),
            "scaled": lt in scaled,
        }
        for lt, p in per.items()
    ]


def format_layer_ropes(layers: list[dict[str, Any]], indent: str = "  ") -> list[str]:
    """`layer_ropes` as lines: one per layer type (its rope, and whether it is scaled); [] for one rope."""
    if not layers:
        return []
    lines = [f"{indent}rope per layer type (the scaling applies to the scaled ones; the others keep theirs):"]
    for x in layers:
        factor = f" x{x['factor']:g}" if x.get("factor") not in (None, 1, 1.0) else ""
        lines.append(
            f"{indent}  {x['layer_type']}: {x['rope_type']}{factor}, base {x['rope_theta']:g}, rotary dim "
            f"{x['rotary_dim']} of head {x['head_dim']} - {'scaled' if x['scaled'] else 'kept'}"
        )
    return lines


def standard_base(config: Any, plan: ScalingPlan) -> tuple[float, str | None]:
    """The base b' whose standard frequencies b'^(-2i/d) over the rotary dim d are those of the plan's
    first scaled layer type: its own base, or, for a `proportional` rope (Gemma 4: b^(-2i/H) over the head
    size H for the first d/2 pairs), b^(d/H). With the second value, one line saying so (None: standard)."""
    lt = plan.layer_types[0] if plan.layer_types else None
    if plan.unscaled.get(lt, {}).get("rope_type") != "proportional":
        return plan.base, None
    d, head = plan.rotary_dim, compat.head_dim(config, lt)
    b = plan.base ** (d / head)
    return b, (
        f"{lt or 'all'} layers: proportional rope, frequencies {plan.base:g}^(-2i/{head}) for the first {d // 2} "
        f"pairs (the rest not rotated) = the standard ones of base {b:.6g} over rotary dim {d}; the table and "
        f"the bound below use that base (a bound b* on it is rope_theta >= b*^({head}/{d}))"
    )


def carried(config: Any) -> str | None:
    """One line on the scaling a config already carries and what --factor means for it (None when the
    model is unscaled)."""
    s = rope_state(config).spec
    if s.factor == 1 and s.rope_type == "none":
        return None
    orig = s.original_max_position_embeddings
    return (
        f"the model already carries {s.rope_type} x{s.factor:g} (window {orig} -> {s.new_window}); --factor "
        f"is relative to its unscaled window {orig} and a new scaling replaces this one"
    )


def _check_window(config: Any, state: RopeState, spec: RopeScaling, allow_smaller_window: bool) -> None:
    """The original window must lie inside the model's; on a model that already carries a scaling, the new
    window must not be smaller than the one it has (an unscaled model's L is the user's to declare)."""
    window = int(getattr(config, "max_position_embeddings", 0) or 0)
    if window and spec.original_max_position_embeddings > window:
        raise ValueError(
            f"--original-max-position-embeddings {spec.original_max_position_embeddings} is larger than the "
            f"model's window (max_position_embeddings {window}); it is the window the model was trained at"
        )
    carries = state.spec.rope_type != "none" or state.spec.factor != 1
    current = state.spec.new_window or window
    if carries and current and spec.new_window < current and not allow_smaller_window:
        s = state.spec
        raise ValueError(
            f"--factor {spec.factor:g}: the new window {spec.new_window} is smaller than the model's {current} "
            f"({s.rope_type} x{s.factor:g} of the unscaled window {s.original_max_position_embeddings}; "
            f"--factor is relative to that window); pass --factor {current / spec.original_max_position_embeddings:g} "
            "or more, or --allow-smaller-window"
        )


def _scaled_layers(
    config: Any, spec: RopeScaling, targets: tuple[str, ...]
) -> tuple[dict[str | None, dict[str, Any]], dict[str | None, dict[str, Any]]]:
    """Per layer type (None for one rope dict): the rope dicts after scaling the targets, and the unscaled
    base and rope type of each scaled one."""
    per = compat.layer_rope_parameters(config)
    known = _unscaled(config)
    unscaled = {}
    for lt in targets or (None,):
        old = per[lt]
        unscaled[lt] = known.get(lt) or {
            "rope_theta": float(old["rope_theta"]),
            "rope_type": old["rope_type"],
        }
        if unscaled[lt]["rope_type"] != "proportional":
            unscaled[lt]["rope_type"] = "default"
        per[lt] = _layer_params(config, spec, lt, old, unscaled[lt])
    for lt, was in known.items():  # layer types an earlier scaling of ours changed, not scaled now
        if lt is not None and lt not in unscaled:
            per[lt] = {**{k: v for k, v in per[lt].items() if k not in OWNED_KEYS}, **was}
    return per, unscaled


def plan_scaling(
    config: Any,
    spec: RopeScaling,
    layer_types: tuple[str, ...] | None = None,
    allow_smaller_window: bool = False,
) -> ScalingPlan:
    """Plan `spec` for a model with this config (not modified), relative to its unscaled base and original
    window, and validate it against the model. A new window smaller than the one the model has is refused
    unless `allow_smaller_window`. Raises ValueError naming the flag."""
    state = rope_state(config)
    layer_types = layer_types or spec.layer_types
    targets = _targets(config, layer_types) if layer_types else state.layer_types
    spec = spec.with_original(state.spec.original_max_position_embeddings or config.max_position_embeddings)
    first = targets[0] if targets else None
    base = float((_unscaled(config).get(first) or compat.layer_rope_parameters(config)[first])["rope_theta"])
    dim = compat.rotary_dim(config, first)
    METHODS[spec.rope_type].check(spec, dim)
    _check_window(config, state, spec, allow_smaller_window)
    per, unscaled = _scaled_layers(config, spec, targets)
    max_pos = METHODS[spec.rope_type].to_transformers(spec, base, dim)[1]
    params = per.get(None, per)
    expressed = ""
    refusal = compat.admits_rope(config, params, max_pos)
    if refusal and None in per:
        if METHODS[spec.rope_type].transformers_type in ("dynamic", "longrope"):
            raise ValueError(
                f"--method {spec.rope_type}: model type {_model_type(config)} refuses it: {refusal}"
            )
        kept = {k: v for k, v in params.items() if k not in OWNED_KEYS}
        params = {**as_longrope(spec, unscaled[None]["rope_theta"], dim), **kept}
        expressed = "longrope factors"
        refusal = compat.admits_rope(config, params, max_pos)
    if refusal:
        raise ValueError(f"--method {spec.rope_type}: model type {_model_type(config)} refuses it: {refusal}")
    return ScalingPlan(spec, base, dim, targets, params, max_pos, unscaled, expressed)


def current_plan(config: Any) -> ScalingPlan:
    """The scaling a config already carries, as a plan (nothing to apply)."""
    state = rope_state(config)
    per = compat.layer_rope_parameters(config)
    params = per.get(None, per)
    unscaled = _unscaled(config) or {
        lt: {"rope_theta": per[lt]["rope_theta"], "rope_type": per[lt]["rope_type"]}
        for lt in state.layer_types or (None,)
    }
    return ScalingPlan(
        state.spec,
        state.base,
        state.rotary_dim,
        state.layer_types,
        params,
        int(config.max_position_embeddings),
        unscaled,
    )


def apply_plan(config: Any, plan: ScalingPlan) -> None:
    """Write a plan into a config (in place): rope_parameters, max_position_embeddings and our provenance."""
    compat.set_rope_parameters(config, plan.rope_parameters, plan.max_position_embeddings)
    mine: dict[str, Any] = {"scaling": plan.spec.to_dict(), "rope_theta": plan.base}
    if plan.layer_types:
        mine["layers"] = {lt: plan.unscaled[lt] for lt in plan.layer_types}
    setattr(config, PROVENANCE_KEY, mine)


def scale_config(config: Any, spec: RopeScaling) -> RopeScaling:
    """Set `spec` on a config (in place); returns the spec with L resolved."""
    plan = plan_scaling(config, spec)
    apply_plan(config, plan)
    return plan.spec


def scale_model(
    model: nn.Module, scaling: RopeScaling | ScalingPlan, allow_smaller_window: bool = False
) -> RopeScaling:
    """Apply a scaling (a spec, or a plan made from this model's config) to a live model: write it into the
    config, then rebuild the model from that config with transformers' own code (weights moved over, see
    `compat.rebuild_model`), so it is the model stock transformers loads from the saved config; then check
    the live rotary tables against ropescale's math. The scaling replaces any the model had (it is always
    relative to the unscaled model; see `plan_scaling` for `allow_smaller_window`). Returns the resolved
    spec."""
    _check_rope(model)
    if isinstance(scaling, ScalingPlan):
        plan = scaling
        fits = plan_scaling(model.config, plan.spec, plan.layer_types or None, allow_smaller_window=True)
        if (fits.base, fits.rotary_dim) != (plan.base, plan.rotary_dim):
            raise ValueError(
                f"a scaling plan for base {plan.base:g}, rotary dim {plan.rotary_dim} does not fit this model "
                f"(base {fits.base:g}, rotary dim {fits.rotary_dim})"
            )
    else:
        plan = plan_scaling(model.config, scaling, allow_smaller_window=allow_smaller_window)
    apply_plan(model.config, plan)
    compat.rebuild_model(model)
    mismatch = check_rotary(model, plan)
    if mismatch:
        raise AssertionError(f"rotary embedding does not match the config after scaling: {mismatch}")
    return plan.spec


def expected_freqs(config: Any, plan: RopeState, layer_type: str | None, seq_len: int) -> RopeFreqs | None:
    """ropescale's own frequencies for one layer type at `seq_len` (None: the layer type is not scaled
    and its rope is read as it stands)."""
    per = compat.layer_rope_parameters(config)
    scaled = layer_type is None or layer_type in plan.layer_types
    params = per.get(layer_type, {})
    if not scaled:
        if params.get("rope_type") != "default":
            return None
        return compute_freqs(compat.rotary_dim(config, layer_type), params["rope_theta"], RopeScaling())
    unscaled = getattr(plan, "unscaled", {}).get(layer_type) or {}
    if unscaled.get("rope_type", params.get("rope_type")) == "proportional":
        partial = params.get("partial_rotary_factor", 1.0)
        factor = plan.spec.factor if plan.spec.rope_type == "linear" else 1.0
        return proportional_freqs(compat.head_dim(config, layer_type), plan.base, partial, factor)
    base = float(unscaled.get("rope_theta", plan.base))
    return compute_freqs(compat.rotary_dim(config, layer_type), base, plan.spec, seq_len)


def check_rotary(model: nn.Module, plan: RopeState | None = None, rtol: float = 1e-5) -> list[str]:
    """Compare every live rotary table (per layer type where the model nests them) with a plan (default:
    the scaling the model's config carries), inside the original window and at the new one (dynamic and
    longrope switch there). Returns a list of mismatch descriptions (empty = good)."""
    state = plan or current_plan(model.config)
    modules = compat.rotary_modules(model)
    if not modules:
        return ["no rotary module (no inv_freq buffer) found in the model"]
    orig = state.spec.original_max_position_embeddings or model.config.max_position_embeddings
    new = state.spec.new_window or orig
    problems = []
    for name, module in modules:
        for layer_type in compat.rotary_layer_types(module):
            where = ".".join(p for p in (name or "rotary", layer_type) if p)
            for seq_len in sorted({orig, new, 2 * new}):
                expected = expected_freqs(model.config, state, layer_type, seq_len)
                if expected is None:
                    continue
                want, want_attn = expected
                live, live_attn = compat.live_rotary(module, seq_len, layer_type)
                if live.shape != want.shape or not torch.allclose(live, want, rtol=rtol, atol=0):
                    err = (live - want).abs().div(want.abs().clamp_min(1e-30)).max().item()
                    err = err if live.shape == want.shape else math.inf
                    problems.append(f"{where}: inv_freq at length {seq_len} off by {err:.2e} (relative)")
                if not math.isclose(live_attn, want_attn, rel_tol=rtol):
                    problems.append(
                        f"{where}: attention factor at length {seq_len} is {live_attn}, expected {want_attn}"
                    )
    compat.reset_rotary(model)
    return problems


def logits_match(live: Any, built: Any, tokens: int = 8, rtol: float = 1e-5) -> str | None:
    """None when two models give the same logits (max relative difference < rtol) on `tokens` random
    tokens placed at the end of the scaled window (positions past the original one), else what differs."""
    window = int(live.config.max_position_embeddings)
    scaled = current_plan(live.config).spec.new_window or window
    device = next(live.parameters()).device
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, live.config.vocab_size, (1, tokens), generator=generator).to(device)
    positions = torch.arange(max(scaled, tokens) - tokens, max(scaled, tokens), device=device)[None]
    with torch.no_grad():
        a = live(ids, position_ids=positions).logits.float()
        b = built(ids, position_ids=positions).logits.float()
    compat.reset_rotary(live)
    err = float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
    return (
        None
        if err < rtol
        else f"logits differ by {err:.2e} (relative) at positions {positions[0, 0].item()}+"
    )
