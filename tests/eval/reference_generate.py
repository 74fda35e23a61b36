"""The hand-written generation loop ropescale used before it called transformers' `generate`, kept as the
reference its outputs must equal: one prefill (logits for the last position only), then one token at a time
with the KV cache; greedy, or temperature + top-p sampling from an explicit `torch.Generator`."""

from __future__ import annotations

import inspect

import torch

from ropescale.models.compat import reset_rotary


def nucleus_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """softmax(logits / T) restricted to the smallest set of most likely tokens whose probability reaches
    `top_p` (Holtzman et al. 2020), renormalised. logits: (V,) -> (V,) float32."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p >= 1.0:
        return probs
    sorted_p, order = probs.sort(descending=True)
    before = sorted_p.cumsum(0) - sorted_p  # mass of the tokens ranked above each one
    sorted_p = torch.where(before < top_p, sorted_p, torch.zeros_like(sorted_p))
    out = torch.zeros_like(probs).scatter(0, order, sorted_p)
    return out / out.sum()


@torch.inference_mode()
def reference_generate(model, prompt, max_new_tokens, stop, temperature=0.0, top_p=1.0, generator=None):
    reset_rotary(model)
    out = model(input_ids=prompt[None], use_cache=True, logits_to_keep=1)
    tokens: list[int] = []
    while len(tokens) < max_new_tokens:
        logits = out.logits[0, -1]
        if temperature <= 0:
            token = int(logits.argmax())
        else:
            probs = nucleus_probs(logits, temperature, top_p)
            token = int(torch.multinomial(probs, 1, generator=generator))
        tokens.append(token)
        if token in stop or len(tokens) == max_new_tokens:
            break
        cache = getattr(out, "cache", None) or out.past_key_values  # transformers >= 5.24 calls it `cache`
        key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        out = model(input_ids=torch.tensor([[token]]), use_cache=True, **{key: cache})
    return tokens
