"""Every place where ropescale touches transformers' internals that changed between versions.

transformers 5.x keeps rope settings in ``config.rope_parameters`` (with ``rope_theta`` inside); 4.x used
``config.rope_scaling`` plus a top-level ``config.rope_theta``, and ``torch_dtype=`` instead of ``dtype=``.
Nothing outside this module reads those attributes directly. transformers' GGUF loader also drops a GGUF's
rope scaling; the mapping that restores it (`restore_gguf_rope`) lives here too, at the end.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn

from ..rope import base_inv_freq, compute_freqs
from ..rope.spec import RopeScaling

TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])


def dtype_kwarg(dtype: torch.dtype) -> dict[str, Any]:
    """The from_pretrained / from_config keyword for the weights' dtype."""
    return {"dtype": dtype} if TRANSFORMERS_MAJOR >= 5 else {"torch_dtype": dtype}


def rope_parameters(config: Any) -> dict[str, Any] | None:
    """A flat copy of the config's rope settings including ``rope_theta``; None for models without RoPE."""
    params = getattr(config, "rope_parameters", None)
    if params is None and TRANSFORMERS_MAJOR < 5:
        theta = getattr(config, "rope_theta", None)
        if theta is None:
            return None
        params = dict(getattr(config, "rope_scaling", None) or {"rope_type": "default"})
        params["rope_theta"] = theta
    if not params:
        return None
    params = copy.deepcopy(dict(params))
    if "rope_type" not in params:
        params["rope_type"] = params.pop("type", "default")
    if "rope_theta" not in params:
        return None
    return params


def is_nested_rope(config: Any) -> bool:
    """True for models with one rope dict per layer type (e.g. sliding vs full attention)."""
    params = getattr(config, "rope_parameters", None) or {}
    return any(isinstance(v, dict) for v in params.values())


def set_rope_parameters(config: Any, params: dict[str, Any], max_position_embeddings: int) -> None:
    """Write rope settings (with ``rope_theta`` inside) and the window the way this version expects."""
    params = copy.deepcopy(params)
    # transformers lets a top-level original_max_position_embeddings (Phi-3 style, or written by us for
    # llama.cpp) override the one in the rope dict: keep the two in agreement.
    if "original_max_position_embeddings" in params:
        config.original_max_position_embeddings = params["original_max_position_embeddings"]
    elif hasattr(config, "original_max_position_embeddings"):
        delattr(config, "original_max_position_embeddings")
    if TRANSFORMERS_MAJOR >= 5:
        config.rope_parameters = params
    else:
        config.rope_theta = params.pop("rope_theta")
        config.rope_scaling = None if params.get("rope_type") == "default" else params
    config.max_position_embeddings = int(max_position_embeddings)


def rotary_dim(config: Any) -> int:
    """The rotary dimension d: head_dim times partial_rotary_factor (from the config or its rope dict)."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    params = rope_parameters(config) or {}
    partial = params.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", None)) or 1.0
    return int(head_dim * partial)


def rotary_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every rotary embedding: modules that own an ``inv_freq`` buffer."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if "inv_freq" in dict(module.named_buffers(recurse=False))
    ]


def rebuild_rotary(model: nn.Module) -> None:
    """Re-create each rotary module from the (updated) config with transformers' own code, on the same
    device. This is how a scaled config takes effect in a live model without reloading the weights."""
    for name, module in rotary_modules(model):
        device = module.inv_freq.device
        fresh = type(module)(config=module.config).to(device)
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, fresh)


def _touch(module: nn.Module, seq_len: int) -> None:
    device = module.inv_freq.device
    x = torch.zeros(1, 1, 1, device=device, dtype=torch.float32)
    module(x, torch.tensor([[0, seq_len - 1]], device=device))


def live_rotary(module: nn.Module, seq_len: int) -> tuple[torch.Tensor, float]:
    """Run a rotary module's forward at ``seq_len`` (so dynamic methods update) and return the inverse
    frequencies and attention factor it then holds. The module is reset first (see `reset_rotary`)."""
    _touch(module, 1)
    _touch(module, seq_len)
    return module.inv_freq.detach().to("cpu", torch.float32).clone(), float(module.attention_scaling)


def reset_rotary(model: nn.Module) -> None:
    """Put dynamic rotary modules back in their short-sequence state. transformers' dynamic NTK keeps the
    frequencies of the longest sequence seen so far until a sequence shorter than the original window
    arrives, so without a reset a result would depend on the order in which lengths were evaluated."""
    for _, module in rotary_modules(model):
        _touch(module, 1)


def strip_quantization(config: Any) -> Any:
    """A plain copy of a config without the GGUF/bitsandbytes quantization entry (so it can be saved)."""
    config = copy.deepcopy(config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    return config


def legacy_rope_keys(config_json: Path) -> None:
    """Also write the pre-5.x keys (``rope_scaling``, top-level ``rope_theta``) into a saved config.json, so
    readers that predate ``rope_parameters`` (transformers 4.x, older vLLM, llama.cpp's converter) see the
    scaling. transformers 5 prefers ``rope_scaling`` when both exist, so the two must agree; they do."""
    data = json.loads(config_json.read_text())
    params = data.get("rope_parameters")
    if not isinstance(params, dict) or "rope_theta" not in params:
        return
    data["rope_theta"] = params["rope_theta"]
    scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    if scaling.get("rope_type", "default") != "default":
        data["rope_scaling"] = scaling
    else:
        data.pop("rope_scaling", None)
    if "original_max_position_embeddings" in scaling:  # llama.cpp's converter reads it at the top level
        data["original_max_position_embeddings"] = scaling["original_max_position_embeddings"]
    config_json.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def set_activation_checkpointing(model: nn.Module, enable: bool, every_n_layers: int = 1) -> None:
    """Recompute decoder layers in backward (non-reentrant torch checkpointing), on every n-th layer.
    transformers >= 5.2x calls it activation checkpointing (with every_n_layers); earlier versions call it
    gradient checkpointing and can only do every layer."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        if enable:
            model.activation_checkpointing_enable(kwargs, every_n_layers=every_n_layers)
        else:
            model.activation_checkpointing_disable()
    elif enable:
        if every_n_layers != 1:
            raise ValueError(
                f"--checkpoint-every-n-layers needs transformers >= 5.24, have {transformers.__version__}"
            )
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_disable()


# ----------------------------------------------------------------------------- GGUF rope metadata
# transformers' GGUF loader maps {arch}.rope.freq_base and {arch}.context_length only, so a scaled GGUF
# loads unscaled. These map llama.cpp's rope metadata (read by models/gguf.py) onto rope_parameters.

_GGUF_YARN = {
    "rope.scaling.yarn_beta_fast": "beta_fast",
    "rope.scaling.yarn_beta_slow": "beta_slow",
    # llama.cpp's converter writes transformers' attention_factor here (the whole cos/sin multiplier)
    "rope.scaling.yarn_attn_factor": "attention_factor",
}
# Fields transformers has no knob for: accepted only at the value that leaves llama.cpp's rope unchanged.
_GGUF_NEUTRAL = {
    "rope.scaling.attn_factor": (1.0,),
    "rope.scaling.yarn_ext_factor": (1.0, -1.0),  # -1: llama.cpp's "use the default" (1 for yarn)
    "rope.scaling.yarn_log_multiplier": (0.0,),
}
_GGUF_IGNORED = ("rope.scaling.finetuned", "rope.freq_base", "rope.dimension_count", "context_length")
GGUF_SCALING_TYPES = ("none", "linear", "yarn", "longrope")


def _f32(value: Any) -> float:
    """A float32 metadata value as the shortest decimal that rounds to it (2.0999999 -> 2.1)."""
    import numpy as np

    return float(str(np.float32(value)))


def gguf_rope_parameters(
    rope: Any, params: dict[str, Any], context_length: int
) -> tuple[dict[str, Any], str]:
    """The rope_parameters that make transformers compute what llama.cpp computes for a GGUF file (a
    `models.gguf.GgufRope`), from those transformers' loader produced (`params`, with rope_theta), and a
    one-line description of where the scaling came from. Raises ValueError naming the file and the field
    when the file's scaling has no exact transformers equivalent."""
    where = f"MODEL {rope.path}"
    fields = rope.fields
    kind = str(fields.get("rope.scaling.type", "none")).lower()
    if kind not in GGUF_SCALING_TYPES:
        raise ValueError(
            f"{where}: {rope.arch}.rope.scaling.type {kind!r} has no transformers equivalent "
            f"(ropescale maps {', '.join(GGUF_SCALING_TYPES)} and a rope_freqs tensor)"
        )
    _refuse_unmappable(rope, kind)
    theta = float(fields.get("rope.freq_base", params["rope_theta"]))  # the file's, as transformers reads it
    out: dict[str, Any] = {"rope_type": "default", "rope_theta": theta}
    if "rope_freqs" in rope.tensors:
        if kind != "none":
            raise ValueError(
                f"{where}: both a rope_freqs tensor and rope.scaling.type {kind}; ropescale maps one"
            )
        out.update(_llama3_from_rope_freqs(rope, theta, context_length))
        if out["rope_type"] == "default":
            return out, f"GGUF tensor rope_freqs: all 1 (no scaling), freq_base {theta:g}"
        return out, (
            f"GGUF tensor rope_freqs (per-frequency divisors) read as llama3 factor {out.get('factor', 1):g}, "
            f"original window {out.get('original_max_position_embeddings', context_length)}, low/high_freq_factor "
            f"{out.get('low_freq_factor', 1):g}/{out.get('high_freq_factor', 4):g} (fitted, reproduces it to float32)"
        )
    factor = _f32(fields.get("rope.scaling.factor", 1.0))
    orig = int(fields.get("rope.scaling.original_context_length", context_length))
    if kind == "linear" and factor != 1.0:
        out.update(rope_type="linear", factor=factor)
    elif kind == "yarn":
        out.update(rope_type="yarn", factor=factor, original_max_position_embeddings=orig)
        out.update({name: _f32(fields[key]) for key, name in _GGUF_YARN.items() if key in fields})
    elif kind == "longrope":
        out.update(_longrope_from_factors(rope, orig))
    scaled = ", ".join(f"{k.removeprefix('rope.scaling.')} {v}" for k, v in fields.items() if "scaling" in k)
    source = (
        f"GGUF metadata {rope.arch}.rope.scaling.* ({scaled})" if scaled else "GGUF metadata: no rope scaling"
    )
    return out, f"{source}, freq_base {theta:g}"


def _refuse_unmappable(rope: Any, kind: str) -> None:
    """Refuse rope.scaling.* fields transformers has no knob for, unless at llama.cpp's neutral value."""
    where = f"MODEL {rope.path}"
    known = {*_GGUF_YARN, *_GGUF_NEUTRAL, *_GGUF_IGNORED, "rope.scaling.type", "rope.scaling.factor"}
    known |= {"rope.scaling.original_context_length"}
    for key, value in rope.fields.items():
        if key.startswith("rope.scaling.") and key not in known:
            raise ValueError(f"{where}: {rope.arch}.{key} = {value!r} has no transformers equivalent")
        neutral = _GGUF_NEUTRAL.get(key)
        longrope_attention = kind == "longrope" and key == "rope.scaling.attn_factor"  # Phi-3's, mapped
        if neutral and _f32(value) not in neutral and not longrope_attention:
            raise ValueError(
                f"{where}: {rope.arch}.{key} = {value!r} has no transformers equivalent (only "
                f"{' or '.join(f'{v:g}' for v in neutral)} can be mapped)"
            )


def _longrope_from_factors(rope: Any, orig: int) -> dict[str, Any]:
    """Phi-3 LongRoPE: the rope_factors_long/short tensors and rope.scaling.attn_factor."""
    long, short = rope.tensors.get("rope_factors_long"), rope.tensors.get("rope_factors_short")
    if long is None or short is None:
        raise ValueError(
            f"MODEL {rope.path}: rope.scaling.type longrope without rope_factors_long/short tensors"
        )
    out = {"rope_type": "longrope", "long_factor": list(long), "short_factor": list(short)}
    out["original_max_position_embeddings"] = orig
    if "rope.scaling.attn_factor" in rope.fields:
        out["attention_factor"] = _f32(rope.fields["rope.scaling.attn_factor"])
    return out


def _llama3_from_rope_freqs(rope: Any, base: float, context_length: int) -> dict[str, Any]:
    """llama3 parameters that reproduce a rope_freqs tensor. The tensor holds d_i = theta_i / theta'_i,
    1 for kept frequencies, s for interpolated ones, and in between 1 / ((1 - g_i) / s + g_i) with
    g_i = (L / wavelength_i - low) / (high - low), which fixes only low/L and high/L: L is taken as
    context_length / s with low 1, high 4 (ropescale's and Meta's defaults) when that reproduces the tensor,
    else fitted with low = 1 (Meta's value) from the blended frequencies. Refused if nothing reproduces it."""
    import math

    import numpy as np

    divisors = np.array(rope.tensors["rope_freqs"], dtype=np.float64)
    dim = 2 * len(divisors)
    factor = float(f"{divisors.max():.6g}")  # float32 divisors: s to 6 digits (8.000001 -> 8)
    if factor == 1.0 and np.all(divisors == 1.0):
        return {}
    theta = base_inv_freq(dim, base).numpy()
    candidates = [(round(context_length / factor), 4.0)]
    blended = (divisors > 1 + 1e-6) & (divisors < factor * (1 - 1e-6))
    g = (1 / divisors[blended] - 1 / factor) / (1 - 1 / factor)
    inv_wavelength = theta[blended] / (2 * math.pi)
    if blended.sum() >= 2:  # L / w_i - g_i (high - 1) = 1 with low = 1
        (length, high_minus_1), *_ = np.linalg.lstsq(np.stack([inv_wavelength, -g], 1), np.ones_like(g))
        candidates.append((round(length), float(f"{high_minus_1 + 1:.6g}")))
    elif blended.sum() == 1:
        candidates.append((round((1 + 3 * g[0]) / inv_wavelength[0]), 4.0))
    for length, high in candidates:
        if length < 1 or high <= 1:
            continue
        spec = RopeScaling("llama3", factor, length, low_freq_factor=1.0, high_freq_factor=high)
        predicted = theta / compute_freqs(dim, base, spec).inv_freq.double().numpy()
        if np.allclose(predicted, divisors, rtol=1e-5, atol=0):
            return spec.to_dict()
    raise ValueError(
        f"MODEL {rope.path}: its rope_freqs tensor is not llama3 scaling (no factor, window and "
        "low/high_freq_factor reproduce it); ropescale cannot map these per-frequency factors"
    )


def restore_gguf_rope(config: Any, rope: Any) -> str:
    """Set a GGUF file's rope scaling on the config transformers' GGUF loader built (in place); returns
    where the scaling came from (see `gguf_rope_parameters`)."""
    params = rope_parameters(config)
    if params is None:
        return "GGUF metadata: no RoPE"
    restored, source = gguf_rope_parameters(rope, params, int(config.max_position_embeddings))
    if "partial_rotary_factor" in params:
        restored["partial_rotary_factor"] = params["partial_rotary_factor"]
    set_rope_parameters(config, restored, config.max_position_embeddings)
    return source
