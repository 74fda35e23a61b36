"""Token generation for the evaluations, with transformers' `generate`: greedy (temperature 0), or
temperature + top-p sampling (Holtzman et al. 2020) drawn from an explicit `torch.Generator`, so a seeded
run is reproducible and independent of global RNG state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..models.compat import reset_rotary


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end a generation: the tokenizer's EOS and the model's generation-config EOS ids."""
    ids = {tokenizer.eos_token_id}
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(gen if isinstance(gen, Iterable) else [gen])
    return {int(i) for i in ids if i is not None}


def generation_config(max_new_tokens: int, stop: set[int], temperature: float, top_p: float) -> Any:
    """Exactly these settings and no others: no top-k, no penalties, EOS = `stop` (none: run to the end)."""
    from transformers import GenerationConfig

    sample = temperature > 0
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=sample,
        temperature=temperature if sample else 1.0,
        top_p=top_p if sample else 1.0,
        top_k=0 if sample else None,
        eos_token_id=sorted(stop) or None,
        pad_token_id=min(stop) if stop else None,
    )


@torch.inference_mode()
def generate(
    model: Any,
    prompt: torch.Tensor,
    max_new_tokens: int,
    stop: set[int],
    temperature: float = 0.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[int]:
    """New token ids after `prompt` (1-D ids), at most `max_new_tokens`, ending at a stop id (included).

    transformers merges the model's own `generation_config` (top-k, repetition penalty, ...) into a call's
    settings; the evaluation's are exactly `generation_config(...)`, so the model's is swapped out for the
    call. Sampling draws from the global RNG inside transformers: it runs in a forked RNG state that starts
    from `generator`'s and is handed back to it afterwards, so `generator` advances as if it had drawn."""
    reset_rotary(model)  # dynamic scaling must see this prompt's length, not an earlier one
    device = next(model.parameters()).device
    ids = prompt[None].to(device)
    own, model.generation_config = (
        model.generation_config,
        generation_config(max_new_tokens, stop, temperature, top_p),
    )
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            if generator is not None:
                torch.set_rng_state(generator.get_state())
                if devices:  # sampling on the GPU draws from its RNG: seed it from the generator
                    torch.cuda.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            out = model.generate(ids, attention_mask=torch.ones_like(ids))
            if generator is not None and not devices:
                generator.set_state(torch.get_rng_state())
    finally:
        model.generation_config = own
    return out[0, ids.shape[1] :].tolist()
