"""Sliding-window perplexity (Press et al. 2022), the protocol of the PI paper (arXiv 2306.15595, section 3.2).

A document of N tokens x_0..x_{N-1} has N-1 targets x_1..x_{N-1} (x_0 has no context). With window L and
stride S, windows are laid out by their END position e (tokens [max(0, e-L), e)):
  - the first window is [0, min(L, N)) and scores all its targets x_1..x_{e-1};
  - each later window ends S tokens after the previous one and scores only the S tokens that are new,
    each conditioned on the L-S (or more) tokens before it inside the window;
  - the final window ends exactly at N: it scores the r <= S tokens left over, and still spans a full L
    tokens (it starts at N-L), so those tokens get MORE context than L-S, never less.
With S < L every target is scored exactly once, so a document contributes N-1 tokens. S = L is plain
chunked perplexity: non-overlapping L-token chunks whose first token is context only (nothing precedes
it in its window), so each full chunk scores L-1 tokens; a final partial chunk still spans L tokens and
scores its own tokens with context from the chunk before. S > L is refused. Documents shorter than L are scored
in one window with all the context they have (counted as `short_docs` in the result).
Corpus perplexity = exp(total NLL / total scored tokens): token-weighted over all documents, not a mean
of per-window or per-document means (as YaRN, arXiv 2309.00071, evaluates PI). Documents are tokenised once with the tokenizer's own
special tokens (LLaMA's adds BOS at the start of each document, not of each window).

Speed and memory: the model body runs on whole windows, but the LM head (and log-softmax) only on the
positions that are scored, in chunks; windows of the same shape are batched; dynamic rotary state is
reset before every forward so a result never depends on what was evaluated before it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.corpora import load_documents
from ..models.compat import reset_rotary


@dataclasses.dataclass(frozen=True)
class Window:
    """Tokens [begin, end) of a document; the last `scored` of them are scored targets."""

    begin: int
    end: int
    scored: int


def plan_windows(n_tokens: int, length: int, stride: int) -> list[Window]:
    """The Press et al. windows of a document of `n_tokens` tokens (see the module docstring)."""
    if n_tokens < 2:
        return []
    end = min(length, n_tokens)
    windows = [Window(0, end, end - 1)]
    while end < n_tokens:
        new_end = min(end + stride, n_tokens)
        begin = max(0, new_end - length)
        # with stride == length (plain chunking) the first token of a window has no context inside it
        windows.append(Window(begin, new_end, min(new_end - end, new_end - begin - 1)))
        end = new_end
    return windows


HEAD_CHUNK = 2048  # positions per LM-head call: bounds the (positions, vocab) logits held in memory


@torch.inference_mode()
def split_head(model: Any) -> tuple[Any, Any] | None:
    """(body, lm_head) when the model's logits are exactly lm_head(body(x)), checked on a few tokens;
    None otherwise (no such accessors, or extra logit processing such as soft-capping), in which case
    `score_batch` uses the model's own forward with `logits_to_keep`."""
    try:
        body, head = model.get_decoder(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if body is None or head is None:
        return None
    ids = torch.arange(1, 9, device=next(model.parameters()).device)[None]
    reset_rotary(model)
    want = model(input_ids=ids, use_cache=False).logits
    reset_rotary(model)
    hidden = getattr(body(input_ids=ids, use_cache=False), "last_hidden_state", None)
    if hidden is None:  # get_decoder() is not a bare decoder (Llama 4 returns a causal LM)
        return None
    got = head(hidden)
    return (
        (body, head) if got.shape == want.shape and torch.allclose(got, want, rtol=1e-4, atol=1e-4) else None
    )


def _nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits: (..., V), targets: (...) -> NLL (...) in float64, computed in float32."""
    flat = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    )
    return flat.double().view(targets.shape)


@torch.inference_mode()
def score_batch(model: Any, ids: torch.Tensor, scored: int, split=None) -> torch.Tensor:
    """NLL (float64, nats) of the last `scored` tokens of each row. ids: (B, T) -> (B, scored).

    Only the `scored` positions that predict those tokens go through the LM head (the last position
    would predict a token outside the window). With `split` = (body, head) the head runs in chunks of
    HEAD_CHUNK positions, so even a first window of 32k tokens never holds all its logits at once."""
    reset_rotary(model)
    targets = ids[:, -scored:]
    if split is None:
        logits = model(input_ids=ids, logits_to_keep=scored + 1, use_cache=False).logits[:, :-1]
        return _nll(logits, targets)
    body, head = split
    hidden = body(input_ids=ids, use_cache=False).last_hidden_state[:, -scored - 1 : -1]
    hidden, flat = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)
    parts = [
        _nll(head(hidden[i : i + HEAD_CHUNK]), flat[i : i + HEAD_CHUNK])
        for i in range(0, len(flat), HEAD_CHUNK)
    ]
    return torch.cat(parts).view(targets.shape)


def document_nll(
    docs: list[torch.Tensor],
    length: int,
    stride: int,
    model: Any,
    batch_tokens: int,
    progress=None,
    by_position: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-document (summed NLL, scored tokens) at window `length`. docs: 1-D token id tensors.

    Windows of equal (length, scored) from all documents are stacked into batches of at most
    `batch_tokens` tokens (at least one window). `by_position` (2, length), if given, accumulates the
    NLL sum and count of targets by their position inside the window (= the context they had)."""
    groups: dict[tuple[int, int], list[tuple[int, Window]]] = defaultdict(list)
    for d, doc in enumerate(docs):
        for w in plan_windows(len(doc), length, stride):
            groups[(w.end - w.begin, w.scored)].append((d, w))
    nll = np.zeros(len(docs))
    count = np.zeros(len(docs), dtype=np.int64)
    device = next(model.parameters()).device
    split = split_head(model) if groups else None
    for (width, scored), items in sorted(groups.items()):
        per_batch = max(1, batch_tokens // width)
        for i in range(0, len(items), per_batch):
            chunk = items[i : i + per_batch]
            ids = torch.stack([docs[d][w.begin : w.end] for d, w in chunk]).to(device)
            token_nll = score_batch(model, ids, scored, split).cpu().numpy()
            if by_position is not None:
                by_position[0, width - scored : width] += token_nll.sum(axis=0)
                by_position[1, width - scored : width] += len(chunk)
            sums = token_nll.sum(axis=1)
            for (d, _), s in zip(chunk, sums, strict=True):
                nll[d] += s
                count[d] += scored
            if progress is not None:
                progress.update(scored * len(chunk))
    return nll, count


@torch.inference_mode()
def reference_nll(model: Any, doc: torch.Tensor, length: int, stride: int) -> tuple[float, int]:
    """The naive loop, for tests and the benchmark: one window at a time, full logits for every position,
    the model's own loss with unscored labels set to -100 (written independently of `plan_windows`)."""
    n = len(doc)
    total, count, prev_end = 0.0, 0, 0
    while prev_end < n:
        end = min(length if prev_end == 0 else prev_end + stride, n)
        begin = max(0, end - length)
        ids = doc[begin:end].unsqueeze(0).to(next(model.parameters()).device)
        labels = ids.clone()
        masked = max(prev_end - begin, 1)  # context only; a window's first token is never a target
        labels[:, :masked] = -100
        reset_rotary(model)
        loss = model(input_ids=ids, labels=labels, use_cache=False).loss
        scored = end - begin - masked
        total += float(loss) * scored
        count += scored
        prev_end = end
    return total, count


def perplexity_at(
    model: Any, docs: list[torch.Tensor], length: int, stride: int, batch_tokens: int, progress=None
) -> dict[str, Any]:
    """Token-weighted perplexity over `docs` at one window length, with per-document numbers and the
    perplexity by position inside the window (eighths of the window: where extrapolation breaks down)."""
    start = time.perf_counter()
    positions = np.zeros((2, length))
    nll, count = document_nll(docs, length, stride, model, batch_tokens, progress, positions)
    seconds = time.perf_counter() - start
    tokens = int(count.sum())
    mean = float(nll.sum() / tokens) if tokens else float("nan")
    return {
        "length": length,
        "stride": stride,
        "ppl": math.exp(mean) if tokens else float("nan"),
        "nll": mean,
        "tokens": tokens,
        "documents": len(docs),
        "short_docs": int(sum(len(d) < length for d in docs)),
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 2) if seconds > 0 else None,
        "per_document": [
            {
                "index": i,
                "tokens": len(docs[i]),
                "scored": int(count[i]),
                "nll_sum": float(nll[i]),
                "ppl": math.exp(nll[i] / count[i]) if count[i] else float("nan"),
            }
            for i in range(len(docs))
        ],
        "by_position": position_buckets(positions),
        "_nll": nll,
        "_count": count,
    }


def position_buckets(positions: np.ndarray, buckets: int = 8) -> list[dict[str, Any]]:
    """Perplexity of the targets whose position in the window lies in each of `buckets` equal ranges.
    positions: (2, L) NLL sums and counts by position."""
    length = positions.shape[1]
    edges = sorted({round(i * length / buckets) for i in range(buckets + 1)})
    out = []
    for lo, hi in itertools.pairwise(edges):
        total, n = positions[0, lo:hi].sum(), int(positions[1, lo:hi].sum())
        out.append({"from": lo, "to": hi, "tokens": n, "ppl": math.exp(total / n) if n else float("nan")})
    return out


SPECIAL_TOKENS_MAX = 4  # tokens a tokenizer may add beyond one per byte (BOS, EOS, a leading-space marker)


def tokenize_documents(
    tokenizer: Any,
    data: str,
    text_field: str = "text",
    split: str = "test",
    max_docs: int | None = None,
    truncate_to: int | None = None,
) -> list[torch.Tensor]:
    """Token ids of up to `max_docs` documents (with --truncate-to: only those of >= N tokens, cut to N).
    Documents of fewer than 2 tokens have no target and are skipped."""
    docs = []
    for text in load_documents(data, text_field, split):
        if truncate_to and len(text.encode("utf-8")) + SPECIAL_TOKENS_MAX < truncate_to:
            continue  # too short for N tokens without tokenizing it: a token spans at least one byte
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        if len(ids) < max(2, truncate_to or 0):
            continue
        docs.append(torch.tensor(ids[:truncate_to] if truncate_to else ids, dtype=torch.long))
        if max_docs is not None and len(docs) >= max_docs:
            break
    if not docs:
        need = f"at least {truncate_to} tokens" if truncate_to else "at least 2 tokens"
        raise ValueError(f"--data {data}: no document with {need}")
    return docs


DEFAULT_STRIDE = 256


def default_stride(stride: int | None, lengths: list[int]) -> int:
    """The stride to use: --stride when given (at most the shortest length), else 256 or the shortest
    length when that is smaller (so `--lengths 128,512` works without a --stride)."""
    if stride is None:
        return min(DEFAULT_STRIDE, *lengths)
    if stride > min(lengths):
        raise ValueError(f"--stride {stride} must be <= every evaluation length ({min(lengths)})")
    return stride
