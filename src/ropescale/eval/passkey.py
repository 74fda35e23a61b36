"""Passkey retrieval (Mohtashami & Jaggi 2023; PI paper arXiv 2306.15595, section 3.3).

The prompt is the paper's, verbatim (`ropescale.prompts`), with its lines joined by "\\n":
task, filler, key line, filler, question. It is built in TOKEN space so that its length is exactly the
target length T and the key sits exactly where asked: the pieces are tokenised once and concatenated,
and the filler (the repeated garbage sentences) is cut at token granularity. Distance k is counted from
the first token of the key line ("\\nThe pass key is 12345. ...") to the end of the prompt, so k = T - p
where p is that token's index. Each trial draws a fresh random 5-digit key (seeded), decodes greedily a
few tokens and succeeds when the first integer in the answer equals the key.

A second, diagnostic score (not the paper's, never used for k_max): whether the first run of digits in the
answer has exactly the key's digits in some order. A model that finds the key line but cannot resolve
the order of neighbouring tokens (what compressing the fastest rotary frequency costs a small model)
scores here and not on the exact match; a model that never finds the key scores on neither.

Effective window (the paper's k_max): the largest k such that every tested k' <= k succeeds in at least
20% of its trials (0 when the smallest k already fails).
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import numpy as np
import torch

from .. import prompts
from .generate import eos_ids, generate

THRESHOLD = 0.2  # the paper's success rate for "the model can still retrieve at distance k"


@dataclasses.dataclass(frozen=True)
class PromptPieces:
    """Token ids of the fixed parts of the prompt, tokenised once per tokenizer."""

    head: list[int]  # task line + "\n" (with the tokenizer's BOS, if it adds one)
    filler: list[int]  # the garbage sentences repeated, longer than any prompt
    question: list[int]  # "\n" + final question

    @classmethod
    def build(cls, tokenizer: Any, length: int) -> PromptPieces:
        unit = len(tokenizer(prompts.PASSKEY_GARBAGE, add_special_tokens=False)["input_ids"])
        repeats = length // max(unit, 1) + 2
        filler = " ".join([prompts.PASSKEY_GARBAGE] * repeats)
        return cls(
            tokenizer(prompts.PASSKEY_TASK + "\n", add_special_tokens=True)["input_ids"],
            tokenizer(filler, add_special_tokens=False)["input_ids"],
            tokenizer("\n" + prompts.PASSKEY_QUESTION, add_special_tokens=False)["input_ids"],
        )


def key_ids(tokenizer: Any, key: int) -> list[int]:
    return tokenizer("\n" + prompts.passkey_key_line(key) + "\n", add_special_tokens=False)["input_ids"]


def k_range(pieces: PromptPieces, key: list[int], length: int) -> tuple[int, int]:
    """Smallest and largest feasible k for a prompt of `length` tokens."""
    return len(key) + len(pieces.question), length - len(pieces.head)


def check_prompt_lengths(tokenizer: Any, lengths: list[int]) -> None:
    """Every --lengths value holds the prompt's fixed parts and the longest (5-digit) key line."""
    pieces = PromptPieces.build(tokenizer, max(lengths))
    lo, _ = k_range(pieces, key_ids(tokenizer, 99_999), 0)
    shortest = lo + len(pieces.head)
    too_short = [n for n in lengths if n < shortest]
    if too_short:
        raise ValueError(
            f"--lengths {','.join(map(str, too_short))}: the passkey prompt needs at least {shortest} "
            "tokens with this tokenizer (task line, key line and question)"
        )


def build_prompt(pieces: PromptPieces, key: list[int], length: int, k: int) -> list[int]:
    """head | filler[:x] | key line | filler[:y] | question, exactly `length` tokens, key line at length-k."""
    lo, hi = k_range(pieces, key, length)
    if not lo <= k <= hi:
        raise ValueError(f"passkey: k={k} is not placeable in a {length}-token prompt (range {lo}..{hi})")
    after = k - len(key) - len(pieces.question)
    before = length - len(pieces.head) - k
    if max(before, after) > len(pieces.filler):
        raise ValueError("passkey: the filler text is shorter than the prompt needs")
    return pieces.head + pieces.filler[:before] + key + pieces.filler[:after] + pieces.question


def first_digits(text: str) -> str | None:
    match = re.search(r"\d+", text)
    return match.group() if match else None


def first_integer(text: str) -> int | None:
    digits = first_digits(text)
    return None if digits is None else int(digits)


def digits_found(answer: str, key: int) -> bool:
    """The first run of digits in the answer is a permutation of the key's digits (same digits, same
    count; a leading zero counts, as in "02341" for 10234)."""
    digits = first_digits(answer)
    return digits is not None and sorted(digits) == sorted(str(key))


def effective_window(table: dict[int, tuple[int, int]], threshold: float = THRESHOLD) -> int:
    """k_max from {k: (successes, trials)}: the largest k with every k' <= k at >= `threshold` success."""
    k_max = 0
    for k in sorted(table):
        successes, trials = table[k]
        if successes < threshold * trials - 1e-9:
            break
        k_max = k
    return k_max


def default_ks(length: int, count: int) -> list[int]:
    """`count` distances uniformly spaced over the window: length/count, 2*length/count, ..., length."""
    return sorted({max(1, round(i * length / count)) for i in range(1, count + 1)})


def trial_key(seed: int, length: int, grid: int, point: int, trial: int) -> int:
    """A fresh 5-digit key per (length, grid point, trial), reproducible from the seed."""
    return int(np.random.default_rng([seed, length, grid, point, trial]).integers(10_000, 100_000))


def depth_to_k(pieces: PromptPieces, key: list[int], length: int, depth: float) -> int:
    """Needle depth in [0, 1] (0 = key line right after the task line, 1 = right before the question)."""
    lo, hi = k_range(pieces, key, length)
    return hi - round(depth * (hi - lo))


def run_trial(
    model: Any, tokenizer: Any, pieces: PromptPieces, length: int, key: int, cfg, k=None, depth=None
) -> dict:
    """One prompt with `key` at distance k (clamped into the feasible range) or at a depth, greedy answer,
    scored by exact integer match."""
    ids = key_ids(tokenizer, key)
    lo, hi = k_range(pieces, ids, length)
    k_used = min(max(k, lo), hi) if depth is None else depth_to_k(pieces, ids, length, depth)
    prompt = torch.tensor(build_prompt(pieces, ids, length, k_used), dtype=torch.long)
    start = time.perf_counter()
    new = generate(model, prompt, cfg.max_new_tokens, eos_ids(model, tokenizer))
    answer = tokenizer.decode(new, skip_special_tokens=True)
    return {
        "k": k_used,
        "key": key,
        "answer": answer,
        "correct": first_integer(answer) == key,
        "digits_found": digits_found(answer, key),
        "seconds": round(time.perf_counter() - start, 3),
    }


def _cell(model, tokenizer, pieces, length, grid, point, cfg, bar, **where) -> dict[str, Any]:
    """All trials of one grid point (a distance k or a depth) at one length."""
    trials = []
    for t in range(cfg.trials):
        key = trial_key(cfg.seed, length, grid, point, t)
        trials.append(run_trial(model, tokenizer, pieces, length, key, cfg, **where))
        if bar is not None:
            bar.update(1)
    correct, found = sum(r["correct"] for r in trials), sum(r["digits_found"] for r in trials)
    return {
        **where,
        "correct": correct,
        "accuracy": correct / len(trials),
        "digits_found": found / len(trials),
        "trials": trials,
    }


def evaluate_passkey(model: Any, tokenizer: Any, lengths: list[int], cfg, bar) -> tuple[list, list]:
    """The k sweep (accuracy per k, k_max) at each length, then the length x depth grid."""
    results, grid = [], []
    for length in lengths:
        pieces = PromptPieces.build(tokenizer, length)
        ks = default_ks(length, cfg.num_k) if cfg.num_k else []
        cells = [_cell(model, tokenizer, pieces, length, 0, i, cfg, bar, k=k) for i, k in enumerate(ks)]
        k_max = effective_window({c["k"]: (c["correct"], cfg.trials) for c in cells}) if cells else None
        acc = float(np.mean([c["accuracy"] for c in cells])) if cells else None
        found = float(np.mean([c["digits_found"] for c in cells])) if cells else None
        results.append(
            {"length": length, "k_max": k_max, "accuracy": acc, "digits_found": found, "ks": cells}
        )
        for j, depth in enumerate(cfg.depths or []):
            grid.append(
                {"length": length, **_cell(model, tokenizer, pieces, length, 1, j, cfg, bar, depth=depth)}
            )
    return results, grid
