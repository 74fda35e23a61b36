"""Causal-LM loss that never materialises full-vocabulary logits for the whole sequence.

The model body runs as usual and returns hidden states h: (B, T, D). The output layer and cross-entropy
then run over chunks of `chunk` positions: logits (chunk, V) in float32, the summed loss, and, in the same
pass, the gradients with respect to h and to the output weight (softmax - one-hot, times W or h). Backward
only scales those stored gradients, so nothing is recomputed and peak memory holds one chunk of logits
instead of B*T*V (SmolLM2 at 4096 tokens: 0.8 GB of float32 logits, twice over with their gradient).
Under torch.no_grad() (validation) no gradient is built: only the logits and the loss.

Precision: the three matmuls (logits, grad h, grad W) run in the autocast dtype when autocast is on, like
every other linear layer under autocast, and in float32 otherwise; the softmax, the loss sum and the
weight gradient's sum over chunks are always float32.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

IGNORE = -100
AUTO_CHUNK_LOGITS = 2**24  # ~64 MB of float32 logits per chunk


def auto_chunk(vocab_size: int) -> int:
    """Positions per chunk so that one chunk of float32 logits stays near AUTO_CHUNK_LOGITS elements
    (SmolLM2, vocabulary 49152: 341 positions; the tiny model, 2048: 8192, i.e. no chunking)."""
    return max(64, AUTO_CHUNK_LOGITS // vocab_size)


class _ChunkedLinearCE(torch.autograd.Function):
    """sum_i CE(h_i W^T, y_i) over rows with y_i != -100. h: (N, D), W: (V, D), y: (N,) -> scalar fp32."""

    @staticmethod
    def forward(ctx, hidden, weight, labels, chunk, grads):
        # forward always runs with grad mode off and needs_input_grad ignores torch.no_grad(), so the
        # caller's grad mode comes in as `grads`
        want_h, want_w = grads and ctx.needs_input_grad[0], grads and ctx.needs_input_grad[1]
        on = hidden.device.type
        cast = torch.get_autocast_dtype(on) if torch.is_autocast_enabled(on) else None
        grad_h = torch.empty_like(hidden) if want_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_w else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h, y = hidden[start : start + chunk], labels[start : start + chunk]
            logits = (h @ weight.T).float()  # (c, V): the only vocabulary-sized tensor alive
            valid = y != IGNORE
            target = y.clamp(min=0)
            lse = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(1, target[:, None]).squeeze(1)
            total += torch.where(valid, lse - picked, 0.0).sum()
            if not (want_h or want_w):
                continue
            probs = logits.sub_(lse[:, None]).exp_()  # softmax, reusing the logits' memory
            probs[torch.arange(len(y), device=y.device), target] -= 1.0
            probs.mul_(valid[:, None])  # d(sum CE)/d(logits), (c, V) float32
            if want_h:
                grad_h[start : start + chunk] = probs.to(hidden.dtype) @ weight
            if want_w:  # (V, c) @ (c, D) in the compute dtype, summed over chunks in float32
                grad_w += probs.T.to(cast) @ h.to(cast) if cast is not None else probs.T @ h.float()
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        if grad_h is not None:
            grad_h = grad_h * grad_out.to(grad_h.dtype)
        if grad_w is not None:
            grad_w = (grad_w * grad_out).to(ctx.weight_dtype)
        return grad_h, grad_w, None, None, None


def chunked_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, chunk: int = 1024):
    """Summed next-token cross-entropy and the number of scored tokens.

    hidden: (B, T, D) final hidden states; weight: (V, D) output layer; labels: (B, T) token ids with -100
    where no loss is wanted. Position t predicts labels[t + 1] (transformers' convention)."""
    shifted = torch.cat([labels[:, 1:], labels.new_full((labels.shape[0], 1), IGNORE)], dim=1)
    flat_h = hidden.reshape(-1, hidden.shape[-1])
    flat_y = shifted.reshape(-1)
    total = _ChunkedLinearCE.apply(flat_h, weight, flat_y, chunk, torch.is_grad_enabled())
    return total, (flat_y != IGNORE).sum()


def output_layer(lm: nn.Module) -> nn.Linear:
    """The model's output projection, checked to be a plain bias-free linear layer with no logit
    transformation (softcapping, scaling) that the chunked loss would skip."""
    head = lm.get_output_embeddings()
    config = lm.config
    for key in ("final_logit_softcapping", "logit_softcapping", "logits_scaling", "logit_scale"):
        value = getattr(config, key, None)
        if value not in (None, 1, 1.0):
            raise ValueError(f"model type {config.model_type!r} transforms its logits ({key}); not supported")
    if not isinstance(head, nn.Linear) or head.bias is not None:
        raise ValueError(f"model type {config.model_type!r} has no plain linear output layer; not supported")
    return head


class CausalLMLoss(nn.Module):
    """Wraps a causal LM so one forward returns (summed loss, scored tokens). It is the unit that FSDP
    shards last (the root), so the embedding, final norm and output layer are gathered for its forward."""

    def __init__(self, lm: nn.Module, chunk: int = 0):
        super().__init__()
        self.lm = lm
        self.chunk = chunk or auto_chunk(output_layer(lm).weight.shape[0])

    def forward(
        self, input_ids: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """input_ids, labels, position_ids: (B, T); position_ids None = contiguous 0..T-1."""
        hidden = decoder(self.lm)(
            input_ids=input_ids, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        return chunked_lm_loss(hidden, output_layer(self.lm).weight, labels, self.chunk)


def decoder(lm: nn.Module) -> nn.Module:
    """The decoder under a causal LM's head: the attribute its base_model_prefix names, or `model` where
    that prefix belongs to another class (Llama 4's text model says `language_model`)."""
    body = getattr(lm, lm.base_model_prefix, None)
    return body if isinstance(body, nn.Module) else lm.model


def reference_loss(
    lm: Any, input_ids: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same quantity through transformers' own full-logits path (for tests and the benchmark)."""
    logits = lm(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits.float()
    shifted = labels[:, 1:].reshape(-1)
    loss = nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), shifted, ignore_index=IGNORE, reduction="sum"
    )
    return loss, (shifted != IGNORE).sum()
