"""`ropescale theory`: the paper's bounds measured on a model (per layer), and the paper's figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

import torch

from .. import outputs
from ..config import RopeScaling, TheoryConfig
from ..data.corpora import read_text_file
from ..models import plan_scaling, rope_state, scale_model
from ..models.prepare import prepare_model
from ..models.scale import current_plan, format_layer_ropes, layer_ropes, standard_base
from ..rope import base_bound, base_inv_freq, format_base_bound
from ..rope.resolution import DEFAULT_ANGLE_RESOLUTION, format_resolution, resolution
from ..theory.bounds import (
    B_theta,
    interpolation_bound_corrected_worst,
    interpolation_bound_worst,
    ratio_lower_bound,
    ratio_lower_bound_corrected,
    triangle_bound,
)
from ..theory.figures import write_figures
from ..theory.generalised import regime, scaled_theta, windows
from ..theory.model import capture_qk, layer_stats, sample_pairs
from ..theory.short_range import attention_profiles, format_short_range, profiles_plot, short_range_rows


def default_text() -> Path:
    """Python's own textwrap.py: plain English prose and code, present wherever Python is."""
    import textwrap

    return Path(textwrap.__file__)


def sample_ids(tokenizer: Any, path: Path, tokens: int) -> torch.Tensor:
    """The first `tokens` tokens of a text file, (1, T)."""
    text = read_text_file(path, "--text")
    ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :tokens]
    if ids.shape[1] < 2:
        raise ValueError(f"--text {path}: fewer than 2 tokens")
    return ids


def analyse(
    model: Any,
    spec: RopeScaling,
    input_ids: torch.Tensor,
    pairs: int,
    seed: int,
    delta: float = DEFAULT_ANGLE_RESOLUTION,
) -> dict[str, Any]:
    """Per layer: max|h| over the sample's causal pairs, the Theorem 2.1 and Eq. 8 bounds at the new window,
    and the measured range of a(s) with the method's frequencies inside [0, L) and beyond [L, L')."""
    state = current_plan(model.config)
    d, (base, note) = state.rotary_dim, standard_base(model.config, state)
    orig, new = windows(spec)
    theta, scaled = base_inv_freq(d, base), scaled_theta(d, base, spec)
    beyond = torch.arange(orig, new)
    b_plain = B_theta(beyond, theta).max().item() if new > orig else None
    b_method = B_theta(beyond, scaled).max().item() if new > orig else None
    qk = capture_qk(model, input_ids)
    idx = sample_pairs(input_ids.shape[1], pairs, seed)
    layers = []
    for i, (q, k) in _analysed_layers(model.config, state.layer_types, qk):
        if q.shape[-1] != d:
            raise ValueError(f"head_dim {q.shape[-1]} != rotary dim {d}: partial RoPE is not supported here")
        row = {"layer": i, **layer_stats(q, k, idx, theta, scaled, (orig, new))}
        layers.append({**row, **_bounds(d, base, row["max_abs_h"], b_plain, b_method)})
    return {
        "rotary_dim": d,
        "base": base,
        "layer_types": list(state.layer_types),
        "layer_ropes": layer_ropes(model.config),
        "table_note": note,
        "scaling": spec.to_dict(),
        **regime(d, base, spec),
        "num_heads": qk[0][0].shape[0],
        "num_kv_heads": qk[0][1].shape[0],
        "tokens": int(input_ids.shape[1]),
        "pairs": pairs,
        "max_B_beyond": b_plain,
        **_ratios(d, base, b_plain),
        "resolution": resolution(d, base, spec, delta),
        "base_bound": base_bound(d, base, spec),
        "layers": layers,
    }


def _analysed_layers(config: Any, scaled: tuple[str, ...], qk: list) -> list[tuple[int, Any]]:
    """(layer index, (q, k)) of the layers the scaling applies to: all of them for one rope dict, else
    those whose config.layer_types entry is a scaled layer type (the others keep a rope of their own)."""
    kinds = getattr(config, "layer_types", None)
    if not scaled or not kinds:
        return list(enumerate(qk))
    if len(kinds) != len(qk):
        raise ValueError(f"found {len(qk)} attention modules for {len(kinds)} layer types in the config")
    return [(i, x) for i, x in enumerate(qk) if kinds[i] in scaled]


def _opt_mul(x: float, y: float | None) -> float | None:
    return None if y is None else x * y


def _bounds(
    d: int, base: float, max_h: float, b_plain: float | None, b_method: float | None
) -> dict[str, Any]:
    """One layer's bounds from its max|h| (b_*: max B(s) over [L, L') with plain / the method's theta)."""
    return {
        "interpolation_bound": interpolation_bound_corrected_worst(d, base, max_h),
        "interpolation_bound_paper": interpolation_bound_worst(d, base, max_h),
        "extrapolation_bound": _opt_mul(2 * max_h, b_plain),
        "method_abel_bound_beyond": _opt_mul(2 * max_h, b_method),
        "triangle_bound": triangle_bound(d, max_h),
    }


def _ratios(d: int, base: float, b_plain: float | None) -> dict[str, Any]:
    """Extrapolation / interpolation bound at L' (max|h| cancels), with the corrected and paper constants."""
    return {
        "paper_constant_ratio": interpolation_bound_worst(d, base, 1.0)
        / interpolation_bound_corrected_worst(d, base, 1.0),
        "ratio_at_new_window": _opt_mul(ratio_lower_bound_corrected(d, base) / d, b_plain),
        "ratio_at_new_window_paper": _opt_mul(ratio_lower_bound(base) / d, b_plain),
    }


def model_report(cfg: TheoryConfig) -> dict[str, Any]:
    """The model runs as it was trained (its own scaling, if any, and at most its window), so h_j are the
    trained ones; the chosen scaling (`cfg.rope`, relative to the unscaled model) only changes the angles."""
    path = cfg.text or default_text()
    model, tokenizer, own = prepare_model(cfg.model, cfg.load, None)
    spec = (
        own
        if cfg.rope is None
        else plan_scaling(model.config, cfg.rope, allow_smaller_window=cfg.load.allow_smaller_window).spec
    )
    trained = own.new_window or model.config.max_position_embeddings
    ids = sample_ids(tokenizer, path, min(cfg.tokens, trained))
    return {
        "model": cfg.model,
        "text": str(path),
        **analyse(model, spec, ids, cfg.pairs, cfg.seed, cfg.angle_resolution),
    }


def short_range_report(cfg: TheoryConfig) -> dict[str, Any]:
    """Attention profiles at offsets 0..K on the first tokens of the sample text for MODEL (the reference,
    with its own scaling), MODEL with the scaling flags, and each --compare model; all see the same token
    ids, at most the reference's trained window."""
    path = cfg.text or default_text()
    model, tokenizer, own = prepare_model(cfg.model, cfg.load, None)
    trained = own.new_window or model.config.max_position_embeddings
    ids = sample_ids(tokenizer, path, min(cfg.tokens, trained))
    if ids.shape[1] <= cfg.offsets:
        raise ValueError(f"--text {path}: {ids.shape[1]} tokens, --offsets {cfg.offsets} needs more")
    state = rope_state(model.config)
    profiles = {cfg.model: attention_profiles(model, ids, cfg.offsets)}
    spec = own
    if cfg.rope is not None:
        spec = scale_model(model, cfg.rope, cfg.load.allow_smaller_window)
        profiles[f"{cfg.model} ({spec.rope_type} x{spec.factor:g}, untuned)"] = attention_profiles(
            model, ids, cfg.offsets
        )
    del model
    text = read_text_file(path, "--text")
    for name in cfg.compare:
        other, tok, _ = prepare_model(name, cfg.load, None)
        if not torch.equal(tok(text, return_tensors="pt")["input_ids"][:, : ids.shape[1]], ids):
            raise ValueError(f"--compare {name}: its tokenizer splits --text differently from MODEL's")
        profiles[name] = attention_profiles(other, ids, cfg.offsets)
        del other
    rows = short_range_rows(profiles, cfg.model, cfg.local_within, cfg.local_mass, cfg.keep_similarity)
    if cfg.plot is not None:
        profiles_plot(profiles, cfg.plot)
    return {
        "model": cfg.model,
        "text": str(path),
        "tokens": int(ids.shape[1]),
        "offsets": cfg.offsets,
        "reference": cfg.model,
        "resolution": resolution(state.rotary_dim, state.base, spec, cfg.angle_resolution),
        "rows": rows,
        "plot": None if cfg.plot is None else str(cfg.plot),
    }


class TheoryResult(TypedDict, total=False):
    """What `theory` returns; --out holds it without `json`."""

    json: bool
    config: dict[str, Any]
    environment: dict[str, str]
    model_report: dict[str, Any]  # MODEL: the bounds and h_j measured per layer
    short_range: dict[str, Any]  # --short-range: attention profiles per model
    figures: dict[str, Any]  # --figures: the files written and their numbers


def run_theory(cfg: TheoryConfig) -> TheoryResult:
    if cfg.model is not None:  # the sample text is checked as --data's files are, before the model loads
        read_text_file(cfg.text or default_text(), "--text")
    if cfg.figures is not None:  # fail before the slow work, never replace a result silently
        outputs.check_out_dir(cfg.figures, cfg.overwrite, "--figures")
    for flag, path in (("--out", cfg.out), ("--plot", cfg.plot)):
        if path is not None:
            outputs.check_out_file(path, flag, overwrite=cfg.overwrite)
    result: TheoryResult = {
        "json": cfg.json,
        "config": outputs.jsonable(cfg),
        "environment": outputs.environment(),
    }
    if cfg.short_range:
        result["short_range"] = short_range_report(cfg)
    elif cfg.model is not None:
        result["model_report"] = model_report(cfg)
    if cfg.figures is not None:
        extra = {"config": result["config"], "environment": result["environment"]}
        result["figures"] = write_figures(
            cfg.figures,
            cfg.head_dim,
            cfg.base,
            cfg.window,
            cfg.eps,
            cfg.fit_dtype,
            cfg.seed,
            cfg.overwrite,
            extra,
        )
    if cfg.out is not None:
        outputs.write_json(cfg.out, {k: v for k, v in result.items() if k != "json"})
    return result


# ----------------------------------------------------------------------------- text output


def _range(r: tuple[float, float] | None) -> str:
    return "-" if r is None else f"[{r[0]:.3g}, {r[1]:.3g}]"


def _opt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def format_model(r: dict[str, Any]) -> list[str]:
    sc = r["scaling"]
    orig, new = r["original_window"], r["new_window"]
    lines = [
        f"{r['model']}: rotary dim {r['rotary_dim']}, base {r['base']:g}, {r['num_heads']} heads / "
        f"{r['num_kv_heads']} kv heads; method {sc['rope_type']}, factor {sc['factor']:g}: L = {orig} -> L' = {new}",
    ]
    if r.get("layer_types"):
        lines += format_layer_ropes(r.get("layer_ropes", []))
        lines.append(
            f"  analysed: the {', '.join(r['layer_types'])} layers (the scaled ones), with their base and rotary "
            "dim; the other layer types keep their own rope and only see distances below their window"
        )
    if r.get("table_note"):
        lines.append(f"  {r['table_note']}")
    if r["regime"] == "original":
        lines.append(
            "  regime: no new positions (L' = L); pass --method and --factor to analyse a longer window"
        )
    elif r["regime"] == "interpolation":
        lines.append("  regime: interpolation (no dimension reaches an angle unseen in pre-training)")
    else:
        lines.append(
            f"  regime: extrapolation ({len(r['unseen_dims'])} of {r['rotary_dim'] // 2} dimensions reach unseen "
            f"angles, up to {r['max_effective_position_over_L']:.2f} L)"
        )
    lines += format_resolution(r["resolution"])
    lines += format_base_bound(r["base_bound"])
    lines += [
        f"  q/k: first {r['tokens']} tokens of {r['text']}",
        "  max|h|: over heads, frequencies and all position pairs n <= m of the sample",
        "  Thm2.1 bd: max|h| S2 / 8 with S2 = sum theta_j^2, the worst case of Theorem 2.1 with the proof's own",
        f"    constant (the paper's d max|h| / (32 ln c) is {r['paper_constant_ratio']:.3f}x that and does not "
        "always hold)",
        "  midpt dev: measured max |a(k + 1/2) - (a(k) + a(k+1))/2| over k < L, plain RoPE: what Thm 2.1 bounds",
        f"  Eq.8 bd: 2 max|h| max B(s) over L <= s < L' (max B = {_opt(r['max_B_beyond'])}); ratio "
        f"Eq.8 / Thm2.1 = {_opt(r['ratio_at_new_window'])} (paper constant: {_opt(r['ratio_at_new_window_paper'])})",
        f"  a(s): range over {r['pairs']} sampled pairs x {r['num_heads']} heads at every integer s, with the "
        "method's frequencies (before 1/sqrt(d) and any attention factor)",
        "",
        f"  {'layer':>5} {'max|h|':>8} {'Thm2.1 bd':>10} {'midpt dev':>10} {'Eq.8 bd':>9} "
        f"{'a(s), s < L':>18} {'a(s), L <= s < L' + chr(39):>20}",
    ]
    for row in r["layers"]:
        lines.append(
            f"  {row['layer']:>5} {row['max_abs_h']:>8.3g} {row['interpolation_bound']:>10.3g} "
            f"{row['midpoint_deviation']:>10.3g} {_opt(row['extrapolation_bound']):>9} "
            f"{_range(row['score_inside']):>18} {_range(row['score_beyond']):>20}"
        )
    return lines


def format_short_range_report(r: dict[str, Any]) -> list[str]:
    lines = [
        f"{r['model']}: attention at offsets 0..{r['offsets']} per head, mean over query positions "
        f"{r['offsets']}..{r['tokens'] - 1} of the first {r['tokens']} tokens of {r['text']}",
        *format_resolution(r["resolution"]),
        "",
        *format_short_range(r["rows"], r["reference"]),
    ]
    if r["plot"]:
        lines.append(f"heatmaps: {r['plot']}")
    return lines


def format_figures(f: dict[str, Any]) -> list[str]:
    f2, f5 = f["figure2"], f["figure5"]
    s5, s2 = f5["setting"], f2["setting"]
    marks = ", ".join(f"{v:.2f} at {k}" for k, v in f5["B_over_d_at"].items())
    it = f2["interpolation"]
    return [
        f"figures in {f['dir']} (d = {s5['head_dim']}, c = {s5['base']:g}, L = {s5['window']}):",
        f"  figure5.png: B(s)/d = {marks}",
        f"    min {f5['min_B_over_d']:.4f} at s = {f5['argmin_s']} on [0, 2L); bound ratio >= 64 ln c = "
        f"{f5['ratio_lower_bound']:.2f} as in the paper (at the minimum of B(s)/d: {f5['ratio_at_min']:.2f}); "
        f"with the corrected Theorem 2.1 constant >= 16 d / S2 = {f5['ratio_lower_bound_corrected']:.2f} "
        f"({f5['ratio_at_min_corrected']:.2f})",
        f"  figure2.png: fit ({s2['dtype']}, eps {s2['eps']:g}, seed {s2['seed']}; SVD keeps {f2['rank']} of "
        f"{s5['head_dim']} directions, sigma_i > {s2['rcond']:.3g} sigma_1):"
        f" max|a| {f2['max_abs_fit_inside']:.3g} on [0, L), {f2['max_abs_fit_beyond']:.3g} on [L, 2L), "
        f"{f2['max_abs_fit_interpolated']:.3g} on the interpolation grid [25, 75)",
        f"    rms residual {f2['rms_residual']:.3f} (targets N(0,1), max |y| {f2['max_abs_target']:.2f}); between "
        f"integers max |a - a_linear| = {it['max_deviation_from_linear']:.3g}; Theorem 2.1 worst case with the "
        f"fit's max|h| = {f2['max_abs_h']:.3g}: {it['theorem_bound_worst_corrected']:.3g} "
        f"(paper constant {it['theorem_bound_worst_paper']:.3g})",
    ]


def format_theory(result: TheoryResult) -> str:
    if result["json"]:
        return json.dumps({k: v for k, v in result.items() if k != "json"}, indent=2)
    lines: list[str] = []
    if "model_report" in result:
        lines += format_model(result["model_report"])
    if "short_range" in result:
        lines += format_short_range_report(result["short_range"])
    if "figures" in result:
        lines += [""] * bool(lines) + format_figures(result["figures"])
    return "\n".join(lines)
