"""LoRA fine-tuning (optional extra `lora`: peft). Following LongLoRA (Chen et al. 2023, arXiv 2309.12307), the
embeddings and normalisation layers are trained too, which its authors found necessary for long context.
The adapters are merged into the weights when the final checkpoint is saved, so it is a plain model."""

from __future__ import annotations

from typing import Any

from torch import nn


def _lora_config(rank: int, alpha: float, targets: tuple[str, ...]) -> Any:
    try:
        from peft import LoraConfig
    except ImportError:
        raise ValueError("--lora needs the peft package: pip install 'ropescale[lora]'") from None
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(targets), bias="none")


def _trainable_extras(model: nn.Module) -> None:
    for name, param in model.named_parameters():
        if "embed_tokens" in name or "norm" in name.split(".")[-2]:
            param.requires_grad_(True)


def add_lora(lm: nn.Module, rank: int, alpha: float, targets: tuple[str, ...]) -> nn.Module:
    """The same causal LM with LoRA layers injected in place (peft), all base weights frozen except the
    embeddings and norms. Returns the inner transformers model, so the rest of the code is unchanged."""
    from peft import get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in lm.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        raise ValueError(f"--lora-targets: no module named {missing[0]!r} in this model")
    peft_model = get_peft_model(lm, _lora_config(rank, alpha, targets))
    inner = peft_model.base_model.model
    _trainable_extras(inner)
    return inner


def merged(
    config: Any, state: dict[str, Any], rank: int, alpha: float, targets: tuple[str, ...]
) -> nn.Module:
    """A plain model with the adapters of `state` (a LoRA model's full state dict) merged into its weights."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        base = AutoModelForCausalLM.from_config(config)
    peft_model = get_peft_model(base, _lora_config(rank, alpha, targets))
    peft_model.to_empty(device="cpu")
    peft_model.base_model.model.tie_weights()  # to_empty gives tied parameters separate storage
    peft_model.base_model.model.load_state_dict(state, strict=True)
    return peft_model.merge_and_unload()
