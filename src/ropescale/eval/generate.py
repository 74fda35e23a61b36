"""Token generation for the evaluations: one prefill of the prompt (logits for its last position only),
then one token at a time with the KV cache. Greedy (temperature 0) or temperature + top-p sampling from
an explicit `torch.Generator`, so a seeded run is reproducible and independent of global RNG state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..models.compat import cache_kwargs, output_cache, reset_rotary


def nucleus_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Sampling distribution over the vocabulary: softmax(logits / T) restricted to the smallest set of
    most likely tokens whose probability reaches `top_p` (Holtzman et al. 2020), renormalised.
    logits: (V,) -> (V,) float32."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p >= 1.0:
        return probs
    sorted_p, order = probs.sort(descending=True)
    before = sorted_p.cumsum(0) - sorted_p  # mass of the tokens ranked above each one
    sorted_p = torch.where(before < top_p, sorted_p, torch.zeros_like(sorted_p))
    out = torch.zeros_like(probs).scatter(0, order, sorted_p)
    return out / out.sum()


def next_token(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> int:
    """Greedy when temperature is 0, otherwise a draw from `nucleus_probs`. logits: (V,)."""
    if temperature <= 0:
        return int(logits.argmax())
    probs = nucleus_probs(logits, temperature, top_p)
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end a generation: the tokenizer's EOS and the model's generation-config EOS ids."""
    ids = {tokenizer.eos_token_id}
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(gen if isinstance(gen, Iterable) else [gen])
    return {int(i) for i in ids if i is not None}


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
    """New token ids after `prompt` (1-D ids), at most `max_new_tokens`, ending at a stop id (included)."""
    reset_rotary(model)  # dynamic scaling must see this prompt's length, not an earlier one
    device = next(model.parameters()).device
    out = model(input_ids=prompt[None].to(device), use_cache=True, logits_to_keep=1)
    tokens: list[int] = []
    while len(tokens) < max_new_tokens:
        token = next_token(out.logits[0, -1], temperature, top_p, generator)
        tokens.append(token)
        if token in stop or len(tokens) == max_new_tokens:
            break
        step = torch.tensor([[token]], device=device)
        out = model(input_ids=step, use_cache=True, **cache_kwargs(model, output_cache(out)))
    return tokens
