"""The real-model demo: SmolLM2-135M (window L = 8192) under each scaling method, without fine-tuning.

On a CPU a 16384-token forward of a 135M model takes about two minutes, so this demo is sized to that:
one long held-out-style document (a Shakespeare play cut to 2L tokens) scored in one 2L window per
method, and one passkey prompt per length with the key at the far end. Perplexity at L is read from the
same 2L forward pass (the first L scored tokens): causal attention makes it identical to an L-token window
on the document cut to L, for every method whose frequencies do not depend on the sequence length;
dynamic NTK does, so it gets its own L-token pass.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import io
from ..config import ExtendConfig, RopeScaling
from ..report.tables import fmt_ppl, markdown
from .evals import Evaluator, Row, row_dict

MODEL = "smollm2-135m"
METHODS = ("none", "linear", "ntk", "yarn", "dynamic")


@dataclass(frozen=True)
class RealBudget:
    window: int  # the original window L the scaling starts from
    factor: int
    passkey_lengths: tuple[int, ...]


FULL = RealBudget(8192, 2, (4096, 16384))
QUICK = RealBudget(512, 2, (1024,))  # L pretended to be 512: the same code on 1024-token inputs


def first_part_ppl(buckets: list[dict[str, Any]], tokens: int) -> float:
    """Perplexity of the scored tokens at window positions < `tokens`, from the per-eighth buckets."""
    nll = n = 0.0
    for b in buckets:
        if b["to"] <= tokens and b["tokens"]:
            nll += b["tokens"] * math.log(b["ppl"])
            n += b["tokens"]
    return math.exp(nll / n)


def run_real(work: Path, quick: bool, seed: int, stage) -> tuple[list[Row], list[Path], RealBudget]:
    from ..models.extend import run_extend

    b = QUICK if quick else FULL
    L, S = b.window, b.window * b.factor
    stage(f"{MODEL}: GGUF to a transformers checkpoint (loaded once per evaluation after this)")
    local = work / "model"  # removed when the demo ends: it is the GGUF's weights in float32
    run_extend(ExtendConfig(model=MODEL, out=local, rope=RopeScaling()))
    ev = Evaluator(work / "results", "shakespeare", S, 1, 1, seed, truncate_to=S, max_docs=1)
    for method in METHODS:
        stage(f"{MODEL} {method}" + ("" if method == "none" else f" x{b.factor}"))
        factor = 1.0 if method == "none" else float(b.factor)
        spec = RopeScaling(rope_type=method, factor=factor, original_max_position_embeddings=L)
        row = ev.evaluate(Row(method, f"{MODEL} {method}", method, factor, 0), local, spec, [S],
                          list(b.passkey_lengths))  # fmt: skip
        if method == "dynamic":
            short = dataclasses.replace(ev, truncate_to=L, rows=[])  # same `files`: its result is listed
            row.ppl[L] = short.evaluate(
                Row("dynamic_L", "dynamic at L", method, factor, 0), local, spec, [L]
            ).ppl[L]
        else:
            row.ppl[L] = first_part_ppl(row.by_position[S], L)
    return ev.rows, ev.files, b


def write_real(out: Path, cfg: Any, stage) -> dict[str, Any]:
    from . import report

    rows, files, b = run_real(out / "work", cfg.quick, cfg.seed, stage)
    L, S = b.window, b.window * b.factor
    stage("report and plots")
    pngs = report.eval_plots(files, {r.label for r in rows}, S, out)
    table = markdown(
        ["Method", "Ctx window", f"PPL {L}", f"PPL {S}", *(f"passkey {n}" for n in b.passkey_lengths)],
        [
            [r.method if r.method == "none" else f"{r.method} x{r.factor:g}", S if r.factor > 1 else L,
             fmt_ppl(r.ppl.get(L)), fmt_ppl(r.ppl.get(S)),
             *("yes" if r.k_max.get(n) else "no" for n in b.passkey_lengths)]
            for r in rows
        ],
    )  # fmt: skip
    lines = [
        f"{r.method:<8} ppl {fmt_ppl(r.ppl.get(L)):>8} at {L}, {fmt_ppl(r.ppl.get(S)):>8} at {S}; passkey "
        + ", ".join(f"{n}: {'retrieved' if r.k_max.get(n) else 'missed'}" for n in b.passkey_lengths)
        for r in rows
    ]
    head = f"ropescale demo --model {MODEL}{' --quick' if cfg.quick else ''}: L={L} -> {S}, no fine-tuning"
    summary = "\n".join([head, *lines])
    text = "\n\n".join([
        f"# ropescale demo: {MODEL} across scaling methods (no fine-tuning)",
        f"Original window L = {L}, every method at factor {b.factor} (window {S}). Perplexity: one Shakespeare "
        f"play cut to {S} tokens, scored in one {S}-token window; the {L} column is the first {L} scored "
        f"tokens of that pass (identical to an {L}-token window by causality; dynamic NTK gets its own "
        f"{L}-token pass). Passkey: the paper's prompt, one key at the far end of each prompt length.",
        f"## Results\n\n{table}",
        "## Plots\n\n" + "\n".join(f"![{p}]({p})" for p in pngs),
    ]) + "\n"  # fmt: skip
    io.write_text(out / "report.md", text)
    return {
        "kind": "demo",
        "model": MODEL,
        "quick": cfg.quick,
        "budget": b,
        "rows": [row_dict(r) for r in rows],
        "plots": pngs,
        "summary": summary,
    }
