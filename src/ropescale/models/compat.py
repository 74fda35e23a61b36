"""Every place where ropescale touches transformers' internals that changed between versions.

transformers 5.x keeps rope settings in ``config.rope_parameters`` (with ``rope_theta`` inside); 4.x used
``config.rope_scaling`` plus a top-level ``config.rope_theta``, and ``torch_dtype=`` instead of ``dtype=``.
Nothing outside this module reads those attributes directly. (transformers' GGUF loader drops a GGUF's
rope scaling; the mapping that restores it, `gguf.restore_gguf_rope`, lives in models/gguf.py.)
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

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


def _flat(params: dict[str, Any]) -> dict[str, Any]:
    params = copy.deepcopy(dict(params))
    if "rope_type" not in params:
        params["rope_type"] = params.pop("type", "default")
    params.pop("type", None)  # older spelling, kept beside rope_type by some configs (Ministral 3)
    return params


def layer_rope_parameters(config: Any) -> dict[str | None, dict[str, Any]]:
    """The rope settings by layer type, each a flat dict with ``rope_theta``: ``{None: params}`` for models
    with one rope dict, ``{layer_type: params}`` for models that nest them (Gemma 3/4, Olmo 3); {} without
    RoPE."""
    if is_nested_rope(config):
        nested = config.rope_parameters
        return {lt: _flat(p) for lt, p in nested.items() if isinstance(p, dict) and "rope_theta" in p}
    params = rope_parameters(config)
    return {} if params is None else {None: _flat(params)}


def set_rope_parameters(config: Any, params: dict[str, Any], max_position_embeddings: int) -> None:
    """Write rope settings (with ``rope_theta`` inside) and the window the way this version expects.
    `params` may be nested by layer type (keys: layer types, values: rope dicts), as `layer_rope_parameters`
    returns them."""
    params = copy.deepcopy(params)
    config.max_position_embeddings = int(max_position_embeddings)
    if any(isinstance(v, dict) for v in params.values()):
        config.rope_parameters = params
        return
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


def admits_rope(config: Any, params: dict[str, Any], max_position_embeddings: int) -> str | None:
    """None when the config class accepts these rope settings, else its reason in one line (Phi-3's config
    accepts only `default` and `longrope`). The config is not modified."""
    trial = copy.deepcopy(config)
    set_rope_parameters(trial, params, max_position_embeddings)
    try:
        if hasattr(trial, "validate"):
            trial.validate()
    except Exception as err:  # the config class's own validator, whatever it raises
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        return lines[-1] if lines else type(err).__name__
    return None


def head_dim(config: Any, layer_type: str | None = None) -> int:
    """The attention head size of a layer type (Gemma 4's full-attention layers have their own)."""
    per_layer = getattr(config, "per_layer_config", None)
    if layer_type is not None and per_layer is not None:
        with contextlib.suppress(KeyError, ValueError, TypeError):
            config = per_layer[layer_type]
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def rotary_dim(config: Any, layer_type: str | None = None) -> int:
    """The rotary dimension d: head_dim times partial_rotary_factor (from the config or its rope dict).
    A `proportional` rope (Gemma 4) rotates that many dimensions with frequencies spaced over the whole
    head; `rope.proportional_freqs` reads the head size."""
    params = layer_rope_parameters(config).get(layer_type) or {}
    partial = params.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", None)) or 1.0
    return int(head_dim(config, layer_type) * partial)


def rotary_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every rotary embedding: modules that own an ``inv_freq`` buffer (or one
    per layer type, ``{layer_type}_inv_freq``)."""
    return [(name, module) for name, module in model.named_modules() if rotary_layer_types(module)]


def rotary_layer_types(module: nn.Module) -> list[str | None]:
    """The layer types a rotary module holds tables for: [None] for one table, else the layer types."""
    names = [n for n, _ in module.named_buffers(recurse=False)]
    if "inv_freq" in names:
        return [None]
    return [n.removesuffix("_inv_freq") for n in names if n.endswith("_inv_freq") and "original" not in n]


def _from_state(model: nn.Module, config: Any) -> nn.Module:
    """transformers' own from_pretrained path, for weights already in memory: the modules are created on
    the meta device from `config`, then `model`'s tensors are taken over (no copy)."""
    built = type(model).from_pretrained(
        None,
        config=config,
        state_dict=model.state_dict(),
        attn_implementation=model.config._attn_implementation,
        **dtype_kwarg(model.dtype),
    )
    return built.to(next(model.parameters()).device)


def rebuild_model(model: nn.Module) -> None:
    """Rebuild a live model from its (updated) config the way ``from_pretrained`` builds a checkpoint, and
    adopt the new modules in place (the weights are the same tensors). Everything a family derives from its
    config at construction (rotary tables per layer type, MLA softmax scale, attention temperature) then
    follows the config, so the live model is the one stock transformers loads from the saved config."""
    fresh = _from_state(model, copy.deepcopy(model.config)).train(model.training)
    for name, child in fresh.named_children():
        setattr(model, name, child)
    model.config = fresh.config


def build_like(model: nn.Module, config: Any) -> nn.Module:
    """A model built by transformers from `config` (as from a saved checkpoint) that shares `model`'s
    weights (no copy), in eval mode: the reference a live model is checked against."""
    return _from_state(model, config).eval()


def rebuild_rotary(model: nn.Module) -> None:
    """Re-create each rotary module from the config with transformers' own code, on the same device (for a
    model whose non-persistent rotary buffers were lost, e.g. built on the meta device)."""
    for name, module in rotary_modules(model):
        device = next(module.buffers()).device
        fresh = type(module)(config=module.config).to(device)
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, fresh)


def _touch(module: nn.Module, seq_len: int, layer_type: str | None) -> None:
    inv_freq = module.inv_freq if layer_type is None else getattr(module, f"{layer_type}_inv_freq")
    x = torch.zeros(1, 1, 1, device=inv_freq.device, dtype=torch.float32)
    positions = torch.tensor([[0, seq_len - 1]], device=inv_freq.device)
    if layer_type is None:
        module(x, positions)
    else:
        module(x, positions, layer_type)


def live_rotary(module: nn.Module, seq_len: int, layer_type: str | None = None) -> tuple[torch.Tensor, float]:
    """Run a rotary module's forward at ``seq_len`` (so dynamic methods update) and return the inverse
    frequencies and attention factor it then holds for a layer type (None: its only table). The module is
    reset first (see `reset_rotary`)."""
    _touch(module, 1, layer_type)
    _touch(module, seq_len, layer_type)
    prefix = "" if layer_type is None else f"{layer_type}_"
    inv_freq = getattr(module, f"{prefix}inv_freq")
    return inv_freq.detach().to("cpu", torch.float32).clone(), float(
        getattr(module, f"{prefix}attention_scaling")
    )


def reset_rotary(model: nn.Module) -> None:
    """Put dynamic rotary modules back in their short-sequence state. transformers' dynamic NTK keeps the
    frequencies of the longest sequence seen so far until a sequence shorter than the original window
    arrives, so without a reset a result would depend on the order in which lengths were evaluated."""
    for _, module in rotary_modules(model):
        for layer_type in rotary_layer_types(module):
            _touch(module, 1, layer_type)


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


def causal_lm_class_name(config: Any) -> str | None:
    """The class name a causal LM with this config is saved under (config.json's ``architectures``); a
    config built by transformers' GGUF loader has none, so transformers' auto mapping names it."""
    names = getattr(config, "architectures", None) or []
    return names[0] if names else MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.model_type)


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
