"""The paper's h_j and a(s) read off a real model: pre-RoPE q/k from forward hooks on a sample text.

For a query vector q (at position m) and a key vector k (at position n) of one head, transformers' LLaMA
layout pairs dimension j with j + d/2 ("rotate_half"), so with z(x)_j = x_j + i x_{j+d/2} the rotated dot
product is Re[z(q) conj(z(k)) e^{i (m - n) theta_j}] summed over j, i.e. the paper's Eq. 3 with

    h_j = z(q)_j conj(z(k)_j) = (q_j + i q_{j+d/2})(k_j - i k_{j+d/2}),   a(s) = Re sum_j h_j e^{i s theta_j}.

a(s) is the score before the 1/sqrt(d) softmax scaling and before a method's attention factor (YaRN and
LongRoPE multiply it by attention_factor^2). With grouped-query attention each key/value head serves
num_attention_heads / num_key_value_heads consecutive query heads (transformers' repeat_kv). All analysis is
float64 on the CPU.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models import compat


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The attention modules in layer order: modules with separate q_proj and k_proj."""
    found = [m for _, m in model.named_modules() if hasattr(m, "q_proj") and hasattr(m, "k_proj")]
    if not found:
        raise ValueError(
            "found no attention module with separate q_proj and k_proj; models with a fused qkv projection "
            "are not supported by `ropescale theory`"
        )
    return found


def _pre_rope_source(attn: nn.Module, name: str) -> nn.Module:
    """The last module before RoPE: q_norm/k_norm where the model has them (Qwen3, OLMo 2), else the projection."""
    norm = getattr(attn, f"{name}_norm", None)
    return norm if isinstance(norm, nn.Module) else getattr(attn, f"{name}_proj")


@torch.no_grad()
def capture_qk(model: nn.Module, input_ids: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Run one sequence input_ids (1, T) and return per layer the pre-RoPE (q (H, T, D), k (Hkv, T, D)),
    float64 on the CPU."""
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"expected input_ids of shape (1, T), got {tuple(input_ids.shape)}")
    store: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    modules = attention_modules(model)

    tokens = input_ids.shape[1]

    def hook(key: tuple[int, str], head_dim: int):
        def fn(_module, _inputs, output):
            store[key] = heads_first(output.detach(), tokens, head_dim)

        return fn

    for i, attn in enumerate(modules):
        for name in ("q", "k"):
            source = _pre_rope_source(attn, name)
            handles.append(source.register_forward_hook(hook((i, name), attn.head_dim)))
    try:
        compat.reset_rotary(model)  # dynamic NTK: same frequencies whatever ran before
        model(input_ids=input_ids.to(next(model.parameters()).device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    cpu = {key: value.to("cpu", torch.float64) for key, value in store.items()}
    return [(cpu[(i, "q")], cpu[(i, "k")]) for i in range(len(modules))]


def heads_first(x: torch.Tensor, tokens: int, head_dim: int) -> torch.Tensor:
    """A projection's or q/k norm's output for one sequence -> (H, T, D). Models apply the norm before or
    after moving heads first: (1, T, H * D), (1, T, H, D) (Qwen3, Cohere) and (1, H, T, D) (Gemma 3) occur."""
    if x.dim() == 3:
        return x.reshape(x.shape[0], tokens, -1, head_dim)[0].transpose(0, 1)
    if x.dim() == 4 and x.shape[-1] == head_dim and (x.shape[1] == tokens) != (x.shape[2] == tokens):
        return x[0].transpose(0, 1) if x.shape[1] == tokens else x[0]
    raise ValueError(
        f"cannot tell heads from positions in a q/k of shape {tuple(x.shape)} ({tokens} tokens, head dim "
        f"{head_dim}); use a --tokens that differs from the number of heads"
    )


def expand_kv(k: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(Hkv, T, D) -> (H, T, D): key/value head g serves query heads g*r .. g*r + r - 1 (r = H / Hkv)."""
    if num_heads % k.shape[0]:
        raise ValueError(f"{num_heads} query heads cannot share {k.shape[0]} key/value heads evenly")
    return k.repeat_interleave(num_heads // k.shape[0], dim=0)


def complex_pairs(x: torch.Tensor) -> torch.Tensor:
    """rotate_half layout (..., d) -> (..., d/2) complex128: z_j = x_j + i x_{j+d/2}."""
    half = x.shape[-1] // 2
    return torch.complex(x[..., :half].to(torch.float64), x[..., half:].to(torch.float64))


def h_coefficients(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """h_j = z(q)_j conj(z(k)_j): q, k (..., d) broadcastable -> (..., d/2) complex128."""
    return complex_pairs(q) * complex_pairs(k).conj()


def scores(h: torch.Tensor, distances: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """a(s) = Re sum_j h_j e^{i s theta_j}: h (..., d/2) complex, distances (S,), theta (d/2,) -> (..., S)."""
    angles = distances.to(torch.float64)[:, None] * theta.to(torch.float64)[None, :]  # (S, d/2)
    return h.real @ angles.cos().T - h.imag @ angles.sin().T


def score_range(
    h: torch.Tensor, theta: torch.Tensor, start: int, stop: int, chunk: int = 4096
) -> tuple[float, float] | None:
    """(min, max) of a(s) over every integer s in [start, stop) and every row of h; None if empty."""
    if stop <= start:
        return None
    lo, hi = float("inf"), float("-inf")
    rows = h.reshape(-1, h.shape[-1])
    for first in range(start, stop, chunk):
        a = scores(rows, torch.arange(first, min(first + chunk, stop)), theta)
        lo, hi = min(lo, a.min().item()), max(hi, a.max().item())
    return lo, hi


def midpoint_deviation(h: torch.Tensor, theta: torch.Tensor, stop: int, chunk: int = 4096) -> float:
    """max |a(k + 1/2) - (a(k) + a(k + 1)) / 2| over k in [0, stop - 1) and every row of h: the quantity
    Theorem 2.1 bounds, at the midpoints where its bound is largest. h (..., d/2), theta (d/2,)."""
    rows = h.reshape(-1, h.shape[-1])
    worst = 0.0
    for first in range(0, stop - 1, chunk):
        k = torch.arange(first, min(first + chunk, stop - 1), dtype=torch.float64)
        ends = scores(rows, torch.cat((k, k[-1:] + 1)), theta)  # a(k) for k .. last + 1
        linear = (ends[:, :-1] + ends[:, 1:]) / 2
        worst = max(worst, (scores(rows, k + 0.5, theta) - linear).abs().max().item())
    return worst


def max_abs_h(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """max over causal pairs n <= m of |h_j| per head and frequency: q, k (H, T, d) -> (H, d/2). Exact,
    because |h_j| = |z(q_m)_j| |z(k_n)_j| factorises: a running max over n does it in O(T)."""
    zq, zk = complex_pairs(q).abs(), complex_pairs(k).abs()
    return (zq * zk.cummax(dim=1).values).amax(dim=1)


def sample_pairs(length: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` (m, n) position pairs with 0 <= n <= m < length, uniform over m then n (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    m = torch.randint(0, length, (count,), generator=gen)
    n = (torch.rand(count, generator=gen, dtype=torch.float64) * (m + 1)).floor().long()
    return m, n


def layer_stats(
    q: torch.Tensor,
    k: torch.Tensor,
    pairs: tuple[torch.Tensor, torch.Tensor],
    theta: torch.Tensor,
    scaled: torch.Tensor,
    windows: tuple[int, int],
) -> dict[str, Any]:
    """One layer: max|h| (all causal pairs of the sample); for the sampled pairs, the largest deviation of
    a(s) from linear interpolation at midpoints of [0, L) with the plain frequencies `theta` (what Theorem
    2.1 bounds), and the range of a(s) at every integer distance inside [0, L) and beyond [L, L') with the
    method's frequencies `scaled`. q (H, T, d), k (Hkv, T, d); pairs = (m, n) index tensors (P,)."""
    k = expand_kv(k, q.shape[0])
    per_head = max_abs_h(q, k).amax(dim=-1)  # (H,)
    m, n = pairs
    h = h_coefficients(q[:, m], k[:, n])  # (H, P, d/2)
    orig, new = windows
    return {
        "max_abs_h": per_head.max().item(),
        "max_abs_h_per_head": per_head.tolist(),
        "midpoint_deviation": midpoint_deviation(h, theta, orig),
        "score_inside": score_range(h, scaled, 0, orig),
        "score_beyond": score_range(h, scaled, orig, new),
    }
